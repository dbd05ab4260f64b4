//! `[[oncall.levels]]` and `[response]`: who is paged, in which order, and
//! how alerts become notifications.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::pipeline::silence::duration_text;

/// `[oncall]`: the escalation ladder, first entry paged first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OncallConfig {
    pub levels: Vec<OncallLevel>,
}

/// One `[[oncall.levels]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OncallLevel {
    /// Unique; playbooks and ack links name levels by it.
    pub name: String,
    pub emails: Vec<String>,
    /// URL the level's webhook steps POST to ("" = none).
    pub webhook: String,
    /// HMAC-SHA-256 key of the webhook signature ("" = unsigned).
    pub webhook_secret: String,
    /// Unacknowledged this long after it was notified, the incident
    /// escalates to the next level (the last level is re-notified).
    #[serde(with = "duration_text")]
    pub ack_timeout: Duration,
}

impl Default for OncallLevel {
    fn default() -> Self {
        OncallLevel {
            name: String::new(),
            emails: Vec::new(),
            webhook: String::new(),
            webhook_secret: String::new(),
            ack_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// `[response]`: incidents, grouping, acknowledgement links.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Run playbooks (false: alerts are only recorded).
    pub enabled: bool,
    /// Base of the acknowledgement links in emails; default
    /// `http://<http.listen>`.
    pub public_url: String,
    /// The first notification of an incident waits this long to collect
    /// the rest of a burst.
    #[serde(with = "duration_text")]
    pub group_wait: Duration,
    /// Further alerts of an open incident: at most one update notification
    /// per this interval.
    #[serde(with = "duration_text")]
    pub group_interval: Duration,
    /// How long an acknowledgement link stays valid.
    #[serde(with = "duration_text")]
    pub token_ttl: Duration,
    /// How much of the ledger (by event time) is replayed on start to
    /// rebuild incidents, silences and used links.
    #[serde(with = "duration_text")]
    pub replay_window: Duration,
    /// Open incidents kept; past this, new groups join one overflow
    /// incident per playbook (a storm of distinct groups still pages once).
    pub max_open_incidents: usize,
    /// Notification rounds sent at the same time.
    pub max_concurrent_sends: usize,
    /// Webhook retries (email retries are `[smtp] retries`).
    pub webhook_retries: u32,
    #[serde(with = "duration_text")]
    pub webhook_timeout: Duration,
    /// Transient webhook failures are retried past `webhook_retries` until
    /// this long after the first attempt (as `[smtp] retry_for`; "0s": off).
    #[serde(with = "duration_text")]
    pub webhook_retry_for: Duration,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            public_url: String::new(),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            token_ttl: Duration::from_secs(86_400),
            replay_window: Duration::from_secs(30 * 86_400),
            max_open_incidents: 10_000,
            max_concurrent_sends: 16,
            webhook_retries: 3,
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_for: Duration::from_secs(3600),
        }
    }
}

/// `(key, reason)` of the first invalid setting.
pub type Invalid = (&'static str, String);

impl ResponseConfig {
    /// Validates; an empty `public_url` is filled in by the service from
    /// the address it actually listens on.
    pub fn validate(&mut self) -> Result<(), Invalid> {
        if !self.public_url.is_empty() {
            self.check_url()?;
        }
        self.check_rest()
    }

    /// `public_url` for `listen` when none is configured.
    pub fn fill_public_url(&mut self, listen: SocketAddr) {
        if self.public_url.is_empty() {
            self.public_url = format!("http://{listen}");
        }
    }

    fn check_url(&mut self) -> Result<(), Invalid> {
        let u = self.public_url.trim_end_matches('/').to_owned();
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || u.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err((
                "response.public_url",
                "must be an http:// or https:// URL".into(),
            ));
        }
        self.public_url = u;
        Ok(())
    }

    fn check_rest(&self) -> Result<(), Invalid> {
        if self.group_wait > Duration::from_secs(3600) {
            return Err(("response.group_wait", "must be at most 1h".into()));
        }
        if self.group_interval.is_zero() || self.group_interval > Duration::from_secs(86_400) {
            return Err((
                "response.group_interval",
                "must be between 1ms and 1d".into(),
            ));
        }
        if self.token_ttl < Duration::from_secs(1)
            || self.token_ttl > Duration::from_secs(30 * 86_400)
        {
            return Err(("response.token_ttl", "must be between 1s and 30d".into()));
        }
        if self.replay_window < Duration::from_secs(60)
            || self.replay_window > Duration::from_secs(366 * 86_400)
        {
            return Err((
                "response.replay_window",
                "must be between 1m and 366d".into(),
            ));
        }
        if self.max_open_incidents == 0 || self.max_open_incidents > 1_000_000 {
            return Err((
                "response.max_open_incidents",
                "must be between 1 and 1000000".into(),
            ));
        }
        if self.max_concurrent_sends == 0 || self.max_concurrent_sends > 1024 {
            return Err((
                "response.max_concurrent_sends",
                "must be between 1 and 1024".into(),
            ));
        }
        if self.webhook_retries > 20 {
            return Err(("response.webhook_retries", "must be at most 20".into()));
        }
        if self.webhook_timeout.is_zero() {
            return Err(("response.webhook_timeout", "must be positive".into()));
        }
        if self.webhook_retry_for > Duration::from_secs(7 * 86_400) {
            return Err(("response.webhook_retry_for", "must be at most 7d".into()));
        }
        Ok(())
    }
}

