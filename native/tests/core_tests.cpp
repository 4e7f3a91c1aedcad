// C++ tests of the engine core, no Node: gradients against central finite differences in double
// precision, the sparse forward against a dense reference, Adam against its formula, the trainer's
// determinism, and input validation. Prints "N passed, N failed" and exits non-zero on a failure.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <utility>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/trainer.h"
#include "cpu/kernels.h"
#include "cpu/layers.h"
#include "cpu/onednn_matmul.h"
#include "cpu/mult_vae_cpu.h"
#include "cpu/recvae_cpu.h"
#include "cpu/topk.h"

using namespace vaecf;

static int passed = 0, failed = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      std::printf("  FAIL %s:%d: ", __FILE__, __LINE__);   \
      std::printf(__VA_ARGS__);                            \
      std::printf("\n");                                   \
      throw std::runtime_error("check failed");            \
    }                                                      \
  } while (0)

static void run(const char* name, const std::function<void()>& f) {
  try {
    f();
    ++passed;
    std::printf("ok   %s\n", name);
  } catch (const std::exception& e) {
    ++failed;
    std::printf("FAIL %s (%s)\n", name, e.what());
  }
}

// A random binary click matrix with every row non-empty.
struct Clicks {
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
  CsrView view(int64_t cols, bool withValues = false) const {
    CsrView v;
    v.rows = int64_t(indptr.size()) - 1;
    v.cols = cols;
    v.indptr = indptr.data();
    v.indices = indices.data();
    v.values = withValues ? values.data() : nullptr;
    return v;
  }
};
static Clicks randomClicks(int64_t rows, int64_t cols, double density, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Clicks c;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = 0;
    for (int64_t i = 0; i < cols; ++i)
      if (u(gen) < density || (i == cols - 1 && n == 0)) {
        c.indices.push_back(int32_t(i));
        c.values.push_back(float(1 + int(u(gen) * 3)));
        ++n;
      }
    c.indptr.push_back(int64_t(c.indices.size()));
  }
  return c;
}

static ModelConfig smallConfig(bool variational, int64_t items) {
  ModelConfig c;
  c.encoderDims = {items, 7, 3};
  c.decoderDims = {3, 6, items};
  c.variational = variational;
  c.encoderDropout = {0.5, 0.3};
  c.decoderDropout = {0.2, 0.25};
  return c;
}

static void gradientCheck(bool variational, bool withValues) {
  const int64_t items = 11;
  ModelConfig cfg = smallConfig(variational, items);
  cpu::MultVaeCpu<double> model(cfg);
  model.initialize(7);
  // Larger weights than Xavier so that tanh is well inside its non-linear range.
  for (int64_t i = 0; i < model.numParams(); ++i) model.parameters()[i] *= 1.5;
  Clicks clicks = randomClicks(6, items, 0.35, 3);
  CsrView data = clicks.view(items, withValues);
  model.loadBatch(data, nullptr, 0, data.rows);
  model.sampleNoise(11, 5);
  const double beta = 0.3, l2 = 0.02;
  model.forwardBackward(beta, l2);
  std::vector<double> analytic(model.gradients(), model.gradients() + model.numParams());
  double num2 = 0, diff2 = 0, worst = 0;
  const double h = 1e-6;
  for (int64_t i = 0; i < model.numParams(); ++i) {
    double& p = model.parameters()[i];
    const double keep = p;
    p = keep + h;
    const double up = model.forwardBackward(beta, l2).loss;
    p = keep - h;
    const double down = model.forwardBackward(beta, l2).loss;
    p = keep;
    const double fd = (up - down) / (2 * h);
    num2 += fd * fd;
    diff2 += (fd - analytic[i]) * (fd - analytic[i]);
    if (std::fabs(fd) > 1e-3) worst = std::max(worst, std::fabs(fd - analytic[i]) / std::fabs(fd));
  }
  const double rel = std::sqrt(diff2 / num2);
  std::printf("     %s%s: %lld parameters, ||g - fd|| / ||fd|| = %.3g, worst element %.3g\n",
              variational ? "Mult-VAE" : "Mult-DAE", withValues ? " (weighted clicks)" : "",
              (long long)model.numParams(), rel, worst);
  CHECK(rel < 1e-6, "relative error %g", rel);
  CHECK(worst < 1e-6, "worst element relative error %g", worst);
}

// Dense reference of the training-mode loss and the evaluation logits, written from the paper's
// equations with dense batch x items matrices, in double.
static void denseReference(bool variational) {
  const int64_t items = 23;
  ModelConfig cfg = smallConfig(variational, items);
  cpu::MultVaeCpu<double> model(cfg);
  model.initialize(3);
  Clicks clicks = randomClicks(9, items, 0.3, 8);
  CsrView data = clicks.view(items, true);
  const int64_t m = data.rows;
  model.loadBatch(data, nullptr, 0, m);
  model.sampleNoise(5, 2);
  const double beta = 0.4;
  const StepResult sparse = model.forwardBackward(beta, 0.0);

  const auto& layout = model.layout();
  const double* P = model.parameters();
  auto run = [&](bool training, std::vector<double>& logitsOut, double& nll, double& kl) {
    std::vector<double> x(m * items, 0.0), xin(m * items, 0.0);
    for (int64_t u = 0; u < m; ++u)
      for (int64_t k = data.indptr[u]; k < data.indptr[u + 1]; ++k) x[u * items + data.indices[k]] = data.values[k];
    for (int64_t u = 0; u < m; ++u) {
      double s = 0;
      for (int64_t i = 0; i < items; ++i) s += x[u * items + i] * x[u * items + i];
      for (int64_t k = data.indptr[u]; k < data.indptr[u + 1]; ++k) {
        const int64_t i = data.indices[k];
        xin[u * items + i] = x[u * items + i] / std::sqrt(s) * (training ? model.inputDropoutScale()[k] : 1.0);
      }
    }
    std::vector<double> h = xin, mu, lv;
    const int64_t nEnc = cfg.numEncoderLayers(), nLayers = cfg.numLayers();
    for (int64_t layer = 0; layer < nLayers; ++layer) {
      const auto& L = layout.layers[layer];
      if (layer > 0 && training && (layer < nEnc ? cfg.encoderDropout[layer] : cfg.decoderDropout[layer - nEnc]) > 0)
        for (int64_t i = 0; i < m * L.in; ++i) h[i] *= model.hiddenDropoutScale(layer)[i];
      std::vector<double> a(m * L.out, 0.0);
      for (int64_t u = 0; u < m; ++u)
        for (int64_t o = 0; o < L.out; ++o) {
          double s = P[L.biasOffset + o];
          for (int64_t i = 0; i < L.in; ++i) s += h[u * L.in + i] * P[L.weightOffset + i * L.out + o];
          a[u * L.out + o] = s;
        }
      const bool last = layer == nLayers - 1;
      if (layer == nEnc - 1 && variational) {
        const int64_t D = cfg.latent();
        mu.assign(m * D, 0);
        lv.assign(m * D, 0);
        h.assign(m * D, 0);
        for (int64_t u = 0; u < m; ++u)
          for (int64_t d = 0; d < D; ++d) {
            mu[u * D + d] = a[u * 2 * D + d];
            lv[u * D + d] = a[u * 2 * D + D + d];
            h[u * D + d] = mu[u * D + d] + (training ? model.epsilon()[u * D + d] * std::exp(0.5 * lv[u * D + d]) : 0.0);
          }
      } else if (!last) {
        for (auto& v : a) v = std::tanh(v);
        h = a;
      } else {
        h = a;
      }
    }
    logitsOut = h;
    nll = 0;
    kl = 0;
    for (int64_t u = 0; u < m; ++u) {
      double mx = -1e300, s = 0;
      for (int64_t i = 0; i < items; ++i) mx = std::max(mx, h[u * items + i]);
      for (int64_t i = 0; i < items; ++i) s += std::exp(h[u * items + i] - mx);
      for (int64_t i = 0; i < items; ++i) nll -= x[u * items + i] * (h[u * items + i] - mx - std::log(s));
      for (size_t d = 0; d < (variational ? size_t(cfg.latent()) : 0); ++d) {
        const double a = mu[u * cfg.latent() + d], b = lv[u * cfg.latent() + d];
        kl += 0.5 * (-b + std::exp(b) + a * a - 1);
      }
    }
    nll /= double(m);
    kl /= double(m);
  };
  std::vector<double> logits;
  double nll, kl;
  run(true, logits, nll, kl);
  CHECK(std::fabs(nll - sparse.nll) < 1e-10 * std::fabs(nll), "nll %.15g vs dense %.15g", sparse.nll, nll);
  CHECK(std::fabs(kl - sparse.kl) < 1e-10 * (std::fabs(kl) + 1e-12), "kl %.15g vs dense %.15g", sparse.kl, kl);
  CHECK(std::fabs(sparse.loss - (nll + beta * kl)) < 1e-10 * std::fabs(sparse.loss), "loss");
  run(false, logits, nll, kl);
  model.forwardEval();
  double worst = 0;
  for (int64_t i = 0; i < m * items; ++i) worst = std::max(worst, std::fabs(logits[i] - model.logits()[i]));
  CHECK(worst < 1e-12, "eval logits differ from the dense reference by %g", worst);
}

static void adamMatchesFormula(bool decoupled) {
  ModelConfig cfg = smallConfig(true, 5);
  cpu::MultVaeCpu<double> model(cfg);
  model.initialize(1);
  std::vector<double> p0(model.parameters(), model.parameters() + model.numParams());
  OptimizerOptions o;
  o.learningRate = 0.01;
  o.weightDecay = 0.1;
  o.decoupled = decoupled;
  std::vector<double> m(p0.size(), 0), v(p0.size(), 0), p = p0;
  model.ensureOptimizerState();
  for (int t = 1; t <= 3; ++t) {
    for (int64_t i = 0; i < model.numParams(); ++i) model.gradients()[i] = std::sin(double(i + t));
    model.optimizerStep(o);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = std::sin(double(i + t));
      if (!decoupled) g += o.weightDecay * p[i];
      else p[i] *= 1 - o.learningRate * o.weightDecay;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
      p[i] -= o.learningRate / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.epsilon);
    }
  }
  double worst = 0;
  for (size_t i = 0; i < p.size(); ++i) worst = std::max(worst, std::fabs(p[i] - model.parameters()[i]));
  CHECK(worst < 1e-12, "parameters differ from the Adam formula by %g", worst);
  CHECK(model.adamStepCount() == 3, "step count");
}

