// Thin typed wrappers over CBLAS (OpenBLAS) for row-major matrices.
//
// Threading: OpenBLAS runs every product on the calling thread, and gemm() splits the columns of C over
// the calling thread's OpenMP threads itself (setBlasThreads). OpenBLAS's own thread server is not used
// for products: with Debian's pthread build (0.3.21) it hung for good when several models trained in
// one process (every caller spinning in exec_blas_async or blocked in sgemm_thread_*, the server's
// threads asleep), even with the callers serialised. Single-threaded OpenBLAS calls from several
// threads at once are safe. LAPACK (EASE's Cholesky) still uses the server, alone: it takes
// exclusiveBlas(), products take the shared side of the same lock.
#pragma once
#if defined(VAECF_USE_ACCELERATE)
// macOS: Apple's Accelerate (CBLAS and the classic LAPACK interface); its threads follow VECLIB_MAXIMUM_THREADS.
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <type_traits>

#include "onednn_matmul.h"

#if defined(VAECF_USE_ACCELERATE)
inline void openblas_set_num_threads(int) {}
#else
extern "C" void openblas_set_num_threads(int num_threads);
#endif

namespace vaecf::cpu {

inline std::shared_mutex& blasLock() {
  static std::shared_mutex lock;
  return lock;
}
// OpenBLAS's own threads off for the whole process (once, before the first product).
inline void singleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
// Threads gemm() uses on this thread.
inline int& blasThreadsHere() {
  thread_local int threads = 1;
  return threads;
}
inline void setBlasThreads(int threads) { blasThreadsHere() = std::max(1, threads); }

// LAPACK with `threads` OpenBLAS threads while no product runs; back to one thread after.
class ExclusiveBlas {
 public:
  explicit ExclusiveBlas(int threads) : hold_(blasLock()) {
    singleThreadedBlas();
    openblas_set_num_threads(std::max(1, threads));
  }
  ~ExclusiveBlas() { openblas_set_num_threads(1); }

 private:
  std::unique_lock<std::shared_mutex> hold_;
};

inline void cblasGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                      float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb,
              beta, C, ldc);
}
inline void cblasGemm(bool transA, bool transB, int m, int n, int k, double alpha, const double* A, int lda, const double* B, int ldb,
                      double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb,
              beta, C, ldc);
}

// C[m x n] = alpha * op(A) op(B) + beta * C, row-major; C's columns split over this thread's
// setBlasThreads() threads in 16-aligned slices (each slice one single-threaded OpenBLAS product).
// fp32 products of at least 4M multiply-adds go to oneDNN instead where fp32GemmUsesOneDnn() (an AVX-512
// processor whose OpenBLAS kernels are AVX2 ones); double (the reference engine) always stays on OpenBLAS.
template <typename T>
inline void gemm(bool transA, bool transB, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  const int threads = blasThreadsHere();
  if constexpr (std::is_same_v<T, float>) {
    if (double(m) * double(n) * double(k) >= 4e6 && fp32GemmUsesOneDnn()) {
      oneDnnSgemm(transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, threads);
      return;
    }
  }
  singleThreadedBlas();
  std::shared_lock<std::shared_mutex> hold(blasLock());
  if (threads <= 1 || n < 64 || double(m) * double(n) * double(k) < 4e6) {
    cblasGemm(transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int slices = std::min(threads, (n + 31) / 32);
  const int width = ((n + slices - 1) / slices + 15) / 16 * 16;
#pragma omp parallel for schedule(static, 1) num_threads(slices)
  for (int s = 0; s < slices; ++s) {
    const int first = s * width;
    if (first >= n) continue;
    const int cols = std::min(width, n - first);
    // Columns [first, first + cols) of op(B): B[k x n] row-major, or B[n x k] when transposed.
    const T* Bs = transB ? B + size_t(first) * size_t(ldb) : B + first;
    cblasGemm(transA, transB, m, cols, k, alpha, A, lda, Bs, ldb, beta, C + first, ldc);
  }
}

}  // namespace vaecf::cpu
