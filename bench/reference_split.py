#!/usr/bin/env python3
"""The reference preprocessing of Liang et al. (dawenl/vae_cf notebook, as RecoTour runs it) with pandas
and numpy, on ML-1M's pairs file, plus the notebook's metrics for popularity and EASE (lambda 300).

It prints, and writes to test/fixtures/ml1m-reference-split.json, the SHA-256 of every part of the split
in a canonical text form (users in order, the item vocabulary, (user, item) pairs of every matrix in uid
order then file order), so that the vaecf tests can check that our split is identical without
redistributing MovieLens data.

usage: python3 bench/reference_split.py [../shared/data/ml-1m/ml1m_pairs_rating_ge4.tsv]   (numpy, pandas, scipy)
"""
import hashlib
import json
import os
import sys

import numpy as np
import pandas as pd
from scipy import sparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "ml-1m", "ml1m_pairs_rating_ge4.tsv")
N_HELDOUT = 600

raw_data = pd.read_csv(PATH, sep="\t", header=0)
if "rating" in raw_data.columns:
    raw_data = raw_data[raw_data["rating"] > 3.5]


def get_count(tp, id):
    return tp.groupby(id).size()


def filter_triplets(tp, min_uc=5, min_sc=0):
    if min_sc > 0:
        itemcount = get_count(tp, "movieId")
        tp = tp[tp["movieId"].isin(itemcount.index[itemcount >= min_sc])]
    if min_uc > 0:
        usercount = get_count(tp, "userId")
        tp = tp[tp["userId"].isin(usercount.index[usercount >= min_uc])]
    return tp, get_count(tp, "userId"), get_count(tp, "movieId")


raw_data, user_activity, item_popularity = filter_triplets(raw_data)
unique_uid = user_activity.index
np.random.seed(98765)
idx_perm = np.random.permutation(unique_uid.size)
unique_uid = unique_uid[idx_perm]
n_users = unique_uid.size
tr_users = unique_uid[: (n_users - N_HELDOUT * 2)]
vd_users = unique_uid[(n_users - N_HELDOUT * 2): (n_users - N_HELDOUT)]
te_users = unique_uid[(n_users - N_HELDOUT):]
train_plays = raw_data.loc[raw_data["userId"].isin(tr_users)]
unique_sid = pd.unique(train_plays["movieId"])
show2id = dict((sid, i) for (i, sid) in enumerate(unique_sid))
profile2id = dict((pid, i) for (i, pid) in enumerate(unique_uid))


def split_train_test_proportion(data, test_prop=0.2):
    tr_list, te_list = [], []
    np.random.seed(98765)
    for _, group in data.groupby("userId"):
        n_items_u = len(group)
        if n_items_u >= 5:
            idx = np.zeros(n_items_u, dtype="bool")
            idx[np.random.choice(n_items_u, size=int(test_prop * n_items_u), replace=False).astype("int64")] = True
            tr_list.append(group[np.logical_not(idx)])
            te_list.append(group[idx])
        else:
            tr_list.append(group)
    return pd.concat(tr_list), pd.concat(te_list)


vad_plays = raw_data.loc[raw_data["userId"].isin(vd_users)]
vad_plays = vad_plays.loc[vad_plays["movieId"].isin(unique_sid)]
vad_plays_tr, vad_plays_te = split_train_test_proportion(vad_plays)
test_plays = raw_data.loc[raw_data["userId"].isin(te_users)]
test_plays = test_plays.loc[test_plays["movieId"].isin(unique_sid)]
test_plays_tr, test_plays_te = split_train_test_proportion(test_plays)


def numerize(tp):
    return pd.DataFrame({"uid": [profile2id[x] for x in tp["userId"]], "sid": [show2id[x] for x in tp["movieId"]],
                         "user": tp["userId"].values, "item": tp["movieId"].values})


def canonical_pairs(tp):
    t = numerize(tp).reset_index(drop=True)
    t["order"] = np.arange(len(t))
    t = t.sort_values(["uid", "order"], kind="stable")
    return "\n".join("%s %s" % (u, i) for u, i in zip(t["user"], t["item"]))


def sha(text):
    return hashlib.sha256(text.encode("utf8")).hexdigest()


