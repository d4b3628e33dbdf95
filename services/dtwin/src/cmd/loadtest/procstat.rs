//! CPU time and peak RSS from `/proc`: this process, its threads by group, and each `--pid`.
//! The parsing and the arithmetic are in [`crate::loadstats`]; this module only reads.

use super::{wall_to_instant, Window};
use crate::loadstats::{self, CpuSample, CpuTotals, ProcessFigures};
use anyhow::Context;

/// The `--pid name=PID` values, each checked to name a running process.
///
/// # Errors
/// A value that is not name=PID, or no such process.
pub(super) fn parse_pids(args: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    args.iter()
        .map(|p| {
            let (name, pid) = parse_pid(p)?;
            anyhow::ensure!(
                std::path::Path::new(&proc_path(Some(pid), "stat")).exists(),
                "--pid {p}: no such process"
            );
            Ok((name, pid))
        })
        .collect()
}

/// One `--pid` value: `name=PID`.
fn parse_pid(p: &str) -> anyhow::Result<(String, u32)> {
    let (name, pid) = p
        .split_once('=')
        .with_context(|| format!("--pid {p}: expected name=PID"))?;
    let pid: u32 = pid
        .parse()
        .with_context(|| format!("--pid {p}: {pid} is not a process id"))?;
    Ok((name.to_owned(), pid))
}

/// `/proc/self/<file>`, or `/proc/<pid>/<file>`.
fn proc_path(pid: Option<u32>, file: &str) -> String {
    pid.map_or_else(
        || format!("/proc/self/{file}"),
        |p| format!("/proc/{p}/{file}"),
    )
}

/// Sleeps until `window` starts and ends, sampling CPU at each, and adds the difference to
/// `totals` (this process first, then `pids`).
pub(super) async fn measure(pids: &[(String, u32)], window: Window, totals: &mut CpuTotals) {
    tokio::time::sleep_until(wall_to_instant(window.start)).await;
    let before = sample(pids);
    tokio::time::sleep_until(wall_to_instant(window.end)).await;
    let after = sample(pids);
    totals.add_window(&before, &after);
}

/// CPU and peak RSS of this process (named `loadtest`), then of each of `pids`, with the CPU
/// of `totals`.
pub(super) fn figures(pids: &[(String, u32)], totals: &CpuTotals) -> Vec<ProcessFigures> {
    let mut processes = vec![ProcessFigures {
        name: "loadtest".to_owned(),
        pid: std::process::id(),
        cpu_s: totals.cpu_s(0),
        peak_rss_mib: peak_rss_mib(None),
    }];
    for (i, (name, pid)) in pids.iter().enumerate() {
        processes.push(ProcessFigures {
            name: name.clone(),
            pid: *pid,
            cpu_s: totals.cpu_s(i + 1),
            peak_rss_mib: peak_rss_mib(Some(*pid)),
        });
    }
    processes
}

/// CPU ticks of this process, each of `pids` and each thread of this process, now.
fn sample(pids: &[(String, u32)]) -> CpuSample {
    let mut procs = vec![process_ticks(None)];
    procs.extend(pids.iter().map(|(_, p)| process_ticks(Some(*p))));
    CpuSample {
        procs,
        threads: thread_ticks(),
    }
}

/// Peak RSS in MiB (0 when unreadable).
fn peak_rss_mib(pid: Option<u32>) -> f64 {
    std::fs::read_to_string(proc_path(pid, "status"))
        .ok()
        .and_then(|s| loadstats::parse_vm_hwm(&s))
        .unwrap_or(0.0)
}

/// User + system ticks (0 when unreadable).
fn process_ticks(pid: Option<u32>) -> u64 {
    std::fs::read_to_string(proc_path(pid, "stat"))
        .ok()
        .and_then(|s| loadstats::parse_stat(&s))
        .map_or(0, |(_, s)| s.ticks)
}

/// (tid, name, user + system ticks) of each thread of this process still readable.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_flags_parse_or_say_why_not() {
        assert_eq!(parse_pid("broker=42").unwrap(), ("broker".to_owned(), 42));
        assert_eq!(
            parse_pid("a=b=7").unwrap_err().to_string(),
            "--pid a=b=7: b=7 is not a process id"
        );
        assert_eq!(parse_pid("=7").unwrap(), (String::new(), 7));
        assert_eq!(
            parse_pid("broker").unwrap_err().to_string(),
            "--pid broker: expected name=PID"
        );
        assert_eq!(
            parse_pid("broker=-1").unwrap_err().to_string(),
            "--pid broker=-1: -1 is not a process id"
        );
    }

    #[test]
    fn pids_must_be_running() {
        let me = format!("me={}", std::process::id());
        assert_eq!(
            parse_pids(&[me]).unwrap(),
            vec![("me".to_owned(), std::process::id())]
        );
        // Above Linux's highest pid (2^22).
        let e = parse_pids(&["gone=4294967295".to_owned()]).unwrap_err();
        assert_eq!(e.to_string(), "--pid gone=4294967295: no such process");
    }

    #[test]
    fn proc_paths() {
        assert_eq!(proc_path(None, "stat"), "/proc/self/stat");
        assert_eq!(proc_path(Some(42), "status"), "/proc/42/status");
    }

    #[test]
    fn this_process_is_sampled() {
        let s = sample(&[("me".to_owned(), std::process::id())]);
        assert_eq!(s.procs.len(), 2);
        assert!(s
            .threads
            .iter()
            .any(|(tid, _, _)| *tid == std::process::id()));
        let f = figures(&[], &CpuTotals::new(1));
        assert_eq!((f.len(), f[0].name.as_str()), (1, "loadtest"));
        assert!(f[0].peak_rss_mib > 0.0);
    }
}