/// Plausible email address: one `@`, no spaces or control characters, no
/// header-breaking characters.
pub fn valid_address(a: &str) -> bool {
    let mut parts = a.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 254
        && !a.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
}

pub fn valid_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() <= 2048
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Level names: what playbooks and ack links may carry.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl OncallConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut seen = std::collections::HashSet::new();
        if self.levels.len() > 32 {
            return Err(("oncall.levels", "at most 32 levels".into()));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if !valid_name(&l.name) {
                return Err((
                    "oncall.levels.name",
                    format!(
                        "level {} : name {:?} must be 1-64 letters, digits, - or _",
                        i + 1,
                        l.name
                    ),
                ));
            }
            if l.name == "current" {
                return Err((
                    "oncall.levels.name",
                    "`current` is reserved (playbooks use it for the incident's level)".into(),
                ));
            }
            if !seen.insert(l.name.as_str()) {
                return Err((
                    "oncall.levels.name",
                    format!("duplicate level {:?}", l.name),
                ));
            }
            if let Some(bad) = l.emails.iter().find(|a| !valid_address(a)) {
                return Err((
                    "oncall.levels.emails",
                    format!("level {:?}: {bad:?} is not an email address", l.name),
                ));
            }
            if !l.webhook.is_empty() && !valid_url(&l.webhook) {
                return Err((
                    "oncall.levels.webhook",
                    format!("level {:?}: must be an http:// or https:// URL", l.name),
                ));
            }
            if l.ack_timeout < Duration::from_millis(100)
                || l.ack_timeout > Duration::from_secs(7 * 86_400)
            {
                return Err((
                    "oncall.levels.ack_timeout",
                    format!("level {:?}: must be between 100ms and 7d", l.name),
                ));
            }
        }
        Ok(())
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let mut r = ResponseConfig::default();
        r.validate().unwrap();
        r.fill_public_url("127.0.0.1:8080".parse().unwrap());
        assert_eq!(r.public_url, "http://127.0.0.1:8080");
        assert_eq!(r.group_wait, Duration::from_secs(30));
        r.public_url = "ftp://x".into();
        assert!(r.validate().is_err());
        r.public_url = "https://siem.example.org/".into();
        r.validate().unwrap();
        assert_eq!(r.public_url, "https://siem.example.org");
        let mut o = OncallConfig {
            levels: vec![OncallLevel {
                name: "primary".into(),
                emails: vec!["a@b.org".into()],
                ..OncallLevel::default()
            }],
        };
        o.validate().unwrap();
        o.levels.push(o.levels[0].clone());
        assert!(o.validate().unwrap_err().1.contains("duplicate"));
        o.levels[1].name = "second".into();
        o.levels[1].emails = vec!["not an address".into()];
        assert!(o.validate().unwrap_err().1.contains("not an email"));
        assert!(valid_address("x@y") && !valid_address("x@y@z") && !valid_address("a b@c"));
    }
}
