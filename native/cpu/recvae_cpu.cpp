#include "recvae_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "../core/rng.h"

namespace vaecf::cpu {

RecVaeLayout::RecVaeLayout(const RecVaeConfig& c) {
  c.validate();
  auto dense = [this](int64_t in, int64_t out) {
    Dense d{in, out, total, total + in * out};
    total += in * out + out;
    return d;
  };
  for (int64_t k = 0; k < c.layers; ++k) {
    fc.push_back(dense(k == 0 ? c.items : c.hidden, c.hidden));
    normGain.push_back(total);
    total += c.hidden;
    normShift.push_back(total);
    total += c.hidden;
  }
  head = dense(c.hidden, 2 * c.latent);
  encoderCount = total;
  decoder = dense(c.latent, c.items);
}

std::vector<TensorSpec> parameterTensors(const RecVaeConfig& c) {
  const RecVaeLayout l(c);
  std::vector<TensorSpec> out;
  auto dense = [&out](const std::string& name, const RecVaeLayout::Dense& d) {
    out.push_back({name + ".weight", {d.in, d.out}, d.weight});
    out.push_back({name + ".bias", {d.out}, d.bias});
  };
  for (size_t k = 0; k < l.fc.size(); ++k) {
    dense("encoder.fc" + std::to_string(k), l.fc[k]);
    out.push_back({"encoder.ln" + std::to_string(k) + ".weight", {c.hidden}, l.normGain[k]});
    out.push_back({"encoder.ln" + std::to_string(k) + ".bias", {c.hidden}, l.normShift[k]});
  }
  dense("encoder.head", l.head);
  dense("decoder", l.decoder);
  return out;
}

template <typename T>
RecVaeCpu<T>::RecVaeCpu(const RecVaeConfig& config) : config_(config), layout_(config) {
  for (int k = 0; k < 3; ++k) priorShape_.weights[k] = config.mixtureWeights[k];
  priorShape_.wideLogVar = config.wideLogVar;
  ensureZeroed(params_, size_t(layout_.total));
  ensureZeroed(prior_, size_t(layout_.encoderCount));
}

template <typename T>
void RecVaeCpu<T>::initialize(uint64_t seed) {
  // Tensor t of the encoder draws from stream (Initialisation, t); the prior's encoder from (.., t + 2^16).
  auto fill = [&](T* base, uint64_t tensor0) {
    uint64_t tensor = tensor0;
    auto uniform = [&](int64_t offset, int64_t n, double bound) {
      CounterRng rng(seed, uint32_t(Stream::Initialisation), tensor++);
      T* p = base + offset;
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (int64_t i = 0; i < n; ++i) p[i] = T((2.0 * rng.uniformDouble(uint64_t(i)) - 1.0) * bound);
    };
    auto linear = [&](const RecVaeLayout::Dense& d) {
      const double bound = 1.0 / std::sqrt(double(d.in));
      uniform(d.weight, d.in * d.out, bound);
      uniform(d.bias, d.out, bound);
    };
    for (size_t k = 0; k < layout_.fc.size(); ++k) {
      linear(layout_.fc[k]);
      std::fill(base + layout_.normGain[k], base + layout_.normGain[k] + config_.hidden, T(1));
      std::fill(base + layout_.normShift[k], base + layout_.normShift[k] + config_.hidden, T(0));
    }
    linear(layout_.head);
    return tensor;
  };
  const uint64_t next = fill(params_.data(), 0);
  {
    const double bound = 1.0 / std::sqrt(double(layout_.decoder.in));
    for (int part = 0; part < 2; ++part) {
      CounterRng rng(seed, uint32_t(Stream::Initialisation), next + uint64_t(part));
      T* p = params_.data() + (part ? layout_.decoder.bias : layout_.decoder.weight);
      const int64_t n = part ? layout_.decoder.out : layout_.decoder.in * layout_.decoder.out;
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (int64_t i = 0; i < n; ++i) p[i] = T((2.0 * rng.uniformDouble(uint64_t(i)) - 1.0) * bound);
    }
  }
  fill(prior_.data(), uint64_t(1) << 16);
  ++priorGeneration_;
  releaseZeroed(adamM_);  // regrown zeroed by the next ensureOptimizerState
  releaseZeroed(adamV_);
  encoderSteps_ = decoderSteps_ = 0;
  parametersChanged();
}

template <typename T>
void RecVaeCpu<T>::updatePrior() {
  std::memcpy(prior_.data(), params_.data(), size_t(layout_.encoderCount) * sizeof(T));
  ++priorGeneration_;
}

template <typename T>
void RecVaeCpu<T>::reservePass(EncoderPass& pass, int64_t rows, bool useBf16) {
  const int64_t L = config_.layers, H = config_.hidden;
  pass.hBf16.clear();
  if (useBf16) pass.hBf16.assign(size_t(L), ZeroedVector<bf16>(size_t(rows * H)));
  pass.pre.assign(size_t(L), std::vector<T>(size_t(rows * H)));
  pass.h.assign(size_t(L), std::vector<T>(size_t(rows * H)));
  pass.xhat.assign(size_t(L), std::vector<T>(size_t(rows * H)));
  pass.rstd.assign(size_t(L), std::vector<T>(size_t(rows)));
  pass.act.assign(size_t(rows * H), T(0));
  pass.residual.assign(size_t(rows * H), T(0));
  pass.head.assign(size_t(rows * 2 * config_.latent), T(0));
}

template <typename T>
void RecVaeCpu<T>::reserve(int64_t rows) {
  if (rows <= capacityRows_) return;
  capacityRows_ = rows;
  const int64_t H = config_.hidden, D = config_.latent;
  reservePass(pass_, rows, bf16Products_);
  priorPass_ = EncoderPass();  // allocated by the first training step
  z_.assign(size_t(rows * D), T(0));
  eps_.assign(size_t(rows * D), T(0));
  logits_.assign(size_t(rows * config_.items), T(0));
  dEnc_.assign(size_t(rows * 2 * D), T(0));
  dz_.assign(size_t(rows * D), T(0));
  dh_.assign(size_t(rows * H), T(0));
  dA_.assign(size_t(rows * H), T(0));
  dResidual_.assign(size_t(rows * H), T(0));
  rowNll_.assign(size_t(rows), 0.0);
  klWeight_.assign(size_t(rows), 0.0);
  if (bf16Products_) {
    zBf16_.assign(size_t(rows * D), 0);
    logitsGradBf16_.assign(size_t(rows * config_.items), 0);
    dzDecoder_.assign(size_t(rows * D), T(0));
    gradBf16_.assign(size_t(rows * std::max(H, 2 * D)), 0);
    denseScratch_.assign(size_t(rows * H), T(0));
  }
}

template <typename T>
void RecVaeCpu<T>::loadBatch(const CsrView& data, const int64_t* rows, int64_t first, int64_t m) {
  input_.load(data, rows, first, m, config_.items);
  reserve(m);
  batchRows_.resize(size_t(m));
  for (int64_t u = 0; u < m; ++u) batchRows_[size_t(u)] = rows ? rows[u] : first + u;
  batchDataRows_ = data.rows;
}

// A hash of a loaded row's item indices and click values (one multiply per word): a cached prior head is
// used only for the same clicks. Never 0, the empty mark.
template <typename T>
uint64_t RecVaeCpu<T>::rowHash(int64_t u) const {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  auto mix = [&h](uint64_t x) {
    h = (h ^ x) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  };
  const int64_t b = input_.indptr()[u], e = input_.indptr()[u + 1];
  mix(uint64_t(e - b));
  for (int64_t k = b; k < e; ++k) {
    const double v = double(input_.raw()[k]);
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    mix(uint64_t(uint32_t(input_.indices()[k])));
    mix(bits);
  }
  return h ? h : 1;
}

template <typename T>
void RecVaeCpu<T>::priorHeads() {
  const int64_t m = input_.rows(), D2 = 2 * config_.latent;
  if (priorCacheLimit_ < 0) {
    const char* env = std::getenv("VAECF_RECVAE_PRIOR_CACHE_MIB");
    priorCacheLimit_ = (env && *env ? std::max<int64_t>(0, std::atoll(env)) : 1024) << 20;
  }
  const bool cacheable = double(batchDataRows_) * double(D2) * sizeof(T) <= double(priorCacheLimit_) && priorCacheLimit_ > 0;
  if (!cacheable) {
    priorCacheHead_ = std::vector<T>();
    priorCacheHash_ = std::vector<uint64_t>();
  } else if (cacheGeneration_ != priorGeneration_ || int64_t(priorCacheHash_.size()) != batchDataRows_) {
    priorCacheHash_.assign(size_t(batchDataRows_), 0);  // the heads are written before they are read
    priorCacheHead_.resize(size_t(batchDataRows_ * D2));
    cacheGeneration_ = priorGeneration_;
  }
  std::vector<uint64_t> hashes;
  if (cacheable) {
    hashes.resize(size_t(m));
    bool all = true;
    for (int64_t u = 0; u < m; ++u) {
      hashes[size_t(u)] = rowHash(u);
      all = all && priorCacheHash_[size_t(batchRows_[size_t(u)])] == hashes[size_t(u)];
    }
    if (all) {
      for (int64_t u = 0; u < m; ++u)
        std::memcpy(priorPass_.head.data() + u * D2, priorCacheHead_.data() + batchRows_[size_t(u)] * D2, size_t(D2) * sizeof(T));
      priorCacheHits_ += m;
      return;
    }
  }
  // The prior's encoder sees the clicks without dropout (the authors' encoder_old(x, dropout 0)).
  input_.normalise(false, threads_);
  encoderForward(prior_.data(), priorPass_, threads_, false);
  priorCacheMisses_ += m;
  if (!cacheable) return;
  for (int64_t u = 0; u < m; ++u) {
    const int64_t r = batchRows_[size_t(u)];
    std::memcpy(priorCacheHead_.data() + r * D2, priorPass_.head.data() + u * D2, size_t(D2) * sizeof(T));
    priorCacheHash_[size_t(r)] = hashes[size_t(u)];
  }
}

template <typename T>
void RecVaeCpu<T>::sampleNoise(uint64_t seed, uint64_t step, bool dropout) {
  input_.sampleDropout(seed, step, dropout ? config_.inputDropout : 0.0, threads_);
  CounterRng rng(seed, uint32_t(Stream::Reparameterisation), step);
  const int64_t n = input_.rows() * config_.latent;
  if constexpr (std::is_same_v<T, float>) {
    normalsInto(rng, eps_.data(), n, threads_);  // the same stream, vector log and cos
  } else {
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t i = 0; i < n; ++i) eps_[size_t(i)] = T(rng.normal(uint64_t(i)));
  }
}

