// CUDA implementation of the Engine interface (see mult_vae_cuda.h): fp32 storage and master weights;
// products in fp32, TF32, or bf16 for the item output layer (CudaPrecision). The kernels and buffers
// it shares with the RecVAE engine are in common.cuh.
#include "mult_vae_cuda.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/rng.h"
#include "../cpu/mult_vae_cpu.h"
#include "common.cuh"

namespace vaecf::cuda {

// ---- device probing ----

bool deviceAvailable(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? std::string(cudaGetErrorString(e)) + advice(e) : "no CUDA device";
    return false;
  }
  return true;
}

std::string deviceDescription() {
  std::string why;
  if (!deviceAvailable(&why)) return "no usable CUDA device (" + why + ")";
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, 0);
  int driver = 0;
  cudaDriverGetVersion(&driver);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s, compute %d.%d, %.1f GiB, driver %d.%d", p.name, p.major, p.minor, double(p.totalGlobalMem) / (1 << 30),
                driver / 1000, (driver % 1000) / 10);
  return buf;
}

std::string warmUp() {
  std::string why;
  if (!deviceAvailable(&why)) return why;
  cudaError_t e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaFree(nullptr);  // the primary context
  if (e != cudaSuccess) return cudaGetErrorString(e);
  cublasHandle_t handle = nullptr;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) return "cublasCreate failed";
  cublasDestroy(handle);
  return "";
}

// ---- the engine ----

struct CudaEngine::Impl {
  ModelConfig config;
  CudaOptions options;
  ParameterLayout layout;
  int64_t nEnc, nLayers, latent, items;
  cublasHandle_t blas = nullptr;
  DeviceBuffer<float> params, grads, adamM, adamV;
  int64_t adamT = 0;
  // The training matrix registered by beginEpoch: on the device (resident) or read from host memory
  // batch by batch (streamed). Identified by the caller's generation id when it gives one (the Node
  // binding copies indptr each epoch, so its address changes), else by its pointers, shape and a
  // content fingerprint.
  struct MatrixKey {
    const void* indptr = nullptr;
    const void* indices = nullptr;
    const void* values = nullptr;
    int64_t rows = -1, nnz = -1;
    uint64_t generation = 0;
    uint64_t fingerprint = 0;
    bool sameMatrix(const MatrixKey& o) const {
      if (rows != o.rows || nnz != o.nnz || (values == nullptr) != (o.values == nullptr)) return false;
      if (generation != 0 || o.generation != 0) return generation == o.generation;
      return indptr == o.indptr && indices == o.indices && values == o.values && fingerprint == o.fingerprint;
    }
  };
  MatrixKey registered;
  bool resident = false;
  int64_t uploads = 0;
  DeviceBuffer<int64_t> dIndptr, dRows;
  DeviceBuffer<int32_t> dIndices;
  DeviceBuffer<float> dValues;
  bool hasValues = false;
  // The batch: CSR offsets computed on the host from the host's indptr (no device-to-host copy),
  // uploaded asynchronously from page-locked staging memory with the rows (resident) or the clicks
  // themselves (streamed).
  int64_t m = 0, capacity = 0, batchNnz = 0;
  // Rows of the bf16 copies of the output layer's weights and logits' gradient start 16-byte aligned
  // (tensor-core operands): items rounded up to a multiple of 8.
  int64_t ldBf16 = 0;
  // dIn of the output layer = dLogits W^T sums over all items (K = n_items, a 500 x 600 result): split
  // into splitK slices of the item dimension computed side by side (one batched GEMM), then summed in a
  // fixed order (deterministic). 1 for small item counts.
  int64_t splitK = 1, splitWidth = 0;
  DeviceBuffer<float> splitParts;
  // A column of ones: bias gradients as one GEMV each (db = G^T 1).
  DeviceBuffer<float> ones;
  // The training batch transposed, built on the host while the device runs the previous step: per item
  // its clicks as (user in batch, position in the batch CSR), users in order. For dW0 = X^T dA0.
  std::vector<int32_t> hostColPtr;
  DeviceBuffer<int32_t> tPtr;
  DeviceBuffer<int2> tEntries;
  PinnedBuffer staging;
  cudaEvent_t stagingFree = nullptr;
  bool stagingInUse = false;
  DeviceBuffer<int32_t> bPtr, bIdx;
  DeviceBuffer<float> bRaw, bInput;
  std::vector<DeviceBuffer<float>> acts, dropped, masks;
  DeviceBuffer<float> z, eps, gA, gB, rowNll, rowKl;
  // bf16 precision: copies of the output layer's weights, its input and the logits' gradient.
  DeviceBuffer<__nv_bfloat16> outWeightBf16, outInputBf16, outGradBf16;
  DeviceBuffer<uint8_t> dCandidates;
  DeviceBuffer<int32_t> dTopItems;
  DeviceBuffer<float> dTopScores;
  // Submitted steps: their sums [nll, kl, |W_l|^2 per layer] land in a page-locked slot, read when the
  // step is collected (no device-to-host wait while the next step is queued).
  static constexpr int kSlots = 4;
  DeviceBuffer<double> stepSums;
  PinnedBuffer resultSlots;
  cudaEvent_t slotReady[kSlots] = {};
  struct PendingStep {
    int slot;
    int64_t m, step;
    double beta, l2;
    int64_t adamTBefore;  // the optimizer's step count before this step (restored if its loss is non-finite)
  };
  // Set on the device by a step whose loss is non-finite: Adam skips its update and those queued after it.
  DeviceBuffer<int> skipUpdate;
  std::deque<PendingStep> pending;
  int nextSlot = 0;
  // The step's streams (CudaOptions::adamStream / graphs): `stream` carries the step (nullptr, the
  // legacy default stream, unless one of the two is on), `optStream` the per-layer Adam updates. Both
  // are blocking streams: the synchronous copies of getParameters and friends wait for them.
  cudaStream_t stream = nullptr, optStream = nullptr;
  std::vector<cudaEvent_t> gradsReady;  // per layer: its gradients final, its weights read for the last time this step
  cudaEvent_t updatesDone = nullptr;    // on optStream: every layer of the step updated
  bool awaitingUpdates = false;         // the next forward waits for updatesDone (Adam stream without graphs)
  DeviceBuffer<char> blasWorkspace;     // cuBLAS's workspace, fixed so that graph captures allocate nothing
  struct StepGraph {
    int64_t m;
    cudaGraphExec_t exec;
  };
  std::vector<StepGraph> stepGraphs;  // one executable graph per batch size, updated from each capture
  ScheduleStats schedule;
  // Adam's per-step scalars, computed before the backward pass (which issues the updates layer by layer
  // on the Adam stream).
  struct AdamStep {
    bool on = false;
    OptimizerOptions o;
    double bc1 = 1, bc2 = 1;
  };

