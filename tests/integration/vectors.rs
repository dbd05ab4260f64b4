//! Conformance vectors (`docs/vectors/`, issue #14 item 5): small ledgers,
//! proofs and bundles, clean and altered, each with the verdict and error
//! kinds `sealtrail` must give. `regenerate_conformance_vectors` (ignored)
//! writes them from fixed keys and fixed events, byte for byte the same on
//! every run; the other tests check the CLI against them and that they are
//! still what the generator makes. Adding a vector is one line in
//! [`VECTORS`] (plus a function when no existing one fits).

use crate::util::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealtrail::event::{Category, Entry, Event, Outcome, Source, Timestamp, Via};
use sealtrail::ledger::bundle::{self, BundleQuery};
use sealtrail::ledger::compact::{Dictionary, compact_segment};
use sealtrail::ledger::cosignature::WitnessSigner;
use sealtrail::ledger::dicts::DictStore;
use sealtrail::ledger::key_history::{
    ENTRY_ATTR, Transition, TransitionRecord, crate_key, load_history, sign_transition,
    write_history,
};
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::{Ledger, LedgerEntry, LedgerPaths};
use sealtrail::ledger::note::{self, Checkpoint};
use sealtrail::ledger::proof::LedgerReader;
use sealtrail::ledger::segment::FrameReader;
use sealtrail::ledger::tree_store::TreeStore;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const NAME: &str = "vectors.example/log";
/// Fixed Ed25519 seeds: the log's key and a stranger's key with the same name.
const SEED: [u8; 32] = [0x11; 32];
const OTHER_SEED: [u8; 32] = [0x22; 32];
/// The key the log is rotated to (`dir-rotated` and the vectors built on it).
const ROTATED_SEED: [u8; 32] = [0x33; 32];
/// Two witnesses of the same name: the one that cosigned, and a stranger.
const WITNESS: &str = "vectors.example/witness";
const WITNESS_SEED: [u8; 32] = [0x44; 32];
const OTHER_WITNESS_SEED: [u8; 32] = [0x55; 32];
/// Fixed time of the cosignatures and of the logged key transition.
const FIXED_SECONDS: u64 = 1_764_547_200; // 2025-12-01T00:00:00Z
const EVENTS: u64 = 5;
const PER_SEGMENT: u64 = 2;
/// The event the proofs and the altered entries are about.
const PROVEN: u64 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Dir,
    Proof,
    Bundle,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Proof => "proof",
            Kind::Bundle => "bundle",
        }
    }
}

struct Vector {
    name: &'static str,
    kind: Kind,
    ok: bool,
    /// Error kinds `sealtrail` reports, as a set.
    kinds: &'static [&'static str],
    what: &'static str,
    make: fn(&Base, &Path),
    /// The trusted log key, relative to `docs/vectors/`.
    vkey: &'static str,
    /// `--witness-vkey` files and `--witness-quorum` (none: not given).
    witnesses: &'static [&'static str],
    quorum: Option<u64>,
    /// The verified event count a `dir` verifier must report, when given.
    events: Option<u64>,
}

impl Vector {
    const fn vkey(self, vkey: &'static str) -> Self {
        Vector { vkey, ..self }
    }
    const fn witnessed(self, witnesses: &'static [&'static str], quorum: u64) -> Self {
        Vector {
            witnesses,
            quorum: Some(quorum),
            ..self
        }
    }
    const fn events(self, n: u64) -> Self {
        Vector {
            events: Some(n),
            ..self
        }
    }
}

