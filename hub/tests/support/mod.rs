//! Test support shared by the hub's integration tests and its ingest
//! benchmark: a hub started in-process on 127.0.0.1:0 with a fresh data
//! directory, a minimal sync client (reqwest + rustls with the store's
//! identity bundle, exactly what an agent does), an admin client, and a
//! model store that runs the real `tally-sync` logic (`apply_event`,
//! `store_apply`) so the requests it sends are honest.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::Value;
use tally_hub::pki::{self, DataDir};
use tally_hub::storage::{HubStorage, SyncResult};
use tally_hub::Config;
use tally_sync::codec::{self, Encoding};
use tally_sync::exchange::{store_apply, Identity, MemoryReplica, SyncCursors};
use tally_sync::message::CatalogItem;
use tally_sync::{
    apply_event, Epc, Event, EventId, EventKind, Gtin, ItemKey, Line, LocationId, Refusal,
    ReplicaId, SyncRequest, SyncResponse, Tender, PROTOCOL_VERSION,
};

/// Installs ring as rustls' process-wide provider (reqwest is built with
/// `rustls-no-provider`).
pub fn crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A hub running in this process.
pub struct TestHub {
    pub tmp: tempfile::TempDir,
    pub data: DataDir,
    pub addr: SocketAddr,
    pub token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tally_hub::HubError>>>,
}

