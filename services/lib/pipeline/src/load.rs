//! Reading a data file: the project's telemetry CSV (as `dtwin generate` writes it) or AI4I
//! 2020's CSV (with or without its UTF-8 byte-order mark). Pure: text in, rows out.

use dtwin_schema::Telemetry;
use dtwin_twin_sim::{stream, Ai4iRow, AI4I_HEADER};

/// What a file holds.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Telemetry rows in file order, and the line numbers and reasons of rows skipped.
    Telemetry(Vec<Telemetry>, Vec<(usize, String)>),
    /// AI4I rows.
    Ai4i(Vec<Ai4iRow>),
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The header is neither format's.
    #[error("cannot tell the format from the header {0:?} (expected AI4I's header or a telemetry CSV with a machine_id column)")]
    UnknownFormat(String),
    /// An AI4I row does not parse.
    #[error("{0}")]
    Ai4i(String),
    /// The CSV itself is broken.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Parses `text`, telling the format from the header.
///
/// # Errors
/// [`LoadError`] when the header is unknown, an AI4I row is malformed, or the CSV is broken.
/// Bad telemetry rows are skipped and listed instead, as the live decoder would drop them.
pub fn parse(text: &str) -> Result<Loaded, LoadError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = body.lines().next().unwrap_or_default().trim_end();
    if first == AI4I_HEADER {
        return dtwin_twin_sim::read_ai4i_csv(text)
            .map(Loaded::Ai4i)
            .map_err(|e| LoadError::Ai4i(e.to_string()));
    }
    if !first.split(',').any(|c| c == "machine_id") {
        return Err(LoadError::UnknownFormat(first.chars().take(120).collect()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    for (i, rec) in reader.records().enumerate() {
        let parsed = rec.map_err(|e| e.to_string()).and_then(|r| {
            let fields: Vec<&str> = r.iter().collect();
            stream::from_csv_record(&header, &fields)
                .map_err(|e| format!("{}: {}", e.reason.as_str(), e.detail))
        });
        match parsed {
            Ok(t) => rows.push(t),
            Err(why) => skipped.push((i + 2, why)),
        }
    }
    Ok(Loaded::Telemetry(rows, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_formats_apart_and_skips_bad_rows() {
        let ai4i =
            format!("\u{feff}{AI4I_HEADER}\n1,M14860,M,298.1,308.6,1551,42.8,0,0,0,0,0,0,0\n");
        assert!(matches!(parse(&ai4i), Ok(Loaded::Ai4i(r)) if r.len() == 1));
        let mut tel = stream::TELEMETRY_CSV_HEADER.join(",");
        tel.push('\n');
        let mut t = Telemetry::new(
            dtwin_schema::MachineId::parse("m-1").unwrap(),
            time::OffsetDateTime::UNIX_EPOCH,
            1,
        );
        t.temperature_c = Some(70.0);
        tel.push_str(&stream::to_csv_record(&t).join(","));
        tel.push_str("\nnot,a,row\n");
        match parse(&tel) {
            Ok(Loaded::Telemetry(rows, skipped)) => {
                assert_eq!(rows, vec![t]);
                assert_eq!(skipped.len(), 1);
                assert_eq!(skipped[0].0, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("a,b\n1,2\n"),
            Err(LoadError::UnknownFormat(_))
        ));
    }
}
