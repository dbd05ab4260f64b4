//! Evidence bundles (docs/LEDGER.md §11): built from a real ledger, verified
//! offline with only the vkey, and every kind of tampering caught.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

#[path = "integration/util.rs"]
#[allow(dead_code)]
mod util;

use proptest::prelude::*;
use sealtrail::ledger::bundle::{
    self, BundleError, BundleQuery, BundleReport, MAX_BUNDLE_EVENTS, MAX_README,
};
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::Ledger;
use sealtrail::ledger::note;
use sealtrail::ledger::proof::{InclusionProof, LedgerReader};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use util::*;

fn query() -> BundleQuery {
    BundleQuery {
        q: "patient.id:MRN-0000008 OR actor.user:\"u0003\"".into(),
        from: Some("2026-01-01T00:00:00Z".into()),
        to: Some("2027-01-01T00:00:00Z".into()),
        requested_by: Some("privacy officer <po@clinic.example>".into()),
        created: "2026-11-28T09:00:00Z".into(),
    }
}

/// A closed ledger of `n` events, segments of 7.
fn ledger(dir: &Path, n: u64) -> (std::path::PathBuf, Keys) {
    let k = keys(&dir.join("keys"));
    let data = dir.join("data");
    build_ledger(&data, &k, n, 7);
    (data, k)
}

fn make(reader: &LedgerReader, k: &Keys, indices: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    bundle::build_bundle(reader, &k.signer(), &query(), indices, &mut out).unwrap();
    out
}

type Members = Vec<(String, Vec<u8>)>;

fn unpack(bytes: &[u8]) -> Members {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_str().unwrap().to_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn pack(members: &Members) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn member<'a>(m: &'a mut Members, name: &str) -> &'a mut Vec<u8> {
    &mut m.iter_mut().find(|(n, _)| n == name).unwrap().1
}

fn lines(m: &mut Members) -> Vec<String> {
    String::from_utf8(member(m, "events.ndjson").clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn set_lines(m: &mut Members, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    *member(m, "events.ndjson") = text.into_bytes();
}

fn check(bytes: &[u8], k: &Keys) -> BundleReport {
    bundle::check_bundle(bytes, &k.verifier)
}

fn kinds(r: &BundleReport) -> Vec<&'static str> {
    r.errors.iter().map(BundleError::kind).collect()
}

fn assert_fails(r: &BundleReport, kind: &str, index: Option<u64>) {
    assert!(!r.ok(), "accepted");
    assert!(r.verified.is_none());
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind() == kind && (index.is_none() || e.index() == index)),
        "want {kind} {index:?}, got {:?}",
        r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn bundle_of_a_subset_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 40);
    let reader = LedgerReader::open(&data).unwrap();
    let mut out = Vec::new();
    // Unsorted, with a duplicate: the bundle holds the set, in order.
    let summary = bundle::build_bundle(
        &reader,
        &k.signer(),
        &query(),
        &[15, 0, 8, 39, 3, 8],
        &mut out,
    )
    .unwrap();
    assert_eq!(summary.events, 5);
    assert_eq!(summary.checkpoint.size, 6);

    let names: Vec<String> = unpack(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "README.txt",
            "signing.vkey",
            "checkpoint",
            "manifest",
            "events.ndjson"
        ]
    );

    let v = bundle::verify_bundle(out.as_slice(), &k.verifier).unwrap();
    assert_eq!(v.query(), &query());
    assert_eq!(v.count(), 5);
    assert_eq!(v.origin(), ORIGIN);
    assert_eq!(v.checkpoint(), reader.checkpoint());
    assert_eq!(v.checkpoint_text(), reader.checkpoint_text());
    assert_eq!(v.events_sha256(), &summary.events_sha256);
    let indices: Vec<u64> = v.entries().iter().map(|e| e.index).collect();
    assert_eq!(indices, [0, 3, 8, 15, 39]);
    for e in v.entries() {
        assert_eq!(e.entry, reader.entry(e.index).unwrap());
    }
    let r = check(&out, &k);
    assert!(r.ok() && r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.events, 5);
    let json = r.to_json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["query"]["q"], query().q);
}

