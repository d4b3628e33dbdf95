//! The load test's arithmetic, free of I/O: latency histograms, loss by sequence number, the
//! ramp's verdict, `/proc` parsing, and the report with its table.
//!
//! Latencies go into an HDR histogram (`hdrhistogram`) rather than a list of samples: memory
//! stays fixed (~30 KiB) however many verdicts arrive, so the load test does not inflate the
//! RSS it reports (100,000 machines for 30 s would be 3 M samples), recording is O(1), and
//! quantiles keep 3 significant digits. Loss is a bitmap per machine over the sequence numbers
//! a step can produce, so duplicates and reordering cost nothing extra.
//!
//! # Layout
//! - [`LatencyHist`], [`Latency`]: telemetry -> verdict latency and its percentiles.
//! - [`SeqLedger`], [`Tally`]: what was sent in the window and what came back, by `seq`.
//! - [`first_seqs`], [`seq_span`]: the seqs a step's machines can produce.
//! - [`Bounds`], [`Step`], [`highest_sustainable`], [`ramp_machines`],
//!   [`highest_sustained_machines`], [`RampSummary`]: the ramp.
//! - [`ProcStat`], [`parse_stat`], [`parse_vm_hwm`], [`thread_groups`], [`CpuSample`],
//!   [`CpuTotals`]: CPU and memory.
//! - [`Report`]: the result, as JSON (serde) or a table.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency kept exactly, µs (one hour); larger ones are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Telemetry -> verdict latencies of one step, in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHist(Histogram<u64>);

impl Default for LatencyHist {
    fn default() -> Self {
        // 1 µs .. 1 h with 3 significant digits always fits hdrhistogram's limits.
        Self(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"))
    }
}

impl LatencyHist {
    /// Records one latency in milliseconds; negative ones (clock steps) count as 0.
    pub fn record_ms(&mut self, ms: f64) {
        let us = (ms * 1000.0).clamp(1.0, MAX_LATENCY_US as f64) as u64;
        self.0.saturating_record(us);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Percentiles and maximum; `None` when empty.
    pub fn summary(&self) -> Option<Latency> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p95_ms: ms(self.0.value_at_quantile(0.95)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
        })
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Readings sent in a window and answers seen for them, per machine, by `seq`.
///
/// Machine `m` may produce seqs `base[m] .. base[m] + span` in a step; an answer outside that
/// range (or for an unknown machine) is counted as `unexpected` and otherwise ignored.
#[derive(Debug, Clone)]
pub struct SeqLedger {
    base: Vec<u64>,
    span: u64,
    words: usize,
    bits: Vec<u64>,
    window: Vec<Option<(u64, u64)>>,
    duplicates: u64,
    unexpected: u64,
}

/// What a [`SeqLedger`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Tally {
    /// Readings sent in the window.
    pub sent: u64,
    /// Of those, readings answered at least once.
    pub answered: u64,
    /// Readings sent in the window without an answer.
    pub lost: u64,
    /// Answers seen more than once (for any reading of the step).
    pub duplicates: u64,
    /// Answers for readings this step could not have produced.
    pub unexpected: u64,
}

impl SeqLedger {
    /// A ledger for `base.len()` machines whose seqs start at `base[m]`, at most `span` each.
    pub fn new(base: Vec<u64>, span: u64) -> Self {
        let words = span.div_ceil(64) as usize;
        let n = base.len();
        Self {
            base,
            span,
            words,
            bits: vec![0; n * words],
            window: vec![None; n],
            duplicates: 0,
            unexpected: 0,
        }
    }

    /// Readings `lo..=hi` of machine `m` were published in the measured window.
    pub fn sent_range(&mut self, m: usize, lo: u64, hi: u64) {
        if let Some(w) = self.window.get_mut(m) {
            if lo <= hi {
                *w = Some(match *w {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                });
            }
        }
    }

    /// An answer for reading `seq` of machine `m` arrived (in any order, possibly twice).
    pub fn received(&mut self, m: usize, seq: u64) {
        let Some(&base) = self.base.get(m) else {
            self.unexpected += 1;
            return;
        };
        let Some(off) = seq.checked_sub(base).filter(|o| *o < self.span) else {
            self.unexpected += 1;
            return;
        };
        let i = m * self.words + (off / 64) as usize;
        let bit = 1u64 << (off % 64);
        if self.bits[i] & bit != 0 {
            self.duplicates += 1;
        } else {
            self.bits[i] |= bit;
        }
    }

