//! Hostile stores and peers against the real `tally-hub` binary in its own
//! process on 127.0.0.1 (TLS 1.3 with client certificates, HTTP/2, redb
//! with an fsync per group commit), with honest stores syncing throughout
//! (issue 21's closing table: every attack class, the hub's answer, and
//! the effect on other stores' sync latency while it ran).
//!
//! Honest stores (default 8), each with its own certificate, connection
//! and address (127.0.2.x), run the real model (`MemStore`) and sync a
//! few events (two one-unit sales and the receipt that restocks them)
//! every `TALLY_BENCH_PACE_MS` (default 50 ms), from a random offset. A
//! refused sync (408, 429, 503, a broken connection) is retried after the
//! hub's `Retry-After` (1 s), and the sync's latency is from its first
//! attempt to its answer, retries included. A probe store opens a *new*
//! connection for each of its syncs, once a second: what a store that
//! (re)connects meets. The run is a series of phases, each measuring the
//! honest syncs that started in it:
//!
//! 1. **Baseline**: no attack.
//! 2. One phase per attack class, the attack running against the same
//!    honest load (see [`run`] for the list; the recipes are those of
//!    `hub/tests/hostile_peer.rs` and `hub/tests/hostile_store.rs`).
//!    Attackers connect from loopback addresses of their own (127.0.0.x,
//!    x ≥ 11, and 127.0.1.x for the total cap), so the per-address cap
//!    applies to them as it would on the Internet; the admin client
//!    reading `/metrics` is on 127.0.0.1.
//! 3. **Baseline after** every attack.
//!
//! Per phase: what the attacker got back (tallied), the honest p50/p99
//! and their ratio to the baseline's, the probe's fresh-connection syncs,
//! the CPU the hub and this process used, and what moved in `/metrics`
//! (`tally_hub_shed_total`, `tally_hub_connections_ended_total`, …).
//! After each phase the hub must be back at rest (no request bytes in
//! flight, no connections beyond the honest ones) and answering.
//!
//! The hub runs with its defaults except the body-read timeout
//! (`TALLY_BENCH_BODY_TIMEOUT_MS`, default 10,000 ms; the hub's default is
//! 30 s), so that attacks that hold a body end sooner; its other limits
//! (connections per address and in all, the byte budget, the largest
//! sync body, the handshake and first-request timeouts) are read from
//! `tally_hub::Config::new`, the defaults `main` starts from.
//!
//! `cargo bench -p tally-hub --bench adversarial` (env:
//! `TALLY_BENCH_STORES`, default 8; `TALLY_BENCH_PACE_MS`, 50;
//! `TALLY_BENCH_BASELINE_SECS`, 10; `TALLY_BENCH_ATTACK_SECS`, 6, how long
//! the attacks that are not bounded by a hub timeout run;
//! `TALLY_BENCH_BODY_TIMEOUT_MS`, 10000; `TALLY_BENCH_HISTORY`, 2000, the
//! sale-and-return cycles of the long-history tag;
//! `TALLY_BENCH_STREAM_ADDRESSES`, 2, addresses of the anonymous HTTP/2
//! stream attacks; `TALLY_BENCH_TOTAL_CAP`, 1, 0 skips the attack on the
//! total connection cap (it needs ~12,000 open files); `TALLY_BENCH_ONLY`,
//! a comma-separated list of the classes to run, the baselines always
//! run). About 4 minutes. Progress on stderr, one JSON line on stdout. It
//! asserts correctness (every refusal, nothing of an attacker's written,
//! the hub alive and back at rest), never timings. Hub, honest stores and
//! attackers share the machine's cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hyper::body::{Bytes, Frame};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use support::child::{cpu_secs, ChildHub};
use support::{env_u64, gtin, Admin, HubClient, SimStore};
use tally_service::identity::MAX_IDENTITY_BODY;
use tally_store::SystemClock;
use tally_sync::clock::Clock;
use tally_sync::codec::{self, Encoding};
use tally_sync::command::{Command, LineIn};
use tally_sync::limits::{MAX_LINE_QTY, MAX_REASON_BYTES};
use tally_sync::message::{Demand, LostSales};
use tally_sync::{
    BoundedCounter, DeltaEntry, Epc, Event, EventId, EventKind, Gtin, ItemKey, Line, Override,
    ReplicaId, Shortage, SyncRequest, Tender,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Items each honest store sells and restocks.
const ITEMS: u64 = 5;
/// HTTP/2 streams the hub serves at once on one connection (hyper's
/// server default, which the hub keeps).
const H2_STREAMS: usize = 200;
/// How long an honest store waits before retrying a refused sync (the
/// hub's `Retry-After`).
const RETRY: Duration = Duration::from_secs(1);
/// A request of an honest store gives up after this long (then retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The probe's pace: one sync on a new connection a second.
const PROBE_PACE: Duration = Duration::from_secs(1);
/// The phase of samples taken between phases (not counted).
const BETWEEN: usize = usize::MAX;
/// A tag the content attacker sells as one item and returns as another.
const EPC_SOLD: &str = "3074257BF7194E4000001A85";
/// A tag nobody sold.
const EPC_NEVER_SOLD: &str = "3074257BF7194E4000001A86";
/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// The knobs (environment variables, see the module docs).
#[derive(Debug, Clone, Copy)]
struct Knobs {
    stores: usize,
    pace: Duration,
    baseline: Duration,
    window: Duration,
    body_timeout: Duration,
    history: u32,
    stream_addresses: u8,
    total_cap: bool,
    /// Only these attack classes (and the baselines), if set.
    only: Option<&'static str>,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            stores: env_u64("TALLY_BENCH_STORES", 8) as usize,
            pace: Duration::from_millis(env_u64("TALLY_BENCH_PACE_MS", 50)),
            baseline: Duration::from_secs(env_u64("TALLY_BENCH_BASELINE_SECS", 10)),
            window: Duration::from_secs(env_u64("TALLY_BENCH_ATTACK_SECS", 6)),
            body_timeout: Duration::from_millis(env_u64("TALLY_BENCH_BODY_TIMEOUT_MS", 10_000)),
            history: env_u64("TALLY_BENCH_HISTORY", 2000) as u32,
            stream_addresses: env_u64("TALLY_BENCH_STREAM_ADDRESSES", 2).clamp(1, 100) as u8,
            total_cap: env_u64("TALLY_BENCH_TOTAL_CAP", 1) != 0,
            // Read once, kept for the run.
            only: std::env::var("TALLY_BENCH_ONLY")
                .ok()
                .map(|v| &*Box::leak(v.into_boxed_str())),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let knobs = Knobs::from_env();
    eprintln!("adversarial bench: {knobs:?}");
    support::crypto();
    // The honest stores run on their own runtime, so that an attacker's
    // busy tasks never delay them in this process's scheduler (they
    // still share the machine's cores with the attackers and the hub).
    let honest = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("honest")
        .enable_all()
        .build()
        .unwrap();
    let attack = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("attack")
        .enable_all()
        .build()
        .unwrap();
    let report = attack.block_on(run(knobs, honest.handle().clone()));
    println!("{report}");
}

// ---------------------------------------------------------------------
// The run

/// Every phase in turn; the report.
async fn run(knobs: Knobs, honest_rt: tokio::runtime::Handle) -> Value {
    let ctx = Ctx::start(knobs);
    let started = Instant::now();
    let honest = Honest::start(&ctx, &honest_rt).await;
    let content = Mallory::prepare(&ctx).await;
    let mut history = History::prepare(&ctx).await;
    let events = ctx.enroll_store("m-events");
    let busy = ctx.enroll_store("m-busy");
    let oversize = ctx.enroll_store("m-oversize");
    let bulk: Vec<_> = (0..ctx.budget.div_ceil(ctx.max_body) + 1)
        .map(|i| ctx.enroll_store(&format!("m-bulk-{i:02}")))
        .collect();
    eprintln!("set up in {:.1?}", started.elapsed());

    let mut phases = Phases::new(&ctx, honest).await;
    phases.run("baseline", "no attack", baseline(&ctx)).await;
    // No certificate.
    phases
        .run(
            "idle_sockets",
            "TCP connections that never send a byte: up to the per-address cap, and beyond",
            idle_sockets(&ctx),
        )
        .await;
    phases
        .run(
            "tls_silence",
            "TLS handshake, then silence (HTTP/1.1; HTTP/2 after its preface)",
            tls_silence(&ctx),
        )
        .await;
    phases
        .run(
            "slowloris",
            "headers dribbled one byte every 100 ms",
            slowloris(&ctx),
        )
        .await;
    phases
        .run(
            "stalled_body",
            "a body that stalls after one byte (POST /v1/enroll)",
            stalled_body(&ctx),
        )
        .await;
    phases
        .run(
            "oversized_body",
            "oversized bodies: declared, streamed (chunked), and a store's declared sync",
            oversized(&ctx, &oversize),
        )
        .await;
    phases
        .run(
            "garbage",
            "random bytes: instead of TLS, after TLS (HTTP/1.1), after the HTTP/2 preface",
            garbage(&ctx),
        )
        .await;
    phases
        .run(
            "anonymous_streams",
            "stalled /v1/enroll bodies on every HTTP/2 stream of every connection the cap allows, from several addresses",
            anonymous_streams(&ctx, false),
        )
        .await;
    phases
        .run(
            "anonymous_streams_trickle",
            "the same, each body's last bytes sent in 64-byte pieces to take what is left of the budget",
            anonymous_streams(&ctx, true),
        )
        .await;
    if knobs.total_cap {
        phases
            .run(
                "total_cap",
                "silent sockets from many addresses, up to the total connection cap",
                total_cap(&ctx),
            )
            .await;
    }
    // A real store certificate.
    phases
        .run(
            "too_many_events",
            "a sync with one event more than the maximum, again and again",
            too_many_events(&ctx, &events),
        )
        .await;
    phases
        .run(
            "sync_in_progress",
            "one store: a stalled sync and 100 concurrent syncs over HTTP/2",
            sync_in_progress(&ctx, &busy),
        )
        .await;
    phases
        .run(
            "store_budget",
            "stores' largest sync bodies, stalled one byte short (the last bytes in 64-byte pieces), to fill the byte budget",
            store_budget(&ctx, &bulk),
        )
        .await;
    let cases = content.bad_values();
    phases
        .run(
            "bad_values",
            "absurd quantities, negative price and tender, huge strings, an event three centuries ahead",
            content.refused(&ctx, cases),
        )
        .await;
    let cases = content.unexplained_stock();
    phases
        .run(
            "unexplained_stock",
            "own counter entries that no event explains (P +500, N +4)",
            content.refused(&ctx, cases),
        )
        .await;
    let cases = content.epc_returns();
    phases
        .run(
            "epc_returns",
            "returns of a tag never sold, and of a tag sold as another item",
            content.refused(&ctx, cases),
        )
        .await;
    phases
        .run(
            "absurd_demand",
            "demand and lost sales of u64::MAX; demand of 1,000 units with no lost sale",
            content.demand(&ctx),
        )
        .await;
    phases
        .run(
            "long_history",
            "a store selling and returning one tag with a long history, in a closed loop",
            history.run(&ctx),
        )
        .await;
    phases
        .run("baseline_after", "no attack", baseline(&ctx))
        .await;

    let rows = phases.finish().await;
    // Nothing of the attackers' is in the hub: the stores whose every
    // sync was refused never synced, and no tag was sold twice.
    let admin = &ctx.admin;
    let (_, stores) = admin.get("/v1/stores").await;
    let listed: Vec<&str> = stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["store"].as_str())
        .collect();
    for never in ["m-events", "m-oversize"] {
        assert!(!listed.contains(&never), "{never} synced: {stores}");
    }
    assert!(
        !listed.iter().any(|s| s.starts_with("m-bulk")),
        "a budget filler synced: {stores}"
    );
    let (status, audit) = admin.get("/v1/audit").await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["double_sold"], 0, "{audit}");
    let rss = ctx.hub.memory();
    let Ctx { hub, .. } = ctx;
    let status = hub.stop();
    assert!(status.success(), "the hub stopped cleanly: {status:?}");
    json!({
        "knobs": {
            "stores": knobs.stores,
            "pace_ms": knobs.pace.as_millis() as u64,
            "baseline_s": knobs.baseline.as_secs(),
            "attack_s": knobs.window.as_secs(),
            "body_timeout_ms": knobs.body_timeout.as_millis() as u64,
            "history_cycles": knobs.history,
            "stream_addresses": knobs.stream_addresses,
        },
        "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "hub_rss_mib_at_end": rss.rss_kib / 1024,
        "phases": rows,
    })
}

