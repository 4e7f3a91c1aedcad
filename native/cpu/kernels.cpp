#include "kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vaecf::cpu {

bf16 toBf16Scalar(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return bf16(0x7fc0);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);                        // round to nearest even
  return bf16(bits >> 16);
}

double likelihoodRowScalar(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                           float invM, float* gradF32, bf16* gradBf16) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < items; ++i) {
    row[i] += bias[i];
    mx = row[i] > mx ? row[i] : mx;
  }
  double n = 0, dot = 0;
  for (int64_t k = 0; k < clicks; ++k) {
    n += double(x[k]);
    dot += double(x[k]) * double(row[idx[k]]);
  }
  double sum = 0;
  for (int64_t i = 0; i < items; ++i) {
    row[i] = std::exp(row[i] - mx);
    sum += double(row[i]);
  }
  const double nll = n * (double(mx) + std::log(sum)) - dot;
  // grad_i = (n e_i / sum - x_i) / M = (e_i - x_i sum / n) * (n / sum / M)
  const float shift = float(sum / n);
  for (int64_t k = 0; k < clicks; ++k) row[idx[k]] -= x[k] * shift;
  const float scale = float(n / sum) * invM;
  for (int64_t i = 0; i < items; ++i) {
    const float g = row[i] * scale;
    if (gradF32) gradF32[i] = g;
    if (gradBf16) gradBf16[i] = toBf16Scalar(g);
  }
  return nll;
}

void adamScalar(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16) {
  for (int64_t i = 0; i < n; ++i) {
    float gi = g ? g[i] : 0.0f;
    if (s.coupled) gi += s.decay * p[i];
    if (s.decoupled) p[i] *= s.shrink;
    m[i] = s.b1 * m[i] + (1.0f - s.b1) * gi;
    v[i] = s.b2 * v[i] + (1.0f - s.b2) * gi * gi;
    p[i] -= s.stepSize * m[i] / (std::sqrt(v[i]) / s.bc2Sqrt + s.eps);
    if (pBf16) pBf16[i] = toBf16Scalar(p[i]);
  }
}

namespace {

#define VAECF_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

VAECF_AVX512 inline __m512 exp512(__m512 x) {
  // exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (Cody-Waite), Cephes' degree-6 polynomial.
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

VAECF_AVX512 inline void storeBf16(bf16* out, __m512 v, __mmask16 mask) {
  const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
  _mm256_mask_storeu_epi16(out, mask, h);
}

VAECF_AVX512 double likelihoodRowAvx512(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x,
                                        int64_t clicks, float invM, float* gradF32, bf16* gradBf16) {
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < items; i += 16) {
    const __mmask16 mask = items - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (items - i)) - 1);
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row + i), _mm512_maskz_loadu_ps(mask, bias + i));
    _mm512_mask_storeu_ps(row + i, mask, v);
    vmax = _mm512_mask_max_ps(vmax, mask, vmax, v);
  }
  const float mx = _mm512_reduce_max_ps(vmax);
  double n = 0, dot = 0;
  for (int64_t k = 0; k < clicks; ++k) {
    n += double(x[k]);
    dot += double(x[k]) * double(row[idx[k]]);
  }
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t i = 0; i < items; i += 16) {
    const __mmask16 mask = items - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (items - i)) - 1);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + i), vmx));
    _mm512_mask_storeu_ps(row + i, mask, e);
    vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(mask, e));
  }
  const double sum = double(_mm512_reduce_add_ps(vsum));
  const double nll = n * (double(mx) + std::log(sum)) - dot;
  const float shift = float(sum / n);
  for (int64_t k = 0; k < clicks; ++k) row[idx[k]] -= x[k] * shift;
  const __m512 scale = _mm512_set1_ps(float(n / sum) * invM);
  for (int64_t i = 0; i < items; i += 16) {
    const __mmask16 mask = items - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (items - i)) - 1);
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + i), scale);
    if (gradF32) _mm512_mask_storeu_ps(gradF32 + i, mask, g);
    if (gradBf16) storeBf16(gradBf16 + i, g, mask);
  }
  return nll;
}

VAECF_AVX512 void toBf16Avx512(const float* in, bf16* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    storeBf16(out + i, _mm512_maskz_loadu_ps(mask, in + i), mask);
  }
}

