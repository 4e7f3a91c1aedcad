// Thin typed wrappers over CBLAS (OpenBLAS) for row-major matrices.
#pragma once
#include <cblas.h>

extern "C" void openblas_set_num_threads(int num_threads);

namespace vaecf::cpu {

// C[m x n] = alpha * op(A) op(B) + beta * C, row-major.
inline void gemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(bool transA, bool transB, int m, int n, int k, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void setBlasThreads(int threads) { openblas_set_num_threads(threads); }

}  // namespace vaecf::cpu
