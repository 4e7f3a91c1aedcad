// The N-API binding: the only file that includes napi.h. Heavy calls run in AsyncWorkers and return
// Promises; per-batch progress goes through a thread-safe function; cancel() sets a flag the trainer
// checks between batches. Native exceptions become JavaScript errors with a `code`.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/trainer.h"
#include "cpu/ease_cpu.h"
#include "cpu/kernels.h"
#include "cpu/mult_vae_cpu.h"
#include "cpu/recvae_cpu.h"
#ifdef VAECF_HAVE_CUDA
#include "cuda/mult_vae_cuda.h"
#include "cuda/recvae_cuda.h"
#endif

namespace vaecf::binding {

// ---------- helpers ----------

struct NativeError {
  std::string message;
  std::string code;
};

static Napi::Error makeError(Napi::Env env, const NativeError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  if (e.code == "ABORT_ERR") err.Set("name", Napi::String::New(env, "AbortError"));
  return err;
}

static NativeError classify(const std::exception& e) {
  if (dynamic_cast<const Cancelled*>(&e)) return {e.what(), "ABORT_ERR"};
  if (dynamic_cast<const InvalidArgument*>(&e)) return {e.what(), "ERR_VAECF_INVALID_ARGUMENT"};
  if (dynamic_cast<const std::bad_alloc*>(&e)) return {"out of memory in the native engine", "ERR_VAECF_OUT_OF_MEMORY"};
  return {e.what(), "ERR_VAECF_NATIVE"};
}

static void throwTypeError(Napi::Env env, const std::string& msg) {
  Napi::TypeError err = Napi::TypeError::New(env, msg);
  err.Set("code", Napi::String::New(env, "ERR_VAECF_INVALID_ARGUMENT"));
  throw err;
}

static double getNumber(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throwTypeError(o.Env(), std::string("expected a number for ") + key);
  return v.As<Napi::Number>().DoubleValue();
}

static std::vector<int64_t> getIntArray(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throwTypeError(o.Env(), std::string("expected an array of integers for ") + key);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  return out;
}
static std::vector<double> getDoubleArray(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throwTypeError(o.Env(), std::string("expected an array of numbers for ") + key);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
  return out;
}

// A CSR matrix passed from JavaScript ({rows, cols, indptr: Int32Array, indices: Int32Array,
// values?: Float32Array}); holds references so the arrays outlive an async call.
class JsCsr {
 public:
  JsCsr(const Napi::Value& value, const char* what) {
    Napi::Env env = value.Env();
    if (!value.IsObject()) throwTypeError(env, std::string(what) + ": expected a CSR matrix object");
    Napi::Object o = value.As<Napi::Object>();
    const double rows = getNumber(o, "rows", -1), cols = getNumber(o, "cols", -1);
    Napi::Value ip = o.Get("indptr"), ix = o.Get("indices"), vs = o.Get("values");
    if (!ip.IsTypedArray() || ip.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throwTypeError(env, std::string(what) + ".indptr: expected an Int32Array");
    if (!ix.IsTypedArray() || ix.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throwTypeError(env, std::string(what) + ".indices: expected an Int32Array");
    auto indptr = ip.As<Napi::Int32Array>();
    auto indices = ix.As<Napi::Int32Array>();
    if (rows < 0 || double(int64_t(rows)) != rows || indptr.ElementLength() != size_t(rows) + 1)
      throwTypeError(env, std::string(what) + ": expected indptr of length rows + 1");
    indptr64_.resize(indptr.ElementLength());
    for (size_t i = 0; i < indptr64_.size(); ++i) indptr64_[i] = indptr[i];
    if (indptr64_.back() > int64_t(indices.ElementLength()))
      throwTypeError(env, std::string(what) + ": indptr[rows] exceeds the length of indices");
    refs_.push_back(Napi::Persistent(indices.As<Napi::Object>()));
    view_.rows = int64_t(rows);
    view_.cols = int64_t(cols);
    view_.indptr = indptr64_.data();
    view_.indices = indices.Data();
    if (!vs.IsUndefined() && !vs.IsNull()) {
      if (!vs.IsTypedArray() || vs.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throwTypeError(env, std::string(what) + ".values: expected a Float32Array or undefined");
      auto values = vs.As<Napi::Float32Array>();
      if (values.ElementLength() != indices.ElementLength())
        throwTypeError(env, std::string(what) + ": values and indices must have the same length");
      refs_.push_back(Napi::Persistent(values.As<Napi::Object>()));
      view_.values = values.Data();
    }
  }
  const CsrView& view() const { return view_; }
  void setGeneration(uint64_t generation) { view_.generation = generation; }

 private:
  std::vector<int64_t> indptr64_;
  std::vector<Napi::ObjectReference> refs_;
  CsrView view_;
};

// ---------- the model object ----------

// {encoderDims, decoderDims, variational, encoderDropout, decoderDropout} (Mult-VAE / Mult-DAE).
static ModelConfig modelConfigOf(const Napi::Object& o) {
  ModelConfig cfg;
  cfg.encoderDims = getIntArray(o, "encoderDims");
  cfg.decoderDims = getIntArray(o, "decoderDims");
  cfg.variational = o.Get("variational").ToBoolean();
  cfg.encoderDropout = getDoubleArray(o, "encoderDropout");
  cfg.decoderDropout = getDoubleArray(o, "decoderDropout");
  return cfg;
}

// {items, hidden, latent, layers, layerNormEps, inputDropout, mixtureWeights, wideLogVar} (RecVAE).
static RecVaeConfig recVaeConfigOf(const Napi::Object& r) {
  RecVaeConfig cfg;
  cfg.items = int64_t(getNumber(r, "items", 0));
  cfg.hidden = int64_t(getNumber(r, "hidden", 600));
  cfg.latent = int64_t(getNumber(r, "latent", 200));
  cfg.layers = int64_t(getNumber(r, "layers", 5));
  cfg.layerNormEps = getNumber(r, "layerNormEps", 0.1);
  cfg.inputDropout = getNumber(r, "inputDropout", 0.5);
  cfg.wideLogVar = getNumber(r, "wideLogVar", 10);
  if (!r.Get("mixtureWeights").IsUndefined()) {
    const std::vector<double> w = getDoubleArray(r, "mixtureWeights");
    if (w.size() != 3) throwTypeError(r.Env(), "recvae.mixtureWeights: expected three weights");
    for (int k = 0; k < 3; ++k) cfg.mixtureWeights[k] = w[size_t(k)];
  }
  return cfg;
}

// parameterLayout(config) -> [{name, shape, offset}]: the named tensors of the flat parameter vector of
// the model `config` describes (the NativeModel constructor's argument), computed without allocating it.
static Napi::Value ParameterLayoutOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throwTypeError(env, "parameterLayout: expected a config object");
  const Napi::Object o = info[0].As<Napi::Object>();
  std::vector<TensorSpec> specs;
  try {
    specs = o.Get("recvae").IsObject() ? cpu::parameterTensors(recVaeConfigOf(o.Get("recvae").As<Napi::Object>()))
                                       : parameterTensors(modelConfigOf(o));
  } catch (const std::exception& e) {
    throw makeError(env, classify(e));
  }
  Napi::Array out = Napi::Array::New(env, specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", specs[i].name);
    Napi::Array shape = Napi::Array::New(env, specs[i].shape.size());
    for (size_t d = 0; d < specs[i].shape.size(); ++d) shape.Set(uint32_t(d), double(specs[i].shape[d]));
    t.Set("shape", shape);
    t.Set("offset", double(specs[i].offset));
    out.Set(uint32_t(i), t);
  }
  return out;
}

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("initialize", &Model::Initialize),
                        InstanceMethod("trainEpoch", &Model::TrainEpoch),
                        InstanceMethod("recommend", &Model::Recommend),
                        InstanceMethod("recommendSync", &Model::RecommendSync),
                        InstanceMethod("scores", &Model::Scores),
                        InstanceMethod("getParameters", &Model::GetParameters),
                        InstanceMethod("setParameters", &Model::SetParameters),
                        InstanceMethod("getOptimizerState", &Model::GetOptimizerState),
                        InstanceMethod("setOptimizerState", &Model::SetOptimizerState),
                        InstanceMethod("getAuxiliary", &Model::GetAuxiliary),
                        InstanceMethod("setAuxiliary", &Model::SetAuxiliary),
                        InstanceMethod("updatePrior", &Model::UpdatePrior),
                        InstanceMethod("snapshotParameters", &Model::SnapshotParameters),
                        InstanceMethod("restoreSnapshot", &Model::RestoreSnapshot),
                        InstanceMethod("exportState", &Model::ExportState),
                        InstanceMethod("importState", &Model::ImportState),
                        InstanceMethod("setThreads", &Model::SetThreads),
                        InstanceMethod("cancel", &Model::Cancel),
                        InstanceMethod("dispose", &Model::Dispose),
                        InstanceAccessor("numParams", &Model::NumParams, nullptr),
                        InstanceAccessor("backend", &Model::Backend, nullptr)});
  }

  explicit Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throwTypeError(env, "NativeModel: expected a config object");
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Get("recvae").IsObject()) {
      constructRecVae(env, o);
      return;
    }
    const ModelConfig cfg = modelConfigOf(o);
    const std::string device = o.Get("device").IsString() ? o.Get("device").As<Napi::String>().Utf8Value() : "cpu";
    if (device != "cpu" && device != "cuda") throwTypeError(env, "device: expected 'cpu' or 'cuda', got '" + device + "'");
    const std::string precision = o.Get("precision").IsString() ? o.Get("precision").As<Napi::String>().Utf8Value() : "fp32";
    if (precision != "fp32" && precision != "bf16" && precision != "tf32")
      throwTypeError(env, "precision: expected 'fp32', 'bf16' or 'tf32', got '" + precision + "'");
    try {
      if (device == "cuda") {
#ifdef VAECF_HAVE_CUDA
        cuda::CudaOptions options;
        options.precision = precision == "bf16" ? cuda::CudaPrecision::Bf16
                            : precision == "tf32" ? cuda::CudaPrecision::Tf32
                                                  : cuda::CudaPrecision::Fp32;
        engine_ = std::make_unique<cuda::CudaEngine>(cfg, options);
#else
        throw InvalidArgument("this build of vaecf has no CUDA backend (build the CUDA flavour: npm run build:cuda)");
#endif
      } else {
        if (precision == "tf32") throw InvalidArgument("precision 'tf32' is a CUDA precision (TF32 tensor cores); on the CPU use 'fp32' or 'bf16'");
        auto cpuEngine = std::make_unique<cpu::CpuEngine>(cfg);
        cpuEngine->model().setBf16Output(precision == "bf16");
        engine_ = std::move(cpuEngine);
      }
    } catch (const std::exception& e) {
      throw makeError(env, classify(e));
    }
    engine_->setThreads(int(getNumber(o, "threads", 1)));
    externalBytes_ = int64_t(engine_->numParams()) * 4;  // parameters (gradients and moments come with training)
    Napi::MemoryManagement::AdjustExternalMemory(env, externalBytes_);
  }

  ~Model() override { release(); }

  // RecVAE ({recvae: {items, hidden, latent, layers, layerNormEps, inputDropout, mixtureWeights, wideLogVar}}).
  void constructRecVae(Napi::Env env, const Napi::Object& o) {
    const RecVaeConfig cfg = recVaeConfigOf(o.Get("recvae").As<Napi::Object>());
    const std::string device = o.Get("device").IsString() ? o.Get("device").As<Napi::String>().Utf8Value() : "cpu";
    const std::string precision = o.Get("precision").IsString() ? o.Get("precision").As<Napi::String>().Utf8Value() : "fp32";
    try {
      if (device != "cpu" && device != "cuda") throw InvalidArgument("device: expected 'cpu' or 'cuda', got '" + device + "'");
      if (precision != "fp32" && precision != "bf16")
        throw InvalidArgument("RecVAE precision: expected 'fp32' or 'bf16' (the decoder's products, CPU engine), got '" + precision + "'");
      if (device == "cuda") {
#ifdef VAECF_HAVE_CUDA
        if (precision != "fp32") throw InvalidArgument("RecVAE's CUDA engine runs in fp32 only in this version (precision 'fp32')");
        engine_ = std::make_unique<cuda::RecVaeCudaEngine>(cfg);
#else
        throw InvalidArgument("this build of vaecf has no CUDA backend (build the CUDA flavour: npm run build:cuda)");
#endif
      } else {
        auto cpuEngine = std::make_unique<cpu::RecVaeEngine>(cfg);
        cpuEngine->model().setBf16Products(precision == "bf16");
        engine_ = std::move(cpuEngine);
      }
    } catch (const std::exception& e) {
      throw makeError(env, classify(e));
    }
    engine_->setThreads(int(getNumber(o, "threads", 1)));
    externalBytes_ = (engine_->numParams() + engine_->numAuxiliary()) * 4;
    Napi::MemoryManagement::AdjustExternalMemory(env, externalBytes_);
  }

  Engine& engine(Napi::Env env) {
    if (!engine_) {
      Napi::Error err = Napi::Error::New(env, "this model has been disposed");
      err.Set("code", Napi::String::New(env, "ERR_VAECF_DISPOSED"));
      throw err;
    }
    if (busy_) {
      Napi::Error err = Napi::Error::New(env, "the model is busy with another call (training or scoring); await it first");
      err.Set("code", Napi::String::New(env, "ERR_VAECF_BUSY"));
      throw err;
    }
    return *engine_;
  }
  std::atomic<bool> busy_{false};
  std::atomic<bool> cancel_{false};
  bool disposeRequested_ = false;
  // The generation id of the last training matrix whose contents were validated (0: none): one
  // validation per fit() instead of one per epoch. Written by the (single) training worker.
  uint64_t validatedGeneration_ = 0;

  void finishAsync(Napi::Env env) {
    busy_ = false;
    if (disposeRequested_) releaseWithEnv(env);
  }

 private:
  void release() {
    engine_.reset();
    std::vector<float>().swap(snapshot_);
  }
  void releaseWithEnv(Napi::Env env) {
    if (engine_) {
      release();
      Napi::MemoryManagement::AdjustExternalMemory(env, -externalBytes_);
      externalBytes_ = 0;
    }
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(engine(info.Env()).numParams()));
  }
  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), engine_ ? engine_->backendName() : "disposed");
  }
  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    engine(info.Env()).setThreads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    cancel_ = true;
    return info.Env().Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_) {
      disposeRequested_ = true;
      cancel_ = true;
    } else {
      releaseWithEnv(info.Env());
    }
    return info.Env().Undefined();
  }

  Napi::Value Initialize(const Napi::CallbackInfo& info);
  Napi::Value TrainEpoch(const Napi::CallbackInfo& info);
  Napi::Value Recommend(const Napi::CallbackInfo& info);
  Napi::Value RecommendSync(const Napi::CallbackInfo& info);

  Napi::Value Scores(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    JsCsr csr(info[0], "scoreRows input");
    const int64_t first = info[1].As<Napi::Number>().Int64Value(), m = info[2].As<Napi::Number>().Int64Value();
    if (first < 0 || m < 0 || first + m > csr.view().rows) throwTypeError(env, "scores: row range out of bounds");
    try {
      validateCsr(csr.view(), "scoreRows input", true);
      auto out = Napi::Float32Array::New(env, size_t(m * e.config().numItems()));
      e.scores(csr.view(), first, m, out.Data());
      return out;
    } catch (const std::exception& ex) {
      throw makeError(env, classify(ex));
    }
  }
  Napi::Value GetParameters(const Napi::CallbackInfo& info) {
    Engine& e = engine(info.Env());
    auto out = Napi::Float32Array::New(info.Env(), size_t(e.numParams()));
    e.getParameters(out.Data());
    return out;
  }
  Napi::Value SetParameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throwTypeError(env, "setParameters: expected a Float32Array");
    auto a = info[0].As<Napi::Float32Array>();
    if (int64_t(a.ElementLength()) != e.numParams())
      throwTypeError(env, "setParameters: expected " + std::to_string(e.numParams()) + " values, got " +
                              std::to_string(a.ElementLength()));
    e.setParameters(a.Data());
    return env.Undefined();
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    auto m = Napi::Float32Array::New(env, size_t(e.numParams()));
    auto v = Napi::Float32Array::New(env, size_t(e.numParams()));
    int64_t t = 0;
    e.getOptimizerState(m.Data(), v.Data(), &t);
    Napi::Object o = Napi::Object::New(env);
    o.Set("m", m);
    o.Set("v", v);
    o.Set("t", Napi::Number::New(env, double(t)));
    const std::vector<int64_t> groups = e.optimizerGroupSteps();
    if (!groups.empty()) {
      Napi::Array a = Napi::Array::New(env, groups.size());
      for (size_t i = 0; i < groups.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, double(groups[i])));
      o.Set("groupSteps", a);
    }
    return o;
  }
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    Napi::Object o = info[0].As<Napi::Object>();
    auto m = o.Get("m").As<Napi::Float32Array>();
    auto v = o.Get("v").As<Napi::Float32Array>();
    if (int64_t(m.ElementLength()) != e.numParams() || int64_t(v.ElementLength()) != e.numParams())
      throwTypeError(env, "setOptimizerState: expected moments of " + std::to_string(e.numParams()) + " values");
    try {
      e.setOptimizerState(m.Data(), v.Data(), int64_t(getNumber(o, "t", 0)));
      if (!o.Get("groupSteps").IsUndefined()) e.setOptimizerGroupSteps(getIntArray(o, "groupSteps"));
    } catch (const std::exception& ex) {
      throw makeError(env, classify(ex));
    }
    return env.Undefined();
  }
  // Untrained state saved with the model (RecVAE: the prior's encoder); an empty array for Mult-VAE.
  Napi::Value GetAuxiliary(const Napi::CallbackInfo& info) {
    Engine& e = engine(info.Env());
    auto out = Napi::Float32Array::New(info.Env(), size_t(e.numAuxiliary()));
    e.getAuxiliary(out.Data());
    return out;
  }
  Napi::Value SetAuxiliary(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throwTypeError(env, "setAuxiliary: expected a Float32Array");
    auto a = info[0].As<Napi::Float32Array>();
    if (int64_t(a.ElementLength()) != e.numAuxiliary())
      throwTypeError(env, "setAuxiliary: expected " + std::to_string(e.numAuxiliary()) + " values, got " + std::to_string(a.ElementLength()));
    e.setAuxiliary(a.Data());
    return env.Undefined();
  }
  Napi::Value UpdatePrior(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    try {
      e.updatePrior();
    } catch (const std::exception& ex) {
      throw makeError(env, classify(ex));
    }
    return env.Undefined();
  }

  // A copy of the parameters kept in native memory (the best validation weights during training): taking
  // it (on a worker thread) and restoring it copy nothing through JavaScript; exportState copies it out
  // only to save it.
  Napi::Value SnapshotParameters(const Napi::CallbackInfo& info);
  Napi::Value RestoreSnapshot(const Napi::CallbackInfo& info);
  // Everything a model file holds, copied out (exportState) or in (importState) on a worker thread: the
  // arrays are allocated on the JavaScript thread (lazily zeroed pages) and filled off it, so saving or
  // loading a large model does not hold the event loop.
  Napi::Value ExportState(const Napi::CallbackInfo& info);
  Napi::Value ImportState(const Napi::CallbackInfo& info);
  void adjustExternal(Napi::Env env, int64_t bytes) {
    externalBytes_ += bytes;
    Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  }

  std::unique_ptr<Engine> engine_;
  int64_t externalBytes_ = 0;
  std::vector<float> snapshot_;
};

