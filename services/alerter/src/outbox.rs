//! The `.eml` outbox: the mail transport used when no SMTP server is configured. Each e-mail
//! becomes `<dir>/<name>.eml`, written atomically (see [`crate::fsutil`]). Names come from the
//! alert id and the notification tag, so writing the same notification again replaces the
//! same file.

use crate::fsutil::{self, FsError};
use std::fs;
use std::path::{Path, PathBuf};

/// Extension of finished mails.
pub const EML_EXT: &str = "eml";

/// Why a mail could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The name is empty, starts with a dot or holds a character outside `[A-Za-z0-9_.-]`.
    #[error("bad outbox file name {0:?}")]
    BadName(String),
    /// A file-system step failed.
    #[error(transparent)]
    Io(#[from] FsError),
}

/// A folder of `.eml` files.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Opens the outbox at `dir`, creating it (and its parents) if needed.
    ///
    /// # Errors
    /// [`OutboxError::Io`] when the folder cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, OutboxError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(fsutil::err("creating", &dir))?;
        Ok(Self { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the mail called `name` goes: `<dir>/<name>.eml`.
    pub fn path_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EML_EXT}"))
    }

    /// Writes `bytes` to `<dir>/<name>.eml` atomically and durably, replacing any earlier
    /// file of that name. Returns the path.
    ///
    /// # Errors
    /// [`OutboxError::BadName`] for a name that could escape the folder or hide as a dot
    /// file; [`OutboxError::Io`] when a step fails (the temporary file is removed).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, OutboxError> {
        if !fsutil::safe_name(name) {
            return Err(OutboxError::BadName(name.to_owned()));
        }
        Ok(fsutil::write_atomic(
            &self.dir,
            &format!("{name}.{EML_EXT}"),
            bytes,
        )?)
    }

    /// The finished mails, sorted by name.
    ///
    /// # Errors
    /// [`OutboxError::Io`] when the folder cannot be read.
    pub fn list(&self) -> Result<Vec<PathBuf>, OutboxError> {
        let mut out = Vec::new();
        let read = |e| OutboxError::Io(fsutil::err("reading", &self.dir)(e));
        for entry in fs::read_dir(&self.dir).map_err(read)? {
            let p = entry.map_err(read)?.path();
            let visible = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'));
            if visible && p.extension().is_some_and(|e| e == EML_EXT) {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_idempotently() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let outbox = Outbox::new(tmp.path().join("a/outbox")).expect("creates nested dir");
        let p1 = outbox
            .write("m-1-20261122T100000000Z.firing", b"first")
            .expect("writes");
        assert_eq!(p1, outbox.dir().join("m-1-20261122T100000000Z.firing.eml"));
        let p2 = outbox
            .write("m-1-20261122T100000000Z.firing", b"second")
            .expect("rewrites");
        assert_eq!(p1, p2);
        assert_eq!(fs::read(&p1).expect("reads"), b"second");
        let names: Vec<_> = fs::read_dir(outbox.dir())
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
        assert_eq!(outbox.list().expect("lists"), vec![p1]);
    }

    #[test]
    fn rejects_names_that_escape_or_hide() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let outbox = Outbox::new(tmp.path()).expect("opens");
        for bad in ["", "../x", "a/b", ".hidden", "a\0b", "a b"] {
            assert!(
                matches!(outbox.write(bad, b"x"), Err(OutboxError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(outbox.list().expect("lists").is_empty());
    }
}