template <typename T>
void RecVaeCpu<T>::encoderForward(const T* P, EncoderPass& pass, int threads, bool useBf16) {
  const int64_t m = input_.rows(), H = config_.hidden, L = config_.layers, D = config_.latent;
  if (useBf16) refreshBf16Copy();
  for (int64_t k = 0; k < L; ++k) {
    const auto& fc = layout_.fc[size_t(k)];
    T* pre = pass.pre[size_t(k)].data();
    if (k == 0) {
      input_.forward(P + fc.weight, P + fc.bias, H, pre, threads);  // sparse: only the clicked rows of W_0
    } else {
      // pre_k = h_{k-1} W_k + b_k + (h_0 + ... + h_{k-1})
      std::memcpy(pre, pass.residual.data(), size_t(m * H) * sizeof(T));
      if constexpr (std::is_same_v<T, float>) {
        if (useBf16) {
          denseForwardBf16(matmul_, pass.h[size_t(k - 1)].data(), pass.hBf16[size_t(k - 1)].data(), m, H, encoderWeightBf16(k), P + fc.bias,
                           H, pre, denseScratch_.data(), true, threads);
        } else {
          denseForward(pass.h[size_t(k - 1)].data(), m, H, P + fc.weight, P + fc.bias, H, pre, true, threads);
        }
      } else {
        denseForward(pass.h[size_t(k - 1)].data(), m, H, P + fc.weight, P + fc.bias, H, pre, true, threads);
      }
    }
    swishOf(pre, pass.act.data(), m * H, threads);
    T* h = pass.h[size_t(k)].data();
    layerNormForward(pass.act.data(), m, H, P + layout_.normGain[size_t(k)], P + layout_.normShift[size_t(k)], config_.layerNormEps, h,
                     pass.xhat[size_t(k)].data(), pass.rstd[size_t(k)].data(), threads);
    if (k + 1 < L) {
      if (k == 0) std::memcpy(pass.residual.data(), h, size_t(m * H) * sizeof(T));
      else addInto(pass.residual.data(), h, m * H, threads);
    }
  }
  if constexpr (std::is_same_v<T, float>) {
    if (useBf16) {
      denseForwardBf16(matmul_, pass.h[size_t(L - 1)].data(), pass.hBf16[size_t(L - 1)].data(), m, H, encoderWeightBf16(L),
                       P + layout_.head.bias, 2 * D, pass.head.data(), nullptr, false, threads);
      return;
    }
  }
  denseForward(pass.h[size_t(L - 1)].data(), m, H, P + layout_.head.weight, P + layout_.head.bias, 2 * D, pass.head.data(), false,
               threads);
}

