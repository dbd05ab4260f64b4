//! `sealtrail-verify`: everything an auditor needs to check a sealtrail
//! ledger, an inclusion or consistency proof, or an evidence bundle, with
//! only the log's public key. `docs/LEDGER.md` is the format; each module
//! names the section it implements. Read in this order:
//!
//! - [`hash`]: RFC 6962 leaf/node hashes and tree roots (§2).
//! - [`merkle`]: RFC 9162 inclusion and consistency proof verification (§2).
//! - [`record`]: the segment record, the log tree's leaf (§3).
//! - [`note`]: signed notes, checkpoints, vkeys, witness cosignatures (§5).
//! - [`json`]: the one strict JSON rule for every JSON artifact.
//! - [`time`]: the event time of a stored entry (§4.1).
//! - [`atrest`]: unwrapping data keys and opening encrypted frames (§4.9).
//! - [`segment`]: segment files of formats 1, 2 and 3 (§4).
//! - [`dir`]: verifying a whole data directory (§9).
//! - [`proof`]: inclusion and consistency proof documents (§7).
//! - [`tar`] + [`bundle`]: evidence bundles (§11).
//! - [`keys`] + [`witnessed`]: key history and the witness policy, used by `dir`.
//! - [`verified`]: `Verified<T>`, which only these checks construct.
//!
//! No I/O beyond reading files, no async runtime, no unsafe code. Builds
//! for `wasm32-unknown-unknown` without the default `native-zstd` feature.

pub mod atrest;
pub mod bundle;
pub mod dir;
pub mod hash;
pub mod json;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod record;
pub mod segment;
pub mod tar;
pub mod time;
pub mod verified;
pub mod witnessed;

pub use dir::{Progress, VerifyOptions, VerifyReport, verify_dir};
pub use note::NoteVerifier;
pub use verified::Verified;
pub use witnessed::WitnessPolicy;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses exactly `2 * N` lowercase hex digits.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}
