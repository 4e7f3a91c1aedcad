// The CPU engine's vector kernels, written once against Google Highway and compiled for every target
// of the architecture (foreach_target.h re-includes this file once per target, each in its own
// namespace N_<TARGET>). Dispatch is ours (the HWY_ONCE part at the end): the processor's features
// are read here, so the engine needs Highway's headers only, never libhwy at run time.
#include "cpu/kernels.h"

#include "cpu/platform.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#elif defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef VAECF_KERNEL_TABLE_DEFINED
#define VAECF_KERNEL_TABLE_DEFINED
namespace vaecf::cpu {
// One target's kernels. The per-row products work on one row of x and one block of up to `blockWidth`
// columns (four vectors); the threading over blocks is the caller's.
struct KernelTable {
  double (*likelihoodRow)(float*, const float*, int64_t, const int32_t*, const float*, int64_t, float, float*, bf16*);
  void (*toBf16)(const float*, bf16*, int64_t);
  void (*adam)(float*, const float*, float*, float*, int64_t, const AdamStep&, bf16*);
  void (*tanhInPlace)(float*, int64_t);
  void (*tanhBackward)(float*, const float*, int64_t);
  void (*swishForward)(const float*, float*, int64_t);
  void (*swishBackward)(float*, const float*, int64_t);
  void (*multiply)(const float*, const float*, float*, int64_t);
  void (*addScaled)(float*, const float*, float, int64_t);
  void (*addBf16)(float*, const bf16*, int64_t);
  float (*sum)(const float*, int64_t);
  void (*sparseRow)(float*, const float*, int64_t, const int32_t*, const float*, int64_t);
  float (*layerNormRow)(const float*, int64_t, const float*, const float*, float, float*, float*);
  void (*layerNormBackwardRow)(const float*, const float*, const float*, float, int64_t, float*);
  void (*addProduct)(float*, const float*, const float*, int64_t);
  void (*boxMuller)(const double*, const double*, int64_t, float*);
  void (*philoxWords)(uint64_t, uint64_t, uint32_t, uint32_t, int64_t, uint32_t*, uint32_t*, uint32_t*, uint32_t*);
  // y[0..cols) = bias[0..cols) + sum_i x[i] W[i * stride + 0..cols): W row-major (stride n) or an fp32 panel
  // (stride = blockWidth); cols <= blockWidth.
  void (*rowBlockF32)(const float* x, int64_t k, const float* W, int64_t stride, const float* bias, float* y, int64_t cols);
  // The same over a bf16 panel: xPairs holds x rounded to bf16, two per 32-bit word.
  void (*rowBlockBf16)(const uint32_t* xPairs, int64_t pairs, const bf16* panel, const float* bias, float* y, int64_t cols);
  int64_t (*firstAbove)(const float* x, int64_t n, float threshold);
  double (*compositePriorKlRow)(const float*, const float*, const float*, int64_t, const CompositePriorConstants&, double, float*, float*);
  int64_t blockWidth;
};
}  // namespace vaecf::cpu
#endif

// Not compiled: the fixed-width SVE variants (they need the vector length checked at run time; the
// scalable SVE target covers those processors).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE_256 | HWY_SVE2_128)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace vaecf::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using DU = hn::RebindToUnsigned<DF>;
using DI = hn::RebindToSigned<DF>;
using D16 = hn::Rebind<uint16_t, DF>;

// Loads `count` <= Lanes elements (the rest `fill`) without reading past p + count: full vectors load
// directly, a row's ragged tail goes through a stack buffer.
template <class D, typename T>
HWY_INLINE hn::Vec<D> LoadCount(D d, const T* HWY_RESTRICT p, size_t count, T fill = T(0)) {
  if (HWY_LIKELY(count == hn::Lanes(d))) return hn::LoadU(d, p);
  HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)];
  for (size_t i = 0; i < hn::Lanes(d); ++i) buf[i] = i < count ? p[i] : fill;
  return hn::Load(d, buf);
}
template <class D, typename T>
HWY_INLINE void StoreCount(hn::Vec<D> v, D d, T* HWY_RESTRICT p, size_t count) {
  if (HWY_LIKELY(count == hn::Lanes(d))) return hn::StoreU(v, d, p);
  HWY_ALIGN T buf[HWY_MAX_BYTES / sizeof(T)];
  hn::Store(v, d, buf);
  std::memcpy(p, buf, count * sizeof(T));
}

// Round to nearest even, as toBf16Scalar: bits + 0x7fff + (bit 16), NaN to the quiet NaN 0x7fc0.
HWY_INLINE void StoreBf16(hn::Vec<DF> v, bf16* HWY_RESTRICT out, size_t count) {
  const DF d;
  const DU du;
  const DI di;
  const D16 d16;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  auto half = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(du, 0x7fffu), lsb)));
  half = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Set(du, 0x7fc0u), half);
  // Every lane is < 2^16: the saturating narrowing is exact.
  StoreCount(hn::DemoteTo(d16, hn::BitCast(di, half)), d16, out, count);
  (void)d;
}

HWY_INLINE hn::Vec<DF> LoadBf16(const bf16* HWY_RESTRICT p, size_t count) {
  const DF d;
  const DU du;
  const D16 d16;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, LoadCount(d16, p, count))));
}

// Calls body(i, count) for the vectors of [0, n): count = Lanes except for a ragged last one.
template <class Body>
HWY_INLINE void ForEachVector(int64_t n, const Body& body) {
  const DF d;
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) body(i, size_t(N));
  if (i < n) body(i, size_t(n - i));
}

