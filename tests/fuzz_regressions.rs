//! Every input a fuzz target ever crashed on (`tests/data/fuzz-regressions/
//! <target>/`, kept by hand from `fuzz/artifacts/`), run through the same
//! entry point as the target (`sealtrail::fuzzing`): none may panic, and the
//! query front end answers with an error rather than a crash or a hang.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::path::Path;
use std::time::{Duration, Instant};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz-regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Runs `f` over every stored input of `target`, each within a time bound
/// (a fuzzer's timeouts are findings too).
fn run(target: &str, f: impl Fn(&[u8])) {
    for (name, data) in inputs(target) {
        let started = Instant::now();
        f(&data);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn syslog_inputs() {
    run("syslog", sealtrail::fuzzing::syslog);
}

#[test]
fn fhir_inputs() {
    run("fhir", sealtrail::fuzzing::fhir);
}

#[test]
fn ndjson_inputs() {
    run("ndjson", sealtrail::fuzzing::ndjson);
}

#[test]
fn query_inputs() {
    run("query", |d| {
        let _ = sealtrail::fuzzing::query(d);
    });
    // `attrs.cl\x08\0…:u- -action:view`: a NUL in a JSON field path made
    // tantivy assert while building the term; now a client error.
    let nul = inputs("query")
        .into_iter()
        .find(|(n, _)| n.ends_with("nul-in-json-path"))
        .unwrap();
    let err = sealtrail::fuzzing::query(&nul.1).unwrap_err();
    assert!(err.is_client_error(), "{err}");
    assert!(err.to_string().contains("control character"), "{err}");
}

#[test]
fn segment_inputs() {
    run("segment", sealtrail::fuzzing::segment);
}

#[test]
fn proof_inputs() {
    run("proof", sealtrail::fuzzing::proof);
}

#[test]
fn bundle_inputs() {
    run("bundle", sealtrail::fuzzing::bundle);
}

/// The seed corpora in `fuzz/seeds/` go through the same entry points, so a
/// plain `cargo test` exercises every target on realistic input.
#[test]
fn seed_corpora_run_clean() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 7] = [
        ("syslog", sealtrail::fuzzing::syslog),
        ("fhir", sealtrail::fuzzing::fhir),
        ("ndjson", sealtrail::fuzzing::ndjson),
        ("query", |d| {
            let _ = sealtrail::fuzzing::query(d);
        }),
        ("segment", sealtrail::fuzzing::segment),
        ("proof", sealtrail::fuzzing::proof),
        ("bundle", sealtrail::fuzzing::bundle),
    ];
    for (target, f) in targets {
        let dir = seeds.join(target);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            f(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds for {target}");
    }
    // The seeded queries parse (the in-memory index works at all).
    assert!(sealtrail::fuzzing::query(b"actor.user:u0042 AND outcome:failure").is_ok());
    assert!(sealtrail::fuzzing::query(&b"(".repeat(1000)).is_err());
}
