//! Remaining useful life on NASA C-MAPSS FD001 with the project's forest regressor.
//!
//! `cargo run --release -p dtwin-ml --example cmapss_rul` (about a minute on 2 cores).
//!
//! Trains [`ForestRegressor`] on every cycle of the 100 training engines, the target being the
//! cycles left before the engine's last one, capped at `CAP` (125), and scores the last cycle
//! of each of the 100 test engines against `RUL_FD001.txt`: RMSE and NASA's asymmetric score
//! per seed, then their median. Features per cycle, over the 14 informative sensors (2, 3, 4,
//! 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21; the other 7 and the 3 settings are constant on
//! FD001, which has one operating condition): the mean over the last 5 and the last `WINDOW`
//! (30) cycles and the least-squares slope over the last `WINDOW` cycles (fewer at an engine's
//! start), plus the cycle number.
//!
//! Environment: `CMAPSS_DIR` (default `../shared/datasets/cmapss` from the repository root),
//! `SEEDS` (default `1,2,3`), `TREES` (300), `LEAF` (min_samples_leaf, 5), `MAX_FEATURES`
//! (fraction, 0.33), `WINDOW` (30), `CAP` (125), `OUT` (default `target/cmapss_rul`: per-engine
//! `predictions.csv` and `predicted_vs_true.svg` of the first seed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dtwin_ml::metrics::{nasa_score, rmse};
use dtwin_ml::{ForestRegressor, MaxFeatures, RegressorParams};
use ndarray::Array2;

/// Sensor numbers (1-based, as NASA numbers them) that vary on FD001.
const SENSORS: [usize; 14] = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21];
/// The short mean's window.
const SHORT: usize = 5;

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

/// Features of cycle `t` (0-based) of `engine`; see the module docs.
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
    out.push((t + 1) as f32);
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
            "cmapss_rul: {} is missing; set CMAPSS_DIR to the folder of NASA's C-MAPSS files \
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
    let cap: f32 = env("CAP", 125.0);
    let params = RegressorParams {
        n_trees: env("TREES", 300),
        min_samples_leaf: env("LEAF", 5),
        min_samples_split: 2 * env("LEAF", 5),
        max_features: MaxFeatures::Fraction(env("MAX_FEATURES", 0.33)),
        max_depth: env("DEPTH", 20),
        ..RegressorParams::default()
    };
    let out_dir = std::env::var_os("OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/cmapss_rul"));

    let train = read_engines(&files[0]);
    let test = read_engines(&files[1]);
    let truth: Vec<f32> = std::fs::read_to_string(&files[2])
        .expect("readable RUL file")
        .split_whitespace()
        .map(|t| t.parse().expect("a number"))
        .collect();
    assert_eq!(truth.len(), test.len(), "one true RUL per test engine");

    let n_feat = 3 * SENSORS.len() + 1;
    let mut xs = Vec::new();
    let mut y = Vec::new();
    for engine in train.values() {
        for t in 0..engine.len() {
            features(engine, t, window, &mut xs);
            y.push(((engine.len() - 1 - t) as f32).min(cap));
        }
    }
    let x = Array2::from_shape_vec((y.len(), n_feat), xs).expect("rows × features");
    let mut xt = Vec::new();
    for engine in test.values() {
        features(engine, engine.len() - 1, window, &mut xt);
    }
    let xt = Array2::from_shape_vec((test.len(), n_feat), xt).expect("rows × features");
    let capped: Vec<f32> = truth.iter().map(|&t| t.min(cap)).collect();
    println!(
        "C-MAPSS FD001: {} training rows ({} engines), {} test engines, {} features, cap {cap}, \
         window {window}; {params:?}",
        y.len(),
        train.len(),
        test.len(),
        n_feat
    );

    let mut results = Vec::new();
    for (s, &seed) in seeds.iter().enumerate() {
        let p = RegressorParams {
            seed,
            ..params.clone()
        };
        let started = Instant::now();
        let forest = ForestRegressor::fit(x.view(), &y, &p, &|| {}).expect("valid data");
        let secs = started.elapsed().as_secs_f64();
        let pred = forest.predict(xt.view());
        let (e, score) = (rmse(&pred, &truth), nasa_score(&pred, &truth));
        let (ec, score_c) = (rmse(&pred, &capped), nasa_score(&pred, &capped));
        println!(
            "seed {seed}: RMSE {e:.2}, NASA score {score:.0} (truth capped at {cap}: RMSE \
             {ec:.2}, score {score_c:.0}); fit {secs:.1} s, {} nodes",
            forest.n_nodes()
        );
        results.push((e, score, ec, score_c));
        if s == 0 {
            write_outputs(&out_dir, &forest, &xt, &truth);
        }
    }
    let median = |f: fn(&(f64, f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = results.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median over {} seeds: RMSE {:.2}, NASA score {:.0} (capped truth: RMSE {:.2}, score {:.0})",
        results.len(),
        median(|r| r.0),
        median(|r| r.1),
        median(|r| r.2),
        median(|r| r.3)
    );
}