double LikelihoodRow(float* HWY_RESTRICT row, const float* HWY_RESTRICT bias, int64_t items, const int32_t* idx, const float* x,
                     int64_t clicks, float invM, float* gradF32, bf16* gradBf16) {
  const DF d;
  // Pass 1: row += bias, running maximum.
  auto vmax = hn::Set(d, -INFINITY);
  ForEachVector(items, [&](int64_t i, size_t c) {
    const auto v = hn::Add(LoadCount(d, row + i, c, -INFINITY), LoadCount(d, bias + i, c));
    StoreCount(v, d, row + i, c);
    vmax = hn::Max(vmax, v);
  });
  const float mx = hn::GetLane(hn::MaxOfLanes(d, vmax));
  double n = 0, dot = 0;
  for (int64_t k = 0; k < clicks; ++k) {
    n += double(x[k]);
    dot += double(x[k]) * double(row[idx[k]]);
  }
  // Pass 2: e_i = exp(row_i - max) over the row, their sum (two accumulators: exp is long).
  const auto vmx = hn::Set(d, mx);
  auto sum0 = hn::Zero(d), sum1 = hn::Zero(d);
  bool odd = false;
  ForEachVector(items, [&](int64_t i, size_t c) {
    auto e = hn::Exp(d, hn::Sub(LoadCount(d, row + i, c, -INFINITY), vmx));
    e = hn::IfThenElseZero(hn::FirstN(d, c), e);
    StoreCount(e, d, row + i, c);
    if (odd) sum1 = hn::Add(sum1, e);
    else sum0 = hn::Add(sum0, e);
    odd = !odd;
  });
  const double sum = double(hn::GetLane(hn::SumOfLanes(d, hn::Add(sum0, sum1))));
  const double nll = n * (double(mx) + std::log(sum)) - dot;
  // grad_i = (n e_i / sum - x_i) / M = (e_i - x_i sum / n) * (n / sum / M)
  const float shift = float(sum / n);
  for (int64_t k = 0; k < clicks; ++k) row[idx[k]] -= x[k] * shift;
  const auto scale = hn::Set(d, float(n / sum) * invM);
  ForEachVector(items, [&](int64_t i, size_t c) {
    const auto g = hn::Mul(LoadCount(d, row + i, c), scale);
    if (gradF32) StoreCount(g, d, gradF32 + i, c);
    if (gradBf16) StoreBf16(g, gradBf16 + i, c);
  });
  return nll;
}

void ToBf16(const float* HWY_RESTRICT in, bf16* HWY_RESTRICT out, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) { StoreBf16(LoadCount(d, in + i, c), out + i, c); });
}

void Adam(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT v, int64_t n,
          const AdamStep& s, bf16* HWY_RESTRICT pBf16) {
  const DF d;
  const auto b1 = hn::Set(d, s.b1), b2 = hn::Set(d, s.b2), c1 = hn::Set(d, 1.0f - s.b1), c2 = hn::Set(d, 1.0f - s.b2);
  const auto step = hn::Set(d, s.stepSize), eps = hn::Set(d, s.eps), bc2 = hn::Set(d, s.bc2Sqrt);
  const auto decay = hn::Set(d, s.decay), shrink = hn::Set(d, s.shrink);
  ForEachVector(n, [&](int64_t i, size_t c) {
    auto pi = LoadCount(d, p + i, c);
    auto gi = g ? LoadCount(d, g + i, c) : hn::Zero(d);
    if (s.coupled) gi = hn::MulAdd(decay, pi, gi);
    if (s.decoupled) pi = hn::Mul(pi, shrink);
    const auto mi = hn::MulAdd(b1, LoadCount(d, m + i, c), hn::Mul(c1, gi));
    const auto vi = hn::MulAdd(b2, LoadCount(d, v + i, c), hn::Mul(hn::Mul(c2, gi), gi));
    const auto denom = hn::Add(hn::Div(hn::Sqrt(vi), bc2), eps);
    pi = hn::Sub(pi, hn::Div(hn::Mul(step, mi), denom));
    StoreCount(mi, d, m + i, c);
    StoreCount(vi, d, v + i, c);
    StoreCount(pi, d, p + i, c);
    if (pBf16) StoreBf16(pi, pBf16 + i, c);
  });
}

void TanhInPlace(float* HWY_RESTRICT a, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) { StoreCount(hn::Tanh(d, LoadCount(d, a + i, c)), d, a + i, c); });
}

void TanhBackward(float* HWY_RESTRICT grad, const float* HWY_RESTRICT act, int64_t n) {
  const DF d;
  const auto one = hn::Set(d, 1.0f);
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto t = LoadCount(d, act + i, c);
    StoreCount(hn::Mul(LoadCount(d, grad + i, c), hn::NegMulAdd(t, t, one)), d, grad + i, c);
  });
}

// sigmoid(x) = 1 / (1 + exp(-x)); the exponent is capped at 80 (exp(80) is finite in float; the
// sigmoid is then below 2e-35, where x * sigmoid(x) is 0 to float precision anyway).
HWY_INLINE hn::Vec<DF> Sigmoid(hn::Vec<DF> x) {
  const DF d;
  const auto one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, hn::Exp(d, hn::Min(hn::Neg(x), hn::Set(d, 80.0f)))));
}

void SwishForward(const float* HWY_RESTRICT x, float* HWY_RESTRICT out, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto v = LoadCount(d, x + i, c);
    StoreCount(hn::Mul(v, Sigmoid(v)), d, out + i, c);
  });
}

void SwishBackward(float* HWY_RESTRICT grad, const float* HWY_RESTRICT x, int64_t n) {
  const DF d;
  const auto one = hn::Set(d, 1.0f);
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto v = LoadCount(d, x + i, c);
    const auto s = Sigmoid(v);
    // d swish / dx = s + x s (1 - s) = s (1 + x (1 - s))
    const auto slope = hn::Mul(s, hn::MulAdd(v, hn::Sub(one, s), one));
    StoreCount(hn::Mul(LoadCount(d, grad + i, c), slope), d, grad + i, c);
  });
}

void Multiply(const float* a, const float* HWY_RESTRICT b, float* out, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) { StoreCount(hn::Mul(LoadCount(d, a + i, c), LoadCount(d, b + i, c)), d, out + i, c); });
}

void AddScaled(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, float alpha, int64_t n) {
  const DF d;
  const auto va = hn::Set(d, alpha);
  ForEachVector(n, [&](int64_t i, size_t c) { StoreCount(hn::MulAdd(va, LoadCount(d, x + i, c), LoadCount(d, y + i, c)), d, y + i, c); });
}

void AddBf16(float* HWY_RESTRICT y, const bf16* HWY_RESTRICT x, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) { StoreCount(hn::Add(LoadCount(d, y + i, c), LoadBf16(x + i, c)), d, y + i, c); });
}

