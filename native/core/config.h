// Architecture of a Mult-VAE / Mult-DAE (Liang et al. 2018, section 2).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vaecf {

struct ModelConfig {
  // q_dims: encoder sizes [n_items, hidden..., latent]; the last encoder layer of a VAE outputs 2 x latent
  // values (mu, then logvar).
  std::vector<int64_t> encoderDims;
  // p_dims: decoder sizes [latent, hidden..., n_items].
  std::vector<int64_t> decoderDims;
  // true: Mult-VAE (Gaussian code, KL term); false: Mult-DAE (deterministic code, tanh on it).
  bool variational = true;
  // Dropout probability applied to the input of each encoder / decoder layer (inverted dropout).
  // Paper: encoder {0.5, 0, ...}, decoder all 0.
  std::vector<double> encoderDropout;
  std::vector<double> decoderDropout;

  int64_t numItems() const { return encoderDims.empty() ? 0 : encoderDims.front(); }
  int64_t latent() const { return encoderDims.empty() ? 0 : encoderDims.back(); }
  int64_t numEncoderLayers() const { return int64_t(encoderDims.size()) - 1; }
  int64_t numDecoderLayers() const { return int64_t(decoderDims.size()) - 1; }
  int64_t numLayers() const { return numEncoderLayers() + numDecoderLayers(); }
  // Throws InvalidArgument with a message naming the offending field.
  void validate() const;
};

// RecVAE (Shenbin et al., WSDM 2020): an encoder of `layers` densely connected layers of `hidden` units
// (swish, then LayerNorm with eps `layerNormEps`, each layer's input the previous output plus the sum
// of all earlier outputs) on the L2-normalised, dropped-out clicks; a Gaussian code of `latent`
// dimensions; one linear decoder to the items; the composite prior (mixture weights, wide log-variance).
struct RecVaeConfig {
  int64_t items = 0;
  int64_t hidden = 600;
  int64_t latent = 200;
  int64_t layers = 5;
  double layerNormEps = 0.1;
  double inputDropout = 0.5;
  double mixtureWeights[3] = {3.0 / 20.0, 3.0 / 4.0, 1.0 / 10.0};
  double wideLogVar = 10.0;
  // Throws InvalidArgument naming the offending field.
  void validate() const;
  // The shape in Mult-VAE terms (items -> hidden -> latent -> items), for code that only asks for sizes.
  ModelConfig summary() const;
};

}  // namespace vaecf
