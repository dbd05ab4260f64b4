//! `sealtrail backup`, `backup verify` and `restore` (issue #17, to a
//! directory). The work is in `crate::backup`; here: flags, progress bars,
//! output, and the `admin/backup` / `admin/restore` ledger events.

use crate::backup::{self, BackupReport, FileCheck, RestoreReport};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// Data directory (default: the configuration's `data_dir`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Target directory (another disk or mount); created if its parent exists.
    #[arg(long)]
    to: Option<PathBuf>,
    /// Configuration file: copied into the backup (config/) with the rules
    /// folder it names. With it, a backup taken while the service is
    /// stopped is also recorded as an admin/backup ledger event.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Re-read every file of a backup against its manifest (size, SHA-256)
    /// and, with --vkey, verify the backup's ledger as `verify --data` does.
    Verify {
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        vkey: Option<PathBuf>,
        /// Key-encryption key, to check encrypted payloads too.
        #[arg(long)]
        kek: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Backup directory.
    #[arg(long)]
    from: PathBuf,
    /// New or empty data directory to restore into.
    #[arg(long)]
    data: PathBuf,
    /// Verify the restored ledger with this key.
    #[arg(long)]
    vkey: Option<PathBuf>,
    /// A newer signed checkpoint of the log (published or witnessed): the
    /// restore is refused unless the backup extends it. Needs --vkey.
    #[arg(long, requires = "vkey")]
    since: Option<PathBuf>,
    /// Restore even though the backup is older than --since (the chain
    /// then forks); recorded as such. Needs --config.
    #[arg(long, requires = "config")]
    force: bool,
    /// Configuration (its signing key) to record the restore as an
    /// admin/restore ledger event in the restored directory.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// A byte or segment bar on stderr, only on a terminal.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(show: bool, template: &str) -> Bar {
        Bar((show && std::io::stderr().is_terminal()).then(|| {
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::new(0).with_style(style)
        }))
    }

    fn set(&self, done: u64, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
            b.set_position(done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

const SEGMENTS_TEMPLATE: &str = "backing up [{bar:30}] {pos}/{len} segments, ETA {eta}";
const BYTES_TEMPLATE: &str =
    "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, ETA {eta}";

fn bytes_bar(show: bool, prefix: &'static str) -> Bar {
    let bar = Bar::new(show, BYTES_TEMPLATE);
    if let Some(b) = &bar.0 {
        b.set_prefix(prefix);
    }
    bar
}

pub fn run_backup(args: BackupArgs) -> Result<ExitCode> {
    if let Some(BackupCommand::Verify {
        to,
        vkey,
        kek,
        json,
    }) = args.command
    {
        return verify(&to, vkey.as_deref(), kek.as_deref(), json);
    }
    let Some(to) = args.to else {
        bail!("give --to TARGET_DIR");
    };
    let config = args
        .config
        .as_deref()
        .map(|p| Config::load(Some(p)))
        .transpose()?;
    let data = match (&args.data, &config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => c.data_dir.clone(),
        (None, None) => bail!("give --data DIR or --config FILE"),
    };
    let mut extra = Vec::new();
    if let (Some(path), Some(c)) = (&args.config, &config) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.toml".into());
        extra.push((format!("config/{name}"), path.clone()));
        rule_files(&c.rules.dir, &c.rules.dir, &mut extra)?;
    }
    let can_record = match (&config, lock_state(&data)?) {
        (Some(_), LockState::Free) => true,
        (_, LockState::Held) => false,
        (None, LockState::Free) => false,
    };
    let audit = if can_record {
        "ledger event admin/backup, appended after this backup".to_owned()
    } else if config.is_none() {
        "manifest only: no --config (signing key) to append an admin/backup ledger event".to_owned()
    } else {
        "manifest only: the service holds DATA/LOCK, so the CLI cannot append admin/backup while it runs"
            .to_owned()
    };
    let bar = Bar::new(!args.json, SEGMENTS_TEMPLATE);
    let report = backup::backup(&data, &to, &extra, &audit, &mut |d, t| bar.set(d, t))
        .with_context(|| format!("backing up {} to {}", data.display(), to.display()))?;
    drop(bar);
    let mut recorded = None;
    if let (true, Some(mut c)) = (can_record, config) {
        c.data_dir = data.clone();
        let attrs = serde_json::json!({
            "target": to.display().to_string(),
            "checkpoint_size": report.checkpoint.size,
            "files": report.files,
            "total_bytes": report.total_bytes,
            "copied_files": report.copied_files,
            "copied_bytes": report.copied_bytes,
            "user": std::env::var("USER").unwrap_or_default(),
        });
        let message = format!(
            "backup to {}: {} segments covered, {} files ({} bytes) copied",
            to.display(),
            report.checkpoint.size,
            report.copied_files,
            report.copied_bytes
        );
        record(&c, "backup", message, attrs)
            .context("the backup is complete, but recording the admin/backup event failed")?;
        recorded = Some(true);
    }
    print_backup(&report, recorded.is_some(), &audit, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Sigma rule files of the rules folder, as `config/rules/<relative>`.
fn rule_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // no rules folder: nothing to carry
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rule_files(root, &p, out)?;
        } else if p
            .extension()
            .is_some_and(|e| e == "yml" || e == "yaml" || e == "csv")
        {
            let rel = p.strip_prefix(root).context("rules folder")?;
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((format!("config/rules/{}", rel.join("/")), p));
        }
    }
    Ok(())
}