  Impl(const ModelConfig& c, const CudaOptions& o) : config((c.validate(), c)), options(o), layout(c) {
    nEnc = config.numEncoderLayers();
    nLayers = config.numLayers();
    latent = config.latent();
    items = config.numItems();
    // Switches from the environment (1 = on) override the options.
    auto envOn = [](const char* name) {
      const char* v = std::getenv(name);
      return v && std::string(v) == "1";
    };
    if (envOn("VAECF_CUDA_STREAM")) options.residency = CudaOptions::Residency::Streamed;
    if (envOn("VAECF_CUDA_ADAM_STREAM")) options.adamStream = true;
    if (envOn("VAECF_CUDA_GRAPHS")) options.graphs = true;
    std::string why;
    if (!deviceAvailable(&why)) throw std::runtime_error("device cuda: no usable GPU (" + why + ")");
    CK(cublasCreate(&blas));
    // Default math: SGEMM in full fp32 (no TF32 unless NVIDIA_TF32_OVERRIDE=1); Tf32 asks for TF32 tensor cores.
    CK(cublasSetMathMode(blas, options.precision == CudaPrecision::Tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    if (options.adamStream || options.graphs) {
      // The step's stream at the highest priority, the updates' at the lowest: the critical path first.
      int least = 0, greatest = 0;
      CK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
      CK(cudaStreamCreateWithPriority(&stream, cudaStreamDefault, greatest));
      CK(cublasSetStream(blas, stream));
      if (options.adamStream) {
        CK(cudaStreamCreateWithPriority(&optStream, cudaStreamDefault, least));
        gradsReady.resize(size_t(nLayers));
        for (auto& e : gradsReady) CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        CK(cudaEventCreateWithFlags(&updatesDone, cudaEventDisableTiming));
      }
      if (options.graphs) {
        // 32 MiB, cuBLAS's own default on Hopper; given explicitly so that no capture allocates one.
        blasWorkspace.resize(size_t(32) << 20);
        CK(cublasSetWorkspace(blas, blasWorkspace.ptr, blasWorkspace.count));
      }
    }
    CK(cudaEventCreateWithFlags(&stagingFree, cudaEventDisableTiming));
    for (auto& e : slotReady) CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    stepSums.resize(size_t(2 + nLayers));
    skipUpdate.resize(1);
    CK(cudaMemset(skipUpdate.ptr, 0, sizeof(int)));
    resultSlots.resize(size_t(kSlots * (2 + nLayers)) * sizeof(double));
    params.resize(size_t(layout.total));
    ldBf16 = (items + 7) / 8 * 8;
    if (items >= 4096) {
      splitK = std::min<int64_t>(16, items / 2048);
      splitWidth = items / splitK / 8 * 8;  // slices start 16-byte aligned in bf16 too
    }
    acts.resize(size_t(nLayers));
    dropped.resize(size_t(nLayers));
    masks.resize(size_t(nLayers));
  }
  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    if (optStream) cudaStreamSynchronize(optStream);
    for (auto& g : stepGraphs) cudaGraphExecDestroy(g.exec);
    for (auto e : gradsReady) cudaEventDestroy(e);
    if (updatesDone) cudaEventDestroy(updatesDone);
    if (optStream) cudaStreamDestroy(optStream);
    if (stream) cudaStreamDestroy(stream);
    for (auto e : eventPool) cudaEventDestroy(e);
    if (stagingFree) cudaEventDestroy(stagingFree);
    for (auto& e : slotReady)
      if (e) cudaEventDestroy(e);
    if (blas) cublasDestroy(blas);
  }
  // Per-phase timing (setProfiling): an event recorded after each phase on the stream; the time between
  // consecutive events is charged to the later one's phase, with the phase's counted FLOPs and bytes.
  struct Mark {
    std::string phase;
    double flops, bytes;
  };
  bool profiling = false;
  std::vector<cudaEvent_t> eventPool;
  std::vector<Mark> marks;
  std::vector<PhaseTime> phaseTotals;
  void mark(std::string phase, double flops = 0, double bytes = 0) {
    if (!profiling) return;
    if (marks.size() == eventPool.size()) {
      cudaEvent_t e;
      CK(cudaEventCreate(&e));
      eventPool.push_back(e);
    }
    CK(cudaEventRecord(eventPool[marks.size()], stream));
    marks.push_back(Mark{std::move(phase), flops, bytes});
  }
  // Waits for the recorded events and adds their intervals to phaseTotals.
  void harvestMarks() {
    if (marks.empty()) return;
    CK(cudaEventSynchronize(eventPool[marks.size() - 1]));
    for (size_t i = 1; i < marks.size(); ++i) {
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, eventPool[i - 1], eventPool[i]));
      auto at = std::find_if(phaseTotals.begin(), phaseTotals.end(), [&](const PhaseTime& t) { return t.phase == marks[i].phase; });
      if (at == phaseTotals.end()) at = phaseTotals.insert(phaseTotals.end(), PhaseTime{marks[i].phase, 0, 0, 0, 0});
      at->seconds += ms * 1e-3;
      at->flops += marks[i].flops;
      at->bytes += marks[i].bytes;
      at->calls += 1;
    }
    // The last event starts the next interval (the host's time between steps is charged to the next gather).
    std::swap(eventPool[0], eventPool[marks.size() - 1]);
    marks.erase(marks.begin(), marks.end() - 1);
  }

  bool bf16() const { return options.precision == CudaPrecision::Bf16; }
  double dropoutOf(int64_t l) const { return l < nEnc ? config.encoderDropout[size_t(l)] : config.decoderDropout[size_t(l - nEnc)]; }
  bool hasTanh(int64_t l) const { return l == nLayers - 1 ? false : (l == nEnc - 1 ? !config.variational : true); }
  const float* source(int64_t l) const { return (l == nEnc && config.variational) ? z.ptr : acts[size_t(l - 1)].ptr; }

  void reserve(int64_t rows) {
    if (rows <= capacity) return;
    capacity = rows;
    int64_t widest = 2 * latent;
    for (int64_t l = 0; l < nLayers; ++l) {
      const auto& L = layout.layers[size_t(l)];
      acts[size_t(l)].resize(size_t(rows * L.out));
      if (l >= 1) {
        widest = std::max(widest, L.in);
        if (dropoutOf(l) > 0) {
          dropped[size_t(l)].resize(size_t(rows * L.in));
          masks[size_t(l)].resize(size_t(rows * L.in));
        }
      }
      if (l < nLayers - 1) widest = std::max(widest, L.out);
    }
    z.resize(size_t(rows * latent));
    eps.resize(size_t(rows * latent));
    gA.resize(size_t(rows * widest));
    gB.resize(size_t(rows * widest));
    rowNll.resize(size_t(rows));
    rowKl.resize(size_t(rows));
    bPtr.resize(size_t(rows + 1));
    ones.resize(size_t(rows));
    fill<<<blocks(rows), 256, 0, stream>>>(ones.ptr, 1.0f, rows);
    LAUNCH_CHECK();
    const auto& out = layout.layers.back();
    if (splitK > 1) splitParts.resize(size_t(splitK * rows * out.in));
    if (bf16()) {
      outInputBf16.resize(size_t(rows * out.in));
      outGradBf16.resize(size_t(rows * ldBf16));
    }
  }

  // The bf16 copy of the output layer's weights, after the fp32 weights changed outside Adam.
  void refreshWeightCopy() {
    if (!bf16()) return;
    const auto& out = layout.layers.back();
    outWeightBf16.resize(size_t(out.in * ldBf16));
    toBf16Padded<<<blocks(out.in * out.out), 256>>>(params.ptr + out.weightOffset, outWeightBf16.ptr, out.in, out.out, ldBf16);
    LAUNCH_CHECK();
  }

  static MatrixKey keyOf(const CsrView& data) {
    MatrixKey k;
    k.indptr = data.indptr;
    k.indices = data.indices;
    k.values = data.values;
    k.rows = data.rows;
    k.nnz = data.nnz();
    k.generation = data.generation;
    if (k.generation != 0) return k;  // the caller vouches for the contents: no scan
    // FNV-1a over every row offset and a sample of the clicks: a matrix rewritten in place shows.
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) {
      for (int b = 0; b < 8; ++b) {
        h ^= (v >> (8 * b)) & 0xffu;
        h *= 1099511628211ull;
      }
    };
    for (int64_t r = 0; r <= data.rows; ++r) mix(uint64_t(data.indptr[r]));
    const int64_t nnz = k.nnz, stride = std::max<int64_t>(1, nnz / 65536);
    for (int64_t i = 0; i < nnz; i += stride) {
      mix(uint64_t(uint32_t(data.indices[data.indptr[0] + i])));
      if (data.values) {
        uint32_t bits;
        std::memcpy(&bits, &data.values[data.indptr[0] + i], 4);
        mix(bits);
      }
    }
    k.fingerprint = h;
    return k;
  }

  // beginEpoch: keep the training matrix on the device when it fits, upload it once.
  void registerMatrix(const CsrView& data) {
    const MatrixKey key = keyOf(data);
    if (key.sameMatrix(registered)) {
      registered = key;  // the same contents at this epoch's addresses (gather compares them)
      return;
    }
    registered = MatrixKey{};
    resident = false;
    const size_t bytes = size_t(data.rows + 1) * sizeof(int64_t) + size_t(key.nnz) * (sizeof(int32_t) + (data.values ? sizeof(float) : 0));
    size_t freeBytes = 0, totalBytes = 0;
    CK(cudaMemGetInfo(&freeBytes, &totalBytes));
    const bool fits = bytes + (size_t(1) << 30) <= freeBytes;
    if (options.residency == CudaOptions::Residency::Auto && fits) {
      const int64_t base = data.indptr[0];
      std::vector<int64_t> indptr(static_cast<size_t>(data.rows + 1));
      for (int64_t r = 0; r <= data.rows; ++r) indptr[size_t(r)] = data.indptr[r] - base;
      dIndptr.resize(size_t(data.rows + 1));
      dIndices.resize(size_t(key.nnz));
      CK(cudaMemcpy(dIndptr.ptr, indptr.data(), size_t(data.rows + 1) * sizeof(int64_t), cudaMemcpyHostToDevice));
      CK(cudaMemcpy(dIndices.ptr, data.indices + base, size_t(key.nnz) * sizeof(int32_t), cudaMemcpyHostToDevice));
      hasValues = data.values != nullptr;
      if (hasValues) {
        dValues.resize(size_t(key.nnz));
        CK(cudaMemcpy(dValues.ptr, data.values + base, size_t(key.nnz) * sizeof(float), cudaMemcpyHostToDevice));
      }
      resident = true;
      ++uploads;
    }
    registered = key;
  }

  // The batch CSR on the device for rows `hostRows[0..rowsInBatch)` (or [first, first + rowsInBatch))
  // of `data`. From the resident copy when `data` is the registered matrix, else from host memory.
  void gather(const CsrView& data, const int64_t* hostRows, int64_t first, int64_t rowsInBatch, bool transposed) {
    reserve(rowsInBatch);
    m = rowsInBatch;
    const bool fromDevice = resident && data.indptr == registered.indptr && data.indices == registered.indices &&
                            data.values == registered.values && data.rows == registered.rows;
    // Offsets from the host's indptr.
    std::vector<int32_t> offsets(static_cast<size_t>(m + 1), 0);
    for (int64_t u = 0; u < m; ++u) {
      const int64_t r = hostRows ? hostRows[u] : first + u;
      if (r < 0 || r >= data.rows) throw InvalidArgument("row " + std::to_string(r) + " is out of range");
      const int64_t next = int64_t(offsets[size_t(u)]) + (data.indptr[r + 1] - data.indptr[r]);
      if (next > int64_t(INT32_MAX)) throw InvalidArgument("a batch holds more than 2^31 clicks; use a smaller batch");
      offsets[size_t(u + 1)] = int32_t(next);
    }
    const int64_t nnz = offsets[size_t(m)];
    bIdx.resize(size_t(std::max<int64_t>(nnz, 1)));
    bRaw.resize(size_t(std::max<int64_t>(nnz, 1)));
    bInput.resize(size_t(std::max<int64_t>(nnz, 1)));
    // The staging memory may still feed the previous batch's uploads.
    if (stagingInUse) CK(cudaEventSynchronize(stagingFree));
    const size_t offsetBytes = size_t(m + 1) * sizeof(int32_t);
    const size_t alignedOffsets = (offsetBytes + 15) & ~size_t(15);
    // The staging memory holds the whole batch's uploads (sized once: growing it would free memory that
    // queued copies still read): [offsets | rows or clicks | transposed batch].
    const size_t ptrBytes = size_t(items + 1) * sizeof(int32_t), ptrAligned = (ptrBytes + 15) & ~size_t(15);
    const size_t transposeBytes = transposed ? ptrAligned + size_t(std::max<int64_t>(nnz, 1)) * sizeof(int2) : 0;
    size_t tail = 0;
    if (fromDevice) {
      tail = (alignedOffsets + size_t(m) * sizeof(int64_t) + 15) & ~size_t(15);
      staging.resize(tail + transposeBytes);
      std::memcpy(staging.ptr, offsets.data(), offsetBytes);
      CK(cudaMemcpyAsync(bPtr.ptr, staging.ptr, offsetBytes, cudaMemcpyHostToDevice, stream));
      const int64_t* rowsDev = nullptr;
      if (hostRows) {
        std::memcpy(staging.ptr + alignedOffsets, hostRows, size_t(m) * sizeof(int64_t));
        dRows.resize(size_t(m));
        CK(cudaMemcpyAsync(dRows.ptr, staging.ptr + alignedOffsets, size_t(m) * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
        rowsDev = dRows.ptr;
      }
      gatherRows<<<blocks(m * 32), 256, 0, stream>>>(dIndptr.ptr, dIndices.ptr, hasValues ? dValues.ptr : nullptr, rowsDev, first, m, bPtr.ptr, bIdx.ptr,
                                          bRaw.ptr);
      LAUNCH_CHECK();
    } else {
      // Streamed: the batch's clicks gathered on the host, then uploaded.
      const size_t idxBytes = size_t(nnz) * sizeof(int32_t);
      tail = alignedOffsets + 2 * ((idxBytes + 15) & ~size_t(15));
      staging.resize(tail + transposeBytes);
      std::memcpy(staging.ptr, offsets.data(), offsetBytes);
      int32_t* idx = reinterpret_cast<int32_t*>(staging.ptr + alignedOffsets);
      float* val = reinterpret_cast<float*>(staging.ptr + alignedOffsets + ((idxBytes + 15) & ~size_t(15)));
      for (int64_t u = 0; u < m; ++u) {
        const int64_t r = hostRows ? hostRows[u] : first + u;
        const int64_t b = data.indptr[r], n = data.indptr[r + 1] - b;
        std::memcpy(idx + offsets[size_t(u)], data.indices + b, size_t(n) * sizeof(int32_t));
        for (int64_t k = 0; k < n; ++k) val[offsets[size_t(u)] + k] = data.values ? data.values[b + k] : 1.0f;
      }
      CK(cudaMemcpyAsync(bPtr.ptr, staging.ptr, offsetBytes, cudaMemcpyHostToDevice, stream));
      if (nnz > 0) {
        CK(cudaMemcpyAsync(bIdx.ptr, idx, idxBytes, cudaMemcpyHostToDevice, stream));
        CK(cudaMemcpyAsync(bRaw.ptr, val, size_t(nnz) * sizeof(float), cudaMemcpyHostToDevice, stream));
      }
    }
    batchNnz = nnz;
    if (transposed) {
      // Counting sort of the batch's clicks by item (stable: users in order), into the staging tail.
      hostColPtr.assign(size_t(items + 1), 0);
      for (int64_t u = 0; u < m; ++u) {
        const int64_t r = hostRows ? hostRows[u] : first + u;
        for (int64_t k = data.indptr[r]; k < data.indptr[r + 1]; ++k) hostColPtr[size_t(data.indices[k]) + 1] += 1;
      }
      for (int64_t i = 0; i < items; ++i) hostColPtr[size_t(i + 1)] += hostColPtr[size_t(i)];
      int32_t* cursor = reinterpret_cast<int32_t*>(staging.ptr + tail);
      std::memcpy(cursor, hostColPtr.data(), ptrBytes);
      tPtr.resize(size_t(items + 1));
      CK(cudaMemcpyAsync(tPtr.ptr, cursor, ptrBytes, cudaMemcpyHostToDevice, stream));
      int2* entries = reinterpret_cast<int2*>(staging.ptr + tail + ptrAligned);
      // hostColPtr becomes the fill cursor (the upload above reads the staging copy).
      for (int64_t u = 0; u < m; ++u) {
        const int64_t r = hostRows ? hostRows[u] : first + u;
        const int64_t b = data.indptr[r];
        for (int64_t k = b; k < data.indptr[r + 1]; ++k)
          entries[hostColPtr[size_t(data.indices[k])]++] = make_int2(int32_t(u), offsets[size_t(u)] + int32_t(k - b));
      }
      tEntries.resize(size_t(std::max<int64_t>(nnz, 1)));
      if (nnz > 0) CK(cudaMemcpyAsync(tEntries.ptr, entries, size_t(nnz) * sizeof(int2), cudaMemcpyHostToDevice, stream));
    }
    CK(cudaEventRecord(stagingFree, stream));
    stagingInUse = true;
    mark(fromDevice ? "gather batch (device-resident matrix)" : "gather batch (streamed from host)", 0,
         double(nnz) * 16 + double(m) * (fromDevice ? 12 : 4));
  }

  // C (fp32, column-major view) = alpha op(A) op(B) + beta C with bf16 operands, fp32 accumulation.
  void gemmBf16(cublasOperation_t ta, cublasOperation_t tb, int64_t rows, int64_t cols, int64_t inner, const __nv_bfloat16* A, int64_t lda,
                const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    const float alpha = 1.0f;
    CK(cublasGemmEx(blas, ta, tb, int(rows), int(cols), int(inner), &alpha, A, CUDA_R_16BF, int(lda), B, CUDA_R_16BF, int(ldb), &beta, C, CUDA_R_32F,
                    int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  void forward(bool training, uint64_t seed, uint64_t step) {
    if (awaitingUpdates) {
      // The previous step's updates ran on the Adam stream (overlapping this batch's gather).
      CK(cudaStreamWaitEvent(stream, updatesDone, 0));
      awaitingUpdates = false;
    }
    normaliseInput<<<blocks(m * 32), 256, 0, stream>>>(bPtr.ptr, bRaw.ptr, bInput.ptr, m, training, dropoutOf(0), seed, step);
    LAUNCH_CHECK();
    mark("normalise + input dropout", 0, double(batchNnz) * 12);
    const float one = 1.0f;
    for (int64_t l = 0; l < nLayers; ++l) {
      const auto& L = layout.layers[size_t(l)];
      const float* W = params.ptr + L.weightOffset;
      const float* b = params.ptr + L.biasOffset;
      float* out = acts[size_t(l)].ptr;
      // Training leaves the output bias to the likelihood kernel (one pass over the logits fewer).
      const bool biasLater = training && l == nLayers - 1;
      if (!biasLater && l > 0) {
        broadcastBias<<<blocks(m * L.out), 256, 0, stream>>>(out, b, m, L.out);
        LAUNCH_CHECK();
      }
      const float accumulate = biasLater ? 0.0f : 1.0f;
      if (l == 0) {
        sparseInputForward<<<unsigned(m), columnThreads(L.out), 0, stream>>>(bPtr.ptr, bIdx.ptr, bInput.ptr, W, b, L.out, out);
        LAUNCH_CHECK();
        mark("forward L0: bias + sparse product", 2.0 * double(batchNnz) * double(L.out), 4.0 * (double(batchNnz) * double(L.out) + 2.0 * double(m * L.out)));
      } else {
        const float* in = source(l);
        if (training && dropoutOf(l) > 0) {
          dropoutMask<<<blocks(m * L.in), 256, 0, stream>>>(masks[size_t(l)].ptr, m * L.in, dropoutOf(l), seed, uint32_t(Stream::HiddenDropout) * 1000u + uint32_t(l), step);
          multiply<<<blocks(m * L.in), 256, 0, stream>>>(in, masks[size_t(l)].ptr, dropped[size_t(l)].ptr, m * L.in);
          LAUNCH_CHECK();
          in = dropped[size_t(l)].ptr;
          mark("dropout masks", 0, 12.0 * double(m * L.in));
        }
        if (bf16() && l == nLayers - 1) {
          // Logits[m x items] += In W in bf16 (the input rounded, as on the CPU).
          toBf16<<<blocks(m * L.in), 256, 0, stream>>>(in, outInputBf16.ptr, m * L.in);
          LAUNCH_CHECK();
          gemmBf16(CUBLAS_OP_N, CUBLAS_OP_N, L.out, m, L.in, outWeightBf16.ptr, ldBf16, outInputBf16.ptr, L.in, accumulate, out, L.out);
        } else {
          CK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(L.out), int(m), int(L.in), &one, W, int(L.out), in, int(L.in), &accumulate, out,
                         int(L.out)));
        }
        const double operand = bf16() && l == nLayers - 1 ? 2.0 : 4.0;
        mark("forward L" + std::to_string(l) + ": bias + GEMM", 2.0 * double(m) * double(L.in) * double(L.out),
             operand * double(m * L.in + L.in * L.out) + 8.0 * double(m * L.out));
      }
      if (hasTanh(l)) {
        tanhInPlace<<<blocks(m * L.out), 256, 0, stream>>>(out, m * L.out);
        LAUNCH_CHECK();
      }
      if (l == nEnc - 1 && config.variational) {
        if (training) {
          sampleEps<<<blocks(m * latent), 256, 0, stream>>>(eps.ptr, m * latent, seed, step);
          LAUNCH_CHECK();
        }
        reparameterise<<<blocks(m * latent), 256, 0, stream>>>(out, eps.ptr, z.ptr, m, latent, training);
        LAUNCH_CHECK();
      }
      if (hasTanh(l) || (l == nEnc - 1 && config.variational)) mark("tanh / reparameterisation", 0, 8.0 * double(m * L.out));
    }
  }

  // Launches the likelihood, KL, the step's sums and the non-finite flag, all gradients, and (when
  // adam.on) the Adam updates: one launch over every parameter at the end, or layer by layer on the Adam
  // stream as each layer's gradients are final. `afterSums` runs once the step's sums are queued (the
  // read-back, when not capturing a graph: the host can collect the loss before the gradients are done).
  void backward(double beta, double l2, const AdamStep& adam, const std::function<void()>& afterSums) {
    const int64_t D = latent;
    float* logits = acts[size_t(nLayers - 1)].ptr;
    const float invM = float(1.0 / double(m));
    const auto& outLayer = layout.layers.back();
    likelihood<256><<<unsigned(m), 256, 0, stream>>>(logits, items, params.ptr + outLayer.biasOffset, bPtr.ptr, bIdx.ptr, bRaw.ptr, invM, rowNll.ptr,
                                          bf16() ? outGradBf16.ptr : nullptr, ldBf16);
    LAUNCH_CHECK();
    mark("likelihood + softmax gradient", 0, double(m * items) * (12.0 + (bf16() ? 2.0 : 0.0)));
    if (config.variational) {
      klRows<<<blocks(m * 32), 256, 0, stream>>>(acts[size_t(nEnc - 1)].ptr, m, D, rowKl.ptr);
      LAUNCH_CHECK();
      mark("KL", 0, 8.0 * double(m * D));
    }
    // Updates interleaved with the backward pass (the Adam stream) need the non-finite flag first; the
    // serial schedule keeps the order the GPU runs checked: sums, flag and read-back after the gradients.
    const bool interleaved = adam.on && optStream;
    // The step's sums [nll, kl, |W_l|^2 per layer] and the flag that makes Adam skip a non-finite step
    // (the weights do not change before Adam, so both can be computed at either point); after the
    // gradients, the L2 term's gradient 2 l2 W is added to each dW in the same pass.
    auto issueSums = [&](bool addL2Gradients) {
      CK(cudaMemsetAsync(stepSums.ptr, 0, size_t(2 + nLayers) * sizeof(double), stream));
      sumRows<<<1, 256, 0, stream>>>(rowNll.ptr, config.variational ? rowKl.ptr : nullptr, m, stepSums.ptr);
      LAUNCH_CHECK();
      if (l2 > 0)
        for (int64_t l = 0; l < nLayers; ++l) {
          const auto& L = layout.layers[size_t(l)];
          const int64_t n = L.in * L.out;
          sumSquares<<<std::min<unsigned>(blocks(n), 1024u), 256, 0, stream>>>(params.ptr + L.weightOffset, n, stepSums.ptr + 2 + l);
          if (addL2Gradients) addScaled<<<blocks(n), 256, 0, stream>>>(grads.ptr + L.weightOffset, params.ptr + L.weightOffset, float(2.0 * l2), n);
          LAUNCH_CHECK();
        }
      flagNonFinite<<<1, 1, 0, stream>>>(stepSums.ptr, nLayers, 1.0 / double(m), beta, l2, skipUpdate.ptr);
      LAUNCH_CHECK();
      mark(addL2Gradients ? "loss sums, L2 term" : "loss sums, |W|^2, non-finite flag", 0,
           4.0 * double(m) * 2 + (l2 > 0 ? (addL2Gradients ? 12.0 : 4.0) * double(layout.total) : 0.0));
      if (afterSums) afterSums();
    };
    if (interleaved) issueSums(false);
    // Interleaved: the L2 term's gradient, 2 l2 W, added to dW as soon as it is computed.
    auto addL2 = [&](const ParameterLayout::Layer& L, float* dW) {
      if (!interleaved || l2 <= 0) return;
      const int64_t n = L.in * L.out;
      addScaled<<<blocks(n), 256, 0, stream>>>(dW, params.ptr + L.weightOffset, float(2.0 * l2), n);
      LAUNCH_CHECK();
      mark("L2 gradient", 0, 12.0 * double(n));
    };
    // Layer l's gradients are final and its weights read for the last time in this step: with the Adam
    // stream, its update starts there, beside the backward pass of the layers below.
    auto layerDone = [&](int64_t l) {
      if (!interleaved) return;
      CK(cudaEventRecord(gradsReady[size_t(l)], stream));
      CK(cudaStreamWaitEvent(optStream, gradsReady[size_t(l)], 0));
      const auto& L = layout.layers[size_t(l)];
      adamRange(adam, L.weightOffset, L.biasOffset + L.out, optStream);
    };
    const float one = 1.0f, zero = 0.0f;
    float* dcur = logits;
    float* spare[2] = {gA.ptr, gB.ptr};
    int next = 0;
    for (int64_t l = nLayers - 1; l >= 0; --l) {
      const auto& L = layout.layers[size_t(l)];
      float* dW = grads.ptr + L.weightOffset;
      float* db = grads.ptr + L.biasOffset;
      // db[out] = dA^T 1 (dA [m x out] row-major is [out x m] column-major).
      CK(cublasSgemv(blas, CUBLAS_OP_N, int(L.out), int(m), &one, dcur, int(L.out), ones.ptr, 1, &zero, db, 1));
      mark("bias gradients", 0, 4.0 * double(m * L.out));
      if (l == 0) {
        // dW0 = input^T dA0 over the batch transposed on the host.
        sparseInputGradient<<<unsigned(items), columnThreads(L.out), 0, stream>>>(tPtr.ptr, tEntries.ptr, bInput.ptr, dcur, L.out, dW);
        LAUNCH_CHECK();
        mark("backward L0: sparse product (dW0)", 2.0 * double(batchNnz) * double(L.out),
             4.0 * (double(items * L.out) + double(m * L.out)));
        addL2(L, dW);
        layerDone(0);
        break;
      }
      const bool drop = dropoutOf(l) > 0;
      const float* in = drop ? dropped[size_t(l)].ptr : source(l);
      const float* W = params.ptr + L.weightOffset;
      float* dIn = spare[next];
      next ^= 1;
      const bool outputLayer = l == nLayers - 1;
      const bool bf16Operands = bf16() && outputLayer;
      const double operand = bf16Operands ? 2.0 : 4.0;
      const std::string name = "backward L" + std::to_string(l);
      // dW[in x out] = In^T dA: column-major dW^T [out x in] = dA^T(col-major [out x m]) In(col-major [in x m])^T.
      if (bf16Operands) {
        // bf16 operands (In was rounded in forward(), dLogits in the likelihood kernel).
        gemmBf16(CUBLAS_OP_N, CUBLAS_OP_T, L.out, L.in, m, outGradBf16.ptr, ldBf16, outInputBf16.ptr, L.in, 0.0f, dW, L.out);
      } else {
        CK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, int(L.out), int(L.in), int(m), &one, dcur, int(L.out), in, int(L.in), &zero, dW, int(L.out)));
      }
      mark(name + ": dW GEMM", 2.0 * double(m) * double(L.in) * double(L.out),
           operand * double(m * L.out + m * L.in) + 4.0 * double(L.in * L.out));
      addL2(L, dW);
      // dIn[m x in] = dA W^T: column-major [in x m] = W(col-major [out x in])^T dA(col-major [out x m]).
      if (bf16Operands && splitK > 1) {
        // K = n_items: splitK slices of splitWidth items side by side, the rest added to slice 0, then summed.
        const int64_t sliceElems = m * L.in, rest = L.out - splitK * splitWidth;
        // (bf16 only: in fp32 it measured slower than one GEMM, 0.36 against 0.26 ms, and no faster in TF32.)
        const cudaDataType type = CUDA_R_16BF;
        const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
        const void* A = outWeightBf16.ptr;
        const void* B = outGradBf16.ptr;
        const int64_t ld = ldBf16;
        const size_t elem = 2;
        CK(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(L.in), int(m), int(splitWidth), &one, A, type, int(ld), splitWidth, B, type,
                                      int(ld), splitWidth, &zero, splitParts.ptr, CUDA_R_32F, int(L.in), sliceElems, int(splitK), compute,
                                      CUBLAS_GEMM_DEFAULT));
        if (rest > 0) {
          const char* Ar = static_cast<const char*>(A) + size_t(splitK * splitWidth) * elem;
          const char* Br = static_cast<const char*>(B) + size_t(splitK * splitWidth) * elem;
          CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(L.in), int(m), int(rest), &one, Ar, type, int(ld), Br, type, int(ld), &one, splitParts.ptr,
                          CUDA_R_32F, int(L.in), compute, CUBLAS_GEMM_DEFAULT));
        }
        sumParts<<<blocks(sliceElems), 256, 0, stream>>>(splitParts.ptr, splitK, sliceElems, dIn);
        LAUNCH_CHECK();
      } else if (bf16Operands) {
        gemmBf16(CUBLAS_OP_T, CUBLAS_OP_N, L.in, m, L.out, outWeightBf16.ptr, ldBf16, outGradBf16.ptr, ldBf16, 0.0f, dIn, L.in);
      } else {
        CK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(L.in), int(m), int(L.out), &one, W, int(L.out), dcur, int(L.out), &zero, dIn, int(L.in)));
      }
      mark(name + ": dIn GEMM" + (bf16Operands && splitK > 1 ? " (split over items)" : ""), 2.0 * double(m) * double(L.in) * double(L.out),
           operand * double(m * L.out + L.in * L.out) + 4.0 * double(m * L.in) * (bf16Operands ? double(2 * splitK + 1) : 1.0));
      layerDone(l);
      if (drop) {
        multiply<<<blocks(m * L.in), 256, 0, stream>>>(dIn, masks[size_t(l)].ptr, dIn, m * L.in);
        LAUNCH_CHECK();
      }
      if (l == nEnc && config.variational) {
        float* dE = spare[next];
        next ^= 1;
        reparameteriseBackward<<<blocks(m * D), 256, 0, stream>>>(acts[size_t(nEnc - 1)].ptr, eps.ptr, dIn, dE, m, D, float(beta) * invM);
        LAUNCH_CHECK();
        dcur = dE;
      } else {
        tanhBackward<<<blocks(m * L.in), 256, 0, stream>>>(dIn, acts[size_t(l - 1)].ptr, m * L.in);
        LAUNCH_CHECK();
        dcur = dIn;
      }
      mark("dropout / tanh / reparameterisation backward", 0, 12.0 * double(m * L.in));
    }
    if (!interleaved) issueSums(true);
    if (adam.on && !interleaved) {
      adamRange(adam, 0, layout.total, stream);
    } else if (interleaved) {
      CK(cudaEventRecord(updatesDone, optStream));
      awaitingUpdates = true;  // a graph capture joins the Adam stream instead (endCapture)
    }
  }

  // The step's sums copied to a page-locked slot (read in collect()) and the step queued as pending.
  void queueReadback(const StepOptions& opt, int64_t adamTBefore) {  // submitStep checked there is a free slot
    const int slot = nextSlot;
    nextSlot = (nextSlot + 1) % kSlots;
    double* host = reinterpret_cast<double*>(resultSlots.ptr) + slot * (2 + nLayers);
    CK(cudaMemcpyAsync(host, stepSums.ptr, size_t(2 + nLayers) * sizeof(double), cudaMemcpyDeviceToHost, stream));
    CK(cudaEventRecord(slotReady[slot], stream));
    mark("loss read-back", 0, 8.0 * double(2 + nLayers));
    pending.push_back(PendingStep{slot, m, int64_t(opt.step), opt.beta, opt.l2, adamTBefore});
  }

  // The oldest submitted step's result (waits for it).
  StepResult collect() {
    if (pending.empty()) throw std::logic_error("collectStep: no step was submitted");
    const PendingStep p = pending.front();
    pending.pop_front();
    CK(cudaEventSynchronize(slotReady[p.slot]));
    harvestMarks();
    const double* sums = reinterpret_cast<const double*>(resultSlots.ptr) + p.slot * (2 + nLayers);
    StepResult r;
    r.nll = sums[0] / double(p.m);
    r.kl = sums[1] / double(p.m);
    double l2sum = 0;
    for (int64_t l = 0; l < nLayers; ++l) l2sum += sums[2 + l];
    r.l2 = p.l2 * l2sum;
    r.loss = r.nll + p.beta * r.kl + r.l2;
    if (!std::isfinite(r.loss)) {
      // The device skipped this update and every one queued after it: drop those steps, restore the
      // optimizer's count, clear the flag. Weights and moments are as before this step, as on the CPU.
      CK(cudaDeviceSynchronize());
      pending.clear();
      adamT = p.adamTBefore;
      CK(cudaMemset(skipUpdate.ptr, 0, sizeof(int)));
      throw std::runtime_error("the loss became non-finite at step " + std::to_string(p.step) + " (nll " + std::to_string(r.nll) + ", kl " +
                               std::to_string(r.kl) + "); the update was skipped; try a smaller learning rate");
    }
    return r;
  }

  // Everything a step allocates or clears, before it is issued (a graph capture may allocate nothing).
  void prepareStep(bool update) {
    grads.resize(size_t(layout.total));
    if (!update) return;
    adamM.resize(size_t(layout.total));
    adamV.resize(size_t(layout.total));
    if (adamT == 0) {
      CK(cudaMemsetAsync(adamM.ptr, 0, size_t(layout.total) * sizeof(float), stream));
      CK(cudaMemsetAsync(adamV.ptr, 0, size_t(layout.total) * sizeof(float), stream));
    }
  }

  // Advances the optimizer's step count; the bias corrections of this step (Kingma & Ba, Algorithm 1).
  AdamStep adamScalars(const OptimizerOptions& o) {
    adamT += 1;
    AdamStep a;
    a.on = true;
    a.o = o;
    a.bc1 = 1.0 - std::pow(o.beta1, double(adamT));
    a.bc2 = 1.0 - std::pow(o.beta2, double(adamT));
    return a;
  }

  // Adam over parameters [begin, end) on `s` (skipped on the device when the step's loss is non-finite),
  // refreshing the bf16 copy of the output layer's weights where the range covers them.
  void adamRange(const AdamStep& a, int64_t begin, int64_t end, cudaStream_t s) {
    const OptimizerOptions& o = a.o;
    const auto& out = layout.layers.back();
    const int64_t n = end - begin;
    adam<<<blocks(n), 256, 0, s>>>(params.ptr + begin, grads.ptr + begin, adamM.ptr + begin, adamV.ptr + begin, n, float(o.learningRate / a.bc1),
                                   float(o.beta1), float(o.beta2), float(o.epsilon), float(std::sqrt(a.bc2)), float(o.weightDecay),
                                   float(1.0 - o.learningRate * o.weightDecay), !o.decoupled && o.weightDecay != 0, o.decoupled && o.weightDecay != 0,
                                   bf16() ? outWeightBf16.ptr : nullptr, out.weightOffset - begin, out.weightOffset + out.in * out.out - begin, out.out,
                                   ldBf16, skipUpdate.ptr);
    LAUNCH_CHECK();
    if (s == stream) mark("Adam", 0, 28.0 * double(n));
  }

  // ---- CUDA graphs (CudaOptions::graphs) ----

  void beginCapture() { CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal)); }

  // Ends the capture (joining the Adam stream first) and launches it: the batch size's executable graph
  // updated in place from this capture (the kernels' arguments change every step: seed, step, beta,
  // Adam's scalars, buffers that grew), or instantiated anew when the update is refused.
  void endCaptureAndLaunch() {
    if (awaitingUpdates) {
      CK(cudaStreamWaitEvent(stream, updatesDone, 0));
      awaitingUpdates = false;
    }
    cudaGraph_t graph = nullptr;
    CK(cudaStreamEndCapture(stream, &graph));
    auto at = std::find_if(stepGraphs.begin(), stepGraphs.end(), [&](const StepGraph& g) { return g.m == m; });
    if (at != stepGraphs.end()) {
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(at->exec, graph, &info) != cudaSuccess) {
        (void)cudaGetLastError();  // the refusal is not an error: instantiate instead
        cudaGraphExecDestroy(at->exec);
        stepGraphs.erase(at);
        at = stepGraphs.end();
      }
    }
    if (at == stepGraphs.end()) {
      if (stepGraphs.size() >= 4) {
        cudaGraphExecDestroy(stepGraphs.front().exec);
        stepGraphs.erase(stepGraphs.begin());
      }
      cudaGraphExec_t exec = nullptr;
      const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
      if (e != cudaSuccess) {
        cudaGraphDestroy(graph);
        CK(e);
      }
      stepGraphs.push_back(StepGraph{m, exec});
      at = stepGraphs.end() - 1;
      ++schedule.graphInstantiations;
    }
    cudaGraphDestroy(graph);
    CK(cudaGraphLaunch(at->exec, stream));
    ++schedule.graphLaunches;
  }

  // A capture abandoned by an exception: ended and discarded, so the stream can be used again.
  void abandonCapture() {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
      cudaGraph_t graph = nullptr;
      cudaStreamEndCapture(stream, &graph);
      if (graph) cudaGraphDestroy(graph);
    }
    (void)cudaGetLastError();
    awaitingUpdates = false;
  }
};

