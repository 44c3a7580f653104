//! End to end against the real `tally-hub` binary over real TLS: a store
//! presenting another store's certificate, a forged delta, an overdrawn
//! delta, an unknown protocol version, an oversized body, garbage bytes
//! and a missing client certificate are each refused with a clear error,
//! and none of them changes anything the hub shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::procs::{bin, run_ok, Proc};
use tally_sync::codec::{self, Encoding};
use tally_sync::counter::TransferKey;
use tally_sync::{
    BoundedCounter, Delta, DeltaEntry, Event, EventId, EventKind, Gtin, ItemKey, Line, LocationId,
    ReplicaId, SyncRequest, SyncResponse, PROTOCOL_VERSION,
};

const LONG: Duration = Duration::from_secs(60);

fn client(pem: Option<&[u8]>, ca: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()]);
    if let Some(pem) = pem {
        b = b.identity(reqwest::Identity::from_pem(pem).unwrap());
    }
    b.build().unwrap()
}

async fn post(c: &reqwest::Client, url: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = c
        .post(format!("{url}/v1/sync"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn error_code(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null)["error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn request(
    store: &str,
    counter: BoundedCounter,
    events: Vec<Event>,
    delta_version: u64,
) -> SyncRequest {
    let loc = LocationId::new(store).unwrap();
    SyncRequest {
        version: PROTOCOL_VERSION,
        replica: ReplicaId::new(store).unwrap(),
        location: loc.clone(),
        delta: Delta {
            entries: vec![DeltaEntry {
                key: ItemKey::new(loc, gtin()),
                counter,
            }],
        },
        delta_version,
        events_upto: events.len() as u64,
        events,
        hub_cursor: 0,
        catalog_cursor: 0,
        demand: vec![],
        lost: vec![],
    }
}

fn gtin() -> Gtin {
    Gtin::parse("4006381333931").unwrap()
}

async fn snapshot(admin: &reqwest::Client, url: &str, token: &str) -> Value {
    let mut out = serde_json::json!({});
    for path in ["/v1/stock/4006381333931", "/v1/stores", "/v1/exceptions"] {
        let v: Value = admin
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out[path] = v;
    }
    // Seconds since the last sync change with time; what matters is the rest.
    if let Some(stores) = out["/v1/stores"]["stores"].as_array_mut() {
        for s in stores {
            s.as_object_mut().unwrap().remove("seconds_since_last_sync");
            s.as_object_mut().unwrap().remove("online");
        }
    }
    out
}

type Case<'a> = (&'a str, &'a reqwest::Client, &'a str, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_syncs_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let hub = bin("tally-hub");
    run_ok(Command::new(&hub).args(["init", "--data-dir"]).arg(&dir));
    for s in ["s1", "s2"] {
        run_ok(
            Command::new(&hub)
                .args(["enroll", "--data-dir"])
                .arg(&dir)
                .args(["--store", s, "--out"])
                .arg(tmp.path().join(format!("{s}.pem"))),
        );
    }
    let mut cmd = Command::new(&hub);
    cmd.args(["run", "--data-dir"]).arg(&dir).args([
        "--listen",
        "127.0.0.1:0",
        "--max-sync-body",
        "65536",
    ]);
    let (proc_, url) = Proc::start(
        "tally-hub",
        cmd,
        tmp.path().join("hub.log"),
        "tally-hub listening on",
        LONG,
    );
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let token = std::fs::read_to_string(dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let s1 = client(Some(&read(&tmp.path().join("s1.pem"))), &ca);
    let s2 = client(Some(&read(&tmp.path().join("s2.pem"))), &ca);
    let anonymous = client(None, &ca);
    let bin_ct = Encoding::Binary.content_type();

    // A legitimate receipt of 5 units at s1.
    let me = ReplicaId::new("s1").unwrap();
    let mut c = BoundedCounter::new();
    c.add(&me, 5).unwrap();
    let receipt = Event {
        id: EventId::v7(1_767_225_600_000, [7; 10]),
        location: LocationId::new("s1").unwrap(),
        replica: me.clone(),
        at_ms: 1_767_225_600_000,
        kind: EventKind::Receipt,
        lines: vec![Line {
            gtin: gtin(),
            qty: 5,
            unit_price_minor: 0,
            epc: None,
        }],
        staff: Default::default(),
        price_overrides: Vec::new(),
    };
    let legit = request("s1", c.clone(), vec![receipt], 1);
    let (status, bytes) = post(
        &s1,
        &url,
        bin_ct,
        codec::encode(&legit, Encoding::Binary).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let resp: SyncResponse = codec::decode(&bytes, Encoding::Binary, 1 << 20).unwrap();
    assert_eq!(resp.acked_events_upto, 1);

    let before = snapshot(&anonymous, &url, &token).await;
    assert_eq!(before["/v1/stock/4006381333931"]["on_hand"], 5, "{before}");

    // Each refusal: what, who sends it, content type, body, the status and
    // (where it is specific) the error code expected.
    let (entries_p, entries_n, _) = c.entries();
    let forged_hub_entry = {
        let mut p = entries_p.clone();
        p.push((ReplicaId::hub(), 50));
        BoundedCounter::from_entries(p, entries_n.clone(), Vec::<(TransferKey, u64)>::new())
    };
    let overdrawn = BoundedCounter::from_entries(
        entries_p.clone(),
        vec![(me.clone(), 100)],
        Vec::<(TransferKey, u64)>::new(),
    );
    let mut unknown_version =
        codec::encode(&request("s1", c.clone(), vec![], 2), Encoding::Binary).unwrap();
    unknown_version[2..4].copy_from_slice(&9u16.to_be_bytes());
    let cases: Vec<Case> = vec![
        (
            "s2's certificate, body naming s1",
            &s2,
            bin_ct,
            codec::encode(&request("s1", c.clone(), vec![], 2), Encoding::Binary).unwrap(),
            403,
            "",
        ),
        (
            "a delta advancing the hub's own entry",
            &s1,
            bin_ct,
            codec::encode(
                &request("s1", forged_hub_entry, vec![], 2),
                Encoding::Binary,
            )
            .unwrap(),
            403,
            "",
        ),
        (
            "a delta selling 100 units holding 5",
            &s1,
            bin_ct,
            codec::encode(&request("s1", overdrawn, vec![], 2), Encoding::Binary).unwrap(),
            422,
            "",
        ),
        (
            "an unknown protocol version",
            &s1,
            bin_ct,
            unknown_version,
            400,
            "unsupported_protocol_version",
        ),
        (
            "an oversized body",
            &s1,
            bin_ct,
            vec![0x55; 70_000],
            413,
            "",
        ),
        (
            "garbage bytes",
            &s1,
            bin_ct,
            b"\x00\xffnot a sync message at all".to_vec(),
            400,
            "",
        ),
        (
            "no client certificate",
            &anonymous,
            bin_ct,
            codec::encode(&request("s1", c.clone(), vec![], 2), Encoding::Binary).unwrap(),
            401,
            "",
        ),
    ];
    for (what, who, ct, body, want, code) in cases {
        let (status, bytes) = post(who, &url, ct, body).await;
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&bytes));
        let got = error_code(&bytes);
        assert!(
            !got.is_empty(),
            "{what}: the error must say why: {}",
            String::from_utf8_lossy(&bytes)
        );
        if !code.is_empty() {
            assert_eq!(got, code, "{what}");
        }
        let after = snapshot(&anonymous, &url, &token).await;
        assert_eq!(after, before, "{what} changed the hub's state");
    }

    // The honest store still syncs (the same request again is acknowledged
    // and changes nothing: idempotent).
    let (status, _) = post(
        &s1,
        &url,
        bin_ct,
        codec::encode(&legit, Encoding::Binary).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        snapshot(&anonymous, &url, &token).await["/v1/stock/4006381333931"],
        before["/v1/stock/4006381333931"]
    );
    assert!(proc_.terminate(LONG).success());
}
