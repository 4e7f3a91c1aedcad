#include "onednn_matmul.h"

#include <stdexcept>

#ifdef VAECF_HAVE_ONEDNN
#include "platform.h"

#include <oneapi/dnnl/dnnl.hpp>
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
struct Bf16Matmul::Impl {};
Bf16Matmul::Bf16Matmul() = default;
Bf16Matmul::~Bf16Matmul() = default;
void Bf16Matmul::run(bool, bool, int64_t, int64_t, int64_t, const bf16*, const bf16*, float*, int) {
  throw std::runtime_error("bf16 matrix products need a build with oneDNN");
}

#endif

}  // namespace vaecf::cpu
