// A Node-free harness around the engine, for side-by-side checks (PyTorch on the CPU here, the CUDA
// backend on a GPU machine). `vaecf_harness step DIR` reads a problem written by bench/torch_step_check.py
// and writes the engine's results back into DIR:
//   in : config.txt (key value... lines), params.f32, indptr.i64, indices.i32, values.f32, input_scale.f32,
//        eps.f32 (VAE), mask_<layer>.f32 (layers with dropout)
//   out: result.txt (loss nll kl), grads.f32, params_after.f32
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/mult_vae_cpu.h"

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

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "step") return step(argv[2]);
    std::fprintf(stderr, "usage: vaecf_harness step DIR\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vaecf_harness: %s\n", e.what());
    return 1;
  }
}