// A promise-returning async worker: run() on a worker thread with every exception captured (never a
// crash), result() or the classified error on the JS thread, done() on the JS thread either way.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void run() = 0;
  virtual Napi::Value result(Napi::Env env) = 0;
  virtual void done(Napi::Env) {}
  void Execute() override {
    try {
      run();
    } catch (const std::exception& e) {
      error_ = classify(e);
      SetError(error_.message);
    } catch (...) {
      error_ = {"unknown native error", "ERR_VAECF_NATIVE"};
      SetError(error_.message);
    }
  }
  void OnOK() override {
    done(Env());
    deferred_.Resolve(result(Env()));
  }
  void OnError(const Napi::Error&) override {
    done(Env());
    deferred_.Reject(makeError(Env(), error_).Value());
  }
  const Napi::Promise::Deferred& deferred() const { return deferred_; }
  const NativeError& error() const { return error_; }

 private:
  Napi::Promise::Deferred deferred_;
  NativeError error_;
};

// A worker on a model: keeps it alive and marks it busy until done.
class ModelWorker : public PromiseWorker {
 public:
  ModelWorker(Napi::Env env, Model* model) : PromiseWorker(env), model_(model) {
    modelRef_ = Napi::Persistent(model->Value());
    model_->busy_ = true;
    model_->cancel_ = false;
  }

