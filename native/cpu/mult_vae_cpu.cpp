#include "mult_vae_cpu.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "../core/rng.h"
#include "blas.h"
#include "kernels.h"

namespace vaecf::cpu {

namespace {
// Adds the wall time of a scope to one phase of a Profile when profiling is on.
class PhaseTimer {
 public:
  PhaseTimer(Profile& p, Profile::Phase phase) : p_(p), phase_(phase) {
    if (p_.enabled) start_ = std::chrono::steady_clock::now();
  }
  ~PhaseTimer() {
    if (p_.enabled) p_.seconds[phase_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  Profile& p_;
  Profile::Phase phase_;
  std::chrono::steady_clock::time_point start_;
};

inline uint32_t hiddenStream(int64_t layer) { return uint32_t(Stream::HiddenDropout) * 1000u + uint32_t(layer); }

// The element-wise steps: the vector kernels for float, plain loops for the double engine (the
// gradient-check reference).
template <typename T>
void multiplyRange(const T* a, const T* b, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) multiply(a, b, out, n);
  else for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
template <typename T>
void addScaledRange(T* y, const T* x, T alpha, int64_t n) {
  if constexpr (std::is_same_v<T, float>) addScaled(y, x, alpha, n);
  else for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
}  // namespace

template <typename T>
MultVaeCpu<T>::MultVaeCpu(const ModelConfig& config) : config_(config), layout_((config.validate(), config)) {
  nEnc_ = config_.numEncoderLayers();
  nLayers_ = config_.numLayers();
  latent_ = config_.latent();
  ensureZeroed(params_, size_t(layout_.total));
  // Gradients and Adam moments are allocated on the first training step (a model that only scores
  // never holds them).
  acts_.resize(nLayers_);
  dropped_.resize(nLayers_);
  masks_.resize(nLayers_);
}

template <typename T>
void MultVaeCpu<T>::setThreads(int threads) {
  threads_ = std::max(1, threads);
}

template <typename T>
bool MultVaeCpu<T>::hasTanh(int64_t layer) const {
  if (layer == nLayers_ - 1) return false;                      // logits
  if (layer == nEnc_ - 1) return !config_.variational;          // mu/logvar are linear; the DAE code is tanh
  return true;
}

template <typename T>
double MultVaeCpu<T>::dropoutOf(int64_t layer) const {
  return layer < nEnc_ ? config_.encoderDropout[layer] : config_.decoderDropout[layer - nEnc_];
}

template <typename T>
const T* MultVaeCpu<T>::layerSource(int64_t layer) const {
  return (layer == nEnc_ && config_.variational) ? z_.data() : acts_[layer - 1].data();
}

template <typename T>
void MultVaeCpu<T>::reserve(int64_t rows) {
  if (rows <= capacityRows_) return;
  capacityRows_ = rows;
  int64_t widest = 2 * latent_;
  for (int64_t k = 0; k < nLayers_; ++k) {
    const auto& l = layout_.layers[k];
    acts_[k].assign(rows * l.out, T(0));
    if (k >= 1) {
      widest = std::max(widest, l.in);
      if (dropoutOf(k) > 0) {
        dropped_[k].assign(rows * l.in, T(0));
        masks_[k].assign(rows * l.in, T(1));
      }
    }
    if (k < nLayers_ - 1) widest = std::max(widest, l.out);
  }
  z_.assign(rows * latent_, T(0));
  eps_.assign(rows * latent_, T(0));
  gradA_.assign(rows * widest, T(0));
  gradB_.assign(rows * widest, T(0));
  rowNll_.assign(rows, 0.0);
  rowKl_.assign(rows, 0.0);
  if (bf16Output_) {
    const auto& out = layout_.layers.back();
    outputInputBf16_.assign(size_t(rows * out.in), 0);
    outputGradBf16_.assign(size_t(rows * out.out), 0);
  }
}

template <typename T>
void MultVaeCpu<T>::initialize(uint64_t seed) {
  // Xavier (Glorot) uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); biases N(0, 0.001^2).
  for (size_t k = 0; k < layout_.layers.size(); ++k) {
    const auto& l = layout_.layers[k];
    const double a = std::sqrt(6.0 / double(l.in + l.out));
    CounterRng rng(seed, uint32_t(Stream::Initialisation), uint64_t(k));
    T* w = params_.data() + l.weightOffset;
    const int64_t n = l.in * l.out;
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t i = 0; i < n; ++i) w[i] = T((2.0 * rng.uniformDouble(uint64_t(i)) - 1.0) * a);
    CounterRng brng(seed, uint32_t(Stream::Initialisation), uint64_t(k) + (uint64_t(1) << 20));
    T* b = params_.data() + l.biasOffset;
    for (int64_t i = 0; i < l.out; ++i) b[i] = T(0.001 * brng.normal(uint64_t(i)));
  }
  releaseZeroed(adamM_);  // regrown zeroed by the next ensureOptimizerState
  releaseZeroed(adamV_);
  adamT_ = 0;
  parametersChanged();
}

template <typename T>
void MultVaeCpu<T>::loadBatch(const CsrView& data, const int64_t* rows, int64_t first, int64_t m) {
  PhaseTimer timer(profile_, Profile::Gather);
  input_.load(data, rows, first, m, config_.numItems());
  reserve(m);
  m_ = m;
}

template <typename T>
void MultVaeCpu<T>::sampleNoise(uint64_t seed, uint64_t step) {
  PhaseTimer timer(profile_, Profile::Noise);
  const int64_t m = m_;
  input_.sampleDropout(seed, step, dropoutOf(0), threads_);
  for (int64_t l = 1; l < nLayers_; ++l) {
    const double p = dropoutOf(l);
    if (p <= 0) continue;
    CounterRng rng(seed, hiddenStream(l), step);
    dropoutScales(rng, p, T(1.0 / (1.0 - p)), m * layout_.layers[l].in, masks_[l].data(), threads_);
  }
  if (config_.variational) {
    CounterRng rng(seed, uint32_t(Stream::Reparameterisation), step);
    const int64_t n = m * latent_;
    if constexpr (std::is_same_v<T, float>) {
      normalsInto(rng, eps_.data(), n, threads_);  // the same stream, vector log and cos
    } else {
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (int64_t i = 0; i < n; ++i) eps_[i] = T(rng.normal(uint64_t(i)));
    }
  }
}

template <typename T>
void MultVaeCpu<T>::forward(bool training) {
  refreshBf16Copy();
  training_ = training;
  const int64_t m = m_;
  const T* P = params_.data();
  setBlasThreads(threads_);
  // Scoring one or a few users: every layer but the item output layer is too small to share between
  // threads (waking sleeping OpenMP threads costs more than the work), so they run on this thread.
  const bool fewRows = fusedOutput() && !training && m <= 4;
  const int par = fewRows ? 1 : threads_;

  // Encoder input: x_u / ||x_u||_2, then inverted dropout (training only). Values live on the nnz.
  {
    PhaseTimer timer(profile_, Profile::SparseForward);
    input_.normalise(training, par);
  }

  for (int64_t layer = 0; layer < nLayers_; ++layer) {
    const auto& L = layout_.layers[layer];
    const T* W = P + L.weightOffset;
    const T* b = P + L.biasOffset;
    T* out = acts_[layer].data();
    if (layer == 0) {
      PhaseTimer timer(profile_, Profile::SparseForward);
      // Sparse first layer: A[u, :] = b + sum_{i in row u} input_ui * W[i, :]  (no dense batch x items input).
      input_.forward(W, b, L.out, out, par);
    } else {
      const T* in = layerSource(layer);
      if (training && dropoutOf(layer) > 0) {
        PhaseTimer timer(profile_, Profile::Elementwise);
        T* d = dropped_[layer].data();
        const T* mask = masks_[layer].data();
        forChunks(m * L.in, par, [&](int64_t i0, int64_t i1) { multiplyRange(in + i0, mask + i0, d + i0, i1 - i0); });
        in = d;
      }
      // A = In W + b: [m x in] x [in x out].
      PhaseTimer timer(profile_, layer == nLayers_ - 1 ? Profile::OutputGemm : Profile::Gemm);
      if (fewRows && layer == nLayers_ - 1) {
        // The item output layer: one pass over its weights, packed in contiguous panels, split across threads.
        if (scoringPanelsStale_ || scoringPanels_.width != panelWidth()) {
          packPanels(reinterpret_cast<const float*>(W), L.in, L.out, bf16Output_, scoringPanels_, threads_);
          scoringPanelsStale_ = false;
        }
        panelRowsProduct(reinterpret_cast<const float*>(in), m, scoringPanels_, reinterpret_cast<const float*>(b),
                         reinterpret_cast<float*>(out), threads_);
      } else if (fewRows) {
        smallRowsProduct(reinterpret_cast<const float*>(in), m, L.in, reinterpret_cast<const float*>(W), L.out,
                         reinterpret_cast<const float*>(b), reinterpret_cast<float*>(out), 1);
      } else if (fusedOutput() && layer == nLayers_ - 1) {
        // Logits without the bias: the likelihood kernel adds it (training), or the loop below (evaluation).
        if (bf16Output_) {
          toBf16(reinterpret_cast<const float*>(in), outputInputBf16_.data(), m * L.in);
          matmul_.run(false, false, m, L.out, L.in, outputInputBf16_.data(), outputWeightBf16_.data(),
                      reinterpret_cast<float*>(out), threads_);
        } else {
          gemm(false, false, int(m), int(L.out), int(L.in), T(1), in, int(L.in), W, int(L.out), T(0), out, int(L.out));
        }
        if (!training) {
#pragma omp parallel for schedule(static) num_threads(par)
          for (int64_t u = 0; u < m; ++u) addScaledRange(out + u * L.out, b, T(1), L.out);
        }
      } else {
#pragma omp parallel for schedule(static) num_threads(par)
        for (int64_t u = 0; u < m; ++u) std::memcpy(out + u * L.out, b, size_t(L.out) * sizeof(T));
        gemm(false, false, int(m), int(L.out), int(L.in), T(1), in, int(L.in), W, int(L.out), T(1), out, int(L.out));
      }
    }
    if (hasTanh(layer)) {
      PhaseTimer timer(profile_, Profile::Elementwise);
      tanhForward(out, m * L.out, par);
    }
    if (layer == nEnc_ - 1 && config_.variational) {
      // Reparameterisation: z = mu + eps * exp(logvar / 2) in training, z = mu in evaluation.
      PhaseTimer timer(profile_, Profile::Elementwise);
      const int64_t D = latent_;
#pragma omp parallel for schedule(static) num_threads(par)
      for (int64_t u = 0; u < m; ++u) {
        const T* mu = out + u * 2 * D;
        const T* logvar = mu + D;
        T* z = z_.data() + u * D;
        const T* eps = eps_.data() + u * D;
        for (int64_t d = 0; d < D; ++d) z[d] = training ? mu[d] + eps[d] * std::exp(T(0.5) * logvar[d]) : mu[d];
      }
    }
  }
}

template <typename T>
void MultVaeCpu<T>::forwardEval() {
  forward(false);
}

template <typename T>
StepResult MultVaeCpu<T>::forwardBackward(double beta, double l2, bool deferInputGradient) {
  input_.discardDeferredGradient();  // this step writes every gradient
  const bool defer = std::is_same_v<T, float> && deferInputGradient && l2 == 0;
  forward(true);
  const int64_t m = m_, D = latent_, nItems = config_.numItems();
  const T invM = T(1.0 / double(m));
  T* logits = acts_.back().data();

  // Multinomial likelihood per user: nll_u = n_u * logsumexp(logits_u) - sum_i x_ui logits_ui, n_u = sum_i x_ui.
  // Its gradient, written over the logits: d nll / d logits_ui = (n_u softmax_ui - x_ui) / M.
  {
    PhaseTimer timer(profile_, Profile::Likelihood);
    // Float: bias, logsumexp, likelihood and gradient fused in one SIMD kernel per row (in bf16 mode the
    // gradient is written only as bf16, the input of the two backward matrix products). Double: the
    // forward already added the bias.
    const T* bias = fusedOutput() ? params_.data() + layout_.layers.back().biasOffset : nullptr;
    multinomialLikelihood(logits, bias, nItems, input_, rowNll_.data(), bf16Output_ ? outputGradBf16_.data() : nullptr, threads_);
  }

  // KL(q(z|x) || N(0, I)) per user = 0.5 sum_d (-logvar + exp(logvar) + mu^2 - 1).
  double nll = 0, kl = 0;
  for (int64_t u = 0; u < m; ++u) nll += rowNll_[u];
  nll /= double(m);
  if (config_.variational) kl = gaussianKl<T>(acts_[nEnc_ - 1].data(), m, D, threads_) / double(m);
  double l2sum = 0;
  if (l2 > 0)
    for (const auto& L : layout_.layers)
      for (int64_t i = 0; i < L.in * L.out; ++i) {
        const double w = double(params_[L.weightOffset + i]);
        l2sum += w * w;
      }

  // Backward. `dcur` = gradient of the loss w.r.t. the pre-activation of the current layer.
  {
    PhaseTimer timer(profile_, Profile::Optimizer);
    // Weight gradients are written whole below (matrix products with beta 0, the sparse layer row by
    // row); the bias gradients are sums and start at zero.
    ensureZeroed(grads_, size_t(layout_.total));
    for (const auto& L : layout_.layers) std::fill(grads_.begin() + L.biasOffset, grads_.begin() + L.biasOffset + L.out, T(0));
  }
  T* dcur = logits;
  T* spare[2] = {gradA_.data(), gradB_.data()};
  int next = 0;
  for (int64_t layer = nLayers_ - 1; layer >= 0; --layer) {
    const auto& L = layout_.layers[layer];
    T* dW = grads_.data() + L.weightOffset;
    T* db = grads_.data() + L.biasOffset;
    // db = column sums of dcur (column blocks per thread: deterministic order).
    {
    PhaseTimer timer(profile_, Profile::BiasGradient);
    const bool bf16Grad = bf16Output_ && layer == nLayers_ - 1;
    if (!bf16Grad) {
      columnSums(dcur, m, L.out, db, threads_);
    } else if constexpr (std::is_same_v<T, float>) {
      columnSumsBf16(outputGradBf16_.data(), m, L.out, db, threads_);  // the output layer's gradient exists only in bf16 here
    }
    }
    if (layer == 0) {
      PhaseTimer timer(profile_, Profile::SparseGradient);
      // Sparse weight gradient, by item: dW[i, :] = sum over the batch's clicks (u, i) of input_ui * dcur[u, :],
      // every row written once, deterministic whatever the thread count (layers.h); or left to Adam.
      if (defer) input_.deferWeightGradient(dcur, L.out, dW, threads_);
      else input_.weightGradient(dcur, L.out, dW, threads_);
      break;
    }
    const T* in = (dropoutOf(layer) > 0) ? dropped_[layer].data() : layerSource(layer);
    T* dIn = spare[next];
    next ^= 1;
    {
    const T* W = params_.data() + L.weightOffset;
    // dW = In^T dcur: [in x m] x [m x out].
    PhaseTimer gemmTimer(profile_, layer == nLayers_ - 1 ? Profile::OutputGemm : Profile::Gemm);
    if (bf16Output_ && layer == nLayers_ - 1) {
      // bf16 operands (the forward's converted input, the bf16 gradient, the bf16 weight copy), fp32 results.
      matmul_.run(true, false, L.in, L.out, m, outputInputBf16_.data(), outputGradBf16_.data(), reinterpret_cast<float*>(dW), threads_);
      matmul_.run(false, true, m, L.in, L.out, outputGradBf16_.data(), outputWeightBf16_.data(), reinterpret_cast<float*>(dIn), threads_);
    } else {
      gemm(true, false, int(L.in), int(L.out), int(m), T(1), in, int(L.in), dcur, int(L.out), T(0), dW, int(L.out));
      // dIn = dcur W^T: [m x out] x [out x in].
      gemm(false, true, int(m), int(L.in), int(L.out), T(1), dcur, int(L.out), W, int(L.out), T(0), dIn, int(L.in));
    }
    }
    PhaseTimer elementTimer(profile_, Profile::Elementwise);
    if (dropoutOf(layer) > 0) {
      const T* mask = masks_[layer].data();
      forChunks(m * L.in, threads_, [&](int64_t i0, int64_t i1) { multiplyRange(dIn + i0, mask + i0, dIn + i0, i1 - i0); });
    }
    if (layer == nEnc_ && config_.variational) {
      // Through z = mu + eps * exp(logvar / 2), plus beta * dKL/d(mu, logvar) / M.
      T* dE = spare[next];
      next ^= 1;
      const T* enc = acts_[nEnc_ - 1].data();
      const T b = T(beta) * invM;
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (int64_t u = 0; u < m; ++u) {
        const T* lv = enc + u * 2 * D + D;
        const T* dz = dIn + u * D;
        const T* eps = eps_.data() + u * D;
        T* dmu = dE + u * 2 * D;
        T* dlv = dmu + D;
        for (int64_t d = 0; d < D; ++d) {
          dmu[d] = dz[d];
          dlv[d] = dz[d] * eps[d] * T(0.5) * std::exp(T(0.5) * lv[d]);
        }
      }
      gaussianKlBackward<T>(enc, m, D, dE, b, threads_);  // + beta / M * dKL / d(mu, logvar)
      dcur = dE;
    } else {
      // Through tanh: d pre = d post * (1 - tanh^2).
      const T* act = acts_[layer - 1].data();
      tanhBackwardOf(dIn, act, m * L.in, threads_);
      dcur = dIn;
    }
  }
  if (l2 > 0) {
    for (const auto& L : layout_.layers) {
      const int64_t n = L.in * L.out;
      T* g = grads_.data() + L.weightOffset;
      const T* w = params_.data() + L.weightOffset;
      const T s = T(2.0 * l2);
      forChunks(n, threads_, [&](int64_t i0, int64_t i1) { addScaledRange(g + i0, w + i0, s, i1 - i0); });
    }
  }
  StepResult r;
  r.nll = nll;
  r.kl = kl;
  r.l2 = l2 * l2sum;
  r.loss = nll + beta * kl + r.l2;
  return r;
}

template <typename T>
void MultVaeCpu<T>::optimizerStep(const OptimizerOptions& o) {
  // Adam / AdamW on every parameter (layers.h: adamRange); in bf16 mode the output layer's weights also
  // refresh their bf16 copy. Profiled as "optimizer", but for a deferred input layer's fused pass
  // ("sparse weight gradient (+ its Adam)").
  scoringPanelsStale_ = true;
  refreshBf16Copy();  // Adam keeps it in step from here
  ensureOptimizerState();
  adamT_ += 1;
  T* p = params_.data();
  const T* g = grads_.data();
  T* m = adamM_.data();
  T* v = adamV_.data();
  const int64_t n = layout_.total;
  // Ranges in order; the output layer's weights refresh their bf16 copy (bf16 mode); a deferred input
  // layer's weights take the fused gradient + Adam pass.
  const auto& first = layout_.layers.front();
  const auto& out = layout_.layers.back();
  const int64_t i0 = first.weightOffset, i1 = i0 + first.in * first.out;
  const int64_t w0 = out.weightOffset, w1 = w0 + out.in * out.out;
  auto plain = [&](int64_t a, int64_t b) {
    PhaseTimer timer(profile_, Profile::Optimizer);
    if (b > a) adamRange(p + a, g + a, m + a, v + a, b - a, o, adamT_, threads_);
  };
  auto update = [&](int64_t a, int64_t b) {  // [a, b) around the deferred input weights
    if (!input_.hasDeferredGradient() || b <= i0 || a >= i1) return plain(a, b);
    plain(a, i0);
    if constexpr (std::is_same_v<T, float>) {
      PhaseTimer fused(profile_, Profile::SparseGradient);
      input_.adamOnDeferredGradient(p + i0, m + i0, v + i0, o, adamT_, threads_);
    }
    plain(i1, b);
  };
  if (!bf16Output_) {
    update(0, n);
    return;
  }
  update(0, w0);
  {
    PhaseTimer timer(profile_, Profile::Optimizer);
    adamRange(p + w0, g + w0, m + w0, v + w0, w1 - w0, o, adamT_, threads_, outputWeightBf16_.data());
  }
  update(w1, n);
}

template <typename T>
void MultVaeCpu<T>::ensureOptimizerState() {
  ensureZeroed(grads_, size_t(layout_.total));
  ensureZeroed(adamM_, size_t(layout_.total));
  ensureZeroed(adamV_, size_t(layout_.total));
}

template <typename T>
void MultVaeCpu<T>::setBf16Output(bool on) {
  requireBf16Products<T>(on);
  bf16Output_ = on;
  capacityRows_ = 0;  // re-reserve the bf16 buffers
  scoringPanelsStale_ = bf16CopyStale_ = true;
}

template <typename T>
void MultVaeCpu<T>::parametersChanged() {
  scoringPanelsStale_ = bf16CopyStale_ = true;
  refreshBf16Copy();
}

template <typename T>
void MultVaeCpu<T>::refreshBf16Copy() {
  if constexpr (std::is_same_v<T, float>) {
    if (!bf16Output_ || !bf16CopyStale_) return;
    const auto& out = layout_.layers.back();
    bf16CopyOf(params_.data() + out.weightOffset, out.in * out.out, outputWeightBf16_);
    bf16CopyStale_ = false;
  }
}

template <typename T>
void MultVaeCpu<T>::topK(int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores) {
  input_.topK(acts_.back().data(), k, excludeSeen, candidates, outItems, outScores, threads_);
}

template class MultVaeCpu<float>;
template class MultVaeCpu<double>;

// ---- CpuEngine ----

StepResult CpuEngine::trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
  if (opt.phase != Phase::Joint || opt.gamma != 0)
    throw InvalidArgument("Mult-VAE / Mult-DAE train every parameter in each step with one KL weight (no phases, no gamma)");
  model_.discardDeferredGradient();  // this step writes every gradient again
  model_.loadBatch(data, rows, 0, m);
  model_.sampleNoise(opt.seed, opt.step);
  // With an update the input layer's weight gradient goes straight into Adam (forwardBackward's defer).
  const StepResult r = model_.forwardBackward(opt.beta, opt.l2, opt.update);
  checkFinite(r, opt.step);
  if (opt.update) model_.optimizerStep(opt.optimizer);
  return r;
}

}  // namespace vaecf::cpu