/// Per-engine predictions with a 5-95 % tree interval (CSV) and a plot of predicted against
/// true remaining life (SVG), engines sorted by true life.
fn write_outputs(dir: &Path, forest: &ForestRegressor, xt: &Array2<f32>, truth: &[f32]) {
    std::fs::create_dir_all(dir).expect("output directory");
    let mut rows: Vec<(usize, f32, f32, f32, f32)> = xt
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let (p, lo, hi) =
                forest.predict_interval_row(r.as_slice().expect("standard"), 0.05, 0.95);
            (i + 1, truth[i], p, lo, hi)
        })
        .collect();
    let mut csv = String::from("unit,true_rul,predicted,lo_5,hi_95,error\n");
    for &(u, t, p, lo, hi) in &rows {
        let _ = writeln!(csv, "{u},{t},{p:.2},{lo:.2},{hi:.2},{:.2}", p - t);
    }
    let inside = rows.iter().filter(|r| r.3 <= r.1 && r.1 <= r.4).count();
    std::fs::write(dir.join("predictions.csv"), csv).expect("writable");

    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let (w, h, m) = (800.0f32, 420.0f32, 40.0f32);
    let max_y = 150.0f32;
    let px = |i: usize| m + (w - 2.0 * m) * (i as f32 + 0.5) / rows.len() as f32;
    let py = |v: f32| h - m - (h - 2.0 * m) * v.clamp(0.0, max_y) / max_y;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"20\">C-MAPSS FD001 test engines (sorted by true RUL): true (black) vs predicted (blue, 5-95 % of trees)</text>\n"
    );
    for v in (0..=150).step_by(25) {
        let y = py(v as f32);
        let _ = writeln!(
            svg,
            "<line x1=\"{m}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"5\" y=\"{}\">{v}</text>",
            w - m,
            y + 4.0
        );
    }
    for (i, &(_, t, p, lo, hi)) in rows.iter().enumerate() {
        let x = px(i);
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#9cf\"/>\
             <circle cx=\"{x}\" cy=\"{}\" r=\"3\" fill=\"#06c\"/>\
             <circle cx=\"{x}\" cy=\"{}\" r=\"2.5\" fill=\"black\"/>",
            py(lo),
            py(hi),
            py(p),
            py(t)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{m}\" y=\"{}\">engine (x), remaining useful life in cycles (y); truth inside the tree interval for {inside} of {}</text>\n</svg>",
        h - 10.0,
        rows.len()
    );
    std::fs::write(dir.join("predicted_vs_true.svg"), svg).expect("writable");
    println!(
        "wrote {} and predicted_vs_true.svg (seed's truth inside the 5-95 % tree interval: {inside} of {})",
        dir.join("predictions.csv").display(),
        rows.len()
    );
}
