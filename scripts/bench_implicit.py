#!/usr/bin/env python3
"""Reference numbers from the `implicit` library on reco's evaluation protocol, on this machine.

Same protocol as `reco evaluate movielens` (src/eval): ratings >= 4 positive; per-user order by
(timestamp, item id), first floor(0.8 n) train, rest test; full ranking minus training items;
NDCG@10 with binary relevance averaged over users with test items. Fit times are single-threaded
and the median of `--repeat` fits.

    pip install implicit==0.7.3 scipy
    python3 scripts/bench_implicit.py ../shared/datasets/ml-100k
"""
import argparse, math, statistics, sys, time
from collections import defaultdict

import numpy as np
import scipy.sparse as sp
import implicit

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--repeat", type=int, default=5)
args = ap.parse_args()

by_user = defaultdict(list)
items = set()
with open(f"{args.dir}/u.item", encoding="latin-1") as f:
    for line in f:
        if line.strip():
            items.add(int(line.split("|")[0]))
with open(f"{args.dir}/u.data") as f:
    for line in f:
        u, i, r, t = map(int, line.split("\t"))
        if r >= 4:
            by_user[u].append((t, i))
users = sorted(by_user)
uidx = {u: n for n, u in enumerate(users)}
item_list = sorted(items)
iidx = {i: n for n, i in enumerate(item_list)}
rows, cols, test = [], [], {}
for u in users:
    ev = sorted(set(by_user[u]))
    n_train = int(math.floor(len(ev) * 0.8))
    for t, i in ev[:n_train]:
        rows.append(uidx[u]); cols.append(iidx[i])
    test[uidx[u]] = {iidx[i] for _, i in ev[n_train:]}
ui = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(item_list)))

def ndcg(model):
    ids, _ = model.recommend(np.arange(ui.shape[0]), ui, N=10, filter_already_liked_items=True)
    total, n = 0.0, 0
    for u in range(ui.shape[0]):
        t = test[u] - set(ui[u].indices)
        if not t:
            continue
        dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(ids[u]) if i in t)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(10, len(t))))
        total += dcg / idcg; n += 1
    return total / n

def bench(name, make):
    times = []
    for _ in range(args.repeat):
        m = make()
        s = time.perf_counter(); m.fit(ui, show_progress=False); times.append(time.perf_counter() - s)
    print(f"{name:<28} NDCG@10 {ndcg(m):.4f}  fit median {statistics.median(times):.3f} s  (1 thread, {args.repeat} fits)")

print(f"implicit {implicit.__version__}, {ui.shape[0]} users x {ui.shape[1]} items, {ui.nnz} training positives")
# reco's ALS confidence is 1 + alpha*w with alpha 2; implicit's is alpha*w, so alpha 3 here.
bench("ALS 64f 15it reg0.05 a3", lambda: implicit.cpu.als.AlternatingLeastSquares(
    factors=64, iterations=15, regularization=0.05, alpha=3.0, num_threads=1, random_state=42,
    calculate_training_loss=False))
bench("ALS 64f 15it (defaults)", lambda: implicit.cpu.als.AlternatingLeastSquares(
    factors=64, iterations=15, num_threads=1, random_state=42, calculate_training_loss=False))
bench("BPR 64f 100it lr0.05", lambda: implicit.cpu.bpr.BayesianPersonalizedRanking(
    factors=64, iterations=100, learning_rate=0.05, regularization=0.01, num_threads=1, random_state=42))
