#include "layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "../core/rng.h"
#include "blas.h"
#include "kernels.h"
#include "topk.h"

namespace vaecf::cpu {

namespace {
constexpr int64_t kColumnBlock = 1024;  // columns per task in column sums
constexpr double kLog2Pi = 1.8378770664093453;
template <typename T>
constexpr bool isFloat() {
  return std::is_same_v<T, float>;
}
}  // namespace

// ---- SparseInput ----

template <typename T>
void SparseInput<T>::load(const CsrView& data, const int64_t* rows, int64_t first, int64_t m, int64_t numItems) {
  formDeferredGradient();  // from the batch this one replaces
  if (data.cols != numItems)
    throw InvalidArgument("the click matrix has " + std::to_string(data.cols) + " item columns but the model has " +
                          std::to_string(numItems) + " items");
  numItems_ = numItems;
  m_ = m;
  indptr_.resize(size_t(m + 1));
  indptr_[0] = 0;
  for (int64_t u = 0; u < m; ++u) {
    const int64_t r = rows ? rows[u] : first + u;
    if (r < 0 || r >= data.rows) throw InvalidArgument("row " + std::to_string(r) + " is out of range");
    indptr_[u + 1] = indptr_[u] + (data.indptr[r + 1] - data.indptr[r]);
  }
  const int64_t nnz = indptr_[m];
  indices_.resize(size_t(nnz));
  raw_.resize(size_t(nnz));
  input_.resize(size_t(nnz));
  scale_.assign(size_t(nnz), T(1));
  for (int64_t u = 0; u < m; ++u) {
    const int64_t r = rows ? rows[u] : first + u;
    const int64_t b = data.indptr[r], e = data.indptr[r + 1];
    if (e > b) std::memcpy(indices_.data() + indptr_[u], data.indices + b, size_t(e - b) * sizeof(int32_t));  // never from null
    for (int64_t k = b; k < e; ++k) raw_[size_t(indptr_[u] + (k - b))] = T(data.value(k));
  }
}

template <typename T>
void dropoutScales(const CounterRng& rng, double p, T keep, int64_t n, T* out, int threads) {
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    uint32_t w0[kChunk];
    const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
    philoxWords(rng, uint64_t(i0), len, w0, nullptr, nullptr, nullptr);
    for (int64_t j = 0; j < len; ++j) out[i0 + j] = CounterRng::uniformOf(w0[j]) >= p ? keep : T(0);
  }
}

template <typename T>
void SparseInput<T>::sampleDropout(uint64_t seed, uint64_t step, double p, int threads) {
  const int64_t nnz = this->nnz();
  CounterRng rng(seed, uint32_t(Stream::InputDropout), step);
  if (p > 0) {
    dropoutScales(rng, p, T(1.0 / (1.0 - p)), nnz, scale_.data(), threads);
  } else {
    std::fill(scale_.begin(), scale_.begin() + nnz, T(1));
  }
}

template <typename T>
void SparseInput<T>::normalise(bool withDropout, int threads) {
  formDeferredGradient();  // from the input this rewrites
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t u = 0; u < m_; ++u) {
    double sq = 0;
    for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k) sq += double(raw_[k]) * double(raw_[k]);
    const T inv = sq > 0 ? T(1.0 / std::sqrt(sq)) : T(0);
    for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k) input_[k] = raw_[k] * inv * (withDropout ? scale_[k] : T(1));
  }
}

template <typename T>
double SparseInput<T>::clickSum(int64_t u) const {
  double n = 0;
  for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k) n += double(raw_[k]);
  return n;
}

template <typename T>
void SparseInput<T>::forward(const T* W, const T* b, int64_t cols, T* out, int threads) const {
  if constexpr (isFloat<T>()) {
    // Each user's clicks that input dropout kept, gathered first: the row kernel then streams only the
    // rows it adds, without a branch per click and column block that dropout makes unpredictable.
#pragma omp parallel num_threads(threads)
    {
      std::vector<int32_t> idx;
      std::vector<T> val;
#pragma omp for schedule(dynamic, 8)
      for (int64_t u = 0; u < m_; ++u) {
        T* row = out + u * cols;
        std::memcpy(row, b, size_t(cols) * sizeof(T));
        idx.clear();
        val.clear();
        for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k)
          if (input_[k] != T(0)) {
            idx.push_back(indices_[k]);
            val.push_back(input_[k]);
          }
        sparseRow(row, W, cols, idx.data(), val.data(), int64_t(idx.size()));
      }
    }
  } else {
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
    for (int64_t u = 0; u < m_; ++u) {
      T* row = out + u * cols;
      std::memcpy(row, b, size_t(cols) * sizeof(T));
      for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k) {
        const T v = input_[k];
        if (v == T(0)) continue;
        const T* w = W + int64_t(indices_[k]) * cols;
        for (int64_t c = 0; c < cols; ++c) row[c] += v * w[c];
      }
    }
  }
}