template <typename T>
void RecVaeCpu<T>::encoderBackward(const EncoderPass& pass, T* dHead) {
  const int64_t m = input_.rows(), H = config_.hidden, L = config_.layers;
  const T* P = params_.data();
  T* G = grads_.data();
  // bf16 when the forward pass was (its bf16 inputs are in pass.hBf16).
  const bool useBf16 = !pass.hBf16.empty() && bf16Products_;
  auto dense = [&](int64_t k, const RecVaeLayout::Dense& d, const T* dY) {  // k: the layer whose output h feeds d
    if constexpr (std::is_same_v<T, float>) {
      if (useBf16) {
        denseBackwardBf16(matmul_, pass.hBf16[size_t(k)].data(), dY, gradBf16_.data(), m, H, encoderWeightBf16(&d == &layout_.head ? L : k + 1),
                          d.out, G + d.weight, G + d.bias, dh_.data(), nullptr, false, threads_);
        return;
      }
    }
    denseBackward(pass.h[size_t(k)].data(), dY, m, H, P + d.weight, d.out, G + d.weight, G + d.bias, dh_.data(), false, threads_);
  };
  // Head: dW, db, and dh_last = dHead W_head^T.
  dense(L - 1, layout_.head, dHead);
  // dResidual = sum of dpre_j over the layers above: h_k feeds every later layer's residual sum.
  std::fill(dResidual_.begin(), dResidual_.begin() + m * H, T(0));
  for (int64_t k = L - 1; k >= 0; --k) {
    if (k < L - 1) addInto(dh_.data(), dResidual_.data(), m * H, threads_);
    layerNormBackward(dh_.data(), pass.xhat[size_t(k)].data(), pass.rstd[size_t(k)].data(), P + layout_.normGain[size_t(k)], m, H,
                      dA_.data(), G + layout_.normGain[size_t(k)], G + layout_.normShift[size_t(k)], threads_);
    swishBackwardOf(dA_.data(), pass.pre[size_t(k)].data(), m * H, threads_);  // dA is now dpre_k
    const auto& fc = layout_.fc[size_t(k)];
    if (k == 0) {
      if (deferInput_) input_.deferWeightGradient(dA_.data(), H, G + fc.weight, threads_);  // with Adam in optimizerStep
      else input_.weightGradient(dA_.data(), H, G + fc.weight, threads_);
      columnSums(dA_.data(), m, H, G + fc.bias, threads_);
      break;
    }
    dense(k - 1, fc, dA_.data());
    addInto(dResidual_.data(), dA_.data(), m * H, threads_);
  }
}

