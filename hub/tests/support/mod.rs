//! Test support shared by the hub's integration tests and its ingest
//! benchmark: a hub started in-process on 127.0.0.1:0 with a fresh data
//! directory, a minimal sync client (reqwest + rustls with the store's
//! identity bundle, exactly what an agent does), an admin client, and a
//! model store that runs the real command core and exchange
//! (`tally_sync::memstore::MemStore`) so the requests it sends are honest.
//! `child` runs the real `tally-hub` binary instead, in its own process;
//! `storage_backends` opens each storage engine for the storage
//! conformance suite.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

pub mod child;
pub mod link;
pub mod pg;
pub mod storage_backends;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::Value;
use tally_hub::pki::{self, DataDir};
use tally_hub::storage::{HubStorage, SyncResult};
use tally_hub::Config;
use tally_store::SystemClock;
use tally_sync::clock::Clock;
use tally_sync::codec::{self, Encoding};
use tally_sync::command::{Approval, Command, LineIn, Outcome, ReceiptLine, Stamp};
use tally_sync::exchange::Identity;
use tally_sync::fulfilment::Status;
use tally_sync::memstore::MemStore;
use tally_sync::message::AllocationsPage;
use tally_sync::rights::{RightsGrant, RightsReleased, RightsRequest};
use tally_sync::{
    Epc, EventId, Gtin, LocationId, Refusal, ReplicaId, SyncRequest, SyncResponse, Tender,
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

/// The database a hub over `tmp` keeps its data in when the suite runs
/// on PostgreSQL (`TALLY_HUB_BACKEND=postgres`): one per temp dir, made
/// on first use and named in `tmp/database.url`, so a hub started again
/// over the same directory finds its data. `None`: the embedded engine.
pub fn database_for(tmp: &Path) -> Option<tally_hub::storage::postgres::DatabaseUrl> {
    match std::env::var("TALLY_HUB_BACKEND").as_deref() {
        Ok("postgres") => {}
        Ok("redb") | Err(_) => return None,
        Ok(other) => panic!("TALLY_HUB_BACKEND={other:?}: say redb or postgres"),
    }
    let file = tmp.join("database.url");
    let url = match std::fs::read_to_string(&file) {
        Ok(url) => url,
        Err(_) => {
            let url = pg::database("hub");
            std::fs::write(&file, &url).unwrap();
            url
        }
    };
    Some(url.parse().unwrap())
}

/// The settings `tally_hub::run` gives its storage by default.
pub fn storage_settings() -> tally_hub::storage::SyncSettings {
    let defaults = Config::new("/nonexistent");
    tally_hub::storage::SyncSettings {
        policy: defaults.policy,
        limits: tally_sync::exchange::HubLimits {
            max_delta_entries: defaults.max_delta_entries,
        },
        catalog_page: defaults.catalog_page,
    }
}

/// Runs `f` on the storage a hub over `tmp` (data directory `data`)
/// keeps its data in, opened directly (the hub stopped), on the suite's
/// engine. On a thread of its own: storage calls block, and callers may
/// be async tests.
pub fn with_storage<T: Send>(
    tmp: &Path,
    data: &DataDir,
    f: impl FnOnce(&dyn HubStorage) -> T + Send,
) -> T {
    let database = database_for(tmp);
    let settings = storage_settings();
    std::thread::scope(|s| {
        s.spawn(|| {
            let storage: Box<dyn HubStorage> = match database {
                Some(url) => {
                    Box::new(tally_hub::storage::postgres::PgHub::connect(&url, settings).unwrap())
                }
                None => {
                    Box::new(tally_hub::storage::RedbHub::open(&data.database(), settings).unwrap())
                }
            };
            f(storage.as_ref())
        })
        .join()
        .unwrap()
    })
}

impl TestHub {
    /// A fresh data directory (`init`ed) and a hub serving it.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_with_clock(Arc::new(SystemClock), tweak).await
    }

    /// A fresh data directory and a hub serving it whose wall clock is
    /// `clock`.
    pub async fn start_with_clock(
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestHub {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::new(tmp.path().join("hub"));
        pki::init(&data, &[], &tally_store::SystemClock).unwrap();
        Self::serve_with_clock(tmp, data, clock, tweak).await
    }

    /// Serves an existing data directory.
    pub async fn serve(
        tmp: tempfile::TempDir,
        data: DataDir,
        tweak: impl FnOnce(&mut Config),
    ) -> TestHub {
        Self::serve_with_clock(tmp, data, Arc::new(SystemClock), tweak).await
    }

    /// Serves an existing data directory with `clock` as the wall clock.
    pub async fn serve_with_clock(
        tmp: tempfile::TempDir,
        data: DataDir,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestHub {
        crypto();
        let mut config = Config::new(data.root());
        config.database = database_for(tmp.path());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tally_hub::run(config, clock, listener, |_| {}, async {
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
        enroll_in(self.tmp.path(), &self.data, store)
    }

    /// A sync client presenting the bundle's certificate.
    pub fn store_client(&self, bundle: &Path) -> HubClient {
        HubClient::new(&self.base(), &std::fs::read(bundle).unwrap(), true)
    }

    /// A client with no client certificate.
    pub fn anonymous_client(&self) -> HubClient {
        anonymous_client(&self.base(), &self.data)
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

/// Enrolls `store` in the hub's data directory `data`; returns its bundle,
/// written under `dir`.
pub fn enroll_in(dir: &Path, data: &DataDir, store: &str) -> PathBuf {
    let out = dir.join(format!("{store}-{}.pem", rand::random::<u32>()));
    pki::enroll(data, store, &out, &tally_store::SystemClock).unwrap();
    out
}

/// A client of the hub at `base` with no client certificate, trusting
/// `data`'s CA.
pub fn anonymous_client(base: &str, data: &DataDir) -> HubClient {
    let ca = std::fs::read(data.ca_cert()).unwrap();
    HubClient::new(base, &ca, false)
}

/// A sync (or anonymous) HTTPS client.
pub struct HubClient {
    pub http: reqwest::Client,
    pub base: String,
}

impl HubClient {
    /// From a PEM bundle: with `identity`, the bundle's certificate and key
    /// are presented and its CAs (every certificate after the first, as
    /// the agent does) are the only roots; without, every certificate of
    /// `pem` (a CA file) is a root.
    pub fn new(base: &str, pem: &[u8], identity: bool) -> HubClient {
        crypto();
        let mut certs = reqwest::Certificate::from_pem_bundle(pem).unwrap();
        if identity {
            certs.remove(0);
        }
        assert!(!certs.is_empty(), "no CA certificate");
        let mut b = reqwest::Client::builder()
            .tls_certs_only(certs)
            .pool_max_idle_per_host(4);
        if identity {
            b = b.identity(reqwest::Identity::from_pem(pem).unwrap());
        }
        HubClient {
            http: b.build().unwrap(),
            base: base.to_string(),
        }
    }

    /// POSTs `body` as JSON to `path`: the status and the JSON answer
    /// (`Null` if none).
    pub async fn post_json(&self, path: &str, body: &impl serde::Serialize) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
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

    /// A request for the hub's rights (`POST /v1/rights`, JSON). `Err`
    /// carries the status and JSON error body.
    pub async fn rights(&self, req: &RightsRequest) -> Result<RightsGrant, (StatusCode, Value)> {
        let r = self
            .http
            .post(format!("{}/v1/rights", self.base))
            .json(req)
            .send()
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, Value::String(e.to_string())))?;
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        if status != StatusCode::OK {
            return Err((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    /// A report of released rights (`POST /v1/rights/released`, JSON):
    /// the status and JSON answer.
    pub async fn released(&self, report: &RightsReleased) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/v1/rights/released", self.base))
            .json(report)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The store's allocations and transfers that changed at the hub
    /// after change version `after` (`GET /v1/allocations`, as the agent
    /// asks after each sync round), one page.
    pub async fn allocations(&self, after: u64) -> AllocationsPage {
        let r = self
            .http
            .get(format!("{}/v1/allocations?after={after}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
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

    /// Records online demand for `qty` units of `g` at `store` with an
    /// online order the hub must refuse (it holds no rights there yet).
    /// Under the default policy (24 h horizon, 7-day half-life) the hub's
    /// reserve target there becomes `ceil(qty × ln 2 / 7)`: 1 unit for 1
    /// to 10 ordered, 2 for 11 to 20.
    pub async fn online_demand(&self, store: &str, g: Gtin, qty: u64) {
        let order = serde_json::json!({"store": store,
                                       "lines": [{"gtin": g.to_string(), "qty": qty}]});
        let (status, body) = self.post("/v1/orders", &order).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "insufficient_stock", "{body}");
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
        let exceptions = self.exceptions_but_held().await;
        serde_json::json!({ "stock": stock, "stores": stores, "exceptions": exceptions })
    }

    /// Every exception but the `event_held` ones, without their ids. A
    /// refused sync leaves one trace by design: the event it was refused
    /// for, held for HQ, checked by the tests that refuse one; every other
    /// exception must stay as it was.
    pub async fn exceptions_but_held(&self) -> Value {
        let (_, exceptions) = self.get("/v1/exceptions").await;
        let kept: Vec<Value> = exceptions["exceptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["kind"] != "event_held")
            .map(|x| {
                let mut x = x.clone();
                if let Some(o) = x.as_object_mut() {
                    o.remove("id");
                }
                x
            })
            .collect();
        Value::Array(kept)
    }
}

/// A benchmark's knob: the environment variable `name` as a number, or
/// `default` when it is unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A GTIN from a small number.
pub fn gtin(n: u64) -> Gtin {
    Gtin::from_body(1_000_000 + n).unwrap()
}

/// A store that runs the real command core and exchange in memory
/// ([`MemStore`]), as the agent does, with its own clock and seed.
#[derive(Clone)]
pub struct SimStore {
    pub mem: MemStore,
    rng: ChaCha8Rng,
    clock_ms: u64,
    /// The hub's change version of this store's allocations and
    /// transfers it has merged up to.
    allocations_cursor: u64,
}

impl SimStore {
    pub fn new(id: &str, seed: u64) -> SimStore {
        SimStore {
            mem: MemStore::new(Identity {
                replica: ReplicaId::new(id).unwrap(),
                location: LocationId::new(id).unwrap(),
            }),
            rng: ChaCha8Rng::seed_from_u64(seed),
            clock_ms: 1_750_000_000_000,
            allocations_cursor: 0,
        }
    }

    /// Moves this store's clock (Unix ms) for the events it records next.
    pub fn set_clock(&mut self, ms: u64) {
        self.clock_ms = ms;
    }

    /// Runs a command (a new id each time) through the command core.
    pub fn run(&mut self, cmd: Command) -> Result<EventId, Refusal> {
        self.clock_ms += 1;
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        let stamp = Stamp {
            now_ms: self.clock_ms,
            random,
        };
        match self.mem.execute(&cmd, stamp) {
            Outcome::Recorded { event, .. } => Ok(event.id),
            Outcome::Refused { refusal, .. } => Err(refusal),
        }
    }

    /// A line at the catalog's price, or at 100 for an item the store's
    /// catalog does not list.
    fn line(&self, g: Gtin, qty: u64, epc: Option<Epc>) -> LineIn {
        let listed = self.mem.catalog.contains_key(&g);
        LineIn {
            gtin: g,
            qty,
            unit_price_minor: (!listed).then_some(100),
            epc,
            price_from_label: false,
        }
    }

    pub fn receive(&mut self, g: Gtin, qty: u64) -> EventId {
        self.run(Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(g, qty)],
            staff: Default::default(),
        })
        .unwrap()
    }

    /// A sale of `line`, paid in cash.
    fn sale(&self, line: LineIn, approval: Option<Approval>) -> Command {
        let price = line
            .unit_price_minor
            .or_else(|| self.mem.catalog.get(&line.gtin).map(|c| c.price_minor))
            .unwrap_or(100);
        let paid = price * i64::try_from(line.qty).unwrap();
        Command::Sale {
            id: None,
            lines: vec![line],
            tenders: vec![Tender {
                method: "cash".into(),
                amount_minor: paid,
                reference: None,
            }],
            staff: tally_sync::Staff {
                approval,
                ..Default::default()
            },
        }
    }

    /// A sale at the catalog's price (100 per unit for an item the store's
    /// catalog does not list); refused for lack of rights, it adds demand
    /// and is counted as a lost sale (as the agent counts one refused
    /// with a reason).
    pub fn sell(&mut self, g: Gtin, qty: u64) -> Result<EventId, Refusal> {
        let answer = self.run(self.sale(self.line(g, qty, None), None));
        if let Err(refusal) = &answer {
            if let Some(reason) = refusal.shortage(true) {
                self.mem.lost.get_mut(reason).add_sale(qty);
            }
        }
        answer
    }

    pub fn sell_epc(&mut self, g: Gtin, epc: &str) -> Result<EventId, Refusal> {
        let epc = Epc::from_hex(epc).unwrap();
        self.run(self.sale(self.line(g, 1, Some(epc)), None))
    }

    /// A manager-approved sale beyond rights.
    pub fn sell_override(&mut self, g: Gtin, qty: u64) -> EventId {
        let approval = Approval {
            approver: "manager".into(),
            reason: "on the shelf".into(),
        };
        self.run(self.sale(self.line(g, qty, None), Some(approval)))
            .unwrap()
    }

    /// A manager-approved refund of `qty` × `g` without a receipt (at the
    /// catalog's price, or 100),
    /// keyed by cashier `c-1` at `till-1`.
    pub fn refund_without_receipt(&mut self, g: Gtin, qty: u64) -> EventId {
        self.run(Command::Return {
            id: None,
            lines: vec![self.line(g, qty, None)],
            original_sale: None,
            staff: Self::approved_at_till("no receipt"),
            checked: None,
        })
        .unwrap()
    }

    /// A manager-approved sale of one `g` keyed at `price` while the
    /// catalog says `catalog`, keyed by cashier `c-1` at `till-1`.
    pub fn sell_keyed(&mut self, g: Gtin, catalog: i64, price: i64) -> EventId {
        self.mem.set_price(g, catalog);
        self.run(Command::Sale {
            id: None,
            lines: vec![LineIn {
                gtin: g,
                qty: 1,
                unit_price_minor: Some(price),
                price_from_label: false,
                epc: None,
            }],
            tenders: Vec::new(),
            staff: Self::approved_at_till("damaged box"),
        })
        .unwrap()
    }

    fn approved_at_till(reason: &str) -> tally_sync::Staff {
        tally_sync::Staff {
            cashier: Some("c-1".into()),
            till: Some("till-1".into()),
            approval: Some(Approval {
                approver: "manager".into(),
                reason: reason.into(),
            }),
        }
    }

    /// Fetches every page of this store's allocations and transfers that
    /// changed at the hub and merges them, as the agent's sync client does
    /// after a sync round (`command::merge_allocations`,
    /// `command::merge_transfers`).
    pub async fn fetch_allocations(&mut self, client: &HubClient) {
        loop {
            let page = client.allocations(self.allocations_cursor).await;
            tally_sync::command::merge_allocations(&mut self.mem, &page.allocations)
                .unwrap_or_else(|never| match never {});
            tally_sync::command::merge_transfers(&mut self.mem, &page.transfers)
                .unwrap_or_else(|never| match never {});
            self.allocations_cursor = page.cursor;
            if !page.more {
                return;
            }
        }
    }

    /// Like [`SimStore::fetch_allocations`], from the hub's storage itself
    /// (`HubStorage::allocations`, pages of `page` changes) rather than
    /// over HTTP. Returns the pages read.
    pub fn fetch_allocations_in_storage(
        &mut self,
        hub: &dyn HubStorage,
        page: usize,
    ) -> Vec<AllocationsPage> {
        let mut pages = Vec::new();
        loop {
            let p = hub
                .allocations(&self.mem.who.location, self.allocations_cursor, page)
                .unwrap();
            tally_sync::command::merge_allocations(&mut self.mem, &p.allocations)
                .unwrap_or_else(|never| match never {});
            tally_sync::command::merge_transfers(&mut self.mem, &p.transfers)
                .unwrap_or_else(|never| match never {});
            self.allocations_cursor = p.cursor;
            let more = p.more;
            pages.push(p);
            if !more {
                return pages;
            }
        }
    }

    /// Moves this store's allocation of `order_id` to `to` (picked,
    /// collected, shipped), as the agent's `POST /v1/orders/{id}/…`.
    pub fn fulfil(&mut self, order_id: &str, to: Status) -> Result<EventId, Refusal> {
        self.run(Command::Fulfil {
            id: None,
            order_id: order_id.into(),
            to,
            staff: Default::default(),
        })
    }

    /// Sends `qty` × `g` to store `to` as transfer `transfer_id`, within
    /// this store's rights, as the agent's `POST /v1/transfers`.
    pub fn transfer_out(
        &mut self,
        transfer_id: &str,
        to: &str,
        g: Gtin,
        qty: u64,
    ) -> Result<EventId, Refusal> {
        self.run(Command::TransferOut {
            id: None,
            transfer_id: transfer_id.into(),
            to: LocationId::new(to).unwrap(),
            lines: vec![ReceiptLine::units(g, qty)],
            staff: Default::default(),
        })
    }

    /// Receives transfer `transfer_id` (known from the hub's pages), as
    /// the agent's `POST /v1/transfers/{id}/received`.
    pub fn transfer_in(&mut self, transfer_id: &str) -> Result<EventId, Refusal> {
        self.run(Command::TransferIn {
            id: None,
            transfer_id: transfer_id.into(),
            staff: Default::default(),
        })
    }

    /// A request for `units` of the hub's rights to `g` under
    /// `request_id`, carrying this store's own entries of the counter (as
    /// the agent sends it).
    pub fn rights_request(&self, request_id: EventId, g: Gtin, units: u64) -> RightsRequest {
        RightsRequest {
            request_id,
            gtin: g,
            units,
            own: self.mem.counter(g).owned_by(&self.mem.who.replica),
        }
    }

    pub fn on_hand(&self, g: Gtin) -> u64 {
        self.mem.on_hand(g)
    }

    pub fn rights(&self, g: Gtin) -> u64 {
        self.mem.rights(g)
    }

    /// The next request: own entries changed since the hub's ack, and up
    /// to `max_events` unacknowledged events.
    pub fn request(&self, max_events: usize) -> SyncRequest {
        self.mem.sync_request(max_events)
    }

    /// Applies the response to the request it answers.
    pub fn apply(&mut self, req: &SyncRequest, resp: &SyncResponse) {
        let applied = self.mem.apply_response(Some(req), resp);
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    }

    /// Whether the store has anything the hub has not acknowledged.
    pub fn has_pending(&self) -> bool {
        self.mem.has_pending()
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
            result = Some(txn.sync(&self.mem.who, &req, &Default::default(), hub_now_ms)?);
            Ok(())
        })
        .unwrap();
        match result {
            Some(SyncResult::Synced(resp, _)) => {
                self.apply(&req, &resp);
                (req, resp)
            }
            other => panic!("sync of {} refused: {other:?}", self.mem.who.replica),
        }
    }

    /// Syncs until the hub has nothing more and the store nothing pending
    /// (at most `max_rounds` exchanges). Returns the number of exchanges.
    pub async fn sync_all(&mut self, client: &HubClient, max_rounds: usize) -> usize {
        for round in 1..=max_rounds {
            let req = self.request(1000);
            let resp = client.sync(&req).await.unwrap_or_else(|e| {
                panic!("sync of {} refused: {e:?}", self.mem.who.replica);
            });
            self.apply(&req, &resp);
            if !resp.more && !self.has_pending() {
                return round;
            }
        }
        panic!(
            "{} did not settle in {max_rounds} rounds",
            self.mem.who.replica
        );
    }
}

/// A signing request for a fresh key whose subject claims `claimed` (the
/// hub names the store from the request, never from the subject).
pub fn csr(claimed: &str) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, claimed);
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

/// Redeems one-time `code` for `store` over `client` (server-
/// authenticated TLS, `POST /v1/enroll`) with a fresh key: the identity
/// bundle, or the refusal.
pub async fn redeem_code(
    client: &HubClient,
    store: &str,
    code: &str,
) -> Result<String, (StatusCode, Value)> {
    use tally_service::identity::{bundle_pem, EnrollRequest, IssuedIdentity};
    let (key, csr) = csr("someone-else");
    let req = EnrollRequest {
        store: store.into(),
        code: code.into(),
        csr,
    };
    let r = client
        .http
        .post(format!("{}/v1/enroll", client.base))
        .json(&req)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        return Err((status, body));
    }
    let issued: IssuedIdentity = serde_json::from_value(body).unwrap();
    assert_eq!(issued.store, store);
    Ok(bundle_pem(
        &issued.certificate,
        &key.serialize_pem(),
        &issued.ca,
    ))
}
