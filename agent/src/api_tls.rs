//! TLS for the agent's API on the store network. An agent listening
//! beyond loopback serves HTTPS only, so the tills' tokens, the cashiers'
//! and managers' PINs and the sales themselves never cross the store LAN
//! in clear (`[api] tls`, see `config`).
//!
//! # Design constraints
//! - **The agent is the CA of its own API**, not the hub's CA: the API
//!   works with no hub, and a till that trusts it trusts nothing else.
//!   `tally-agent api-ca` makes the CA (once) and prints the certificate
//!   the tills are given (`tally-agent pos --agent-ca FILE`).
//! - **The CA is made once and kept**; the server certificate is made
//!   again at start whenever the names the API answers to change (loopback
//!   names, the listen address, `[api] allowed_hosts`), so the tills never
//!   need a new file when the store's network does.
//! - **No half-written pair:** the CA's certificate and key are one private
//!   file, created only if absent (a second maker, such as `api-ca` run
//!   while the agent starts, reads the first's); the server's certificate
//!   and key are one private file, replaced whole. `ca.pem` is a public
//!   copy of the CA's certificate for the tills. All through
//!   `tally_service::files` (fsync, rename, directory fsync).
//! - Anything unreadable in the server's file is made again; an unreadable
//!   CA is an error naming the directory (a new CA would strand every
//!   till).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tally_service::certs::{self, CertError};
use tally_service::files::{self, FileError, Replace, Visibility};
use tally_sync::clock::Clock;

/// How long the API's CA and its server certificates are valid.
const API_CERT_DAYS: i64 = 20 * 365;

/// The marker that starts the key in a bundle (rcgen writes PKCS#8).
const KEY_MARKER: &str = "-----BEGIN PRIVATE KEY-----";

/// Why the API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    /// A file could not be written.
    #[error(transparent)]
    File(#[from] FileError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The CA's file is damaged.
    #[error("{path}: {detail} (remove {dir} to make a new CA; every till must then be given the new ca.pem)", dir = .path.parent().unwrap_or(Path::new(".")).display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A certificate could not be made.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
    /// The clock reads too early to make a CA valid for years.
    #[error("the system clock reads {at}, before 2024: set the clock (or wait for time sync) before the API's CA is made", at = tally_sync::timestamp::rfc3339(*.0))]
    Clock(u64),
}

/// Where the API's TLS files are: `api-tls/` in the data directory.
#[derive(Debug, Clone)]
pub struct ApiTlsDir {
    root: PathBuf,
}

impl ApiTlsDir {
    /// The directory of the agent whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("api-tls"),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA's certificate for the tills (public).
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// The CA's certificate and key (private).
    fn ca_bundle(&self) -> PathBuf {
        self.root.join("ca-bundle.pem")
    }

    /// The server's certificate and key (private).
    fn server_bundle(&self) -> PathBuf {
        self.root.join("server-bundle.pem")
    }
}

/// How the API, serving HTTPS, speaks with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speak {
    /// TLS, then HTTP.
    Tls,
    /// Plain HTTP: a peer on this machine (loopback traffic never crosses
    /// the network), so the same box's terminal and CLI keep
    /// `http://127.0.0.1:7420`.
    Plain,
    /// Nothing: plain HTTP from elsewhere would carry tokens and PINs in
    /// clear.
    Refuse,
}

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// How to speak with a connection from `peer` whose first byte is
/// `first`: TLS for a TLS handshake, plain HTTP (any other first byte)
/// from loopback only; an IPv4 peer seen as an IPv6-mapped address counts
/// as the IPv4 one. Pure.
pub fn speak(first: u8, peer: IpAddr) -> Speak {
    if first == TLS_HANDSHAKE {
        Speak::Tls
    } else if peer.to_canonical().is_loopback() {
        Speak::Plain
    } else {
        Speak::Refuse
    }
}

