// The CUDA engines' shared pieces (Mult-VAE / Mult-DAE in mult_vae_cuda.cu, RecVAE in recvae_cuda.cu):
// error checks, device and page-locked buffers, and the layer kernels both compose. Each including
// file gets its own copy (anonymous namespace): kernels are not shared across translation units.
// Row-major matrices everywhere; cuBLAS (column-major) sees them transposed:
//   Y[M x out] = X[M x in] W[in x out]   ->  sgemm(N, N, out, M, in, W, X, Y)
//   dW[in x out] = X^T dA                ->  sgemm(N, T, out, in, M, dA, X, dW)
//   dX[M x in] = dA W^T                  ->  sgemm(T, N, in, M, out, W, dA, dX)
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../core/rng.h"

namespace vaecf::cuda {

namespace {

// What to do about the CUDA errors a user can act on.
std::string advice(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation: return " (out of GPU memory: use a smaller batch or the CPU engine)";
    case cudaErrorInsufficientDriver: return " (no NVIDIA driver, or one older than this CUDA runtime needs: install or update it, or use device 'cpu')";
    case cudaErrorNoDevice: return " (no NVIDIA GPU is visible: check CUDA_VISIBLE_DEVICES, or use device 'cpu')";
    default: return "";
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e) + advice(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLAS error in ") + what + ": status " + std::to_string(int(s)));
}
#define CK(x) check((x), #x)
#define LAUNCH_CHECK() check(cudaGetLastError(), "kernel launch")

// Growable memory on the device (cudaMalloc), or page-locked on the host (cudaMallocHost: the source of
// asynchronous uploads). The contents are not kept when it grows.
template <typename T, bool Pinned = false>
struct Buffer {
  T* ptr = nullptr;
  size_t count = 0;
  Buffer() = default;
  // Owns its memory: moved, never copied (a copy would free it twice).
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : ptr(o.ptr), count(o.count) {
    o.ptr = nullptr;
    o.count = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr = o.ptr;
      count = o.count;
      o.ptr = nullptr;
      o.count = 0;
    }
    return *this;
  }
  void resize(size_t n) {
    if (n <= count) return;
    release();
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    CK(Pinned ? cudaMallocHost(&p, bytes) : cudaMalloc(&p, bytes));
    ptr = static_cast<T*>(p);
    count = n;
  }
  void release() {
    if (ptr) Pinned ? cudaFreeHost(ptr) : cudaFree(ptr);
    ptr = nullptr;
    count = 0;
  }
  ~Buffer() { release(); }
};
template <typename T>
using DeviceBuffer = Buffer<T>;
using PinnedBuffer = Buffer<char, true>;

inline unsigned blocks(int64_t n, int threads = 256) { return unsigned((n + threads - 1) / threads); }

// ---- kernels ----

// One warp per row: copy the row's items and click values into the batch CSR.
__global__ void gatherRows(const int64_t* indptr, const int32_t* indices, const float* values, const int64_t* rows, int64_t first,
                           int64_t m, const int32_t* batchPtr, int32_t* bIdx, float* bRaw) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= m) return;
  const int64_t r = rows ? rows[warp] : first + warp;
  const int64_t b = indptr[r], n = indptr[r + 1] - b;
  for (int64_t k = lane; k < n; k += 32) {
    bIdx[batchPtr[warp] + k] = indices[b + k];
    bRaw[batchPtr[warp] + k] = values ? values[b + k] : 1.0f;
  }
}

// Encoder input: x_u / ||x_u||_2 times the inverted-dropout scale of each click (training).
__global__ void normaliseInput(const int32_t* ptr, const float* raw, float* input, int64_t m, bool training, double p0, uint64_t seed, uint64_t step) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= m) return;
  const int32_t b = ptr[warp], e = ptr[warp + 1];
  float sq = 0;
  for (int32_t k = b + lane; k < e; k += 32) sq += raw[k] * raw[k];
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  const float inv = sq > 0 ? 1.0f / sqrtf(sq) : 0.0f;
  const CounterRng rng(seed, uint32_t(Stream::InputDropout), step);
  const float keep = float(1.0 / (1.0 - p0));
  for (int32_t k = b + lane; k < e; k += 32) {
    float s = 1.0f;
    if (training && p0 > 0) s = rng.uniform(uint64_t(k)) >= p0 ? keep : 0.0f;
    input[k] = raw[k] * inv * s;
  }
}

