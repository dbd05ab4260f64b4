//! Who may do what: principals, roles, API tokens, and the deny-by-default
//! gate every HTTP route passes (`gate.rs`).
//!
//! A request is made by a [`Principal`]: an API token (`sealtrail token
//! create`), a person signed in with password and second factor
//! (`people`), or an ingest client's TLS certificate. Each route declares
//! the roles it allows in one table (`gate::ROUTES`); a route missing
//! from it is refused. What a principal did is recorded under its name
//! (`via.principal`, `actor.user` of the service's own audit events).

pub mod changes;
pub mod config;
pub mod gate;
pub mod journal;
pub mod limits;
pub mod metrics;

pub mod people;
pub mod principal;
pub mod record;
pub mod roles;
pub mod tokens;

pub use principal::{Principal, PrincipalKind};
pub use roles::{Role, RoleSet};

use std::path::{Path, PathBuf};

/// The environment variable CLI clients (`search --url`, `report --url`,
/// `gen --url`) read their API token from: argv is visible to every user
/// of the machine.
pub const TOKEN_ENV: &str = "SEALTRAIL_TOKEN";

pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The folder under the data directory holding tokens, users and the change
/// journal (mode 0700; every file in it 0600).
pub fn auth_dir(data: &Path) -> PathBuf {
    data.join("auth")
}
