// RecVAE on the GPU (recvae_cuda.h): the CPU engine's composition (recvae_cpu.cpp), step for step, with
// common.cuh's kernels for the pieces both CUDA engines share and its own for RecVAE's layers.
#include "recvae_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/recvae_cpu.h"
#include "common.cuh"
#include "mult_vae_cuda.h"  // deviceAvailable

namespace vaecf::cuda {

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// out = x sigmoid(x) (swish), element-wise.
__global__ void swishForward(const float* x, float* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = x[i] / (1.0f + expf(-x[i]));
}

// g *= d swish(x) / dx = s (1 + x (1 - s)), s = sigmoid(x).
__global__ void swishBackward(float* g, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float s = 1.0f / (1.0f + expf(-x[i]));
  g[i] *= s * (1.0f + x[i] * (1.0f - s));
}

// y[i] += b[i % n] over an [m x n] matrix.
__global__ void addBias(float* y, const float* b, int64_t m, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < m * n) y[i] += b[i % n];
}

// Sum of one block's doubles (every thread gets it).
template <int THREADS>
__device__ double blockSum(double v) {
  __shared__ double shared[THREADS / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < THREADS / 32; ++w) total += shared[w];
  __syncthreads();
  return total;
}

// Layer normalisation of each row of a [m x n] (one block per row; mean and biased variance in double):
// xhat = (a - mean) rstd, rstd = 1 / sqrt(var + eps), y = gamma xhat + beta.
template <int THREADS>
__global__ void layerNormRows(const float* a, int64_t n, const float* gamma, const float* beta, double eps, float* y, float* xhat, float* rstd) {
  const int64_t u = blockIdx.x;
  const float* row = a + u * n;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += THREADS) s += double(row[i]);
  const double mean = blockSum<THREADS>(s) / double(n);
  double q = 0;
  for (int64_t i = threadIdx.x; i < n; i += THREADS) q += (double(row[i]) - mean) * (double(row[i]) - mean);
  const double var = blockSum<THREADS>(q) / double(n);
  const float r = float(1.0 / sqrt(var + eps)), mu = float(mean);
  if (threadIdx.x == 0) rstd[u] = r;
  for (int64_t i = threadIdx.x; i < n; i += THREADS) {
    const float xh = (row[i] - mu) * r;
    xhat[u * n + i] = xh;
    y[u * n + i] = gamma[i] * xh + beta[i];
  }
}

// LayerNorm's parameter gradients: dgamma = sum_u dy xhat, dbeta = sum_u dy (one thread per column, rows
// in order: deterministic).
__global__ void layerNormParamGrads(const float* dy, const float* xhat, int64_t m, int64_t n, float* dgamma, float* dbeta) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  float g = 0, b = 0;
  for (int64_t u = 0; u < m; ++u) {
    g += dy[u * n + c] * xhat[u * n + c];
    b += dy[u * n + c];
  }
  dgamma[c] = g;
  dbeta[c] = b;
}

// LayerNorm's input gradient per row: da = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma.
template <int THREADS>
__global__ void layerNormInputGrad(const float* dy, const float* xhat, const float* rstd, const float* gamma, int64_t n, float* da) {
  const int64_t u = blockIdx.x;
  const float* d = dy + u * n;
  const float* xh = xhat + u * n;
  double s1 = 0, s2 = 0;
  for (int64_t i = threadIdx.x; i < n; i += THREADS) {
    const double g = double(d[i]) * double(gamma[i]);
    s1 += g;
    s2 += g * double(xh[i]);
  }
  const float m1 = float(blockSum<THREADS>(s1) / double(n)), m2 = float(blockSum<THREADS>(s2) / double(n)), r = rstd[u];
  for (int64_t i = threadIdx.x; i < n; i += THREADS) da[u * n + i] = r * (d[i] * gamma[i] - m1 - xh[i] * m2);
}