    fn answered(&self, m: usize, seq: u64) -> bool {
        match seq.checked_sub(self.base[m]).filter(|o| *o < self.span) {
            Some(off) => self.bits[m * self.words + (off / 64) as usize] & (1 << (off % 64)) != 0,
            None => false,
        }
    }

    /// Sums over every machine.
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            duplicates: self.duplicates,
            unexpected: self.unexpected,
            ..Tally::default()
        };
        for (m, w) in self.window.iter().enumerate() {
            if let Some((lo, hi)) = *w {
                t.sent += hi - lo + 1;
                t.answered += (lo..=hi).filter(|s| self.answered(m, *s)).count() as u64;
            }
        }
        t.lost = t.sent - t.answered;
        t
    }

    /// Machines with lost readings, most first (at most `n`): (machine, lost).
    pub fn worst(&self, n: usize) -> Vec<(usize, u64)> {
        let mut v: Vec<(usize, u64)> = self
            .window
            .iter()
            .enumerate()
            .filter_map(|(m, w)| {
                let (lo, hi) = (*w)?;
                let lost = (lo..=hi).filter(|s| !self.answered(m, *s)).count() as u64;
                (lost > 0).then_some((m, lost))
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// The first seq each of `machines` machines publishes in a step: one past its last, with
/// `last` (each machine's last seq so far, 0 before its first reading) grown as needed.
pub fn first_seqs(last: &mut Vec<u64>, machines: usize) -> Vec<u64> {
    if last.len() < machines {
        last.resize(machines, 0);
    }
    last[..machines].iter().map(|s| s + 1).collect()
}

/// How many seqs a machine can produce in a step of `warmup + duration` seconds at `rate` Hz:
/// at most one reading per tick, and a tick per period (plus the one at the start).
pub fn seq_span(rate: f64, warmup: f64, duration: f64) -> u64 {
    (rate * (warmup + duration)).ceil() as u64 + 2
}

/// When a ramp step counts as sustained.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Bounds {
    /// Highest acceptable p99 latency, ms.
    pub max_p99_ms: f64,
    /// Highest acceptable loss, %.
    pub max_loss_pct: f64,
    /// Lowest share of the asked-for rate the publishers must manage to offer, %.
    pub min_offered_pct: f64,
}

/// One measured load level.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    /// Simulated machines.
    pub machines: usize,
    /// Readings per second asked for (machines x rate).
    pub target_per_s: f64,
    /// Telemetry published per second in the window.
    pub offered_per_s: f64,
    /// Telemetry that got through the first hop per second: feature vectors seen for readings
    /// of the window (pipeline), or the telemetry itself (broker alone); `None` when not probed.
    pub delivered_per_s: Option<f64>,
    /// Answers per second for readings of the window: risk verdicts, or the telemetry itself
    /// when measuring the broker alone.
    pub verdicts_per_s: f64,
    /// Reading `ts` -> answer received.
    pub latency: Option<Latency>,
    /// Readings of the window without an answer (none within the drain time after it).
    pub lost: u64,
    /// Their share of the readings sent, %.
    pub loss_pct: f64,
    /// Answers received twice.
    pub duplicates: u64,
    /// Whether the step met the [`Bounds`] (ramp only).
    pub sustained: Option<bool>,
}

impl Step {
    /// Figures from a ledger and a histogram over a window of `secs` seconds.
    pub fn new(
        machines: usize,
        target_per_s: f64,
        answers: &Tally,
        delivered: Option<&Tally>,
        lat: &LatencyHist,
        secs: f64,
    ) -> Self {
        let secs = secs.max(1e-9);
        Self {
            machines,
            target_per_s,
            offered_per_s: answers.sent as f64 / secs,
            delivered_per_s: delivered.map(|d| d.answered as f64 / secs),
            verdicts_per_s: answers.answered as f64 / secs,
            latency: lat.summary(),
            lost: answers.lost,
            loss_pct: if answers.sent == 0 {
                0.0
            } else {
                100.0 * answers.lost as f64 / answers.sent as f64
            },
            duplicates: answers.duplicates,
            sustained: None,
        }
    }

    /// Whether this step met `b`: nothing answered is a failure too.
    pub fn meets(&self, b: &Bounds) -> bool {
        let p99_ok = self.latency.is_some_and(|l| l.p99_ms <= b.max_p99_ms);
        let offered_ok = self.offered_per_s >= self.target_per_s * b.min_offered_pct / 100.0;
        p99_ok && offered_ok && self.loss_pct <= b.max_loss_pct
    }

    /// One line on the step, as the ramp prints it while it runs.
    pub fn progress_line(&self) -> String {
        format!(
            "{} machines: offered {:.0}/s, answered {:.0}/s, loss {:.3} %, p99 {} ms, sustained {}",
            self.machines,
            self.offered_per_s,
            self.verdicts_per_s,
            self.loss_pct,
            self.latency
                .map_or_else(|| "n/a".to_owned(), |l| format!("{:.1}", l.p99_ms)),
            self.sustained == Some(true)
        )
    }
}

/// The offered rate of the last sustained step before the first one that was not (steps in
/// the order they ran, each with `sustained` set); `None` when the first step already failed.
pub fn highest_sustainable(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .take_while(|s| s.sustained == Some(true))
        .map(|s| s.offered_per_s)
        .last()
}

/// Machines per ramp step: `start`, then multiplied by `factor` from one step to the next
/// (rounded; saturating at `usize::MAX`). Endless: take as many steps as the ramp may run.
pub fn ramp_machines(start: usize, factor: f64) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(start as f64), move |m| Some(m * factor)).map(|m| m.round() as usize)
}

