//! Drafting a profile from a plant's export: numeric columns become sensors with the ranges
//! seen, columns with a few distinct words become attributes, a label column becomes the
//! failure labels. The draft is a starting point for a person to edit (units, labels, derived
//! features, windows); it always parses.

use std::collections::BTreeSet;
use std::fmt::Write;

/// Most distinct values a text column may have to become an attribute.
pub const MAX_ATTRIBUTE_VALUES: usize = 32;

/// One column of the export: its header and its cells (empty cells are missing values).
pub struct Column<'a> {
    /// The header.
    pub header: &'a str,
    /// The cells, top to bottom.
    pub cells: Vec<&'a str>,
}

/// What became of each column.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DraftReport {
    /// Numeric columns drafted as sensors.
    pub sensors: Vec<String>,
    /// Text columns drafted as attributes.
    pub attributes: Vec<String>,
    /// Columns left out, with why.
    pub skipped: Vec<(String, String)>,
    /// Failure labels found in the label column.
    pub labels: Vec<String>,
}

/// Readings in a drafted profile's short window (mean, std and slope of the last few).
pub const DRAFT_SHORT: usize = 3;

/// Readings in a drafted profile's long window (the latest value's deviation from their mean),
/// and of its time window (mean and std over that many reading intervals).
pub const DRAFT_LONG: usize = 24;

/// The TOML text of a profile `id` drafted from `columns`; `label_column` (when given) holds
/// failure labels (empty cells: no failure). `interval` is the usual time between a machine's
/// readings, when the export has timestamps: the draft then adds a time window of
/// [`DRAFT_LONG`] intervals (hourly data: `24h`).
pub fn draft(
    id: &str,
    columns: &[Column<'_>],
    label_column: Option<&str>,
    interval: Option<std::time::Duration>,
) -> (String, DraftReport) {
    let mut report = DraftReport::default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Drafted by `dtwin profile init` from the columns of an export. Edit it: units, labels,\n\
         # ranges (what the machine can really read, not only what was seen), derived features,\n\
         # windows. `dtwin profile check FILE` says what is wrong, with the line.\n\
         id = {q}\nlabel = {q}\nrules = \"default\"\n",
        q = q(id)
    );
    let mut used = BTreeSet::new();
    let mut attributes = String::new();
    for c in columns {
        if Some(c.header) == label_column {
            let mut labels: Vec<String> = c
                .cells
                .iter()
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            labels.retain(|l| !matches!(l.as_str(), "0" | "none" | "None" | "false"));
            report.labels = labels;
            continue;
        }
        let (base, unit) = split_unit(c.header);
        let name = unique(feature_name(base), &mut used);
        let present: Vec<&str> = c
            .cells
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if present.is_empty() {
            report
                .skipped
                .push((c.header.to_owned(), "no values".to_owned()));
            continue;
        }
        let numbers: Option<Vec<f64>> = present
            .iter()
            .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect();
        if let Some(numbers) = numbers {
            let (lo, hi) = numbers
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            let (min, max) = widened(lo, hi);
            let _ = writeln!(out, "[[sensor]]\nname = {}", q(&name));
            if name != c.header {
                let _ = writeln!(out, "key = {}", q(c.header));
            }
            let _ = writeln!(
                out,
                "label = {}\nunit = {}\n# seen: {lo} .. {hi} in {} values\nrange = [{min:?}, {max:?}]\n",
                q(base),
                q(unit),
                numbers.len()
            );
            report.sensors.push(name);
            continue;
        }
        let values: BTreeSet<&str> = present.iter().copied().collect();
        if values.len() > MAX_ATTRIBUTE_VALUES {
            report.skipped.push((
                c.header.to_owned(),
                format!("text with {} distinct values", values.len()),
            ));
            continue;
        }
        let _ = writeln!(
            attributes,
            "[[attribute]]\nname = {}\nlabel = {}\nvalues = {}\n",
            q(&name),
            q(c.header),
            list(values.iter().copied())
        );
        report.attributes.push(name);
    }
    out.push_str(&attributes);
    // Windows: a degradation shows as a drift over many readings, which the latest value alone
    // does not carry; short and long windows in readings fit any rate, the time window follows
    // the export's own.
    let _ = writeln!(
        out,
        "# Windows: `short` and `long` count readings, `time` spans message time (\"24h\").\n\
         [windows]\nshort = {DRAFT_SHORT}\nlong = {DRAFT_LONG}\nshort_stats = [\"mean\", \"std\", \"slope\"]"
    );
    if let Some(span) = interval
        .map(|i| i.as_secs_f64() * DRAFT_LONG as f64)
        .filter(|s| *s >= 1.0)
    {
        let _ = writeln!(out, "time = [{}]", q(&span_text(span)));
    }
    out.push('\n');
    if !report.labels.is_empty() {
        let _ = writeln!(
            out,
            "[failures]\nlabels = {}\n# counted = [...]: the labels the model predicts (default: all)\n",
            list(report.labels.iter().map(String::as_str))
        );
    }
    (out, report)
}

