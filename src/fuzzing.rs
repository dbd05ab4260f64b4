//! Entry points for the cargo-fuzz targets in `fuzz/` and the regression
//! test `tests/fuzz_regressions.rs`: each takes arbitrary bytes and runs
//! one parser the way the service does. Not an API.

use std::io::Write;
use std::sync::OnceLock;

use crate::index::SearchIndex;
use crate::index::query::QueryError;
use crate::ledger::keys::{NoteSigner, NoteVerifier};

/// A fixed instant, so a run does not depend on the clock.
fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_796_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Syslog framing (both kinds, fed in uneven chunks) and every frame
/// through the parser and the event mapping.
pub fn syslog(data: &[u8]) {
    use crate::sources::syslog::framing::{Decoder, Frame};
    let (max, rest) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b) * 64 + 1, rest),
        None => return,
    };
    let mut decoder = Decoder::new(max);
    let mut frames = Vec::new();
    for chunk in rest.chunks(7) {
        decoder.feed(chunk, &mut frames);
    }
    decoder.finish(&mut frames);
    let mut bodies: Vec<&[u8]> = vec![rest];
    for f in &frames {
        if let Frame::Message(m) = f {
            bodies.push(m);
        }
    }
    for body in bodies {
        let _ = crate::sources::syslog::parse::parse(body, now());
        let _ = crate::sources::syslog::mapping::message_to_item(body, now());
    }
}

/// FHIR AuditEvent / Bundle mapping.
pub fn fhir(data: &[u8]) {
    let _ = crate::sources::fhir::map_body(data);
}

/// HTTP ingest decoding: the first byte picks the content encoding and
/// type, the rest is the body (decompressed under a small cap, then split).
pub fn ndjson(data: &[u8]) {
    use crate::sources::http::{HttpLimits, decode_body, parse_body};
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    let encoding = [None, Some("gzip"), Some("zstd"), Some("identity")][usize::from(sel & 3)];
    let content_type = [
        Some("application/json"),
        Some("application/x-ndjson"),
        None,
        Some("application/json-seq"),
    ][usize::from((sel >> 2) & 3)];
    let limits = HttpLimits {
        max_body_bytes: 1 << 20,
        max_decoded_bytes: 1 << 20,
        max_line_bytes: 64 << 10,
        max_events: 1000,
    };
    if let Ok(decoded) = decode_body(encoding, body, limits.max_decoded_bytes) {
        let _ = parse_body(content_type, &decoded, &limits);
    }
}

/// An empty in-memory search index, built once.
fn search_index() -> Option<&'static SearchIndex> {
    static INDEX: OnceLock<Option<SearchIndex>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let fields = crate::index::schema::Fields::new();
            let index = tantivy::Index::create_in_ram(fields.schema.clone());
            SearchIndex::new(index, &std::env::temp_dir()).ok()
        })
        .as_ref()
}

/// The query front end: shape limits, the grammar, field checks and the
/// query tree (nothing is searched).
pub fn query(data: &[u8]) -> Result<(), QueryError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    match search_index() {
        Some(index) => index.parse_only(text),
        None => Ok(()),
    }
}

/// A segment file's bytes through the frame reader (header, frames,
/// dictionary codec, tail) and the footer parser.
pub fn segment(data: &[u8]) {
    use crate::ledger::segment::{Footer, FrameReader};
    static DIR: OnceLock<Option<tempfile_dir::Dir>> = OnceLock::new();
    let Some(dir) = DIR.get_or_init(tempfile_dir::Dir::new).as_ref() else {
        return;
    };
    let path = dir
        .path
        .join("segments")
        .join(crate::ledger::segment::file_name(0, true));
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(data));
    if written.is_err() {
        return;
    }
    if let Ok(mut reader) = FrameReader::open(&path) {
        let mut payload = Vec::new();
        for _ in 0..10_000 {
            match reader.next_frame_into(&mut payload) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = Footer::from_bytes(&path, data, 0);
    if let Ok(mut f) = std::fs::File::open(&path) {
        let _ = Footer::read_located(&path, &mut f);
    }
}

/// The fixed key the proof, checkpoint and bundle targets check against.
fn verifier() -> Option<&'static NoteVerifier> {
    static KEY: OnceLock<Option<NoteVerifier>> = OnceLock::new();
    KEY.get_or_init(|| {
        // A fixed PKCS#8 ed25519 key (seed 1..=32): the same verifier every run.
        const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n-----END PRIVATE KEY-----\n";
        NoteSigner::from_pkcs8_pem("fuzz.example/log", PEM)
            .ok()
            .map(|s| s.verifier())
    })
    .as_ref()
}

/// Signed notes and checkpoints, and inclusion and consistency proofs
/// (JSON) checked offline.
pub fn proof(data: &[u8]) {
    use crate::ledger::{note, proof};
    let Some(v) = verifier() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = note::parse_unverified_checkpoint(text);
        let _ = note::open_note(text, v);
        let _ = note::open_checkpoint(text, v);
        let _ = crate::ledger::note::Checkpoint::parse_body(text);
        let _ = NoteVerifier::from_vkey(text);
    }
    if let Ok(p) = serde_json::from_slice::<proof::InclusionProof>(data) {
        let _ = proof::verify_inclusion_proof(&p, v);
    }
    if let Ok(p) = serde_json::from_slice::<proof::ConsistencyProof>(data) {
        let _ = proof::verify_consistency_proof(&p, v, None);
    }
}

/// An evidence bundle (tar of checkpoint, manifest, events, proofs).
pub fn bundle(data: &[u8]) {
    if let Some(v) = verifier() {
        let _ = crate::ledger::bundle::check_bundle(data, v);
    }
}

/// A private temporary directory for the segment target, removed when the
/// process ends normally (fuzzers usually do not; it is small).
mod tempfile_dir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Option<Dir> {
            let path =
                std::env::temp_dir().join(format!("sealtrail-fuzz-{}/ledger", std::process::id()));
            std::fs::create_dir_all(path.join("segments")).ok()?;
            std::fs::create_dir_all(path.join("dicts")).ok()?;
            Some(Dir { path })
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            if let Some(parent) = self.path.parent() {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }
}
