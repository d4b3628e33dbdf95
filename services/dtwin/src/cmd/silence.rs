//! `dtwin silence add|remove|list`: operator silences on `{prefix}/control/silences/{id}`
//! (retained). While a silence lasts, the alerter records matching alerts in its spool and
//! publishes them as `silenced` events instead of e-mailing them.

use anyhow::Context;
use clap::{Args, Subcommand};
use dtwin_bus::{Brokers, BusConfig, QoS, Subscription};
use dtwin_schema::{Silence, Topics, SILENCE_SCHEMA};
use std::time::Duration;

/// `dtwin silence` flags.
#[derive(Debug, Clone, Args)]
pub struct SilenceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SilenceAction,
    /// Broker URL (a cluster's nodes: comma-separated).
    #[arg(
        long,
        global = true,
        env = "DTWIN_BROKER",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: Brokers,
    /// Topic prefix.
    #[arg(long, global = true, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
}

/// `dtwin silence` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SilenceAction {
    /// Silence machines or lines for a while.
    Add {
        /// Machine ids (comma-separated; `*` matches any run of characters: `press-*`).
        #[arg(long, value_delimiter = ',')]
        machines: Vec<String>,
        /// Lines (comma-separated; from the alerter's routing file).
        #[arg(long, value_delimiter = ',')]
        lines: Vec<String>,
        /// How long: 90s, 30m, 2h, 1d.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: time::Duration,
        /// Why (shown in logs and alert events).
        #[arg(long, default_value = "")]
        reason: String,
        /// Its id (default: derived from the machines and lines).
        #[arg(long)]
        id: Option<String>,
    },
    /// Remove a silence.
    Remove {
        /// The silence id.
        id: String,
    },
    /// List the silences the broker holds.
    List,
}

/// Why a `--for` duration was refused; each variant holds the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number before the unit (`h`, `-1h`, an empty string).
    #[error("{0:?}: expected a number and a unit (90s, 30m, 2h, 1d)")]
    NotANumber(String),
    /// A unit other than `s`, `m`, `h` or `d` (`5y`, `1.5h`).
    #[error("{0:?}: the unit must be s, m, h or d")]
    Unit(String),
    /// Zero (`0m`).
    #[error("{0:?}: must be positive")]
    NotPositive(String),
    /// More seconds than an i64 holds (`99999999999999999999s`, `9223372036854775807d`).
    #[error("{0:?}: too long")]
    TooLong(String),
}

/// `90s`, `30m`, `2h`, `1d`.
///
/// # Errors
/// Anything else: see [`DurationError`].
pub fn parse_duration(s: &str) -> Result<time::Duration, DurationError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    // `num` is only ASCII digits: empty, or too large for an i64.
    let n: i64 = num.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::Empty {
            DurationError::NotANumber(s.to_owned())
        } else {
            DurationError::TooLong(s.to_owned())
        }
    })?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::Unit(s.to_owned())),
    };
    let seconds = n
        .checked_mul(seconds_per_unit)
        .ok_or_else(|| DurationError::TooLong(s.to_owned()))?;
    let d = time::Duration::seconds(seconds);
    if d.is_positive() {
        Ok(d)
    } else {
        Err(DurationError::NotPositive(s.to_owned()))
    }
}

/// An id made of the patterns: `press-_-line-a` for `press-*` and `line-a`.
pub fn default_id(machines: &[String], lines: &[String]) -> String {
    let raw: String = machines
        .iter()
        .chain(lines)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("-");
    let id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        "silence".to_owned()
    } else {
        id
    }
}

