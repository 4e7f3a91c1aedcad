// bf16 matrix products with fp32 accumulation and output through oneDNN (AMX or AVX512-BF16 where the
// processor has them). Primitives are created once per shape and cached: nothing is allocated in the
// training loop once every shape has been seen.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace vaecf::cpu {

using bf16 = uint16_t;  // raw bfloat16 bits

// True when this build has oneDNN and the processor runs bf16 matrix products natively.
bool bf16MatmulAvailable();
// A short description for progress output ("oneDNN 2.6 avx512_core_amx", or why bf16 is unavailable).
std::string bf16MatmulDescription();

// fp32 matrix products (gemm<float> in blas.h): OpenBLAS, or oneDNN's fp32 matmul where OpenBLAS would run
// AVX2 kernels on an AVX-512 processor. Debian 12's OpenBLAS 0.3.21 does that on a Zen 5-class AMD EPYC (its
// "Haswell" kernels): measured there at half oneDNN's rate, which uses AVX-512 (bench/results/
// fp32-gemm-*). VAECF_FP32_GEMM=openblas|onednn overrides the choice; the choice is made once per process
// and depends only on the processor, the libraries and that variable, so a seed gives the same numbers.
bool fp32GemmUsesOneDnn();
// "OpenBLAS (Haswell kernels)" or "oneDNN 2.6 (AVX-512)", then after "; " why oneDNN was chosen or which override.
std::string fp32GemmDescription();
// C[m x n] = alpha op(A) op(B) + beta C, row-major with leading dimensions, through oneDNN with `threads`
// OpenMP threads. Primitives are cached per calling thread (oneDNN's shared scratchpad wants a primitive run
// on the thread that created it). Throws where the build has no oneDNN.
void oneDnnSgemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc, int threads);

class Bf16Matmul {
 public:
  Bf16Matmul();
  ~Bf16Matmul();
  // C[m x n] (fp32, row-major, ldc = n) = op(A) op(B) with A, B bf16 row-major:
  // op(A) = A [m x k] or A^T with A [k x m]; op(B) = B [k x n] or B^T with B [n x k].
  void run(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const bf16* A, const bf16* B, float* C, int threads);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vaecf::cpu
