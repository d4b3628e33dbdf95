#!/usr/bin/env python3
"""C-MAPSS FD001 benchmark, the Python half: dtwin's ROC-AUC against scikit-learn's.

Reads the CSVs that run.sh writes (train and test with a header `unit,cycle,setting1..3,<sensor
keys>`), NASA's RUL_FD001.txt and, when given, dtwin's score of each test engine's last cycle.
It then:

  (a) computes dtwin's ROC-AUC over the 100 test engines' last cycles, truth = RUL <= horizon;
  (b) trains scikit-learn's RandomForestClassifier on the same training rows, the same features
      and the same label, with dtwin's forest parameters, and scores the same last cycles;
  (c) does the same on the raw sensor values only (no windows), as a second baseline;

and prints the AUCs side by side, as a table and as JSON in --out.

The features are the profile's (services/lib/profile/profiles/cmapss_fd001.toml), computed in
pandas as dtwin-windows' ProfileWindow computes them, and named the same: per sensor the latest
value `{s}`, `{s}_{mean,std,slope}_{short}` over the engine's last `short` cycles (population
std, least-squares slope per cycle) and `{s}_dev_{long}`, the latest value minus the mean of the
last `long` cycles. A row is cold (left out of training) until `short` cycles were seen. The label
of a training row: its engine's failure (the last cycle) follows strictly after it and within
`horizon` cycles, i.e. 0 < last - cycle <= horizon, which is RUL <= horizon on the test engines;
as in dtwin, a row whose horizon runs past the data without a failure (each engine's last row,
the failure itself) is left out.

Standalone: without scikit-learn and pandas it makes a venv under the cache dir
($DTWIN_BENCH_CACHE, default ~/.cache/dtwin-bench), installs them there from PyPI and runs itself
again with the venv's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = ["scikit-learn==1.7.2", "pandas==2.3.3"]

# dtwin train's forest defaults (services/lib/ml/src/forest.rs ForestParams::default).
DTWIN_FOREST = dict(
    n_estimators=100,
    max_depth=10,
    min_samples_split=10,
    min_samples_leaf=5,
    max_features="sqrt",
    class_weight="balanced",
    bootstrap=True,
)


def ensure_packages() -> None:
    """Re-runs this script in a venv that has scikit-learn and pandas, when they are missing."""
    try:
        import pandas  # noqa: F401
        import sklearn  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("DTWIN_BENCH_IN_VENV"):
        sys.exit("baseline.py: scikit-learn or pandas still missing inside the venv")
    cache = Path(os.environ.get("DTWIN_BENCH_CACHE", Path.home() / ".cache" / "dtwin-bench"))
    venv = cache / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        try:
            import ensurepip  # noqa: F401
            import venv as _venv  # noqa: F401
        except ImportError:
            sys.exit(
                "baseline.py: python3 cannot make a venv (python3-venv missing). Run\n"
                "    sudo apt-get install -y python3-venv\n"
                "(or install scikit-learn and pandas into this python yourself) and try again."
            )
        print(f"baseline.py: creating {venv} for {', '.join(REQUIREMENTS)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / "requirements.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(REQUIREMENTS):
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
            check=True,
        )
        stamp.write_text("\n".join(REQUIREMENTS))
    env = dict(os.environ, DTWIN_BENCH_IN_VENV="1")
    os.execve(str(py), [str(py), os.path.abspath(__file__), *sys.argv[1:]], env)


def load_profile(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        sys.exit("baseline.py needs Python 3.11 or later (tomllib)")
    with open(path, "rb") as f:
        p = tomllib.load(f)
    w = p.get("windows", {})
    return {
        "sensors": [(s["name"], s.get("key", s["name"])) for s in p["sensor"]],
        "short": w.get("short"),
        "long": w.get("long"),
        "stats": w.get("short_stats") or ["mean", "std", "slope"],
        "time": w.get("time", []),
    }


def rolling_slope(x, n: int):
    """Least-squares slope per step over the last n values (NaN with fewer than two)."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    for i in range(1, len(x)):
        y = x[max(0, i - n + 1) : i + 1]
        t = np.arange(len(y), dtype=float)
        tc = t - t.mean()
        out[i] = (tc * (y - y.mean())).sum() / (tc * tc).sum()
    return out