/// The most machines of any sustained step (`sustained == Some(true)`); `None` when none was.
pub fn highest_sustained_machines(steps: &[Step]) -> Option<usize> {
    steps
        .iter()
        .filter(|s| s.sustained == Some(true))
        .map(|s| s.machines)
        .max()
}

/// A process's CPU time and memory as `/proc/<pid>/stat` and `status` tell them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcStat {
    /// User + system CPU, in clock ticks.
    pub ticks: u64,
}

/// Clock ticks per second of `/proc`'s CPU times (USER_HZ, 100 on every Linux build).
pub const TICKS_PER_S: f64 = 100.0;

/// The command name and user + system ticks from a `/proc/<pid>[/task/<tid>]/stat` line.
pub fn parse_stat(line: &str) -> Option<(String, ProcStat)> {
    // The name is in parentheses and may itself contain spaces or parentheses.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    let f: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((
        name,
        ProcStat {
            ticks: utime + stime,
        },
    ))
}

/// Peak resident memory in MiB from a `/proc/<pid>/status` text (`VmHWM`).
pub fn parse_vm_hwm(status: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// The group a thread's CPU is reported under, from its name: rumqttd's threads (ours is
/// `rumqttd`, it names the router `router-0` and a `timer`; dtwin-broker names its listeners
/// `rumqttd-mqtt` and `rumqttd-mqtts`), tokio's threads (the services, the load generator and listener, and the blocking
/// pool: tokio names them all `tokio-runtime-worker`), everything else.
pub fn thread_group(name: &str) -> &'static str {
    if ["rumqttd", "router", "timer"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        "broker"
    } else if name.starts_with("tokio") {
        "tokio"
    } else {
        "other"
    }
}

/// CPU seconds between two samples of per-thread ticks, summed by [`thread_group`] (threads
/// that ended in between are missing from `after` and not counted). Sorted by name.
pub fn thread_groups(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
) -> Vec<(String, f64)> {
    let mut groups: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for (tid, name, ticks) in after {
        let was = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |(_, _, k)| *k);
        *groups.entry(thread_group(name)).or_default() += ticks.saturating_sub(was);
    }
    groups
        .into_iter()
        .map(|(g, t)| (g.to_owned(), t as f64 / TICKS_PER_S))
        .collect()
}

/// CPU ticks read at one moment: this process then each `--pid` (`procs`), and this
/// process's threads as (tid, name, ticks).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuSample {
    /// User + system ticks per process, this one first.
    pub procs: Vec<u64>,
    /// User + system ticks per thread of this process.
    pub threads: Vec<(u32, String, u64)>,
}

