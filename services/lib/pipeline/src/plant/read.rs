//! Reading a plant's export and its failure log: CSV dialects (`,`, `;`, tab, a BOM), the
//! columns the profile and the flags name, time formats, and the cells (numbers, missing
//! values, failure labels). Rows that cannot be used are listed, not fatal.

use super::{Columns, Event, PlantData, PlantError, Series, TimeKind};
use dtwin_profile::Profile;
use std::collections::HashMap;

/// Reads an export. `file` names it in errors.
///
/// # Errors
/// [`PlantError`]: a broken CSV, a column the profile or `columns` names that the file lacks,
/// an unknown time zone, a time column mixing kinds, or no usable row. Single bad rows (no
/// id, a time that does not parse, a value outside its sensor's range) are left out and
/// listed in [`PlantData::skipped`], as the live service dead-letters such readings.
pub fn read(
    text: &str,
    file: &str,
    profile: &Profile,
    columns: &Columns,
) -> Result<PlantData, PlantError> {
    let tz = time_zone(columns.time_zone.as_deref())?;
    let (headers, records) = csv_records(text, file)?;
    let col = |name: &str, what: &str| column(&headers, file, name, what);
    let id_col = col(&columns.id, "--id-column")?;
    let time_col = columns
        .time
        .as_deref()
        .map(|c| col(c, "--time-column"))
        .transpose()?;
    let label_col = columns
        .label
        .as_deref()
        .map(|c| col(c, "--label-column"))
        .transpose()?;
    if let Some(label) = &columns.label {
        let sensor = profile.sensors.iter().find(|s| &s.key == label);
        let attribute = profile
            .attributes
            .iter()
            .find(|a| &a.name == label || &a.label == label);
        let what = sensor
            .map(|s| format!("sensor {}", s.name))
            .or_else(|| attribute.map(|a| format!("attribute {}", a.name)));
        if let Some(what) = what {
            return Err(PlantError::LabelIsInput {
                column: label.clone(),
                what,
                profile: profile.id.clone(),
            });
        }
    }
    let sensor_cols = profile
        .sensors
        .iter()
        .map(|s| {
            col(
                &s.key,
                &format!(
                    "sensor {} of profile {}: set its `key` to the column that holds it",
                    s.name, profile.id
                ),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Attributes are optional in an export: a missing column reads as unknown.
    let attr_cols: Vec<Option<usize>> = profile
        .attributes
        .iter()
        .map(|a| headers.iter().position(|h| *h == a.name || *h == a.label))
        .collect();
    let used: Vec<usize> = [Some(id_col), time_col, label_col]
        .into_iter()
        .flatten()
        .chain(sensor_cols.iter().copied())
        .chain(attr_cols.iter().flatten().copied())
        .collect();
    let unused_columns = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, h)| h.clone())
        .collect();

    let mut out = PlantData {
        machines: Vec::new(),
        time: if time_col.is_some() {
            TimeKind::Instant
        } else {
            TimeKind::Row
        },
        skipped: Vec::new(),
        unknown_attribute_values: 0,
        unused_columns,
    };
    let mut kind: Option<TimeKind> = None;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut row_values = Vec::with_capacity(sensor_cols.len());
    'rows: for (line, record) in records {
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let id = cell(id_col);
        if id.is_empty() {
            out.skipped.push((line, "no machine id".to_owned()));
            continue;
        }
        let t = match time_col {
            None => line as f64,
            Some(c) => match parse_time(cell(c), &tz) {
                Some((t, k)) => {
                    let expected = *kind.get_or_insert(k);
                    if expected != k {
                        return Err(PlantError::MixedTime {
                            file: file.to_owned(),
                            line,
                            value: cell(c).to_owned(),
                            found: kind_name(k),
                            expected: kind_name(expected),
                        });
                    }
                    t
                }
                None => {
                    out.skipped
                        .push((line, format!("time {:?} does not parse", cell(c))));
                    continue;
                }
            },
        };
        row_values.clear();
        for (s, &c) in profile.sensors.iter().zip(&sensor_cols) {
            let v = match parse_number(cell(c)) {
                Ok(v) => v,
                Err(()) => {
                    out.skipped
                        .push((line, format!("{} = {:?} is not a number", s.name, cell(c))));
                    continue 'rows;
                }
            };
            if !v.is_nan() && !s.accepts(v) {
                out.skipped.push((
                    line,
                    format!(
                        "out_of_range: {} = {v} outside [{}, {}] (widen the profile's range if the machine can read it)",
                        s.name, s.min, s.max
                    ),
                ));
                continue 'rows;
            }
            row_values.push(v);
        }
        let m = *index.entry(id.to_owned()).or_insert_with(|| {
            out.machines.push(Series {
                id: id.to_owned(),
                t: Vec::new(),
                values: Vec::new(),
                attrs: Vec::new(),
                labels: Vec::new(),
                lines: Vec::new(),
            });
            out.machines.len() - 1
        });
        let series = &mut out.machines[m];
        series.t.push(t);
        series.values.extend_from_slice(&row_values);
        for (a, c) in profile.attributes.iter().zip(&attr_cols) {
            let code = c.and_then(|c| {
                let v = cell(c);
                let code = a.code(v);
                if code.is_none() && !v.is_empty() {
                    out.unknown_attribute_values += 1;
                }
                code
            });
            series.attrs.push(code);
        }
        series
            .labels
            .push(label_col.and_then(|c| failure_label(cell(c))));
        series.lines.push(line);
    }
    if let Some(k) = kind {
        out.time = k;
    }
    if out.machines.is_empty() {
        return Err(PlantError::NoRows {
            file: file.to_owned(),
            skipped: out.skipped.len(),
            first: out.skipped.first().map_or_else(
                || "the file has no data rows".to_owned(),
                |(l, w)| format!("line {l}: {w}"),
            ),
        });
    }
    let (k, a) = (profile.sensors.len(), profile.attributes.len());
    for s in &mut out.machines {
        sort_by_time(s, k, a);
    }
    Ok(out)
}