// y += a * b (LayerNorm's gain gradient, summed over rows).
void AddProduct(float* HWY_RESTRICT y, const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, int64_t n) {
  const DF d;
  ForEachVector(n, [&](int64_t i, size_t c) {
    StoreCount(hn::MulAdd(LoadCount(d, a + i, c), LoadCount(d, b + i, c), LoadCount(d, y + i, c)), d, y + i, c);
  });
}

// One row of LayerNorm (kernels.h): two passes for the statistics (the mean, then the centred squares;
// a ragged tail is filled with the mean so it adds nothing), then xhat and y in one.
float LayerNormRow(const float* HWY_RESTRICT a, int64_t n, const float* HWY_RESTRICT gamma, const float* HWY_RESTRICT beta, float eps,
                   float* HWY_RESTRICT y, float* HWY_RESTRICT xhat) {
  const DF d;
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  bool odd = false;
  ForEachVector(n, [&](int64_t i, size_t c) {
    (odd ? s1 : s0) = hn::Add(odd ? s1 : s0, LoadCount(d, a + i, c));
    odd = !odd;
  });
  const float mean = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1))) / float(n);
  const auto vm = hn::Set(d, mean);
  auto q0 = hn::Zero(d), q1 = hn::Zero(d);
  odd = false;
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto x = hn::Sub(LoadCount(d, a + i, c, mean), vm);
    (odd ? q1 : q0) = hn::MulAdd(x, x, odd ? q1 : q0);
    odd = !odd;
  });
  const double var = double(hn::GetLane(hn::SumOfLanes(d, hn::Add(q0, q1)))) / double(n);
  const float rstd = float(1.0 / std::sqrt(var + double(eps)));
  const auto vr = hn::Set(d, rstd);
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto xh = hn::Mul(hn::Sub(LoadCount(d, a + i, c), vm), vr);
    StoreCount(xh, d, xhat + i, c);
    StoreCount(hn::MulAdd(LoadCount(d, gamma + i, c), xh, LoadCount(d, beta + i, c)), d, y + i, c);
  });
  return rstd;
}

// One row of LayerNorm's input gradient: da = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma.
// da may be dy.
void LayerNormBackwardRow(const float* dy, const float* HWY_RESTRICT xhat, const float* HWY_RESTRICT gamma, float rstd, int64_t n,
                          float* da) {
  const DF d;
  auto s1 = hn::Zero(d), s2 = hn::Zero(d);
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto g = hn::Mul(LoadCount(d, dy + i, c), LoadCount(d, gamma + i, c));
    s1 = hn::Add(s1, g);
    s2 = hn::MulAdd(g, LoadCount(d, xhat + i, c), s2);
  });
  const auto m1 = hn::Set(d, hn::GetLane(hn::SumOfLanes(d, s1)) / float(n)), m2 = hn::Set(d, hn::GetLane(hn::SumOfLanes(d, s2)) / float(n));
  const auto vr = hn::Set(d, rstd);
  ForEachVector(n, [&](int64_t i, size_t c) {
    const auto g = hn::Mul(LoadCount(d, dy + i, c), LoadCount(d, gamma + i, c));
    StoreCount(hn::Mul(vr, hn::Sub(hn::NegMulAdd(LoadCount(d, xhat + i, c), m2, g), m1)), d, da + i, c);
  });
}

// out = float(sqrt(-2 log u1) cos(2 pi u2)) in double (Highway's log and cos: at most 1 and 3 ulp of
// double, far below float's rounding).
void BoxMuller(const double* HWY_RESTRICT u1, const double* HWY_RESTRICT u2, int64_t n, float* HWY_RESTRICT out) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const int64_t N = int64_t(hn::Lanes(dd));
  const auto minusTwo = hn::Set(dd, -2.0), twoPi = hn::Set(dd, 6.283185307179586);
  for (int64_t i = 0; i < n; i += N) {
    const size_t c = size_t(std::min(N, n - i));
    const auto r = hn::Sqrt(hn::Mul(minusTwo, hn::Log(dd, LoadCount(dd, u1 + i, c, 1.0))));
    const auto z = hn::Mul(r, hn::Cos(dd, hn::Mul(twoPi, LoadCount(dd, u2 + i, c))));
    StoreCount(hn::DemoteTo(df, z), df, out + i, c);
  }
}

// One user's composite-prior KL term (layers.h compositePriorKl), in double, a vector of latent
// dimensions at a time: log q - log p summed over d (vector lanes, then across them), and with dz given
// the gradients scaled by g added to dz [D] and dEnc [2D] (rounded to float as the scalar code does).
double CompositePriorKlRow(const float* HWY_RESTRICT enc, const float* HWY_RESTRICT prior, const float* HWY_RESTRICT z, int64_t D,
                           const CompositePriorConstants& k, double g, float* HWY_RESTRICT dz, float* HWY_RESTRICT dEnc) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const int64_t N = int64_t(hn::Lanes(dd));
  const auto half = hn::Set(dd, 0.5), log2pi = hn::Set(dd, k.log2Pi), invWide = hn::Set(dd, 1.0 / k.wideVar);
  const auto w0 = hn::Set(dd, k.logWeights[0]), w1 = hn::Set(dd, k.logWeights[1]), w2 = hn::Set(dd, k.logWeights[2]);
  const auto wideConst = hn::Set(dd, k.wideLogVar + k.log2Pi), vg = hn::Set(dd, g);
  auto sum = hn::Zero(dd);
  for (int64_t i = 0; i < D; i += N) {
    const size_t c = size_t(std::min(N, D - i));
    auto load = [&](const float* p) { return hn::PromoteTo(dd, LoadCount(df, p + i, c)); };
    const auto zz = load(z), mu = load(enc), lv = load(enc + D), pmu = load(prior), plv = load(prior + D);
    const auto diff = hn::Sub(zz, mu), var = hn::Exp(dd, lv), diff2var = hn::Div(hn::Mul(diff, diff), var);
    const auto logq = hn::Neg(hn::Mul(half, hn::Add(hn::Add(lv, log2pi), diff2var)));
    const auto pvar = hn::Exp(dd, plv), pdiff = hn::Sub(zz, pmu), zz2 = hn::Mul(zz, zz);
    const auto c0 = hn::NegMulAdd(half, hn::Add(log2pi, zz2), w0);
    const auto c1 = hn::NegMulAdd(half, hn::Add(hn::Add(plv, log2pi), hn::Div(hn::Mul(pdiff, pdiff), pvar)), w1);
    const auto c2 = hn::NegMulAdd(half, hn::Add(wideConst, hn::Mul(zz2, invWide)), w2);
    const auto mx = hn::Max(c0, hn::Max(c1, c2));
    const auto e0 = hn::Exp(dd, hn::Sub(c0, mx)), e1 = hn::Exp(dd, hn::Sub(c1, mx)), e2 = hn::Exp(dd, hn::Sub(c2, mx));
    const auto total = hn::Add(hn::Add(e0, e1), e2);
    const auto logp = hn::Add(mx, hn::Log(dd, total));
    sum = hn::Add(sum, hn::IfThenElseZero(hn::FirstN(dd, c), hn::Sub(logq, logp)));
    if (dz) {
      // d log p / dz = -sum_k r_k (z - mu_k) / var_k, r_k = e_k / total.
      const auto num = hn::Add(hn::Add(hn::Mul(e0, zz), hn::Div(hn::Mul(e1, pdiff), pvar)), hn::Mul(hn::Mul(e2, zz), invWide));
      const auto dlogp = hn::Neg(hn::Div(num, total));
      const auto dvar = hn::Div(diff, var);
      const auto gz = hn::Mul(vg, hn::Sub(hn::Neg(dvar), dlogp));
      const auto gmu = hn::Mul(vg, dvar);
      const auto glv = hn::Mul(vg, hn::MulSub(half, diff2var, half));  // -0.5 + 0.5 diff^2 / var
      auto add = [&](float* p, hn::Vec<decltype(dd)> v) { StoreCount(hn::Add(LoadCount(df, p + i, c), hn::DemoteTo(df, v)), df, p + i, c); };
      add(dz, gz);
      add(dEnc, gmu);
      add(dEnc + D, glv);
    }
  }
  return hn::GetLane(hn::SumOfLanes(dd, sum));
}