// The small Mult-VAE of the training tests: [items-16-4-16-items], input dropout 0.5.
static ModelConfig tinyVae(int64_t items) {
  ModelConfig cfg;
  cfg.encoderDims = {items, 16, 4};
  cfg.decoderDims = {4, 16, items};
  cfg.variational = true;
  cfg.encoderDropout = {0.5, 0};
  cfg.decoderDropout = {0, 0};
  return cfg;
}

// The CPU engine behind a device backend's pipeline protocol (results collected one step late, depth
// 1), to test trainEpoch's pipelining on a machine without a GPU.
class DeferredEngine final : public Engine {
 public:
  explicit DeferredEngine(const ModelConfig& c) : inner_(c) {}
  const ModelConfig& config() const override { return inner_.config(); }
  std::string backendName() const override { return "deferred-cpu"; }
  int64_t numParams() const override { return inner_.numParams(); }
  void setThreads(int t) override { inner_.setThreads(t); }
  void initialize(uint64_t seed) override { inner_.initialize(seed); }
  void beginEpoch(const CsrView&) override { ++epochsBegun; }
  StepResult trainStep(const CsrView& d, const int64_t* rows, int64_t m, const StepOptions& o) override { return inner_.trainStep(d, rows, m, o); }
  int pipelineDepth() const override { return 1; }
  void submitStep(const CsrView& d, const int64_t* rows, int64_t m, const StepOptions& o) override {
    queue_.push_back(inner_.trainStep(d, rows, m, o));
    maxInFlight = std::max(maxInFlight, int(queue_.size()));
  }
  StepResult collectStep() override {
    if (queue_.empty()) throw std::logic_error("nothing to collect");
    const StepResult r = queue_.front();
    queue_.pop_front();
    return r;
  }
  void recommend(const CsrView& d, int64_t f, int64_t m, int64_t k, bool ex, const uint8_t* c, int32_t* oi, float* os) override {
    inner_.recommend(d, f, m, k, ex, c, oi, os);
  }
  void scores(const CsrView& d, int64_t f, int64_t m, float* out) override { inner_.scores(d, f, m, out); }
  void getParameters(float* out) const override { inner_.getParameters(out); }
  void setParameters(const float* in) override { inner_.setParameters(in); }
  void getOptimizerState(float* m, float* v, int64_t* t) const override { inner_.getOptimizerState(m, v, t); }
  void setOptimizerState(const float* m, const float* v, int64_t t) override { inner_.setOptimizerState(m, v, t); }
  void getGradients(float* out) const override { inner_.getGradients(out); }
  size_t pending() const { return queue_.size(); }
  int maxInFlight = 0, epochsBegun = 0;

 private:
  cpu::CpuEngine inner_;
  std::deque<StepResult> queue_;
};

static void pipelinedTrainer() {
  const int64_t items = 40;
  const ModelConfig cfg = tinyVae(items);
  Clicks clicks = randomClicks(97, items, 0.2, 4);
  CsrView data = clicks.view(items);
  EpochOptions eo;
  eo.batchSize = 20;
  eo.seed = 3;
  eo.beta.totalSteps = 7;
  cpu::CpuEngine plain(cfg);
  DeferredEngine deferred(cfg);
  plain.initialize(3);
  deferred.initialize(3);
  TrainingCounters c1, c2;
  std::vector<BatchStats> b1, b2;
  const EpochStats e1 = trainEpoch(plain, data, eo, c1, [&](const BatchStats& b) { b1.push_back(b); }, nullptr);
  const EpochStats e2 = trainEpoch(deferred, data, eo, c2, [&](const BatchStats& b) { b2.push_back(b); }, nullptr);
  CHECK(deferred.maxInFlight == 2 && deferred.pending() == 0 && deferred.epochsBegun == 1, "pipeline: %d in flight at most, %zu left",
        deferred.maxInFlight, deferred.pending());
  CHECK(b1.size() == 5 && b2.size() == 5, "batch reports: %zu and %zu", b1.size(), b2.size());
  for (size_t i = 0; i < b1.size() && i < b2.size(); ++i)
    CHECK(b2[i].batch == int64_t(i) && b1[i].loss == b2[i].loss && b1[i].beta == b2[i].beta, "batch %zu reported out of order or differs", i);
  CHECK(e1.loss == e2.loss && c1.step == c2.step && c1.annealCount == c2.annealCount, "epoch results differ");
  std::vector<float> p1(plain.numParams()), p2(deferred.numParams());
  plain.getParameters(p1.data());
  deferred.getParameters(p2.data());
  CHECK(p1 == p2, "pipelined training gave other weights");
  // Cancelled after the third report: nothing stays in flight, the counters count the submitted steps.
  std::atomic<bool> cancel{false};
  TrainingCounters c3;
  bool cancelled = false;
  try {
    trainEpoch(deferred, data, eo, c3, [&](const BatchStats& b) { if (b.batch == 2) cancel = true; }, &cancel);
  } catch (const Cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled && deferred.pending() == 0, "cancel: thrown %d, %zu steps left in flight", int(cancelled), deferred.pending());
  CHECK(c3.step == 4, "cancel: %llu steps counted, 4 submitted", (unsigned long long)c3.step);
}

// Two epochs from initialize(seed); `before` (optional) runs first on the same engine (a model trained,
// then re-initialised, must train exactly as a fresh one).
static std::vector<float> trainTwoEpochs(uint64_t seed, int threads, const std::function<void(cpu::CpuEngine&)>& before = nullptr) {
  const int64_t items = 40;
  const ModelConfig cfg = tinyVae(items);
  cpu::CpuEngine engine(cfg);
  engine.setThreads(threads);
  if (before) before(engine);
  engine.initialize(seed);
  Clicks clicks = randomClicks(97, items, 0.2, 4);
  CsrView data = clicks.view(items);
  TrainingCounters counters;
  for (uint64_t epoch = 0; epoch < 2; ++epoch) {
    EpochOptions eo;
    eo.batchSize = 20;
    eo.seed = seed;
    eo.epoch = epoch;
    eo.beta.totalSteps = 7;
    trainEpoch(engine, data, eo, counters, nullptr, nullptr);
  }
  CHECK(counters.step == 10 && counters.annealCount == 10, "counters after 2 x 5 batches");
  std::vector<float> p(engine.numParams());
  engine.getParameters(p.data());
  return p;
}

// Largest |a - ref| over the largest |ref| (normwise relative error of a vector).
static double normwiseError(const float* a, const double* ref, int64_t n) {
  double err = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, std::fabs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return scale > 0 ? err / scale : err;
}

// Every kernel of the current SIMD target against a double-precision reference (1e-5 normwise
// relative) and, where the arithmetic is the same, bit for bit against the scalar reference.
// Row top-k against a full sort: ties by the smaller index, -inf never chosen, k beyond the row; rows
// short and long (the float scan's four-vector steps and ragged tails), float and double.
template <typename T>
static void rowTopKMatchesSort() {
  std::mt19937 gen(4);
  cpu::RowTopK<T> select;
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t n = 1 + int64_t(gen() % (trial % 2 ? 300 : 3000)), k = 1 + int64_t(gen() % 40);
    std::vector<T> row(static_cast<size_t>(n));
    // Few distinct values (many ties) and some -inf (not candidates); every tenth row distinct values in
    // ascending order (each item beats the worst so far: the most replacements).
    for (size_t i = 0; i < row.size(); ++i)
      row[i] = trial % 10 == 3 ? T(i) * T(0.25) : gen() % 7 == 0 ? -std::numeric_limits<T>::infinity() : T(int(gen() % 12) - 6) * T(0.5);
    std::vector<int32_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = int32_t(i);
    std::sort(order.begin(), order.end(), [&row](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)] || (row[size_t(a)] == row[size_t(b)] && a < b); });
    std::vector<int32_t> idx(static_cast<size_t>(k));
    std::vector<float> score(static_cast<size_t>(k));
    select(row.data(), n, k, idx.data(), score.data());
    for (int64_t r = 0; r < k; ++r) {
      const bool valid = r < n && row[size_t(order[size_t(r)])] != -std::numeric_limits<T>::infinity();
      CHECK(idx[size_t(r)] == (valid ? order[size_t(r)] : -1), "trial %d rank %lld: item %d, expected %d", trial, (long long)r, idx[size_t(r)], valid ? order[size_t(r)] : -1);
      CHECK(valid ? score[size_t(r)] == float(row[size_t(order[size_t(r)])]) : score[size_t(r)] == -INFINITY, "trial %d rank %lld: score", trial, (long long)r);
    }
  }
}

// The input layer's weight gradient deferred into Adam (forwardBackward's deferInputGradient, the
// training steps' path) against the plain gradient then Adam: weights, moments and gradients bit for bit,
// over three steps on different batches, for Adam, Adam with coupled decay and AdamW, and in bf16 mode
// where the processor runs it; items the batches do not click take Adam's zero-gradient path.
static void deferredInputGradientIsExact() {
  const int64_t items = 403;
  ModelConfig cfg = tinyVae(items);
  cfg.encoderDims = {items, 48, 8};
  cfg.decoderDims = {8, 48, items};
  Clicks clicks = randomClicks(90, items, 0.03, 17);
  CsrView data = clicks.view(items);
  for (const bool bf16 : {false, true}) {
    if (bf16 && !cpu::bf16MatmulAvailable()) continue;
    for (int variant = 0; variant < 3; ++variant) {
      OptimizerOptions o;
      o.learningRate = 0.003;
      o.weightDecay = variant == 0 ? 0.0 : 0.02;
      o.decoupled = variant == 2;
      cpu::MultVaeCpu<float> plain(cfg), fused(cfg);
      for (auto* e : {&plain, &fused}) {
        e->setThreads(2);
        if (bf16) e->setBf16Output(true);
        e->initialize(11);
      }
      const int64_t n = plain.numParams();
      for (int step = 0; step < 3; ++step) {
        const int64_t first = step * 30;
        for (auto* e : {&plain, &fused}) {
          e->loadBatch(data, nullptr, first, 30);
          e->sampleNoise(5, uint64_t(step));
        }
        const StepResult rp = plain.forwardBackward(0.2, 0.0, false), rf = fused.forwardBackward(0.2, 0.0, true);
        CHECK(rp.loss == rf.loss, "bf16 %d variant %d step %d: loss %.9g vs %.9g", int(bf16), variant, step, rp.loss, rf.loss);
        if (step == 1) {  // read the deferred gradient before the update: formed on demand, then the plain Adam
          CHECK(std::memcmp(plain.gradients(), fused.gradients(), size_t(n) * sizeof(float)) == 0, "bf16 %d variant %d: gradients", int(bf16), variant);
        }
        plain.optimizerStep(o);
        fused.optimizerStep(o);
        if (step == 2) {  // and after a fused update, the gradient of that step
          CHECK(std::memcmp(plain.gradients(), fused.gradients(), size_t(n) * sizeof(float)) == 0, "bf16 %d variant %d: gradients after the fused step", int(bf16), variant);
        }
        CHECK(std::memcmp(plain.parameters(), fused.parameters(), size_t(n) * sizeof(float)) == 0, "bf16 %d variant %d step %d: weights", int(bf16), variant, step);
        CHECK(std::memcmp(plain.adamM().data(), fused.adamM().data(), size_t(n) * sizeof(float)) == 0 &&
                  std::memcmp(plain.adamV().data(), fused.adamV().data(), size_t(n) * sizeof(float)) == 0,
              "bf16 %d variant %d step %d: Adam moments", int(bf16), variant, step);
      }
    }
  }
}

