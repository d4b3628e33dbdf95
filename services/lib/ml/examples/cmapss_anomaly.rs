//! Anomaly detection without failure history on NASA C-MAPSS FD001: an [`IsolationForest`]
//! trained only on each engine's first `HEALTHY` (50) cycles, taken as healthy.
//!
//! `cargo run --release -p dtwin-ml --example cmapss_anomaly` (a few seconds).
//!
//! Features per cycle (42), as in the `cmapss_rul` example but without the cycle number (which
//! would flag every late cycle by itself): for each of the 14 informative sensors (2, 3, 4, 7,
//! 8, 9, 11, 12, 13, 14, 15, 17, 20, 21) the mean over the last 5 and the last `WINDOW` (30)
//! cycles and the least-squares slope over the last `WINDOW` cycles (fewer at an engine's
//! start). Two measurements, each ROC-AUC of the anomaly score for "fails within `HORIZON`
//! (30) cycles", per seed and the median over seeds:
//!
//! - **held-out engines, every cycle**: train on the first 50 cycles of training engines
//!   1-`SPLIT` (80); score every cycle of engines `SPLIT`+1-100; a row's label is
//!   `RUL <= 30`, RUL being the cycles left before the engine's last (failing) cycle, which
//!   has RUL 0. Also the share of those rows flagged at the threshold that flags 1 % of the
//!   training rows ([`threshold_for_rate`]).
//! - **test engines, last cycle** (the measure): train on the first 50 cycles of all
//!   100 training engines; score the last cycle of each of the 100 test engines; label: true
//!   RUL (`RUL_FD001.txt`) `<= 30`.
//!
//! Writes `OUT/features.csv` (default `target/cmapss_anomaly`): `set,unit,cycle,label,f0..f41`
//! with set `fit_split` (training rows of the first measurement), `heldout`, `fit_all`
//! (training rows of the second) and `test_last`, so that `benchmarks/cmapss/anomaly_baseline.py`
//! scores scikit-learn's IsolationForest on identical inputs.
//!
//! Environment: `CMAPSS_DIR` (default `../shared/datasets/cmapss` from the repository root),
//! `SEEDS` (default `1,2,3`), `TREES` (100), `SAMPLES` (max_samples, 256), `HEALTHY` (50),
//! `SPLIT` (80), `HORIZON` (30), `WINDOW` (30), `OUT`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dtwin_ml::metrics::roc_auc;
use dtwin_ml::{threshold_for_rate, IsolationForest, IsolationParams};
use ndarray::Array2;

/// Sensor numbers (1-based, as NASA numbers them) that vary on FD001.
const SENSORS: [usize; 14] = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21];
/// The short mean's window.
const SHORT: usize = 5;
/// Features per cycle.
const N_FEAT: usize = 3 * SENSORS.len();

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not valid"))
        })
        .unwrap_or(default)
}

/// One engine's cycles: the informative sensors' values per cycle, in cycle order.
type Engine = Vec<[f32; 14]>;

/// Read NASA's whitespace-separated file: unit, cycle, 3 settings, 21 sensors per line.
fn read_engines(path: &Path) -> BTreeMap<u32, Engine> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut engines: BTreeMap<u32, Engine> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let v: Vec<f32> = line
            .split_whitespace()
            .map(|t| t.parse().expect("a number"))
            .collect();
        if v.is_empty() {
            continue;
        }
        assert_eq!(v.len(), 26, "line {} of {}", n + 1, path.display());
        let cycles = engines.entry(v[0] as u32).or_default();
        assert_eq!(v[1] as usize, cycles.len() + 1, "cycles in order");
        cycles.push(std::array::from_fn(|k| v[4 + SENSORS[k]]));
    }
    engines
}

/// Mean of `xs`.
fn mean(xs: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = xs.fold((0.0f64, 0usize), |(s, n), x| (s + f64::from(x), n + 1));
    (s / n.max(1) as f64) as f32
}