#[test]
fn manifest_and_readme_say_what_the_bundle_is() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 20);
    let reader = LedgerReader::open(&data).unwrap();
    let mut m = unpack(&make(&reader, &k, &[2, 5]));
    let manifest = String::from_utf8(member(&mut m, "manifest").clone()).unwrap();
    let text = note::open_note(&manifest, &k.verifier).unwrap();
    let cp = reader.checkpoint();
    let want = format!(
        "sealtrail evidence bundle v1\norigin {ORIGIN}\nquery \"patient.id:MRN-0000008 OR actor.user:\\\"u0003\\\"\"\n\
         from \"2026-01-01T00:00:00Z\"\nto \"2027-01-01T00:00:00Z\"\nrequested-by \"privacy officer <po@clinic.example>\"\n\
         created \"2026-11-28T09:00:00Z\"\ncheckpoint-size {}\ncheckpoint-root {}\nevents 2\nevents-sha256 ",
        cp.size,
        base64_root(&cp.root)
    );
    assert!(text.starts_with(&want), "{text}");
    let readme = String::from_utf8(member(&mut m, "README.txt").clone()).unwrap();
    assert!(readme.contains("sealtrail verify --bundle"), "{readme}");
    assert!(readme.contains("independently"), "{readme}");
    assert!(readme.contains("MRN-0000008"), "{readme}");
    assert_eq!(
        member(&mut m, "signing.vkey").as_slice(),
        format!("{}\n", k.verifier.to_vkey()).as_bytes()
    );
    assert_eq!(
        member(&mut m, "checkpoint").as_slice(),
        reader.checkpoint_text().as_bytes()
    );
}

fn base64_root(root: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(root)
}

#[test]
fn empty_result_set_is_a_valid_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 10);
    let reader = LedgerReader::open(&data).unwrap();
    let v = bundle::verify_bundle(make(&reader, &k, &[]).as_slice(), &k.verifier).unwrap();
    assert_eq!(v.count(), 0);
}

#[test]
fn tampering_with_events_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 40);
    let reader = LedgerReader::open(&data).unwrap();
    let good = unpack(&make(&reader, &k, &[1, 8, 9, 22, 30]));

    // Altered event bytes inside a proof (still a canonical line).
    let mut m = good.clone();
    let mut l = lines(&mut m);
    let mut p: InclusionProof = serde_json::from_str(&l[2]).unwrap();
    assert_eq!(p.index, 9);
    p.entry = p.entry.replace("Viewed", "Edited");
    l[2] = serde_json::to_string(&p).unwrap();
    set_lines(&mut m, &l);
    let r = check(&pack(&m), &k);
    assert_fails(&r, "event_proof", Some(9));
    assert_fails(&r, "event_digest", None);
    assert_eq!(r.events, 4);

    // An event removed.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l.remove(3);
    set_lines(&mut m, &l);
    let r = check(&pack(&m), &k);
    assert_fails(&r, "event_count", None);
    assert_fails(&r, "event_digest", None);
    assert!(
        r.to_string_list()
            .iter()
            .any(|e| e.contains("added or removed"))
    );

    // An event added: a perfectly valid proof of another event of the same
    // log, against the same checkpoint, in index order.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l.insert(
        3,
        serde_json::to_string(&reader.inclusion_proof(10).unwrap()).unwrap(),
    );
    set_lines(&mut m, &l);
    let r = check(&pack(&m), &k);
    assert_eq!(kinds(&r), ["event_count", "event_digest"], "{:?}", r.errors);

    // An event replaced by another valid one (same count).
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l[3] = serde_json::to_string(&reader.inclusion_proof(23).unwrap()).unwrap();
    set_lines(&mut m, &l);
    assert_eq!(kinds(&check(&pack(&m), &k)), ["event_digest"]);

    // An event duplicated.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l.insert(2, l[1].clone());
    set_lines(&mut m, &l);
    assert_fails(&check(&pack(&m), &k), "duplicate_event", Some(8));

    // Reordered.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l.swap(0, 1);
    set_lines(&mut m, &l);
    assert_fails(&check(&pack(&m), &k), "event_order", Some(1));

    // Same proof, pretty-printed: not byte-exact.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    let p: InclusionProof = serde_json::from_str(&l[0]).unwrap();
    l[0] = serde_json::to_string_pretty(&p).unwrap().replace('\n', " ");
    set_lines(&mut m, &l);
    assert_fails(&check(&pack(&m), &k), "event_line", None);

    // Garbage line.
    let mut m = good.clone();
    let mut l = lines(&mut m);
    l[4] = "{\"format\":1}".into();
    set_lines(&mut m, &l);
    assert_fails(&check(&pack(&m), &k), "event_line", None);
}

