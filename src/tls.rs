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
    #[error("{path} holds no usable ca certificate")]
    NoCa { path: PathBuf },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
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

/// The server-side provider: ring's suites restricted to AEAD with
/// (EC)DHE key exchange (TLS 1.3 suites, TLS 1.2 ECDHE-AES-GCM/ChaCha20).
/// rustls has no CBC or RSA-key-exchange suites; the filter keeps it so.
pub fn modern_provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(t) => {
            t.kx == rustls::crypto::KeyExchangeAlgorithm::ECDHE
        }
    });
    Arc::new(p)
}

/// Whether and how a TLS server asks for client certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Verified against this CA when presented; clients without one connect too.
    Optional(PathBuf),
    /// Required and verified against this CA.
    Required(PathBuf),
}

/// Every certificate of a PEM CA file as trust anchors.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(TlsError::NoCa {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// A server configuration for the listeners: TLS 1.2 and 1.3 (1.3 chosen
/// whenever the client offers it), [`modern_provider`] suites, `alpn`, and
/// client certificates as `client` says. Reads files: call it from a
/// blocking context.
pub fn listener_config(
    cert: &Path,
    key: &Path,
    client: &ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let provider = modern_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) | ClientAuth::Required(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if matches!(client, ClientAuth::Optional(_)) {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
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
