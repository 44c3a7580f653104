//! Hostile network peers against a real hub (in this process, real TLS on
//! 127.0.0.1): sockets that never speak, TLS connections that never send
//! a request, headers dribbled a byte at a time, HTTP/2 connections left
//! open, one address opening connection after connection, bodies that
//! stall, a store sending a second sync while its first is in flight, and
//! bodies that would fill the hub's memory. Each test asserts the hub's
//! refusal, and that an honest store syncing throughout was served; the
//! latencies it saw are printed (`--nocapture`) for the closing notes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{gtin, SimStore, TestHub};
use tally_sync::codec::{self, Encoding};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long any one expectation may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// A TLS connection to the hub, presenting `bundle`'s certificate if
/// given, offering `alpn`.
async fn tls(hub: &TestHub, bundle: Option<&Path>, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    support::crypto();
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(hub.data.ca_cert()).unwrap();
    roots.add(ca).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match bundle {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = std::fs::read(path).unwrap();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let socket = TcpStream::connect(hub.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), socket)
        .await
        .unwrap()
}

/// Reads until the peer closes (or resets): everything read, and how
/// long it took. Fails the test past [`DEADLINE`].
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + DEADLINE),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!("still open after {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// An honest store syncing (a sale's worth of events) every 20 ms until
/// told to stop; when each sync began and its latency. Any refusal fails
/// the test.
fn honest_store(
    hub: &TestHub,
    name: &str,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Vec<(Instant, Duration)>> {
    let client = hub.store_client(&hub.enroll(name));
    let mut store = SimStore::new(name, 5);
    tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut i = 0;
        while !*stop.borrow() {
            store.receive(gtin(i % 5), 1);
            i += 1;
            let req = store.request(1000);
            let started = Instant::now();
            let resp = client.sync(&req).await.expect("the honest store is served");
            latencies.push((started, started.elapsed()));
            store.apply(&req, &resp);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies
    })
}

/// Prints the honest store's sync latencies before the attack began and
/// during it (for the record; the test asserts only that every sync was
/// served).
fn report(what: &str, syncs: Vec<(Instant, Duration)>, attack: Instant) {
    let (before, during): (Vec<_>, Vec<_>) = syncs.into_iter().partition(|(at, _)| *at < attack);
    for (phase, syncs) in [("before the attack", before), ("during it", during)] {
        let mut l: Vec<Duration> = syncs.into_iter().map(|(_, d)| d).collect();
        assert!(!l.is_empty(), "the honest store synced {phase}");
        l.sort();
        let at = |q: f64| l[((l.len() - 1) as f64 * q) as usize];
        println!(
            "{what}: honest store's syncs {phase}: {} syncs, p50 {:?}, p99 {:?}, max {:?}",
            l.len(),
            at(0.5),
            at(0.99),
            l[l.len() - 1]
        );
    }
}

/// Lets the honest store sync alone for a while: the baseline.
async fn baseline() -> Instant {
    tokio::time::sleep(Duration::from_millis(1000)).await;
    Instant::now()
}

async fn metric(hub: &TestHub, line: &str) -> u64 {
    let (_, text) = hub.admin().get("/metrics").await;
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {text}"))
}

/// Sockets that never start TLS, TLS connections that never send a
/// request, headers sent a byte at a time, an HTTP/2 connection that only
/// said hello: each is closed by the hub within its limits, none answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed() {
    let hub = TestHub::start(|c| {
        c.handshake_timeout = Duration::from_millis(300);
        c.limits.first_request = Duration::from_millis(300);
        c.limits.idle = Duration::from_millis(300);
    })
    .await;
    let (stop, stopped) = watch::channel(false);
    let honest = honest_store(&hub, "honest", stopped);
    let attack = baseline().await;

    // A socket that never starts TLS.
    let mut raw = TcpStream::connect(hub.addr).await.unwrap();
    let (got, took) = until_closed(&mut raw).await;
    assert!(got.is_empty());
    println!("silent socket closed after {took:?}");

    // TLS, then nothing.
    let mut silent = tls(&hub, None, &[b"http/1.1"]).await;
    let (got, took) = until_closed(&mut silent).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    println!("silent TLS connection closed after {took:?}");

    // Slowloris: a header that keeps coming, one byte every 50 ms.
    let mut slow = tls(&hub, None, &[b"http/1.1"]).await;
    let started = Instant::now();
    let header = b"GET /v1/stores HTTP/1.1\r\nHost: hub\r\nX-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for b in header {
        if slow.write_all(&[*b]).await.is_err() || slow.flush().await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            started.elapsed() < DEADLINE,
            "a dribbled header was never cut"
        );
    }
    if !cut {
        let (got, _) = until_closed(&mut slow).await;
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    println!("dribbled header cut after {:?}", started.elapsed());

    // HTTP/2: the client preface and an empty SETTINGS frame, then nothing.
    let mut h2 = tls(&hub, None, &[b"h2"]).await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    h2.flush().await.unwrap();
    let (_, took) = until_closed(&mut h2).await;
    println!("idle HTTP/2 connection closed after {took:?}");

    assert!(metric(&hub, "tally_hub_connections_ended_total{how=\"idle\"}").await >= 3);
    assert!(metric(&hub, "tally_hub_tls_handshake_failures_total").await >= 1);
    let _ = stop.send(true);
    report("silent and slow connections", honest.await.unwrap(), attack);
    hub.stop().await;
}

