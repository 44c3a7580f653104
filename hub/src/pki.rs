//! The hub's own certificate authority: `init`, `enroll` (the lab's quick
//! path: the key is made here), one-time enrollment codes and signing a
//! store's certificate signing request (`enroll_code`, `CsrRequest`,
//! `redeem_code`, `issue_for_csr`: the key never leaves the store),
//! `revoke`, and reading a store's identity back out of its client
//! certificate.
//!
//! # Design constraints
//! - The hub is its own CA (DESIGN.md §5). `init` creates the CA, a server
//!   certificate for the hub's names and the admin token; it never
//!   overwrites an existing CA (that would orphan every enrolled store).
//! - A store certificate binds the store id in a SAN URI
//!   `urn:tally:store:<ID>` (and, for humans, in the subject CN). The hub
//!   takes the store's identity from that SAN of a certificate its own CA
//!   verified, never from a request body.
//! - Every issued certificate is recorded under `issued/<store>/`, so
//!   `revoke` can list a store's serials while the hub runs (the hub holds
//!   the database lock, so revocation lives in a plain file the running hub
//!   re-reads when it changes, see [`Revocations`]). Revoking a store
//!   revokes every certificate issued to it so far; enrolling it again
//!   later issues a fresh, valid one.
//! - Files are written whole through `tally_service::files` (an exclusive
//!   temporary file under a random name, its mode set at creation, fsync,
//!   rename, directory fsync); keys, the admin token, enrollment codes and
//!   bundles are 0600, the data directory 0700.
//! - Store ids follow `tally_service::store_id` (lower case, no `..`, no
//!   leading dot) wherever one becomes a path or a certificate field, and
//!   a certificate naming any other id identifies no store.
//! - A certificate for a CSR is built from the hub's own template: the
//!   subject, SAN, key usages and validity are the hub's; only the CSR's
//!   public key (whose signature over the request is checked) is taken.
//! - An enrollment code is 160 random bits shown once; the hub keeps only
//!   its SHA-256, under `enroll-codes/`, bound to one store, with an
//!   expiry. Redeeming compares the hash in constant time and consumes the
//!   code by deleting its file (only one of two concurrent redeemers can).
//! - The CA file may hold several certificates (a CA rotation, see
//!   docs/sync.md): the first is the one `ca.key` belongs to and signs
//!   with; all are trusted for client certificates and given to stores.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use tally_service::certs::{self, random_serial, CertError};
use tally_service::files::{self, FileError, Replace, Visibility};
pub use tally_service::identity::STORE_URI_PREFIX;
use tally_service::identity::{bundle_pem, store_of_certificate, CertStoreError, IssuedIdentity};
use tally_service::secret::secrets_equal;
use tally_sync::clock::Clock;
use tally_sync::store_id::StoreIdError;
use tally_sync::ReplicaId;

/// How long a store certificate is valid.
pub const STORE_CERT_DAYS: i64 = 5 * 365;
/// How long the CA and the server certificate are valid.
pub const CA_CERT_DAYS: i64 = 20 * 365;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// `init` on a directory that already holds a CA.
    #[error("{0} already holds a hub CA; refusing to overwrite it (it would orphan every enrolled store)")]
    AlreadyInitialized(PathBuf),
    /// No CA yet.
    #[error("{0} holds no hub CA: run `tally-hub init --data-dir {0}` first")]
    NotInitialized(PathBuf),
    /// The output file exists.
    #[error("{0} already exists; refusing to overwrite it")]
    OutputExists(PathBuf),
    /// The store id breaks the store id rule.
    #[error(transparent)]
    BadStoreId(#[from] StoreIdError),
    /// A certificate signing request the hub will not sign.
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
    /// A hostname that cannot go in a certificate.
    #[error("invalid hostname {name:?}: {reason}")]
    BadHostname {
        /// What was given.
        name: String,
        /// Why.
        reason: String,
    },
    /// No certificate was ever issued to this store.
    #[error("no certificate was ever issued to store {0} (nothing to revoke)")]
    UnknownStore(String),
    /// A PEM or key file is damaged.
    #[error("{path}: {detail}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    /// A revocation list kept elsewhere (the database) cannot be read now.
    #[error("revocations: {0}")]
    RevocationsUnavailable(String),
    /// The certificate (serial, hex) is revoked.
    #[error("certificate {0} is revoked")]
    Revoked(String),
    /// The store was issued [`MAX_ISSUED_PER_DAY`] certificates in the
    /// last 24 hours.
    #[error("store {store} was issued {MAX_ISSUED_PER_DAY} certificates in the last 24 hours; renew again in {retry_after_s} s")]
    TooManyRenewals {
        /// The store.
        store: String,
        /// Seconds until the oldest of them is a day old.
        retry_after_s: u64,
    },
    /// The enrollment codes kept elsewhere (the database) cannot be read
    /// or written now.
    #[error("enrollment codes: {0}")]
    CodeBook(String),
}

impl From<FileError> for PkiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Exists(path) => PkiError::OutputExists(path),
            FileError::Io { path, source } => PkiError::Io { path, source },
        }
    }
}

impl From<CertError> for PkiError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::BadHostname { name, reason } => PkiError::BadHostname { name, reason },
            CertError::Rcgen(e) => PkiError::Cert(e),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of a hub's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// The CA key (PKCS#8 PEM).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    /// The server certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }
    /// The server key (PKCS#8 PEM).
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    /// The admin token (one line).
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    /// Revoked certificate serials, one `SERIAL STORE` per line.
    pub fn revoked(&self) -> PathBuf {
        self.root.join("revoked.txt")
    }
    /// Issued store certificates, `issued/<store>/<serial>.pem`.
    pub fn issued(&self) -> PathBuf {
        self.root.join("issued")
    }
    /// The hub database.
    pub fn database(&self) -> PathBuf {
        self.root.join("hub.redb")
    }
    /// Unused enrollment codes (hashed), one file each.
    pub fn enroll_codes(&self) -> PathBuf {
        self.root.join("enroll-codes")
    }

    /// A CA rotation's new key until the rotation moves it to `ca.key`.
    pub fn ca_next_key(&self) -> PathBuf {
        self.root.join("ca.next.key")
    }

    /// The metrics token (one line): reads `GET /metrics` and nothing
    /// else, for a scraper.
    pub fn metrics_token(&self) -> PathBuf {
        self.root.join("metrics.token")
    }

    /// Reads the admin token.
    pub fn read_admin_token(&self) -> Result<String, PkiError> {
        let path = self.admin_token();
        if !path.exists() {
            return Err(PkiError::NotInitialized(self.root.clone()));
        }
        read_token(&path)
    }

    /// Reads the metrics token, if the directory has one.
    pub fn read_metrics_token(&self) -> Result<Option<String>, PkiError> {
        let path = self.metrics_token();
        if !path.exists() {
            return Ok(None);
        }
        read_token(&path).map(Some)
    }
}

/// A token file's one line, at least 32 characters.
fn read_token(path: &Path) -> Result<String, PkiError> {
    let token = fs::read_to_string(path).map_err(io(path))?;
    let token = token.trim().to_string();
    if token.len() < 32 {
        return Err(PkiError::BadFile {
            path: path.to_path_buf(),
            detail: "token shorter than 32 characters".into(),
        });
    }
    Ok(token)
}

/// A new random token (64 hex characters) written to `path` (0600, kept
/// if `path` exists: false, else replaced).
fn write_token(path: &Path, replace: bool) -> Result<(), PkiError> {
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    write_file(path, format!("{}\n", hex(&token)).as_bytes(), true, replace)
}

