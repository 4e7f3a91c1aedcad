// A Node-free harness around the engine, for side-by-side checks (PyTorch on the CPU here, the CUDA
// backend on a GPU machine). `vaecf_harness step DIR` reads a problem written by bench/torch_step_check.py
// and writes the engine's results back into DIR:
//   in : config.txt (key value... lines), params.f32, indptr.i64, indices.i32, values.f32, input_scale.f32,
//        eps.f32 (VAE), mask_<layer>.f32 (layers with dropout)
//   out: result.txt (loss nll kl), grads.f32, params_after.f32
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <cstring>
#include <thread>
#include <vector>

#include "cpu/blas.h"
#include "cpu/kernels.h"
#include "core/trainer.h"
#include "cpu/mult_vae_cpu.h"
#include "cpu/recvae_cpu.h"
#ifdef VAECF_HAVE_CUDA
#include "cuda/mult_vae_cuda.h"
#include "cuda/recvae_cuda.h"
#endif

using namespace vaecf;

// Exit codes: 0 done (every check passed), 1 a check failed or an error, 2 usage, 3 no usable GPU (gpu-check).
constexpr int kExitNoGpu = 3;

template <typename T>
static std::vector<T> readBinary(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open " + path);
  const auto n = size_t(f.tellg());
  std::vector<T> v(n / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n));
  return v;
}
template <typename T>
static void writeBinary(const std::string& path, const T* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(n * sizeof(T)));
}

static std::map<std::string, std::vector<double>> readConfig(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::map<std::string, std::vector<double>> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string key;
    if (!(is >> key)) continue;
    double x;
    while (is >> x) out[key].push_back(x);
  }
  return out;
}

static int step(const std::string& dir) {
  auto cfgFile = readConfig(dir + "/config.txt");
  ModelConfig cfg;
  for (double d : cfgFile["encoder"]) cfg.encoderDims.push_back(int64_t(d));
  for (double d : cfgFile["decoder"]) cfg.decoderDims.push_back(int64_t(d));
  cfg.variational = cfgFile["variational"].at(0) != 0;
  cfg.encoderDropout = cfgFile["encoder_dropout"];
  cfg.decoderDropout = cfgFile["decoder_dropout"];
  cpu::MultVaeCpu<float> model(cfg);
  model.setThreads(int(cfgFile["threads"].empty() ? 1 : cfgFile["threads"][0]));
  auto params = readBinary<float>(dir + "/params.f32");
  if (int64_t(params.size()) != model.numParams())
    throw std::runtime_error("params.f32 has " + std::to_string(params.size()) + " values, expected " +
                             std::to_string(model.numParams()));
  std::copy(params.begin(), params.end(), model.parameters());
  auto indptr = readBinary<int64_t>(dir + "/indptr.i64");
  auto indices = readBinary<int32_t>(dir + "/indices.i32");
  auto values = readBinary<float>(dir + "/values.f32");
  CsrView data;
  data.rows = int64_t(indptr.size()) - 1;
  data.cols = cfg.numItems();
  data.indptr = indptr.data();
  data.indices = indices.data();
  data.values = values.data();
  validateCsr(data, "harness batch", false);
  model.loadBatch(data, nullptr, 0, data.rows);
  auto scale = readBinary<float>(dir + "/input_scale.f32");
  std::copy(scale.begin(), scale.end(), model.inputDropoutScale());
  if (cfg.variational) {
    auto eps = readBinary<float>(dir + "/eps.f32");
    std::copy(eps.begin(), eps.end(), model.epsilon());
  }
  for (int64_t layer = 1; layer < cfg.numLayers(); ++layer) {
    const double p = layer < cfg.numEncoderLayers() ? cfg.encoderDropout[layer]
                                                     : cfg.decoderDropout[layer - cfg.numEncoderLayers()];
    if (p <= 0) continue;
    auto mask = readBinary<float>(dir + "/mask_" + std::to_string(layer) + ".f32");
    std::copy(mask.begin(), mask.end(), model.hiddenDropoutScale(layer));
  }
  const StepResult r = model.forwardBackward(cfgFile["beta"].at(0), cfgFile["l2"].at(0));
  writeBinary(dir + "/grads.f32", model.gradients(), size_t(model.numParams()));
  OptimizerOptions o;
  o.learningRate = cfgFile["lr"].at(0);
  o.weightDecay = cfgFile["weight_decay"].at(0);
  o.decoupled = cfgFile["decoupled"].at(0) != 0;
  model.optimizerStep(o);
  writeBinary(dir + "/params_after.f32", model.parameters(), size_t(model.numParams()));
  FILE* f = std::fopen((dir + "/result.txt").c_str(), "w");
  std::fprintf(f, "%.9g %.9g %.9g\n", r.loss, r.nll, r.kl);
  std::fclose(f);
  return 0;
}

// One RecVAE step on given weights, prior weights, batch, dropout scale and eps (bench/torch_recvae_check.py):
// config.txt holds items, hidden, latent, layers, layer_norm_eps, phase (0 joint, 1 encoder, 2 decoder),
// gamma, beta, lr, threads.
static int recvaeStep(const std::string& dir) {
  auto c = readConfig(dir + "/config.txt");
  RecVaeConfig cfg;
  cfg.items = int64_t(c["items"].at(0));
  cfg.hidden = int64_t(c["hidden"].at(0));
  cfg.latent = int64_t(c["latent"].at(0));
  cfg.layers = int64_t(c["layers"].at(0));
  cfg.layerNormEps = c["layer_norm_eps"].at(0);
  cpu::RecVaeCpu<float> model(cfg);
  model.setThreads(int(c["threads"].empty() ? 1 : c["threads"][0]));
  auto params = readBinary<float>(dir + "/params.f32");
  auto prior = readBinary<float>(dir + "/prior.f32");
  if (int64_t(params.size()) != model.numParams() || int64_t(prior.size()) != model.numEncoderParams())
    throw std::runtime_error("params.f32 / prior.f32: expected " + std::to_string(model.numParams()) + " / " +
                             std::to_string(model.numEncoderParams()) + " values");
  std::copy(params.begin(), params.end(), model.parameters());
  std::copy(prior.begin(), prior.end(), model.priorParameters());
  model.parametersChanged();
  auto indptr = readBinary<int64_t>(dir + "/indptr.i64");
  auto indices = readBinary<int32_t>(dir + "/indices.i32");
  auto values = readBinary<float>(dir + "/values.f32");
  CsrView data;
  data.rows = int64_t(indptr.size()) - 1;
  data.cols = cfg.items;
  data.indptr = indptr.data();
  data.indices = indices.data();
  data.values = values.data();
  validateCsr(data, "harness batch", false);
  model.loadBatch(data, nullptr, 0, data.rows);
  const int phaseCode = int(c["phase"].at(0));
  const Phase phase = phaseCode == 1 ? Phase::Encoder : phaseCode == 2 ? Phase::Decoder : Phase::Joint;
  model.sampleNoise(0, 0, phase != Phase::Decoder);
  auto scale = readBinary<float>(dir + "/input_scale.f32");
  std::copy(scale.begin(), scale.end(), model.inputDropoutScale());
  auto eps = readBinary<float>(dir + "/eps.f32");
  std::copy(eps.begin(), eps.end(), model.epsilon());
  const StepResult r = model.forwardBackward(phase, c["beta"].at(0), c["gamma"].at(0));
  writeBinary(dir + "/grads.f32", model.gradients(), size_t(model.numParams()));
  OptimizerOptions o;
  o.learningRate = c["lr"].at(0);
  model.optimizerStep(phase, o);
  writeBinary(dir + "/params_after.f32", model.parameters(), size_t(model.numParams()));
  FILE* f = std::fopen((dir + "/result.txt").c_str(), "w");
  std::fprintf(f, "%.9g %.9g %.9g\n", r.loss, r.nll, r.kl);
  std::fclose(f);
  return 0;
}

// Generated clicks of a given shape: Zipf(1) item popularity (inverse of the cumulative weights),
// 5 + exponential(mean - 5) clicks per user, no repeated item within a user.
struct GeneratedClicks {
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  CsrView view(int64_t items) const {
    CsrView v;
    v.rows = int64_t(indptr.size()) - 1;
    v.cols = items;
    v.indptr = indptr.data();
    v.indices = indices.data();
    return v;
  }
};

static GeneratedClicks zipfClicks(int64_t users, int64_t items, double meanClicks, std::mt19937_64& gen) {
  std::vector<double> cdf(static_cast<size_t>(items), 0.0);
  double acc = 0;
  for (int64_t i = 0; i < items; ++i) cdf[size_t(i)] = (acc += 1.0 / double(i + 1));
  std::uniform_real_distribution<double> uni(0, 1);
  std::exponential_distribution<double> activity(1.0 / (meanClicks - 5));
  GeneratedClicks g;
  std::vector<int32_t> mark(static_cast<size_t>(items), -1);
  for (int64_t u = 0; u < users; ++u) {
    const int64_t n = std::min<int64_t>(items / 2, 5 + int64_t(activity(gen)));
    for (int64_t k = 0; k < n;) {
      const int32_t it = int32_t(std::lower_bound(cdf.begin(), cdf.end(), uni(gen) * acc) - cdf.begin());
      if (mark[size_t(it)] == int32_t(u)) continue;
      mark[size_t(it)] = int32_t(u);
      g.indices.push_back(it);
      ++k;
    }
    g.indptr.push_back(int64_t(g.indices.size()));
  }
  return g;
}

// --name value pairs after the command into `opt` (only names it already holds).
static void parseOptions(int argc, char** argv, std::map<std::string, double>& opt) {
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || !opt.count(key.substr(2))) throw std::runtime_error("unknown option " + key);
    opt[key.substr(2)] = std::stod(argv[i + 1]);
  }
}

// The paper's Mult-VAE: [items - hidden - latent - hidden - items], dropout 0.5 on the input.
static ModelConfig paperConfig(int64_t items, int64_t hidden, int64_t latent) {
  ModelConfig cfg;
  cfg.encoderDims = {items, hidden, latent};
  cfg.decoderDims = {latent, hidden, items};
  cfg.variational = true;
  cfg.encoderDropout = {0.5, 0};
  cfg.decoderDropout = {0, 0};
  return cfg;
}

