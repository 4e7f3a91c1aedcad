#!/usr/bin/env python3
"""Makes test/fixtures/torch-multvae.safetensors: the state_dict of a small Mult-VAE written the way the
PyTorch reference implementations write it (vae-cf-pytorch / RecoTour: q_layers.N / p_layers.N,
nn.Linear weights [out, in]), saved with the `safetensors` package, and the PyTorch evaluation-mode
scores (F.normalize, no dropout, z = mu, tanh between layers) of a few histories in
test/fixtures/torch-multvae-scores.json. usage: python3 bench/make_torch_fixture.py (torch, safetensors)
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MultVAE(nn.Module):  # as in vae-cf-pytorch (the code RecoTour's PyTorch version follows)
    def __init__(self, p_dims, q_dims=None):
        super().__init__()
        self.p_dims = p_dims
        self.q_dims = q_dims or p_dims[::-1]
        temp_q_dims = self.q_dims[:-1] + [self.q_dims[-1] * 2]
        self.q_layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(temp_q_dims[:-1], temp_q_dims[1:])])
        self.p_layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(self.p_dims[:-1], self.p_dims[1:])])

    def forward(self, x):  # evaluation mode
        h = F.normalize(x)
        for i, layer in enumerate(self.q_layers):
            h = layer(h)
            if i != len(self.q_layers) - 1:
                h = torch.tanh(h)
            else:
                mu = h[:, : self.q_dims[-1]]
        h = mu
        for i, layer in enumerate(self.p_layers):
            h = layer(h)
            if i != len(self.p_layers) - 1:
                h = torch.tanh(h)
        return h


torch.manual_seed(7)
items = 30
model = MultVAE([8, 16, items])
with torch.no_grad():
    for p in model.parameters():
        p.uniform_(-0.5, 0.5)
histories = [[0, 1, 2], [5, 9, 17, 29], [12]]
x = torch.zeros(len(histories), items)
for u, h in enumerate(histories):
    x[u, h] = 1.0
with torch.no_grad():
    scores = model(x)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(ROOT, "test", "fixtures", "torch-multvae.safetensors"))
with open(os.path.join(ROOT, "test", "fixtures", "torch-multvae-scores.json"), "w") as f:
    json.dump({"items": items, "histories": histories, "scores": scores.tolist(), "torch": torch.__version__}, f)
print("wrote the fixture:", list(model.state_dict().keys()))