// RecVAE's Monte Carlo KL against the composite prior (layers.h compositePriorKl), one warp per user:
// kl_u = w_u sum_d (log q(z_d) - log p(z_d)), w_u = gamma |x_u| (gamma > 0) or beta. Writes rowKl[u],
// dz = scale w_u d kl / dz and dEnc = scale w_u d kl / d(mu, logvar) with z held fixed (written, not added).
__global__ void compositePriorRows(const float* enc, const float* prior, const float* z, int64_t m, int64_t D, const int32_t* ptr,
                                   const float* raw, double gamma, double beta, double logW0, double logW1, double logW2, double wideLogVar,
                                   float scale, float* rowKl, float* dz, float* dEnc) {
  const int64_t u = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (u >= m) return;
  double clicks = 0;
  for (int32_t k = ptr[u] + lane; k < ptr[u + 1]; k += 32) clicks += double(raw[k]);
  for (int o = 16; o > 0; o >>= 1) clicks += __shfl_xor_sync(0xffffffffu, clicks, o);
  const double w = gamma > 0 ? gamma * clicks : beta;
  const double wideVar = exp(wideLogVar);
  const float* mu = enc + u * 2 * D;
  const float* lv = mu + D;
  const float* pmu = prior + u * 2 * D;
  const float* plv = pmu + D;
  double s = 0;
  for (int64_t d = lane; d < D; d += 32) {
    const double zz = double(z[u * D + d]), diff = zz - double(mu[d]), var = exp(double(lv[d]));
    const double logq = -0.5 * (double(lv[d]) + kLog2Pi + diff * diff / var);
    const double pvar = exp(double(plv[d])), pdiff = zz - double(pmu[d]);
    const double c0 = logW0 - 0.5 * (kLog2Pi + zz * zz);
    const double c1 = logW1 - 0.5 * (double(plv[d]) + kLog2Pi + pdiff * pdiff / pvar);
    const double c2 = logW2 - 0.5 * (wideLogVar + kLog2Pi + zz * zz / wideVar);
    const double mx = fmax(c0, fmax(c1, c2));
    const double e0 = exp(c0 - mx), e1 = exp(c1 - mx), e2 = exp(c2 - mx), total = e0 + e1 + e2;
    s += logq - (mx + log(total));
    // d log p / dz = -sum_k r_k (z - mu_k) / var_k with responsibilities r_k = e_k / total.
    const double dlogp = -(e0 * zz + e1 * pdiff / pvar + e2 * zz / wideVar) / total;
    const double g = double(scale) * w;
    dz[u * D + d] = float(g * (-diff / var - dlogp));
    dEnc[u * 2 * D + d] = float(g * (diff / var));
    dEnc[u * 2 * D + D + d] = float(g * (-0.5 + 0.5 * diff * diff / var));
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) rowKl[u] = float(w * s);
}

// Through z = mu + eps exp(logvar / 2): dEnc(mu) += dz, dEnc(logvar) += dz eps exp(logvar / 2) / 2.
__global__ void reparameteriseBackwardAdd(const float* enc, const float* eps, const float* dz, float* dEnc, int64_t m, int64_t D) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= m * D) return;
  const int64_t u = i / D, d = i % D;
  const float g = dz[i];
  dEnc[u * 2 * D + d] += g;
  dEnc[u * 2 * D + D + d] += g * eps[i] * 0.5f * expf(0.5f * enc[u * 2 * D + D + d]);
}

constexpr int kRowThreads = 256;

}  // namespace

struct RecVaeCudaEngine::Impl {
  RecVaeConfig config;
  ModelConfig summary;
  cpu::RecVaeLayout layout;
  int64_t H, D, I, L;
  cublasHandle_t blas = nullptr;
  DeviceBuffer<float> params, prior, grads, adamM, adamV;
  bool momentsZero = true;
  int64_t encoderSteps = 0, decoderSteps = 0;
  DeviceBuffer<int> noSkip;  // Adam's skip flag, always 0 (a non-finite loss throws before the update)