template <typename T>
void SparseInput<T>::buildItemLists() {
  // The batch's clicks by item: itemPtr_[i]..itemPtr_[i + 1] index itemUser_ (ascending) and itemValue_.
  // Clicks that input dropout zeroed add nothing and are left out here.
  const int64_t nItems = numItems_, nnz = this->nnz();
  itemPtr_.assign(size_t(nItems + 1), 0);
  for (int64_t k = 0; k < nnz; ++k)
    if (input_[k] != T(0)) ++itemPtr_[size_t(indices_[k]) + 1];
  for (int64_t i = 0; i < nItems; ++i) itemPtr_[i + 1] += itemPtr_[i];
  itemUser_.resize(size_t(nnz));
  itemValue_.resize(size_t(nnz));
  std::vector<int64_t> fill(itemPtr_.begin(), itemPtr_.end() - 1);
  for (int64_t u = 0; u < m_; ++u)
    for (int64_t k = indptr_[u]; k < indptr_[u + 1]; ++k) {
      if (input_[k] == T(0)) continue;
      const int64_t at = fill[size_t(indices_[k])]++;
      itemUser_[at] = int32_t(u);
      itemValue_[at] = input_[k];
    }
}

template <typename T>
void SparseInput<T>::weightGradient(const T* dOut, int64_t cols, T* dW, int threads) {
  buildItemLists();
#pragma omp parallel for schedule(dynamic, 64) num_threads(threads)
  for (int64_t i = 0; i < numItems_; ++i) {
    T* row = dW + i * cols;
    std::memset(row, 0, size_t(cols) * sizeof(T));
    const int64_t b0 = itemPtr_[i], count = itemPtr_[i + 1] - b0;
    if (count == 0) continue;
    if constexpr (isFloat<T>()) {
      sparseRow(row, dOut, cols, itemUser_.data() + b0, itemValue_.data() + b0, count);
    } else {
      for (int64_t p = b0; p < b0 + count; ++p) {
        const T v = itemValue_[p];
        const T* g = dOut + int64_t(itemUser_[p]) * cols;
        for (int64_t c = 0; c < cols; ++c) row[c] += v * g[c];
      }
    }
  }
}

template <typename T>
void SparseInput<T>::deferWeightGradient(const T* dOut, int64_t cols, T* dW, int threads) {
  deferredOut_ = dOut;
  deferredCols_ = cols;
  deferredTarget_ = dW;
  deferredThreads_ = threads;
}

template <typename T>
void SparseInput<T>::formDeferredGradient() {
  if (!deferredOut_) return;
  const T* dOut = deferredOut_;
  deferredOut_ = nullptr;
  weightGradient(dOut, deferredCols_, deferredTarget_, deferredThreads_);
}

template <typename T>
void SparseInput<T>::adamOnDeferredGradient(T* W, T* M, T* V, const OptimizerOptions& options, int64_t t, int threads) {
  if constexpr (!isFloat<T>()) {
    throw std::logic_error("adamOnDeferredGradient: the fused gradient and Adam step is the float engine's");
  } else {
    if (!deferredOut_) throw std::logic_error("adamOnDeferredGradient: no deferred gradient");
    const int64_t cols = deferredCols_;
    const float* dOut = deferredOut_;
    buildItemLists();
    const AdamStep st = adamStepOf(options, t);
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(dynamic, 64)
      for (int64_t i = 0; i < numItems_; ++i) {
        const int64_t b0 = itemPtr_[i], count = itemPtr_[i + 1] - b0;
        const int64_t at = i * cols;
        if (count == 0) {
          adamUpdate(W + at, nullptr, M + at, V + at, cols, st, nullptr);  // a zero gradient, never read
          continue;
        }
        std::memset(row.data(), 0, size_t(cols) * sizeof(float));
        sparseRow(row.data(), dOut, cols, itemUser_.data() + b0, itemValue_.data() + b0, count);
        adamUpdate(W + at, row.data(), M + at, V + at, cols, st, nullptr);
      }
    }
  }
}