/// Runs `dtwin silence`.
///
/// # Errors
/// Bad flags, or a broker that does not answer within 10 s.
pub async fn run(args: SilenceArgs) -> anyhow::Result<()> {
    let topics = Topics::new(&args.prefix);
    let cfg = BusConfig::new(
        args.broker.clone(),
        format!("dtwin-silence-{}", std::process::id()),
    );
    match args.action {
        SilenceAction::Add {
            machines,
            lines,
            duration,
            reason,
            id,
        } => {
            anyhow::ensure!(
                !machines.is_empty() || !lines.is_empty(),
                "name --machines or --lines to silence"
            );
            let id = id.unwrap_or_else(|| default_id(&machines, &lines));
            anyhow::ensure!(
                dtwin_schema::MachineId::parse(&id).is_ok(),
                "silence id {id:?} must be 1-64 of [A-Za-z0-9_.-]"
            );
            let silence = Silence {
                schema: SILENCE_SCHEMA.to_owned(),
                silence_id: id.clone(),
                machines,
                lines,
                until: dtwin_schema::time_fmt::now() + duration,
                reason,
                created_by: std::env::var("USER").unwrap_or_default(),
            };
            publish(&cfg, topics.silence(&id), dtwin_schema::to_json(&silence)).await?;
            println!(
                "silence {id} until {}",
                dtwin_schema::time_fmt::format(silence.until)
            );
        }
        SilenceAction::Remove { id } => {
            publish(&cfg, topics.silence(&id), Vec::new()).await?;
            println!("silence {id} removed");
        }
        SilenceAction::List => {
            let mut conn = dtwin_bus::connect(
                &cfg,
                vec![Subscription::new(topics.silences(), QoS::AtLeastOnce)],
            );
            anyhow::ensure!(
                conn.client.wait_ready(Duration::from_secs(10)).await,
                "cannot connect to {}",
                args.broker
            );
            // Retained messages arrive right after the subscription; wait for a quiet spell.
            let mut found = Vec::new();
            while let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(500), conn.inbox.recv()).await
            {
                if let Ok(s) = serde_json::from_slice::<Silence>(&msg.payload) {
                    found.push(s);
                }
            }
            conn.close().await;
            let now = dtwin_schema::time_fmt::now();
            for s in &found {
                println!(
                    "{}\tuntil {}{}\tmachines {:?}\tlines {:?}\t{}",
                    s.silence_id,
                    dtwin_schema::time_fmt::format(s.until),
                    if s.until <= now { " (expired)" } else { "" },
                    s.machines,
                    s.lines,
                    s.reason
                );
            }
            if found.is_empty() {
                println!("no silences");
            }
        }
    }
    Ok(())
}

async fn publish(cfg: &BusConfig, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
    let conn = dtwin_bus::connect(cfg, vec![]);
    anyhow::ensure!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "cannot connect to {}",
        cfg.brokers
    );
    conn.client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await
        .context("publishing the silence")?;
    tokio::time::timeout(Duration::from_secs(10), conn.close())
        .await
        .context("the broker did not take the silence within 10 s")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ids() {
        assert_eq!(parse_duration("90s"), Ok(time::Duration::seconds(90)));
        assert_eq!(parse_duration("2h"), Ok(time::Duration::hours(2)));
        assert_eq!(parse_duration("1d"), Ok(time::Duration::days(1)));
        for bad in ["", "h", "0m", "5y", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            default_id(&["press-*".into()], &["line a".into()]),
            "press-_-line_a"
        );
        assert_eq!(default_id(&[], &[]), "silence");
    }

    #[test]
    fn each_bad_duration_has_its_own_error() {
        use DurationError::*;
        for (bad, want) in [
            ("", NotANumber(String::new())),
            ("h", NotANumber("h".into())),
            ("-1h", NotANumber("-1h".into())),
            (
                "99999999999999999999s",
                TooLong("99999999999999999999s".into()),
            ),
            ("5y", Unit("5y".into())),
            ("1.5h", Unit("1.5h".into())),
            ("0m", NotPositive("0m".into())),
            (
                "9223372036854775807d",
                TooLong("9223372036854775807d".into()),
            ),
        ] {
            assert_eq!(parse_duration(bad), Err(want), "{bad:?}");
        }
        assert_eq!(
            parse_duration(" 30m ").map(|d| d.whole_seconds()),
            Ok(1800),
            "surrounding spaces are ignored"
        );
        assert_eq!(
            parse_duration("5y").unwrap_err().to_string(),
            "\"5y\": the unit must be s, m, h or d"
        );
        assert_eq!(
            parse_duration("x").unwrap_err().to_string(),
            "\"x\": expected a number and a unit (90s, 30m, 2h, 1d)"
        );
        assert_eq!(
            parse_duration("0s").unwrap_err().to_string(),
            "\"0s\": must be positive"
        );
    }
}