// The sparse first layer, our own kernels rather than cuSPARSE's SpMM (whose results moved between runs
// in the first GPU check): each output is summed in a fixed order, so the same seed gives the same
// weights bit for bit.
// Forward: out[u, :] = b + sum over the clicks k of user u (in CSR order) of input_k W0[item_k, :];
// W0 [items x n] row-major; one block per user, one thread per output column.
__global__ void sparseInputForward(const int32_t* ptr, const int32_t* idx, const float* input, const float* W, const float* b, int64_t n,
                                   float* out) {
  const int64_t u = blockIdx.x;
  const int32_t first = ptr[u], last = ptr[u + 1];
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float acc = b[c];
    for (int32_t k = first; k < last; ++k) acc += input[k] * W[int64_t(idx[k]) * n + c];
    out[u * n + c] = acc;
  }
}

// Weight gradient: dW0[i, :] = sum over the batch's clicks of item i (in user order, from the transposed
// batch: colPtr [items + 1], entries (user, position in the batch CSR)) of input_k dA0[u_k, :]; one block
// per item; items without clicks get zeros.
__global__ void sparseInputGradient(const int32_t* colPtr, const int2* entries, const float* input, const float* dA, int64_t n, float* dW) {
  const int64_t item = blockIdx.x;
  const int32_t first = colPtr[item], last = colPtr[item + 1];
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float acc = 0;
    for (int32_t j = first; j < last; ++j) {
      const int2 e = entries[j];
      acc += input[e.y] * dA[int64_t(e.x) * n + c];
    }
    dW[item * n + c] = acc;
  }
}

// Threads per block for the kernels above: every column at once up to 1024.
inline unsigned columnThreads(int64_t n) { return unsigned(std::min<int64_t>(1024, (n + 31) / 32 * 32)); }

__global__ void broadcastBias(float* y, const float* b, int64_t m, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < m * n) y[i] = b[i % n];
}

__global__ void tanhInPlace(float* y, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = tanhf(y[i]);
}

__global__ void dropoutMask(float* mask, int64_t n, double p, uint64_t seed, uint32_t stream, uint64_t step) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const CounterRng rng(seed, stream, step);
  mask[i] = rng.uniform(uint64_t(i)) >= p ? float(1.0 / (1.0 - p)) : 0.0f;
}

__global__ void multiply(const float* a, const float* b, float* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i] * b[i];
}

__global__ void sampleEps(float* eps, int64_t n, uint64_t seed, uint64_t step) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const CounterRng rng(seed, uint32_t(Stream::Reparameterisation), step);
  eps[i] = float(rng.normal(uint64_t(i)));
}

__global__ void reparameterise(const float* enc, const float* eps, float* z, int64_t m, int64_t D, bool training) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= m * D) return;
  const int64_t u = i / D, d = i % D;
  const float mu = enc[u * 2 * D + d], lv = enc[u * 2 * D + D + d];
  z[i] = training ? mu + eps[i] * expf(0.5f * lv) : mu;
}

template <int THREADS>
__device__ float blockReduce(float v, bool isMax) {
  __shared__ float shared[THREADS / 32];
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = isMax ? fmaxf(v, w) : v + w;
  }
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < THREADS / 32 ? shared[threadIdx.x] : (isMax ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
      const float w = __shfl_xor_sync(0xffffffffu, v, o);
      v = isMax ? fmaxf(v, w) : v + w;
    }
    if (threadIdx.x == 0) shared[0] = v;
  }
  __syncthreads();
  const float r = shared[0];
  __syncthreads();
  return r;
}

