// The CUDA backend: Mult-VAE / Mult-DAE training and scoring on one GPU with cuSPARSE (sparse first
// layer and its weight gradient), cuBLAS (dense layers) and fused kernels (likelihood, tanh, dropout,
// reparameterisation, KL, Adam, top-k). Plain C++ header: the harness and the binding include it
// without the CUDA headers. Noise comes from the same counter RNG as the CPU engine, so both backends
// see the same dropout masks and eps for the same seed and step.
#pragma once
#include <memory>
#include <string>

#include "../core/engine.h"

namespace vaecf::cuda {

// Whether a usable CUDA device is present; `why` says what is missing otherwise.
bool deviceAvailable(std::string* why);
// "NVIDIA H100 80GB HBM3, compute 9.0, 79.1 GiB, driver 13.0" or the reason there is none.
std::string deviceDescription();

class CudaEngine final : public Engine {
 public:
  explicit CudaEngine(const ModelConfig& config);
  ~CudaEngine() override;
  const ModelConfig& config() const override;
  std::string backendName() const override { return "cuda"; }
  int64_t numParams() const override;
  void setThreads(int) override {}
  void initialize(uint64_t seed) override;
  StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                 int32_t* outItems, float* outScores) override;
  void scores(const CsrView& data, int64_t first, int64_t m, float* out) override;
  void getParameters(float* out) const override;
  void setParameters(const float* in) override;
  void getOptimizerState(float* m, float* v, int64_t* t) const override;
  void setOptimizerState(const float* m, const float* v, int64_t t) override;
  void getGradients(float* out) const override;
  // Wait for the device (for timing).
  void synchronize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vaecf::cuda
