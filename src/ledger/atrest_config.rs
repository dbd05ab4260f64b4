//! Where the KEK comes from for `serve` and `import`: `[ledger]
//! encryption_key_file`, else `SEALTRAIL_KEK`; neither: no encryption.

use super::atrest::{self, AtRestError, Kek};
use std::path::Path;

/// Registers the configured KEK for `data_dir` (unless this process already
/// registered one, as `key rotate-kek` does); returns whether encryption is
/// on. A KEK file inside the data directory is refused.
pub fn enable(kek_file: &Path, data_dir: &Path) -> Result<bool, AtRestError> {
    if atrest::keyring_for_ledger_dir(&data_dir.join("ledger")).is_some() {
        return Ok(true);
    }
    let kek = if kek_file.as_os_str().is_empty() {
        match Kek::from_env()? {
            Some(k) => k,
            None => return Ok(false),
        }
    } else {
        atrest::check_kek_location(kek_file, data_dir)?;
        Kek::load_file(kek_file)?
    };
    std::fs::create_dir_all(data_dir.join("ledger")).map_err(|source| AtRestError::Io {
        path: data_dir.to_owned(),
        source,
    })?;
    let ring = atrest::register(data_dir, kek)?;
    tracing::info!(kek_id = %ring.kek_id_hex(), "ledger payloads are encrypted at rest");
    Ok(true)
}
