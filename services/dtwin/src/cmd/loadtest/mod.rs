//! `dtwin loadtest`: N simulated machines at R Hz over C connections against the stack, with a
//! warm-up and a measured window; reports offered, delivered and answered telemetry/s,
//! telemetry -> risk latency percentiles, loss by `seq`, CPU seconds and peak RSS per process,
//! as a table or JSON. `--ramp` raises the load step by step until a bound breaks, then does
//! the same for the broker alone (publishers straight to one subscriber) for the ratio.
//!
//! Targets: by default the embedded broker and the feature, inference and alerter services in
//! this process (as `up` runs them); `--broker URL` runs the services here against that broker;
//! `--target external --broker URL` only publishes and listens, for services running as their
//! own processes (`--pid name=PID` adds their CPU and memory to the report).
//!
//! The generator must not be what is measured: readings are rendered from pre-encoded pieces
//! (64 rotating sets of plausible AI4I-range values; only the id, `ts` and `seq` change), and
//! each connection spreads its machines over `--slots` time slots per period instead of one
//! burst. A reading's `ts` is the wall clock when its slot is rendered.
//!
//! `--protocol sparkplug` publishes the pipeline's readings as Sparkplug B instead: each
//! connection is an edge node (`spBv1.0/loadtest/.../c{k}`, births with aliases at connect and
//! on a rebirth request, then a DDATA by alias per reading), the in-process stack adds the
//! Sparkplug host (an external one must run it), and machine `lt-000042` on connection `k`
//! answers as `loadtest.c{k}.lt-000042`. Sparkplug readings carry no dtwin `seq`: the feature
//! service numbers each machine's readings from 1 in arrival order, so loss is still counted
//! per machine (a lost reading shows as a missing last seq), and latency still runs from the
//! reading's time (its Sparkplug timestamp, in milliseconds) to its verdict. The broker-alone
//! half of `--ramp` stays JSON.
//!
//! # Layout
//! - [`LoadtestArgs`], [`run`]: flags and the whole run (start, steps, report).
//! - `ramp`: which steps run: one, or a ramp of the pipeline and then of the broker alone.
//! - `run_step`: one load level: listener, publishers, CPU samples, tally.
//! - [`Template`] (`template`): pre-encoded telemetry, machine ids and topics.
//! - `publisher`: the machines' publishing connections and their time slots.
//! - `listener`: the verdict subscriber: latencies, loss and duplicates by `seq`.
//! - `procstat`: CPU and peak RSS from `/proc`, per process and per thread group.
//! - The arithmetic lives in [`crate::loadstats`].

mod listener;
mod procstat;
mod publisher;
mod ramp;
mod template;

pub use template::Template;

use crate::loadstats::{self, Bounds, CpuTotals, ProcessFigures, RampSummary, Report, Step};
use anyhow::Context;
use clap::{Args, ValueEnum};
use dtwin_bus::{BrokerUrl, Brokers, QoS};
use dtwin_schema::Topics;
use listener::{Heard, Listener};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Default time slots per period (`--slots`): each connection spreads its machines over these
/// (at most one per millisecond, tokio's timer resolution).
pub const SLOTS: u16 = 50;
/// Topic prefix of the broker-alone measurement: no service subscribes to it.
const RAW_PREFIX: &str = "dtwin-loadtest/raw";

/// Where the services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Feature, inference and alerter in this process.
    InProcess,
    /// Services run as their own processes against `--broker`: only publish and listen.
    External,
}

