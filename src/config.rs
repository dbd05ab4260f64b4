//! Configuration: raw TOML (every key defaulted, unknown keys rejected) turned
//! into the validated settings the program runs with.
//!
//! Sections arrive with the components that use them; the key names are the
//! contract in DESIGN.md.

use crate::auth::config::AuthConfig;
use crate::detect::RulesConfig;
use crate::ledger::log::SealPolicy;
use crate::pipeline::AppenderConfig;
use crate::pipeline::silence::SilenceConfig;
use crate::response::notify::{NotifyError, SmtpConfig};
use crate::response::{OncallConfig, ResponseConfig};
use crate::sources::http::HttpLimits;
use crate::sources::syslog::{RawSyslog, SyslogConfig};
use crate::transforms::mask::MaskConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

/// The config file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Where the ledger and derived state live.
    pub data_dir: PathBuf,
    pub ledger: RawLedger,
    pub http: RawHttp,
    pub ingest: IngestConfig,
    pub silence: SilenceConfig,
    pub syslog: RawSyslog,
    pub lookups: LookupsConfig,
    pub masking: MaskConfig,
    pub rules: RulesConfig,
    pub smtp: SmtpConfig,
    pub oncall: OncallConfig,
    pub response: ResponseConfig,
    pub auth: AuthConfig,
    /// `[[witness]]`: every new checkpoint is submitted to each.
    #[serde(rename = "witness")]
    pub witnesses: Vec<crate::witness::submit::WitnessConfig>,
    /// `[publish]`: the latest checkpoint sent out on a schedule.
    pub publish: crate::witness::publish::PublishConfig,
    /// `[console]`: the analyst console at `/`.
    pub console: ConsoleConfig,
}

/// `[console]`: the analyst console.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Honour one-time sign-in links (`GET /v1/session/link/{token}`), the
    /// demo's stand-in for password and second factor. Off by default;
    /// `sealtrail demo` turns it on.
    pub sign_in_links: bool,
}

/// `[lookups]`: the practice's directories joined to events.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookupsConfig {
    /// Folder with `staff.csv`, `patients.csv` and the optional
    /// `networks.csv` (missing files are empty tables).
    pub dir: PathBuf,
    /// How often the files are checked for changes, in seconds.
    pub reload_seconds: u64,
}

impl Default for LookupsConfig {
    fn default() -> Self {
        LookupsConfig {
            dir: PathBuf::from("lookups"),
            reload_seconds: 10,
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: PathBuf::from("./data"),
            ledger: RawLedger::default(),
            http: RawHttp::default(),
            ingest: IngestConfig::default(),
            silence: SilenceConfig::default(),
            syslog: RawSyslog::default(),
            lookups: LookupsConfig::default(),
            masking: MaskConfig::default(),
            rules: RulesConfig::default(),
            smtp: SmtpConfig::default(),
            oncall: OncallConfig::default(),
            response: ResponseConfig::default(),
            auth: AuthConfig::default(),
            witnesses: Vec::new(),
            publish: Default::default(),
            console: ConsoleConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Address of the HTTP API (ingest, metrics, health).
    pub listen: SocketAddr,
    /// Largest request body as sent.
    pub max_body_bytes: usize,
    /// Largest body after gzip/zstd decompression.
    pub max_decoded_bytes: usize,
    /// Largest NDJSON line or array element.
    pub max_line_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// Requests a minute each principal may make on routes other than ingest.
    pub requests_per_minute: u32,
    /// Ingest requests a second each principal may make.
    pub ingest_requests_per_second: u32,
    /// PEM certificate chain and key: both set turn on HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA: client certificates it signed are verified and passed on
    /// (mutual TLS; clients without one still connect).
    pub client_ca: Option<PathBuf>,
    /// Most connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Most connections open at once from one address.
    pub max_connections_per_ip: usize,
    /// Request headers must arrive within this (`"10s"`).
    pub header_read_timeout: String,
    /// A request body must arrive within this of the request's start.
    pub body_timeout: String,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: String,
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        let limits = HttpLimits::default();
        RawHttp {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: limits.max_body_bytes,
            max_decoded_bytes: limits.max_decoded_bytes,
            max_line_bytes: limits.max_line_bytes,
            max_events: limits.max_events,
            requests_per_minute: crate::auth::gate::RateLimits::default().requests_per_minute,
            ingest_requests_per_second: crate::auth::gate::RateLimits::default()
                .ingest_requests_per_second,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_read_timeout: "10s".into(),
            body_timeout: "60s".into(),
            idle_timeout: "60s".into(),
            tls_handshake_timeout: "10s".into(),
        }
    }
}

/// The ingest pipeline between sources and the ledger.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Prepared batches that may wait for the appender; when full, HTTP
    /// answers 503 and TCP senders are paused.
    pub queue: usize,
    /// Client event ids remembered so that retries are stored once.
    pub dedupe_window: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let a = AppenderConfig::default();
        IngestConfig {
            queue: a.queue,
            dedupe_window: a.dedupe_window,
        }
    }
}