// RecVAE's composite-prior KL: the float engine's vector kernel (double inside) against the double
// engine's scalar loop on the same inputs (rows of 1, 7, 13 and 200 dimensions; log variances from -9
// to 9 and z far in the tails, where components' exps underflow): the sum to 1e-12, each gradient
// entry to float rounding.
static void compositePriorKlKernelAgrees() {
  std::mt19937 gen(31);
  std::uniform_real_distribution<double> u(-1, 1);
  cpu::CompositePrior shape;
  for (const int64_t D : {int64_t(1), int64_t(7), int64_t(13), int64_t(200)}) {
    const int64_t m = 5;
    std::vector<float> enc(size_t(m * 2 * D)), prior(size_t(m * 2 * D)), z(size_t(m * D));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t d = 0; d < D; ++d) {
        enc[size_t(r * 2 * D + d)] = float(3 * u(gen));
        enc[size_t(r * 2 * D + D + d)] = float(9 * u(gen));
        prior[size_t(r * 2 * D + d)] = float(3 * u(gen));
        prior[size_t(r * 2 * D + D + d)] = float(9 * u(gen));
        z[size_t(r * D + d)] = float((r == 3 ? 40 : 4) * u(gen));
      }
    std::vector<double> w = {0.3, 1.0, 2.5, 0.005, 7.0};
    std::vector<float> dzF(z.size(), 0.25f), dEncF(enc.size(), -0.5f);
    std::vector<double> encD(enc.begin(), enc.end()), priorD(prior.begin(), prior.end()), zD(z.begin(), z.end());
    std::vector<double> dzD(z.size(), 0.25), dEncD(enc.size(), -0.5);
    const double kf = cpu::compositePriorKl<float>(enc.data(), prior.data(), z.data(), m, D, w.data(), shape, dzF.data(), dEncF.data(), 0.1f, 2);
    const double kd = cpu::compositePriorKl<double>(encD.data(), priorD.data(), zD.data(), m, D, w.data(), shape, dzD.data(), dEncD.data(), 0.1, 2);
    CHECK(std::fabs(kf - kd) <= 1e-12 * std::fabs(kd), "D %lld: KL %.17g vs %.17g", (long long)D, kf, kd);
    auto close = [](const std::vector<float>& a, const std::vector<double>& b, const char* what, int64_t D) {
      for (size_t i = 0; i < a.size(); ++i)
        CHECK(std::fabs(double(a[i]) - b[i]) <= 3e-7 * std::max(1.0, std::fabs(b[i])), "D %lld: %s[%zu] %.9g vs %.17g", (long long)D, what, i, a[i], b[i]);
    };
    close(dzF, dzD, "dz", D);
    close(dEncF, dEncD, "dEnc", D);
  }
}

