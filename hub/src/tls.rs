//! TLS for the hub: the rustls server configuration (server certificate
//! from the data directory, client certificates verified against the hub
//! CA) and what a connection's peer certificate says.
//!
//! # Design constraints
//! - Client certificates are *optional at the TLS layer* and *required by
//!   `/v1/sync`*: the admin API authenticates with a bearer token and must
//!   be reachable without a store certificate. A certificate that is
//!   presented must chain to the hub CA, or the handshake fails.
//! - The peer's identity is computed once per connection, right after the
//!   handshake, and handed to every request on it ([`Peer`]).
//! - ring is the crypto provider (no C toolchain beyond what ring needs).

use std::sync::Arc;

use rcgen::PublicKeyData;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::pki::{identity_from_cert, CertIdentity, CertIdentityError, DataDir, PkiError};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PKI file is missing or unreadable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn pem_error(path: &std::path::Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pki(PkiError::BadFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The crypto provider every TLS object of the hub uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The hub's server configuration: its certificate, client certificates
/// optional but verified against the CA, ALPN `h2` and `http/1.1`.
pub fn server_config(dir: &DataDir) -> Result<Arc<ServerConfig>, TlsError> {
    for path in [dir.ca_cert(), dir.server_cert(), dir.server_key()] {
        if !path.exists() {
            return Err(PkiError::NotInitialized(dir.root().to_path_buf()).into());
        }
    }
    let ca_path = dir.ca_cert();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca_path).map_err(|e| pem_error(&ca_path, e))? {
        let cert = cert.map_err(|e| pem_error(&ca_path, e))?;
        roots.add(cert).map_err(|e| pem_error(&ca_path, e))?;
    }
    let cert_path = dir.server_cert();
    let mut chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| pem_error(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&cert_path, e))?;
    if chain.is_empty() {
        return Err(pem_error(&cert_path, "no certificate"));
    }
    // Send the CA too, so clients that only pin the CA build the chain.
    chain.extend(roots_der(&ca_path)?);
    let key_path = dir.server_key();
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| pem_error(&key_path, e))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| pem_error(&key_path, e))?;
    check_pair(&chain[0], &key_pem, &key_path)?;

    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// That the server key (`key_pem`, read from `key_path`) is the key of
/// `cert`: the two files are written one after the other (`init`,
/// `reissue-server-cert`), and a crash between them leaves a pair no
/// client can complete a handshake with. Refused at start, naming the
/// command that repairs it.
fn check_pair(
    cert: &CertificateDer<'_>,
    key_pem: &str,
    key_path: &std::path::Path,
) -> Result<(), TlsError> {
    // A key of a kind this check cannot read is left to rustls.
    let Ok(key) = rcgen::KeyPair::from_pem(key_pem) else {
        return Ok(());
    };
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| pem_error(key_path, e))?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(pem_error(
            key_path,
            "not the key of server.pem (a reissue-server-cert cut short?): run \
             `tally-hub reissue-server-cert --data-dir DIR` again",
        ));
    }
    Ok(())
}

fn roots_der(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))
}

/// Who is on the other end of a connection, as TLS established it. Put in
/// every request's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The remote address.
    pub addr: std::net::SocketAddr,
    /// The store the client certificate is bound to: `None` without a
    /// client certificate, `Some(Err)` for a CA-signed certificate that
    /// names no store.
    pub cert: Option<Result<CertIdentity, CertIdentityError>>,
}

impl Peer {
    /// The peer of an established TLS connection.
    pub fn from_connection(addr: std::net::SocketAddr, conn: &rustls::ServerConnection) -> Self {
        let cert = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|leaf| identity_from_cert(leaf.as_ref()));
        Self { addr, cert }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server key that is not the certificate's (a crash between the
    /// two writes) is refused at start, naming the repair; the repair
    /// works.
    #[test]
    fn a_server_key_that_is_not_the_certificates_is_refused_at_start() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = DataDir::new(tmp.path().join("hub"));
        let clock = tally_sync::clock::ManualClock::new(1_780_000_000_000);
        crate::pki::init(&dir, &[], &clock).unwrap_or_else(|e| panic!("{e}"));
        assert!(server_config(&dir).is_ok());
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.server_key(), other.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
        let e = server_config(&dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("reissue-server-cert"), "{e}");
        crate::pki::reissue_server_cert(&dir, &[], &clock).unwrap_or_else(|e| panic!("{e}"));
        assert!(server_config(&dir).is_ok());
    }
}
