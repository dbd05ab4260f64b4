//! Backups of a data directory into another directory, their verification,
//! and restore (issue #17; no S3 target yet). No tokio here: the CLI calls
//! these functions on its own thread.
//!
//! A backup directory is itself a valid data directory (`ledger/...` with
//! the same layout, LEDGER.md §2) plus `backup-manifest.json` and, when a
//! configuration was given, `config/`. So `sealtrail verify --data BACKUP`
//! works on it directly, and a restore is a verified copy.
//!
//! Consistency beside a running writer: the writer's checkpoint is read
//! FIRST; it covers sealed segments `0..N` that exist and never change in
//! what they prove (compaction may rewrite a file, never its record). Only
//! those segments are copied, never a `.open` file. The checkpoint is
//! written to the target after the segments it covers, and the manifest
//! last, so an interrupted backup leaves a target whose checkpoint still
//! covers only what it holds.

use crate::ledger::note;
use crate::ledger::segment::{self, Footer, SegmentError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

/// The manifest's file name at the top of a backup directory.
pub const MANIFEST: &str = "backup-manifest.json";
/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;
/// Suffix of the temporary files a copy writes before its rename.
pub const TMP_SUFFIX: &str = ".backup-tmp";
const MAX_MANIFEST_LEN: u64 = 256 << 20;
/// Checkpoints, key history, key records, dictionaries, configuration files.
const MAX_SMALL_FILE: u64 = 16 << 20;
const COPY_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup target {path}: {detail}")]
    Target { path: PathBuf, detail: String },
    #[error("{path}: no space left on the device (no partial file was left under a final name)")]
    NoSpace { path: PathBuf },
    #[error("{path}: read-only file system")]
    ReadOnly { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not a data directory with a signed checkpoint: nothing to back up")]
    NoCheckpoint(PathBuf),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("{path} already holds a different file ({detail}); it is never overwritten")]
    Conflict { path: PathBuf, detail: String },
    #[error("the target holds a backup of another ledger: {0}")]
    OtherLedger(String),
    #[error("manifest {path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    #[error("{0} is not empty: restore only into a new or empty directory")]
    NotEmpty(PathBuf),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the restored copy was rejected, nothing was restored: {0}")]
    Rejected(String),
}

type Result<T> = std::result::Result<T, BackupError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| match source.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => BackupError::NoSpace {
            path: path.to_owned(),
        },
        io::ErrorKind::ReadOnlyFilesystem => BackupError::ReadOnly {
            path: path.to_owned(),
        },
        _ => BackupError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

/// Size and SHA-256 (hex) of one file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub size: u64,
    pub sha256: String,
}

/// The checkpoint a backup carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    /// Segments it covers.
    pub size: u64,
    /// The log root, base64 as in the checkpoint.
    pub root: String,
}

/// `backup-manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// RFC 3339, when the backup finished.
    pub created: String,
    pub sealtrail_version: String,
    /// The log's origin (checkpoint's first line).
    pub origin: String,
    /// SHA-256 (hex) of segment 0's record: which log this is. `None` for
    /// an empty log.
    pub first_record: Option<String>,
    pub checkpoint: CheckpointSummary,
    /// The checkpoint's first signature: key name `+` key id (hex). A
    /// backup signed by another key is refused unless the ledger has a key
    /// history (a rotation).
    #[serde(default)]
    pub signer: Option<String>,
    /// Whether `ledger/checkpoint.witnessed` is part of the backup.
    pub witnessed: bool,
    /// Every file of the backup by its path relative to the backup
    /// directory (`/`-separated).
    pub files: BTreeMap<String, FileSum>,
    /// Files and bytes this run copied (the rest were already there).
    pub copied_files: u64,
    pub copied_bytes: u64,
    /// How this backup was recorded as an audit event.
    pub audit: String,
}

/// What one `backup` run did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    pub target: PathBuf,
    pub checkpoint: CheckpointSummary,
    pub files: usize,
    pub total_bytes: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
    /// Segments already in the target (same record), not copied again.
    pub segments_present: u64,
}

