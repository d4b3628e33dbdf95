//! Window spans: `90s`, `10m`, `24h`, `1h30m`, `7d` (a day is 24 hours here: windows run on
//! message time, which has no calendar).

use std::time::Duration;

/// The span `text` writes, or `None` when it is not one (or is zero or negative).
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let seconds = match text.parse::<jiff::SignedDuration>() {
        Ok(d) => d.as_secs_f64(),
        // SignedDuration takes no calendar units; a day of message time is 24 hours.
        Err(_) => {
            let span: jiff::Span = text.parse().ok()?;
            span.total((
                jiff::Unit::Second,
                jiff::SpanRelativeTo::days_are_24_hours(),
            ))
            .ok()?
        }
    };
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_write_them() {
        let s = |t| parse(t).map(|d| d.as_secs_f64());
        assert_eq!(s("90s"), Some(90.0));
        assert_eq!(s("10m"), Some(600.0));
        assert_eq!(s("24h"), Some(86_400.0));
        assert_eq!(s("1h30m"), Some(5_400.0));
        assert_eq!(s("7d"), Some(604_800.0));
        assert_eq!(s("1.5h"), Some(5_400.0));
        for bad in ["", "soon", "0s", "-5m", "12"] {
            assert_eq!(s(bad), None, "{bad:?}");
        }
    }
}
