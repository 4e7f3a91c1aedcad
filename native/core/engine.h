// The backend interface: one Mult-VAE / Mult-DAE instance with its parameters, gradients and optimizer
// state on one device. The training loop (trainer.h) and the binding only talk to this interface.
#pragma once
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "csr.h"

namespace vaecf {

struct OptimizerOptions {
  double learningRate = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  double weightDecay = 0.0;
  bool decoupled = false;  // false: Adam with coupled L2 (g += wd * p); true: AdamW (p *= 1 - lr * wd)
};

// Which parameters a step trains (RecVAE alternates; Mult-VAE always trains everything).
enum class Phase { Joint, Encoder, Decoder };

struct StepOptions {
  Phase phase = Phase::Joint;
  double beta = 0.0;        // KL weight for this update
  double gamma = 0.0;       // > 0: each user's KL weight is gamma * (sum of the user's clicks) instead of beta (RecVAE)
  double l2 = 0.0;          // lam in lam * sum of squared weights (biases excluded)
  uint64_t seed = 0;        // run seed; with `step` it fixes dropout masks and eps
  uint64_t step = 0;        // global update index (noise counter)
  OptimizerOptions optimizer;
  bool update = true;       // false: forward + backward only (gradients left in gradients())
};

struct StepResult {
  double loss = 0, nll = 0, kl = 0, l2 = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string backendName() const = 0;
  virtual int64_t numParams() const = 0;
  virtual void setThreads(int threads) = 0;
  // Xavier-uniform weights, N(0, 0.001^2) biases, zero optimizer state.
  virtual void initialize(uint64_t seed) = 0;
  // Called by trainEpoch before the epoch's steps with the matrix they will read (a device backend
  // keeps it on the device across epochs).
  virtual void beginEpoch(const CsrView& /*data*/) {}
  // One training update on the users `rows[0..m)` of `data`.
  virtual StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) = 0;
  // Pipelined training (device backends): submitStep queues a step and returns at once; collectStep
  // returns the oldest submitted step's result, waiting for it. trainEpoch keeps pipelineDepth() steps
  // in flight so the device never waits for the host to read a loss. `rows` must stay valid until
  // the step is collected. The default runs the step at submission (depth 0).
  virtual int pipelineDepth() const { return 0; }
  virtual void submitStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
    submitted_.push_back(trainStep(data, rows, m, opt));
  }
  virtual StepResult collectStep() {
    if (submitted_.empty()) throw std::logic_error("collectStep: no step was submitted");
    const StepResult r = submitted_.front();
    submitted_.pop_front();
    return r;
  }
  // Evaluation-mode scores (no dropout, z = mu) for rows [first, first + m) of `data`; top-k items
  // and scores per row, best first; clicked items of the row excluded when excludeSeen; only items with
  // candidates[i] != 0 when a candidate mask [n_items] is given (allow / deny lists).
  // outItems / outScores: [m x k]; rows with fewer than k candidates are padded with -1 / -inf.
  virtual void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen,
                         const uint8_t* candidates, int32_t* outItems, float* outScores) = 0;
  // Evaluation-mode logits, dense [m x n_items], for small batches and tests.
  virtual void scores(const CsrView& data, int64_t first, int64_t m, float* out) = 0;
  // Flat parameter vector: per layer W [in x out] row-major then b [out]; encoder layers first.
  virtual void getParameters(float* out) const = 0;
  virtual void setParameters(const float* in) = 0;
  // Adam moments (each numParams()) and the optimizer's step count.
  virtual void getOptimizerState(float* m, float* v, int64_t* t) const = 0;
  virtual void setOptimizerState(const float* m, const float* v, int64_t t) = 0;
  // The gradient of the last trainStep (for checks between backends).
  virtual void getGradients(float* out) const = 0;

  // Models with parameter groups stepped separately (RecVAE: encoder, decoder) keep one Adam step count
  // per group; empty for one group (getOptimizerState's t).
  virtual std::vector<int64_t> optimizerGroupSteps() const { return {}; }
  virtual void setOptimizerGroupSteps(const std::vector<int64_t>& steps) {
    if (!steps.empty()) throw InvalidArgument("this model has one optimizer group");
  }
  // State that is not trained but must be saved (RecVAE: the previous epoch's encoder in its prior).
  virtual int64_t numAuxiliary() const { return 0; }
  virtual void getAuxiliary(float* /*out*/) const {}
  virtual void setAuxiliary(const float* /*in*/) {}
  // RecVAE: the prior's encoder becomes a copy of the current encoder (once per epoch).
  virtual void updatePrior() { throw InvalidArgument("this model has no learned prior to update"); }

 protected:
  std::deque<StepResult> submitted_;
};

// Offsets of every layer's weight and bias in the flat parameter vector.
struct ParameterLayout {
  struct Layer {
    int64_t in, out, weightOffset, biasOffset;
  };
  std::vector<Layer> layers;
  int64_t total = 0;
  explicit ParameterLayout(const ModelConfig& c);
};

// One named tensor of the flat parameter vector, as model files, the ONNX export and the PyTorch import
// name it: `shape` (row-major; a weight is [in, out], y = x W + b) starting at `offset`.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;
};

// Mult-VAE / Mult-DAE: encoder.K.weight, encoder.K.bias, then decoder.K.*, in flat-vector order (the one
// source of the layout: the TypeScript side asks for it through the addon).
std::vector<TensorSpec> parameterTensors(const ModelConfig& c);

}  // namespace vaecf
