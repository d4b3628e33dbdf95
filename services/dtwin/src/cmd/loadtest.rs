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
//! # Layout
//! - [`LoadtestArgs`], [`run`]: flags and the whole run (steps, ramp, report).
//! - [`Template`]: pre-encoded telemetry.
//! - `run_step`: one load level: listener, publishers, CPU samples, tally.
//! - The arithmetic lives in [`crate::loadstats`].

use crate::loadstats::{
    self, Bounds, LatencyHist, ProcessFigures, RampSummary, Report, SeqLedger, Step,
};
use anyhow::Context;
use clap::{Args, ValueEnum};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{MachineId, Telemetry, TopicKind, Topics};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Machine ids of the load test: `lt-000042`.
const ID_PREFIX: &str = "lt-";
/// Default time slots per period (`--slots`): each connection spreads its machines over these
/// (at most one per millisecond, tokio's timer resolution).
pub const SLOTS: u16 = 50;
/// Topic prefix of the broker-alone measurement: no service subscribes to it.
const RAW_PREFIX: &str = "dtwin-loadtest/raw";
/// Pre-encoded value sets a machine rotates through.
const TAILS: usize = 64;
/// Incoming messages buffered for the listener (it only decodes ids, seqs and timestamps).
const LISTENER_INBOX: usize = 1 << 16;
/// Requests buffered per publisher connection before `publish` waits.
const PUBLISHER_REQUESTS: usize = 1 << 14;

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
    /// An external broker (default: the embedded one on a free port).
    #[arg(long, env = "DTWIN_BROKER")]
    pub broker: Option<BrokerUrl>,
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
    /// Print the report as JSON.
    #[arg(long, env = "DTWIN_LOADTEST_JSON")]
    pub json: bool,
}

/// Telemetry pre-encoded around its id, `ts` and `seq`, with [`TAILS`] sets of values.
#[derive(Debug, Clone)]
pub struct Template {
    before_id: Vec<u8>,
    id_to_ts: Vec<u8>,
    ts_to_seq: Vec<u8>,
    tails: Vec<Vec<u8>>,
}

const SENTINEL_ID: &str = "IDSENTINEL";
const SENTINEL_TS: &str = "2001-02-03T04:05:06Z";
const SENTINEL_SEQ: u64 = 987_654_321_987;

impl Template {
    /// Encodes the templates through [`Telemetry::encode`], so they follow the schema.
    pub fn new() -> anyhow::Result<Self> {
        let id = MachineId::parse(SENTINEL_ID)?;
        let ts = OffsetDateTime::parse(SENTINEL_TS, &Rfc3339)?;
        let mut head: Option<[Vec<u8>; 3]> = None;
        let mut tails = Vec::with_capacity(TAILS);
        for k in 0..TAILS {
            let x = k as f64 / TAILS as f64 * std::f64::consts::TAU;
            let mut t = Telemetry::new(id.clone(), ts, SENTINEL_SEQ);
            t.ambient_temperature_c = Some(round2(25.0 + 2.0 * x.sin()));
            t.temperature_c = Some(round2(35.5 + 2.0 * x.sin() + 0.5 * (3.0 * x).cos()));
            t.spindle_rpm = Some(round2(1500.0 + 120.0 * (2.0 * x).sin()));
            t.torque_nm = Some(round2(40.0 - 8.0 * (2.0 * x).sin()));
            t.vibration_mm_s = Some(round2(2.2 + 0.4 * (5.0 * x).sin()));
            t.pressure_bar = Some(round2(6.0 + 0.3 * (7.0 * x).cos()));
            t.tool_wear_min = Some((k * 3) as f64);
            let json = String::from_utf8(t.encode())?;
            let find = |needle: &str, from: usize| {
                json[from..]
                    .find(needle)
                    .map(|i| i + from)
                    .with_context(|| format!("{needle} not in the encoded telemetry {json}"))
            };
            let i_id = find(SENTINEL_ID, 0)?;
            let i_ts = find(SENTINEL_TS, i_id)?;
            let seq = SENTINEL_SEQ.to_string();
            let i_seq = find(&seq, i_ts)?;
            let b = json.as_bytes();
            let pieces = [
                b[..i_id].to_vec(),
                b[i_id + SENTINEL_ID.len()..i_ts].to_vec(),
                b[i_ts + SENTINEL_TS.len()..i_seq].to_vec(),
            ];
            if let Some(h) = &head {
                anyhow::ensure!(*h == pieces, "telemetry fields moved between encodings");
            }
            head = Some(pieces);
            tails.push(b[i_seq + seq.len()..].to_vec());
        }
        let [before_id, id_to_ts, ts_to_seq] = head.context("no templates")?;
        Ok(Self {
            before_id,
            id_to_ts,
            ts_to_seq,
            tails,
        })
    }

