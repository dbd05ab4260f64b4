//! The log side of witnessing, run by `serve`: one task per `[[witness]]`
//! submits the latest checkpoint with a consistency proof from the size the
//! witness holds (learned from its 409 answers), verifies the returned
//! cosignature and hands it to the [`CosignedStore`]. Only the latest
//! checkpoint matters, so checkpoints signed while a submission is in
//! flight are coalesced; the ledger writer never waits for a witness.

use super::keys::load_witness_verifier;
use super::server::{MAX_PROOF_LINES, parse_decimal};
use super::store::CosignedStore;
use crate::auth::record::{AuditRecord, record};
use crate::event::{Category, Outcome as EventOutcome};
use crate::ledger::cosignature::{self, WitnessVerifier};
use crate::ledger::log::LedgerPaths;
use crate::ledger::note::{self, MAX_NOTE_LEN};
use crate::ledger::proof::LedgerReader;
use crate::pipeline::{Metrics, Pipeline};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most `[[witness]]` entries.
pub const MAX_WITNESSES: usize = 16;
/// Largest witness answer read.
const MAX_RESPONSE: usize = 64 * 1024;
/// How often the checkpoint file is looked at.
const POLL: Duration = Duration::from_millis(250);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a refusal that goes on is recorded again.
const REFUSAL_RECORD_EVERY: Duration = Duration::from_secs(3600);
/// Most characters of a witness's refusal kept in the event.
const MAX_DETAIL: usize = 512;

/// One `[[witness]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Submission prefix: `POST {url}/add-checkpoint`.
    pub url: String,
    /// The witness's vkey (type 0x04).
    pub vkey_file: PathBuf,
    /// Per request, such as "10s".
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// PEM CA certificates trusted for an https `url` (instead of the web PKI roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_timeout() -> String {
    "10s".into()
}

impl WitnessConfig {
    /// Checks the entry; the error names the key.
    pub fn validate(&self) -> Result<Duration, (&'static str, String)> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err((
                "witness.url",
                format!("{:?} is not an http(s) URL", self.url),
            ));
        }
        if self.vkey_file.as_os_str().is_empty() {
            return Err(("witness.vkey_file", "is required".into()));
        }
        crate::sources::syslog::parse_duration(&self.timeout)
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(300)).contains(d))
            .ok_or_else(|| {
                (
                    "witness.timeout",
                    format!("{:?} is not a duration between 100ms and 5m", self.timeout),
                )
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("[[witness]] {url}: {detail}")]
    Setup { url: String, detail: String },
}

pub struct WitnessMetrics {
    /// `witness_submissions_total{witness, outcome}`: cosigned, conflict,
    /// refused, bad_cosignature, unreachable.
    pub submissions: IntCounterVec,
    /// `witness_cosigned_size{witness}`: size of the latest checkpoint it cosigned.
    pub cosigned_size: IntGaugeVec,
}