CudaEngine::CudaEngine(const ModelConfig& config, const CudaOptions& options) : impl_(std::make_unique<Impl>(config, options)) {}
CudaEngine::~CudaEngine() = default;
const ModelConfig& CudaEngine::config() const { return impl_->config; }
int64_t CudaEngine::numParams() const { return impl_->layout.total; }

void CudaEngine::initialize(uint64_t seed) {
  // The CPU engine's initialisation (same counter RNG), uploaded.
  cpu::MultVaeCpu<float> host(impl_->config);
  host.initialize(seed);
  setParameters(host.parameters());
  impl_->adamT = 0;
}

void CudaEngine::beginEpoch(const CsrView& data) { impl_->registerMatrix(data); }
bool CudaEngine::streaming() const { return !impl_->resident; }
int64_t CudaEngine::matrixUploads() const { return impl_->uploads; }

void CudaEngine::submitStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
  if (opt.phase != Phase::Joint || opt.gamma != 0)
    throw InvalidArgument("Mult-VAE / Mult-DAE train every parameter in each step with one KL weight (no phases, no gamma)");
  Impl& im = *impl_;
  if (im.pending.size() >= size_t(Impl::kSlots)) throw std::logic_error("too many CUDA steps in flight; collect them first");
  im.gather(data, rows, 0, m, true);
  im.prepareStep(opt.update);
  const int64_t adamTBefore = im.adamT;
  const Impl::AdamStep adam = opt.update ? im.adamScalars(opt.optimizer) : Impl::AdamStep{};
  const bool graph = im.options.graphs && !im.profiling;
  const size_t pendingBefore = im.pending.size();
  // The loss's read-back: inside the step when launched kernel by kernel (right after the sums), after
  // the graph when captured (its page-locked slot changes every step).
  const std::function<void()> readback = [&] { im.queueReadback(opt, adamTBefore); };
  try {
    if (graph) im.beginCapture();
    im.forward(true, opt.seed, opt.step);
    // A non-finite loss makes the device skip the updates; it is reported when the step is collected.
    im.backward(opt.beta, opt.l2, adam, graph ? std::function<void()>() : readback);
    if (graph) {
      im.endCaptureAndLaunch();
      readback();
    }
  } catch (...) {
    if (graph) im.abandonCapture();
    if (im.pending.size() > pendingBefore) im.pending.pop_back();
    im.adamT = adamTBefore;
    throw;
  }
}