/// Reads a failure/maintenance log: its machine and time columns carry the names of DATA's
/// (`columns`), `label_column` holds the label. `time` is what DATA's time column holds (the
/// log's must be the same kind).
///
/// # Errors
/// [`PlantError`] as [`read`]; a row whose time does not parse is an error here (a lost
/// failure would silently change every label before it).
pub fn read_events(
    text: &str,
    file: &str,
    columns: &Columns,
    label_column: &str,
    time: TimeKind,
) -> Result<Vec<Event>, PlantError> {
    let tz = time_zone(columns.time_zone.as_deref())?;
    let (headers, records) = csv_records(text, file)?;
    let col = |name: &str, what: &str| column(&headers, file, name, what);
    let id_col = col(
        &columns.id,
        "the events file names its machines in DATA's --id-column",
    )?;
    let time_name = columns.time.as_deref().unwrap_or("time");
    let time_col = col(
        time_name,
        "the events file dates its events in DATA's --time-column",
    )?;
    let label_col = col(label_column, "--event-label-column")?;
    let mut out = Vec::new();
    for (line, record) in records {
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let value = cell(time_col);
        let Some((t, k)) = parse_time(value, &tz) else {
            return Err(PlantError::MixedTime {
                file: file.to_owned(),
                line,
                value: value.to_owned(),
                found: "not a time",
                expected: kind_name(time),
            });
        };
        if k != time {
            return Err(PlantError::MixedTime {
                file: file.to_owned(),
                line,
                value: value.to_owned(),
                found: kind_name(k),
                expected: kind_name(time),
            });
        }
        out.push(Event {
            machine: cell(id_col).to_owned(),
            t,
            label: failure_label(cell(label_col))
                .or_else(|| Some(cell(label_col).to_owned()).filter(|l| !l.is_empty())),
        });
    }
    Ok(out)
}

/// One column's cells by CSV line (the lines [`Series::lines`] records), trimmed: how a
/// column the profile does not read (a quality column) is matched to the readings.
///
/// # Errors
/// A broken CSV, or `name` is not a column; `what` says who asked for it.
pub fn column_cells(
    text: &str,
    file: &str,
    name: &str,
    what: &str,
) -> Result<HashMap<usize, String>, PlantError> {
    let (headers, records) = csv_records(text, file)?;
    let c = column(&headers, file, name, what)?;
    Ok(records
        .into_iter()
        .map(|(line, r)| (line, r.get(c).unwrap_or("").trim().to_owned()))
        .collect())
}

fn kind_name(k: TimeKind) -> &'static str {
    match k {
        TimeKind::Instant => "a date and time",
        TimeKind::Number => "a plain number",
        TimeKind::Row => "row order",
    }
}

