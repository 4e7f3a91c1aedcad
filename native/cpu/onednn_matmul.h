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
