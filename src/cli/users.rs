//! `sealtrail user add | list | disable | enable | reset`: the people who
//! sign in to the console. Works while `serve` runs (the service re-reads
//! `auth/users.json`); every change goes to the change journal, which the
//! service records in the ledger.

use crate::auth::RoleSet;
use crate::auth::people::password::{MAX_PASSWORD_BYTES, check_new};
use crate::auth::people::users::{self, Enrolment};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a person: password (prompted, or one line on stdin) and TOTP
    /// enrolment (printed once: the otpauth URI and the secret).
    Add {
        #[arg(long)]
        data: PathBuf,
        /// Roles, comma-separated: ingest, analyst, responder, auditor, admin, metrics.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        name: String,
    },
    /// List people: name, roles, state, created.
    List {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Disable a person: no sign-in; their sessions end within a second.
    Disable {
        #[arg(long)]
        data: PathBuf,
        name: String,
    },
    /// Enable a disabled person again.
    Enable {
        #[arg(long)]
        data: PathBuf,
        name: String,
    },
    /// A one-time sign-in link path (`/v1/session/link/TOKEN`, one use,
    /// 10 minutes); honoured only where `[console] sign_in_links = true`.
    Link {
        #[arg(long)]
        data: PathBuf,
        name: String,
    },
    /// A new password and a new TOTP secret (printed once); sessions end.
    Reset {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        password_stdin: bool,
        name: String,
    },
}

pub fn run(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            data,
            role,
            password_stdin,
            name,
        } => {
            let roles = RoleSet::parse_list(&role)?;
            let password = read_password(password_stdin)?;
            let e = users::add(&data, &name, roles, &password)?;
            print_enrolment("added", &e);
        }
        UserCommand::List { data, json } => list(&data, json)?,
        UserCommand::Link { data, name } => {
            if !users::list(&data)?
                .iter()
                .any(|u| u.name == name && !u.disabled)
            {
                bail!("no enabled user named `{name}`");
            }
            let now = crate::event::Timestamp::now().unix_ms();
            let token = crate::auth::people::links::mint(&data, &name, now)?;
            println!("/v1/session/link/{token}");
        }
        UserCommand::Disable { data, name } => {
            users::disable(&data, &name)?;
            println!("disabled {name}");
        }
        UserCommand::Enable { data, name } => {
            users::enable(&data, &name)?;
            println!("enabled {name}");
        }
        UserCommand::Reset {
            data,
            password_stdin,
            name,
        } => {
            let password = read_password(password_stdin)?;
            let e = users::reset(&data, &name, &password)?;
            print_enrolment("reset", &e);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_enrolment(what: &str, e: &Enrolment) {
    println!(
        "{what} {} ({}); enrol this TOTP secret in an authenticator app now, it is not shown again:",
        e.record.name, e.record.roles
    );
    println!("otpauth: {}", e.uri);
    println!("secret:  {}", e.totp_secret);
}

/// The new password: one line of stdin, or typed twice without echo.
fn read_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut bytes = Vec::new();
        #[allow(clippy::disallowed_methods)] // bounded by `take`
        std::io::stdin()
            .take(MAX_PASSWORD_BYTES as u64 + 2)
            .read_to_end(&mut bytes)
            .context("reading the password from standard input")?;
        let text = String::from_utf8(bytes).context("the password is not UTF-8")?;
        let line = text.lines().next().unwrap_or_default();
        line.strip_suffix('\r').unwrap_or(line).to_owned()
    } else {
        let first = rpassword::prompt_password("new password: ")
            .context("reading the password from the terminal (or use --password-stdin)")?;
        check_new(&first)?;
        let again = rpassword::prompt_password("again: ").context("reading the password")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    };
    check_new(&password)?;
    Ok(password)
}

fn list(data: &Path, json: bool) -> Result<()> {
    let all = users::list(data)?;
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|u| {
                serde_json::json!({
                    "name": u.name,
                    "roles": u.roles,
                    "disabled": u.disabled,
                    "created": u.created,
                    "reset": u.reset,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<24} {:<32} {:<9} CREATED", "NAME", "ROLES", "STATE");
    for u in all {
        let state = if u.disabled { "disabled" } else { "active" };
        println!(
            "{:<24} {:<32} {:<9} {}",
            u.name,
            u.roles.to_string(),
            state,
            u.created
        );
    }
    Ok(())
}