/// The baseline: honest load alone.
async fn baseline(ctx: &Ctx) -> Value {
    tokio::time::sleep(ctx.knobs.baseline).await;
    json!({"answer": "-"})
}

/// The hub and what every attack needs to reach it.
struct Ctx {
    hub: ChildHub,
    addr: SocketAddr,
    admin: Admin,
    knobs: Knobs,
    /// Connections from one address.
    per_peer: usize,
    /// Connections in all.
    total: usize,
    /// The byte budget of bodies in flight.
    budget: usize,
    /// The largest sync body.
    max_body: usize,
    /// Most events in one sync.
    max_events: usize,
    handshake: Duration,
    first_request: Duration,
}

impl Ctx {
    fn start(knobs: Knobs) -> Ctx {
        let timeout = knobs.body_timeout.as_millis().to_string();
        let hub = ChildHub::start(&["--body-read-timeout-ms", &timeout]);
        let addr: SocketAddr = hub.base.strip_prefix("https://").unwrap().parse().unwrap();
        let defaults = tally_hub::Config::new("defaults");
        Ctx {
            admin: hub.admin(),
            addr,
            hub,
            knobs,
            per_peer: defaults.max_connections_per_peer,
            total: defaults.max_connections,
            budget: defaults.max_queued_bytes,
            max_body: defaults.max_sync_body,
            max_events: defaults.max_sync_events,
            handshake: defaults.handshake_timeout,
            first_request: defaults.limits.first_request,
        }
    }

    /// Enrolls `id`; its identity bundle (PEM).
    fn enroll_store(&self, id: &str) -> (String, Vec<u8>) {
        (id.to_string(), std::fs::read(self.hub.enroll(id)).unwrap())
    }

    /// An HTTPS client of the hub: presenting `pem`'s certificate if
    /// given, from `local` if given, HTTP/2 only if `h2`.
    fn client(&self, pem: Option<&[u8]>, local: Option<Ipv4Addr>, h2: bool) -> HubClient {
        let ca = std::fs::read(self.hub.data.ca_cert()).unwrap();
        let mut b = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .pool_max_idle_per_host(4)
            .timeout(REQUEST_TIMEOUT);
        if let Some(pem) = pem {
            b = b.identity(reqwest::Identity::from_pem(pem).unwrap());
        }
        if let Some(ip) = local {
            b = b.local_address(IpAddr::V4(ip));
        }
        if h2 {
            b = b.http2_prior_knowledge();
        }
        HubClient {
            http: b.build().unwrap(),
            base: self.hub.base.clone(),
        }
    }

