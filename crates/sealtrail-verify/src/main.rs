//! `sealtrail-verify`: the auditor's command line, on this crate alone.
//!
//! ```text
//! sealtrail-verify dir --data DIR --vkey LOG.vkey [--since CHECKPOINT] [--kek FILE]
//!                      [--witness-vkey FILE]... [--witness-quorum N]
//! sealtrail-verify proof --vkey LOG.vkey [--since CHECKPOINT] PROOF.json
//! sealtrail-verify bundle --vkey LOG.vkey BUNDLE.tar
//! ```
//! Prints one JSON verdict on stdout; exits 0 when it verified, 1 when it
//! did not, 2 on a usage or reading error. Arguments are parsed by hand so
//! that the binary needs nothing the library does not.

use sealtrail_verify::atrest::Kek;
use sealtrail_verify::witnessed::{MAX_WITNESSES, WitnessPolicy};
use sealtrail_verify::{NoteVerifier, VerifyOptions, bundle, proof, verify_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: sealtrail-verify dir --data DIR --vkey FILE [--since FILE] [--kek FILE] \
[--witness-vkey FILE]... [--witness-quorum N]\n       sealtrail-verify proof --vkey FILE [--since FILE] PROOF\n       \
sealtrail-verify bundle --vkey FILE BUNDLE";
/// Bundles are at most about 1 GiB (100,000 proofs); keys and notes are tiny.
const MAX_INPUT: u64 = 1 << 30;

/// Flags with a value (`--name VALUE`, repeatable) and positional arguments.
struct Args {
    flags: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let (mut flags, mut positional) = (Vec::new(), Vec::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                flags.push((name.to_owned(), value.clone()));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { flags, positional })
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.flags.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
    fn one(&self, name: &str) -> Result<Option<&str>, String> {
        match self.all(name)[..] {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(format!("--{name} given twice")),
        }
    }
    fn required(&self, name: &str) -> Result<&str, String> {
        self.one(name)?.ok_or_else(|| format!("--{name} is required"))
    }
    fn only(&self, known: &[&str], positional: usize) -> Result<(), String> {
        if let Some((n, _)) = self.flags.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            return Err(format!("unknown option --{n}"));
        }
        if self.positional.len() != positional {
            return Err(format!("expected {positional} file argument(s)"));
        }
        Ok(())
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let err = |e: std::io::Error| format!("{path}: {e}");
    let mut bytes = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take`, checked below
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(format!("{path}: larger than {MAX_INPUT} bytes"));
    }
    Ok(bytes)
}

fn text(path: &str) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("{path}: not UTF-8"))
}

fn vkey(path: &str, witness: bool) -> Result<NoteVerifier, String> {
    let parse = if witness { NoteVerifier::from_witness_vkey } else { NoteVerifier::from_vkey };
    parse(text(path)?.trim_end_matches('\n')).map_err(|e| format!("{path}: {e}"))
}

fn dir(a: &Args) -> Result<(bool, Value), String> {
    a.only(&["data", "vkey", "since", "kek", "witness-vkey", "witness-quorum"], 0)?;
    let log = vkey(a.required("vkey")?, false)?;
    let since = a.one("since")?.map(text).transpose()?;
    let kek = a.one("kek")?.map(read).transpose()?;
    let kek = kek.map(|k| Kek::parse(&k)).transpose().map_err(|e| e.to_string())?;
    let witnesses =
        a.all("witness-vkey").into_iter().map(|w| vkey(w, true)).collect::<Result<Vec<_>, _>>()?;
    let quorum: usize = match a.one("witness-quorum")? {
        Some(q) => q.parse().map_err(|_| format!("--witness-quorum {q:?} is not a number"))?,
        None => witnesses.len(),
    };
    if !witnesses.is_empty() && !(1..=witnesses.len().min(MAX_WITNESSES)).contains(&quorum) {
        let n = witnesses.len();
        return Err(format!("--witness-quorum must be 1..={n} (the witness keys given)"));
    }
    let policy = WitnessPolicy { witnesses, quorum };
    let opts = VerifyOptions {
        since: since.as_deref(),
        kek: kek.as_ref(),
        witness: (!policy.witnesses.is_empty()).then_some(&policy),
        ..Default::default()
    };
    let r = verify_dir(Path::new(a.required("data")?), &log, opts).map_err(|e| e.to_string())?;
    Ok((r.ok, serde_json::to_value(&r).map_err(|e| e.to_string())?))
}

fn proof(a: &Args) -> Result<(bool, Value), String> {
    a.only(&["vkey", "since"], 1)?;
    let log = vkey(a.required("vkey")?, false)?;
    let since = a.one("since")?.map(text).transpose()?;
    let bytes = read(&a.positional[0])?;
    let verdict = proof::parse_proof(&bytes).and_then(|doc| match doc {
        proof::ProofDocument::Inclusion(p) => proof::verify_inclusion_proof(&p, &log)
            .map(|v| json!({"ok": true, "kind": "inclusion", "index": v.index, "checkpoint_size": v.checkpoint.size})),
        proof::ProofDocument::Consistency(p) => proof::verify_consistency_proof(&p, &log, since.as_deref())
            .map(|v| json!({"ok": true, "kind": "consistency", "old_size": v.old_size, "new_size": v.new_size})),
    });
    Ok(match verdict {
        Ok(v) => (true, v),
        Err(e) => (false, json!({"ok": false, "error": e.to_string()})),
    })
}

fn bundle(a: &Args) -> Result<(bool, Value), String> {
    a.only(&["vkey"], 1)?;
    let log = vkey(a.required("vkey")?, false)?;
    let r = bundle::check_bundle(&read(&a.positional[0])?[..], &log);
    Ok((r.ok(), r.to_json()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, rest)) => Args::parse(rest).and_then(|a| match cmd.as_str() {
            "dir" => dir(&a),
            "proof" => proof(&a),
            "bundle" => bundle(&a),
            _ => Err(USAGE.to_owned()),
        }),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok((ok, verdict)) => {
            println!("{verdict}");
            ExitCode::from(u8::from(!ok))
        }
        Err(e) => {
            eprintln!("sealtrail-verify: {e}");
            ExitCode::from(2)
        }
    }
}
