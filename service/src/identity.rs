//! A store's identity on the wire, on disk and in its certificate,
//! written once for the hub and the agent: the bodies of `POST /v1/enroll`
//! (a one-time code and a certificate signing request) and `POST
//! /v1/renew` (a CSR over the store's current mutual-TLS identity), the
//! answer to both, the layout of the identity bundle file (docs/sync.md),
//! and the store a certificate is bound to ([`store_of_certificate`]: its
//! one SAN URI `urn:tally:store:<ID>`), which the hub reads from every
//! client certificate and the agent from the certificate it was issued.

use serde::{Deserialize, Serialize};
use tally_sync::store_id::{check_store_id, StoreIdError};
use tally_sync::ReplicaId;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The SAN URI prefix that binds a certificate to a store.
pub const STORE_URI_PREFIX: &str = "urn:tally:store:";

/// Why a certificate is not bound to a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertStoreError {
    /// Its subject alternative names do not parse.
    #[error("unreadable SAN: {0}")]
    UnreadableSan(String),
    /// No `urn:tally:store:` SAN URI, or several.
    #[error("the certificate is not bound to exactly one store (expected one SAN URI {STORE_URI_PREFIX}<ID>)")]
    NotOneStore,
    /// The id in the SAN URI breaks the store id rule.
    #[error("the certificate names an invalid store id: {0}")]
    BadStore(#[from] StoreIdError),
}

/// The store `cert` is bound to: the id of its one SAN URI
/// `urn:tally:store:<ID>`, checked against the store id rule
/// (`tally_sync::store_id`). Other SANs are ignored.
pub fn store_of_certificate(cert: &X509Certificate<'_>) -> Result<ReplicaId, CertStoreError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertStoreError::UnreadableSan(e.to_string()))?;
    let mut stores = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(uri) => uri.strip_prefix(STORE_URI_PREFIX),
            _ => None,
        });
    let (Some(id), None) = (stores.next(), stores.next()) else {
        return Err(CertStoreError::NotOneStore);
    };
    Ok(check_store_id(id)?)
}

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

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    /// A self-signed certificate with `sans` (URIs, or DNS names when
    /// they do not look like a URI).
    fn cert_der(sans: &[&str]) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans
            .iter()
            .map(|s| {
                if s.contains(':') {
                    SanType::URI((*s).try_into().unwrap())
                } else {
                    SanType::DnsName((*s).try_into().unwrap())
                }
            })
            .collect();
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn store_of(sans: &[&str]) -> Result<ReplicaId, CertStoreError> {
        let der = cert_der(sans);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        store_of_certificate(&cert)
    }

    #[test]
    fn a_certificate_names_its_store_in_exactly_one_san_uri() {
        let s1 = ReplicaId::new("s1").unwrap();
        assert_eq!(store_of(&["urn:tally:store:s1"]), Ok(s1.clone()));
        assert_eq!(
            store_of(&["hub.example", "urn:other:x", "urn:tally:store:s1"]),
            Ok(s1),
            "other names are ignored"
        );
        assert_eq!(store_of(&[]), Err(CertStoreError::NotOneStore));
        assert_eq!(
            store_of(&["hub.example", "urn:other:s1"]),
            Err(CertStoreError::NotOneStore)
        );
        assert_eq!(
            store_of(&["urn:tally:store:s1", "urn:tally:store:s2"]),
            Err(CertStoreError::NotOneStore),
            "two stores are none"
        );
        for bad in [
            "urn:tally:store:hub",
            "urn:tally:store:S1",
            "urn:tally:store:",
        ] {
            assert!(
                matches!(store_of(&[bad]), Err(CertStoreError::BadStore(_))),
                "{bad}"
            );
        }
    }
}