    /// A rustls client configuration trusting the hub's CA, presenting
    /// `pem`'s certificate if given, offering `alpn`.
    fn tls(&self, pem: Option<&[u8]>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.hub.data.ca_cert()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(pem).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Every sample of `/metrics` (the hub answering is checked here).
    async fn metrics(&self) -> Metrics {
        let (status, text) = self.admin.get("/metrics").await;
        assert_eq!(status, 200, "the hub answers /metrics");
        let text = text.as_str().unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    async fn metric(&self, key: &str) -> f64 {
        get(&self.metrics().await, key)
    }

    /// What the hub shows of `gtins`: their stock and the exceptions.
    async fn stock(&self, gtins: &[Gtin]) -> Value {
        let mut v = json!({});
        for g in gtins {
            let (status, s) = self.admin.get(&format!("/v1/stock/{g}")).await;
            assert_eq!(status, 200, "{s}");
            v[g.to_string()] = s;
        }
        v["exceptions"] = self.admin.exceptions_but_held().await;
        v
    }

    /// Store `id`'s entry in `/v1/stores`, without what moves with the
    /// clock, or null.
    async fn store_entry(&self, id: &str) -> Value {
        let (_, stores) = self.admin.get("/v1/stores").await;
        let mut entry = stores["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store"] == id)
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(o) = entry.as_object_mut() {
            for k in ["seconds_since_last_sync", "online", "live", "live_since"] {
                o.remove(k);
            }
        }
        entry
    }
}

type Metrics = BTreeMap<String, f64>;

fn get(m: &Metrics, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// The refusal and connection counters that moved from `before` to
/// `after`.
fn moved(before: &Metrics, after: &Metrics) -> BTreeMap<String, f64> {
    const COUNTED: [&str; 5] = [
        "tally_hub_shed_total",
        "tally_hub_connections_ended_total",
        "tally_hub_tls_handshake_failures_total",
        "tally_hub_sync_requests_total",
        "tally_hub_connections_total",
    ];
    after
        .iter()
        .filter(|(k, _)| COUNTED.iter().any(|c| k.starts_with(c)))
        .filter_map(|(k, v)| {
            let d = v - get(before, k);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

// ---------------------------------------------------------------------
// The honest stores and the phases

/// One honest sync.
struct Sample {
    /// The phase it started in.
    phase: usize,
    /// From its first attempt to its answer.
    took: Duration,
    /// The statuses of the attempts refused before it was served (502:
    /// the connection broke or the client gave up).
    refused: Vec<u16>,
    /// A probe's sync on a new connection.
    fresh: bool,
}

/// The honest stores and the probe, syncing until stopped.
struct Honest {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    /// Per task: the phase of the sync it has in flight (or `BETWEEN`).
    in_flight: Vec<Arc<AtomicUsize>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Honest {
    /// Enrolls the stores and the probe, starts them on `rt`; returns
    /// once every store has stocked its items and synced them.
    async fn start(ctx: &Ctx, rt: &tokio::runtime::Handle) -> Honest {
        let phase = Arc::new(AtomicUsize::new(BETWEEN));
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(AtomicUsize::new(0));
        let mut in_flight = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..=ctx.knobs.stores {
            let probe = i == ctx.knobs.stores;
            let (id, pem) = ctx.enroll_store(&if probe {
                "probe".to_string()
            } else {
                format!("honest-{i}")
            });
            let flight = Arc::new(AtomicUsize::new(BETWEEN));
            let task = HonestTask {
                store: SimStore::new(&id, 1000 + i as u64),
                rng: ChaCha8Rng::seed_from_u64(i as u64),
                pem,
                ctx_client: ClientMaker {
                    ca: std::fs::read(ctx.hub.data.ca_cert()).unwrap(),
                    base: ctx.hub.base.clone(),
                    // Each store from its own address, as stores are.
                    local: if probe {
                        Ipv4Addr::new(127, 0, 3, 1)
                    } else {
                        Ipv4Addr::new(127, 0, 2, 1 + (i % 250) as u8)
                    },
                },
                pace: if probe { PROBE_PACE } else { ctx.knobs.pace },
                probe,
                phase: phase.clone(),
                stop: stop.clone(),
                samples: samples.clone(),
                in_flight: flight.clone(),
                ready: ready.clone(),
            };
            in_flight.push(flight);
            tasks.push(rt.spawn(task.run()));
        }
        let t = Instant::now();
        while ready.load(Ordering::Acquire) <= ctx.knobs.stores {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "honest stores not ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Honest {
            phase,
            stop,
            samples,
            in_flight,
            tasks,
        }
    }

    /// The honest syncs that started in `phase`: the stores' and the
    /// probe's.
    fn stats(&self, phase: usize) -> (Value, Value) {
        let samples = self.samples.lock().unwrap();
        let of = |fresh: bool| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.phase == phase && s.fresh == fresh)
                .collect();
            let mut refused = BTreeMap::<String, u64>::new();
            for s in &mine {
                for r in &s.refused {
                    *refused.entry(r.to_string()).or_default() += 1;
                }
            }
            let mut lat: Vec<Duration> = mine.iter().map(|s| s.took).collect();
            let mut v = percentiles(&mut lat);
            v["refused_attempts"] = json!(refused);
            v["served_after_a_refusal"] =
                json!(mine.iter().filter(|s| !s.refused.is_empty()).count());
            v
        };
        (of(false), of(true))
    }

    /// Waits until no sync that started in `phase` is still in flight.
    async fn drain(&self, phase: usize) {
        let t = Instant::now();
        while self
            .in_flight
            .iter()
            .any(|f| f.load(Ordering::Acquire) == phase)
        {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "an honest sync of the phase never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the stores; a store's panic (a refusal that is not
    /// transient) fails the bench here.
    async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// What a task needs to make its clients (the probe makes one per sync).
struct ClientMaker {
    ca: Vec<u8>,
    base: String,
    local: Ipv4Addr,
}

impl ClientMaker {
    fn make(&self, pem: &[u8]) -> HubClient {
        HubClient {
            http: reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&self.ca).unwrap())
                .identity(reqwest::Identity::from_pem(pem).unwrap())
                .local_address(IpAddr::V4(self.local))
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            base: self.base.clone(),
        }
    }
}

struct HonestTask {
    store: SimStore,
    rng: ChaCha8Rng,
    pem: Vec<u8>,
    ctx_client: ClientMaker,
    pace: Duration,
    probe: bool,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    in_flight: Arc<AtomicUsize>,
    ready: Arc<AtomicUsize>,
}

impl HonestTask {
    async fn run(mut self) {
        let mut client = self.ctx_client.make(&self.pem);
        for g in 0..ITEMS {
            self.store.receive(gtin(g), 1_000);
        }
        self.store.sync_all(&client, 10).await;
        self.ready.fetch_add(1, Ordering::AcqRel);
        let mut next = tokio::time::Instant::now() + self.pace.mul_f64(self.rng.gen::<f64>());
        while !self.stop.load(Ordering::Acquire) {
            tokio::time::sleep_until(next).await;
            next = (next + self.pace).max(tokio::time::Instant::now());
            // Two one-unit sales and the receipt that restocks them.
            let g = gtin(self.rng.gen_range(0..ITEMS));
            self.store.sell(g, 1).unwrap();
            self.store.sell(g, 1).unwrap();
            self.store.receive(g, 2);
            let req = self.store.request(1000);
            if self.probe {
                // A new connection for each sync.
                client = self.ctx_client.make(&self.pem);
            }
            let phase = self.phase.load(Ordering::Acquire);
            self.in_flight.store(phase, Ordering::Release);
            let started = Instant::now();
            let mut refused = Vec::new();
            let resp = loop {
                match client.sync(&req).await {
                    Ok(resp) => break resp,
                    Err((status, body)) => {
                        let transient = matches!(status.as_u16(), 408 | 429 | 502 | 503);
                        assert!(
                            transient,
                            "{}: an honest sync refused: {status} {body}",
                            self.store.mem.who.replica
                        );
                        refused.push(status.as_u16());
                        tokio::time::sleep(RETRY).await;
                    }
                }
            };
            let took = started.elapsed();
            self.store.apply(&req, &resp);
            self.samples.lock().unwrap().push(Sample {
                phase,
                took,
                refused,
                fresh: self.probe,
            });
            self.in_flight.store(BETWEEN, Ordering::Release);
        }
    }
}

/// The phases run so far, and the honest stores measured in them.
struct Phases<'c> {
    ctx: &'c Ctx,
    honest: Honest,
    rows: Vec<Value>,
    /// Connections open at rest (the honest stores' and the admin's).
    at_rest: f64,
}

impl<'c> Phases<'c> {
    async fn new(ctx: &'c Ctx, honest: Honest) -> Phases<'c> {
        let mut p = Phases {
            ctx,
            honest,
            rows: Vec::new(),
            at_rest: 0.0,
        };
        // The honest stores', the admin's, the probe's (each sync opens
        // one), the content attacker's and the long-history store's; the
        // clients used to set up the rest are gone.
        p.at_rest = (ctx.knobs.stores + 4) as f64;
        p.settle().await;
        p
    }

    /// Runs `attack` while the honest stores sync; records the row.
    async fn run(&mut self, name: &str, what: &str, attack: impl Future<Output = Value>) {
        if let Some(only) = self.ctx.knobs.only {
            if !name.starts_with("baseline") && !only.split(',').any(|c| c == name) {
                return;
            }
        }
        let id = self.rows.len();
        eprintln!("== {name}: {what}");
        let before = self.ctx.metrics().await;
        let cpu = (self.ctx.hub.cpu_secs(), cpu_secs("self"));
        let started = Instant::now();
        self.honest.phase.store(id, Ordering::Release);
        let outcome = attack.await;
        self.honest.phase.store(BETWEEN, Ordering::Release);
        let wall = started.elapsed().as_secs_f64();
        let cores = |a: f64, b: f64| ((b - a) / wall * 100.0).round() / 100.0;
        let (hub_cores, bench_cores) = (
            cores(cpu.0, self.ctx.hub.cpu_secs()),
            cores(cpu.1, cpu_secs("self")),
        );
        let rss = self.ctx.hub.memory().rss_kib / 1024;
        let after = self.ctx.metrics().await;
        self.honest.drain(id).await;
        self.settle().await;
        let (honest, fresh) = self.honest.stats(id);
        assert!(
            honest["n"].as_u64().unwrap() > 0,
            "no honest sync in {name}"
        );
        let ratio = |field: &str| match self.rows.first() {
            Some(base) => {
                let b = base["honest"][field].as_f64().unwrap();
                (honest[field].as_f64().unwrap() / b * 100.0).round() / 100.0
            }
            None => 1.0,
        };
        let row = json!({
            "class": name,
            "what": what,
            "answer": outcome["answer"],
            "honest": honest,
            "ratio_p50": ratio("p50_ms"),
            "ratio_p99": ratio("p99_ms"),
            "fresh_connection": fresh,
            "seconds": (wall * 10.0).round() / 10.0,
            "hub_cores": hub_cores,
            "bench_cores": bench_cores,
            "hub_rss_mib_at_end": rss,
            "metrics_moved": moved(&before, &after),
            "details": outcome["details"],
        });
        eprintln!("{row}");
        self.rows.push(row);
    }

    /// Waits until the hub is back at rest: no request bytes in flight,
    /// no connections but the honest stores' and the admin's. Fails the
    /// bench if it is not within a minute.
    async fn settle(&self) {
        let t = Instant::now();
        loop {
            let m = self.ctx.metrics().await;
            let bytes = get(&m, "tally_hub_request_bytes_in_flight");
            let open = get(&m, "tally_hub_connections_open");
            if bytes == 0.0 && open <= self.at_rest {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the hub is not back at rest: {bytes} bytes in flight, {open} connections open"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    async fn finish(self) -> Vec<Value> {
        self.honest.stop().await;
        self.rows
    }
}

/// Percentiles of `lat` in ms (sorts it).
fn percentiles(lat: &mut [Duration]) -> Value {
    if lat.is_empty() {
        return json!({"n": 0});
    }
    lat.sort();
    let at = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        ms(lat[i])
    };
    json!({"n": lat.len(), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

/// A duration in ms, to 0.01 ms.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// A duration in s, to 0.1 s.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

// ---------------------------------------------------------------------
// Raw connections and what came back

/// A TCP connection to `to` from address `ip`.
async fn tcp_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    socket.connect(to).await
}

/// A TLS connection to `to` from address `ip`.
async fn tls_from(
    ip: Ipv4Addr,
    to: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(ip, to).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Reads until the peer closes (or resets) or `deadline` passes:
/// everything read, how long it took, and whether it closed.
async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    deadline: Duration,
) -> (Vec<u8>, Duration, bool) {
    let started = Instant::now();
    let end = tokio::time::Instant::from_std(started + deadline);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Err(_) => return (got, started.elapsed(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, started.elapsed(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 answer (head and a Content-Length body), or what
/// came before the peer closed or `deadline` passed; summarized (see
/// [`summarize`]) with how long it took.
async fn read_answer(
    stream: &mut (impl AsyncRead + Unpin),
    deadline: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    let end = tokio::time::Instant::from_std(started + deadline);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(head) = text.find("\r\n\r\n") {
            let len = text[..head]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= head + 4 + len {
                return (summarize(&got), started.elapsed());
            }
        }
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Err(_) => return ("no answer, still open".into(), started.elapsed()),
            Ok(Ok(0)) | Ok(Err(_)) => return (summarize(&got), started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// An HTTP/1.1 answer as "status error-code" ("408 body_timeout"), or
/// "closed, no answer".
fn summarize(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.starts_with("HTTP/") {
        return if raw.is_empty() {
            "closed, no answer".into()
        } else {
            format!("closed after {} bytes that are not HTTP", raw.len())
        };
    }
    let status = text.split_whitespace().nth(1).unwrap_or("?").to_string();
    let code = text
        .find("\r\n\r\n")
        .and_then(|i| serde_json::from_str::<Value>(&text[i + 4..]).ok())
        .and_then(|v| v["error"].as_str().map(str::to_string));
    match code {
        Some(c) => format!("{status} {c}"),
        None => status,
    }
}

/// A reqwest answer as "status error-code", "200", or how it failed.
async fn answer_of(r: reqwest::Result<reqwest::Response>) -> String {
    match r {
        Err(e) if e.is_timeout() => "client timeout".into(),
        Err(e) => {
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            format!("connection failed: {cause}")
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            match body["error"].as_str() {
                Some(c) => format!("{status} {c}"),
                None => status.to_string(),
            }
        }
    }
}

/// Writes a POST's head.
async fn post_head(
    s: &mut (impl AsyncWrite + Unpin),
    path: &str,
    content_type: &str,
    length: Option<usize>,
) -> std::io::Result<()> {
    let length = match length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".into(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.flush().await
}

/// Counts answers by what they were.
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<BTreeMap<String, u64>>>);

impl Tally {
    fn add(&self, what: impl Into<String>) {
        *self.0.lock().unwrap().entry(what.into()).or_default() += 1;
    }

    fn get(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    /// "what ×n; …".
    fn text(&self) -> String {
        self.get()
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Fails unless every answer starts with one of `allowed`.
    fn only(&self, allowed: &[&str], what: &str) {
        for k in self.get().keys() {
            assert!(
                allowed.iter().any(|a| k.starts_with(a)),
                "{what}: answered {k:?} (all: {})",
                self.text()
            );
        }
    }
}

/// Runs `f(i)` for i in 0..n concurrently; the results in order.
async fn all<T: Send + 'static, F>(n: usize, f: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn range_s(d: &[Duration]) -> String {
    let min = d.iter().min().copied().unwrap_or_default();
    let max = d.iter().max().copied().unwrap_or_default();
    format!("{:.1}–{:.1} s", min.as_secs_f64(), max.as_secs_f64())
}

// ---------------------------------------------------------------------
// No certificate

/// Sockets that never send a byte from one address: as many as its cap
/// allows, held; and, meanwhile, more beyond it in bursts.
async fn idle_sockets(ctx: &Ctx) -> Value {
    let before = ctx.metrics().await;
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 11), ctx.addr);
    let mut held = Vec::new();
    for _ in 0..ctx.per_peer {
        held.push(tcp_from(ip, addr).await.unwrap());
    }
    let opened = Instant::now();
    let held: Vec<_> = held
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let (got, _, closed) = until_closed(&mut s, Duration::from_secs(60)).await;
                assert!(closed, "a silent socket was never closed");
                assert!(got.is_empty(), "a silent socket got an answer");
                opened.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Beyond the cap, while the held sockets are still open.
    let until = opened + ctx.knobs.window.min(ctx.handshake.mul_f64(0.8));
    let mut beyond = Vec::new();
    while Instant::now() < until {
        beyond.extend(
            all(16, |_| async move {
                let mut s = tcp_from(ip, addr).await.unwrap();
                let (got, took, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
                assert!(closed && got.is_empty(), "a socket beyond the cap was kept");
                took
            })
            .await,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut closed = Vec::new();
    for h in held {
        closed.push(h.await.unwrap());
    }
    let after = ctx.metrics().await;
    let refused = get(
        &after,
        "tally_hub_shed_total{reason=\"connections_per_peer\"}",
    ) - get(
        &before,
        "tally_hub_shed_total{reason=\"connections_per_peer\"}",
    );
    assert!(refused >= beyond.len() as f64, "{refused} refusals counted");
    let failed = get(&after, "tally_hub_tls_handshake_failures_total")
        - get(&before, "tally_hub_tls_handshake_failures_total");
    assert!(failed >= ctx.per_peer as f64, "{failed} handshakes failed");
    for took in &beyond {
        assert!(
            *took < ctx.handshake / 2,
            "a socket beyond the cap was closed only after {took:?}"
        );
    }
    let b = percentiles(&mut beyond.clone());
    json!({
        "answer": format!(
            "{} sockets beyond the cap of {}: closed at once (p50 {} ms, max {} ms); the {} within it: closed by the {} s handshake timeout (after {})",
            beyond.len(), ctx.per_peer, b["p50_ms"], b["max_ms"], ctx.per_peer,
            ctx.handshake.as_secs(), range_s(&closed)
        ),
        "details": {"beyond": b, "held_closed_after": range_s(&closed)},
    })
}

/// TLS handshakes (no certificate), then nothing: half HTTP/1.1, half
/// HTTP/2 that send the preface and SETTINGS and no request.
async fn tls_silence(ctx: &Ctx) -> Value {
    let before = ctx.metrics().await;
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 12), ctx.addr);
    let h1 = ctx.tls(None, &[b"http/1.1"]);
    let h2 = ctx.tls(None, &[b"h2"]);
    let closed = all(ctx.per_peer, |i| {
        let config = if i % 2 == 0 { h1.clone() } else { h2.clone() };
        async move {
            let mut s = tls_from(ip, addr, config).await.unwrap();
            if i % 2 == 1 {
                s.write_all(H2_PREFACE).await.unwrap();
                s.flush().await.unwrap();
            }
            let (got, took, closed) = until_closed(&mut s, Duration::from_secs(60)).await;
            assert!(closed, "a silent TLS connection was never closed");
            if i % 2 == 0 {
                assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
            }
            took
        }
    })
    .await;
    let after = ctx.metrics().await;
    let idle = get(&after, "tally_hub_connections_ended_total{how=\"idle\"}")
        - get(&before, "tally_hub_connections_ended_total{how=\"idle\"}");
    assert!(idle >= ctx.per_peer as f64, "{idle} closed as idle");
    json!({
        "answer": format!(
            "closed by the hub, no request answered, after {} (first-request limit {} s)",
            range_s(&closed), ctx.first_request.as_secs()
        ),
        "details": {"connections": closed.len()},
    })
}

/// Headers sent one byte every 100 ms, never complete.
async fn slowloris(ctx: &Ctx) -> Value {
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 13), ctx.addr);
    let config = ctx.tls(None, &[b"http/1.1"]);
    let tally = Tally::default();
    let cut = all(ctx.per_peer, |_| {
        let (config, tally) = (config.clone(), tally.clone());
        async move {
            let s = tls_from(ip, addr, config).await.unwrap();
            let (mut r, mut w) = tokio::io::split(s);
            let reader =
                tokio::spawn(async move { until_closed(&mut r, Duration::from_secs(60)).await });
            let mut header = b"POST /v1/sync HTTP/1.1\r\nHost: hub\r\nX-Filler: ".to_vec();
            header.resize(header.len() + 2000, b'a');
            for b in &header {
                if reader.is_finished()
                    || w.write_all(&[*b]).await.is_err()
                    || w.flush().await.is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (got, took, closed) = reader.await.unwrap();
            assert!(closed, "a dribbled header was never cut");
            tally.add(summarize(&got));
            took
        }
    })
    .await;
    tally.only(&["closed, no answer", "408"], "slowloris");
    json!({
        "answer": format!("{}: cut after {}", tally.text(), range_s(&cut)),
        "details": tally.get(),
    })
}

/// POST /v1/enroll (no certificate needed) with a body that stalls after
/// one byte, on every connection the address may open.
async fn stalled_body(ctx: &Ctx) -> Value {
    let before = ctx.metrics().await;
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 14), ctx.addr);
    let config = ctx.tls(None, &[b"http/1.1"]);
    let deadline = ctx.knobs.body_timeout + Duration::from_secs(20);
    let tally = Tally::default();
    let took = all(ctx.per_peer, |_| {
        let (config, tally) = (config.clone(), tally.clone());
        async move {
            let mut s = tls_from(ip, addr, config).await.unwrap();
            post_head(
                &mut s,
                "/v1/enroll",
                "application/json",
                Some(MAX_IDENTITY_BODY),
            )
            .await
            .unwrap();
            s.write_all(b"{").await.unwrap();
            s.flush().await.unwrap();
            let (answer, took) = read_answer(&mut s, deadline).await;
            tally.add(answer);
            took
        }
    })
    .await;
    tally.only(&["408 body_timeout"], "stalled body");
    let after = ctx.metrics().await;
    let timeouts = get(&after, "tally_hub_shed_total{reason=\"body_timeout\"}")
        - get(&before, "tally_hub_shed_total{reason=\"body_timeout\"}");
    assert!(timeouts >= ctx.per_peer as f64);
    json!({
        "answer": format!("{} after {}", tally.text(), range_s(&took)),
        "details": tally.get(),
    })
}

/// Bodies beyond the limit, for the window, from 8 workers: an anonymous
/// enrollment declaring 1 GiB, one streaming (chunked) 64 KiB, and a
/// store's sync declaring one byte more than the largest sync body.
async fn oversized(ctx: &Ctx, store: &(String, Vec<u8>)) -> Value {
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 15), ctx.addr);
    let anon = ctx.tls(None, &[b"http/1.1"]);
    let cert = ctx.tls(Some(&store.1), &[b"http/1.1"]);
    let tally = Tally::default();
    let end = Instant::now() + ctx.knobs.window;
    let max_body = ctx.max_body;
    all(8, |w| {
        let (anon, cert, tally) = (anon.clone(), cert.clone(), tally.clone());
        async move {
            let chunk = vec![b' '; 4096];
            let mut n = w;
            while Instant::now() < end {
                n += 1;
                let kind = n % 3;
                let config = if kind == 2 {
                    cert.clone()
                } else {
                    anon.clone()
                };
                let mut s = tls_from(ip, addr, config).await.unwrap();
                let label = match kind {
                    0 => {
                        let _ = post_head(&mut s, "/v1/enroll", "application/json", Some(1 << 30))
                            .await;
                        let _ = s.write_all(&chunk).await;
                        "enroll, 1 GiB declared"
                    }
                    1 => {
                        let _ = post_head(&mut s, "/v1/enroll", "application/json", None).await;
                        for _ in 0..16 {
                            let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
                            c.extend_from_slice(&chunk);
                            c.extend_from_slice(b"\r\n");
                            if s.write_all(&c).await.is_err() {
                                break;
                            }
                        }
                        let _ = s.flush().await;
                        "enroll, 64 KiB chunked"
                    }
                    _ => {
                        let _ = post_head(
                            &mut s,
                            "/v1/sync",
                            Encoding::Binary.content_type(),
                            Some(max_body + 1),
                        )
                        .await;
                        "store's sync, limit + 1 declared"
                    }
                };
                let (answer, _) = read_answer(&mut s, Duration::from_secs(20)).await;
                tally.add(format!("{label}: {answer}"));
            }
        }
    })
    .await;
    tally.only(
        &[
            "enroll, 1 GiB declared: 413 body_too_large",
            "enroll, 64 KiB chunked: 413 body_too_large",
            "store's sync, limit + 1 declared: 413 body_too_large",
            // The store's syncs come from 8 workers at once.
            "store's sync, limit + 1 declared: 429 sync_in_progress",
        ],
        "oversized bodies",
    );
    json!({"answer": tally.text(), "details": tally.get()})
}

/// Random bytes for the window, from 4 workers: instead of a TLS
/// handshake; after one, as HTTP/1.1; after the HTTP/2 preface.
async fn garbage(ctx: &Ctx) -> Value {
    let before = ctx.metrics().await;
    let (ip, addr) = (Ipv4Addr::new(127, 0, 0, 16), ctx.addr);
    let h1 = ctx.tls(None, &[b"http/1.1"]);
    let h2 = ctx.tls(None, &[b"h2"]);
    let tally = Tally::default();
    let end = Instant::now() + ctx.knobs.window;
    all(4, |w| {
        let (h1, h2, tally) = (h1.clone(), h2.clone(), tally.clone());
        async move {
            let mut rng = ChaCha8Rng::seed_from_u64(w as u64);
            let mut n = w;
            let mut junk = vec![0u8; 4096];
            while Instant::now() < end {
                n += 1;
                rng.fill_bytes(&mut junk);
                let deadline = Duration::from_secs(30);
                let answer = match n % 3 {
                    0 => {
                        let mut s = tcp_from(ip, addr).await.unwrap();
                        let _ = s.write_all(&junk).await;
                        let (got, _, closed) = until_closed(&mut s, deadline).await;
                        // A TLS alert is record type 21.
                        match (closed, got.first()) {
                            (false, _) => "instead of TLS: still open".into(),
                            (true, Some(21)) => "instead of TLS: alert, closed".into(),
                            (true, _) => "instead of TLS: closed".to_string(),
                        }
                    }
                    1 => {
                        let mut s = tls_from(ip, addr, h1.clone()).await.unwrap();
                        let _ = s.write_all(&junk).await;
                        let _ = s.flush().await;
                        let (answer, _) = read_answer(&mut s, deadline).await;
                        format!("after TLS: {answer}")
                    }
                    _ => {
                        let mut s = tls_from(ip, addr, h2.clone()).await.unwrap();
                        let mut bytes = H2_PREFACE.to_vec();
                        bytes.extend_from_slice(&junk);
                        let _ = s.write_all(&bytes).await;
                        let _ = s.flush().await;
                        let (got, _, closed) = until_closed(&mut s, deadline).await;
                        if !closed {
                            "after the HTTP/2 preface: still open".into()
                        } else if h2_goaway(&got) {
                            "after the HTTP/2 preface: GOAWAY, closed".into()
                        } else {
                            "after the HTTP/2 preface: closed".to_string()
                        }
                    }
                };
                tally.add(answer);
            }
        }
    })
    .await;
    for k in tally.get().keys() {
        assert!(!k.contains("still open") && !k.contains(": 2"), "{k}");
    }
    let after = ctx.metrics().await;
    let failed = get(&after, "tally_hub_tls_handshake_failures_total")
        - get(&before, "tally_hub_tls_handshake_failures_total");
    assert!(failed >= 1.0);
    json!({"answer": tally.text(), "details": tally.get()})
}

/// Whether HTTP/2 frames from the server include a GOAWAY (type 7).
fn h2_goaway(mut frames: &[u8]) -> bool {
    while frames.len() >= 9 {
        let len =
            (usize::from(frames[0]) << 16) | (usize::from(frames[1]) << 8) | usize::from(frames[2]);
        if frames[3] == 7 {
            return true;
        }
        frames = &frames[(9 + len).min(frames.len())..];
    }
    false
}

/// Bytes an attacker sends in small pieces at the end of a body it
/// stalls, to take what is left of the byte budget once its large
/// pieces no longer fit.
const CRUMB: usize = 64;
/// How many small pieces.
const CRUMBS: usize = 5;

/// A body of `len` bytes sent as one piece, or, with `trickle`, as one
/// piece and then [`CRUMBS`] pieces of [`CRUMB`] bytes 20 ms apart; then
/// nothing more, ever.
fn stalled_stream(len: usize, trickle: bool) -> reqwest::Body {
    let all = Bytes::from(vec![b' '; len]);
    let crumbs = if trickle { CRUMBS } else { 0 };
    let big = len - crumbs * CRUMB;
    let first = futures::stream::iter([Ok::<_, std::io::Error>(Frame::data(all.slice(..big)))]);
    let rest = futures::stream::iter(0..crumbs).then(move |i| {
        let piece = all.slice(big + i * CRUMB..big + (i + 1) * CRUMB);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Frame::data(piece))
        }
    });
    let frames = first.chain(rest).chain(futures::stream::pending());
    reqwest::Body::wrap(http_body_util::StreamBody::new(Box::pin(frames)))
}

/// No certificate: from each of `stream_addresses` addresses, as many
/// HTTP/2 connections as the per-address cap allows, each with every
/// stream it may open (200) posting an enrollment body of the largest
/// size allowed, sent but for its last byte (with `trickle`, its last
/// bytes in small pieces). Each stream posts again once answered (after
/// 50 ms if refused) until the budget has been full for the window.
async fn anonymous_streams(ctx: &Ctx, trickle: bool) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Tally::default();
    let url = format!("{}/v1/enroll", ctx.hub.base);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for a in 0..ctx.knobs.stream_addresses {
        let ip = Ipv4Addr::new(127, 0, 0, 100 + a + if trickle { 50 } else { 0 });
        for _ in 0..ctx.per_peer {
            let client = ctx.client(None, Some(ip), true);
            for _ in 0..H2_STREAMS {
                let (http, url) = (client.http.clone(), url.clone());
                let (stop, tally) = (stop.clone(), tally.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        let r = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("content-length", MAX_IDENTITY_BODY)
                            .body(stalled_stream(MAX_IDENTITY_BODY - 1, trickle))
                            .send()
                            .await;
                        let answer = answer_of(r).await;
                        if !answer.starts_with("408") {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        tally.add(answer);
                    }
                }));
            }
        }
    }
    let held = fill(ctx, started).await;
    stop.store(true, Ordering::Release);
    // Each stream ends with its current answer (within the body timeout).
    for t in tasks {
        t.await.unwrap();
    }
    tally.only(
        &[
            "408 body_timeout",
            "503 overloaded",
            "connection failed",
            "client timeout",
        ],
        "anonymous streams",
    );
    json!({
        "answer": format!(
            "{} (bytes in flight: {})",
            tally.text(),
            held["answer"].as_str().unwrap()
        ),
        "details": {"answers": tally.get(), "budget": held},
    })
}

/// Watches the byte budget fill while an attack runs: waits up to 30 s
/// for it to be 95 % full, then the window; the peak and when it filled.
/// Fails if the budget is ever exceeded.
async fn fill(ctx: &Ctx, started: Instant) -> Value {
    let key = "tally_hub_request_bytes_in_flight";
    let budget = ctx.budget as f64;
    let mut peak = 0.0f64;
    let mut rss = 0;
    let mut full_at = None;
    loop {
        let b = ctx.metric(key).await;
        assert!(b <= budget, "{b} bytes in flight beyond the budget");
        peak = peak.max(b);
        rss = rss.max(ctx.hub.memory().rss_kib);
        if full_at.is_none() && b >= 0.95 * budget {
            full_at = Some(started.elapsed());
        }
        let waited = started.elapsed();
        match full_at {
            Some(at) if waited >= at + ctx.knobs.window => break,
            None if waited >= Duration::from_secs(30) + ctx.knobs.window => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mib = |b: f64| (b / 1048576.0 * 10.0).round() / 10.0;
    let answer = match full_at {
        Some(at) => format!(
            "peak {} of {} MiB, 95 % full after {:.1} s",
            mib(peak),
            mib(budget),
            at.as_secs_f64()
        ),
        None => format!("peak {} of {} MiB, never 95 % full", mib(peak), mib(budget)),
    };
    json!({
        "answer": answer,
        "peak_mib": mib(peak),
        "budget_mib": mib(budget),
        "full_after_s": full_at.map(secs),
        "hub_rss_peak_mib": rss / 1024,
    })
}

/// No certificate: silent sockets from as many addresses as it takes to
/// fill the hub's total connection cap, each opened again as soon as the
/// hub closes it (the handshake timeout), for twice that timeout. The
/// probe's new connections meet the cap.
async fn total_cap(ctx: &Ctx) -> Value {
    let need = ctx.total + 2000;
    let limit = open_files_limit();
    if limit < need as u64 {
        eprintln!("skipped: {limit} open files allowed, {need} needed");
        return json!({"answer": format!("skipped: {limit} open files allowed, {need} needed")});
    }
    let before = ctx.metrics().await;
    let sockets = ctx.total - get(&before, "tally_hub_connections_open") as usize;
    let addr = ctx.addr;
    let per = ctx.per_peer;
    let addresses = sockets.div_ceil(per);
    let started = Instant::now();
    let end = started + ctx.handshake * 2;
    // At most 32 connects in flight: the hub's listen queue is short, and
    // a connect whose SYN it drops waits a second to try again.
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let open = Arc::new(AtomicUsize::new(0));
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for a in 0..addresses {
        let ip = Ipv4Addr::new(127, 0, 1 + (a / 250) as u8, 1 + (a % 250) as u8);
        for _ in 0..per.min(sockets - a * per) {
            let (gate, open, opened, closed) =
                (gate.clone(), open.clone(), opened.clone(), closed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let connected = {
                        let _turn = gate.acquire().await.unwrap();
                        tokio::time::timeout(Duration::from_secs(5), tcp_from(ip, addr)).await
                    };
                    let Ok(Ok(mut s)) = connected else { continue };
                    opened.fetch_add(1, Ordering::Relaxed);
                    open.fetch_add(1, Ordering::Relaxed);
                    let left = end.saturating_duration_since(Instant::now());
                    let (_, _, c) = until_closed(&mut s, left).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                    closed.fetch_add(usize::from(c), Ordering::Relaxed);
                }
            }));
        }
    }
    let mut most = 0;
    let mut full_at = None;
    while Instant::now() < end {
        let now = open.load(Ordering::Relaxed);
        most = most.max(now);
        if full_at.is_none() && now >= sockets {
            full_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = ctx.metrics().await;
    let timed_out = get(&after, "tally_hub_tls_handshake_failures_total")
        - get(&before, "tally_hub_tls_handshake_failures_total");
    let (opened, closed) = (
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
    );
    assert!(closed > 0 && timed_out > 0.0, "the hub closed none");
    let full = match full_at {
        Some(at) => format!("all {sockets} open after {:.1} s", at.as_secs_f64()),
        None => format!("at most {most} of {sockets} open at once"),
    };
    json!({
        "answer": format!(
            "{opened} sockets from {addresses} addresses in {} s ({full}); the hub closed {closed} by its {} s handshake timeout",
            (ctx.handshake * 2).as_secs(), ctx.handshake.as_secs()
        ),
        "details": {
            "sockets_held_for_the_cap": sockets,
            "addresses": addresses,
            "opened": opened,
            "most_open_at_once": most,
            "all_open_after_s": full_at.map(secs),
            "closed_by_the_hub": closed,
            "handshakes_failed": timed_out,
        },
    })
}

/// The soft limit on open files of this process (the hub inherits it).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------
// A store's certificate

/// A sync with one event more than allowed (real receipts), posted again
/// and again for the window.
async fn too_many_events(ctx: &Ctx, store: &(String, Vec<u8>)) -> Value {
    let g = gtin(300);
    let mut sim = SimStore::new(&store.0, 31);
    for _ in 0..=ctx.max_events {
        sim.receive(g, 1);
    }
    let req = sim.request(ctx.max_events * 2);
    assert_eq!(req.events.len(), ctx.max_events + 1);
    let body = codec::encode(&req, Encoding::Binary).unwrap();
    let client = ctx.client(Some(&store.1), Some(Ipv4Addr::new(127, 0, 0, 21)), false);
    let tally = Tally::default();
    let end = Instant::now() + ctx.knobs.window;
    while Instant::now() < end {
        let r = client
            .http
            .post(format!("{}/v1/sync", client.base))
            .header("content-type", Encoding::Binary.content_type())
            .body(body.clone())
            .send()
            .await;
        tally.add(answer_of(r).await);
    }
    tally.only(&["413 too_many_events"], "too many events");
    let stock = ctx.stock(&[g]).await;
    assert!(
        stock[g.to_string()]["stores"].get(&store.0).is_none(),
        "{stock}"
    );
    json!({
        "answer": format!("{} ({} bytes each)", tally.text(), body.len()),
        "details": tally.get(),
    })
}

/// One store: a sync whose body stalls (again as soon as it is
/// answered) while 100 tasks post the store's next sync over one HTTP/2
/// connection, for the window.
async fn sync_in_progress(ctx: &Ctx, store: &(String, Vec<u8>)) -> Value {
    let g = gtin(301);
    let mut sim = SimStore::new(&store.0, 32);
    sim.receive(g, 2);
    let body = codec::encode(&sim.request(1000), Encoding::Binary).unwrap();
    let ip = Ipv4Addr::new(127, 0, 0, 22);
    let (stalls, floods) = (Tally::default(), Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let staller = {
        let (config, addr, stop, stalls) = (
            ctx.tls(Some(&store.1), &[b"http/1.1"]),
            ctx.addr,
            stop.clone(),
            stalls.clone(),
        );
        let deadline = ctx.knobs.body_timeout + Duration::from_secs(20);
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let mut s = tls_from(ip, addr, config.clone()).await.unwrap();
                post_head(
                    &mut s,
                    "/v1/sync",
                    Encoding::Binary.content_type(),
                    Some(1000),
                )
                .await
                .unwrap();
                s.write_all(&[0u8; 10]).await.unwrap();
                s.flush().await.unwrap();
                let (answer, _) = read_answer(&mut s, deadline).await;
                stalls.add(answer);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = ctx.client(Some(&store.1), Some(ip), true);
    let end = Instant::now() + ctx.knobs.window;
    all(100, |_| {
        let (http, url, body, floods) = (
            client.http.clone(),
            format!("{}/v1/sync", client.base),
            body.clone(),
            floods.clone(),
        );
        async move {
            while Instant::now() < end {
                let r = http
                    .post(&url)
                    .header("content-type", Encoding::Binary.content_type())
                    .body(body.clone())
                    .send()
                    .await;
                floods.add(answer_of(r).await);
            }
        }
    })
    .await;
    stop.store(true, Ordering::Release);
    staller.await.unwrap();
    stalls.only(&["408 body_timeout"], "the stalled sync");
    // Between two stalls a sync may get through: the same one, once.
    floods.only(
        // hyper ends a connection on which it reset too many streams
        // (each 429 answered before its body was read resets one).
        &[
            "429 sync_in_progress",
            "200",
            "connection failed",
            "client timeout",
        ],
        "concurrent syncs",
    );
    assert!(floods.get().contains_key("429 sync_in_progress"));
    let stock = ctx.stock(&[g]).await;
    let on_hand = &stock[g.to_string()]["stores"][&store.0]["on_hand"];
    assert!(
        on_hand.is_null() || on_hand == 2,
        "the store's receipt counted once: {stock}"
    );
    json!({
        "answer": format!("concurrent: {}; stalled: {}", floods.text(), stalls.text()),
        "details": {"concurrent": floods.get(), "stalled": stalls.get()},
    })
}

/// Stores with certificates (one more than it takes to fill the byte
/// budget with the largest sync bodies), each posting a sync body of the
/// largest size, sent but for its last byte (the last [`CRUMBS`] ×
/// [`CRUMB`] of them in small pieces), again as soon as it is answered,
/// until the budget has been full for the window.
async fn store_budget(ctx: &Ctx, stores: &[(String, Vec<u8>)]) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Tally::default();
    let ip = Ipv4Addr::new(127, 0, 0, 23);
    let chunk = Arc::new(vec![0u8; 64 * 1024]);
    let len = ctx.max_body;
    let deadline = ctx.knobs.body_timeout + Duration::from_secs(20);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (_, pem) in stores {
        let (config, addr) = (ctx.tls(Some(pem), &[b"http/1.1"]), ctx.addr);
        let (stop, tally, chunk) = (stop.clone(), tally.clone(), chunk.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let s = tls_from(ip, addr, config.clone()).await.unwrap();
                let (mut r, mut w) = tokio::io::split(s);
                let chunk = chunk.clone();
                let write = async move {
                    post_head(
                        &mut w,
                        "/v1/sync",
                        Encoding::Binary.content_type(),
                        Some(len),
                    )
                    .await?;
                    let mut left = len - 1 - CRUMBS * CRUMB;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        w.write_all(&chunk[..n]).await?;
                        left -= n;
                    }
                    w.flush().await?;
                    for _ in 0..CRUMBS {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        w.write_all(&chunk[..CRUMB]).await?;
                        w.flush().await?;
                    }
                    Ok::<_, std::io::Error>(w)
                };
                let read = read_answer(&mut r, deadline);
                tokio::pin!(read);
                let answer = tokio::select! {
                    (answer, _) = &mut read => answer,
                    w = write => {
                        let (answer, _) = read.await;
                        drop(w);
                        answer
                    }
                };
                if !answer.starts_with("408") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tally.add(answer);
            }
        }));
    }
    let held = fill(ctx, started).await;
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    tally.only(&["408 body_timeout", "503 overloaded"], "large sync bodies");
    json!({
        "answer": format!(
            "{} stores: {} (bytes in flight: {})",
            stores.len(),
            tally.text(),
            held["answer"].as_str().unwrap()
        ),
        "details": {"answers": tally.get(), "budget": held},
    })
}

/// A sync request the hub must refuse: what it is, the request, the
/// status and error code, and whether the answer names its last event.
type Case = (&'static str, SyncRequest, u16, &'static str, bool);

/// The store that sends hostile content, with a real certificate and an
/// honest past: 10 units of `g` and 3 of `h` received, one tagged unit
/// of `g` sold, and online demand for `g` there, so the hub holds a
/// reserve of it at the store.
struct Mallory {
    store: SimStore,
    client: HubClient,
    g: Gtin,
    h: Gtin,
}

impl Mallory {
    async fn prepare(ctx: &Ctx) -> Mallory {
        let (id, pem) = ctx.enroll_store("m-content");
        let client = ctx.client(Some(&pem), Some(Ipv4Addr::new(127, 0, 0, 24)), false);
        let (g, h) = (gtin(200), gtin(201));
        ctx.admin.online_demand(&id, g, 20).await;
        let mut store = SimStore::new(&id, 33);
        store.set_clock(SystemClock.now_ms());
        store.receive(g, 10);
        store.receive(h, 3);
        store.sell_epc(g, EPC_SOLD).unwrap();
        store.sync_all(&client, 10).await;
        Mallory {
            store,
            client,
            g,
            h,
        }
    }

