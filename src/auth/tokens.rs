//! API tokens: random, shown once, stored only as a SHA-256 hash, with
//! optional expiry; created, listed and revoked by `sealtrail token ...`
//! (also while the service runs: it reloads `auth/tokens.json` when the
//! file changes).
//!
//! A token is `st_` + 43 characters of base64url (256 random bits), so a
//! plain SHA-256 is enough to store it: there is nothing to guess, unlike
//! a password.

use super::journal::{self, Change, DirLock, StoreError};
use super::{Principal, PrincipalKind, RoleSet};
use crate::event::Timestamp;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// At most this many tokens (revoked ones included) in a store.
pub const MAX_TOKENS: usize = 10_000;
const TOKEN_PREFIX: &str = "st_";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub name: String,
    pub roles: RoleSet,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub revoked: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    version: u32,
    tokens: Vec<TokenRecord>,
}

pub fn tokens_path(data: &Path) -> PathBuf {
    super::auth_dir(data).join("tokens.json")
}

fn load_file(path: &Path) -> Result<TokenFile, StoreError> {
    let Some(bytes) = journal::read_bounded(path)? else {
        return Ok(TokenFile {
            version: 1,
            tokens: Vec::new(),
        });
    };
    let file: TokenFile = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if file.version != 1 {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            message: format!("unknown version {}", file.version),
        });
    }
    if file.tokens.len() > MAX_TOKENS {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            message: format!("more than {MAX_TOKENS} tokens"),
        });
    }
    Ok(file)
}

fn save_file(path: &Path, file: &TokenFile) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| StoreError::Invalid(format!("tokens file: {e}")))?;
    journal::write_atomic(path, &bytes)
}

/// Token, user and key names: 1-64 of `a-z A-Z 0-9 . _ - @`, starting
/// with a letter or digit (they appear in logs, events and file names).
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "`{}`: a name is 1-64 letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit",
            name.chars().take(70).collect::<String>()
        )))
    }
}

fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token that was just created: `secret` is shown once and never stored.
pub struct Created {
    pub record: TokenRecord,
    pub secret: String,
}

/// Creates a token (`sealtrail token create`). The name defaults to
/// `token-` and 8 random hex digits.
pub fn create(
    data: &Path,
    name: Option<&str>,
    roles: RoleSet,
    expires_in: Option<Duration>,
) -> Result<Created, StoreError> {
    if roles.is_empty() {
        return Err(StoreError::Invalid(
            "a token needs at least one role".into(),
        ));
    }
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let name = match name {
        Some(n) => n.to_owned(),
        None => format!("token-{}", &hash_hex(&secret)[..8]),
    };
    check_name(&name)?;
    let now = Timestamp::now();
    let expires = match expires_in {
        None => None,
        Some(d) => {
            let ms = i64::try_from(d.as_millis())
                .ok()
                .and_then(|ms| now.unix_ms().checked_add(ms))
                .and_then(|ms| Timestamp::from_unix_ms(ms).ok())
                .ok_or_else(|| StoreError::Invalid("the expiry is too far away".into()))?;
            Some(ms.to_string())
        }
    };
    let record = TokenRecord {
        name: name.clone(),
        roles,
        hash: hash_hex(&secret),
        created: now.to_string(),
        expires: expires.clone(),
        revoked: None,
    };
    let dir = super::auth_dir(data);
    let _lock = DirLock::acquire(&dir)?;
    let path = tokens_path(data);
    let mut file = load_file(&path)?;
    if file.tokens.iter().any(|t| t.name == name) {
        return Err(StoreError::Invalid(format!(
            "a token named `{name}` exists already (names are never reused, revoked ones included)"
        )));
    }
    if file.tokens.len() >= MAX_TOKENS {
        return Err(StoreError::Invalid(format!(
            "the store holds {MAX_TOKENS} tokens already"
        )));
    }
    file.tokens.push(record.clone());
    save_file(&path, &file)?;
    journal::append(
        &dir,
        Change {
            seq: 0,
            time: now.to_string(),
            op: "token_create".into(),
            subject: name,
            roles: roles.names().into_iter().map(str::to_owned).collect(),
            expires,
            by: journal::os_user(),
        },
    )?;
    Ok(Created { record, secret })
}

