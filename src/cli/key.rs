//! `sealtrail key`: the key-encryption key of encryption at rest, and
//! rotation of the ledger's signing key.

use super::ConfigArgs;
use crate::ledger::atrest::{self, Kek, KeyRotation};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `action` of the event `rotate-kek` records.
pub const KEY_ROTATION_ACTION: &str = "key_rotation";

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a new random key-encryption key to FILE (base64 of 32 bytes,
    /// mode 0600, never overwrites). Keep it outside the data directory.
    GenKek {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap every segment's data key from --kek to --new-kek (segments are
    /// not rewritten; crash-safe, re-run to finish) and record an
    /// admin/key_rotation event in the ledger. Stop the service first.
    RotateKek {
        #[command(flatten)]
        config: ConfigArgs,
        /// The current key-encryption key file.
        #[arg(long)]
        kek: PathBuf,
        /// The new key-encryption key file (`key gen-kek`).
        #[arg(long)]
        new_kek: PathBuf,
    },
    /// Rotate the ledger's signing key from --key to --new-key: the old key
    /// signs a key transition, logged as an admin/key_rotation event and
    /// kept in DATA/ledger/key-history.json; later checkpoints are signed by
    /// the new key. Stop the service first, then point [ledger] key_file at
    /// the new key.
    Rotate {
        #[command(flatten)]
        config: ConfigArgs,
        /// The new signing key (`keygen` with the same --name).
        #[arg(long)]
        new_key: PathBuf,
    },
}

pub fn run(cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::GenKek { out } => {
            let kek = Kek::generate();
            kek.write_new_file(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("kek id {}", kek.id_hex());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::RotateKek {
            config,
            kek,
            new_kek,
        } => rotate(config, &kek, &new_kek),
        KeyCommand::Rotate { config, new_key } => rotate_signing(config, &new_key),
    }
}

/// Registers the KEK in `SEALTRAIL_KEK`, if set, for readers of `data`
/// (`search --data`, `reindex`, `proof`, reports).
pub fn env_kek(data: Option<&Path>) -> Result<()> {
    if let (Some(data), Some(kek)) = (data, Kek::from_env()?)
        && data.is_dir()
    {
        atrest::register(data, kek)?;
    }
    Ok(())
}

/// Takes the data directory's lock: no writer may run (it would wrap new
/// segments' keys with the old KEK meanwhile).
fn lock(data: &Path) -> Result<File> {
    let path = data.join("LOCK");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "data directory {} is in use: stop the service before rotating the key-encryption key",
                data.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the data directory"),
    }
}

fn rotate(config: ConfigArgs, kek: &Path, new_kek: &Path) -> Result<ExitCode> {
    let mut config = config.load()?;
    let data = config.data_dir.clone();
    for k in [kek, new_kek] {
        atrest::check_kek_location(k, &data)?;
    }
    let old = Kek::load_file(kek)?;
    let new = Kek::load_file(new_kek)?;
    if old.id() == new.id() {
        bail!("--kek and --new-kek are the same key");
    }
    let done = {
        let _lock = lock(&data)?;
        atrest::rotate_kek(&data, &old, &new).context("rotating the key-encryption key")?
    };
    println!("{}", serde_json::to_string(&done)?);
    // The new KEK is the key from now on, whatever the config file says.
    atrest::register(&data, new)?;
    config.encryption_key_file = new_kek.to_owned();
    record(&config, &done).context(
        "the data keys were re-wrapped, but recording the admin/key_rotation event failed",
    )?;
    Ok(ExitCode::SUCCESS)
}

fn rotate_signing(config: ConfigArgs, new_key: &Path) -> Result<ExitCode> {
    use crate::ledger::keys::load_signer;
    let config = config.load()?;
    let old = load_signer(&config.key_file)
        .with_context(|| format!("loading the signing key {}", config.key_file.display()))?;
    let new = load_signer(new_key)
        .with_context(|| format!("loading the new signing key {}", new_key.display()))?;
    // New segments are written as the service would write them.
    crate::ledger::atrest_config::enable(&config.encryption_key_file, &config.data_dir)
        .context("loading the key-encryption key")?;
    let done =
        crate::ledger::rotate::rotate_signing_key(&config.data_dir, old, &new, config.seal.clone())
            .context("rotating the signing key")?;
    println!("{}", serde_json::to_string(&done)?);
    eprintln!(
        "signing key rotated: point [ledger] key_file at {} before starting the service; \
         verifiers keep using the first key's vkey",
        new_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Appends the rotation as an `admin/key_rotation` event through the
/// normal ingest path (as `import` does).
fn record(config: &crate::config::Config, done: &KeyRotation) -> Result<()> {
    super::record_admin_event(
        config,
        KEY_ROTATION_ACTION,
        format!(
            "key-encryption key rotated from {} to {}: {} data keys re-wrapped",
            done.old_kek_id, done.new_kek_id, done.rewrapped
        ),
        serde_json::json!({
            "old_kek_id": done.old_kek_id,
            "new_kek_id": done.new_kek_id,
            "rewrapped": done.rewrapped,
            "already_new": done.already_new,
        }),
    )
}