/// `dtwin loadtest` flags.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// Simulated machines (the first step with --ramp).
    #[arg(long, env = "DTWIN_LOADTEST_MACHINES", default_value_t = 1000)]
    pub machines: usize,
    /// Readings per machine per second.
    #[arg(long, env = "DTWIN_LOADTEST_RATE", default_value_t = 1.0)]
    pub rate: f64,
    /// Measured window (per step), seconds.
    #[arg(long, env = "DTWIN_LOADTEST_DURATION", default_value_t = 30.0)]
    pub duration: f64,
    /// Warm-up before each window, seconds.
    #[arg(long, env = "DTWIN_LOADTEST_WARMUP", default_value_t = 5.0)]
    pub warmup: f64,
    /// How long after a window answers still count, seconds; later ones are lost.
    #[arg(long, env = "DTWIN_LOADTEST_DRAIN", default_value_t = 2.0)]
    pub drain: f64,
    /// Publisher connections.
    #[arg(long, env = "DTWIN_LOADTEST_CONNECTIONS", default_value_t = 2)]
    pub connections: usize,
    /// Time slots per period over which each connection spreads its machines (at most one a
    /// millisecond): fewer slots send burstier loads, like gateways polling in step.
    #[arg(long, env = "DTWIN_LOADTEST_SLOTS", default_value_t = SLOTS, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub slots: u16,
    /// Telemetry QoS (0 or 1).
    #[arg(long, env = "DTWIN_LOADTEST_QOS", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// An external broker (default: the embedded one on a free port). The nodes of a cluster:
    /// comma-separated or the flag repeated; publisher connection k starts on node k, the
    /// in-process feature, inference and alerter on nodes 1, 2 and 3, the listener on node 1
    /// (each fails over to the others).
    #[arg(long, env = "DTWIN_BROKER", value_delimiter = ',')]
    pub broker: Vec<BrokerUrl>,
    /// Where the services run (external needs --broker).
    #[arg(long, env = "DTWIN_LOADTEST_TARGET", value_enum, default_value_t = Target::InProcess)]
    pub target: Target,
    /// Another process to report CPU and peak RSS of, as name=PID (repeatable).
    #[arg(long = "pid", env = "DTWIN_LOADTEST_PIDS", value_delimiter = ',')]
    pub pids: Vec<String>,
    /// Do not subscribe to feature vectors (no delivered figure; one fan-out less on the broker).
    #[arg(long, env = "DTWIN_LOADTEST_NO_FEATURE_PROBE")]
    pub no_feature_probe: bool,
    /// Raise the load (machines x --ramp-factor) until a bound breaks, then measure the broker
    /// alone the same way and report both highest sustained rates.
    #[arg(long, env = "DTWIN_LOADTEST_RAMP")]
    pub ramp: bool,
    /// Machines multiply by this from one ramp step to the next.
    #[arg(long, env = "DTWIN_LOADTEST_RAMP_FACTOR", default_value_t = 1.5)]
    pub ramp_factor: f64,
    /// Most steps per ramp.
    #[arg(long, env = "DTWIN_LOADTEST_RAMP_STEPS", default_value_t = 10)]
    pub ramp_steps: usize,
    /// Ramp bound: highest p99 latency, ms.
    #[arg(long, env = "DTWIN_LOADTEST_MAX_P99_MS", default_value_t = 50.0)]
    pub max_p99_ms: f64,
    /// Ramp bound: highest loss, %.
    #[arg(long, env = "DTWIN_LOADTEST_MAX_LOSS_PCT", default_value_t = 0.1)]
    pub max_loss_pct: f64,
    /// After the run, one more step with this many machines (0: none), to see the stack
    /// answer normally again after an overload.
    #[arg(long, env = "DTWIN_LOADTEST_RECOVERY_MACHINES", default_value_t = 0)]
    pub recovery_machines: usize,
    /// The in-process feature service sheds readings more than this many seconds behind the
    /// clock (its --max-lag-s; 0: off), to see overload with load shedding.
    #[arg(long, env = "DTWIN_LOADTEST_MAX_LAG_S", default_value_t = 0.0)]
    pub max_lag_s: f64,
    /// Stall the in-process inference service on purpose for this many seconds (0: never),
    /// halfway through the measured window: a stall within the broker's backlog
    /// (`--backlog-s`) must cost latency, not verdicts.
    #[arg(long, env = "DTWIN_LOADTEST_STALL_INFERENCE_S", default_value_t = 0.0)]
    pub stall_inference_s: f64,
    /// Print the report as JSON.
    #[arg(long, env = "DTWIN_LOADTEST_JSON")]
    pub json: bool,
    /// How the pipeline's readings are published: JSON telemetry, or Sparkplug B edge nodes
    /// (one per connection) through the Sparkplug host.
    #[arg(long, env = "DTWIN_LOADTEST_PROTOCOL", value_enum, default_value_t = crate::cli::Protocol::Json)]
    pub protocol: crate::cli::Protocol,
}