/// CPU used in the measured windows so far, summed over windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuTotals {
    /// Ticks per process, in [`CpuSample::procs`] order.
    pub procs: Vec<u64>,
    /// Seconds per [`thread_group`] of this process, sorted by group.
    pub threads: std::collections::BTreeMap<String, f64>,
}

impl CpuTotals {
    /// Nothing used yet by `processes` processes.
    pub fn new(processes: usize) -> Self {
        Self {
            procs: vec![0; processes],
            threads: Default::default(),
        }
    }

    /// Adds what was used between two samples (a counter that went backwards adds 0).
    pub fn add_window(&mut self, before: &CpuSample, after: &CpuSample) {
        for (total, (a, b)) in self
            .procs
            .iter_mut()
            .zip(after.procs.iter().zip(&before.procs))
        {
            *total += a.saturating_sub(*b);
        }
        for (g, s) in thread_groups(&before.threads, &after.threads) {
            *self.threads.entry(g).or_default() += s;
        }
    }

    /// CPU seconds of process `i` ([`CpuSample::procs`] order); 0 for an unknown one.
    pub fn cpu_s(&self, i: usize) -> f64 {
        self.procs.get(i).map_or(0.0, |t| *t as f64 / TICKS_PER_S)
    }

    /// Seconds by thread group, sorted by group.
    pub fn by_thread(&self) -> Vec<(String, f64)> {
        self.threads.iter().map(|(g, s)| (g.clone(), *s)).collect()
    }
}

/// CPU and memory of one process during the measured window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessFigures {
    /// What it is (`loadtest` for this process, or the name given with `--pid`).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// User + system CPU seconds in the measured window(s).
    pub cpu_s: f64,
    /// Peak resident memory since it started, MiB.
    pub peak_rss_mib: f64,
}

/// The load test's result (also its `--json` output).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated machines (of the last step run).
    pub machines: usize,
    /// Readings per machine per second asked for.
    pub rate_hz: f64,
    /// Publisher connections.
    pub connections: usize,
    /// Telemetry QoS.
    pub qos: u8,
    /// Broker ("embedded" or its URL).
    pub broker: String,
    /// Where the services ran: `in-process` or `external`.
    pub target: String,
    /// Measured window per step, s.
    pub measured_s: f64,
    /// Telemetry published per second in the window (last step).
    pub offered_per_s: f64,
    /// Feature vectors seen per second for readings of the window (last step).
    pub delivered_per_s: Option<f64>,
    /// Risk verdicts received per second for readings of the window (last step).
    pub verdicts_per_s: f64,
    /// Telemetry `ts` -> risk received (last step).
    pub latency: Option<Latency>,
    /// Readings of the window without a verdict (last step).
    pub lost: u64,
    /// Their share of the readings sent, % (last step).
    pub loss_pct: f64,
    /// Verdicts received twice (last step).
    pub duplicates: u64,
    /// Machines with the most lost readings (machine index, lost), last step.
    pub worst_machines: Vec<(usize, u64)>,
    /// CPU seconds of this process in the measured windows (user + system).
    pub cpu_s: f64,
    /// Peak resident memory of this process, MiB.
    pub peak_rss_mib: f64,
    /// This process's CPU seconds in the windows by thread group (broker, tokio, other).
    pub cpu_by_thread: Vec<(String, f64)>,
    /// Every measured process: this one, then those given with `--pid`.
    pub processes: Vec<ProcessFigures>,
    /// Every pipeline step (one without `--ramp`).
    pub steps: Vec<Step>,
    /// `--ramp`: the bounds, the pipeline's and the broker's highest sustained rate.
    pub ramp: Option<RampSummary>,
    /// `--recovery-machines`: the light step run after everything else.
    pub recovery: Option<Step>,
}

/// What `--ramp` found.
#[derive(Debug, Clone, Serialize)]
pub struct RampSummary {
    /// When a step counts as sustained.
    pub bounds: Bounds,
    /// Highest sustained telemetry/s of the pipeline.
    pub sustainable_per_s: Option<f64>,
    /// The broker alone: publishers straight to one subscriber, same broker, same run.
    pub broker_alone_steps: Vec<Step>,
    /// Highest sustained telemetry/s of the broker alone.
    pub broker_alone_per_s: Option<f64>,
    /// Pipeline / broker alone.
    pub ratio: Option<f64>,
}