trait Strings {
    fn to_string_list(&self) -> Vec<String>;
}
impl Strings for BundleReport {
    fn to_string_list(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.to_string()).collect()
    }
}

#[test]
fn tampering_with_the_manifest_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 30);
    let reader = LedgerReader::open(&data).unwrap();
    let good = unpack(&make(&reader, &k, &[4, 5, 6]));
    let manifest = String::from_utf8(good[3].1.clone()).unwrap();
    let text = note::open_note(&manifest, &k.verifier).unwrap().to_owned();

    // Query changed, signature kept.
    let mut m = good.clone();
    *member(&mut m, "manifest") = manifest.replace("MRN-0000008", "MRN-0000009").into_bytes();
    let r = check(&pack(&m), &k);
    assert_fails(&r, "manifest_signature", None);
    assert!(r.query.is_none(), "an unverified query is never reported");

    // Signed by another key with the same name (the original text, and a
    // changed one).
    let other = NoteSigner::generate(ORIGIN).unwrap();
    for t in [text.clone(), text.replace("MRN-0000008", "MRN-0000009")] {
        let mut m = good.clone();
        *member(&mut m, "manifest") = note::sign_note(&t, &other).unwrap().into_bytes();
        let r = check(&pack(&m), &k);
        assert_fails(&r, "manifest_signature", None);
        assert!(
            r.to_string_list()[0].contains("no signature by key"),
            "{:?}",
            r.errors
        );
    }

    // Signed by the right key but saying something else about the events
    // (what a compromised exporter could do): count and digest disagree.
    let mut m = good.clone();
    let forged = text.replace("\nevents 3\n", "\nevents 2\n");
    *member(&mut m, "manifest") = note::sign_note(&forged, &k.signer()).unwrap().into_bytes();
    assert_fails(&check(&pack(&m), &k), "event_count", None);
}

#[test]
fn an_older_genuine_checkpoint_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    build_ledger(&data, &k, 21, 7);
    let old_reader = LedgerReader::open(&data).unwrap();
    let old = unpack(&make(&old_reader, &k, &[2, 9, 20]));
    drop(old_reader);
    // More events, a newer checkpoint.
    let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(7)).unwrap();
    ledger.append(&[entry(21), entry(22)]).unwrap();
    ledger.close().unwrap();
    let reader = LedgerReader::open(&data).unwrap();
    assert!(reader.checkpoint().size > 3);
    let new = unpack(&make(&reader, &k, &[2, 9, 20]));

    // Checkpoint file swapped for the older genuine one.
    let mut m = new.clone();
    m[2].1 = old[2].1.clone();
    let r = check(&pack(&m), &k);
    assert_fails(&r, "event_checkpoint", Some(9));
    assert_fails(&r, "checkpoint_mismatch", None);

    // Checkpoint and proofs from the older bundle, manifest from the newer.
    let mut m = new.clone();
    m[2].1 = old[2].1.clone();
    m[4].1 = old[4].1.clone();
    assert_eq!(kinds(&check(&pack(&m), &k)), ["checkpoint_mismatch"]);

    // Each bundle alone verifies.
    assert!(check(&pack(&old), &k).ok());
    assert!(check(&pack(&new), &k).ok());
}

#[test]
fn readme_is_informational_and_vkey_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 20);
    let reader = LedgerReader::open(&data).unwrap();
    let good = unpack(&make(&reader, &k, &[3]));

    let mut m = good.clone();
    *member(&mut m, "README.txt") = b"anything at all, even \xff\xfe not utf-8".to_vec();
    assert!(check(&pack(&m), &k).ok());

    let mut m = good.clone();
    let other = keys(&dir.path().join("other"));
    *member(&mut m, "signing.vkey") = format!("{}\n", other.verifier.to_vkey()).into_bytes();
    assert_fails(&check(&pack(&m), &k), "vkey", None);

    // Verified with the wrong key: the checkpoint and everything after fail.
    let r = check(&pack(&good), &other);
    assert_fails(&r, "checkpoint_signature", None);
    assert_fails(&r, "manifest_signature", None);
    assert_fails(&r, "event_proof", Some(3));
}

