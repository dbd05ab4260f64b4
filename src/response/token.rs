//! Acknowledgement links: `{public_url}/v1/incidents/{id}/ack?token=T` (a `GET` shows a page that posts it back; the `POST` acknowledges).
//!
//! `T` = base64url(`incident.level.expires.nonce`) `.` base64url(HMAC-SHA-256
//! of those bytes), keyed by `DATA/state/ack-link.key` (32 random bytes,
//! created 0600 on first use; not the ledger signing key). The token names
//! the level it was sent to and expires; it is single-use because its use is
//! an `ack_token_used` event in the ledger, replayed into the set of used
//! nonces on start.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::transforms::mask::{MaskError, load_or_create_key};

/// Longest token accepted (bounds the work an invalid one costs).
const MAX_TOKEN_CHARS: usize = 512;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the acknowledgement link is malformed")]
    Malformed,
    #[error("the acknowledgement link's signature is invalid")]
    BadSignature,
    #[error("the acknowledgement link expired")]
    Expired,
    #[error("the acknowledgement link is for another incident")]
    WrongIncident,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::WrongIncident => "wrong_incident",
        }
    }
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckToken {
    pub incident: String,
    pub level: String,
    /// Unix seconds.
    pub expires: i64,
    /// 128 random bits, hex: the token's id in the ledger.
    pub nonce: String,
}

pub struct TokenKey(Vec<u8>);

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state").join("ack-link.key")
}

impl TokenKey {
    pub fn load_or_create(data_dir: &Path) -> Result<TokenKey, MaskError> {
        load_or_create_key(&key_path(data_dir)).map(TokenKey)
    }

    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> TokenKey {
        TokenKey(b.to_vec())
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the error case cannot happen.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(payload);
        mac
    }

    pub fn mint(&self, incident: &str, level: &str, expires: i64) -> String {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let payload = format!("{incident}.{level}.{expires}.{}", hex::encode(nonce));
        let sig = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(sig))
    }

    /// Checks the signature, the incident and the expiry (`now` in unix
    /// seconds). Single use is the caller's (it knows the used nonces).
    pub fn verify(&self, token: &str, incident: &str, now: i64) -> Result<AckToken, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let (p, s) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        self.mac(&payload)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let parts: Vec<&str> = text.split('.').collect();
        let [inc, level, expires, nonce] = parts[..] else {
            return Err(TokenError::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if inc != incident {
            return Err(TokenError::WrongIncident);
        }
        if now >= expires {
            return Err(TokenError::Expired);
        }
        Ok(AckToken {
            incident: inc.to_owned(),
            level: level.to_owned(),
            expires,
            nonce: nonce.to_owned(),
        })
    }
}

#[cold]
#[allow(clippy::panic)] // cannot happen: HMAC takes keys of any length
fn unreachable_hmac() -> ! {
    // Hmac::new_from_slice only fails for fixed-size-key MACs.
    panic!("HMAC-SHA-256 accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_expire_and_refuse_tampering() {
        let k = TokenKey::from_bytes(&[7; 32]);
        let t = k.mint("inc-1", "primary", 1000);
        let ok = k.verify(&t, "inc-1", 999).unwrap();
        assert_eq!((ok.level.as_str(), ok.expires), ("primary", 1000));
        assert_eq!(ok.nonce.len(), 32);
        assert_eq!(k.verify(&t, "inc-1", 1000), Err(TokenError::Expired));
        assert_eq!(k.verify(&t, "inc-2", 1), Err(TokenError::WrongIncident));
        let other = TokenKey::from_bytes(&[8; 32]);
        assert_eq!(other.verify(&t, "inc-1", 1), Err(TokenError::BadSignature));
        // A payload changed to another level keeps the old signature.
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!(
            "{}.{sig}",
            B64.encode(format!("inc-1.secondary.1000.{}", ok.nonce))
        );
        assert_eq!(k.verify(&forged, "inc-1", 1), Err(TokenError::BadSignature));
        assert_eq!(k.verify("garbage", "inc-1", 1), Err(TokenError::Malformed));
        assert_ne!(k.mint("inc-1", "primary", 1000), t, "nonces differ");
    }
}