template <typename T>
void RecVaeCpu<T>::decoderForward(const T* z, bool withBias, bool fewRows) {
  const int64_t m = input_.rows();
  const auto& dec = layout_.decoder;
  const T* P = params_.data();
  if constexpr (std::is_same_v<T, float>) {
    if (fewRows) {
      // One or a few users: one pass over the decoder's weights packed in contiguous panels.
      if (scoringPanelsStale_ || scoringPanels_.width != panelWidth()) {
        packPanels(P + dec.weight, dec.in, dec.out, bf16Products_, scoringPanels_, threads_);
        scoringPanelsStale_ = false;
      }
      panelRowsProduct(z, m, scoringPanels_, withBias ? P + dec.bias : nullptr, logits_.data(), threads_);
      return;
    }
    if (bf16Products_) {
      refreshBf16Copy();
      // logits = z W_dec in bf16 (fp32 accumulation and output); zBf16_ is kept for dW_dec.
      toBf16(z, zBf16_.data(), m * dec.in);
      matmul_.run(false, false, m, dec.out, dec.in, zBf16_.data(), decoderWeightBf16_.data(), logits_.data(), threads_);
      if (withBias) {
#pragma omp parallel for schedule(static) num_threads(threads_)
        for (int64_t u = 0; u < m; ++u) addScaled(logits_.data() + u * dec.out, P + dec.bias, 1.0f, dec.out);
      }
      return;
    }
  }
  denseForward(z, m, dec.in, P + dec.weight, withBias ? P + dec.bias : nullptr, dec.out, logits_.data(), false, threads_);
}