/// Features of cycle `t` (0-based) of `engine`; see the module docs (`cmapss_rul`'s without
/// the cycle number).
fn features(engine: &Engine, t: usize, window: usize, out: &mut Vec<f32>) {
    let from = (t + 1).saturating_sub(window);
    let w = &engine[from..=t];
    let short = &engine[(t + 1).saturating_sub(SHORT)..=t];
    let n = w.len() as f64;
    let tbar = (n - 1.0) / 2.0;
    let sxx: f64 = (0..w.len()).map(|i| (i as f64 - tbar).powi(2)).sum();
    for k in 0..SENSORS.len() {
        out.push(mean(short.iter().map(|c| c[k])));
        let m = mean(w.iter().map(|c| c[k]));
        out.push(m);
        let slope = if sxx > 0.0 {
            w.iter()
                .enumerate()
                .map(|(i, c)| (i as f64 - tbar) * f64::from(c[k] - m))
                .sum::<f64>()
                / sxx
        } else {
            0.0
        };
        out.push(slope as f32);
    }
}

/// Rows of one set: features, and per row the unit, cycle (1-based) and label.
#[derive(Default)]
struct Set {
    x: Vec<f32>,
    meta: Vec<(u32, usize, bool)>,
}

impl Set {
    fn push(&mut self, engine: &Engine, unit: u32, t: usize, label: bool, window: usize) {
        features(engine, t, window, &mut self.x);
        self.meta.push((unit, t + 1, label));
    }

    fn array(&self) -> Array2<f32> {
        Array2::from_shape_vec((self.meta.len(), N_FEAT), self.x.clone()).expect("rows × features")
    }

