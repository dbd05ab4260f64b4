//! Who is on the other end of a connection, as far as TLS could tell: the
//! subject of a client certificate verified against `[http] client_ca`,
//! inserted by the accept loop (`net::http`) as a request extension.

/// Longest subject kept, in bytes.
const MAX_SUBJECT_BYTES: usize = 256;

/// A client certificate the TLS layer verified for this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate's Subject CN, else its first DNS name; printable,
    /// at most 256 bytes.
    pub subject: String,
}

impl ClientCertificate {
    /// From a verified end-entity certificate (DER); `None` when it names no
    /// subject usable as a principal.
    pub fn from_der(der: &[u8]) -> Option<ClientCertificate> {
        subject_of(der).map(|subject| ClientCertificate { subject })
    }
}

/// The Subject CN, else the first DNS subject alternative name, with
/// control characters dropped and the length bounded.
pub(crate) fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .find_map(|a| a.as_str().ok().map(str::to_owned));
    let name = cn.or_else(|| {
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
    })?;
    let mut clean = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if clean.len() + c.len_utf8() > MAX_SUBJECT_BYTES {
            break;
        }
        clean.push(c);
    }
    let clean = clean.trim().to_owned();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_the_common_name_else_the_first_dns_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["ehr-01.practice.example".into()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let c = p.self_signed(&key).unwrap();
        assert_eq!(
            subject_of(c.der()).as_deref(),
            Some("ehr-01.practice.example")
        );
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "ehr\u{7}-relay");
        let c = p.self_signed(&key).unwrap();
        assert_eq!(subject_of(c.der()).as_deref(), Some("ehr-relay"));
        assert_eq!(subject_of(b"not a certificate"), None);
    }
}
