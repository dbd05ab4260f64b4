//! The user store `DATA/auth/users.json` (0600): each person's name, roles,
//! argon2id password hash and TOTP secret. Changed by `sealtrail user ...`
//! under the auth folder's lock, with atomic writes, each change appended
//! to the change journal; the service re-reads the file when it changes.

use super::password::{self, PasswordError};
use super::totp;
use crate::auth::RoleSet;
use crate::auth::journal::{self, Change, DirLock, StoreError};
use crate::auth::tokens::check_name;
use crate::event::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// At most this many people in a store (disabled ones included).
pub const MAX_USERS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub name: String,
    pub roles: RoleSet,
    /// argon2id PHC string.
    pub password: String,
    /// TOTP secret, base32 (in clear: the file is 0600, see SECURITY).
    pub totp_secret: String,
    #[serde(default)]
    pub disabled: bool,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339 of the last password and TOTP reset.
    #[serde(default)]
    pub reset: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    version: u32,
    users: Vec<UserRecord>,
}

pub fn users_path(data: &Path) -> PathBuf {
    crate::auth::auth_dir(data).join("users.json")
}

fn load_file(path: &Path) -> Result<UserFile, StoreError> {
    let Some(bytes) = journal::read_bounded(path)? else {
        return Ok(UserFile {
            version: 1,
            users: Vec::new(),
        });
    };
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let file: UserFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != 1 {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    if file.users.len() > MAX_USERS {
        return Err(corrupt(format!("more than {MAX_USERS} users")));
    }
    Ok(file)
}

fn save_file(path: &Path, file: &UserFile) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| StoreError::Invalid(format!("users file: {e}")))?;
    journal::write_atomic(path, &bytes)
}

fn change(op: &str, subject: &str, roles: RoleSet, time: String) -> Change {
    Change {
        seq: 0,
        time,
        op: op.into(),
        subject: subject.to_owned(),
        roles: roles.names().into_iter().map(str::to_owned).collect(),
        expires: None,
        by: journal::os_user(),
    }
}

/// A person just added or reset: the TOTP secret to enrol (shown once by
/// the CLI).
pub struct Enrolment {
    pub record: UserRecord,
    pub totp_secret: String,
    pub uri: String,
}

/// Adds a person (`sealtrail user add`). Hashing happens before the lock
/// is taken, so other commands do not wait for it.
pub fn add(
    data: &Path,
    name: &str,
    roles: RoleSet,
    password_text: &str,
) -> Result<Enrolment, UserError> {
    check_name(name)?;
    if roles.is_empty() {
        return Err(StoreError::Invalid("a user needs at least one role".into()).into());
    }
    let hash = password::hash(password_text)?;
    let secret = totp::new_secret();
    let now = Timestamp::now().to_string();
    let record = UserRecord {
        name: name.to_owned(),
        roles,
        password: hash,
        totp_secret: secret.clone(),
        disabled: false,
        created: now.clone(),
        reset: None,
    };
    let dir = crate::auth::auth_dir(data);
    let _lock = DirLock::acquire(&dir)?;
    let path = users_path(data);
    let mut file = load_file(&path)?;
    if file.users.iter().any(|u| u.name == name) {
        return Err(StoreError::Invalid(format!(
            "a user named `{name}` exists already (names are never reused, disabled ones included)"
        ))
        .into());
    }
    if file.users.len() >= MAX_USERS {
        return Err(
            StoreError::Invalid(format!("the store holds {MAX_USERS} users already")).into(),
        );
    }
    file.users.push(record.clone());
    save_file(&path, &file)?;
    journal::append(&dir, change("user_add", name, roles, now))?;
    Ok(Enrolment {
        uri: totp::enrolment_uri(name, &secret),
        totp_secret: secret,
        record,
    })
}

/// Everyone in the store (`sealtrail user list`).
pub fn list(data: &Path) -> Result<Vec<UserRecord>, StoreError> {
    Ok(load_file(&users_path(data))?.users)
}

/// Changes one user under the lock and journals `op`.
fn update(
    data: &Path,
    name: &str,
    op: &str,
    apply: impl FnOnce(&mut UserRecord, &str) -> Result<(), StoreError>,
) -> Result<UserRecord, StoreError> {
    let dir = crate::auth::auth_dir(data);
    let _lock = DirLock::acquire(&dir)?;
    let path = users_path(data);
    let mut file = load_file(&path)?;
    let now = Timestamp::now().to_string();
    let record = {
        let u = file
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| StoreError::Invalid(format!("no user named `{name}`")))?;
        apply(u, &now)?;
        u.clone()
    };
    save_file(&path, &file)?;
    journal::append(&dir, change(op, name, RoleSet::EMPTY, now))?;
    Ok(record)
}

