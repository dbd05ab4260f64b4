//! Syslog sources: RFC 5424 and RFC 3164 messages over UDP, TCP (RFC 6587
//! framing) and TLS (RFC 5425).
//!
//! ```text
//!  socket ──bytes──> framing (TCP/TLS) ──frame──> parse ──Message──> mapping ──Item──> Pipeline::submit
//! ```
//!
//! [`parse`] reads a frame, [`framing`] splits a byte stream into frames,
//! [`mapping`] decides what a message becomes (an event it carries as JSON
//! or structured data, a `system/syslog` text event, or a rejection), and
//! [`listener`] runs the sockets with bounded buffers, a connection limit,
//! idle timeouts and backpressure.

pub mod framing;
pub mod listener;
pub mod mapping;
pub mod parse;

pub use listener::{SyslogError, SyslogListeners, start};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `[syslog]` section as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSyslog {
    /// UDP and TCP listen address; `""` turns both off.
    pub listen: String,
    /// RFC 5425 (syslog over TLS) listen address; `""` (the default) means none.
    pub tls_listen: String,
    /// PEM certificate chain for `tls_listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_listen`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA: when set, TLS senders must present a certificate it signed,
    /// whose subject becomes the events' `via.principal` (`cert:<subject>`).
    pub tls_client_ca: Option<PathBuf>,
    /// Largest message (one datagram or frame) in bytes; larger ones are
    /// recorded as rejected and skipped.
    pub max_message_bytes: usize,
    /// Most TCP and TLS connections at once; at the cap, the connection
    /// idle longest is closed to make room for a new one.
    pub max_connections: usize,
    /// Most TCP and TLS connections from one address; more are closed on accept.
    pub max_connections_per_ip: usize,
    /// A connection that sends nothing at all for this long is closed.
    pub first_byte_timeout: String,
    /// A connection that sends nothing for this long is closed (`"300ms"`,
    /// `"30s"`, `"5m"`, `"1h"`).
    pub idle_timeout: String,
}

impl Default for RawSyslog {
    fn default() -> Self {
        let d = SyslogConfig::default();
        RawSyslog {
            listen: d.listen.map(|a| a.to_string()).unwrap_or_default(),
            tls_listen: String::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_message_bytes: d.max_message_bytes,
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            first_byte_timeout: format!("{}s", d.first_byte_timeout.as_secs()),
            idle_timeout: format!("{}s", d.idle_timeout.as_secs()),
        }
    }
}

/// Validated syslog settings.
#[derive(Clone, Debug)]
pub struct SyslogConfig {
    /// UDP and TCP address, when enabled.
    pub listen: Option<SocketAddr>,
    pub tls: Option<TlsListen>,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    /// Idle limit before a connection's first byte (TLS: before the handshake ends).
    pub first_byte_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct TlsListen {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates required and verified against this CA.
    pub client_ca: Option<PathBuf>,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5514))),
            tls: None,
            max_message_bytes: 64 * 1024,
            max_connections: 1024,
            max_connections_per_ip: 64,
            idle_timeout: Duration::from_secs(300),
            first_byte_timeout: Duration::from_secs(30),
        }
    }
}

/// A `[syslog]` key with an unacceptable value.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SyslogConfigError {
    pub key: &'static str,
    pub reason: String,
}

/// Smallest `max_message_bytes`: every receiver must take 480 (RFC 5424 6.1).
const MIN_MESSAGE_BYTES: usize = 480;

impl RawSyslog {
    /// `tls_client_ca`, an empty path counting as none.
    fn client_ca(&self) -> Option<PathBuf> {
        self.tls_client_ca
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
    }

    pub fn validate(&self) -> Result<SyslogConfig, SyslogConfigError> {
        let err = |key, reason: String| SyslogConfigError { key, reason };
        let addr = |key, s: &str| -> Result<Option<SocketAddr>, SyslogConfigError> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            s.trim().parse().map(Some).map_err(|_| {
                err(
                    key,
                    format!("{s:?} is not an address such as 127.0.0.1:5514"),
                )
            })
        };
        let listen = addr("syslog.listen", &self.listen)?;
        let tls = match addr("syslog.tls_listen", &self.tls_listen)? {
            None => None,
            Some(listen) => match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsListen {
                    listen,
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.client_ca(),
                }),
                _ => {
                    return Err(err(
                        "syslog.tls_listen",
                        "needs tls_cert and tls_key".into(),
                    ));
                }
            },
        };
        let max = crate::event::limits::MAX_EVENT_BYTES;
        if !(MIN_MESSAGE_BYTES..=max).contains(&self.max_message_bytes) {
            return Err(err(
                "syslog.max_message_bytes",
                format!("must be between {MIN_MESSAGE_BYTES} and {max}"),
            ));
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(err(
                "syslog.max_connections",
                "must be between 1 and 65536".into(),
            ));
        }
        if self.client_ca().is_some() && tls.is_none() {
            return Err(err(
                "syslog.tls_client_ca",
                "needs tls_listen, tls_cert and tls_key".into(),
            ));
        }
        if self.max_connections_per_ip == 0 {
            return Err(err(
                "syslog.max_connections_per_ip",
                "must be at least 1".into(),
            ));
        }
        let first_byte_timeout = parse_duration(&self.first_byte_timeout)
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(86_400)).contains(d))
            .ok_or_else(|| {
                err(
                    "syslog.first_byte_timeout",
                    format!(
                        "{:?} is not a duration between 100ms and 24h (such as \"30s\")",
                        self.first_byte_timeout
                    ),
                )
            })?;
        let idle_timeout = parse_duration(&self.idle_timeout)
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(86_400)).contains(d))
            .ok_or_else(|| {
                err(
                    "syslog.idle_timeout",
                    format!(
                        "{:?} is not a duration between 100ms and 24h (such as \"30s\" or \"5m\")",
                        self.idle_timeout
                    ),
                )
            })?;
        Ok(SyslogConfig {
            listen,
            tls,
            max_message_bytes: self.max_message_bytes,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            idle_timeout,
            first_byte_timeout,
        })
    }
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok()?;
    match &s[split..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawSyslog {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let c = raw("").validate().unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:5514".parse().unwrap()));
        assert!(c.tls.is_none());
        assert_eq!(c.max_message_bytes, 65_536);
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.first_byte_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections_per_ip, 64);
    }

    #[test]
    fn settings_are_checked() {
        let c = raw("listen = \"\"\ntls_listen = \"0.0.0.0:6514\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nidle_timeout = \"250ms\"")
            .validate()
            .unwrap();
        assert_eq!(c.listen, None);
        assert_eq!(c.tls.unwrap().listen.port(), 6514);
        assert_eq!(c.idle_timeout, Duration::from_millis(250));
        for bad in [
            "listen = \"nope\"",
            "tls_listen = \"127.0.0.1:6514\"",
            "max_message_bytes = 10",
            "max_message_bytes = 10000000",
            "max_connections = 0",
            "idle_timeout = \"5\"",
            "idle_timeout = \"1ms\"",
            "idle_timeout = \"2d\"",
            "tls_client_ca = \"ca.pem\"",
            "max_connections_per_ip = 0",
            "first_byte_timeout = \"0s\"",
        ] {
            assert!(raw(bad).validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<RawSyslog>("bogus = 1").is_err());
    }
}
