// The layers the CPU models are composed of, each with its forward and backward pass. T = float runs
// the SIMD kernels and OpenBLAS; T = double is the higher-precision reference the gradient checks use.
// Matrices are row-major, one row per user of the batch: [m x width].
//
//   SparseInput     the batch's clicks (CSR), x_u / ||x_u||, inverted dropout, and the item layer
//                   A = X W + b that reads only the clicked rows of W (no dense batch x items input)
//   dense           Y = X W + b, with the gradients dW = X^T dY, db = colsum(dY), dX = dY W^T
//   tanh, swish     element-wise activations
//   layerNorm       y = gamma * (a - mean) / sqrt(var + eps) + beta per row (Ba et al. 2016)
//   multinomial     nll_u = n_u logsumexp(logits_u) - sum_i x_ui logits_ui (Liang et al. eq. 2)
//   gaussianKl      KL(N(mu, diag exp(logvar)) || N(0, I)) (Liang et al. eq. 4)
//   compositePrior  log q(z | x) - log p(z) for RecVAE's mixture prior, evaluated at a sample z
//                   (Shenbin et al. 2020, eq. 5)
//   adam            PyTorch's Adam / AdamW on a range of parameters
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../core/csr.h"
#include "../core/engine.h"
#include "kernels.h"
#include "zeroed_vector.h"

namespace vaecf::cpu {

constexpr int64_t kElementChunk = 1 << 14;  // elements per task in element-wise loops

// Runs f(i0, i1) over [0, n) in chunks of kElementChunk split across threads (one thread when small).
template <typename F>
void forChunks(int64_t n, int threads, const F& f) {
  const int64_t chunks = (n + kElementChunk - 1) / kElementChunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) f(c * kElementChunk, std::min(n, (c + 1) * kElementChunk));
}

// The users of one batch as CSR over the items, and the encoder's input values on those clicks.
template <typename T>
class SparseInput {
 public:
  // Gathers rows `rows[0..m)` of data (or rows [first, first + m) when rows is null).
  void load(const CsrView& data, const int64_t* rows, int64_t first, int64_t m, int64_t numItems);
  // Inverted dropout on the clicks: scale 0 (dropped, probability p) or 1 / (1 - p), drawn from the
  // counter RNG's input-dropout stream at (seed, step).
  void sampleDropout(uint64_t seed, uint64_t step, double p, int threads);
  // input = x / ||x||_2 per user, times the dropout scale when `withDropout`.
  void normalise(bool withDropout, int threads);
  // out[m x cols] = b + input W  (W [numItems x cols]).
  void forward(const T* W, const T* b, int64_t cols, T* out, int threads) const;
  // dW[numItems x cols] = input^T dOut, every row written (zeros for items the batch did not click),
  // summed in ascending user order: deterministic whatever the thread count.
  void weightGradient(const T* dOut, int64_t cols, T* dW, int threads);
  // A deferred weight gradient (training steps): the gradient dW = input^T dOut is not formed now but
  // either fused with Adam (adamOnDeferredGradient) or formed into dW when asked (formDeferredGradient).
  // load() and normalise() form it first, since they replace what it is formed from; dOut must stay
  // valid until then.
  void deferWeightGradient(const T* dOut, int64_t cols, T* dW, int threads);
  bool hasDeferredGradient() const { return deferredOut_ != nullptr; }
  void formDeferredGradient();
  void discardDeferredGradient() { deferredOut_ = nullptr; }
  // Adam / AdamW (step t) on W [numItems x cols] with the deferred gradient (float only): each item's
  // gradient row is formed in a buffer of this thread and that row of W, M and V updated at once, so the
  // gradient never goes through memory and items the batch did not click cost no gradient reads or
  // writes. The same sums and the same Adam arithmetic as weightGradient then adamRange: bit for bit.
  // The gradient stays deferred (formDeferredGradient still gives it).
  void adamOnDeferredGradient(T* W, T* M, T* V, const OptimizerOptions& options, int64_t t, int threads);