/// One line per vector.
#[rustfmt::skip]
const VECTORS: &[Vector] = &[
    v("dir-clean", Kind::Dir, true, &[], "5 events in 3 segments", dir_clean),
    v("dir-compacted-clean", Kind::Dir, true, &[], "segments compacted (version 2, dictionary, frame index 0x86)", dir_compacted),
    v("dir-entry-bit-flip", Kind::Dir, false, &["entry_corrupt"], "one bit of event 1 flipped (frame CRC fails)", dir_bit_flip),
    v("dir-deleted-segment", Kind::Dir, false, &["missing_segment", "checkpoint_mismatch"], "segment 1 deleted", dir_deleted_segment),
    v("dir-swapped-segments", Kind::Dir, false, &["misplaced", "sequence", "chain", "checkpoint_mismatch"], "segment files 0 and 1 swapped", dir_swapped),
    v("dir-truncated-resigned-other-key", Kind::Dir, false, &["checkpoint_signature"], "last segment removed, checkpoint re-signed by another key of the same name", dir_truncated_resigned),
    v("dir-checkpoint-other-key", Kind::Dir, false, &["checkpoint_signature"], "checkpoint of the same segments signed by another key", dir_checkpoint_other_key),
    v("dir-corrupt-footer", Kind::Dir, false, &["entry_corrupt", "checkpoint_mismatch"], "one bit of segment 0's block root flipped (footer CRC fails, so its record is unreadable)", dir_corrupt_footer),
    v("dir-edited-frame-index", Kind::Dir, false, &["index"], "compacted: a frame index value edited, footer CRC fixed", dir_edited_frame_index),
    v("dir-edited-dictionary", Kind::Dir, false, &["dictionary", "checkpoint_mismatch"], "compacted: one byte of the dictionary changed (segment 0 unreadable)", dir_edited_dictionary),
    v("dir-entry-duplicate-member", Kind::Dir, false, &["entry"], "event 3 has two `action` members (view, delete); sealed and signed", dir_entry_duplicate),
    v("dir-entry-bad-utf8", Kind::Dir, false, &["entry"], "event 3 holds a 0xFF byte; sealed and signed", dir_entry_bad_utf8),
    v("dir-entry-bom", Kind::Dir, false, &["entry"], "event 3 starts with a byte-order mark; sealed and signed", dir_entry_bom),
    v("dir-entry-trailing-data", Kind::Dir, false, &["entry"], "event 3 is followed by ` {}`; sealed and signed", dir_entry_trailing),
    v("dir-entry-year-1969", Kind::Dir, false, &["entry", "record"], "event 3's time is 1969-12-31T23:59:59Z; sealed and signed (the record's time range then disagrees too)", dir_entry_1969),
    v("proof-clean", Kind::Proof, true, &[], "inclusion proof of event 3", proof_clean),
    v("proof-tampered-entry", Kind::Proof, false, &["proof"], "one character of the proven entry changed", proof_tampered),
    v("proof-other-key", Kind::Proof, false, &["proof"], "a valid proof from a log signed by another key", proof_other_key),
    v("proof-duplicate-member", Kind::Proof, false, &["json"], "`index` twice (3, then 4)", proof_duplicate),
    v("proof-trailing-data", Kind::Proof, false, &["json"], "a second JSON value after the proof", proof_trailing),
    v("proof-bad-utf8", Kind::Proof, false, &["json"], "a 0xFF byte inside the entry string", proof_bad_utf8),
    v("proof-bom", Kind::Proof, false, &["json"], "starts with a byte-order mark", proof_bom),
    v("proof-float-index", Kind::Proof, false, &["format"], "`index` written as 3.0", proof_float),
    v("proof-consistency-clean", Kind::Proof, true, &[], "consistency proof from 1 segment to 3", proof_consistency),
    v("proof-consistency-wrong-old-root", Kind::Proof, false, &["proof"], "consistency proof whose old_root is another tree's", proof_consistency_wrong_root),
    v("proof-unknown-member", Kind::Proof, false, &["format"], "an extra member `note`", proof_unknown_member),
    v("bundle-clean", Kind::Bundle, true, &[], "events 1 and 3", bundle_clean),
    v("bundle-query-with-control-chars", Kind::Bundle, true, &[], "genuine; the signed query holds ESC, DEL, a C1 CSI and a bidi override (§11.2 escapes)", bundle_hostile_query),
    v("bundle-control-chars-in-member-name", Kind::Bundle, false, &["unexpected_member"], "a member named with terminal escape sequences", bundle_control_name),
    v("bundle-trailing-data", Kind::Bundle, false, &["trailing_data"], "bytes after the end-of-archive blocks", bundle_trailing),
    v("bundle-tampered-event", Kind::Bundle, false, &["event_proof", "event_digest"], "one character of event 3 changed", bundle_tampered),
    v("dir-forged-tail", Kind::Dir, false, &["unsigned_tail"], "2 segments (events 5..9) appended with another key behind the genuine checkpoint of size 3 (§9 crash window)", dir_forged_tail).events(5),
    v("dir-one-uncovered-segment", Kind::Dir, true, &[], "1 segment (events 5, 6) sealed beyond the checkpoint: the crash window, a warning; only 5 events verified", dir_one_uncovered).events(5),
    v("dir-rotated", Kind::Dir, true, &[], "5 events, key rotated (transition: event 5, alone in segment 3, S = 4), 4 events by the new key; checked from the first key", dir_rotated).events(10),
    v("dir-rotated-from-new-key", Kind::Dir, true, &[], "dir-rotated checked from the new key (trust starts at the rotation)", dir_rotated).vkey("keys/rotated.vkey").events(10),
    v("dir-rotated-unknown-key", Kind::Dir, false, &["unknown_key", "checkpoint_signature"], "dir-rotated checked with a key that is not in its history", dir_rotated).vkey("keys/other.vkey"),
    v("dir-rotated-forged-transition", Kind::Dir, false, &["forged_transition", "checkpoint_signature"], "dir-rotated with a second transition (new key -> a stranger's) signed by the stranger only (the whole history is then refused, and the new key's checkpoint does not verify with the first key)", dir_rotated_forged_transition),
    v("dir-rotated-history-removed", Kind::Dir, false, &["checkpoint_signature"], "dir-rotated without ledger/key-history.json: the new key's checkpoint is not the first key's", dir_rotated_history_removed),
    v("dir-rotated-retired-key", Kind::Dir, false, &["retired_key"], "dir-rotated whose checkpoint (size 6) is signed by the first key, retired at size 4", dir_rotated_retired_key),
    v("dir-rotated-rewritten-handoff", Kind::Dir, false, &["key_transition"], "dir-rotated whose history holds an old-key checkpoint of size 4 with another root (re-signed by the first key)", dir_rotated_rewritten_handoff),
    v("dir-rotated-moved-transition", Kind::Dir, false, &["key_transition_entry"], "dir-rotated whose transition, re-signed by both keys, names S = 5, I = 6 (segment 4 does not hold it alone)", dir_rotated_moved_transition),
    v("proof-rotated", Kind::Proof, true, &[], "inclusion proof of event 8 (after the rotation), with `key_history`; checked from the first key", proof_rotated),
    v("proof-rotated-without-history", Kind::Proof, false, &["proof"], "proof-rotated without its `key_history` member", proof_rotated_without_history),
    v("bundle-rotated-history-after-checkpoint", Kind::Bundle, false, &["member_order", "vkey", "checkpoint_signature"], "bundle-rotated with `key-history.json` moved after `checkpoint` (sealtrail then reads signing.vkey and checkpoint without the history)", bundle_rotated_history_late),
    v("bundle-rotated-without-history", Kind::Bundle, false, &["vkey", "checkpoint_signature", "manifest_signature", "event_proof"], "bundle-rotated without its `key-history.json` member", bundle_rotated_without_history),
    v("bundle-rotated-history-in-proof-lines", Kind::Bundle, false, &["event_line"], "bundle-rotated whose proof lines also carry `\"key_history\":[]`, bytes outside events-sha256 (§11.4)", bundle_rotated_history_in_lines),
    v("bundle-rotated", Kind::Bundle, true, &[], "events 1, 5 (the transition) and 8 of dir-rotated, with `key-history.json`; checked from the first key", bundle_rotated),
    v("dir-witnessed", Kind::Dir, true, &[], "dir-clean with ledger/checkpoint.witnessed cosigned by keys/witness.vkey (cosignature/v1)", dir_witnessed).witnessed(&["keys/witness.vkey"], 1).events(5),
    v("dir-witnessed-bad-cosignature", Kind::Dir, false, &["witness_quorum"], "dir-witnessed with one bit of the cosignature's Ed25519 signature flipped", dir_witnessed_bad_cosignature).witnessed(&["keys/witness.vkey"], 1),
    v("dir-witnessed-other-root", Kind::Dir, false, &["witness_mismatch"], "dir-clean with a cosigned checkpoint of size 3 whose root is not the log's (signed by the log key, cosigned)", dir_witnessed_other_root).witnessed(&["keys/witness.vkey"], 1),
    v("dir-witnessed-missing", Kind::Dir, false, &["witness_quorum"], "dir-clean (no ledger/checkpoint.witnessed) checked with a witness key", dir_clean).witnessed(&["keys/witness.vkey"], 1),
    v("dir-witnessed-other-witness", Kind::Dir, false, &["witness_quorum"], "dir-witnessed checked with another witness key of the same name", dir_witnessed).witnessed(&["keys/other-witness.vkey"], 1),
];

