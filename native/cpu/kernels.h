// The vector kernels of the CPU engine, written once with Google Highway and compiled for every SIMD
// target of the architecture (x86: SSSE3, SSE4, AVX2, AVX-512; ARM: NEON, SVE, SVE2; a scalar
// fallback elsewhere). The best target this processor runs is chosen at the first call; VAECF_SIMD
// (a name from simdTargets()) or forceSimdTarget() picks another. The scalar functions at the end are
// the plain-C++ references the tests compare every target with.
#pragma once
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/rng.h"
#include "onednn_matmul.h"

namespace vaecf::cpu {

// ---- Targets ----

struct SimdTarget {
  std::string name;  // "AVX2", "AVX-512", "NEON", "SVE", ... (Highway's target, in words)
  bool supported;    // this processor (and OS) runs it
};
// The targets this build has kernels for, best first.
std::vector<SimdTarget> simdTargets();
// The target the kernels run now, e.g. "AVX2", or "AVX-512+BF16" (AVX-512 with the vdpbf16ps panel kernel).
std::string simdTarget();
// Makes `name` (from simdTargets(), supported) the target of every later kernel call; "" returns to
// the best supported one. Throws std::invalid_argument for an unknown or unsupported name. For tests
// and benchmarks: not meant to be changed while kernels run on other threads.
void forceSimdTarget(const std::string& name);

// ---- Kernels (float) ----

// One row of the multinomial likelihood, in place over the logits:
//   row[i] <- row[i] + bias[i]; lse = logsumexp(row); nll = n * lse - sum_k x_k row[idx_k]
//   grad[i] = (n * softmax_i - x_i) * invM  written to gradF32 (may alias row) and/or gradBf16.
// Returns nll. n = sum of x over the row's clicks.
double likelihoodRow(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                     float invM, float* gradF32, bf16* gradBf16);

// Round-to-nearest-even conversion of n floats to bf16 (NaN stays NaN).
void toBf16(const float* in, bf16* out, int64_t n);

// PyTorch-style Adam / AdamW on p[0..n) with gradient g (nullptr: zero gradient);
// writes a bf16 copy of the new parameters to pBf16 when given.
struct AdamStep {
  float stepSize, b1, b2, eps, bc2Sqrt, decay, shrink;
  bool coupled, decoupled;
};
void adamUpdate(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16);

// Element-wise helpers of the training step (n floats each).
void tanhInPlace(float* a, int64_t n);                                      // a = tanh(a)
void tanhBackward(float* grad, const float* act, int64_t n);                // grad *= 1 - act^2
void swishForward(const float* x, float* out, int64_t n);                   // out = x sigmoid(x) (swish, SiLU)
void swishBackward(float* grad, const float* x, int64_t n);                 // grad *= s (1 + x (1 - s)), s = sigmoid(x)
void multiply(const float* a, const float* b, float* out, int64_t n);       // out = a * b (out may alias a)
void addScaled(float* y, const float* x, float alpha, int64_t n);           // y += alpha x
void addBf16(float* y, const bf16* x, int64_t n);                           // y += float(x)
float sum(const float* a, int64_t n);                                       // sum of a (vector order)
int64_t firstAbove(const float* x, int64_t n, float threshold);             // first i with x[i] > threshold, else n
// RecVAE's composite prior, its constants: log of the mixture weights, the wide component's log
// variance and variance, log(2 pi).
struct CompositePriorConstants {
  double logWeights[3], wideLogVar, wideVar, log2Pi;
};
// One user's Monte Carlo KL term sum_d (log q(z_d) - log p(z_d)) over its D latent dimensions (enc:
// mu [D] then logvar [D]; prior the same for the old encoder; z [D]), in double; with dz given adds
// g * d/dz to dz [D] and g * d/d(mu, logvar) (z held fixed) to dEnc [2D] (layers.h compositePriorKl).
double compositePriorKlRow(const float* enc, const float* prior, const float* z, int64_t D, const CompositePriorConstants& k, double g,
                           float* dz, float* dEnc);

// The sparse first layer: row[0..cols) += sum_k vals[k] W[idx[k], 0..cols) (W row-major, `cols` wide;
// entries with value 0, dropped clicks, are skipped). Forward: one user's clicked rows of the weights;
// weight gradient: one item's batch rows of the gradient.
void sparseRow(float* row, const float* W, int64_t cols, const int32_t* idx, const float* vals, int64_t nnz);
// LayerNorm of one row a[0..n): mean mu, rstd = 1 / sqrt(mean((a - mu)^2) + eps), xhat = (a - mu) rstd,
// y = gamma xhat + beta. Returns rstd (kept with xhat for the backward pass).
float layerNormRow(const float* a, int64_t n, const float* gamma, const float* beta, float eps, float* y, float* xhat);
// Its input gradient for one row: da = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma (da may be dy).
void layerNormBackwardRow(const float* dy, const float* xhat, const float* gamma, float rstd, int64_t n, float* da);
void addProduct(float* y, const float* a, const float* b, int64_t n);  // y += a * b
// out[i] = float(sqrt(-2 log u1[i]) cos(2 pi u2[i])), computed in double (Box-Muller).
void boxMuller(const double* u1, const double* u2, int64_t n, float* out);
// out[i] = the standard normal CounterRng::normal(i) draws, to float, for i in [0, n): the same
// stream, its log and cos computed by the vector kernel (equal to float(rng.normal(i)) but for a rare
// last-bit difference where the double value lies next to a rounding boundary).
void normalsInto(const CounterRng& rng, float* out, int64_t n, int threads);
// The four Philox words of `rng`'s indices first..first+n-1 (w_k[i] = word k of index first + i; w1..w3
// may be null), by the vector kernel: bit for bit Philox4x32::generate's.
void philoxWords(const CounterRng& rng, uint64_t first, int64_t n, uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3);

// y[m x n] = x[m x k] W[k x n] + bias for a few rows (m <= 4), W row-major fp32: one pass over W per
// row, columns split across threads. The small layers of low-latency scoring (the item layer uses
// packed panels).
void smallRowsProduct(const float* x, int64_t m, int64_t k, const float* W, int64_t n, const float* bias, float* y, int threads);

// The weights of a k x n product repacked for streaming one or a few rows through them: panels of
// `width` columns (four vectors of the target that packed them), each panel contiguous in memory (the
// row-major layout reads a panel's columns of every row at a stride of n, which the prefetcher does
// not follow). bf16: the rows of a panel are interleaved in pairs, [pair q][column c][2] (rows 2q and
// 2q + 1 of a column in one 32-bit word); fp32: [row][column c]. Columns past n and the odd row of an
// odd k are zero.
struct PackedPanels {
  int64_t k = 0, n = 0, width = 0;
  bool isBf16 = false;
  std::vector<bf16> halves;   // bf16: panels x ceil(k / 2) x width x 2
  std::vector<float> floats;  // fp32: panels x k x width
  int64_t panels() const { return width ? (n + width - 1) / width : 0; }
  bool empty() const { return n == 0; }
};
// The panel width the current target packs and reads.
int64_t panelWidth();
// Packs W [k x n] (fp32, row-major), rounding to bf16 (nearest even) when bf16 is set.
void packPanels(const float* W, int64_t k, int64_t n, bool bf16, PackedPanels& out, int threads);
// y[m x n] = x[m x k] W + bias for m <= 4 over packed panels (panels split across threads). With bf16
// panels x is rounded to bf16 too and products accumulate in fp32, as in the batched bf16 product.
// Throws std::logic_error when W was packed for another target's width (pack again).
void panelRowsProduct(const float* x, int64_t m, const PackedPanels& W, const float* bias, float* y, int threads);

// ---- Scalar references, always available (the tests compare every target with them) ----

double likelihoodRowScalar(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                           float invM, float* gradF32, bf16* gradBf16);
void adamScalar(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16);
bf16 toBf16Scalar(float f);
inline float fromBf16(bf16 h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace vaecf::cpu