/// Makes the metrics token of an initialized `dir` if it has none (a
/// directory `init`ed before there were metrics tokens); answers its path
/// and whether it was made now.
pub fn metrics_token(dir: &DataDir) -> Result<(PathBuf, bool), PkiError> {
    dir.read_admin_token()?;
    let path = dir.metrics_token();
    if path.exists() {
        return Ok((path, false));
    }
    write_token(&path, false)?;
    Ok((path, true))
}

/// Narrows the data directory to its owner (0700) and its enrollment
/// codes' directory too: a directory made before they were created so is
/// fixed when the hub starts.
pub fn secure_data_dir(dir: &DataDir) -> Result<(), PkiError> {
    if !dir.root().is_dir() {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    }
    files::create_private_dir(dir.root())?;
    if dir.enroll_codes().is_dir() {
        files::create_private_dir(&dir.enroll_codes())?;
    }
    Ok(())
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Names in the server certificate.
    pub hostnames: Vec<String>,
    /// The admin token file.
    pub admin_token_path: PathBuf,
    /// Where the metrics token is (`GET /metrics` only).
    pub metrics_token_path: PathBuf,
}

/// Writes `bytes` to `path` whole (`tally_service::files`): `private`
/// files are 0600 from their creation on.
fn write_file(path: &Path, bytes: &[u8], private: bool, overwrite: bool) -> Result<(), PkiError> {
    let visibility = if private {
        Visibility::Private
    } else {
        Visibility::Public
    };
    let replace = if overwrite {
        Replace::Overwrite
    } else {
        Replace::Never
    };
    Ok(files::write_atomic(path, bytes, visibility, replace)?)
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// `bytes` as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate serial as lower-case hex without leading zero bytes.
pub fn serial_hex(der_integer: &[u8]) -> String {
    let start = der_integer
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(der_integer.len());
    hex(&der_integer[start..])
}

/// Checks a store id against the store id rule
/// (`tally_service::store_id`: 1-63 of `[a-z0-9._-]`, starting with a
/// letter or digit, no `..`, not `hub`), which also makes it a valid
/// replica id.
pub fn check_store_id(id: &str) -> Result<ReplicaId, PkiError> {
    Ok(tally_sync::store_id::check_store_id(id)?)
}

/// A CA certificate's parameters. A rotated CA gets a distinct name
/// (`Tally hub CA <serial prefix>`), so stores and the hub never confuse
/// two trusted CAs by subject.
fn ca_params(clock: &dyn Clock, rotated: bool) -> CertificateParams {
    let serial = random_serial();
    let name = if rotated {
        format!("Tally hub CA {}", &serial_hex(&serial.to_bytes())[..8])
    } else {
        "Tally hub CA".to_string()
    };
    certs::ca_params(&name, serial, CA_CERT_DAYS, clock)
}

/// The server certificate's names (default `localhost` and `127.0.0.1`),
/// each checked before anything is made or written.
fn default_hostnames(hostnames: &[String]) -> Result<Vec<String>, PkiError> {
    let hostnames: Vec<String> = if hostnames.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        hostnames.to_vec()
    };
    for name in &hostnames {
        certs::hostname_san(name)?;
    }
    Ok(hostnames)
}

/// Creates the CA, the server certificate for `hostnames` (default
/// `localhost` and `127.0.0.1`) and the admin token in `dir`; the
/// certificates are valid from `clock`'s now.
pub fn init(
    dir: &DataDir,
    hostnames: &[String],
    clock: &dyn Clock,
) -> Result<InitReport, PkiError> {
    let hostnames = default_hostnames(hostnames)?;
    // Initialized means the CA key is there (it is written last). A CA
    // certificate without its key is what a crash part-way through `init`
    // leaves, and is redone; unless a CA rotation was under way (its new
    // key in `ca.next.key`) or a store holds a certificate of it: a new CA
    // would then orphan them.
    let rotating = dir.ca_next_key().exists();
    if dir.ca_key().exists() || rotating || (dir.ca_cert().exists() && issued_any(dir)?) {
        return Err(PkiError::AlreadyInitialized(dir.root().to_path_buf()));
    }
    files::create_private_dir(dir.root())?;
    files::create_private_dir(&dir.issued())?;
    files::create_private_dir(&dir.enroll_codes())?;

    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(clock, false);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let (server_key, server_cert) =
        certs::server_certificate(&hostnames, &issuer, CA_CERT_DAYS, clock)?;

    // The CA key goes last: its presence is what "initialized" means for
    // `enroll`, so a crash part-way leaves a directory `init` can redo.
    write_file(&dir.ca_cert(), ca_cert.pem().as_bytes(), false, true)?;
    write_file(
        &dir.server_key(),
        server_key.serialize_pem().as_bytes(),
        true,
        true,
    )?;
    write_file(
        &dir.server_cert(),
        server_cert.pem().as_bytes(),
        false,
        true,
    )?;
    write_token(&dir.admin_token(), true)?;
    write_token(&dir.metrics_token(), true)?;
    write_file(
        &dir.ca_key(),
        ca_key.serialize_pem().as_bytes(),
        true,
        false,
    )?;
    Ok(InitReport {
        hostnames,
        admin_token_path: dir.admin_token(),
        metrics_token_path: dir.metrics_token(),
    })
}

/// Whether any store certificate was issued from `dir`.
fn issued_any(dir: &DataDir) -> Result<bool, PkiError> {
    let issued = dir.issued();
    match fs::read_dir(&issued) {
        Ok(mut stores) => Ok(stores.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(&issued)(e)),
    }
}

/// What `enroll` issued.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The store.
    pub store: ReplicaId,
    /// The certificate's serial (hex).
    pub serial: String,
    /// The bundle written.
    pub bundle: PathBuf,
}

/// The CA that signs: the first certificate of `ca.pem` with `ca.key`, and
/// the whole of `ca.pem` (every CA the hub trusts, given to stores).
fn load_issuer(dir: &DataDir) -> Result<(String, Issuer<'static, KeyPair>), PkiError> {
    if !dir.ca_key().exists() || !dir.ca_cert().exists() {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    }
    let ca_pem = read(&dir.ca_cert())?;
    let key_path = dir.ca_key();
    let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| PkiError::BadFile {
        path: key_path.clone(),
        detail: e.to_string(),
    })?;
    // The first certificate is the signing CA, and `ca.key` must be its
    // key (a `rotate-ca` cut short could leave them apart).
    let (first, _) = key_and_serial(&dir.ca_cert(), &ca_pem)?;
    if first != key.subject_public_key_info() {
        return Err(PkiError::BadFile {
            path: key_path,
            detail: "not the key of the first certificate in ca.pem (an interrupted \
                     rotate-ca? run `tally-hub rotate-ca` again to finish it)"
                .into(),
        });
    }
    // `from_ca_cert_pem` reads the first PEM block: the signing CA.
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| PkiError::BadFile {
        path: dir.ca_cert(),
        detail: e.to_string(),
    })?;
    Ok((ca_pem, issuer))
}

/// The public key (SubjectPublicKeyInfo, DER) and the serial (hex) of the
/// first certificate of `pem`, read from `path`.
fn key_and_serial(path: &Path, pem: &str) -> Result<(Vec<u8>, String), PkiError> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|(_, p)| {
            p.parse_x509()
                .map(|c| (c.public_key().raw.to_vec(), serial_hex(c.raw_serial())))
                .map_err(|e| e.to_string())
        })
        .map_err(|detail| PkiError::BadFile {
            path: path.to_path_buf(),
            detail,
        })
}