template <typename T>
StepResult RecVaeCpu<T>::forwardBackward(Phase phase, double beta, double gamma, bool deferInputGradient) {
  input_.discardDeferredGradient();  // this step writes every gradient
  deferInput_ = std::is_same_v<T, float> && deferInputGradient;
  const int64_t m = input_.rows(), D = config_.latent, I = config_.items;
  const bool encoder = phase != Phase::Decoder, decoder = phase != Phase::Encoder;
  ensureZeroed(grads_, size_t(layout_.total));
  StepResult r;
  if (encoder) {
    if (priorPass_.head.size() < size_t(m * 2 * D)) reservePass(priorPass_, capacityRows_, false);
    priorHeads();
  }
  input_.normalise(encoder, threads_);
  encoderForward(params_.data(), pass_, threads_, bf16Products_);
  // z = mu + eps * exp(logvar / 2)
  const T* enc = pass_.head.data();
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int64_t u = 0; u < m; ++u)
    for (int64_t d = 0; d < D; ++d)
      z_[size_t(u * D + d)] = enc[u * 2 * D + d] + eps_[size_t(u * D + d)] * std::exp(T(0.5) * enc[u * 2 * D + D + d]);
  // Logits without the bias; the likelihood adds it and leaves d(mean nll)/d logits in logits_.
  decoderForward(z_.data(), false, false);
  const auto& dec = layout_.decoder;
  // In bf16 the gradient is written only as bf16: the input of the two backward products.
  multinomialLikelihood(logits_.data(), params_.data() + dec.bias, I, input_, rowNll_.data(),
                        bf16Products_ ? logitsGradBf16_.data() : nullptr, threads_);
  for (int64_t u = 0; u < m; ++u) r.nll += rowNll_[size_t(u)];
  r.nll /= double(m);
  T* G = grads_.data();
  if (decoder) {
    if (bf16Products_) {
      if constexpr (std::is_same_v<T, float>) {
        // dW_dec = z^T dlogits [D x items]; db_dec = column sums of the bf16 gradient (column blocks, rows in order).
        matmul_.run(true, false, D, I, m, zBf16_.data(), logitsGradBf16_.data(), G + dec.weight, threads_);
        columnSumsBf16(logitsGradBf16_.data(), m, I, G + dec.bias, threads_);
      }
    } else {
      denseBackward<T>(z_.data(), logits_.data(), m, D, params_.data() + dec.weight, I, G + dec.weight, G + dec.bias, nullptr, false, threads_);
    }
  }
  if (encoder) {
    for (int64_t u = 0; u < m; ++u) klWeight_[size_t(u)] = gamma > 0 ? gamma * input_.clickSum(u) : beta;
    std::fill(dz_.begin(), dz_.begin() + m * D, T(0));
    std::fill(dEnc_.begin(), dEnc_.begin() + m * 2 * D, T(0));
    const T invM = T(1.0 / double(m));
    r.kl = compositePriorKl(enc, priorPass_.head.data(), z_.data(), m, D, klWeight_.data(), priorShape_, dz_.data(), dEnc_.data(), invM,
                            threads_) / double(m);
    // dz += dlogits W_dec^T, then through z = mu + eps exp(logvar / 2).
    if (bf16Products_) {
      if constexpr (std::is_same_v<T, float>) {
        matmul_.run(false, true, m, D, I, logitsGradBf16_.data(), decoderWeightBf16_.data(), dzDecoder_.data(), threads_);
        addInto(dz_.data(), dzDecoder_.data(), m * D, threads_);
      }
    } else {
      denseBackward<T>(z_.data(), logits_.data(), m, D, params_.data() + dec.weight, I, nullptr, nullptr, dz_.data(), true, threads_);
    }
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int64_t u = 0; u < m; ++u)
      for (int64_t d = 0; d < D; ++d) {
        const T g = dz_[size_t(u * D + d)];
        dEnc_[size_t(u * 2 * D + d)] += g;
        dEnc_[size_t(u * 2 * D + D + d)] += g * eps_[size_t(u * D + d)] * T(0.5) * std::exp(T(0.5) * enc[u * 2 * D + D + d]);
      }
    encoderBackward(pass_, dEnc_.data());
  }
  r.loss = r.nll + r.kl;
  return r;
}

