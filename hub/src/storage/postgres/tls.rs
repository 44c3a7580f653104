//! TLS to PostgreSQL, configured the way libpq's connection parameters
//! configure it, so a managed database's connection string works as it
//! does with `psql`:
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | | |
//! | `prefer` (default) | if the server offers it | only with `sslrootcert` | no |
//! | `require` | yes | only with `sslrootcert` | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! - `sslrootcert=FILE` (PEM, one or more CA certificates) or
//!   `sslrootcert=system` (the platform's trust store). `verify-ca` and
//!   `verify-full` need one: there is no silent default. With `system`
//!   the mode is `verify-full` and no other (as libpq 16+): anyone can
//!   get a publicly trusted certificate for a name of their own.
//! - `sslcert=FILE` and `sslkey=FILE` (PEM): a client certificate, for
//!   servers that authenticate clients by certificate.
//! - Over a Unix socket there is no TLS, whatever `sslmode` says (as
//!   libpq).
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and no
//! file parameters, so [`split_tls_params`] takes these parameters out of
//! the connection string (a URL or `key=value` pairs) before the driver
//! parses the rest. The handshake is rustls (ring), through
//! `tokio-postgres-rustls`, which also gives SCRAM channel binding.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::storage::StorageError;

/// libpq's `sslmode`, as far as the hub supports it (`allow`, which
/// tries without TLS first, is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate chained to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, StorageError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(bad(
                    "sslmode=allow is not supported: use prefer, require or verify-full",
                ))
            }
            other => return Err(bad(format!("unknown sslmode {other:?}"))),
        })
    }

    /// The mode tokio-postgres is told (it checks no certificates: the
    /// rustls configuration does).
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as D;
        match self {
            SslMode::Disable => D::Disable,
            SslMode::Prefer => D::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => D::Require,
        }
    }
}

/// Where the CA certificates for the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// The platform's trust store (`sslrootcert=system`).
    System,
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode`, if given (see [`TlsParams::mode`]).
    pub mode: Option<SslMode>,
    /// `sslrootcert`.
    pub root_cert: Option<RootCerts>,
    /// `sslcert`: the client's certificate chain.
    pub cert: Option<PathBuf>,
    /// `sslkey`: the client's private key.
    pub key: Option<PathBuf>,
}

fn bad(detail: impl fmt::Display) -> StorageError {
    StorageError::Db(format!("bad database URL: {detail}"))
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsParams {
    /// The mode in force: as given, else `prefer`; with
    /// `sslrootcert=system`, `verify-full` (the default and the only mode
    /// allowed).
    pub(crate) fn mode(&self) -> Result<SslMode, StorageError> {
        match (self.mode, &self.root_cert) {
            (None | Some(SslMode::VerifyFull), Some(RootCerts::System)) => Ok(SslMode::VerifyFull),
            (Some(_), Some(RootCerts::System)) => Err(bad(
                "sslrootcert=system needs sslmode=verify-full (any publicly trusted certificate would pass otherwise)",
            )),
            (Some(mode), _) => Ok(mode),
            (None, _) => Ok(SslMode::Prefer),
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        match key {
            "sslmode" => self.mode = Some(SslMode::parse(value)?),
            "sslrootcert" => {
                self.root_cert = Some(if value == "system" {
                    RootCerts::System
                } else {
                    RootCerts::File(PathBuf::from(value))
                });
            }
            "sslcert" => self.cert = Some(PathBuf::from(value)),
            "sslkey" => self.key = Some(PathBuf::from(value)),
            _ => {}
        }
        Ok(())
    }
}

/// Takes the TLS parameters out of connection string `s` (a
/// `postgres://` URL or libpq `key=value` pairs): answers the string
/// without them, for tokio-postgres, and the parameters. Pure.
pub(crate) fn split_tls_params(s: &str) -> Result<(String, TlsParams), StorageError> {
    let mut params = TlsParams::default();
    let trimmed = s.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        // Where the driver finds the query: the credentials run to the
        // first '@' (a raw '?' may be in a password), the query starts
        // at the first '?' after them.
        let after_credentials = trimmed.find('@').map_or(0, |at| at + 1);
        let Some(q) = trimmed[after_credentials..].find('?') else {
            return Ok((s.to_string(), params));
        };
        let (base, query) = trimmed.split_at(after_credentials + q);
        let query = &query[1..];
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k)?;
            if TLS_KEYS.contains(&key.as_str()) {
                params.set(&key, &decode(v)?)?;
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, params));
    }
    let mut kept = Vec::new();
    for (key, value) in key_values(s)? {
        if TLS_KEYS.contains(&key.as_str()) {
            params.set(&key, &value)?;
        } else {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), params))
}

fn decode(s: &str) -> Result<String, StorageError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad("a URL parameter is not UTF-8"))
}

