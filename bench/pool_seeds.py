"""Pool RecVAE runs over seeds from several result files and compare vaecf with PyTorch.

Reads vaecf's quality files (node dist/bench/quality.js --models recvae --seeds ...: rows named
"recvae seed N") and the PyTorch reference's files (bench/torch_recvae_train.py --json), and prints per
metric each side's mean over seeds with its standard error over seeds, the difference, and the
difference in units of each side's standard error and of the combined one (sqrt(se_a^2 + se_b^2)).
Validation NDCG@100 (each run's best epoch) the same way.

usage: python3 bench/pool_seeds.py --vaecf A.json [B.json ...] --torch C.json [D.json ...] [--json OUT]
"""
import argparse
import json
import math
import statistics


def vaecf_runs(path):
    rows = [r for r in json.load(open(path))["rows"] if " seed " in r["model"]]
    return [{"seed": r["model"].split(" seed ")[1], "recall@20": r["summary"]["recall@20"]["mean"],
             "recall@50": r["summary"]["recall@50"]["mean"], "ndcg@100": r["summary"]["ndcg@100"]["mean"],
             "validation ndcg@100": r["detail"]["bestValidation"]} for r in rows]


def torch_runs(path):
    return [{"seed": str(r["seed"]), "recall@20": r["test"]["recall@20"][0], "recall@50": r["test"]["recall@50"][0],
             "ndcg@100": r["test"]["ndcg@100"][0], "validation ndcg@100": r["validation_ndcg100"]} for r in json.load(open(path))["runs"]]


def mean_se(values):
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaecf", nargs="+", required=True)
    ap.add_argument("--torch", nargs="+", required=True)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ours = [r for p in a.vaecf for r in vaecf_runs(p)]
    theirs = [r for p in a.torch for r in torch_runs(p)]
    print("vaecf: %d runs (seeds %s); PyTorch: %d runs (seeds %s)" % (len(ours), ",".join(r["seed"] for r in ours), len(theirs),
                                                                       ",".join(r["seed"] for r in theirs)))
    out = {"command": "python3 bench/pool_seeds.py --vaecf %s --torch %s" % (" ".join(a.vaecf), " ".join(a.torch)),
           "vaecfRuns": len(ours), "torchRuns": len(theirs), "metrics": {}}
    for metric in ["recall@20", "recall@50", "ndcg@100", "validation ndcg@100"]:
        (ma, sa), (mb, sb) = mean_se([r[metric] for r in ours]), mean_se([r[metric] for r in theirs])
        diff = ma - mb
        row = {"vaecf": [ma, sa], "torch": [mb, sb], "difference": diff, "inVaecfSe": diff / sa, "inTorchSe": diff / sb,
               "inCombinedSe": diff / math.hypot(sa, sb)}
        out["metrics"][metric] = row
        print("%-20s vaecf %.4f +- %.4f  PyTorch %.4f +- %.4f  difference %+.4f = %+.2f vaecf SE, %+.2f PyTorch SE, %+.2f combined SE" % (
            metric, ma, sa, mb, sb, diff, row["inVaecfSe"], row["inTorchSe"], row["inCombinedSe"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
