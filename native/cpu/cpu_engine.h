// What a float CPU model's Engine does whatever the model: scoring, and copies of the parameters, the
// gradient and the Adam moments. A model class provides loadBatch, forwardEval, topK, logits,
// numItems, numParams, parameters, parametersChanged, gradients, ensureOptimizerState, adamM, adamV,
// setThreads and initialize; the engine of each model adds its training step and optimizer counters.
#pragma once
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../core/engine.h"

namespace vaecf::cpu {

template <typename Model>
class CpuModelEngine : public Engine {
 public:
  template <typename Config>
  explicit CpuModelEngine(const Config& config) : model_(config) {}
  std::string backendName() const override { return "cpu"; }
  int64_t numParams() const override { return model_.numParams(); }
  void setThreads(int threads) override { model_.setThreads(threads); }
  void initialize(uint64_t seed) override { model_.initialize(seed); }
  void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                 int32_t* outItems, float* outScores) override {
    model_.loadBatch(data, nullptr, first, m);
    model_.forwardEval();
    model_.topK(k, excludeSeen, candidates, outItems, outScores);
  }
  void scores(const CsrView& data, int64_t first, int64_t m, float* out) override {
    model_.loadBatch(data, nullptr, first, m);
    model_.forwardEval();
    std::memcpy(out, model_.logits(), size_t(m * model_.numItems()) * sizeof(float));
  }
  void getParameters(float* out) const override { std::memcpy(out, model_.parameters(), bytes()); }
  void setParameters(const float* in) override {
    std::memcpy(model_.parameters(), in, bytes());
    model_.parametersChanged();
  }
  void getGradients(float* out) const override {
    mutableModel().ensureOptimizerState();
    std::memcpy(out, mutableModel().gradients(), bytes());
  }
  Model& model() { return model_; }

 protected:
  size_t bytes() const { return size_t(model_.numParams()) * sizeof(float); }
  // The moments are allocated on first use, also when only read.
  Model& mutableModel() const { return const_cast<Model&>(model_); }
  void copyMoments(float* m, float* v) const {
    mutableModel().ensureOptimizerState();
    std::memcpy(m, mutableModel().adamM().data(), bytes());
    std::memcpy(v, mutableModel().adamV().data(), bytes());
  }
  void setMoments(const float* m, const float* v) {
    model_.ensureOptimizerState();
    std::memcpy(model_.adamM().data(), m, bytes());
    std::memcpy(model_.adamV().data(), v, bytes());
  }
  // A step whose loss is not finite is refused before the update (the weights stay as they were).
  static void checkFinite(const StepResult& r, uint64_t step) {
    if (!std::isfinite(r.loss))
      throw std::runtime_error("the loss became non-finite at step " + std::to_string(step) + " (nll " + std::to_string(r.nll) +
                               ", kl " + std::to_string(r.kl) + "); try a smaller learning rate");
  }
  Model model_;
};

}  // namespace vaecf::cpu