const fn v(
    name: &'static str,
    kind: Kind,
    ok: bool,
    kinds: &'static [&'static str],
    what: &'static str,
    make: fn(&Base, &Path),
) -> Vector {
    Vector {
        name,
        kind,
        ok,
        kinds,
        what,
        make,
        vkey: "keys/signing.vkey",
        witnesses: &[],
        quorum: None,
        events: None,
    }
}

// ---------------------------------------------------------------------------
// Fixed inputs

/// A PKCS#8 v1 PEM of a fixed seed (RFC 8410 §7).
fn pem(seed: &[u8; 32]) -> String {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        B64.encode(der)
    )
}

fn signer(seed: &[u8; 32]) -> NoteSigner {
    NoteSigner::from_pkcs8_pem(NAME, &pem(seed)).unwrap()
}

fn write_ledger(data: &Path, seed: &[u8; 32], entries: Vec<LedgerEntry>) {
    let (mut ledger, _) = Ledger::open(data, signer(seed), policy(PER_SEGMENT)).unwrap();
    ledger.append(&entries).unwrap();
    ledger.close().unwrap();
}

fn entries() -> Vec<LedgerEntry> {
    (0..EVENTS).map(entry).collect()
}

/// The clean ledger, built once per generation, and what is derived from it.
struct Base {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    compacted: PathBuf,
    other: PathBuf,
    /// `dir-rotated` with its derived files (`tree/`), for proofs and bundles.
    rotated: PathBuf,
    proof: String,
    bundle: Vec<u8>,
}

fn base() -> Base {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("clean");
    write_ledger(&data, &SEED, entries());
    let other = tmp.path().join("other");
    write_ledger(&other, &OTHER_SEED, entries());
    let compacted = tmp.path().join("compacted");
    write_ledger(&compacted, &SEED, entries());
    // A trained dictionary, as the compactor writes (zstd's dictionary
    // format, which the pure-Rust decoder of the verifier's browser build
    // needs), on fixed samples: training is deterministic.
    let samples: Vec<Vec<u8>> = (100..600).map(|i| entry(i).bytes).collect();
    let dict = Dictionary::train(&samples, 1024).unwrap();
    let paths = LedgerPaths::new(&compacted);
    let dicts = DictStore::new(&paths.dicts);
    for n in 0..EVENTS.div_ceil(PER_SEGMENT) {
        let seg = paths.segment(n, true);
        compact_segment(&seg, &paths.compacting(n), &dict, &dicts).unwrap();
    }
    let reader = LedgerReader::open(&data).unwrap();
    let proof =
        serde_json::to_string_pretty(&reader.inclusion_proof(PROVEN).unwrap()).unwrap() + "\n";
    let mut bundle = Vec::new();
    let query = BundleQuery {
        q: "actor.department:cardiology".into(),
        from: Some("2026-11-01T00:00:00Z".into()),
        to: None,
        requested_by: Some("auditor".into()),
        created: "2026-12-01T00:00:00Z".into(),
    };
    bundle::build_bundle(&reader, &signer(&SEED), &query, &[1, PROVEN], &mut bundle).unwrap();
    let rotated = tmp.path().join("rotated");
    write_rotated(&rotated);
    Base {
        _tmp: tmp,
        data,
        compacted,
        other,
        rotated,
        proof,
        bundle,
    }
}