template <typename T>
void SparseInput<T>::topK(T* scores, int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores,
                          int threads) const {
  const int64_t items = numItems_;
#pragma omp parallel num_threads(int(std::max<int64_t>(1, std::min<int64_t>(threads, m_))))
  {
    RowTopK<T> select;
#pragma omp for schedule(dynamic, 4)
    for (int64_t u = 0; u < m_; ++u) {
      T* row = scores + u * items;
      if (excludeSeen)
        for (int64_t j = indptr_[u]; j < indptr_[u + 1]; ++j) row[indices_[j]] = -std::numeric_limits<T>::infinity();
      if (candidates)
        for (int64_t i = 0; i < items; ++i)
          if (!candidates[i]) row[i] = -std::numeric_limits<T>::infinity();
      select(row, items, k, outItems + u * k, outScores + u * k);
    }
  }
}

template <typename T>
void addInto(T* y, const T* x, int64_t n, int threads) {
  forChunks(n, threads, [&](int64_t i0, int64_t i1) {
    if constexpr (isFloat<T>()) addScaled(y + i0, x + i0, 1.0f, i1 - i0);
    else for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
  });
}

// ---- dense ----

void columnSumsBf16(const bf16* d, int64_t m, int64_t cols, float* db, int threads) {
  const int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) num_threads(threads) if (blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(cols, c0 + kColumnBlock);
    std::fill(db + c0, db + c1, 0.0f);
    for (int64_t u = 0; u < m; ++u) addBf16(db + c0, d + u * cols + c0, c1 - c0);  // rows in order: deterministic
  }
}

template <typename T>
void columnSums(const T* d, int64_t m, int64_t cols, T* db, int threads) {
  const int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) num_threads(threads) if (blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(cols, c0 + kColumnBlock);
    std::fill(db + c0, db + c1, T(0));
    for (int64_t u = 0; u < m; ++u) {
      if constexpr (isFloat<T>()) addScaled(db + c0, d + u * cols + c0, 1.0f, c1 - c0);
      else for (int64_t c = c0; c < c1; ++c) db[c] += d[u * cols + c];
    }
  }
}

template <typename T>
void denseForward(const T* X, int64_t m, int64_t in, const T* W, const T* b, int64_t out, T* Y, bool accumulate, int threads) {
  if (b) {
#pragma omp parallel for schedule(static) num_threads(threads) if (m * out > kElementChunk)
    for (int64_t u = 0; u < m; ++u) {
      T* y = Y + u * out;
      if (accumulate) {
        if constexpr (isFloat<T>()) addScaled(y, b, 1.0f, out);
        else for (int64_t c = 0; c < out; ++c) y[c] += b[c];
      } else {
        std::memcpy(y, b, size_t(out) * sizeof(T));
      }
    }
  }
  setBlasThreads(threads);
  gemm(false, false, int(m), int(out), int(in), T(1), X, int(in), W, int(out), (b || accumulate) ? T(1) : T(0), Y, int(out));
}

template <typename T>
void denseBackward(const T* X, const T* dY, int64_t m, int64_t in, const T* W, int64_t out, T* dW, T* db, T* dX, bool accumulateDX,
                   int threads) {
  setBlasThreads(threads);
  // dW = X^T dY: [in x m] x [m x out].
  if (dW) gemm(true, false, int(in), int(out), int(m), T(1), X, int(in), dY, int(out), T(0), dW, int(out));
  if (db) columnSums(dY, m, out, db, threads);
  // dX = dY W^T: [m x out] x [out x in].
  if (dX) gemm(false, true, int(m), int(in), int(out), T(1), dY, int(out), W, int(out), accumulateDX ? T(1) : T(0), dX, int(in));
}

