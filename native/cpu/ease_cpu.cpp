#include "ease_cpu.h"

#include "topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "blas.h"

#if !defined(VAECF_USE_ACCELERATE)
// LAPACK's Fortran interface (OpenBLAS); Accelerate's header declares the same functions (non-const).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info);
}
#endif

namespace vaecf::cpu {

namespace {
// LAPACK's integers and characters as the linked library declares them (const_cast for Accelerate's).
#if defined(VAECF_USE_ACCELERATE)
#define VAECF_LAPACK_ARGS(u, n, lda) const_cast<char*>(u), const_cast<__CLPK_integer*>(n), a, const_cast<__CLPK_integer*>(lda), info
#else
#define VAECF_LAPACK_ARGS(u, n, lda) u, n, a, lda, info
#endif
inline void potrf(const char* u, const int* n, double* a, const int* lda, int* info) { dpotrf_(VAECF_LAPACK_ARGS(u, n, lda)); }
inline void potrf(const char* u, const int* n, float* a, const int* lda, int* info) { spotrf_(VAECF_LAPACK_ARGS(u, n, lda)); }
inline void potri(const char* u, const int* n, double* a, const int* lda, int* info) { dpotri_(VAECF_LAPACK_ARGS(u, n, lda)); }
inline void potri(const char* u, const int* n, float* a, const int* lda, int* info) { spotri_(VAECF_LAPACK_ARGS(u, n, lda)); }
#undef VAECF_LAPACK_ARGS
}  // namespace

void Ease::fit(const CsrView& train, double lambda, bool doublePrecision) {
  if (!(lambda > 0)) throw InvalidArgument("EASE lambda: expected a positive number");
  if (train.cols > 46340) throw InvalidArgument("EASE: at most 46,340 items (the item x item matrix index must fit in 32 bits for LAPACK)");
  validateCsr(train, "EASE training matrix", true);
  items_ = train.cols;
  if (doublePrecision) solve<double>(train, lambda);
  else solve<float>(train, lambda);
}

template <typename T>
void Ease::solve(const CsrView& X, double lambda) {
  const int64_t n = X.cols;
  std::vector<T> G(size_t(n * n), T(0));
  // G = X^T X from the sparse rows; thread t owns the rows i of G in its block (no races, fixed order).
  const int64_t block = 256;
  const int64_t nBlocks = (n + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
  for (int64_t b = 0; b < nBlocks; ++b) {
    const int64_t lo = b * block, hi = std::min(n, lo + block);
    for (int64_t u = 0; u < X.rows; ++u) {
      for (int64_t p = X.indptr[u]; p < X.indptr[u + 1]; ++p) {
        const int64_t i = X.indices[p];
        if (i < lo || i >= hi) continue;
        const T vi = T(X.value(p));
        T* row = G.data() + i * n;
        for (int64_t q = X.indptr[u]; q < X.indptr[u + 1]; ++q) row[X.indices[q]] += vi * T(X.value(q));
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) G[size_t(i * n + i)] += T(lambda);
  // Cholesky inverse in place. G is symmetric, so row-major 'U' is column-major 'L': either triangle works.
  const int ni = int(n);
  int info = 0, inverseInfo = 0;
  {
    // Cholesky and inverse on OpenBLAS's threads, with no product running beside them (blas.h).
    ExclusiveBlas lapack(threads_);
    potrf("L", &ni, G.data(), &ni, &info);
    if (info == 0) potri("L", &ni, G.data(), &ni, &inverseInfo);
  }
  if (info != 0) throw std::runtime_error("EASE: the Gram matrix plus lambda is not positive definite (potrf info " + std::to_string(info) + "); try a larger lambda");
  if (inverseInfo != 0) throw std::runtime_error("EASE: inverting the Gram matrix failed (potri info " + std::to_string(inverseInfo) + ")");
  // potri filled the column-major lower triangle = row-major upper triangle (j >= i); mirror it.
  weights_.assign(size_t(n * n), 0.0f);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads_)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const T pij = j >= i ? G[size_t(i * n + j)] : G[size_t(j * n + i)];
      const T pjj = G[size_t(j * n + j)];
      weights_[size_t(i * n + j)] = i == j ? 0.0f : float(-pij / pjj);
    }
}

void Ease::setWeights(int64_t items, const float* w) {
  items_ = items;
  weights_.assign(w, w + items * items);
}

void Ease::recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                     int32_t* outItems, float* outScores) const {
  if (weights_.empty()) throw InvalidArgument("EASE: not fitted");
  if (data.cols != items_)
    throw InvalidArgument("EASE: the matrix has " + std::to_string(data.cols) + " items, the model " + std::to_string(items_));
  const int64_t n = items_;
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> s(static_cast<size_t>(n), 0.0f);
    RowTopK<float> select;
#pragma omp for schedule(dynamic, 8)
    for (int64_t r = 0; r < m; ++r) {
      const int64_t u = first + r;
      std::fill(s.begin(), s.end(), 0.0f);
      for (int64_t p = data.indptr[u]; p < data.indptr[u + 1]; ++p) {
        const float v = data.value(p);
        const float* b = weights_.data() + int64_t(data.indices[p]) * n;
        for (int64_t j = 0; j < n; ++j) s[size_t(j)] += v * b[j];
      }
      if (excludeSeen)
        for (int64_t p = data.indptr[u]; p < data.indptr[u + 1]; ++p) s[size_t(data.indices[p])] = -std::numeric_limits<float>::infinity();
      if (candidates)
        for (int64_t j = 0; j < n; ++j)
          if (!candidates[j]) s[size_t(j)] = -std::numeric_limits<float>::infinity();
      select(s.data(), n, k, outItems + r * k, outScores + r * k);
    }
  }
}

}  // namespace vaecf::cpu
