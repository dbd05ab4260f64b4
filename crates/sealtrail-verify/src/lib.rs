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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses exactly `2 * N` lowercase hex digits.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
