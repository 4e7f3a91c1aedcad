// EASE (Steck 2019): B = argmin ||X - X B||^2 + lambda ||B||^2 with diag(B) = 0, in closed form:
// P = (X^T X + lambda I)^-1, B_ij = -P_ij / P_jj, B_jj = 0. Gram matrix from the sparse rows, inverse by
// Cholesky (LAPACK potrf + potri), scoring x_u B from the sparse row, top-k per user.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/csr.h"

namespace vaecf::cpu {

class Ease {
 public:
  // Bytes of the item x item matrix for n items in the given precision (the up-front memory estimate).
  static double matrixBytes(int64_t items, bool doublePrecision) {
    return double(items) * double(items) * (doublePrecision ? 8.0 : 4.0);
  }
  void setThreads(int threads) { threads_ = threads < 1 ? 1 : threads; }
  // Builds B for `lambda` from the training rows (replaces any previous B).
  void fit(const CsrView& train, double lambda, bool doublePrecision);
  int64_t items() const { return items_; }
  const std::vector<float>& weights() const { return weights_; }
  void setWeights(int64_t items, const float* w);
  // Top-k of x_u B for rows [first, first + m) of `data`, best first; seen items excluded when asked.
  void recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                 int32_t* outItems, float* outScores) const;

 private:
  template <typename T>
  void solve(const CsrView& train, double lambda);
  int threads_ = 1;
  int64_t items_ = 0;
  std::vector<float> weights_;  // B, [items x items] row-major
};

}  // namespace vaecf::cpu