// Philox4x32-10 (core/rng.h) for the n indices first..first+n-1 under key `key` and the fixed counter
// words (c2, c3): the four words of index first + i in w0[i]..w3[i] (w1..w3 may be null: not stored), bit for
// bit Philox4x32::generate's.
// One index per 32-bit lane; the 32 x 32 -> 64-bit products by MulEven, on the even lanes and on the odd
// lanes shifted down. A vector whose low index word would wrap (once per 2^32 indices) is done scalar.
void PhiloxWords(uint64_t key, uint64_t first, uint32_t c2, uint32_t c3, int64_t n, uint32_t* HWY_RESTRICT w0, uint32_t* HWY_RESTRICT w1,
                 uint32_t* HWY_RESTRICT w2, uint32_t* HWY_RESTRICT w3) {
  const hn::ScalableTag<uint32_t> du;
  const hn::RepartitionToWide<decltype(du)> dw;
  const int64_t N = int64_t(hn::Lanes(du));
  using V = hn::Vec<decltype(du)>;
  // hi, lo = the high and low words of a * b per lane, b the same in every lane (so its even lanes
  // serve the odd lanes' products too).
  auto mulHiLo = [&](V a, V b, V& hi, V& lo) {
    const auto even = hn::MulEven(a, b);
    const auto odd = hn::MulEven(hn::BitCast(du, hn::ShiftRight<32>(hn::BitCast(dw, a))), b);
    lo = hn::OddEven(hn::BitCast(du, hn::ShiftLeft<32>(odd)), hn::BitCast(du, even));
    hi = hn::OddEven(hn::BitCast(du, odd), hn::BitCast(du, hn::ShiftRight<32>(even)));
  };
  const V m0 = hn::Set(du, 0xD2511F53u), m1 = hn::Set(du, 0xCD9E8D57u), lanes = hn::Iota(du, 0);
  for (int64_t i = 0; i < n; i += N) {
    const size_t c = size_t(std::min(N, n - i));
    const uint64_t base = first + uint64_t(i);
    if (uint32_t(base) > UINT32_MAX - uint32_t(N - 1)) {
      for (size_t j = 0; j < c; ++j) {
        uint32_t w[4];
        const uint64_t index = base + j;
        Philox4x32::generate(key, uint32_t(index), uint32_t(index >> 32), c2, c3, w);
        w0[i + j] = w[0];
        if (w1) w1[i + j] = w[1];
        if (w2) w2[i + j] = w[2];
        if (w3) w3[i + j] = w[3];
      }
      continue;
    }
    V x0 = hn::Add(hn::Set(du, uint32_t(base)), lanes), x1 = hn::Set(du, uint32_t(base >> 32)), x2 = hn::Set(du, c2), x3 = hn::Set(du, c3);
    uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
    for (int r = 0; r < 10; ++r) {
      V hi0, lo0, hi1, lo1;
      mulHiLo(x0, m0, hi0, lo0);
      mulHiLo(x2, m1, hi1, lo1);
      x0 = hn::Xor(hn::Xor(hi1, x1), hn::Set(du, k0));
      x1 = lo1;
      x2 = hn::Xor(hn::Xor(hi0, x3), hn::Set(du, k1));
      x3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    StoreCount(x0, du, w0 + i, c);
    if (w1) StoreCount(x1, du, w1 + i, c);
    if (w2) StoreCount(x2, du, w2 + i, c);
    if (w3) StoreCount(x3, du, w3 + i, c);
  }
}

// Sum of a[0..n) with four vector accumulators: reads memory as fast as the target can (the stream
// bound that one-user scoring is measured against).
float Sum(const float* HWY_RESTRICT a, int64_t n) {
  const DF d;
  const int64_t N = int64_t(hn::Lanes(d));
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::Add(s0, hn::LoadU(d, a + i));
    s1 = hn::Add(s1, hn::LoadU(d, a + i + N));
    s2 = hn::Add(s2, hn::LoadU(d, a + i + 2 * N));
    s3 = hn::Add(s3, hn::LoadU(d, a + i + 3 * N));
  }
  for (; i < n; i += N) s0 = hn::Add(s0, LoadCount(d, a + i, size_t(std::min(N, n - i))));
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

// The first i in [0, n) with x[i] > threshold, else n (a NaN is never above): the scan of top-k selection,
// four vectors per step.
int64_t FirstAbove(const float* HWY_RESTRICT x, int64_t n, float threshold) {
  const DF d;
  const int64_t N = int64_t(hn::Lanes(d));
  const auto t = hn::Set(d, threshold);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto m0 = hn::Gt(hn::LoadU(d, x + i), t), m1 = hn::Gt(hn::LoadU(d, x + i + N), t);
    const auto m2 = hn::Gt(hn::LoadU(d, x + i + 2 * N), t), m3 = hn::Gt(hn::LoadU(d, x + i + 3 * N), t);
    if (HWY_LIKELY(hn::AllFalse(d, hn::Or(hn::Or(m0, m1), hn::Or(m2, m3))))) continue;
    if (!hn::AllFalse(d, m0)) return i + int64_t(hn::FindKnownFirstTrue(d, m0));
    if (!hn::AllFalse(d, m1)) return i + N + int64_t(hn::FindKnownFirstTrue(d, m1));
    if (!hn::AllFalse(d, m2)) return i + 2 * N + int64_t(hn::FindKnownFirstTrue(d, m2));
    return i + 3 * N + int64_t(hn::FindKnownFirstTrue(d, m3));
  }
  for (; i < n; i += N) {
    const auto m = hn::Gt(LoadCount(d, x + i, size_t(std::min(N, n - i)), -HUGE_VALF), t);
    if (!hn::AllFalse(d, m)) return i + int64_t(hn::FindKnownFirstTrue(d, m));
  }
  return n;
}

