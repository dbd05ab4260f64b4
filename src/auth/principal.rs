//! The authenticated party behind a request.

use super::{Role, RoleSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An API token (`sealtrail token create`).
    Token,
    /// A person signed in with password and second factor.
    User,
    /// An ingest client's verified TLS client certificate.
    Certificate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Token name, user name or certificate subject.
    pub name: String,
    pub kind: PrincipalKind,
    pub roles: RoleSet,
    /// When the party last proved who it is (Unix ms): sign-in or
    /// re-authentication for people; token creation for tokens.
    pub authenticated_at_ms: i64,
}

impl Principal {
    /// The name recorded in `via.principal` and as `actor.user` of the
    /// service's own audit events: `token:NAME`, `user:NAME`, `cert:SUBJECT`.
    pub fn qualified_name(&self) -> String {
        let prefix = match self.kind {
            PrincipalKind::Token => "token",
            PrincipalKind::User => "user",
            PrincipalKind::Certificate => "cert",
        };
        format!("{prefix}:{}", self.name)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role)
    }
}