/// Every token (`sealtrail token list`), revoked and expired ones included.
pub fn list(data: &Path) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(load_file(&tokens_path(data))?.tokens)
}

/// Revokes a token by name (`sealtrail token revoke`); the service stops
/// taking it within a second.
pub fn revoke(data: &Path, name: &str) -> Result<TokenRecord, StoreError> {
    let dir = super::auth_dir(data);
    let _lock = DirLock::acquire(&dir)?;
    let path = tokens_path(data);
    let mut file = load_file(&path)?;
    let now = Timestamp::now().to_string();
    let record = {
        let t = file
            .tokens
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| StoreError::Invalid(format!("no token named `{name}`")))?;
        if t.revoked.is_some() {
            return Err(StoreError::Invalid(format!("`{name}` is revoked already")));
        }
        t.revoked = Some(now.clone());
        t.clone()
    };
    save_file(&path, &file)?;
    journal::append(
        &dir,
        Change {
            seq: 0,
            time: now,
            op: "token_revoke".into(),
            subject: name.to_owned(),
            roles: Vec::new(),
            expires: None,
            by: journal::os_user(),
        },
    )?;
    Ok(record)
}

/// What a presented token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Principal),
    /// Not a token of this store (or not a token at all).
    Unknown,
    Expired(String),
    Revoked(String),
}

#[derive(Debug)]
struct Live {
    name: String,
    roles: RoleSet,
    created_ms: i64,
    expires_ms: Option<i64>,
    revoked: bool,
}

/// The tokens the running service accepts, reloaded when the file changes.
pub struct Tokens {
    path: PathBuf,
    table: RwLock<Arc<Table>>,
}

#[derive(Default)]
struct Table {
    /// File identity when loaded: (modified, length, inode).
    stamp: Option<(std::time::SystemTime, u64, u64)>,
    by_hash: HashMap<[u8; 32], Live>,
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn parse_ms(s: &Option<String>) -> Option<i64> {
    s.as_deref()
        .and_then(|t| Timestamp::parse(t).ok())
        .map(|t| t.unix_ms())
}

impl Tokens {
    /// Loads `DATA/auth/tokens.json` (missing: no tokens).
    pub fn open(data: &Path) -> Result<Tokens, StoreError> {
        let tokens = Tokens {
            path: tokens_path(data),
            table: RwLock::new(Arc::new(Table::default())),
        };
        tokens.reload()?;
        Ok(tokens)
    }

    /// Re-reads the file if it changed; a broken file keeps the tokens in
    /// use (and the error is returned for the caller to log). Blocking I/O.
    pub fn reload(&self) -> Result<bool, StoreError> {
        let now = stamp(&self.path);
        if self.current().stamp == now && now.is_some() {
            return Ok(false);
        }
        let file = load_file(&self.path)?;
        let mut by_hash = HashMap::with_capacity(file.tokens.len());
        for t in file.tokens {
            let mut key = [0u8; 32];
            if hex::decode_to_slice(&t.hash, &mut key).is_err() {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    message: format!("token `{}`: the hash is not 64 hex digits", t.name),
                });
            }
            by_hash.insert(
                key,
                Live {
                    created_ms: parse_ms(&Some(t.created.clone())).unwrap_or(0),
                    expires_ms: parse_ms(&t.expires),
                    revoked: t.revoked.is_some(),
                    name: t.name,
                    roles: t.roles,
                },
            );
        }
        let table = Arc::new(Table {
            stamp: now,
            by_hash,
        });
        match self.table.write() {
            Ok(mut g) => *g = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
        Ok(true)
    }