static void kernelsAgree() {
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-6, 6);
  // Shorter than a vector, ragged tails; the last with logits far below zero, where a wrong padding of the
  // running maximum would underflow every exp.
  for (const int64_t items : {int64_t(1), int64_t(7), int64_t(1037), int64_t(13)}) {
    std::vector<float> row(items), bias(items);
    for (auto& v : row) v = u(gen) + (items == 13 ? -150.0f : 0.0f);
    for (auto& v : bias) v = 0.1f * u(gen);
    std::vector<int32_t> idx;
    std::vector<float> x;
    for (int64_t i = 0; i < items; i += std::max<int64_t>(1, items / 4)) {
      idx.push_back(int32_t(i));
      x.push_back(float(1 + idx.size() % 3));
    }
    std::vector<float> a = row, b = row, ga(items), gb(items);
    std::vector<cpu::bf16> ha(items), hb(items);
    const int64_t clicks = int64_t(idx.size());
    const double na = cpu::likelihoodRow(a.data(), bias.data(), items, idx.data(), x.data(), clicks, 0.5f, ga.data(), ha.data());
    const double nb = cpu::likelihoodRowScalar(b.data(), bias.data(), items, idx.data(), x.data(), clicks, 0.5f, gb.data(), hb.data());
    double mx = -1e300, sum = 0, n = 0, dot = 0;
    std::vector<double> l(items), ref(items);
    for (int64_t i = 0; i < items; ++i) mx = std::max(mx, l[i] = double(row[i]) + double(bias[i]));
    for (int64_t i = 0; i < items; ++i) sum += std::exp(l[i] - mx);
    for (int64_t k = 0; k < clicks; ++k) n += x[k], dot += x[k] * l[idx[k]];
    const double nll = n * (mx + std::log(sum)) - dot;
    CHECK(std::fabs(na - nll) <= 1e-5 * std::fabs(nll) + 1e-6 && std::fabs(nb - nll) <= 1e-5 * std::fabs(nll) + 1e-6,
          "items %lld: nll %.9g (scalar %.9g) vs %.9g", (long long)items, na, nb, nll);
    for (int64_t i = 0; i < items; ++i) ref[i] = 0.5 * n * std::exp(l[i] - mx) / sum;
    for (int64_t k = 0; k < clicks; ++k) ref[idx[k]] -= 0.5 * x[k];
    const double err = normwiseError(ga.data(), ref.data(), items);
    CHECK(err < 1e-5, "items %lld: likelihood gradient vs double, normwise %g", (long long)items, err);
    // The bf16 copy is the rounding of the fp32 gradient, bit for bit.
    for (int64_t i = 0; i < items; ++i) CHECK(cpu::toBf16Scalar(ga[i]) == ha[i], "bf16 gradient bits at %lld", (long long)i);
  }
  // bf16 rounding, bit for bit with the scalar one: ties to even, NaN, infinities, the largest floats, a tail.
  {
    std::vector<float> f = {1.0f, -2.5f, 0.0f, -0.0f, INFINITY, -INFINITY, std::nanf(""), 3.4028235e38f, -3.4028235e38f, 1e-40f};
    for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x7f7fffffu, 0x00018000u}) {
      float v;
      std::memcpy(&v, &bits, 4);
      f.push_back(v);
    }
    for (int i = 0; i < 200; ++i) f.push_back(u(gen) * 1e3f);
    std::vector<cpu::bf16> h(f.size());
    cpu::toBf16(f.data(), h.data(), int64_t(f.size()));
    for (size_t i = 0; i < f.size(); ++i) CHECK(cpu::toBf16Scalar(f[i]) == h[i], "toBf16 of %a: %04x vs %04x", double(f[i]), h[i], cpu::toBf16Scalar(f[i]));
  }
  // Adam and AdamW against the formula in double, and the bf16 copy of the result.
  for (int decoupled = 0; decoupled < 2; ++decoupled) {
    const int64_t n = 1001;
    std::vector<float> p(n), g(n), m(n), v(n);
    for (auto& q : p) q = u(gen);
    for (auto& q : g) q = u(gen);
    for (auto& q : m) q = 0.1f * u(gen);
    for (auto& q : v) q = 0.05f * std::fabs(u(gen));
    const cpu::AdamStep st{0.01f, 0.9f, 0.999f, 1e-8f, 0.03f, 0.1f, 0.999f, !decoupled, bool(decoupled)};
    std::vector<double> rp(n), rm(n), rv(n);
    for (int64_t i = 0; i < n; ++i) {
      double gi = g[i], pi = p[i];
      if (st.coupled) gi += double(st.decay) * pi;
      if (st.decoupled) pi *= double(st.shrink);
      rm[i] = double(st.b1) * m[i] + (1 - double(st.b1)) * gi;
      rv[i] = double(st.b2) * v[i] + (1 - double(st.b2)) * gi * gi;
      rp[i] = pi - double(st.stepSize) * rm[i] / (std::sqrt(rv[i]) / double(st.bc2Sqrt) + double(st.eps));
    }
    std::vector<cpu::bf16> pb(n);
    cpu::adamUpdate(p.data(), g.data(), m.data(), v.data(), n, st, pb.data());
    CHECK(normwiseError(p.data(), rp.data(), n) < 1e-6 && normwiseError(m.data(), rm.data(), n) < 1e-6 &&
              normwiseError(v.data(), rv.data(), n) < 1e-6,
          "%s vs double: p %g m %g v %g", decoupled ? "AdamW" : "Adam", normwiseError(p.data(), rp.data(), n),
          normwiseError(m.data(), rm.data(), n), normwiseError(v.data(), rv.data(), n));
    for (int64_t i = 0; i < n; ++i) CHECK(pb[i] == cpu::toBf16Scalar(p[i]), "Adam's bf16 copy at %lld", (long long)i);
  }
  // Element-wise kernels against double.
  {
    const int64_t n = 531;
    std::vector<float> a(n), b(n), y(n);
    std::vector<double> ref(n);
    for (auto& q : a) q = u(gen);
    for (auto& q : b) q = 0.3f * u(gen);
    for (auto& q : y) q = u(gen);
    std::vector<float> t = a;
    cpu::tanhInPlace(t.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = std::tanh(double(a[i]));
    CHECK(normwiseError(t.data(), ref.data(), n) < 1e-6, "tanh vs double: %g", normwiseError(t.data(), ref.data(), n));
    for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(t[i] - ref[i]) <= 4e-7 * std::fabs(ref[i]) + 1e-30, "tanh(%g) relative error %g", a[i], std::fabs(t[i] - ref[i]) / std::fabs(ref[i]));
    std::vector<float> g = b;
    cpu::tanhBackward(g.data(), t.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = double(b[i]) * (1 - double(t[i]) * double(t[i]));
    CHECK(normwiseError(g.data(), ref.data(), n) < 1e-6, "tanh backward: %g", normwiseError(g.data(), ref.data(), n));
    // swish over a wide range (u is in [-1, 1); scaled to [-30, 30], plus the saturated ends).
    std::vector<float> xs(n), sw(n), gs = b;
    for (int64_t i = 0; i < n; ++i) xs[i] = i < 4 ? float(i % 2 ? 200 : -200) : 30.0f * a[i];
    cpu::swishForward(xs.data(), sw.data(), n);
    std::vector<double> slope(n);
    for (int64_t i = 0; i < n; ++i) {
      const double x = xs[i], s = 1.0 / (1.0 + std::exp(-x));
      ref[i] = x * s;
      slope[i] = s * (1.0 + x * (1.0 - s));
    }
    for (int64_t i = 0; i < n; ++i)
      CHECK(std::fabs(sw[i] - ref[i]) <= 1e-6 * std::fabs(ref[i]) + 1e-30, "swish(%g) = %g, double %g", xs[i], sw[i], ref[i]);
    cpu::swishBackward(gs.data(), xs.data(), n);
    for (int64_t i = 0; i < n; ++i) ref[i] = double(b[i]) * slope[i];
    CHECK(normwiseError(gs.data(), ref.data(), n) < 1e-6, "swish backward: %g", normwiseError(gs.data(), ref.data(), n));
    std::vector<float> o(n);
    cpu::multiply(a.data(), b.data(), o.data(), n);
    for (int64_t i = 0; i < n; ++i) CHECK(o[i] == a[i] * b[i], "multiply at %lld", (long long)i);
    std::vector<float> z = y;
    cpu::addScaled(z.data(), a.data(), 0.7f, n);
    for (int64_t i = 0; i < n; ++i) ref[i] = double(y[i]) + 0.7 * double(a[i]);
    CHECK(normwiseError(z.data(), ref.data(), n) < 1e-6, "addScaled: %g", normwiseError(z.data(), ref.data(), n));
    std::vector<cpu::bf16> h(n);
    cpu::toBf16(a.data(), h.data(), n);
    z = y;
    cpu::addBf16(z.data(), h.data(), n);
    for (int64_t i = 0; i < n; ++i) CHECK(z[i] == y[i] + cpu::fromBf16(h[i]), "addBf16 at %lld", (long long)i);
  }
  // The sparse layer's row kernel against double; zero values skipped. Widths ragged against every vector
  // width, and wide enough for several four-vector blocks on every target.
  for (const int64_t cols : {int64_t(83), int64_t(300), int64_t(600)}) {
    const int64_t items = 50;
    std::vector<float> W(items * cols), row(cols);
    for (auto& q : W) q = u(gen);
    for (auto& q : row) q = u(gen);
    std::vector<int32_t> idx = {3, 17, 4, 49, 0, 22, 8, 31, 45, 11, 2};
    std::vector<float> vals = {0.5f, 0.0f, -1.25f, 2.0f, 0.125f, 0.75f, 0.0f, -0.5f, 1.5f, 0.25f, -2.0f};
    std::vector<double> ref(row.begin(), row.end());
    for (size_t k = 0; k < idx.size(); ++k)
      for (int64_t c = 0; c < cols; ++c) ref[c] += double(vals[k]) * W[idx[k] * cols + c];
    cpu::sparseRow(row.data(), W.data(), cols, idx.data(), vals.data(), int64_t(idx.size()));
    CHECK(normwiseError(row.data(), ref.data(), cols) < 1e-6, "sparse row (%lld columns): %g", (long long)cols,
          normwiseError(row.data(), ref.data(), cols));
  }
  // Philox words: the vector kernel bit for bit against Philox4x32::generate, over ragged lengths, a
  // start just below 2^32 (the low counter word wraps inside a vector) and a large step and stream;
  // then the dropout scales built on it against the scalar rule, whatever the thread count.
  {
    const CounterRng rng(0x123456789abcdefULL, uint32_t(Stream::HiddenDropout) * 1000u + 2u, (uint64_t(7) << 32) + 99);
    for (const uint64_t first : {uint64_t(0), uint64_t(5), (uint64_t(1) << 32) - 37, (uint64_t(3) << 32) + 1})
      for (const int64_t n : {int64_t(1), int64_t(15), int64_t(67), int64_t(1000)}) {
        std::vector<uint32_t> w0(n), w1(n), w2(n), w3(n), only(n);
        cpu::philoxWords(rng, first, n, w0.data(), w1.data(), w2.data(), w3.data());
        cpu::philoxWords(rng, first, n, only.data(), nullptr, nullptr, nullptr);
        int64_t differ = only == w0 ? 0 : 1;
        for (int64_t i = 0; i < n; ++i) {
          uint32_t w[4];
          const uint64_t index = first + uint64_t(i);
          Philox4x32::generate(rng.key(), uint32_t(index), uint32_t(index >> 32), rng.counter2(), rng.counter3(), w);
          differ += w[0] != w0[size_t(i)] || w[1] != w1[size_t(i)] || w[2] != w2[size_t(i)] || w[3] != w3[size_t(i)];
        }
        CHECK(differ == 0, "vector Philox: %lld of %lld indices differ from the scalar generator (first %llu)", (long long)differ, (long long)n,
              (unsigned long long)first);
      }
    const int64_t n = 5003;
    const double p = 0.5;
    std::vector<float> one(n), two(n);
    cpu::dropoutScales(rng, p, 2.0f, n, one.data(), 1);
    cpu::dropoutScales(rng, p, 2.0f, n, two.data(), 2);
    int64_t differ = one == two ? 0 : 1, kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      differ += one[size_t(i)] != (rng.uniform(uint64_t(i)) >= p ? 2.0f : 0.0f);
      kept += one[size_t(i)] != 0;
    }
    CHECK(differ == 0 && kept > n / 3 && kept < 2 * n / 3, "dropout scales: %lld differ from the scalar rule, %lld of %lld kept", (long long)differ,
          (long long)kept, (long long)n);
  }
  // Normal draws: the vector Box-Muller against CounterRng::normal (double, libm) over 100,003 indices
  // (ragged against every width and the 1024-element chunks): within float rounding everywhere, the
  // same float almost always, and the same values whatever the thread count.
  {
    const int64_t n = 100003;
    const CounterRng rng(7, uint32_t(Stream::Reparameterisation), 11);
    std::vector<float> one(n), two(n);
    cpu::normalsInto(rng, one.data(), n, 1);
    cpu::normalsInto(rng, two.data(), n, 2);
    CHECK(one == two, "normal draws depend on the thread count");
    int64_t differ = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double ref = rng.normal(uint64_t(i));
      worst = std::max(worst, std::fabs(double(one[size_t(i)]) - ref) / std::max(1e-3, std::fabs(ref)));
      differ += one[size_t(i)] != float(ref);
    }
    CHECK(worst < 1.2e-7 && differ <= n / 1000, "vector normals: worst relative %g, %lld of %lld differ from float(normal)", worst,
          (long long)differ, (long long)n);
  }
  // LayerNorm's row kernels against double: ragged widths, an offset row (its mean far from zero), the
  // authors' eps 0.1 and a small one; the backward in place too; y += a * b.
  for (int64_t n : {1, 7, 83, 600}) {
    for (double eps : {0.1, 1e-5}) {
      std::vector<float> a(n), gamma(n), beta(n), dy(n), y(n), xh(n), da(n);
      for (auto& q : a) q = 3.0f + u(gen);
      for (auto& q : gamma) q = 1.0f + 0.5f * u(gen);
      for (auto& q : beta) q = 0.2f * u(gen);
      for (auto& q : dy) q = u(gen);
      const float r = cpu::layerNormRow(a.data(), n, gamma.data(), beta.data(), float(eps), y.data(), xh.data());
      double mean = 0, var = 0;
      for (float q : a) mean += q;
      mean /= double(n);
      for (float q : a) var += (q - mean) * (q - mean);
      var /= double(n);
      const double rr = 1.0 / std::sqrt(var + eps);
      std::vector<double> rx(n), ry(n), rda(n);
      for (int64_t i = 0; i < n; ++i) rx[i] = (a[i] - mean) * rr, ry[i] = gamma[i] * rx[i] + beta[i];
      CHECK(std::fabs(r - rr) <= 1e-5 * rr, "LayerNorm n %lld eps %g: rstd %g vs %g", (long long)n, eps, r, rr);
      CHECK(normwiseError(y.data(), ry.data(), n) < 1e-5 && (n == 1 || normwiseError(xh.data(), rx.data(), n) < 1e-5),
            "LayerNorm n %lld eps %g: y %g, xhat %g", (long long)n, eps, normwiseError(y.data(), ry.data(), n), normwiseError(xh.data(), rx.data(), n));
      double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < n; ++i) s1 += double(dy[i]) * gamma[i], s2 += double(dy[i]) * gamma[i] * xh[i];
      for (int64_t i = 0; i < n; ++i) rda[i] = double(r) * (double(dy[i]) * gamma[i] - s1 / double(n) - double(xh[i]) * s2 / double(n));
      cpu::layerNormBackwardRow(dy.data(), xh.data(), gamma.data(), r, n, da.data());
      const double scale = std::sqrt(std::inner_product(rda.begin(), rda.end(), rda.begin(), 0.0)) + 1e-30;
      double diff = 0;
      for (int64_t i = 0; i < n; ++i) diff += (da[i] - rda[i]) * (da[i] - rda[i]);
      // Absolute against the gradient's size: it is a difference of nearly equal terms (n = 1: exactly 0).
      CHECK(std::sqrt(diff) <= 1e-5 * std::max(scale, double(r)), "LayerNorm backward n %lld eps %g: %g", (long long)n, eps, std::sqrt(diff) / scale);
      std::vector<float> inPlace = dy;
      cpu::layerNormBackwardRow(inPlace.data(), xh.data(), gamma.data(), r, n, inPlace.data());
      CHECK(inPlace == da, "LayerNorm backward in place differs");
      std::vector<float> acc = beta;
      cpu::addProduct(acc.data(), dy.data(), xh.data(), n);
      for (int64_t i = 0; i < n; ++i) rx[i] = double(beta[i]) + double(dy[i]) * xh[i];
      CHECK(normwiseError(acc.data(), rx.data(), n) < 1e-6, "addProduct: %g", normwiseError(acc.data(), rx.data(), n));
    }
  }
  // The few-rows product against a double reference, fp32 and bf16 weights, every row count, ragged tails.
  const int64_t K = 37, N = 1000;
  std::vector<float> W(static_cast<size_t>(K * N)), xs(static_cast<size_t>(4 * K)), bs(static_cast<size_t>(N)), y(static_cast<size_t>(4 * N));
  for (auto& q : W) q = u(gen);
  for (auto& q : xs) q = u(gen);
  for (auto& q : bs) q = u(gen);
  std::vector<cpu::bf16> Wb(W.size());
  cpu::toBf16(W.data(), Wb.data(), int64_t(W.size()));
  // Both kernels: the row-major one and the packed panels (odd K: a zero-padded last pair; N not a multiple of the width).
  cpu::PackedPanels panels[2];
  cpu::packPanels(W.data(), K, N, false, panels[0], 2);
  cpu::packPanels(W.data(), K, N, true, panels[1], 2);
  CHECK(panels[0].width == cpu::panelWidth() && panels[1].width == cpu::panelWidth(), "panel width");
  for (int kernel = 0; kernel < 2; ++kernel)
    for (int bf = 0; bf < 2; ++bf)
      for (int64_t rows = 1; rows <= 4; ++rows) {
        if (kernel == 0 && bf) continue;  // the row-major kernel is fp32 only
        std::fill(y.begin(), y.end(), std::nanf(""));
        if (kernel == 0) cpu::smallRowsProduct(xs.data(), rows, K, W.data(), N, bs.data(), y.data(), 2);
        else cpu::panelRowsProduct(xs.data(), rows, panels[bf], bs.data(), y.data(), 2);
        std::vector<double> ref(size_t(rows * N));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < N; ++j) {
            double acc = bs[j];
            for (int64_t i = 0; i < K; ++i) {
              const float xb = cpu::fromBf16(cpu::toBf16Scalar(xs[r * K + i]));
              acc += double(bf ? xb : xs[r * K + i]) * double(bf ? cpu::fromBf16(Wb[i * N + j]) : W[i * N + j]);
            }
            ref[size_t(r * N + j)] = acc;
          }
        const double err = normwiseError(y.data(), ref.data(), rows * N);
        CHECK(err < 1e-5, "%s product %s rows %lld: normwise %g", kernel ? "panel" : "row-major", bf ? "bf16" : "fp32", (long long)rows, err);
      }
}

