//! The alerter's durable spool: every notification is a JSON [`Record`] in `pending/` before
//! the verdict behind it is acknowledged, and leaves `pending/` only after the mail server
//! (or the `.eml` outbox) accepted it.
//!
//! ```text
//! <root>/pending/<alert_id>.<tag>.json      waiting to be sent
//! <root>/pending/<alert_id>.<tag>.sending   marker: a send was started (crash = outcome unknown)
//! <root>/sent/<alert_id>.<tag>.json         accepted by the server
//! <root>/silenced/<alert_id>.<tag>.json     recorded, not sent (a silence matched)
//! <root>/failed/<alert_id>.<tag>.json       refused for good (e.g. a 5xx from the server)
//! <root>/windows/<machine_id>                an idle machine's confirmation window (bits)
//! <root>/channels/<name>/{pending,sent,...}/  the same, per webhook channel (its deliveries)
//! ```
//!
//! Each webhook channel's delivery of a notification is its own record in that channel's
//! folders ([`Spool::channel`]), so one receiver being down holds up neither e-mail nor the
//! other channels, and each leaves `pending/` only when its receiver answered 2xx.
//!
//! The records are also the alerter's memory: [`Spool::firing_states`] rebuilds which alerts
//! are firing after a restart from the newest record of each machine, so a verdict redelivered
//! after a crash finds its alert already firing and queues nothing twice; and a record is
//! written under a name fixed by its alert and tag, so writing it again replaces it.

use crate::email::AlertMail;
use crate::fsutil::{self, FsError};
use crate::lifecycle::Firing;
use dtwin_schema::{AlertEvent, MachineId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;

/// One notification waiting for (or done with) delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What the e-mail shows.
    pub mail: AlertMail,
    /// The lifecycle event (firing, updated or resolved) the notification belongs to.
    pub event: AlertEvent,
    /// The alert after this notification; `None` once resolved.
    pub firing: Option<Firing>,
}

impl Record {
    /// The spool name, `{alert_id}.{tag}`: also the outbox file name and the Message-ID's
    /// local part.
    pub fn name(&self) -> String {
        self.mail.file_name()
    }
}

/// Where a record ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Accepted by the mail server or the outbox.
    Sent,
    /// A silence matched: recorded, not sent.
    Silenced,
    /// Refused for good.
    Failed,
}

impl Done {
    /// The folder it moves to: `sent`, `silenced` or `failed`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Silenced => "silenced",
            Self::Failed => "failed",
        }
    }
}

/// A pending record and whether a send of it was started before (a crash mid-send: the
/// server may have it already).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The record.
    pub record: Record,
    /// A `.sending` marker was found.
    pub maybe_sent: bool,
    /// When it was queued (the file's modification time).
    pub queued: OffsetDateTime,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file-system step failed.
    #[error(transparent)]
    Io(#[from] FsError),
    /// A record name that could escape its folder.
    #[error("bad spool record name {0:?}")]
    BadName(String),
    /// Another process holds the spool's lock.
    #[error(
        "the spool {0} is in use by another alerter; give every alerter instance its own \
         spool (and outbox) folder"
    )]
    InUse(PathBuf),
}

/// The spool folder. While any clone is alive, the process holds an exclusive lock on
/// `<root>/.lock`, so two alerters never share one spool (each would send the other's mail).
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    _lock: Arc<fs::File>,
}

/// How long [`Spool::open`] waits for the lock (a previous run in the same process may still
/// be letting go of it).
const LOCK_WAIT: Duration = Duration::from_secs(5);

const FOLDERS: [&str; 4] = ["pending", "sent", "silenced", "failed"];