// One block per user: nll_u = n_u logsumexp(l_u) - sum_k x_k l_uk, and in place d nll / d l = (n_u softmax - x) / M.
// l = logits row (+ the output bias when `bias` is given: the training forward leaves it out of the GEMM).
// Max and sum of exponentials in one pass (online softmax), then one pass that writes the gradient in
// fp32 and, for the bf16 output layer, its bf16 copy [m x ldBf16] (round to nearest even).
template <int THREADS>
__global__ void likelihood(float* logits, int64_t items, const float* bias, const int32_t* ptr, const int32_t* idx, const float* raw, float invM,
                           float* rowNll, __nv_bfloat16* gradBf16, int64_t ldBf16) {
  const int64_t u = blockIdx.x;
  float* row = logits + u * items;
  float mx = -INFINITY, sum = 0;
  for (int64_t i = threadIdx.x; i < items; i += THREADS) {
    const float v = row[i] + (bias ? bias[i] : 0.0f);
    if (v > mx) {
      sum = sum * expf(mx - v) + 1.0f;
      mx = v;
    } else {
      sum += expf(v - mx);
    }
  }
  const float blockMax = blockReduce<THREADS>(mx, true);
  sum = blockReduce<THREADS>(mx == -INFINITY ? 0.0f : sum * expf(mx - blockMax), false);
  mx = blockMax;
  float n = 0, dot = 0;
  for (int32_t k = ptr[u] + threadIdx.x; k < ptr[u + 1]; k += THREADS) {
    n += raw[k];
    dot += raw[k] * (row[idx[k]] + (bias ? bias[idx[k]] : 0.0f));
  }
  n = blockReduce<THREADS>(n, false);
  dot = blockReduce<THREADS>(dot, false);
  if (threadIdx.x == 0) rowNll[u] = n * (mx + logf(sum)) - dot;
  const float scale = n / sum * invM;
  __nv_bfloat16* g = gradBf16 ? gradBf16 + u * ldBf16 : nullptr;
  for (int64_t i = threadIdx.x; i < items; i += THREADS) {
    const float d = expf(row[i] + (bias ? bias[i] : 0.0f) - mx) * scale;
    row[i] = d;
    if (g) g[i] = __float2bfloat16_rn(d);
  }
  __syncthreads();
  // Atomic only for repeated items within a row, which vaecf's data layer merges: each address is then
  // added to once and the result does not depend on thread order.
  for (int32_t k = ptr[u] + threadIdx.x; k < ptr[u + 1]; k += THREADS) atomicAdd(&row[idx[k]], -raw[k] * invM);
  if (g) {
    // The clicked items' bf16 values, once every click of the row is in.
    __syncthreads();
    for (int32_t k = ptr[u] + threadIdx.x; k < ptr[u + 1]; k += THREADS) g[idx[k]] = __float2bfloat16_rn(row[idx[k]]);
  }
}

__global__ void toBf16(const float* in, __nv_bfloat16* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

// in [rows x cols] row-major fp32 -> out [rows x ld] bf16 (ld >= cols: rows start 16-byte aligned).
__global__ void toBf16Padded(const float* in, __nv_bfloat16* out, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < rows * cols) out[(i / cols) * ld + i % cols] = __float2bfloat16_rn(in[i]);
}

// out[i] = sum over s < parts of partial[s * n + i] (the split-K partial products, in a fixed order).
__global__ void sumParts(const float* partial, int64_t parts, int64_t n, float* out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float s = 0;
  for (int64_t p = 0; p < parts; ++p) s += partial[p * n + i];
  out[i] = s;
}

__global__ void fill(float* x, float v, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = v;
}

// KL(q(z|x_u) || N(0, I)) = 1/2 sum_d (-logvar + exp(logvar) + mu^2 - 1); one warp per user.
__global__ void klRows(const float* enc, int64_t m, int64_t D, float* rowKl) {
  const int64_t u = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (u >= m) return;
  float s = 0;
  for (int64_t d = lane; d < D; d += 32) {
    const float mu = enc[u * 2 * D + d], lv = enc[u * 2 * D + D + d];
    s += 0.5f * (-lv + expf(lv) + mu * mu - 1.0f);
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) rowKl[u] = s;
}

// Gradient w.r.t. (mu, logvar) from dz and the KL term.
__global__ void reparameteriseBackward(const float* enc, const float* eps, const float* dz, float* dE, int64_t m, int64_t D, float betaOverM) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= m * D) return;
  const int64_t u = i / D, d = i % D;
  const float mu = enc[u * 2 * D + d], lv = enc[u * 2 * D + D + d];
  const float sd = expf(0.5f * lv);
  dE[u * 2 * D + d] = dz[i] + betaOverM * mu;
  dE[u * 2 * D + D + d] = dz[i] * eps[i] * 0.5f * sd + betaOverM * 0.5f * (sd * sd - 1.0f);
}

// sums[0] += sum of rowNll, sums[1] += sum of rowKl (one block).
__global__ void sumRows(const float* rowNll, const float* rowKl, int64_t m, double* sums) {
  double a = 0, b = 0;
  for (int64_t u = threadIdx.x; u < m; u += blockDim.x) {
    a += double(rowNll[u]);
    if (rowKl) b += double(rowKl[u]);
  }
  atomicAdd(&sums[0], a);
  atomicAdd(&sums[1], b);
}