template <typename T>
void requireBf16Products(bool on) {
  if (!on) return;
  if constexpr (!isFloat<T>()) throw InvalidArgument("bf16 precision is only available for the float engine");
  if (!bf16MatmulAvailable()) throw InvalidArgument("bf16 precision is not available here (" + bf16MatmulDescription() + "); use fp32");
}

void bf16CopyOf(const float* W, int64_t n, ZeroedVector<bf16>& out) {
  out.resize(size_t(n));
  toBf16(W, out.data(), n);
}

void denseForwardBf16(Bf16Matmul& mm, const float* X, bf16* Xb, int64_t m, int64_t in, const bf16* Wb, const float* b, int64_t out,
                      float* Y, float* scratch, bool accumulate, int threads) {
  toBf16(X, Xb, m * in);
  float* product = accumulate ? scratch : Y;
  mm.run(false, false, m, out, in, Xb, Wb, product, threads);
  if (!accumulate && !b) return;
#pragma omp parallel for schedule(static) num_threads(threads) if (m * out > kElementChunk)
  for (int64_t u = 0; u < m; ++u) {
    float* y = Y + u * out;
    if (accumulate) addScaled(y, product + u * out, 1.0f, out);
    if (b) addScaled(y, b, 1.0f, out);
  }
}

void denseBackwardBf16(Bf16Matmul& mm, const bf16* Xb, const float* dY, bf16* dYb, int64_t m, int64_t in, const bf16* Wb, int64_t out,
                       float* dW, float* db, float* dX, float* scratch, bool accumulateDX, int threads) {
  toBf16(dY, dYb, m * out);
  if (dW) mm.run(true, false, in, out, m, Xb, dYb, dW, threads);  // [in x m] x [m x out]
  if (db) columnSums(dY, m, out, db, threads);
  if (!dX) return;
  float* product = accumulateDX ? scratch : dX;
  mm.run(false, true, m, in, out, dYb, Wb, product, threads);  // [m x out] x [out x in]
  if (accumulateDX) addInto(dX, product, m * in, threads);
}

// ---- element-wise ----

template <typename T>
void tanhForward(T* a, int64_t n, int threads) {
  forChunks(n, threads, [&](int64_t i0, int64_t i1) {
    if constexpr (isFloat<T>()) tanhInPlace(a + i0, i1 - i0);
    else for (int64_t i = i0; i < i1; ++i) a[i] = std::tanh(a[i]);
  });
}
template <typename T>
void tanhBackwardOf(T* grad, const T* act, int64_t n, int threads) {
  forChunks(n, threads, [&](int64_t i0, int64_t i1) {
    if constexpr (isFloat<T>()) tanhBackward(grad + i0, act + i0, i1 - i0);
    else for (int64_t i = i0; i < i1; ++i) grad[i] *= T(1) - act[i] * act[i];
  });
}
template <typename T>
void swishOf(const T* x, T* out, int64_t n, int threads) {
  forChunks(n, threads, [&](int64_t i0, int64_t i1) {
    if constexpr (isFloat<T>()) swishForward(x + i0, out + i0, i1 - i0);
    else for (int64_t i = i0; i < i1; ++i) out[i] = x[i] / (T(1) + std::exp(-x[i]));
  });
}
template <typename T>
void swishBackwardOf(T* grad, const T* x, int64_t n, int threads) {
  forChunks(n, threads, [&](int64_t i0, int64_t i1) {
    if constexpr (isFloat<T>()) {
      swishBackward(grad + i0, x + i0, i1 - i0);
    } else {
      for (int64_t i = i0; i < i1; ++i) {
        const T s = T(1) / (T(1) + std::exp(-x[i]));
        grad[i] *= s * (T(1) + x[i] * (T(1) - s));
      }
    }
  });
}

// ---- layer normalisation ----

template <typename T>
void layerNormForward(const T* a, int64_t m, int64_t n, const T* gamma, const T* beta, double eps, T* y, T* xhat, T* rstd, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (m * n > kElementChunk)
  for (int64_t u = 0; u < m; ++u) {
    const T* row = a + u * n;
    if constexpr (isFloat<T>()) {
      rstd[u] = layerNormRow(row, n, gamma, beta, float(eps), y + u * n, xhat + u * n);  // kernels.cpp, every SIMD target
      continue;
    }
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += double(row[i]);
    mean /= double(n);
    double var = 0;
    for (int64_t i = 0; i < n; ++i) var += (double(row[i]) - mean) * (double(row[i]) - mean);
    var /= double(n);
    const T r = T(1.0 / std::sqrt(var + eps)), mu = T(mean);
    rstd[u] = r;
    T* xh = xhat + u * n;
    T* out = y + u * n;
    for (int64_t i = 0; i < n; ++i) {
      xh[i] = (row[i] - mu) * r;
      out[i] = gamma[i] * xh[i] + beta[i];
    }
  }
}

