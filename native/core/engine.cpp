#include "engine.h"

namespace vaecf {

ParameterLayout::ParameterLayout(const ModelConfig& c) {
  const int64_t ne = c.numEncoderLayers(), nd = c.numDecoderLayers();
  for (int64_t k = 0; k < ne + nd; ++k) {
    Layer l{};
    if (k < ne) {
      l.in = c.encoderDims[k];
      l.out = c.encoderDims[k + 1] * ((k == ne - 1 && c.variational) ? 2 : 1);
    } else {
      l.in = c.decoderDims[k - ne];
      l.out = c.decoderDims[k - ne + 1];
    }
    l.weightOffset = total;
    total += l.in * l.out;
    l.biasOffset = total;
    total += l.out;
    layers.push_back(l);
  }
}

std::vector<TensorSpec> parameterTensors(const ModelConfig& c) {
  c.validate();
  const ParameterLayout layout(c);
  const int64_t ne = c.numEncoderLayers();
  std::vector<TensorSpec> out;
  for (size_t k = 0; k < layout.layers.size(); ++k) {
    const auto& l = layout.layers[k];
    const std::string name = int64_t(k) < ne ? "encoder." + std::to_string(k) : "decoder." + std::to_string(int64_t(k) - ne);
    out.push_back({name + ".weight", {l.in, l.out}, l.weightOffset});
    out.push_back({name + ".bias", {l.out}, l.biasOffset});
  }
  return out;
}

}  // namespace vaecf