enum LockState {
    Free,
    Held,
}

/// Whether a writer holds `DATA/LOCK` now (checked without waiting).
fn lock_state(data: &Path) -> Result<LockState> {
    let path = data.join("LOCK");
    let f = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Free),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    match f.try_lock() {
        Ok(()) => Ok(LockState::Free),
        Err(std::fs::TryLockError::WouldBlock) => Ok(LockState::Held),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("checking the data directory lock"),
    }
}

fn print_backup(r: &BackupReport, recorded: bool, audit: &str, json: bool) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("ok".into(), true.into());
            o.insert("recorded".into(), recorded.into());
            o.insert("audit".into(), audit.into());
        }
        println!("{v}");
    } else {
        say!(
            "backup of {} segments in {}: {} files, {} bytes; copied {} files ({} bytes), {} segments were already there",
            r.checkpoint.size,
            r.target.display(),
            r.files,
            r.total_bytes,
            r.copied_files,
            r.copied_bytes,
            r.segments_present
        );
        say!("audit: {audit}");
    }
    Ok(())
}

fn verify(to: &Path, vkey: Option<&Path>, kek: Option<&Path>, json: bool) -> Result<ExitCode> {
    let bar = bytes_bar(!json, "reading");
    let files = backup::check_files(to, &mut |d, t| bar.set(d, t))
        .with_context(|| format!("checking the backup in {}", to.display()))?;
    drop(bar);
    let ledger = match vkey {
        Some(vkey) => {
            if let Some(kek) = kek {
                let kek = crate::ledger::atrest::Kek::load_file(kek)?;
                crate::ledger::atrest::register(to, kek)?;
            }
            let verifier = super::load_verifier(vkey)?;
            let bar = super::progress::VerifyProgress::new(!json);
            let report = crate::ledger::verify::verify_data_dir_with(
                to,
                &verifier,
                None,
                None,
                Some(&mut |p| bar.update(p)),
            )?;
            Some(report)
        }
        None => None,
    };
    let same_checkpoint = ledger.as_ref().is_none_or(|r| {
        r.checkpoint
            .as_ref()
            .is_some_and(|c| c.size == files.checkpoint.size)
    });
    let ok = files.ok && ledger.as_ref().is_none_or(|r| r.ok) && same_checkpoint;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": ok,
                "files": files,
                "ledger": ledger,
                "checkpoint_matches_manifest": same_checkpoint,
            })
        );
    } else {
        print_check(&files);
        match &ledger {
            Some(r) => super::print_report(r),
            None => say!("ledger not verified (give --vkey to run the ledger verification)"),
        }
        if !same_checkpoint {
            say!("FAILED: the backup's checkpoint is not the one its manifest names");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_CHECK_FAILED)
    })
}

fn print_check(f: &FileCheck) {
    if f.ok {
        say!(
            "backup files OK: {} files, {} bytes match the manifest (checkpoint of {} segments)",
            f.files,
            f.bytes,
            f.checkpoint.size
        );
    } else {
        say!(
            "backup files FAILED: {} of {} files differ from the manifest",
            f.errors.len(),
            f.files
        );
        for e in &f.errors {
            say!("  {e}");
        }
    }
    for w in &f.warnings {
        say!("  warning: {w}");
    }
}