#[test]
fn archive_structure_is_bounded_and_strict() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 20);
    let reader = LedgerReader::open(&data).unwrap();
    let bytes = make(&reader, &k, &[1, 2, 3, 17]);
    let good = unpack(&bytes);
    assert!(check(&pack(&good), &k).ok());

    // Truncated anywhere inside the members.
    let events_end = bytes.len() - 1024; // the two zero blocks that end a tar
    for cut in [0, 100, 512, 700, 1500, bytes.len() / 2, events_end - 1] {
        let r = check(&bytes[..cut], &k);
        assert!(!r.ok(), "cut at {cut} accepted");
    }
    assert_fails(&check(&bytes[..events_end - 600], &k), "truncated", None);
    // Only the end-of-archive blocks missing: the evidence is complete.
    assert!(check(&bytes[..events_end], &k).ok());

    // Oversize member.
    let mut m = good.clone();
    *member(&mut m, "README.txt") = vec![b'x'; MAX_README as usize + 1];
    assert_fails(&check(&pack(&m), &k), "member_too_large", None);

    // Missing, duplicated, unexpected, misplaced members.
    let mut m = good.clone();
    m.remove(2);
    assert_fails(&check(&pack(&m), &k), "missing_member", None);
    let mut m = good.clone();
    m.insert(1, m[0].clone());
    assert_fails(&check(&pack(&m), &k), "duplicate_member", None);
    let mut m = good.clone();
    m.insert(2, ("notes.txt".into(), b"hi".to_vec()));
    assert_fails(&check(&pack(&m), &k), "unexpected_member", None);
    let mut m = good.clone();
    let readme = m.remove(0);
    m.push(readme);
    assert_fails(&check(&pack(&m), &k), "member_order", None);

    // A directory entry with a member's name.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("checkpoint").unwrap();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    assert_fails(&check(&b.into_inner().unwrap(), &k), "member_type", None);

    // Not a tar at all.
    assert!(!check(b"hello, this is not a tar file".repeat(40).as_slice(), &k).ok());
}

#[test]
fn unsealed_events_and_oversized_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 14);
    // A running writer with events not sealed yet (no seal for an hour).
    let (mut writer, _) = Ledger::open(&data, k.signer(), policy(1000)).unwrap();
    writer.append(&[entry(14), entry(15)]).unwrap();
    let reader = LedgerReader::open(&data).unwrap();
    let mut out = Vec::new();
    let err = bundle::build_bundle(&reader, &k.signer(), &query(), &[3, 15], &mut out).unwrap_err();
    assert!(matches!(err, BundleError::NotSealed(15)), "{err}");
    assert!(out.is_empty());
    // After the seal it works (a fresh reader sees the new checkpoint).
    writer.seal().unwrap();
    let reader = LedgerReader::open(&data).unwrap();
    let v = bundle::verify_bundle(make(&reader, &k, &[3, 15]).as_slice(), &k.verifier).unwrap();
    assert_eq!(v.count(), 2);
    writer.close().unwrap();

    let many: Vec<u64> = (0..=MAX_BUNDLE_EVENTS).collect();
    let err = bundle::build_bundle(&reader, &k.signer(), &query(), &many, Vec::new()).unwrap_err();
    assert!(matches!(err, BundleError::TooManyEvents { .. }), "{err}");

    let mut q = query();
    q.from = Some("last tuesday".into());
    let err = bundle::build_bundle(&reader, &k.signer(), &q, &[1], Vec::new()).unwrap_err();
    assert!(
        matches!(err, BundleError::Query { field: "from", .. }),
        "{err}"
    );

    let stranger = NoteSigner::generate("other.example/log").unwrap();
    assert!(bundle::build_bundle(&reader, &stranger, &query(), &[1], Vec::new()).is_err());
}