impl TestHub {
    /// A fresh data directory (`init`ed) and a hub serving it.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestHub {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::new(tmp.path().join("hub"));
        pki::init(&data, &[]).unwrap();
        Self::serve(tmp, data, tweak).await
    }

    /// Serves an existing data directory.
    pub async fn serve(
        tmp: tempfile::TempDir,
        data: DataDir,
        tweak: impl FnOnce(&mut Config),
    ) -> TestHub {
        crypto();
        let mut config = Config::new(data.root());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tally_hub::run(config, listener, |_| {}, async {
            let _ = rx.await;
        }));
        let token = data.read_admin_token().unwrap();
        TestHub {
            tmp,
            data,
            addr,
            token,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Enrolls `store`; returns its bundle.
    pub fn enroll(&self, store: &str) -> PathBuf {
        let out = self
            .tmp
            .path()
            .join(format!("{store}-{}.pem", rand::random::<u32>()));
        pki::enroll(&self.data, store, &out).unwrap();
        out
    }

    /// A sync client presenting the bundle's certificate.
    pub fn store_client(&self, bundle: &Path) -> HubClient {
        HubClient::new(&self.base(), &std::fs::read(bundle).unwrap(), true)
    }

    /// A client with no client certificate.
    pub fn anonymous_client(&self) -> HubClient {
        let ca = std::fs::read(self.data.ca_cert()).unwrap();
        HubClient::new(&self.base(), &ca, false)
    }

    /// An admin client (bearer token).
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.anonymous_client(),
            token: self.token.clone(),
        }
    }

    /// Stops the hub gracefully and waits until `run` returns.
    pub async fn stop(mut self) -> (tempfile::TempDir, DataDir) {
        self.shutdown().await;
        let tmp = std::mem::replace(&mut self.tmp, tempfile::tempdir().unwrap());
        (tmp, self.data.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A sync (or anonymous) HTTPS client.
pub struct HubClient {
    pub http: reqwest::Client,
    pub base: String,
}

impl HubClient {
    /// From a PEM bundle: with `identity`, the bundle's certificate and key
    /// are presented; the CA (the last certificate) is the only root.
    pub fn new(base: &str, pem: &[u8], identity: bool) -> HubClient {
        crypto();
        let certs = reqwest::Certificate::from_pem_bundle(pem).unwrap();
        let ca = certs.last().cloned().unwrap();
        let mut b = reqwest::Client::builder()
            .tls_certs_only([ca])
            .pool_max_idle_per_host(4);
        if identity {
            b = b.identity(reqwest::Identity::from_pem(pem).unwrap());
        }
        HubClient {
            http: b.build().unwrap(),
            base: base.to_string(),
        }
    }

    /// POSTs raw bytes to /v1/sync.
    pub async fn post_raw(
        &self,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<(StatusCode, Vec<u8>)> {
        let r = self
            .http
            .post(format!("{}/v1/sync", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = r.status();
        Ok((status, r.bytes().await?.to_vec()))
    }

    /// One sync exchange in the binary encoding. `Err` carries the status
    /// and JSON error body.
    pub async fn sync(&self, req: &SyncRequest) -> Result<SyncResponse, (StatusCode, Value)> {
        let body = codec::encode(req, Encoding::Binary).unwrap();
        let (status, bytes) = self
            .post_raw(Encoding::Binary.content_type(), body)
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, Value::String(e.to_string())))?;
        if status != StatusCode::OK {
            return Err((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        Ok(codec::decode(&bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES).unwrap())
    }
}

/// The admin API with the bearer token.
pub struct Admin {
    pub client: HubClient,
    pub token: String,
}

impl Admin {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .http
            .get(format!("{}{path}", self.client.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .http
            .post(format!("{}{path}", self.client.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Everything the hub shows about `gtins`, stores and exceptions,
    /// without the fields that move with the clock.
    pub async fn snapshot(&self, gtins: &[Gtin]) -> Value {
        let mut stock = serde_json::Map::new();
        for g in gtins {
            let (s, v) = self.get(&format!("/v1/stock/{g}")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            stock.insert(g.to_string(), v);
        }
        let (_, mut stores) = self.get("/v1/stores").await;
        if let Some(list) = stores["stores"].as_array_mut() {
            for s in list {
                if let Some(o) = s.as_object_mut() {
                    o.remove("seconds_since_last_sync");
                    o.remove("online");
                }
            }
        }
        let (_, exceptions) = self.get("/v1/exceptions").await;
        serde_json::json!({ "stock": stock, "stores": stores, "exceptions": exceptions })
    }
}

/// A GTIN from a small number.
pub fn gtin(n: u64) -> Gtin {
    Gtin::from_body(1_000_000 + n).unwrap()
}

/// A store that runs the real model, as the agent will.
pub struct SimStore {
    pub who: Identity,
    pub state: MemoryReplica,
    pub outbox: BTreeMap<u64, Event>,
    pub next_seq: u64,
    pub cursors: SyncCursors,
    pub demand: BTreeMap<Gtin, u64>,
    pub catalog: BTreeMap<Gtin, CatalogItem>,
    rng: ChaCha8Rng,
    clock_ms: u64,
}

impl SimStore {
    pub fn new(id: &str, seed: u64) -> SimStore {
        SimStore {
            who: Identity {
                replica: ReplicaId::new(id).unwrap(),
                location: LocationId::new(id).unwrap(),
            },
            state: MemoryReplica::default(),
            outbox: BTreeMap::new(),
            next_seq: 1,
            cursors: SyncCursors::default(),
            demand: BTreeMap::new(),
            catalog: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            clock_ms: 1_750_000_000_000,
        }
    }

    /// Moves this store's clock (Unix ms) for the events it records next.
    pub fn set_clock(&mut self, ms: u64) {
        self.clock_ms = ms;
    }

    pub fn event(&mut self, kind: EventKind, lines: Vec<Line>) -> Event {
        self.clock_ms += 1;
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        Event {
            id: EventId::v7(self.clock_ms, random),
            location: self.who.location.clone(),
            replica: self.who.replica.clone(),
            at_ms: self.clock_ms,
            kind,
            lines,
        }
    }

    /// Records an event locally (all-or-nothing) and queues it.
    pub fn record(&mut self, event: Event) -> Result<EventId, Refusal> {
        let counters = event
            .lines
            .iter()
            .map(|l| (l.gtin, self.state.inventory.counter(&self.key(l.gtin))))
            .collect();
        let applied = apply_event(&event, &counters, &self.state.epcs)?;
        for (g, c) in applied.counters {
            let key = self.key(g);
            self.state.inventory.put(&key, c);
        }
        let rec = tally_sync::epcs::EpcRecord {
            event: event.id,
            replica: self.who.replica.clone(),
        };
        for epc in &applied.sold {
            self.state.epcs.record_sale(epc, rec.clone());
        }
        for epc in &applied.returned {
            self.state.epcs.record_return(epc, rec.clone());
        }
        let id = event.id;
        self.state.journal.insert(event.clone());
        self.outbox.insert(self.next_seq, event);
        self.next_seq += 1;
        Ok(id)
    }

    pub fn key(&self, g: Gtin) -> ItemKey {
        ItemKey::new(self.who.location.clone(), g)
    }

    pub fn line(g: Gtin, qty: u64) -> Line {
        Line {
            gtin: g,
            qty,
            unit_price_minor: 100,
            epc: None,
        }
    }

    pub fn receive(&mut self, g: Gtin, qty: u64) -> EventId {
        let e = self.event(EventKind::Receipt, vec![Self::line(g, qty)]);
        self.record(e).unwrap()
    }

    fn sale_kind() -> EventKind {
        EventKind::Sale {
            tenders: vec![Tender {
                method: "cash".into(),
                amount_minor: 100,
                reference: None,
            }],
            override_: None,
        }
    }

    pub fn sell(&mut self, g: Gtin, qty: u64) -> Result<EventId, Refusal> {
        let e = self.event(Self::sale_kind(), vec![Self::line(g, qty)]);
        let r = self.record(e);
        if let Err(Refusal::InsufficientStock { .. }) = &r {
            *self.demand.entry(g).or_default() += qty;
        }
        r
    }

    pub fn sell_epc(&mut self, g: Gtin, epc: &str) -> Result<EventId, Refusal> {
        let mut line = Self::line(g, 1);
        line.epc = Some(Epc::from_hex(epc).unwrap());
        let e = self.event(Self::sale_kind(), vec![line]);
        self.record(e)
    }

    /// A manager-approved sale beyond rights.
    pub fn sell_override(&mut self, g: Gtin, qty: u64) -> EventId {
        let counters = [(g, self.state.inventory.counter(&self.key(g)))]
            .into_iter()
            .collect();
        let lines = vec![Self::line(g, qty)];
        let shortfall = tally_sync::ledger::plan_override(&lines, &counters, &self.who.replica);
        let e = self.event(
            EventKind::Sale {
                tenders: vec![],
                override_: Some(tally_sync::Override {
                    approver: "manager".into(),
                    reason: "on the shelf".into(),
                    shortfall,
                }),
            },
            lines,
        );
        self.record(e).unwrap()
    }

    pub fn on_hand(&self, g: Gtin) -> u64 {
        self.state.inventory.counter(&self.key(g)).value()
    }

    pub fn rights(&self, g: Gtin) -> u64 {
        self.state
            .inventory
            .counter(&self.key(g))
            .rights(&self.who.replica)
    }

    /// The next request: own entries changed since the hub's ack, and up
    /// to `max_events` unacknowledged events.
    pub fn request(&self, max_events: usize) -> SyncRequest {
        let delta = self
            .state
            .inventory
            .delta_since(&self.who.location, self.cursors.acked_delta_version)
            .owned_by(&self.who.replica);
        let pending = self
            .outbox
            .range(self.cursors.acked_events_upto + 1..)
            .take(max_events);
        let events: Vec<Event> = pending.clone().map(|(_, e)| e.clone()).collect();
        let events_upto = pending
            .map(|(s, _)| *s)
            .last()
            .unwrap_or(self.cursors.acked_events_upto);
        SyncRequest {
            version: PROTOCOL_VERSION,
            replica: self.who.replica.clone(),
            location: self.who.location.clone(),
            delta,
            delta_version: self.state.inventory.version(),
            events,
            events_upto,
            hub_cursor: self.cursors.hub_cursor,
            catalog_cursor: self.cursors.catalog_cursor,
            demand: self
                .demand
                .iter()
                .filter(|(_, &u)| u > 0)
                .map(|(&gtin, &units)| tally_sync::message::Demand { gtin, units })
                .collect(),
        }
    }

    /// Applies the response to the request it answers.
    pub fn apply(&mut self, req: &SyncRequest, resp: &SyncResponse) {
        let own: BTreeSet<Gtin> = req.delta.entries.iter().map(|e| e.key.gtin).collect();
        let who = self.who.clone();
        let applied = store_apply(
            &mut self.state,
            &who,
            &mut self.cursors,
            resp,
            own,
            &self.demand,
        )
        .unwrap();
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
        let acked = self.cursors.acked_events_upto;
        self.outbox.retain(|&s, _| s > acked);
        for d in &req.demand {
            if let Some(u) = self.demand.get_mut(&d.gtin) {
                *u = u.saturating_sub(d.units);
            }
        }
        for item in &resp.catalog {
            self.catalog.insert(item.gtin, item.clone());
        }
    }

    /// Whether the store has anything the hub has not acknowledged.
    pub fn has_pending(&self) -> bool {
        !self.outbox.is_empty()
            || !self
                .state
                .inventory
                .delta_since(&self.who.location, self.cursors.acked_delta_version)
                .owned_by(&self.who.replica)
                .is_empty()
    }

    /// One exchange through the hub's storage itself, not HTTP (the same
    /// `hub_handle` in one durable transaction that `/v1/sync` runs), with
    /// the hub's clock at `hub_now_ms`: the request sent and the answer,
    /// applied. Panics if the hub refuses it or storage fails.
    pub fn sync_in_storage(
        &mut self,
        hub: &dyn HubStorage,
        hub_now_ms: u64,
    ) -> (SyncRequest, Box<SyncResponse>) {
        let req = self.request(1000);
        let mut result = None;
        hub.write_batch(&mut |txn| {
            result = Some(txn.sync(&self.who, &req, hub_now_ms)?);
            Ok(())
        })
        .unwrap();
        match result {
            Some(SyncResult::Synced(resp, _)) => {
                self.apply(&req, &resp);
                (req, resp)
            }
            other => panic!("sync of {} refused: {other:?}", self.who.replica),
        }
    }

    /// Syncs until the hub has nothing more and the store nothing pending
    /// (at most `max_rounds` exchanges). Returns the number of exchanges.
    pub async fn sync_all(&mut self, client: &HubClient, max_rounds: usize) -> usize {
        for round in 1..=max_rounds {
            let req = self.request(1000);
            let resp = client.sync(&req).await.unwrap_or_else(|e| {
                panic!("sync of {} refused: {e:?}", self.who.replica);
            });
            self.apply(&req, &resp);
            if !resp.more && !self.has_pending() {
                return round;
            }
        }
        panic!("{} did not settle in {max_rounds} rounds", self.who.replica);
    }
}
