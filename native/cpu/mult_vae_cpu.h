// Mult-VAE / Mult-DAE on the CPU: sparse first layer, BLAS matrix products, fused row kernels, OpenMP.
// T = float for training; T = double is the higher-precision reference used by the gradient checks.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/config.h"
#include "../core/csr.h"
#include "../core/engine.h"
#include "cpu_engine.h"
#include "kernels.h"
#include "layers.h"
#include "zeroed_vector.h"
#include "onednn_matmul.h"

namespace vaecf::cpu {

// Wall time per phase of a training step, for the benchmarks (off unless enabled).
struct Profile {
  enum Phase { Gather, Noise, SparseForward, Gemm, OutputGemm, Elementwise, Likelihood, SparseGradient, BiasGradient, Optimizer, Count };
  static const char* name(int p) {
    static const char* names[] = {"gather batch", "noise (dropout, reparameterisation)", "sparse first layer", "matrix products (hidden layers)",
                                  "matrix products (item output layer)", "element-wise (tanh, dropout, z)",
                                  "softmax + likelihood grad", "sparse weight gradient (+ its Adam)", "bias gradients",
                                  "optimizer (other weights)"};
    return names[p];
  }
  bool enabled = false;
  double seconds[Count] = {};
  void reset() { for (double& s : seconds) s = 0; }
};

template <typename T>
class MultVaeCpu {
 public:
  explicit MultVaeCpu(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const ParameterLayout& layout() const { return layout_; }
  int64_t numParams() const { return layout_.total; }
  int64_t numItems() const { return config_.numItems(); }
  T* parameters() { return params_.data(); }
  const T* parameters() const { return params_.data(); }
  // Valid after forwardBackward (allocated by the first training step). A deferred input-layer gradient
  // (forwardBackward with deferInputGradient) is written here first.
  T* gradients() {
    input_.formDeferredGradient();
    return grads_.data();
  }
  // Forgets a deferred input-layer gradient without forming it (the next forwardBackward writes every
  // gradient; a new batch or an evaluation forward otherwise forms it first: SparseInput).
  void discardDeferredGradient() { input_.discardDeferredGradient(); }
  void setThreads(int threads);
  int threads() const { return threads_; }
  Profile& profile() { return profile_; }

  void initialize(uint64_t seed);

  // Gather a batch: the rows listed in `rows` (or rows [first, first + m) when rows is null).
  void loadBatch(const CsrView& data, const int64_t* rows, int64_t first, int64_t m);
  int64_t batchRows() const { return m_; }
  int64_t batchNnz() const { return input_.nnz(); }

  // Training noise for the loaded batch from the counter RNG; tests may overwrite it afterwards.
  void sampleNoise(uint64_t seed, uint64_t step);
  T* inputDropoutScale() { return input_.dropoutScale(); }          // [nnz]: 0 or 1 / keep
  T* hiddenDropoutScale(int64_t layer) { return masks_[layer].data(); }  // [m x in_layer], layer >= 1
  T* epsilon() { return eps_.data(); }                               // [m x latent]

  // Training-mode forward and backward on the loaded batch with the current noise; fills gradients().
  // deferInputGradient (float, l2 == 0): the sparse input layer's weight gradient is left to the next
  // optimizerStep, which forms it row by row fused with Adam (SparseInput::adamOnDeferredGradient: same bits,
  // two passes over 4 bytes per input weight fewer); gradients() still forms it when asked.
  StepResult forwardBackward(double beta, double l2, bool deferInputGradient = false);
  // Evaluation-mode forward (no dropout, z = mu); logits() then holds [m x n_items].
  void forwardEval();
  const T* logits() const { return acts_.back().data(); }

  // Adam / AdamW on all parameters with the current gradients.
  void optimizerStep(const OptimizerOptions& options);
  // Allocates the gradient and the Adam moments (zero) if they are not there yet.
  void ensureOptimizerState();
  ZeroedVector<T>& adamM() { return adamM_; }
  ZeroedVector<T>& adamV() { return adamV_; }
  int64_t& adamStepCount() { return adamT_; }

  // bf16 matrix products (fp32 master weights and accumulation) for the item output layer; float only.
  void setBf16Output(bool on);
  bool bf16Output() const { return bf16Output_; }
  // Call after writing parameters() from outside (refreshes the bf16 weight copy).
  void parametersChanged();

  // Top-k of the current logits per row (seen items excluded when asked), best first.
  void topK(int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores);

 private:
  void reserve(int64_t rows);
  void forward(bool training);
  bool hasTanh(int64_t layer) const;
  const T* layerSource(int64_t layer) const;  // dense input of a layer >= 1 before its dropout
  double dropoutOf(int64_t layer) const;

  ModelConfig config_;
  ParameterLayout layout_;
  int threads_ = 1;
  int64_t nEnc_, nLayers_, latent_;
  // Zeroed lazily (zeroed_vector.h): allocating them on Node's main thread costs no time.
  ZeroedVector<T> params_, grads_, adamM_, adamV_;
  int64_t adamT_ = 0;

  // The loaded batch (CSR, the sparse input layer of layers.h): raw click values and the normalised,
  // dropped-out encoder input.
  int64_t m_ = 0, capacityRows_ = 0;
  SparseInput<T> input_;
  bool training_ = false;

  // Activations: acts_[k] = output of layer k after its activation ([rows x out_k]); the last is the logits.
  std::vector<ZeroedVector<T>> acts_, dropped_, masks_;  // large ones on huge pages (zeroed_vector.h)
  std::vector<T> z_, eps_, gradA_, gradB_;
  std::vector<double> rowNll_, rowKl_;
  Profile profile_;
  // The float engine fuses bias + likelihood + gradient of the output layer; double keeps the plain path.
  static constexpr bool fusedOutput() { return std::is_same_v<T, float>; }
  bool bf16Output_ = false;
  ZeroedVector<bf16> outputWeightBf16_, outputInputBf16_, outputGradBf16_;
  Bf16Matmul matmul_;
  // The output layer's weights packed for scoring a few users (built on first use, stale after any update).
  PackedPanels scoringPanels_;
  bool scoringPanelsStale_ = true;
  // The bf16 copy of the output layer's weights is built by parametersChanged() (on whichever thread
  // loads or initialises the weights), or at the next forward pass after setBf16Output: never in the
  // constructor, which runs on Node's main thread while the weights are still zeros.
  bool bf16CopyStale_ = true;
  void refreshBf16Copy();
};

// The float CPU backend behind the Engine interface.
class CpuEngine final : public CpuModelEngine<MultVaeCpu<float>> {
 public:
  explicit CpuEngine(const ModelConfig& config) : CpuModelEngine(config) {}
  const ModelConfig& config() const override { return model_.config(); }
  StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  void getOptimizerState(float* m, float* v, int64_t* t) const override {
    copyMoments(m, v);
    *t = mutableModel().adamStepCount();
  }
  void setOptimizerState(const float* m, const float* v, int64_t t) override {
    setMoments(m, v);
    model_.adamStepCount() = t;
  }
};

}  // namespace vaecf::cpu
