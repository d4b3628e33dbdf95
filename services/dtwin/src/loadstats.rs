//! The load test's arithmetic, free of I/O: latency percentiles, loss by sequence number, and
//! the report.

use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Nearest-rank percentile (`q` in 0..=100) of unsorted samples; `None` when empty.
pub fn percentile(samples: &mut [f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// What was sent and what came back, per machine, by `seq`.
#[derive(Debug, Default)]
pub struct SeqLedger {
    sent: HashMap<u32, HashSet<u64>>,
    received: HashMap<u32, HashSet<u64>>,
    duplicates: u64,
}

impl SeqLedger {
    /// A reading `seq` of machine `m` was published in the measured window.
    pub fn sent(&mut self, m: u32, seq: u64) {
        self.sent.entry(m).or_default().insert(seq);
    }

    /// A verdict for reading `seq` of machine `m` arrived (duplicates are counted, not doubled).
    pub fn received(&mut self, m: u32, seq: u64) {
        if !self.received.entry(m).or_default().insert(seq) {
            self.duplicates += 1;
        }
    }

    /// Whether reading `seq` of machine `m` was sent in the window.
    pub fn was_sent(&self, m: u32, seq: u64) -> bool {
        self.sent.get(&m).is_some_and(|s| s.contains(&seq))
    }

    /// (sent, answered, lost, duplicates): readings sent in the window, how many got a verdict,
    /// how many did not, and repeated verdicts. Verdicts for readings outside the window are
    /// ignored.
    pub fn tally(&self) -> (u64, u64, u64, u64) {
        let mut sent = 0;
        let mut answered = 0;
        for (m, seqs) in &self.sent {
            sent += seqs.len() as u64;
            if let Some(got) = self.received.get(m) {
                answered += seqs.iter().filter(|s| got.contains(s)).count() as u64;
            }
        }
        (sent, answered, sent - answered, self.duplicates)
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

impl Latency {
    /// From samples (ms); `None` when there are none.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        Some(Self {
            p50_ms: percentile(samples, 50.0)?,
            p95_ms: percentile(samples, 95.0)?,
            p99_ms: percentile(samples, 99.0)?,
            max_ms: percentile(samples, 100.0)?,
        })
    }
}

/// The load test's result (also its `--json` output).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated machines.
    pub machines: usize,
    /// Readings per machine per second asked for.
    pub rate_hz: f64,
    /// Publisher connections.
    pub connections: usize,
    /// Telemetry QoS.
    pub qos: u8,
    /// Broker ("embedded" or its URL).
    pub broker: String,
    /// Measured window, s.
    pub measured_s: f64,
    /// Telemetry published per second in the window.
    pub offered_per_s: f64,
    /// Risk verdicts received per second in the window (for readings of the window).
    pub verdicts_per_s: f64,
    /// Telemetry -> risk latency (reading `ts` to verdict received).
    pub latency: Option<Latency>,
    /// Readings of the window without a verdict.
    pub lost: u64,
    /// Their share of the readings sent, %.
    pub loss_pct: f64,
    /// Verdicts received twice.
    pub duplicates: u64,
    /// CPU seconds used by this process (user + system) during the window.
    pub cpu_s: f64,
    /// Peak resident memory of this process, MiB.
    pub peak_rss_mib: f64,
}

impl Report {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let lat = self.latency.map_or_else(
            || "n/a".to_owned(),
            |l| {
                format!(
                    "p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
                    l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
                )
            },
        );
        format!(
            "machines      {} x {} Hz over {} connection(s), QoS {}, broker {}\n\
             window        {:.1} s\n\
             offered       {:.0} telemetry/s\n\
             verdicts      {:.0} risk/s\n\
             latency       {lat}\n\
             loss          {} ({:.3} %), {} duplicates\n\
             cpu           {:.2} s ({:.0} % of one core)\n\
             peak RSS      {:.0} MiB",
            self.machines,
            self.rate_hz,
            self.connections,
            self.qos,
            self.broker,
            self.measured_s,
            self.offered_per_s,
            self.verdicts_per_s,
            self.lost,
            self.loss_pct,
            self.duplicates,
            self.cpu_s,
            100.0 * self.cpu_s / self.measured_s.max(1e-9),
            self.peak_rss_mib
        )
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`); 0 elsewhere.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process in MiB (`VmHWM`); 0 where unknown.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn loss_counts_missing_and_ignores_out_of_window_and_duplicates() {
        let mut l = SeqLedger::default();
        for s in 1..=10 {
            l.sent(0, s);
        }
        for s in [1, 2, 3, 3, 5, 11] {
            l.received(0, s);
        }
        l.received(7, 1);
        assert_eq!(l.tally(), (10, 4, 6, 1));
    }

    #[test]
    fn process_figures_are_readable() {
        assert!(peak_rss_mib() > 0.0);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds() > 0.0);
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered(mut v in prop::collection::vec(0.0f64..1e6, 1..300)) {
            let l = Latency::of(&mut v).unwrap();
            prop_assert!(l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
        }

        #[test]
        fn answered_never_exceeds_sent(sent in prop::collection::vec(0u64..50, 0..60), got in prop::collection::vec(0u64..60, 0..80)) {
            let mut l = SeqLedger::default();
            for s in &sent { l.sent(1, *s); }
            for s in &got { l.received(1, *s); }
            let (n, a, lost, _) = l.tally();
            prop_assert!(a <= n);
            prop_assert_eq!(n, a + lost);
        }
    }
}
