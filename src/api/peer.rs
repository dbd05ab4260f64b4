//! What the listener knows about the other end of a connection.

/// A verified TLS client certificate (mutual TLS on the HTTP listener),
/// inserted as a request extension; the gate maps it to an ingest
/// principal named by the subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate's Subject CN, else its first DNS name.
    pub subject: String,
}
