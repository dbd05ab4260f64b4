//! Witness key files: `witness.key` (PKCS#8 PEM, 0600) and `witness.vkey`
//! (C2SP vkey of type 0x04, which also carries the witness's name).

use crate::ledger::cosignature::{CosignatureError, WitnessSigner, WitnessVerifier};
use crate::ledger::keys::write_new_file;
use std::path::{Path, PathBuf};

pub const WITNESS_KEY_FILE: &str = "witness.key";
pub const WITNESS_VKEY_FILE: &str = "witness.vkey";
/// Key and vkey files are a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WitnessKeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a key")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: {source}")]
    Key {
        path: PathBuf,
        source: CosignatureError,
    },
    #[error("{key_file}: the key does not match {vkey_file}")]
    Mismatch {
        key_file: PathBuf,
        vkey_file: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessKeyError + '_ {
    move |source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => WitnessKeyError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => WitnessKeyError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

fn key(path: &Path) -> impl FnOnce(CosignatureError) -> WitnessKeyError + '_ {
    move |source| WitnessKeyError::Key {
        path: path.to_owned(),
        source,
    }
}

/// Generates a witness key named `name` into the existing folder `dir`.
/// Returns the vkey; refuses if either file exists.
pub fn write_witness_key(dir: &Path, name: &str) -> Result<WitnessVerifier, WitnessKeyError> {
    let key_file = dir.join(WITNESS_KEY_FILE);
    let vkey_file = dir.join(WITNESS_VKEY_FILE);
    for path in [&key_file, &vkey_file] {
        if path.symlink_metadata().is_ok() {
            return Err(WitnessKeyError::AlreadyExists { path: path.clone() });
        }
    }
    let signer = WitnessSigner::generate(name).map_err(key(&key_file))?;
    let pem = signer.to_pkcs8_pem().map_err(key(&key_file))?;
    write_new_file(&key_file, pem.as_bytes(), 0o600).map_err(io(&key_file))?;
    let verifier = signer.verifier();
    let line = format!("{}\n", verifier.to_vkey());
    write_new_file(&vkey_file, line.as_bytes(), 0o644).map_err(io(&vkey_file))?;
    Ok(verifier)
}

/// Loads a witness vkey file (one line, optional final newline).
pub fn load_witness_verifier(path: &Path) -> Result<WitnessVerifier, WitnessKeyError> {
    let text = crate::bounded::read_to_string(path, MAX_KEY_FILE).map_err(io(path))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    WitnessVerifier::from_vkey(line).map_err(key(path))
}

/// Loads `witness.key`; its name comes from the sibling `.vkey` file, whose
/// public key must match.
pub fn load_witness_signer(key_file: &Path) -> Result<WitnessSigner, WitnessKeyError> {
    let vkey_file = key_file.with_extension("vkey");
    let verifier = load_witness_verifier(&vkey_file)?;
    let pem = zeroize::Zeroizing::new(
        crate::bounded::read_to_string(key_file, MAX_KEY_FILE).map_err(io(key_file))?,
    );
    let signer = WitnessSigner::from_pkcs8_pem(verifier.name(), &pem).map_err(key(key_file))?;
    if signer.verifier() != verifier {
        return Err(WitnessKeyError::Mismatch {
            key_file: key_file.to_owned(),
            vkey_file,
        });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_loadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let v = write_witness_key(dir.path(), "auditor.example/w1").unwrap();
        let signer = load_witness_signer(&dir.path().join(WITNESS_KEY_FILE)).unwrap();
        assert_eq!(signer.verifier(), v);
        let vkey = std::fs::read_to_string(dir.path().join(WITNESS_VKEY_FILE)).unwrap();
        assert_eq!(vkey, format!("{}\n", v.to_vkey()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(WITNESS_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_witness_key(dir.path(), "auditor.example/w1"),
            Err(WitnessKeyError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn mismatched_vkey_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_witness_key(a.path(), "w.example/a").unwrap();
        write_witness_key(b.path(), "w.example/a").unwrap();
        std::fs::copy(
            b.path().join(WITNESS_VKEY_FILE),
            a.path().join(WITNESS_VKEY_FILE),
        )
        .unwrap();
        assert!(matches!(
            load_witness_signer(&a.path().join(WITNESS_KEY_FILE)),
            Err(WitnessKeyError::Mismatch { .. })
        ));
    }
}
