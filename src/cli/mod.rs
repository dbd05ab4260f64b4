//! Command-line interface. Thin: parse flags, call the library, map results to
//! exit codes (0 success, 1 a check failed, 2 usage/configuration/I/O error).

use crate::config::Config;
use crate::event::Via;
use crate::ledger::keys::{self, NoteVerifier};
use crate::ledger::proof::LedgerReader;
use crate::ledger::verify::VerifyReport;
use crate::sources::import::{self, Progress};
use anyhow::{Context, Result, bail};
use sealtrail_verify::proof::{
    CONSISTENCY_FORMAT, ConsistencyProof, INCLUSION_FORMAT, InclusionProof,
};

/// `println!` for human output built from untrusted text: control
/// characters are escaped (`term::clean`).
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::cli::term::clean(&format!($($arg)*)))
    };
}

mod backup;
mod demo;
mod key;
mod progress;
mod rules;
mod search;
mod term;
mod tokens;
mod users;
mod witness;
use clap::{Args, Parser, Subcommand};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code when a check failed (integrity, proof, rejected input).
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code for usage, configuration or I/O errors.
pub const EXIT_ERROR: u8 = 2;

/// Largest proof or checkpoint file read.
const MAX_PROOF_FILE: u64 = 16 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "sealtrail",
    version,
    about = "Tamper-evident audit-log SIEM for medical practices"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an Ed25519 signing key: signing.key (PKCS#8, 0600), signing.pub, signing.vkey.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Log origin, used as the key name in checkpoints.
        #[arg(long, default_value = "localhost/sealtrail")]
        name: String,
    },
    /// Append NDJSON events (a file or - for stdin) to the ledger; with
    /// rules, imported events are run through them like served ones.
    Import(ImportArgs),
    /// Verify a data directory, or an evidence bundle, offline with the log's public key.
    Verify {
        #[arg(long, required_unless_present = "bundle", conflicts_with = "bundle")]
        data: Option<PathBuf>,
        /// An evidence bundle (tar) to verify instead of a data directory.
        #[arg(long, conflicts_with = "since")]
        bundle: Option<PathBuf>,
        #[arg(long)]
        vkey: PathBuf,
        /// An older signed checkpoint the log must still extend.
        #[arg(long)]
        since: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Key-encryption key: decrypt and rehash encrypted entries too
        /// (without it their payloads are reported as not checked).
        #[arg(long, conflicts_with = "bundle")]
        kek: Option<PathBuf>,
        /// A trusted witness's vkey (repeatable): require the stored
        /// cosigned checkpoint (ledger/checkpoint.witnessed) to carry its cosignature.
        #[arg(long, conflicts_with = "bundle")]
        witness_vkey: Vec<PathBuf>,
        /// How many of the --witness-vkey witnesses must have cosigned (default: all).
        #[arg(long, requires = "witness_vkey")]
        witness_quorum: Option<usize>,
    },
    /// Print the latest signed checkpoint note.
    Checkpoint {
        #[arg(long)]
        data: PathBuf,
    },
    /// Print a JSON proof: inclusion of one event, or consistency with an older log size.
    Proof(ProofArgs),
    /// Run the service: HTTP ingest and API, sealing into the ledger.
    Serve(ServeArgs),
    /// A running demo: a fresh data directory, a synthetic practice streamed
    /// in live, the console and a one-time sign-in link. Ctrl-C stops it.
    Demo {
        /// A missing or empty folder for the demo's data (default: a new temporary one).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The synthetic practice's seed (default: a random one), for a
        /// demo that plays the same way every time.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Search events (Lucene-style query) on a running service or a data directory.
    Search {
        /// A running service, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with = "data")]
        url: Option<String>,
        /// A data directory (the index is brought up to date when no service runs).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Only events from this long ago until now: 30m, 24h, 7d, 2w.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        /// e.g. 'actor.user:u0042 AND action:export'
        query: String,
    },
    /// Reports for analysts and privacy officers.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Rebuild the search index from the ledger.
    Reindex {
        #[arg(long)]
        data: PathBuf,
    },
    /// Verify a proof file offline (inclusion or consistency).
    VerifyProof {
        #[arg(long)]
        vkey: PathBuf,
        /// For a consistency proof: the older signed checkpoint to check it against.
        #[arg(long)]
        since: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        proof_file: PathBuf,
    },
    /// Generate a synthetic practice: events, lookups and labeled incidents.
    Gen(GenArgs),
    /// Detection rules: check, test with fixtures, replay over the ledger, evaluate against gen labels.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// API tokens: create (printed once), list, revoke; also while `serve` runs.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// People who sign in to the console: add, list, disable, enable, reset.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Keys: the key-encryption key of encryption at rest, and signing-key rotation.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Witness cosigning (C2SP tlog-witness): keygen, serve.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Back up the ledger to a directory (incremental, also while `serve`
    /// runs); `backup verify --to DIR` re-reads and checks a backup.
    Backup(backup::BackupArgs),
    /// Restore a backup directory into a new or empty data directory.
    Restore(backup::RestoreArgs),
    /// Write a self-signed certificate and key (DIR/cert.pem, DIR/key.pem, 0600) for tests and demos.
    Cert {
        #[arg(long)]
        out: PathBuf,
        /// DNS name or IP address the certificate is for (repeatable).
        #[arg(long, required = true)]
        host: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Every access to one patient's record in a period, grouped by user.
    PatientAccess {
        patient: String,
        /// RFC 3339 start (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 end (exclusive).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "json")]
        format: String,
        #[arg(long, conflicts_with = "data")]
        url: Option<String>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// The configuration file and the overrides `serve` and `import` share.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Configuration file (TOML); every key has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Signing key (overrides `ledger.key_file`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Lookup tables folder: staff.csv, patients.csv (overrides `lookups.dir`).
    #[arg(long)]
    lookups: Option<PathBuf>,
    /// Detection rules folder (overrides `rules.dir`).
    #[arg(long)]
    rules: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration file (or the defaults) with the overrides applied.
    fn load(self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(d) = self.data {
            config.data_dir = d;
        }
        if let Some(k) = self.key {
            config.key_file = k;
        }
        if let Some(l) = self.lookups {
            config.lookups.dir = l;
        }
        if let Some(r) = self.rules {
            config.rules.dir = r;
        }
        Ok(config)
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// HTTP listen address (overrides `http.listen`).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Syslog UDP and TCP listen address (overrides `syslog.listen`).
    #[arg(long)]
    syslog: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Days to simulate.
    #[arg(long)]
    days: u32,
    /// Staff accounts (service accounts come on top).
    #[arg(long)]
    users: u32,
    #[arg(long)]
    patients: u32,
    /// Same seed, same output, byte for byte.
    #[arg(long)]
    seed: u64,
    /// Output directory: events.ndjson, staff.csv, patients.csv, labels.ndjson, summary.json.
    #[arg(long)]
    out: PathBuf,
    /// First day (RFC 3339; the run starts at that day's UTC midnight).
    #[arg(long, default_value = crate::r#gen::DEFAULT_START)]
    start: String,
    /// Also post the events to this running server (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    send: Option<String>,
    /// Events per second when sending.
    #[arg(long, default_value_t = 1000.0, requires = "send")]
    rate: f64,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print one JSON line per durable batch: {"lines": n, "last_index": i}.
    #[arg(long)]
    progress: bool,
    /// NDJSON file, or - for standard input.
    input: PathBuf,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false, id = "which")]
pub struct ProofWhich {
    /// Global index of the event.
    #[arg(long, group = "which")]
    index: Option<u64>,
    /// Client-supplied event id.
    #[arg(long, group = "which")]
    id: Option<String>,
    /// Prove the log of this many segments is a prefix of the current one.
    #[arg(long, group = "which")]
    consistency_from: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ProofArgs {
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    which: ProofWhich,
}

/// Parses arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", term::clean(&format!("{e:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Keygen { out, name } => keygen(&out, &name),
        Command::Import(args) => import(args),
        Command::Verify {
            data,
            bundle,
            vkey,
            since,
            json,
            kek,
            witness_vkey,
            witness_quorum,
        } => match (data, bundle) {
            (_, Some(bundle)) => verify_bundle_file(&bundle, &vkey, json),
            (Some(data), None) => {
                if let Some(kek) = kek {
                    let kek = crate::ledger::atrest::Kek::load_file(&kek)?;
                    crate::ledger::atrest::register(&data, kek)?;
                }
                let witness = witness::policy(&witness_vkey, witness_quorum)?;
                verify(&data, &vkey, since.as_deref(), witness.as_ref(), json)
            }
            (None, None) => bail!("give --data DIR or --bundle FILE"),
        },
        Command::Checkpoint { data } => {
            let reader = LedgerReader::open(&data).context("reading the checkpoint")?;
            print!("{}", term::clean_lines(reader.checkpoint_text()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Proof(args) => proof(args),
        Command::Serve(args) => serve(args),
        Command::Demo { data, listen, seed } => demo::run(data, listen, seed),
        Command::Search {
            url,
            data,
            since,
            limit,
            json,
            query,
        } => {
            key::env_kek(data.as_deref())?;
            search::search(search::SearchCmd {
                url: url.as_deref(),
                data: data.as_deref(),
                query: &query,
                since: since.as_deref(),
                limit,
                json,
            })
        }
        Command::Report(ReportCommand::PatientAccess {
            patient,
            from,
            to,
            format,
            url,
            data,
        }) => {
            key::env_kek(data.as_deref())?;
            search::patient_access_report(search::ReportCmd {
                url: url.as_deref(),
                data: data.as_deref(),
                patient: &patient,
                from: from.as_deref(),
                to: to.as_deref(),
                format: &format,
            })
        }
        Command::Reindex { data } => {
            key::env_kek(Some(&data))?;
            search::reindex_cmd(&data)
        }
        Command::VerifyProof {
            vkey,
            since,
            json,
            proof_file,
        } => verify_proof(&vkey, since.as_deref(), json, &proof_file),
        Command::Cert { out, host } => cert(&out, &host),
        Command::Gen(args) => generate(args),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Token(cmd) => tokens::run(cmd),
        Command::User(cmd) => users::run(cmd),
        Command::Key(cmd) => key::run(cmd),
        Command::Witness(cmd) => witness::run(cmd),
        Command::Backup(args) => backup::run_backup(args),
        Command::Restore(args) => backup::run_restore(args),
    }
}

fn generate(args: GenArgs) -> Result<ExitCode> {
    use crate::r#gen as gen_;
    let start = crate::event::Timestamp::parse(&args.start)
        .map_err(|e| anyhow::anyhow!("--start {:?}: {e}", args.start))?;
    let config = gen_::GenConfig {
        days: args.days,
        users: args.users,
        patients: args.patients,
        seed: args.seed,
        start,
    };
    let began = std::time::Instant::now();
    let output = gen_::generate(&config)?;
    gen_::write_dir(&output, &args.out)?;
    eprintln!(
        "wrote {} events and {} labeled incidents to {} in {:.1} s",
        output.events.len(),
        output.labels.len(),
        args.out.display(),
        began.elapsed().as_secs_f64()
    );
    if let Some(url) = args.send {
        let report = gen_::send_events(
            &output.events,
            &gen_::SendOptions {
                url,
                rate: args.rate,
            },
        )?;
        eprintln!(
            "sent {} events in {} batches in {:.1} s ({} busy retries)",
            report.events, report.batches, report.seconds, report.busy_retries
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = args.config.load()?;
    if let Some(l) = args.listen {
        config.http.listen = l;
    }
    if let Some(s) = args.syslog {
        config.syslog.listen = Some(s);
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sealtrail")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::serve::run(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
fn init_logging() {
    init_logging_at("info");
}

fn init_logging_at(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn keygen(out: &Path, name: &str) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = keys::write_key_files(out, name).context("creating the signing key")?;
    println!("{}", files.verifier.to_vkey());
    eprintln!(
        "wrote {}, {} and {}",
        files.signing_key.display(),
        files.public_key.display(),
        files.vkey.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cert(out: &Path, hosts: &[String]) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = crate::tls::write_self_signed(out, hosts).context("creating the certificate")?;
    eprintln!("wrote {} and {}", files.cert.display(), files.key.display());
    Ok(ExitCode::SUCCESS)
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    let config = args.config.load()?;
    let peer = if args.input == Path::new("-") {
        "stdin".to_owned()
    } else {
        args.input.display().to_string()
    };
    let via = Via {
        kind: "import".into(),
        peer: Some(peer),
        principal: None,
    };
    let progress_out = args.progress;
    let on_progress = move |p: Progress| {
        if progress_out {
            let mut out = std::io::stdout().lock();
            let last = p.last_index.map_or("null".to_owned(), |i| i.to_string());
            // A closed stdout only loses progress lines, not events.
            let _ = writeln!(out, "{{\"lines\":{},\"last_index\":{last}}}", p.lines);
            let _ = out.flush();
        }
    };
    let input: Box<dyn std::io::BufRead + Send> = if args.input == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("opening {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    init_logging_at("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let core = crate::serve::Core::start(&config, shutdown.clone()).await?;
        let summary = import::import_ndjson(input, &core.pipeline, via, on_progress).await;
        shutdown.cancel();
        core.stop().await?;
        anyhow::Ok(summary?)
    })?;
    for r in &summary.rejected {
        eprintln!("line {}: {}", r.line, r.error);
    }
    println!(
        "accepted {} rejected {}{}{}",
        summary.accepted,
        summary.rejected.len(),
        if summary.duplicates > 0 {
            format!(" ({} already stored)", summary.duplicates)
        } else {
            String::new()
        },
        summary
            .first_index
            .map(|i| format!(" (first index {i})"))
            .unwrap_or_default()
    );
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

fn read_bounded(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_PROOF_FILE {
        bail!("{} is larger than {MAX_PROOF_FILE} bytes", path.display());
    }
    #[allow(clippy::disallowed_methods)] // size checked just above
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn load_verifier(vkey: &Path) -> Result<NoteVerifier> {
    keys::load_verifier(vkey).context("loading the verifier key")
}

/// The key as the verifier crate's type (read as the service reads it).
fn crate_verifier(vkey: &Path) -> Result<sealtrail_verify::NoteVerifier> {
    Ok(crate::ledger::verify::crate_verifier(&load_verifier(
        vkey,
    )?)?)
}

fn verify(
    data: &Path,
    vkey: &Path,
    since: Option<&Path>,
    witness: Option<&crate::ledger::witnessed::WitnessPolicy>,
    json: bool,
) -> Result<ExitCode> {
    let verifier = load_verifier(vkey)?;
    let since_text = since.map(read_bounded).transpose()?;
    let bar = progress::VerifyProgress::new(true);
    let report = crate::ledger::verify::verify_data_dir_with(
        data,
        &verifier,
        since_text.as_deref(),
        witness,
        Some(&mut |p| bar.update(p)),
    )?;
    drop(bar);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

fn verify_bundle_file(file: &Path, vkey: &Path, json: bool) -> Result<ExitCode> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    let verifier = crate_verifier(vkey)?;
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let report = sealtrail_verify::bundle::check_bundle(BufReader::new(input), &verifier);
    if json {
        println!("{}", report.to_json());
    } else {
        let verdict = if report.ok() { "OK" } else { "FAILED" };
        say!("evidence bundle verification: {verdict}");
        if let Some(q) = &report.query {
            say!("  query: {}", serde_json::to_string(q)?);
        }
        if let Some(cp) = &report.checkpoint {
            say!(
                "  checkpoint: {} segments, root {}",
                cp.size,
                B64.encode(cp.root)
            );
        }
        say!("  events proven: {}", report.events);
        for e in &report.errors {
            let member = e.member.unwrap_or("archive");
            let index = e.index.map(|i| format!(", event {i}")).unwrap_or_default();
            say!("  error [{}] {member}{index}: {e}", e.kind);
        }
        if report.errors_omitted > 0 {
            say!("  ... and {} more errors", report.errors_omitted);
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

fn print_report(r: &VerifyReport) {
    let verdict = if r.ok { "OK" } else { "FAILED" };
    say!("ledger verification: {verdict}");
    say!("  segments: {}   events verified: {}", r.segments, r.events);
    for u in r.unverified.iter().filter(|u| u.reason == "uncovered") {
        say!(
            "  not verified: events {}..{} (segments {}..{}) are not covered by a signed checkpoint",
            u.first_index,
            u.end_index,
            u.first_segment,
            u.end_segment
        );
    }
    if let (Some(a), Some(b)) = (&r.first_time, &r.last_time) {
        say!("  event times: {a} .. {b}");
    }
    if let Some(cp) = &r.checkpoint {
        say!("  checkpoint: {} segments, root {}", cp.size, cp.root);
    }
    if let Some(cp) = &r.since {
        say!(
            "  consistent with older checkpoint of {} segments: {}",
            cp.size,
            if r.ok { "yes" } else { "see errors" }
        );
    }
    if let Some(w) = &r.witnessed {
        say!(
            "  witnessed: {} segments, root {}, cosigned by {}",
            w.size,
            w.root,
            w.cosigners.join(", ")
        );
    }
    for t in &r.key_transitions {
        say!(
            "  signing key {} -> {} after {} segments (event {})",
            t.old_key_id,
            t.new_key_id,
            t.size,
            t.index
        );
    }
    if r.unsealed_events > 0 {
        say!(
            "  unsealed events (durable, sealed within a second of activity): {}",
            r.unsealed_events
        );
    }
    for w in &r.warnings {
        say!("  warning: {w}");
    }
    for e in &r.errors {
        let segment = e
            .segment
            .map(|s| format!("segment {s}"))
            .unwrap_or_else(|| "log".into());
        let index = e.index.map(|i| format!(", event {i}")).unwrap_or_default();
        say!("  error [{}] {segment}{index}: {}", e.kind, e.detail);
    }
    if r.errors_omitted > 0 {
        say!("  ... and {} more errors", r.errors_omitted);
    }
}

fn proof(args: ProofArgs) -> Result<ExitCode> {
    key::env_kek(Some(&args.data))?;
    let reader = LedgerReader::open(&args.data).context("opening the ledger")?;
    let text = if let Some(old) = args.which.consistency_from {
        serde_json::to_string_pretty(&reader.consistency_proof(old)?)?
    } else {
        let index = match (args.which.index, args.which.id) {
            (Some(i), _) => i,
            (None, Some(id)) => find_by_id(&reader, &id)?,
            (None, None) => bail!("give --index, --id or --consistency-from"),
        };
        serde_json::to_string_pretty(&reader.inclusion_proof(index)?)?
    };
    println!("{}", term::json_safe(&text));
    Ok(ExitCode::SUCCESS)
}

/// Finds the newest sealed event with client id `id` by scanning segments
/// from the newest. (The id index of the ingestion service makes this a lookup.)
fn find_by_id(reader: &LedgerReader, id: &str) -> Result<u64> {
    for number in (0..reader.checkpoint().size).rev() {
        let path = reader.paths().segment(number, true);
        let mut frames = crate::ledger::segment::FrameReader::open(&path)?;
        let first = frames.header.first_index;
        let mut found = None;
        let mut i = 0u64;
        while let Some(frame) = frames.next_frame()? {
            if crate::event::entry_event_id(&frame.payload).as_deref() == Some(id) {
                found = Some(first + i);
            }
            i += 1;
        }
        if let Some(index) = found {
            return Ok(index);
        }
    }
    bail!("no sealed event has id {id:?}")
}

fn verify_proof(vkey: &Path, since: Option<&Path>, json: bool, file: &Path) -> Result<ExitCode> {
    // Exit 2 only for what is not the proof's fault: the key or the files
    // cannot be read. Anything wrong inside the proof is INVALID (exit 1).
    let verifier = crate_verifier(vkey)?;
    let bytes = std::fs::File::open(file)
        .and_then(|f| crate::bounded::read_bounded(f, MAX_PROOF_FILE))
        .with_context(|| format!("reading {}", file.display()))?;
    let old = since.map(read_bounded).transpose()?;
    let outcome = check_proof_bytes(&bytes, &verifier, old.as_deref());
    match outcome {
        Ok(v) => {
            if json {
                println!("{v}");
            } else {
                say!("proof OK: {v}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((kind, e)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e, "errors": [{"kind": kind, "detail": e}]})
                );
            } else {
                say!("proof INVALID: {e}");
            }
            Ok(ExitCode::from(EXIT_CHECK_FAILED))
        }
    }
}

/// Parses (LEDGER.md §12: one JSON rule) and checks a proof file's bytes.
/// The error carries a kind: `json` (the rule of §12), `format` (not a
/// proof of a known format and shape) or `proof` (a check failed).
fn check_proof_bytes(
    bytes: &[u8],
    verifier: &sealtrail_verify::NoteVerifier,
    old: Option<&str>,
) -> std::result::Result<serde_json::Value, (&'static str, String)> {
    use sealtrail_verify::proof;
    let value = sealtrail_verify::json::parse_strict(bytes)
        .map_err(|e| ("json", format!("the proof file: {e}")))?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    match format {
        INCLUSION_FORMAT => {
            let p: InclusionProof = serde_json::from_value(value)
                .map_err(|e| ("format", format!("malformed inclusion proof: {e}")))?;
            proof::verify_inclusion_proof(&p, verifier)
                .map(|v| {
                    serde_json::json!({"ok": true, "kind": "inclusion", "index": v.index,
                        "checkpoint_size": v.checkpoint.size})
                })
                .map_err(|e| ("proof", e.to_string()))
        }
        CONSISTENCY_FORMAT => {
            let p: ConsistencyProof = serde_json::from_value(value)
                .map_err(|e| ("format", format!("malformed consistency proof: {e}")))?;
            proof::verify_consistency_proof(&p, verifier, old)
                .map(|v| serde_json::json!({"ok": true, "kind": "consistency", "old_size": v.old_size, "new_size": v.new_size}))
                .map_err(|e| ("proof", e.to_string()))
        }
        other => Err(("format", format!("unknown proof format {other:?}"))),
    }
}

/// Appends an `admin/<action>` event (source `sealtrail`, via `cli`) through
/// the normal ingest path, as `import` does: the service must not be
/// running on the data directory (it holds the ledger's lock).
pub(crate) fn record_admin_event(
    config: &Config,
    action: &str,
    message: String,
    attrs: serde_json::Value,
) -> Result<()> {
    use crate::event::{Category, Event, Outcome, Timestamp};
    use crate::pipeline::{IngestBatch, Item};
    let mut e = Event::new(Timestamp::now(), Category::Admin, action, Outcome::Success);
    e.source = Some(crate::event::Source {
        system: "sealtrail".into(),
        host: None,
    });
    e.message = Some(message);
    e.attrs = attrs.as_object().cloned();
    let batch = IngestBatch {
        via: Via {
            kind: "cli".into(),
            peer: None,
            principal: None,
        },
        items: vec![Item::Event(e)],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let core = crate::serve::Core::start(config, shutdown.clone()).await?;
        let receipt = core.pipeline.submit(batch).await;
        shutdown.cancel();
        core.stop().await?;
        receipt.map(|_| ()).map_err(anyhow::Error::from)
    })
}