/// The names the API's certificate carries: `localhost`, `127.0.0.1` and
/// `::1`, the listen address unless it is a wildcard (`0.0.0.0`, `::`),
/// and `allowed_hosts`, once each in that order. Pure.
pub fn api_names(listen: SocketAddr, allowed_hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(allowed_hosts.iter().map(|h| h.trim().to_string()));
    let mut seen = BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(canonical(n)));
    names
}

/// A name as a certificate compares it: an IP address in its canonical
/// form, a DNS name in lower case.
fn canonical(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

/// The earliest time a clock may read for a CA to be made (2024-01-01):
/// a box whose clock battery died reads 1970 or 2000 until it syncs, and
/// a CA made then would be expired or not yet valid for twenty years.
const PLAUSIBLE_FROM_MS: u64 = 1_704_067_200_000;

/// The CA's certificate (PEM) as kept in `dir`, if the agent made one.
pub fn read_ca(dir: &ApiTlsDir) -> Result<Option<String>, ApiTlsError> {
    let bundle_path = dir.ca_bundle();
    let Some(bundle) = read_opt(&bundle_path)? else {
        return Ok(None);
    };
    let cert = split_bundle(&bundle)
        .map(|(cert, _)| cert)
        .filter(|cert| fingerprint(cert).is_some())
        .ok_or_else(|| ApiTlsError::BadCa {
            path: bundle_path,
            detail: "not a certificate followed by its key".into(),
        })?;
    Ok(Some(cert.to_string()))
}

/// The CA's certificate (PEM), made first if the directory has none.
pub fn ensure_ca(dir: &ApiTlsDir, clock: &dyn Clock) -> Result<String, ApiTlsError> {
    files::create_private_dir(&dir.root)?;
    let bundle_path = dir.ca_bundle();
    let bundle = match read_opt(&bundle_path)? {
        Some(bundle) => bundle,
        None if dir.ca_cert().exists() => {
            // The tills were given this CA's certificate: a new CA would
            // strand them all, so not without a person deciding to.
            return Err(ApiTlsError::BadCa {
                path: bundle_path,
                detail: "the CA's key is gone but its certificate (ca.pem) is still here".into(),
            });
        }
        None if clock.now_ms() < PLAUSIBLE_FROM_MS => {
            return Err(ApiTlsError::Clock(clock.now_ms()));
        }
        None => {
            let key = KeyPair::generate().map_err(CertError::from)?;
            let serial = certs::random_serial();
            // A distinct name per CA, so a till never confuses two.
            let name = format!("Tally agent API CA {}", &hex(&serial.to_bytes())[..8]);
            let params = certs::ca_params(&name, serial, API_CERT_DAYS, clock);
            let cert = params.self_signed(&key).map_err(CertError::from)?;
            let bundle = format!("{}{}", cert.pem(), key.serialize_pem());
            match files::write_atomic(
                &bundle_path,
                bundle.as_bytes(),
                Visibility::Private,
                Replace::Never,
            ) {
                Ok(()) => bundle,
                // Another maker was first: its CA stands.
                Err(FileError::Exists(_)) => read(&bundle_path)?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (cert_pem, _) = split_bundle(&bundle).ok_or_else(|| ApiTlsError::BadCa {
        path: bundle_path.clone(),
        detail: "not a certificate followed by its key".into(),
    })?;
    let public = dir.ca_cert();
    if read_opt(&public)?.as_deref() != Some(cert_pem) {
        files::write_atomic(
            &public,
            cert_pem.as_bytes(),
            Visibility::Public,
            Replace::Overwrite,
        )?;
    }
    Ok(cert_pem.to_string())
}

/// The SHA-256 fingerprint of the first certificate in `pem`
/// (`AB:CD:…`), for a person to compare at a till.
pub fn fingerprint(pem: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let digest = Sha256::digest(der.as_ref());
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The API's server configuration for `names`: the CA made if absent, the
/// server certificate made again unless the one on disk is the CA's, for
/// exactly these names, with its key. ALPN `h2` and `http/1.1`.
pub fn server_config(
    dir: &ApiTlsDir,
    names: &[String],
    clock: &dyn Clock,
) -> Result<Arc<rustls::ServerConfig>, ApiTlsError> {
    let ca_pem = ensure_ca(dir, clock)?;
    tracing::info!(
        ca = %dir.ca_cert().display(),
        fingerprint = fingerprint(&ca_pem).unwrap_or_default(),
        names = ?names,
        "The API serves HTTPS (plain HTTP to this machine only); tills trust its CA (tally-agent api-ca)."
    );
    let now_ms = clock.now_ms();
    if !valid_at(&ca_pem, now_ms) {
        tracing::error!(
            ca = %dir.ca_cert().display(),
            now = %tally_sync::timestamp::rfc3339(now_ms),
            "The API's CA is not valid now: the clock is wrong, or was when the CA was made. \
             Tills will refuse the agent until the clock is right (or a new CA is made and given to every till)."
        );
    }
    let bundle_path = dir.server_bundle();
    let current = read_opt(&bundle_path)?.filter(|b| server_bundle_fits(b, &ca_pem, names, now_ms));
    let bundle = match current {
        Some(bundle) => bundle,
        None => {
            let ca_bundle = read(&dir.ca_bundle())?;
            let bad_ca = |detail: String| ApiTlsError::BadCa {
                path: dir.ca_bundle(),
                detail,
            };
            let (cert, key) = split_bundle(&ca_bundle)
                .ok_or_else(|| bad_ca("not a certificate followed by its key".into()))?;
            let key = KeyPair::from_pem(key).map_err(|e| bad_ca(e.to_string()))?;
            let issuer = Issuer::from_ca_cert_pem(cert, key).map_err(|e| bad_ca(e.to_string()))?;
            let (key, cert) = certs::server_certificate(names, &issuer, API_CERT_DAYS, clock)?;
            let bundle = format!("{}{}", cert.pem(), key.serialize_pem());
            files::write_atomic(
                &bundle_path,
                bundle.as_bytes(),
                Visibility::Private,
                Replace::Overwrite,
            )?;
            tracing::info!(names = ?names, "Made the API's server certificate.");
            bundle
        }
    };
    let (cert_pem, key_pem) = split_bundle(&bundle).unwrap_or_default();
    let mut chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiTlsError::Rustls(e.to_string()))?;
    // Send the CA too, so a client that only has the CA builds the chain.
    chain.extend(
        CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiTlsError::Rustls(e.to_string()))?,
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| ApiTlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ApiTlsError::Rustls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| ApiTlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether the first certificate in `pem` is valid at `now_ms`.
fn valid_at(pem: &str, now_ms: u64) -> bool {
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(pem.as_bytes()).next() else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let validity = cert.validity();
    validity.not_before.timestamp() <= now_s && now_s <= validity.not_after.timestamp()
}

/// Whether the server `bundle` on disk can be served as it is: a
/// certificate issued by the CA of `ca_pem` for exactly `names`, valid at
/// `now_ms`, and its key.
fn server_bundle_fits(bundle: &str, ca_pem: &str, names: &[String], now_ms: u64) -> bool {
    let Some((cert_pem, key_pem)) = split_bundle(bundle) else {
        return false;
    };
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() else {
        return false;
    };
    let Some(Ok(ca_der)) = CertificateDer::pem_slice_iter(ca_pem.as_bytes()).next() else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(der.as_ref()),
        x509_parser::parse_x509_certificate(ca_der.as_ref()),
    ) else {
        return false;
    };
    let Ok(key) = KeyPair::from_pem(key_pem) else {
        return false;
    };
    use rcgen::PublicKeyData;
    let wanted: BTreeSet<String> = names.iter().map(|n| canonical(n)).collect();
    cert.issuer().as_raw() == ca.subject().as_raw()
        && valid_at(cert_pem, now_ms)
        && cert.public_key().raw == key.subject_public_key_info().as_slice()
        && cert_names(&cert) == Some(wanted)
}

/// The DNS and IP names of a certificate, canonical.
fn cert_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<BTreeSet<String>> {
    use x509_parser::extensions::GeneralName;
    let san = cert.subject_alternative_name().ok()??;
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => Some(canonical(dns)),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A bundle's certificate part and key part.
fn split_bundle(bundle: &str) -> Option<(&str, &str)> {
    let at = bundle.find(KEY_MARKER)?;
    let (cert, key) = bundle.split_at(at);
    (cert.contains("-----BEGIN CERTIFICATE-----")).then_some((cert, key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's text; bytes that are not UTF-8 become U+FFFD, so a damaged
/// file reads as one that does not parse.
fn read(path: &Path) -> Result<String, ApiTlsError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|source| ApiTlsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// [`read`], `None` for a file that is not there.
fn read_opt(path: &Path) -> Result<Option<String>, ApiTlsError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ApiTlsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tally_sync::clock::ManualClock;

    const NOW_MS: u64 = 1_900_000_000_000;

    fn now() -> ManualClock {
        ManualClock::new(NOW_MS)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tls_from_anywhere_plain_http_from_this_machine_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for peer in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(speak(0x16, ip(peer)), Speak::Tls, "{peer}");
            assert_eq!(speak(b'G', ip(peer)), Speak::Plain, "{peer}");
            assert_eq!(speak(b'P', ip(peer)), Speak::Plain, "{peer}");
        }
        for peer in [
            "10.0.0.7",
            "192.168.1.20",
            "fe80::1",
            "::ffff:10.0.0.7",
            "0.0.0.0",
        ] {
            assert_eq!(speak(0x16, ip(peer)), Speak::Tls, "{peer}");
            assert_eq!(speak(b'G', ip(peer)), Speak::Refuse, "{peer}");
            assert_eq!(speak(0x00, ip(peer)), Speak::Refuse, "{peer}");
        }
    }

    #[test]
    fn names_are_loopback_the_listen_address_and_allowed_hosts_once_each() {
        assert_eq!(
            api_names(
                addr("10.1.2.3:7420"),
                &["POS-07.example".into(), "pos-07.example".into()]
            ),
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "10.1.2.3",
                "POS-07.example"
            ]
        );
        assert_eq!(
            api_names(addr("0.0.0.0:7420"), &[" till.lan ".into(), "".into()]),
            ["localhost", "127.0.0.1", "::1", "till.lan"]
        );
        assert_eq!(
            api_names(addr("[::]:7420"), &["0:0:0:0:0:0:0:1".into()]),
            ["localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn the_ca_is_made_once_and_the_server_certificate_follows_the_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ApiTlsDir::new(tmp.path());
        let names = api_names(addr("10.0.0.7:7420"), &[]);
        server_config(&dir, &names, &now()).unwrap();
        let ca = std::fs::read_to_string(dir.ca_cert()).unwrap();
        let server = std::fs::read_to_string(dir.server_bundle()).unwrap();
        // Same names: nothing is made again.
        server_config(&dir, &names, &now()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.server_bundle()).unwrap(),
            server
        );
        // New names: a new server certificate from the same CA.
        let more = api_names(addr("10.0.0.7:7420"), &["pos-07.lan".into()]);
        server_config(&dir, &more, &now()).unwrap();
        let reissued = std::fs::read_to_string(dir.server_bundle()).unwrap();
        assert_ne!(reissued, server);
        assert!(server_bundle_fits(&reissued, &ca, &more, NOW_MS));
        assert!(!server_bundle_fits(&reissued, &ca, &names, NOW_MS));
        assert_eq!(ensure_ca(&dir, &now()).unwrap(), ca);
        assert_eq!(std::fs::read_to_string(dir.ca_cert()).unwrap(), ca);
    }

    #[test]
    fn a_damaged_server_file_is_made_again_and_a_damaged_ca_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ApiTlsDir::new(tmp.path());
        let names = api_names(addr("127.0.0.1:7420"), &[]);
        server_config(&dir, &names, &now()).unwrap();
        std::fs::write(dir.server_bundle(), "garbage").unwrap();
        server_config(&dir, &names, &now()).unwrap();
        let ca = ensure_ca(&dir, &now()).unwrap();
        assert!(server_bundle_fits(
            &std::fs::read_to_string(dir.server_bundle()).unwrap(),
            &ca,
            &names,
            NOW_MS
        ));
        // Bytes that are not even text: made again too.
        std::fs::write(dir.server_bundle(), [0xff, 0xfe, 0x00, 0x80]).unwrap();
        server_config(&dir, &names, &now()).unwrap();
        // A public copy lost or edited (or not text) is written again.
        std::fs::write(dir.ca_cert(), [0xff, 0x80]).unwrap();
        assert_eq!(ensure_ca(&dir, &now()).unwrap(), ca);
        assert_eq!(std::fs::read_to_string(dir.ca_cert()).unwrap(), ca);
        assert_eq!(read_ca(&dir).unwrap().as_deref(), Some(ca.as_str()));
        std::fs::write(dir.ca_bundle(), "garbage").unwrap();
        let err = server_config(&dir, &names, &now()).unwrap_err();
        assert!(matches!(err, ApiTlsError::BadCa { .. }), "{err}");
        assert!(err.to_string().contains("remove"), "{err}");
        assert!(read_ca(&dir).is_err());
        // The CA's key gone, its certificate still with the tills: no new
        // CA behind their back.
        std::fs::remove_file(dir.ca_bundle()).unwrap();
        let err = ensure_ca(&dir, &now()).unwrap_err();
        assert!(matches!(err, ApiTlsError::BadCa { .. }), "{err}");
        assert_eq!(read_ca(&dir).unwrap(), None);
        assert_eq!(std::fs::read_to_string(dir.ca_cert()).unwrap(), ca);
    }

    #[test]
    fn no_ca_is_made_on_a_clock_that_reads_before_2024_and_expiry_makes_a_new_server_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ApiTlsDir::new(tmp.path());
        let names = api_names(addr("127.0.0.1:7420"), &[]);
        let dead_battery = ManualClock::new(946_684_800_000); // 2000-01-01
        let err = server_config(&dir, &names, &dead_battery).unwrap_err();
        assert!(matches!(err, ApiTlsError::Clock(_)), "{err}");
        assert!(!dir.ca_cert().exists());
        // A server certificate outside its validity is not served.
        server_config(&dir, &names, &now()).unwrap();
        let ca = ensure_ca(&dir, &now()).unwrap();
        let bundle = std::fs::read_to_string(dir.server_bundle()).unwrap();
        assert!(server_bundle_fits(&bundle, &ca, &names, NOW_MS));
        assert!(!server_bundle_fits(
            &bundle,
            &ca,
            &names,
            NOW_MS - 3_600_000
        ));
        let after = NOW_MS + (API_CERT_DAYS as u64 + 1) * 86_400_000;
        assert!(!server_bundle_fits(&bundle, &ca, &names, after));
    }

    #[test]
    fn a_server_certificate_of_another_ca_or_with_another_key_does_not_fit() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, two) = (
            ApiTlsDir::new(&tmp.path().join("1")),
            ApiTlsDir::new(&tmp.path().join("2")),
        );
        let names = api_names(addr("127.0.0.1:7420"), &[]);
        server_config(&one, &names, &now()).unwrap();
        server_config(&two, &names, &now()).unwrap();
        let ca_one = ensure_ca(&one, &now()).unwrap();
        let bundle_two = std::fs::read_to_string(two.server_bundle()).unwrap();
        assert!(!server_bundle_fits(&bundle_two, &ca_one, &names, NOW_MS));
        let bundle_one = std::fs::read_to_string(one.server_bundle()).unwrap();
        let (cert, _) = split_bundle(&bundle_one).unwrap();
        let (_, other_key) = split_bundle(&bundle_two).unwrap();
        assert!(!server_bundle_fits(
            &format!("{cert}{other_key}"),
            &ca_one,
            &names,
            NOW_MS
        ));
    }

    #[test]
    fn fingerprints_are_colon_separated_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = ensure_ca(&ApiTlsDir::new(tmp.path()), &now()).unwrap();
        let f = fingerprint(&ca).unwrap();
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(fingerprint("no pem").is_none());
    }
}
