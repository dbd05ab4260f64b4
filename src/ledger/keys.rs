//! Ed25519 keys for C2SP signed notes: key ids, `vkey` lines and key files.
//!
//! A key is named (the name is the checkpoint origin) and identified by
//! `SHA-256(name || 0x0A || 0x01 || public key)[..4]`, as C2SP `signed-note`
//! specifies for Ed25519.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;

use super::hash::sha256;

/// C2SP signed-note signature type byte for Ed25519.
pub const ALG_ED25519: u8 = 0x01;

/// Key files are a few hundred bytes; anything bigger is not a key file.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// File names written by [`write_key_files`].
pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const PUBLIC_KEY_FILE: &str = "signing.pub";
pub const VKEY_FILE: &str = "signing.vkey";

/// Why a key, vkey or key file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "invalid key name {name:?}: must be non-empty without whitespace, control characters or '+'"
    )]
    InvalidName { name: String },
    #[error("vkey must be <name>+<key id>+<key>")]
    VkeyFields,
    #[error("vkey key id must be 8 lowercase hex digits")]
    VkeyKeyIdHex,
    #[error("vkey key is not standard base64")]
    VkeyBase64,
    #[error("vkey key has {len} bytes, want 33")]
    VkeyLength { len: usize },
    #[error("vkey algorithm {alg:#04x} is not ed25519 (0x01)")]
    VkeyAlgorithm { alg: u8 },
    #[error("vkey public key is not a valid ed25519 point")]
    VkeyPublicKey,
    #[error("vkey key id {got} does not match the key, want {want}")]
    VkeyKeyIdMismatch { got: String, want: String },
    #[error("private key is not a valid ed25519 pkcs#8 pem")]
    Pkcs8Decode,
    #[error("encoding key as pem failed")]
    PemEncode,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: already exists, refusing to overwrite")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: larger than {max} bytes, not a key file")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path}: not utf-8 text")]
    NotUtf8 { path: PathBuf },
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
    #[error("{vkey_file}: missing; the signing key's name comes from this file")]
    VkeyFileMissing { vkey_file: PathBuf },
    #[error("{vkey_file}: public key does not match the private key in {key_file}")]
    KeyMismatch {
        key_file: PathBuf,
        vkey_file: PathBuf,
    },
}

/// C2SP signed-note key name rules (non-empty, no Unicode whitespace, no
/// '+'), plus no control characters, which could not survive a note line.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let bad = name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+');
    if bad {
        return Err(KeyError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[..4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 2 + 32);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_ED25519);
    buf.extend_from_slice(key.as_bytes());
    let [a, b, c, d, ..] = sha256(&buf);
    [a, b, c, d]
}

/// A named Ed25519 signing key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id()))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A fresh key from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::generate(&mut OsRng),
        })
    }

    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::Pkcs8Decode)?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// From a raw 32-byte seed, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// PKCS#8 v1 (RFC 8410 form, seed only): OpenSSL 3.0 and pyca/cryptography
    /// refuse the v2 form (RFC 5958, with the public key) that ed25519-dalek
    /// writes by default. [`Self::from_pkcs8_pem`] reads both.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let v1 = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        v1.to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::PemEncode)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// Ed25519 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    pub fn verifier(&self) -> NoteVerifier {
        let key = self.key.verifying_key();
        NoteVerifier {
            key_id: key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }
}

/// A named Ed25519 public key, as in a C2SP `vkey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