/// Disables a user (`sealtrail user disable`): no sign-in, and the
/// service ends their sessions within a second.
pub fn disable(data: &Path, name: &str) -> Result<UserRecord, StoreError> {
    update(data, name, "user_disable", |u, _| {
        if u.disabled {
            return Err(StoreError::Invalid(format!("`{name}` is disabled already")));
        }
        u.disabled = true;
        Ok(())
    })
}

pub fn enable(data: &Path, name: &str) -> Result<UserRecord, StoreError> {
    update(data, name, "user_enable", |u, _| {
        if !u.disabled {
            return Err(StoreError::Invalid(format!("`{name}` is not disabled")));
        }
        u.disabled = false;
        Ok(())
    })
}

/// A new password and a new TOTP secret (`sealtrail user reset`); the
/// user's sessions end.
pub fn reset(data: &Path, name: &str, password_text: &str) -> Result<Enrolment, UserError> {
    let hash = password::hash(password_text)?;
    let secret = totp::new_secret();
    let record = update(data, name, "user_reset", |u, now| {
        u.password = hash;
        u.totp_secret = secret.clone();
        u.reset = Some(now.to_owned());
        Ok(())
    })?;
    Ok(Enrolment {
        uri: totp::enrolment_uri(name, &secret),
        totp_secret: secret,
        record,
    })
}

/// One person as the service holds them.
#[derive(Debug)]
pub(crate) struct Live {
    pub roles: RoleSet,
    pub password: String,
    pub totp_secret: String,
    pub disabled: bool,
    /// Changes when the password or TOTP secret does: sessions made before
    /// a reset end.
    pub credential_stamp: u64,
}

type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

#[derive(Default)]
pub(crate) struct Table {
    stamp: Stamp,
    pub by_name: HashMap<String, Live>,
}

/// The people the running service knows, reloaded when the file changes.
pub(crate) struct Users {
    path: PathBuf,
    table: RwLock<Arc<Table>>,
}

fn credential_stamp(u: &UserRecord) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(u.password.as_bytes());
    h.update([0]);
    h.update(u.totp_secret.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl Users {
    pub fn open(data: &Path) -> Result<Users, StoreError> {
        let users = Users {
            path: users_path(data),
            table: RwLock::new(Arc::new(Table::default())),
        };
        users.reload()?;
        Ok(users)
    }

    /// Re-reads the file if it changed; a broken file keeps the users in
    /// use. Blocking I/O.
    pub fn reload(&self) -> Result<bool, StoreError> {
        let now = stamp(&self.path);
        if self.current().stamp == now && now.is_some() {
            return Ok(false);
        }
        let file = load_file(&self.path)?;
        let by_name = file
            .users
            .into_iter()
            .map(|u| {
                let live = Live {
                    roles: u.roles,
                    credential_stamp: credential_stamp(&u),
                    password: u.password,
                    totp_secret: u.totp_secret,
                    disabled: u.disabled,
                };
                (u.name, live)
            })
            .collect();
        let table = Arc::new(Table {
            stamp: now,
            by_name,
        });
        match self.table.write() {
            Ok(mut g) => *g = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
        Ok(true)
    }

    pub fn current(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn users_are_added_listed_disabled_reset_and_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let e = add(
            data,
            "alice",
            RoleSet::of(&[Role::Analyst]),
            "a long passphrase",
        )
        .unwrap();
        assert!(e.uri.contains(&e.totp_secret));
        let path = users_path(data);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("a long passphrase"));
        assert!(text.contains("$argon2id$"));
        assert!(
            add(
                data,
                "alice",
                RoleSet::of(&[Role::Admin]),
                "another passphrase"
            )
            .is_err()
        );
        assert!(add(data, "bob", RoleSet::of(&[Role::Admin]), "short").is_err());
        assert!(add(data, "b b", RoleSet::of(&[Role::Admin]), "long enough pass").is_err());

        let users = Users::open(data).unwrap();
        assert!(!users.current().by_name["alice"].disabled);
        let before = users.current().by_name["alice"].credential_stamp;
        disable(data, "alice").unwrap();
        assert!(disable(data, "alice").is_err());
        assert!(users.reload().unwrap());
        assert!(users.current().by_name["alice"].disabled);
        enable(data, "alice").unwrap();
        let r = reset(data, "alice", "a new long passphrase").unwrap();
        assert_ne!(r.totp_secret, e.totp_secret);
        users.reload().unwrap();
        assert_ne!(users.current().by_name["alice"].credential_stamp, before);
        assert_eq!(list(data).unwrap().len(), 1);
        let ops: Vec<_> = journal::read_all(&crate::auth::auth_dir(data))
            .unwrap()
            .into_iter()
            .map(|c| c.op)
            .collect();
        assert_eq!(
            ops,
            ["user_add", "user_disable", "user_enable", "user_reset"]
        );
    }
}
