//! The hub's typed configuration, built by `main` from flags and passed to
//! [`crate::run`].

use std::path::PathBuf;
use std::time::Duration;

use tally_sync::ReservePolicy;

/// Everything `tally-hub run` needs besides its listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory (`init` made it): PKI files and `hub.redb`.
    pub data_dir: PathBuf,
    /// The online-reserve policy: the hub's reserve target per (item,
    /// store) from recorded online demand, sent to stores on sync.
    pub policy: ReservePolicy,
    /// Largest `/v1/sync` body accepted, in bytes.
    pub max_sync_body: usize,
    /// Largest admin API body accepted, in bytes.
    pub max_admin_body: usize,
    /// Most counters in one sync response (then `more` is set).
    pub max_delta_entries: usize,
    /// Most catalog items in one sync response (then `more` is set).
    pub catalog_page: usize,
    /// Most write requests in one transaction (group commit).
    pub max_batch: usize,
    /// A store is "online" if its last accepted sync is this recent.
    pub online_window: Duration,
    /// Most TLS connections served at once.
    pub max_connections: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for open requests to finish.
    pub shutdown_grace: Duration,
    /// How often a store's live link carries a heartbeat.
    pub heartbeat: Duration,
    /// How long an online order short of the hub's reserve waits for a
    /// live store to release rights.
    pub rights_wait: Duration,
}

impl Config {
    /// Defaults for a data directory: a reserve covering 24 h of online
    /// demand (7-day half-life), 16 MiB sync bodies, 1 MiB admin bodies,
    /// 120 s online window, a heartbeat every 15 s on live links, orders
    /// wait up to 2 s for a store's rights.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            policy: ReservePolicy::default(),
            max_sync_body: 16 * 1024 * 1024,
            max_admin_body: 1024 * 1024,
            max_delta_entries: 50_000,
            catalog_page: 10_000,
            max_batch: 256,
            online_window: Duration::from_secs(120),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            heartbeat: Duration::from_secs(15),
            rights_wait: Duration::from_secs(2),
        }
    }
}