/// libpq's `key = value` pairs: values bare or in single quotes, `\`
/// escaping the next character.
fn key_values(s: &str) -> Result<Vec<(String, String)>, StorageError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(format!("expected '=' after {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(bad(format!("unterminated quoted value of {key:?}"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// The rustls configuration for `params`; `None` for `sslmode=disable`.
/// Reads the files it names (errors name the file).
pub(crate) fn client_config(params: &TlsParams) -> Result<Option<ClientConfig>, StorageError> {
    let mode = params.mode()?;
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = crate::tls::provider();
    let roots = match &params.root_cert {
        None => None,
        Some(RootCerts::File(path)) => Some(roots_from_file(path)?),
        Some(RootCerts::System) => Some(system_roots()?),
    };
    let verifier: Arc<dyn ServerCertVerifier> =
        match (mode, roots) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(bad(
                "sslmode=verify-ca and verify-full need sslrootcert=FILE (or sslrootcert=system)",
            )),
            (mode, Some(roots)) => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| bad(format!("sslrootcert: {e}")))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    // libpq: with a root certificate, `prefer` and `require`
                    // check the chain as `verify-ca` does.
                    Arc::new(AnyName(webpki))
                }
            }
            (_, None) => Arc::new(AnyCertificate(provider.clone())),
        };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Db(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&params.cert, &params.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("sslcert", cert, e))?;
            if chain.is_empty() {
                return Err(file_error("sslcert", cert, "no certificate in it"));
            }
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("sslkey", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| file_error("sslkey", key, e))?
        }
        _ => return Err(bad("sslcert and sslkey go together")),
    };
    Ok(Some(config))
}

fn file_error(param: &str, path: &Path, e: impl fmt::Display) -> StorageError {
    StorageError::Db(format!("{param} {}: {e}", path.display()))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, StorageError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error("sslrootcert", path, e))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| file_error("sslrootcert", path, e))?;
    }
    if roots.is_empty() {
        return Err(file_error("sslrootcert", path, "no certificate in it"));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, StorageError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(StorageError::Db(format!(
            "sslrootcert=system: no trusted certificate found on this machine ({} errors)",
            found.errors.len()
        )));
    }
    Ok(roots)
}

/// Checks the chain and the handshake, not the name (`verify-ca`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Checks the handshake only: the connection is encrypted to whoever
/// holds the key of the certificate shown (`prefer` and `require` with no
/// `sslrootcert`, as libpq).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_loses_its_tls_parameters_and_keeps_the_rest_as_written() {
        let (rest, p) = split_tls_params(
            "postgres://u:p%40ss@db.example:5432/tally?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20bundle.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example:5432/tally?application_name=x"
        );
        assert_eq!(p.mode, Some(SslMode::VerifyFull));
        assert_eq!(
            p.root_cert,
            Some(RootCerts::File(PathBuf::from("/etc/ca bundle.pem")))
        );
        // The system's roots: verify-full, and nothing weaker.
        let (rest, p) = split_tls_params("postgresql://h/db?sslrootcert=system").unwrap();
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(
            (p.mode().unwrap(), p.root_cert),
            (SslMode::VerifyFull, Some(RootCerts::System))
        );
        for weaker in ["prefer", "require", "verify-ca", "disable"] {
            let (_, p) = split_tls_params(&format!(
                "postgres://h/db?sslrootcert=system&sslmode={weaker}"
            ))
            .unwrap();
            assert!(p.mode().is_err(), "{weaker}");
        }
        // A raw '?' in a password is the driver's too: the query is the
        // one after the credentials.
        let (rest, p) =
            split_tls_params("postgres://u:pa?ss@db/t?sslmode=require&application_name=x").unwrap();
        assert_eq!(rest, "postgres://u:pa?ss@db/t?application_name=x");
        assert_eq!(p.mode, Some(SslMode::Require));
        let (rest, p) = split_tls_params("postgres://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), p),
            ("postgres://h/db", TlsParams::default())
        );
    }

    #[test]
    fn key_value_pairs_lose_their_tls_parameters_and_keep_quoted_values() {
        let (rest, p) = split_tls_params(
            "host=db.example  user = 'o\\'brien' sslmode=require sslcert='/k/my cert.pem' sslkey=/k/key.pem dbname=tally",
        )
        .unwrap();
        assert_eq!(rest, "host='db.example' user='o\\'brien' dbname='tally'");
        assert_eq!(p.mode, Some(SslMode::Require));
        assert_eq!(p.cert, Some(PathBuf::from("/k/my cert.pem")));
        assert_eq!(p.key, Some(PathBuf::from("/k/key.pem")));
        // What is kept parses to the same settings.
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_user(), Some("o'brien"));
    }

    #[test]
    fn bad_tls_parameters_are_refused_with_what_is_wrong() {
        for (s, expect) in [
            ("host=h sslmode=allow", "allow is not supported"),
            ("host=h sslmode=sometimes", "unknown sslmode"),
            ("postgres://h/d?sslmode=verify", "unknown sslmode"),
            ("host=h user='open", "unterminated"),
            ("host", "expected '='"),
        ] {
            let err = split_tls_params(s).unwrap_err().to_string();
            assert!(err.contains(expect), "{s}: {err}");
        }
        let needs_root = TlsParams {
            mode: Some(SslMode::VerifyFull),
            ..TlsParams::default()
        };
        let err = client_config(&needs_root).unwrap_err().to_string();
        assert!(err.contains("need sslrootcert"), "{err}");
        let half = TlsParams {
            cert: Some(PathBuf::from("/nonexistent.pem")),
            ..TlsParams::default()
        };
        let err = client_config(&half).unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
        let missing = TlsParams {
            mode: Some(SslMode::VerifyCa),
            root_cert: Some(RootCerts::File(PathBuf::from("/nonexistent/ca.pem"))),
            ..TlsParams::default()
        };
        let err = client_config(&missing).unwrap_err().to_string();
        assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn disable_builds_no_tls_and_the_other_modes_do() {
        let off = TlsParams {
            mode: Some(SslMode::Disable),
            ..TlsParams::default()
        };
        assert!(client_config(&off).unwrap().is_none());
        assert!(client_config(&TlsParams::default()).unwrap().is_some());
    }
}
