//! The hub's own certificate authority: `init`, `enroll`, `revoke`, and
//! reading a store's identity back out of its client certificate.
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
//! - Files are written whole (temporary file, fsync, rename, directory
//!   fsync); keys and the admin token are readable by the owner only.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use tally_sync::clock::Clock;
use tally_sync::ReplicaId;
use time::{Duration, OffsetDateTime};

/// The SAN URI prefix that binds a certificate to a store.
pub const STORE_URI_PREFIX: &str = "urn:tally:store:";

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
    /// The store id is not acceptable.
    #[error("invalid store id {id:?}: {reason}")]
    BadStoreId {
        /// What was given.
        id: String,
        /// Why it is refused.
        reason: String,
    },
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

    /// Reads the admin token.
    pub fn read_admin_token(&self) -> Result<String, PkiError> {
        let path = self.admin_token();
        if !path.exists() {
            return Err(PkiError::NotInitialized(self.root.clone()));
        }
        let token = fs::read_to_string(&path).map_err(io(&path))?;
        let token = token.trim().to_string();
        if token.len() < 32 {
            return Err(PkiError::BadFile {
                path,
                detail: "admin token shorter than 32 characters".into(),
            });
        }
        Ok(token)
    }
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Names in the server certificate.
    pub hostnames: Vec<String>,
    /// The admin token file.
    pub admin_token_path: PathBuf,
}