/// One address opening connection after connection gets no more than
/// its share: beyond it, sockets are closed at once (not after the
/// handshake timeout), and once its connections are gone the address is
/// served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let hub = TestHub::start(|c| {
        c.max_connections_per_peer = 4;
        c.handshake_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(hub.addr).await.unwrap());
    }
    // The fifth: accepted by the kernel, closed by the hub at once.
    let mut fifth = TcpStream::connect(hub.addr).await.unwrap();
    let (_, took) = until_closed(&mut fifth).await;
    assert!(
        took < Duration::from_secs(30),
        "closed at once, not after the handshake timeout"
    );
    println!("fifth connection from one address closed after {took:?}");
    drop(held);
    // (Read once the address has places again: the admin client needs one.)
    assert!(
        metric_eventually(
            &hub,
            "tally_hub_shed_total{reason=\"connections_per_peer\"}"
        )
        .await
            >= 1
    );
    // Its places come back as the hub sees the sockets close.
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(gtin(1), 3);
    let started = Instant::now();
    loop {
        let req = s1.request(1000);
        match client.sync(&req).await {
            Ok(resp) => {
                s1.apply(&req, &resp);
                break;
            }
            Err(e) => {
                assert!(started.elapsed() < DEADLINE, "never served again: {e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    hub.stop().await;
}

/// Reads a metric, retrying until it is non-zero or the deadline passes
/// (the admin client itself needs a place among the address's
/// connections).
async fn metric_eventually(hub: &TestHub, line: &str) -> u64 {
    let started = Instant::now();
    loop {
        let r = hub
            .anonymous_client()
            .http
            .get(format!("{}/metrics", hub.base()))
            .bearer_auth(&hub.token)
            .send()
            .await;
        if let Ok(r) = r {
            let text = r.text().await.unwrap_or_default();
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix(line)?.trim().parse::<u64>().ok())
            {
                if v > 0 {
                    return v;
                }
            }
        }
        assert!(started.elapsed() < DEADLINE, "{line} stayed 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a sync request's head and the first `sent` bytes of a body of
/// `declared` bytes, then stalls.
async fn stalled_sync(stream: &mut TlsStream<TcpStream>, declared: usize, sent: usize) {
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-tally-sync\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![0u8; sent]).await.unwrap();
    stream.flush().await.unwrap();
}

/// A store whose sync body stalls: a second sync from it meanwhile is
/// answered 429 `sync_in_progress` with `Retry-After`; the stalled one is
/// answered 408 `body_timeout`; then the store syncs normally, and other
/// stores were served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_a_store_has_one_sync_in_flight() {
    let hub = TestHub::start(|c| c.body_read_timeout = Duration::from_millis(1500)).await;
    let (stop, stopped) = watch::channel(false);
    let honest = honest_store(&hub, "honest", stopped);
    let attack = baseline().await;
    let bundle = hub.enroll("s1");
    let client = hub.store_client(&bundle);
    let mut s1 = SimStore::new("s1", 2);
    s1.receive(gtin(1), 2);

    let mut stalled = tls(&hub, Some(&bundle), &[b"http/1.1"]).await;
    let started = Instant::now();
    stalled_sync(&mut stalled, 1000, 10).await;
    // Meanwhile the same store's next sync waits its turn.
    let busy = loop {
        let req = s1.request(1000);
        match client.sync(&req).await {
            Err((status, body)) if status == 429 => break body,
            Ok(resp) => s1.apply(&req, &resp), // the stalled one had not begun
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(1400),
            "no 429 while stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(busy["error"], "sync_in_progress", "{busy}");
    let (answer, took) = until_closed_or_answered(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    println!("stalled body answered 408 after {took:?}");
    // The store's place is free again.
    assert!(s1.sync_all(&client, 5).await >= 1);
    assert!(metric(&hub, "tally_hub_shed_total{reason=\"body_timeout\"}").await >= 1);
    assert!(metric(&hub, "tally_hub_shed_total{reason=\"sync_in_progress\"}").await >= 1);
    let _ = stop.send(true);
    report("stalled body", honest.await.unwrap(), attack);
    hub.stop().await;
}

/// Reads one HTTP/1.1 response (head and a Content-Length body), or what
/// came before the peer closed.
async fn until_closed_or_answered(stream: &mut TlsStream<TcpStream>) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return (text, started.elapsed());
            }
        }
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!("no answer after {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (text, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Bodies in flight are bounded in bytes: while one store's large body
/// holds the budget, another store's sync is answered 503 `overloaded`
/// with `Retry-After` (nothing written), and is served once the budget
/// is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_in_flight_are_bounded() {
    let hub = TestHub::start(|c| {
        c.max_queued_bytes = 64 * 1024;
        c.body_read_timeout = Duration::from_millis(1500);
    })
    .await;
    let hog = hub.enroll("hog");
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 3);
    for i in 0..400 {
        s1.receive(gtin(i % 40), 1);
    }
    let size = codec::encode(&s1.request(1000), Encoding::Binary)
        .unwrap()
        .len();
    assert!(size > 8 * 1024, "{size} bytes");

    let mut stalled = tls(&hub, Some(&hog), &[b"http/1.1"]).await;
    let started = Instant::now();
    stalled_sync(&mut stalled, 1024 * 1024, 50 * 1024).await;
    // Once the hub holds the hog's 50 KiB (the budget's bulk tier is 48
    // KiB, its small parts 4 KiB), the next large body does not fit.
    while metric(&hub, "tally_hub_request_bytes_in_flight").await < 50 * 1024 {
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "the hog's bytes never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let overloaded = match client.sync(&s1.request(1000)).await {
        Err((status, body)) if status == 503 => body,
        Ok(resp) => panic!("served although the budget was held: {resp:?}"),
        Err(other) => panic!("{other:?}"),
    };
    assert_eq!(overloaded["error"], "overloaded", "{overloaded}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let (_, stores) = hub.admin().get("/v1/stores").await;
    assert!(
        stores["stores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["store"] != "s1"),
        "nothing of s1 written: {stores}"
    );
    let (answer, _) = until_closed_or_answered(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(s1.sync_all(&client, 5).await >= 1);
    assert!(metric(&hub, "tally_hub_shed_total{reason=\"writer_queue_full\"}").await >= 1);
    assert!(metric(&hub, "tally_hub_sync_requests_total{outcome=\"busy\"}").await >= 1);
    hub.stop().await;
}

/// Large bodies cannot starve small ones: three stores stall large sync
/// bodies; once the budget's bulk tier is full the third is answered 503
/// `overloaded`, and a small honest sync is still served while the first
/// two stall (one pool of bytes would have been full). Enrolment bodies,
/// sent with no certificate, have a pool of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_bodies_leave_room_for_small_syncs() {
    let hub = TestHub::start(|c| {
        c.max_queued_bytes = 1024 * 1024;
        c.body_read_timeout = Duration::from_secs(5);
    })
    .await;
    let client = hub.store_client(&hub.enroll("s1"));
    let mut s1 = SimStore::new("s1", 3);
    s1.receive(gtin(1), 2);
    let mut hogs = Vec::new();
    for name in ["hog1", "hog2", "hog3"] {
        let bundle = hub.enroll(name);
        let mut stream = tls(&hub, Some(&bundle), &[b"http/1.1"]).await;
        stalled_sync(&mut stream, 1024 * 1024, 330 * 1024).await;
        hogs.push(stream);
        // Each hog's bytes arrive before the next begins.
        let deadline = Instant::now() + Duration::from_secs(3);
        while metric(&hub, "tally_hub_request_bytes_in_flight").await
            < 330 * 1024 * hogs.len().min(2) as u64
        {
            assert!(Instant::now() < deadline, "{name}'s bytes never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The third found the bulk tier full.
    let (answer, _) = until_closed_or_answered(&mut hogs[2]).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("overloaded"), "{answer}");
    let held = metric(&hub, "tally_hub_request_bytes_in_flight").await;
    assert!(held >= 660 * 1024, "the first two still stall: {held}");
    // 660 KiB + the honest body would not fit a 1 MiB pool split evenly
    // with a third hog; with tiers it is served at once.
    assert_eq!(s1.sync_all(&client, 3).await, 1);
    for hog in &mut hogs[..2] {
        let (answer, _) = until_closed_or_answered(hog).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(metric(&hub, "tally_hub_request_bytes_in_flight").await, 0);
    hub.stop().await;
}