  int64_t rows() const { return m_; }
  int64_t nnz() const { return int64_t(indices_.size()); }
  const int64_t* indptr() const { return indptr_.data(); }
  const int32_t* indices() const { return indices_.data(); }
  const T* raw() const { return raw_.data(); }          // the click values as given
  const T* input() const { return input_.data(); }      // after normalise()
  T* dropoutScale() { return scale_.data(); }           // [nnz]; tests may overwrite it
  // Sum of the click values of user u (n_u in the likelihood).
  double clickSum(int64_t u) const;
  // Top-k of each user's row of scores [m x numItems] (modified: the user's own clicks set to -inf when
  // excludeSeen, items with candidates[i] == 0 too), best first, ties by the smaller index; outItems /
  // outScores [m x k], padded with -1 / -inf.
  void topK(T* scores, int64_t k, bool excludeSeen, const uint8_t* candidates, int32_t* outItems, float* outScores, int threads) const;

 private:
  // itemPtr_ / itemUser_ / itemValue_: the batch's clicks that dropout kept, by item.
  void buildItemLists();
  int64_t m_ = 0, numItems_ = 0;
  const T* deferredOut_ = nullptr;
  T* deferredTarget_ = nullptr;
  int64_t deferredCols_ = 0;
  int deferredThreads_ = 1;
  std::vector<int64_t> indptr_{0};
  std::vector<int32_t> indices_;
  std::vector<T> raw_, input_, scale_;
  std::vector<int64_t> itemPtr_;
  std::vector<int32_t> itemUser_;
  std::vector<T> itemValue_;
};

// y[0..n) += x[0..n) (the SIMD kernel for float).
template <typename T>
void addInto(T* y, const T* x, int64_t n, int threads);

// Y[m x out] = X[m x in] W[in x out] + b (b may be null: no bias). accumulate: Y += instead of Y =.
template <typename T>
void denseForward(const T* X, int64_t m, int64_t in, const T* W, const T* b, int64_t out, T* Y, bool accumulate, int threads);
// Gradients of a dense layer from dY [m x out]: dW = X^T dY and db = colsum(dY) (written, not added;
// either may be null), dX = dY W^T (when dX is given; added to dX when accumulateDX).
template <typename T>
void denseBackward(const T* X, const T* dY, int64_t m, int64_t in, const T* W, int64_t out, T* dW, T* db, T* dX, bool accumulateDX,
                   int threads);
// bf16 products (Mult-VAE's item output layer, RecVAE's decoder and encoder) need the float engine and a
// processor that oneDNN runs bf16 on natively; throws InvalidArgument saying which is missing when `on`.
template <typename T>
void requireBf16Products(bool on);
// out <- bf16(W[0..n)), resized: the bf16 copy of a weight tensor that the bf16 products read.
void bf16CopyOf(const float* W, int64_t n, ZeroedVector<bf16>& out);

// The same dense layer with bf16 operands (oneDNN on AMX / AVX512-BF16; fp32 accumulation and output),
// for the float engine where bf16MatmulAvailable(). Forward: Xb <- bf16(X) (kept for the weight
// gradient), Y (+)= Xb Wb + b, with Wb a bf16 copy of W [in x out] and scratch [m x out] when
// accumulating. Backward: dYb <- bf16(dY); dW = Xb^T dYb, db = colsum(dY) in fp32, dX (+)= dYb Wb^T
// (scratch [m x in] when accumulating).
void denseForwardBf16(Bf16Matmul& mm, const float* X, bf16* Xb, int64_t m, int64_t in, const bf16* Wb, const float* b, int64_t out,
                      float* Y, float* scratch, bool accumulate, int threads);
void denseBackwardBf16(Bf16Matmul& mm, const bf16* Xb, const float* dY, bf16* dYb, int64_t m, int64_t in, const bf16* Wb, int64_t out,
                       float* dW, float* db, float* dX, float* scratch, bool accumulateDX, int threads);
// db[cols] = sum over the m rows of d[m x cols] (column blocks per thread: deterministic order).
template <typename T>
void columnSums(const T* d, int64_t m, int64_t cols, T* db, int threads);
// The same over a bf16 matrix (a gradient kept only in bf16), fp32 sums: db written whole.
void columnSumsBf16(const bf16* d, int64_t m, int64_t cols, float* db, int threads);

// Inverted dropout's scales: out[i] = keep where rng.uniform(i) >= p, else 0, for i in [0, n) (the
// Philox words drawn by the vector kernel, in chunks split across threads; CounterRng's stream exactly).
template <typename T>
void dropoutScales(const CounterRng& rng, double p, T keep, int64_t n, T* out, int threads);

