//! The AI4I-format generator: independent process cycles as in AI4I 2020, with its exact CSV
//! header, so twin data and the real data set go through the same tools.

use crate::physics::{self, gauss};
use crate::rng::machine_rng;
use dtwin_schema::ProductType;
use rand::Rng;
use std::io::Write;

/// AI4I 2020's header, byte for byte (without the BOM the original file starts with).
pub const AI4I_HEADER: &str = "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF";

/// One AI4I row.
#[derive(Debug, Clone, PartialEq)]
pub struct Ai4iRow {
    /// Row id, from 1.
    pub udi: u32,
    /// Product id: type letter + serial.
    pub product_id: String,
    /// Product type.
    pub product_type: ProductType,
    /// Air temperature, K.
    pub air_k: f64,
    /// Process temperature, K.
    pub process_k: f64,
    /// Rotational speed, rpm.
    pub rpm: f64,
    /// Torque, N·m.
    pub torque_nm: f64,
    /// Tool wear, min.
    pub tool_wear_min: f64,
    /// Machine failure (any mode).
    pub failure: bool,
    /// Tool wear failure.
    pub twf: bool,
    /// Heat dissipation failure.
    pub hdf: bool,
    /// Power failure.
    pub pwf: bool,
    /// Overstrain failure.
    pub osf: bool,
    /// Random failure.
    pub rnf: bool,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Generates `n` AI4I-style cycles.
pub fn ai4i_rows(n: usize, seed: u64) -> Vec<Ai4iRow> {
    let mut rng = machine_rng(seed, u64::MAX);
    // Temperatures: AR(1) walks, fast enough to cover their distribution in 10,000 rows.
    let phi: f64 = 0.985;
    let mut air = gauss(&mut rng, physics::AIR_MEAN_K, physics::AIR_SD_K);
    let mut noise = 0.0;
    let mut wear = 0.0;
    let mut life = rng.random_range(physics::TOOL_LIFE_MIN.0..physics::TOOL_LIFE_MIN.1);
    let mut fails = rng.random_bool(physics::TOOL_END_FAILURE_SHARE);
    let mut prev_type: Option<ProductType> = None;
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let product = physics::draw_product(&mut rng);
        if let Some(t) = prev_type {
            wear += physics::wear_per_cycle(t);
        }
        prev_type = Some(product);
        air = physics::AIR_MEAN_K
            + phi * (air - physics::AIR_MEAN_K)
            + gauss(&mut rng, 0.0, physics::AIR_SD_K * (1.0 - phi * phi).sqrt());
        noise = phi * noise
            + gauss(
                &mut rng,
                0.0,
                physics::PROCESS_NOISE_SD_K * (1.0 - phi * phi).sqrt(),
            );
        let air_k = round1(air);
        let process_k = round1(
            physics::PROCESS_MEAN_K
                + physics::PROCESS_AIR_SLOPE * (air - physics::AIR_MEAN_K)
                + noise,
        );
        let torque = round1(physics::draw_torque(&mut rng, 40.0, 10.0));
        let rpm = physics::rpm_for(&mut rng, torque).round();
        let mut row = Ai4iRow {
            udi: i as u32 + 1,
            product_id: format!(
                "{}{}",
                product.as_str(),
                10_000 + rng.random_range(0..90_000)
            ),
            product_type: product,
            air_k,
            process_k,
            rpm,
            torque_nm: torque,
            tool_wear_min: wear,
            failure: false,
            twf: false,
            hdf: false,
            pwf: false,
            osf: false,
            rnf: false,
        };
        for mode in physics::deterministic_failures(product, air_k, process_k, rpm, torque, wear) {
            match mode {
                dtwin_schema::FailureMode::Hdf => row.hdf = true,
                dtwin_schema::FailureMode::Pwf => row.pwf = true,
                _ => row.osf = true,
            }
        }
        if wear >= life {
            row.twf = fails;
            wear = -physics::wear_per_cycle(product); // the next row starts a new tool at 0
            life = rng.random_range(physics::TOOL_LIFE_MIN.0..physics::TOOL_LIFE_MIN.1);
            fails = rng.random_bool(physics::TOOL_END_FAILURE_SHARE);
        }
        row.rnf = rng.random_bool(physics::RNF_PER_CYCLE);
        row.failure = row.twf || row.hdf || row.pwf || row.osf || row.rnf;
        rows.push(row);
    }
    rows
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

/// Writes rows as AI4I's CSV.
///
/// # Errors
/// The writer's I/O errors.
pub fn write_ai4i_csv<W: Write>(rows: &[Ai4iRow], mut out: W) -> std::io::Result<()> {
    writeln!(out, "{AI4I_HEADER}")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.udi,
            r.product_id,
            r.product_type.as_str(),
            r.air_k,
            r.process_k,
            r.rpm,
            r.torque_nm,
            r.tool_wear_min,
            flag(r.failure),
            flag(r.twf),
            flag(r.hdf),
            flag(r.pwf),
            flag(r.osf),
            flag(r.rnf)
        )?;
    }
    Ok(())
}

