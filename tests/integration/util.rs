//! Shared fixtures: temp data directories, keys, events of a realistic size.

use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::ledger::keys::{self, NoteSigner, NoteVerifier};
use sealtrail::ledger::log::{Ledger, LedgerEntry, SealPolicy};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ORIGIN: &str = "clinic.example/sealtrail";

pub struct Keys {
    pub key: PathBuf,
    pub vkey: PathBuf,
    pub verifier: NoteVerifier,
}

impl Keys {
    /// A fresh handle on the signing key (signers are deliberately not Clone).
    pub fn signer(&self) -> NoteSigner {
        keys::load_signer(&self.key).unwrap()
    }
}

pub fn keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).unwrap();
    let files = keys::write_key_files(dir, ORIGIN).unwrap();
    Keys {
        verifier: keys::load_verifier(&files.vkey).unwrap(),
        key: files.signing_key,
        vkey: files.vkey,
    }
}

/// An ePHI access event of about 300 bytes once stored.
pub fn event_json(i: u64) -> String {
    format!(
        concat!(
            r#"{{"id":"evt-{i:08}","time":"2026-11-{day:02}T{h:02}:{m:02}:11.{ms:03}Z","category":"access","action":"view","outcome":"success","#,
            r#""actor":{{"user":"u{u:04}","role":"clinician","department":"cardiology","ip":"10.20.1.{ip}"}},"#,
            r#""patient":{{"id":"MRN-{p:07}"}},"resource":{{"type":"chart","id":"enc-{i}"}},"#,
            r#""source":{{"system":"ehr","host":"app-01"}},"reason":"treatment","message":"Viewed encounter note"}}"#
        ),
        i = i,
        day = 1 + (i / 86_400) % 28,
        h = (i / 3600) % 24,
        m = (i / 60) % 60,
        ms = i % 1000,
        u = i % 97,
        ip = i % 250,
        p = i % 5003,
    )
}

pub fn entry(i: u64) -> LedgerEntry {
    let event = Event::from_json(event_json(i).as_bytes()).unwrap();
    let entry = Entry {
        received: Timestamp::parse("2026-11-27T14:03:11.5Z").unwrap(),
        via: Via {
            kind: "import".into(),
            peer: Some("test".into()),
            principal: None,
        },
        event,
        enriched: None,
    };
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

pub fn policy(max_events: u64) -> SealPolicy {
    SealPolicy {
        max_events,
        max_age: Duration::from_secs(3600),
    }
}

/// Builds a closed ledger of `n` events in segments of at most `per_segment`.
pub fn build_ledger(data: &Path, k: &Keys, n: u64, per_segment: u64) {
    let (mut ledger, _) = Ledger::open(data, k.signer(), policy(per_segment)).unwrap();
    let entries: Vec<LedgerEntry> = (0..n).map(entry).collect();
    for chunk in entries.chunks(7) {
        ledger.append(chunk).unwrap();
    }
    ledger.close().unwrap();
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sealtrail")
}

pub fn segment_path(data: &Path, n: u64) -> PathBuf {
    data.join("ledger/segments").join(format!("{n:012}.seg"))
}