impl RampSummary {
    /// The summary of a ramp from its pipeline steps and broker-alone steps (each in the
    /// order they ran, with `sustained` set).
    pub fn new(bounds: Bounds, pipeline: &[Step], broker_alone_steps: Vec<Step>) -> Self {
        let sustainable = highest_sustainable(pipeline);
        let broker_alone = highest_sustainable(&broker_alone_steps);
        Self {
            bounds,
            sustainable_per_s: sustainable,
            broker_alone_steps,
            broker_alone_per_s: broker_alone,
            ratio: sustainable.zip(broker_alone).map(|(p, b)| p / b),
        }
    }
}

fn lat_cell(l: Option<Latency>) -> String {
    l.map_or_else(
        || "n/a".to_owned(),
        |l| {
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1}",
                l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            )
        },
    )
}

fn steps_table(out: &mut String, title: &str, steps: &[Step]) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{title}\n  {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}  {:<32} ok",
        "machines",
        "target/s",
        "offered/s",
        "deliv/s",
        "answer/s",
        "loss %",
        "p50 / p95 / p99 / max ms"
    );
    for s in steps {
        let _ = writeln!(
            out,
            "  {:>8} {:>9.0} {:>9.0} {:>9} {:>9.0} {:>8.3}  {:<32} {}",
            s.machines,
            s.target_per_s,
            s.offered_per_s,
            s.delivered_per_s
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.0}")),
            s.verdicts_per_s,
            s.loss_pct,
            lat_cell(s.latency),
            match s.sustained {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            }
        );
    }
}