/// A certificate issued to a store and recorded under `issued/<store>/`.
struct Issued {
    serial: String,
    pem: String,
    not_after_ms: u64,
    ca_pem: String,
}

/// Signs a client certificate for `store` over `public_key` with the
/// hub's own template (subject, SAN URI, client-auth EKU, validity from
/// `clock`) and records it.
fn issue(
    dir: &DataDir,
    store: &ReplicaId,
    public_key: &impl PublicKeyData,
    clock: &dyn Clock,
) -> Result<Issued, PkiError> {
    let (ca_pem, issuer) = load_issuer(dir)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally store");
    dn.push(DnType::CommonName, store.as_str());
    params.distinguished_name = dn;
    let uri = format!("{STORE_URI_PREFIX}{store}");
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial();
    let serial_str = serial_hex(&serial.to_bytes());
    params.serial_number = Some(serial);
    certs::validity(&mut params, STORE_CERT_DAYS, clock);
    let not_after_ms = u64::try_from(params.not_after.unix_timestamp())
        .unwrap_or(0)
        .saturating_mul(1000);
    let cert = params.signed_by(public_key, &issuer)?;

    let issued = dir.issued().join(store.as_str());
    files::create_private_dir(&issued)?;
    write_file(
        &issued.join(format!("{serial_str}.pem")),
        cert.pem().as_bytes(),
        false,
        false,
    )?;
    Ok(Issued {
        serial: serial_str,
        pem: cert.pem(),
        not_after_ms,
        ca_pem,
    })
}

/// Issues a client certificate for `store` and writes the identity bundle
/// (certificate, private key, CA certificates; PEM, mode 0600) to `out`.
/// The key is made here, at HQ: the quick path for a lab or a demo. In a
/// chain, a store makes its own key and enrolls with a one-time code
/// ([`enroll_code`], [`issue_for_csr`]).
pub fn enroll(
    dir: &DataDir,
    store: &str,
    out: &Path,
    clock: &dyn Clock,
) -> Result<Enrolled, PkiError> {
    let store = check_store_id(store)?;
    if !dir.ca_key().exists() || !dir.ca_cert().exists() {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    }
    if out.exists() {
        return Err(PkiError::OutputExists(out.to_path_buf()));
    }
    let key = KeyPair::generate()?;
    let issued = issue(dir, &store, &key, clock)?;
    let bundle = bundle_pem(&issued.pem, &key.serialize_pem(), &issued.ca_pem);
    write_file(out, bundle.as_bytes(), true, false)?;
    Ok(Enrolled {
        store,
        serial: issued.serial,
        bundle: out.to_path_buf(),
    })
}

/// A certificate signing request the hub is willing to sign: its
/// signature verified, its key ECDSA P-256. Only the public key is kept.
#[derive(Debug, Clone)]
pub struct CsrRequest {
    public_key: rcgen::PublicKey,
}

impl CsrRequest {
    /// Parses and checks a CSR (PEM). Its subject, SANs and extensions are
    /// ignored: the certificate is the hub's own template for the store.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let bad = |detail: String| PkiError::BadCsr(detail);
        if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            return Err(bad("not a PEM certificate request".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(pem).map_err(|e| bad(e.to_string()))?;
        // The algorithm is the signature's; the key itself must be an
        // uncompressed P-256 point too.
        let point = csr.public_key.der_bytes();
        if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256
            || point.len() != 65
            || point[0] != 4
        {
            return Err(bad(
                "the key must be ECDSA P-256 (signed with SHA-256)".into()
            ));
        }
        Ok(Self {
            public_key: csr.public_key,
        })
    }

    /// The requested key, SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key.subject_public_key_info()
    }
}

/// Signs `csr`'s key for `store` (the store the code or the current
/// certificate names, never one the CSR claims) and records the
/// certificate; the answer a store writes into its bundle.
pub fn issue_for_csr(
    dir: &DataDir,
    store: &ReplicaId,
    csr: &CsrRequest,
    clock: &dyn Clock,
) -> Result<IssuedIdentity, PkiError> {
    let issued = issue(dir, store, &csr.public_key, clock)?;
    Ok(IssuedIdentity {
        store: store.to_string(),
        serial: issued.serial,
        certificate: issued.pem,
        ca: issued.ca_pem,
        not_after_ms: issued.not_after_ms,
    })
}

/// Renews the certificate `old_serial` of `store` (`POST /v1/renew`):
/// signs `csr`'s key, records the new certificate (in the data directory
/// and in `revocations`' shared list), and only then checks that
/// `old_serial` is not revoked, reading the list at its source. A
/// revocation records the revoked serials, then lists the store's
/// certificates again ([`revoke`]); a renewal records, then checks. So of
/// a renewal and a revocation running at once, either the renewal sees
/// the revocation and is refused ([`PkiError::Revoked`]; the new
/// certificate never leaves the hub), or the revocation sees the new
/// certificate and revokes it too. Blocking.
pub fn renew_for_csr(
    revocations: &Revocations,
    store: &ReplicaId,
    old_serial: &str,
    csr: &CsrRequest,
    clock: &dyn Clock,
) -> Result<IssuedIdentity, PkiError> {
    // One renewal at a time in this process, from the count to the
    // record: a burst of renewals in parallel (a stolen key) cannot all
    // pass the count before any is recorded. (Two hosts may each let one
    // through at the same moment.)
    let _one_at_a_time = revocations
        .renewing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now_ms = clock.now_ms();
    let since_ms = now_ms.saturating_sub(DAY_MS);
    // This host's certificates, and those every host recorded in the
    // shared list's source (hub processes on other hosts keep their own
    // data directories): each counted once, by serial.
    let mut recent: std::collections::HashMap<String, u64> =
        issued_since(revocations.data_dir(), store, since_ms)?
            .into_iter()
            .collect();
    for (serial, age_ms) in revocations.issued_last_day(store)? {
        recent
            .entry(serial.to_ascii_lowercase())
            .or_insert(now_ms.saturating_sub(age_ms));
    }
    if recent.len() >= MAX_ISSUED_PER_DAY {
        let oldest = recent.values().min().copied().unwrap_or(since_ms);
        return Err(PkiError::TooManyRenewals {
            store: store.to_string(),
            retry_after_s: (oldest.saturating_sub(since_ms) / 1000).max(1),
        });
    }
    let issued = issue_for_csr(revocations.data_dir(), store, csr, clock)?;
    revocations.record_issued(store, &issued.serial)?;
    if revocations.is_revoked_now(old_serial)? {
        return Err(PkiError::Revoked(old_serial.to_string()));
    }
    Ok(issued)
}

/// The most certificates one store is issued in any 24 hours before
/// `/v1/renew` refuses it more (429): a store renews once in the last
/// third of a certificate's life, so this leaves room for answers lost on
/// the way, and a store's key, stolen or run amok, cannot make the hub
/// sign and file certificates without end. Enrollments (each with its
/// one-time code) count but are not limited.
pub const MAX_ISSUED_PER_DAY: usize = 8;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Each certificate issued to `store` from `dir` since `since_ms`: its
/// serial (lowercase hex, from its file name) and when (Unix ms, its
/// `notBefore` plus the five minutes it is backdated). Reads the store's
/// certificates, which the limit keeps to a few a day.
fn issued_since(
    dir: &DataDir,
    store: &ReplicaId,
    since_ms: u64,
) -> Result<Vec<(String, u64)>, PkiError> {
    let issued = dir.issued().join(store.as_str());
    let entries = match fs::read_dir(&issued) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&issued)(e)),
    };
    let mut times = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(&issued))?.path();
        if path.extension().is_none_or(|e| e != "pem") {
            continue;
        }
        let pem = read(&path)?;
        let Ok((_, block)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
            continue;
        };
        let Ok(cert) = block.parse_x509() else {
            continue;
        };
        let from_s = cert
            .validity()
            .not_before
            .timestamp()
            .saturating_add(5 * 60);
        let from_ms = u64::try_from(from_s).unwrap_or(0).saturating_mul(1000);
        if from_ms > since_ms {
            let serial = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            times.push((serial, from_ms));
        }
    }
    Ok(times)
}

