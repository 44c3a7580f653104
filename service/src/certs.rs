//! The certificates a daemon makes for itself, written once for the hub
//! (its CA and the server certificate of its sync and admin API) and the
//! agent (the private CA and server certificate of its API on the store
//! network): a CA's parameters, a server certificate for host names signed
//! by a CA, a host name as a subject alternative name, random serials and
//! validity from a clock.

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use tally_sync::clock::Clock;
use time::{Duration, OffsetDateTime};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A host name that cannot go in a certificate.
    #[error("invalid hostname {name:?}: {reason}")]
    BadHostname {
        /// What was given (at most 80 characters of it).
        name: String,
        /// Why.
        reason: String,
    },
    /// rcgen refused to build or sign it.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A random 128-bit serial: positive and without a leading zero byte, so
/// its DER form is these exact 16 bytes and its hex is stable.
pub fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[0] = (b[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&b)
}

/// Valid from five minutes before `clock`'s now (a store's clock may lag)
/// for `days`.
pub fn validity(params: &mut CertificateParams, days: i64, clock: &dyn Clock) {
    let nanos = i128::from(clock.now_ms()) * 1_000_000;
    let now =
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
}

/// `name` as a subject alternative name: an IP address, or a DNS name of
/// letters, digits, `.`, `-` and `*`.
pub fn hostname_san(name: &str) -> Result<SanType, CertError> {
    let bad = |reason: &str| CertError::BadHostname {
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

/// The parameters of a CA named `common_name` (organization `Tally`)
/// with `serial`, valid for `days`, that signs end-entity certificates
/// only (path length 0).
pub fn ca_params(
    common_name: &str,
    serial: SerialNumber,
    days: i64,
    clock: &dyn Clock,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial);
    validity(&mut params, days, clock);
    params
}

/// A new key and a server certificate for `hostnames` (each a SAN; the
/// first is its CN, `localhost` when there is none), signed by `issuer`,
/// valid for `days`.
pub fn server_certificate(
    hostnames: &[String],
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
    days: i64,
    clock: &dyn Clock,
) -> Result<(KeyPair, rcgen::Certificate), CertError> {
    let sans = hostnames
        .iter()
        .map(|h| hostname_san(h))
        .collect::<Result<Vec<_>, _>>()?;
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tally");
    dn.push(
        DnType::CommonName,
        hostnames.first().map_or("localhost", String::as_str),
    );
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    validity(&mut params, days, clock);
    let cert = params.signed_by(&server_key, issuer)?;
    Ok((server_key, cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tally_sync::clock::ManualClock;

    #[test]
    fn serials_are_sixteen_positive_bytes() {
        for _ in 0..64 {
            let s = random_serial();
            let bytes = s.to_bytes();
            assert_eq!(bytes.len(), 16);
            assert!(bytes[0] & 0x80 == 0 && bytes[0] != 0);
        }
    }

    #[test]
    fn host_names_become_ip_or_dns_sans_and_bad_ones_are_refused() {
        assert!(matches!(
            hostname_san("10.0.0.7").unwrap(),
            SanType::IpAddress(_)
        ));
        assert!(matches!(
            hostname_san("::1").unwrap(),
            SanType::IpAddress(_)
        ));
        assert!(matches!(
            hostname_san("pos-07.store-001.example").unwrap(),
            SanType::DnsName(_)
        ));
        for bad in ["", "bad host", "a/b", &"x".repeat(254)] {
            assert!(
                matches!(hostname_san(bad), Err(CertError::BadHostname { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_ca_signs_a_server_certificate_for_its_names() {
        let clock = ManualClock::new(1_900_000_000_000);
        let ca_key = KeyPair::generate().unwrap();
        let params = ca_params("Test CA", random_serial(), 30, &clock);
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, &ca_key);
        let names = vec!["till-host.example".to_string(), "127.0.0.1".to_string()];
        let (_, cert) = server_certificate(&names, &issuer, 10, &clock).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca.der()).unwrap();
        assert_eq!(parsed.issuer(), ca_parsed.subject());
        assert!(ca_parsed.is_ca() && !parsed.is_ca());
        let sans = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 2);
        let to = parsed.validity().not_after.timestamp();
        assert_eq!(to, 1_900_000_000 + 10 * 86_400);
        assert!(server_certificate(&["no good".into()], &issuer, 10, &clock).is_err());
    }
}
