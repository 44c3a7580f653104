//! A store's identity on the wire and on disk, written once for the hub
//! and the agent: the bodies of `POST /v1/enroll` (a one-time code and a
//! certificate signing request) and `POST /v1/renew` (a CSR over the
//! store's current mutual-TLS identity), the answer to both, and the
//! layout of the identity bundle file (docs/sync.md).

use serde::{Deserialize, Serialize};

/// The enrollment endpoint (server-authenticated TLS, no client
/// certificate).
pub const ENROLL_PATH: &str = "/v1/enroll";
/// The renewal endpoint (mutual TLS with the store's current certificate).
pub const RENEW_PATH: &str = "/v1/renew";
/// Largest body of either request, in bytes.
pub const MAX_IDENTITY_BODY: usize = 16 * 1024;

/// `POST /v1/enroll`: a store asks for its first certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The store id the code was made for.
    pub store: String,
    /// The one-time enrollment code HQ gave the store.
    pub code: String,
    /// A PKCS#10 certificate signing request (PEM) for the key the store
    /// made; the hub takes only its public key (and checks its
    /// signature), never its subject or extensions.
    pub csr: String,
}

/// `POST /v1/renew`: a store asks for a new certificate for a new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A PKCS#10 certificate signing request (PEM) for the new key.
    pub csr: String,
}

/// The answer to either request: the store's new certificate and the CA
/// certificates it should trust for the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedIdentity {
    /// The store the certificate is bound to.
    pub store: String,
    /// The certificate's serial (lower-case hex).
    pub serial: String,
    /// The certificate (PEM).
    pub certificate: String,
    /// The hub's CA certificates (PEM, one or more: several while a CA
    /// rotation is in progress). The store trusts exactly these.
    pub ca: String,
    /// When the certificate expires (Unix ms).
    pub not_after_ms: u64,
}

/// The identity bundle's text: the certificate, its private key (PKCS#8),
/// then the CA certificate(s), each PEM, in this order. Every certificate
/// after the first is a CA the store trusts for the hub.
pub fn bundle_pem(certificate: &str, private_key: &str, ca: &str) -> String {
    let mut out = String::new();
    for part in [certificate, private_key, ca] {
        out.push_str(part.trim_end());
        out.push('\n');
    }
    out
}
