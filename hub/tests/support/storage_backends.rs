//! The storage engines the hub's storage conformance suite
//! (`tests/storage.rs`) runs on, and how a test opens, reopens and writes
//! to one: the suite sees an engine only as `dyn HubStorage`, so every
//! engine the hub can run on must pass the same tests, and adding one is
//! adding it to [`backends`] and [`open`].

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use tally_hub::storage::postgres::{DatabaseUrl, PgHub};
use tally_hub::storage::routed::RoutedOrderRequest;
use tally_hub::storage::{HubStorage, HubWrite, OrderRequest, RedbHub, StorageError, SyncSettings};
use tally_sync::exchange::HubLimits;
use tally_sync::fulfilment::Fulfilment;
use tally_sync::{EventId, Gtin, LocationId, ReservePolicy};

/// The hub's clock in the storage tests: an hour after the model stores'
/// clocks start (their events fall well inside the hub's window).
pub const NOW: u64 = 1_750_000_000_000 + 3_600_000;

/// `store` as a location.
pub fn loc(store: &str) -> LocationId {
    LocationId::new(store).unwrap()
}

/// A store-named order `id` of `lines` at `store` at [`NOW`], its event
/// id made from `n`.
pub fn order(
    id: &str,
    store: &str,
    lines: &[(Gtin, u64)],
    n: u8,
    record_demand: bool,
) -> OrderRequest {
    OrderRequest {
        order_id: id.into(),
        store: loc(store),
        lines: lines.to_vec(),
        event_id: EventId::v7(NOW, [n; 10]),
        now_ms: NOW,
        record_demand,
    }
}

/// A routed order `id` for `qty` of `g` at [`NOW`], naming `store` or
/// none.
pub fn routed(
    id: &str,
    store: Option<&str>,
    fulfilment: Fulfilment,
    g: Gtin,
    qty: u64,
) -> RoutedOrderRequest {
    RoutedOrderRequest {
        order_id: id.into(),
        fulfilment,
        store: store.map(loc),
        lines: vec![(g, qty)],
        seed: seed(id),
        now_ms: NOW,
    }
}

/// Randomness for a routed order's events, from its (short) id: distinct
/// ids, distinct event ids.
pub fn seed(id: &str) -> [u8; 10] {
    let mut seed = [0xa5; 10];
    for (s, b) in seed.iter_mut().zip(id.bytes()) {
        *s = b;
    }
    seed
}

/// A storage engine of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded engine (`RedbHub`), one file in the data directory.
    Redb,
    /// PostgreSQL (`PgHub`), a database of the test cluster per
    /// directory (`super::pg`).
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Redb => "redb",
            Backend::Postgres => "postgres",
        })
    }
}

/// Every storage engine the suite runs on.
pub fn backends() -> Vec<Backend> {
    vec![Backend::Redb, Backend::Postgres]
}

/// Opens `backend`'s storage kept under `dir` (created on first open,
/// found again by a later open of the same `dir`).
pub fn open(backend: &Backend, dir: &Path, settings: SyncSettings) -> Box<dyn HubStorage> {
    match backend {
        Backend::Redb => Box::new(
            RedbHub::open(&dir.join("hub.redb"), settings)
                .unwrap_or_else(|e| panic!("{backend}: open: {e}")),
        ),
        Backend::Postgres => {
            // The directory names its database, so a reopen finds it.
            let file = dir.join("database.url");
            let url = match std::fs::read_to_string(&file) {
                Ok(url) => url,
                Err(_) => {
                    let url = super::pg::database("storage");
                    std::fs::write(&file, &url).unwrap();
                    url
                }
            };
            let url: DatabaseUrl = url.parse().unwrap();
            Box::new(
                PgHub::connect(&url, settings).unwrap_or_else(|e| panic!("{backend}: open: {e}")),
            )
        }
    }
}

/// The default settings, with catalog pages of `catalog_page` items.
pub fn settings(catalog_page: usize) -> SyncSettings {
    SyncSettings {
        policy: ReservePolicy::default(),
        limits: HubLimits::default(),
        catalog_page,
    }
}

/// One test's storage: an engine over a fresh directory of its own,
/// which it can close and open again (a hub restart). Derefs to the
/// storage.
pub struct TestStorage {
    /// The engine.
    pub backend: Backend,
    dir: tempfile::TempDir,
    settings: SyncSettings,
    hub: Option<Box<dyn HubStorage>>,
}

impl TestStorage {
    /// `backend` over a fresh directory, with `settings`.
    pub fn new(backend: Backend, settings: SyncSettings) -> Self {
        eprintln!("storage engine: {backend}");
        let dir = tempfile::tempdir().unwrap();
        let hub = open(&backend, dir.path(), settings);
        Self {
            backend,
            dir,
            settings,
            hub: Some(hub),
        }
    }

    /// Drops the storage (closing it) and opens the same storage again:
    /// only what was committed survives.
    pub fn reopen(&mut self) {
        drop(self.hub.take());
        self.hub = Some(open(&self.backend, self.dir.path(), self.settings));
    }

    /// The storage, as the HTTP layer has it.
    pub fn hub(&self) -> &dyn HubStorage {
        self.hub.as_deref().unwrap()
    }
}

impl Deref for TestStorage {
    type Target = dyn HubStorage;

    fn deref(&self) -> &Self::Target {
        self.hub()
    }
}

/// Runs `f` as one batch of its own and answers what it returned; panics
/// if the batch fails.
pub fn write<T>(
    hub: &dyn HubStorage,
    mut f: impl FnMut(&mut dyn HubWrite) -> Result<T, StorageError>,
) -> T {
    let mut out = None;
    hub.write_batch(&mut |txn| {
        out = Some(f(txn)?);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("batch failed: {e}"));
    out.unwrap()
}