// The float engine (the SIMD kernels, OpenBLAS) against the double engine on the same weights, batch
// and noise: training loss and gradients, evaluation logits in batch and one-user (packed panel) form.
// items / hidden / users: the default shape's products are small (one OpenBLAS call each); the large one's
// output layer (64 x 96 x 1201 multiply-adds) takes gemm()'s other path, oneDNN where fp32GemmUsesOneDnn(),
// else OpenBLAS split over threads.
static void floatEngineAgrees(bool variational, int64_t items = 301, int64_t hidden = 40, int64_t users = 37) {
  ModelConfig cfg = smallConfig(variational, items);
  cfg.encoderDims = {items, hidden, 8};
  cfg.decoderDims = {8, hidden, items};
  cpu::MultVaeCpu<double> ref(cfg);
  cpu::MultVaeCpu<float> fast(cfg);
  ref.initialize(21);
  for (int64_t i = 0; i < ref.numParams(); ++i) fast.parameters()[i] = float(ref.parameters()[i]);
  for (int64_t i = 0; i < ref.numParams(); ++i) ref.parameters()[i] = double(fast.parameters()[i]);
  fast.parametersChanged();
  Clicks clicks = randomClicks(users, items, 0.05, 12);
  CsrView data = clicks.view(items, true);
  ref.loadBatch(data, nullptr, 0, data.rows);
  fast.loadBatch(data, nullptr, 0, data.rows);
  ref.setThreads(2);
  fast.setThreads(2);
  ref.sampleNoise(3, 1);
  fast.sampleNoise(3, 1);
  const StepResult rr = ref.forwardBackward(0.2, 0.01), rf = fast.forwardBackward(0.2, 0.01);
  CHECK(std::fabs(rr.loss - rf.loss) <= 1e-5 * std::fabs(rr.loss), "loss %.9g vs double %.9g", rf.loss, rr.loss);
  const double gerr = normwiseError(fast.gradients(), ref.gradients(), ref.numParams());
  std::printf("     %s: loss %.3g relative, gradients normwise %.3g\n", variational ? "Mult-VAE" : "Mult-DAE",
              std::fabs(rr.loss - rf.loss) / std::fabs(rr.loss), gerr);
  CHECK(gerr < 1e-5, "gradients vs double: normwise %g", gerr);
  // Evaluation: the whole batch (BLAS), then one and three users at a time (the few-rows kernels).
  ref.forwardEval();
  fast.forwardEval();
  std::vector<double> logits(ref.logits(), ref.logits() + data.rows * items);
  CHECK(normwiseError(fast.logits(), logits.data(), data.rows * items) < 1e-5, "batch logits: %g",
        normwiseError(fast.logits(), logits.data(), data.rows * items));
  for (int64_t count : {int64_t(1), int64_t(3)})
    for (int64_t first = 0; first + count <= 7; first += count) {
      fast.loadBatch(data, nullptr, first, count);
      fast.forwardEval();
      const double err = normwiseError(fast.logits(), logits.data() + first * items, count * items);
      CHECK(err < 1e-5, "%lld-user logits from user %lld: %g", (long long)count, (long long)first, err);
    }
}

// ---- Layers and RecVAE ----

// Central finite differences of a scalar function of a vector against its analytic gradient.
static double fdError(std::vector<double>& x, const std::function<double()>& f, const std::vector<double>& analytic, const char* what) {
  double num2 = 0, diff2 = 0;
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    const double fd = (up - down) / (2 * h);
    num2 += fd * fd;
    diff2 += (fd - analytic[i]) * (fd - analytic[i]);
  }
  const double rel = std::sqrt(diff2 / std::max(num2, 1e-300));
  std::printf("     %s: %zu inputs, ||g - fd|| / ||fd|| = %.3g\n", what, x.size(), rel);
  return rel;
}

// Each layer's backward pass against finite differences of L = sum(c * layer(x)) with random c (double).
static void layerGradients() {
  std::mt19937 gen(17);
  std::uniform_real_distribution<double> u(-1, 1);
  const int64_t m = 3, n = 7, D = 4;
  auto randomVector = [&](size_t size, double scale) {
    std::vector<double> v(size);
    for (auto& x : v) x = scale * u(gen);
    return v;
  };
  // swish
  {
    std::vector<double> x = randomVector(m * n, 4), c = randomVector(m * n, 1), y(m * n);
    auto f = [&] {
      cpu::swishOf(x.data(), y.data(), m * n, 1);
      double s = 0;
      for (int64_t i = 0; i < m * n; ++i) s += c[size_t(i)] * y[size_t(i)];
      return s;
    };
    std::vector<double> g = c;
    cpu::swishBackwardOf(g.data(), x.data(), m * n, 1);
    CHECK(fdError(x, f, g, "swish") < 1e-8, "swish gradient");
  }
  // LayerNorm: gradients w.r.t. the input, the gain and the shift
  {
    std::vector<double> a = randomVector(m * n, 2), gain = randomVector(n, 1.5), shift = randomVector(n, 0.5), c = randomVector(m * n, 1);
    std::vector<double> y(m * n), xhat(m * n), rstd(m);
    auto f = [&] {
      cpu::layerNormForward(a.data(), m, n, gain.data(), shift.data(), 0.1, y.data(), xhat.data(), rstd.data(), 1);
      double s = 0;
      for (int64_t i = 0; i < m * n; ++i) s += c[size_t(i)] * y[size_t(i)];
      return s;
    };
    f();
    std::vector<double> da(m * n), dgain(n), dshift(n);
    cpu::layerNormBackward(c.data(), xhat.data(), rstd.data(), gain.data(), m, n, da.data(), dgain.data(), dshift.data(), 1);
    CHECK(fdError(a, f, da, "LayerNorm input") < 1e-8, "LayerNorm input gradient");
    CHECK(fdError(gain, f, dgain, "LayerNorm gain") < 1e-8, "LayerNorm gain gradient");
    CHECK(fdError(shift, f, dshift, "LayerNorm shift") < 1e-8, "LayerNorm shift gradient");
  }
  // dense: input, weight and bias
  {
    const int64_t in = 5, out = 6;
    std::vector<double> X = randomVector(m * in, 1), W = randomVector(in * out, 1), b = randomVector(out, 1), c = randomVector(m * out, 1);
    std::vector<double> Y(m * out);
    auto f = [&] {
      cpu::denseForward(X.data(), m, in, W.data(), b.data(), out, Y.data(), false, 1);
      double s = 0;
      for (int64_t i = 0; i < m * out; ++i) s += c[size_t(i)] * Y[size_t(i)];
      return s;
    };
    std::vector<double> dX(m * in), dW(in * out), db(out);
    cpu::denseBackward(X.data(), c.data(), m, in, W.data(), out, dW.data(), db.data(), dX.data(), false, 1);
    CHECK(fdError(X, f, dX, "dense input") < 1e-8, "dense input gradient");
    CHECK(fdError(W, f, dW, "dense weight") < 1e-8, "dense weight gradient");
    CHECK(fdError(b, f, db, "dense bias") < 1e-8, "dense bias gradient");
  }
  // Gaussian KL against N(0, I)
  {
    std::vector<double> enc = randomVector(m * 2 * D, 1);
    auto f = [&] { return cpu::gaussianKl<double>(enc.data(), m, D, 2); };
    std::vector<double> g(m * 2 * D, 0.0);
    cpu::gaussianKlBackward<double>(enc.data(), m, D, g.data(), 1.0, 2);
    CHECK(fdError(enc, f, g, "KL to N(0, I)") < 1e-8, "Gaussian KL gradient");
  }
  // Composite prior: the total derivative through z = mu + eps exp(logvar / 2), as the model chains it
  {
    std::vector<double> enc = randomVector(m * 2 * D, 1), prior = randomVector(m * 2 * D, 1), eps = randomVector(m * D, 1.5);
    const double w[3] = {0.5, 2.0, 0.01};
    cpu::CompositePrior shape;
    std::vector<double> z(m * D);
    auto makeZ = [&] {
      for (int64_t r = 0; r < m; ++r)
        for (int64_t d = 0; d < D; ++d) z[size_t(r * D + d)] = enc[size_t(r * 2 * D + d)] + eps[size_t(r * D + d)] * std::exp(0.5 * enc[size_t(r * 2 * D + D + d)]);
    };
    auto f = [&] {
      makeZ();
      return cpu::compositePriorKl<double>(enc.data(), prior.data(), z.data(), m, D, w, shape, nullptr, nullptr, 1.0, 1);
    };
    makeZ();
    std::vector<double> dz(m * D, 0.0), dEnc(m * 2 * D, 0.0);
    cpu::compositePriorKl<double>(enc.data(), prior.data(), z.data(), m, D, w, shape, dz.data(), dEnc.data(), 1.0, 1);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t d = 0; d < D; ++d) {
        dEnc[size_t(r * 2 * D + d)] += dz[size_t(r * D + d)];
        dEnc[size_t(r * 2 * D + D + d)] += dz[size_t(r * D + d)] * eps[size_t(r * D + d)] * 0.5 * std::exp(0.5 * enc[size_t(r * 2 * D + D + d)]);
      }
    CHECK(fdError(enc, f, dEnc, "composite-prior KL (Monte Carlo, through z)") < 1e-7, "composite prior gradient");
    // and the prior's own mean shifts the loss (the old encoder's posterior is used)
    const double before = f();
    prior[0] += 0.5;
    CHECK(std::fabs(f() - before) > 1e-6, "the old posterior does not enter the prior");
  }
}

