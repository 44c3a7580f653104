//! The store's identity, made and kept on the store's own box: enrolling
//! with a one-time code (`tally-agent enroll`), renewing before expiry,
//! and the pure checks both rely on.
//!
//! # Design constraints
//! - The private key is generated here (ECDSA P-256, rcgen) and never
//!   leaves the process except into the identity bundle, written 0600
//!   through `tally_service::files` (exclusive temporary file, rename).
//! - Only a certificate signing request goes to the hub, which sets the
//!   subject itself; what comes back is checked before it is written: the
//!   certificate is for *our* key and names *our* store.
//! - Enrollment trusts only the CA file HQ handed over (no client
//!   certificate yet); renewal runs over the store's current mutual-TLS
//!   identity. A renewed bundle replaces the old one atomically: a crash
//!   leaves the old bundle (still valid: the hub does not revoke on
//!   renewal) or the new one.
//! - When to renew is a pure function of the certificate's validity and
//!   now ([`renewal_due`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use tally_service::files::{self, FileError, Replace, Visibility};
use tally_service::identity::{
    bundle_pem, store_of_certificate, EnrollRequest, IssuedIdentity, RenewRequest, ENROLL_PATH,
};
use tally_sync::ReplicaId;

/// Renew when less than this percentage of the lifetime is left.
pub const DEFAULT_RENEW_PERCENT_LEFT: u8 = 33;

/// Why enrolling or renewing failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Making the key or the request failed.
    #[error("making the key or signing request: {0}")]
    Key(#[from] rcgen::Error),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle could not be written.
    #[error(transparent)]
    Write(#[from] FileError),
    /// A certificate, CA file or bundle is not what it should be.
    #[error("{0}")]
    Bad(String),
    /// The hub URL is not https.
    #[error("hub URL {0:?} must start with https://")]
    BadUrl(String),
    /// No answer from the hub (connection, TLS, timeout).
    #[error("reaching the hub: {0}")]
    Unreachable(String),
    /// The hub refused (status, its error code and message).
    #[error("the hub refused ({status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code (`enrollment_refused`, `certificate_revoked`, …).
        code: String,
        /// Its message.
        message: String,
    },
}

/// What a certificate says, as far as the agent cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The store in its `urn:tally:store:` SAN URI.
    pub store: String,
    /// Its serial (lower-case hex).
    pub serial: String,
    /// Valid from (Unix ms).
    pub not_before_ms: u64,
    /// Valid until (Unix ms).
    pub not_after_ms: u64,
    /// Its SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
}

fn bad(what: impl std::fmt::Display) -> EnrollError {
    EnrollError::Bad(what.to_string())
}

fn unix_ms(t: x509_parser::time::ASN1Time) -> u64 {
    u64::try_from(t.timestamp())
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// Reads the first certificate of `pem` (a certificate or a bundle).
pub fn cert_info(pem: &str) -> Result<CertInfo, EnrollError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad(format!("no PEM certificate: {e}")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let store = store_of_certificate(&cert).map_err(bad)?;
    let serial = cert
        .raw_serial()
        .iter()
        .skip_while(|&&b| b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(CertInfo {
        store: store.to_string(),
        serial,
        not_before_ms: unix_ms(cert.validity().not_before),
        not_after_ms: unix_ms(cert.validity().not_after),
        spki: cert.public_key().raw.to_vec(),
    })
}

/// Whether a certificate valid from `not_before_ms` to `not_after_ms`
/// should be renewed at `now_ms`: when at most `percent_left` % of its
/// lifetime is left (0: never; 100: always).
pub fn renewal_due(not_before_ms: u64, not_after_ms: u64, now_ms: u64, percent_left: u8) -> bool {
    if percent_left == 0 {
        return false;
    }
    let lifetime = u128::from(not_after_ms.saturating_sub(not_before_ms));
    let left = u128::from(not_after_ms.saturating_sub(now_ms));
    left * 100 <= lifetime * u128::from(percent_left.min(100))
}

/// A new key and a signing request for it. The subject names `store` for
/// humans reading the hub's logs; the hub ignores it.
pub fn key_and_csr(store: &ReplicaId) -> Result<(KeyPair, String), EnrollError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally store");
    dn.push(DnType::CommonName, store.as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// Checks the hub's answer against the request: a certificate for `key`,
/// naming `store`, with at least one CA. The bundle text to write.
pub fn bundle_from(
    issued: &IssuedIdentity,
    key: &KeyPair,
    store: &ReplicaId,
) -> Result<String, EnrollError> {
    let info = cert_info(&issued.certificate)?;
    if info.spki != key.subject_public_key_info() {
        return Err(bad(
            "the hub's certificate is not for the key this store made",
        ));
    }
    if info.store != store.as_str() || issued.store != store.as_str() {
        return Err(bad(format!(
            "the hub's certificate names store {:?}, not {store}",
            info.store
        )));
    }
    if !issued.ca.contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("the hub sent no CA certificate"));
    }
    Ok(bundle_pem(
        &issued.certificate,
        &key.serialize_pem(),
        &issued.ca,
    ))
}

/// The CA certificates of a PEM file or bundle (every certificate after
/// the first in a bundle; all of them in a CA file).
pub fn ca_certs(pem: &[u8], skip_leaf: bool) -> Result<Vec<reqwest::Certificate>, EnrollError> {
    let mut certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| bad(e.to_string()))?;
    if skip_leaf && !certs.is_empty() {
        certs.remove(0);
    }
    if certs.is_empty() {
        return Err(bad("no CA certificate"));
    }
    Ok(certs)
}