impl Report {
    /// A human-readable table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "machines      {} x {} Hz over {} connection(s), QoS {}, broker {}, services {}\n\
             window        {:.1} s per step\n\
             offered       {:.0} telemetry/s\n\
             delivered     {} feature vectors/s\n\
             verdicts      {:.0} risk/s\n\
             latency       p50 / p95 / p99 / max  {} ms\n\
             loss          {} ({:.3} %), {} duplicates\n",
            self.machines,
            self.rate_hz,
            self.connections,
            self.qos,
            self.broker,
            self.target,
            self.measured_s,
            self.offered_per_s,
            self.delivered_per_s
                .map_or_else(|| "n/a".to_owned(), |d| format!("{d:.0}")),
            self.verdicts_per_s,
            lat_cell(self.latency),
            self.lost,
            self.loss_pct,
            self.duplicates,
        );
        for p in &self.processes {
            let window = self.measured_s * self.steps.len().max(1) as f64;
            let _ = writeln!(
                out,
                "process       {} (pid {}): cpu {:.2} s ({:.0} % of one core), peak RSS {:.0} MiB",
                p.name,
                p.pid,
                p.cpu_s,
                100.0 * p.cpu_s / window.max(1e-9),
                p.peak_rss_mib
            );
        }
        if !self.cpu_by_thread.is_empty() {
            let parts: Vec<String> = self
                .cpu_by_thread
                .iter()
                .map(|(g, s)| format!("{g} {s:.2} s"))
                .collect();
            let _ = writeln!(out, "cpu by thread {}", parts.join(", "));
        }
        if let Some(r) = &self.ramp {
            steps_table(&mut out, "ramp: pipeline (telemetry -> risk)", &self.steps);
            steps_table(
                &mut out,
                "ramp: broker alone (telemetry -> one subscriber)",
                &r.broker_alone_steps,
            );
            let f = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| format!("{v:.0}/s"));
            let _ = writeln!(
                out,
                "sustainable   pipeline {}, broker alone {}, ratio {} (p99 <= {} ms, loss <= {} %)",
                f(r.sustainable_per_s),
                f(r.broker_alone_per_s),
                r.ratio
                    .map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}")),
                r.bounds.max_p99_ms,
                r.bounds.max_loss_pct
            );
        }
        if let Some(r) = &self.recovery {
            steps_table(
                &mut out,
                "recovery (light load afterwards)",
                std::slice::from_ref(r),
            );
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(v: &mut [f64], q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    #[test]
    fn histogram_percentiles_of_a_known_spread() {
        let mut h = LatencyHist::default();
        for ms in 1..=1000 {
            h.record_ms(f64::from(ms));
        }
        let l = h.summary().unwrap();
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(h.count(), 1000);
        assert_eq!(LatencyHist::default().summary(), None);
        // A clock step backwards is recorded as ~0, not dropped or wrapped around.
        let mut h = LatencyHist::default();
        h.record_ms(-5.0);
        assert!(h.summary().unwrap().max_ms < 0.01);
    }

    #[test]
    fn loss_counts_missing_and_ignores_out_of_window_and_duplicates() {
        // Machine 0's seqs start at 100; readings 101..=110 are in the window.
        let mut l = SeqLedger::new(vec![100, 0], 64);
        l.sent_range(0, 101, 110);
        for s in [101, 102, 103, 103, 105, 100, 111] {
            l.received(0, s);
        }
        l.received(7, 1); // unknown machine
        l.received(1, 64); // beyond the span
        l.received(0, 99); // before the base
        let t = l.tally();
        assert_eq!(
            t,
            Tally {
                sent: 10,
                answered: 4,
                lost: 6,
                duplicates: 1,
                unexpected: 3
            }
        );
        assert_eq!(l.worst(5), vec![(0, 6)]);
    }

    #[test]
    fn ramp_keeps_the_last_sustained_step_before_the_first_failure() {
        let b = Bounds {
            max_p99_ms: 50.0,
            max_loss_pct: 0.1,
            min_offered_pct: 95.0,
        };
        let lat = |p99| Latency {
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: p99,
            max_ms: 100.0,
        };
        let step = |offered: f64, p99: f64, loss: f64| Step {
            machines: 1,
            target_per_s: offered,
            offered_per_s: offered,
            delivered_per_s: None,
            verdicts_per_s: offered,
            latency: Some(lat(p99)),
            lost: 0,
            loss_pct: loss,
            duplicates: 0,
            sustained: None,
        };
        let mut steps = vec![
            step(1000.0, 5.0, 0.0),
            step(2000.0, 40.0, 0.05),
            step(4000.0, 80.0, 0.0),
            step(8000.0, 5.0, 0.0),
        ];
        for s in &mut steps {
            s.sustained = Some(s.meets(&b));
        }
        assert_eq!(highest_sustainable(&steps), Some(2000.0));
        assert!(!step(10.0, 1.0, 0.2).meets(&b), "loss over the bound");
        let mut short = step(10.0, 1.0, 0.0);
        short.offered_per_s = 9.0;
        assert!(!short.meets(&b), "publishers could not offer the load");
        let mut none = step(10.0, 1.0, 0.0);
        none.latency = None;
        assert!(!none.meets(&b), "nothing answered");
        steps[0].sustained = Some(false);
        assert_eq!(highest_sustainable(&steps), None);
    }

    #[test]
    fn proc_files_parse() {
        let line = "4242 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 8 0 100 1000 200";
        let (name, s) = parse_stat(line).unwrap();
        assert_eq!(name, "tokio-runtime-w");
        assert_eq!(s.ticks, 325);
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0";
        assert_eq!(parse_stat(odd).unwrap().0, "a (b) c");
        assert_eq!(parse_stat(odd).unwrap().1.ticks, 3);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t  2048 kB\n"), Some(2.0));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        let before = vec![
            (1, "rumqttd".to_owned(), 100),
            (2, "tokio-runtime-w".to_owned(), 50),
        ];
        let after = vec![
            (1, "rumqttd".to_owned(), 300),
            (2, "tokio-runtime-w".to_owned(), 150),
            (3, "tokio-runtime-w".to_owned(), 100),
        ];
        assert_eq!(
            thread_groups(&before, &after),
            vec![("broker".to_owned(), 2.0), ("tokio".to_owned(), 2.0)]
        );
    }

    #[test]
    fn this_process_figures_are_readable() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&stat).is_some());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_vm_hwm(&status).unwrap() > 0.0);
    }

    fn step_of(machines: usize, offered: f64, sustained: Option<bool>) -> Step {
        Step {
            machines,
            target_per_s: offered,
            offered_per_s: offered,
            delivered_per_s: None,
            verdicts_per_s: offered,
            latency: None,
            lost: 0,
            loss_pct: 0.0,
            duplicates: 0,
            sustained,
        }
    }

    #[test]
    fn first_seqs_continue_each_machine_and_start_new_ones_at_one() {
        let mut last = vec![5];
        assert_eq!(first_seqs(&mut last, 3), vec![6, 1, 1]);
        assert_eq!(last, vec![5, 0, 0]);
        last[1] = 9;
        // Fewer machines than before: the others keep their seqs.
        assert_eq!(first_seqs(&mut last, 2), vec![6, 10]);
        assert_eq!(last.len(), 3);
    }

    #[test]
    fn seq_span_covers_every_tick_of_the_step() {
        // 2 Hz for 1 + 3 s: 8 periods, the tick at the start, one to spare.
        assert_eq!(seq_span(2.0, 1.0, 3.0), 10);
        assert_eq!(seq_span(1.0, 0.0, 0.5), 3);
    }

    #[test]
    fn ramp_machines_multiply_before_rounding() {
        let v: Vec<usize> = ramp_machines(1000, 1.5).take(4).collect();
        assert_eq!(v, vec![1000, 1500, 2250, 3375]);
        // 3, 4.5, 6.75, 10.125: rounding does not accumulate.
        let v: Vec<usize> = ramp_machines(3, 1.5).take(4).collect();
        assert_eq!(v, vec![3, 5, 7, 10]);
        assert_eq!(ramp_machines(7, 2.0).take(1).collect::<Vec<_>>(), vec![7]);
        assert_eq!(ramp_machines(1, f64::MAX).nth(2), Some(usize::MAX));
    }

    #[test]
    fn ramp_summary_takes_the_highest_sustained_rates_and_their_ratio() {
        let pipeline = vec![
            step_of(100, 1000.0, Some(true)),
            step_of(200, 2000.0, Some(true)),
            step_of(300, 2500.0, Some(false)),
        ];
        assert_eq!(highest_sustained_machines(&pipeline), Some(200));
        assert_eq!(highest_sustained_machines(&pipeline[2..]), None);
        assert_eq!(
            highest_sustained_machines(&[step_of(100, 1.0, None)]),
            None,
            "steps outside a ramp are not sustained"
        );
        let bounds = Bounds {
            max_p99_ms: 50.0,
            max_loss_pct: 0.1,
            min_offered_pct: 95.0,
        };
        let alone = vec![
            step_of(200, 4000.0, Some(true)),
            step_of(300, 6000.0, Some(false)),
        ];
        let r = RampSummary::new(bounds, &pipeline, alone.clone());
        assert_eq!(r.sustainable_per_s, Some(2000.0));
        assert_eq!(r.broker_alone_per_s, Some(4000.0));
        assert_eq!(r.ratio, Some(0.5));
        assert_eq!(r.broker_alone_steps, alone);
        let r = RampSummary::new(bounds, &pipeline, vec![step_of(200, 1.0, Some(false))]);
        assert_eq!((r.broker_alone_per_s, r.ratio), (None, None));
    }

    #[test]
    fn progress_line_reads_the_step() {
        let mut s = step_of(1500, 1499.6, Some(true));
        s.verdicts_per_s = 1490.2;
        s.loss_pct = 0.0126;
        s.latency = Some(Latency {
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 12.345,
            max_ms: 30.0,
        });
        assert_eq!(
            s.progress_line(),
            "1500 machines: offered 1500/s, answered 1490/s, loss 0.013 %, p99 12.3 ms, sustained true"
        );
        let none = step_of(10, 0.0, None);
        assert_eq!(
            none.progress_line(),
            "10 machines: offered 0/s, answered 0/s, loss 0.000 %, p99 n/a ms, sustained false"
        );
    }

    #[test]
    fn cpu_totals_sum_the_windows() {
        let sample = |procs: Vec<u64>, threads: &[(u32, &str, u64)]| CpuSample {
            procs,
            threads: threads
                .iter()
                .map(|(t, n, k)| (*t, (*n).to_owned(), *k))
                .collect(),
        };
        let mut c = CpuTotals::new(2);
        c.add_window(
            &sample(
                vec![100, 50],
                &[(1, "rumqttd", 10), (2, "tokio-runtime-w", 20)],
            ),
            &sample(
                vec![300, 40],
                &[(1, "rumqttd", 60), (2, "tokio-runtime-w", 70)],
            ),
        );
        c.add_window(
            &sample(vec![400, 40], &[(2, "tokio-runtime-w", 80)]),
            &sample(vec![450, 90], &[(2, "tokio-runtime-w", 130), (9, "gc", 25)]),
        );
        // A counter that went backwards (a pid reused) adds nothing.
        assert_eq!(c.procs, vec![250, 50]);
        assert_eq!(c.cpu_s(0), 2.5);
        assert_eq!(c.cpu_s(1), 0.5);
        assert_eq!(c.cpu_s(2), 0.0);
        assert_eq!(
            c.by_thread(),
            vec![
                ("broker".to_owned(), 0.5),
                ("other".to_owned(), 0.25),
                ("tokio".to_owned(), 1.0)
            ]
        );
    }

    #[test]
    fn proc_files_parse_from_real_looking_text() {
        // A process (52 fields) and one of its threads, as Linux 6 writes them.
        let process = "31337 (dtwin) S 1 31337 31337 0 -1 4194560 52113 0 3 0 1234 567 0 0 20 0 \
                       14 0 2261354 2315776000 24689 18446744073709551615 94386937393152 \
                       94386957627793 140725847375584 0 0 0 0 4096 17646 0 0 0 17 1 0 0 0 0 0 \
                       94386960146064 94386960937656 94387226927104 140725847379773 \
                       140725847379849 140725847379849 140725847379937 0";
        assert_eq!(
            parse_stat(process),
            Some(("dtwin".to_owned(), ProcStat { ticks: 1801 }))
        );
        let thread = "31341 (tokio-runtime-w) R 1 31337 31337 0 -1 4194624 10 0 0 0 77 3 0 0 \
                      20 0 14 0 2261360 2315776000 24689 18446744073709551615";
        assert_eq!(parse_stat(thread).unwrap().1.ticks, 80);
        // Too short to hold utime and stime.
        assert_eq!(
            parse_stat("31337 (dtwin) S 1 31337 31337 0 -1 4194560"),
            None
        );
        assert_eq!(parse_stat("31337 (dtwin) S 1 2 3 4 5 6 7 8 9 10 x 5"), None);
        let status = "Name:\tdtwin\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t31337\n\
                      VmPeak:\t 2261356 kB\nVmSize:\t 2261356 kB\nVmLck:\t       0 kB\n\
                      VmHWM:\t  123456 kB\nVmRSS:\t   98756 kB\nThreads:\t14\n";
        assert_eq!(parse_vm_hwm(status), Some(120.5625));
        // A kernel thread has no memory lines.
        assert_eq!(
            parse_vm_hwm("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            None
        );
    }

    proptest! {
        #[test]
        fn histogram_percentiles_are_ordered_and_close_to_exact(
            mut v in prop::collection::vec(0.001f64..100_000.0, 1..400)
        ) {
            let mut h = LatencyHist::default();
            for x in &v { h.record_ms(*x); }
            let l = h.summary().unwrap();
            prop_assert!(l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
            for (q, got) in [(50.0, l.p50_ms), (99.0, l.p99_ms), (100.0, l.max_ms)] {
                let want = exact(&mut v, q).max(0.001);
                // 3 significant digits, plus the 1 µs floor.
                prop_assert!((got - want).abs() <= want * 0.002 + 0.002, "q{} {} vs {}", q, got, want);
            }
        }

        #[test]
        fn loss_by_seq_survives_duplicates_and_reordering(
            n in 1u64..200,
            got in prop::collection::vec(0u64..250, 0..400),
            lo_off in 0u64..20,
        ) {
            let base = 1000;
            let mut l = SeqLedger::new(vec![base], 256);
            let (lo, hi) = (base + lo_off, base + lo_off + n - 1);
            l.sent_range(0, lo, hi);
            for s in &got { l.received(0, base + s); }
            let t = l.tally();
            let distinct: std::collections::BTreeSet<u64> = got.iter().map(|s| base + s).collect();
            let want_answered = distinct.iter().filter(|s| (lo..=hi).contains(*s)).count() as u64;
            prop_assert_eq!(t.sent, n);
            prop_assert_eq!(t.answered, want_answered);
            prop_assert_eq!(t.sent, t.answered + t.lost);
            prop_assert_eq!(t.duplicates, (got.len() - distinct.len()) as u64);
            // The same answers in reverse order give the same tally.
            let mut r = SeqLedger::new(vec![base], 256);
            r.sent_range(0, lo, hi);
            for s in got.iter().rev() { r.received(0, base + s); }
            prop_assert_eq!(r.tally(), t);
        }
    }
}