impl Spool {
    /// Opens (creating) the spool at `root` and locks it.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when a folder cannot be created, [`SpoolError::InUse`] when another
    /// process holds the lock.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, SpoolError> {
        Self::open_waiting(root.into(), LOCK_WAIT)
    }

    fn open_waiting(root: PathBuf, wait: Duration) -> Result<Self, SpoolError> {
        for f in FOLDERS.iter().chain(&["windows"]) {
            let d = root.join(f);
            fs::create_dir_all(&d).map_err(fsutil::err("creating", &d))?;
        }
        let path = root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fsutil::err("opening", &path))?;
        let deadline = Instant::now() + wait;
        loop {
            use rustix::fs::{flock, FlockOperation};
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(SpoolError::InUse(root)),
                Err(e) => return Err(fsutil::err("locking", &path)(e.into()).into()),
            }
        }
        Ok(Self {
            root,
            _lock: Arc::new(file),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The spool of the webhook channel `name` (`<root>/channels/<name>/`, created), under
    /// the same lock. Only its `pending/`, `sent/`, `silenced/` and `failed/` are used: the
    /// alerter's memory stays in the main spool.
    ///
    /// # Errors
    /// [`SpoolError::BadName`] for a name that could escape the folder, [`SpoolError::Io`]
    /// when a folder cannot be created.
    pub fn channel(&self, name: &str) -> Result<Spool, SpoolError> {
        let root = self.root.join("channels").join(Self::checked(name)?);
        for f in FOLDERS {
            let d = root.join(f);
            fs::create_dir_all(&d).map_err(fsutil::err("creating", &d))?;
        }
        Ok(Self {
            root,
            _lock: self._lock.clone(),
        })
    }

    fn dir(&self, folder: &str) -> PathBuf {
        self.root.join(folder)
    }

    fn checked(name: &str) -> Result<&str, SpoolError> {
        if fsutil::safe_name(name) {
            Ok(name)
        } else {
            Err(SpoolError::BadName(name.to_owned()))
        }
    }

    /// Queues `record` durably. Returns false (and writes nothing) when a record of that name
    /// was already delivered, silenced or failed: a redelivered verdict queues nothing twice.
    ///
    /// # Errors
    /// [`SpoolError`] when the record cannot be written.
    pub fn put(&self, record: &Record) -> Result<bool, SpoolError> {
        let name = record.name();
        let file = format!("{}.json", Self::checked(&name)?);
        if FOLDERS[1..]
            .iter()
            .any(|f| self.dir(f).join(&file).exists())
        {
            return Ok(false);
        }
        // Serializing plain data cannot fail.
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        fsutil::write_atomic(&self.dir("pending"), &file, &bytes)?;
        Ok(true)
    }

    /// Pending records, oldest verdict first. Unreadable files are skipped and reported in
    /// the second list (they stay where they are for an operator to look at).
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the folder cannot be read.
    pub fn pending(&self) -> Result<(Vec<Pending>, Vec<Unreadable>), SpoolError> {
        let dir = self.dir("pending");
        let (records, bad) = read_records(&dir)?;
        let mut out: Vec<Pending> = records
            .into_iter()
            .map(|(path, record)| {
                let maybe_sent = dir.join(format!("{}.sending", record.name())).exists();
                let queued = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map_or(OffsetDateTime::now_utc(), OffsetDateTime::from);
                Pending {
                    record,
                    maybe_sent,
                    queued,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.record.mail.ts, a.record.name()).cmp(&(b.record.mail.ts, b.record.name()))
        });
        Ok((out, bad))
    }

    /// Marks that a send of `name` starts now; a crash before [`Spool::finish`] leaves the
    /// marker, and the next send is flagged as a possible duplicate.
    ///
    /// # Errors
    /// [`SpoolError`] when the marker cannot be written.
    pub fn mark_sending(&self, name: &str) -> Result<(), SpoolError> {
        let name = Self::checked(name)?;
        fsutil::touch_durably(&self.dir("pending").join(format!("{name}.sending")))?;
        Ok(())
    }

    /// Drops the `.sending` marker of `name` after a send that certainly did not arrive.
    pub fn clear_sending(&self, name: &str) {
        if let Ok(name) = Self::checked(name) {
            let _ = fs::remove_file(self.dir("pending").join(format!("{name}.sending")));
        }
    }

    /// Moves `name` out of `pending/` into the folder for `done` and drops its marker.
    ///
    /// # Errors
    /// [`SpoolError`] when the move fails (the record stays pending and is retried).
    pub fn finish(&self, name: &str, done: Done) -> Result<(), SpoolError> {
        let name = Self::checked(name)?;
        let from = self.dir("pending").join(format!("{name}.json"));
        let to = self.dir(done.folder()).join(format!("{name}.json"));
        fsutil::move_durably(&from, &to)?;
        let _ = fs::remove_file(self.dir("pending").join(format!("{name}.sending")));
        Ok(())
    }

    /// Saves an idle machine's confirmation window (the AT_RISK verdicts counted towards
    /// firing), so a restart does not forget them; 0 removes the file.
    ///
    /// # Errors
    /// [`SpoolError`] when the file cannot be written or removed.
    pub fn save_window(&self, machine: &MachineId, window: u64) -> Result<(), SpoolError> {
        let dir = self.dir("windows");
        let name = Self::checked(machine.as_str())?;
        if window == 0 {
            match fs::remove_file(dir.join(name)) {
                Ok(()) => fsutil::sync_dir(&dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fsutil::err("removing", &dir.join(name))(e).into()),
            }
            return Ok(());
        }
        fsutil::write_atomic(&dir, name, window.to_string().as_bytes())?;
        Ok(())
    }

    /// The saved confirmation windows.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the folder cannot be read.
    pub fn windows(&self) -> Result<Vec<(MachineId, u64)>, SpoolError> {
        let dir = self.dir("windows");
        let read = |e| SpoolError::Io(fsutil::err("reading", &dir)(e));
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(read)? {
            let p = entry.map_err(read)?.path();
            let Some(m) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| MachineId::parse(n).ok())
            else {
                continue;
            };
            if let Some(bits) = fs::read_to_string(&p)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                out.push((m, bits));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Number of records in each folder: pending, sent, silenced, failed.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when a folder cannot be read.
    pub fn counts(&self) -> Result<[usize; 4], SpoolError> {
        let mut out = [0; 4];
        for (i, f) in FOLDERS.iter().enumerate() {
            out[i] = json_files(&self.dir(f))?.len();
        }
        Ok(out)
    }

    /// The alerts that were firing when the alerter stopped: per machine, the newest record
    /// (pending or done) that leaves its alert firing.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when a folder cannot be read.
    pub fn firing_states(&self) -> Result<Vec<(MachineId, Firing)>, SpoolError> {
        Ok(self
            .firing_records()?
            .into_iter()
            .map(|(m, f, _)| (m, f))
            .collect())
    }

    /// [`Spool::firing_states`] with the mail of that newest record (its figures and time).
    /// An acknowledgement's record is newer than the alert's others, so an acknowledged alert
    /// carries on acknowledged.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when a folder cannot be read.
    pub fn firing_records(&self) -> Result<Vec<(MachineId, Firing, AlertMail)>, SpoolError> {
        let mut newest: HashMap<MachineId, Record> = HashMap::new();
        for f in FOLDERS {
            for (_, r) in read_records(&self.dir(f))?.0 {
                let key = (r.mail.ts, r.name());
                match newest.get(&r.mail.machine_id) {
                    Some(old) if (old.mail.ts, old.name()) >= key => {}
                    _ => {
                        newest.insert(r.mail.machine_id.clone(), r);
                    }
                }
            }
        }
        let mut out: Vec<_> = newest
            .into_iter()
            .filter_map(|(m, r)| r.firing.map(|f| (m, f, r.mail)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Deletes delivered, silenced and failed records last modified before `before`, except
    /// the newest record of a machine whose alert is still firing (it is that alert's memory).
    /// Returns how many were deleted.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when a folder cannot be read.
    pub fn prune(&self, before: SystemTime) -> Result<usize, SpoolError> {
        let keep: Vec<String> = {
            let firing = self.firing_states()?;
            let mut newest: HashMap<MachineId, (OffsetDateTime, String)> = HashMap::new();
            for f in FOLDERS {
                for (_, r) in read_records(&self.dir(f))?.0 {
                    let key = (r.mail.ts, r.name());
                    let e = newest
                        .entry(r.mail.machine_id.clone())
                        .or_insert(key.clone());
                    if key > *e {
                        *e = key;
                    }
                }
            }
            firing
                .iter()
                .filter_map(|(m, _)| newest.get(m).map(|(_, n)| format!("{n}.json")))
                .collect()
        };
        let mut deleted = 0;
        for f in &FOLDERS[1..] {
            for p in json_files(&self.dir(f))? {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let old = fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < before);
                if old && !keep.iter().any(|k| k == name) && fs::remove_file(&p).is_ok() {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let read = |e| SpoolError::Io(fsutil::err("reading", dir)(e));
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read)? {
        let p = entry.map_err(read)?.path();
        let visible = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'));
        if visible && p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// A spool file that could not be read, and why.
pub type Unreadable = (PathBuf, String);

type Records = (Vec<(PathBuf, Record)>, Vec<Unreadable>);

fn read_records(dir: &Path) -> Result<Records, SpoolError> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for p in json_files(dir)? {
        match fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => ok.push((p, r)),
            Err(e) => bad.push((p, e)),
        }
    }
    Ok((ok, bad))
}

#[cfg(test)]
#[path = "spool_tests.rs"]
pub(crate) mod tests;