// Time training steps at a given shape on generated clicks (Zipf item popularity), per phase.
static int profile(int argc, char** argv) {
  std::map<std::string, double> opt = {{"users", 116677}, {"items", 20108}, {"clicks", 73.2}, {"batches", 20},
                                        {"threads", 2},     {"hidden", 600},   {"latent", 200}, {"batch", 500}, {"bf16", 0}};
  parseOptions(argc, argv, opt);
  const int64_t users = int64_t(opt["users"]), items = int64_t(opt["items"]), batch = int64_t(opt["batch"]);
  std::mt19937_64 gen(1);
  const GeneratedClicks clicks = zipfClicks(users, items, opt["clicks"], gen);
  const CsrView data = clicks.view(items);
  const auto& indices = clicks.indices;
  cpu::CpuEngine engine(paperConfig(items, int64_t(opt["hidden"]), int64_t(opt["latent"])));
  engine.setThreads(int(opt["threads"]));
  engine.initialize(1);
  if (opt["bf16"] != 0) engine.model().setBf16Output(true);
  std::printf("precision: %s (%s; fp32 products: %s; SIMD kernels: %s)\n", opt["bf16"] != 0 ? "bf16 output layer" : "fp32",
              cpu::bf16MatmulDescription().c_str(), cpu::fp32GemmDescription().c_str(), cpu::simdTarget().c_str());
  std::vector<int64_t> rows(static_cast<size_t>(users), 0);
  for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = i;
  std::shuffle(rows.begin(), rows.end(), gen);
  StepOptions so;
  so.beta = 0.1;
  so.seed = 1;
  const int64_t batches = int64_t(opt["batches"]);
  // One warm-up step, then the timed ones.
  engine.trainStep(data, rows.data(), batch, so);
  engine.model().profile().enabled = true;
  engine.model().profile().reset();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 1; b <= batches; ++b) {
    so.step = uint64_t(b);
    engine.trainStep(data, rows.data() + (b * batch) % (users - batch), batch, so);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double perBatch = total / double(batches);
  const double batchesPerEpoch = std::ceil(double(users) / double(batch));
  std::printf("shape: %lld users x %lld items, %lld clicks, [I-%d-%d-%d-I], batch %lld, %d threads\n", (long long)users,
              (long long)items, (long long)indices.size(), int(opt["hidden"]), int(opt["latent"]), int(opt["hidden"]),
              (long long)batch, int(opt["threads"]));
  std::printf("%-38s %10s %12s\n", "phase", "ms/batch", "s/epoch");
  double accounted = 0;
  for (int p = 0; p < cpu::Profile::Count; ++p) {
    const double s = engine.model().profile().seconds[p] / double(batches);
    accounted += s;
    std::printf("%-38s %10.1f %12.1f\n", cpu::Profile::name(p), s * 1e3, s * batchesPerEpoch);
  }
  std::printf("%-38s %10.1f %12.1f\n", "other", (perBatch - accounted) * 1e3, (perBatch - accounted) * batchesPerEpoch);
  std::printf("%-38s %10.1f %12.1f\n", "total", perBatch * 1e3, perBatch * batchesPerEpoch);
  // The item output layer's three products (forward, input gradient, weight gradient) in the step, as a
  // rate: compare with `vaecf_harness gemm` (the same products alone, warm caches).
  const double outputFlops = 6.0 * double(batch) * opt["hidden"] * double(items);
  const double outputSeconds = engine.model().profile().seconds[cpu::Profile::OutputGemm] / double(batches);
  std::printf("item output layer products in the step: %.0f GFLOP/s\n", outputFlops / outputSeconds / 1e9);
  return 0;
}

// Latency of scoring one user (a history of --history items) on a loaded model: forward pass and top-k
// timed apart, many repetitions, percentiles. The engine alone, without Node.
static int latency(int argc, char** argv) {
  std::map<std::string, double> opt = {{"items", 20108}, {"history", 50}, {"threads", 2}, {"hidden", 600},
                                        {"latent", 200}, {"k", 20},        {"reps", 2000}, {"bf16", 1}, {"users", 1}};
  parseOptions(argc, argv, opt);
  const int64_t items = int64_t(opt["items"]), history = int64_t(opt["history"]), k = int64_t(opt["k"]);
  const int64_t users = int64_t(opt["users"]);
  cpu::CpuEngine engine(paperConfig(items, int64_t(opt["hidden"]), int64_t(opt["latent"])));
  engine.setThreads(int(opt["threads"]));
  engine.initialize(1);
  if (opt["bf16"] != 0) engine.model().setBf16Output(true);
  // 64 different users, each a row of `history` distinct items.
  std::vector<int64_t> indptr = {0};
  std::vector<int32_t> indices;
  for (int64_t u = 0; u < 64; ++u) {
    for (int64_t j = 0; j < history; ++j) indices.push_back(int32_t((u * 131 + j * 397) % items));
    std::sort(indices.end() - history, indices.end());
    indptr.push_back(int64_t(indices.size()));
  }
  CsrView data{64, items, indptr.data(), indices.data(), nullptr};
  const int64_t reps = int64_t(opt["reps"]);
  std::vector<double> forward, top, total;
  std::vector<int32_t> outItems(size_t(users * k));
  std::vector<float> outScores(size_t(users * k));
  for (int64_t r = -50; r < reps; ++r) {
    if (r == 0) {
      engine.model().profile().enabled = true;
      engine.model().profile().reset();
    }
    const int64_t first = (r + 50) % (64 - users + 1);
    const auto t0 = std::chrono::steady_clock::now();
    engine.model().loadBatch(data, nullptr, first, users);
    engine.model().forwardEval();
    const auto t1 = std::chrono::steady_clock::now();
    engine.model().topK(k, true, nullptr, outItems.data(), outScores.data());
    const auto t2 = std::chrono::steady_clock::now();
    if (r < 0) continue;
    forward.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    top.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    total.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
  }
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
  };
  std::printf("%lld user(s), %lld-item histories, %lld items, top-%lld, %s, %d threads\n", (long long)users,
              (long long)history, (long long)items, (long long)k, opt["bf16"] != 0 ? "bf16 output layer" : "fp32",
              int(opt["threads"]));
  std::printf("%-10s %8s %8s\n", "ms", "p50", "p99");
  std::printf("%-10s %8.3f %8.3f\n", "forward", pct(forward, 0.5), pct(forward, 0.99));
  std::printf("%-10s %8.3f %8.3f\n", "top-k", pct(top, 0.5), pct(top, 0.99));
  std::printf("%-10s %8.3f %8.3f\n", "total", pct(total, 0.5), pct(total, 0.99));
  std::printf("forward by phase (mean ms):");
  for (int p = 0; p < cpu::Profile::Count; ++p)
    if (engine.model().profile().seconds[p] > 0)
      std::printf(" %s %.3f;", cpu::Profile::name(p), engine.model().profile().seconds[p] * 1e3 / double(reps));
  std::printf("\n");
  return 0;
}

// The stream bound of one-user scoring: the time to read `bytes` of weights once with `threads` threads,
// repeatedly, as scoring reads them (so they stay in the last-level cache when they fit there, as they do
// between scoring calls). Prints the median and the 99th percentile in ms.
static int streamTime(int argc, char** argv) {
  std::map<std::string, double> opt = {{"bytes", 600.0 * 20108 * 4}, {"threads", 2}, {"reps", 500}};
  parseOptions(argc, argv, opt);
  const int64_t n = int64_t(opt["bytes"]) / 4;
  const int threads = int(opt["threads"]);
  // Read with the SIMD target's widest loads, four accumulators (cpu::sum), threads over equal chunks.
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) w[size_t(i)] = float(i % 7);
  std::vector<double> ms;
  volatile float sink = 0;
  for (int r = -20; r < int(opt["reps"]); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const int64_t t = omp_get_thread_num(), chunk = (n + omp_get_num_threads() - 1) / omp_get_num_threads();
      const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
      total += cpu::sum(w.data() + begin, end - begin);
    }
    sink = sink + total;
    if (r >= 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("stream %.1f MiB, %d threads: p50 %.3f ms, p99 %.3f ms\n", double(n) * 4 / 1048576, threads, ms[ms.size() / 2],
              ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]);
  std::printf("stream_ms_p50 %.4f\n", ms[ms.size() / 2]);
  return 0;
}