/// What a step measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Telemetry -> feature -> inference -> risk.
    Pipeline,
    /// Telemetry straight to one subscriber on [`RAW_PREFIX`].
    BrokerAlone,
}

impl Kind {
    fn topics(self) -> Topics {
        Topics::new(match self {
            Kind::Pipeline => dtwin_schema::DEFAULT_PREFIX,
            Kind::BrokerAlone => RAW_PREFIX,
        })
    }
}

/// What every step shares.
struct Ctx {
    url: Brokers,
    args: LoadtestArgs,
    qos: QoS,
    template: std::sync::Arc<Template>,
    pids: Vec<(String, u32)>,
    /// CPU of this process and of each `--pid`, and of this process's threads by group, over
    /// all windows so far.
    cpu: CpuTotals,
    /// The `bdSeq` of the last step's Sparkplug edge nodes (each step connects anew).
    bd_seq: u64,
}

/// The measured window of a step, by the wall clock: readings with a `ts` from `start`
/// (included) to `end` (excluded) count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl Window {
    /// The window after a warm-up from `now` (and 0.3 s for the publishers to connect).
    fn after_warmup(now: OffsetDateTime, warmup_s: f64, duration_s: f64) -> Self {
        let start = now + Duration::from_secs_f64(warmup_s + 0.3);
        Self {
            start,
            end: start + Duration::from_secs_f64(duration_s),
        }
    }

    fn contains(&self, t: OffsetDateTime) -> bool {
        t >= self.start && t < self.end
    }

    fn is_over(&self, now: OffsetDateTime) -> bool {
        now >= self.end
    }
}

/// Everything the run measured, for the report.
struct Runs {
    /// The pipeline's steps.
    steps: Vec<Step>,
    /// Machines that lost the most in the last pipeline step.
    worst: Vec<(usize, u64)>,
    ramp: Option<RampSummary>,
    recovery: Option<Step>,
}

/// Runs the load test.
///
/// # Errors
/// Bad flags, a broker that cannot be reached, or a service that fails to start.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Report> {
    check(&args)?;
    let pids = procstat::parse_pids(&args.pids)?;
    let stop = CancellationToken::new();
    let outbox = tempfile::tempdir().context("temporary outbox")?;
    let (url, broker_name) = broker(&args).await?;
    if args.target == Target::InProcess {
        start_services(&url, &args, outbox.path(), &stop).await?;
    }
    let mut ctx = Ctx {
        url,
        qos: dtwin_bus::qos_from_u8(args.qos).map_err(anyhow::Error::msg)?,
        template: std::sync::Arc::new(Template::new()?),
        cpu: CpuTotals::new(pids.len() + 1),
        pids,
        args: args.clone(),
        bd_seq: 0,
    };
    let bounds = Bounds {
        max_p99_ms: args.max_p99_ms,
        max_loss_pct: args.max_loss_pct,
        min_offered_pct: 95.0,
    };

    let mut seqs = Vec::new();
    let (steps, worst) = ramp::pipeline(&mut ctx, &bounds, &mut seqs).await?;
    let ramp = if args.ramp {
        Some(ramp::broker_alone(&mut ctx, bounds, &steps).await?)
    } else {
        None
    };
    let recovery = match args.recovery_machines {
        0 => None,
        n => Some(run_step(&mut ctx, Kind::Pipeline, n, &mut seqs).await?.0),
    };
    stop.cancel();

    let runs = Runs {
        steps,
        worst,
        ramp,
        recovery,
    };
    let processes = procstat::figures(&ctx.pids, &ctx.cpu);
    report(&args, broker_name, runs, processes, ctx.cpu.by_thread())
}

