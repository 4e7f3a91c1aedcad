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

}  // namespace vaecf
