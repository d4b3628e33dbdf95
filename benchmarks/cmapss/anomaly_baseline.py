"""scikit-learn's IsolationForest on the rows and features of dtwin-ml's cmapss_anomaly example.

    cargo run --release -p dtwin-ml --example cmapss_anomaly   # writes target/cmapss_anomaly/features.csv
    python3 benchmarks/cmapss/anomaly_baseline.py

Reads the example's features.csv (set,unit,cycle,label,f0..f41), so both sides score identical
inputs: fits IsolationForest(n_estimators=100, max_samples=256, max_features=1.0) on the
"fit_split" rows (first 50 cycles of training engines 1-80) and scores "heldout" (every cycle of
engines 81-100, label RUL <= 30), then fits on "fit_all" (first 50 cycles of all 100 training
engines) and scores "test_last" (each test engine's last cycle, label true RUL <= 30). Prints
ROC-AUC of the anomaly score (-score_samples, higher = more anomalous) per seed and the median.

Environment: FEATURES (default target/cmapss_anomaly/features.csv from the repository root),
SEEDS (default 1,2,3), TREES (100), SAMPLES (256).

With --cli it compares with `dtwin train --kind anomaly` on the profile's features instead (the
vectors the feature service computes live, recomputed in pandas by baseline.py's `features`):

    python3 benchmarks/cmapss/anomaly_baseline.py --cli --train train_FD001.csv --test test_FD001.csv \
        --rul RUL_FD001.txt --profile services/lib/profile/profiles/cmapss_fd001.toml \
        [--healthy-first 50] [--horizon 30] [--fails-within 30] [--model anomaly.json]

(CSVs as benchmarks/cmapss/run.sh converts NASA's files.) It fits on the rows dtwin fits on: the
warm cycles among the first `healthy-first` cycles of the training engines dtwin trains on (index
% 5 >= 2 in file order; 60 engines), scores every warm cycle of the held-out engines (index % 5
== 0) against "the failure follows within `horizon` cycles" (dtwin's label, `--run-to-failure`)
and each test engine's last cycle against true RUL <= `fails-within`, and prints ROC-AUC per seed
and the median. With --model (dtwin's anomaly artifact) it first checks these features against
the artifact's drift reference (every warm row of those 60 engines).

Standalone: without scikit-learn it makes a venv under $DTWIN_BENCH_CACHE (default
~/.cache/dtwin-bench), installs it there from PyPI and runs itself again with the venv's Python
(the same venv as baseline.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = ["scikit-learn==1.7.2", "pandas==2.3.3"]


def ensure_packages() -> None:
    """Re-runs this script in a venv that has scikit-learn, when it is missing."""
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import sklearn  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("DTWIN_BENCH_IN_VENV"):
        sys.exit("anomaly_baseline.py: scikit-learn still missing inside the venv")
    cache = Path(os.environ.get("DTWIN_BENCH_CACHE", Path.home() / ".cache" / "dtwin-bench"))
    venv = cache / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"anomaly_baseline.py: creating {venv} for {', '.join(REQUIREMENTS)}", file=sys.stderr)
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


def cli_main() -> None:
    """--cli: scikit-learn on the rows and features of `dtwin train --kind anomaly` (module doc)."""
    import argparse

    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from baseline import check_parity, features, label, last_rows, load_profile

    ap = argparse.ArgumentParser(description="scikit-learn's IsolationForest on dtwin's profile features")
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--train", required=True, type=Path)
    ap.add_argument("--test", required=True, type=Path)
    ap.add_argument("--rul", required=True, type=Path)
    ap.add_argument("--profile", required=True, type=Path)
    ap.add_argument("--healthy-first", type=float, default=50)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--fails-within", type=float, default=30)
    ap.add_argument("--model", type=Path, help="dtwin's anomaly artifact: check the features against its reference")
    args = ap.parse_args()
    seeds = [int(s) for s in os.environ.get("SEEDS", "1,2,3").split(",")]
    trees = int(os.environ.get("TREES", "100"))
    samples = int(os.environ.get("SAMPLES", "256"))

    prof = load_profile(args.profile)
    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    rul = np.loadtxt(args.rul, dtype=float)
    ftrain, names = features(train, prof)
    ftest, _ = features(test, prof)
    train_sorted = train.sort_values(["unit", "cycle"], kind="stable").reset_index(drop=True)
    positive, known = label(train_sorted, args.horizon)
    warm = ~ftrain["cold"].to_numpy()
    rows = warm & known
    order = {u: i for i, u in enumerate(pd.unique(train["unit"]))}
    role = ftrain["unit"].map(order).to_numpy() % 5
    since = ftrain["cycle"].to_numpy() - ftrain.groupby("unit")["cycle"].transform("min").to_numpy()
    fit = rows & (role >= 2) & (since < args.healthy_first)
    held = rows & (role == 0)
    if args.model:
        parity = check_parity(json.loads(args.model.read_text()), ftrain.loc[rows & (role >= 2)], names)
        print(
            f"features against dtwin's training reference: {parity['features_compared']} non-constant features, "
            f"largest difference in a decile share {parity['max_share_difference']:.4f} ({parity['worst_feature']})"
        )
    lt = last_rows(ftest)
    if len(lt) != len(rul):
        sys.exit(f"anomaly_baseline.py: {len(lt)} test engines but {len(rul)} RUL lines")
    truth = rul <= args.fails_within
    x_fit = ftrain.loc[fit, names].to_numpy(dtype=np.float32)
    x_held = ftrain.loc[held, names].to_numpy(dtype=np.float32)
    x_last = lt[names].to_numpy(dtype=np.float32)
    for what, x in (("fit", x_fit), ("held-out", x_held), ("last", x_last)):
        if np.isnan(x).any():
            sys.exit(f"anomaly_baseline.py: the {what} rows have missing values")
    print(
        f"scikit-learn {sklearn.__version__} IsolationForest(n_estimators={trees}, max_samples={samples}); "
        f"{len(names)} features; fit {len(x_fit)} rows (first {args.healthy_first:g} cycles of "
        f"{len(set(ftrain.loc[fit, 'unit']))} engines), held-out {len(x_held)} rows "
        f"({int(positive[held].sum())} within {args.horizon} cycles of failure), {len(x_last)} test engines "
        f"({int(truth.sum())} fail within {args.fails_within:g})"
    )
    h, t = [], []
    for seed in seeds:
        model = IsolationForest(n_estimators=trees, max_samples=samples, random_state=seed, n_jobs=1)
        model.fit(x_fit)
        a = roc_auc_score(positive[held], -model.score_samples(x_held))
        b = roc_auc_score(truth, -model.score_samples(x_last))
        print(f"seed {seed}: held-out every-cycle ROC-AUC {a:.4f}; test last-cycle ROC-AUC {b:.4f}")
        h.append(a)
        t.append(b)
    print(
        f"median over {len(seeds)} seeds: held-out every-cycle ROC-AUC {np.median(h):.4f}, "
        f"test last-cycle ROC-AUC {np.median(t):.4f}"
    )


def main() -> None:
    ensure_packages()
    if "--cli" in sys.argv[1:]:
        cli_main()
        return
    import numpy as np
    import sklearn
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    root = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("FEATURES", root / "target" / "cmapss_anomaly" / "features.csv"))
    if not path.exists():
        sys.exit(
            f"anomaly_baseline.py: {path} is missing; run "
            "'cargo run --release -p dtwin-ml --example cmapss_anomaly' first"
        )
    seeds = [int(s) for s in os.environ.get("SEEDS", "1,2,3").split(",")]
    trees = int(os.environ.get("TREES", "100"))
    samples = int(os.environ.get("SAMPLES", "256"))

    with open(path) as f:
        header = f.readline().strip().split(",")
    sets = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[0], dtype=str)
    num = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, len(header)), dtype=np.float32)
    label, x = num[:, 2].astype(bool), num[:, 3:]
    rows = {s: sets == s for s in ("fit_split", "heldout", "fit_all", "test_last")}
    print(
        f"scikit-learn {sklearn.__version__} IsolationForest(n_estimators={trees}, max_samples={samples}); "
        f"{x.shape[1]} features; "
        + ", ".join(f"{s} {m.sum()} rows" for s, m in rows.items())
    )

    def auc(fit: str, score: str, seed: int) -> tuple[float, float]:
        model = IsolationForest(n_estimators=trees, max_samples=samples, random_state=seed, n_jobs=1)
        started = time.perf_counter()
        model.fit(x[rows[fit]])
        secs = time.perf_counter() - started
        s = -model.score_samples(x[rows[score]])
        return roc_auc_score(label[rows[score]], s), secs

    held, test = [], []
    for seed in seeds:
        a, secs = auc("fit_split", "heldout", seed)
        b, _ = auc("fit_all", "test_last", seed)
        print(f"seed {seed}: held-out ROC-AUC {a:.4f}; test last-cycle ROC-AUC {b:.4f}; fit {secs * 1e3:.0f} ms")
        held.append(a)
        test.append(b)
    print(
        f"median over {len(seeds)} seeds: held-out every-cycle ROC-AUC {np.median(held):.4f}, "
        f"test last-cycle ROC-AUC {np.median(test):.4f}"
    )


if __name__ == "__main__":
    main()