// Measured matrix-product rates at the decoder's shapes (fp32 OpenBLAS, bf16 oneDNN), for the bound.
static int gemmRate(int argc, char** argv) {
  int64_t items = 20108, batch = 500, hidden = 600;
  int threads = 2, reps = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const long long v = std::stoll(argv[i + 1]);
    if (key == "--items") items = v;
    else if (key == "--batch") batch = v;
    else if (key == "--hidden") hidden = v;
    else if (key == "--threads") threads = int(v);
    else throw std::runtime_error("unknown option " + key);
  }
  cpu::setBlasThreads(threads);
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> uni(-1, 1);
  std::vector<float> A(static_cast<size_t>(batch * hidden)), B(static_cast<size_t>(hidden * items)),
      G(static_cast<size_t>(batch * items)), C(static_cast<size_t>(std::max(batch, hidden) * items));
  for (auto* v : {&A, &B, &G})
    for (auto& x : *v) x = uni(gen);
  std::vector<cpu::bf16> Ab(A.size()), Bb(B.size()), Gb(G.size());
  cpu::toBf16(A.data(), Ab.data(), int64_t(A.size()));
  cpu::toBf16(B.data(), Bb.data(), int64_t(B.size()));
  cpu::toBf16(G.data(), Gb.data(), int64_t(G.size()));
  const double flops = 2.0 * double(batch) * double(hidden) * double(items);
  auto time = [&](const std::function<void()>& f) {
    // Warm-up of at least 0.2 s: one call is not enough, the first products of a fresh process run at
    // half speed until the second thread's core is awake and clocked up (ML-1M's forward product here:
    // 210-270 GFLOP/s after one warm-up call, 490-500 after this).
    const auto w0 = std::chrono::steady_clock::now();
    do f();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count() < 0.2);
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  const int M = int(batch), H = int(hidden), I = int(items);
  const double f1 = time([&] { cpu::gemm(false, false, M, I, H, 1.0f, A.data(), H, B.data(), I, 0.0f, C.data(), I); });
  const double f2 = time([&] { cpu::gemm(false, true, M, H, I, 1.0f, G.data(), I, B.data(), I, 0.0f, A.data(), H); });
  const double f3 = time([&] { cpu::gemm(true, false, H, I, M, 1.0f, A.data(), H, G.data(), I, 0.0f, C.data(), I); });
  std::printf("fp32 (%s) forward %.0f, input gradient %.0f, weight gradient %.0f GFLOP/s\n", cpu::fp32GemmDescription().c_str(), flops / f1 / 1e9,
              flops / f2 / 1e9, flops / f3 / 1e9);
  std::printf("fp32_rate %.1f\n", 3 * flops / (f1 + f2 + f3) / 1e9);
  if (cpu::bf16MatmulAvailable()) {
    cpu::Bf16Matmul mm;
    std::vector<float> out(static_cast<size_t>(std::max(batch * items, hidden * items)));
    const double b1 = time([&] { mm.run(false, false, batch, items, hidden, Ab.data(), Bb.data(), out.data(), threads); });
    const double b2 = time([&] { mm.run(false, true, batch, hidden, items, Gb.data(), Bb.data(), out.data(), threads); });
    const double b3 = time([&] { mm.run(true, false, hidden, items, batch, Ab.data(), Gb.data(), out.data(), threads); });
    std::printf("bf16 (%s) forward %.0f, input gradient %.0f, weight gradient %.0f GFLOP/s\n", cpu::bf16MatmulDescription().c_str(),
                flops / b1 / 1e9, flops / b2 / 1e9, flops / b3 / 1e9);
    std::printf("bf16_rate %.1f\n", 3 * flops / (b1 + b2 + b3) / 1e9);
  }
  return 0;
}

#ifdef VAECF_HAVE_CUDA
// ---- GPU check: every CUDA kernel path against the CPU engine, then ML-20M-shaped speed ----
// Each check runs on fresh random inputs with the same weights and the same noise (the shared counter RNG)
// on both engines, reports its relative errors and pass / fail, and never stops the others (an exception
// is a failed check). Results go to stdout (line-buffered) and, after every check, to the JSON file named by
// --json (rewritten whole, atomically), so a run cut at its time limit keeps what it finished.

// ||a - b|| / ||b|| over a range (entries with mask[i] == 0 left out when a mask is given).
static double relError(const float* a, const float* b, size_t n, const uint8_t* mask = nullptr) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; ++i) {
    if (mask && !mask[i]) continue;
    const double x = double(a[i]), y = double(b[i]);
    d += (x - y) * (x - y);
    s += y * y;
  }
  if (!std::isfinite(d)) return INFINITY;
  return std::sqrt(d / std::max(s, 1e-300));
}
static double relError(const std::vector<float>& a, const std::vector<float>& b) { return relError(a.data(), b.data(), b.size()); }

// A JSON value written by hand (numbers, strings, arrays, objects): enough for the report.
struct Json {
  std::string text;
  static Json number(double v) {
    if (!std::isfinite(v)) return Json{v != v ? "\"NaN\"" : (v > 0 ? "\"Infinity\"" : "\"-Infinity\"")};
    char b[40];
    std::snprintf(b, sizeof b, "%.6g", v);
    return Json{b};
  }
  static Json string(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\', o += c;
      else if (c == '\n') o += "\\n";
      else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
      else o += c;
    }
    return Json{o + "\""};
  }
  static Json boolean(bool b) { return Json{b ? "true" : "false"}; }
};
struct JsonObject {
  std::vector<std::pair<std::string, std::string>> fields;
  JsonObject& set(const std::string& k, const Json& v) {
    for (auto& f : fields)
      if (f.first == k) return f.second = v.text, *this;
    fields.emplace_back(k, v.text);
    return *this;
  }
  JsonObject& set(const std::string& k, double v) { return set(k, Json::number(v)); }
  JsonObject& set(const std::string& k, const std::string& v) { return set(k, Json::string(v)); }
  JsonObject& set(const std::string& k, const char* v) { return set(k, Json::string(v)); }
  JsonObject& setBool(const std::string& k, bool v) { return set(k, Json::boolean(v)); }
  Json json(int indent = 0) const {
    const std::string pad(size_t(indent + 2), ' ');
    std::string o = "{";
    for (size_t i = 0; i < fields.size(); ++i) o += (i ? ",\n" : "\n") + pad + Json::string(fields[i].first).text + ": " + fields[i].second;
    return Json{o + (fields.empty() ? "}" : "\n" + std::string(size_t(indent), ' ') + "}")};
  }
};
static Json jsonArray(const std::vector<JsonObject>& items, int indent) {
  std::string o = "[";
  for (size_t i = 0; i < items.size(); ++i) o += (i ? ",\n" : "\n") + std::string(size_t(indent + 2), ' ') + items[i].json(indent + 2).text;
  return Json{o + (items.empty() ? "]" : "\n" + std::string(size_t(indent), ' ') + "]")};
}

struct GpuReport {
  std::string path;
  JsonObject head;
  std::vector<JsonObject> checks, speed, phases;
  JsonObject full;
  bool allPassed = true;
  void write() const {
    if (path.empty()) return;
    JsonObject root = head;
    root.setBool("passed", allPassed && !checks.empty());
    root.set("checks", jsonArray(checks, 2));
    root.set("speed", jsonArray(speed, 2));
    root.set("phases", jsonArray(phases, 2));
    if (!full.fields.empty()) root.set("full_run", full.json(2));
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return;
    std::fputs((root.json().text + "\n").c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
};

// One check: `body` fills `result` with its errors and returns whether they are within tolerance.
static void runCheck(GpuReport& report, const std::string& name, const std::string& tolerance, const std::function<bool(JsonObject&)>& body) {
  JsonObject result;
  result.set("check", name).set("tolerance", tolerance);
  bool pass = false;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    pass = body(result);
  } catch (const std::exception& e) {
    result.set("error", e.what());
  }
  result.set("seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  result.setBool("passed", pass);
  report.allPassed = report.allPassed && pass;
  report.checks.push_back(result);
  report.write();
  std::string line;
  for (const auto& f : result.fields)
    if (f.first != "check" && f.first != "passed" && f.first != "tolerance") line += " " + f.first + "=" + f.second;
  std::printf("[%s] %s:%s\n", pass ? "ok" : "FAIL", name.c_str(), line.c_str());
}

// Random clicks with values 1..3 (so the click values path is covered).
struct RandomClicks {
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  CsrView view(int64_t items) const {
    CsrView v;
    v.rows = int64_t(indptr.size()) - 1;
    v.cols = items;
    v.indptr = indptr.data();
    v.indices = indices.data();
    v.values = values.data();
    return v;
  }
};
static RandomClicks randomClicks(int64_t users, int64_t items, int64_t maxClicks, std::mt19937& gen) {
  std::uniform_real_distribution<double> u(0, 1);
  RandomClicks c;
  for (int64_t r = 0; r < users; ++r) {
    const int64_t n = 1 + int64_t(u(gen) * double(maxClicks));
    std::vector<int32_t> row;
    while (int64_t(row.size()) < n) {
      const int32_t it = int32_t(std::pow(u(gen), 2.0) * double(items));
      if (std::find(row.begin(), row.end(), it) == row.end()) row.push_back(it);
    }
    for (auto it : row) {
      c.indices.push_back(it);
      c.values.push_back(float(1 + int(u(gen) * 3)));
    }
    c.indptr.push_back(int64_t(c.indices.size()));
  }
  return c;
}

static ModelConfig smallConfig(int64_t items, bool vae) {
  ModelConfig cfg;
  cfg.encoderDims = {items, 96, 24};
  cfg.decoderDims = {24, 96, items};
  cfg.variational = vae;
  cfg.encoderDropout = {0.5, 0.2};
  cfg.decoderDropout = {0.1, 0};
  return cfg;
}

// Relative error of every weight matrix and bias; the largest, and each into `out` as "<what>.W<l>" / "<what>.b<l>".
static double perTensor(const ModelConfig& cfg, const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                        JsonObject& out, const std::vector<uint8_t>* mask = nullptr) {
  const ParameterLayout layout(cfg);
  double worst = 0;
  const uint8_t* m = mask ? mask->data() : nullptr;
  for (size_t l = 0; l < layout.layers.size(); ++l) {
    const auto& L = layout.layers[l];
    const double w = relError(got.data() + L.weightOffset, want.data() + L.weightOffset, size_t(L.in * L.out), m ? m + L.weightOffset : nullptr);
    const double b = relError(got.data() + L.biasOffset, want.data() + L.biasOffset, size_t(L.out), m ? m + L.biasOffset : nullptr);
    out.set(what + ".W" + std::to_string(l), w).set(what + ".b" + std::to_string(l), b);
    worst = std::max({worst, w, b});
    if (!std::isfinite(w) || !std::isfinite(b)) worst = INFINITY;
  }
  return worst;
}

// Top-k of precomputed scores on the host (ties: smaller index), seen items excluded: the reference for the topK kernel.
static void hostTopK(const std::vector<float>& scores, const CsrView& data, int64_t items, int64_t m, int64_t k, std::vector<int32_t>& outItems) {
  outItems.assign(size_t(m * k), -1);
  std::vector<int32_t> order(static_cast<size_t>(items));
  for (int64_t u = 0; u < m; ++u) {
    std::vector<float> row(scores.begin() + u * items, scores.begin() + (u + 1) * items);
    for (int64_t j = data.indptr[u]; j < data.indptr[u + 1]; ++j) row[size_t(data.indices[j])] = -INFINITY;
    for (int64_t i = 0; i < items; ++i) order[size_t(i)] = int32_t(i);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)] || (row[size_t(a)] == row[size_t(b)] && a < b); });
    for (int64_t r = 0; r < k; ++r) outItems[size_t(u * k + r)] = row[size_t(order[size_t(r)])] == -INFINITY ? -1 : order[size_t(r)];
  }
}