/// A label cell: empty, `0`, `false`, `none`, `no`: no failure; `1`, `true`, `yes`: a failure
/// without a label; anything else is the label.
fn failure_label(cell: &str) -> Option<String> {
    match cell.to_ascii_lowercase().as_str() {
        "" | "0" | "0.0" | "false" | "none" | "no" | "nan" | "null" => None,
        "1" | "1.0" | "true" | "yes" => Some("failure".to_owned()),
        _ => Some(cell.to_owned()),
    }
}

/// A sensor cell: a number, NaN for missing (empty, `NaN`, `NA`, `null`), `Err` otherwise.
fn parse_number(cell: &str) -> Result<f64, ()> {
    match cell {
        "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None" | "-" => Ok(f64::NAN),
        _ => cell.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or(()),
    }
}

fn time_zone(name: Option<&str>) -> Result<jiff::tz::TimeZone, PlantError> {
    match name {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(n) => jiff::tz::TimeZone::get(n).map_err(|_| PlantError::TimeZone(n.to_owned())),
    }
}

/// Civil formats tried after RFC 3339, in order.
const CIVIL: [&str; 8] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
];

/// A time cell: (value, kind). Instants are seconds since the epoch.
pub fn parse_time(cell: &str, tz: &jiff::tz::TimeZone) -> Option<(f64, TimeKind)> {
    let cell = cell.trim();
    if let Ok(n) = cell.parse::<f64>() {
        return n.is_finite().then_some((n, TimeKind::Number));
    }
    let instant = |ts: jiff::Timestamp| (ts.as_millisecond() as f64 / 1000.0, TimeKind::Instant);
    if let Ok(ts) = cell.parse::<jiff::Timestamp>() {
        return Some(instant(ts));
    }
    let civil = CIVIL
        .iter()
        .find_map(|f| jiff::civil::DateTime::strptime(f, cell).ok())
        .or_else(|| {
            jiff::civil::Date::strptime("%Y-%m-%d", cell)
                .or_else(|_| jiff::civil::Date::strptime("%m/%d/%Y", cell))
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })?;
    civil
        .to_zoned(tz.clone())
        .ok()
        .map(|z| instant(z.timestamp()))
}

type Records = Vec<(usize, csv::StringRecord)>;

/// The position of column `name` in `headers`, or an error naming `what` asked for it and
/// the columns there are.
fn column(headers: &[String], file: &str, name: &str, what: &str) -> Result<usize, PlantError> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| PlantError::MissingColumn {
            file: file.to_owned(),
            column: name.to_owned(),
            what: what.to_owned(),
            columns: headers.join(", "),
        })
}

/// The header (BOM stripped, trimmed) and the records with their line numbers. The delimiter
/// is told from the header: `;` or tab when the header has those and no comma.
fn csv_records(text: &str, file: &str) -> Result<(Vec<String>, Records), PlantError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = body.lines().next().unwrap_or_default();
    let delimiter = if first.contains(',') {
        b','
    } else if first.contains(';') {
        b';'
    } else if first.contains('\t') {
        b'\t'
    } else {
        b','
    };
    let err = |source| PlantError::Csv {
        file: file.to_owned(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers = reader
        .headers()
        .map_err(err)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut records = Vec::new();
    for r in reader.records() {
        let r = r.map_err(err)?;
        let line = r.position().map_or(0, |p| p.line() as usize);
        records.push((line, r));
    }
    Ok((headers, records))
}

/// Sorts one machine's readings by time (stable: equal times keep file order).
fn sort_by_time(s: &mut Series, k: usize, a: usize) {
    if s.t.windows(2).all(|w| w[0] <= w[1]) {
        return;
    }
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&x, &y| s.t[x].total_cmp(&s.t[y]));
    s.values = order
        .iter()
        .flat_map(|&i| s.values[i * k..(i + 1) * k].iter().copied())
        .collect();
    s.attrs = order
        .iter()
        .flat_map(|&i| s.attrs[i * a..(i + 1) * a].iter().copied())
        .collect();
    s.t = order.iter().map(|&i| s.t[i]).collect();
    s.labels = order.iter().map(|&i| s.labels[i].clone()).collect();
    s.lines = order.iter().map(|&i| s.lines[i]).collect();
}