// Element-wise activations over n values (chunks split across threads).
template <typename T>
void tanhForward(T* a, int64_t n, int threads);                        // a = tanh(a)
template <typename T>
void tanhBackwardOf(T* grad, const T* act, int64_t n, int threads);    // grad *= 1 - act^2
template <typename T>
void swishOf(const T* x, T* out, int64_t n, int threads);               // out = x sigmoid(x)
template <typename T>
void swishBackwardOf(T* grad, const T* x, int64_t n, int threads);     // grad *= d swish(x) / dx

// Layer normalisation of each row of a [m x n] with gain gamma [n] and shift beta [n]:
//   xhat = (a - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased variance), y = gamma * xhat + beta.
// Keeps xhat [m x n] and rstd [m] for the backward pass.
template <typename T>
void layerNormForward(const T* a, int64_t m, int64_t n, const T* gamma, const T* beta, double eps, T* y, T* xhat, T* rstd, int threads);
// From dy: da [m x n] (written; may alias dy), dgamma and dbeta [n] (written).
template <typename T>
void layerNormBackward(const T* dy, const T* xhat, const T* rstd, const T* gamma, int64_t m, int64_t n, T* da, T* dgamma, T* dbeta,
                       int threads);

// The multinomial log-likelihood over the logits [m x items] of the batch's users, in place: adds
// the bias, then overwrites the logits with d(sum_u nll_u / m) / d logits = (n_u softmax_u - x_u) / m.
// rowNll[u] receives nll_u. The float path is one fused SIMD kernel per row (gradBf16, when given,
// receives the gradient in bf16 instead of the logits).
template <typename T>
void multinomialLikelihood(T* logits, const T* bias, int64_t items, const SparseInput<T>& batch, double* rowNll, bf16* gradBf16,
                           int threads);

// KL(q || N(0, I)) of each user's q = N(mu, diag exp(logvar)) from enc [m x 2D] (mu, then logvar),
// summed over the batch in double (Liang et al. eq. 4's KL term): users split across threads, summed
// in user order (the same total whatever the thread count).
template <typename T>
double gaussianKl(const T* enc, int64_t m, int64_t D, int threads);
// Its gradient: dEnc [m x 2D] += weight * dKL/d(mu, logvar) = weight * (mu, (exp(logvar) - 1) / 2).
template <typename T>
void gaussianKlBackward(const T* enc, int64_t m, int64_t D, T* dEnc, T weight, int threads);

// RecVAE's composite prior p(z) = sum_k w_k N(z; mu_k, exp(logvar_k)) per latent dimension with three
// components: N(0, 1), the previous encoder's posterior N(pmu, exp(plogvar)) for the same user, and a
// wide N(0, exp(wideLogVar)).
struct CompositePrior {
  double weights[3] = {3.0 / 20.0, 3.0 / 4.0, 1.0 / 10.0};
  double wideLogVar = 10.0;
};
// The Monte Carlo KL term at the sample z = mu + eps exp(logvar / 2), per user u with weight w[u]:
//   kl_u = w_u * sum_d (log q(z_d | x_u) - log p(z_d)),   log q = log N(z; mu, exp(logvar)).
// enc [m x 2D] (mu, logvar), prior [m x 2D] (the old encoder's mu, logvar), z and eps [m x D].
// Returns sum_u kl_u. With the gradient buffers given, adds scale * d kl_u / d z to dz [m x D] and
// scale * the explicit d kl_u / d (mu, logvar) (z held fixed) to dEnc [m x 2D]; the caller chains dz
// through z = mu + eps * exp(logvar / 2).
template <typename T>
double compositePriorKl(const T* enc, const T* prior, const T* z, int64_t m, int64_t D, const double* w, const CompositePrior& p,
                        T* dz, T* dEnc, T scale, int threads);

// Adam (PyTorch's formula; AdamW when options.decoupled) on n parameters at optimizer step t >= 1
// (the step after this update's increment); pBf16 (float only), when given, receives a bf16 copy of the
// new parameters.
template <typename T>
void adamRange(T* p, const T* g, T* m, T* v, int64_t n, const OptimizerOptions& options, int64_t t, int threads, bf16* pBf16 = nullptr);
// The float kernel's constants for step t (bias corrections, weight decay) of those options.
AdamStep adamStepOf(const OptimizerOptions& options, int64_t t);

}  // namespace vaecf::cpu