/// Parses a C2SP vkey line `<name>+<8 hex key id>+<base64(alg || key)>`
/// whose algorithm byte must be `alg` and whose key id must be
/// `id_of(name, key)` (log keys and witness keys differ only there).
pub(crate) fn parse_vkey(
    line: &str,
    alg: u8,
    id_of: fn(&str, &VerifyingKey) -> [u8; 4],
) -> Result<(String, [u8; 4], VerifyingKey), KeyError> {
    // The name has no '+' but base64 may, so split at most twice.
    let mut parts = line.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KeyError::VkeyFields);
    };
    check_name(name)?;
    let id_ok = id_hex.len() == 8
        && id_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let mut got_id = [0u8; 4];
    if !id_ok || hex::decode_to_slice(id_hex, &mut got_id).is_err() {
        return Err(KeyError::VkeyKeyIdHex);
    }
    // base64 of 33 bytes is 44 characters; bound before decoding.
    if key_b64.len() != 44 {
        return Err(KeyError::VkeyBase64);
    }
    let raw = STANDARD.decode(key_b64).map_err(|_| KeyError::VkeyBase64)?;
    let (got_alg, pk) = match raw.split_first() {
        Some((a, pk)) if pk.len() == 32 => (*a, pk),
        _ => return Err(KeyError::VkeyLength { len: raw.len() }),
    };
    if got_alg != alg {
        return Err(KeyError::VkeyAlgorithm { alg: got_alg });
    }
    let pk: [u8; 32] = pk
        .try_into()
        .map_err(|_| KeyError::VkeyLength { len: raw.len() })?;
    let key = VerifyingKey::from_bytes(&pk).map_err(|_| KeyError::VkeyPublicKey)?;
    let want_id = id_of(name, &key);
    if want_id != got_id {
        return Err(KeyError::VkeyKeyIdMismatch {
            got: id_hex.to_owned(),
            want: hex::encode(want_id),
        });
    }
    Ok((name.to_owned(), want_id, key))
}

impl NoteVerifier {
    /// Parse `<name>+<8 hex key id>+<base64(0x01 || public key)>`.
    pub fn from_vkey(line: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_vkey(line, ALG_ED25519, key_id)?;
        Ok(Self { name, key_id, key })
    }

    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }

    /// The public key as SPKI PEM, for tools that do not speak vkey.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| KeyError::PemEncode)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// Paths written by [`write_key_files`] and the matching verifier.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    pub signing_key: PathBuf,
    pub public_key: PathBuf,
    pub vkey: PathBuf,
    pub verifier: NoteVerifier,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `path`, which must not exist (else an `AlreadyExists` error),
/// with `mode` on Unix, writes `data` and syncs it. Every key file sealtrail
/// writes (signing, TLS, masking) is made here.
pub(crate) fn write_new_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation so the secret is never readable by others, not
        // even between create and chmod.
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn create_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    write_new_file(path, data, mode).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => io_err(path)(e),
    })
}

/// Generate a key named `name` and write `signing.key` (PKCS#8 PEM, mode
/// 0600), `signing.pub` (SPKI PEM) and `signing.vkey` into the existing
/// directory `dir`. Refuses if any of the three files exists.
pub fn write_key_files(dir: &Path, name: &str) -> Result<KeyFiles, KeyError> {
    let signer = NoteSigner::generate(name)?;
    let verifier = signer.verifier();
    let files = KeyFiles {
        signing_key: dir.join(SIGNING_KEY_FILE),
        public_key: dir.join(PUBLIC_KEY_FILE),
        vkey: dir.join(VKEY_FILE),
        verifier,
    };
    // Check all three up front so a refusal leaves nothing half-written;
    // create_new below still guards against a race.
    for path in [&files.signing_key, &files.public_key, &files.vkey] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::AlreadyExists { path: path.clone() });
        }
    }
    let pem = signer.to_pkcs8_pem()?;
    create_new(&files.signing_key, pem.as_bytes(), 0o600)?;
    let public_pem = files.verifier.public_key_pem()?;
    create_new(&files.public_key, public_pem.as_bytes(), 0o644)?;
    let vkey = format!("{}\n", files.verifier.to_vkey());
    create_new(&files.vkey, vkey.as_bytes(), 0o644)?;
    Ok(files)
}