// The step's loss, (sum nll + beta sum kl) / M + l2 sum |W_l|^2, from its sums [nll, kl, |W_l|^2 per
// layer]: a non-finite loss raises the sticky flag that makes Adam skip the update, as the CPU engine
// refuses it (the host reports it when the step is collected, then clears the flag).
__global__ void flagNonFinite(const double* sums, int64_t nLayers, double invM, double beta, double l2, int* skip) {
  double squares = 0;
  for (int64_t l = 0; l < nLayers; ++l) squares += sums[2 + l];
  const double loss = (sums[0] + beta * sums[1]) * invM + l2 * squares;
  if (!isfinite(loss)) *skip = 1;
}

// *out += sum of w[i]^2 (the L2 term of one weight matrix).
__global__ void sumSquares(const float* w, int64_t n, double* out) {
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) s += double(w[i]) * double(w[i]);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) atomicAdd(out, s);
}

__global__ void tanhBackward(float* g, const float* act, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) g[i] *= 1.0f - act[i] * act[i];
}

__global__ void addScaled(float* g, const float* w, float s, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) g[i] += s * w[i];
}

// PyTorch's Adam / AdamW; the new weights of [copyBegin, copyEnd) (a [rows x copyCols] row-major matrix)
// are also written to pBf16 (the bf16 copy of the output layer's weights, rows copyLd apart) when given.
// Skipped entirely while *skip is set (a non-finite loss in this or an earlier queued step).
__global__ void adam(float* p, const float* g, float* m, float* v, int64_t n, float stepSize, float b1, float b2, float eps, float bc2Sqrt,
                     float decay, float shrink, bool coupled, bool decoupled, __nv_bfloat16* pBf16, int64_t copyBegin, int64_t copyEnd,
                     int64_t copyCols, int64_t copyLd, const int* skip) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n || *skip) return;
  float gi = g[i], pi = p[i];
  if (coupled) gi += decay * pi;
  if (decoupled) pi *= shrink;
  const float mi = b1 * m[i] + (1.0f - b1) * gi;
  const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  pi -= stepSize * mi / (sqrtf(vi) / bc2Sqrt + eps);
  p[i] = pi;
  if (pBf16 && i >= copyBegin && i < copyEnd) {
    const int64_t j = i - copyBegin;
    pBf16[(j / copyCols) * copyLd + j % copyCols] = __float2bfloat16_rn(pi);
  }
}

// Top-k per row by k rounds of a block arg-max (ties: smaller item index); seen items and non-candidates masked first.
template <int THREADS>
__global__ void topK(float* logits, int64_t items, const int32_t* ptr, const int32_t* idx, bool excludeSeen, const uint8_t* candidates, int64_t k,
                     int32_t* outItems, float* outScores) {
  const int64_t u = blockIdx.x;
  float* row = logits + u * items;
  if (excludeSeen)
    for (int32_t j = ptr[u] + threadIdx.x; j < ptr[u + 1]; j += THREADS) row[idx[j]] = -INFINITY;
  if (candidates)
    for (int64_t i = threadIdx.x; i < items; i += THREADS)
      if (!candidates[i]) row[i] = -INFINITY;
  __syncthreads();
  __shared__ float bestV[THREADS];
  __shared__ int32_t bestI[THREADS];
  for (int64_t r = 0; r < k; ++r) {
    float v = -INFINITY;
    int32_t at = -1;
    for (int64_t i = threadIdx.x; i < items; i += THREADS)
      if (row[i] > v || (row[i] == v && at >= 0 && i < at)) {
        v = row[i];
        at = int32_t(i);
      }
    bestV[threadIdx.x] = v;
    bestI[threadIdx.x] = at;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        const float ov = bestV[threadIdx.x + s];
        const int32_t oi = bestI[threadIdx.x + s];
        if (oi >= 0 && (ov > bestV[threadIdx.x] || bestI[threadIdx.x] < 0 || (ov == bestV[threadIdx.x] && oi < bestI[threadIdx.x]))) {
          bestV[threadIdx.x] = ov;
          bestI[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const bool valid = bestI[0] >= 0 && bestV[0] != -INFINITY;
      outItems[u * k + r] = valid ? bestI[0] : -1;
      outScores[u * k + r] = valid ? bestV[0] : -INFINITY;
      if (valid) row[bestI[0]] = -INFINITY;
    }
    __syncthreads();
  }
}

}  // namespace

}  // namespace vaecf::cuda
