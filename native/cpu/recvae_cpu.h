// RecVAE (Shenbin, Alekseev, Tutubalina, Malykh, Nikolenko: "RecVAE: a New Variational Autoencoder for
// Top-N Recommendations with Implicit Feedback", WSDM 2020) on the CPU, composed of the layers in
// layers.h. T = float for training; T = double is the reference of the gradient checks.
//
// Encoder (x_u / ||x_u||, dropout p on the clicks):
//   h_0 = LN_0(swish(x W_0 + b_0))
//   h_k = LN_k(swish(h_{k-1} W_k + b_k + h_0 + ... + h_{k-1})),   k = 1 .. layers - 1
//   (mu, logvar) = h_last W_head + b_head                       [m x 2D]
// Decoder: logits = z W_dec + b_dec with z = mu + eps exp(logvar / 2) in training, z = mu in evaluation.
// Loss per batch (the authors' negative ELBO):
//   mean_u nll_u + mean_u w_u sum_d (log q(z_d | x_u) - log p(z_d | x_u))
// with the composite prior p (layers.h: compositePriorKl), whose second component is the posterior
// of the previous epoch's encoder (a frozen copy, `prior parameters`), and w_u = gamma * sum_i x_ui
// (or a fixed beta). Training alternates encoder phases (dropout on the input; only the encoder
// learns) and decoder phases (no dropout; only the decoder learns), each with its own Adam.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/config.h"
#include "../core/engine.h"
#include "cpu_engine.h"
#include "kernels.h"
#include "layers.h"
#include "zeroed_vector.h"

namespace vaecf::cpu {

// Offsets of every tensor in the flat parameter vector: encoder layers (W, b, LayerNorm gain and
// shift), the head (W [hidden x 2D], b: mu columns first), then the decoder (W [D x items], b).
struct RecVaeLayout {
  struct Dense {
    int64_t in, out, weight, bias;
  };
  std::vector<Dense> fc;                       // layers
  std::vector<int64_t> normGain, normShift;    // [hidden] each, per layer
  Dense head{}, decoder{};
  int64_t encoderCount = 0;                    // parameters before the decoder (the encoder group)
  int64_t total = 0;
  explicit RecVaeLayout(const RecVaeConfig& c);
};

// RecVAE's tensors in flat-vector order: encoder.fcK.weight / .bias, encoder.lnK.weight / .bias
// (LayerNorm gain and shift), encoder.head.* (mu columns, then logvar), decoder.*.
std::vector<TensorSpec> parameterTensors(const RecVaeConfig& c);

template <typename T>
class RecVaeCpu {
 public:
  explicit RecVaeCpu(const RecVaeConfig& config);

  const RecVaeConfig& config() const { return config_; }
  const RecVaeLayout& layout() const { return layout_; }
  int64_t numParams() const { return layout_.total; }
  int64_t numItems() const { return config_.items; }
  int64_t numEncoderParams() const { return layout_.encoderCount; }
  T* parameters() { return params_.data(); }
  const T* parameters() const { return params_.data(); }
  // The prior's encoder: numEncoderParams() values laid out as the encoder part of parameters(). The
  // non-const access may write them: it empties the prior cache.
  T* priorParameters() {
    ++priorGeneration_;
    return prior_.data();
  }
  const T* priorParameters() const { return prior_.data(); }
  // The gradients of the last forwardBackward; a deferred input-layer gradient is formed here first.
  T* gradients() {
    input_.formDeferredGradient();
    return grads_.data();
  }
  // Forgets a deferred input-layer gradient without forming it (MultVaeCpu::discardDeferredGradient).
  void discardDeferredGradient() { input_.discardDeferredGradient(); }
  void setThreads(int threads) { threads_ = threads < 1 ? 1 : threads; }
  int threads() const { return threads_; }

