// The CUDA backend: Mult-VAE / Mult-DAE training and scoring on one GPU: our own kernels for the sparse
// first layer (forward and weight gradient, summed in a fixed order: the same seed gives the same
// weights bit for bit), cuBLAS for the dense layers, and fused kernels (likelihood, tanh, dropout,
// reparameterisation, KL, Adam, top-k). Plain C++ header: the harness and the binding include it
// without the CUDA headers. Noise comes from the same counter RNG as the CPU engine, so both backends
// see the same dropout masks and eps for the same seed and step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../core/engine.h"

namespace vaecf::cuda {

// Whether a usable CUDA device is present; `why` says what is missing otherwise.
bool deviceAvailable(std::string* why);
// "NVIDIA H100 80GB HBM3, compute 9.0, 79.1 GiB, driver 13.0" or the reason there is none.
std::string deviceDescription();
// Creates the process's CUDA context on device 0 and loads cuBLAS (a handle made and destroyed), the
// slow part of a first engine (hundreds of ms). Any thread may call it: the context is the process's,
// so an engine made afterwards on another thread finds it ready. Returns "" or why it failed.
std::string warmUp();

// How the matrix products compute. Fp32: plain fp32 (cuBLAS SGEMM, no tensor-core down-conversion).
// Tf32: every dense product on TF32 tensor cores (fp32 storage, 10-bit mantissa inputs). Bf16: the
// item output layer (the largest products: forward, both gradients) in bf16 with fp32 accumulation
// and fp32 master weights, as the CPU engine's bf16 mode; the other layers in fp32.
enum class CudaPrecision { Fp32, Tf32, Bf16 };

struct CudaOptions {
  CudaPrecision precision = CudaPrecision::Fp32;
  // Training matrix: Auto keeps it on the device for the whole run when it fits (leaving 1 GiB free)
  // and streams each batch from host memory otherwise; Streamed always streams (also VAECF_CUDA_STREAM=1).
  enum class Residency { Auto, Streamed } residency = Residency::Auto;
  // How a training step is issued. Both are opt-in and compiled-only until a GPU run has checked and
  // timed them (bench/gpu_check.sh does both); neither changes the arithmetic, so the weights must match
  // the serial schedule's.
  // adamStream (also VAECF_CUDA_ADAM_STREAM=1): each layer's Adam update on a second, low-priority stream
  //   as soon as that layer's gradients are final and its weights read for the last time in the step, so
  //   the updates overlap the backward pass of the layers below and the next batch's gather.
  // graphs (also VAECF_CUDA_GRAPHS=1): forward, backward and Adam captured into one CUDA graph per step
  //   and launched as one (the executable graph updated in place from each step's capture; one per batch
  //   size). Not while profiling: per-phase timing needs the events between launches.
  bool adamStream = false;
  bool graphs = false;
};

// How the steps were issued (CudaOptions::graphs): graphs launched, and how many executable graphs had
// to be instantiated because an in-place update was refused (expected: one per batch size).
struct ScheduleStats {
  int64_t graphLaunches = 0, graphInstantiations = 0;
};

// Device time of one phase of the training step, summed over the steps run while profiling, with the
// floating-point operations and the fewest bytes of device memory it must move (counted, not measured).
struct PhaseTime {
  std::string phase;
  double seconds, flops, bytes;
  int64_t calls;
};

class CudaEngine final : public Engine {
 public:
  explicit CudaEngine(const ModelConfig& config, const CudaOptions& options = {});
  ~CudaEngine() override;
  const ModelConfig& config() const override;
  std::string backendName() const override { return "cuda"; }
  int64_t numParams() const override;
  void setThreads(int) override {}
  void initialize(uint64_t seed) override;
  StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  // One step in flight while the next is queued: the device does not wait for the host to read losses.
  int pipelineDepth() const override { return 1; }
  void submitStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  StepResult collectStep() override;
  void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                 int32_t* outItems, float* outScores) override;
  void scores(const CsrView& data, int64_t first, int64_t m, float* out) override;
  void getParameters(float* out) const override;
  void setParameters(const float* in) override;
  void getOptimizerState(float* m, float* v, int64_t* t) const override;
  void setOptimizerState(const float* m, const float* v, int64_t t) override;
  void getGradients(float* out) const override;
  // Registers the epoch's training matrix: uploaded once and kept while it is the same matrix (the same
  // generation id when the caller gives one, else the same pointers, shape and content fingerprint);
  // streamed batch by batch when it does not fit.
  void beginEpoch(const CsrView& data) override;
  // Whether the registered training matrix is streamed from host memory (false: on the device).
  bool streaming() const;
  // How many times a training matrix was uploaded to the device (the GPU check's residency test).
  int64_t matrixUploads() const;
  // Wait for the device (for timing).
  void synchronize() const;
  // Per-phase device timing with CUDA events (adds an event per phase; for the GPU check, not for training).
  void setProfiling(bool on);
  std::vector<PhaseTime> phaseTimes();
  void resetPhaseTimes();
  ScheduleStats scheduleStats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vaecf::cuda
