// One training epoch over a CSR click matrix: shuffle users, batch, beta annealing, updates.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

#include "engine.h"

namespace vaecf {

// beta for an update: linear  -> min(cap, annealCount / totalSteps)  (the paper's schedule)
//                     constant -> value
struct BetaSchedule {
  enum class Kind { Linear, Constant } kind = Kind::Linear;
  double cap = 0.2;
  double totalSteps = 200000;
  double value = 0.0;
  double at(uint64_t annealCount) const;
};

struct EpochOptions {
  int64_t batchSize = 500;
  uint64_t seed = 0;
  uint64_t epoch = 0;  // selects the shuffle
  bool shuffle = true;
  BetaSchedule beta;
  Phase phase = Phase::Joint;
  double gamma = 0.0;  // RecVAE's per-user KL weight gamma * |x_u| (0: the beta schedule)
  double l2 = 0.0;
  OptimizerOptions optimizer;
};

// Survives across epochs and is saved in checkpoints.
struct TrainingCounters {
  uint64_t step = 0;         // updates done so far (noise counter)
  uint64_t annealCount = 0;  // the paper's update_count
};

struct BatchStats {
  int64_t batch = 0, batches = 0;
  double loss = 0, nll = 0, kl = 0, beta = 0;
};

struct EpochStats {
  double loss = 0, nll = 0, kl = 0, beta = 0;  // means over the epoch's batches; beta of the last update
  int64_t batches = 0;
};

struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("training was cancelled") {}
};

// The order in which users are visited in an epoch: a Fisher-Yates shuffle drawn from (seed, epoch).
std::vector<int64_t> epochOrder(int64_t users, uint64_t seed, uint64_t epoch, bool shuffle);

EpochStats trainEpoch(Engine& engine, const CsrView& data, const EpochOptions& options, TrainingCounters& counters,
                      const std::function<void(const BatchStats&)>& onBatch, const std::atomic<bool>* cancel);

}  // namespace vaecf
