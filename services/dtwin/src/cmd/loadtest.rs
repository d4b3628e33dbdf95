//! `dtwin loadtest`: N simulated machines at R Hz over C connections against the stack, with a
//! warm-up and a measured window; reports offered telemetry/s, verdicts/s, telemetry -> risk
//! latency percentiles, loss by `seq`, CPU seconds and peak RSS, as a table or JSON.
//!
//! Targets: by default the embedded broker and every service in this process (as `up` runs
//! them); `--broker URL` runs the services here against that broker; `--broker URL --external`
//! only publishes and listens, for services running as their own processes.

use crate::loadstats::{self, Latency, Report, SeqLedger};
use anyhow::Context;
use clap::Args;
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{MachineId, Risk, Telemetry, Topics};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Machine ids of the load test: `lt-000042`.
const ID_PREFIX: &str = "lt-";
/// Time slots per period: each connection spreads its machines over these, so a period's
/// readings leave in small batches instead of one burst.
const SLOTS: usize = 50;

/// `dtwin loadtest` flags.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// Simulated machines.
    #[arg(long, default_value_t = 1000)]
    pub machines: usize,
    /// Readings per machine per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Publisher connections.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Telemetry QoS (0 or 1).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// An external broker (default: the embedded one on a free port).
    #[arg(long)]
    pub broker: Option<BrokerUrl>,
    /// The services run elsewhere: only publish and listen.
    #[arg(long, requires = "broker")]
    pub external: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn telemetry(m: usize, seq: u64) -> Vec<u8> {
    let id = MachineId::parse(&format!("{ID_PREFIX}{m:06}")).expect("valid id");
    let mut t = Telemetry::new(id, dtwin_schema::time_fmt::now(), seq);
    let wobble = (seq % 10) as f64 * 0.05;
    t.temperature_c = Some(36.5 + wobble);
    t.ambient_temperature_c = Some(26.8);
    t.vibration_mm_s = Some(2.1 + wobble);
    t.pressure_bar = Some(6.0);
    t.spindle_rpm = Some(1520.0);
    t.torque_nm = Some(40.0);
    t.tool_wear_min = Some((seq % 200) as f64);
    t.encode()
}