def features(df, prof: dict, id_col: str = "unit", time_col: str = "cycle"):
    """The profile's feature columns for every row of df (sorted by id, then time), plus a
    `cold` column; named and ordered as dtwin's profile_feature_names."""
    import numpy as np
    import pandas as pd

    if prof["time"]:
        sys.exit("baseline.py: time windows are not reproduced here (the C-MAPSS profile has none)")
    df = df.sort_values([id_col, time_col], kind="stable").reset_index(drop=True)
    g = df.groupby(id_col, sort=False)
    cols = {}
    short, long_ = prof["short"], prof["long"]
    for name, key in prof["sensors"]:
        x = df[key].astype(float)
        cols[name] = x
        if short:
            roll = g[key].rolling(short, min_periods=1)
            for stat in prof["stats"]:
                col = f"{name}_{stat}_{short}"
                if stat == "mean":
                    v = roll.mean()
                elif stat == "std":
                    v = roll.std(ddof=0)
                elif stat == "min":
                    v = roll.min()
                elif stat == "max":
                    v = roll.max()
                elif stat == "slope":
                    v = g[key].transform(lambda s: pd.Series(rolling_slope(s.values, short), index=s.index))
                    cols[col] = v.values
                    continue
                else:
                    sys.exit(f"baseline.py: unknown statistic {stat}")
                cols[col] = v.reset_index(level=0, drop=True).sort_index().values
        if long_:
            m = g[key].rolling(long_, min_periods=1).mean().reset_index(level=0, drop=True).sort_index()
            cols[f"{name}_dev_{long_}"] = (x - m).values
    out = pd.DataFrame(cols)
    out.insert(0, time_col, df[time_col].values)
    out.insert(0, id_col, df[id_col].values)
    seen = g.cumcount().values + 1
    out["cold"] = seen < (short or 1)
    return out, [c for c in cols]


def label(train, horizon: int, id_col: str = "unit", time_col: str = "cycle"):
    """(label, known) per row, as dtwin's pipeline::plant::dataset: positive when the engine's
    failure (its last cycle) follows strictly after the row and within `horizon` readings;
    known when positive or when `horizon` more readings follow (else the row is left out: here
    only each engine's last row, the failure itself)."""
    g = train.groupby(id_col)[time_col]
    last = g.transform("max")
    left = last - train[time_col]
    positive = (left > 0) & (left <= horizon)
    i = g.cumcount()
    n = g.transform("size")
    known = positive | (i + horizon < n)
    return positive.astype(int).values, known.values


def check_parity(model: dict, rows, names) -> dict:
    """Compares these features with dtwin's: the artifact's drift reference holds, per feature,
    decile edges over its training rows and the share of rows in each bin (a value's bin is the
    number of edges <= it, ml/src/reference.rs); the same rows here must fill the same bins. Exits when they do not (the comparison would be meaningless)."""
    import numpy as np

    if model["feature_names"] != names:
        sys.exit("baseline.py: dtwin's model has other feature names than the profile gives here")
    if model["reference"]["rows"] != len(rows):
        sys.exit(f"baseline.py: dtwin trained on {model['reference']['rows']} rows, this split has {len(rows)}")
    worst, worst_name, compared = 0.0, None, 0
    for feat in model["reference"]["features"]:
        edges = np.asarray(feat["edges"], dtype=float)
        if len(edges) == 0:  # constant feature
            continue
        x = rows[feat["name"]].to_numpy(dtype=np.float32).astype(float)
        share = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1) / len(x)
        d = float(np.abs(share - np.asarray(feat["proportions"])).max())
        compared += 1
        if d > worst:
            worst, worst_name = d, feat["name"]
    if worst > 0.01:
        sys.exit(f"baseline.py: feature {worst_name} differs from dtwin's (decile shares differ by {worst:.3f})")
    return {"features_compared": compared, "max_share_difference": worst, "worst_feature": worst_name}