template <typename T>
void layerNormBackward(const T* dy, const T* xhat, const T* rstd, const T* gamma, int64_t m, int64_t n, T* da, T* dgamma, T* dbeta,
                       int threads) {
  // dgamma = sum_u dy * xhat, dbeta = sum_u dy (column blocks: deterministic), before da may overwrite dy.
  const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) num_threads(threads) if (blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(n, c0 + kColumnBlock);
    for (int64_t c = c0; c < c1; ++c) dgamma[c] = dbeta[c] = T(0);
    for (int64_t u = 0; u < m; ++u) {
      if constexpr (isFloat<T>()) {
        addProduct(dgamma + c0, dy + u * n + c0, xhat + u * n + c0, c1 - c0);
        addScaled(dbeta + c0, dy + u * n + c0, 1.0f, c1 - c0);
        continue;
      }
      for (int64_t c = c0; c < c1; ++c) {
        dgamma[c] += dy[u * n + c] * xhat[u * n + c];
        dbeta[c] += dy[u * n + c];
      }
    }
  }
  // da = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
#pragma omp parallel for schedule(static) num_threads(threads) if (m * n > kElementChunk)
  for (int64_t u = 0; u < m; ++u) {
    if constexpr (isFloat<T>()) {
      layerNormBackwardRow(dy + u * n, xhat + u * n, gamma, rstd[u], n, da + u * n);
      continue;
    }
    const T* d = dy + u * n;
    const T* xh = xhat + u * n;
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double g = double(d[i]) * double(gamma[i]);
      s1 += g;
      s2 += g * double(xh[i]);
    }
    const T m1 = T(s1 / double(n)), m2 = T(s2 / double(n)), r = rstd[u];
    T* out = da + u * n;
    for (int64_t i = 0; i < n; ++i) out[i] = r * (d[i] * gamma[i] - m1 - xh[i] * m2);
  }
}

// ---- likelihood and KL ----

template <typename T>
void multinomialLikelihood(T* logits, const T* bias, int64_t items, const SparseInput<T>& batch, double* rowNll, bf16* gradBf16,
                           int threads) {
  const int64_t m = batch.rows();
  const int64_t* indptr = batch.indptr();
  const int32_t* indices = batch.indices();
  const T* raw = batch.raw();
  const T invM = T(1.0 / double(m));
  if constexpr (isFloat<T>()) {
    // bias, logsumexp, likelihood and its gradient in one SIMD kernel per row.
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t u = 0; u < m; ++u) {
      float* row = logits + u * items;
      rowNll[u] = likelihoodRow(row, bias, items, indices + indptr[u], raw + indptr[u], indptr[u + 1] - indptr[u], invM,
                                gradBf16 ? nullptr : row, gradBf16 ? gradBf16 + u * items : nullptr);
    }
  } else {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t u = 0; u < m; ++u) {
      T* row = logits + u * items;
      if (bias)
        for (int64_t i = 0; i < items; ++i) row[i] += bias[i];
      double n = 0, dot = 0;
      for (int64_t k = indptr[u]; k < indptr[u + 1]; ++k) {
        n += double(raw[k]);
        dot += double(raw[k]) * double(row[indices[k]]);
      }
      T mx = row[0];
      for (int64_t i = 1; i < items; ++i) mx = std::max(mx, row[i]);
      double sum = 0;
      for (int64_t i = 0; i < items; ++i) {
        row[i] = std::exp(row[i] - mx);
        sum += double(row[i]);
      }
      rowNll[u] = n * (double(mx) + std::log(sum)) - dot;
      const T scale = T(n / sum) * invM;
      for (int64_t i = 0; i < items; ++i) row[i] *= scale;
      for (int64_t k = indptr[u]; k < indptr[u + 1]; ++k) row[indices[k]] -= raw[k] * invM;
    }
  }
}