/// Runs the load test.
///
/// # Errors
/// Bad flags, a broker that cannot be reached, or a service that fails to start.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.machines > 0 && args.connections > 0,
        "--machines and --connections must be at least 1"
    );
    anyhow::ensure!(
        args.rate > 0.0 && args.rate.is_finite(),
        "--rate must be positive"
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.warmup >= 0.0,
        "--duration must be positive"
    );
    let topics = Topics::default();
    let stop = CancellationToken::new();
    let _outbox = tempfile::tempdir().context("temporary outbox")?;
    let (url, broker_name) = match &args.broker {
        Some(u) => (u.clone(), u.to_string()),
        None => {
            let port = dtwin_broker::free_port()?;
            let addr = format!("127.0.0.1:{port}").parse()?;
            let cfg = dtwin_broker::BrokerConfig::new(addr);
            tokio::task::spawn_blocking(move || dtwin_broker::start(&cfg)).await??;
            (BrokerUrl::new("127.0.0.1", port), "embedded".to_owned())
        }
    };
    if !args.external {
        let feature = dtwin_feature::FeatureConfig::new(url.clone());
        tokio::spawn(dtwin_feature::run(feature, stop.clone()));
        let inference = dtwin_inference::InferenceConfig::new(url.clone());
        dtwin_inference::build_scorer(&inference)?;
        tokio::spawn(dtwin_inference::run(inference, stop.clone()));
        let mut alerter = dtwin_alerter::AlerterConfig::new(url.clone());
        alerter.outbox_dir = _outbox.path().to_path_buf();
        tokio::spawn(dtwin_alerter::run(alerter, stop.clone()));
    }

    // The listener: every verdict, with the time it arrived.
    let mut sub_cfg = BusConfig::new(
        url.clone(),
        format!("dtwin-loadtest-sub-{}", std::process::id()),
    );
    sub_cfg.inbox_capacity = 1 << 20;
    let mut sub = dtwin_bus::connect(
        &sub_cfg,
        vec![Subscription::new(
            topics.all(dtwin_schema::TopicKind::Risk),
            QoS::AtLeastOnce,
        )],
    );
    anyhow::ensure!(
        sub.client.wait_ready(Duration::from_secs(10)).await,
        "cannot subscribe at {url}"
    );
    let stop_listening = CancellationToken::new();
    let listening = stop_listening.clone();
    let listener = tokio::spawn(async move {
        let mut got: Vec<(u32, u64, f64)> = Vec::new();
        loop {
            let m = tokio::select! {
                _ = listening.cancelled() => break,
                m = sub.inbox.recv() => match m { Some(m) => m, None => break },
            };
            let now = dtwin_schema::time_fmt::now();
            if let Ok(r) = dtwin_schema::from_json::<Risk>(&m.payload) {
                if let Some(i) = r
                    .machine_id
                    .as_str()
                    .strip_prefix(ID_PREFIX)
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    got.push((
                        i,
                        r.seq,
                        dtwin_schema::time_fmt::millis_between(r.source_ts, now),
                    ));
                }
            }
        }
        sub.close().await;
        got
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Publishers.
    let qos = dtwin_bus::qos_from_u8(args.qos).map_err(anyhow::Error::msg)?;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let window_start = Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);
    let mut pubs = Vec::new();
    for k in 0..args.connections {
        let mine: Vec<usize> = (0..args.machines)
            .filter(|i| i % args.connections == k)
            .collect();
        let mut cfg = BusConfig::new(
            url.clone(),
            format!("dtwin-loadtest-{}-{k}", std::process::id()),
        );
        cfg.request_capacity = 65_536;
        let conn = dtwin_bus::connect(&cfg, vec![]);
        anyhow::ensure!(
            conn.client.wait_ready(Duration::from_secs(10)).await,
            "cannot connect to {url}"
        );
        let topics: Vec<String> = mine
            .iter()
            .map(|&m| {
                topics
                    .telemetry(&MachineId::parse(&format!("{ID_PREFIX}{m:06}")).expect("valid id"))
            })
            .collect();
        pubs.push(tokio::spawn(async move {
            let slots = SLOTS.min(mine.len()).max(1);
            let mut tick = tokio::time::interval(period / slots as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut seq = vec![0u64; mine.len()];
            let mut sent: Vec<(u32, u64)> = Vec::new();
            let mut slot = 0;
            loop {
                tick.tick().await;
                let t = started.elapsed();
                if t >= window_end {
                    break;
                }
                let in_window = t >= window_start;
                for j in (slot..mine.len()).step_by(slots) {
                    seq[j] += 1;
                    let payload = telemetry(mine[j], seq[j]);
                    if conn
                        .client
                        .publish(topics[j].clone(), qos, false, payload)
                        .await
                        .is_err()
                    {
                        return (sent, conn);
                    }
                    if in_window {
                        sent.push((mine[j] as u32, seq[j]));
                    }
                }
                slot = (slot + 1) % slots;
            }
            (sent, conn)
        }));
    }
    tokio::time::sleep(window_start).await;
    let cpu0 = loadstats::cpu_seconds();
    let mut ledger = SeqLedger::default();
    let mut conns = Vec::new();
    for p in pubs {
        let (sent, conn) = p.await?;
        for (m, s) in sent {
            ledger.sent(m, s);
        }
        conns.push(conn);
    }
    let cpu = loadstats::cpu_seconds() - cpu0;
    // Let the last verdicts arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    for c in conns {
        c.close().await;
    }
    stop_listening.cancel();
    let got = tokio::time::timeout(Duration::from_secs(5), listener)
        .await
        .context("the listener did not stop")??;
    for (m, s, _) in &got {
        ledger.received(*m, *s);
    }
    let (sent, answered, lost, duplicates) = ledger.tally();
    let mut window_lat: Vec<f64> = got
        .iter()
        .filter(|(m, s, _)| ledger.was_sent(*m, *s))
        .map(|(_, _, l)| *l)
        .collect();
    let report = Report {
        machines: args.machines,
        rate_hz: args.rate,
        connections: args.connections,
        qos: args.qos,
        broker: broker_name,
        measured_s: args.duration,
        offered_per_s: sent as f64 / args.duration,
        verdicts_per_s: answered as f64 / args.duration,
        latency: Latency::of(&mut window_lat),
        lost,
        loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / sent as f64
        },
        duplicates,
        cpu_s: cpu,
        peak_rss_mib: loadstats::peak_rss_mib(),
    };
    Ok(report)
}