// Adam's first update is lr * g / (|g| + eps): about +-lr whatever |g| is, so where a gradient is at the
// level of rounding (|g| < 1e-4 x the tensor's rms gradient) its sign, and a 2 lr step, is decided by
// summation order. Such entries are left out of the weight comparisons after Adam (and counted); the
// gradients themselves are compared in full.
static std::vector<uint8_t> wellConditioned(const ModelConfig& cfg, const std::vector<float>& grad, int64_t* excluded) {
  const ParameterLayout layout(cfg);
  std::vector<uint8_t> mask(grad.size(), 1);
  *excluded = 0;
  auto pass = [&](int64_t offset, int64_t n) {
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) sq += double(grad[size_t(offset + i)]) * double(grad[size_t(offset + i)]);
    const double floor = 1e-4 * std::sqrt(sq / double(std::max<int64_t>(n, 1)));
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(double(grad[size_t(offset + i)])) < floor) {
        mask[size_t(offset + i)] = 0;
        *excluded += 1;
      }
  };
  for (const auto& L : layout.layers) {
    pass(L.weightOffset, L.in * L.out);
    pass(L.biasOffset, L.out);
  }
  return mask;
}

// Top-k (k items, seen ones excluded) of the first `sm` users from both engines, and a host top-k of the
// GPU's own scores `gpuScores`: the agreement with the CPU engine and the kernel's mismatches against its
// own scores go into r; true when the kernel matched its own scores exactly.
static bool compareTopK(Engine& cpuEngine, Engine& gpu, const CsrView& data, int64_t items, int64_t sm, int64_t k,
                        const std::vector<float>& gpuScores, JsonObject& r) {
  std::vector<int32_t> ic(size_t(sm * k)), ig(size_t(sm * k)), ih;
  std::vector<float> vc(size_t(sm * k)), vg(size_t(sm * k));
  cpuEngine.recommend(data, 0, sm, k, true, nullptr, ic.data(), vc.data());
  gpu.recommend(data, 0, sm, k, true, nullptr, ig.data(), vg.data());
  hostTopK(gpuScores, data, items, sm, k, ih);
  int64_t sameCpu = 0, sameOwn = 0;
  for (size_t i = 0; i < ic.size(); ++i) {
    sameCpu += ic[i] == ig[i];
    sameOwn += ih[i] == ig[i];
  }
  r.set("topk_agreement_with_cpu", double(sameCpu) / double(ic.size()));
  r.set("topk_kernel_mismatches", double(int64_t(ic.size()) - sameOwn));
  return sameOwn == int64_t(ic.size());
}

static const char* const kPrecisionNames[] = {"fp32", "tf32", "bf16"};

// The CPU engine as the reference for a CUDA precision: its bf16 output layer (the same rounding points)
// for bf16 when this CPU runs bf16 products, else fp32.
static std::string setupReference(cpu::CpuEngine& engine, cuda::CudaPrecision precision) {
  engine.setThreads(std::max(1, int(std::thread::hardware_concurrency())));
  if (precision == cuda::CudaPrecision::Bf16 && cpu::bf16MatmulAvailable()) {
    engine.model().setBf16Output(true);
    return "CPU bf16";
  }
  return "CPU fp32";
}
static double toleranceOf(cuda::CudaPrecision p) { return p == cuda::CudaPrecision::Fp32 ? 1e-5 : 1e-2; }

// The CPU reference for `options.precision` and a CUDA engine, same configuration, same initial weights.
struct EnginePair {
  cpu::CpuEngine cpu;
  cuda::CudaEngine gpu;
  std::string reference;  // "CPU fp32" or "CPU bf16"
  EnginePair(const ModelConfig& cfg, const cuda::CudaOptions& options, uint64_t seed)
      : cpu(cfg), gpu(cfg, options), reference(setupReference(cpu, options.precision)) {
    cpu.initialize(seed);
    gpu.initialize(seed);
  }
};

// The CPU RecVAE engine (all threads) and a CUDA one, same configuration, same initial weights and prior.
struct RecVaePair {
  cpu::RecVaeEngine cpu;
  cuda::RecVaeCudaEngine gpu;
  RecVaePair(const RecVaeConfig& cfg, uint64_t seed) : cpu(cfg), gpu(cfg) {
    cpu.setThreads(int(std::thread::hardware_concurrency()));
    cpu.initialize(seed);
    gpu.initialize(seed);
  }
};

