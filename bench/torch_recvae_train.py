#!/usr/bin/env python3
"""RecVAE trained by PyTorch on the split vaecf prepared (bench/export-split.js), with the authors'
schedule (Shenbin et al., WSDM 2020, run.py): per epoch, n_enc = 3 encoder passes with input dropout 0.5
(Adam on the encoder), the prior's encoder refreshed, 1 decoder pass without dropout (Adam on the
decoder); batch 500, lr 5e-4, gamma 0.005, 50 epochs; validation NDCG@100 after every epoch, the best
epoch's weights tested. The model is the formulation bench/torch_recvae_check.py checks vaecf's engine
against step by step (its `encoder` and `log_norm_pdf`), with PyTorch's default Linear initialisation
and the prior's encoder initialised on its own, as in the authors' code.

usage: python3 bench/torch_recvae_train.py DIR [--seeds 98765,1,2] [--epochs 50] [--threads 2] [--json OUT]
Prints the test Recall@20, Recall@50 and NDCG@100 (mean and standard error over users) per seed.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_recvae_check import WEIGHTS, WIDE_LOGVAR, encoder, layout, log_norm_pdf  # noqa: E402


def read_csr(d, prefix=""):
    ip = np.fromfile(os.path.join(d, prefix + "indptr.i64"), dtype=np.int64)
    ix = np.fromfile(os.path.join(d, prefix + "indices.i32"), dtype=np.int32).astype(np.int64)
    return ip, ix


def dense(ip, ix, rows, items):
    lengths = ip[rows + 1] - ip[rows]
    cols = np.concatenate([ix[ip[u]: ip[u + 1]] for u in rows]) if len(rows) else np.zeros(0, np.int64)
    x = torch.zeros(len(rows), items)
    x[torch.from_numpy(np.repeat(np.arange(len(rows)), lengths)), torch.from_numpy(cols)] = 1.0
    return x


def init_params(shapes, gen):
    """PyTorch's default nn.Linear initialisation (U(-1/sqrt(in), 1/sqrt(in)) for W and b), LayerNorm 1 / 0."""
    t = {}
    for name, shape in shapes:
        if name.startswith("ln"):
            t[name] = torch.ones(shape) if name.endswith(".g") else torch.zeros(shape)
            continue
        layer = name.split(".")[0]
        fan_in = dict(shapes)[layer + ".W"][0]
        bound = 1 / math.sqrt(fan_in)
        t[name] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
    return t


def metrics(score_fn, ip, ix, tip, tix, items, batch=500):
    """Recall@20, Recall@50 (hits / min(k, held out)) and NDCG@100 per user, fold-in items excluded."""
    n = len(ip) - 1
    out = {"recall@20": [], "recall@50": [], "ndcg@100": []}
    discount = 1.0 / np.log2(np.arange(2, 102))
    for b0 in range(0, n, batch):
        rows = np.arange(b0, min(n, b0 + batch))
        x = dense(ip, ix, rows, items)
        with torch.no_grad():
            s = score_fn(x)
        s[x > 0] = -float("inf")
        top = torch.topk(s, 100, dim=1).indices.numpy()
        for r, u in enumerate(rows):
            held = set(tix[tip[u]: tip[u + 1]].tolist())
            if not held:
                continue
            hits = np.array([i in held for i in top[r]])
            out["recall@20"].append(hits[:20].sum() / min(20, len(held)))
            out["recall@50"].append(hits[:50].sum() / min(50, len(held)))
            out["ndcg@100"].append((hits * discount).sum() / discount[: min(len(held), 100)].sum())
    return {k: (float(np.mean(v)), float(np.std(v) / math.sqrt(len(v)))) for k, v in out.items()}


