#include "config.h"

#include <cmath>

#include "csr.h"

namespace vaecf {

static std::string dimsToString(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

void ModelConfig::validate() const {
  if (encoderDims.size() < 2)
    throw InvalidArgument("encoderDims (q_dims): expected at least 2 sizes [n_items, ..., latent], got " +
                          dimsToString(encoderDims));
  if (decoderDims.size() < 2)
    throw InvalidArgument("decoderDims (p_dims): expected at least 2 sizes [latent, ..., n_items], got " +
                          dimsToString(decoderDims));
  for (auto d : encoderDims)
    if (d <= 0) throw InvalidArgument("encoderDims: every size must be positive, got " + dimsToString(encoderDims));
  for (auto d : decoderDims)
    if (d <= 0) throw InvalidArgument("decoderDims: every size must be positive, got " + dimsToString(decoderDims));
  if (encoderDims.front() != decoderDims.back())
    throw InvalidArgument("encoderDims[0] and decoderDims[last] must both be n_items, got " +
                          dimsToString(encoderDims) + " and " + dimsToString(decoderDims));
  if (encoderDims.back() != decoderDims.front())
    throw InvalidArgument("the latent size must match: encoderDims[last] vs decoderDims[0] in " +
                          dimsToString(encoderDims) + " and " + dimsToString(decoderDims));
  if (int64_t(encoderDropout.size()) != numEncoderLayers())
    throw InvalidArgument("encoderDropout: expected " + std::to_string(numEncoderLayers()) +
                          " probabilities (one per encoder layer), got " + std::to_string(encoderDropout.size()));
  if (int64_t(decoderDropout.size()) != numDecoderLayers())
    throw InvalidArgument("decoderDropout: expected " + std::to_string(numDecoderLayers()) +
                          " probabilities (one per decoder layer), got " + std::to_string(decoderDropout.size()));
  for (double p : encoderDropout)
    if (!(p >= 0.0 && p < 1.0)) throw InvalidArgument("encoderDropout: expected probabilities in [0, 1)");
  for (double p : decoderDropout)
    if (!(p >= 0.0 && p < 1.0)) throw InvalidArgument("decoderDropout: expected probabilities in [0, 1)");
}

void RecVaeConfig::validate() const {
  const auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw InvalidArgument(std::string(name) + ": expected a positive integer, got " + std::to_string(v));
  };
  positive(items, "items");
  positive(hidden, "hidden");
  positive(latent, "latent");
  positive(layers, "layers");
  if (!(layerNormEps > 0)) throw InvalidArgument("layerNormEps: expected a positive number");
  if (!(inputDropout >= 0.0 && inputDropout < 1.0)) throw InvalidArgument("inputDropout: expected a probability in [0, 1)");
  double total = 0;
  for (double w : mixtureWeights) {
    if (!(w > 0)) throw InvalidArgument("mixtureWeights: expected three positive weights");
    total += w;
  }
  if (std::fabs(total - 1.0) > 1e-6) throw InvalidArgument("mixtureWeights: expected weights that sum to 1, got a sum of " + std::to_string(total));
  if (!std::isfinite(wideLogVar)) throw InvalidArgument("wideLogVar: expected a finite number");
}

ModelConfig RecVaeConfig::summary() const {
  ModelConfig c;
  c.encoderDims = {items, hidden, latent};
  c.decoderDims = {latent, items};
  c.variational = true;
  c.encoderDropout = {inputDropout, 0.0};
  c.decoderDropout = {0.0};
  return c;
}

}  // namespace vaecf