    fn id(&self) -> ReplicaId {
        self.store.mem.who.replica.clone()
    }

    /// An event of the store's, dated now, with an id of its own.
    fn event(&self, n: u8, kind: EventKind, lines: Vec<Line>) -> Event {
        let now = SystemClock.now_ms();
        Event {
            id: EventId::v7(now, [n; 10]),
            location: self.store.mem.who.location.clone(),
            replica: self.id(),
            at_ms: now,
            kind,
            lines,
            staff: Default::default(),
            price_overrides: Vec::new(),
        }
    }

    /// The store's next (empty) request, with `e`.
    fn with(&self, e: Event) -> SyncRequest {
        let mut req = self.store.request(100);
        req.events.push(e);
        req
    }

    fn bad_values(&self) -> Vec<Case> {
        let g = self.g;
        let sale = |tenders| EventKind::Sale {
            tenders,
            override_: None,
        };
        let mut future = self.event(8, sale(vec![]), vec![line(g, 1, 100, None)]);
        future.at_ms = SystemClock.now_ms() + 300 * 365 * 24 * 3_600_000;
        vec![
            (
                "receipt of 2^40 units",
                self.with(self.event(1, EventKind::Receipt, vec![line(g, 1 << 40, 0, None)])),
                422,
                "refused_update",
                true,
            ),
            (
                "sale of u64::MAX units",
                self.with(self.event(2, sale(vec![]), vec![line(g, u64::MAX, 1, None)])),
                422,
                "refused_update",
                true,
            ),
            (
                "one unit over the line bound",
                self.with(self.event(
                    3,
                    EventKind::Receipt,
                    vec![line(g, MAX_LINE_QTY + 1, 0, None)],
                )),
                422,
                "refused_update",
                true,
            ),
            (
                "negative price",
                self.with(self.event(
                    4,
                    EventKind::Return {
                        original_sale: None,
                    },
                    vec![line(g, 1, -100_000, None)],
                )),
                422,
                "refused_update",
                true,
            ),
            (
                "negative tender",
                self.with(self.event(5, sale(vec![cash(-500)]), vec![line(g, 1, 100, None)])),
                422,
                "refused_update",
                true,
            ),
            (
                "a 2 MiB tender method",
                self.with(self.event(
                    6,
                    sale(vec![Tender {
                        method: "x".repeat(2 << 20),
                        amount_minor: 100,
                        reference: None,
                    }]),
                    vec![line(g, 1, 100, None)],
                )),
                422,
                "refused_update",
                true,
            ),
            (
                "an override reason one byte too long",
                self.with(self.event(
                    7,
                    EventKind::Sale {
                        tenders: vec![],
                        override_: Some(Override {
                            approver: "m".into(),
                            reason: "r".repeat(MAX_REASON_BYTES + 1),
                            shortfall: vec![],
                        }),
                    },
                    vec![line(g, 1, 100, None)],
                )),
                422,
                "refused_update",
                true,
            ),
            (
                "dated three centuries ahead",
                self.with(future),
                422,
                "refused_update",
                true,
            ),
        ]
    }