 protected:
  void done(Napi::Env env) override { model_->finishAsync(env); }
  Model* model_;
  Napi::ObjectReference modelRef_;
};

class InitializeWorker : public ModelWorker {
 public:
  InitializeWorker(Napi::Env env, Model* model, Engine& engine, uint64_t seed)
      : ModelWorker(env, model), engine_(engine), seed_(seed) {}
  void run() override { engine_.initialize(seed_); }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  Engine& engine_;
  uint64_t seed_;
};

Napi::Value Model::Initialize(const Napi::CallbackInfo& info) {
  Engine& e = engine(info.Env());
  const double seed = info[0].As<Napi::Number>().DoubleValue();
  auto* w = new InitializeWorker(info.Env(), this, e, uint64_t(seed));
  w->Queue();
  return w->promise();
}

static Napi::Object epochResult(Napi::Env env, const EpochStats& stats, const TrainingCounters& counters) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", stats.loss);
  o.Set("nll", stats.nll);
  o.Set("kl", stats.kl);
  o.Set("beta", stats.beta);
  o.Set("batches", double(stats.batches));
  o.Set("step", double(counters.step));
  o.Set("annealCount", double(counters.annealCount));
  return o;
}

// How an epoch with batch events settles: through the batch events' own queue, after the last of them.
// The worker's completion (OnOK / OnError) and the thread-safe function are separate libuv signals with
// no order between them; a message queued behind the batch events is delivered after every one of them,
// so the epoch's promise never settles before its last batch event has run.
struct EpochSettlement {
  Napi::Promise::Deferred deferred;
  Model* model;
  Napi::ObjectReference modelRef;  // keeps the model alive until the promise settles
  bool ok;
  EpochStats stats;
  TrainingCounters counters;
  NativeError error;
  void settle(Napi::Env env) {
    model->finishAsync(env);  // not busy from here on: the caller may use the model when the promise settles
    if (ok)
      deferred.Resolve(epochResult(env, stats, counters));
    else
      deferred.Reject(makeError(env, error).Value());
  }
};