  // The batch: CSR over the items (host-built, uploaded), its transpose for the item layer's gradient.
  int64_t m = 0, capacity = 0;
  std::vector<int32_t> hPtr, hIdx, hColPtr;
  std::vector<float> hRaw;
  std::vector<int2> hEntries;
  DeviceBuffer<int32_t> dPtr, dIdx, dColPtr;
  DeviceBuffer<float> dRaw, dInput;
  DeviceBuffer<int2> dEntries;

  struct Pass {
    std::vector<DeviceBuffer<float>> pre, h, xhat, rstd;  // per layer: [m x H] x3, [m]
    DeviceBuffer<float> act, residual, head;              // [m x H], [m x H], [m x 2D]
  };
  Pass pass, priorPass;
  DeviceBuffer<float> z, eps, logits, dEnc, dz, dh, dA, dResidual, rowNll, rowKl, ones;
  DeviceBuffer<double> sums;
  DeviceBuffer<float> dTopScores;
  DeviceBuffer<int32_t> dTopItems;
  DeviceBuffer<uint8_t> dCandidates;

  explicit Impl(const RecVaeConfig& c) : config((c.validate(), c)), summary(c.summary()), layout(c) {
    H = config.hidden;
    D = config.latent;
    I = config.items;
    L = config.layers;
    std::string why;
    if (!deviceAvailable(&why)) throw std::runtime_error("device cuda: no usable GPU (" + why + ")");
    CK(cublasCreate(&blas));
    CK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));  // plain fp32 SGEMM, as the CPU engine
    params.resize(size_t(layout.total));
    prior.resize(size_t(layout.encoderCount));
    grads.resize(size_t(layout.total));
    CK(cudaMemset(grads.ptr, 0, size_t(layout.total) * sizeof(float)));
    noSkip.resize(1);
    CK(cudaMemset(noSkip.ptr, 0, sizeof(int)));
    sums.resize(2);
    pass.pre.resize(size_t(L));
    pass.h.resize(size_t(L));
    pass.xhat.resize(size_t(L));
    pass.rstd.resize(size_t(L));
    priorPass.pre.resize(size_t(L));
    priorPass.h.resize(size_t(L));
    priorPass.xhat.resize(size_t(L));
    priorPass.rstd.resize(size_t(L));
  }
  ~Impl() {
    if (blas) cublasDestroy(blas);
  }

  void reservePass(Pass& p, int64_t rows) {
    for (int64_t k = 0; k < L; ++k) {
      p.pre[size_t(k)].resize(size_t(rows * H));
      p.h[size_t(k)].resize(size_t(rows * H));
      p.xhat[size_t(k)].resize(size_t(rows * H));
      p.rstd[size_t(k)].resize(size_t(rows));
    }
    p.act.resize(size_t(rows * H));
    p.residual.resize(size_t(rows * H));
    p.head.resize(size_t(rows * 2 * D));
  }

  void reserve(int64_t rows) {
    if (rows <= capacity) return;
    capacity = rows;
    reservePass(pass, rows);
    reservePass(priorPass, rows);
    z.resize(size_t(rows * D));
    eps.resize(size_t(rows * D));
    logits.resize(size_t(rows * I));
    dEnc.resize(size_t(rows * 2 * D));
    dz.resize(size_t(rows * D));
    dh.resize(size_t(rows * H));
    dA.resize(size_t(rows * H));
    dResidual.resize(size_t(rows * H));
    rowNll.resize(size_t(rows));
    rowKl.resize(size_t(rows));
    ones.resize(size_t(rows));
    fill<<<blocks(rows), 256>>>(ones.ptr, 1.0f, rows);
    LAUNCH_CHECK();
  }

  // Rows `rows[0..count)` of data (or [first, first + count) when rows is null) as the batch CSR, and
  // with `transposed` its transpose (users ascending within each item), uploaded.
  void gather(const CsrView& data, const int64_t* rows, int64_t first, int64_t count, bool transposed) {
    if (data.cols != I) throw InvalidArgument("the click matrix has " + std::to_string(data.cols) + " items; the model has " + std::to_string(I));
    m = count;
    reserve(m);
    hPtr.assign(size_t(m + 1), 0);
    hIdx.clear();
    hRaw.clear();
    for (int64_t u = 0; u < m; ++u) {
      const int64_t r = rows ? rows[u] : first + u;
      for (int64_t k = data.indptr[r]; k < data.indptr[r + 1]; ++k) {
        hIdx.push_back(data.indices[k]);
        hRaw.push_back(data.value(k));
      }
      hPtr[size_t(u + 1)] = int32_t(hIdx.size());
    }
    const size_t nnz = hIdx.size();
    dPtr.resize(size_t(m + 1));
    dIdx.resize(nnz);
    dRaw.resize(nnz);
    dInput.resize(nnz);
    CK(cudaMemcpy(dPtr.ptr, hPtr.data(), size_t(m + 1) * sizeof(int32_t), cudaMemcpyHostToDevice));
    if (nnz) {
      CK(cudaMemcpy(dIdx.ptr, hIdx.data(), nnz * sizeof(int32_t), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dRaw.ptr, hRaw.data(), nnz * sizeof(float), cudaMemcpyHostToDevice));
    }
    if (!transposed) return;
    hColPtr.assign(size_t(I + 1), 0);
    for (size_t k = 0; k < nnz; ++k) hColPtr[size_t(hIdx[k]) + 1] += 1;
    for (int64_t i = 0; i < I; ++i) hColPtr[size_t(i + 1)] += hColPtr[size_t(i)];
    hEntries.resize(nnz);
    std::vector<int32_t> next(hColPtr.begin(), hColPtr.end() - 1);
    for (int64_t u = 0; u < m; ++u)
      for (int32_t k = hPtr[size_t(u)]; k < hPtr[size_t(u + 1)]; ++k) hEntries[size_t(next[size_t(hIdx[size_t(k)])]++)] = make_int2(int(u), k);
    dColPtr.resize(size_t(I + 1));
    dEntries.resize(nnz);
    CK(cudaMemcpy(dColPtr.ptr, hColPtr.data(), size_t(I + 1) * sizeof(int32_t), cudaMemcpyHostToDevice));
    if (nnz) CK(cudaMemcpy(dEntries.ptr, hEntries.data(), nnz * sizeof(int2), cudaMemcpyHostToDevice));
  }

  // Row-major products through column-major cuBLAS (common.cuh's header says how).
  // Y[rows x out] = X[rows x in] W[in x out] (+ Y when accumulate).
  void gemmForward(const float* X, int64_t rows, int64_t in, const float* W, int64_t out, float* Y, bool accumulate) {
    const float one = 1, beta = accumulate ? 1.0f : 0.0f;
    CK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(out), int(rows), int(in), &one, W, int(out), X, int(in), &beta, Y, int(out)));
  }
  // dW = X^T dY, db = colsum(dY) (either may be null), dX = dY W^T (+ dX when accumulateDX; null: none).
  void gemmBackward(const float* X, const float* dY, int64_t rows, int64_t in, const float* W, int64_t out, float* dW, float* db, float* dX,
                    bool accumulateDX) {
    const float one = 1, zero = 0, beta = accumulateDX ? 1.0f : 0.0f;
    if (dW) CK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, int(out), int(in), int(rows), &one, dY, int(out), X, int(in), &zero, dW, int(out)));
    if (db) CK(cublasSgemv(blas, CUBLAS_OP_N, int(out), int(rows), &one, dY, int(out), ones.ptr, 1, &zero, db, 1));
    if (dX) CK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(in), int(rows), int(out), &one, W, int(out), dY, int(out), &beta, dX, int(in)));
  }

  // The encoder on the normalised batch (dInput) with parameters P (the model's, or the prior's copy).
  void encoderForward(const float* P, Pass& p) {
    const int64_t n = m * H;
    for (int64_t k = 0; k < L; ++k) {
      const auto& fc = layout.fc[size_t(k)];
      float* pre = p.pre[size_t(k)].ptr;
      if (k == 0) {
        sparseInputForward<<<unsigned(m), columnThreads(H)>>>(dPtr.ptr, dIdx.ptr, dInput.ptr, P + fc.weight, P + fc.bias, H, pre);
        LAUNCH_CHECK();
      } else {
        // pre_k = h_{k-1} W_k + b_k + (h_0 + ... + h_{k-1})
        CK(cudaMemcpyAsync(pre, p.residual.ptr, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice));
        gemmForward(p.h[size_t(k - 1)].ptr, m, H, P + fc.weight, H, pre, true);
        addBias<<<blocks(n), 256>>>(pre, P + fc.bias, m, H);
        LAUNCH_CHECK();
      }
      swishForward<<<blocks(n), 256>>>(pre, p.act.ptr, n);
      LAUNCH_CHECK();
      float* h = p.h[size_t(k)].ptr;
      layerNormRows<kRowThreads><<<unsigned(m), kRowThreads>>>(p.act.ptr, H, P + layout.normGain[size_t(k)], P + layout.normShift[size_t(k)],
                                                               config.layerNormEps, h, p.xhat[size_t(k)].ptr, p.rstd[size_t(k)].ptr);
      LAUNCH_CHECK();
      if (k + 1 < L) {
        if (k == 0) CK(cudaMemcpyAsync(p.residual.ptr, h, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice));
        else addScaled<<<blocks(n), 256>>>(p.residual.ptr, h, 1.0f, n);
        LAUNCH_CHECK();
      }
    }
    gemmForward(p.h[size_t(L - 1)].ptr, m, H, P + layout.head.weight, 2 * D, p.head.ptr, false);
    addBias<<<blocks(m * 2 * D), 256>>>(p.head.ptr, P + layout.head.bias, m, 2 * D);
    LAUNCH_CHECK();
  }

  void encoderBackward(float* dHead) {
    const int64_t n = m * H;
    const float* P = params.ptr;
    float* G = grads.ptr;
    gemmBackward(pass.h[size_t(L - 1)].ptr, dHead, m, H, P + layout.head.weight, 2 * D, G + layout.head.weight, G + layout.head.bias, dh.ptr, false);
    CK(cudaMemsetAsync(dResidual.ptr, 0, size_t(n) * sizeof(float)));
    for (int64_t k = L - 1; k >= 0; --k) {
      if (k < L - 1) {
        addScaled<<<blocks(n), 256>>>(dh.ptr, dResidual.ptr, 1.0f, n);
        LAUNCH_CHECK();
      }
      layerNormParamGrads<<<blocks(H), 256>>>(dh.ptr, pass.xhat[size_t(k)].ptr, m, H, G + layout.normGain[size_t(k)], G + layout.normShift[size_t(k)]);
      LAUNCH_CHECK();
      layerNormInputGrad<kRowThreads><<<unsigned(m), kRowThreads>>>(dh.ptr, pass.xhat[size_t(k)].ptr, pass.rstd[size_t(k)].ptr,
                                                                    P + layout.normGain[size_t(k)], H, dA.ptr);
      LAUNCH_CHECK();
      swishBackward<<<blocks(n), 256>>>(dA.ptr, pass.pre[size_t(k)].ptr, n);  // dA is now dpre_k
      LAUNCH_CHECK();
      const auto& fc = layout.fc[size_t(k)];
      if (k == 0) {
        sparseInputGradient<<<unsigned(I), columnThreads(H)>>>(dColPtr.ptr, dEntries.ptr, dInput.ptr, dA.ptr, H, G + fc.weight);
        LAUNCH_CHECK();
        gemmBackward(nullptr, dA.ptr, m, H, nullptr, H, nullptr, G + fc.bias, nullptr, false);
        break;
      }
      gemmBackward(pass.h[size_t(k - 1)].ptr, dA.ptr, m, H, P + fc.weight, H, G + fc.weight, G + fc.bias, dh.ptr, false);
      addScaled<<<blocks(n), 256>>>(dResidual.ptr, dA.ptr, 1.0f, n);
      LAUNCH_CHECK();
    }
  }

  void normalise(bool dropout, uint64_t seed, uint64_t step) {
    normaliseInput<<<blocks(m * 32), 256>>>(dPtr.ptr, dRaw.ptr, dInput.ptr, m, dropout, config.inputDropout, seed, step);
    LAUNCH_CHECK();
  }

  StepResult forwardBackward(Phase phase, double beta, double gamma, uint64_t seed, uint64_t step) {
    const bool encoder = phase != Phase::Decoder, decoder = phase != Phase::Encoder;
    if (encoder) {
      // The prior's encoder sees the clicks without dropout.
      normalise(false, seed, step);
      encoderForward(prior.ptr, priorPass);
    }
    normalise(encoder, seed, step);
    encoderForward(params.ptr, pass);
    sampleEps<<<blocks(m * D), 256>>>(eps.ptr, m * D, seed, step);
    LAUNCH_CHECK();
    reparameterise<<<blocks(m * D), 256>>>(pass.head.ptr, eps.ptr, z.ptr, m, D, true);
    LAUNCH_CHECK();
    // Logits without the bias; the likelihood adds it and leaves d(mean nll) / d logits in place.
    const auto& dec = layout.decoder;
    gemmForward(z.ptr, m, D, params.ptr + dec.weight, I, logits.ptr, false);
    likelihood<256><<<unsigned(m), 256>>>(logits.ptr, I, params.ptr + dec.bias, dPtr.ptr, dIdx.ptr, dRaw.ptr, float(1.0 / double(m)), rowNll.ptr,
                                          nullptr, 0);
    LAUNCH_CHECK();
    float* G = grads.ptr;
    if (decoder) gemmBackward(z.ptr, logits.ptr, m, D, params.ptr + dec.weight, I, G + dec.weight, G + dec.bias, nullptr, false);
    if (encoder) {
      const double* w = config.mixtureWeights;
      compositePriorRows<<<blocks(m * 32), 256>>>(pass.head.ptr, priorPass.head.ptr, z.ptr, m, D, dPtr.ptr, dRaw.ptr, gamma, beta, std::log(w[0]),
                                                   std::log(w[1]), std::log(w[2]), config.wideLogVar, float(1.0 / double(m)), rowKl.ptr, dz.ptr,
                                                   dEnc.ptr);
      LAUNCH_CHECK();
      // dz += dlogits W_dec^T, then through z = mu + eps exp(logvar / 2).
      gemmBackward(z.ptr, logits.ptr, m, D, params.ptr + dec.weight, I, nullptr, nullptr, dz.ptr, true);
      reparameteriseBackwardAdd<<<blocks(m * D), 256>>>(pass.head.ptr, eps.ptr, dz.ptr, dEnc.ptr, m, D);
      LAUNCH_CHECK();
      encoderBackward(dEnc.ptr);
    }
    CK(cudaMemsetAsync(sums.ptr, 0, 2 * sizeof(double)));
    sumRows<<<1, 256>>>(rowNll.ptr, encoder ? rowKl.ptr : nullptr, m, sums.ptr);
    LAUNCH_CHECK();
    double host[2];
    CK(cudaMemcpy(host, sums.ptr, sizeof host, cudaMemcpyDeviceToHost));
    StepResult r;
    r.nll = host[0] / double(m);
    r.kl = encoder ? host[1] / double(m) : 0.0;
    r.loss = r.nll + r.kl;
    return r;
  }

  void ensureMoments() {
    adamM.resize(size_t(layout.total));
    adamV.resize(size_t(layout.total));
    if (momentsZero) {
      CK(cudaMemset(adamM.ptr, 0, size_t(layout.total) * sizeof(float)));
      CK(cudaMemset(adamV.ptr, 0, size_t(layout.total) * sizeof(float)));
      momentsZero = false;
    }
  }

  // PyTorch's Adam on [begin, begin + n) at that group's step t (after its increment).
  void adamRange(int64_t begin, int64_t n, const OptimizerOptions& o, int64_t t) {
    const double bc1 = 1.0 - std::pow(o.beta1, double(t)), bc2 = 1.0 - std::pow(o.beta2, double(t));
    adam<<<blocks(n), 256>>>(params.ptr + begin, grads.ptr + begin, adamM.ptr + begin, adamV.ptr + begin, n, float(o.learningRate / bc1),
                             float(o.beta1), float(o.beta2), float(o.epsilon), float(std::sqrt(bc2)), float(o.weightDecay),
                             float(1.0 - o.learningRate * o.weightDecay), !o.decoupled && o.weightDecay != 0, o.decoupled && o.weightDecay != 0,
                             nullptr, 0, 0, 1, 1, noSkip.ptr);
    LAUNCH_CHECK();
  }

  void optimizerStep(Phase phase, const OptimizerOptions& o) {
    ensureMoments();
    const int64_t split = layout.encoderCount;
    if (phase != Phase::Decoder) adamRange(0, split, o, ++encoderSteps);
    if (phase != Phase::Encoder) adamRange(split, layout.total - split, o, ++decoderSteps);
  }

  // Evaluation: no dropout, z = mu, logits with the bias.
  void forwardEval(const CsrView& data, int64_t first, int64_t count) {
    gather(data, nullptr, first, count, false);
    normalise(false, 0, 0);
    encoderForward(params.ptr, pass);
    reparameterise<<<blocks(m * D), 256>>>(pass.head.ptr, nullptr, z.ptr, m, D, false);
    LAUNCH_CHECK();
    const auto& dec = layout.decoder;
    gemmForward(z.ptr, m, D, params.ptr + dec.weight, I, logits.ptr, false);
    addBias<<<blocks(m * I), 256>>>(logits.ptr, params.ptr + dec.bias, m, I);
    LAUNCH_CHECK();
  }
};

