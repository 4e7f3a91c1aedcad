// The CUDA backend for RecVAE (native/cpu/recvae_cpu.h describes the model and its loss): the same
// composition as the CPU engine, on one GPU in fp32. The sparse item layer, the multinomial likelihood,
// Adam and top-k are common.cuh's kernels (shared with the Mult-VAE engine); swish, LayerNorm and the
// composite-prior KL are its own; the dense layers are cuBLAS SGEMM. Noise comes from the same counter
// RNG as the CPU engine (same dropout masks and eps for the same seed and step). Batches are gathered on
// the host and uploaded per step (no pipelining, no device-resident matrix yet). Plain C++ header.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../core/config.h"
#include "../core/engine.h"

namespace vaecf::cuda {

class RecVaeCudaEngine final : public Engine {
 public:
  explicit RecVaeCudaEngine(const RecVaeConfig& config);
  ~RecVaeCudaEngine() override;
  // The shape in Mult-VAE terms (items -> hidden -> latent -> items), as the CPU RecVAE engine gives it.
  const ModelConfig& config() const override;
  std::string backendName() const override { return "cuda"; }
  int64_t numParams() const override;
  void setThreads(int) override {}
  // The CPU engine's initialisation (same counter RNG), uploaded: encoder, decoder and the prior's encoder.
  void initialize(uint64_t seed) override;
  // Encoder phase (input dropout, gradients and Adam of the encoder), decoder phase (no dropout, the
  // decoder's), or both (Joint); KL weight gamma * |x_u| when gamma > 0, else beta. A non-finite loss
  // throws before any update, as on the CPU.
  StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                 int32_t* outItems, float* outScores) override;
  void scores(const CsrView& data, int64_t first, int64_t m, float* out) override;
  void getParameters(float* out) const override;
  void setParameters(const float* in) override;
  // t: both groups' steps together; optimizerGroupSteps() holds each (as the CPU RecVAE engine).
  void getOptimizerState(float* m, float* v, int64_t* t) const override;
  void setOptimizerState(const float* m, const float* v, int64_t t) override;
  void getGradients(float* out) const override;
  std::vector<int64_t> optimizerGroupSteps() const override;
  void setOptimizerGroupSteps(const std::vector<int64_t>& steps) override;
  // The prior's encoder (the previous epoch's copy): as many values as the encoder part of the parameters.
  int64_t numAuxiliary() const override;
  void getAuxiliary(float* out) const override;
  void setAuxiliary(const float* in) override;
  void updatePrior() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vaecf::cuda
