//! `dtwin silence add|remove|list`: operator silences on `{prefix}/control/silences/{id}`
//! (retained). While a silence lasts, the alerter records matching alerts in its spool and
//! publishes them as `silenced` events instead of e-mailing them.

use anyhow::Context;
use clap::{Args, Subcommand};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{Silence, Topics, SILENCE_SCHEMA};
use std::time::Duration;

/// `dtwin silence` flags.
#[derive(Debug, Clone, Args)]
pub struct SilenceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SilenceAction,
    /// Broker URL.
    #[arg(
        long,
        global = true,
        env = "DTWIN_BROKER",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: BrokerUrl,
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

/// `90s`, `30m`, `2h`, `1d`.
///
/// # Errors
/// Anything else.
pub fn parse_duration(s: &str) -> Result<time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (90s, 30m, 2h, 1d)"))?;
    let d = match unit {
        "s" => time::Duration::seconds(n),
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if d.is_positive() {
        Ok(d)
    } else {
        Err(format!("{s:?}: must be positive"))
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
        cfg.url
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
}