    /// The reading `seq` of machine `id` at `ts` (RFC 3339), using value set `k % TAILS`.
    pub fn render(&self, id: &str, ts: &str, seq: u64, k: usize) -> Vec<u8> {
        let tail = &self.tails[k % self.tails.len()];
        let mut out = Vec::with_capacity(
            self.before_id.len() + id.len() + self.id_to_ts.len() + ts.len() + 20 + tail.len() + 20,
        );
        out.extend_from_slice(&self.before_id);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&self.id_to_ts);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(&self.ts_to_seq);
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(tail);
        out
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn machine_id(m: usize) -> String {
    format!("{ID_PREFIX}{m:06}")
}

fn machine_index(id: &str) -> Option<usize> {
    id.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// What a step measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Telemetry -> feature -> inference -> risk.
    Pipeline,
    /// Telemetry straight to one subscriber on [`RAW_PREFIX`].
    BrokerAlone,
}

/// What every step shares.
struct Ctx {
    url: BrokerUrl,
    args: LoadtestArgs,
    qos: QoS,
    template: std::sync::Arc<Template>,
    pids: Vec<(String, u32)>,
    /// Ticks of this process and of each `--pid` over all windows so far.
    cpu_ticks: Vec<u64>,
    /// Per-thread ticks of this process over all windows, by group.
    threads: std::collections::BTreeMap<String, f64>,
}

/// Only the fields the listener needs from a risk verdict, feature vector or reading.
#[derive(serde::Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    machine_id: &'a str,
    seq: u64,
    #[serde(borrow)]
    ts: &'a str,
    #[serde(borrow, default)]
    source_ts: Option<&'a str>,
}