static cpu::RecVaeCpu<double> smallRecVae(int64_t items) {
  RecVaeConfig cfg;
  cfg.items = items;
  cfg.hidden = 6;
  cfg.latent = 3;
  cfg.layers = 5;
  return cpu::RecVaeCpu<double>(cfg);
}

// The whole RecVAE loss against finite differences in each phase (double): the parameters the phase
// trains get exact gradients through the dense connections, the LayerNorms and the composite prior.
static void recVaeGradientCheck(Phase phase, double gamma, bool withValues) {
  const int64_t items = 13;
  auto model = smallRecVae(items);
  model.initialize(5);
  for (int64_t i = 0; i < model.numParams(); ++i) model.parameters()[i] *= 2.0;  // away from the linear regime
  Clicks clicks = randomClicks(5, items, 0.3, 8);
  model.loadBatch(clicks.view(items, withValues), nullptr, 0, 5);
  model.sampleNoise(3, 2, phase != Phase::Decoder);
  const double beta = 0.4;
  model.forwardBackward(phase, beta, gamma);
  const int64_t first = phase == Phase::Decoder ? model.numEncoderParams() : 0;
  const int64_t last = phase == Phase::Encoder ? model.numEncoderParams() : model.numParams();
  std::vector<double> analytic(model.gradients() + first, model.gradients() + last);
  std::vector<double> x(model.parameters() + first, model.parameters() + last);
  auto f = [&] {
    std::copy(x.begin(), x.end(), model.parameters() + first);
    return model.forwardBackward(phase, beta, gamma).loss;
  };
  const char* names[] = {"joint", "encoder phase", "decoder phase"};
  char what[96];
  std::snprintf(what, sizeof what, "RecVAE %s%s%s", names[int(phase)], gamma > 0 ? ", gamma" : ", beta", withValues ? ", weighted clicks" : "");
  CHECK(fdError(x, f, analytic, what) < 1e-6, "RecVAE gradient");
}

// The float RecVAE (SIMD kernels, OpenBLAS) against the double one on the same weights, batch and noise.
// A small RecVAE (hidden 48, latent 8) for the float / bf16 agreement checks.
static RecVaeConfig agreementRecVaeConfig(int64_t items) {
  RecVaeConfig cfg;
  cfg.items = items;
  cfg.hidden = 48;
  cfg.latent = 8;
  return cfg;
}

// The double engine initialised, the float one given the same weights (rounded to float, and the
// double's set to those floats; the prior's encoder too), then one Joint step of each on the same users
// and noise. Returns {double, float} step results.
static std::pair<StepResult, StepResult> recVaeJointStepOnSharedWeights(cpu::RecVaeCpu<double>& ref, cpu::RecVaeCpu<float>& fast,
                                                                       const CsrView& data) {
  ref.initialize(4);
  for (int64_t i = 0; i < ref.numParams(); ++i) fast.parameters()[i] = float(ref.parameters()[i]);
  for (int64_t i = 0; i < ref.numParams(); ++i) ref.parameters()[i] = double(fast.parameters()[i]);
  for (int64_t i = 0; i < ref.numEncoderParams(); ++i) fast.priorParameters()[i] = float(ref.priorParameters()[i]);
  for (int64_t i = 0; i < ref.numEncoderParams(); ++i) ref.priorParameters()[i] = double(fast.priorParameters()[i]);
  fast.parametersChanged();
  ref.loadBatch(data, nullptr, 0, data.rows);
  fast.loadBatch(data, nullptr, 0, data.rows);
  ref.sampleNoise(3, 1, true);
  fast.sampleNoise(3, 1, true);
  return {ref.forwardBackward(Phase::Joint, 0, 0.005), fast.forwardBackward(Phase::Joint, 0, 0.005)};
}

static void recVaeFloatAgrees() {
  const int64_t items = 301;
  const RecVaeConfig cfg = agreementRecVaeConfig(items);
  cpu::RecVaeCpu<double> ref(cfg);
  cpu::RecVaeCpu<float> fast(cfg);
  Clicks clicks = randomClicks(37, items, 0.05, 12);
  CsrView data = clicks.view(items, false);
  const auto [rr, rf] = recVaeJointStepOnSharedWeights(ref, fast, data);
  CHECK(std::fabs(rr.loss - rf.loss) <= 1e-5 * std::fabs(rr.loss), "loss %.9g vs double %.9g", rf.loss, rr.loss);
  const double gerr = normwiseError(fast.gradients(), ref.gradients(), ref.numParams());
  std::printf("     RecVAE: loss %.3g relative, gradients normwise %.3g\n", std::fabs(rr.loss - rf.loss) / std::fabs(rr.loss), gerr);
  CHECK(gerr < 1e-5, "gradients vs double: normwise %g", gerr);
  ref.forwardEval();
  fast.forwardEval();
  std::vector<double> logits(ref.logits(), ref.logits() + data.rows * items);
  CHECK(normwiseError(fast.logits(), logits.data(), data.rows * items) < 1e-5, "batch logits");
  for (int64_t count : {int64_t(1), int64_t(3)}) {
    fast.loadBatch(data, nullptr, 3, count);
    fast.forwardEval();
    const double err = normwiseError(fast.logits(), logits.data() + 3 * items, count * items);
    CHECK(err < 1e-5, "%lld-user logits: %g", (long long)count, err);
  }
}

// RecVAE's bf16 products (decoder, encoder dense layers and head) against the double engine on the same
// weights: loss and gradients within bf16 rounding (the products' operands carry 8 significant bits);
// after a step of both groups the bf16 weight copies Adam refreshed equal copies rebuilt from the fp32
// weights (bit for bit in the logits and in a training step's gradients), and one user scored alone
// (bf16 panels) agrees with the batch path (the encoder is fp32 in both).
static void recVaeBf16Products() {
  const int64_t items = 301;
  const RecVaeConfig cfg = agreementRecVaeConfig(items);
  cpu::RecVaeCpu<double> ref(cfg);
  cpu::RecVaeCpu<float> fast(cfg), rebuilt(cfg);
  fast.setBf16Products(true);
  rebuilt.setBf16Products(true);
  Clicks clicks = randomClicks(37, items, 0.05, 12);
  CsrView data = clicks.view(items, false);
  const auto [rr, rf] = recVaeJointStepOnSharedWeights(ref, fast, data);
  const double lossErr = std::fabs(rr.loss - rf.loss) / std::fabs(rr.loss), gerr = normwiseError(fast.gradients(), ref.gradients(), ref.numParams());
  std::printf("     RecVAE, bf16 products: loss %.3g relative, gradients normwise %.3g\n", lossErr, gerr);
  CHECK(lossErr < 2e-3 && lossErr > 0, "bf16 loss %.9g vs double %.9g (0 would mean the bf16 path did not run)", rf.loss, rr.loss);
  CHECK(gerr < 2e-2, "bf16 gradients vs double: normwise %g", gerr);
  // A step of both groups, then the refreshed copies against ones rebuilt from the updated fp32 weights.
  OptimizerOptions adam;
  fast.optimizerStep(Phase::Joint, adam);
  for (int64_t i = 0; i < fast.numParams(); ++i) rebuilt.parameters()[i] = fast.parameters()[i];
  for (int64_t i = 0; i < fast.numEncoderParams(); ++i) rebuilt.priorParameters()[i] = fast.priorParameters()[i];
  rebuilt.parametersChanged();
  for (auto* e : {&fast, &rebuilt}) {
    e->loadBatch(data, nullptr, 0, data.rows);
    e->sampleNoise(3, 2, true);
    e->forwardBackward(Phase::Joint, 0, 0.005);
  }
  CHECK(std::memcmp(fast.gradients(), rebuilt.gradients(), size_t(fast.numParams()) * sizeof(float)) == 0,
        "Adam's bf16 weight copies differ from the rounded weights (training gradients)");
  fast.loadBatch(data, nullptr, 0, data.rows);
  rebuilt.loadBatch(data, nullptr, 0, data.rows);
  fast.forwardEval();
  rebuilt.forwardEval();
  std::vector<float> batch(fast.logits(), fast.logits() + data.rows * items);
  CHECK(std::memcmp(batch.data(), rebuilt.logits(), batch.size() * sizeof(float)) == 0, "Adam's bf16 copy differs from the rounded weights (logits)");
  std::vector<double> batchD(batch.begin(), batch.end());
  fast.loadBatch(data, nullptr, 3, 1);
  fast.forwardEval();
  const double err = normwiseError(fast.logits(), batchD.data() + 3 * items, items);
  CHECK(err < 1e-5, "one user alone (bf16 panels) against the batch: %g", err);
}

// Alternating training through the Engine: each phase changes only its own group, keeps its own Adam
// step count, and updatePrior copies the encoder.
// RecVAE's input layer gradient deferred into Adam (the training steps' path) against the plain gradient
// then Adam, bit for bit: encoder, joint and encoder steps on different batches, fp32 and, where the
// processor runs them, bf16 products.
static void recVaeDeferredInputGradientIsExact() {
  const RecVaeConfig cfg = agreementRecVaeConfig(211);
  Clicks clicks = randomClicks(90, 211, 0.04, 23);
  CsrView data = clicks.view(211);
  for (const bool bf16 : {false, true}) {
    if (bf16 && !cpu::bf16MatmulAvailable()) continue;
    cpu::RecVaeCpu<float> plain(cfg), fused(cfg);
    for (auto* e : {&plain, &fused}) {
      e->setThreads(2);
      if (bf16) e->setBf16Products(true);
      e->initialize(13);
    }
    OptimizerOptions o;
    o.learningRate = 0.002;
    const int64_t n = plain.numParams();
    const Phase phases[3] = {Phase::Encoder, Phase::Joint, Phase::Encoder};
    for (int step = 0; step < 3; ++step) {
      for (auto* e : {&plain, &fused}) {
        e->loadBatch(data, nullptr, step * 30, 30);
        e->sampleNoise(9, uint64_t(step), true);
      }
      const StepResult rp = plain.forwardBackward(phases[step], 0, 0.005, false), rf = fused.forwardBackward(phases[step], 0, 0.005, true);
      CHECK(rp.loss == rf.loss, "bf16 %d step %d: loss %.9g vs %.9g", int(bf16), step, rp.loss, rf.loss);
      if (step == 1) CHECK(std::memcmp(plain.gradients(), fused.gradients(), size_t(n) * sizeof(float)) == 0, "bf16 %d: gradients", int(bf16));
      plain.optimizerStep(phases[step], o);
      fused.optimizerStep(phases[step], o);
      if (step == 2)
        CHECK(std::memcmp(plain.gradients(), fused.gradients(), size_t(n) * sizeof(float)) == 0, "bf16 %d: gradients after the fused step", int(bf16));
      CHECK(std::memcmp(plain.parameters(), fused.parameters(), size_t(n) * sizeof(float)) == 0, "bf16 %d step %d: weights", int(bf16), step);
      CHECK(std::memcmp(plain.adamM().data(), fused.adamM().data(), size_t(n) * sizeof(float)) == 0 &&
                std::memcmp(plain.adamV().data(), fused.adamV().data(), size_t(n) * sizeof(float)) == 0,
            "bf16 %d step %d: Adam moments", int(bf16), step);
    }
  }
}