template <typename T>
void RecVaeCpu<T>::forwardEval() {
  const int64_t m = input_.rows(), D = config_.latent;
  // Scoring one or a few users: the small layers run on this thread (waking OpenMP threads costs more).
  const bool fewRows = std::is_same_v<T, float> && m <= 4;
  input_.normalise(false, fewRows ? 1 : threads_);
  // The encoder in fp32 here, for any number of users: scoring one user alone then agrees with scoring
  // the batch (the decoder's bf16 panels and its bf16 product have the same operands); bf16 encoder
  // products are a training speed-up.
  encoderForward(params_.data(), pass_, fewRows ? 1 : threads_, false);
  for (int64_t u = 0; u < m; ++u) std::memcpy(z_.data() + u * D, pass_.head.data() + u * 2 * D, size_t(D) * sizeof(T));  // z = mu
  decoderForward(z_.data(), true, fewRows);
}

template <typename T>
void RecVaeCpu<T>::ensureOptimizerState() {
  ensureZeroed(grads_, size_t(layout_.total));
  ensureZeroed(adamM_, size_t(layout_.total));
  ensureZeroed(adamV_, size_t(layout_.total));
}

template <typename T>
void RecVaeCpu<T>::optimizerStep(Phase phase, const OptimizerOptions& options) {
  ensureOptimizerState();
  scoringPanelsStale_ = true;
  const int64_t split = layout_.encoderCount;
  refreshBf16Copy();  // Adam keeps the bf16 copies in step from here
  T *p = params_.data(), *m = adamM_.data(), *v = adamV_.data();
  const T* g = grads_.data();
  // Adam over [begin, end) with step t; in bf16 mode the weights that have a bf16 copy refresh it as
  // they are updated (`copies`: offset, count, copy; in order).
  struct Copy {
    int64_t offset, count;
    bf16* copy;
  };
  // [a, b) without a copy: around a deferred input layer, whose weights take the fused gradient + Adam pass.
  const int64_t i0 = layout_.fc[0].weight, i1 = i0 + layout_.fc[0].in * layout_.fc[0].out;
  auto plain = [&](int64_t a, int64_t b, int64_t t) {
    if (b <= a) return;
    if (!input_.hasDeferredGradient() || b <= i0 || a >= i1) return adamRange(p + a, g + a, m + a, v + a, b - a, options, t, threads_);
    if (i0 > a) adamRange(p + a, g + a, m + a, v + a, i0 - a, options, t, threads_);
    input_.adamOnDeferredGradient(p + i0, m + i0, v + i0, options, t, threads_);
    if (b > i1) adamRange(p + i1, g + i1, m + i1, v + i1, b - i1, options, t, threads_);
  };
  auto adam = [&](int64_t begin, int64_t end, int64_t t, const std::vector<Copy>& copies) {
    int64_t at = begin;
    for (const Copy& c : copies) {
      plain(at, c.offset, t);
      adamRange(p + c.offset, g + c.offset, m + c.offset, v + c.offset, c.count, options, t, threads_, c.copy);
      at = c.offset + c.count;
    }
    plain(at, end, t);
  };
  std::vector<Copy> encoderCopies, decoderCopies;
  if (bf16Products_) {
    for (size_t k = 1; k < layout_.fc.size(); ++k)
      encoderCopies.push_back({layout_.fc[k].weight, layout_.fc[k].in * layout_.fc[k].out, encoderWeightsBf16_[k].data()});
    encoderCopies.push_back({layout_.head.weight, layout_.head.in * layout_.head.out, encoderWeightsBf16_[layout_.fc.size()].data()});
    decoderCopies.push_back({layout_.decoder.weight, layout_.decoder.in * layout_.decoder.out, decoderWeightBf16_.data()});
  }
  if (phase != Phase::Decoder) adam(0, split, ++encoderSteps_, encoderCopies);
  if (phase != Phase::Encoder) adam(split, layout_.total, ++decoderSteps_, decoderCopies);
}

