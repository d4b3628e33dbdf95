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

Standalone: without scikit-learn it makes a venv under $DTWIN_BENCH_CACHE (default
~/.cache/dtwin-bench), installs it there from PyPI and runs itself again with the venv's Python
(the same venv as baseline.py).
"""

from __future__ import annotations

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


def main() -> None:
    ensure_packages()
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