    fn unexplained_stock(&self) -> Vec<Case> {
        let me = self.id();
        let key = ItemKey::new(self.store.mem.who.location.clone(), self.g);
        let (p, n, t) = self.store.mem.counter(self.g).owned_by(&me).entries();
        let bump = |entries: &[(ReplicaId, u64)], by: u64| -> Vec<(ReplicaId, u64)> {
            let mut e = entries.to_vec();
            match e.iter_mut().find(|(r, _)| *r == me) {
                Some(entry) => entry.1 += by,
                None => e.push((me.clone(), by)),
            }
            e
        };
        let forged = |p: Vec<(ReplicaId, u64)>, n: Vec<(ReplicaId, u64)>| {
            let mut req = self.store.request(100);
            req.delta.entries.push(DeltaEntry {
                key: key.clone(),
                counter: BoundedCounter::from_entries(p, n, t.clone()),
            });
            req
        };
        vec![
            (
                "stock (P) 500 above every receipt",
                forged(bump(&p, 500), n.clone()),
                403,
                "forbidden_update",
                false,
            ),
            (
                "removals (N) 4 above every sale",
                forged(p.clone(), bump(&n, 4)),
                403,
                "forbidden_update",
                false,
            ),
        ]
    }

    fn epc_returns(&self) -> Vec<Case> {
        let ret = EventKind::Return {
            original_sale: None,
        };
        vec![
            (
                "return of a tag never sold",
                self.with(self.event(
                    9,
                    ret.clone(),
                    vec![line(self.g, 1, 100, Some(EPC_NEVER_SOLD))],
                )),
                422,
                "refused_update",
                true,
            ),
            (
                "return of a tag sold as another item",
                self.with(self.event(10, ret, vec![line(self.h, 1, 100, Some(EPC_SOLD))])),
                422,
                "refused_update",
                true,
            ),
        ]
    }

