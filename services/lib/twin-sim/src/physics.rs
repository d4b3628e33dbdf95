//! AI4I 2020's physics: its distributions and its failure rules.

use dtwin_schema::{FailureMode, ProductType};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Mean air temperature, K.
pub const AIR_MEAN_K: f64 = 300.0;
/// Standard deviation of air temperature, K.
pub const AIR_SD_K: f64 = 2.0;
/// Mean process temperature, K (air + 10 K).
pub const PROCESS_MEAN_K: f64 = 310.0;
/// Process temperature follows air with this slope (fitted on AI4I: the process-air difference
/// shrinks when the air is warm).
pub const PROCESS_AIR_SLOPE: f64 = 0.65;
/// Standard deviation of the process temperature's own walk, K.
pub const PROCESS_NOISE_SD_K: f64 = 0.71;
/// Torque ~ N(40, 10), never below this, N·m.
pub const TORQUE_MIN_NM: f64 = 3.8;
/// Mean speed = RPM_A + RPM_B / torque, fitted on AI4I's speed-torque bins.
pub const RPM_A: f64 = 1020.0;
/// See [`RPM_A`].
pub const RPM_B: f64 = 18_800.0;
/// Speed noise grows with speed: sd = RPM_NOISE_BASE + RPM_NOISE_QUAD x (mean - 1000)^2
/// (AI4I: sd 53 rpm at 65 N·m, 190 rpm at 15 N·m).
pub const RPM_NOISE_BASE: f64 = 40.0;
/// See [`RPM_NOISE_BASE`].
pub const RPM_NOISE_QUAD: f64 = 0.000_12;
/// Tool end-of-life wear, uniformly in this range, min.
pub const TOOL_LIFE_MIN: (f64, f64) = (200.0, 240.0);
/// Share of tool ends that are failures (AI4I: 46 of 119).
pub const TOOL_END_FAILURE_SHARE: f64 = 0.39;
/// Random failure probability per cycle (AI4I flags 19 RNF rows in 10,000).
pub const RNF_PER_CYCLE: f64 = 0.0019;

/// Tool wear added per process cycle, min.
pub fn wear_per_cycle(t: ProductType) -> f64 {
    match t {
        ProductType::H => 5.0,
        ProductType::M => 3.0,
        ProductType::L => 2.0,
    }
}

/// Wear x torque limit of the overstrain rule, min·N·m.
pub fn overstrain_limit(t: ProductType) -> f64 {
    match t {
        ProductType::L => 11_000.0,
        ProductType::M => 12_000.0,
        ProductType::H => 13_000.0,
    }
}

/// Draws a product type with AI4I's 60/30/10 % L/M/H mix.
pub fn draw_product(rng: &mut impl Rng) -> ProductType {
    let u: f64 = rng.random();
    if u < 0.6 {
        ProductType::L
    } else if u < 0.9 {
        ProductType::M
    } else {
        ProductType::H
    }
}

/// Draws a torque from N(mean, sd), never below [`TORQUE_MIN_NM`].
pub fn draw_torque(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    gauss(rng, mean, sd).max(TORQUE_MIN_NM)
}

/// The spindle speed that goes with `torque`, with noise.
pub fn rpm_for(rng: &mut impl Rng, torque: f64) -> f64 {
    let mean = RPM_A + RPM_B / torque;
    let sd = RPM_NOISE_BASE + RPM_NOISE_QUAD * (mean - 1000.0).powi(2);
    (mean + gauss(rng, 0.0, sd)).max(500.0)
}

/// Mechanical power in watts.
pub fn power_w(torque_nm: f64, rpm: f64) -> f64 {
    torque_nm * rpm * std::f64::consts::TAU / 60.0
}

/// A normal draw; `sd` must be finite and non-negative (our constants are).
pub fn gauss(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    match Normal::new(mean, sd) {
        Ok(n) => n.sample(rng),
        Err(_) => mean,
    }
}

/// The deterministic AI4I rules that fire on one cycle, in AI4I's column order.
pub fn deterministic_failures(
    product: ProductType,
    air_k: f64,
    process_k: f64,
    rpm: f64,
    torque: f64,
    wear: f64,
) -> impl Iterator<Item = FailureMode> {
    let hdf = process_k - air_k < 8.6 && rpm < 1380.0;
    let p = power_w(torque, rpm);
    let pwf = !(3500.0..=9000.0).contains(&p);
    let osf = wear * torque > overstrain_limit(product);
    [
        (hdf, FailureMode::Hdf),
        (pwf, FailureMode::Pwf),
        (osf, FailureMode::Osf),
    ]
    .into_iter()
    .filter_map(|(hit, mode)| hit.then_some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_the_ai4i_readme() {
        let f = |air, pro, rpm, tq, wear| {
            deterministic_failures(ProductType::L, air, pro, rpm, tq, wear).collect::<Vec<_>>()
        };
        assert_eq!(f(300.0, 310.0, 1500.0, 40.0, 100.0), vec![]);
        assert_eq!(f(300.0, 308.5, 1300.0, 40.0, 100.0), vec![FailureMode::Hdf]);
        assert_eq!(f(300.0, 308.5, 1400.0, 40.0, 100.0), vec![]);
        assert_eq!(f(300.0, 310.0, 1500.0, 20.0, 10.0), vec![FailureMode::Pwf]); // 3142 W
        assert_eq!(f(300.0, 310.0, 1500.0, 60.0, 10.0), vec![FailureMode::Pwf]); // 9425 W
        assert_eq!(f(300.0, 310.0, 1500.0, 45.0, 250.0), vec![FailureMode::Osf]);
        // 11,250 min·N·m
    }
}