class TrainEpochWorker : public ModelWorker {
 public:
  TrainEpochWorker(Napi::Env env, Model* model, Engine& engine, std::unique_ptr<JsCsr> data, EpochOptions options,
                   TrainingCounters counters, Napi::Function onBatch)
      : ModelWorker(env, model), engine_(engine), data_(std::move(data)), options_(options), counters_(counters) {
    if (!onBatch.IsEmpty()) {
      progress_ = Napi::ThreadSafeFunction::New(env, onBatch, "vaecf.onBatch", 0, 1);
      hasProgress_ = true;
    }
  }
  ~TrainEpochWorker() override {
    if (hasProgress_) progress_.Release();
  }
  void run() override {
    // The contents are validated once per generation (one fit() in the TypeScript API), not per epoch.
    const uint64_t generation = data_->view().generation;
    if (generation == 0 || generation != model_->validatedGeneration_) {
      validateCsr(data_->view(), dataName_.c_str(), false);
      model_->validatedGeneration_ = generation;
    }
    std::function<void(const BatchStats&)> cb;
    if (hasProgress_)
      cb = [this](const BatchStats& s) {
        auto* copy = new BatchStats(s);
        const napi_status st = progress_.NonBlockingCall(copy, [](Napi::Env env, Napi::Function fn, BatchStats* b) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("batch", double(b->batch));
          o.Set("batches", double(b->batches));
          o.Set("loss", b->loss);
          o.Set("nll", b->nll);
          o.Set("kl", b->kl);
          o.Set("beta", b->beta);
          delete b;
          fn.Call({o});
        });
        if (st != napi_ok) delete copy;
      };
    stats_ = trainEpoch(engine_, data_->view(), options_, counters_, cb, &model_->cancel_);
  }
  Napi::Value result(Napi::Env env) override { return epochResult(env, stats_, counters_); }
  void OnOK() override { settleAfterBatches(true); }
  void OnError(const Napi::Error& e) override { settleAfterBatches(false, e); }
  void setDataName(std::string name) { dataName_ = std::move(name); }

 private:
  void settleAfterBatches(bool ok, const Napi::Error& e = Napi::Error()) {
    if (!hasProgress_) {
      if (ok)
        ModelWorker::OnOK();
      else
        ModelWorker::OnError(e);
      return;
    }
    auto* s = new EpochSettlement{deferred(), model_, std::move(modelRef_), ok, stats_, counters_, error()};
    const napi_status st = progress_.NonBlockingCall(s, [](Napi::Env env, Napi::Function, EpochSettlement* x) {
      if (env != nullptr) x->settle(env);
      delete x;
    });
    if (st != napi_ok) {  // the queue is closing (the environment is shutting down): settle here
      s->settle(Env());
      delete s;
    }
  }

  Engine& engine_;
  std::unique_ptr<JsCsr> data_;
  std::string dataName_ = "training matrix";
  EpochOptions options_;
  TrainingCounters counters_;
  EpochStats stats_;
  Napi::ThreadSafeFunction progress_;
  bool hasProgress_ = false;
};