/// Copies what a verifier reads: segments, dictionaries, checkpoint.
fn copy_ledger(from: &Path, to: &Path) {
    for sub in ["segments", "dicts"] {
        let dir = from.join("ledger").join(sub);
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        let target = to.join("ledger").join(sub);
        std::fs::create_dir_all(&target).unwrap();
        for e in list {
            let e = e.unwrap();
            let name = e.file_name();
            let name = name.to_str().unwrap();
            if name.ends_with(".seg") || name.ends_with(".zdict") {
                std::fs::copy(e.path(), target.join(name)).unwrap();
            }
        }
    }
    std::fs::copy(from.join("ledger/checkpoint"), to.join("ledger/checkpoint")).unwrap();
    for optional in ["key-history.json", "checkpoint.witnessed"] {
        let file = from.join("ledger").join(optional);
        if file.exists() {
            std::fs::copy(&file, to.join("ledger").join(optional)).unwrap();
        }
    }
}

fn seg(dir: &Path, n: u64) -> PathBuf {
    dir.join("ledger/segments").join(format!("{n:012}.seg"))
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

fn frame_offset(path: &Path, i: usize) -> usize {
    let mut r = FrameReader::open(path).unwrap();
    let mut off = 0;
    for _ in 0..=i {
        off = r.next_frame().unwrap().unwrap().offset;
    }
    off as usize
}

/// Footer position `F` and record length `R` of a sealed segment (§4.3, §4.4).
fn footer_at(bytes: &[u8]) -> (usize, usize) {
    let t = bytes.len() - 16;
    let f = u64::from_be_bytes(bytes[t..t + 8].try_into().unwrap()) as usize;
    let r = u16::from_be_bytes(bytes[f + 4..f + 6].try_into().unwrap()) as usize;
    (f, r)
}

/// Recomputes the footer CRC after an edit, so only the edit is detected.
fn fix_footer_crc(bytes: &mut [u8]) {
    let (f, _) = footer_at(bytes);
    let end = bytes.len() - 20;
    let crc = crc32c::crc32c(&bytes[f..end]);
    bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
}

// ---------------------------------------------------------------------------
// Data directories

fn dir_clean(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
}

fn dir_compacted(b: &Base, out: &Path) {
    copy_ledger(&b.compacted, out);
}

fn dir_bit_flip(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    let path = seg(out, 0);
    flip(&path, frame_offset(&path, 1) + 8 + 40);
}

fn dir_deleted_segment(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    std::fs::remove_file(seg(out, 1)).unwrap();
}

fn dir_swapped(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    let tmp = out.join("ledger/segments/swap");
    std::fs::rename(seg(out, 0), &tmp).unwrap();
    std::fs::rename(seg(out, 1), seg(out, 0)).unwrap();
    std::fs::rename(&tmp, seg(out, 1)).unwrap();
}

fn dir_truncated_resigned(_b: &Base, out: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    // The first two segments, byte for byte those of the clean log, signed
    // by someone else's key of the same name.
    write_ledger(&data, &OTHER_SEED, (0..4).map(entry).collect());
    copy_ledger(&data, out);
}

fn dir_checkpoint_other_key(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    std::fs::copy(
        b.other.join("ledger/checkpoint"),
        out.join("ledger/checkpoint"),
    )
    .unwrap();
}

fn dir_corrupt_footer(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    let path = seg(out, 0);
    let bytes = std::fs::read(&path).unwrap();
    let (f, r) = footer_at(&bytes);
    // First byte of block root 0: F + 11 + R + 8·B, B = 1.
    flip(&path, f + 11 + r + 8);
}

fn dir_edited_frame_index(b: &Base, out: &Path) {
    copy_ledger(&b.compacted, out);
    let path = seg(out, 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let (f, r) = footer_at(&bytes);
    assert_eq!(
        bytes[f + 6 + r],
        0x86,
        "compacted footers carry a frame index"
    );
    // Entry 1's offset in block 0 (B = 1): F + 11 + R + 40 + 4.
    let at = f + 11 + r + 40 + 4;
    let v = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) + 1;
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    fix_footer_crc(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

fn dir_edited_dictionary(b: &Base, out: &Path) {
    copy_ledger(&b.compacted, out);
    let dicts = out.join("ledger/dicts");
    let file = std::fs::read_dir(&dicts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    flip(&file, 10);
}

/// A ledger whose event 3 has `bytes`, sealed and signed as if genuine.
fn with_entry(out: &Path, edit: impl Fn(&str) -> Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let mut all = entries();
    let text = String::from_utf8(all[PROVEN as usize].bytes.clone()).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text.as_bytes(), "the edit did not apply");
    all[PROVEN as usize].bytes = edited;
    write_ledger(&data, &SEED, all);
    copy_ledger(&data, out);
}

fn dir_entry_duplicate(_b: &Base, out: &Path) {
    with_entry(out, |t| {
        t.replacen(
            "\"action\":\"view\"",
            "\"action\":\"view\",\"action\":\"delete\"",
            1,
        )
        .into_bytes()
    });
}

fn dir_entry_bad_utf8(_b: &Base, out: &Path) {
    with_entry(out, |t| {
        let mut bytes = t.as_bytes().to_vec();
        let at = t.find("cardiology").unwrap();
        bytes[at] = 0xff;
        bytes
    });
}

fn dir_entry_bom(_b: &Base, out: &Path) {
    with_entry(out, |t| format!("\u{feff}{t}").into_bytes());
}

fn dir_entry_trailing(_b: &Base, out: &Path) {
    with_entry(out, |t| format!("{t} {{}}").into_bytes());
}

fn dir_entry_1969(_b: &Base, out: &Path) {
    with_entry(out, |t| {
        let start = t.find("\"time\":\"").unwrap() + 8;
        let end = start + t[start..].find('"').unwrap();
        format!("{}1969-12-31T23:59:59Z{}", &t[..start], &t[end..]).into_bytes()
    });
}

/// Appends `n` events signed by a stranger's key behind the genuine
/// checkpoint, as tamper.rs `append_forged_tail` does (LEDGER.md §9).
fn forged_tail(b: &Base, out: &Path, n: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    copy_ledger(&b.data, &data);
    let genuine = std::fs::read(data.join("ledger/checkpoint")).unwrap();
    std::fs::remove_file(data.join("ledger/checkpoint")).unwrap();
    let (mut ledger, _) = Ledger::open(&data, signer(&OTHER_SEED), policy(PER_SEGMENT)).unwrap();
    let first = ledger.next_index();
    ledger
        .append(&(first..first + n).map(entry).collect::<Vec<_>>())
        .unwrap();
    ledger.close().unwrap();
    std::fs::write(data.join("ledger/checkpoint"), genuine).unwrap();
    copy_ledger(&data, out);
}

fn dir_forged_tail(b: &Base, out: &Path) {
    forged_tail(b, out, 2 * PER_SEGMENT);
}

fn dir_one_uncovered(b: &Base, out: &Path) {
    forged_tail(b, out, PER_SEGMENT);
}

/// The `admin/key_rotation` entry `key rotate` logs, at a fixed time.
fn rotation_entry(t: &Transition, note: &str) -> LedgerEntry {
    let at = Timestamp::from_unix_ms(FIXED_SECONDS as i64 * 1000).unwrap();
    let mut e = Event::new(at, Category::Admin, "key_rotation", Outcome::Success);
    e.source = Some(Source {
        system: "sealtrail".into(),
        host: None,
    });
    e.message = Some(format!(
        "signing key rotated from {} to {}: checkpoints after size {} are signed by the new key",
        hex::encode(t.old.key_id()),
        hex::encode(t.new.key_id()),
        t.size
    ));
    e.attrs = serde_json::json!({
        ENTRY_ATTR: note,
        "old_key_id": hex::encode(t.old.key_id()),
        "new_key_id": hex::encode(t.new.key_id()),
        "new_vkey": t.new.to_vkey(),
    })
    .as_object()
    .cloned();
    let entry = Entry {
        received: at,
        via: Via {
            kind: "cli".into(),
            peer: None,
            principal: None,
        },
        event: e,
        enriched: None,
    };
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

/// 5 events by the first key, the rotation as `key rotate` makes it (but
/// at a fixed time, so the bytes are stable), 4 events by the new key.
fn write_rotated(data: &Path) {
    write_ledger(data, &SEED, entries());
    let (old, new) = (signer(&SEED), signer(&ROTATED_SEED));
    let (mut ledger, _) = Ledger::open(data, signer(&SEED), policy(PER_SEGMENT)).unwrap();
    ledger.seal().unwrap();
    let t = Transition {
        origin: NAME.into(),
        size: ledger.sealed_segments() + 1,
        index: ledger.next_index(),
        old: crate_key(&old.verifier()).unwrap(),
        new: crate_key(&new.verifier()).unwrap(),
    };
    let note = sign_transition(&t, &old, &new).unwrap();
    let logged = rotation_entry(&t, &note);
    let at = ledger.append(std::slice::from_ref(&logged)).unwrap().start;
    ledger.seal().unwrap();
    assert_eq!((at, ledger.sealed_segments()), (t.index, t.size));
    let ledger_dir = ledger.paths().ledger.clone();
    let mut history = load_history(&ledger_dir).unwrap();
    history.transitions.push(TransitionRecord {
        note,
        checkpoint: ledger.checkpoint().to_owned(),
        entry: String::from_utf8(logged.bytes).unwrap(),
    });
    write_history(&ledger_dir, &history).unwrap();
    ledger.close().unwrap();
    write_ledger(
        data,
        &ROTATED_SEED,
        (EVENTS..EVENTS + 4).map(entry).collect(),
    );
}

fn dir_rotated(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
}

fn dir_rotated_forged_transition(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
    let ledger = out.join("ledger");
    let mut h = load_history(&ledger).unwrap();
    // The stranger signs "new key -> stranger" with their own key only.
    let stranger = signer(&OTHER_SEED);
    let t = Transition {
        origin: NAME.into(),
        size: 6,
        index: 9,
        old: crate_key(&signer(&ROTATED_SEED).verifier()).unwrap(),
        new: crate_key(&stranger.verifier()).unwrap(),
    };
    let note = sign_transition(&t, &stranger, &stranger).unwrap();
    let tree = TreeStore::open_read_only(&LedgerPaths::new(&b.rotated).tree).unwrap();
    let cp = Checkpoint {
        origin: NAME.into(),
        size: 6,
        root: tree.root(6).unwrap(),
        extensions: Vec::new(),
    };
    h.transitions.push(TransitionRecord {
        checkpoint: note::sign_checkpoint(&cp, &stranger).unwrap(),
        entry: String::new(),
        note,
    });
    write_history(&ledger, &h).unwrap();
}

/// A checkpoint of the rotated log's first `size` segments, signed by `seed`.
fn rotated_checkpoint(b: &Base, size: u64, seed: &[u8; 32]) -> String {
    let tree = TreeStore::open_read_only(&LedgerPaths::new(&b.rotated).tree).unwrap();
    let cp = Checkpoint {
        origin: NAME.into(),
        size,
        root: tree.root(size).unwrap(),
        extensions: Vec::new(),
    };
    note::sign_checkpoint(&cp, &signer(seed)).unwrap()
}

fn dir_rotated_retired_key(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
    write(
        &out.join("ledger/checkpoint"),
        rotated_checkpoint(b, 6, &SEED),
    );
}

fn dir_rotated_rewritten_handoff(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
    let ledger = out.join("ledger");
    let mut h = load_history(&ledger).unwrap();
    let mut cp = note::parse_unverified_checkpoint(&h.transitions[0].checkpoint).unwrap();
    cp.root = [7; 32];
    h.transitions[0].checkpoint = note::sign_checkpoint(&cp, &signer(&SEED)).unwrap();
    write_history(&ledger, &h).unwrap();
}

fn dir_rotated_moved_transition(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
    let ledger = out.join("ledger");
    let h = load_history(&ledger).unwrap();
    let t = Transition {
        origin: NAME.into(),
        size: 5,
        index: 6,
        old: crate_key(&signer(&SEED).verifier()).unwrap(),
        new: crate_key(&signer(&ROTATED_SEED).verifier()).unwrap(),
    };
    let note = sign_transition(&t, &signer(&SEED), &signer(&ROTATED_SEED)).unwrap();
    let entry = h.transitions[0].entry.replace(
        &serde_json::to_string(&h.transitions[0].note).unwrap(),
        &serde_json::to_string(&note).unwrap(),
    );
    assert_ne!(entry, h.transitions[0].entry);
    let moved = sealtrail::ledger::key_history::KeyHistory {
        transitions: vec![TransitionRecord {
            checkpoint: rotated_checkpoint(b, 5, &SEED),
            entry,
            note,
        }],
    };
    write_history(&ledger, &moved).unwrap();
}

fn dir_rotated_history_removed(b: &Base, out: &Path) {
    copy_ledger(&b.rotated, out);
    std::fs::remove_file(out.join("ledger/key-history.json")).unwrap();
}

fn witness(seed: &[u8; 32]) -> WitnessSigner {
    WitnessSigner::from_pkcs8_pem(WITNESS, &pem(seed)).unwrap()
}

/// dir-clean plus `ledger/checkpoint.witnessed` (LEDGER.md §13.3).
fn dir_witnessed(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    let cp = std::fs::read_to_string(out.join("ledger/checkpoint")).unwrap();
    let body = &cp[..=cp.find("\n\n").unwrap()];
    let line = witness(&WITNESS_SEED).cosign(body, FIXED_SECONDS).unwrap();
    write(&out.join("ledger/checkpoint.witnessed"), cp + &line);
}

fn dir_witnessed_bad_cosignature(b: &Base, out: &Path) {
    dir_witnessed(b, out);
    let path = out.join("ledger/checkpoint.witnessed");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, line) = text.trim_end().rsplit_once('\n').unwrap();
    let (name, sig) = line.rsplit_once(' ').unwrap();
    let mut blob = B64.decode(sig).unwrap();
    // key id (4) and time (8) stay; the signature changes.
    blob[12] ^= 1;
    write(&path, format!("{head}\n{name} {}\n", B64.encode(blob)));
}

fn dir_witnessed_other_root(b: &Base, out: &Path) {
    copy_ledger(&b.data, out);
    let cp = Checkpoint {
        origin: NAME.into(),
        size: 3,
        root: [7; 32],
        extensions: Vec::new(),
    };
    let signed = note::sign_checkpoint(&cp, &signer(&SEED)).unwrap();
    let body = &signed[..=signed.find("\n\n").unwrap()];
    let line = witness(&WITNESS_SEED).cosign(body, FIXED_SECONDS).unwrap();
    write(&out.join("ledger/checkpoint.witnessed"), signed + &line);
}

// ---------------------------------------------------------------------------
// Proofs

fn write(out: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(out, bytes).unwrap();
}

fn edited_proof(b: &Base, from: &str, to: &str) -> String {
    let p = b.proof.replacen(from, to, 1);
    assert_ne!(p, b.proof, "the edit did not apply");
    p
}

fn proof_clean(b: &Base, out: &Path) {
    write(out, &b.proof);
}

fn proof_tampered(b: &Base, out: &Path) {
    write(out, edited_proof(b, "cardiology", "cardiologx"));
}

fn proof_other_key(b: &Base, out: &Path) {
    let reader = LedgerReader::open(&b.other).unwrap();
    let p = reader.inclusion_proof(PROVEN).unwrap();
    write(out, serde_json::to_string_pretty(&p).unwrap() + "\n");
}

fn proof_duplicate(b: &Base, out: &Path) {
    write(
        out,
        edited_proof(b, "\"index\": 3,", "\"index\": 3,\n  \"index\": 4,"),
    );
}

fn proof_trailing(b: &Base, out: &Path) {
    write(out, format!("{}{{}}\n", b.proof));
}

fn proof_bad_utf8(b: &Base, out: &Path) {
    let mut bytes = b.proof.clone().into_bytes();
    bytes[b.proof.find("cardiology").unwrap()] = 0xff;
    write(out, bytes);
}

fn proof_bom(b: &Base, out: &Path) {
    write(out, format!("\u{feff}{}", b.proof));
}

fn proof_float(b: &Base, out: &Path) {
    write(out, edited_proof(b, "\"index\": 3,", "\"index\": 3.0,"));
}

fn consistency(b: &Base) -> serde_json::Value {
    let reader = LedgerReader::open(&b.data).unwrap();
    serde_json::to_value(reader.consistency_proof(1).unwrap()).unwrap()
}

fn proof_consistency(b: &Base, out: &Path) {
    write(
        out,
        serde_json::to_string_pretty(&consistency(b)).unwrap() + "\n",
    );
}

fn proof_consistency_wrong_root(b: &Base, out: &Path) {
    let mut p = consistency(b);
    p["old_root"] = B64.encode([0x5a; 32]).into();
    write(out, serde_json::to_string_pretty(&p).unwrap() + "\n");
}

fn proof_unknown_member(b: &Base, out: &Path) {
    write(
        out,
        edited_proof(b, "\"index\": 3,", "\"index\": 3,\n  \"note\": \"x\","),
    );
}

fn rotated_proof(b: &Base) -> serde_json::Value {
    let reader = LedgerReader::open(&b.rotated).unwrap();
    let p = serde_json::to_value(reader.inclusion_proof(8).unwrap()).unwrap();
    assert!(p.get("key_history").is_some(), "a proof across a rotation");
    p
}

fn proof_rotated(b: &Base, out: &Path) {
    let p = rotated_proof(b);
    write(out, serde_json::to_string_pretty(&p).unwrap() + "\n");
}

fn proof_rotated_without_history(b: &Base, out: &Path) {
    let mut p = rotated_proof(b);
    p.as_object_mut().unwrap().remove("key_history");
    write(out, serde_json::to_string_pretty(&p).unwrap() + "\n");
}

// ---------------------------------------------------------------------------
// Bundles

type Members = Vec<(tar::Header, Vec<u8>)>;

fn members(bytes: &[u8]) -> Members {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
            (e.header().clone(), body)
        })
        .collect()
}

fn pack(members: Members) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, body) in members {
        b.append(&h, body.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn bundle_clean(b: &Base, out: &Path) {
    write(out, &b.bundle);
}

fn bundle_hostile_query(b: &Base, out: &Path) {
    let reader = LedgerReader::open(&b.data).unwrap();
    let query = BundleQuery {
        q: "x\u{1b}[2J\u{7f}\u{9b}31m\u{202e}y".into(),
        from: None,
        to: Some("2027-01-01T00:00:00+01:00".into()),
        requested_by: Some("\"po\" \\ \t".into()),
        created: "2026-12-01T00:00:00Z".into(),
    };
    let mut bytes = Vec::new();
    bundle::build_bundle(&reader, &signer(&SEED), &query, &[PROVEN], &mut bytes).unwrap();
    write(out, bytes);
}

fn bundle_control_name(b: &Base, out: &Path) {
    let mut m = members(&b.bundle);
    m[0].0.set_path("\u{1b}]0;pwned\u{7}\u{1b}[2J.txt").unwrap();
    m[0].0.set_cksum();
    write(out, pack(m));
}

fn bundle_trailing(b: &Base, out: &Path) {
    let mut bytes = b.bundle.clone();
    bytes.extend_from_slice(b"unchecked bytes after the archive\n");
    write(out, bytes);
}

fn bundle_tampered(b: &Base, out: &Path) {
    let mut m = members(&b.bundle);
    let events = m.last_mut().unwrap();
    let text = String::from_utf8(events.1.clone()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let edited = lines[1].replacen("cardiology", "cardiologx", 1);
    assert_ne!(edited, lines[1]);
    lines[1] = &edited;
    events.1 = (lines.join("\n") + "\n").into_bytes();
    events.0.set_size(events.1.len() as u64);
    events.0.set_cksum();
    write(out, pack(m));
}

fn rotated_query() -> BundleQuery {
    BundleQuery {
        q: "*".into(),
        from: None,
        to: None,
        requested_by: Some("auditor".into()),
        created: "2026-12-01T00:00:00Z".into(),
    }
}

fn bundle_rotated(b: &Base, out: &Path) {
    let reader = LedgerReader::open(&b.rotated).unwrap();
    let query = rotated_query();
    let mut bytes = Vec::new();
    bundle::build_bundle(
        &reader,
        &signer(&ROTATED_SEED),
        &query,
        &[1, 5, 8],
        &mut bytes,
    )
    .unwrap();
    write(out, bytes);
}

fn rotated_bundle_members(b: &Base) -> Members {
    let mut bytes = Vec::new();
    let reader = LedgerReader::open(&b.rotated).unwrap();
    bundle::build_bundle(
        &reader,
        &signer(&ROTATED_SEED),
        &rotated_query(),
        &[1, 5, 8],
        &mut bytes,
    )
    .unwrap();
    members(&bytes)
}

fn bundle_rotated_history_late(b: &Base, out: &Path) {
    let mut m = rotated_bundle_members(b);
    let name = |h: &tar::Header| h.path().unwrap().to_str().unwrap().to_owned();
    let from = m
        .iter()
        .position(|(h, _)| name(h) == "key-history.json")
        .unwrap();
    let history = m.remove(from);
    let to = m.iter().position(|(h, _)| name(h) == "checkpoint").unwrap() + 1;
    m.insert(to, history);
    write(out, pack(m));
}

fn bundle_rotated_history_in_lines(b: &Base, out: &Path) {
    let mut m = rotated_bundle_members(b);
    let (header, body) = m
        .iter_mut()
        .find(|(h, _)| h.path().unwrap().to_str() == Some("events.ndjson"))
        .unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    let lines: String = text
        .lines()
        .map(|l| format!("{},\"key_history\":[]}}\n", &l[..l.len() - 1]))
        .collect();
    *body = lines.into_bytes();
    header.set_size(body.len() as u64);
    header.set_cksum();
    write(out, pack(m));
}

fn bundle_rotated_without_history(b: &Base, out: &Path) {
    let mut m = rotated_bundle_members(b);
    let before = m.len();
    m.retain(|(h, _)| h.path().unwrap().to_str() != Some("key-history.json"));
    assert_eq!(m.len(), before - 1, "the bundle carries key-history.json");
    write(out, pack(m));
}

// ---------------------------------------------------------------------------
// Generation, manifest and checks

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/vectors")
}

fn file_of(v: &Vector) -> String {
    match v.kind {
        Kind::Dir => v.name.to_owned(),
        Kind::Proof => format!("{}.json", v.name),
        Kind::Bundle => format!("{}.tar", v.name),
    }
}

/// Writes every vector, the keys and `vectors.json` under `root`.
fn generate(root: &Path) {
    let b = base();
    std::fs::create_dir_all(root.join("keys")).unwrap();
    for (seed, file) in [
        (&SEED, "signing.vkey"),
        (&OTHER_SEED, "other.vkey"),
        (&ROTATED_SEED, "rotated.vkey"),
    ] {
        write(
            &root.join("keys").join(file),
            signer(seed).verifier().to_vkey() + "\n",
        );
    }
    for (seed, file) in [
        (&WITNESS_SEED, "witness.vkey"),
        (&OTHER_WITNESS_SEED, "other-witness.vkey"),
    ] {
        write(
            &root.join("keys").join(file),
            witness(seed).verifier().to_vkey() + "\n",
        );
    }
    let mut list = Vec::new();
    for v in VECTORS {
        let out = root.join(file_of(v));
        (v.make)(&b, &out);
        let mut entry = serde_json::json!({
            "name": v.name,
            "kind": v.kind.name(),
            "path": file_of(v),
            "vkey": v.vkey,
            "ok": v.ok,
            "errors": v.kinds,
            "description": v.what,
        });
        // Optional members, present only when they apply.
        if !v.witnesses.is_empty() {
            entry["witness_vkeys"] = v.witnesses.into();
            entry["quorum"] = v.quorum.into();
        }
        if let Some(n) = v.events {
            entry["events"] = n.into();
        }
        list.push(entry);
    }
    let manifest = serde_json::json!({
        "format": "sealtrail-conformance-vectors/v1",
        "origin": NAME,
        "vectors": list,
    });
    write(
        &root.join("vectors.json"),
        serde_json::to_string_pretty(&manifest).unwrap() + "\n",
    );
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "rewrites docs/vectors/; run after a format change"]
fn regenerate_conformance_vectors() {
    let root = vectors_dir();
    let readme = std::fs::read(root.join("README.md")).ok();
    let _ = std::fs::remove_dir_all(&root);
    generate(&root);
    if let Some(readme) = readme {
        write(&root.join("README.md"), readme);
    }
}

#[test]
fn conformance_vectors_are_what_the_generator_writes() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    let root = vectors_dir();
    let mut stored = files(&root);
    stored.retain(|p| p != Path::new("README.md"));
    assert_eq!(
        files(tmp.path()),
        stored,
        "docs/vectors/ is stale: cargo test --test integration regenerate_conformance_vectors -- --ignored"
    );
    for f in &stored {
        assert!(
            std::fs::read(tmp.path().join(f)).unwrap() == std::fs::read(root.join(f)).unwrap(),
            "{} differs from what the generator writes (not byte-stable, or stale)",
            f.display()
        );
    }
}

/// The verdict and error kinds `sealtrail` gives for one vector.
fn sealtrail_verdict(root: &Path, v: &serde_json::Value) -> (bool, BTreeSet<String>) {
    let path = root.join(v["path"].as_str().unwrap());
    let vkey = root.join(v["vkey"].as_str().unwrap());
    let mut cmd = Command::new(bin());
    match v["kind"].as_str().unwrap() {
        "dir" => cmd.args(["verify", "--data"]),
        "proof" => cmd.args(["verify-proof", "--json", "--vkey"]),
        "bundle" => cmd.args(["verify", "--bundle"]),
        other => panic!("unknown vector kind {other}"),
    };
    match v["kind"].as_str().unwrap() {
        "proof" => cmd.arg(&vkey).arg(&path),
        _ => cmd.arg(&path).arg("--vkey").arg(&vkey).arg("--json"),
    };
    for w in v["witness_vkeys"].as_array().into_iter().flatten() {
        cmd.arg("--witness-vkey")
            .arg(root.join(w.as_str().unwrap()));
    }
    if let Some(q) = v["quorum"].as_u64() {
        cmd.arg("--witness-quorum").arg(q.to_string());
    }
    let o = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {o:?}", v["name"]));
    let ok = report["ok"].as_bool().unwrap();
    assert_eq!(o.status.code(), Some(if ok { 0 } else { 1 }), "{o:?}");
    if let Some(n) = v["events"].as_u64() {
        assert_eq!(
            report["events"], n,
            "{}: verified events: {report}",
            v["name"]
        );
    }
    let kinds = report["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (ok, kinds)
}

#[test]
fn sealtrail_gives_every_conformance_vector_its_verdict_and_error_kinds() {
    let root = vectors_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("vectors.json")).unwrap()).unwrap();
    let list = manifest["vectors"].as_array().unwrap();
    assert_eq!(list.len(), VECTORS.len());
    let mut wrong = Vec::new();
    for v in list {
        let (ok, kinds) = sealtrail_verdict(&root, v);
        let want: BTreeSet<String> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        if ok != v["ok"].as_bool().unwrap() || kinds != want {
            wrong.push(format!("{}: got ok={ok} {kinds:?}, want {v}", v["name"]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