/// The range a sensor drafted from a name alone gets: wide open, for a person to narrow to
/// what the machine can really read.
pub const OPEN_RANGE: f64 = 1e12;

/// The TOML text of a profile `id` drafted from metric names alone (a Sparkplug birth:
/// `source` says where they came from, for the header comment). Each name becomes a sensor
/// (its `key`, a valid feature name, a unit when the name ends in one, the range
/// ±[`OPEN_RANGE`]), with the short and long windows in readings; duplicate names count
/// once. It always parses.
pub fn draft_from_names(id: &str, source: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut comment = String::new();
    for line in source.lines() {
        let _ = writeln!(comment, "# {line}");
    }
    let _ = writeln!(
        out,
        "# Drafted by dtwin from metric names:\n{comment}# Save it (`--profile FILE`) and edit it: units, labels, ranges (what the machine\n\
         # can really read), derived features, windows. `dtwin profile check FILE` says what is\n\
         # wrong, with the line.\n\
         id = {q}\nlabel = {q}\nrules = \"default\"\n",
        q = q(id)
    );
    let mut used = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for name in names.iter().filter(|n| seen.insert(**n)) {
        let (base, unit) = split_unit(name);
        let feature = unique(feature_name(base), &mut used);
        let _ = writeln!(out, "[[sensor]]\nname = {}", q(&feature));
        if feature != *name {
            let _ = writeln!(out, "key = {}", q(name));
        }
        let _ = writeln!(
            out,
            "label = {}\nunit = {}\nrange = [{:?}, {:?}]\n",
            q(base),
            q(unit),
            -OPEN_RANGE,
            OPEN_RANGE
        );
    }
    let _ = writeln!(
        out,
        "# Windows: `short` and `long` count readings.\n\
         [windows]\nshort = {DRAFT_SHORT}\nlong = {DRAFT_LONG}\nshort_stats = [\"mean\", \"std\", \"slope\"]\n"
    );
    out
}

/// A span as a profile writes it: whole days, hours, minutes or seconds.
fn span_text(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        _ if s % 86_400 == 0 && s > 3 * 86_400 => format!("{}d", s / 86_400),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `s` as a TOML string (quotes and escapes as TOML has them).
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `items` as a TOML array of strings.
fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    toml::Value::Array(items.map(|s| toml::Value::String(s.to_owned())).collect()).to_string()
}

/// A range with room around what was seen (one span each side, at least 1): a draft must not
/// reject the next reading just past the largest one in the export.
fn widened(lo: f64, hi: f64) -> (f64, f64) {
    let room = (hi - lo).abs().max(1.0);
    // Rounded outwards to a tenth of the room's order of magnitude, so the draft reads
    // `297.5`, not `297.59999999999997`.
    let step = 10f64.powf(room.log10().floor() - 1.0);
    let min = if lo >= 0.0 {
        (lo - room).max(0.0)
    } else {
        lo - room
    };
    let round = |x: f64, f: fn(f64) -> f64| {
        let r = f(x / step) * step;
        // Twelve significant digits drop the float noise of `* step`.
        format!("{r:.12e}").parse::<f64>().unwrap_or(r)
    };
    (round(min, f64::floor), round(hi + room, f64::ceil))
}

/// A header's unit, when it ends in one: `Air temperature [K]` -> (`Air temperature`, `K`),
/// `Torque (Nm)` likewise.
fn split_unit(header: &str) -> (&str, &str) {
    let h = header.trim();
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(rest) = h.strip_suffix(close) {
            if let Some(i) = rest.rfind(open) {
                let unit = rest[i + open.len_utf8()..].trim();
                let name = rest[..i].trim();
                if !unit.is_empty() && !name.is_empty() {
                    return (name, unit);
                }
            }
        }
    }
    (h, "")
}