/// The listener's result: answers (risk, or telemetry for the broker alone), feature vectors.
struct Heard {
    answers: SeqLedger,
    features: Option<SeqLedger>,
    latency: LatencyHist,
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
        args.target == Target::InProcess || args.broker.is_some(),
        "--target external needs --broker (the services' broker)"
    );
    let pids = args
        .pids
        .iter()
        .map(|p| {
            let (name, pid) = p
                .split_once('=')
                .with_context(|| format!("--pid {p}: expected name=PID"))?;
            let pid: u32 = pid
                .parse()
                .with_context(|| format!("--pid {p}: {pid} is not a process id"))?;
            anyhow::ensure!(
                std::path::Path::new(&format!("/proc/{pid}/stat")).exists(),
                "--pid {p}: no such process"
            );
            Ok((name.to_owned(), pid))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
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
    if args.target == Target::InProcess {
        let mut feature = dtwin_feature::FeatureConfig::new(url.clone());
        feature.max_lag = crate::cli::max_lag(args.max_lag_s)?;
        tokio::spawn(dtwin_feature::run(feature, stop.clone()));
        let inference = dtwin_inference::InferenceConfig::new(url.clone());
        dtwin_inference::build_scorer(&inference)?;
        tokio::spawn(dtwin_inference::run(inference, stop.clone()));
        let mut alerter = dtwin_alerter::AlerterConfig::new(url.clone());
        alerter.outbox_dir = _outbox.path().to_path_buf();
        alerter.spool_dir = _outbox.path().join("spool");
        tokio::spawn(dtwin_alerter::run(alerter, stop.clone()));
        // Let the services subscribe before the first reading.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ctx = Ctx {
        url,
        qos: dtwin_bus::qos_from_u8(args.qos).map_err(anyhow::Error::msg)?,
        template: std::sync::Arc::new(Template::new()?),
        cpu_ticks: vec![0; pids.len() + 1],
        pids,
        threads: Default::default(),
        args: args.clone(),
    };
    let bounds = Bounds {
        max_p99_ms: args.max_p99_ms,
        max_loss_pct: args.max_loss_pct,
        min_offered_pct: 95.0,
    };

    let mut seqs = Vec::new();
    let mut steps = Vec::new();
    let mut worst = Vec::new();
    let mut machines = args.machines as f64;
    let mut ramp = None;
    for _ in 0..if args.ramp { args.ramp_steps } else { 1 } {
        let n = machines.round() as usize;
        let (mut step, w) = run_step(&mut ctx, Kind::Pipeline, n, &mut seqs).await?;
        worst = w;
        let ok = step.meets(&bounds);
        if args.ramp {
            step.sustained = Some(ok);
            eprintln!("loadtest: pipeline step {}", step_line(&step));
        }
        steps.push(step);
        if !ok {
            break;
        }
        machines *= args.ramp_factor;
    }
    if args.ramp {
        // The pipeline may still be working off the failed step's backlog.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let sustainable = loadstats::highest_sustainable(&steps);
        let mut raw = Vec::new();
        let mut alone = Vec::new();
        let mut machines = steps
            .iter()
            .filter(|s| s.sustained == Some(true))
            .map(|s| s.machines)
            .max()
            .unwrap_or(args.machines) as f64;
        for _ in 0..args.ramp_steps {
            let (mut step, _) = run_step(
                &mut ctx,
                Kind::BrokerAlone,
                machines.round() as usize,
                &mut raw,
            )
            .await?;
            let ok = step.meets(&bounds);
            step.sustained = Some(ok);
            eprintln!("loadtest: broker-alone step {}", step_line(&step));
            alone.push(step);
            if !ok {
                break;
            }
            machines *= args.ramp_factor;
        }
        let broker_alone = loadstats::highest_sustainable(&alone);
        ramp = Some(RampSummary {
            bounds,
            sustainable_per_s: sustainable,
            broker_alone_steps: alone,
            broker_alone_per_s: broker_alone,
            ratio: sustainable.zip(broker_alone).map(|(p, b)| p / b),
        });
    }
    let recovery = if args.recovery_machines > 0 {
        let (step, _) =
            run_step(&mut ctx, Kind::Pipeline, args.recovery_machines, &mut seqs).await?;
        Some(step)
    } else {
        None
    };
    stop.cancel();

    let last = steps.last().cloned().context("no step ran")?;
    let mut processes = vec![ProcessFigures {
        name: "loadtest".to_owned(),
        pid: std::process::id(),
        cpu_s: ctx.cpu_ticks[0] as f64 / loadstats::TICKS_PER_S,
        peak_rss_mib: peak_rss_mib(None),
    }];
    for (i, (name, pid)) in ctx.pids.iter().enumerate() {
        processes.push(ProcessFigures {
            name: name.clone(),
            pid: *pid,
            cpu_s: ctx.cpu_ticks[i + 1] as f64 / loadstats::TICKS_PER_S,
            peak_rss_mib: peak_rss_mib(Some(*pid)),
        });
    }
    Ok(Report {
        machines: last.machines,
        rate_hz: args.rate,
        connections: args.connections,
        qos: args.qos,
        broker: broker_name,
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
        worst_machines: worst,
        cpu_s: processes[0].cpu_s,
        peak_rss_mib: processes[0].peak_rss_mib,
        cpu_by_thread: ctx.threads.into_iter().collect(),
        processes,
        steps,
        ramp,
        recovery,
    })
}

fn step_line(s: &Step) -> String {
    format!(
        "{} machines: offered {:.0}/s, answered {:.0}/s, loss {:.3} %, p99 {} ms, sustained {}",
        s.machines,
        s.offered_per_s,
        s.verdicts_per_s,
        s.loss_pct,
        s.latency
            .map_or_else(|| "n/a".to_owned(), |l| format!("{:.1}", l.p99_ms)),
        s.sustained == Some(true)
    )
}

fn peak_rss_mib(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| loadstats::parse_vm_hwm(&s))
        .unwrap_or(0.0)
}

fn process_ticks(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| loadstats::parse_stat(&s))
        .map_or(0, |(_, s)| s.ticks)
}

fn thread_ticks() -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (name, s) = loadstats::parse_stat(&stat)?;
        Some((tid, name, s.ticks))
    })
    .collect()
}

/// CPU samples of this process, its threads and every `--pid`.
struct CpuSample {
    procs: Vec<u64>,
    threads: Vec<(u32, String, u64)>,
}

fn cpu_sample(pids: &[(String, u32)]) -> CpuSample {
    let mut procs = vec![process_ticks(None)];
    procs.extend(pids.iter().map(|(_, p)| process_ticks(Some(*p))));
    CpuSample {
        procs,
        threads: thread_ticks(),
    }
}

fn wall_to_instant(t: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (t - OffsetDateTime::now_utc()).as_seconds_f64().max(0.0);
    tokio::time::Instant::now() + Duration::from_secs_f64(ahead)
}