template <typename T>
void RecVaeCpu<T>::setBf16Products(bool on) {
  requireBf16Products<T>(on);
  bf16Products_ = on;
  capacityRows_ = 0;  // re-reserve with the bf16 buffers
  scoringPanelsStale_ = bf16CopyStale_ = true;
}

template <typename T>
void RecVaeCpu<T>::parametersChanged() {
  scoringPanelsStale_ = bf16CopyStale_ = true;
  refreshBf16Copy();
}

template <typename T>
void RecVaeCpu<T>::refreshBf16Copy() {
  if constexpr (std::is_same_v<T, float>) {
    if (!bf16Products_ || !bf16CopyStale_) return;
    auto copy = [&](const RecVaeLayout::Dense& d, ZeroedVector<bf16>& out) { bf16CopyOf(params_.data() + d.weight, d.in * d.out, out); };
    copy(layout_.decoder, decoderWeightBf16_);
    encoderWeightsBf16_.resize(layout_.fc.size() + 1);
    for (size_t k = 1; k < layout_.fc.size(); ++k) copy(layout_.fc[k], encoderWeightsBf16_[k]);
    copy(layout_.head, encoderWeightsBf16_[layout_.fc.size()]);
    bf16CopyStale_ = false;
  }
}

template <typename T>
void RecVaeCpu<T>::topK(int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores) {
  input_.topK(logits_.data(), k, excludeSeen, candidates, outItems, outScores, threads_);
}

template class RecVaeCpu<float>;
template class RecVaeCpu<double>;

// ---- RecVaeEngine ----

StepResult RecVaeEngine::trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
  model_.discardDeferredGradient();  // this step writes every gradient again
  model_.loadBatch(data, rows, 0, m);
  model_.sampleNoise(opt.seed, opt.step, opt.phase != Phase::Decoder);
  // With an update the input layer's weight gradient goes straight into Adam (forwardBackward's defer).
  const StepResult r = model_.forwardBackward(opt.phase, opt.beta, opt.gamma, opt.update);
  checkFinite(r, opt.step);
  if (opt.update) model_.optimizerStep(opt.phase, opt.optimizer);
  return r;
}

void RecVaeEngine::setOptimizerGroupSteps(const std::vector<int64_t>& steps) {
  if (steps.size() != 2 || steps[0] < 0 || steps[1] < 0)
    throw InvalidArgument("RecVAE keeps two optimizer step counts (encoder, decoder), each >= 0");
  model_.encoderSteps() = steps[0];
  model_.decoderSteps() = steps[1];
}
void RecVaeEngine::getAuxiliary(float* out) const {
  std::memcpy(out, model_.priorParameters(), size_t(model_.numEncoderParams()) * sizeof(float));
}
void RecVaeEngine::setAuxiliary(const float* in) {
  std::memcpy(model_.priorParameters(), in, size_t(model_.numEncoderParams()) * sizeof(float));
}

}  // namespace vaecf::cpu
