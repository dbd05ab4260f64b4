//! `sealtrail witness keygen|serve`: a C2SP tlog-witness cosigner.

use crate::ledger::keys;
use crate::witness::keys::{load_witness_signer, load_witness_verifier, write_witness_key};
use crate::witness::server::{Witness, app};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Create a witness key: DIR/witness.key (PKCS#8, 0600) and DIR/witness.vkey (C2SP vkey, type 0x04).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// The witness's name, e.g. auditor.example/witness.
        #[arg(long)]
        name: String,
    },
    /// Run the witness: POST /add-checkpoint cosigns checkpoints consistent with what it saw.
    Serve {
        /// witness.key (its name is read from the sibling witness.vkey).
        #[arg(long)]
        key: PathBuf,
        /// Folder for the latest cosigned checkpoint of each log.
        #[arg(long)]
        state: PathBuf,
        /// The vkey of a log to witness (repeatable).
        #[arg(long, required = true)]
        log_vkey: Vec<PathBuf>,
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Serve HTTPS with this certificate chain (PEM; reloaded when it changes).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

pub fn run(cmd: WitnessCommand) -> Result<ExitCode> {
    match cmd {
        WitnessCommand::Keygen { out, name } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let v = write_witness_key(&out, &name).context("creating the witness key")?;
            println!("{}", v.to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Serve {
            key,
            state,
            log_vkey,
            listen,
            tls_cert,
            tls_key,
        } => {
            let mut settings = crate::net::http::ServerSettings::default();
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                settings.tls = Some(crate::net::reload::TlsFiles {
                    cert,
                    key,
                    client: crate::tls::ClientAuth::None,
                });
            }
            serve(&key, &state, &log_vkey, listen, settings)
        }
    }
}

fn serve(
    key: &Path,
    state: &Path,
    log_vkeys: &[PathBuf],
    listen: std::net::SocketAddr,
    settings: crate::net::http::ServerSettings,
) -> Result<ExitCode> {
    super::init_logging();
    let signer = load_witness_signer(key).context("loading the witness key")?;
    let logs = log_vkeys
        .iter()
        .map(|p| keys::load_verifier(p).with_context(|| format!("loading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let name = signer.name().to_owned();
    let tls = crate::net::http::load_tls(&settings).context("loading the https certificate")?;
    let witness =
        Arc::new(Witness::open(signer, state, logs).context("loading the witness state")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("witness")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr().context("local address")?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            crate::serve::wait_for_signal().await;
            stop.cancel();
        });
        tracing::info!(%addr, witness = %name, "sealtrail witness is serving addr={addr}");
        crate::net::http::serve(
            listener,
            app(witness),
            settings,
            tls,
            crate::pipeline::Metrics::new(),
            shutdown,
        )
        .await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The `verify --witness-vkey/--witness-quorum` policy (None without keys).
pub fn policy(
    vkeys: &[PathBuf],
    quorum: Option<usize>,
) -> Result<Option<crate::ledger::witnessed::WitnessPolicy>> {
    if vkeys.is_empty() {
        return Ok(None);
    }
    let witnesses = vkeys
        .iter()
        .map(|p| load_witness_verifier(p).with_context(|| format!("loading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let quorum = quorum.unwrap_or(witnesses.len());
    if quorum == 0 || quorum > witnesses.len() {
        anyhow::bail!(
            "--witness-quorum {quorum} must be between 1 and the {} witness key(s) given",
            witnesses.len()
        );
    }
    Ok(Some(crate::ledger::witnessed::WitnessPolicy {
        witnesses,
        quorum,
    }))
}