// A fused training step's input-layer gradient is still the step's gradient when read later, after the
// engine scored other users (their batch replaces the one it is formed from): getGradients after
// trainStep + scores equals the plain forward-backward's gradients of that step, bit for bit.
static void deferredGradientSurvivesScoring() {
  const int64_t items = 157;
  Clicks clicks = randomClicks(60, items, 0.05, 29);
  CsrView data = clicks.view(items);
  std::vector<int64_t> rows(30);
  for (int64_t i = 0; i < 30; ++i) rows[size_t(i)] = 2 * i;
  StepOptions opt;
  opt.beta = 0.2;
  opt.seed = 3;
  opt.step = 4;
  std::vector<float> scores(size_t(20 * items));
  {
    cpu::CpuEngine engine(tinyVae(items));
    cpu::MultVaeCpu<float> plain(tinyVae(items));
    engine.setThreads(2);
    plain.setThreads(2);
    engine.initialize(8);
    plain.initialize(8);
    engine.trainStep(data, rows.data(), 30, opt);  // fused: the input layer's gradient went into Adam
    engine.scores(data, 31, 20, scores.data());     // another batch loaded and scored
    std::vector<float> got(size_t(engine.numParams()));
    engine.getGradients(got.data());
    plain.loadBatch(data, rows.data(), 0, 30);
    plain.sampleNoise(opt.seed, opt.step);
    plain.forwardBackward(opt.beta, 0.0);
    CHECK(std::memcmp(got.data(), plain.gradients(), got.size() * sizeof(float)) == 0, "Mult-VAE: the step's gradients after scoring");
  }
  {
    const RecVaeConfig cfg = agreementRecVaeConfig(items);
    cpu::RecVaeEngine engine(cfg);
    cpu::RecVaeCpu<float> plain(cfg);
    engine.setThreads(2);
    plain.setThreads(2);
    engine.initialize(8);
    plain.initialize(8);
    opt.phase = Phase::Encoder;
    opt.gamma = 0.005;
    engine.trainStep(data, rows.data(), 30, opt);
    engine.scores(data, 31, 20, scores.data());
    std::vector<float> got(size_t(engine.numParams()));
    engine.getGradients(got.data());
    plain.loadBatch(data, rows.data(), 0, 30);
    plain.sampleNoise(opt.seed, opt.step, true);
    plain.forwardBackward(Phase::Encoder, opt.beta, opt.gamma);
    CHECK(std::memcmp(got.data(), plain.gradients(), got.size() * sizeof(float)) == 0, "RecVAE: the step's gradients after scoring");
  }
}

static void recVaePhases() {
  RecVaeConfig cfg;
  cfg.items = 40;
  cfg.hidden = 16;
  cfg.latent = 4;
  cpu::RecVaeEngine engine(cfg);
  engine.initialize(1);
  Clicks clicks = randomClicks(30, 40, 0.1, 2);
  CsrView data = clicks.view(40);
  const int64_t n = engine.numParams(), split = engine.model().numEncoderParams();
  std::vector<float> before(static_cast<size_t>(n)), after(static_cast<size_t>(n));
  engine.getParameters(before.data());
  StepOptions opt;
  opt.gamma = 0.005;
  opt.phase = Phase::Encoder;
  std::vector<int64_t> rows(30);
  for (int64_t i = 0; i < 30; ++i) rows[size_t(i)] = i;
  engine.trainStep(data, rows.data(), 30, opt);
  engine.getParameters(after.data());
  CHECK(std::equal(before.begin() + split, before.end(), after.begin() + split), "an encoder step changed the decoder");
  CHECK(!std::equal(before.begin(), before.begin() + split, after.begin()), "an encoder step left the encoder unchanged");
  opt.phase = Phase::Decoder;
  engine.trainStep(data, rows.data(), 30, opt);
  engine.trainStep(data, rows.data(), 30, opt);
  std::vector<float> third(static_cast<size_t>(n));
  engine.getParameters(third.data());
  CHECK(std::equal(after.begin(), after.begin() + split, third.begin()), "a decoder step changed the encoder");
  CHECK(engine.optimizerGroupSteps() == std::vector<int64_t>({1, 2}), "step counts %lld, %lld", (long long)engine.optimizerGroupSteps()[0],
        (long long)engine.optimizerGroupSteps()[1]);
  std::vector<float> prior(static_cast<size_t>(split));
  engine.getAuxiliary(prior.data());
  CHECK(!std::equal(prior.begin(), prior.end(), third.begin()), "the prior starts as its own encoder");
  engine.updatePrior();
  engine.getAuxiliary(prior.data());
  CHECK(std::equal(prior.begin(), prior.end(), third.begin()), "updatePrior did not copy the encoder");
}

// RecVAE's prior cache: three encoder passes over shuffled batches give the same losses and weights with
// the cache as without it, up to rounding (a row's prior computed in another batch may differ in the last
// bits); the second and third passes take every row from it; updatePrior, a write through
// priorParameters() and a row whose clicks changed are computed again.
static void recVaePriorCache() {
  RecVaeConfig cfg;
  cfg.items = 40;
  cfg.hidden = 16;
  cfg.latent = 4;
  cpu::RecVaeEngine cached(cfg), plain(cfg);
  cached.setThreads(2);
  plain.setThreads(2);
  cached.initialize(1);
  plain.initialize(1);
  plain.model().setPriorCacheLimit(0);
  Clicks clicks = randomClicks(30, 40, 0.2, 3);
  const CsrView data = clicks.view(40);
  StepOptions opt;
  opt.gamma = 0.005;
  opt.phase = Phase::Encoder;
  opt.seed = 5;
  uint64_t epoch = 0;
  // One encoder pass of 3 batches of 10 in a shuffled order, on both engines; the losses must agree.
  auto pass = [&]() {
    const std::vector<int64_t> rows = epochOrder(30, 7, epoch++, true);
    for (int64_t b = 0; b < 3; ++b) {
      opt.step = epoch * 3 + uint64_t(b);
      const double a = cached.trainStep(data, rows.data() + 10 * b, 10, opt).loss, p = plain.trainStep(data, rows.data() + 10 * b, 10, opt).loss;
      CHECK(std::fabs(a - p) <= 1e-6 * std::fabs(p), "pass %llu batch %lld: loss %.17g with the cache, %.17g without", (unsigned long long)epoch,
            (long long)b, a, p);
    }
  };
  const auto& model = cached.model();
  for (int p = 0; p < 3; ++p) pass();
  CHECK(model.priorCacheMisses() == 30 && model.priorCacheHits() == 60, "three passes: %lld rows computed, %lld from the cache (want 30, 60)",
        (long long)model.priorCacheMisses(), (long long)model.priorCacheHits());
  CHECK(plain.model().priorCacheHits() == 0, "a cache limited to 0 bytes was used");
  std::vector<float> a(static_cast<size_t>(cached.numParams())), b(a.size());
  cached.getParameters(a.data());
  plain.getParameters(b.data());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += double(a[i] - b[i]) * double(a[i] - b[i]), norm += double(b[i]) * double(b[i]);
  CHECK(std::sqrt(diff / norm) < 1e-6, "the weights differ with the cache: %g normwise", std::sqrt(diff / norm));
  cached.updatePrior();
  plain.updatePrior();
  pass();
  CHECK(model.priorCacheMisses() == 60, "after updatePrior: %lld rows computed (want 60)", (long long)model.priorCacheMisses());
  cached.model().priorParameters();  // may write: the cache is emptied
  pass();
  CHECK(model.priorCacheMisses() == 90, "after priorParameters(): %lld rows computed (want 90)", (long long)model.priorCacheMisses());
  pass();
  CHECK(model.priorCacheMisses() == 90, "an unchanged prior was computed again");
  // Row 0's clicks change (same row, same count): the batch holding it is computed again, the others not.
  clicks.indices[size_t(clicks.indptr[0])] = clicks.indices[size_t(clicks.indptr[0])] == 39 ? 38 : 39;
  pass();
  CHECK(model.priorCacheMisses() == 100 && model.priorCacheHits() == 60 + 30 + 20,
        "after a row changed: %lld computed, %lld from the cache (want 100, 110)", (long long)model.priorCacheMisses(),
        (long long)model.priorCacheHits());
}