StepResult CudaEngine::collectStep() { return impl_->collect(); }

StepResult CudaEngine::trainStep(const CsrView& data, const int64_t* rows, int64_t m, const StepOptions& opt) {
  if (!impl_->pending.empty()) throw std::logic_error("trainStep while pipelined steps are in flight; collect them first");
  submitStep(data, rows, m, opt);
  return collectStep();
}

void CudaEngine::scores(const CsrView& data, int64_t first, int64_t m, float* out) {
  impl_->gather(data, nullptr, first, m, false);
  impl_->forward(false, 0, 0);
  CK(cudaMemcpy(out, impl_->acts.back().ptr, size_t(m * impl_->items) * sizeof(float), cudaMemcpyDeviceToHost));
}

void CudaEngine::recommend(const CsrView& data, int64_t first, int64_t m, int64_t k, bool excludeSeen, const uint8_t* candidates,
                           int32_t* outItems, float* outScores) {
  impl_->gather(data, nullptr, first, m, false);
  impl_->forward(false, 0, 0);
  const uint8_t* dCand = nullptr;
  if (candidates) {
    impl_->dCandidates.resize(size_t(impl_->items));
    CK(cudaMemcpy(impl_->dCandidates.ptr, candidates, size_t(impl_->items), cudaMemcpyHostToDevice));
    dCand = impl_->dCandidates.ptr;
  }
  impl_->dTopItems.resize(size_t(m * k));
  impl_->dTopScores.resize(size_t(m * k));
  topK<256><<<unsigned(m), 256>>>(impl_->acts.back().ptr, impl_->items, impl_->bPtr.ptr, impl_->bIdx.ptr, excludeSeen, dCand, k, impl_->dTopItems.ptr,
                                  impl_->dTopScores.ptr);
  LAUNCH_CHECK();
  CK(cudaMemcpy(outItems, impl_->dTopItems.ptr, size_t(m * k) * sizeof(int32_t), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(outScores, impl_->dTopScores.ptr, size_t(m * k) * sizeof(float), cudaMemcpyDeviceToHost));
}

void CudaEngine::getParameters(float* out) const {
  CK(cudaMemcpy(out, impl_->params.ptr, size_t(impl_->layout.total) * sizeof(float), cudaMemcpyDeviceToHost));
}
void CudaEngine::setParameters(const float* in) {
  CK(cudaMemcpy(impl_->params.ptr, in, size_t(impl_->layout.total) * sizeof(float), cudaMemcpyHostToDevice));
  impl_->refreshWeightCopy();
}
void CudaEngine::getOptimizerState(float* m, float* v, int64_t* t) const {
  const size_t n = size_t(impl_->layout.total);
  if (impl_->adamT == 0 || !impl_->adamM.ptr) {
    std::fill(m, m + n, 0.0f);
    std::fill(v, v + n, 0.0f);
  } else {
    CK(cudaMemcpy(m, impl_->adamM.ptr, n * sizeof(float), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(v, impl_->adamV.ptr, n * sizeof(float), cudaMemcpyDeviceToHost));
  }
  *t = impl_->adamT;
}
void CudaEngine::setOptimizerState(const float* m, const float* v, int64_t t) {
  const size_t n = size_t(impl_->layout.total);
  impl_->adamM.resize(n);
  impl_->adamV.resize(n);
  CK(cudaMemcpy(impl_->adamM.ptr, m, n * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(impl_->adamV.ptr, v, n * sizeof(float), cudaMemcpyHostToDevice));
  impl_->adamT = t;
}
void CudaEngine::getGradients(float* out) const {
  const size_t n = size_t(impl_->layout.total);
  if (!impl_->grads.ptr) std::fill(out, out + n, 0.0f);
  else CK(cudaMemcpy(out, impl_->grads.ptr, n * sizeof(float), cudaMemcpyDeviceToHost));
}
void CudaEngine::synchronize() const { CK(cudaDeviceSynchronize()); }
void CudaEngine::setProfiling(bool on) {
  impl_->harvestMarks();
  impl_->marks.clear();
  impl_->profiling = on;
}
ScheduleStats CudaEngine::scheduleStats() const { return impl_->schedule; }
std::vector<PhaseTime> CudaEngine::phaseTimes() {
  impl_->harvestMarks();
  return impl_->phaseTotals;
}
void CudaEngine::resetPhaseTimes() {
  impl_->harvestMarks();
  impl_->phaseTotals.clear();
}

}  // namespace vaecf::cuda
