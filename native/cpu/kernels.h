// Fused row kernels of the training step with a runtime-dispatched AVX-512 path (vector exp, bf16
// conversion) and a portable scalar path; both compute the same function (the scalar one in the
// same float arithmetic, used on processors without AVX-512 and as the test reference).
#pragma once
#include <cstdint>
#include <vector>

#include "onednn_matmul.h"

namespace vaecf::cpu {

// True when the AVX-512 (F, BW, DQ, VL) and AVX512-BF16 kernels can run on this processor and are not
// switched off with VAECF_DISABLE_AVX512=1.
bool avx512Available();


// One row of the multinomial likelihood, in place over the logits:
//   row[i] <- row[i] + bias[i]; lse = logsumexp(row); nll = n * lse - sum_k x_k row[idx_k]
//   grad[i] = (n * softmax_i - x_i) * invM  written to gradF32 (may alias row) and/or gradBf16.
// Returns nll. n = sum of x over the row's clicks.
double likelihoodRow(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                     float invM, float* gradF32, bf16* gradBf16);

// Round-to-nearest-even conversion of n floats to bf16.
void toBf16(const float* in, bf16* out, int64_t n);

// PyTorch-style Adam / AdamW on p[0..n) with gradient g (nullptr: zero gradient);
// writes a bf16 copy of the new parameters to pBf16 when given.
struct AdamStep {
  float stepSize, b1, b2, eps, bc2Sqrt, decay, shrink;
  bool coupled, decoupled;
};
void adamUpdate(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16);

// y[m x n] = x[m x k] W[k x n] + bias for a few rows (m <= 4), W row-major fp32: one pass over W
// with the accumulators in registers, columns split across threads. AVX-512 only (check
// avx512Available()); the small layers of low-latency scoring (the item layer uses packed panels).
void smallRowsProduct(const float* x, int64_t m, int64_t k, const float* W, int64_t n, const float* bias, float* y, int threads);

// The weights of a k x n product repacked for streaming one or a few rows through them: panels of 64
// columns, each panel contiguous in memory (the row-major layout reads 64 columns of every row at a
// stride of n, one page apart, which the prefetcher does not follow). bf16: the rows of a panel are
// interleaved in pairs, [pair q][column c][2], the operand layout of the AVX512-BF16 dot product
// (vdpbf16ps); fp32: [row][column c]. Columns past n and the odd row of an odd k are zero.
struct PackedPanels {
  int64_t k = 0, n = 0;
  bool isBf16 = false;
  std::vector<bf16> halves;   // bf16: panels x ceil(k / 2) x 64 x 2
  std::vector<float> floats;  // fp32: panels x k x 64
  int64_t panels() const { return (n + 63) / 64; }
  bool empty() const { return n == 0; }
};
// Packs W [k x n] (fp32, row-major), rounding to bf16 (nearest even) when bf16 is set.
void packPanels(const float* W, int64_t k, int64_t n, bool bf16, PackedPanels& out, int threads);
// y[m x n] = x[m x k] W + bias for m <= 4 over packed panels (panels split across threads). With bf16
// panels x is rounded to bf16 too and products accumulate in fp32, as in the batched bf16 product.
// AVX-512 only (check avx512Available()).
void panelRowsProduct(const float* x, int64_t m, const PackedPanels& W, const float* bias, float* y, int threads);

// The portable scalar versions, always available (the tests compare the two paths).
double likelihoodRowScalar(float* row, const float* bias, int64_t items, const int32_t* idx, const float* x, int64_t clicks,
                           float invM, float* gradF32, bf16* gradBf16);
void adamScalar(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& s, bf16* pBf16);
bf16 toBf16Scalar(float f);

}  // namespace vaecf::cpu