template <typename T>
double gaussianKl(const T* enc, int64_t m, int64_t D, int threads) {
  std::vector<double> perUser(size_t(m), 0.0);
#pragma omp parallel for schedule(static) num_threads(threads) if (m > 1)
  for (int64_t u = 0; u < m; ++u) {
    const T* mu = enc + u * 2 * D;
    const T* lv = mu + D;
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += 0.5 * (-double(lv[d]) + std::exp(double(lv[d])) + double(mu[d]) * double(mu[d]) - 1.0);
    perUser[size_t(u)] = s;
  }
  double kl = 0;
  for (double s : perUser) kl += s;
  return kl;
}

template <typename T>
void gaussianKlBackward(const T* enc, int64_t m, int64_t D, T* dEnc, T weight, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (m > 1)
  for (int64_t u = 0; u < m; ++u) {
    const T* mu = enc + u * 2 * D;
    const T* lv = mu + D;
    T* dmu = dEnc + u * 2 * D;
    T* dlv = dmu + D;
    for (int64_t d = 0; d < D; ++d) {
      dmu[d] += weight * mu[d];
      dlv[d] += weight * T(0.5) * (std::exp(lv[d]) - T(1));
    }
  }
}

template <typename T>
double compositePriorKl(const T* enc, const T* prior, const T* z, int64_t m, int64_t D, const double* w, const CompositePrior& p,
                        T* dz, T* dEnc, T scale, int threads) {
  const double logW0 = std::log(p.weights[0]), logW1 = std::log(p.weights[1]), logW2 = std::log(p.weights[2]);
  const double wideVar = std::exp(p.wideLogVar);
  std::vector<double> perUser(size_t(m), 0.0);
  if constexpr (isFloat<T>()) {
    // The vector kernel (kernels.h compositePriorKlRow), the same terms in double a vector of dimensions at a time.
    const CompositePriorConstants k{{logW0, logW1, logW2}, p.wideLogVar, wideVar, kLog2Pi};
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t u = 0; u < m; ++u)
      perUser[size_t(u)] = w[u] * compositePriorKlRow(enc + u * 2 * D, prior + u * 2 * D, z + u * D, D, k, double(scale) * w[u],
                                                       dz ? dz + u * D : nullptr, dz ? dEnc + u * 2 * D : nullptr);
    double kl = 0;
    for (double v : perUser) kl += v;
    return kl;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t u = 0; u < m; ++u) {
    const T* mu = enc + u * 2 * D;
    const T* lv = mu + D;
    const T* pmu = prior + u * 2 * D;
    const T* plv = pmu + D;
    const T* zu = z + u * D;
    double s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double zz = double(zu[d]), diff = zz - double(mu[d]), var = std::exp(double(lv[d]));
      const double logq = -0.5 * (double(lv[d]) + kLog2Pi + diff * diff / var);
      const double pvar = std::exp(double(plv[d])), pdiff = zz - double(pmu[d]);
      const double c0 = logW0 - 0.5 * (kLog2Pi + zz * zz);
      const double c1 = logW1 - 0.5 * (double(plv[d]) + kLog2Pi + pdiff * pdiff / pvar);
      const double c2 = logW2 - 0.5 * (p.wideLogVar + kLog2Pi + zz * zz / wideVar);
      const double mx = std::max(c0, std::max(c1, c2));
      const double e0 = std::exp(c0 - mx), e1 = std::exp(c1 - mx), e2 = std::exp(c2 - mx), total = e0 + e1 + e2;
      const double logp = mx + std::log(total);
      s += logq - logp;
      if (dz) {
        // d log p / dz = -sum_k r_k (z - mu_k) / var_k with responsibilities r_k = e_k / total.
        const double dlogp = -(e0 * zz + e1 * pdiff / pvar + e2 * zz / wideVar) / total;
        const double g = double(scale) * w[u];
        dz[u * D + d] += T(g * (-diff / var - dlogp));
        dEnc[u * 2 * D + d] += T(g * (diff / var));
        dEnc[u * 2 * D + D + d] += T(g * (-0.5 + 0.5 * diff * diff / var));
      }
    }
    perUser[size_t(u)] = w[u] * s;
  }
  double kl = 0;
  for (double v : perUser) kl += v;
  return kl;
}