/// The flags' values make sense together.
fn check(args: &LoadtestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.machines > 0 && args.connections > 0,
        "--machines and --connections must be at least 1"
    );
    anyhow::ensure!(
        args.rate > 0.0 && args.rate.is_finite() && args.rate <= 1000.0,
        "--rate must be above 0 and at most 1000"
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.warmup >= 0.0 && args.drain >= 0.0,
        "--duration must be positive, --warmup and --drain not negative"
    );
    anyhow::ensure!(
        !args.ramp || (args.ramp_factor > 1.0 && args.ramp_steps > 0),
        "--ramp-factor must be above 1 and --ramp-steps at least 1"
    );
    anyhow::ensure!(
        args.target == Target::InProcess || !args.broker.is_empty(),
        "--target external needs --broker (the services' broker)"
    );
    Ok(())
}

/// `--broker`, or the embedded broker started on a free port; with its name in the report.
async fn broker(args: &LoadtestArgs) -> anyhow::Result<(Brokers, String)> {
    if !args.broker.is_empty() {
        let brokers = Brokers::new(args.broker.clone())?;
        let name = brokers.to_string();
        return Ok((brokers, name));
    }
    let port = dtwin_broker::free_port()?;
    let addr = format!("127.0.0.1:{port}").parse()?;
    let cfg = dtwin_broker::BrokerConfig::new(addr);
    tokio::task::spawn_blocking(move || dtwin_broker::start(&cfg)).await??;
    Ok((
        BrokerUrl::new("127.0.0.1", port).into(),
        "embedded".to_owned(),
    ))
}