/// How long an enrollment code is valid by default.
pub const DEFAULT_CODE_TTL_HOURS: u64 = 72;

/// A new one-time enrollment code.
#[derive(Debug, Clone)]
pub struct EnrollCode {
    /// The code, shown to HQ once (the hub keeps only its hash).
    pub code: String,
    /// The store it enrolls.
    pub store: ReplicaId,
    /// When it stops being valid (Unix ms).
    pub expires_ms: u64,
}

/// The characters of a code: RFC 4648 base32, lower case.
const CODE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A code as typed (any case, dashes and spaces allowed) reduced to its
/// 32 base32 characters, or `None` if it cannot be a code.
fn normalize_code(code: &str) -> Option<String> {
    let s: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == 32 && s.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(s)
}

fn code_hash(normalized: &str) -> [u8; 32] {
    Sha256::digest(normalized.as_bytes()).into()
}

/// The file a code's hash is kept in: named by the hash's first 8 bytes
/// (a locator; the whole hash inside is what is compared).
fn code_file(dir: &DataDir, hash: &[u8; 32]) -> PathBuf {
    dir.enroll_codes().join(format!("{}.code", hex(&hash[..8])))
}

/// Makes a one-time enrollment code for `store`, valid for `ttl_ms` from
/// `clock`'s now. Only its SHA-256 is stored (0600, in `enroll-codes/`,
/// 0700). Expired codes left in the directory are removed.
pub fn enroll_code(
    dir: &DataDir,
    store: &str,
    ttl_ms: u64,
    clock: &dyn Clock,
) -> Result<EnrollCode, PkiError> {
    let (code, hash) = new_code(dir, store, ttl_ms, clock)?;
    files::create_private_dir(&dir.enroll_codes())?;
    prune_codes(dir, clock.now_ms());
    let line = format!("{} {} {}\n", hex(&hash), code.store, code.expires_ms);
    write_file(&code_file(dir, &hash), line.as_bytes(), true, false)?;
    Ok(code)
}

/// Makes a one-time enrollment code for `store`, valid for `ttl_ms` from
/// `clock`'s now, kept in `book` (the database every hub process shares)
/// instead of the data directory: a store may redeem it at any hub
/// process. Only its SHA-256 is kept.
pub fn enroll_code_in(
    book: &dyn CodeBook,
    dir: &DataDir,
    store: &str,
    ttl_ms: u64,
    clock: &dyn Clock,
) -> Result<EnrollCode, PkiError> {
    let (code, hash) = new_code(dir, store, ttl_ms, clock)?;
    book.add(&hash, code.store.as_str(), code.expires_ms, clock.now_ms())
        .map_err(PkiError::CodeBook)?;
    Ok(code)
}

/// A new code for `store` (the hub must be initialized) and its hash.
fn new_code(
    dir: &DataDir,
    store: &str,
    ttl_ms: u64,
    clock: &dyn Clock,
) -> Result<(EnrollCode, [u8; 32]), PkiError> {
    let store = check_store_id(store)?;
    if !dir.ca_key().exists() || !dir.ca_cert().exists() {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    }
    let now = clock.now_ms();
    let mut raw = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    // 160 bits as 32 base32 characters, 5 bits each.
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut code = String::with_capacity(32);
    for b in raw {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            code.push(char::from(CODE_ALPHABET[((bits >> nbits) & 31) as usize]));
        }
    }
    let hash = code_hash(&code);
    let expires_ms = now.saturating_add(ttl_ms);
    let shown = code
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    Ok((
        EnrollCode {
            code: shown,
            store,
            expires_ms,
        },
        hash,
    ))
}

/// What a shared code book found for a code ([`CodeBook::redeem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookAnswer {
    /// It was there, for this store and unexpired: consumed now.
    Redeemed,
    /// No such code (never made, or used).
    Unknown,
    /// Made for another store (left as it is).
    WrongStore,
    /// Expired (removed).
    Expired,
}

/// One-time enrollment codes kept outside the data directory (the
/// database several hub processes share), so a store may redeem its code
/// at any of them, once. Only hashes are kept.
pub trait CodeBook: Send + Sync + std::fmt::Debug {
    /// Keeps the code with SHA-256 `hash` for `store` until `expires_ms`,
    /// and drops codes expired at `now_ms`.
    fn add(&self, hash: &[u8; 32], store: &str, expires_ms: u64, now_ms: u64)
        -> Result<(), String>;
    /// Consumes the code with `hash` if it is for `store` and unexpired
    /// at `now_ms`: of two concurrent redeemers (at any processes) only
    /// one is answered [`BookAnswer::Redeemed`].
    fn redeem(&self, hash: &[u8; 32], store: &str, now_ms: u64) -> Result<BookAnswer, String>;
}

