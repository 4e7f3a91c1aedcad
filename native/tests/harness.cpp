// A Node-free harness around the engine, for side-by-side checks (PyTorch on the CPU here, the CUDA
// backend on a GPU machine). `vaecf_harness step DIR` reads a problem written by bench/torch_step_check.py
// and writes the engine's results back into DIR:
//   in : config.txt (key value... lines), params.f32, indptr.i64, indices.i32, values.f32, input_scale.f32,
//        eps.f32 (VAE), mask_<layer>.f32 (layers with dropout)
//   out: result.txt (loss nll kl), grads.f32, params_after.f32
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
#include <vector>

#include "cpu/blas.h"
#include "cpu/kernels.h"
#include "core/trainer.h"
#include "cpu/mult_vae_cpu.h"
#ifdef VAECF_HAVE_CUDA
#include "cuda/mult_vae_cuda.h"
#endif

using namespace vaecf;

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
  std::printf("precision: %s (%s; AVX-512 kernels: %s)\n", opt["bf16"] != 0 ? "bf16 output layer" : "fp32",
              cpu::bf16MatmulDescription().c_str(), cpu::avx512Available() ? "yes" : "no");
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
  std::printf("%-34s %10s %12s\n", "phase", "ms/batch", "s/epoch");
  double accounted = 0;
  for (int p = 0; p < cpu::Profile::Count; ++p) {
    const double s = engine.model().profile().seconds[p] / double(batches);
    accounted += s;
    std::printf("%-34s %10.1f %12.1f\n", cpu::Profile::name(p), s * 1e3, s * batchesPerEpoch);
  }
  std::printf("%-34s %10.1f %12.1f\n", "other", (perBatch - accounted) * 1e3, (perBatch - accounted) * batchesPerEpoch);
  std::printf("%-34s %10.1f %12.1f\n", "total", perBatch * 1e3, perBatch * batchesPerEpoch);
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
    f();
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  const int M = int(batch), H = int(hidden), I = int(items);
  const double f1 = time([&] { cpu::gemm(false, false, M, I, H, 1.0f, A.data(), H, B.data(), I, 0.0f, C.data(), I); });
  const double f2 = time([&] { cpu::gemm(false, true, M, H, I, 1.0f, G.data(), I, B.data(), I, 0.0f, A.data(), H); });
  const double f3 = time([&] { cpu::gemm(true, false, H, I, M, 1.0f, A.data(), H, G.data(), I, 0.0f, C.data(), I); });
  std::printf("fp32 (OpenBLAS) forward %.0f, input gradient %.0f, weight gradient %.0f GFLOP/s\n", flops / f1 / 1e9, flops / f2 / 1e9, flops / f3 / 1e9);
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
// Every CUDA kernel path against the CPU engine on fresh random inputs (same weights, same noise from the
// shared counter RNG), then an ML-20M-shaped epoch on the GPU. Exit code 1 when a check fails.
static double relError(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    n += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

static int gpuCheck(int argc, char** argv) {
  std::printf("device: %s\n", cuda::deviceDescription().c_str());
  std::string why;
  if (!cuda::deviceAvailable(&why)) {
    std::printf("no usable CUDA device: %s\n", why.c_str());
    return 2;
  }
  int64_t epochUsers = 116677, fullEpochs = 0;
  double fullSeconds = 240;
  std::string fullPrecision = "bf16";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--users") epochUsers = std::stoll(argv[i + 1]);
    else if (key == "--full-epochs") fullEpochs = std::stoll(argv[i + 1]);
    else if (key == "--full-seconds") fullSeconds = std::stod(argv[i + 1]);
    else if (key == "--full-precision") fullPrecision = argv[i + 1];
    else throw std::runtime_error("unknown option " + key);
  }
  bool ok = true;
  std::mt19937 gen(11);
  const char* precisionNames[] = {"fp32", "tf32", "bf16"};
  // Every kernel path against the CPU engine: Mult-VAE and Mult-DAE, each precision, the batch
  // streamed from host memory and read from the device-resident matrix.
  for (int variant = 0; variant < 2; ++variant)
    for (int pi = 0; pi < 3; ++pi) {
      const bool vae = variant == 0;
      const auto precision = cuda::CudaPrecision(pi);
      const int64_t items = 3001, users = 400;
      ModelConfig cfg;
      cfg.encoderDims = {items, 96, 24};
      cfg.decoderDims = {24, 96, items};
      cfg.variational = vae;
      cfg.encoderDropout = {0.5, 0.2};
      cfg.decoderDropout = {0.1, 0};
      std::uniform_real_distribution<double> u(0, 1);
      std::vector<int64_t> indptr{0};
      std::vector<int32_t> indices;
      std::vector<float> values;
      for (int64_t r = 0; r < users; ++r) {
        const int64_t n = 1 + int64_t(u(gen) * 60);
        std::vector<int32_t> row;
        while (int64_t(row.size()) < n) {
          const int32_t it = int32_t(std::pow(u(gen), 2.0) * double(items));
          if (std::find(row.begin(), row.end(), it) == row.end()) row.push_back(it);
        }
        for (auto it : row) {
          indices.push_back(it);
          values.push_back(float(1 + int(u(gen) * 3)));
        }
        indptr.push_back(int64_t(indices.size()));
      }
      CsrView data;
      data.rows = users;
      data.cols = items;
      data.indptr = indptr.data();
      data.indices = indices.data();
      data.values = values.data();
      // The CPU reference: fp32, or its bf16 output layer (the same rounding points) when available.
      cpu::CpuEngine cpuEngine(cfg);
      cpuEngine.setThreads(2);
      std::string reference = "CPU fp32";
      if (precision == cuda::CudaPrecision::Bf16 && cpu::bf16MatmulAvailable()) {
        cpuEngine.model().setBf16Output(true);
        reference = "CPU bf16";
      }
      cuda::CudaOptions streamed;
      streamed.precision = precision;
      streamed.residency = cuda::CudaOptions::Residency::Streamed;
      cuda::CudaOptions resident;
      resident.precision = precision;
      cuda::CudaEngine gpuEngine(cfg, streamed), gpuResident(cfg, resident);
      cpuEngine.initialize(5);
      gpuEngine.initialize(5);
      gpuResident.initialize(5);
      gpuEngine.beginEpoch(data);
      gpuResident.beginEpoch(data);
      std::vector<int64_t> rows(static_cast<size_t>(users), 0);
      for (int64_t i = 0; i < users; ++i) rows[size_t(i)] = (i * 7919) % users;
      StepOptions so;
      so.beta = 0.3;
      so.l2 = 0.01;
      so.seed = 9;
      so.step = 3;
      so.update = false;
      const int64_t m = 250;
      const StepResult rc = cpuEngine.trainStep(data, rows.data(), m, so);
      const StepResult rg = gpuEngine.trainStep(data, rows.data(), m, so);
      const StepResult rr = gpuResident.trainStep(data, rows.data(), m, so);
      const int64_t P = cpuEngine.numParams();
      std::vector<float> gc(static_cast<size_t>(P), 0.0f), gg(static_cast<size_t>(P), 0.0f), gr(static_cast<size_t>(P), 0.0f);
      cpuEngine.getGradients(gc.data());
      gpuEngine.getGradients(gg.data());
      gpuResident.getGradients(gr.data());
      const double lossErr = std::fabs(rc.loss - rg.loss) / std::fabs(rc.loss);
      const double gradErr = relError(gg, gc);
      const double residentErr = std::max(std::fabs(rr.loss - rg.loss) / std::fabs(rg.loss), relError(gr, gg));
      so.update = true;
      so.optimizer.weightDecay = 0.01;
      cpuEngine.trainStep(data, rows.data(), m, so);
      gpuEngine.trainStep(data, rows.data(), m, so);
      std::vector<float> pc(static_cast<size_t>(P), 0.0f), pg(static_cast<size_t>(P), 0.0f);
      cpuEngine.getParameters(pc.data());
      gpuEngine.getParameters(pg.data());
      const double paramErr = relError(pg, pc);
      std::vector<float> sc(static_cast<size_t>(50 * items), 0.0f), sg(static_cast<size_t>(50 * items), 0.0f);
      cpuEngine.scores(data, 0, 50, sc.data());
      gpuEngine.scores(data, 0, 50, sg.data());
      const double scoreErr = relError(sg, sc);
      std::vector<int32_t> ic(50 * 20), ig(50 * 20);
      std::vector<float> vc(50 * 20), vg(50 * 20);
      cpuEngine.recommend(data, 0, 50, 20, true, nullptr, ic.data(), vc.data());
      gpuEngine.recommend(data, 0, 50, 20, true, nullptr, ig.data(), vg.data());
      int64_t same = 0;
      for (size_t i = 0; i < ic.size(); ++i) same += ic[i] == ig[i];
      const double topAgree = double(same) / double(ic.size());
      // fp32: 1e-5; TF32 (10-bit mantissa inputs) and bf16 (8-bit): 1e-2, as the issue asks.
      const double tolerance = precision == cuda::CudaPrecision::Fp32 ? 1e-5 : 1e-2;
      const bool pass = lossErr < tolerance && gradErr < tolerance && paramErr < tolerance && scoreErr < tolerance && residentErr < 1e-5 &&
                        topAgree > (precision == cuda::CudaPrecision::Fp32 ? 0.98 : 0.9);
      ok = ok && pass;
      std::printf("%s %s vs %s: loss %.3g, gradients %.3g, weights after Adam %.3g, scores %.3g (relative errors), top-20 agreement %.3f; "
                  "resident vs streamed batch %.3g: %s\n",
                  vae ? "Mult-VAE" : "Mult-DAE", precisionNames[pi], reference.c_str(), lossErr, gradErr, paramErr, scoreErr, topAgree, residentErr,
                  pass ? "ok" : "FAIL");
    }
  // ML-20M-shaped epochs on the GPU, per precision; then, if asked, a full run.
  {
    const int64_t items = 20108;
    std::mt19937_64 gen64(2);
    const GeneratedClicks clicks = zipfClicks(epochUsers, items, 73.0, gen64);
    const CsrView data = clicks.view(items);
    const auto& indices = clicks.indices;
    const ModelConfig cfg = paperConfig(items, 600, 200);
    std::printf("ML-20M shape: %lld users x %lld items, %lld clicks, I-600-200-600-I, batch 500\n", (long long)epochUsers, (long long)items,
                (long long)indices.size());
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
    for (int mode = 0; mode < 4; ++mode) {
      cuda::CudaOptions options;
      options.precision = cuda::CudaPrecision(mode < 3 ? mode : 0);
      if (mode == 3) options.residency = cuda::CudaOptions::Residency::Streamed;
      const std::vector<double> t = timeEpochs(options, 3, 1e30, nullptr);
      std::printf("  %s%s: epochs %.2f (first, with upload) / %.2f / %.2f s; 200 epochs about %.0f s\n", precisionNames[int(options.precision)],
                  mode == 3 ? ", batches streamed from host memory" : "", t[0], t[1], t[2], t[2] * 200);
    }
    const auto named = std::find(std::begin(precisionNames), std::end(precisionNames), fullPrecision);
    if (fullEpochs > 0 && named == std::end(precisionNames)) throw std::runtime_error("--full-precision: expected fp32, tf32 or bf16");
    if (fullEpochs > 0) {
      cuda::CudaOptions options;
      options.precision = cuda::CudaPrecision(named - std::begin(precisionNames));
      double lastLoss = 0;
      const std::vector<double> t = timeEpochs(options, fullEpochs, fullSeconds, &lastLoss);
      double total = 0;
      for (double x : t) total += x;
      std::printf("  full run %s: %zu of %lld epochs in %.1f s (last loss %.2f)%s\n", fullPrecision.c_str(), t.size(), (long long)fullEpochs, total,
                  lastLoss, int64_t(t.size()) < fullEpochs ? ", stopped at the time limit" : "");
    }
  }
  std::printf("%s\n", ok ? "all GPU checks passed" : "SOME GPU CHECKS FAILED");
  return ok ? 0 : 1;
}
#endif

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "step") return step(argv[2]);
    if (argc >= 2 && std::string(argv[1]) == "profile") return profile(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "gemm") return gemmRate(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "latency") return latency(argc, argv);
#ifdef VAECF_HAVE_CUDA
    if (argc >= 2 && std::string(argv[1]) == "gpu-check") return gpuCheck(argc, argv);
#endif
    std::fprintf(stderr, "usage: vaecf_harness step DIR | profile [--users N --items N --clicks N --batches N --threads N] | gemm | latency [--history N --k N --bf16 0|1]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vaecf_harness: %s\n", e.what());
    return 1;
  }
}