def last_rows(df, id_col: str = "unit", time_col: str = "cycle"):
    return df.sort_values([id_col, time_col]).groupby(id_col, sort=True).tail(1).sort_values(id_col)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, type=Path, help="train CSV (run.sh's train_FD001.csv)")
    ap.add_argument("--test", required=True, type=Path, help="test CSV (run.sh's test_FD001.csv)")
    ap.add_argument("--rul", required=True, type=Path, help="NASA's RUL_FD001.txt")
    ap.add_argument("--profile", required=True, type=Path, help="the machine profile (TOML)")
    ap.add_argument("--ours", type=Path, help="dtwin's last-cycle scores: CSV unit,cycle,probability[,alarm]")
    ap.add_argument("--ours-all", type=Path, help="dtwin's scores of every test row (predict's CSV)")
    ap.add_argument("--ours-seeds", type=Path, nargs="*", default=[], help="predict's CSVs of dtwin trained with other --seed values")
    ap.add_argument("--model", type=Path, help="dtwin's model.json: check these features against its training reference")
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=5, help="forest seeds per scikit-learn row (mean, sd)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--extra", type=Path, help="JSON merged into the results (run.sh: command, train output)")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    prof = load_profile(args.profile)
    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    rul = np.loadtxt(args.rul, dtype=float)

    t0 = time.time()
    ftrain, names = features(train, prof)
    ftest, _ = features(test, prof)
    train_sorted = train.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
    y_all, known = label(train_sorted, args.horizon)
    keep = ~ftrain["cold"].values & known
    X, y = ftrain.loc[keep, names], y_all[keep]

    lt = last_rows(ftest)
    units = lt["unit"].to_numpy()
    if len(units) != len(rul) or not np.array_equal(units, np.arange(1, len(rul) + 1)):
        sys.exit(f"baseline.py: test engines {units[:3]}... do not match the {len(rul)} RUL lines")
    truth = (rul <= args.horizon).astype(int)
    # Every warm test row, as a second, larger test: its RUL is the engine's final RUL plus the
    # cycles to the engine's last test cycle.
    fall = ftest.loc[~ftest["cold"].values].reset_index(drop=True)
    rul_all = rul[fall["unit"].to_numpy() - 1] + fall.groupby("unit")["cycle"].transform("max") - fall["cycle"]
    truth_all = (rul_all <= args.horizon).astype(int).to_numpy()
    raw = [name for name, _ in prof["sensors"]]
    feat_secs = time.time() - t0

    # dtwin train splits by machine (pipeline::train::twin_split, machines in order of first
    # appearance): index % 5 == 0 test, == 1 validation (the threshold), the rest (60 engines)
    # train the forest it ships. The like-for-like baseline fits on those 60 engines.
    units_train = ftrain.loc[keep, "unit"].to_numpy()
    dtwin_fit = (units_train - 1) % 5 >= 2

    def forest_auc(cols, params, seeds, rows=None):
        rows = np.ones(len(y), dtype=bool) if rows is None else rows
        aucs, aucs_all, secs = [], [], []
        for seed in range(seeds):
            t = time.time()
            rf = RandomForestClassifier(random_state=seed, n_jobs=-1, **params)
            rf.fit(X[cols].to_numpy()[rows], y[rows])
            p = rf.predict_proba(lt[cols].to_numpy())[:, 1]
            secs.append(time.time() - t)
            aucs.append(roc_auc_score(truth, p))
            aucs_all.append(roc_auc_score(truth_all, rf.predict_proba(fall[cols].to_numpy())[:, 1]))
        return {
            "roc_auc": float(np.mean(aucs)),
            "roc_auc_sd": float(np.std(aucs)),
            "roc_auc_per_seed": [round(a, 4) for a in aucs],
            "roc_auc_all_rows": float(np.mean(aucs_all)),
            "roc_auc_all_rows_sd": float(np.std(aucs_all)),
            "features": len(cols),
            "train_rows": int(rows.sum()),
            "fit_seconds": round(float(np.mean(secs)), 2),
        }

    parity = None
    if args.model:
        parity = check_parity(json.loads(args.model.read_text()), ftrain.loc[keep].loc[dtwin_fit], names)
        print(
            f"features against dtwin's training reference: {parity['features_compared']} non-constant features, "
            f"largest difference in a decile share {parity['max_share_difference']:.4f} ({parity['worst_feature']})"
        )

    rows = []
    ours = None
    if args.ours:
        o = pd.read_csv(args.ours).sort_values("unit")
        if not np.array_equal(o["unit"].to_numpy(), units):
            sys.exit(f"baseline.py: {args.ours} does not hold one row per test engine 1..{len(rul)}")
        if not np.array_equal(o["cycle"].to_numpy(), lt["cycle"].to_numpy()):
            sys.exit(f"baseline.py: {args.ours} is not each test engine's last cycle")
        prob = o["probability"].astype(float).to_numpy()
        if np.isnan(prob).any():
            sys.exit(f"baseline.py: {int(np.isnan(prob).sum())} of dtwin's last-cycle probabilities are empty")
        ours = {"roc_auc": float(roc_auc_score(truth, prob)), "features": len(names), "train_rows": int(dtwin_fit.sum())}
        if "alarm" in o.columns:
            alarm = o["alarm"].astype(str).str.lower().isin(["1", "true", "yes"]).to_numpy()
            ours["alarms"] = int(alarm.sum())
            ours["alarms_true"] = int((alarm & (truth == 1)).sum())
        if args.ours_all:
            a = pd.read_csv(args.ours_all).rename(columns={"machine_id": "unit", "ts": "cycle"})
            a = fall[["unit", "cycle"]].merge(a[["unit", "cycle", "probability"]], on=["unit", "cycle"], how="left")
            pa = a["probability"].astype(float).to_numpy()
            if np.isnan(pa).any():
                sys.exit(f"baseline.py: {int(np.isnan(pa).sum())} warm test rows have no dtwin probability")
            ours["roc_auc_all_rows"] = float(roc_auc_score(truth_all, pa))
            # What an alarm threshold buys on the test rows: the share of readings within the
            # horizon that alarm, and the engines with an alarm more than `horizon` cycles ahead.
            units_all = fall["unit"].to_numpy()
            model_th = json.loads(args.model.read_text())["threshold"] if args.model else None
            ths = sorted({0.5, 0.7, 0.9, 0.99, *([round(model_th, 3)] if model_th else [])})
            ours["thresholds"] = [
                {
                    "threshold": th,
                    "recall_rows_within_horizon": float((pa[truth_all == 1] >= th).mean()),
                    "engines_alarmed_early": int(len(set(units_all[(pa >= th) & (truth_all == 0)]))),
                    "false_alarm_rows": int(((pa >= th) & (truth_all == 0)).sum()),
                }
                for th in ths
            ]
        rows.append(("dtwin (profile features)", ours))
        if args.ours_seeds:
            aucs, aucs_all = [], []
            for f in args.ours_seeds:
                a = pd.read_csv(f).rename(columns={"machine_id": "unit", "ts": "cycle"})
                a = fall[["unit", "cycle"]].merge(a[["unit", "cycle", "probability"]], on=["unit", "cycle"], how="left")
                pa = a["probability"].astype(float).to_numpy()
                last = (a.groupby("unit")["cycle"].transform("max") == a["cycle"]).to_numpy()
                aucs.append(roc_auc_score(truth, pa[last]))
                aucs_all.append(roc_auc_score(truth_all, pa))
            rows.append(
                (
                    f"dtwin, {len(aucs)} other forest seeds",
                    {
                        "roc_auc": float(np.mean(aucs)),
                        "roc_auc_sd": float(np.std(aucs)),
                        "roc_auc_per_seed": [round(x, 4) for x in aucs],
                        "roc_auc_all_rows": float(np.mean(aucs_all)),
                        "roc_auc_all_rows_sd": float(np.std(aucs_all)),
                        "features": len(names),
                        "train_rows": int(dtwin_fit.sum()),
                    },
                )
            )
    rows.append(
        ("scikit-learn RF, same features, dtwin's 60 training engines", forest_auc(names, DTWIN_FOREST, args.seeds, dtwin_fit))
    )
    rows.append(("scikit-learn RF, same features, all 100 engines", forest_auc(names, DTWIN_FOREST, args.seeds)))
    rows.append(
        ("scikit-learn RF, raw sensors only, dtwin's 60 training engines", forest_auc(raw, DTWIN_FOREST, args.seeds, dtwin_fit))
    )
    rows.append(("scikit-learn RF, raw sensors only, all 100 engines", forest_auc(raw, DTWIN_FOREST, args.seeds)))

    n_pos = int(truth.sum())
    print(
        f"\nC-MAPSS FD001, fails within {args.horizon} cycles, scored on each test engine's last cycle "
        f"({len(truth)} engines, {n_pos} positive)"
    )
    print(
        f"training: {len(y)} rows of {len(y_all)} (warm, label known; {int(y.sum())} positive), "
        f"{len(names)} features; scikit-learn {sklearn.__version__}, mean over {args.seeds} seeds"
    )
    print(
        f"second test: every warm test row ({len(truth_all)} rows, {int(truth_all.sum())} positive), "
        f"truth = its RUL <= {args.horizon}"
    )
    print(
        "\n| model | features | training rows | ROC-AUC, last cycles | ROC-AUC, all test rows |\n"
        "| --- | ---: | ---: | ---: | ---: |"
    )
    for name, r in rows:
        sd = f" ± {r['roc_auc_sd']:.3f}" if "roc_auc_sd" in r else ""
        sd_all = f" ± {r['roc_auc_all_rows_sd']:.4f}" if "roc_auc_all_rows_sd" in r else ""
        all_rows = f"{r['roc_auc_all_rows']:.4f}{sd_all}" if "roc_auc_all_rows" in r else "-"
        print(f"| {name} | {r['features']} | {r['train_rows']} | {r['roc_auc']:.3f}{sd} | {all_rows} |")
    if ours and "alarms" in ours:
        print(f"\ndtwin alarms at its threshold: {ours['alarms']} engines, {ours['alarms_true']} of {n_pos} true")
    if ours and "thresholds" in ours:
        print(
            f"\ndtwin on every warm test row: | threshold | readings within {args.horizon} cycles that alarm "
            f"| engines alarmed more than {args.horizon} cycles ahead (false-alarm readings) |"
        )
        for t in ours["thresholds"]:
            print(
                f"| {t['threshold']:.3f} | {t['recall_rows_within_horizon']:.0%} "
                f"| {t['engines_alarmed_early']} ({t['false_alarm_rows']}) |"
            )

    results = {
        "dataset": "C-MAPSS FD001",
        "horizon_cycles": args.horizon,
        "test_engines": len(truth),
        "test_positive": n_pos,
        "test_rows_warm": int(len(truth_all)),
        "test_rows_warm_positive": int(truth_all.sum()),
        "train_rows": int(len(y)),
        "train_rows_all": int(len(y_all)),
        "train_positive": int(y.sum()),
        "features": names,
        "forest_params": DTWIN_FOREST,
        "seeds": args.seeds,
        "sklearn_version": sklearn.__version__,
        "pandas_version": pd.__version__,
        "feature_seconds": round(feat_secs, 2),
        "feature_parity": parity,
        "results": {name: r for name, r in rows},
    }
    if args.extra and args.extra.exists():
        results.update(json.loads(args.extra.read_text()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults: {args.out}")


if __name__ == "__main__":
    ensure_packages()
    main()
