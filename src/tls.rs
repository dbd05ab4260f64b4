//! TLS material: self-signed certificates for tests and demos (`sealtrail
//! cert`), and loading a PEM certificate chain and key into a rustls server
//! configuration.
//!
//! The crypto provider is always passed explicitly (ring), never taken from a
//! process-wide default, so this works whatever else in the process installed.

use crate::ledger::keys::write_new_file;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Largest PEM file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; not overwriting it")]
    AlreadyExists { path: PathBuf },
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path} holds no pem certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no pem private key")]
    NoKey { path: PathBuf },
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The crypto provider sealtrail uses for TLS.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and its private key, both PEM.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed certificate for `hosts` (DNS names or IP addresses, each
/// becoming a subject alternative name).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, TlsError> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(hosts.to_vec())?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
    })
}

/// Paths written by [`write_self_signed`].
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `cert.pem` and `key.pem` (mode 0600) for `hosts` into the existing
/// directory `dir`. Refuses to overwrite either file.
pub fn write_self_signed(dir: &Path, hosts: &[String]) -> Result<CertFiles, TlsError> {
    let files = CertFiles {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    for path in [&files.cert, &files.key] {
        if path.symlink_metadata().is_ok() {
            return Err(TlsError::AlreadyExists { path: path.clone() });
        }
    }
    let pair = self_signed(hosts)?;
    create_new(&files.key, pair.key_pem.as_bytes(), 0o600)?;
    create_new(&files.cert, pair.cert_pem.as_bytes(), 0o644)?;
    Ok(files)
}

fn create_new(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    write_new_file(path, data, mode).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => TlsError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => io_err(path)(e),
    })
}

fn open_bounded(path: &Path) -> Result<BufReader<std::fs::File>, TlsError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(BufReader::new(file))
}

/// Every certificate in a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open_bounded(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open_bounded(path)?)
        .map_err(io_err(path))?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// A server configuration (TLS 1.2 and 1.3, no client authentication) for
/// the certificate chain and key in these PEM files. Reads files: call it
/// from a blocking context.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_certificates_load_into_a_server_config() {
        let dir = tempfile::tempdir().unwrap();
        let files =
            write_self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&files.cert, &files.key).unwrap();
        assert!(matches!(
            write_self_signed(dir.path(), &["localhost".into()]),
            Err(TlsError::AlreadyExists { .. })
        ));
        assert!(matches!(
            server_config(&files.key, &files.key),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            server_config(&files.cert, &files.cert),
            Err(TlsError::NoKey { .. })
        ));
    }
}