impl IngestConfig {
    pub fn appender(&self) -> AppenderConfig {
        AppenderConfig {
            queue: self.queue,
            dedupe_window: self.dedupe_window,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub limits: HttpLimits,
    /// Request rates per principal.
    pub rate: crate::auth::gate::RateLimits,
    /// TLS, timeouts and connection caps (`src/net/http.rs`).
    pub server: crate::net::http::ServerSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLedger {
    /// PKCS#8 PEM Ed25519 key that signs checkpoints; its `.vkey` sibling names the log.
    pub key_file: PathBuf,
    /// Seal the open segment once it holds this many events.
    pub seal_max_events: u64,
    /// ... or once its oldest event is this old.
    pub seal_max_age_ms: u64,
    /// Compact sealed segments (per-entry zstd with a shared dictionary,
    /// segment format 2) in the background; hashes and proofs are unchanged.
    pub compress: bool,
    /// Key-encryption key (32 raw bytes or base64 of them; outside the data
    /// directory). Set: new segments' payloads are encrypted at rest
    /// (`SEALTRAIL_KEK` in the environment does the same).
    pub encryption_key_file: PathBuf,
}

impl Default for RawLedger {
    fn default() -> Self {
        RawLedger {
            key_file: PathBuf::from("keys/signing.key"),
            seal_max_events: 16_384,
            seal_max_age_ms: 1000,
            compress: true,
            encryption_key_file: PathBuf::new(),
        }
    }
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub seal: SealPolicy,
    /// Compact sealed segments in the background (`[ledger] compress`).
    pub compress: bool,
    /// `[ledger] encryption_key_file`; empty: not set.
    pub encryption_key_file: PathBuf,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub silence: SilenceConfig,
    pub syslog: SyslogConfig,
    pub lookups: LookupsConfig,
    pub masking: MaskConfig,
    pub rules: RulesConfig,
    /// `[smtp]`: validated (and `ca_file` readable); build a `Mailer` from it.
    pub smtp: SmtpConfig,
    pub oncall: OncallConfig,
    /// An empty `public_url` is filled in by `serve` from the bound address.
    pub response: ResponseConfig,
    /// `[auth]`: console sessions and sign-in lockout.
    pub auth: AuthConfig,
    /// `[[witness]]`, validated (the vkey files are read by `serve`).
    pub witnesses: Vec<crate::witness::submit::WitnessConfig>,
    /// `[publish]`, validated (`every` empty: off).
    pub publish: crate::witness::publish::PublishConfig,
    /// `[console]`.
    pub console: ConsoleConfig,
}

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Loads `path`, or the embedded defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (raw, shown) = match path {
            Some(p) => {
                let text =
                    crate::bounded::read_to_string(p, MAX_CONFIG_BYTES).map_err(|source| {
                        ConfigError::Read {
                            path: p.to_owned(),
                            source,
                        }
                    })?;
                let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
                (raw, p.to_owned())
            }
            None => (RawConfig::default(), PathBuf::from("<defaults>")),
        };
        Config::validate(raw, &shown)
    }

    pub fn validate(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
        let seal = SealPolicy {
            max_events: raw.ledger.seal_max_events,
            max_age: Duration::from_millis(raw.ledger.seal_max_age_ms),
        };
        seal.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            key: "ledger",
            reason: e.to_string(),
        })?;
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason: reason.to_owned(),
        };
        let h = &raw.http;
        if h.max_body_bytes == 0 || h.max_decoded_bytes < h.max_body_bytes {
            return Err(invalid(
                "http",
                "need 0 < max_body_bytes <= max_decoded_bytes",
            ));
        }
        if h.max_line_bytes == 0 || h.max_line_bytes > crate::event::limits::MAX_ENTRY_BYTES {
            return Err(invalid(
                "http.max_line_bytes",
                "must be between 1 and 1048576",
            ));
        }
        if h.max_events == 0 {
            return Err(invalid("http.max_events", "must be at least 1"));
        }
        let server = crate::net::http::RawServer {
            tls_cert: &h.tls_cert,
            tls_key: &h.tls_key,
            client_ca: &h.client_ca,
            max_connections: h.max_connections,
            max_connections_per_ip: h.max_connections_per_ip,
            header_read_timeout: &h.header_read_timeout,
            body_timeout: &h.body_timeout,
            idle_timeout: &h.idle_timeout,
            tls_handshake_timeout: &h.tls_handshake_timeout,
        }
        .validate()
        .map_err(|(key, reason)| invalid(key, &reason))?;
        raw.silence.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            key: "silence",
            reason: e.to_string(),
        })?;
        if let Err((key, reason)) = raw.rules.validate() {
            return Err(invalid(key, reason));
        }
        if raw.lookups.reload_seconds == 0 {
            return Err(invalid("lookups.reload_seconds", "must be at least 1"));
        }
        // Patterns are compiled here so a bad regex is reported at start-up
        // with its name; the key itself is only read by the service.
        crate::transforms::mask::Masker::new(&raw.masking, &[0u8; 32]).map_err(|e| {
            ConfigError::Invalid {
                path: path.to_owned(),
                key: "masking",
                reason: e.to_string(),
            }
        })?;
        if raw.ingest.queue == 0 || raw.ingest.queue > 65_536 {
            return Err(invalid("ingest.queue", "must be between 1 and 65536"));
        }
        if raw.ingest.dedupe_window == 0 || raw.ingest.dedupe_window > 50_000_000 {
            return Err(invalid(
                "ingest.dedupe_window",
                "must be between 1 and 50000000",
            ));
        }
        raw.smtp.validate().map_err(|e| match e {
            NotifyError::Config { key, reason } => ConfigError::Invalid {
                path: path.to_owned(),
                key: smtp_key(key),
                reason,
            },
            other => ConfigError::Invalid {
                path: path.to_owned(),
                key: "smtp",
                reason: other.to_string(),
            },
        })?;
        if let Err((key, reason)) = raw.oncall.validate() {
            return Err(invalid(key, &reason));
        }
        let mut response = raw.response;
        if let Err((key, reason)) = response.validate() {
            return Err(invalid(key, &reason));
        }
        if let Err((key, reason)) = raw.auth.validate() {
            return Err(invalid(key, reason));
        }
        if raw.witnesses.len() > crate::witness::submit::MAX_WITNESSES {
            return Err(invalid("witness", "at most 16 [[witness]] entries"));
        }
        for w in &raw.witnesses {
            w.validate()
                .map_err(|(key, reason)| invalid(key, &reason))?;
        }
        raw.publish
            .validate()
            .map_err(|(key, reason)| invalid(key, &reason))?;
        let syslog = raw.syslog.validate().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            key: e.key,
            reason: e.reason,
        })?;
        Ok(Config {
            data_dir: raw.data_dir,
            key_file: raw.ledger.key_file,
            compress: raw.ledger.compress,
            encryption_key_file: raw.ledger.encryption_key_file,
            seal,
            http: HttpConfig {
                listen: h.listen,
                limits: HttpLimits {
                    max_body_bytes: h.max_body_bytes,
                    max_decoded_bytes: h.max_decoded_bytes,
                    max_line_bytes: h.max_line_bytes,
                    max_events: h.max_events,
                },
                rate: crate::auth::gate::RateLimits {
                    requests_per_minute: h.requests_per_minute,
                    ingest_requests_per_second: h.ingest_requests_per_second,
                    reauth_within: raw.auth.reauth_within,
                },
                server,
            },
            ingest: raw.ingest,
            silence: raw.silence,
            syslog,
            lookups: raw.lookups,
            masking: raw.masking,
            rules: raw.rules,
            smtp: raw.smtp,
            oncall: raw.oncall,
            response,
            auth: raw.auth,
            witnesses: raw.witnesses,
            publish: raw.publish,
            console: raw.console,
        })
    }
}