/// Removes expired codes (best effort: a failure only leaves them).
fn prune_codes(dir: &DataDir, now_ms: u64) {
    let Ok(entries) = fs::read_dir(dir.enroll_codes()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if let Ok(Some(stored)) = read_code_file(&path) {
            if stored.expires_ms <= now_ms {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

struct StoredCode {
    hash: [u8; 32],
    store: String,
    expires_ms: u64,
}

/// Reads a code file: `None` if there is none.
fn read_code_file(path: &Path) -> Result<Option<StoredCode>, PkiError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let bad = || PkiError::BadFile {
        path: path.to_path_buf(),
        detail: "not `HASH STORE EXPIRES_MS`".into(),
    };
    let mut parts = text.split_whitespace();
    let (Some(h), Some(store), Some(exp), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let mut hash = [0u8; 32];
    if h.len() != 64 {
        return Err(bad());
    }
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(h.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(Some(StoredCode {
        hash,
        store: store.to_string(),
        expires_ms: exp.parse().map_err(|_| bad())?,
    }))
}

/// Why an enrollment code was not accepted. The hub answers every one the
/// same way (a caller learns nothing about codes it does not hold) and
/// logs which it was.
#[derive(Debug, thiserror::Error)]
pub enum CodeRefused {
    /// No such code: never made, mistyped, or already used.
    #[error("unknown or already used enrollment code")]
    Unknown,
    /// The code was made for another store.
    #[error("the enrollment code was made for another store")]
    WrongStore,
    /// The code has expired (it is removed).
    #[error("the enrollment code has expired")]
    Expired,
    /// The code could not be checked.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// Redeems a one-time code for `store`: it must exist, match in full
/// (compared in constant time), name `store` and not have expired at
/// `clock`'s now. A code is consumed by deleting its file, so of two
/// concurrent redeemers only one succeeds. Check the CSR before redeeming,
/// so a malformed request does not burn the code.
///
/// A code not in the data directory is looked up in `book` (the shared
/// database's), if the hub has one.
pub fn redeem_code(
    dir: &DataDir,
    book: Option<&dyn CodeBook>,
    store: &ReplicaId,
    code: &str,
    clock: &dyn Clock,
) -> Result<(), CodeRefused> {
    let normalized = normalize_code(code).ok_or(CodeRefused::Unknown)?;
    let hash = code_hash(&normalized);
    let path = code_file(dir, &hash);
    let Some(stored) = read_code_file(&path)? else {
        let Some(book) = book else {
            return Err(CodeRefused::Unknown);
        };
        return match book
            .redeem(&hash, store.as_str(), clock.now_ms())
            .map_err(PkiError::CodeBook)?
        {
            BookAnswer::Redeemed => Ok(()),
            BookAnswer::Unknown => Err(CodeRefused::Unknown),
            BookAnswer::WrongStore => Err(CodeRefused::WrongStore),
            BookAnswer::Expired => Err(CodeRefused::Expired),
        };
    };
    if !secrets_equal(&stored.hash, &hash) {
        return Err(CodeRefused::Unknown);
    }
    if stored.expires_ms <= clock.now_ms() {
        let _ = fs::remove_file(&path);
        return Err(CodeRefused::Expired);
    }
    if stored.store != store.as_str() {
        return Err(CodeRefused::WrongStore);
    }
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CodeRefused::Unknown),
        Err(e) => return Err(CodeRefused::Pki(io(&path)(e))),
    }
    files::sync_dir(&dir.enroll_codes()).map_err(PkiError::from)?;
    Ok(())
}

/// What `rotate_ca` did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new signing CA's serial (hex).
    pub serial: String,
    /// How many CA certificates `ca.pem` holds now.
    pub trusted: usize,
    /// Where the previous CA key was moved (to be destroyed once the
    /// rotation is over).
    pub retired_key: PathBuf,
}

/// The certificates of a PEM text, each as its own PEM block.
fn pem_certs(path: &Path, text: &str) -> Result<Vec<String>, PkiError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let tail = &rest[start..];
        let Some(end) = tail.find("-----END CERTIFICATE-----") else {
            return Err(PkiError::BadFile {
                path: path.to_path_buf(),
                detail: "unterminated certificate".into(),
            });
        };
        let end = end + "-----END CERTIFICATE-----".len();
        out.push(format!("{}\n", &tail[..end]));
        rest = &tail[end..];
    }
    Ok(out)
}

/// Starts a CA rotation (docs/sync.md): a new CA key and certificate
/// become the signing CA (first in `ca.pem`, key in `ca.key`); the
/// previous CA certificates stay in `ca.pem`, so the hub keeps trusting
/// certificates they issued and stores get both at enrollment and
/// renewal. The previous key is moved to `ca-<serial>.key.retired`. The
/// server certificate is not changed (stores that do not have the new CA
/// yet must still trust the hub): see [`reissue_server_cert`]. Run it
/// with the hub stopped; the hub reads its CAs when it starts.
///
/// A rotation cut short (a crash, a full disk) is finished by running it
/// again: if its new CA certificate already signs in `ca.pem`, only the
/// keys are moved; if not, its unused new key is dropped and the rotation
/// starts over.
pub fn rotate_ca(dir: &DataDir, clock: &dyn Clock) -> Result<Rotated, PkiError> {
    let next_key_path = dir.ca_next_key();
    if next_key_path.exists() {
        if let Some(done) = finish_rotation(dir, &next_key_path)? {
            return Ok(done);
        }
    }
    // Checks that ca.key belongs to the current signing CA.
    let (old_pem, _) = load_issuer(dir)?;
    let old_certs = pem_certs(&dir.ca_cert(), &old_pem)?;
    let old_serial = key_and_serial(&dir.ca_cert(), &old_pem)
        .map(|(_, serial)| serial)
        .unwrap_or_else(|_| "previous".into());
    let retired = dir.root().join(format!("ca-{old_serial}.key.retired"));

    let key = KeyPair::generate()?;
    let params = ca_params(clock, true);
    let serial = params
        .serial_number
        .as_ref()
        .map(|s| serial_hex(&s.to_bytes()))
        .unwrap_or_default();
    let cert = params.self_signed(&key)?;
    // 1. The new key, beside the old one.
    write_file(&next_key_path, key.serialize_pem().as_bytes(), true, false)?;
    // 2. The trusted CAs: the new one first (it signs), then the others.
    let mut trusted = cert.pem();
    for c in &old_certs {
        trusted.push_str(c);
    }
    write_file(&dir.ca_cert(), trusted.as_bytes(), false, true)?;
    // 3. The keys: the old one retired, the new one in place.
    fs::rename(dir.ca_key(), &retired).map_err(io(&retired))?;
    fs::rename(&next_key_path, dir.ca_key()).map_err(io(&dir.ca_key()))?;
    files::sync_dir(dir.root())?;
    Ok(Rotated {
        serial,
        trusted: old_certs.len() + 1,
        retired_key: retired,
    })
}

/// A rotation cut short, with its new key in `next_key_path`: finished
/// (the keys moved) if its certificate is already the first, signing one
/// in `ca.pem`; else its key is dropped (`None`: start over).
fn finish_rotation(dir: &DataDir, next_key_path: &Path) -> Result<Option<Rotated>, PkiError> {
    let next = KeyPair::from_pem(&read(next_key_path)?).map_err(|e| PkiError::BadFile {
        path: next_key_path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let ca_path = dir.ca_cert();
    let ca_pem = read(&ca_path)?;
    let certs = pem_certs(&ca_path, &ca_pem)?;
    let parsed = |pem: &str| key_and_serial(&ca_path, pem);
    let Some(first) = certs.first() else {
        return Err(PkiError::BadFile {
            path: ca_path,
            detail: "no certificate".into(),
        });
    };
    let (signing_key, serial) = parsed(first)?;
    if signing_key != next.subject_public_key_info() {
        // Cut short before its certificate was written: nothing signed
        // with the key, nothing trusts it.
        fs::remove_file(next_key_path).map_err(io(next_key_path))?;
        files::sync_dir(dir.root())?;
        return Ok(None);
    }
    // The previous signing CA is second in ca.pem; its key is still
    // ca.key unless the crash came after it was retired.
    let old_serial = match certs.get(1) {
        Some(pem) => parsed(pem)?.1,
        None => "previous".into(),
    };
    let retired = dir.root().join(format!("ca-{old_serial}.key.retired"));
    if dir.ca_key().exists() {
        fs::rename(dir.ca_key(), &retired).map_err(io(&retired))?;
    }
    fs::rename(next_key_path, dir.ca_key()).map_err(io(&dir.ca_key()))?;
    files::sync_dir(dir.root())?;
    Ok(Some(Rotated {
        serial,
        trusted: certs.len(),
        retired_key: retired,
    }))
}

/// Issues a new server certificate for `hostnames` (default `localhost`
/// and `127.0.0.1`) from the current signing CA: the second step of a CA
/// rotation, once every store trusts the new CA. Restart the hub to serve
/// it.
pub fn reissue_server_cert(
    dir: &DataDir,
    hostnames: &[String],
    clock: &dyn Clock,
) -> Result<Vec<String>, PkiError> {
    let hostnames = default_hostnames(hostnames)?;
    let (_, issuer) = load_issuer(dir)?;
    let (key, cert) = certs::server_certificate(&hostnames, &issuer, CA_CERT_DAYS, clock)?;
    write_file(
        &dir.server_key(),
        key.serialize_pem().as_bytes(),
        true,
        true,
    )?;
    write_file(&dir.server_cert(), cert.pem().as_bytes(), false, true)?;
    Ok(hostnames)
}

/// Ends a CA rotation: `ca.pem` keeps only the signing CA, so the hub
/// (after a restart) no longer trusts certificates the others issued, and
/// stores get only it at their next renewal. How many were dropped.
pub fn retire_old_cas(dir: &DataDir) -> Result<usize, PkiError> {
    let (pem, _) = load_issuer(dir)?;
    let certs = pem_certs(&dir.ca_cert(), &pem)?;
    let Some(first) = certs.first() else {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    };
    if certs.len() > 1 {
        write_file(&dir.ca_cert(), first.as_bytes(), false, true)?;
    }
    Ok(certs.len() - 1)
}

/// Revokes every certificate issued to `store` so far. Returns how many
/// serials were newly revoked. The running hub refuses them from its next
/// request on. The store's certificates are listed again after each
/// write, until a listing finds none new: a renewal that recorded its
/// certificate before the revocation was written is revoked with it
/// ([`renew_for_csr`]).
pub fn revoke(dir: &DataDir, store: &str) -> Result<usize, PkiError> {
    let mut added = 0;
    loop {
        match revoke_listed(dir, store)? {
            0 => return Ok(added),
            n => added += n,
        }
    }
}

/// One round of [`revoke`]: the serials listed now.
fn revoke_listed(dir: &DataDir, store: &str) -> Result<usize, PkiError> {
    let serials = issued_serials(dir, store)?;
    let store = check_store_id(store)?;
    let path = dir.revoked();
    let existing = match fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&path)(e)),
    };
    let known = parse_revoked(&path, &existing)?;
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut added = 0;
    for s in serials {
        if !known.contains(&s) {
            text.push_str(&format!("{s} {store}\n"));
            added += 1;
        }
    }
    if added > 0 {
        write_file(&path, text.as_bytes(), false, true)?;
    }
    Ok(added)
}