// ---------------------------------------------------------------------------
// CLI: sealtrail verify --bundle FILE --vkey FILE [--json]

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn cli_verify_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (data, k) = ledger(dir.path(), 30);
    let reader = LedgerReader::open(&data).unwrap();
    let bytes = make(&reader, &k, &[5, 6, 7, 25]);
    let file = dir.path().join("evidence.tar");
    std::fs::write(&file, &bytes).unwrap();

    let o = run(&["verify", "--bundle", s(&file), "--vkey", s(&k.vkey)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        out.contains("OK") && out.contains("events proven: 4"),
        "{out}"
    );

    let o = run(&[
        "verify",
        "--bundle",
        s(&file),
        "--vkey",
        s(&k.vkey),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["events"], 4);
    assert_eq!(v["checkpoint"]["size"], reader.checkpoint().size);
    assert_eq!(
        v["checkpoint"]["root"],
        base64_root(&reader.checkpoint().root)
    );
    assert_eq!(v["query"]["q"], query().q);
    assert_eq!(v["query"]["requested_by"], query().requested_by.unwrap());
    assert_eq!(v["errors"], serde_json::json!([]));

    // Tampered: event 7's bytes altered.
    let mut m = unpack(&bytes);
    let mut l = lines(&mut m);
    let mut p: InclusionProof = serde_json::from_str(&l[2]).unwrap();
    p.entry = p
        .entry
        .replace("\"outcome\":\"success\"", "\"outcome\":\"failure\"");
    l[2] = serde_json::to_string(&p).unwrap();
    set_lines(&mut m, &l);
    let bad = dir.path().join("tampered.tar");
    std::fs::write(&bad, pack(&m)).unwrap();
    let o = run(&["verify", "--bundle", s(&bad), "--vkey", s(&k.vkey)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(out.contains("FAILED") && out.contains("event 7"), "{out}");
    let o = run(&[
        "verify",
        "--bundle",
        s(&bad),
        "--vkey",
        s(&k.vkey),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["events"], 3);
    let first = &v["errors"][0];
    assert_eq!(first["kind"], "event_proof");
    assert_eq!(first["index"], 7);
    assert_eq!(first["member"], "events.ndjson");
    assert!(
        first["detail"].as_str().unwrap().contains("event 7"),
        "{first}"
    );

    // Usage and I/O errors: exit 2.
    let o = run(&[
        "verify",
        "--bundle",
        s(&file),
        "--data",
        s(&data),
        "--vkey",
        s(&k.vkey),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["verify", "--vkey", s(&k.vkey)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let missing = dir.path().join("nope.tar");
    let o = run(&["verify", "--bundle", s(&missing), "--vkey", s(&k.vkey)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // --data alone still works as before.
    let o = run(&["verify", "--data", s(&data), "--vkey", s(&k.vkey), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

// ---------------------------------------------------------------------------
// Properties

struct Fixture {
    _dir: tempfile::TempDir,
    reader: LedgerReader,
    keys: Keys,
}

const LOG_EVENTS: u64 = 30;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (data, keys) = ledger(dir.path(), LOG_EVENTS);
        Fixture {
            reader: LedgerReader::open(&data).unwrap(),
            keys,
            _dir: dir,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_subset_verifies_and_any_flipped_byte_is_found(
        subset in proptest::collection::vec(any::<bool>(), LOG_EVENTS as usize),
        in_manifest in any::<bool>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let f = fixture();
        let indices: Vec<u64> = (0..LOG_EVENTS).filter(|&i| subset[i as usize]).collect();
        let bytes = make(&f.reader, &f.keys, &indices);
        let v = bundle::verify_bundle(bytes.as_slice(), &f.keys.verifier).unwrap();
        let got: Vec<u64> = v.entries().iter().map(|e| e.index).collect();
        prop_assert_eq!(&got, &indices);

        let mut m = unpack(&bytes);
        let name = if in_manifest || indices.is_empty() { "manifest" } else { "events.ndjson" };
        let data = member(&mut m, name);
        let i = at.index(data.len());
        data[i] ^= xor;
        let r = check(&pack(&m), &f.keys);
        prop_assert!(!r.ok(), "flip of byte {} in {} accepted", i, name);
    }
}

/// The console's export jobs show a bundle's progress: reported every
/// `PROGRESS_EVERY` proofs and at the end, never going down, ending at the
/// total, with the bytes growing; the bundle is the one `build_bundle` makes.
#[test]
fn bundle_progress_is_monotone_and_ends_at_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let n = bundle::PROGRESS_EVERY * 2 + 3;
    let (data, k) = ledger(dir.path(), n);
    let reader = LedgerReader::open(&data).unwrap();
    let indices: Vec<u64> = (0..n).collect();
    let mut calls = Vec::new();
    let mut out = Vec::new();
    bundle::build_bundle_with(
        &reader,
        &k.signer(),
        &query(),
        &indices,
        &mut out,
        &mut |p| calls.push(p),
    )
    .unwrap();
    let done: Vec<(u64, u64)> = calls
        .iter()
        .map(|p| (p.proofs_done, p.proofs_total))
        .collect();
    let every = bundle::PROGRESS_EVERY;
    assert_eq!(done, [(every, n), (2 * every, n), (n, n)]);
    assert!(
        calls.windows(2).all(|w| w[0].bytes < w[1].bytes),
        "{calls:?}"
    );
    assert_eq!(out, make(&reader, &k, &indices));
}