/// Starts the feature, inference and alerter services (and, for `--protocol sparkplug`, the
/// Sparkplug host) in this process (as `up` does) until `stop`, with the alerter's outbox and
/// spool under `outbox`.
async fn start_services(
    url: &Brokers,
    args: &LoadtestArgs,
    outbox: &Path,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    if args.protocol == crate::cli::Protocol::Sparkplug {
        use dtwin_runtime::Service;
        let host = dtwin_sparkplug_host::SparkplugHostConfig::new(url.rotated(3));
        let host = dtwin_sparkplug_host::SparkplugHostService::build(host).await?;
        host.ready()
            .wait_for(Duration::from_secs(10))
            .await
            .map_err(|e| anyhow::anyhow!("the Sparkplug host is not subscribed: {e:?}"))?;
        tokio::spawn(host.serve(stop.clone()));
    }
    let mut feature = dtwin_feature::FeatureConfig::new(url.rotated(0));
    feature.max_lag = crate::cli::max_lag(args.max_lag_s)?;
    tokio::spawn(dtwin_feature::run(feature, stop.clone()));
    let mut inference = dtwin_inference::InferenceConfig::new(url.rotated(1));
    if args.stall_inference_s > 0.0 {
        // Halfway through the measured window (the services start before the warm-up).
        let after = args.warmup + args.duration / 2.0;
        inference.pause = Some((
            Duration::from_secs_f64(after),
            Duration::from_secs_f64(args.stall_inference_s),
        ));
    }
    dtwin_inference::build_scorer(&inference)?;
    tokio::spawn(dtwin_inference::run(inference, stop.clone()));
    let mut alerter = dtwin_alerter::AlerterConfig::new(url.rotated(2));
    alerter.outbox_dir = outbox.to_path_buf();
    alerter.spool_dir = outbox.join("spool");
    tokio::spawn(dtwin_alerter::run(alerter, stop.clone()));
    // Let the services subscribe before the first reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// Runs one load level: `machines` machines at the configured rate for warm-up + window, then
/// waits the drain time. `seqs` holds each machine's last seq and grows as needed. Returns the
/// step and its worst machines.
async fn run_step(
    ctx: &mut Ctx,
    kind: Kind,
    machines: usize,
    seqs: &mut Vec<u64>,
) -> anyhow::Result<(Step, Vec<(usize, u64)>)> {
    let (rate, warmup, duration) = (ctx.args.rate, ctx.args.warmup, ctx.args.duration);
    let topics = kind.topics();
    let base = loadstats::first_seqs(seqs, machines);
    let span = loadstats::seq_span(rate, warmup, duration);
    let probe_features = kind == Kind::Pipeline && !ctx.args.no_feature_probe;

    let subs = listener::subscriptions(&topics, kind, ctx.qos, probe_features);
    let sub = listener::subscribe(&ctx.url, subs).await?;
    let window = Window::after_warmup(OffsetDateTime::now_utc(), warmup, duration);
    let heard = Heard::new(base, span, probe_features);
    let listener = Listener::spawn(sub, topics.clone(), heard, window);
    // The broker alone is measured with JSON; the pipeline in the protocol asked for.
    let protocol = match kind {
        Kind::Pipeline => ctx.args.protocol,
        Kind::BrokerAlone => crate::cli::Protocol::Json,
    };
    ctx.bd_seq = dtwin_twin_publisher::sparkplug::next_bd_seq(ctx.bd_seq);
    let pubs = publisher::start(ctx, &topics, machines, seqs, window, protocol, ctx.bd_seq).await?;
    procstat::measure(&ctx.pids, window, &mut ctx.cpu).await;
    let (ranges, conns) = publisher::join(pubs, seqs).await?;

    tokio::time::sleep(Duration::from_secs_f64(ctx.args.drain)).await;
    for c in conns {
        c.close().await;
    }
    let mut heard = listener.stop().await?;
    heard.sent(&ranges);
    Ok(heard.step(machines, machines as f64 * rate, duration))
}

/// The report: the last pipeline step's figures, the processes' (this one first) and
/// everything the run measured.
fn report(
    args: &LoadtestArgs,
    broker: String,
    runs: Runs,
    processes: Vec<ProcessFigures>,
    cpu_by_thread: Vec<(String, f64)>,
) -> anyhow::Result<Report> {
    let last = runs.steps.last().cloned().context("no step ran")?;
    let this = processes.first().context("no process figures")?;
    Ok(Report {
        machines: last.machines,
        rate_hz: args.rate,
        connections: args.connections,
        qos: args.qos,
        broker,
        target: match args.target {
            Target::InProcess => "in-process",
            Target::External => "external",
        }
        .to_owned(),
        measured_s: args.duration,
        offered_per_s: last.offered_per_s,
        delivered_per_s: last.delivered_per_s,
        verdicts_per_s: last.verdicts_per_s,
        latency: last.latency,
        lost: last.lost,
        loss_pct: last.loss_pct,
        duplicates: last.duplicates,
        worst_machines: runs.worst,
        cpu_s: this.cpu_s,
        peak_rss_mib: this.peak_rss_mib,
        cpu_by_thread,
        processes,
        steps: runs.steps,
        ramp: runs.ramp,
        recovery: runs.recovery,
    })
}

/// The tokio instant at wall-clock time `t` (now, if `t` has passed).
fn wall_to_instant(t: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (t - OffsetDateTime::now_utc()).as_seconds_f64().max(0.0);
    tokio::time::Instant::now() + Duration::from_secs_f64(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use time::macros::datetime;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn args(flags: &[&str]) -> LoadtestArgs {
        Cmd::try_parse_from(std::iter::once("loadtest").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_are_checked_together() {
        check(&args(&[])).unwrap();
        check(&args(&[
            "--ramp",
            "--target",
            "external",
            "--broker",
            "mqtt://h:1883",
        ]))
        .unwrap();
        for (flags, why) in [
            (
                &["--machines", "0"][..],
                "--machines and --connections must be at least 1",
            ),
            (
                &["--connections", "0"],
                "--machines and --connections must be at least 1",
            ),
            (&["--rate", "0"], "--rate must be above 0 and at most 1000"),
            (
                &["--rate", "1001"],
                "--rate must be above 0 and at most 1000",
            ),
            (
                &["--rate", "inf"],
                "--rate must be above 0 and at most 1000",
            ),
            (
                &["--duration", "0"],
                "--duration must be positive, --warmup and --drain not negative",
            ),
            (
                &["--warmup=-1"],
                "--duration must be positive, --warmup and --drain not negative",
            ),
            (
                &["--drain=-0.5"],
                "--duration must be positive, --warmup and --drain not negative",
            ),
            (
                &["--ramp", "--ramp-factor", "1"],
                "--ramp-factor must be above 1 and --ramp-steps at least 1",
            ),
            (
                &["--ramp", "--ramp-steps", "0"],
                "--ramp-factor must be above 1 and --ramp-steps at least 1",
            ),
            (
                &["--target", "external"],
                "--target external needs --broker (the services' broker)",
            ),
        ] {
            assert_eq!(
                check(&args(flags)).unwrap_err().to_string(),
                why,
                "{flags:?}"
            );
        }
        // Ramp flags only matter with --ramp.
        check(&args(&["--ramp-factor", "0.5", "--ramp-steps", "0"])).unwrap();
    }

    #[test]
    fn the_window_follows_the_warmup() {
        let now = datetime!(2026-01-01 10:00:00 UTC);
        let w = Window::after_warmup(now, 5.0, 30.0);
        assert_eq!(w.start, datetime!(2026-01-01 10:00:05.3 UTC));
        assert_eq!(w.end, datetime!(2026-01-01 10:00:35.3 UTC));
        assert!(!w.contains(now) && w.contains(w.start) && !w.contains(w.end));
        assert!(!w.is_over(w.start) && w.is_over(w.end));
    }

    #[test]
    fn each_kind_has_its_own_topics() {
        assert_eq!(
            Kind::Pipeline.topics().prefix(),
            dtwin_schema::DEFAULT_PREFIX
        );
        assert_eq!(Kind::BrokerAlone.topics().prefix(), RAW_PREFIX);
    }

    fn step(machines: usize, offered: f64) -> Step {
        let mut lat = loadstats::LatencyHist::default();
        lat.record_ms(4.0);
        let t = loadstats::Tally {
            sent: (offered * 10.0) as u64,
            answered: (offered * 10.0) as u64 - 1,
            lost: 1,
            duplicates: 2,
            unexpected: 0,
        };
        Step::new(machines, offered, &t, None, &lat, 10.0)
    }

    #[test]
    fn the_report_shows_the_last_pipeline_step_and_this_process_first() {
        let a = args(&[
            "--machines",
            "10",
            "--qos",
            "1",
            "--connections",
            "3",
            "--duration",
            "10",
        ]);
        let processes = vec![
            ProcessFigures {
                name: "loadtest".into(),
                pid: 1,
                cpu_s: 2.5,
                peak_rss_mib: 40.0,
            },
            ProcessFigures {
                name: "broker".into(),
                pid: 2,
                cpu_s: 1.0,
                peak_rss_mib: 10.0,
            },
        ];
        let runs = Runs {
            steps: vec![step(10, 10.0), step(15, 15.0)],
            worst: vec![(3, 1)],
            ramp: None,
            recovery: Some(step(5, 5.0)),
        };
        let threads = vec![("tokio".to_owned(), 2.0)];
        let r = report(&a, "embedded".into(), runs, processes, threads.clone()).unwrap();
        assert_eq!((r.machines, r.offered_per_s, r.lost), (15, 15.0, 1));
        assert_eq!(r.loss_pct, 100.0 / 150.0);
        assert_eq!(
            (r.rate_hz, r.connections, r.qos, r.measured_s),
            (1.0, 3, 1, 10.0)
        );
        assert_eq!(
            (r.broker.as_str(), r.target.as_str()),
            ("embedded", "in-process")
        );
        assert_eq!((r.cpu_s, r.peak_rss_mib), (2.5, 40.0));
        assert_eq!((r.steps.len(), r.processes.len()), (2, 2));
        assert_eq!(r.worst_machines, vec![(3, 1)]);
        assert_eq!(r.cpu_by_thread, threads);
        assert_eq!(r.recovery.map(|s| s.machines), Some(5));

        let ext = args(&["--target", "external", "--broker", "mqtt://h:1883"]);
        let one = || Runs {
            steps: vec![step(1, 1.0)],
            worst: vec![],
            ramp: None,
            recovery: None,
        };
        let me = vec![ProcessFigures {
            name: "loadtest".into(),
            pid: 1,
            cpu_s: 0.0,
            peak_rss_mib: 0.0,
        }];
        let r = report(&ext, "mqtt://h:1883".into(), one(), me.clone(), vec![]).unwrap();
        assert_eq!(r.target, "external");
        let none = Runs {
            steps: vec![],
            ..one()
        };
        let e = report(&ext, String::new(), none, me, vec![]).unwrap_err();
        assert_eq!(e.to_string(), "no step ran");
    }
}
