#!/usr/bin/env python3
"""PyTorch on the CPU running the reference formulation of Mult-VAE (RecoTour / the paper's notebook:
dense batch, F.normalize, dropout, nn.Linear + tanh, log_softmax times x, KL, torch.optim.Adam) on a CSR
click matrix written by bench/bench.js, timing N batches after a warm-up; prints JSON.

usage: python3 bench/torch_epoch.py DIR [--batches N] [--threads N] [--batch-size 500]
       python3 bench/torch_epoch.py DIR --epochs N [--validation VDIR]   (whole epochs, each followed
       by the validation pass of RecoTour's training loop: dense fold-in batches, seen items masked,
       top-100, NDCG@100 against the held-out items)
DIR holds indptr.i64, indices.i32 and shape.txt ("users items"); VDIR the same for the validation users'
fold-in clicks plus targets_indptr.i64 and targets_indices.i32 for their held-out items.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultVAE(nn.Module):
    def __init__(self, items, hidden=600, latent=200):
        super().__init__()
        self.latent = latent
        self.q = nn.ModuleList([nn.Linear(items, hidden), nn.Linear(hidden, 2 * latent)])
        self.p = nn.ModuleList([nn.Linear(latent, hidden), nn.Linear(hidden, items)])
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = self.drop(F.normalize(x))
        h = torch.tanh(self.q[0](h))
        h = self.q[1](h)
        mu, logvar = h[:, : self.latent], h[:, self.latent:]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = torch.tanh(self.p[0](z))
        return self.p[1](h), mu, logvar


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--validation", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="tf32: TF32 matrix products; bf16: torch.autocast(bfloat16) (CUDA)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    users, items = map(int, open(os.path.join(a.dir, "shape.txt")).read().split())
    indptr = np.fromfile(os.path.join(a.dir, "indptr.i64"), dtype=np.int64)
    indices = np.fromfile(os.path.join(a.dir, "indices.i32"), dtype=np.int32).astype(np.int64)
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    model = MultVAE(items).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = np.random.default_rng(1).permutation(users)
    steps_per_epoch = (users + a.batch_size - 1) // a.batch_size

    def step(b):
        rows = order[(b * a.batch_size) % (users - a.batch_size):][: a.batch_size]
        # The batch made dense on the device in one scatter (faster than scipy's toarray() in the
        # reference code, so the comparison favours PyTorch).
        lengths = indptr[rows + 1] - indptr[rows]
        cols = np.concatenate([indices[indptr[u]: indptr[u + 1]] for u in rows])
        row_ids = np.repeat(np.arange(len(rows)), lengths)
        x = torch.zeros(len(rows), items, device=dev)
        x[torch.from_numpy(row_ids).to(dev), torch.from_numpy(cols).to(dev)] = 1.0
        opt.zero_grad()
        with autocast:
            logits, mu, logvar = model(x)
        logits, mu, logvar = logits.float(), mu.float(), logvar.float()
        nll = -torch.mean(torch.sum(F.log_softmax(logits, 1) * x, -1))
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
        loss = nll + 0.2 * kl
        loss.backward()
        opt.step()
        return loss.item()

    def dense(ip, ix, rows):
        lengths = ip[rows + 1] - ip[rows]
        cols = np.concatenate([ix[ip[u]: ip[u + 1]] for u in rows])
        row_ids = np.repeat(np.arange(len(rows)), lengths)
        x = torch.zeros(len(rows), items, device=dev)
        x[torch.from_numpy(row_ids).to(dev), torch.from_numpy(cols).to(dev)] = 1.0
        return x

    def validate(vdir):
        # RecoTour's evaluation: eval mode (no dropout, z = mu), fold-in clicks masked, NDCG@100.
        vip = np.fromfile(os.path.join(vdir, "indptr.i64"), dtype=np.int64)
        vix = np.fromfile(os.path.join(vdir, "indices.i32"), dtype=np.int32).astype(np.int64)
        tip = np.fromfile(os.path.join(vdir, "targets_indptr.i64"), dtype=np.int64)
        tix = np.fromfile(os.path.join(vdir, "targets_indices.i32"), dtype=np.int32).astype(np.int64)
        n = len(vip) - 1
        model.eval()
        discount = 1.0 / np.log2(np.arange(2, 102))
        total = 0.0
        with torch.no_grad():
            for b0 in range(0, n, a.batch_size):
                rows = np.arange(b0, min(n, b0 + a.batch_size))
                x = dense(vip, vix, rows)
                h = F.normalize(x)
                h = torch.tanh(model.q[0](h))
                mu = model.q[1](h)[:, : model.latent]
                logits = model.p[1](torch.tanh(model.p[0](mu)))
                logits[x > 0] = -float("inf")
                top = torch.topk(logits, 100, dim=1).indices.cpu().numpy()
                for r, u in enumerate(rows):
                    held = set(tix[tip[u]: tip[u + 1]].tolist())
                    if not held:
                        continue
                    dcg = sum(discount[j] for j, i in enumerate(top[r]) if i in held)
                    idcg = discount[: min(len(held), 100)].sum()
                    total += dcg / idcg
        model.train()
        return total / n

    if a.epochs > 0:
        # Whole epochs (every user once, shuffled), each followed by the validation pass when given.
        times, scores = [], []
        for epoch in range(a.epochs):
            t = time.perf_counter()
            perm = np.random.default_rng(epoch).permutation(users)
            for b0 in range(0, users, a.batch_size):
                rows = perm[b0: b0 + a.batch_size]
                x = dense(indptr, indices, rows)
                opt.zero_grad()
                logits, mu, logvar = model(x)
                nll = -torch.mean(torch.sum(F.log_softmax(logits, 1) * x, -1))
                kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
                (nll + 0.2 * kl).backward()
                opt.step()
            if a.validation:
                scores.append(validate(a.validation))
            times.append(time.perf_counter() - t)
        print(json.dumps({"torch": torch.__version__, "device": str(dev), "precision": a.precision, "threads": a.threads,
                          "epochs": a.epochs, "seconds_per_epoch": times, "validation_ndcg100": scores}))
        return

    step(0)  # warm-up
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for b in range(1, a.batches + 1):
        step(b)
    sync()
    per_batch = (time.perf_counter() - t) / a.batches
    print(json.dumps({"torch": torch.__version__, "device": str(dev), "precision": a.precision, "threads": a.threads, "batches_timed": a.batches,
                      "seconds_per_batch": per_batch, "steps_per_epoch": steps_per_epoch,
                      "seconds_per_epoch_extrapolated": per_batch * steps_per_epoch}))


if __name__ == "__main__":
    main()