// row[0..cols) += sum_k vals[k] W[idx[k], 0..cols) (W row-major with `cols` columns), four vectors of the
// row at a time in registers while the chosen rows of W stream by. The sparse first layer: forward (one
// user's clicked rows of the weights) and weight gradient (one item's users' rows of the gradient).
void SparseRow(float* HWY_RESTRICT row, const float* HWY_RESTRICT W, int64_t cols, const int32_t* HWY_RESTRICT idx,
               const float* HWY_RESTRICT vals, int64_t nnz) {
  const DF d;
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t c = 0;
  for (; c + 4 * N <= cols; c += 4 * N) {
    auto a0 = hn::LoadU(d, row + c), a1 = hn::LoadU(d, row + c + N), a2 = hn::LoadU(d, row + c + 2 * N), a3 = hn::LoadU(d, row + c + 3 * N);
    for (int64_t k = 0; k < nnz; ++k) {
      if (vals[k] == 0.0f) continue;  // dropped by input dropout
      const auto v = hn::Set(d, vals[k]);
      const float* w = W + int64_t(idx[k]) * cols + c;
      a0 = hn::MulAdd(v, hn::LoadU(d, w), a0);
      a1 = hn::MulAdd(v, hn::LoadU(d, w + N), a1);
      a2 = hn::MulAdd(v, hn::LoadU(d, w + 2 * N), a2);
      a3 = hn::MulAdd(v, hn::LoadU(d, w + 3 * N), a3);
    }
    hn::StoreU(a0, d, row + c);
    hn::StoreU(a1, d, row + c + N);
    hn::StoreU(a2, d, row + c + 2 * N);
    hn::StoreU(a3, d, row + c + 3 * N);
  }
  for (; c < cols; c += N) {
    const size_t count = size_t(std::min(N, cols - c));
    auto a = LoadCount(d, row + c, count);
    for (int64_t k = 0; k < nnz; ++k)
      if (vals[k] != 0.0f) a = hn::MulAdd(hn::Set(d, vals[k]), LoadCount(d, W + int64_t(idx[k]) * cols + c, count), a);
    StoreCount(a, d, row + c, count);
  }
}

// Software prefetch this far ahead of the weight stream, into all cache levels: measured with
// `vaecf_harness latency` on AVX-512 (bf16: 0.84 ms without, 0.72 ms with; a non-temporal hint
// evicts the weights from the last-level cache between calls and takes 2.6 ms).
constexpr int64_t kPrefetchBytes = 4096;

// A block of up to four vectors of columns: how many of its `cols` columns each vector holds.
struct BlockSplit {
  size_t c[4];
};
HWY_INLINE BlockSplit SplitBlock(size_t N, int64_t cols) {
  BlockSplit n;
  size_t left = size_t(cols);
  for (size_t& c : n.c) left -= (c = std::min(left, N));
  return n;
}
// Stores a block's four accumulators, each vector's share of the columns only.
template <class V>
HWY_INLINE void StoreBlock(V a0, V a1, V a2, V a3, float* HWY_RESTRICT y, const BlockSplit& n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  StoreCount(a0, d, y, n.c[0]);
  if (n.c[1]) StoreCount(a1, d, y + N, n.c[1]);
  if (n.c[2]) StoreCount(a2, d, y + 2 * N, n.c[2]);
  if (n.c[3]) StoreCount(a3, d, y + 3 * N, n.c[3]);
}

// Four vectors of columns per block: the accumulators stay in registers while W streams through once.
// (Named accumulators, not an array: SVE vectors are sizeless.)
void RowBlockF32(const float* HWY_RESTRICT x, int64_t k, const float* HWY_RESTRICT W, int64_t stride,
                 const float* HWY_RESTRICT bias, float* HWY_RESTRICT y, int64_t cols) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const BlockSplit n = SplitBlock(N, cols);
  const size_t c0 = n.c[0], c1 = n.c[1], c2 = n.c[2], c3 = n.c[3];
  auto a0 = LoadCount(d, bias, c0), a1 = LoadCount(d, bias + N, c1), a2 = LoadCount(d, bias + 2 * N, c2), a3 = LoadCount(d, bias + 3 * N, c3);
  const bool full = size_t(cols) == 4 * N;
  const int64_t rowBytes = int64_t(4 * N * sizeof(float));
  for (int64_t i = 0; i < k; ++i) {
    const float* w = W + i * stride;
    if (stride == int64_t(4 * N))  // a contiguous panel: fetch ahead along it
      for (int64_t b = 0; b < rowBytes; b += 64) hwy::Prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + b);
    const auto xi = hn::Set(d, x[i]);
    if (full) {
      a0 = hn::MulAdd(xi, hn::LoadU(d, w), a0);
      a1 = hn::MulAdd(xi, hn::LoadU(d, w + N), a1);
      a2 = hn::MulAdd(xi, hn::LoadU(d, w + 2 * N), a2);
      a3 = hn::MulAdd(xi, hn::LoadU(d, w + 3 * N), a3);
    } else {
      a0 = hn::MulAdd(xi, LoadCount(d, w, c0), a0);
      if (c1) a1 = hn::MulAdd(xi, LoadCount(d, w + N, c1), a1);
      if (c2) a2 = hn::MulAdd(xi, LoadCount(d, w + 2 * N, c2), a2);
      if (c3) a3 = hn::MulAdd(xi, LoadCount(d, w + 3 * N, c3), a3);
    }
  }
  StoreBlock(a0, a1, a2, a3, y, n);
}