  // PyTorch's default initialisation of nn.Linear, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
  // biases, LayerNorm gain 1 and shift 0, for the encoder and (independently) the prior's encoder.
  void initialize(uint64_t seed);
  // After the parameters change outside the optimizer (initialize, a load): the scoring panels and
  // the decoder's bf16 copy are rebuilt.
  void parametersChanged();
  // bf16 products (float engine, where oneDNN runs bf16 natively: AMX or AVX512-BF16): the matrix
  // products of the decoder (logits = z W_dec, dW_dec = z^T dlogits, dz = dlogits W_dec^T) and of the
  // encoder's dense layers and head take bf16 operands (activations and gradients rounded to bf16, bf16
  // copies of the weights that Adam refreshes) with fp32 accumulation and output. Master weights,
  // LayerNorm, the sparse first layer and the prior's encoder pass stay fp32, and so does the encoder
  // when scoring (forwardEval), so that one user alone and a batch give the same scores.
  void setBf16Products(bool on);
  bool bf16Products() const { return bf16Products_; }
  // prior <- encoder (the authors' update_prior, once per epoch after the encoder phases).
  void updatePrior();
  // The prior cache: the prior encoder's (mu, logvar) of each training row, computed by the first
  // encoder pass after the prior changes and reused by the next passes (the authors' schedule runs three
  // encoder passes per prior), each row checked against a hash of its clicks. At most `bytes` of memory
  // (rows x 2D values); 0 turns it off. Default: VAECF_RECVAE_PRIOR_CACHE_MIB (MiB), else 1024 MiB.
  void setPriorCacheLimit(int64_t bytes) { priorCacheLimit_ = bytes; }
  // Rows whose prior (mu, logvar) came from the cache, and rows computed, since construction.
  int64_t priorCacheHits() const { return priorCacheHits_; }
  int64_t priorCacheMisses() const { return priorCacheMisses_; }

  void loadBatch(const CsrView& data, const int64_t* rows, int64_t first, int64_t m);
  int64_t batchRows() const { return input_.rows(); }
  // Input dropout (when `dropout`) and the reparameterisation noise for (seed, step); tests may
  // overwrite them afterwards.
  void sampleNoise(uint64_t seed, uint64_t step, bool dropout);
  T* inputDropoutScale() { return input_.dropoutScale(); }
  T* epsilon() { return eps_.data(); }

  // Training forward and backward on the loaded batch with the current noise. Encoder phase: input
  // dropout, gradients of the encoder; decoder phase: no dropout, gradients of the decoder, and the
  // loss reported is the likelihood alone (the KL term does not depend on the decoder); joint: both.
  // KL weight per user: gamma * clicks when gamma > 0, else beta.
  // deferInputGradient (float): the sparse input layer's weight gradient is left to optimizerStep, which
  // forms it fused with Adam (MultVaeCpu::forwardBackward says more).
  StepResult forwardBackward(Phase phase, double beta, double gamma, bool deferInputGradient = false);
  // Evaluation: no dropout, z = mu; logits() then holds [m x items].
  void forwardEval();
  const T* logits() const { return logits_.data(); }

  // Adam on the phase's group(s), each with its own step count.
  void optimizerStep(Phase phase, const OptimizerOptions& options);
  void ensureOptimizerState();
  ZeroedVector<T>& adamM() { return adamM_; }
  ZeroedVector<T>& adamV() { return adamV_; }
  int64_t& encoderSteps() { return encoderSteps_; }
  int64_t& decoderSteps() { return decoderSteps_; }

  void topK(int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores);

 private:
  // Activations of one encoder pass, kept for its backward pass.
  struct EncoderPass {
    std::vector<std::vector<T>> pre, h, xhat, rstd;  // per layer: [m x H], [m x H], [m x H], [m]
    std::vector<T> act, residual, head;              // swish output (scratch), running sum of h, [m x 2D]
    std::vector<ZeroedVector<bf16>> hBf16;           // per layer [m x H]: bf16(h), the dense layers' inputs (bf16 mode)
  };
  void reserve(int64_t rows);
  void reservePass(EncoderPass& pass, int64_t rows, bool useBf16);
  // useBf16: the dense layers' products in bf16 (own encoder with bf16Products(); never the prior's).
  void encoderForward(const T* P, EncoderPass& pass, int threads, bool useBf16);
  void encoderBackward(const EncoderPass& pass, T* dHead);
  void decoderForward(const T* z, bool withBias, bool fewRows);

