//! `sealtrail token create|list|revoke`: API tokens, also while the
//! service runs (it re-reads the store within a second and records each
//! change in the ledger).

use crate::auth::RoleSet;
use crate::auth::tokens::{self, TokenRecord};
use crate::event::Timestamp;
use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it once on stdout (only its hash is kept).
    Create {
        #[arg(long)]
        data: PathBuf,
        /// ingest, analyst, responder, auditor, admin or metrics; several
        /// comma-separated.
        #[arg(long)]
        role: String,
        /// Default: token- and 8 hex digits. Never reused.
        #[arg(long)]
        name: Option<String>,
        /// e.g. 90d, 12h; default: no expiry.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens: name, roles, created, expires, state.
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        data: PathBuf,
        name: String,
    },
}

fn state(t: &TokenRecord, now_ms: i64) -> &'static str {
    let expired = t
        .expires
        .as_deref()
        .and_then(|e| Timestamp::parse(e).ok())
        .is_some_and(|e| now_ms >= e.unix_ms());
    match (t.revoked.is_some(), expired) {
        (true, _) => "revoked",
        (false, true) => "expired",
        (false, false) => "active",
    }
}

pub fn run(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create {
            data,
            role,
            name,
            expires,
        } => {
            let roles = RoleSet::parse_list(&role).map_err(|e| anyhow!("--role: {e}"))?;
            let expires = expires
                .map(|e| {
                    crate::pipeline::silence::parse_duration(&e)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| anyhow!("--expires {e:?}: give e.g. 12h or 90d"))
                })
                .transpose()?;
            let created = tokens::create(&data, name.as_deref(), roles, expires)
                .context("creating the token")?;
            eprintln!(
                "token `{}` ({}){}: shown once, keep it secret",
                created.record.name,
                created.record.roles,
                created
                    .record
                    .expires
                    .as_deref()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            println!("{}", created.secret);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { data, json } => {
            let list = tokens::list(&data).context("reading the token store")?;
            let now = Timestamp::now().unix_ms();
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|t| {
                        json!({"name": t.name, "roles": t.roles, "created": t.created,
                               "expires": t.expires, "revoked": t.revoked, "state": state(t, now)})
                    })
                    .collect();
                println!("{}", json!({ "tokens": items }));
            } else {
                println!(
                    "{:<24} {:<28} {:<8} {:<26} EXPIRES",
                    "NAME", "ROLES", "STATE", "CREATED"
                );
                for t in &list {
                    println!(
                        "{:<24} {:<28} {:<8} {:<26} {}",
                        t.name,
                        t.roles.to_string(),
                        state(t, now),
                        t.created,
                        t.expires.as_deref().unwrap_or("never")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { data, name } => {
            tokens::revoke(&data, &name).context("revoking the token")?;
            eprintln!("token `{name}` revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}