// ---- Adam ----

AdamStep adamStepOf(const OptimizerOptions& o, int64_t t) {
  const double bc1 = 1.0 - std::pow(o.beta1, double(t));
  const double bc2 = 1.0 - std::pow(o.beta2, double(t));
  const bool decoupled = o.decoupled && o.weightDecay != 0, coupled = !o.decoupled && o.weightDecay != 0;
  return AdamStep{float(o.learningRate / bc1), float(o.beta1), float(o.beta2), float(o.epsilon), float(std::sqrt(bc2)),
                  float(o.weightDecay), float(1.0 - o.learningRate * o.weightDecay), coupled, decoupled};
}

template <typename T>
void adamRange(T* p, const T* g, T* m, T* v, int64_t n, const OptimizerOptions& o, int64_t t, int threads, bf16* pBf16) {
  // PyTorch: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  if constexpr (isFloat<T>()) {
    const AdamStep st = adamStepOf(o, t);
    forChunks(n, threads, [&](int64_t i0, int64_t i1) { adamUpdate(p + i0, g + i0, m + i0, v + i0, i1 - i0, st, pBf16 ? pBf16 + i0 : nullptr); });
  } else {
    if (pBf16) throw std::logic_error("adamRange: a bf16 copy is only made by the float engine");
    const double bc1 = 1.0 - std::pow(o.beta1, double(t));
    const double bc2 = 1.0 - std::pow(o.beta2, double(t));
    const bool decoupled = o.decoupled && o.weightDecay != 0, coupled = !o.decoupled && o.weightDecay != 0;
    const T stepSize = T(o.learningRate / bc1), bc2Sqrt = T(std::sqrt(bc2)), b1 = T(o.beta1), b2 = T(o.beta2), eps = T(o.epsilon);
    const T decay = T(o.weightDecay), shrink = T(1.0 - o.learningRate * o.weightDecay);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
      T gi = g[i];
      if (coupled) gi += decay * p[i];
      if (decoupled) p[i] *= shrink;
      m[i] = b1 * m[i] + (T(1) - b1) * gi;
      v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
      p[i] -= stepSize * m[i] / (std::sqrt(v[i]) / bc2Sqrt + eps);
    }
  }
}

// ---- instantiations ----

#define VAECF_LAYERS(T)                                                                                                            \
  template class SparseInput<T>;                                                                                                   \
  template void dropoutScales<T>(const CounterRng&, double, T, int64_t, T*, int);                                                  \
  template void addInto<T>(T*, const T*, int64_t, int);                                                                           \
  template void requireBf16Products<T>(bool);                                                                           \
  template void denseForward<T>(const T*, int64_t, int64_t, const T*, const T*, int64_t, T*, bool, int);                          \
  template void denseBackward<T>(const T*, const T*, int64_t, int64_t, const T*, int64_t, T*, T*, T*, bool, int);                 \
  template void columnSums<T>(const T*, int64_t, int64_t, T*, int);                                                                \
  template void tanhForward<T>(T*, int64_t, int);                                                                                  \
  template void tanhBackwardOf<T>(T*, const T*, int64_t, int);                                                                     \
  template void swishOf<T>(const T*, T*, int64_t, int);                                                                            \
  template void swishBackwardOf<T>(T*, const T*, int64_t, int);                                                                    \
  template void layerNormForward<T>(const T*, int64_t, int64_t, const T*, const T*, double, T*, T*, T*, int);                      \
  template void layerNormBackward<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*, int);                   \
  template void multinomialLikelihood<T>(T*, const T*, int64_t, const SparseInput<T>&, double*, bf16*, int);                       \
  template double gaussianKl<T>(const T*, int64_t, int64_t, int);                                                                 \
  template void gaussianKlBackward<T>(const T*, int64_t, int64_t, T*, T, int);                                                     \
  template double compositePriorKl<T>(const T*, const T*, const T*, int64_t, int64_t, const double*, const CompositePrior&, T*, T*, \
                                      T, int);                                                                                     \
  template void adamRange<T>(T*, const T*, T*, T*, int64_t, const OptimizerOptions&, int64_t, int, bf16*);

VAECF_LAYERS(float)
VAECF_LAYERS(double)

}  // namespace vaecf::cpu