VAECF_AVX512 void adamAvx512(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16) {
  const __m512 b1 = _mm512_set1_ps(s.b1), b2 = _mm512_set1_ps(s.b2);
  const __m512 c1 = _mm512_set1_ps(1.0f - s.b1), c2 = _mm512_set1_ps(1.0f - s.b2);
  const __m512 step = _mm512_set1_ps(s.stepSize), eps = _mm512_set1_ps(s.eps), bc2 = _mm512_set1_ps(s.bc2Sqrt);
  const __m512 decay = _mm512_set1_ps(s.decay), shrink = _mm512_set1_ps(s.shrink);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 pi = _mm512_maskz_loadu_ps(mask, p + i);
    __m512 gi = g ? _mm512_maskz_loadu_ps(mask, g + i) : _mm512_setzero_ps();
    if (s.coupled) gi = _mm512_fmadd_ps(decay, pi, gi);
    if (s.decoupled) pi = _mm512_mul_ps(pi, shrink);
    const __m512 mi = _mm512_fmadd_ps(b1, _mm512_maskz_loadu_ps(mask, m + i), _mm512_mul_ps(c1, gi));
    const __m512 vi = _mm512_fmadd_ps(b2, _mm512_maskz_loadu_ps(mask, v + i), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    pi = _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(step, mi), denom));
    _mm512_mask_storeu_ps(m + i, mask, mi);
    _mm512_mask_storeu_ps(v + i, mask, vi);
    _mm512_mask_storeu_ps(p + i, mask, pi);
    if (pBf16) storeBf16(pBf16 + i, pi, mask);
  }
}

// M rows x 64 columns of y = x W + bias starting at column c0 (of n): the column masks of a ragged last
// block, 4 M accumulators started at the bias (kept in registers by the kernels below), the masked store.
template <int M>
struct Block64 {
  __m512 acc[M][4];
  __mmask16 mask[4];
  VAECF_AVX512 Block64(const float* bias, int64_t n, int64_t c0) {
    for (int j = 0; j < 4; ++j) {
      const int64_t left = n - (c0 + 16 * j);
      mask[j] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
      const __m512 b = _mm512_maskz_loadu_ps(mask[j], bias + c0 + 16 * j);
      for (int u = 0; u < M; ++u) acc[u][j] = b;
    }
  }
  VAECF_AVX512 void store(float* y, int64_t n, int64_t c0) const {
    for (int u = 0; u < M; ++u)
      for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(y + u * n + c0 + 16 * j, mask[j], acc[u][j]);
  }
};

template <int M>
VAECF_AVX512 void smallRowsBlock(const float* x, int64_t k, const float* W, int64_t n, const float* bias, float* y, int64_t c0, int64_t c1) {
  // 64 columns per step: 4 vectors per row of x, M rows: 4 M accumulators.
  for (int64_t c = c0; c < c1; c += 64) {
    Block64<M> blk(bias, n, c);
    for (int64_t i = 0; i < k; ++i) {
      __m512 w[4];
      for (int j = 0; j < 4; ++j) w[j] = _mm512_maskz_loadu_ps(blk.mask[j], W + i * n + c + 16 * j);
      for (int u = 0; u < M; ++u) {
        const __m512 xi = _mm512_set1_ps(x[u * k + i]);
        for (int j = 0; j < 4; ++j) blk.acc[u][j] = _mm512_fmadd_ps(xi, w[j], blk.acc[u][j]);
      }
    }
    blk.store(y, n, c);
  }
}

template <int M>
void smallRowsDispatch(const float* x, int64_t k, const float* W, int64_t n, const float* bias, float* y, int threads) {
  const int64_t blocks = (n + 63) / 64;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < blocks; ++b) smallRowsBlock<M>(x, k, W, n, bias, y, b * 64, b * 64 + 64);
}

// Software prefetch 4 KiB ahead of the panel stream, into all cache levels: measured with
// `vaecf_harness latency` (bf16: 0.84 ms without, 0.72 ms with; a non-temporal hint evicts the weights
// from the last-level cache between calls and takes 2.6 ms).
constexpr int64_t kPanelPrefetchBytes = 4096;
// One panel of 64 columns (c0 = its first column) for M rows: 4 accumulators per row stay in registers
// while the panel streams through once.
template <int M>
VAECF_AVX512 void panelBf16(const uint32_t* xPairs, int64_t pairs, const bf16* panel, const float* bias, float* y, int64_t n,
                            int64_t c0) {
  Block64<M> blk(bias, n, c0);
  for (int64_t q = 0; q < pairs; ++q) {
    const bf16* w = panel + q * 128;
    for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + kPanelPrefetchBytes / 2 + 32 * j), _MM_HINT_T0);
    __m512bh wv[4];
    for (int j = 0; j < 4; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(w + 32 * j);
    for (int u = 0; u < M; ++u) {
      // (x[2q], x[2q + 1]) as one 32-bit pair, broadcast: acc_c += x[2q] W[2q, c] + x[2q + 1] W[2q + 1, c].
      const __m512bh xq = (__m512bh)_mm512_set1_epi32(int(xPairs[u * pairs + q]));
      for (int j = 0; j < 4; ++j) blk.acc[u][j] = _mm512_dpbf16_ps(blk.acc[u][j], wv[j], xq);
    }
  }
  blk.store(y, n, c0);
}

