#include "trainer.h"

#include <algorithm>
#include <deque>
#include <numeric>

#include "rng.h"

namespace vaecf {

double BetaSchedule::at(uint64_t annealCount) const {
  if (kind == Kind::Constant) return value;
  if (totalSteps <= 0) return cap;
  return std::min(cap, double(annealCount) / totalSteps);
}

std::vector<int64_t> epochOrder(int64_t users, uint64_t seed, uint64_t epoch, bool shuffle) {
  std::vector<int64_t> order(users);
  std::iota(order.begin(), order.end(), int64_t(0));
  if (!shuffle) return order;
  CounterRng rng(seed, uint32_t(Stream::EpochShuffle), epoch);
  for (int64_t i = users - 1; i > 0; --i) {
    const int64_t j = int64_t(rng.below(uint64_t(i), uint64_t(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

EpochStats trainEpoch(Engine& engine, const CsrView& data, const EpochOptions& options, TrainingCounters& counters,
                      const std::function<void(const BatchStats&)>& onBatch, const std::atomic<bool>* cancel) {
  if (options.batchSize <= 0) throw InvalidArgument("batchSize: expected a positive integer");
  if (data.rows <= 0) throw InvalidArgument("the training matrix has no users");
  const std::vector<int64_t> order = epochOrder(data.rows, options.seed, options.epoch, options.shuffle);
  const int64_t batches = (data.rows + options.batchSize - 1) / options.batchSize;
  EpochStats stats;
  stats.batches = batches;
  engine.beginEpoch(data);
  StepOptions step;
  step.l2 = options.l2;
  step.phase = options.phase;
  step.gamma = options.gamma;
  step.seed = options.seed;
  step.optimizer = options.optimizer;
  // Steps are submitted ahead of reading their results (pipelineDepth() in flight: 0 on the CPU,
  // where a step runs at submission); results are reported in order.
  const int depth = std::max(0, engine.pipelineDepth());
  std::deque<std::pair<int64_t, double>> inFlight;  // (batch, beta) of submitted, uncollected steps
  auto collectOne = [&]() {
    const StepResult r = engine.collectStep();
    const auto [b, beta] = inFlight.front();
    inFlight.pop_front();
    stats.loss += r.loss;
    stats.nll += r.nll;
    stats.kl += r.kl;
    stats.beta = beta;
    if (onBatch) onBatch(BatchStats{b, batches, r.loss, r.nll, r.kl, beta});
  };
  try {
    for (int64_t b = 0; b < batches; ++b) {
      if (cancel && cancel->load()) throw Cancelled();
      const int64_t first = b * options.batchSize;
      const int64_t m = std::min(options.batchSize, data.rows - first);
      step.beta = options.beta.at(counters.annealCount);
      step.step = counters.step;
      engine.submitStep(data, order.data() + first, m, step);
      inFlight.emplace_back(b, step.beta);
      counters.step += 1;
      counters.annealCount += 1;
      while (int64_t(inFlight.size()) > depth) collectOne();
    }
    while (!inFlight.empty()) collectOne();
  } catch (...) {
    // Leave no step behind in the engine (their results no longer matter), then report the first error.
    while (!inFlight.empty()) {
      inFlight.pop_front();
      try {
        engine.collectStep();
      } catch (...) {
      }
    }
    throw;
  }
  stats.loss /= double(batches);
  stats.nll /= double(batches);
  stats.kl /= double(batches);
  return stats;
}

}  // namespace vaecf