Napi::Value Model::TrainEpoch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  if (!info[1].IsObject()) throwTypeError(env, "trainEpoch: expected an options object");
  Napi::Object o = info[1].As<Napi::Object>();
  const std::string dataName = o.Get("dataName").IsString() ? o.Get("dataName").As<Napi::String>().Utf8Value() : "training matrix";
  auto data = std::make_unique<JsCsr>(info[0], dataName.c_str());
  data->setGeneration(uint64_t(getNumber(o, "dataGeneration", 0)));
  EpochOptions eo;
  eo.batchSize = int64_t(getNumber(o, "batchSize", 500));
  eo.seed = uint64_t(getNumber(o, "seed", 0));
  eo.epoch = uint64_t(getNumber(o, "epoch", 0));
  eo.shuffle = o.Get("shuffle").IsUndefined() ? true : o.Get("shuffle").ToBoolean().Value();
  eo.l2 = getNumber(o, "l2", 0);
  const std::string phase = o.Get("phase").IsString() ? o.Get("phase").As<Napi::String>().Utf8Value() : "joint";
  if (phase != "joint" && phase != "encoder" && phase != "decoder")
    throwTypeError(env, "trainEpoch: phase must be 'joint', 'encoder' or 'decoder', got '" + phase + "'");
  eo.phase = phase == "encoder" ? Phase::Encoder : phase == "decoder" ? Phase::Decoder : Phase::Joint;
  eo.gamma = getNumber(o, "gamma", 0);
  const std::string betaKind = o.Get("betaKind").IsString() ? o.Get("betaKind").As<Napi::String>().Utf8Value() : "linear";
  eo.beta.kind = betaKind == "constant" ? BetaSchedule::Kind::Constant : BetaSchedule::Kind::Linear;
  eo.beta.cap = getNumber(o, "betaCap", 0.2);
  eo.beta.totalSteps = getNumber(o, "betaTotalSteps", 200000);
  eo.beta.value = getNumber(o, "betaValue", 0);
  eo.optimizer.learningRate = getNumber(o, "learningRate", 1e-3);
  eo.optimizer.beta1 = getNumber(o, "adamBeta1", 0.9);
  eo.optimizer.beta2 = getNumber(o, "adamBeta2", 0.999);
  eo.optimizer.epsilon = getNumber(o, "adamEpsilon", 1e-8);
  eo.optimizer.weightDecay = getNumber(o, "weightDecay", 0);
  eo.optimizer.decoupled = o.Get("decoupledWeightDecay").ToBoolean();
  TrainingCounters counters;
  counters.step = uint64_t(getNumber(o, "step", 0));
  counters.annealCount = uint64_t(getNumber(o, "annealCount", 0));
  Napi::Function onBatch;
  if (info.Length() > 2 && info[2].IsFunction()) onBatch = info[2].As<Napi::Function>();
  auto* w = new TrainEpochWorker(env, this, e, std::move(data), eo, counters, onBatch);
  w->setDataName(dataName);
  w->Queue();
  return w->promise();
}

