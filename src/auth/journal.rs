//! Files under `DATA/auth/` shared by the CLI and the running service, and
//! the change journal that puts every token, user and key change in the
//! ledger.
//!
//! The CLI may change tokens and users while `serve` runs, and must not
//! write the ledger itself (one writer). So each change is appended to
//! `auth/changes.ndjson` under the folder's lock; the service appends the
//! journal's new lines to the ledger as audit events (client id
//! `auth-change-SEQ`, so a crash between appending and moving the cursor
//! stores nothing twice) and remembers how far it got in
//! `auth/changes.recorded`. A change made while the service is down is
//! recorded at its next start.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest file read from `auth/` (tokens, users, journal): far above any
/// practice's needs, small enough to refuse a planted huge file.
pub const MAX_AUTH_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_AUTH_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (mode 0700) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// An exclusive lock on the auth folder, held while a file in it is changed
/// (the CLI and the service may both write).
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        ensure_dir(dir)?;
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(DirLock { _file: file })
    }
}

/// Reads a file of at most `MAX_AUTH_FILE_BYTES`; a missing file is `None`.
pub fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    match crate::bounded::read_bounded(file, MAX_AUTH_FILE_BYTES) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(StoreError::TooLarge {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(io(path)(e)),
    }
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename,
/// fsync of the folder), mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    // `name.tmp`, not `with_extension`: `ledger/checkpoint.witnessed` would
    // become `ledger/checkpoint.tmp`, the ledger's own temporary checkpoint,
    // and the two writers would rename each other's bytes into place.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// One change to who may do what, as the journal holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    /// `token_create`, `token_revoke`, `user_add`, `user_disable`,
    /// `user_enable`, `user_reset`, `kek_rotate`, ...
    pub op: String,
    /// The token, user or key the change is about.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The operating-system user who ran the command (`$SUDO_USER`, else
    /// `$USER`), as far as the environment tells.
    pub by: String,
}

impl Change {
    /// The ledger event's (category, action) for this change.
    pub fn event_kind(&self) -> (crate::event::Category, &'static str) {
        use crate::event::Category::{Admin, Auth};
        match self.op.as_str() {
            "token_create" => (Auth, "token_issued"),
            "token_revoke" => (Auth, "token_revoked"),
            "user_add" => (Admin, "user_create"),
            "user_disable" => (Admin, "user_disable"),
            "user_enable" => (Admin, "user_enable"),
            "user_reset" => (Auth, "password_reset"),
            "kek_rotate" | "key_rotate" => (Admin, "key_rotation"),
            _ => (Admin, "permission_change"),
        }
    }
}

pub fn journal_path(auth_dir: &Path) -> PathBuf {
    auth_dir.join("changes.ndjson")
}

fn cursor_path(auth_dir: &Path) -> PathBuf {
    auth_dir.join("changes.recorded")
}

/// Who is running this command, for the journal.
pub fn os_user() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    name.chars().take(64).collect()
}

/// Appends a change; the caller holds the folder's lock. Returns its seq.
pub fn append(auth_dir: &Path, mut change: Change) -> Result<u64, StoreError> {
    let existing = read_all(auth_dir)?;
    change.seq = existing.last().map_or(1, |c| c.seq + 1);
    let mut line = serde_json::to_vec(&change)
        .map_err(|e| StoreError::Invalid(format!("journal line: {e}")))?;
    line.push(b'\n');
    let path = journal_path(auth_dir);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    // A torn line from a crash is cut off before the next one is written.
    let complete = read_bounded(&path)?
        .and_then(|b| b.iter().rposition(|c| *c == b'\n').map(|n| n as u64 + 1))
        .unwrap_or(0);
    if f.metadata().map_err(io(&path))?.len() != complete {
        f.set_len(complete).map_err(io(&path))?;
    }
    f.write_all(&line).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(change.seq)
}

/// Every change in the journal, in order. A torn last line (a crash while
/// appending) is ignored; any other bad line is an error.
pub fn read_all(auth_dir: &Path) -> Result<Vec<Change>, StoreError> {
    let path = journal_path(auth_dir);
    let Some(bytes) = read_bounded(&path)? else {
        return Ok(Vec::new());
    };
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[][..],
    };
    let mut out = Vec::new();
    for (n, line) in complete.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let change: Change = serde_json::from_slice(line).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: format!("line {}: {e}", n + 1),
        })?;
        out.push(change);
    }
    Ok(out)
}

/// The last seq already in the ledger.
pub fn recorded(auth_dir: &Path) -> Result<u64, StoreError> {
    let path = cursor_path(auth_dir);
    match read_bounded(&path)? {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| StoreError::Corrupt {
                path,
                message: "not a number".into(),
            }),
    }
}

pub fn set_recorded(auth_dir: &Path, seq: u64) -> Result<(), StoreError> {
    write_atomic(&cursor_path(auth_dir), format!("{seq}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(op: &str) -> Change {
        Change {
            seq: 0,
            time: "2026-12-07T10:00:00Z".into(),
            op: op.into(),
            subject: "ci".into(),
            roles: vec!["ingest".into()],
            expires: None,
            by: "root".into(),
        }
    }

    /// Two files that differ only after their first dot (`checkpoint` and
    /// `checkpoint.witnessed` in `ledger/`) written at the same time from
    /// two threads: neither ever holds the other's bytes.
    #[test]
    fn atomic_writes_of_sibling_names_do_not_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("checkpoint.witnessed");
        // The ledger's own writer uses `checkpoint.tmp` for `checkpoint`.
        let theirs = dir.path().join("checkpoint.tmp");
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..200 {
                    write_atomic(&ours, format!("witnessed {i}").as_bytes()).unwrap();
                }
            });
            s.spawn(|| {
                for _ in 0..200 {
                    std::fs::write(&theirs, b"log checkpoint").unwrap();
                    let _ = std::fs::rename(&theirs, dir.path().join("checkpoint"));
                }
            });
        });
        assert_eq!(std::fs::read_to_string(&ours).unwrap(), "witnessed 199");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("checkpoint")).unwrap(),
            "log checkpoint"
        );
    }

    #[test]
    fn journal_numbers_changes_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth");
        let _lock = DirLock::acquire(&auth).unwrap();
        assert_eq!(append(&auth, change("token_create")).unwrap(), 1);
        assert_eq!(append(&auth, change("token_revoke")).unwrap(), 2);
        // A crash half-way through a third line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(journal_path(&auth))
            .unwrap();
        f.write_all(br#"{"seq":3,"ti"#).unwrap();
        let all = read_all(&auth).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(append(&auth, change("user_add")).unwrap(), 3);
        let all = read_all(&auth).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].op, "token_revoke");
        assert_eq!(recorded(&auth).unwrap(), 0);
        set_recorded(&auth, 2).unwrap();
        assert_eq!(recorded(&auth).unwrap(), 2);
        let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