    /// What the hub shows of the store: its items' stock, the
    /// exceptions, and its entry among the stores.
    async fn shown(&self, ctx: &Ctx) -> Value {
        let mut v = ctx.stock(&[self.g, self.h]).await;
        v["store"] = ctx.store_entry(self.id().as_str()).await;
        v
    }

    /// Sends every case in turn, for the window: each must be refused as
    /// it says, and the hub must show the same before and after.
    async fn refused(&self, ctx: &Ctx, cases: Vec<Case>) -> Value {
        let before = self.shown(ctx).await;
        let tally = Tally::default();
        let end = Instant::now() + ctx.knobs.window;
        let mut rounds = 0;
        while Instant::now() < end {
            rounds += 1;
            for (what, req, status, code, names_event) in &cases {
                let (got, body) = match self.client.sync(req).await {
                    Ok(_) => panic!("{what}: accepted"),
                    Err(refused) => refused,
                };
                assert_eq!(got.as_u16(), *status, "{what}: {body}");
                assert_eq!(body["error"], *code, "{what}: {body}");
                if *names_event {
                    assert_eq!(
                        body["event_id"],
                        json!(req.events.last().unwrap().id),
                        "{what}: names the event to dead-letter"
                    );
                }
                tally.add(format!("{status} {code}"));
            }
        }
        assert_eq!(
            self.shown(ctx).await,
            before,
            "the hostile content changed the hub"
        );
        let kinds: Vec<&str> = cases.iter().map(|c| c.0).collect();
        json!({
            "answer": format!("{} ({} kinds × {rounds} rounds)", tally.text(), kinds.len()),
            "details": {"kinds": kinds, "answers": tally.get()},
        })
    }

