#include "onednn_matmul.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <stdexcept>

#ifdef VAECF_HAVE_ONEDNN
#include "platform.h"

#include <oneapi/dnnl/dnnl.hpp>
#if !defined(VAECF_USE_ACCELERATE)
extern "C" char* openblas_get_corename(void);
#endif
#endif

namespace vaecf::cpu {

#ifdef VAECF_HAVE_ONEDNN

namespace {
bool cpuHasBf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}
}  // namespace

bool bf16MatmulAvailable() {
  static const bool ok = cpuHasBf16();
  return ok;
}

std::string bf16MatmulDescription() {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: isa = "AMX"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "AVX512-BF16"; break;
    default: isa = "no bf16 instructions on this CPU (AVX512-BF16 or AMX)"; break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "; " + isa;
}

namespace {
bool cpuHasAvx512() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx: return true;
    default: return false;
  }
}
std::string openBlasCore() {
#if defined(VAECF_USE_ACCELERATE)
  return "";
#else
  const char* name = openblas_get_corename();
  return name ? name : "";
#endif
}
// OpenBLAS's AVX-512 kernel sets (0.3.21 and later); any other name on an AVX-512 processor means AVX2 or older code.
bool openBlasCoreIsAvx512(const std::string& core) {
  std::string lower;
  for (char c : core) lower += char(std::tolower(static_cast<unsigned char>(c)));
  return lower == "skylakex" || lower == "cooperlake" || lower == "sapphirerapids";
}

struct Fp32Choice {
  bool oneDnn = false;
  std::string description;
};
const Fp32Choice& fp32Choice() {
  static const Fp32Choice choice = [] {
    Fp32Choice c;
    const std::string core = openBlasCore();
    const dnnl_version_t* v = dnnl_version();
    const std::string oneDnn = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) +
                               (cpuHasAvx512() ? " (AVX-512)" : " (no AVX-512)");
#if defined(VAECF_USE_ACCELERATE)
    const std::string openBlas = "Accelerate";
#else
    const std::string openBlas = "OpenBLAS (" + (core.empty() ? std::string("unknown") : core) + " kernels)";
#endif
    // Only when OpenBLAS names its kernels (never instead of Accelerate).
    c.oneDnn = !core.empty() && cpuHasAvx512() && !openBlasCoreIsAvx512(core);
    std::string why = c.oneDnn ? "OpenBLAS would run " + core + " kernels on this AVX-512 processor" : "";
    if (const char* env = std::getenv("VAECF_FP32_GEMM"); env && *env) {
      if (std::strcmp(env, "onednn") == 0) c.oneDnn = true, why = "VAECF_FP32_GEMM=onednn";
      else if (std::strcmp(env, "openblas") == 0) c.oneDnn = false, why = "VAECF_FP32_GEMM=openblas";
      else
        std::fprintf(stderr, "vaecf: VAECF_FP32_GEMM=%s is not 'openblas' or 'onednn'; using %s\n", env,
                     c.oneDnn ? oneDnn.c_str() : openBlas.c_str());
    }
    c.description = (c.oneDnn ? oneDnn : openBlas) + (why.empty() ? "" : "; " + why);
    return c;
  }();
  return choice;
}

struct SgemmKey {
  bool transA, transB;
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
  bool operator==(const SgemmKey& o) const { return std::memcmp(this, &o, sizeof(SgemmKey)) == 0; }
};
// Shapes per thread, most recent first. Counted on ML-1M (batch 500, a last batch of 334, 600 validation
// users): Mult-VAE's training and validation use 21 shapes on each thread that runs them, and a 24-entry
// cache built no more primitives than this one; 128 leaves room for several models and scoring sizes.
struct SgemmEntry {
  SgemmKey key;
  dnnl::memory::desc a, b, c;
  dnnl::matmul matmul;
};
struct SgemmCache {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::list<SgemmEntry> entries;
  static constexpr size_t capacity = 128;
};
}  // namespace

bool fp32GemmUsesOneDnn() { return fp32Choice().oneDnn; }
std::string fp32GemmDescription() { return fp32Choice().description; }

void oneDnnSgemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc, int threads) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  thread_local SgemmCache cache;
  SgemmKey key;
  std::memset(&key, 0, sizeof key);  // padding too: the key is compared bytewise
  key.transA = transA, key.transB = transB, key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
  key.alpha = alpha, key.beta = beta;
  auto it = cache.entries.begin();
  while (it != cache.entries.end() && !(it->key == key)) ++it;
  if (it == cache.entries.end()) {
    // op(A) [m x k]: A row-major [m x lda], or A^T with A [k x lda]; op(B) [k x n] likewise; C [m x ldc].
    const dnnl::memory::desc aMd({m, k}, dt::f32, transA ? dims{1, lda} : dims{lda, 1});
    const dnnl::memory::desc bMd({k, n}, dt::f32, transB ? dims{1, ldb} : dims{ldb, 1});
    const dnnl::memory::desc cMd({m, n}, dt::f32, dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops ops;
      ops.append_sum(beta);  // C <- alpha AB + beta C
      attr.set_post_ops(ops);
    }
    dnnl::matmul mm(dnnl::matmul::primitive_desc(dnnl::matmul::desc(aMd, bMd, cMd), attr, cache.engine));
    if (cache.entries.size() >= SgemmCache::capacity) cache.entries.pop_back();
    cache.entries.push_front(SgemmEntry{key, aMd, bMd, cMd, std::move(mm)});
  } else if (it != cache.entries.begin()) {
    cache.entries.splice(cache.entries.begin(), cache.entries, it);
  }
  const SgemmEntry& e = cache.entries.front();
  dnnl::memory a(e.a, cache.engine, const_cast<float*>(A));
  dnnl::memory b(e.b, cache.engine, const_cast<float*>(B));
  dnnl::memory c(e.c, cache.engine, C);
  omp_set_num_threads(std::max(1, threads));
  e.matmul.execute(cache.stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  cache.stream.wait();
}

struct Bf16Matmul::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::tuple<bool, bool, int64_t, int64_t, int64_t>, dnnl::matmul> cache;
};

Bf16Matmul::Bf16Matmul() : impl_(std::make_unique<Impl>()) {}
Bf16Matmul::~Bf16Matmul() = default;

void Bf16Matmul::run(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const bf16* A, const bf16* B, float* C,
                     int threads) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const auto key = std::make_tuple(transA, transB, m, n, k);
  dnnl::memory::desc aMd({m, k}, dt::bf16, transA ? tag::ba : tag::ab);
  dnnl::memory::desc bMd({k, n}, dt::bf16, transB ? tag::ba : tag::ab);
  dnnl::memory::desc cMd({m, n}, dt::f32, tag::ab);
  auto it = impl_->cache.find(key);
  if (it == impl_->cache.end()) {
    auto pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(aMd, bMd, cMd), impl_->engine);
    it = impl_->cache.emplace(key, dnnl::matmul(pd)).first;
  }
  dnnl::memory a(aMd, impl_->engine, const_cast<bf16*>(A));
  dnnl::memory b(bMd, impl_->engine, const_cast<bf16*>(B));
  dnnl::memory c(cMd, impl_->engine, C);
  omp_set_num_threads(threads);
  it->second.execute(impl_->stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  impl_->stream.wait();
}

#else

bool bf16MatmulAvailable() { return false; }
std::string bf16MatmulDescription() { return "built without oneDNN (fp32 used)"; }
bool fp32GemmUsesOneDnn() { return false; }
std::string fp32GemmDescription() {
  static const std::string description = [] {
#if defined(VAECF_USE_ACCELERATE)
    std::string d = "Accelerate";
#else
    std::string d = "OpenBLAS";
#endif
    if (const char* env = std::getenv("VAECF_FP32_GEMM"); env && *env) {
      if (std::strcmp(env, "openblas") == 0) d += "; VAECF_FP32_GEMM=openblas";
      else if (std::strcmp(env, "onednn") == 0)
        std::fprintf(stderr, "vaecf: VAECF_FP32_GEMM=onednn needs a build with oneDNN; using %s\n", d.c_str());
      else
        std::fprintf(stderr, "vaecf: VAECF_FP32_GEMM=%s is not 'openblas' or 'onednn'; using %s\n", env, d.c_str());
    }
    return d;
  }();
  return description;
}
void oneDnnSgemm(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int, int) {
  throw std::runtime_error("oneDNN fp32 products need a build with oneDNN");
}
struct Bf16Matmul::Impl {};
Bf16Matmul::Bf16Matmul() = default;
Bf16Matmul::~Bf16Matmul() = default;
void Bf16Matmul::run(bool, bool, int64_t, int64_t, int64_t, const bf16*, const bf16*, float*, int) {
  throw std::runtime_error("bf16 matrix products need a build with oneDNN");
}

#endif

}  // namespace vaecf::cpu