RecVaeCudaEngine::RecVaeCudaEngine(const RecVaeConfig& config) : impl_(std::make_unique<Impl>(config)) {}
RecVaeCudaEngine::~RecVaeCudaEngine() = default;
const ModelConfig& RecVaeCudaEngine::config() const { return impl_->summary; }
int64_t RecVaeCudaEngine::numParams() const { return impl_->layout.total; }
int64_t RecVaeCudaEngine::numAuxiliary() const { return impl_->layout.encoderCount; }

void RecVaeCudaEngine::initialize(uint64_t seed) {
  cpu::RecVaeCpu<float> host(impl_->config);
  host.initialize(seed);
  setParameters(host.parameters());
  setAuxiliary(host.priorParameters());
  impl_->momentsZero = true;
  impl_->encoderSteps = impl_->decoderSteps = 0;
}

StepResult RecVaeCudaEngine::trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
  const bool encoder = opt.phase != Phase::Decoder;
  impl_->gather(data, rows, 0, m, encoder);
  const StepResult r = impl_->forwardBackward(opt.phase, opt.beta, opt.gamma, opt.seed, opt.step);
  if (!std::isfinite(r.loss))
    throw std::runtime_error("the loss became non-finite at step " + std::to_string(opt.step) + " (nll " + std::to_string(r.nll) + ", kl " +
                             std::to_string(r.kl) + "); try a smaller learning rate");
  if (opt.update) impl_->optimizerStep(opt.phase, opt.optimizer);
  return r;
}

