//! Crash-safe file writes shared by the outbox and the spool: a temporary file, fsync,
//! rename, fsync of the folder, so a crash leaves either the whole file or none.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file-system step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}: {source}")]
pub struct FsError {
    /// What was being done.
    pub step: &'static str,
    /// The file or folder.
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

/// True for names that stay inside a folder and are not hidden: `[A-Za-z0-9_.-]+`, no
/// leading dot.
pub fn safe_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    !name.is_empty() && !name.starts_with('.') && name.chars().all(ok)
}

/// Writes `bytes` to `dir/file` atomically and durably, replacing an earlier file of that
/// name. `file` must be a [`safe_name`].
///
/// # Errors
/// [`FsError`] when a step fails (the temporary file is removed).
pub fn write_atomic(dir: &Path, file: &str, bytes: &[u8]) -> Result<PathBuf, FsError> {
    let path = dir.join(file);
    // A leading dot and another extension keep readers from picking up a half file.
    let tmp = dir.join(format!(".{file}.tmp"));
    let result = write_synced(&tmp, bytes).and_then(|()| {
        fs::rename(&tmp, &path).map_err(err("renaming to", &path))?;
        sync_dir(dir)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// Moves `from` to `to` (same file system) and makes both folders durable.
///
/// # Errors
/// [`FsError`] when the rename or a sync fails.
pub fn move_durably(from: &Path, to: &Path) -> Result<(), FsError> {
    fs::rename(from, to).map_err(err("moving to", to))?;
    if let Some(d) = to.parent() {
        sync_dir(d)?;
    }
    match from.parent() {
        Some(d) if Some(d) != to.parent() => sync_dir(d),
        _ => Ok(()),
    }
}

/// Creates `path` (empty) durably.
///
/// # Errors
/// [`FsError`] when it cannot be created or synced.
pub fn touch_durably(path: &Path) -> Result<(), FsError> {
    File::create(path)
        .and_then(|f| f.sync_all())
        .map_err(err("creating", path))?;
    match path.parent() {
        Some(d) => sync_dir(d),
        None => Ok(()),
    }
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let mut f = File::create(tmp).map_err(err("creating", tmp))?;
    f.write_all(bytes).map_err(err("writing", tmp))?;
    f.sync_all().map_err(err("syncing", tmp))
}

/// Makes renames in `dir` durable. Directories cannot be opened as files on Windows; there
/// a rename is as durable as the platform makes it.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("syncing", dir))?;
    }
    Ok(())
}

/// Maps an `io::Error` of `step` on `path` to an [`FsError`].
pub fn err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
    let path = path.to_path_buf();
    move |source| FsError { step, path, source }
}
