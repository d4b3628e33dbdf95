//! The twin against the real AI4I 2020 data: distributions (two-sample Kolmogorov-Smirnov),
//! failure rate and failure-mode counts. Reads ../shared/datasets/ai4i2020.csv (or `AI4I_CSV`)
//! and skips, saying so, when the file is absent.

use dtwin_twin_sim::{ai4i_rows, read_ai4i_csv, write_ai4i_csv, Ai4iRow, AI4I_HEADER};

type Column = fn(&Ai4iRow) -> f64;
type Flag = fn(&Ai4iRow) -> bool;

fn real() -> Option<Vec<Ai4iRow>> {
    let path = std::env::var("AI4I_CSV").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../../shared/datasets/ai4i2020.csv"
        )
        .to_owned()
    });
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(read_ai4i_csv(&text).expect("the real file parses")),
        Err(_) => {
            eprintln!("skipping: AI4I CSV not found at {path}, set AI4I_CSV");
            None
        }
    }
}

/// Two-sample Kolmogorov-Smirnov statistic.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn ks_helper_is_right() {
    assert_eq!(ks(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
    assert_eq!(ks(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
}

#[test]
fn twin_matches_ai4i() {
    let Some(real) = real() else { return };
    assert_eq!(real.len(), 10_000);
    let sim = ai4i_rows(10_000, 42);
    let cols: [(&str, Column); 5] = [
        ("air temperature", |r| r.air_k),
        ("process temperature", |r| r.process_k),
        ("rotational speed", |r| r.rpm),
        ("torque", |r| r.torque_nm),
        ("tool wear", |r| r.tool_wear_min),
    ];
    for (name, f) in cols {
        let d = ks(
            &real.iter().map(f).collect::<Vec<_>>(),
            &sim.iter().map(f).collect::<Vec<_>>(),
        );
        println!("KS {name}: {d:.3}");
        assert!(d < 0.1, "KS statistic of {name} is {d:.3}");
    }
    let count = |rows: &[Ai4iRow], f: Flag| rows.iter().filter(|r| f(r)).count();
    let rate = count(&sim, |r| r.failure) as f64 / sim.len() as f64;
    println!(
        "failure rate: twin {:.2} %, AI4I {:.2} %",
        rate * 100.0,
        count(&real, |r| r.failure) as f64 / 100.0
    );
    let modes: [(&str, Flag, usize); 5] = [
        ("TWF", |r| r.twf, 46),
        ("HDF", |r| r.hdf, 115),
        ("PWF", |r| r.pwf, 95),
        ("OSF", |r| r.osf, 98),
        ("RNF", |r| r.rnf, 19),
    ];
    for (name, f, ai4i) in modes {
        let n = count(&sim, f);
        println!(
            "{name}: twin {n}, AI4I {ai4i} (real file {})",
            count(&real, f)
        );
        assert!(n * 2 >= ai4i && n <= ai4i * 2, "{name}: {n} vs {ai4i}");
    }
    assert!((0.025..=0.045).contains(&rate), "failure rate {rate}");
}

#[test]
fn header_matches_the_real_file() {
    let path = std::env::var("AI4I_CSV").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../../shared/datasets/ai4i2020.csv"
        )
        .to_owned()
    });
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipping: AI4I CSV not found, set AI4I_CSV");
        return;
    };
    let first = text.trim_start_matches('\u{feff}').lines().next().unwrap();
    assert_eq!(first, AI4I_HEADER);
    let mut buf = Vec::new();
    write_ai4i_csv(&ai4i_rows(3, 1), &mut buf).unwrap();
    assert!(String::from_utf8(buf).unwrap().starts_with(first));
}