    fn labels(&self) -> Vec<bool> {
        self.meta.iter().map(|m| m.2).collect()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let root = root.canonicalize().unwrap_or(root);
    let dir = std::env::var_os("CMAPSS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/datasets/cmapss"));
    let files = ["train_FD001.txt", "test_FD001.txt", "RUL_FD001.txt"].map(|f| dir.join(f));
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        eprintln!(
            "cmapss_anomaly: {} is missing; set CMAPSS_DIR to the folder of NASA's C-MAPSS files \
             (see docs/cmapss.md#reproduce). Skipping.",
            missing.display()
        );
        return;
    }
    let seeds: Vec<u64> = env("SEEDS", "1,2,3".to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SEEDS: numbers separated by commas")
        })
        .collect();
    let window: usize = env("WINDOW", 30);
    let healthy: usize = env("HEALTHY", 50);
    let split: u32 = env("SPLIT", 80);
    let horizon: usize = env("HORIZON", 30);
    let params = IsolationParams {
        n_trees: env("TREES", 100),
        max_samples: env("SAMPLES", 256),
        ..IsolationParams::default()
    };
    let out_dir = std::env::var_os("OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/cmapss_anomaly"));

    let train = read_engines(&files[0]);
    let test = read_engines(&files[1]);
    let truth: Vec<f32> = std::fs::read_to_string(&files[2])
        .expect("readable RUL file")
        .split_whitespace()
        .map(|t| t.parse().expect("a number"))
        .collect();
    assert_eq!(truth.len(), test.len(), "one true RUL per test engine");

    let (mut fit_split, mut heldout, mut fit_all, mut test_last) = (
        Set::default(),
        Set::default(),
        Set::default(),
        Set::default(),
    );
    for (&unit, engine) in &train {
        for t in 0..engine.len().min(healthy) {
            fit_all.push(engine, unit, t, false, window);
            if unit <= split {
                fit_split.push(engine, unit, t, false, window);
            }
        }
        if unit > split {
            for t in 0..engine.len() {
                let rul = engine.len() - 1 - t;
                heldout.push(engine, unit, t, rul <= horizon, window);
            }
        }
    }
    for ((&unit, engine), &rul) in test.iter().zip(&truth) {
        test_last.push(
            engine,
            unit,
            engine.len() - 1,
            rul <= horizon as f32,
            window,
        );
    }
    let (y_held, y_test) = (heldout.labels(), test_last.labels());
    println!(
        "C-MAPSS FD001, {N_FEAT} features, window {window}, horizon {horizon}; {params:?}\n\
         held-out: fit on the first {healthy} cycles of engines 1-{split} ({} rows), score all \
         {} cycles of engines {}-100 ({} within {horizon} cycles of failure)\n\
         test: fit on the first {healthy} cycles of all {} training engines ({} rows), score \
         the last cycle of {} test engines ({} with true RUL <= {horizon})",
        fit_split.meta.len(),
        heldout.meta.len(),
        split + 1,
        y_held.iter().filter(|&&b| b).count(),
        train.len(),
        fit_all.meta.len(),
        test_last.meta.len(),
        y_test.iter().filter(|&&b| b).count(),
    );
    write_features(
        &out_dir,
        &[
            ("fit_split", &fit_split),
            ("heldout", &heldout),
            ("fit_all", &fit_all),
            ("test_last", &test_last),
        ],
    );

    let (xs, xh, xa, xt) = (
        fit_split.array(),
        heldout.array(),
        fit_all.array(),
        test_last.array(),
    );
    let (mut auc_held, mut auc_test) = (Vec::new(), Vec::new());
    for &seed in &seeds {
        let p = IsolationParams {
            seed,
            ..params.clone()
        };
        let started = Instant::now();
        let model = IsolationForest::fit(xs.view(), &p, &|| {}).expect("valid data");
        let secs = started.elapsed().as_secs_f64();
        let sh = model.score(xh.view());
        let a = roc_auc(&y_held, &sh).expect("both labels");
        let thr = threshold_for_rate(&model.score(xs.view()), 0.01).expect("scores");
        let share = |want: bool| {
            let rows: Vec<_> = sh.iter().zip(&y_held).filter(|(_, &y)| y == want).collect();
            rows.iter().filter(|(&s, _)| s > thr).count() as f64 / rows.len() as f64
        };
        let (tpr, fpr) = (share(true), share(false));
        let model = IsolationForest::fit(xa.view(), &p, &|| {}).expect("valid data");
        let st = model.score(xt.view());
        let b = roc_auc(&y_test, &st).expect("both labels");
        println!(
            "seed {seed}: held-out ROC-AUC {a:.4} (threshold {thr:.3} at 1 % of training rows \
             flags {:.1} % of rows within {horizon} cycles, {:.1} % of the others); test \
             last-cycle ROC-AUC {b:.4}; fit {:.0} ms",
            100.0 * tpr,
            100.0 * fpr,
            secs * 1e3
        );
        auc_held.push(a);
        auc_test.push(b);
    }
    println!(
        "median over {} seeds: held-out every-cycle ROC-AUC {:.4}, test last-cycle ROC-AUC {:.4}",
        seeds.len(),
        median(&auc_held),
        median(&auc_test)
    );
}

/// All rows of all sets as one CSV, for the scikit-learn baseline.
fn write_features(dir: &Path, sets: &[(&str, &Set)]) {
    std::fs::create_dir_all(dir).expect("output directory");
    let mut csv = String::from("set,unit,cycle,label");
    for k in 0..N_FEAT {
        let _ = write!(csv, ",f{k}");
    }
    csv.push('\n');
    for (name, set) in sets {
        for (r, &(unit, cycle, label)) in set.meta.iter().enumerate() {
            let _ = write!(csv, "{name},{unit},{cycle},{}", u8::from(label));
            for v in &set.x[r * N_FEAT..(r + 1) * N_FEAT] {
                let _ = write!(csv, ",{v}");
            }
            csv.push('\n');
        }
    }
    let path = dir.join("features.csv");
    std::fs::write(&path, csv).expect("writable");
    println!("wrote {}", path.display());
}