void RecVaeCudaEngine::scores(const CsrView& data, int64_t first, int64_t m, float* out) {
  impl_->forwardEval(data, first, m);
  CK(cudaMemcpy(out, impl_->logits.ptr, size_t(m * impl_->I) * sizeof(float), cudaMemcpyDeviceToHost));
}

void RecVaeCudaEngine::recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                                 int32_t* outItems, float* outScores) {
  Impl& s = *impl_;
  s.forwardEval(data, first, m);
  const uint8_t* dCand = nullptr;
  if (candidates) {
    s.dCandidates.resize(size_t(s.I));
    CK(cudaMemcpy(s.dCandidates.ptr, candidates, size_t(s.I), cudaMemcpyHostToDevice));
    dCand = s.dCandidates.ptr;
  }
  s.dTopItems.resize(size_t(m * k));
  s.dTopScores.resize(size_t(m * k));
  topK<256><<<unsigned(m), 256>>>(s.logits.ptr, s.I, s.dPtr.ptr, s.dIdx.ptr, excludeSeen, dCand, k, s.dTopItems.ptr, s.dTopScores.ptr);
  LAUNCH_CHECK();
  CK(cudaMemcpy(outItems, s.dTopItems.ptr, size_t(m * k) * sizeof(int32_t), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(outScores, s.dTopScores.ptr, size_t(m * k) * sizeof(float), cudaMemcpyDeviceToHost));
}

void RecVaeCudaEngine::getParameters(float* out) const {
  CK(cudaMemcpy(out, impl_->params.ptr, size_t(impl_->layout.total) * sizeof(float), cudaMemcpyDeviceToHost));
}
void RecVaeCudaEngine::setParameters(const float* in) {
  CK(cudaMemcpy(impl_->params.ptr, in, size_t(impl_->layout.total) * sizeof(float), cudaMemcpyHostToDevice));
}
void RecVaeCudaEngine::getGradients(float* out) const {
  CK(cudaMemcpy(out, impl_->grads.ptr, size_t(impl_->layout.total) * sizeof(float), cudaMemcpyDeviceToHost));
}

void RecVaeCudaEngine::getOptimizerState(float* m, float* v, int64_t* t) const {
  const size_t n = size_t(impl_->layout.total);
  if (impl_->momentsZero || !impl_->adamM.ptr) {
    std::memset(m, 0, n * sizeof(float));
    std::memset(v, 0, n * sizeof(float));
  } else {
    CK(cudaMemcpy(m, impl_->adamM.ptr, n * sizeof(float), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(v, impl_->adamV.ptr, n * sizeof(float), cudaMemcpyDeviceToHost));
  }
  *t = impl_->encoderSteps + impl_->decoderSteps;
}
void RecVaeCudaEngine::setOptimizerState(const float* m, const float* v, int64_t /*t: see setOptimizerGroupSteps*/) {
  const size_t n = size_t(impl_->layout.total);
  impl_->adamM.resize(n);
  impl_->adamV.resize(n);
  CK(cudaMemcpy(impl_->adamM.ptr, m, n * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(impl_->adamV.ptr, v, n * sizeof(float), cudaMemcpyHostToDevice));
  impl_->momentsZero = false;
}

std::vector<int64_t> RecVaeCudaEngine::optimizerGroupSteps() const { return {impl_->encoderSteps, impl_->decoderSteps}; }
void RecVaeCudaEngine::setOptimizerGroupSteps(const std::vector<int64_t>& steps) {
  if (steps.size() != 2 || steps[0] < 0 || steps[1] < 0)
    throw InvalidArgument("RecVAE keeps two optimizer step counts (encoder, decoder), each >= 0");
  impl_->encoderSteps = steps[0];
  impl_->decoderSteps = steps[1];
}

void RecVaeCudaEngine::getAuxiliary(float* out) const {
  CK(cudaMemcpy(out, impl_->prior.ptr, size_t(impl_->layout.encoderCount) * sizeof(float), cudaMemcpyDeviceToHost));
}
void RecVaeCudaEngine::setAuxiliary(const float* in) {
  CK(cudaMemcpy(impl_->prior.ptr, in, size_t(impl_->layout.encoderCount) * sizeof(float), cudaMemcpyHostToDevice));
}
void RecVaeCudaEngine::updatePrior() {
  CK(cudaMemcpy(impl_->prior.ptr, impl_->params.ptr, size_t(impl_->layout.encoderCount) * sizeof(float), cudaMemcpyDeviceToDevice));
}

}  // namespace vaecf::cuda