/// Runs one load level: `machines` machines at the configured rate for warm-up + window, then
/// waits the drain time. `seqs` holds each machine's last seq and grows as needed.
async fn run_step(
    ctx: &mut Ctx,
    kind: Kind,
    machines: usize,
    seqs: &mut Vec<u64>,
) -> anyhow::Result<(Step, Vec<(usize, u64)>)> {
    let args = ctx.args.clone();
    let topics = Topics::new(match kind {
        Kind::Pipeline => dtwin_schema::DEFAULT_PREFIX,
        Kind::BrokerAlone => RAW_PREFIX,
    });
    if seqs.len() < machines {
        seqs.resize(machines, 0);
    }
    let base: Vec<u64> = seqs[..machines].iter().map(|s| s + 1).collect();
    // At most one reading per tick, and a tick per period (plus the one at the start).
    let span = (args.rate * (args.warmup + args.duration)).ceil() as u64 + 2;
    let probe_features = kind == Kind::Pipeline && !args.no_feature_probe;

    // The listener: every answer, with the time it arrived.
    let mut subs = vec![match kind {
        Kind::Pipeline => Subscription::new(topics.all(TopicKind::Risk), QoS::AtLeastOnce),
        Kind::BrokerAlone => Subscription::new(topics.all(TopicKind::Telemetry), ctx.qos),
    }];
    if probe_features {
        subs.push(Subscription::new(
            topics.all(TopicKind::Features),
            QoS::AtMostOnce,
        ));
    }
    let mut sub_cfg = BusConfig::new(
        ctx.url.clone(),
        format!("dtwin-loadtest-sub-{}", std::process::id()),
    );
    sub_cfg.inbox_capacity = LISTENER_INBOX;
    let mut sub = dtwin_bus::connect(&sub_cfg, subs);
    anyhow::ensure!(
        sub.client.wait_ready(Duration::from_secs(10)).await,
        "cannot subscribe at {}",
        ctx.url
    );
    let w0 = OffsetDateTime::now_utc() + Duration::from_secs_f64(args.warmup + 0.3);
    let w1 = w0 + Duration::from_secs_f64(args.duration);
    let stop_listening = CancellationToken::new();
    let listening = stop_listening.clone();
    let listen_topics = topics.clone();
    let mut heard = Heard {
        answers: SeqLedger::new(base.clone(), span),
        features: probe_features.then(|| SeqLedger::new(base.clone(), span)),
        latency: LatencyHist::default(),
    };
    let listener = tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                _ = listening.cancelled() => break,
                m = sub.inbox.recv() => match m { Some(m) => m, None => break },
            };
            let now = OffsetDateTime::now_utc();
            let Some((topic_kind, _)) = listen_topics.parse(&m.topic) else {
                continue;
            };
            let Ok(p) = serde_json::from_slice::<Probe>(&m.payload) else {
                continue;
            };
            let Some(i) = machine_index(p.machine_id) else {
                continue;
            };
            if topic_kind == TopicKind::Features {
                if let Some(f) = heard.features.as_mut() {
                    f.received(i, p.seq);
                }
                continue;
            }
            heard.answers.received(i, p.seq);
            let origin = p.source_ts.unwrap_or(p.ts);
            if let Ok(origin) = OffsetDateTime::parse(origin, &Rfc3339) {
                if origin >= w0 && origin < w1 {
                    heard
                        .latency
                        .record_ms((now - origin).as_seconds_f64() * 1000.0);
                }
            }
        }
        sub.close().await;
        heard
    });

    // Publishers: connection k has machines k, k + C, k + 2C, ...
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut pubs = Vec::new();
    for k in 0..args.connections.min(machines) {
        let mine: Vec<usize> = (k..machines).step_by(args.connections).collect();
        let mut cfg = BusConfig::new(
            ctx.url.clone(),
            format!("dtwin-loadtest-{}-{k}", std::process::id()),
        );
        cfg.request_capacity = PUBLISHER_REQUESTS;
        let conn = dtwin_bus::connect(&cfg, vec![]);
        anyhow::ensure!(
            conn.client.wait_ready(Duration::from_secs(10)).await,
            "cannot connect to {}",
            ctx.url
        );
        let start_seq: Vec<u64> = mine.iter().map(|&m| seqs[m]).collect();
        let template = ctx.template.clone();
        let sentinel = MachineId::parse(SENTINEL_ID)?;
        let topic = topics.telemetry(&sentinel);
        let (topic_head, topic_tail) = topic
            .split_once(SENTINEL_ID)
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .context("telemetry topic without the machine id")?;
        let qos = ctx.qos;
        let slots = usize::from(args.slots);
        pubs.push(tokio::spawn(async move {
            let mut seq = start_seq;
            // Per machine: first and last seq published in the window.
            let mut window: Vec<Option<(u64, u64)>> = vec![None; mine.len()];
            // At least 1 ms per slot: tokio's timer resolution.
            let slots = slots
                .min(mine.len())
                .min(period.as_millis().max(1) as usize)
                .max(1);
            let mut tick = tokio::time::interval(period / slots as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut slot = 0;
            'run: loop {
                tick.tick().await;
                let now = OffsetDateTime::now_utc();
                if now >= w1 {
                    break;
                }
                let in_window = now >= w0;
                let ts = now.format(&Rfc3339).unwrap_or_default();
                for j in (slot..mine.len()).step_by(slots) {
                    seq[j] += 1;
                    let id = machine_id(mine[j]);
                    let payload = template.render(&id, &ts, seq[j], mine[j] + seq[j] as usize);
                    let topic = format!("{topic_head}{id}{topic_tail}");
                    if conn
                        .client
                        .publish(topic, qos, false, payload)
                        .await
                        .is_err()
                    {
                        break 'run;
                    }
                    if in_window {
                        let w = &mut window[j];
                        *w = Some(w.map_or((seq[j], seq[j]), |(lo, _)| (lo, seq[j])));
                    }
                }
                slot = (slot + 1) % slots;
            }
            (mine, seq, window, conn)
        }));
    }

    tokio::time::sleep_until(wall_to_instant(w0)).await;
    let before = cpu_sample(&ctx.pids);
    tokio::time::sleep_until(wall_to_instant(w1)).await;
    let after = cpu_sample(&ctx.pids);
    for (i, (a, b)) in after.procs.iter().zip(&before.procs).enumerate() {
        ctx.cpu_ticks[i] += a.saturating_sub(*b);
    }
    for (g, s) in loadstats::thread_groups(&before.threads, &after.threads) {
        *ctx.threads.entry(g).or_default() += s;
    }

    let mut ranges = Vec::new();
    let mut conns = Vec::new();
    for p in pubs {
        let (mine, seq, window, conn) = p.await?;
        for (j, m) in mine.iter().enumerate() {
            seqs[*m] = seq[j];
            if let Some(r) = window[j] {
                ranges.push((*m, r));
            }
        }
        conns.push(conn);
    }
    tokio::time::sleep(Duration::from_secs_f64(args.drain)).await;
    for c in conns {
        c.close().await;
    }
    stop_listening.cancel();
    let mut heard = tokio::time::timeout(Duration::from_secs(10), listener)
        .await
        .context("the listener did not stop")??;
    for (m, (lo, hi)) in ranges {
        heard.answers.sent_range(m, lo, hi);
        if let Some(f) = heard.features.as_mut() {
            f.sent_range(m, lo, hi);
        }
    }
    let answers = heard.answers.tally();
    let delivered = heard.features.as_ref().map(SeqLedger::tally);
    let step = Step::new(
        machines,
        machines as f64 * args.rate,
        &answers,
        delivered.as_ref(),
        &heard.latency,
        args.duration,
    );
    Ok((step, heard.answers.worst(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_telemetry_decodes_with_the_id_ts_and_seq_given() {
        let t = Template::new().unwrap();
        let ts = "2026-11-22T10:00:00.123456789Z";
        for k in [0, 1, 63, 64, 1000] {
            let bytes = t.render("lt-000042", ts, 1234 + k as u64, k);
            let r = Telemetry::decode(&bytes).unwrap();
            assert_eq!(r.machine_id.as_str(), "lt-000042");
            assert_eq!(r.seq, 1234 + k as u64);
            assert_eq!(r.ts, OffsetDateTime::parse(ts, &Rfc3339).unwrap());
            assert!(r.temperature_c.is_some() && r.tool_wear_min.is_some());
        }
        // Value sets differ, so windows see movement.
        assert_ne!(t.render("a", ts, 1, 0), t.render("a", ts, 1, 1));
    }

    #[test]
    fn machine_ids_round_trip() {
        assert_eq!(machine_index(&machine_id(42)), Some(42));
        assert_eq!(machine_index(&machine_id(123_456)), Some(123_456));
        assert_eq!(machine_index("m-1"), None);
    }
}