    /// Absurd demand (refused) and demand within bounds that no lost
    /// sale backs (accepted), in turn for the window: the hub's reserve at
    /// the store does not move.
    async fn demand(&self, ctx: &Ctx) -> Value {
        let reserve =
            |v: &Value| v[self.g.to_string()]["stores"][self.id().as_str()]["hub_rights"].clone();
        let before = ctx.stock(&[self.g]).await;
        let mut absurd = self.store.request(100);
        absurd.demand = vec![Demand {
            gtin: self.g,
            units: u64::MAX,
        }];
        absurd.lost = vec![LostSales {
            reason: Shortage::HeldElsewhere,
            sales: u64::MAX,
            units: u64::MAX,
        }];
        let mut wishful = self.store.request(100);
        wishful.demand = vec![Demand {
            gtin: self.g,
            units: 1_000,
        }];
        let tally = Tally::default();
        let end = Instant::now() + ctx.knobs.window;
        while Instant::now() < end {
            let (status, body) = self.client.sync(&absurd).await.unwrap_err();
            assert_eq!(
                (status.as_u16(), &body["error"]),
                (422, &json!("refused_update")),
                "{body}"
            );
            tally.add("u64::MAX: 422 refused_update");
            self.client.sync(&wishful).await.unwrap();
            tally.add("1,000 units, no lost sale: 200");
        }
        let after = ctx.stock(&[self.g]).await;
        assert_eq!(
            reserve(&after),
            reserve(&before),
            "the hub's reserve moved: {after}"
        );
        json!({
            "answer": format!("{}; the hub's reserve there stayed {}", tally.text(), reserve(&after)),
            "details": tally.get(),
        })
    }
}

fn line(g: Gtin, qty: u64, price: i64, epc: Option<&str>) -> Line {
    Line {
        gtin: g,
        qty,
        unit_price_minor: price,
        epc: epc.map(|e| Epc::from_hex(e).unwrap()),
    }
}

fn cash(amount_minor: i64) -> Tender {
    Tender {
        method: "cash".into(),
        amount_minor,
        reference: None,
    }
}

/// A store with one tag sold and returned `TALLY_BENCH_HISTORY` times
/// (synced while setting up); in its phase it sells and returns that tag
/// again, and a fresh tag, in turn, one sync each, as fast as it can.
struct History {
    store: SimStore,
    client: HubClient,
    g: Gtin,
    fresh: u32,
    setup: Value,
}

impl History {
    const OLD: u32 = 1;