def train(d, seed, epochs, hidden=600, latent=200, layers=5, gamma=0.005, lr=5e-4, batch=500, n_enc=3):
    torch.manual_seed(seed)
    np.random.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ip, ix = read_csr(os.path.join(d, "train"))
    users, items = map(int, open(os.path.join(d, "train", "shape.txt")).read().split())
    vip, vix = read_csr(os.path.join(d, "validation"))
    vtip, vtix = read_csr(os.path.join(d, "validation"), "targets_")
    shapes, n_encoder = layout(items, hidden, latent, layers)
    t = {k: v.requires_grad_() for k, v in init_params(shapes, gen).items()}
    prior = {k: v for k, v in init_params(shapes[:n_encoder], gen).items()}
    names = [nm for nm, _ in shapes]
    enc_opt = torch.optim.Adam([t[nm] for nm in names[:n_encoder]], lr=lr)
    dec_opt = torch.optim.Adam([t[nm] for nm in names[n_encoder:]], lr=lr)

    def score(x):
        mu, _ = encoder(t, F.normalize(x), layers, hidden)
        return mu @ t["dec.W"] + t["dec.b"]

    def run_pass(opt, dropout):
        for b0 in range(0, users, batch):
            rows = perm_rows[b0: b0 + batch]
            x = dense(ip, ix, rows, items)
            h = F.dropout(F.normalize(x), p=dropout, training=dropout > 0)
            mu, logvar = encoder(t, h, layers, hidden)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            logits = z @ t["dec.W"] + t["dec.b"]
            mll = (F.log_softmax(logits, dim=-1) * x).sum(dim=-1).mean()
            with torch.no_grad():
                pmu, plogvar = encoder(prior, F.normalize(x), layers, hidden)
            comps = torch.stack([
                log_norm_pdf(z, torch.zeros_like(z), torch.zeros_like(z)) + math.log(WEIGHTS[0]),
                log_norm_pdf(z, pmu, plogvar) + math.log(WEIGHTS[1]),
                log_norm_pdf(z, torch.zeros_like(z), torch.full_like(z, WIDE_LOGVAR)) + math.log(WEIGHTS[2]),
            ], dim=-1)
            kld = ((log_norm_pdf(z, mu, logvar) - torch.logsumexp(comps, dim=-1)).sum(dim=-1) * (gamma * x.sum(dim=-1))).mean()
            loss = -(mll - kld)
            opt.zero_grad()
            loss.backward()
            opt.step()

    best, best_state, best_epoch = -1.0, None, 0
    started = time.time()
    for epoch in range(epochs):
        for _ in range(n_enc):
            perm_rows = np.random.permutation(users)
            run_pass(enc_opt, 0.5)
        for nm in names[:n_encoder]:
            prior[nm] = t[nm].detach().clone()
        perm_rows = np.random.permutation(users)
        run_pass(dec_opt, 0.0)
        v = metrics(score, vip, vix, vtip, vtix, items)["ndcg@100"][0]
        if v > best:
            best, best_epoch = v, epoch + 1
            best_state = {k: x.detach().clone() for k, x in t.items()}
        print("  seed %d epoch %2d validation ndcg@100 %.4f%s" % (seed, epoch + 1, v, " *" if best_epoch == epoch + 1 else ""), flush=True)
    t = best_state
    tip, tix = read_csr(os.path.join(d, "test"))
    ttip, ttix = read_csr(os.path.join(d, "test"), "targets_")
    result = metrics(score, tip, tix, ttip, ttix, items)
    return {"seed": seed, "best_epoch": best_epoch, "validation_ndcg100": best, "test": result, "seconds": time.time() - started}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seeds", default="98765,1,2")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    runs = [train(a.dir, int(s), a.epochs) for s in a.seeds.split(",")]
    for r in runs:
        print("seed %d: best epoch %d, test %s" % (r["seed"], r["best_epoch"], ", ".join("%s %.4f" % (k, v[0]) for k, v in r["test"].items())))
    summary = {}
    for k in runs[0]["test"]:
        vals = [r["test"][k][0] for r in runs]
        summary[k] = {"mean": float(np.mean(vals)), "seed_se": float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else 0.0,
                      "user_se": float(np.mean([r["test"][k][1] for r in runs]))}
        print("%s: %.4f (seeds: +- %.4f; users: +- %.4f)" % (k, summary[k]["mean"], summary[k]["seed_se"], summary[k]["user_se"]))
    if a.json:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
        wanted = {"avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve", "sve2"}
        flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith(("flags", "Features"))), [])
        with open(a.json, "w") as f:
            json.dump({"benchmark": "pytorch RecVAE, authors' schedule", "torch": torch.__version__,
                       "machine": {"cpu": cpu, "cores": os.cpu_count(), "flags": " ".join(x for x in flags if x in wanted)},
                       "threads": a.threads, "epochs": a.epochs, "command": " ".join(sys.argv), "runs": runs, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
