"""scikit-learn's RandomForestRegressor on the features of dtwin-ml's cmapss_rul example.

    python3 benchmarks/cmapss/rul_baseline.py     # needs numpy and scikit-learn

Same rows, target (RUL capped at 125), features (per informative sensor: mean of the last 5
and last 30 cycles, least-squares slope over the last 30; plus the cycle number) and forest
parameters (300 trees, max depth 20, min_samples_split 10, min_samples_leaf 5, max_features
0.33) as `cargo run --release -p dtwin-ml --example cmapss_rul`; scores the last cycle of each
test engine against RUL_FD001.txt. Environment: CMAPSS_DIR, SEEDS (default 1,2,3).
"""

import os
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestRegressor

SENSORS = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21]
SHORT, WINDOW, CAP = 5, 30, 125.0

here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get("CMAPSS_DIR", os.path.join(here, "../../../shared/datasets/cmapss"))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,2,3").split(",")]


def engines(name):
    raw = np.loadtxt(os.path.join(data, name))
    out = {}
    for u in np.unique(raw[:, 0]).astype(int):
        rows = raw[raw[:, 0] == u]
        out[u] = rows[:, [4 + s for s in SENSORS]]
    return out


def features(x, t):
    w = x[max(0, t + 1 - WINDOW) : t + 1]
    short = x[max(0, t + 1 - SHORT) : t + 1]
    n = len(w)
    i = np.arange(n) - (n - 1) / 2
    sxx = (i * i).sum()
    m = w.mean(axis=0)
    slope = (i[:, None] * (w - m)).sum(axis=0) / sxx if sxx > 0 else np.zeros(len(SENSORS))
    f = np.column_stack([short.mean(axis=0), m, slope]).ravel()
    return np.append(f, t + 1)


def nasa(d):
    return np.where(d < 0, np.exp(-d / 13) - 1, np.exp(d / 10) - 1).sum()


if not os.path.exists(os.path.join(data, "train_FD001.txt")):
    sys.exit(f"rul_baseline.py: no C-MAPSS files in {data} (set CMAPSS_DIR)")
train, test = engines("train_FD001.txt"), engines("test_FD001.txt")
truth = np.loadtxt(os.path.join(data, "RUL_FD001.txt"))
X = np.array([features(x, t) for x in train.values() for t in range(len(x))])
y = np.array([min(len(x) - 1 - t, CAP) for x in train.values() for t in range(len(x))])
Xt = np.array([features(x, len(x) - 1) for x in test.values()])
res = []
for seed in seeds:
    rf = RandomForestRegressor(
        n_estimators=300, max_depth=20, min_samples_split=10, min_samples_leaf=5,
        max_features=0.33, n_jobs=-1, random_state=seed,
    )
    t0 = time.time()
    rf.fit(X, y)
    p = rf.predict(Xt)
    d = p - truth
    r = (np.sqrt((d * d).mean()), nasa(d))
    res.append(r)
    print(f"seed {seed}: RMSE {r[0]:.2f}, NASA score {r[1]:.0f}; fit {time.time() - t0:.1f} s")
med = np.median(np.array(res), axis=0)
print(f"median over {len(res)} seeds: RMSE {med[0]:.2f}, NASA score {med[1]:.0f}")
