// Export the scoring path of a Mult-VAE / Mult-DAE / RecVAE to ONNX (opset 17; RecVAE's LayerNormalization is an opset-17 op), for runtimes without vaecf
// (onnxruntime, in Node or elsewhere). The graph takes a dense click matrix `clicks` [N, n_items] and
// returns `scores` [N, n_items] (evaluation mode: L2-normalised input, no dropout, z = mu) and the top-k
// among unclicked items: `top_scores` [N, k] and `top_items` [N, k] (int64 item indices).
// Written with a small protobuf encoder for the handful of ONNX messages it needs.
import * as fs from 'node:fs';

import type { VaeFamilyModel } from '../models/mult-vae';

// ---- protobuf wire format ----
function varint(v: number | bigint): Buffer {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return Buffer.from(out);
}
const key = (field: number, wire: number): Buffer => varint((field << 3) | wire);
const int = (field: number, v: number | bigint): Buffer => Buffer.concat([key(field, 0), varint(v)]);
const bytes = (field: number, b: Buffer): Buffer => Buffer.concat([key(field, 2), varint(b.length), b]);
const str = (field: number, s: string): Buffer => bytes(field, Buffer.from(s, 'utf8'));
const float32 = (field: number, f: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(f);
  return Buffer.concat([key(field, 5), b]);
};

const FLOAT = 1;
const INT64 = 7;

function tensor(name: string, dims: number[], type: number, data: Float32Array | BigInt64Array): Buffer {
  return Buffer.concat([...dims.map((d) => int(1, d)), int(2, type), str(8, name), bytes(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength))]);
}
function attribute(name: string, value: { i?: number; f?: number }): Buffer {
  if (value.i !== undefined) return Buffer.concat([str(1, name), int(3, value.i), int(20, 2)]);
  return Buffer.concat([str(1, name), float32(2, value.f as number), int(20, 1)]);
}
function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Buffer[] = []): Buffer {
  return Buffer.concat([...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, op), ...attrs.map((a) => bytes(5, a))]);
}
function valueInfo(name: string, type: number, dims: Array<number | string>): Buffer {
  const shape = Buffer.concat(dims.map((d) => bytes(1, typeof d === 'number' ? int(1, d) : str(2, d))));
  const tensorType = Buffer.concat([int(1, type), bytes(2, shape)]);
  return Buffer.concat([str(1, name), bytes(2, bytes(1, tensorType))]);
}

export interface OnnxExportOptions {
  /** items returned by the top-k outputs (default 100) */
  k?: number;
}