parts = {
    "trainUsers": "\n".join(map(str, tr_users)),
    "validationUsers": "\n".join(map(str, vd_users)),
    "testUsers": "\n".join(map(str, te_users)),
    "itemIds": "\n".join(map(str, unique_sid)),
    "train": canonical_pairs(train_plays),
    "validationFoldIn": canonical_pairs(vad_plays_tr),
    "validationTargets": canonical_pairs(vad_plays_te),
    "testFoldIn": canonical_pairs(test_plays_tr),
    "testTargets": canonical_pairs(test_plays_te),
}
n_items = len(unique_sid)


def load_tr_te(tp_tr, tp_te):
    a, b = numerize(tp_tr), numerize(tp_te)
    start_idx = min(a["uid"].min(), b["uid"].min())
    end_idx = max(a["uid"].max(), b["uid"].max())
    shape = (end_idx - start_idx + 1, n_items)
    tr = sparse.csr_matrix((np.ones(len(a)), (a["uid"] - start_idx, a["sid"])), dtype="float64", shape=shape)
    te = sparse.csr_matrix((np.ones(len(b)), (b["uid"] - start_idx, b["sid"])), dtype="float64", shape=shape)
    return tr, te


def ndcg_at_k(X_pred, heldout, k=100):
    batch_users = X_pred.shape[0]
    idx_topk_part = np.argpartition(-X_pred, k, axis=1)
    topk_part = X_pred[np.arange(batch_users)[:, np.newaxis], idx_topk_part[:, :k]]
    idx_part = np.argsort(-topk_part, axis=1)
    idx_topk = idx_topk_part[np.arange(batch_users)[:, np.newaxis], idx_part]
    tp = 1.0 / np.log2(np.arange(2, k + 2))
    DCG = (heldout[np.arange(batch_users)[:, np.newaxis], idx_topk].toarray() * tp).sum(axis=1)
    IDCG = np.array([(tp[: min(n, k)]).sum() for n in heldout.getnnz(axis=1)])
    return DCG / IDCG


def recall_at_k(X_pred, heldout, k=100):
    batch_users = X_pred.shape[0]
    idx = np.argpartition(-X_pred, k, axis=1)
    X_pred_binary = np.zeros_like(X_pred, dtype=bool)
    X_pred_binary[np.arange(batch_users)[:, np.newaxis], idx[:, :k]] = True
    X_true_binary = (heldout > 0).toarray()
    tmp = (np.logical_and(X_true_binary, X_pred_binary).sum(axis=1)).astype(np.float32)
    return tmp / np.minimum(k, X_true_binary.sum(axis=1))


def metrics(scores, fold_in, targets):
    scores = scores.copy()
    scores[fold_in.nonzero()] = -np.inf
    has = targets.getnnz(axis=1) > 0
    scores, targets = scores[has], targets[has]
    out = {}
    for name, fn, k in (("recall@20", recall_at_k, 20), ("recall@50", recall_at_k, 50), ("ndcg@100", ndcg_at_k, 100)):
        v = fn(scores, targets, k)
        out[name] = {"mean": float(np.mean(v)), "stderr": float(np.std(v) / np.sqrt(len(v)))}
    return out


t = numerize(train_plays)
X = sparse.csr_matrix((np.ones(len(t)), (t["uid"], t["sid"])), dtype="float64", shape=(t["uid"].max() + 1, n_items))
te_tr, te_te = load_tr_te(test_plays_tr, test_plays_te)
popularity = np.asarray(X.sum(axis=0)).ravel()
pop_metrics = metrics(np.tile(popularity, (te_tr.shape[0], 1)), te_tr, te_te)
G = (X.T @ X).toarray()
G[np.diag_indices(n_items)] += 300.0
P = np.linalg.inv(G)
B = P / (-np.diag(P))
B[np.diag_indices(n_items)] = 0.0
ease_metrics = metrics(np.asarray(te_tr @ B), te_tr, te_te)

result = {
    "source": os.path.basename(PATH),
    "heldOutUsers": N_HELDOUT,
    "counts": {"clicks": int(len(raw_data)), "users": int(n_users), "items": int(item_popularity.size),
               "trainUsers": int(len(tr_users)), "trainItems": int(n_items), "trainClicks": int(len(train_plays))},
    "sha256": {k: sha(v) for k, v in parts.items()},
    "test": {"popularity": pop_metrics, "ease-300": ease_metrics},
    "generatedBy": "bench/reference_split.py with numpy %s, pandas %s" % (np.__version__, pd.__version__),
}
print(json.dumps(result, indent=2))
with open(os.path.join(ROOT, "test", "fixtures", "ml1m-reference-split.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