/// The serials (hex) of every certificate issued to `store`, in order.
pub fn issued_serials(dir: &DataDir, store: &str) -> Result<Vec<String>, PkiError> {
    let store = check_store_id(store)?;
    if !dir.ca_cert().exists() {
        return Err(PkiError::NotInitialized(dir.root().to_path_buf()));
    }
    let issued = dir.issued().join(store.as_str());
    let entries = match fs::read_dir(&issued) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PkiError::UnknownStore(store.to_string()))
        }
        Err(e) => return Err(io(&issued)(e)),
    };
    let mut serials = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(&issued))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(serial) = name.strip_suffix(".pem") {
            serials.push(serial.to_string());
        }
    }
    if serials.is_empty() {
        return Err(PkiError::UnknownStore(store.to_string()));
    }
    serials.sort();
    Ok(serials)
}

fn parse_revoked(path: &Path, text: &str) -> Result<HashSet<String>, PkiError> {
    let mut set = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let serial = line.split_whitespace().next().unwrap_or_default();
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PkiError::BadFile {
                path: path.to_path_buf(),
                detail: format!("line {}: not `SERIAL STORE`", n + 1),
            });
        }
        set.insert(serial.to_ascii_lowercase());
    }
    Ok(set)
}

/// A list of revoked serials kept outside the data directory (the
/// database several hub processes share), checked beside `revoked.txt`.
pub trait RevocationList: Send + Sync + std::fmt::Debug {
    /// Whether `serial` (hex) is revoked; an error if the list cannot be
    /// read now (the caller fails closed).
    fn is_revoked(&self, serial: &str) -> Result<bool, String>;
    /// Whether the list is followed now (else every check is an error).
    fn is_followed(&self) -> bool {
        true
    }
    /// Records that certificate `serial` was issued to `store` where a
    /// revocation at any host finds it. Blocking.
    fn record_issued(&self, _store: &str, _serial: &str) -> Result<(), String> {
        Ok(())
    }
    /// Whether `serial` is revoked, read from the list's source now, not
    /// from a copy that may lag. Blocking.
    fn is_revoked_now(&self, serial: &str) -> Result<bool, String> {
        self.is_revoked(serial)
    }
    /// The certificates recorded as issued to `store` in the last 24
    /// hours by the source's own clock: each serial and how long ago
    /// (ms). None recorded there: empty. Blocking.
    fn issued_last_day(&self, _store: &str) -> Result<Vec<(String, u64)>, String> {
        Ok(Vec::new())
    }
}