/// A column header as a feature name: lower case, `_` for anything else, `_` first if it
/// would start with a digit, at most 64 characters.
pub fn feature_name(header: &str) -> String {
    let mut n: String = header
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(n.len());
    for c in n.chars() {
        if !(c == '_' && collapsed.ends_with('_')) {
            collapsed.push(c);
        }
    }
    n = collapsed.trim_matches('_').to_owned();
    if n.is_empty() || n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    if crate::expr::RESERVED.contains(&n.as_str()) {
        n.push('_');
    }
    n.truncate(64);
    n
}

fn unique(name: String, used: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut k = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{}_{k}", &name[..name.len().min(60)]);
        k += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn names_alone_draft_a_profile_that_parses_and_keeps_each_name_as_key() {
        let text = draft_from_names(
            "spb_plant.line1.press",
            "the Sparkplug birth of plant.line1.press\nspBv1.0/plant/DBIRTH/line1/press",
            &[
                "Motor/Temperature [C]",
                "Pressure",
                "Pressure",
                "rpm",
                "2nd stage",
            ],
        );
        let p = Profile::parse(&text, "draft").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.id, "spb_plant.line1.press");
        let keys: Vec<&str> = p.sensors.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            ["Motor/Temperature [C]", "Pressure", "rpm", "2nd stage"]
        );
        let names: Vec<&str> = p.sensors.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["motor_temperature", "pressure", "rpm", "_2nd_stage"]
        );
        assert_eq!(p.sensors[0].unit, "C");
        assert!(p.sensors[1].accepts(-5e11) && p.sensors[1].accepts(5e11));
        assert!(!p.sensors[1].accepts(f64::NAN));
        assert!(text.contains("# spBv1.0/plant/DBIRTH/line1/press"));
    }

    #[test]
    fn an_hourly_export_drafts_a_profile_that_parses() {
        let cols = [
            Column {
                header: "volt",
                cells: vec!["176.2", "", "161.1"],
            },
            Column {
                header: "Rotate (rpm)",
                cells: vec!["418.5", "402.7", "530.0"],
            },
            Column {
                header: "model",
                cells: vec!["model3", "model3", "model4"],
            },
            Column {
                header: "failure",
                cells: vec!["", "comp2", "comp4"],
            },
            Column {
                header: "note",
                cells: vec!["", "", ""],
            },
        ];
        let (text, report) = draft(
            "pump",
            &cols,
            Some("failure"),
            Some(std::time::Duration::from_secs(3600)),
        );
        let p = Profile::parse(&text, "draft.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(report.sensors, ["volt", "rotate"]);
        assert_eq!(
            (p.windows.short, p.windows.long),
            (Some(DRAFT_SHORT), Some(DRAFT_LONG))
        );
        assert_eq!(
            p.windows.time,
            [std::time::Duration::from_secs(86_400)],
            "24 hourly intervals"
        );
        assert_eq!(report.attributes, ["model"]);
        assert_eq!(report.labels, ["comp2", "comp4"]);
        assert_eq!(
            report.skipped,
            [("note".to_owned(), "no values".to_owned())]
        );
        let rotate = p.sensor("rotate").unwrap();
        assert_eq!(rotate.key, "Rotate (rpm)");
        assert_eq!(
            (rotate.label.as_str(), rotate.unit.as_str()),
            ("Rotate", "rpm")
        );
        for v in [402.7, 530.0, 418.5] {
            assert!(rotate.accepts(v), "{v} seen, so valid");
        }
        assert_eq!(p.attributes[0].values, ["model3", "model4"]);
        assert_eq!(p.failures.labels, ["comp2", "comp4"]);
    }

    #[test]
    fn headers_become_usable_distinct_names() {
        assert_eq!(feature_name("3 Phase Volt"), "_3_phase_volt");
        assert_eq!(feature_name("Air temperature [K]"), "air_temperature_k");
        assert_eq!(split_unit("Air temperature [K]"), ("Air temperature", "K"));
        assert_eq!(split_unit("Torque (Nm)"), ("Torque", "Nm"));
        assert_eq!(split_unit("volt"), ("volt", ""));
        assert_eq!(widened(305.7, 313.8), (297.5, 321.9));
        assert_eq!(widened(1168.0, 2886.0), (0.0, 4700.0));
        assert_eq!(feature_name("pi"), "pi_");
        let mut used = BTreeSet::new();
        assert_eq!(unique("a".into(), &mut used), "a");
        assert_eq!(unique("a".into(), &mut used), "a_2");
    }
}