// One top-k request: options read on the JS thread, the scoring anywhere, the answer built on the JS thread.
struct RecommendRequest {
  int64_t k = 10;
  bool excludeSeen = true;
  int64_t batchSize = 1000;
  std::vector<uint8_t> candidates;  // empty: every item
  std::vector<int32_t> items;
  std::vector<float> scores;

  static RecommendRequest parse(const Napi::Value& value, int64_t nItems) {
    Napi::Env env = value.Env();
    if (!value.IsObject()) throwTypeError(env, "recommend: expected an options object");
    Napi::Object o = value.As<Napi::Object>();
    RecommendRequest r;
    r.k = int64_t(getNumber(o, "k", 100));
    r.batchSize = int64_t(getNumber(o, "batchSize", 1000));
    if (r.k <= 0) throwTypeError(env, "recommend: expected k >= 1");
    if (r.batchSize <= 0) throwTypeError(env, "recommend: expected batchSize >= 1");
    r.excludeSeen = o.Get("excludeSeen").IsUndefined() ? true : o.Get("excludeSeen").ToBoolean().Value();
    Napi::Value c = o.Get("candidates");
    if (!c.IsUndefined() && !c.IsNull()) {
      if (!c.IsTypedArray() || c.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throwTypeError(env, "recommend: candidates must be a Uint8Array with one flag per item");
      auto mask = c.As<Napi::Uint8Array>();
      if (int64_t(mask.ElementLength()) != nItems)
        throwTypeError(env, "recommend: candidates must have " + std::to_string(nItems) + " flags, got " + std::to_string(mask.ElementLength()));
      r.candidates.assign(mask.Data(), mask.Data() + mask.ElementLength());
    }
    return r;
  }
  void run(Engine& engine, const CsrView& v, const std::atomic<bool>* cancel) {
    validateCsr(v, "recommend input", true);
    items.assign(size_t(v.rows * k), -1);
    scores.assign(size_t(v.rows * k), 0.0f);
    for (int64_t first = 0; first < v.rows; first += batchSize) {
      if (cancel && cancel->load()) throw Cancelled();
      const int64_t m = std::min(batchSize, v.rows - first);
      engine.recommend(v, first, m, k, excludeSeen, candidates.empty() ? nullptr : candidates.data(), items.data() + first * k,
                       scores.data() + first * k);
    }
  }
  Napi::Value result(Napi::Env env) const {
    auto a = Napi::Int32Array::New(env, items.size());
    auto b = Napi::Float32Array::New(env, scores.size());
    std::copy(items.begin(), items.end(), a.Data());
    std::copy(scores.begin(), scores.end(), b.Data());
    Napi::Object o = Napi::Object::New(env);
    o.Set("items", a);
    o.Set("scores", b);
    return o;
  }
};

class RecommendWorker : public ModelWorker {
 public:
  RecommendWorker(Napi::Env env, Model* model, Engine& engine, std::unique_ptr<JsCsr> data, RecommendRequest request)
      : ModelWorker(env, model), engine_(engine), data_(std::move(data)), request_(std::move(request)) {}
  void run() override { request_.run(engine_, data_->view(), &model_->cancel_); }
  Napi::Value result(Napi::Env env) override { return request_.result(env); }

 private:
  Engine& engine_;
  std::unique_ptr<JsCsr> data_;
  RecommendRequest request_;
};

Napi::Value Model::Recommend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  auto data = std::make_unique<JsCsr>(info[0], "recommend input");
  RecommendRequest request = RecommendRequest::parse(info[1], e.config().numItems());
  auto* w = new RecommendWorker(env, this, e, std::move(data), std::move(request));
  w->Queue();
  return w->promise();
}

// The same on the calling thread: for a handful of users, cheaper than a trip through the thread pool.
Napi::Value Model::RecommendSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  JsCsr data(info[0], "recommend input");
  RecommendRequest request = RecommendRequest::parse(info[1], e.config().numItems());
  try {
    request.run(e, data.view(), nullptr);
  } catch (const std::exception& ex) {
    throw makeError(env, classify(ex));
  }
  return request.result(env);
}


// ---------- EASE ----------

// A worker built from two functions: `run` on the worker thread, `result` on the JS thread; `finish`
// runs on the JS thread either way; `keepAlive` objects are referenced until then.
class LambdaWorker : public PromiseWorker {
 public:
  LambdaWorker(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result,
               std::function<void()> finish, std::vector<Napi::Value> keepAlive)
      : PromiseWorker(env), run_(std::move(run)), result_(std::move(result)), finish_(std::move(finish)) {
    for (auto& v : keepAlive) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }

 protected:
  void run() override { run_(); }
  Napi::Value result(Napi::Env env) override { return result_(env); }
  void done(Napi::Env) override { finish_(); }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::function<void()> finish_;
  std::vector<Napi::ObjectReference> refs_;
};

// A task on a model's engine, run on a worker thread; the model is busy until it settles. `keepAlive`
// holds the JavaScript arrays the task reads or writes.
class ModelTaskWorker : public ModelWorker {
 public:
  ModelTaskWorker(Napi::Env env, Model* model, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result,
                  std::vector<Napi::Value> keepAlive)
      : ModelWorker(env, model), run_(std::move(run)), result_(std::move(result)) {
    for (auto& v : keepAlive) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }

 protected:
  void run() override { run_(); }
  Napi::Value result(Napi::Env env) override { return result_(env); }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::vector<Napi::ObjectReference> refs_;
};

static Napi::Float32Array float32Arg(Napi::Env env, const Napi::Value& v, const char* what, int64_t expected) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throwTypeError(env, std::string(what) + ": expected a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  if (int64_t(a.ElementLength()) != expected)
    throwTypeError(env, std::string(what) + ": expected " + std::to_string(expected) + " values, got " + std::to_string(a.ElementLength()));
  return a;
}

