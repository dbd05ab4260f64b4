//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30 s
//! steps, what every authenticator app does by default. A code is taken
//! for the current step and one either side (clock drift), and only for a
//! step after the last one accepted for that user (no replay).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Secret length: 160 bits, as RFC 4226 recommends for SHA-1.
const SECRET_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP secret is not base32")]
    BadSecret,
}

/// A new random secret, base32 without padding.
pub fn new_secret() -> String {
    let mut raw = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut raw);
    BASE32_NOPAD.encode(&raw)
}

fn decode(secret_base32: &str) -> Result<Vec<u8>, TotpError> {
    let cleaned: String = secret_base32
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let key = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| TotpError::BadSecret)?;
    if key.is_empty() || key.len() > 128 {
        return Err(TotpError::BadSecret);
    }
    Ok(key)
}

fn hotp(key: &[u8], counter: u64) -> Result<String, TotpError> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).map_err(|_| TotpError::BadSecret)?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    Ok(format!(
        "{:0width$}",
        word % 10u32.pow(DIGITS),
        width = DIGITS as usize
    ))
}

/// The time step a Unix time falls in.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code for `unix_secs` (what an authenticator app shows then).
pub fn code(secret_base32: &str, unix_secs: i64) -> Result<String, TotpError> {
    let key = decode(secret_base32)?;
    hotp(&key, u64::try_from(step_of(unix_secs)).unwrap_or(0))
}

/// The step `presented` is the code of, among the steps around `unix_secs`
/// and after `last_step`; `None` if it is no such code.
pub fn matching_step(
    secret_base32: &str,
    presented: &str,
    unix_secs: i64,
    last_step: Option<i64>,
) -> Option<i64> {
    if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = decode(secret_base32).ok()?;
    let now = step_of(unix_secs);
    // Every candidate is computed and compared in constant time, so the
    // timing does not tell which step (if any) matched.
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let Ok(expected) = hotp(&key, counter) else {
            continue;
        };
        let equal: bool =
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes()).into();
        if equal && last_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app enrols from (as a QR code or
/// pasted).
pub fn enrolment_uri(user: &str, secret_base32: &str) -> String {
    format!(
        "otpauth://totp/sealtrail:{user}?secret={secret_base32}&issuer=sealtrail&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_sha1_vectors_last_six_digits() {
        for (t, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code(RFC_SECRET, t).unwrap(), expected, "T={t}");
        }
        // Lowercase and padded secrets as some tools print them.
        assert_eq!(
            code("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", 59).unwrap(),
            "287082"
        );
        assert!(code("not base32!", 59).is_err());
    }

    #[test]
    fn one_step_either_side_and_never_a_step_twice() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let now = 1_700_000_000;
        let step = step_of(now);
        let current = code(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &current, now, None), Some(step));
        let previous = code(&secret, now - 30).unwrap();
        assert_eq!(matching_step(&secret, &previous, now, None), Some(step - 1));
        let next = code(&secret, now + 30).unwrap();
        assert_eq!(matching_step(&secret, &next, now, None), Some(step + 1));
        let old = code(&secret, now - 90).unwrap();
        if old != current && old != previous && old != next {
            assert_eq!(matching_step(&secret, &old, now, None), None);
        }
        // Replay: the accepted step and any before it are refused.
        assert_eq!(matching_step(&secret, &current, now, Some(step)), None);
        assert_eq!(matching_step(&secret, &previous, now, Some(step)), None);
        assert_eq!(
            matching_step(&secret, &next, now, Some(step)),
            Some(step + 1)
        );
        assert_eq!(matching_step(&secret, "12345", now, None), None);
        assert_eq!(matching_step(&secret, "abcdef", now, None), None);
        let uri = enrolment_uri("alice", &secret);
        assert!(uri.starts_with("otpauth://totp/sealtrail:alice?secret="));
        assert!(uri.ends_with("&issuer=sealtrail&algorithm=SHA1&digits=6&period=30"));
    }
}