// A bf16 panel: each 32-bit word holds rows 2q (low half) and 2q + 1 (high half) of one column; a bf16
// is the top half of a float, so the two widen with a shift and a mask.
void RowBlockBf16(const uint32_t* HWY_RESTRICT xPairs, int64_t pairs, const bf16* HWY_RESTRICT panel,
                  const float* HWY_RESTRICT bias, float* HWY_RESTRICT y, int64_t cols) {
  const DF d;
  const DU du;
  const size_t N = hn::Lanes(d);
  const BlockSplit n = SplitBlock(N, cols);
  auto a0 = LoadCount(d, bias, n.c[0]), a1 = LoadCount(d, bias + N, n.c[1]), a2 = LoadCount(d, bias + 2 * N, n.c[2]),
       a3 = LoadCount(d, bias + 3 * N, n.c[3]);
  const auto highMask = hn::Set(du, 0xffff0000u);
  const uint32_t* words = reinterpret_cast<const uint32_t*>(panel);
  const int64_t pairBytes = int64_t(4 * N * sizeof(uint32_t));
  for (int64_t q = 0; q < pairs; ++q) {
    const uint32_t* w = words + q * int64_t(4 * N);
    for (int64_t b = 0; b < pairBytes; b += 64) hwy::Prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + b);
    const auto xLow = hn::Set(d, fromBf16(bf16(xPairs[q] & 0xffffu))), xHigh = hn::Set(d, fromBf16(bf16(xPairs[q] >> 16)));
#define VAECF_PAIR(J, ACC)                                                          \
  {                                                                                 \
    const auto u = hn::LoadU(du, w + (J) * N);                                      \
    ACC = hn::MulAdd(xLow, hn::BitCast(d, hn::ShiftLeft<16>(u)), ACC);               \
    ACC = hn::MulAdd(xHigh, hn::BitCast(d, hn::And(u, highMask)), ACC);              \
  }
    VAECF_PAIR(0, a0)
    VAECF_PAIR(1, a1)
    VAECF_PAIR(2, a2)
    VAECF_PAIR(3, a3)
#undef VAECF_PAIR
  }
  StoreBlock(a0, a1, a2, a3, y, n);
}

#if HWY_TARGET == HWY_AVX3
// AVX-512 processors with AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4): the pair product of a
// bf16 panel is one instruction (vdpbf16ps), which Highway 1.0 does not expose. Same panel layout and
// result as RowBlockBf16 (up to the rounding of the pair sum); the only hand-written intrinsics.
VAECF_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16") void RowBlockBf16Dot(
    const uint32_t* HWY_RESTRICT xPairs, int64_t pairs, const bf16* HWY_RESTRICT panel, const float* HWY_RESTRICT bias,
    float* HWY_RESTRICT y, int64_t cols) {
  __m512 acc[4];
  __mmask16 mask[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t left = cols - 16 * j;
    mask[j] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    acc[j] = _mm512_maskz_loadu_ps(mask[j], bias + 16 * j);
  }
  for (int64_t q = 0; q < pairs; ++q) {
    const bf16* w = panel + q * 128;
    for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 64 * j, _MM_HINT_T0);
    const __m512bh xq = (__m512bh)_mm512_set1_epi32(int(xPairs[q]));
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_loadu_si512(w + 32 * j), xq);
  }
  for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(y + 16 * j, mask[j], acc[j]);
}
#endif

const KernelTable* Table() {
  static const KernelTable table{&LikelihoodRow, &ToBf16,       &Adam,        &TanhInPlace,  &TanhBackward, &SwishForward, &SwishBackward, &Multiply,
                                 &AddScaled,     &AddBf16,      &Sum,         &SparseRow,   &LayerNormRow, &LayerNormBackwardRow, &AddProduct,
                                 &BoxMuller,     &PhiloxWords,   &RowBlockF32,   &RowBlockBf16, &FirstAbove,    &CompositePriorKlRow,
                                 int64_t(4 * hn::Lanes(DF()))};
  return &table;
}
#if HWY_TARGET == HWY_AVX3
const KernelTable* TableBf16Dot() {
  static const KernelTable table = [] {
    KernelTable t = *Table();
    t.rowBlockBf16 = &RowBlockBf16Dot;
    return t;
  }();
  return &table;
}
#endif

}  // namespace HWY_NAMESPACE
}  // namespace vaecf::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
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

// ---- Which targets this processor runs (Highway's own detection lives in libhwy; we read the
// features directly so the engine has no run-time dependency on it) ----

struct CpuFeatures {
  bool ssse3 = false, sse4 = false, avx2 = false, avx3 = false, avx512bf16 = false;  // x86
  bool neon = false, sve = false, sve2 = false;                                      // ARM
};

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
void cpuid(int leaf, int subleaf, int r[4]) {
#if defined(_MSC_VER) && !defined(__clang__)
  __cpuidex(r, leaf, subleaf);
#else
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid_count(unsigned(leaf), unsigned(subleaf), a, b, c, d);
  r[0] = int(a), r[1] = int(b), r[2] = int(c), r[3] = int(d);
#endif
}
unsigned long long xgetbv0() {
#if defined(_MSC_VER) && !defined(__clang__)
  return _xgetbv(0);
#else
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}
#endif