/// A line of an AI4I CSV that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AI4I CSV line {line}: {why}")]
pub struct Ai4iParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Reads AI4I's CSV (the UTF-8 BOM of the original file is skipped).
///
/// # Errors
/// [`Ai4iParseError`] naming the line and what is wrong with it.
pub fn read_ai4i_csv(text: &str) -> Result<Vec<Ai4iRow>, Ai4iParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.trim_end() != AI4I_HEADER {
        return Err(Ai4iParseError {
            line: 1,
            why: format!("expected header {AI4I_HEADER:?}"),
        });
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 2;
        let err = |why: String| Ai4iParseError { line: n, why };
        let f: Vec<&str> = line.trim_end().split(',').collect();
        if f.len() != 14 {
            return Err(err(format!("{} columns, expected 14", f.len())));
        }
        let num = |k: usize| {
            f[k].parse::<f64>()
                .map_err(|_| err(format!("column {} is not a number: {:?}", k + 1, f[k])))
        };
        let bit = |k: usize| match f[k] {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(err(format!("column {} is not 0/1: {other:?}", k + 1))),
        };
        let product_type = match f[2] {
            "L" => ProductType::L,
            "M" => ProductType::M,
            "H" => ProductType::H,
            other => return Err(err(format!("type {other:?} is not L, M or H"))),
        };
        rows.push(Ai4iRow {
            udi: f[0]
                .parse()
                .map_err(|_| err(format!("UDI {:?} is not a number", f[0])))?,
            product_id: f[1].to_owned(),
            product_type,
            air_k: num(3)?,
            process_k: num(4)?,
            rpm: num(5)?,
            torque_nm: num(6)?,
            tool_wear_min: num(7)?,
            failure: bit(8)?,
            twf: bit(9)?,
            hdf: bit(10)?,
            pwf: bit(11)?,
            osf: bit(12)?,
            rnf: bit(13)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_and_bad_lines_name_their_number() {
        let rows = ai4i_rows(500, 3);
        let mut buf = Vec::new();
        write_ai4i_csv(&rows, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(read_ai4i_csv(&text).unwrap(), rows);
        let with_bom = format!("\u{feff}{text}");
        assert_eq!(read_ai4i_csv(&with_bom).unwrap().len(), 500);
        let broken = text.replacen("\n2,", "\n2,x,", 1);
        assert_eq!(read_ai4i_csv(&broken).unwrap_err().line, 3);
    }

    #[test]
    fn wear_follows_the_previous_type_and_resets() {
        let rows = ai4i_rows(3000, 1);
        let mut resets = 0;
        for w in rows.windows(2) {
            let d = w[1].tool_wear_min - w[0].tool_wear_min;
            if w[1].tool_wear_min == 0.0 {
                resets += 1;
            } else {
                assert_eq!(d, physics::wear_per_cycle(w[0].product_type));
            }
        }
        assert!(resets > 20, "{resets} tool changes");
    }
}