/// Streams `src` into `dest` through a temporary name in the same
/// directory: write, fsync, rename, fsync the directory. With `expect`, the
/// copy must have that size and hash, otherwise nothing is renamed.
fn copy_into(src: &mut impl Read, dest: &Path, expect: Option<&FileSum>) -> Result<FileSum> {
    let tmp = tmp_name(dest);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(dest)(e)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            out.write_all(chunk).map_err(io_err(&tmp))?;
            size += n as u64;
        }
        out.sync_all().map_err(io_err(&tmp))?;
        let sum = FileSum {
            size,
            sha256: hex::encode(hasher.finalize()),
        };
        if let Some(e) = expect.filter(|e| **e != sum) {
            return Err(BackupError::Damaged(format!(
                "{}: {} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                dest.display(),
                sum.size,
                sum.sha256,
                e.size,
                e.sha256
            )));
        }
        fs::rename(&tmp, dest).map_err(io_err(dest))?;
        sync_parent(dest)?;
        Ok(sum)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn tmp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    dest.with_file_name(name)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

/// The bytes of a small file, `None` if it does not exist.
fn read_small(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take` and checked below
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > max {
        return Err(BackupError::Io {
            path: path.to_owned(),
            source: io::Error::other(format!("larger than {max} bytes")),
        });
    }
    Ok(Some(bytes))
}

fn sum_of(bytes: &[u8]) -> FileSum {
    FileSum {
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// SHA-256 and size of a file, streamed; `progress` gets bytes read.
fn hash_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<FileSum> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path)(e)),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
        progress(n as u64);
    }
    Ok(FileSum {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Writes `bytes` to `dest` atomically unless it already holds exactly
/// them. The files replaced this way are the mutable ones (checkpoints,
/// key history, key records re-wrapped by a KEK rotation, configuration).
fn write_small(dest: &Path, bytes: &[u8]) -> Result<(FileSum, bool)> {
    let sum = sum_of(bytes);
    if read_small(dest, MAX_SMALL_FILE)?.is_some_and(|old| old == bytes) {
        return Ok((sum, false));
    }
    copy_into(&mut &bytes[..], dest, None)?;
    Ok((sum, true))
}

fn create_dirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Reads the manifest of a backup directory, `None` if it has none.
pub fn read_manifest(target: &Path) -> Result<Option<Manifest>> {
    let path = target.join(MANIFEST);
    let Some(bytes) = read_small(&path, MAX_MANIFEST_LEN)? else {
        return Ok(None);
    };
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| BackupError::Manifest {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if m.format != MANIFEST_FORMAT {
        return Err(BackupError::Manifest {
            path,
            detail: format!("format {} is not supported", m.format),
        });
    }
    for rel in m.files.keys() {
        safe_relative(rel).map_err(|detail| BackupError::Manifest {
            path: path.clone(),
            detail,
        })?;
    }
    Ok(Some(m))
}

/// A manifest path must stay inside the backup directory.
fn safe_relative(rel: &str) -> std::result::Result<PathBuf, String> {
    let p = PathBuf::from(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("file name {rel:?} is not a plain relative path"));
    }
    Ok(p)
}

/// Makes sure `target` is a writable directory (created if its parent
/// exists).
fn prepare_target(target: &Path) -> Result<()> {
    let err = |detail: String| BackupError::Target {
        path: target.to_owned(),
        detail,
    };
    match fs::metadata(target) {
        Ok(m) if !m.is_dir() => return Err(err("exists and is not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(err(
                    "unreachable: its parent directory does not exist (is the disk mounted?)"
                        .into(),
                ));
            }
            Err(e) => return Err(io_err(target)(e)),
        },
        Err(e) => return Err(err(format!("unreachable: {e}"))),
    }
    let probe = target.join(format!(".probe{TMP_SUFFIX}"));
    let written = File::create(&probe).and_then(|mut f| f.write_all(b"sealtrail"));
    let _ = fs::remove_file(&probe);
    written.map_err(io_err(target))
}

/// `name+keyid` of a signed note's first signature line (C2SP
/// signed-note: `— name base64(keyid || signature)`).
fn signer_id(note: &str) -> Option<String> {
    use base64::Engine;
    let sigs = note.get(note.rfind("\n\n")? + 2..)?;
    let rest = sigs.lines().next()?.strip_prefix("\u{2014} ")?;
    let (name, b64) = rest.rsplit_once(' ')?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(format!("{name}+{}", hex::encode(raw.get(..4)?)))
}

fn segment_rel(n: u64) -> String {
    format!("ledger/segments/{}", segment::file_name(n, true))
}

fn read_footer(path: &Path) -> Result<(File, Footer)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let footer = Footer::read(path, &mut f)?;
    Ok((f, footer))
}

/// Backs up the ledger of `data` into the directory `target`: see the
/// module documentation. `extra` are further files (configuration) as
/// (path in the target, source file). `progress(done, total)` counts
/// segments.
pub fn backup(
    data: &Path,
    target: &Path,
    extra: &[(String, PathBuf)],
    audit: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport> {
    let ledger = data.join("ledger");
    if !ledger.is_dir() {
        return Err(BackupError::NoCheckpoint(data.to_owned()));
    }
    // The witnessed checkpoint before the checkpoint, so it never covers
    // more; the checkpoint before any segment.
    let witnessed = read_small(&ledger.join("checkpoint.witnessed"), MAX_SMALL_FILE)?;
    let cp_path = ledger.join("checkpoint");
    let cp_bytes =
        read_small(&cp_path, MAX_SMALL_FILE)?.ok_or(BackupError::NoCheckpoint(data.to_owned()))?;
    let cp_err = |detail: String| BackupError::Checkpoint {
        path: cp_path.clone(),
        detail,
    };
    let cp_text = std::str::from_utf8(&cp_bytes).map_err(|e| cp_err(e.to_string()))?;
    let cp = note::parse_unverified_checkpoint(cp_text).map_err(|e| cp_err(e.to_string()))?;
    let history = read_small(&ledger.join("key-history.json"), MAX_SMALL_FILE)?;

    prepare_target(target)?;
    let old = read_manifest(target)?;
    match &old {
        Some(old) => {
            if old.origin != cp.origin {
                return Err(BackupError::OtherLedger(format!(
                    "its origin is {:?}, this ledger's is {:?}",
                    old.origin, cp.origin
                )));
            }
            if old.signer.is_some() && old.signer != signer_id(cp_text) && history.is_none() {
                return Err(BackupError::OtherLedger(format!(
                    "it was signed by {}, this ledger by {} (and it has no key history)",
                    old.signer.as_deref().unwrap_or("?"),
                    signer_id(cp_text).as_deref().unwrap_or("?")
                )));
            }
            if old.checkpoint.size > cp.size {
                return Err(BackupError::OtherLedger(format!(
                    "its checkpoint covers {} segments, this ledger's only {}: a longer log (or a fork)",
                    old.checkpoint.size, cp.size
                )));
            }
        }
        None => {
            // A first backup, or one interrupted before its manifest.
            for entry in fs::read_dir(target).map_err(io_err(target))? {
                let entry = entry.map_err(io_err(target))?;
                let name = entry.file_name();
                if name != "ledger" && name != "config" {
                    return Err(BackupError::Target {
                        path: target.to_owned(),
                        detail: format!(
                            "is not empty and holds no {MANIFEST} (found {:?}): not a sealtrail backup",
                            name
                        ),
                    });
                }
            }
        }
    }
    for d in ["ledger/segments", "ledger/keys", "ledger/dicts"] {
        create_dirs(&target.join(d))?;
    }

    let mut files = BTreeMap::new();
    let (mut copied_files, mut copied_bytes, mut present) = (0u64, 0u64, 0u64);
    let mut first_record = None;
    for n in 0..cp.size {
        let rel = segment_rel(n);
        let src_path = data.join(&rel);
        let (mut src, footer) = read_footer(&src_path)?;
        if footer.record.number != n || footer.record.origin != cp.origin {
            return Err(cp_err(format!(
                "segment {n}'s record names segment {} of {:?}",
                footer.record.number, footer.record.origin
            )));
        }
        if n == 0 {
            let id = hex::encode(Sha256::digest(footer.record.to_bytes()));
            if let Some(theirs) = old.as_ref().and_then(|o| o.first_record.as_ref())
                && *theirs != id
            {
                return Err(BackupError::OtherLedger(
                    "its first segment record differs (another ledger or signing key)".into(),
                ));
            }
            first_record = Some(id);
        }
        let dest = target.join(&rel);
        let sum = if dest.exists() {
            let (t, theirs) = read_footer(&dest).map_err(|e| BackupError::Conflict {
                path: dest.clone(),
                detail: format!("not a readable sealed segment: {e}"),
            })?;
            if theirs.record != footer.record {
                if n == 0 {
                    return Err(BackupError::OtherLedger(
                        "its segment 0 holds another record".into(),
                    ));
                }
                return Err(BackupError::Conflict {
                    path: dest,
                    detail: "its segment record differs: a fork or another ledger".into(),
                });
            }
            let size = t.metadata().map_err(io_err(&dest))?.len();
            present += 1;
            match old.as_ref().and_then(|o| o.files.get(&rel)) {
                Some(s) if s.size == size => s.clone(),
                _ => hash_file(&dest, &mut |_| {})?,
            }
        } else {
            src.rewind().map_err(io_err(&src_path))?;
            let sum = copy_into(&mut src, &dest, None)?;
            copied_files += 1;
            copied_bytes += sum.size;
            sum
        };
        files.insert(rel, sum);
        progress(n + 1, cp.size);
    }
    sync_dir(&target.join("ledger/segments"))?;

    let mut small = |rel: String, bytes: &[u8]| -> Result<()> {
        let (sum, changed) = write_small(&target.join(&rel), bytes)?;
        if changed {
            copied_files += 1;
            copied_bytes += sum.size;
        }
        files.insert(rel, sum);
        Ok(())
    };
    // Data keys of encrypted segments (wrapped: the KEK is never copied).
    for n in 0..cp.size {
        let rel = format!("ledger/keys/{n:012}.key");
        if let Some(bytes) = read_small(&data.join(&rel), 4096)? {
            small(rel, &bytes)?;
        }
    }
    // Dictionaries of compacted segments, named by their hash: written
    // before the segments naming them, so all needed ones are here.
    let dicts = ledger.join("dicts");
    if dicts.is_dir() {
        let mut names = Vec::new();
        for entry in fs::read_dir(&dicts).map_err(io_err(&dicts))? {
            let name = entry.map_err(io_err(&dicts))?.file_name();
            if let Some(name) = name.to_str().filter(|n| {
                n.strip_suffix(".zdict")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            }) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        for name in names {
            let rel = format!("ledger/dicts/{name}");
            let Some(bytes) = read_small(&data.join(&rel), crate::ledger::dicts::MAX_DICT_LEN)?
            else {
                continue;
            };
            let dest = target.join(&rel);
            if let Some(theirs) = read_small(&dest, MAX_SMALL_FILE)?
                && theirs != bytes
            {
                return Err(BackupError::Conflict {
                    path: dest,
                    detail: "another dictionary under the same hash name".into(),
                });
            }
            small(rel, &bytes)?;
        }
    }
    for (rel, src) in extra {
        safe_relative(rel).map_err(|detail| BackupError::Target {
            path: target.to_owned(),
            detail,
        })?;
        let bytes = read_small(src, MAX_SMALL_FILE)?.ok_or_else(|| BackupError::Io {
            path: src.clone(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        if let Some(parent) = target.join(rel).parent() {
            create_dirs(parent)?;
        }
        small(rel.clone(), &bytes)?;
    }
    if let Some(h) = &history {
        small("ledger/key-history.json".into(), h)?;
    }
    if let Some(w) = &witnessed {
        small("ledger/checkpoint.witnessed".into(), w)?;
    }
    // The checkpoint last: it never covers a segment the target lacks.
    small("ledger/checkpoint".into(), &cp_bytes)?;

    let checkpoint = CheckpointSummary {
        size: cp.size,
        root: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cp.root),
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        created: crate::event::Timestamp::now().to_string(),
        sealtrail_version: env!("CARGO_PKG_VERSION").into(),
        origin: cp.origin.clone(),
        first_record,
        checkpoint: checkpoint.clone(),
        signer: signer_id(cp_text),
        witnessed: witnessed.is_some(),
        files,
        copied_files,
        copied_bytes,
        audit: audit.into(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest {
        path: target.join(MANIFEST),
        detail: e.to_string(),
    })?;
    copy_into(&mut &json[..], &target.join(MANIFEST), None)?;
    sync_dir(target)?;
    Ok(BackupReport {
        target: target.to_owned(),
        checkpoint,
        files: manifest.files.len(),
        total_bytes: manifest.files.values().map(|s| s.size).sum(),
        copied_files,
        copied_bytes,
        segments_present: present,
    })
}

/// What re-reading a backup found.
#[derive(Clone, Debug, Serialize)]
pub struct FileCheck {
    pub ok: bool,
    pub files: usize,
    pub bytes: u64,
    pub checkpoint: CheckpointSummary,
    /// Missing, truncated or changed files.
    pub errors: Vec<String>,
    /// Files in `ledger/` the manifest does not name (an interrupted later
    /// backup leaves such).
    pub warnings: Vec<String>,
}

/// Re-reads every file the manifest of `target` names and checks its size
/// and SHA-256. `progress(done, total)` counts bytes.
pub fn check_files(target: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<FileCheck> {
    let manifest = read_manifest(target)?.ok_or_else(|| BackupError::Manifest {
        path: target.join(MANIFEST),
        detail: "missing: not a sealtrail backup".into(),
    })?;
    let total: u64 = manifest.files.values().map(|s| s.size).sum();
    let mut done = 0u64;
    let mut errors = Vec::new();
    for (rel, want) in &manifest.files {
        let path = target.join(rel);
        match hash_file(&path, &mut |n| {
            done += n;
            progress(done, total);
        }) {
            Ok(got) if got == *want => {}
            Ok(got) if got.size != want.size => errors.push(format!(
                "{rel}: {} bytes, the manifest says {} (truncated or extended)",
                got.size, want.size
            )),
            Ok(_) => errors.push(format!(
                "{rel}: SHA-256 differs from the manifest (corrupted)"
            )),
            Err(BackupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                errors.push(format!("{rel}: missing"))
            }
            Err(e) => errors.push(format!("{rel}: {e}")),
        }
    }
    let mut warnings = Vec::new();
    for d in ["ledger", "ledger/segments", "ledger/keys", "ledger/dicts"] {
        let Ok(entries) = fs::read_dir(target.join(d)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = format!("{d}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_file() && !manifest.files.contains_key(&rel) {
                warnings.push(format!("{rel}: not named by the manifest"));
            }
        }
    }
    warnings.sort();
    Ok(FileCheck {
        ok: errors.is_empty(),
        files: manifest.files.len(),
        bytes: total,
        checkpoint: manifest.checkpoint,
        errors,
        warnings,
    })
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub data: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub checkpoint: CheckpointSummary,
}

/// True if `dir` is missing or an empty directory.
fn is_new_or_empty(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Copies the backup in `from` into the new or empty directory `data`:
/// every file the manifest names, each checked against its size and hash
/// while it is copied, into a staging directory beside `data` that is
/// renamed to `data` only when all are there. Nothing else is written (the
/// writer rebuilds the derived files, the service the index).
/// `progress(done, total)` counts bytes. `accept` is called with the
/// complete staging directory before that rename; an `Err` (the reason)
/// removes it and fails the restore with [`BackupError::Rejected`].
pub fn restore(
    from: &Path,
    data: &Path,
    progress: &mut dyn FnMut(u64, u64),
    accept: &mut dyn FnMut(&Path) -> std::result::Result<(), String>,
) -> Result<RestoreReport> {
    if !is_new_or_empty(data)? {
        return Err(BackupError::NotEmpty(data.to_owned()));
    }
    if data.exists() && !data.is_dir() {
        return Err(BackupError::NotEmpty(data.to_owned()));
    }
    let manifest = read_manifest(from)?.ok_or_else(|| BackupError::Manifest {
        path: from.join(MANIFEST),
        detail: "missing: not a sealtrail backup".into(),
    })?;
    let name = data
        .file_name()
        .ok_or_else(|| BackupError::Target {
            path: data.to_owned(),
            detail: "has no directory name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let staging = data.with_file_name(format!(".{name}.restoring-{}", std::process::id()));
    fs::create_dir(&staging).map_err(io_err(&staging))?;
    let total: u64 = manifest.files.values().map(|s| s.size).sum();
    let result = (|| {
        let mut done = 0u64;
        for (rel, want) in &manifest.files {
            let src_path = from.join(rel);
            let dest = staging.join(rel);
            if let Some(parent) = dest.parent() {
                create_dirs(parent)?;
            }
            let mut src = File::open(&src_path).map_err(io_err(&src_path))?;
            copy_into(&mut src, &dest, Some(want))?;
            done += want.size;
            progress(done, total);
        }
        sync_dir(&staging)?;
        accept(&staging).map_err(BackupError::Rejected)?;
        if data.exists() {
            fs::remove_dir(data).map_err(io_err(data))?;
        }
        fs::rename(&staging, data).map_err(io_err(data))?;
        sync_parent(data)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result?;
    Ok(RestoreReport {
        data: data.to_owned(),
        files: manifest.files.len(),
        bytes: total,
        checkpoint: manifest.checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_into_checks_the_expected_sum_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let good = sum_of(b"hello");
        assert_eq!(
            copy_into(&mut &b"hello"[..], &dest, Some(&good)).unwrap(),
            good
        );
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        let other = dir.path().join("g");
        let err = copy_into(&mut &b"hellO"[..], &other, Some(&good)).unwrap_err();
        assert!(matches!(err, BackupError::Damaged(_)), "{err}");
        assert!(!other.exists());
        assert!(!tmp_name(&other).exists());
    }

    #[test]
    fn manifest_paths_stay_inside() {
        assert!(safe_relative("ledger/segments/000000000000.seg").is_ok());
        for bad in ["", "../x", "/etc/passwd", "ledger/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_that_is_a_file_or_has_no_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = prepare_target(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        let e = prepare_target(&dir.path().join("no/such"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unreachable"), "{e}");
    }
}
