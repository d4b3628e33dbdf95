#!/usr/bin/env python3
"""A plant's export: dtwin's held-out ROC-AUC beside scikit-learn's on the same split and label.

    python3 benchmarks/plant/baseline.py DATA.csv --id-column machineID --time-column datetime \
        --events failures.csv --event-label-column failure --horizon 24h [--dtwin target/release/dtwin]

The question an integrator asks: does dtwin rank my held-out machines at least as well as a
scikit-learn RandomForest would? Both sides use the same rows and label as `dtwin train
--profile` (pipeline::plant): machines in order of first appearance, index % 5 == 0 held out,
== 1 validation, the rest training; a reading is positive when a failure of its machine follows
strictly after it within the horizon; readings whose horizon runs past the data without a
failure are left out. scikit-learn gets dtwin's forest parameters on (a) the raw sensor
values and (b) rolling features like the drafted profile's (mean/std over the last 3 and 24
readings). dtwin drafts its profile with `dtwin profile init` and trains with `dtwin train`.

A benchmark, not a test. Without scikit-learn and pandas it makes a venv under
$DTWIN_BENCH_CACHE (default ~/.cache/dtwin-bench) and installs them there from PyPI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = ["scikit-learn==1.7.2", "pandas==2.3.3"]
FOREST = dict(n_estimators=100, max_depth=10, min_samples_split=10, min_samples_leaf=5,
              max_features="sqrt", class_weight="balanced", n_jobs=-1, random_state=42)


def ensure_packages() -> None:
    try:
        import pandas  # noqa: F401
        import sklearn  # noqa: F401
        return
    except ImportError:
        pass
    cache = Path(os.environ.get("DTWIN_BENCH_CACHE", Path.home() / ".cache" / "dtwin-bench"))
    venv = cache / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        except subprocess.CalledProcessError:
            sys.exit("python3 -m venv failed: install Debian's python3-venv (apt-get install -y python3-venv)")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    os.execv(str(python), [str(python), *sys.argv])


def horizon_seconds(h: str) -> tuple[str, float]:
    if re.fullmatch(r"\d+", h):
        return "readings", float(h)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", h)
    if not m:
        sys.exit(f"--horizon {h!r}: a number of readings or a duration such as 24h")
    return "time", float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--id-column", required=True)
    ap.add_argument("--time-column", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--event-label-column", required=True)
    ap.add_argument("--horizon", default="24h")
    ap.add_argument("--dtwin", default="target/release/dtwin")
    ap.add_argument("--out", help="results as JSON")
    a = ap.parse_args()
    ensure_packages()
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    df = pd.read_csv(a.data)
    ev = pd.read_csv(a.events)
    kind, h = horizon_seconds(a.horizon)
    numeric = lambda s: pd.api.types.is_numeric_dtype(s)
    time_is_number = numeric(df[a.time_column])
    to_t = (lambda s: s.astype(float)) if time_is_number else (
        lambda s: pd.to_datetime(s).astype("int64") / 1e9)
    df["_t"] = to_t(df[a.time_column])
    ev["_t"] = to_t(ev[a.time_column])
    sensors = [c for c in df.columns if c not in (a.id_column, a.time_column, "_t") and numeric(df[c])]
    order = list(dict.fromkeys(df[a.id_column].tolist()))
    role = {m: i % 5 for i, m in enumerate(order)}
    df = df.sort_values([a.id_column, "_t"], kind="stable").reset_index(drop=True)
    g = df.groupby(a.id_column, sort=False)
    df["_i"] = g.cumcount()
    df["_n"] = g["_t"].transform("size")
    df["_last"] = g["_t"].transform("max")
    fails = {m: np.sort(e["_t"].to_numpy()) for m, e in ev.groupby(a.id_column)}
    y = np.zeros(len(df), dtype=bool)
    keep = np.zeros(len(df), dtype=bool)
    for m, rows in g.indices.items():
        t = df["_t"].to_numpy()[rows]
        f = fails.get(m, np.array([]))
        if kind == "time":
            nxt = np.searchsorted(f, t, side="right")
            pos = (nxt < len(f)) & (f[np.minimum(nxt, len(f) - 1)] <= t + h) if len(f) else np.zeros(len(t), bool)
            known = t + h <= t[-1]
        else:
            steps = np.searchsorted(t, f, side="left")
            idx = np.arange(len(t))
            pos = np.array([((steps > i) & (steps <= i + h)).any() for i in idx])
            known = idx + h < len(t)
        y[rows] = pos
        keep[rows] = pos | known
    feats = {}
    for s in sensors:
        gs = g[s]
        feats[f"{s}_mean_3"] = gs.transform(lambda x: x.rolling(3, min_periods=1).mean())
        feats[f"{s}_std_3"] = gs.transform(lambda x: x.rolling(3, min_periods=1).std(ddof=0))
        feats[f"{s}_mean_24"] = gs.transform(lambda x: x.rolling(24, min_periods=1).mean())
        feats[f"{s}_std_24"] = gs.transform(lambda x: x.rolling(24, min_periods=1).std(ddof=0))
    rolled = pd.DataFrame(feats)
    keep &= df["_i"].to_numpy() >= 2  # dtwin's drafted short window (3) is warm
    r = df[a.id_column].map(role).to_numpy()
    train, test = keep & (r >= 2), keep & (r == 0)
    results = {"rows": int(keep.sum()), "positives": int(y[keep].sum()),
               "test_machines": sum(1 for v in role.values() if v == 0)}
    for name, x in [("sklearn_raw_sensors", df[sensors]), ("sklearn_rolling_3_24", pd.concat([df[sensors], rolled], axis=1))]:
        x = x.fillna(x.median())
        rf = RandomForestClassifier(**FOREST).fit(x[train], y[train])
        results[name] = roc_auc_score(y[test], rf.predict_proba(x[test])[:, 1])
    if Path(a.dtwin).exists():
        with tempfile.TemporaryDirectory() as d:
            prof = Path(d) / "plant.toml"
            subprocess.run([a.dtwin, "profile", "init", a.data, "--id-column", a.id_column,
                            "--time-column", a.time_column, "--out", str(prof)], check=True,
                           capture_output=True)
            out = subprocess.run([a.dtwin, "train", a.data, "--profile", str(prof), "--id-column",
                                  a.id_column, "--time-column", a.time_column, "--events", a.events,
                                  "--event-label-column", a.event_label_column, "--horizon",
                                  a.horizon, "--out", str(Path(d) / "m.json"), "--json"],
                                 check=True, capture_output=True, text=True)
            results["dtwin"] = json.loads(out.stdout)["roc_auc"]
    else:
        print(f"no dtwin binary at {a.dtwin}: sklearn only (cargo build --release -p dtwin)", file=sys.stderr)
    print(f"{'model':<24} held-out ROC-AUC")
    for k in ("dtwin", "sklearn_raw_sensors", "sklearn_rolling_3_24"):
        if k in results:
            print(f"{k:<24} {results[k]:.4f}")
    print(f"({results['rows']} rows, {results['positives']} positive, {results['test_machines']} held-out machines)")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
