//! TLS between the hub and PostgreSQL, against a real server with
//! `ssl=on` (a throwaway cluster of its own, on a loopback port) that
//! refuses every connection without TLS, so a connection that works was
//! encrypted. Its certificates are made here: a CA, a server certificate
//! for `localhost` only, and a client certificate for user `tally`.
//!
//! What a managed database's connection string asks is honoured as libpq
//! does: `verify-full` checks the chain and the host name, `verify-ca`
//! the chain only, `require` encrypts without checking, a client
//! certificate is presented where the server asks for one, and the
//! `tally-hub` binary takes such a URL as it is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use support::pg::{self, Cluster, Setup};
use tally_hub::storage::postgres::{DatabaseUrl, PgHub};

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate signed by `ca` for `names` (DNS names), with common
/// name `cn`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The server: TLS on 127.0.0.1 only; database `certdb` wants a client
/// certificate, every other one trusts any TLS connection; nothing
/// without TLS.
fn tls_server(ca: &Ca) -> (Cluster, u16) {
    let (cert, key) = leaf(ca, "localhost", &["localhost"]);
    let port = pg::free_port();
    let cluster = Cluster::start(&Setup {
        tcp_port: Some(port),
        files: vec![
            ("server.crt".into(), cert.into_bytes()),
            ("server.key".into(), key.into_bytes()),
            ("root.crt".into(), ca.pem.clone().into_bytes()),
        ],
        settings: vec![
            "ssl=on".into(),
            "ssl_cert_file=server.crt".into(),
            "ssl_key_file=server.key".into(),
            "ssl_ca_file=root.crt".into(),
        ],
        hba: Some(
            "local all all trust\n\
             hostssl certdb all 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n\
             host all all ::1/128 reject\n"
                .into(),
        ),
    });
    for db in ["tally", "certdb"] {
        pg::execute(
            &format!("{} dbname=postgres", cluster.base()),
            &format!("CREATE DATABASE {db}"),
        );
    }
    (cluster, port)
}

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

/// Connects and brings the schema up to date, as `tally-hub migrate`
/// does: `Ok` if the connection was made.
fn migrate(url: &str) -> Result<(), String> {
    let url: DatabaseUrl = url.parse().map_err(|e| format!("{e}"))?;
    PgHub::migrate(&url).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn the_hub_reaches_postgres_over_tls_as_the_url_asks() {
    let ca = ca("test db CA");
    let (_cluster, port) = tls_server(&ca);
    let files = tempfile::tempdir().unwrap();
    let root = write(files.path(), "ca.pem", &ca.pem);
    let other = write(files.path(), "other-ca.pem", &crate::ca("someone else").pem);
    let (client_cert, client_key) = leaf(&ca, "tally", &[]);
    let cert = write(files.path(), "client.pem", &client_cert);
    let key = write(files.path(), "client.key", &client_key);
    let url = |host: &str, db: &str, params: &str| {
        format!("postgres://tally@{host}:{port}/{db}?connect_timeout=10{params}")
    };

    // Without TLS the server refuses: every connection below that works
    // was encrypted.
    let plain = migrate(&url("127.0.0.1", "tally", "&sslmode=disable")).unwrap_err();
    assert!(
        plain.contains("no encryption") || plain.contains("pg_hba"),
        "{plain}"
    );

    // verify-full: the chain and the name.
    let full = format!("&sslmode=verify-full&sslrootcert={root}");
    migrate(&url("localhost", "tally", &full)).unwrap();
    let wrong_name = migrate(&url("127.0.0.1", "tally", &full)).unwrap_err();
    assert!(
        wrong_name.to_lowercase().contains("not valid for name"),
        "{wrong_name}"
    );
    let wrong_ca = migrate(&url(
        "localhost",
        "tally",
        &format!("&sslmode=verify-full&sslrootcert={other}"),
    ))
    .unwrap_err();
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");

    // verify-ca: the chain, any name; and require/prefer with a root
    // certificate check the chain too (libpq).
    migrate(&url(
        "127.0.0.1",
        "tally",
        &format!("&sslmode=verify-ca&sslrootcert={root}"),
    ))
    .unwrap();
    let unverified = migrate(&url(
        "127.0.0.1",
        "tally",
        &format!("&sslmode=require&sslrootcert={other}"),
    ))
    .unwrap_err();
    assert!(unverified.contains("UnknownIssuer"), "{unverified}");

    // require and the default (prefer) without a root: encrypted, not
    // checked.
    migrate(&url("127.0.0.1", "tally", "&sslmode=require")).unwrap();
    migrate(&url("127.0.0.1", "tally", "")).unwrap();

    // A client certificate where the server asks for one.
    let no_cert = migrate(&url("localhost", "certdb", &full)).unwrap_err();
    assert!(no_cert.contains("certificate"), "{no_cert}");
    migrate(&url(
        "localhost",
        "certdb",
        &format!("{full}&sslcert={cert}&sslkey={key}"),
    ))
    .unwrap();

    // The same in libpq's key=value form.
    migrate(&format!(
        "host=localhost port={port} user=tally dbname=tally sslmode=verify-full sslrootcert='{root}'"
    ))
    .unwrap();

    // The binary takes the URL as it is.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally-hub"))
        .args(["migrate", "--database", &url("localhost", "tally", &full)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A hub process whose database connections (its writer, its reads, and
/// the listening connection that follows revocations) are all verified
/// TLS: a store syncs through it, and `revoke --database` over TLS, run
/// on another copy of the data directory, reaches it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_process_serves_stores_over_a_verified_database_connection() {
    support::crypto();
    let ca = ca("test db CA");
    let (_cluster, port) = tls_server(&ca);
    let files = tempfile::tempdir().unwrap();
    let root = write(files.path(), "ca.pem", &ca.pem);
    let url =
        format!("postgres://tally@localhost:{port}/tally?sslmode=verify-full&sslrootcert={root}");
    let hub = support::child::ChildHub::start(&["--database", url.as_str()]);
    let bundle = hub.enroll("s1");
    let client = support::HubClient::new(&hub.base, &std::fs::read(&bundle).unwrap(), true);
    let mut s1 = support::SimStore::new("s1", 3);
    s1.receive(support::gtin(1), 5);
    s1.sync_all(&client, 10).await;
    let (_, stock) = hub
        .admin()
        .get(&format!("/v1/stock/{}", support::gtin(1)))
        .await;
    assert_eq!(stock["on_hand"], 5, "{stock}");

    // From a copy of the data directory (another host), so only the
    // database can tell the hub.
    let copy = files.path().join("hub-copy");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(hub.data.root())
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    support::child::revoke_in_database(&copy, "s1", &url);
    s1.sell(support::gtin(1), 1).unwrap();
    support::child::until_revoked(&client, &s1.request(1000), "tls").await;
    hub.stop();
}