    fn current(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Checks a presented bearer token at `now_ms`.
    pub fn check(&self, presented: &str, now_ms: i64) -> TokenCheck {
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
            return TokenCheck::Unknown;
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let table = self.current();
        let Some(live) = table.by_hash.get(&digest) else {
            return TokenCheck::Unknown;
        };
        if live.revoked {
            return TokenCheck::Revoked(live.name.clone());
        }
        if live.expires_ms.is_some_and(|e| now_ms >= e) {
            return TokenCheck::Expired(live.name.clone());
        }
        TokenCheck::Valid(Principal {
            name: live.name.clone(),
            kind: PrincipalKind::Token,
            roles: live.roles,
            authenticated_at_ms: live.created_ms,
        })
    }

    /// How many tokens the service knows (revoked ones included).
    pub fn len(&self) -> usize {
        self.current().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn a_token_is_shown_once_stored_as_a_hash_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let c = create(data, Some("ci-sender"), RoleSet::of(&[Role::Ingest]), None).unwrap();
        assert!(c.secret.starts_with("st_") && c.secret.len() == 46);
        let stored = std::fs::read_to_string(tokens_path(data)).unwrap();
        assert!(
            !stored.contains(&c.secret),
            "the secret itself is never stored"
        );
        assert!(stored.contains(&c.record.hash));

        let tokens = Tokens::open(data).unwrap();
        let now = Timestamp::now().unix_ms();
        match tokens.check(&c.secret, now) {
            TokenCheck::Valid(p) => {
                assert_eq!(p.qualified_name(), "token:ci-sender");
                assert!(p.has(Role::Ingest) && !p.has(Role::Analyst));
            }
            other => panic!("{other:?}"),
        }
        // One character off, or another prefix, is unknown.
        let mut wrong = c.secret.clone();
        // A different last character (the random one may already be 'A').
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(tokens.check(&wrong, now), TokenCheck::Unknown);
        assert_eq!(tokens.check("Basic abc", now), TokenCheck::Unknown);

        revoke(data, "ci-sender").unwrap();
        assert!(tokens.reload().unwrap());
        assert_eq!(
            tokens.check(&c.secret, now),
            TokenCheck::Revoked("ci-sender".into())
        );
        assert!(revoke(data, "ci-sender").is_err(), "revoked twice");
        assert!(
            create(data, Some("ci-sender"), RoleSet::of(&[Role::Ingest]), None).is_err(),
            "names are never reused"
        );
        let changes = journal::read_all(&crate::auth::auth_dir(data)).unwrap();
        let ops: Vec<_> = changes.iter().map(|c| c.op.as_str()).collect();
        assert_eq!(ops, ["token_create", "token_revoke"]);
    }

    #[test]
    fn expired_tokens_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let c = create(
            data,
            Some("short"),
            RoleSet::of(&[Role::Analyst]),
            Some(Duration::from_secs(60)),
        )
        .unwrap();
        let tokens = Tokens::open(data).unwrap();
        let now = Timestamp::now().unix_ms();
        assert!(matches!(tokens.check(&c.secret, now), TokenCheck::Valid(_)));
        assert_eq!(
            tokens.check(&c.secret, now + 61_000),
            TokenCheck::Expired("short".into())
        );
        for bad in ["", "-x", "a b", "x/../y", &"n".repeat(65)] {
            assert!(create(data, Some(bad), RoleSet::of(&[Role::Ingest]), None).is_err());
        }
        assert!(create(data, None, RoleSet::EMPTY, None).is_err());
    }

    #[test]
    fn a_broken_file_keeps_the_tokens_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let c = create(data, Some("a"), RoleSet::of(&[Role::Admin]), None).unwrap();
        let tokens = Tokens::open(data).unwrap();
        std::fs::write(tokens_path(data), b"{ not json").unwrap();
        assert!(tokens.reload().is_err());
        let now = Timestamp::now().unix_ms();
        assert!(matches!(tokens.check(&c.secret, now), TokenCheck::Valid(_)));
    }
}