Napi::Value Model::SnapshotParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  const bool fresh = snapshot_.empty();
  auto* w = new ModelTaskWorker(
      env, this,
      [this, &e]() {
        snapshot_.resize(size_t(e.numParams()));
        e.getParameters(snapshot_.data());
      },
      [this, fresh](Napi::Env env) {
        // (A dispose() asked for during the task has released everything, its bytes included.)
        if (engine_ && fresh && !snapshot_.empty()) adjustExternal(env, int64_t(snapshot_.size()) * 4);
        return env.Undefined();
      },
      {});
  w->Queue();
  return w->promise();
}

// restoreSnapshot() -> Promise<boolean>: the parameters set from the snapshot (false: there is none).
Napi::Value Model::RestoreSnapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  const bool has = !snapshot_.empty();
  auto* w = new ModelTaskWorker(
      env, this,
      [this, &e, has]() {
        if (has) e.setParameters(snapshot_.data());
      },
      [has](Napi::Env env) { return Napi::Boolean::New(env, has); }, {});
  w->Queue();
  return w->promise();
}

// exportState({optimizer?, snapshot?, auxiliary?}) -> Promise<{parameters, m?, v?, t?, groupSteps?, snapshot?, auxiliary?}>
Napi::Value Model::ExportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  const Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  const size_t n = size_t(e.numParams());
  Napi::Object out = Napi::Object::New(env);
  auto params = Napi::Float32Array::New(env, n);
  out.Set("parameters", params);
  float* pParams = params.Data();
  float *pM = nullptr, *pV = nullptr, *pSnapshot = nullptr, *pAux = nullptr;
  if (o.Get("optimizer").ToBoolean()) {
    auto m = Napi::Float32Array::New(env, n), v = Napi::Float32Array::New(env, n);
    out.Set("m", m);
    out.Set("v", v);
    pM = m.Data();
    pV = v.Data();
  }
  if (o.Get("snapshot").ToBoolean() && !snapshot_.empty()) {
    auto a = Napi::Float32Array::New(env, n);
    out.Set("snapshot", a);
    pSnapshot = a.Data();
  }
  if (o.Get("auxiliary").ToBoolean() && e.numAuxiliary() > 0) {
    auto a = Napi::Float32Array::New(env, size_t(e.numAuxiliary()));
    out.Set("auxiliary", a);
    pAux = a.Data();
  }
  auto steps = std::make_shared<std::pair<int64_t, std::vector<int64_t>>>();
  auto* w = new ModelTaskWorker(
      env, this,
      [this, &e, n, pParams, pM, pV, pSnapshot, pAux, steps]() {
        e.getParameters(pParams);
        if (pM) {
          e.getOptimizerState(pM, pV, &steps->first);
          steps->second = e.optimizerGroupSteps();
        }
        if (pSnapshot) std::memcpy(pSnapshot, snapshot_.data(), n * sizeof(float));
        if (pAux) e.getAuxiliary(pAux);
      },
      [kept = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out)), pM, steps](Napi::Env env) -> Napi::Value {
        // A napi_value lives only as long as the call that made it: the result is read from a reference.
        Napi::Object result = kept->Value();
        if (pM) {
          result.Set("t", Napi::Number::New(env, double(steps->first)));
          if (!steps->second.empty()) {
            Napi::Array a = Napi::Array::New(env, steps->second.size());
            for (size_t i = 0; i < steps->second.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, double(steps->second[i])));
            result.Set("groupSteps", a);
          }
        }
        return result;
      },
      {});
  w->Queue();
  return w->promise();
}

// importState({parameters, m?, v?, t?, groupSteps?, snapshot?, auxiliary?}) -> Promise<void>
Napi::Value Model::ImportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(env);
  if (info.Length() < 1 || !info[0].IsObject()) throwTypeError(env, "importState: expected an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  const int64_t n = e.numParams();
  const float* pParams = float32Arg(env, o.Get("parameters"), "importState.parameters", n).Data();
  const float *pM = nullptr, *pV = nullptr, *pSnapshot = nullptr, *pAux = nullptr;
  int64_t t = 0;
  std::vector<int64_t> groupSteps;
  if (!o.Get("m").IsUndefined() || !o.Get("v").IsUndefined()) {
    pM = float32Arg(env, o.Get("m"), "importState.m", n).Data();
    pV = float32Arg(env, o.Get("v"), "importState.v", n).Data();
    t = int64_t(getNumber(o, "t", 0));
    if (!o.Get("groupSteps").IsUndefined()) groupSteps = getIntArray(o, "groupSteps");
  }
  if (!o.Get("snapshot").IsUndefined() && !o.Get("snapshot").IsNull())
    pSnapshot = float32Arg(env, o.Get("snapshot"), "importState.snapshot", n).Data();
  if (!o.Get("auxiliary").IsUndefined()) pAux = float32Arg(env, o.Get("auxiliary"), "importState.auxiliary", e.numAuxiliary()).Data();
  const int64_t snapshotBefore = int64_t(snapshot_.size());
  auto* w = new ModelTaskWorker(
      env, this,
      [this, &e, n, pParams, pM, pV, pSnapshot, pAux, t, groupSteps]() {
        e.setParameters(pParams);
        if (pM) {
          e.setOptimizerState(pM, pV, t);
          if (!groupSteps.empty()) e.setOptimizerGroupSteps(groupSteps);
        }
        if (pAux) e.setAuxiliary(pAux);
        if (pSnapshot)
          snapshot_.assign(pSnapshot, pSnapshot + n);
        else
          std::vector<float>().swap(snapshot_);
      },
      [this, snapshotBefore](Napi::Env env) {
        if (engine_) adjustExternal(env, (int64_t(snapshot_.size()) - snapshotBefore) * 4);
        return env.Undefined();
      },
      {o});
  w->Queue();
  return w->promise();
}