/// The revocation list as the running hub sees it: re-read whenever the
/// file changes (size, modification time or inode), checked on every sync,
/// plus a shared list if the hub has one ([`Revocations::with_list`]);
/// with the data directory it lives in (the CA that `/v1/enroll` and
/// `/v1/renew` sign with, the enrollment codes).
#[derive(Debug)]
pub struct Revocations {
    dir: DataDir,
    path: PathBuf,
    cache: Mutex<(Option<FileStamp>, HashSet<String>)>,
    shared: Option<Arc<dyn RevocationList>>,
    /// Held by a renewal from its count to its record
    /// ([`renew_for_csr`]): renewals in parallel get no more than the
    /// limit.
    renewing: Mutex<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Revocations {
    /// The list kept in `dir`.
    pub fn new(dir: &DataDir) -> Self {
        Self {
            dir: dir.clone(),
            path: dir.revoked(),
            cache: Mutex::new((None, HashSet::new())),
            shared: None,
            renewing: Mutex::new(()),
        }
    }

    /// These revocations, and also those of `shared` (the database's,
    /// which every hub process over it sees).
    pub fn with_list(mut self, shared: Arc<dyn RevocationList>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The data directory the list belongs to.
    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Whether the shared list is followed now; `None` without one.
    pub fn shared_followed(&self) -> Option<bool> {
        self.shared.as_ref().map(|list| list.is_followed())
    }

    /// Whether the certificate with `serial` (hex, as [`serial_hex`]) is
    /// revoked. Fails closed: an unreadable list is an error, not "no".
    pub fn is_revoked(&self, serial: &str) -> Result<bool, PkiError> {
        self.check(serial, |list| list.is_revoked(serial))
    }

    /// [`Self::is_revoked`], with the shared list read at its source now
    /// (the database, not this process's copy). Blocking.
    pub fn is_revoked_now(&self, serial: &str) -> Result<bool, PkiError> {
        self.check(serial, |list| list.is_revoked_now(serial))
    }

    /// `serial` in `revoked.txt`, else what `shared` says of it (if the
    /// hub has a shared list).
    fn check(
        &self,
        serial: &str,
        shared: impl FnOnce(&dyn RevocationList) -> Result<bool, String>,
    ) -> Result<bool, PkiError> {
        if self.in_file(serial)? {
            return Ok(true);
        }
        match &self.shared {
            Some(list) => shared(list.as_ref()).map_err(PkiError::RevocationsUnavailable),
            None => Ok(false),
        }
    }

    /// Records certificate `serial` of `store` in the shared list's
    /// source, if the hub has one (`issue` has recorded it in the data
    /// directory). Blocking.
    pub fn record_issued(&self, store: &ReplicaId, serial: &str) -> Result<(), PkiError> {
        match &self.shared {
            Some(list) => list
                .record_issued(store.as_str(), serial)
                .map_err(PkiError::RevocationsUnavailable),
            None => Ok(()),
        }
    }

    /// The certificates of `store` the shared list's source recorded in
    /// its last 24 hours, each serial with how long ago (ms); empty
    /// without a shared list. Blocking.
    pub fn issued_last_day(&self, store: &ReplicaId) -> Result<Vec<(String, u64)>, PkiError> {
        match &self.shared {
            Some(list) => list
                .issued_last_day(store.as_str())
                .map_err(PkiError::RevocationsUnavailable),
            None => Ok(Vec::new()),
        }
    }

    /// Whether `serial` is in `revoked.txt` (re-read when it changed).
    fn in_file(&self, serial: &str) -> Result<bool, PkiError> {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some(FileStamp {
                len: m.len(),
                modified: m.modified().ok(),
                inode: {
                    #[cfg(unix)]
                    {
                        std::os::unix::fs::MetadataExt::ino(&m)
                    }
                    #[cfg(not(unix))]
                    {
                        0
                    }
                },
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&self.path)(e)),
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.0 != stamp || (stamp.is_none() && !cache.1.is_empty()) {
            let set = match stamp {
                None => HashSet::new(),
                Some(_) => parse_revoked(&self.path, &read(&self.path)?)?,
            };
            *cache = (stamp, set);
        }
        Ok(cache.1.contains(serial))
    }
}

/// What a verified client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The store it is bound to.
    pub store: ReplicaId,
    /// Its serial (hex, as [`serial_hex`]).
    pub serial: String,
}

/// Why a (CA-verified) client certificate does not name a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertIdentityError {
    /// Not parseable as X.509.
    #[error("client certificate is not valid X.509: {0}")]
    Unparseable(String),
    /// No `urn:tally:store:` SAN URI, several, or an invalid store id.
    #[error("client certificate: {0}")]
    Store(#[from] CertStoreError),
}

/// Reads the store identity out of a client certificate (DER) that the
/// TLS layer has already verified against the hub CA.
pub fn identity_from_cert(der: &[u8]) -> Result<CertIdentity, CertIdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertIdentityError::Unparseable(e.to_string()))?;
    let store = store_of_certificate(&cert)?;
    Ok(CertIdentity {
        store,
        serial: serial_hex(cert.raw_serial()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_sync::clock::ManualClock;

    /// The tests' "now": a fixed day, so certificates are reproducible.
    fn now() -> ManualClock {
        ManualClock::new(1_780_000_000_000)
    }

    #[test]
    fn certificates_are_valid_from_the_clocks_now() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        let clock = ManualClock::new(1_900_000_000_000);
        init(&dir, &[], &clock).unwrap();
        clock.advance(86_400_000);
        let out = tmp.path().join("s1.pem");
        enroll(&dir, "s1", &out, &clock).unwrap();
        let bundle = fs::read_to_string(&out).unwrap();
        let pem = x509_parser::pem::parse_x509_pem(bundle.as_bytes())
            .unwrap()
            .1;
        let cert = pem.parse_x509().unwrap();
        let from = cert.validity().not_before.timestamp();
        let to = cert.validity().not_after.timestamp();
        assert_eq!(from, 1_900_086_400 - 300);
        assert_eq!(to, 1_900_086_400 + STORE_CERT_DAYS * 86_400);
    }

    #[test]
    fn init_enroll_revoke_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        let report = init(&dir, &[], &now()).unwrap();
        assert_eq!(report.hostnames, vec!["localhost", "127.0.0.1"]);
        assert!(dir.read_admin_token().unwrap().len() >= 64);
        assert!(matches!(
            init(&dir, &[], &now()),
            Err(PkiError::AlreadyInitialized(_))
        ));

        let out = tmp.path().join("s1.pem");
        let e = enroll(&dir, "s1", &out, &now()).unwrap();
        let bundle = fs::read_to_string(&out).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(bundle.matches("BEGIN PRIVATE KEY").count(), 1);
        assert!(matches!(
            enroll(&dir, "s1", &out, &now()),
            Err(PkiError::OutputExists(_))
        ));
        assert!(matches!(
            enroll(&dir, "hub", &tmp.path().join("h.pem"), &now()),
            Err(PkiError::BadStoreId(_))
        ));
        assert!(matches!(
            enroll(&dir, "a/b", &tmp.path().join("x.pem"), &now()),
            Err(PkiError::BadStoreId(_))
        ));

        let der = rustls::pki_types::CertificateDer::from(
            x509_parser::pem::parse_x509_pem(bundle.as_bytes())
                .unwrap()
                .1
                .contents,
        );
        let id = identity_from_cert(&der).unwrap();
        assert_eq!(id.store.as_str(), "s1");
        assert_eq!(id.serial, e.serial);

        let revs = Revocations::new(&dir);
        assert!(!revs.is_revoked(&e.serial).unwrap());
        assert_eq!(revoke(&dir, "s1").unwrap(), 1);
        assert_eq!(revoke(&dir, "s1").unwrap(), 0);
        assert!(revs.is_revoked(&e.serial).unwrap());
        assert!(matches!(revoke(&dir, "s2"), Err(PkiError::UnknownStore(_))));

        // A new enrollment after revocation is valid again.
        let e2 = enroll(&dir, "s1", &tmp.path().join("s1b.pem"), &now()).unwrap();
        assert!(!revs.is_revoked(&e2.serial).unwrap());
    }

    /// A crash part-way through `init` (everything but the CA key
    /// written) leaves a directory `init` redoes; once a store holds a
    /// certificate of the CA, or a rotation is under way, it is refused.
    #[test]
    fn init_redoes_a_partial_init_but_never_orphans_a_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        fs::remove_file(dir.ca_key()).unwrap();
        init(&dir, &[], &now()).unwrap();
        enroll(&dir, "s1", &tmp.path().join("s1.pem"), &now()).unwrap();
        assert!(matches!(
            init(&dir, &[], &now()),
            Err(PkiError::AlreadyInitialized(_))
        ));
        fs::remove_file(dir.ca_key()).unwrap();
        assert!(matches!(
            init(&dir, &[], &now()),
            Err(PkiError::AlreadyInitialized(_))
        ));
        let fresh = DataDir::new(tmp.path().join("hub2"));
        init(&fresh, &[], &now()).unwrap();
        fs::rename(fresh.ca_key(), fresh.ca_next_key()).unwrap();
        assert!(matches!(
            init(&fresh, &[], &now()),
            Err(PkiError::AlreadyInitialized(_))
        ));
    }

    #[test]
    fn enroll_needs_init() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert!(matches!(
            enroll(&dir, "s1", &tmp.path().join("s1.pem"), &now()),
            Err(PkiError::NotInitialized(_))
        ));
    }

    #[test]
    fn bad_hostnames_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert!(matches!(
            init(&dir, &["bad host".into()], &now()),
            Err(PkiError::BadHostname { .. })
        ));
        assert!(!dir.ca_cert().exists());
    }

    /// A CSR as an attacker might send it: made for `claimed`, asking for
    /// a server certificate and a CA bit too.
    fn hostile_csr(key: &KeyPair, claimed: &str) -> String {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, claimed);
        params.distinguished_name = dn;
        let uri = format!("{STORE_URI_PREFIX}{claimed}");
        params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into().unwrap())];
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    fn leaf(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    #[test]
    fn a_csr_for_another_subject_still_gets_the_stores_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = CsrRequest::from_pem(&hostile_csr(&key, "store-south")).unwrap();
        let store = check_store_id("store-north").unwrap();
        let issued = issue_for_csr(&dir, &store, &csr, &now()).unwrap();
        let der = leaf(&issued.certificate);
        let id = identity_from_cert(&der).unwrap();
        assert_eq!(id.store.as_str(), "store-north");
        assert_eq!(id.serial, issued.serial);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // The hub's template, not the request's: not a CA, client auth
        // only, the CSR's key.
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(
            cert.public_key().raw,
            csr.public_key_der().as_slice(),
            "the certificate is for the requester's key"
        );
        assert!(cert.subject().to_string().contains("CN=store-north"));
        assert!(dir
            .issued()
            .join("store-north")
            .join(format!("{}.pem", issued.serial))
            .exists());
        assert_eq!(issued.ca, fs::read_to_string(dir.ca_cert()).unwrap());
    }

    #[test]
    fn malformed_or_foreign_csrs_are_refused() {
        assert!(matches!(
            CsrRequest::from_pem("hello"),
            Err(PkiError::BadCsr(_))
        ));
        // A P-384 key.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let pem = hostile_csr(&key, "s1");
        assert!(matches!(
            CsrRequest::from_pem(&pem),
            Err(PkiError::BadCsr(_))
        ));
        // A request whose signature does not match (tampered body).
        let key = KeyPair::generate().unwrap();
        let pem = CertificateParams::new(vec!["s1".into()])
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let mut der = pem.der().to_vec();
        let n = der.len();
        der[n - 1] ^= 0x55;
        let tampered = pem_block("CERTIFICATE REQUEST", &der);
        assert!(matches!(
            CsrRequest::from_pem(&tampered),
            Err(PkiError::BadCsr(_))
        ));
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in der.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        let body: Vec<String> = out
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    }

    #[test]
    fn codes_are_single_use_bound_and_expiring() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        let clock = now();
        init(&dir, &[], &clock).unwrap();
        let north = check_store_id("store-north").unwrap();
        let south = check_store_id("store-south").unwrap();

        let code = enroll_code(&dir, "store-north", 3_600_000, &clock).unwrap();
        assert_eq!(code.code.len(), 32 + 7, "{}", code.code);
        // Only the hash is kept.
        let stored: Vec<_> = fs::read_dir(dir.enroll_codes())
            .unwrap()
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(stored.len(), 1);
        let plain = code.code.replace('-', "");
        assert!(!stored[0].contains(&plain));

        // Wrong code, wrong store: refused, and the code survives.
        let mut wrong = plain.clone().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        let wrong = String::from_utf8(wrong).unwrap();
        assert!(matches!(
            redeem_code(&dir, None, &north, &wrong, &clock),
            Err(CodeRefused::Unknown)
        ));
        assert!(matches!(
            redeem_code(&dir, None, &north, "not a code", &clock),
            Err(CodeRefused::Unknown)
        ));
        assert!(matches!(
            redeem_code(&dir, None, &south, &code.code, &clock),
            Err(CodeRefused::WrongStore)
        ));
        // Right code, typed in upper case without dashes: accepted once.
        redeem_code(&dir, None, &north, &plain.to_uppercase(), &clock).unwrap();
        assert!(matches!(
            redeem_code(&dir, None, &north, &code.code, &clock),
            Err(CodeRefused::Unknown)
        ));

        // Expiry.
        let code = enroll_code(&dir, "store-north", 1_000, &clock).unwrap();
        clock.advance(1_000);
        assert!(matches!(
            redeem_code(&dir, None, &north, &code.code, &clock),
            Err(CodeRefused::Expired)
        ));
        assert!(matches!(
            redeem_code(&dir, None, &north, &code.code, &clock),
            Err(CodeRefused::Unknown)
        ));
        assert!(matches!(
            enroll_code(&dir, "..", 1_000, &clock),
            Err(PkiError::BadStoreId(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn keys_tokens_codes_and_bundles_are_private_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        let out = tmp.path().join("s1.pem");
        enroll(&dir, "s1", &out, &now()).unwrap();
        enroll_code(&dir, "s2", 1_000_000, &now()).unwrap();
        assert_eq!(mode(dir.root()), 0o700);
        assert_eq!(mode(&dir.enroll_codes()), 0o700);
        for private in [dir.ca_key(), dir.server_key(), dir.admin_token(), out] {
            assert_eq!(mode(&private), 0o600, "{}", private.display());
        }
        for entry in fs::read_dir(dir.enroll_codes()).unwrap() {
            assert_eq!(mode(&entry.unwrap().path()), 0o600);
        }
        // Nothing but the files themselves: no temporary names left.
        for entry in fs::read_dir(dir.root()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "{name}");
        }
    }

    #[test]
    fn unsafe_store_ids_never_reach_the_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        for id in ["..", ".", ".hidden", "a/b", "A1", "a..b", "hub", ""] {
            let out = tmp.path().join("x.pem");
            let e = enroll(&dir, id, &out, &now()).unwrap_err();
            assert!(matches!(e, PkiError::BadStoreId(_)), "{id:?}: {e}");
            assert!(e.to_string().contains("a store id is 1-63"), "{e}");
            assert!(matches!(revoke(&dir, id), Err(PkiError::BadStoreId(_))));
            assert!(!out.exists());
        }
        assert_eq!(fs::read_dir(dir.issued()).unwrap().count(), 0);
    }

    #[test]
    fn a_rotation_signs_with_the_new_ca_and_a_cut_short_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        let r = rotate_ca(&dir, &now()).unwrap();
        assert_eq!(r.trusted, 2);
        let ca = fs::read_to_string(dir.ca_cert()).unwrap();
        assert_eq!(pem_certs(&dir.ca_cert(), &ca).unwrap().len(), 2);
        // A bundle carries both CAs; its certificate is the new CA's.
        let out = tmp.path().join("s1.pem");
        enroll(&dir, "s1", &out, &now()).unwrap();
        let bundle = fs::read_to_string(&out).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 3);
        let der = leaf(&bundle);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(
            cert.issuer().to_string().contains("Tally hub CA "),
            "{}",
            cert.issuer()
        );
        // A rotation that stopped before moving the keys: refused, not
        // signed with the wrong key.
        fs::copy(&r.retired_key, dir.ca_key()).unwrap();
        let e = enroll(&dir, "s2", &tmp.path().join("s2.pem"), &now()).unwrap_err();
        assert!(e.to_string().contains("interrupted rotate-ca"), "{e}");
        assert!(matches!(
            retire_old_cas(&dir),
            Err(PkiError::BadFile { .. })
        ));
    }

    /// A rotation cut short is finished by running it again, wherever it
    /// stopped: after the new certificate was written (the keys not yet
    /// moved, or moved half), or before (its unused key dropped, a fresh
    /// rotation).
    #[test]
    fn a_rotation_cut_short_is_finished_by_running_it_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("hub"));
        init(&dir, &[], &now()).unwrap();
        let done = rotate_ca(&dir, &now()).unwrap();
        let next = dir.ca_next_key();
        let signs = |dir: &DataDir| load_issuer(dir).is_ok();
        // Stopped before the keys moved: ca.key the old one.
        fs::rename(dir.ca_key(), &next).unwrap();
        fs::rename(&done.retired_key, dir.ca_key()).unwrap();
        assert!(!signs(&dir));
        let again = rotate_ca(&dir, &now()).unwrap();
        assert_eq!(
            (&again.serial, again.trusted, &again.retired_key),
            (&done.serial, 2, &done.retired_key)
        );
        assert!(signs(&dir) && !next.exists() && done.retired_key.exists());
        // Stopped between the two moves: no ca.key at all.
        fs::rename(dir.ca_key(), &next).unwrap();
        assert_eq!(rotate_ca(&dir, &now()).unwrap().serial, done.serial);
        assert!(signs(&dir) && !next.exists());
        // Stopped before the certificate was written: a fresh rotation.
        fs::write(&next, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let fresh = rotate_ca(&dir, &now()).unwrap();
        assert_ne!(fresh.serial, done.serial);
        assert_eq!(fresh.trusted, 3);
        assert!(signs(&dir) && !next.exists());
    }
}