static int gpuCheck(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  GpuReport report;
  int64_t epochUsers = 116677, fullEpochs = 0, profileSteps = 20;
  double fullSeconds = 240;
  bool checksOnly = false;
  std::string fullPrecision = "bf16", csrDir, commit, command;
  for (int i = 2; i < argc; ++i) command += std::string(i > 2 ? " " : "") + argv[i];
  for (int i = 2; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--checks-only") {
      checksOnly = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error("option " + key + " needs a value");
    const std::string value = argv[++i];
    if (key == "--users") epochUsers = std::stoll(value);
    else if (key == "--full-epochs") fullEpochs = std::stoll(value);
    else if (key == "--full-seconds") fullSeconds = std::stod(value);
    else if (key == "--full-precision") fullPrecision = value;
    else if (key == "--profile-steps") profileSteps = std::stoll(value);
    else if (key == "--json") report.path = value;
    else if (key == "--write-csr") csrDir = value;
    else if (key == "--commit") commit = value;
    else throw std::runtime_error("unknown option " + key);
  }
  const auto named = std::find(std::begin(kPrecisionNames), std::end(kPrecisionNames), fullPrecision);
  if (named == std::end(kPrecisionNames)) throw std::runtime_error("--full-precision: expected fp32, tf32 or bf16");
  report.head.set("device", cuda::deviceDescription()).set("commit", commit).set("command", "vaecf_harness gpu-check " + command);
  report.head.set("cpu_reference", std::string("threads ") + std::to_string(std::thread::hardware_concurrency()) + ", bf16: " + cpu::bf16MatmulDescription());
  std::printf("device: %s\n", cuda::deviceDescription().c_str());
  std::string why;
  if (!cuda::deviceAvailable(&why)) {
    std::printf("no usable CUDA device: %s\n", why.c_str());
    report.head.set("error", "no usable CUDA device: " + why);
    report.allPassed = false;
    report.write();
    return kExitNoGpu;
  }
  report.write();

  // 1. One step, every model and precision, streamed and resident batches: loss, per-tensor gradients,
  //    per-tensor weights after one Adam update, scores, top-k against the CPU and against the kernel's own scores.
  for (int variant = 0; variant < 2; ++variant)
    for (int pi = 0; pi < 3; ++pi) {
      const bool vae = variant == 0;
      const auto precision = cuda::CudaPrecision(pi);
      const double tol = toleranceOf(precision);
      char tolText[160];
      std::snprintf(tolText, sizeof tolText, "per tensor and loss < %g; resident = streamed (bitwise expected) < 1e-6; top-k kernel = host top-k of its scores exactly", tol);
      runCheck(report, std::string(vae ? "Mult-VAE" : "Mult-DAE") + " " + kPrecisionNames[pi] + " one step", tolText, [&](JsonObject& r) {
        const int64_t items = 3001, users = 400, m = 250;
        std::mt19937 gen(11 + uint32_t(variant * 3 + pi));
        const RandomClicks clicks = randomClicks(users, items, 60, gen);
        const CsrView data = clicks.view(items);
        const ModelConfig cfg = smallConfig(items, vae);
        cuda::CudaOptions streamed, resident;
        streamed.precision = resident.precision = precision;
        streamed.residency = cuda::CudaOptions::Residency::Streamed;
        EnginePair pair(cfg, streamed, 5);
        auto& cpuEngine = pair.cpu;
        auto& gpu = pair.gpu;
        r.set("reference", pair.reference);
        cuda::CudaEngine gpuResident(cfg, resident);
        gpuResident.initialize(5);
        gpu.beginEpoch(data);
        gpuResident.beginEpoch(data);
        if (gpu.streaming() == false || gpuResident.streaming()) throw std::runtime_error("residency not as asked");
        std::vector<int64_t> rows(static_cast<size_t>(users), 0);
        for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = (i * 7919) % users;
        StepOptions so;
        so.beta = 0.3;
        so.l2 = 0.01;
        so.seed = 9;
        so.step = 3;
        so.update = false;
        const StepResult rc = cpuEngine.trainStep(data, rows.data(), m, so);
        const StepResult rg = gpu.trainStep(data, rows.data(), m, so);
        const StepResult rr = gpuResident.trainStep(data, rows.data(), m, so);
        const size_t P = size_t(cpuEngine.numParams());
        std::vector<float> gc(P), gg(P), gr(P);
        cpuEngine.getGradients(gc.data());
        gpu.getGradients(gg.data());
        gpuResident.getGradients(gr.data());
        const double lossErr = std::fabs(rc.loss - rg.loss) / std::fabs(rc.loss);
        r.set("loss", lossErr);
        const double gradWorst = perTensor(cfg, gg, gc, "grad", r);
        const double residentErr = std::max(std::fabs(rr.loss - rg.loss) / std::fabs(rg.loss), relError(gr, gg));
        r.set("resident_vs_streamed", residentErr);
        std::vector<float> before(P);
        cpuEngine.getParameters(before.data());
        so.update = true;
        so.optimizer.weightDecay = 0.01;
        cpuEngine.trainStep(data, rows.data(), m, so);
        gpu.trainStep(data, rows.data(), m, so);
        std::vector<float> pc(P), pg(P), gradWithDecay(P);
        cpuEngine.getGradients(gradWithDecay.data());
        for (size_t i = 0; i < P; ++i) gradWithDecay[i] += 0.01f * before[i];  // Adam's coupled decay
        cpuEngine.getParameters(pc.data());
        gpu.getParameters(pg.data());
        int64_t excluded = 0;
        const std::vector<uint8_t> mask = wellConditioned(cfg, gradWithDecay, &excluded);
        r.set("after_adam_entries_left_out", double(excluded));
        const double paramWorst = perTensor(cfg, pg, pc, "after_adam", r, &mask);
        const int64_t sm = 50, k = 20;
        std::vector<float> sc(size_t(sm * items)), sg(size_t(sm * items));
        cpuEngine.scores(data, 0, sm, sc.data());
        gpu.scores(data, 0, sm, sg.data());
        const double scoreErr = relError(sg, sc);
        r.set("scores", scoreErr);
        const bool topKExact = compareTopK(cpuEngine, gpu, data, items, sm, k, sg, r);
        return lossErr < tol && gradWorst < tol && paramWorst < tol && scoreErr < tol && residentErr < 1e-6 && topKExact;
      });
    }

  // 1b. Residency keyed on the generation id: the Node binding hands each epoch a fresh copy of indptr
  // (another address) with the same generation; the matrix must stay on the device, uploaded once, and
  // a step must read the same clicks as from the first copy.
  runCheck(report, "Mult-VAE fp32 residency by generation id", "one upload for two epochs whose indptr copies differ; resident; same loss bitwise", [&](JsonObject& r) {
    const int64_t items = 2001, users = 300, m = 100;
    std::mt19937 gen(31);
    const RandomClicks clicks = randomClicks(users, items, 40, gen);
    CsrView first = clicks.view(items);
    first.generation = 7;
    const std::vector<int64_t> indptrCopy = clicks.indptr;  // what JsCsr makes anew each epoch
    CsrView second = first;
    second.indptr = indptrCopy.data();
    const ModelConfig cfg = smallConfig(items, true);
    cuda::CudaEngine a(cfg, {}), b(cfg, {});
    a.initialize(5);
    b.initialize(5);
    StepOptions step;
    step.seed = 3;
    step.beta = 0.2;
    std::vector<int64_t> rows(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) rows[size_t(i)] = (i * 37) % users;
    a.beginEpoch(first);
    const StepResult ra = a.trainStep(first, rows.data(), m, step);
    b.beginEpoch(first);
    b.beginEpoch(second);
    const StepResult rb = b.trainStep(second, rows.data(), m, step);
    r.set("uploads", double(b.matrixUploads())).set("resident", b.streaming() ? 0.0 : 1.0).set("loss_first", ra.loss).set("loss_second", rb.loss);
    return b.matrixUploads() == 1 && !b.streaming() && ra.loss == rb.loss;
  });

  // 2. Three Adam updates (fp32 Mult-VAE): per-tensor weights, the update itself and both moments; the step count.
  runCheck(report, "Mult-VAE fp32 three Adam steps", "update, weights (rounding-level first gradients left out) and both moments per tensor < 1e-4; same step count", [&](JsonObject& r) {
    const int64_t items = 3001, users = 600, m = 200;
    std::mt19937 gen(21);
    const RandomClicks clicks = randomClicks(users, items, 60, gen);
    const CsrView data = clicks.view(items);
    const ModelConfig cfg = smallConfig(items, true);
    EnginePair pair(cfg, {}, 7);
    auto& cpuEngine = pair.cpu;
    auto& gpu = pair.gpu;
    gpu.beginEpoch(data);
    const size_t P = size_t(cpuEngine.numParams());
    std::vector<float> p0(P);
    cpuEngine.getParameters(p0.data());
    std::vector<int64_t> rows(static_cast<size_t>(users));
    for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = (i * 389) % users;
    StepOptions so;
    so.beta = 0.2;
    so.seed = 4;
    so.optimizer.learningRate = 1e-3;
    so.update = false;  // the first step's gradient (same noise as the update below) for the conditioning mask
    cpuEngine.trainStep(data, rows.data(), m, so);
    std::vector<float> g1(P);
    cpuEngine.getGradients(g1.data());
    int64_t excluded = 0;
    const std::vector<uint8_t> mask = wellConditioned(cfg, g1, &excluded);
    r.set("entries_left_out", double(excluded));
    so.update = true;
    for (int s = 0; s < 3; ++s) {
      so.step = uint64_t(s);
      cpuEngine.trainStep(data, rows.data() + s * m, m, so);
      gpu.trainStep(data, rows.data() + s * m, m, so);
    }
    std::vector<float> pc(P), pg(P), mc(P), mg(P), vc(P), vg(P);
    int64_t tc = 0, tg = 0;
    cpuEngine.getParameters(pc.data());
    gpu.getParameters(pg.data());
    cpuEngine.getOptimizerState(mc.data(), vc.data(), &tc);
    gpu.getOptimizerState(mg.data(), vg.data(), &tg);
    std::vector<float> dc(P), dg(P);
    for (size_t i = 0; i < P; ++i) {
      dc[i] = pc[i] - p0[i];
      dg[i] = pg[i] - p0[i];
    }
    const double worst = std::max({perTensor(cfg, pg, pc, "weights", r, &mask), perTensor(cfg, dg, dc, "update", r, &mask),
                                   perTensor(cfg, mg, mc, "adam_m", r), perTensor(cfg, vg, vc, "adam_v", r)});
    r.set("worst", worst).set("steps_cpu", double(tc)).set("steps_gpu", double(tg));
    return worst < 1e-4 && tc == tg && tc == 3;
  });

  // 3. One step at the real ML-20M shape (20,108 items, I-600-200-600-I, batch 500), each precision.
  {
    const int64_t items = 20108;
    std::mt19937_64 gen64(3);
    const GeneratedClicks clicks = zipfClicks(1500, items, 73.0, gen64);
    const CsrView data = clicks.view(items);
    const ModelConfig cfg = paperConfig(items, 600, 200);
    for (int pi = 0; pi < 3; ++pi) {
      const auto precision = cuda::CudaPrecision(pi);
      const double tol = toleranceOf(precision);
      char tolText[80];
      std::snprintf(tolText, sizeof tolText, "loss and per-tensor gradients < %g", tol);
      runCheck(report, std::string("ML-20M shape ") + kPrecisionNames[pi] + " one step", tolText, [&](JsonObject& r) {
        cuda::CudaOptions o;
        o.precision = precision;
        EnginePair pair(cfg, o, 1);
        auto& cpuEngine = pair.cpu;
        auto& gpu = pair.gpu;
        r.set("reference", pair.reference);
        gpu.beginEpoch(data);
        std::vector<int64_t> rows(500);
        for (int64_t i = 0; i < 500; ++i) rows[size_t(i)] = (i * 13) % 1500;
        StepOptions so;
        so.beta = 0.2;
        so.seed = 3;
        so.step = 17;
        so.update = false;
        const StepResult rc = cpuEngine.trainStep(data, rows.data(), 500, so);
        const StepResult rg = gpu.trainStep(data, rows.data(), 500, so);
        const size_t P = size_t(cpuEngine.numParams());
        std::vector<float> gc(P), gg(P);
        cpuEngine.getGradients(gc.data());
        gpu.getGradients(gg.data());
        const double lossErr = std::fabs(rc.loss - rg.loss) / std::fabs(rc.loss);
        r.set("loss", lossErr);
        const double worst = perTensor(cfg, gg, gc, "grad", r);
        return lossErr < tol && worst < tol;
      });
    }
  }

  // 4. A one-epoch loss trajectory through the pipelined trainEpoch (one step in flight on the GPU).
  runCheck(report, "Mult-VAE fp32 pipelined epoch trajectory", "per-batch loss < 1e-4 relative; weights after the epoch < 1e-3; reports in order",
           [&](JsonObject& r) {
             const int64_t items = 3001, users = 6000;
             std::mt19937 gen(31);
             const RandomClicks clicks = randomClicks(users, items, 40, gen);
             const CsrView data = clicks.view(items);
             const ModelConfig cfg = smallConfig(items, true);
             EnginePair pair(cfg, {}, 2);
             auto& cpuEngine = pair.cpu;
             auto& gpu = pair.gpu;
             EpochOptions eo;
             eo.batchSize = 200;
             eo.seed = 8;
             eo.beta.totalSteps = 20;
             std::vector<BatchStats> bc, bg;
             TrainingCounters cc, cg;
             trainEpoch(cpuEngine, data, eo, cc, [&](const BatchStats& b) { bc.push_back(b); }, nullptr);
             trainEpoch(gpu, data, eo, cg, [&](const BatchStats& b) { bg.push_back(b); }, nullptr);
             double worst = bc.size() == bg.size() ? 0 : INFINITY;
             bool inOrder = true;
             for (size_t i = 0; i < std::min(bc.size(), bg.size()); ++i) {
               worst = std::max(worst, std::fabs(bc[i].loss - bg[i].loss) / std::fabs(bc[i].loss));
               inOrder = inOrder && bg[i].batch == int64_t(i);
               if (!std::isfinite(bg[i].loss)) worst = INFINITY;
             }
             const size_t P = size_t(cpuEngine.numParams());
             std::vector<float> pc(P), pg(P);
             cpuEngine.getParameters(pc.data());
             gpu.getParameters(pg.data());
             const double weights = relError(pg, pc);
             r.set("batches", double(bg.size())).set("loss_worst", worst).set("weights", weights).setBool("in_order", inOrder);
             r.set("first_loss", bg.empty() ? NAN : bg.front().loss).set("last_loss", bg.empty() ? NAN : bg.back().loss);
             return worst < 1e-4 && weights < 1e-3 && inOrder && bg.size() == size_t(30);
           });

  // 5. A non-finite loss: both engines refuse the update; weights and the optimizer's count unchanged, and
  //    training goes on normally once the weights are repaired.
  runCheck(report, "non-finite loss skips the update (CPU and CUDA alike)", "error raised; weights bit-identical; step count kept; next step finite",
           [&](JsonObject& r) {
             const int64_t items = 501, users = 300;
             std::mt19937 gen(41);
             const RandomClicks clicks = randomClicks(users, items, 30, gen);
             const CsrView data = clicks.view(items);
             const ModelConfig cfg = smallConfig(items, true);
             EnginePair pair(cfg, {}, 3);
             auto& cpuEngine = pair.cpu;
             auto& gpu = pair.gpu;
             EpochOptions eo;
             eo.batchSize = 100;
             TrainingCounters c0;
             trainEpoch(gpu, data, eo, c0, nullptr, nullptr);  // some Adam state first
             const size_t P = size_t(gpu.numParams());
             std::vector<float> good(P), poisoned(P), after(P), m(P), v(P);
             gpu.getParameters(good.data());
             poisoned = good;
             const ParameterLayout layout(cfg);
             poisoned[size_t(layout.layers.back().biasOffset)] = NAN;
             gpu.setParameters(poisoned.data());
             int64_t tBefore = 0, tAfter = 0;
             gpu.getOptimizerState(m.data(), v.data(), &tBefore);
             bool gpuThrew = false, cpuThrew = false;
             TrainingCounters c1;
             try {
               trainEpoch(gpu, data, eo, c1, nullptr, nullptr);
             } catch (const std::runtime_error& e) {
               gpuThrew = true;
               r.set("cuda_error", e.what());
             }
             gpu.getParameters(after.data());
             gpu.getOptimizerState(m.data(), v.data(), &tAfter);
             const bool same = std::memcmp(after.data(), poisoned.data(), P * sizeof(float)) == 0;
             cpuEngine.setParameters(poisoned.data());
             try {
               TrainingCounters c2;
               trainEpoch(cpuEngine, data, eo, c2, nullptr, nullptr);
             } catch (const std::runtime_error&) {
               cpuThrew = true;
             }
             gpu.setParameters(good.data());
             StepOptions so;
             so.step = 100;
             std::vector<int64_t> rows(100);
             for (int64_t i = 0; i < 100; ++i) rows[size_t(i)] = i;
             const StepResult next = gpu.trainStep(data, rows.data(), 100, so);
             int64_t tNext = 0;
             gpu.getOptimizerState(m.data(), v.data(), &tNext);
             r.setBool("cuda_threw", gpuThrew).setBool("cpu_threw", cpuThrew).setBool("weights_unchanged", same);
             r.set("steps_before", double(tBefore)).set("steps_after", double(tAfter)).set("next_loss", next.loss).set("steps_next", double(tNext));
             return gpuThrew && cpuThrew && same && tBefore == tAfter && std::isfinite(next.loss) && tNext == tBefore + 1;
           });
  // 6. Reproducible: two fresh engines, same seed, same data, one pipelined epoch: bitwise the same weights.
  for (int pi : {0, 2}) {
    runCheck(report, std::string("same seed, same weights bitwise (") + kPrecisionNames[pi] + ", one epoch, two engines)", "bitwise equal",
             [&](JsonObject& r) {
               const int64_t items = 5003, users = 3000;
               std::mt19937 gen(51);
               const RandomClicks clicks = randomClicks(users, items, 50, gen);
               const CsrView data = clicks.view(items);
               const ModelConfig cfg = smallConfig(items, true);
               cuda::CudaOptions o;
               o.precision = cuda::CudaPrecision(pi);
               std::vector<std::vector<float>> weights, grads;
               for (int run = 0; run < 2; ++run) {
                 cuda::CudaEngine gpu(cfg, o);
                 gpu.initialize(6);
                 // One step's gradients first (no update): which tensors differ, if any, says where.
                 std::vector<int64_t> rows(250);
                 for (int64_t i = 0; i < 250; ++i) rows[size_t(i)] = i;
                 StepOptions so;
                 so.update = false;
                 gpu.trainStep(data, rows.data(), 250, so);
                 grads.emplace_back(size_t(gpu.numParams()));
                 gpu.getGradients(grads.back().data());
                 EpochOptions eo;
                 eo.batchSize = 250;
                 eo.seed = 12;
                 TrainingCounters c;
                 trainEpoch(gpu, data, eo, c, nullptr, nullptr);
                 weights.emplace_back(size_t(gpu.numParams()));
                 gpu.getParameters(weights.back().data());
               }
               int64_t differ = 0;
               for (size_t i = 0; i < weights[0].size(); ++i) differ += std::memcmp(&weights[0][i], &weights[1][i], sizeof(float)) != 0;
               r.set("weights_differing", double(differ)).set("relative_difference", relError(weights[1], weights[0]));
               const ParameterLayout layout(cfg);
               int64_t gradDiffer = 0;
               for (size_t l = 0; l < layout.layers.size(); ++l) {
                 const auto& L = layout.layers[l];
                 int64_t w = 0, b = 0;
                 for (int64_t i = 0; i < L.in * L.out; ++i) w += grads[0][size_t(L.weightOffset + i)] != grads[1][size_t(L.weightOffset + i)];
                 for (int64_t i = 0; i < L.out; ++i) b += grads[0][size_t(L.biasOffset + i)] != grads[1][size_t(L.biasOffset + i)];
                 r.set("first_step_grad_differing.W" + std::to_string(l), double(w)).set("first_step_grad_differing.b" + std::to_string(l), double(b));
                 gradDiffer += w + b;
               }
               return differ == 0 && gradDiffer == 0;
             });
  }
  // 6b. The step's schedules (CudaOptions::adamStream, graphs): the same kernels and arguments in another
  //     order of issue, so the same weights as the serial schedule. Two pipelined epochs with a last,
  //     smaller batch (a second graph), the L2 term and weight decay; then a non-finite loss must still
  //     skip the update.
  for (int pi : {0, 2}) {
    runCheck(report, std::string("Adam stream and CUDA graphs: the serial schedule's weights (") + kPrecisionNames[pi] + ", two epochs)",
             "weights, both moments and per-batch losses equal to the serial schedule's (< 1e-6 relative; bitwise expected); one graph per "
             "batch size; a non-finite loss still skips the update",
             [&](JsonObject& r) {
               const int64_t items = 5003, users = 3100;
               std::mt19937 gen(61);
               const RandomClicks clicks = randomClicks(users, items, 50, gen);
               const CsrView data = clicks.view(items);
               const ModelConfig cfg = smallConfig(items, true);
               const size_t P = size_t(ParameterLayout(cfg).total);
               struct Run {
                 std::vector<float> weights, m, v;
                 std::vector<double> losses;
                 int64_t t = 0;
                 cuda::ScheduleStats stats;
                 // After a poisoned weight (poisonAfter): the error raised, the weights and step count kept.
                 bool threw = false, weightsKept = false, countKept = false;
               };
               auto train = [&](bool adamStream, bool graphs, bool poisonAfter) {
                 cuda::CudaOptions o;
                 o.precision = cuda::CudaPrecision(pi);
                 o.adamStream = adamStream;
                 o.graphs = graphs;
                 cuda::CudaEngine gpu(cfg, o);
                 gpu.initialize(7);
                 EpochOptions eo;
                 eo.batchSize = 250;
                 eo.seed = 13;
                 eo.l2 = 0.001;
                 eo.optimizer.weightDecay = 0.01;
                 Run run;
                 TrainingCounters c;
                 for (uint64_t e = 0; e < 2; ++e) {
                   eo.epoch = e;
                   trainEpoch(gpu, data, eo, c, [&](const BatchStats& b) { run.losses.push_back(b.loss); }, nullptr);
                 }
                 run.weights.resize(P);
                 run.m.resize(P);
                 run.v.resize(P);
                 gpu.getParameters(run.weights.data());
                 gpu.getOptimizerState(run.m.data(), run.v.data(), &run.t);
                 run.stats = gpu.scheduleStats();
                 if (poisonAfter) {
                   std::vector<float> poisoned = run.weights, after(P), m(P), v(P);
                   poisoned[size_t(ParameterLayout(cfg).layers.back().biasOffset)] = NAN;
                   gpu.setParameters(poisoned.data());
                   try {
                     eo.epoch = 2;
                     trainEpoch(gpu, data, eo, c, nullptr, nullptr);
                   } catch (const std::runtime_error&) {
                     run.threw = true;
                   }
                   int64_t t = 0;
                   gpu.getParameters(after.data());
                   gpu.getOptimizerState(m.data(), v.data(), &t);
                   run.weightsKept = std::memcmp(after.data(), poisoned.data(), P * sizeof(float)) == 0;
                   run.countKept = t == run.t;
                 }
                 return run;
               };
               const Run serial = train(false, false, false);
               bool ok = true;
               const char* names[] = {"adam_stream", "graphs", "adam_stream_and_graphs"};
               for (int k = 0; k < 3; ++k) {
                 const bool adamStream = k != 1, graphs = k != 0;
                 const Run other = train(adamStream, graphs, k == 2);
                 int64_t differ = 0;
                 for (size_t i = 0; i < P; ++i) differ += std::memcmp(&other.weights[i], &serial.weights[i], sizeof(float)) != 0;
                 double lossWorst = other.losses.size() == serial.losses.size() ? 0.0 : INFINITY;
                 for (size_t i = 0; i < std::min(other.losses.size(), serial.losses.size()); ++i)
                   lossWorst = std::max(lossWorst, std::fabs(other.losses[i] - serial.losses[i]) / std::fabs(serial.losses[i]));
                 const double w = relError(other.weights, serial.weights), m = relError(other.m, serial.m), v = relError(other.v, serial.v);
                 const std::string n = names[k];
                 r.set(n + ".weights", w).set(n + ".moments", std::max(m, v)).set(n + ".losses", lossWorst).set(n + ".weights_differing", double(differ));
                 r.set(n + ".graph_launches", double(other.stats.graphLaunches)).set(n + ".graph_instantiations", double(other.stats.graphInstantiations));
                 bool pass = w < 1e-6 && m < 1e-6 && v < 1e-6 && lossWorst < 1e-6 && other.t == serial.t;
                 // 13 batches per epoch (12 of 250, one of 100), two epochs: 26 launches of 2 graphs.
                 if (graphs) pass = pass && other.stats.graphLaunches == 26 && other.stats.graphInstantiations == 2;
                 if (k == 2) {
                   r.setBool(n + ".non_finite_threw", other.threw).setBool(n + ".non_finite_weights_unchanged", other.weightsKept);
                   r.setBool(n + ".non_finite_step_count_kept", other.countKept);
                   pass = pass && other.threw && other.weightsKept && other.countKept;
                 }
                 r.setBool(n + ".passed", pass);
                 ok = ok && pass;
               }
               return ok;
             });
  }
  // 7. RecVAE (the CUDA engine composed of the same layers as the CPU one): each phase's step against the
  // CPU engine (loss, every tensor's gradient of the phase's group, the weights after Adam), then an
  // alternating run with a prior update (weights, both moments, step counts, the prior), scores and
  // top-k; finally one step each phase at the ML-20M shape with the authors' sizes, timed.
  {
    auto recvaeConfig = [](int64_t items, int64_t hidden, int64_t latent, int64_t layers) {
      RecVaeConfig c;
      c.items = items;
      c.hidden = hidden;
      c.latent = latent;
      c.layers = layers;
      return c;
    };
    // Relative error of each tensor of a group (encoder: offset < encoderCount) into r as "<what>.<name>".
    auto perTensorRecVae = [](const RecVaeConfig& c, const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                              JsonObject& r, int group, const std::vector<uint8_t>* mask) {
      const cpu::RecVaeLayout layout(c);
      double worst = 0;
      for (const auto& t : cpu::parameterTensors(c)) {
        const bool encoderTensor = t.offset < layout.encoderCount;
        if ((group == 0 && !encoderTensor) || (group == 1 && encoderTensor)) continue;
        int64_t n = 1;
        for (auto d : t.shape) n *= d;
        const double e = relError(got.data() + t.offset, want.data() + t.offset, size_t(n), mask ? mask->data() + t.offset : nullptr);
        r.set(what + "." + t.name, e);
        worst = std::isfinite(e) ? std::max(worst, e) : INFINITY;
      }
      return worst;
    };
    // Entries whose gradient is at rounding level (|g| < 1e-4 x the tensor's rms): Adam's first step is
    // +-lr whatever their sign, so they are left out of the after-Adam comparison and counted.
    auto wellConditionedRecVae = [](const RecVaeConfig& c, const std::vector<float>& grad, int64_t* excluded) {
      std::vector<uint8_t> mask(grad.size(), 1);
      *excluded = 0;
      for (const auto& t : cpu::parameterTensors(c)) {
        int64_t n = 1;
        for (auto d : t.shape) n *= d;
        double sq = 0;
        for (int64_t i = 0; i < n; ++i) sq += double(grad[size_t(t.offset + i)]) * double(grad[size_t(t.offset + i)]);
        const double floor = 1e-4 * std::sqrt(sq / double(std::max<int64_t>(n, 1)));
        for (int64_t i = 0; i < n; ++i)
          if (std::fabs(double(grad[size_t(t.offset + i)])) < floor) {
            mask[size_t(t.offset + i)] = 0;
            *excluded += 1;
          }
      }
      return mask;
    };

    for (int phaseIndex = 0; phaseIndex < 2; ++phaseIndex) {
      const bool encoderPhase = phaseIndex == 0;
      runCheck(report, std::string("RecVAE fp32 ") + (encoderPhase ? "encoder" : "decoder") + " step",
               "loss and each tensor's gradient of the phase's group < 1e-4; weights after Adam < 1e-4 (rounding-level gradients left out)",
               [&](JsonObject& r) {
                 const int64_t items = 2501, users = 300, m = 200;
                 std::mt19937 gen(41 + uint32_t(phaseIndex));
                 const RandomClicks clicks = randomClicks(users, items, 60, gen);
                 const CsrView data = clicks.view(items);
                 const RecVaeConfig cfg = recvaeConfig(items, 96, 24, 4);
                 RecVaePair pair(cfg, 5);
                 auto& cpuEngine = pair.cpu;
                 auto& gpu = pair.gpu;
                 std::vector<int64_t> rows(static_cast<size_t>(users));
                 for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = (i * 7919) % users;
                 StepOptions so;
                 so.phase = encoderPhase ? Phase::Encoder : Phase::Decoder;
                 so.gamma = 0.005;
                 so.seed = 9;
                 so.step = 3;
                 so.update = false;
                 const StepResult rc = cpuEngine.trainStep(data, rows.data(), m, so);
                 const StepResult rg = gpu.trainStep(data, rows.data(), m, so);
                 const double lossErr = std::fabs(rc.loss - rg.loss) / std::fabs(rc.loss);
                 const double klErr = encoderPhase ? std::fabs(rc.kl - rg.kl) / std::max(1e-12, std::fabs(rc.kl)) : 0.0;
                 r.set("loss", lossErr).set("kl", klErr).set("loss_cpu", rc.loss).set("kl_cpu", rc.kl);
                 const size_t P = size_t(cpuEngine.numParams());
                 std::vector<float> gc(P), gg(P);
                 cpuEngine.getGradients(gc.data());
                 gpu.getGradients(gg.data());
                 const int group = encoderPhase ? 0 : 1;
                 const double gradWorst = perTensorRecVae(cfg, gg, gc, "grad", r, group, nullptr);
                 so.update = true;
                 cpuEngine.trainStep(data, rows.data(), m, so);
                 gpu.trainStep(data, rows.data(), m, so);
                 std::vector<float> pc(P), pg(P);
                 cpuEngine.getParameters(pc.data());
                 gpu.getParameters(pg.data());
                 int64_t excluded = 0;
                 const std::vector<uint8_t> mask = wellConditionedRecVae(cfg, gc, &excluded);
                 r.set("after_adam_entries_left_out", double(excluded));
                 const double paramWorst = perTensorRecVae(cfg, pg, pc, "after_adam", r, group, &mask);
                 const auto sc = cpuEngine.optimizerGroupSteps(), sg = gpu.optimizerGroupSteps();
                 r.set("steps_cpu", double(sc[0] * 1000 + sc[1])).set("steps_gpu", double(sg[0] * 1000 + sg[1]));
                 return lossErr < 1e-4 && klErr < 1e-4 && gradWorst < 1e-4 && paramWorst < 1e-4 && sc == sg;
               });
    }

    runCheck(report, "RecVAE fp32 alternating steps, prior update, scores and top-k",
             "weights, both moments and the prior < 1e-3 after 3 encoder steps, a prior update, 2 decoder steps and 1 encoder step; "
             "same step counts; scores < 1e-4; top-k kernel = host top-k of its scores",
             [&](JsonObject& r) {
               const int64_t items = 1801, users = 400, m = 160;
               std::mt19937 gen(53);
               const RandomClicks clicks = randomClicks(users, items, 50, gen);
               const CsrView data = clicks.view(items);
               const RecVaeConfig cfg = recvaeConfig(items, 64, 16, 3);
               RecVaePair pair(cfg, 7);
               auto& cpuEngine = pair.cpu;
               auto& gpu = pair.gpu;
               std::vector<int64_t> rows(static_cast<size_t>(users));
               for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = (i * 104729) % users;
               uint64_t step = 0;
               auto run = [&](Phase phase, int64_t offset) {
                 StepOptions so;
                 so.phase = phase;
                 so.gamma = 0.005;
                 so.seed = 21;
                 so.step = step++;
                 so.optimizer.learningRate = 5e-4;
                 cpuEngine.trainStep(data, rows.data() + offset, m, so);
                 gpu.trainStep(data, rows.data() + offset, m, so);
               };
               for (int i = 0; i < 3; ++i) run(Phase::Encoder, (i * m) % (users - m));
               cpuEngine.updatePrior();
               gpu.updatePrior();
               run(Phase::Decoder, 0);
               run(Phase::Decoder, users - m);
               run(Phase::Encoder, 40);
               const size_t P = size_t(cpuEngine.numParams()), A = size_t(cpuEngine.numAuxiliary());
               std::vector<float> pc(P), pg(P), mc(P), mg(P), vc(P), vg(P), ac(A), ag(A);
               int64_t tc = 0, tg = 0;
               cpuEngine.getParameters(pc.data());
               gpu.getParameters(pg.data());
               cpuEngine.getOptimizerState(mc.data(), vc.data(), &tc);
               gpu.getOptimizerState(mg.data(), vg.data(), &tg);
               cpuEngine.getAuxiliary(ac.data());
               gpu.getAuxiliary(ag.data());
               const double wErr = perTensorRecVae(cfg, pg, pc, "weights", r, -1, nullptr);
               const double mErr = relError(mg, mc), vErr = relError(vg, vc), aErr = relError(ag, ac);
               r.set("adam_m", mErr).set("adam_v", vErr).set("prior", aErr).set("steps_cpu", double(tc)).set("steps_gpu", double(tg));
               const int64_t sm = 40, k = 20;
               std::vector<float> sc(size_t(sm * items)), sg(size_t(sm * items));
               cpuEngine.scores(data, 0, sm, sc.data());
               gpu.scores(data, 0, sm, sg.data());
               const double scoreErr = relError(sg, sc);
               r.set("scores", scoreErr);
               const bool topKExact = compareTopK(cpuEngine, gpu, data, items, sm, k, sg, r);
               return wErr < 1e-3 && mErr < 1e-3 && vErr < 1e-3 && aErr < 1e-3 && tc == tg && scoreErr < 1e-4 && topKExact;
             });

    runCheck(report, "RecVAE ML-20M shape, one step each phase",
             "loss and each tensor's gradient < 1e-4 (20,108 items, 5 x 600 hidden, latent 200, batch 500); device time per step reported",
             [&](JsonObject& r) {
               const int64_t items = 20108, users = 1000, m = 500;
               std::mt19937 gen(61);
               const RandomClicks clicks = randomClicks(users, items, 150, gen);
               const CsrView data = clicks.view(items);
               const RecVaeConfig cfg = recvaeConfig(items, 600, 200, 5);
               RecVaePair pair(cfg, 3);
               auto& cpuEngine = pair.cpu;
               auto& gpu = pair.gpu;
               std::vector<int64_t> rows(static_cast<size_t>(users));
               for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = i;
               double worst = 0;
               for (int phaseIndex = 0; phaseIndex < 2; ++phaseIndex) {
                 StepOptions so;
                 so.phase = phaseIndex == 0 ? Phase::Encoder : Phase::Decoder;
                 so.gamma = 0.005;
                 so.seed = 4;
                 so.step = 1;
                 so.update = false;
                 const StepResult rc = cpuEngine.trainStep(data, rows.data(), m, so);
                 const StepResult rg = gpu.trainStep(data, rows.data(), m, so);
                 const std::string tag = phaseIndex == 0 ? "encoder" : "decoder";
                 const double lossErr = std::fabs(rc.loss - rg.loss) / std::fabs(rc.loss);
                 r.set(tag + ".loss", lossErr);
                 const size_t P = size_t(cpuEngine.numParams());
                 std::vector<float> gc(P), gg(P);
                 cpuEngine.getGradients(gc.data());
                 gpu.getGradients(gg.data());
                 worst = std::max({worst, lossErr, perTensorRecVae(cfg, gg, gc, tag + ".grad", r, phaseIndex, nullptr)});
               }
               // Wall time of a step with its update, after the comparisons (the updates change the weights);
               // the batch is gathered on the host and uploaded each step.
               for (int phaseIndex = 0; phaseIndex < 2; ++phaseIndex) {
                 StepOptions so;
                 so.phase = phaseIndex == 0 ? Phase::Encoder : Phase::Decoder;
                 so.gamma = 0.005;
                 so.seed = 4;
                 const int reps = 10;
                 gpu.trainStep(data, rows.data(), m, so);
                 const auto t0 = std::chrono::steady_clock::now();
                 for (int i = 0; i < reps; ++i) gpu.trainStep(data, rows.data() + (i % 2) * m, m, so);
                 r.set(std::string(phaseIndex == 0 ? "encoder" : "decoder") + ".ms_per_step",
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3 / reps);
               }
               return worst < 1e-4;
             });
  }
  if (checksOnly) {
    std::printf("%s\n", report.allPassed ? "all GPU checks passed" : "SOME GPU CHECKS FAILED");
    return report.allPassed ? 0 : 1;
  }

  // 6. Speed at the ML-20M shape: per-phase device time for `profileSteps` steps per precision, then
  //    epochs through trainEpoch (pipelined), then the full run.
  const int64_t items = 20108;
  std::mt19937_64 gen64(2);
  const GeneratedClicks clicks = zipfClicks(epochUsers, items, 73.0, gen64);
  const CsrView data = clicks.view(items);
  const ModelConfig cfg = paperConfig(items, 600, 200);
  std::printf("ML-20M shape: %lld users x %lld items, %lld clicks, I-600-200-600-I, batch 500\n", (long long)epochUsers, (long long)items,
              (long long)clicks.indices.size());
  report.head.set("shape", std::to_string(epochUsers) + " users x 20108 items, " + std::to_string(clicks.indices.size()) +
                               " clicks (Zipf items, 5 + exponential clicks per user), I-600-200-600-I, batch 500");
  if (!csrDir.empty()) {
    // The same matrix for the PyTorch reference (bench/torch_epoch.py reads this layout).
    writeBinary(csrDir + "/indptr.i64", clicks.indptr.data(), clicks.indptr.size());
    writeBinary(csrDir + "/indices.i32", clicks.indices.data(), clicks.indices.size());
    std::ofstream(csrDir + "/shape.txt") << epochUsers << " " << items;
  }
  const double stepsPerEpoch = std::ceil(double(epochUsers) / 500.0);
  for (int pi = 0; pi < 3; ++pi) {
    try {
      cuda::CudaOptions o;
      o.precision = cuda::CudaPrecision(pi);
      cuda::CudaEngine engine(cfg, o);
      engine.initialize(1);
      engine.beginEpoch(data);
      std::vector<int64_t> rows(static_cast<size_t>(epochUsers));
      for (int64_t i = 0; i < epochUsers; ++i) rows[size_t(i)] = (i * 7919) % epochUsers;
      StepOptions so;
      so.beta = 0.2;
      so.seed = 1;
      engine.trainStep(data, rows.data(), 500, so);  // warm-up
      engine.setProfiling(true);
      engine.resetPhaseTimes();
      for (int64_t s = 1; s <= profileSteps; ++s) {
        so.step = uint64_t(s);
        engine.trainStep(data, rows.data() + (s * 500) % (epochUsers - 500), 500, so);
      }
      const auto phases = engine.phaseTimes();
      double total = 0;
      for (const auto& p : phases) total += p.seconds;
      std::printf("per-phase device time, %s, %lld steps (ms per step; counted TFLOP/s and GB/s):\n", kPrecisionNames[pi], (long long)profileSteps);
      for (const auto& p : phases) {
        const double perStep = p.seconds / double(profileSteps);
        JsonObject j;
        j.set("precision", kPrecisionNames[pi]).set("phase", p.phase).set("ms_per_step", perStep * 1e3);
        j.set("tflops", p.seconds > 0 ? p.flops / p.seconds / 1e12 : 0.0).set("gbps", p.seconds > 0 ? p.bytes / p.seconds / 1e9 : 0.0);
        report.phases.push_back(j);
        std::printf("  %-48s %8.3f ms %8.1f TFLOP/s %8.0f GB/s\n", p.phase.c_str(), perStep * 1e3, p.seconds > 0 ? p.flops / p.seconds / 1e12 : 0.0,
                    p.seconds > 0 ? p.bytes / p.seconds / 1e9 : 0.0);
      }
      std::printf("  %-48s %8.3f ms (x %.0f steps = %.3f s per epoch)\n", "total", total / double(profileSteps) * 1e3, stepsPerEpoch,
                  total / double(profileSteps) * stepsPerEpoch);
      report.write();
    } catch (const std::exception& e) {
      std::printf("  profiling %s failed: %s\n", kPrecisionNames[pi], e.what());
      report.allPassed = false;
    }
  }
  // Trains up to `epochs` epochs (stopping once `limit` seconds have passed); seconds per epoch.
  auto timeEpochs = [&](const cuda::CudaOptions& options, int64_t epochs, double limit, double* lastLoss) {
    cuda::CudaEngine engine(cfg, options);
    engine.initialize(1);
    TrainingCounters counters;
    EpochOptions eo;
    eo.batchSize = 500;
    eo.seed = 1;
    std::vector<double> seconds;
    double total = 0;
    for (int64_t e = 0; e < epochs && total < limit; ++e) {
      eo.epoch = uint64_t(e);
      const auto t0 = std::chrono::steady_clock::now();
      const double loss = trainEpoch(engine, data, eo, counters, nullptr, nullptr).loss;
      engine.synchronize();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      total += seconds.back();
      if (lastLoss) *lastLoss = loss;
    }
    return seconds;
  };
  // Each precision in the default (serial) schedule, fp32 with batches streamed from host memory, and
  // the opt-in schedules (Adam stream, CUDA graphs, both) in bf16 and fp32.
  struct SpeedMode {
    int precision;
    bool streamed, adamStream, graphs;
  };
  const SpeedMode speedModes[] = {{0, false, false, false}, {1, false, false, false}, {2, false, false, false}, {0, true, false, false},
                                  {2, false, true, false},  {2, false, false, true},  {2, false, true, true},   {0, false, true, true}};
  for (const SpeedMode& mode : speedModes) {
    cuda::CudaOptions options;
    options.precision = cuda::CudaPrecision(mode.precision);
    if (mode.streamed) options.residency = cuda::CudaOptions::Residency::Streamed;
    options.adamStream = mode.adamStream;
    options.graphs = mode.graphs;
    const std::string name = std::string(kPrecisionNames[mode.precision]) + (mode.streamed ? " streamed" : "") + (mode.adamStream ? " + Adam stream" : "") +
                             (mode.graphs ? " + CUDA graphs" : "");
    try {
      double loss = 0;
      const std::vector<double> t = timeEpochs(options, 3, 1e30, &loss);
      const double steady = std::min(t[1], t[2]);
      JsonObject j;
      j.set("mode", name).set("first_epoch_s", t[0]).set("epoch_s", steady).set("epoch_s_other", std::max(t[1], t[2]));
      j.set("epochs_200_estimate_s", steady * 200).set("loss_epoch3", loss);
      report.speed.push_back(j);
      report.write();
      std::printf("  %s: epochs %.3f (first, with upload) / %.3f / %.3f s; 200 epochs about %.1f s\n", name.c_str(), t[0], t[1], t[2], steady * 200);
    } catch (const std::exception& e) {
      std::printf("  %s epochs failed: %s\n", name.c_str(), e.what());
      report.allPassed = false;
    }
  }
  if (fullEpochs > 0) {
    try {
      cuda::CudaOptions options;
      options.precision = cuda::CudaPrecision(named - std::begin(kPrecisionNames));
      double lastLoss = 0;
      const std::vector<double> t = timeEpochs(options, fullEpochs, fullSeconds, &lastLoss);
      double total = 0;
      for (double x : t) total += x;
      report.full.set("precision", fullPrecision).set("epochs_asked", double(fullEpochs)).set("epochs_run", double(t.size()));
      report.full.set("seconds", total).set("last_loss", lastLoss).setBool("stopped_at_limit", int64_t(t.size()) < fullEpochs);
      report.write();
      std::printf("  full run %s: %zu of %lld epochs in %.1f s (last loss %.2f)%s\n", fullPrecision.c_str(), t.size(), (long long)fullEpochs, total,
                  lastLoss, int64_t(t.size()) < fullEpochs ? ", stopped at the time limit" : "");
    } catch (const std::exception& e) {
      std::printf("  full run failed: %s\n", e.what());
      report.allPassed = false;
    }
  }
  report.write();
  std::printf("%s\n", report.allPassed ? "all GPU checks passed" : "SOME GPU CHECKS FAILED");
  return report.allPassed ? 0 : 1;
}
#endif

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "step") return step(argv[2]);
    if (argc == 3 && std::string(argv[1]) == "recvae-step") return recvaeStep(argv[2]);
    if (argc >= 2 && std::string(argv[1]) == "profile") return profile(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "gemm") return gemmRate(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "latency") return latency(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "stream") return streamTime(argc, argv);
#ifdef VAECF_HAVE_CUDA
    if (argc >= 2 && std::string(argv[1]) == "gpu-check") return gpuCheck(argc, argv);
#endif
    std::fprintf(stderr,
                 "usage: vaecf_harness step DIR | recvae-step DIR | profile [--users N --items N --clicks N --batches N --threads N] | gemm | latency [--history N --k N --bf16 0|1] | stream [--bytes N --threads N]"
#ifdef VAECF_HAVE_CUDA
                 " | gpu-check [--checks-only] [--json FILE] [--write-csr DIR] [--commit SHA] [--users N] [--profile-steps N] [--full-epochs N --full-seconds S --full-precision fp32|tf32|bf16]"
#endif
                 "\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vaecf_harness: %s\n", e.what());
    return 1;
  }
}