/// `smtp.<key>` for a key named by `SmtpConfig::validate`.
fn smtp_key(key: &str) -> &'static str {
    match key {
        "host" => "smtp.host",
        "port" => "smtp.port",
        "from" => "smtp.from",
        "username" => "smtp.username",
        "password" => "smtp.password",
        "timeout" => "smtp.timeout",
        "retries" => "smtp.retries",
        "retry_backoff" => "smtp.retry_backoff",
        "max_backoff" => "smtp.max_backoff",
        "retry_for" => "smtp.retry_for",
        "ca_file" => "smtp.ca_file",
        _ => "smtp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t".into(),
            message: e.to_string(),
        })?;
        Config::validate(raw, Path::new("t"))
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.key_file, PathBuf::from("keys/signing.key"));
        assert_eq!(c.seal.max_events, 16_384);
        assert_eq!(c.seal.max_age, Duration::from_millis(1000));
        assert!(c.compress);
        assert_eq!(c.rules.dir, PathBuf::from("rules"));
        assert_eq!(c.rules.suppression, Duration::from_secs(3600));
        assert_eq!(c.rules.replay_window, None);
    }

    #[test]
    fn rules_section_parses_durations() {
        let c = parse("[rules]\ndir = \"r\"\nallowed_lateness = \"500ms\"\nsuppression = \"10m\"\nreplay_window = \"1h\"\n").unwrap();
        assert_eq!(c.rules.dir, PathBuf::from("r"));
        assert_eq!(c.rules.allowed_lateness, Duration::from_millis(500));
        assert_eq!(c.rules.suppression, Duration::from_secs(600));
        assert_eq!(c.rules.replay_window, Some(Duration::from_secs(3600)));
        assert!(matches!(
            parse("[rules]\nreload_seconds = 0"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse("[rules]\nsuppression = \"soon\""),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn oncall_levels_and_response_parse_and_validate() {
        let c = parse(
            "[http]\nlisten = \"127.0.0.1:9000\"\n[response]\ngroup_wait = \"200ms\"\n\
             [[oncall.levels]]\nname = \"primary\"\nemails = [\"a@x.org\"]\nack_timeout = \"2s\"\n\
             [[oncall.levels]]\nname = \"secondary\"\nwebhook = \"http://127.0.0.1:1/h\"\nwebhook_secret = \"k\"\n",
        )
        .unwrap();
        assert_eq!(c.oncall.levels.len(), 2);
        assert_eq!(c.oncall.levels[0].ack_timeout, Duration::from_secs(2));
        assert_eq!(c.oncall.levels[1].ack_timeout, Duration::from_secs(900));
        assert_eq!(c.response.group_wait, Duration::from_millis(200));
        assert_eq!(c.response.public_url, "");
        let e = parse("[[oncall.levels]]\nname = \"a\"\n[[oncall.levels]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("oncall.levels.name: duplicate level"),
            "{e}"
        );
        let e = parse("[[oncall.levels]]\nname = \"a\"\nemails = [\"nobody\"]\n").unwrap_err();
        assert!(e.to_string().contains("is not an email address"), "{e}");
        assert!(matches!(
            parse("[response]\ngroup_interval = \"0s\"\n"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse("[[oncall.levels]]\nname = \"a\"\npager = 1\n"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn smtp_section_is_validated_with_its_key() {
        let c = parse("[smtp]\nhost = \"mail.example.org\"\nport = 587\nstarttls = \"required\"\nusername = \"u\"\npassword = \"p\"\nfrom = \"Sealtrail <alerts@example.org>\"\ntimeout = \"5s\"\nretries = 2\n").unwrap();
        assert_eq!(c.smtp.port, 587);
        assert_eq!(c.smtp.retry_policy().attempts, 3);
        assert_eq!(parse("").unwrap().smtp.port, 25);
        match parse("[smtp]\nport = 0") {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "smtp.port"),
            other => panic!("{other:?}"),
        }
        match parse("[smtp]\nca_file = \"/nonexistent.pem\"") {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "smtp"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("[smtp]\nstarttls = \"maybe\""),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn http_listener_settings_parse_and_validate() {
        let d = parse("").unwrap().http.server;
        assert!(d.tls.is_none());
        assert_eq!((d.max_connections, d.max_connections_per_ip), (1024, 64));
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.body_timeout, Duration::from_secs(60));
        assert_eq!(d.idle_timeout, Duration::from_secs(60));
        assert_eq!(d.tls_handshake_timeout, Duration::from_secs(10));
        let c = parse(
            "[http]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nclient_ca = \"ca.pem\"\n\
             max_connections_per_ip = 4\nbody_timeout = \"2s\"\n",
        )
        .unwrap()
        .http
        .server;
        let tls = c.tls.unwrap();
        assert_eq!(
            tls.client,
            crate::tls::ClientAuth::Optional(PathBuf::from("ca.pem"))
        );
        assert_eq!(c.max_connections_per_ip, 4);
        assert_eq!(c.body_timeout, Duration::from_secs(2));
        assert!(
            parse("[http]\ntls_cert = \"\"\ntls_key = \"\"\n")
                .unwrap()
                .http
                .server
                .tls
                .is_none()
        );
        for (bad, key) in [
            ("tls_cert = \"c.pem\"", "http.tls_cert"),
            ("client_ca = \"ca.pem\"", "http.client_ca"),
            ("max_connections = 0", "http.max_connections"),
            ("max_connections_per_ip = 0", "http.max_connections_per_ip"),
            ("header_read_timeout = \"10\"", "http.header_read_timeout"),
            ("idle_timeout = \"2h\"", "http.idle_timeout"),
        ] {
            match parse(&format!("[http]\n{bad}\n")) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn auth_section_parses_durations_and_is_validated() {
        let c = parse("").unwrap();
        assert_eq!(c.auth.session_idle, Duration::from_secs(900));
        assert_eq!(c.auth.session_max, Duration::from_secs(12 * 3600));
        assert_eq!(c.auth.lockout_failures, 5);
        let c = parse(
            "[auth]\nsession_idle = \"2s\"\nsession_max = \"1h\"\nlockout_duration = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.session_idle, Duration::from_secs(2));
        assert_eq!(c.auth.lockout_duration, Duration::from_secs(300));
        match parse("[auth]\nsession_idle = \"2h\"\nsession_max = \"1h\"\n") {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "auth.session_max"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("[auth]\nsession_idle = \"0s\"\n"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse("[auth]\nidle = \"1m\"\n"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn overrides_apply() {
        let c = parse("data_dir = \"/x\"\n[ledger]\nseal_max_events = 5\nseal_max_age_ms = 20\n")
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.seal.max_events, 5);
        assert_eq!(c.seal.max_age, Duration::from_millis(20));
        assert!(!parse("[ledger]\ncompress = false\n").unwrap().compress);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(matches!(parse("bogus = 1"), Err(ConfigError::Parse { .. })));
        assert!(matches!(
            parse("[ledger]\nseal_every = 1"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            parse("[ledger]\nseal_max_events = 0"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse("[ledger]\nseal_max_age_ms = 0"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse("[ledger]\nseal_max_events = \"many\""),
            Err(ConfigError::Parse { .. })
        ));
    }
}