/// Reads the answer to an enroll or renew request.
pub(crate) async fn issued_from(resp: reqwest::Response) -> Result<IssuedIdentity, EnrollError> {
    let status = resp.status();
    let bytes = crate::hub_client::read_capped(resp)
        .await
        .map_err(EnrollError::Unreachable)?;
    if !status.is_success() {
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            code: text("error"),
            message: text("message"),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("unreadable answer: {e}")))
}

/// What `tally-agent enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollArgs {
    /// The hub's base URL (`https://…`).
    pub hub: String,
    /// The store id the code was made for.
    pub store: ReplicaId,
    /// The one-time code.
    pub code: String,
    /// The hub CA file HQ gave the store (`ca.pem` of the hub's data
    /// directory).
    pub ca: PathBuf,
    /// Where to write the identity bundle (must not exist).
    pub identity: PathBuf,
    /// Give up after this long.
    pub timeout: Duration,
}

/// What enrollment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The certificate.
    pub cert: CertInfo,
    /// The bundle written.
    pub identity: PathBuf,
}

/// Enrolls this store: a new key, a signing request with the code to the
/// hub over TLS trusting only `ca`, and the bundle written 0600 to
/// `identity` (never over an existing file).
pub async fn enroll(args: &EnrollArgs) -> Result<Enrolled, EnrollError> {
    crate::hub_client::install_crypto();
    if !args.hub.starts_with("https://") {
        return Err(EnrollError::BadUrl(args.hub.clone()));
    }
    if args.identity.exists() {
        return Err(FileError::Exists(args.identity.clone()).into());
    }
    let ca_pem = std::fs::read(&args.ca).map_err(|source| EnrollError::Read {
        path: args.ca.clone(),
        source,
    })?;
    let roots = ca_certs(&ca_pem, false)?;
    let http = reqwest::Client::builder()
        .tls_certs_only(roots)
        .connect_timeout(args.timeout)
        .timeout(args.timeout)
        .build()
        .map_err(|e| EnrollError::Unreachable(e.to_string()))?;
    let (key, csr) = key_and_csr(&args.store)?;
    let req = EnrollRequest {
        store: args.store.to_string(),
        code: args.code.clone(),
        csr,
    };
    let url = format!("{}{ENROLL_PATH}", args.hub.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .json(&req)
        .send()
        .await
        .map_err(|e| EnrollError::Unreachable(crate::hub_client::error_chain(&e)))?;
    let issued = issued_from(resp).await?;
    let bundle = bundle_from(&issued, &key, &args.store)?;
    write_bundle(&args.identity, &bundle, Replace::Never)?;
    Ok(Enrolled {
        cert: cert_info(&bundle)?,
        identity: args.identity.clone(),
    })
}

/// A renewal: the request to send and what is needed to check the answer.
#[derive(Debug)]
pub struct Renewal {
    /// The body of `POST /v1/renew`.
    pub request: RenewRequest,
    key: KeyPair,
    store: ReplicaId,
}

impl Renewal {
    /// A new key for the store of the current certificate `current`.
    pub fn new(current: &CertInfo) -> Result<Self, EnrollError> {
        let store = ReplicaId::new(&current.store).map_err(bad)?;
        let (key, csr) = key_and_csr(&store)?;
        Ok(Self {
            request: RenewRequest { csr },
            key,
            store,
        })
    }

    /// Checks the hub's answer and replaces the bundle at `path` with it,
    /// atomically. The new bundle's text.
    pub fn finish(&self, issued: &IssuedIdentity, path: &Path) -> Result<String, EnrollError> {
        let bundle = bundle_from(issued, &self.key, &self.store)?;
        write_bundle(path, &bundle, Replace::Overwrite)?;
        Ok(bundle)
    }
}

/// Writes a bundle, 0600 from its creation, whole.
fn write_bundle(path: &Path, bundle: &str, replace: Replace) -> Result<(), EnrollError> {
    Ok(files::write_atomic(
        path,
        bundle.as_bytes(),
        Visibility::Private,
        replace,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{ExtendedKeyUsagePurpose, IsCa, Issuer, SanType};
    use tally_service::identity::STORE_URI_PREFIX;

    const DAY: u64 = 86_400_000;

    #[test]
    fn renewal_is_due_in_the_last_part_of_the_lifetime() {
        let (from, to) = (0, 300 * DAY);
        assert!(!renewal_due(from, to, 0, 33));
        assert!(!renewal_due(from, to, 200 * DAY, 33));
        assert!(renewal_due(from, to, 201 * DAY, 33));
        assert!(renewal_due(from, to, 400 * DAY, 33), "expired: renew");
        assert!(!renewal_due(from, to, 299 * DAY, 0), "0: never");
        assert!(renewal_due(from, to, 0, 100), "100: always");
        // A clock before the start is not a reason to renew.
        assert!(!renewal_due(10 * DAY, to, 0, 33));
    }

    /// A CA and a certificate for `key` naming `store`, as the hub makes
    /// them.
    fn issued_for(key: &impl PublicKeyData, store: &str) -> IssuedIdentity {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let mut p = CertificateParams::default();
        let uri = format!("{STORE_URI_PREFIX}{store}");
        p.subject_alt_names = vec![SanType::URI(uri.as_str().try_into().unwrap())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(key, &issuer).unwrap();
        IssuedIdentity {
            store: store.into(),
            serial: "01".into(),
            certificate: cert.pem(),
            ca: ca_cert.pem(),
            not_after_ms: 0,
        }
    }

    #[test]
    fn an_answer_for_another_key_or_store_is_refused() {
        let s1 = ReplicaId::new("s1").unwrap();
        let (key, _) = key_and_csr(&s1).unwrap();
        let good = issued_for(&key, "s1");
        let bundle = bundle_from(&good, &key, &s1).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(cert_info(&bundle).unwrap().store, "s1");

        let other = KeyPair::generate().unwrap();
        let wrong_key = issued_for(&other, "s1");
        assert!(bundle_from(&wrong_key, &key, &s1)
            .unwrap_err()
            .to_string()
            .contains("not for the key"));
        let wrong_store = issued_for(&key, "s2");
        assert!(bundle_from(&wrong_store, &key, &s1)
            .unwrap_err()
            .to_string()
            .contains("names store"));
    }

    #[cfg(unix)]
    #[test]
    fn a_renewed_bundle_replaces_the_old_one_privately() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("id.pem");
        std::fs::write(&path, "old").unwrap();
        let s1 = ReplicaId::new("s1").unwrap();
        let (key, _) = key_and_csr(&s1).unwrap();
        let current = cert_info(&issued_for(&key, "s1").certificate).unwrap();
        let renewal = Renewal::new(&current).unwrap();
        let answer = issued_for(&renewal.key, "s1");
        let text = renewal.finish(&answer, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