pub fn run_restore(args: RestoreArgs) -> Result<ExitCode> {
    let manifest = backup::read_manifest(&args.from)?
        .with_context(|| format!("{} holds no {}", args.from.display(), backup::MANIFEST))?;
    // A restore older than a checkpoint the caller holds would fork the log.
    let since_text = args.since.as_deref().map(super::read_bounded).transpose()?;
    let since_size = match &since_text {
        Some(t) => Some(
            crate::ledger::note::parse_unverified_checkpoint(t)
                .context("reading the --since checkpoint")?
                .size,
        ),
        None => None,
    };
    let fork = since_size.is_some_and(|s| s > manifest.checkpoint.size);
    if fork && !args.force {
        eprintln!(
            "error: refusing to restore: the backup covers {} segments, the --since checkpoint {}; \
             ingesting after this restore would fork the log (--force --config FILE restores anyway and records the fork)",
            manifest.checkpoint.size,
            since_size.unwrap_or_default()
        );
        return Ok(ExitCode::from(super::EXIT_CHECK_FAILED));
    }
    let config = args
        .config
        .as_deref()
        .map(|p| Config::load(Some(p)))
        .transpose()?;
    let verifier = args.vkey.as_deref().map(super::load_verifier).transpose()?;
    // A forced fork cannot extend --since: the backup is checked alone.
    let since = if fork { None } else { since_text.as_deref() };
    let mut rejected = None;
    let bar = bytes_bar(!args.json, "restoring");
    let result = backup::restore(
        &args.from,
        &args.data,
        &mut |d, t| bar.set(d, t),
        &mut |staging| {
            let Some(verifier) = &verifier else {
                return Ok(());
            };
            let bar = super::progress::VerifyProgress::new(!args.json);
            let r = crate::ledger::verify::verify_data_dir_with(
                staging,
                verifier,
                since,
                None,
                Some(&mut |p| bar.update(p)),
            )
            .map_err(|e| e.to_string())?;
            if r.ok {
                Ok(())
            } else {
                rejected = Some(r);
                Err("the ledger does not verify".into())
            }
        },
    );
    drop(bar);
    if let Some(r) = rejected {
        if args.json {
            println!("{}", serde_json::json!({"ok": false, "ledger": r}));
        } else {
            super::print_report(&r);
            say!(
                "the backup's ledger does not verify: nothing was written to {}",
                args.data.display()
            );
        }
        return Ok(ExitCode::from(super::EXIT_CHECK_FAILED));
    }
    let report = result.with_context(|| {
        format!(
            "restoring {} into {}",
            args.from.display(),
            args.data.display()
        )
    })?;
    let verified = verifier.is_some();
    let mut recorded = false;
    if let Some(mut c) = config {
        c.data_dir = args.data.clone();
        let attrs = serde_json::json!({
            "from": args.from.display().to_string(),
            "checkpoint_size": report.checkpoint.size,
            "files": report.files,
            "bytes": report.bytes,
            "backup_created": manifest.created,
            "forced_fork": fork,
            "since_size": since_size,
            "user": std::env::var("USER").unwrap_or_default(),
        });
        let message = if fork {
            format!(
                "FORCED restore from {}: the log forks after segment {} (a checkpoint of {} segments was named)",
                args.from.display(),
                report.checkpoint.size,
                since_size.unwrap_or_default()
            )
        } else {
            format!(
                "restore from {}: {} segments",
                args.from.display(),
                report.checkpoint.size
            )
        };
        record(&c, "restore", message, attrs)
            .context("the files were restored, but recording the admin/restore event failed")?;
        recorded = true;
    }
    print_restore(&report, verified, recorded, fork, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_restore(
    r: &RestoreReport,
    verified: bool,
    recorded: bool,
    fork: bool,
    json: bool,
) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("ok".into(), true.into());
            o.insert("verified".into(), verified.into());
            o.insert("recorded".into(), recorded.into());
            o.insert("forced_fork".into(), fork.into());
        }
        println!("{v}");
    } else {
        say!(
            "restored {} files ({} bytes, {} segments) into {}{}{}",
            r.files,
            r.bytes,
            r.checkpoint.size,
            r.data.display(),
            if verified { ", verified" } else { "" },
            if fork { ", FORCED FORK recorded" } else { "" }
        );
        say!("start the service on it: the index and derived files are rebuilt on first start");
    }
    Ok(())
}

/// Appends an `admin/<action>` event (see [`super::record_admin_event`])
/// with the ledger's key-encryption key loaded, so an encrypted ledger takes
/// it too: the service must not be running on the data directory.
fn record(config: &Config, action: &str, message: String, attrs: serde_json::Value) -> Result<()> {
    crate::ledger::atrest_config::enable(&config.encryption_key_file, &config.data_dir)
        .context("loading the key-encryption key")?;
    super::record_admin_event(config, action, message, attrs)
}