// oneDNN's fp32 matmul (what gemm<float> runs on AVX-512 processors whose OpenBLAS kernels are AVX2 ones):
// every transpose, alpha and beta, leading dimensions wider than the matrices, against a double reference;
// more shapes than the per-thread primitive cache holds; the same call twice gives the same bits.
static void oneDnnFp32Products() {
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> u(-1, 1);
  int shapes = 0;
  for (int round = 0; round < 6; ++round)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float alpha : {1.0f, 0.5f})
          for (float beta : {0.0f, 1.0f, -0.25f}) {
            const int m = 37 + 3 * shapes % 11, n = 301 + round, k = 129, pad = 5;
            ++shapes;
            const int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            std::vector<float> A(size_t((ta ? k : m) * lda)), B(size_t((tb ? n : k) * ldb)), C(size_t(m * ldc));
            for (auto* v : {&A, &B, &C})
              for (auto& x : *v) x = u(gen);
            std::vector<double> want(C.size());
            for (int i = 0; i < m; ++i)
              for (int j = 0; j < ldc; ++j) {
                if (j >= n) {
                  want[size_t(i * ldc + j)] = C[size_t(i * ldc + j)];  // outside C: untouched
                  continue;
                }
                double acc = 0;
                for (int p = 0; p < k; ++p)
                  acc += double(ta ? A[size_t(p * lda + i)] : A[size_t(i * lda + p)]) * double(tb ? B[size_t(j * ldb + p)] : B[size_t(p * ldb + j)]);
                want[size_t(i * ldc + j)] = double(alpha) * acc + double(beta) * double(C[size_t(i * ldc + j)]);
              }
            std::vector<float> first = C, second = C;
            cpu::oneDnnSgemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, first.data(), ldc, 2);
            cpu::oneDnnSgemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, second.data(), ldc, 2);
            CHECK(first == second, "the same product twice gave different bits (ta %d tb %d alpha %g beta %g)", ta, tb, alpha, beta);
            double worst = 0;
            for (size_t i = 0; i < C.size(); ++i) worst = std::max(worst, std::fabs(double(first[i]) - want[i]) / (1 + std::fabs(want[i])));
            CHECK(worst < 1e-5, "ta %d tb %d alpha %g beta %g: error %.3g", ta, tb, alpha, beta, worst);
          }
  std::printf("     %d products (more than the 128-shape cache), fp32 products here: %s\n", shapes, cpu::fp32GemmDescription().c_str());
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a pipe (CI, qemu)
  run("gradients of Mult-VAE match central finite differences (double)", [] { gradientCheck(true, false); });
  run("gradients of Mult-DAE match central finite differences (double)", [] { gradientCheck(false, false); });
  run("gradients with weighted clicks match finite differences (double)", [] { gradientCheck(true, true); });
  run("sparse-batch forward equals the dense reference (Mult-VAE)", [] { denseReference(true); });
  run("sparse-batch forward equals the dense reference (Mult-DAE)", [] { denseReference(false); });
  run("each layer's backward pass matches central finite differences (dense, swish, LayerNorm, KL, composite prior)", [] { layerGradients(); });
  run("gradients of RecVAE (joint) match central finite differences (double)", [] { recVaeGradientCheck(Phase::Joint, 0.05, false); });
  run("gradients of RecVAE's encoder phase match finite differences (double, gamma * |x_u|)", [] { recVaeGradientCheck(Phase::Encoder, 0.05, true); });
  run("gradients of RecVAE's encoder phase match finite differences (double, fixed beta)", [] { recVaeGradientCheck(Phase::Encoder, 0, false); });
  run("gradients of RecVAE's decoder phase match finite differences (double)", [] { recVaeGradientCheck(Phase::Decoder, 0.05, false); });
  run("RecVAE phases train only their own group, with their own Adam step counts; updatePrior copies the encoder", [] { recVaePhases(); });
  run("RecVAE's prior cache: the same losses and weights as computing the prior; reused across passes; emptied when the prior or a row changes", [] { recVaePriorCache(); });
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
  // The dispatch reads CPUID itself (every compiler); GCC's own reading must agree on the targets whose
  // features it can name (a wrong bit would silently pick a narrower or an unsupported target).
  run("the SIMD targets' support read from CPUID agrees with GCC's __builtin_cpu_supports", [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                      __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("sse4.2") &&
                      __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("aes");
    const bool avx3 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw");
    const bool bf16 = avx3 && __builtin_cpu_supports("avx512bf16");
    for (const auto& t : cpu::simdTargets()) {
      const std::string name = t.name;
      if (name == "AVX2") CHECK(t.supported == avx2, "AVX2 support differs from GCC's reading");
      if (name == "AVX-512") CHECK(t.supported == avx3, "AVX-512 support differs from GCC's reading");
      if (name == "AVX-512+BF16") CHECK(t.supported == bf16, "AVX-512+BF16 support differs from GCC's reading");
    }
  });
#endif
#ifdef VAECF_HAVE_ONEDNN
  run("fp32 products through oneDNN agree with a double reference (transposes, alpha, beta, leading dimensions)", [] { oneDnnFp32Products(); });
#else
  std::printf("skip fp32 products through oneDNN (built without oneDNN; fp32 products: %s)\n", cpu::fp32GemmDescription().c_str());
#endif
  run("Adam step matches the PyTorch formula", [] { adamMatchesFormula(false); });
  run("AdamW step matches the PyTorch formula", [] { adamMatchesFormula(true); });
  run("epoch order is a seeded permutation", [] {
    auto a = epochOrder(1000, 42, 3, true), b = epochOrder(1000, 42, 3, true), c = epochOrder(1000, 42, 4, true);
    CHECK(a == b, "same seed and epoch must give the same order");
    CHECK(a != c, "another epoch must give another order");
    std::vector<int> seen(1000, 0);
    for (auto x : a) seen[x]++;
    for (auto s : seen) CHECK(s == 1, "not a permutation");
  });
  run("same seed and thread count give identical weights", [] {
    auto a = trainTwoEpochs(9, 2), b = trainTwoEpochs(9, 2), c = trainTwoEpochs(10, 2);
    CHECK(a == b, "two runs with the same seed differ");
    CHECK(a != c, "another seed gave the same weights");
  });
  run("a trained model re-initialised trains exactly as a fresh one (Adam's moments start from zero again)", [] {
    auto fresh = trainTwoEpochs(9, 2);
    auto again = trainTwoEpochs(9, 2, [](cpu::CpuEngine& e) {
      e.initialize(3);
      Clicks clicks = randomClicks(50, 40, 0.3, 8);
      CsrView data = clicks.view(40);
      TrainingCounters counters;
      EpochOptions eo;
      eo.batchSize = 10;
      trainEpoch(e, data, eo, counters, nullptr, nullptr);
    });
    CHECK(fresh == again, "re-initialising after training kept some state");
  });
  run("pipelined steps (a device backend's protocol): same results, in order, nothing left after a cancel", [] { pipelinedTrainer(); });
  run("beta schedule: linear to the cap, constant", [] {
    BetaSchedule s;
    s.cap = 0.2;
    s.totalSteps = 100;
    CHECK(s.at(0) == 0 && std::fabs(s.at(10) - 0.1) < 1e-15 && s.at(1000) == 0.2, "linear");
    s.kind = BetaSchedule::Kind::Constant;
    s.value = 0.5;
    CHECK(s.at(7) == 0.5, "constant");
  });
  // Every SIMD target this build has: the ones this processor runs are tested in turn (as Highway's own
  // tests do), the others are listed as skipped, never counted as passed.
  std::string ran, skipped;
  for (const auto& target : cpu::simdTargets()) {
    if (!target.supported) {
      std::printf("skip %s kernels (this processor does not run %s)\n", target.name.c_str(), target.name.c_str());
      skipped += (skipped.empty() ? "" : ", ") + target.name;
      continue;
    }
    cpu::forceSimdTarget(target.name);
    std::printf("     %s: %lld floats per vector\n", target.name.c_str(), (long long)(cpu::panelWidth() / 4));
    run((target.name + " kernels agree with a double reference (1e-5) and the scalar code").c_str(), [] { kernelsAgree(); });
    run((target.name + " float engine agrees with the double engine (Mult-VAE)").c_str(), [] { floatEngineAgrees(true); });
    run((target.name + " float engine agrees with the double engine (Mult-DAE)").c_str(), [] { floatEngineAgrees(false); });
    run((target.name + " float engine agrees with the double engine (RecVAE)").c_str(), [] { recVaeFloatAgrees(); });
    run((target.name + " row top-k (its vector scan) equals a full sort").c_str(), [] { rowTopKMatchesSort<float>(); });
    run((target.name + " RecVAE's composite-prior KL kernel agrees with the double loop").c_str(), [] { compositePriorKlKernelAgrees(); });
    run((target.name + " the input layer's gradient fused into Adam equals the gradient then Adam, bit for bit (Mult-VAE, RecVAE)").c_str(), [] {
      deferredInputGradientIsExact();
      recVaeDeferredInputGradientIsExact();
    });
    if (cpu::bf16MatmulAvailable())
      run((target.name + " RecVAE's bf16 products agree with the double engine within bf16 rounding").c_str(), [] { recVaeBf16Products(); });
    else
      std::printf("skip %s RecVAE bf16 products (%s)\n", target.name.c_str(), cpu::bf16MatmulDescription().c_str());
    ran += (ran.empty() ? "" : ", ") + target.name;
  }
  cpu::forceSimdTarget("");
  std::printf("     SIMD targets tested: %s; skipped (not run by this processor): %s; default here: %s\n", ran.c_str(),
              skipped.empty() ? "none" : skipped.c_str(), cpu::simdTarget().c_str());
  run(("float engine agrees with the double engine where the products are large enough for the other gemm path (fp32 products: " +
       cpu::fp32GemmDescription() + ")").c_str(),
      [] {
        floatEngineAgrees(true, 1201, 96, 64);
        floatEngineAgrees(false, 1201, 96, 64);
      });
  run("users with no clicks score (no copy from a null pointer: the sanitizer build checks it)", [] {
    ModelConfig cfg = smallConfig(true, 9);
    cpu::MultVaeCpu<float> model(cfg);
    model.initialize(2);
    const int64_t indptr[3] = {0, 0, 0};
    CsrView empty{2, 9, indptr, nullptr, nullptr};
    model.loadBatch(empty, nullptr, 0, 2);
    model.forwardEval();
    for (int64_t i = 0; i < 2 * 9; ++i) CHECK(std::isfinite(model.logits()[i]), "logit %lld is not finite", (long long)i);
  });
  run("row top-k equals a full sort (ties by the smaller index, -inf never chosen, k beyond the row; float and double)", [] {
    rowTopKMatchesSort<float>();
    rowTopKMatchesSort<double>();
  });
  run("a fused step's gradients read after scoring other users are the step's gradients (Mult-VAE, RecVAE)", [] { deferredGradientSurvivesScoring(); });
  run("bad input is rejected with a message", [] {
    Clicks c = randomClicks(3, 5, 0.5, 1);
    c.indices[1] = 9;
    bool threw = false;
    try {
      validateCsr(c.view(5), "train", false);
    } catch (const InvalidArgument& e) {
      threw = std::string(e.what()).find("item index 9") != std::string::npos;
    }
    CHECK(threw, "out-of-range item not reported");
    ModelConfig bad = smallConfig(true, 5);
    bad.decoderDims.back() = 6;
    threw = false;
    try {
      cpu::MultVaeCpu<float> m(bad);
    } catch (const InvalidArgument& e) {
      threw = std::string(e.what()).find("n_items") != std::string::npos;
    }
    CHECK(threw, "mismatched dims not reported");
  });
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