CpuFeatures readCpuFeatures() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
  // CPUID leaves 1 and 7 (subleaves 0 and 1), and XGETBV for the vector registers the OS saves.
  int r0[4], r1[4], r7[4] = {0, 0, 0, 0}, r71[4] = {0, 0, 0, 0};
  cpuid(0, 0, r0);
  cpuid(1, 0, r1);
  if (r0[0] >= 7) {
    cpuid(7, 0, r7);
    cpuid(7, 1, r71);
  }
  const bool osxsave = (r1[2] >> 27) & 1;
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  auto bit = [](int reg, int b) { return ((unsigned(reg) >> b) & 1u) != 0; };
  // Highway's SSE4 target also uses CLMUL and AES; AVX2 adds BMI1/2, FMA and F16C; AVX3 is AVX-512 F/VL/DQ/BW.
  f.ssse3 = bit(r1[2], 9);
  f.sse4 = f.ssse3 && bit(r1[2], 19) && bit(r1[2], 20) && bit(r1[2], 1) && bit(r1[2], 25);
  f.avx2 = f.sse4 && ymm && bit(r1[2], 28) && bit(r7[1], 5) && bit(r1[2], 12) && bit(r7[1], 3) && bit(r7[1], 8) && bit(r1[2], 29);
  f.avx3 = f.avx2 && zmm && bit(r7[1], 16) && bit(r7[1], 31) && bit(r7[1], 17) && bit(r7[1], 30);
  f.avx512bf16 = f.avx3 && bit(r71[0], 5);
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.neon = (hw & HWCAP_ASIMD) && (hw & HWCAP_AES);  // Highway's NEON target on A64 includes AES
  f.sve = (hw & HWCAP_SVE) != 0;
  f.sve2 = f.sve && (hw2 & HWCAP2_SVE2) && (hw2 & HWCAP2_SVEAES);
#elif defined(__aarch64__) && defined(__APPLE__)
  // Apple silicon: NEON and AES always; no SVE.
  int aes = 0;
  size_t size = sizeof aes;
  f.neon = sysctlbyname("hw.optional.arm.FEAT_AES", &aes, &size, nullptr, 0) != 0 || aes != 0;
#elif defined(_M_ARM64)
  f.neon = true;  // Windows on ARM: NEON is part of the baseline
#endif
  return f;
}

struct Target {
  const char* name;
  bool supported;
  const KernelTable* (*table)();
};

// The compiled targets, best first.
const std::vector<Target>& targets() {
  static const std::vector<Target> list = [] {
    const CpuFeatures f = readCpuFeatures();
    std::vector<Target> t;
#if HWY_TARGETS & HWY_AVX3
    t.push_back({"AVX-512+BF16", f.avx512bf16, &N_AVX3::TableBf16Dot});
    t.push_back({"AVX-512", f.avx3, &N_AVX3::Table});
#endif
#if HWY_TARGETS & HWY_AVX2
    t.push_back({"AVX2", f.avx2, &N_AVX2::Table});
#endif
#if HWY_TARGETS & HWY_SSE4
    t.push_back({"SSE4", f.sse4, &N_SSE4::Table});
#endif
#if HWY_TARGETS & HWY_SSSE3
    t.push_back({"SSSE3", f.ssse3, &N_SSSE3::Table});
#endif
#if HWY_TARGETS & HWY_SVE2
    t.push_back({"SVE2", f.sve2, &N_SVE2::Table});
#endif
#if HWY_TARGETS & HWY_SVE
    t.push_back({"SVE", f.sve, &N_SVE::Table});
#endif
#if HWY_TARGETS & HWY_NEON
    t.push_back({"NEON", f.neon, &N_NEON::Table});
#endif
#if HWY_TARGETS & HWY_EMU128
    t.push_back({"EMU128", true, &N_EMU128::Table});
#endif
#if HWY_TARGETS & HWY_SCALAR
    t.push_back({"scalar", true, &N_SCALAR::Table});
#endif
    (void)f;
    return t;
  }();
  return list;
}

struct Active {
  std::atomic<const KernelTable*> table{nullptr};
  std::string name;
  std::mutex mutex;
};
Active& active() {
  static Active a;
  return a;
}

