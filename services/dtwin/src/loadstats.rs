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
//! - [`Bounds`], [`Step`], [`highest_sustainable`]: the ramp.
//! - [`ProcStat`], [`parse_stat`], [`parse_vm_hwm`], [`thread_groups`]: CPU and memory.
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
/// `rumqttd`, it names the router `router-0`, the listener after the server, `dtwin-v4`, and a
/// `timer`), tokio's threads (the services, the load generator and listener, and the blocking
/// pool: tokio names them all `tokio-runtime-worker`), everything else.
pub fn thread_group(name: &str) -> &'static str {
    if ["rumqttd", "router", "dtwin-v4", "timer"]
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
