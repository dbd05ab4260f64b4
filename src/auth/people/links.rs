//! One-time sign-in links: the demo's stand-in for password and second
//! factor. A link names one person, is random (256 bits), lives ten
//! minutes and works once. Only the SHA-256 of its token is stored, in
//! `DATA/auth/sign-in-links.json` (0600), changed under the auth folder's
//! lock, so `sealtrail demo` (or another process) can mint a link that the
//! running service consumes.
//!
//! Links are off unless `[console] sign_in_links = true`; then
//! `GET /v1/session/link/{token}` exists at all.

use crate::auth::journal::{self, DirLock, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How long a minted link stays usable.
pub const LINK_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Unused links kept at most (the oldest are dropped).
const MAX_LINKS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Unknown, used already, or expired: the client is told no more.
    #[error("the sign-in link is not valid (unknown, used or expired)")]
    Refused,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    /// Hex SHA-256 of the token.
    hash: String,
    user: String,
    expires_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    links: Vec<Link>,
}

pub fn links_path(data: &Path) -> PathBuf {
    crate::auth::auth_dir(data).join("sign-in-links.json")
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn load(path: &Path) -> Result<LinkFile, StoreError> {
    match journal::read_bounded(path)? {
        None => Ok(LinkFile::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn save(path: &Path, file: &LinkFile) -> Result<(), StoreError> {
    let bytes =
        serde_json::to_vec(file).map_err(|e| StoreError::Invalid(format!("sign-in links: {e}")))?;
    journal::write_atomic(path, &bytes)
}

/// Mints a link for `user` at `now_ms`; the token (shown once).
pub fn mint(data: &Path, user: &str, now_ms: i64) -> Result<String, StoreError> {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    let token = B64URL.encode(raw);
    let _lock = DirLock::acquire(&crate::auth::auth_dir(data))?;
    let path = links_path(data);
    let mut file = load(&path)?;
    file.links.retain(|l| l.expires_ms > now_ms);
    if file.links.len() >= MAX_LINKS {
        let excess = file.links.len() + 1 - MAX_LINKS;
        file.links.drain(..excess);
    }
    file.links.push(Link {
        hash: hash(&token),
        user: user.to_owned(),
        expires_ms: now_ms.saturating_add(LINK_LIFETIME_MS),
    });
    save(&path, &file)?;
    Ok(token)
}

/// Consumes `token` at `now_ms`: the person it was minted for. A link works
/// once; an expired one is removed and refused.
pub fn consume(data: &Path, token: &str, now_ms: i64) -> Result<String, LinkError> {
    if token.is_empty() || token.len() > 128 {
        return Err(LinkError::Refused);
    }
    let wanted = hash(token);
    let _lock = DirLock::acquire(&crate::auth::auth_dir(data))?;
    let path = links_path(data);
    let mut file = load(&path)?;
    let found = file.links.iter().position(|l| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            l.hash.as_bytes(),
            wanted.as_bytes(),
        ))
    });
    let Some(i) = found else {
        return Err(LinkError::Refused);
    };
    let link = file.links.remove(i);
    file.links.retain(|l| l.expires_ms > now_ms);
    save(&path, &file)?;
    if link.expires_ms <= now_ms {
        return Err(LinkError::Refused);
    }
    Ok(link.user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_and_only_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let t = mint(dir.path(), "alice", 1_000).unwrap();
        let stored = std::fs::read_to_string(links_path(dir.path())).unwrap();
        assert!(!stored.contains(&t), "the token itself is not stored");
        assert_eq!(consume(dir.path(), &t, 2_000).unwrap(), "alice");
        assert!(matches!(
            consume(dir.path(), &t, 2_000),
            Err(LinkError::Refused)
        ));
        let t = mint(dir.path(), "bob", 1_000).unwrap();
        assert!(matches!(
            consume(dir.path(), &t, 1_000 + LINK_LIFETIME_MS),
            Err(LinkError::Refused)
        ));
        assert!(matches!(
            consume(dir.path(), "made-up", 1_000),
            Err(LinkError::Refused)
        ));
    }
}
