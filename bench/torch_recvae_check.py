#!/usr/bin/env python3
"""One RecVAE training step of vaecf's engine against PyTorch on identical weights, prior weights, inputs,
dropout mask and eps: loss, every gradient of the group the phase trains, and the weights after Adam.

The PyTorch side follows the paper and the authors' public formulation (Shenbin et al., WSDM 2020),
written here from the paper's equations: x / ||x||, inverted dropout, five densely connected Linear +
swish + LayerNorm(eps 0.1) layers, Linear heads for mu and logvar, z = mu + eps * exp(logvar / 2), a
Linear decoder; loss = -(mean_u sum_i log_softmax * x) + mean_u w_u sum_d (log N(z; mu, var) - log p(z))
with the composite prior (3/20 N(0, 1) + 3/4 N(old mu, old var) + 1/10 N(0, e^10)), w_u = gamma * |x_u|
(or a fixed beta); separate Adam optimizers for the encoder and the decoder.

usage: python3 bench/torch_recvae_check.py [path/to/vaecf_harness]   (needs torch; `pip install torch==2.13.0`)
Exits 1 if a check fails.
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_step_check import build_harness, rel  # noqa: E402

TOLERANCE = 1e-4
WEIGHTS = (3 / 20, 3 / 4, 1 / 10)
WIDE_LOGVAR = 10.0


def layout(items, hidden, latent, layers):
    """(name, shape) of every tensor of the flat vector: fc{k} W [in x H], b; ln{k} gain, shift; head; decoder."""
    out = []
    for k in range(layers):
        out += [("fc%d.W" % k, (items if k == 0 else hidden, hidden)), ("fc%d.b" % k, (hidden,)),
                ("ln%d.g" % k, (hidden,)), ("ln%d.s" % k, (hidden,))]
    out += [("head.W", (hidden, 2 * latent)), ("head.b", (2 * latent,))]
    encoder = len(out)
    out += [("dec.W", (latent, items)), ("dec.b", (items,))]
    return out, encoder


def unflatten(flat, shapes):
    tensors, offset = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        tensors[name] = flat[offset:offset + n].reshape(shape)
        offset += n
    return tensors


def encoder(t, x, layers, hidden, eps_ln=0.1):
    """mu, logvar of the densely connected encoder; t maps names to tensors (W as [in x out])."""
    hs = []
    h = x
    for k in range(layers):
        a = h @ t["fc%d.W" % k] + t["fc%d.b" % k]
        if k > 0:
            a = a + sum(hs)
        h = F.layer_norm(F.silu(a), (hidden,), t["ln%d.g" % k], t["ln%d.s" % k], eps=eps_ln)
        hs.append(h)
    out = h @ t["head.W"] + t["head.b"]
    latent = out.shape[1] // 2
    return out[:, :latent], out[:, latent:]


def log_norm_pdf(z, mu, logvar):
    return -0.5 * (logvar + math.log(2 * math.pi) + (z - mu).pow(2) / logvar.exp())


def case(harness, name, phase, gamma, beta, seed):
    rng = np.random.default_rng(seed)
    items, hidden, latent, layers, batch = 300, 48, 12, 5, 40
    shapes, n_encoder = layout(items, hidden, latent, layers)

    def init():
        parts = []
        for nm, shape in shapes:
            if nm.startswith("ln") and nm.endswith(".g"):
                parts.append(rng.uniform(0.5, 1.5, size=shape))
            elif nm.startswith("ln"):
                parts.append(rng.normal(0, 0.1, size=shape))
            else:
                bound = 1.5 / math.sqrt(shape[0] if len(shape) == 2 else hidden)
                parts.append(rng.uniform(-bound, bound, size=shape))
        return np.concatenate([p.ravel() for p in parts]).astype(np.float32)

    flat = init()
    n_enc_params = sum(int(np.prod(s)) for _, s in shapes[:n_encoder])
    prior_flat = init()[:n_enc_params]

    dense = np.zeros((batch, items), dtype=np.float32)
    for u in range(batch):
        n = rng.integers(1, 40)
        cols = rng.choice(items, n, replace=False)
        dense[u, cols] = rng.integers(1, 3, size=n)
    indptr, indices, values = [0], [], []
    for u in range(batch):
        cols = np.nonzero(dense[u])[0]
        rng.shuffle(cols)
        indices.extend(cols.tolist())
        values.extend(dense[u, cols].tolist())
        indptr.append(len(indices))
    nnz = len(indices)
    p = 0.5 if phase != 2 else 0.0
    keep = (rng.uniform(size=nnz) >= p).astype(np.float32) / np.float32(1 - p)
    eps = rng.normal(size=(batch, latent)).astype(np.float32)
    lr = 5e-4

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.txt"), "w") as f:
            f.write("items %d\nhidden %d\nlatent %d\nlayers %d\nlayer_norm_eps 0.1\nphase %d\ngamma %r\nbeta %r\nlr %r\nthreads 2\n"
                    % (items, hidden, latent, layers, phase, gamma, beta, lr))
        flat.tofile(os.path.join(d, "params.f32"))
        prior_flat.tofile(os.path.join(d, "prior.f32"))
        np.asarray(indptr, dtype=np.int64).tofile(os.path.join(d, "indptr.i64"))
        np.asarray(indices, dtype=np.int32).tofile(os.path.join(d, "indices.i32"))
        np.asarray(values, dtype=np.float32).tofile(os.path.join(d, "values.f32"))
        keep.tofile(os.path.join(d, "input_scale.f32"))
        eps.tofile(os.path.join(d, "eps.f32"))
        subprocess.run([harness, "recvae-step", d], check=True)
        ours_loss = [float(x) for x in open(os.path.join(d, "result.txt")).read().split()]
        ours_grad = np.fromfile(os.path.join(d, "grads.f32"), dtype=np.float32)
        ours_after = np.fromfile(os.path.join(d, "params_after.f32"), dtype=np.float32)

    # ---- PyTorch ----
    torch.set_num_threads(2)
    named = {k: torch.tensor(v, requires_grad=True) for k, v in unflatten(flat, shapes).items()}
    prior = {k: torch.tensor(v) for k, v in unflatten(prior_flat, shapes[:n_encoder]).items()}
    x = torch.tensor(dense)
    mask = torch.ones(batch, items)
    for u in range(batch):
        for k in range(indptr[u], indptr[u + 1]):
            mask[u, indices[k]] = float(keep[k])
    xn = F.normalize(x)
    mu, logvar = encoder(named, xn * mask, layers, hidden)
    z = mu + torch.tensor(eps) * torch.exp(0.5 * logvar)
    logits = z @ named["dec.W"] + named["dec.b"]
    mll = (F.log_softmax(logits, dim=-1) * x).sum(dim=-1).mean()
    if phase == 2:
        kld = torch.tensor(0.0)
    else:
        with torch.no_grad():
            pmu, plogvar = encoder(prior, xn, layers, hidden)
        comps = torch.stack([
            log_norm_pdf(z, torch.zeros_like(z), torch.zeros_like(z)) + math.log(WEIGHTS[0]),
            log_norm_pdf(z, pmu, plogvar) + math.log(WEIGHTS[1]),
            log_norm_pdf(z, torch.zeros_like(z), torch.full_like(z, WIDE_LOGVAR)) + math.log(WEIGHTS[2]),
        ], dim=-1)
        log_prior = torch.logsumexp(comps, dim=-1)
        weight = gamma * x.sum(dim=-1) if gamma > 0 else torch.full((batch,), beta)
        kld = ((log_norm_pdf(z, mu, logvar) - log_prior).sum(dim=-1) * weight).mean()
    loss = -(mll - kld)
    loss.backward()
    names = [nm for nm, _ in shapes]
    ref_grad = np.concatenate([named[nm].grad.numpy().ravel() if named[nm].grad is not None else np.zeros(named[nm].numel(), np.float32)
                               for nm in names])
    enc_params = [named[nm] for nm in names[:n_encoder]]
    dec_params = [named[nm] for nm in names[n_encoder:]]
    opts = []
    if phase != 2:
        opts.append(torch.optim.Adam(enc_params, lr=lr))
    if phase != 1:
        opts.append(torch.optim.Adam(dec_params, lr=lr))
    for o in opts:
        o.step()
    ref_after = np.concatenate([named[nm].detach().numpy().ravel() for nm in names])

    first = 0 if phase != 2 else n_enc_params
    last = len(flat) if phase != 1 else n_enc_params
    rows = [("loss", abs(ours_loss[0] - loss.item()) / abs(loss.item())),
            ("nll", abs(ours_loss[1] + mll.item()) / abs(mll.item()))]
    if phase != 2:
        rows.append(("kl (composite prior)", abs(ours_loss[2] - kld.item()) / abs(kld.item())))
    rows.append(("gradients of the trained group", rel(ours_grad[first:last], ref_grad[first:last])))
    offset = 0
    for nm, shape in shapes:
        size = int(np.prod(shape))
        if first <= offset < last:
            rows.append(("  grad %s" % nm, rel(ours_grad[offset:offset + size], ref_grad[offset:offset + size])))
        offset += size
    rows.append(("weights after the step", rel(ours_after, ref_after)))
    # Adam's first step is about lr * sign(g) whatever |g|: an element whose gradient is at float rounding
    # level (its contributions cancel) moves by a rounding-dependent amount in either engine. The update is
    # compared on the other elements; how many were left out is printed.
    scale = np.abs(ref_grad[first:last]).max()
    settled = np.ones(len(flat), dtype=bool)
    g_ref, g_ours = ref_grad[first:last], ours_grad[first:last]
    settled[first:last] = (np.abs(g_ref) > 1e-6 * scale) | ((g_ref == 0) & (g_ours == 0))
    left_out = int((~settled[first:last]).sum())
    rows.append(("update (after - before), %d left out" % left_out, rel((ours_after - flat)[settled], (ref_after - flat)[settled])))
    ok = all(v < TOLERANCE for _, v in rows)
    print("%s: loss ours %.7f torch %.7f" % (name, ours_loss[0], loss.item()))
    for label, v in rows:
        print("  %-32s relative error %.2e %s" % (label, v, "ok" if v < TOLERANCE else "FAIL"))
    return ok


def main():
    harness = sys.argv[1] if len(sys.argv) > 1 else build_harness()
    print("torch %s, tolerance %.0e (relative, float32)" % (torch.__version__, TOLERANCE))
    results = [
        case(harness, "RecVAE encoder phase, gamma 0.005", 1, 0.005, 0.0, 1),
        case(harness, "RecVAE encoder phase, fixed beta 0.2", 1, 0.0, 0.2, 2),
        case(harness, "RecVAE decoder phase", 2, 0.005, 0.0, 3),
        case(harness, "RecVAE joint (not alternating)", 0, 0.005, 0.0, 4),
    ]
    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