#[allow(clippy::panic)] // names are literals; a test renders them
pub fn register(registry: &Registry) -> WitnessMetrics {
    let submissions = IntCounterVec::new(
        Opts::new(
            "witness_submissions_total",
            "checkpoint submissions to witnesses, by outcome",
        ),
        &["witness", "outcome"],
    )
    .unwrap_or_else(|e| panic!("witness_submissions_total: {e}"));
    let cosigned_size = IntGaugeVec::new(
        Opts::new(
            "witness_cosigned_size",
            "size of the latest checkpoint each witness cosigned",
        ),
        &["witness"],
    )
    .unwrap_or_else(|e| panic!("witness_cosigned_size: {e}"));
    for c in [
        Box::new(submissions.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(cosigned_size.clone()),
    ] {
        registry
            .register(c)
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    WitnessMetrics {
        submissions,
        cosigned_size,
    }
}

struct Target {
    url: String,
    verifier: WitnessVerifier,
    timeout: Duration,
    ca_file: Option<PathBuf>,
}

/// Starts one submission task per witness; they end when `shutdown` is
/// cancelled.
pub async fn start(
    data_dir: &Path,
    witnesses: &[WitnessConfig],
    metrics: Arc<Metrics>,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, SubmitError> {
    if witnesses.is_empty() {
        return Ok(Vec::new());
    }
    let mut targets = Vec::new();
    for w in witnesses.iter().take(MAX_WITNESSES) {
        let setup = |detail: String| SubmitError::Setup {
            url: w.url.clone(),
            detail,
        };
        let timeout = w.validate().map_err(|(k, r)| setup(format!("{k}: {r}")))?;
        let verifier = load_witness_verifier(&w.vkey_file).map_err(|e| setup(e.to_string()))?;
        targets.push(Target {
            url: format!("{}/add-checkpoint", w.url.trim_end_matches('/')),
            verifier,
            timeout,
            ca_file: w.ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
        });
    }
    let verifiers: Vec<WitnessVerifier> = targets.iter().map(|t| t.verifier.clone()).collect();
    let ledger_dir = LedgerPaths::new(data_dir).ledger;
    let store = Arc::new(
        tokio::task::spawn_blocking(move || CosignedStore::open(&ledger_dir, &verifiers))
            .await
            .map_err(|e| SubmitError::Setup {
                url: String::new(),
                detail: e.to_string(),
            })?,
    );
    let mut tasks = Vec::new();
    for target in targets {
        let setup = |detail: String| SubmitError::Setup {
            url: target.url.clone(),
            detail,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(target.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &target.ca_file {
            builder = builder.tls_built_in_root_certs(false);
            let certs = crate::tls::load_certs(ca).map_err(|e| setup(e.to_string()))?;
            for der in certs {
                let cert = reqwest::Certificate::from_der(&der)
                    .map_err(|e| setup(format!("ca_file: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| setup(e.to_string()))?;
        tasks.push(tokio::spawn(run_one(Submitter {
            target,
            pipeline: pipeline.clone(),
            client,
            data_dir: data_dir.to_owned(),
            store: store.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        })));
    }
    Ok(tasks)
}

struct Submitter {
    target: Target,
    /// Where refusals are recorded as `system/witness_refused` events.
    pipeline: Pipeline,
    client: reqwest::Client,
    data_dir: PathBuf,
    store: Arc<CosignedStore>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

/// What one submission led to.
enum Outcome {
    Cosigned {
        size: u64,
        checkpoint: String,
    },
    /// The witness holds another size: resubmit from it.
    Conflict(u64),
    /// The witness refused the checkpoint itself (403: not signed by the
    /// log key it knows; 404: it does not know this log; 422: not
    /// consistent with what it cosigned before, a rewritten history).
    Refused {
        status: u16,
        size: u64,
        detail: String,
    },
    Failed(&'static str, String),
}

/// A request for the latest checkpoint, from `old`: (size, note, body).
fn build_request(data_dir: &Path, old: u64) -> Result<(u64, String, String), String> {
    let reader = LedgerReader::open(data_dir).map_err(|e| e.to_string())?;
    let size = reader.checkpoint().size;
    let checkpoint = reader.checkpoint_text().to_owned();
    if old > size {
        return Err(format!(
            "the witness holds size {old}, larger than this log's {size}: a rolled-back log or a fork"
        ));
    }
    let proof = if old == 0 || old == size {
        Vec::new()
    } else {
        reader
            .consistency_proof(old)
            .map_err(|e| e.to_string())?
            .path
    };
    if proof.len() > MAX_PROOF_LINES {
        return Err("consistency proof longer than 63 hashes".into());
    }
    let mut body = format!("old {old}\n");
    for h in &proof {
        body.push_str(h);
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&checkpoint);
    Ok((size, checkpoint, body))
}

impl Submitter {
    fn name(&self) -> &str {
        self.target.verifier.name()
    }

    /// Appends the `system/witness_refused` event of one refusal.
    async fn record_refusal(&self, status: u16, size: u64, detail: &str) -> Result<(), String> {
        let name = self.name().to_owned();
        let rec = AuditRecord {
            category: Category::System,
            action: "witness_refused",
            outcome: EventOutcome::Failure,
            attrs: json!({
                "witness": name,
                "url": self.target.url,
                "status": status,
                "size": size,
                "reason": detail,
            }),
            message: format!(
                "witness {name} refused the checkpoint of {size} segments (HTTP {status}): {detail}"
            ),
            id: Some(format!("witness-refused-{name}-{size}-{status}")),
        };
        record(&self.pipeline, None, None, rec)
            .await
            .map_err(|e| e.to_string())
    }

    async fn submit(&self, old: u64) -> Outcome {
        let data = self.data_dir.clone();
        let built = tokio::task::spawn_blocking(move || build_request(&data, old)).await;
        let (size, checkpoint, body) = match built {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Outcome::Failed("refused", e),
            Err(e) => return Outcome::Failed("refused", e.to_string()),
        };
        let resp = match self.client.post(&self.target.url).body(body).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed("unreachable", e.to_string()),
        };
        let status = resp.status().as_u16();
        let text = match read_limited(resp).await {
            Ok(t) => t,
            Err(e) => return Outcome::Failed("unreachable", e),
        };
        match status {
            200 => {
                let line = match accept_answer(&checkpoint, &text, &self.target.verifier) {
                    Ok(l) => l,
                    Err(e) => return Outcome::Failed("bad_cosignature", e),
                };
                let store = self.store.clone();
                let name = self.name().to_owned();
                let cp = checkpoint.clone();
                match tokio::task::spawn_blocking(move || store.add(&cp, size, &name, &line)).await
                {
                    Ok(Ok(())) => Outcome::Cosigned { size, checkpoint },
                    Ok(Err(e)) => Outcome::Failed("refused", e.to_string()),
                    Err(e) => Outcome::Failed("refused", e.to_string()),
                }
            }
            409 => match text.strip_suffix('\n').and_then(parse_decimal) {
                Some(n) => Outcome::Conflict(n),
                None => Outcome::Failed("refused", "409 without a size".into()),
            },
            s @ (403 | 404 | 422) => Outcome::Refused {
                status: s,
                size,
                detail: text.trim_end().chars().take(MAX_DETAIL).collect(),
            },
            s => Outcome::Failed("refused", format!("HTTP {s}: {}", text.trim_end())),
        }
    }
}

/// The witness's cosignature line out of its 200 answer. The whole answer
/// must verify as extra lines of the note (a bad line by its key rejects
/// it); its first line that verifies on its own is kept.
fn accept_answer(
    checkpoint: &str,
    answer: &str,
    witness: &WitnessVerifier,
) -> Result<String, String> {
    let verifier = std::slice::from_ref(witness);
    cosignature::cosigners(&format!("{checkpoint}{answer}"), verifier)
        .map_err(|e| e.to_string())?;
    answer
        .lines()
        .map(|l| format!("{l}\n"))
        .find(|l| {
            cosignature::cosigners(&format!("{checkpoint}{l}"), verifier)
                .is_ok_and(|c| !c.is_empty())
        })
        .ok_or_else(|| "no cosignature by its key".into())
}

async fn read_limited(mut resp: reqwest::Response) -> Result<String, String> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if buf.len() + chunk.len() > MAX_RESPONSE {
            return Err("answer too large".into());
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| "answer is not utf-8".into())
}

/// The current checkpoint note on disk, if readable.
async fn current_checkpoint(data_dir: &Path) -> Option<String> {
    let path = LedgerPaths::new(data_dir).checkpoint;
    tokio::task::spawn_blocking(move || {
        crate::bounded::read_to_string(&path, MAX_NOTE_LEN as u64).ok()
    })
    .await
    .ok()
    .flatten()
    .filter(|t| note::parse_unverified_checkpoint(t).is_ok())
}

async fn run_one(s: Submitter) {
    let name = s.name().to_owned();
    let count = |outcome: &str| {
        s.metrics
            .witness
            .submissions
            .with_label_values(&[name.as_str(), outcome])
            .inc();
    };
    // The witness's size as we last learned it; a 409 corrects it.
    let mut old = 0u64;
    let mut cosigned: Option<String> = None;
    let mut failures = 0u32;
    let mut conflicts = 0u32;
    // The status of the refusal streak under way and when it was last recorded.
    let mut refused: Option<(u16, std::time::Instant)> = None;
    loop {
        let wait = if failures == 0 {
            POLL
        } else {
            FIRST_BACKOFF
                .saturating_mul(1 << failures.min(8))
                .min(MAX_BACKOFF)
        };
        if failures > 0 || cosigned.is_some() {
            tokio::select! {
                _ = s.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if s.shutdown.is_cancelled() {
            return;
        }
        let Some(current) = current_checkpoint(&s.data_dir).await else {
            failures = failures.saturating_add(1);
            continue;
        };
        if cosigned.as_deref() == Some(current.as_str()) && failures == 0 {
            continue;
        }
        match s.submit(old).await {
            Outcome::Cosigned { size, checkpoint } => {
                count("cosigned");
                s.metrics
                    .witness
                    .cosigned_size
                    .with_label_values(&[name.as_str()])
                    .set(i64::try_from(size).unwrap_or(i64::MAX));
                tracing::debug!(witness = %name, size, "checkpoint cosigned");
                old = size;
                cosigned = Some(checkpoint);
                failures = 0;
                conflicts = 0;
                refused = None;
            }
            Outcome::Conflict(n) => {
                count("conflict");
                old = n;
                conflicts += 1;
                // Two conflicts in a row: the witness moves under us; back off.
                if conflicts > 2 {
                    failures = failures.saturating_add(1);
                }
            }
            Outcome::Refused {
                status,
                size,
                detail,
            } => {
                count("refused");
                // A refusal may be evidence of a rewritten log: recorded (and
                // so alerted on by the rule pack) when a streak starts, then
                // at most once an hour while it lasts.
                let due = refused.is_none_or(|(last, at)| {
                    last != status || at.elapsed() >= REFUSAL_RECORD_EVERY
                });
                if due {
                    tracing::warn!(witness = %name, status, size, %detail, "witness refused the checkpoint");
                    if let Err(e) = s.record_refusal(status, size, &detail).await {
                        tracing::warn!(witness = %name, error = %e, "could not record the witness refusal");
                    } else {
                        refused = Some((status, std::time::Instant::now()));
                    }
                }
                failures = failures.saturating_add(1);
                conflicts = 0;
                continue;
            }
            Outcome::Failed(outcome, detail) => {
                count(outcome);
                if failures.is_multiple_of(16) {
                    tracing::warn!(witness = %name, outcome, %detail, "witness submission failed; retrying");
                }
                failures = failures.saturating_add(1);
                conflicts = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> WitnessConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn validation() {
        let ok = parse("url = \"https://w.example\"\nvkey_file = \"w.vkey\"");
        assert_eq!(ok.validate(), Ok(Duration::from_secs(10)));
        for (text, key) in [
            ("url = \"w.example\"\nvkey_file = \"w.vkey\"", "witness.url"),
            ("url = \"http://w\"\nvkey_file = \"\"", "witness.vkey_file"),
            (
                "url = \"http://w\"\nvkey_file = \"v\"\ntimeout = \"1h\"",
                "witness.timeout",
            ),
        ] {
            assert_eq!(parse(text).validate().unwrap_err().0, key, "{text}");
        }
        assert!(toml::from_str::<WitnessConfig>("url = \"http://w\"").is_err());
    }

    #[test]
    fn answers_are_checked() {
        use crate::ledger::cosignature::WitnessSigner;
        let log = crate::ledger::keys::NoteSigner::generate("log.example/a").unwrap();
        let cp = crate::ledger::note::Checkpoint {
            origin: "log.example/a".into(),
            size: 3,
            root: [1; 32],
            extensions: vec![],
        };
        let note_text = note::sign_checkpoint(&cp, &log).unwrap();
        let w = WitnessSigner::generate("w.example/a").unwrap();
        let impostor = WitnessSigner::generate("w.example/a").unwrap();
        let good = w.cosign(&cp.to_body(), 5).unwrap();
        let other = impostor.cosign(&cp.to_body(), 5).unwrap();
        let v = w.verifier();
        // Another key's line under the same name first: the valid one is kept.
        assert_eq!(
            accept_answer(&note_text, &format!("{other}{good}"), &v),
            Ok(good.clone())
        );
        assert!(accept_answer(&note_text, &other, &v).is_err());
        assert!(accept_answer(&note_text, "", &v).is_err());
        assert!(accept_answer(&note_text, "garbage\n", &v).is_err());
        // A line for another checkpoint.
        let mut cp6 = cp.clone();
        cp6.size = 6;
        let stale = w.cosign(&cp6.to_body(), 5).unwrap();
        assert!(accept_answer(&note_text, &stale, &v).is_err());
    }

    #[test]
    fn config_sections() {
        use crate::config::{Config, ConfigError, RawConfig};
        let load = |text: &str| {
            let raw: RawConfig = toml::from_str(text).unwrap();
            Config::validate(raw, std::path::Path::new("t.toml"))
        };
        let c = load(
            "[[witness]]\nurl = \"https://a\"\nvkey_file = \"a.vkey\"\n\
             [[witness]]\nurl = \"https://b\"\nvkey_file = \"b.vkey\"\ntimeout = \"1s\"\n\
             [publish]\nevery = \"24h\"\nwebhook = \"https://h\"\n",
        )
        .unwrap();
        assert_eq!(c.witnesses.len(), 2);
        assert_eq!(c.publish.every, "24h");
        match load("[[witness]]\nurl = \"a\"\nvkey_file = \"a.vkey\"\n") {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "witness.url"),
            other => panic!("{other:?}"),
        }
        match load("[publish]\nemails = [\"a@b.example\"]\n") {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "publish.every"),
            other => panic!("{other:?}"),
        }
        assert!(load("").unwrap().witnesses.is_empty());
    }

    #[test]
    fn request_from_a_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let signer = crate::ledger::keys::NoteSigner::generate("log.example/a").unwrap();
        let policy = crate::ledger::log::SealPolicy {
            max_events: 2,
            max_age: Duration::from_secs(3600),
        };
        let (mut ledger, _) = crate::ledger::log::Ledger::open(dir.path(), signer, policy).unwrap();
        for i in 0..7u8 {
            let entry = crate::ledger::log::LedgerEntry {
                time_ms: 1_700_000_000_000,
                bytes: format!("{{\"n\":{i}}}").into_bytes(),
            };
            ledger.append(&[entry]).unwrap();
        }
        ledger.close().unwrap();
        let (size, note_text, body) = build_request(dir.path(), 0).unwrap();
        assert!(size >= 3);
        assert_eq!(body, format!("old 0\n\n{note_text}"));
        let (_, _, body) = build_request(dir.path(), 1).unwrap();
        let parsed = super::super::server::parse_request(body.as_bytes()).unwrap();
        assert_eq!(parsed.old, 1);
        assert!(!parsed.proof.is_empty());
        assert_eq!(parsed.note, note_text);
        let (_, _, body) = build_request(dir.path(), size).unwrap();
        assert!(
            super::super::server::parse_request(body.as_bytes())
                .unwrap()
                .proof
                .is_empty()
        );
        assert!(build_request(dir.path(), size + 1).is_err());
    }
}
