#!/usr/bin/env python3
"""One full training step of vaecf's engine against PyTorch on identical weights, inputs, dropout masks
and eps: loss, every gradient, and the weights after one Adam (or AdamW) step, in float32.

The PyTorch side is the reference formulation (dense batch, F.normalize, inverted dropout, Linear + tanh,
log_softmax times x, KL averaged over the batch, torch.optim.Adam / AdamW). The engine side is the
Node-free C++ harness (native/tests/harness.cpp), so this also runs where Node is not installed.

usage: python3 bench/torch_step_check.py [path/to/vaecf_harness]   (needs torch; `pip install torch==2.13.0`)
Builds the harness with CMake into build-tests/ when no path is given. Exits 1 if a check fails.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4


def build_harness():
    build = os.path.join(ROOT, "build-tests")
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DVAECF_BUILD_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j2", "--target", "vaecf_harness"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build, "vaecf_harness")


def rel(a, b):
    """Normwise relative error of a against the reference b, in float64."""
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


def layers_of(enc, dec, variational):
    """(in, out) of every layer, encoder first; the last encoder layer of a VAE outputs mu and logvar."""
    shapes = []
    for k in range(len(enc) - 1):
        out = enc[k + 1] * (2 if (k == len(enc) - 2 and variational) else 1)
        shapes.append((enc[k], out))
    for k in range(len(dec) - 1):
        shapes.append((dec[k], dec[k + 1]))
    return shapes


def case(harness, name, variational, enc_drop, dec_drop, beta, l2, optimizer, weight_decay, seed):
    rng = np.random.default_rng(seed)
    items, hidden, latent, batch = 300, 64, 16, 40
    enc = [items, hidden, latent]
    dec = [latent, hidden, items]
    shapes = layers_of(enc, dec, variational)
    params = []
    for (i, o) in shapes:
        a = np.sqrt(6.0 / (i + o)) * 1.5
        params.append(rng.uniform(-a, a, size=(i, o)).astype(np.float32))
        params.append(rng.normal(0, 0.1, size=(o,)).astype(np.float32))
    flat = np.concatenate([p.ravel() for p in params]).astype(np.float32)

    # A sparse batch with integer click weights; every user has at least one click.
    dense = np.zeros((batch, items), dtype=np.float32)
    for u in range(batch):
        n = rng.integers(1, 40)
        cols = rng.choice(items, n, replace=False)
        dense[u, cols] = rng.integers(1, 4, size=n)
    indptr = [0]
    indices, values = [], []
    for u in range(batch):
        cols = np.nonzero(dense[u])[0]
        rng.shuffle(cols)  # any order within a row
        indices.extend(cols.tolist())
        values.extend(dense[u, cols].tolist())
        indptr.append(len(indices))
    nnz = len(indices)
    p0 = enc_drop[0]
    keep_in = (rng.uniform(size=nnz) >= p0).astype(np.float32) / np.float32(1 - p0)
    masks = {}
    drops = list(enc_drop) + list(dec_drop)
    for layer in range(1, len(shapes)):
        p = drops[layer]
        if p > 0:
            masks[layer] = ((rng.uniform(size=(batch, shapes[layer][0])) >= p).astype(np.float32) / np.float32(1 - p))
    eps = rng.normal(size=(batch, latent)).astype(np.float32)
    lr = 1e-3

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.txt"), "w") as f:
            f.write("encoder %s\n" % " ".join(map(str, enc)))
            f.write("decoder %s\n" % " ".join(map(str, dec)))
            f.write("variational %d\n" % int(variational))
            f.write("encoder_dropout %s\n" % " ".join(map(str, enc_drop)))
            f.write("decoder_dropout %s\n" % " ".join(map(str, dec_drop)))
            f.write("beta %r\nl2 %r\nlr %r\nweight_decay %r\ndecoupled %d\nthreads 2\n"
                    % (beta, l2, lr, weight_decay, int(optimizer == "adamw")))
        flat.tofile(os.path.join(d, "params.f32"))
        np.asarray(indptr, dtype=np.int64).tofile(os.path.join(d, "indptr.i64"))
        np.asarray(indices, dtype=np.int32).tofile(os.path.join(d, "indices.i32"))
        np.asarray(values, dtype=np.float32).tofile(os.path.join(d, "values.f32"))
        keep_in.tofile(os.path.join(d, "input_scale.f32"))
        eps.tofile(os.path.join(d, "eps.f32"))
        for layer, m in masks.items():
            m.tofile(os.path.join(d, "mask_%d.f32" % layer))
        subprocess.run([harness, "step", d], check=True)
        ours_loss = [float(x) for x in open(os.path.join(d, "result.txt")).read().split()]
        ours_grad = np.fromfile(os.path.join(d, "grads.f32"), dtype=np.float32)
        ours_after = np.fromfile(os.path.join(d, "params_after.f32"), dtype=np.float32)

    # ---- PyTorch, the reference formulation ----
    torch.set_num_threads(2)
    tparams = [torch.tensor(p, requires_grad=True) for p in params]
    x = torch.tensor(dense)
    mask_in = torch.ones(batch, items)
    for u in range(batch):
        for k in range(indptr[u], indptr[u + 1]):
            mask_in[u, indices[k]] = float(keep_in[k])
    h = F.normalize(x) * mask_in  # inverted dropout with the given mask
    n_enc = len(enc) - 1
    mu = logvar = None
    for layer in range(len(shapes)):
        W, b = tparams[2 * layer], tparams[2 * layer + 1]
        if layer > 0 and layer in masks:
            h = h * torch.tensor(masks[layer])
        a = h @ W + b
        last = layer == len(shapes) - 1
        if layer == n_enc - 1 and variational:
            mu, logvar = a[:, :latent], a[:, latent:]
            h = mu + torch.tensor(eps) * torch.exp(0.5 * logvar)
        elif not last:
            h = torch.tanh(a)
        else:
            h = a
    nll = -torch.mean(torch.sum(F.log_softmax(h, 1) * x, -1))
    kl = (-0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))) if variational else torch.tensor(0.0)
    reg = sum(torch.sum(tparams[2 * k] ** 2) for k in range(len(shapes)))
    loss = nll + beta * kl + l2 * reg
    loss.backward()
    ref_grad = np.concatenate([p.grad.numpy().ravel() for p in tparams])
    before = [p.detach().clone() for p in tparams]
    opt = (torch.optim.AdamW(tparams, lr=lr, weight_decay=weight_decay) if optimizer == "adamw"
           else torch.optim.Adam(tparams, lr=lr, weight_decay=weight_decay))
    opt.step()
    ref_after = np.concatenate([p.detach().numpy().ravel() for p in tparams])
    ref_delta = ref_after - np.concatenate([p.numpy().ravel() for p in before])
    ours_delta = ours_after - flat

    rows = [
        ("loss", abs(ours_loss[0] - loss.item()) / abs(loss.item())),
        ("nll", abs(ours_loss[1] - nll.item()) / abs(nll.item())),
        ("kl", abs(ours_loss[2] - kl.item()) / abs(kl.item()) if variational else 0.0),
        ("gradients", rel(ours_grad, ref_grad)),
    ]
    offset = 0
    for k, (i, o) in enumerate(shapes):
        for part, size in (("W", i * o), ("b", o)):
            rows.append(("  grad layer %d %s" % (k, part), rel(ours_grad[offset:offset + size], ref_grad[offset:offset + size])))
            offset += size
    rows.append(("weights after step", rel(ours_after, ref_after)))
    rows.append(("update (after - before)", rel(ours_delta, ref_delta)))
    ok = all(v < TOLERANCE for _, v in rows)
    print("%s: loss ours %.7f torch %.7f" % (name, ours_loss[0], loss.item()))
    for label, v in rows:
        print("  %-28s relative error %.2e %s" % (label, v, "ok" if v < TOLERANCE else "FAIL"))
    return ok


def main():
    harness = sys.argv[1] if len(sys.argv) > 1 else build_harness()
    print("torch %s, tolerance %.0e (relative, float32)" % (torch.__version__, TOLERANCE))
    results = [
        case(harness, "Mult-VAE, Adam", True, [0.5, 0.2], [0.1, 0.0], 0.3, 0.0, "adam", 0.0, 1),
        case(harness, "Mult-VAE, AdamW + L2", True, [0.5, 0.0], [0.0, 0.0], 0.2, 0.01, "adamw", 0.01, 2),
        case(harness, "Mult-DAE, Adam (coupled decay)", False, [0.5, 0.0], [0.0, 0.0], 0.0, 0.01 / 500, "adam", 0.001, 3),
    ]
    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