    fn epc(n: u32) -> String {
        format!("3074257BF7194E40{n:08X}")
    }

    async fn prepare(ctx: &Ctx) -> History {
        let (id, pem) = ctx.enroll_store("m-history");
        let client = ctx.client(Some(&pem), Some(Ipv4Addr::new(127, 0, 0, 25)), false);
        let g = gtin(400);
        let mut store = SimStore::new(&id, 34);
        store.set_clock(SystemClock.now_ms() - 24 * 3_600_000);
        store.receive(g, 10);
        let mut h = History {
            store,
            client,
            g,
            fresh: 1_000_000,
            setup: Value::Null,
        };
        for _ in 0..ctx.knobs.history {
            h.cycle(Self::OLD);
        }
        let t = Instant::now();
        let syncs = h.store.sync_all(&h.client, 1000).await;
        h.setup = json!({
            "cycles": ctx.knobs.history,
            "events": 2 * ctx.knobs.history + 1,
            "syncs": syncs,
            "ms": ms(t.elapsed()),
        });
        eprintln!("long history synced: {}", h.setup);
        h
    }

    /// Sells tag `n` and returns it.
    fn cycle(&mut self, n: u32) {
        let tag = Self::epc(n);
        let sale = self.store.sell_epc(self.g, &tag).unwrap();
        self.store
            .run(Command::Return {
                id: None,
                original_sale: Some(sale),
                lines: vec![LineIn {
                    gtin: self.g,
                    qty: 1,
                    unit_price_minor: None,
                    epc: Some(Epc::from_hex(&tag).unwrap()),
                    price_from_label: false,
                }],
                staff: Default::default(),
                checked: None,
            })
            .unwrap();
    }

    /// One cycle of tag `n`, synced; the sync's latency.
    async fn synced_cycle(&mut self, n: u32) -> Duration {
        self.cycle(n);
        let req = self.store.request(1000);
        let t = Instant::now();
        let resp = self.client.sync(&req).await.unwrap();
        let took = t.elapsed();
        self.store.apply(&req, &resp);
        took
    }

    async fn run(&mut self, ctx: &Ctx) -> Value {
        let (mut old, mut fresh) = (Vec::new(), Vec::new());
        let end = Instant::now() + ctx.knobs.window;
        while Instant::now() < end {
            old.push(self.synced_cycle(Self::OLD).await);
            self.fresh += 1;
            fresh.push(self.synced_cycle(self.fresh).await);
        }
        let (old, fresh) = (percentiles(&mut old), percentiles(&mut fresh));
        json!({
            "answer": format!(
                "200 (honest content): its syncs touching the tag with {} past cycles p50 {} / p99 {} ms, a fresh tag's p50 {} / p99 {} ms",
                ctx.knobs.history, old["p50_ms"], old["p99_ms"], fresh["p50_ms"], fresh["p99_ms"]
            ),
            "details": {"setup": self.setup, "old_tag": old, "fresh_tag": fresh},
        })
    }
}