/// Read a small text file, refusing anything over [`MAX_KEY_FILE_LEN`].
fn read_bounded(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut buf = Zeroizing::new(Vec::new());
    // Read one byte past the limit to tell "exactly at" from "over".
    #[allow(clippy::disallowed_methods)] // bounded by `take`
    f.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            max: MAX_KEY_FILE_LEN,
        });
    }
    let text = std::str::from_utf8(&buf).map_err(|_| KeyError::NotUtf8 {
        path: path.to_owned(),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

fn in_file(path: &Path) -> impl FnOnce(KeyError) -> KeyError + '_ {
    move |e| KeyError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Load a verifier from a vkey file (one vkey line, optional final newline).
pub fn load_verifier(vkey_file: &Path) -> Result<NoteVerifier, KeyError> {
    let text = read_bounded(vkey_file)?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    NoteVerifier::from_vkey(line).map_err(in_file(vkey_file))
}

/// Load a signing key from its PKCS#8 PEM file. The key's name comes from
/// the sibling `.vkey` file (`signing.key` → `signing.vkey`), whose public
/// key must match the private key.
pub fn load_signer(key_file: &Path) -> Result<NoteSigner, KeyError> {
    let vkey_file = key_file.with_extension("vkey");
    if vkey_file == key_file {
        // A key file named "*.vkey" has no distinct sibling to read.
        return Err(KeyError::VkeyFileMissing { vkey_file });
    }
    let verifier = match load_verifier(&vkey_file) {
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::VkeyFileMissing { vkey_file });
        }
        other => other?,
    };
    let pem = read_bounded(key_file)?;
    let signer = NoteSigner::from_pkcs8_pem(&verifier.name, &pem).map_err(in_file(key_file))?;
    if signer.key.verifying_key() != verifier.key {
        return Err(KeyError::KeyMismatch {
            key_file: key_file.to_owned(),
            vkey_file,
        });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vkey_round_trip() {
        let s = NoteSigner::generate("log.example/a").unwrap();
        let v = s.verifier();
        let line = v.to_vkey();
        assert!(line.starts_with("log.example/a+"));
        let back = NoteVerifier::from_vkey(&line).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.key_id(), s.key_id());
        assert_eq!(back.to_vkey(), line);
    }

    #[test]
    fn key_id_is_hand_computed_sha256() {
        // RFC 8032 test 1 secret key.
        let sk: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let s = NoteSigner {
            name: "example.com/log".into(),
            key: SigningKey::from_bytes(&sk),
        };
        let pk = s.verifier().verifying_key().to_bytes();
        assert_eq!(
            hex::encode(pk),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let mut input = b"example.com/log\n\x01".to_vec();
        input.extend_from_slice(&pk);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&input);
        assert_eq!(s.key_id(), digest[..4]);
    }

    #[test]
    fn go_sumdb_note_vkeys_parse() {
        // golang.org/x/mod/sumdb/note tests; the second (transparency-dev
        // formats tests) has a '+' inside its base64.
        for vkey in [
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
            "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        ] {
            let v = NoteVerifier::from_vkey(vkey).unwrap();
            assert_eq!(v.to_vkey(), vkey);
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a b", "a+b", "a\nb", "a\tb", "a\u{a0}b", "a\u{7}b"] {
            assert!(matches!(
                NoteSigner::generate(bad),
                Err(KeyError::InvalidName { .. })
            ));
        }
        assert!(NoteSigner::generate("sealtrail.example/practice-1").is_ok());
    }

    #[test]
    fn malformed_vkeys_are_rejected() {
        let v = NoteSigner::generate("n").unwrap().verifier();
        let id = hex::encode(v.key_id());
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(v.verifying_key().as_bytes());
        let good_b64 = STANDARD.encode(&raw);
        let mut alg2 = raw.clone();
        alg2[0] = 0x02;
        type Check = fn(&KeyError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("n".into(), |e| matches!(e, KeyError::VkeyFields)),
            (format!("n+{id}"), |e| matches!(e, KeyError::VkeyFields)),
            (format!("n+{}A+{good_b64}", &id[..7]), |e| {
                matches!(e, KeyError::VkeyKeyIdHex)
            }),
            (format!("n+{}+{good_b64}", &id[..6]), |e| {
                matches!(e, KeyError::VkeyKeyIdHex)
            }),
            (format!("n+{id}+{}", STANDARD.encode(&raw[..32])), |e| {
                matches!(e, KeyError::VkeyLength { len: 32 })
            }),
            (format!("n+{id}+{}", &good_b64[..43]), |e| {
                matches!(e, KeyError::VkeyBase64)
            }),
            (format!("n+{id}+{}*", &good_b64[..43]), |e| {
                matches!(e, KeyError::VkeyBase64)
            }),
            (format!("n+{id}+{}", STANDARD.encode(&alg2)), |e| {
                matches!(e, KeyError::VkeyAlgorithm { alg: 2 })
            }),
            (format!("m+{id}+{good_b64}"), |e| {
                matches!(e, KeyError::VkeyKeyIdMismatch { .. })
            }),
            (format!("n+{id}+{good_b64}\n"), |e| {
                matches!(e, KeyError::VkeyBase64)
            }),
            (format!("a b+{id}+{good_b64}"), |e| {
                matches!(e, KeyError::InvalidName { .. })
            }),
        ];
        assert!(NoteVerifier::from_vkey(&format!("n+{id}+{good_b64}")).is_ok());
        for (line, want) in cases {
            let err = NoteVerifier::from_vkey(&line)
                .err()
                .unwrap_or_else(|| panic!("{line:?} accepted"));
            assert!(want(&err), "{line:?}: {err}");
        }
    }

    #[test]
    fn pem_is_pkcs8_v1_and_v2_still_reads() {
        let s = NoteSigner::from_seed("n", &[7u8; 32]).unwrap();
        let pem = s.to_pkcs8_pem().unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(b64).unwrap();
        // RFC 8410 §7: version 0, OID 1.3.101.112, OCTET STRING(OCTET STRING(seed)).
        let mut want = hex::decode("302e020100300506032b657004220420").unwrap();
        want.extend_from_slice(&[7u8; 32]);
        assert_eq!(der, want);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // A v2 key (RFC 5958, with the public key) as earlier versions wrote it.
        let v2 = s.key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_ne!(v2.as_str(), pem.as_str());
        let back = NoteSigner::from_pkcs8_pem("n", &v2).unwrap();
        assert_eq!(back.verifier(), s.verifier());
    }

    #[test]
    fn pem_round_trip() {
        let s = NoteSigner::generate("n").unwrap();
        let pem = s.to_pkcs8_pem().unwrap();
        let back = NoteSigner::from_pkcs8_pem("n", &pem).unwrap();
        assert_eq!(back.verifier(), s.verifier());
        assert!(
            s.verifier()
                .public_key_pem()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        assert!(matches!(
            NoteSigner::from_pkcs8_pem("n", "not a pem"),
            Err(KeyError::Pkcs8Decode)
        ));
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_files(dir.path(), "log.example").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.signing_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let signer = load_signer(&files.signing_key).unwrap();
        assert_eq!(signer.name(), "log.example");
        assert_eq!(signer.verifier(), files.verifier);
        assert_eq!(load_verifier(&files.vkey).unwrap(), files.verifier);
        let spki = std::fs::read_to_string(&files.public_key).unwrap();
        assert_eq!(spki, files.verifier.public_key_pem().unwrap());

        // Never overwrite.
        let err = write_key_files(dir.path(), "log.example").unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn mismatched_or_missing_vkey_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_files(dir.path(), "log.example").unwrap();
        let other = NoteSigner::generate("log.example").unwrap().verifier();
        std::fs::write(&files.vkey, format!("{}\n", other.to_vkey())).unwrap();
        let err = load_signer(&files.signing_key).unwrap_err();
        assert!(matches!(err, KeyError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("signing.vkey"), "{err}");

        std::fs::remove_file(&files.vkey).unwrap();
        let err = load_signer(&files.signing_key).unwrap_err();
        assert!(matches!(err, KeyError::VkeyFileMissing { .. }), "{err}");

        std::fs::write(&files.vkey, "garbage\n").unwrap();
        let err = load_signer(&files.signing_key).unwrap_err();
        assert!(matches!(err, KeyError::InFile { .. }), "{err}");
        assert!(err.to_string().contains("signing.vkey"), "{err}");
    }

    #[test]
    fn oversized_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.vkey");
        std::fs::write(&path, vec![b'a'; MAX_KEY_FILE_LEN as usize + 1]).unwrap();
        assert!(matches!(
            load_verifier(&path),
            Err(KeyError::TooLarge { .. })
        ));
    }
}