class EaseModel : public Napi::ObjectWrap<EaseModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEase",
                       {InstanceMethod("fit", &EaseModel::Fit), InstanceMethod("recommend", &EaseModel::Recommend),
                        InstanceMethod("getWeights", &EaseModel::GetWeights),
                        InstanceMethod("setWeights", &EaseModel::SetWeights),
                        InstanceMethod("dispose", &EaseModel::Dispose),
                        StaticMethod("matrixBytes", &EaseModel::MatrixBytes)});
  }
  explicit EaseModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EaseModel>(info) {
    ease_ = std::make_unique<cpu::Ease>();
    ease_->setThreads(info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1);
  }

 private:
  cpu::Ease& ease(Napi::Env env) {
    if (!ease_) {
      Napi::Error e = Napi::Error::New(env, "this EASE model has been disposed");
      e.Set("code", Napi::String::New(env, "ERR_VAECF_DISPOSED"));
      throw e;
    }
    if (busy_) {
      Napi::Error e = Napi::Error::New(env, "the EASE model is busy with another call; await it first");
      e.Set("code", Napi::String::New(env, "ERR_VAECF_BUSY"));
      throw e;
    }
    return *ease_;
  }
  static Napi::Value MatrixBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), cpu::Ease::matrixBytes(info[0].As<Napi::Number>().Int64Value(), info[1].ToBoolean()));
  }
  Napi::Value Fit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    cpu::Ease& e = ease(env);
    auto data = std::make_shared<JsCsr>(info[0], "EASE training matrix");
    const double lambda = info[1].As<Napi::Number>().DoubleValue();
    const bool dbl = info[2].ToBoolean();
    busy_ = true;
    auto* w = new LambdaWorker(
        env, [&e, data, lambda, dbl] { e.fit(data->view(), lambda, dbl); }, [](Napi::Env env) { return env.Undefined(); },
        [this] { busy_ = false; }, {Value()});
    w->Queue();
    return w->promise();
  }
  Napi::Value Recommend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    cpu::Ease& e = ease(env);
    auto data = std::make_shared<JsCsr>(info[0], "recommend input");
    auto request = std::make_shared<RecommendRequest>(RecommendRequest::parse(info[1], e.items()));
    busy_ = true;
    auto* w = new LambdaWorker(
        env,
        [&e, data, request] {
          const CsrView& v = data->view();
          validateCsr(v, "recommend input", true);
          request->items.assign(size_t(v.rows * request->k), -1);
          request->scores.assign(size_t(v.rows * request->k), 0.0f);
          e.recommend(v, 0, v.rows, request->k, request->excludeSeen, request->candidates.empty() ? nullptr : request->candidates.data(),
                      request->items.data(), request->scores.data());
        },
        [request](Napi::Env env) { return request->result(env); }, [this] { busy_ = false; }, {Value()});
    w->Queue();
    return w->promise();
  }
  Napi::Value GetWeights(const Napi::CallbackInfo& info) {
    cpu::Ease& e = ease(info.Env());
    auto out = Napi::Float32Array::New(info.Env(), e.weights().size());
    std::copy(e.weights().begin(), e.weights().end(), out.Data());
    return out;
  }
  Napi::Value SetWeights(const Napi::CallbackInfo& info) {
    cpu::Ease& e = ease(info.Env());
    const int64_t n = info[0].As<Napi::Number>().Int64Value();
    auto w = info[1].As<Napi::Float32Array>();
    if (int64_t(w.ElementLength()) != n * n) throwTypeError(info.Env(), "setWeights: expected items x items values");
    e.setWeights(n, w.Data());
    return info.Env().Undefined();
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!busy_) ease_.reset();
    return info.Env().Undefined();
  }
  std::unique_ptr<cpu::Ease> ease_;
  bool busy_ = false;
};

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", Model::Define(env));
  exports.Set("NativeEase", EaseModel::Define(env));
  exports.Set("parameterLayout", Napi::Function::New(env, ParameterLayoutOf, "parameterLayout"));
  exports.Set("hardwareThreads", Napi::Number::New(env, double(std::thread::hardware_concurrency())));
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  exports.Set("bf16Available", Napi::Boolean::New(env, cpu::bf16MatmulAvailable()));
  exports.Set("bf16Description", Napi::String::New(env, cpu::bf16MatmulDescription()));
  // What runs the fp32 matrix products (OpenBLAS, or oneDNN on AVX-512 processors OpenBLAS has no AVX-512 kernels for).
  exports.Set("fp32GemmDescription", Napi::String::New(env, cpu::fp32GemmDescription()));
  // The SIMD target of the vector kernels (chosen for this processor; VAECF_SIMD overrides) and every
  // target this build has, with whether this processor runs it.
  exports.Set("simdTarget", Napi::String::New(env, cpu::simdTarget()));
  {
    Napi::Array targets = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& t : cpu::simdTargets()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("supported", t.supported);
      targets.Set(i++, o);
    }
    exports.Set("simdTargets", targets);
  }
#ifdef VAECF_HAVE_CUDA
  exports.Set("cudaBuilt", Napi::Boolean::New(env, true));
  exports.Set("cudaDevice", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string why;
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("available", cuda::deviceAvailable(&why));
    o.Set("description", cuda::deviceAvailable(nullptr) ? cuda::deviceDescription() : why);
    return o;
  }));
  // Blocks its thread: the Node side calls it on a worker thread (src/native.ts warmCudaAsync).
  exports.Set("cudaWarmUp", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), cuda::warmUp());
  }));
#else
  exports.Set("cudaBuilt", Napi::Boolean::New(env, false));
#endif
  return exports;
}

NODE_API_MODULE(vaecf, Init)

}  // namespace vaecf::binding