const Target* findTarget(const std::string& name) {
  for (const auto& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

const Target& bestTarget() {
  for (const auto& t : targets())
    if (t.supported) return t;
  // The static target (the build's baseline) always runs: it is the last resort.
  return targets().back();
}

void activate(const Target& t) {
  Active& a = active();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.name = t.name;
  a.table.store(t.table(), std::memory_order_release);
}

const KernelTable& kernels() {
  const KernelTable* t = active().table.load(std::memory_order_acquire);
  if (HWY_LIKELY(t)) return *t;
  const Target* chosen = &bestTarget();
  if (const char* env = std::getenv("VAECF_SIMD"); env && *env) {
    const Target* wanted = findTarget(env);
    if (wanted && wanted->supported) chosen = wanted;
    else
      std::fprintf(stderr, "vaecf: VAECF_SIMD=%s is %s; using %s\n", env,
                   wanted ? "not supported by this processor" : "not a target of this build (see simdTargets())", chosen->name);
  }
  activate(*chosen);
  return *active().table.load(std::memory_order_acquire);
}

}  // namespace

std::vector<SimdTarget> simdTargets() {
  std::vector<SimdTarget> out;
  for (const auto& t : targets()) out.push_back({t.name, t.supported});
  return out;
}

std::string simdTarget() {
  kernels();
  std::lock_guard<std::mutex> lock(active().mutex);
  return active().name;
}

void forceSimdTarget(const std::string& name) {
  if (name.empty()) return activate(bestTarget());
  const Target* t = findTarget(name);
  if (!t) throw std::invalid_argument("unknown SIMD target '" + name + "'");
  if (!t->supported) throw std::invalid_argument("this processor does not run the SIMD target '" + name + "'");
  activate(*t);
}

double likelihoodRow(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                     float invM, float* gradF32, bf16* gradBf16) {
  return kernels().likelihoodRow(row, bias, items, idx, x, clicks, invM, gradF32, gradBf16);
}
void toBf16(const float* in, bf16* out, int64_t n) { kernels().toBf16(in, out, n); }
void adamUpdate(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16) {
  kernels().adam(p, g, m, v, n, s, pBf16);
}
void tanhInPlace(float* a, int64_t n) { kernels().tanhInPlace(a, n); }
void tanhBackward(float* grad, const float* act, int64_t n) { kernels().tanhBackward(grad, act, n); }
void swishForward(const float* x, float* out, int64_t n) { kernels().swishForward(x, out, n); }
void swishBackward(float* grad, const float* x, int64_t n) { kernels().swishBackward(grad, x, n); }
void multiply(const float* a, const float* b, float* out, int64_t n) { kernels().multiply(a, b, out, n); }
void addScaled(float* y, const float* x, float alpha, int64_t n) { kernels().addScaled(y, x, alpha, n); }
void addBf16(float* y, const bf16* x, int64_t n) { kernels().addBf16(y, x, n); }
float sum(const float* a, int64_t n) { return kernels().sum(a, n); }
int64_t firstAbove(const float* x, int64_t n, float threshold) { return kernels().firstAbove(x, n, threshold); }
double compositePriorKlRow(const float* enc, const float* prior, const float* z, int64_t D, const CompositePriorConstants& k, double g,
                           float* dz, float* dEnc) {
  return kernels().compositePriorKlRow(enc, prior, z, D, k, g, dz, dEnc);
}
void sparseRow(float* row, const float* W, int64_t cols, const int32_t* idx, const float* vals, int64_t nnz) {
  kernels().sparseRow(row, W, cols, idx, vals, nnz);
}
float layerNormRow(const float* a, int64_t n, const float* gamma, const float* beta, float eps, float* y, float* xhat) {
  return kernels().layerNormRow(a, n, gamma, beta, eps, y, xhat);
}
void layerNormBackwardRow(const float* dy, const float* xhat, const float* gamma, float rstd, int64_t n, float* da) {
  kernels().layerNormBackwardRow(dy, xhat, gamma, rstd, n, da);
}
void addProduct(float* y, const float* a, const float* b, int64_t n) { kernels().addProduct(y, a, b, n); }
void boxMuller(const double* u1, const double* u2, int64_t n, float* out) { kernels().boxMuller(u1, u2, n, out); }

void philoxWords(const CounterRng& rng, uint64_t first, int64_t n, uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3) {
  kernels().philoxWords(rng.key(), first, rng.counter2(), rng.counter3(), n, w0, w1, w2, w3);
}

void normalsInto(const CounterRng& rng, float* out, int64_t n, int threads) {
  // Chunks of 1024: the Philox words (vector), the uniforms of CounterRng::normal from them in two
  // small buffers, then the vector Box-Muller. Every value depends only on its index.
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    uint32_t w[4][kChunk];
    double u1[kChunk], u2[kChunk];
    const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
    philoxWords(rng, uint64_t(i0), len, w[0], w[1], w[2], w[3]);
    for (int64_t j = 0; j < len; ++j) {
      const uint32_t words[4] = {w[0][j], w[1][j], w[2][j], w[3][j]};
      CounterRng::boxMullerUniformsOf(words, &u1[j], &u2[j]);
    }
    kernels().boxMuller(u1, u2, len, out + i0);
  }
}

int64_t panelWidth() { return kernels().blockWidth; }

void smallRowsProduct(const float* x, int64_t m, int64_t k, const float* W, int64_t n, const float* bias, float* y, int threads) {
  if (m < 1 || m > 4) throw std::invalid_argument("smallRowsProduct: 1 to 4 rows");
  const KernelTable& K = kernels();
  const int64_t width = K.blockWidth, blocks = (n + width - 1) / width;
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads) if (threads > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * width, cols = std::min(width, n - c0);
    for (int64_t u = 0; u < m; ++u) K.rowBlockF32(x + u * k, k, W + c0, n, bias + c0, y + u * n + c0, cols);
  }
}

void packPanels(const float* W, int64_t k, int64_t n, bool useBf16, PackedPanels& out, int threads) {
  const int64_t width = kernels().blockWidth;
  out.k = k;
  out.n = n;
  out.width = width;
  out.isBf16 = useBf16;
  const int64_t panels = out.panels(), pairs = (k + 1) / 2;
  if (useBf16) {
    out.floats = {};
    out.halves.assign(size_t(panels * pairs * width * 2), 0);
  } else {
    out.halves = {};
    out.floats.assign(size_t(panels * k * width), 0.0f);
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t c0 = p * width, cols = std::min(width, n - c0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < cols; ++c) {
        const float w = W[i * n + c0 + c];
        if (useBf16) out.halves[size_t(((p * pairs + i / 2) * width + c) * 2 + (i % 2))] = toBf16Scalar(w);
        else out.floats[size_t((p * k + i) * width + c)] = w;
      }
  }
}

void panelRowsProduct(const float* x, int64_t m, const PackedPanels& W, const float* bias, float* y, int threads) {
  if (m < 1 || m > 4) throw std::invalid_argument("panelRowsProduct: 1 to 4 rows");
  const KernelTable& K = kernels();
  if (W.width != K.blockWidth)
    throw std::logic_error("panelRowsProduct: the panels were packed " + std::to_string(W.width) + " columns wide, the " +
                           simdTarget() + " kernels read " + std::to_string(K.blockWidth) + " (pack them again)");
  // bf16: each row of x as pairs of bf16 (x[2q] in the low half), zero-padded to an even length.
  const int64_t pairs = (W.k + 1) / 2;
  std::vector<uint32_t> xPairs;
  if (W.isBf16) {
    xPairs.assign(size_t(m * pairs), 0);
    for (int64_t u = 0; u < m; ++u)
      for (int64_t i = 0; i < W.k; ++i) xPairs[size_t(u * pairs + i / 2)] |= uint32_t(toBf16Scalar(x[u * W.k + i])) << (16 * (i % 2));
  }
  const int64_t panels = W.panels(), width = W.width;
  // Dynamic: the calling thread starts at once and takes what the others, woken from sleep (Node sets
  // OMP_WAIT_POLICY=passive), have not reached: measured 3.26 -> 2.46 ms for one user with a static split.
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads) if (threads > 1)
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t c0 = p * width, cols = std::min(width, W.n - c0);
    // Rows inner: the panel comes from memory for the first row and from cache for the others.
    for (int64_t u = 0; u < m; ++u) {
      if (W.isBf16) K.rowBlockBf16(xPairs.data() + u * pairs, pairs, W.halves.data() + p * pairs * width * 2, bias + c0, y + u * W.n + c0, cols);
      else K.rowBlockF32(x + u * W.k, W.k, W.floats.data() + p * W.k * width, width, bias + c0, y + u * W.n + c0, cols);
    }
  }
}

}  // namespace vaecf::cpu
#endif  // HWY_ONCE