  RecVaeConfig config_;
  RecVaeLayout layout_;
  CompositePrior priorShape_;
  int threads_ = 1;
  // Zeroed lazily (zeroed_vector.h): allocating them on Node's main thread costs no time.
  ZeroedVector<T> params_, prior_, grads_, adamM_, adamV_;
  // forwardBackward's deferInputGradient, for encoderBackward.
  bool deferInput_ = false;
  int64_t encoderSteps_ = 0, decoderSteps_ = 0;

  SparseInput<T> input_;
  int64_t capacityRows_ = 0;
  EncoderPass pass_, priorPass_;
  // The loaded batch's rows in its data (for the prior cache), and that data's row count.
  std::vector<int64_t> batchRows_;
  int64_t batchDataRows_ = 0;
  // Prior cache: [dataRows x 2D] heads, per row the hash of its clicks (0: empty); emptied when
  // priorGeneration_ moves past cacheGeneration_ (updatePrior, initialize, priorParameters()).
  std::vector<T> priorCacheHead_;
  std::vector<uint64_t> priorCacheHash_;
  uint64_t priorGeneration_ = 1, cacheGeneration_ = 0;
  int64_t priorCacheLimit_ = -1;  // bytes; -1: from the environment at first use
  int64_t priorCacheHits_ = 0, priorCacheMisses_ = 0;
  // priorPass_.head <- the prior encoder's (mu, logvar) of the loaded batch, from the cache where every
  // row is there and unchanged, else computed (and cached).
  void priorHeads();
  uint64_t rowHash(int64_t u) const;
  std::vector<T> z_, eps_, dEnc_, dz_, dh_, dA_, dResidual_;
  ZeroedVector<T> logits_;  // [m x items]: on huge pages (zeroed_vector.h)
  std::vector<double> rowNll_, klWeight_;
  bool bf16Products_ = false;
  // Built by parametersChanged() or at the next use after setBf16Decoder (never in the constructor,
  // on Node's main thread, while the weights are zeros).
  bool bf16CopyStale_ = true;
  void refreshBf16Copy();
  ZeroedVector<bf16> decoderWeightBf16_, zBf16_, logitsGradBf16_;  // [D x items], [m x D], [m x items]
  std::vector<T> dzDecoder_;                                        // [m x D]: dlogits W_dec^T, added to dz
  // bf16 copies of the encoder's dense weights: [k] = fc[k] (k >= 1, [H x H]), [layers] = the head [H x 2D].
  std::vector<ZeroedVector<bf16>> encoderWeightsBf16_;
  ZeroedVector<bf16> gradBf16_;  // [m x max(H, 2D)]: bf16(dY) of a dense layer's backward pass
  std::vector<T> denseScratch_;  // [m x H]: a dense product before it is added to the residual sum
  const bf16* encoderWeightBf16(int64_t k) const { return encoderWeightsBf16_[size_t(k)].data(); }
  Bf16Matmul matmul_;
  PackedPanels scoringPanels_;
  bool scoringPanelsStale_ = true;
};

// The float RecVAE behind the Engine interface.
class RecVaeEngine final : public CpuModelEngine<RecVaeCpu<float>> {
 public:
  explicit RecVaeEngine(const RecVaeConfig& config) : CpuModelEngine(config), summary_(config.summary()) {}
  const ModelConfig& config() const override { return summary_; }
  StepResult trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) override;
  // t: both groups' steps together; optimizerGroupSteps() holds each.
  void getOptimizerState(float* m, float* v, int64_t* t) const override {
    copyMoments(m, v);
    *t = mutableModel().encoderSteps() + mutableModel().decoderSteps();
  }
  void setOptimizerState(const float* m, const float* v, int64_t /*t: see setOptimizerGroupSteps*/) override { setMoments(m, v); }
  std::vector<int64_t> optimizerGroupSteps() const override { return {mutableModel().encoderSteps(), mutableModel().decoderSteps()}; }
  void setOptimizerGroupSteps(const std::vector<int64_t>& steps) override;
  int64_t numAuxiliary() const override { return model_.numEncoderParams(); }
  void getAuxiliary(float* out) const override;
  void setAuxiliary(const float* in) override;
  void updatePrior() override { model_.updatePrior(); }

 private:
  ModelConfig summary_;
};

}  // namespace vaecf::cpu
