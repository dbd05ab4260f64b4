//! The auditor's command line, on this crate alone:
//!
//! ```text
//! cargo run -p sealtrail-verify --example audit -- dir DATA_DIR LOG.vkey [--kek FILE] [--since CHECKPOINT]
//! cargo run -p sealtrail-verify --example audit -- proof PROOF.json LOG.vkey [--since CHECKPOINT]
//! cargo run -p sealtrail-verify --example audit -- bundle BUNDLE.tar LOG.vkey
//! cargo run -p sealtrail-verify --example audit -- cosigned CHECKPOINT LOG.vkey WITNESS.vkey...
//! ```
//! Prints a JSON verdict; exits 0 when it verified, 1 when it did not, 2
//! on a usage or reading error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use sealtrail_verify::{NoteVerifier, atrest::Kek, bundle, note, proof};
use serde_json::json;
use std::process::ExitCode;

fn read(path: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if meta.len() > 1 << 30 {
        return Err(format!("{path}: larger than 1 GiB"));
    }
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

fn text(path: &str) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("{path}: not UTF-8"))
}

fn vkey(path: &str, witness: bool) -> Result<NoteVerifier, String> {
    let line = text(path)?;
    let line = line.trim_end_matches('\n');
    let v =
        if witness { NoteVerifier::from_witness_vkey(line) } else { NoteVerifier::from_vkey(line) };
    v.map_err(|e| format!("{path}: {e}"))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn run(args: &[String]) -> Result<(bool, serde_json::Value), String> {
    let [cmd, file, key, rest @ ..] = args else {
        return Err("usage: audit dir|proof|bundle|cosigned FILE LOG.vkey [...]".into());
    };
    let log = vkey(key, false)?;
    let since = flag(rest, "--since").map(|p| text(&p)).transpose()?;
    match cmd.as_str() {
        "dir" => {
            let kek = flag(rest, "--kek").map(|p| read(&p)).transpose()?;
            let kek = kek.map(|k| Kek::parse(&k)).transpose().map_err(|e| e.to_string())?;
            let opts = sealtrail_verify::VerifyOptions {
                since: since.as_deref(),
                kek: kek.as_ref(),
                ..Default::default()
            };
            let r = sealtrail_verify::verify_dir(file.as_ref(), &log, opts)
                .map_err(|e| e.to_string())?;
            Ok((r.ok, serde_json::to_value(&r).map_err(|e| e.to_string())?))
        }
        "proof" => match proof::parse_proof(&read(file)?) {
            Ok(proof::ProofDocument::Inclusion(p)) => {
                Ok(match proof::verify_inclusion_proof(&p, &log) {
                    Ok(v) => (
                        true,
                        json!({"ok": true, "kind": "inclusion", "index": v.index, "checkpoint_size": v.checkpoint.size}),
                    ),
                    Err(e) => (false, json!({"ok": false, "error": e.to_string()})),
                })
            }
            Ok(proof::ProofDocument::Consistency(p)) => {
                Ok(match proof::verify_consistency_proof(&p, &log, since.as_deref()) {
                    Ok(v) => (
                        true,
                        json!({"ok": true, "kind": "consistency", "old_size": v.old_size, "new_size": v.new_size}),
                    ),
                    Err(e) => (false, json!({"ok": false, "error": e.to_string()})),
                })
            }
            Err(e) => Ok((false, json!({"ok": false, "error": e.to_string()}))),
        },
        "bundle" => {
            let r = bundle::check_bundle(&read(file)?[..], &log);
            Ok((r.ok(), r.to_json()))
        }
        "cosigned" => {
            let note_text = text(file)?;
            let witnesses = rest.iter().map(|w| vkey(w, true)).collect::<Result<Vec<_>, _>>()?;
            let checked = note::open_checkpoint(&note_text, &log).and_then(|cp| {
                note::verify_cosignatures(&note_text, &cp, &witnesses).map(|c| (cp, c))
            });
            Ok(match checked {
                Ok((cp, cosigs)) => {
                    let names: Vec<_> = cosigs
                        .iter()
                        .map(|c| json!({"witness": c.witness, "time": c.time}))
                        .collect();
                    let ok = cosigs.len() == witnesses.len();
                    (ok, json!({"ok": ok, "size": cp.size, "cosignatures": names}))
                }
                Err(e) => (false, json!({"ok": false, "error": e.to_string()})),
            })
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok((ok, v)) => {
            println!("{v}");
            ExitCode::from(u8::from(!ok))
        }
        Err(e) => {
            eprintln!("audit: {e}");
            ExitCode::from(2)
        }
    }
}