template <int M>
VAECF_AVX512 void panelF32(const float* x, int64_t k, const float* panel, const float* bias, float* y, int64_t n, int64_t c0) {
  Block64<M> blk(bias, n, c0);
  for (int64_t i = 0; i < k; ++i) {
    const float* w = panel + i * 64;
    for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + kPanelPrefetchBytes / 4 + 16 * j), _MM_HINT_T0);
    __m512 wv[4];
    for (int j = 0; j < 4; ++j) wv[j] = _mm512_loadu_ps(w + 16 * j);
    for (int u = 0; u < M; ++u) {
      const __m512 xi = _mm512_set1_ps(x[u * k + i]);
      for (int j = 0; j < 4; ++j) blk.acc[u][j] = _mm512_fmadd_ps(xi, wv[j], blk.acc[u][j]);
    }
  }
  blk.store(y, n, c0);
}

template <int M>
void panelDispatch(const float* x, const uint32_t* xPairs, const PackedPanels& W, const float* bias, float* y, int threads) {
  const int64_t panels = W.panels(), pairs = (W.k + 1) / 2;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < panels; ++p) {
    if (W.isBf16) panelBf16<M>(xPairs, pairs, W.halves.data() + p * pairs * 128, bias, y, W.n, p * 64);
    else panelF32<M>(x, W.k, W.floats.data() + p * W.k * 64, bias, y, W.n, p * 64);
  }
}

}  // namespace

void smallRowsProduct(const float* x, int64_t m, int64_t k, const float* W, int64_t n, const float* bias, float* y, int threads) {
  switch (m) {
    case 1: smallRowsDispatch<1>(x, k, W, n, bias, y, threads); break;
    case 2: smallRowsDispatch<2>(x, k, W, n, bias, y, threads); break;
    case 3: smallRowsDispatch<3>(x, k, W, n, bias, y, threads); break;
    case 4: smallRowsDispatch<4>(x, k, W, n, bias, y, threads); break;
    default: throw std::invalid_argument("smallRowsProduct: at most 4 rows");
  }
}

void packPanels(const float* W, int64_t k, int64_t n, bool useBf16, PackedPanels& out, int threads) {
  out.k = k;
  out.n = n;
  out.isBf16 = useBf16;
  const int64_t panels = (n + 63) / 64, pairs = (k + 1) / 2;
  if (useBf16) {
    out.floats = {};
    out.halves.assign(size_t(panels * pairs * 128), 0);
  } else {
    out.halves = {};
    out.floats.assign(size_t(panels * k * 64), 0.0f);
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t c0 = p * 64, width = std::min<int64_t>(64, n - c0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < width; ++c) {
        const float w = W[i * n + c0 + c];
        if (useBf16) out.halves[size_t(((p * pairs + i / 2) * 64 + c) * 2 + (i % 2))] = toBf16Scalar(w);
        else out.floats[size_t((p * k + i) * 64 + c)] = w;
      }
  }
}

void panelRowsProduct(const float* x, int64_t m, const PackedPanels& W, const float* bias, float* y, int threads) {
  if (m < 1 || m > 4) throw std::invalid_argument("panelRowsProduct: 1 to 4 rows");
  // bf16: each row of x as pairs of bf16 (x[2q] in the low half), zero-padded to an even length.
  std::vector<uint32_t> pairs;
  if (W.isBf16) {
    const int64_t np = (W.k + 1) / 2;
    pairs.assign(size_t(m * np), 0);
    for (int64_t u = 0; u < m; ++u)
      for (int64_t i = 0; i < W.k; ++i) pairs[size_t(u * np + i / 2)] |= uint32_t(toBf16Scalar(x[u * W.k + i])) << (16 * (i % 2));
  }
  switch (m) {
    case 1: panelDispatch<1>(x, pairs.data(), W, bias, y, threads); break;
    case 2: panelDispatch<2>(x, pairs.data(), W, bias, y, threads); break;
    case 3: panelDispatch<3>(x, pairs.data(), W, bias, y, threads); break;
    default: panelDispatch<4>(x, pairs.data(), W, bias, y, threads); break;
  }
}

bool avx512Available() {
  static const bool ok = !(std::getenv("VAECF_DISABLE_AVX512") && std::string(std::getenv("VAECF_DISABLE_AVX512")) == "1") &&
                         __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bf16");
  return ok;
}

double likelihoodRow(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                     float invM, float* gradF32, bf16* gradBf16) {
  return avx512Available() ? likelihoodRowAvx512(row, bias, items, idx, x, clicks, invM, gradF32, gradBf16)
                           : likelihoodRowScalar(row, bias, items, idx, x, clicks, invM, gradF32, gradBf16);
}

void toBf16(const float* in, bf16* out, int64_t n) {
  if (avx512Available()) toBf16Avx512(in, out, n);
  else
    for (int64_t i = 0; i < n; ++i) out[i] = toBf16Scalar(in[i]);
}

void adamUpdate(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16) {
  if (avx512Available()) adamAvx512(p, g, m, v, n, s, pBf16);
  else adamScalar(p, g, m, v, n, s, pBf16);
}

}  // namespace vaecf::cpu
