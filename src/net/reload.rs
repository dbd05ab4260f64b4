//! A TLS server configuration that follows its files: the certificate, key
//! and client CA are checked every [`CHECK_EVERY`] and, when any changed,
//! loaded again. A file that does not load (half-written, wrong key) keeps
//! the previous configuration and logs one error per change seen. New
//! connections take [`ReloadingTls::current`]; open ones keep theirs.

use crate::tls::{ClientAuth, TlsError, listener_config};
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the files' metadata is compared.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The files of one TLS listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: ClientAuth,
}

/// What identifies a file's version: modification time, length, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

pub struct ReloadingTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    seen: Mutex<Vec<Stamp>>,
}

impl ReloadingTls {
    /// Loads the files (blocking); an error here stops the start.
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<ReloadingTls>, TlsError> {
        let seen = Self::stamps(&files);
        let config = Self::build(&files, alpn)?;
        Ok(Arc::new(ReloadingTls {
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            files,
            current: RwLock::new(config),
            seen: Mutex::new(seen),
        }))
    }

    fn build(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        listener_config(&files.cert, &files.key, &files.client, alpn)
    }

    fn stamps(files: &TlsFiles) -> Vec<Stamp> {
        let ca = match &files.client {
            ClientAuth::None => None,
            ClientAuth::Optional(p) | ClientAuth::Required(p) => Some(p.as_path()),
        };
        [Some(files.cert.as_path()), Some(files.key.as_path()), ca]
            .into_iter()
            .flatten()
            .map(stamp)
            .collect()
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when a file changed since the last look (blocking). `Ok(true)`
    /// when a new configuration is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = Self::stamps(&self.files);
        {
            let Ok(mut seen) = self.seen.lock() else {
                return Ok(false);
            };
            if *seen == now {
                return Ok(false);
            }
            // Recorded before loading: a broken file is reported once, and
            // tried again when it changes again.
            *seen = now;
        }
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let config = Self::build(&self.files, &alpn)?;
        if let Ok(mut c) = self.current.write() {
            *c = config;
        }
        Ok(true)
    }

    /// Checks the files until `shutdown`.
    pub async fn watch(self: Arc<Self>, what: &'static str, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.reload_if_changed()).await {
                Ok(Ok(true)) => tracing::info!(
                    listener = what,
                    cert = %self.files.cert.display(),
                    "tls certificate reloaded; new connections use it"
                ),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    listener = what,
                    error = %e,
                    "tls files changed but do not load; keeping the previous certificate"
                ),
                Err(e) => tracing::error!(listener = what, error = %e, "tls reload task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_certificate_is_used_and_a_broken_one_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::tls::write_self_signed(dir.path(), &["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: a.cert.clone(),
            key: a.key.clone(),
            client: ClientAuth::None,
        };
        let tls = ReloadingTls::load(files, &[b"http/1.1"]).unwrap();
        let first = tls.current();
        assert!(!tls.reload_if_changed().unwrap());
        let other = tempfile::tempdir().unwrap();
        let b = crate::tls::write_self_signed(other.path(), &["localhost".into()]).unwrap();
        std::fs::copy(&b.cert, &a.cert).unwrap();
        // The key does not match the new certificate yet: previous kept.
        assert!(tls.reload_if_changed().is_err());
        assert!(Arc::ptr_eq(&first, &tls.current()));
        std::fs::copy(&b.key, &a.key).unwrap();
        assert!(tls.reload_if_changed().unwrap());
        assert!(!Arc::ptr_eq(&first, &tls.current()));
        assert_eq!(tls.current().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