/// Writes `bytes` to `path` whole: temporary file, fsync, rename, fsync of
/// the directory. `private` files are readable by the owner only.
fn write_file(path: &Path, bytes: &[u8], private: bool, overwrite: bool) -> Result<(), PkiError> {
    if !overwrite && path.exists() {
        return Err(PkiError::OutputExists(path.to_path_buf()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    // Positive and without a leading zero byte, so its DER form is these
    // exact 16 bytes and its hex is stable.
    b[0] = (b[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&b)
}

fn hex(bytes: &[u8]) -> String {
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

/// Valid from five minutes before `clock`'s now (a store's clock may lag)
/// for `days`.
fn validity(params: &mut CertificateParams, days: i64, clock: &dyn Clock) {
    let nanos = i128::from(clock.now_ms()) * 1_000_000;
    let now =
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
}

/// Checks a store id: a valid replica id that is not the hub's.
pub fn check_store_id(id: &str) -> Result<ReplicaId, PkiError> {
    let bad = |reason: String| PkiError::BadStoreId {
        id: id.chars().take(80).collect(),
        reason,
    };
    let r = ReplicaId::new(id).map_err(|e| bad(e.to_string()))?;
    if r.is_hub() {
        return Err(bad("\"hub\" is the hub's own replica id".into()));
    }
    Ok(r)
}

fn hostname_san(name: &str) -> Result<SanType, PkiError> {
    let bad = |reason: &str| PkiError::BadHostname {
        name: name.chars().take(80).collect(),
        reason: reason.into(),
    };
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*'));
    if !ok {
        return Err(bad("not an IP address or DNS name"));
    }
    Ok(SanType::DnsName(
        name.try_into().map_err(|_| bad("not ASCII"))?,
    ))
}

fn ca_params(clock: &dyn Clock) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally");
    dn.push(DnType::CommonName, "Tally hub CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    validity(&mut params, CA_CERT_DAYS, clock);
    params
}

/// Creates the CA, the server certificate for `hostnames` (default
/// `localhost` and `127.0.0.1`) and the admin token in `dir`; the
/// certificates are valid from `clock`'s now.
pub fn init(
    dir: &DataDir,
    hostnames: &[String],
    clock: &dyn Clock,
) -> Result<InitReport, PkiError> {
    let hostnames: Vec<String> = if hostnames.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        hostnames.to_vec()
    };
    let sans = hostnames
        .iter()
        .map(|h| hostname_san(h))
        .collect::<Result<Vec<_>, _>>()?;
    if dir.ca_cert().exists() || dir.ca_key().exists() {
        return Err(PkiError::AlreadyInitialized(dir.root().to_path_buf()));
    }
    fs::create_dir_all(dir.root()).map_err(io(dir.root()))?;
    fs::create_dir_all(dir.issued()).map_err(io(&dir.issued()))?;

    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params(clock);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally");
    dn.push(DnType::CommonName, hostnames[0].as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    validity(&mut params, CA_CERT_DAYS, clock);
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);

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
    write_file(
        &dir.admin_token(),
        format!("{}\n", hex(&token)).as_bytes(),
        true,
        true,
    )?;
    write_file(
        &dir.ca_key(),
        ca_key.serialize_pem().as_bytes(),
        true,
        false,
    )?;
    Ok(InitReport {
        hostnames,
        admin_token_path: dir.admin_token(),
    })
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
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| PkiError::BadFile {
        path: dir.ca_cert(),
        detail: e.to_string(),
    })?;
    Ok((ca_pem, issuer))
}

/// Issues a client certificate for `store` and writes the identity bundle
/// (certificate, private key, CA certificate; PEM) to `out`.
pub fn enroll(
    dir: &DataDir,
    store: &str,
    out: &Path,
    clock: &dyn Clock,
) -> Result<Enrolled, PkiError> {
    let store = check_store_id(store)?;
    let (ca_pem, issuer) = load_issuer(dir)?;
    if out.exists() {
        return Err(PkiError::OutputExists(out.to_path_buf()));
    }
    let key = KeyPair::generate()?;
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
    validity(&mut params, STORE_CERT_DAYS, clock);
    let cert = params.signed_by(&key, &issuer)?;

    let issued = dir.issued().join(store.as_str());
    fs::create_dir_all(&issued).map_err(io(&issued))?;
    write_file(
        &issued.join(format!("{serial_str}.pem")),
        cert.pem().as_bytes(),
        false,
        false,
    )?;
    let bundle = format!(
        "{}{}{}",
        cert.pem(),
        key.serialize_pem(),
        ca_pem.trim_end().to_string() + "\n"
    );
    write_file(out, bundle.as_bytes(), true, false)?;
    Ok(Enrolled {
        store,
        serial: serial_str,
        bundle: out.to_path_buf(),
    })
}

/// Revokes every certificate issued to `store` so far. Returns how many
/// serials were newly revoked. The running hub refuses them from its next
/// request on.
pub fn revoke(dir: &DataDir, store: &str) -> Result<usize, PkiError> {
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

/// The revocation list as the running hub sees it: re-read whenever the
/// file changes (size, modification time or inode), checked on every sync.
#[derive(Debug)]
pub struct Revocations {
    path: PathBuf,
    cache: Mutex<(Option<FileStamp>, HashSet<String>)>,
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
            path: dir.revoked(),
            cache: Mutex::new((None, HashSet::new())),
        }
    }

    /// Whether the certificate with `serial` (hex, as [`serial_hex`]) is
    /// revoked. Fails closed: an unreadable list is an error, not "no".
    pub fn is_revoked(&self, serial: &str) -> Result<bool, PkiError> {
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
    /// No `urn:tally:store:` SAN URI, or several.
    #[error("client certificate is not bound to exactly one store (expected one SAN URI {STORE_URI_PREFIX}<ID>)")]
    NoStore,
    /// The id in the SAN is not a valid store id.
    #[error("client certificate names an invalid store id: {0}")]
    BadStore(String),
}

/// Reads the store identity out of a client certificate (DER) that the
/// TLS layer has already verified against the hub CA.
pub fn identity_from_cert(der: &[u8]) -> Result<CertIdentity, CertIdentityError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertIdentityError::Unparseable(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertIdentityError::Unparseable(e.to_string()))?;
    let mut stores = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(uri) => uri.strip_prefix(STORE_URI_PREFIX),
            _ => None,
        });
    let (Some(id), None) = (stores.next(), stores.next()) else {
        return Err(CertIdentityError::NoStore);
    };
    let store = check_store_id(id).map_err(|e| CertIdentityError::BadStore(e.to_string()))?;
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
            Err(PkiError::BadStoreId { .. })
        ));
        assert!(matches!(
            enroll(&dir, "a/b", &tmp.path().join("x.pem"), &now()),
            Err(PkiError::BadStoreId { .. })
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
}