/** Write the model's scoring graph as an ONNX file; returns the bytes written. */
export function exportOnnx(model: VaeFamilyModel<object>, file: string, options: OnnxExportOptions = {}): number {
  const config = model.learned().config;
  // The engine's own names and shapes for its parameters (the layout model files use).
  const named = model.namedTensors(config, model.getParameters());
  const items = model.numItems;
  const k = Math.min(options.k ?? 100, items);
  const nEnc = config.encoderDims.length - 1;
  const nLayers = nEnc + config.decoderDims.length - 1;
  const latent = config.encoderDims[nEnc];
  const nodes: Buffer[] = [];
  const inits: Buffer[] = [];
  const scalar = (name: string, v: number): string => {
    inits.push(tensor(name, [1], FLOAT, Float32Array.of(v)));
    return name;
  };
  const ints = (name: string, v: number[]): string => {
    inits.push(tensor(name, [v.length], INT64, BigInt64Array.from(v.map(BigInt))));
    return name;
  };
  // x / max(||x||_2, 1e-12) per row (F.normalize)
  nodes.push(node('Mul', ['clicks', 'clicks'], ['sq'], 'square'));
  nodes.push(node('ReduceSum', ['sq', ints('axis1', [1])], ['sumsq'], 'row_sum', [attribute('keepdims', { i: 1 })]));
  nodes.push(node('Sqrt', ['sumsq'], ['norm'], 'norm'));
  nodes.push(node('Max', ['norm', scalar('tiny', 1e-12)], ['safe_norm'], 'clamp'));
  nodes.push(node('Div', ['clicks', 'safe_norm'], ['h0'], 'normalise'));
  let h = 'h0';
  // An initializer from the named parameter tensor `name`, called `as` in the graph.
  const init = (as: string, name: string): string => {
    const t = named.get(name);
    if (!t) throw new Error(`exportOnnx: the engine has no tensor ${name}`);
    inits.push(tensor(as, t.shape, FLOAT, t.data));
    return as;
  };
  const r = config.recvae;
  if (r) {
    // RecVAE: h_k = LayerNorm(swish(h_{k-1} W_k + b_k + h_0 + ... + h_{k-1})), mu = the head's first half, scores = mu W_dec + b_dec.
    let residual: string | null = null;
    for (let k = 0; k < r.layers; k++) {
      init(`fc${k}_W`, `encoder.fc${k}.weight`);
      init(`fc${k}_b`, `encoder.fc${k}.bias`);
      init(`ln${k}_gain`, `encoder.ln${k}.weight`);
      init(`ln${k}_shift`, `encoder.ln${k}.bias`);
      nodes.push(node('Gemm', [h, `fc${k}_W`, `fc${k}_b`], [`pre${k}`], `fc${k}`));
      let pre = `pre${k}`;
      if (residual) {
        nodes.push(node('Add', [pre, residual], [`dense${k}`], `dense${k}`));
        pre = `dense${k}`;
      }
      nodes.push(node('Sigmoid', [pre], [`sig${k}`], `sigmoid${k}`));
      nodes.push(node('Mul', [pre, `sig${k}`], [`swish${k}`], `swish${k}`));
      nodes.push(node('LayerNormalization', [`swish${k}`, `ln${k}_gain`, `ln${k}_shift`], [`h${k + 1}`], `layernorm${k}`,
        [attribute('axis', { i: -1 }), attribute('epsilon', { f: r.layerNormEps })]));
      h = `h${k + 1}`;
      if (k + 1 < r.layers) {
        if (residual) {
          nodes.push(node('Add', [residual, h], [`sum${k}`], `sum${k}`));
          residual = `sum${k}`;
        } else {
          residual = h;
        }
      }
    }
    nodes.push(node('Gemm', [h, init('head_W', 'encoder.head.weight'), init('head_b', 'encoder.head.bias')], ['head'], 'head'));
    nodes.push(node('Slice', ['head', ints('mu_start', [0]), ints('mu_end', [r.latent]), ints('mu_axis', [1])], ['mu'], 'mu'));
    nodes.push(node('Gemm', ['mu', init('dec_W', 'decoder.weight'), init('dec_b', 'decoder.bias')], ['scores'], 'decoder'));
  }
  for (let l = 0; !r && l < nLayers; l++) {
    const layer = l < nEnc ? `encoder.${l}` : `decoder.${l - nEnc}`;
    init(`W${l}`, `${layer}.weight`);
    init(`b${l}`, `${layer}.bias`);
    const last = l === nLayers - 1;
    const out = last ? 'scores' : `a${l}`;
    nodes.push(node('Gemm', [h, `W${l}`, `b${l}`], [out], `layer${l}`));
    h = out;
    if (l === nEnc - 1 && config.variational) {
      nodes.push(node('Slice', [h, ints('mu_start', [0]), ints('mu_end', [latent]), ints('mu_axis', [1])], ['mu'], 'mu'));
      h = 'mu';
    } else if (!last) {
      nodes.push(node('Tanh', [h], [`t${l}`], `tanh${l}`));
      h = `t${l}`;
    }
  }
  // Top-k among items the user has not clicked.
  nodes.push(node('Greater', ['clicks', scalar('zero', 0)], ['seen'], 'seen'));
  nodes.push(node('Where', ['seen', scalar('minus_inf', -Infinity), 'scores'], ['masked'], 'mask_seen'));
  nodes.push(node('TopK', ['masked', ints('k', [k])], ['top_scores', 'top_items'], 'top_k', [attribute('axis', { i: 1 })]));
  const graph = Buffer.concat([
    ...nodes.map((n) => bytes(1, n)),
    str(2, `vaecf-${model.kind}`),
    ...inits.map((t) => bytes(5, t)),
    bytes(11, valueInfo('clicks', FLOAT, ['N', items])),
    bytes(12, valueInfo('scores', FLOAT, ['N', items])),
    bytes(12, valueInfo('top_scores', FLOAT, ['N', k])),
    bytes(12, valueInfo('top_items', INT64, ['N', k])),
  ]);
  const opset = Buffer.concat([str(1, ''), int(2, 17)]);
  const modelProto = Buffer.concat([int(1, 8), str(2, 'vaecf'), bytes(8, opset), bytes(7, graph)]);
  fs.writeFileSync(file, modelProto);
  return modelProto.length;
}
