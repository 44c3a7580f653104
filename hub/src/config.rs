//! The hub's typed configuration, built by `main` from flags and passed to
//! [`crate::run`].

use std::path::PathBuf;
use std::time::Duration;

use tally_service::serve::ServeLimits;
use tally_sync::ReservePolicy;

/// Everything `tally-hub run` needs besides its listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory (`init` made it): PKI files and, without
    /// [`Config::database`], `hub.redb`.
    pub data_dir: PathBuf,
    /// The PostgreSQL database to keep the hub's data in (`None`: the
    /// embedded `hub.redb` in the data directory).
    pub database: Option<crate::storage::postgres::DatabaseUrl>,
    /// Most read connections to the database open at once (each hub
    /// process also keeps one writer and two listening connections).
    pub database_reads: usize,
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
    /// Most connections open at once from one peer address.
    pub max_connections_per_peer: usize,
    /// The clocks every connection is held to: first request, idle,
    /// stalled, header read (see `tally_service::serve`).
    pub limits: ServeLimits,
    /// Longest time a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Most events in one sync request (the agent sends at most 1,000).
    pub max_sync_events: usize,
    /// Most bytes of request bodies read, decoded or queued for the writer
    /// at once; beyond, requests are answered 503 with `Retry-After`.
    pub max_queued_bytes: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for open requests to finish.
    pub shutdown_grace: Duration,
    /// How often a store's live link carries a heartbeat.
    pub heartbeat: Duration,
    /// How long an online order short of the hub's reserve waits for a
    /// live store to release rights.
    pub rights_wait: Duration,
    /// How orders that name no store are routed.
    pub routing: crate::storage::routed::RoutingSettings,
    /// How long a transfer may stay in transit before the hub raises a
    /// `transfer_overdue` exception.
    pub transfer_overdue: Duration,
    /// Most enrollments (`POST /v1/enroll`, anonymous) redeemed at once;
    /// beyond, `503 busy` at once, the code not spent. Redemption runs on
    /// the blocking pool (and, over a database, may wait on it): without
    /// a bound a flood of made-up codes could take the pool from every
    /// other request. 0 refuses every enrollment.
    pub max_enrollments: usize,
}

impl Config {
    /// A fingerprint of the settings every hub process over one database
    /// must share, for they decide what a store or an order gets: the
    /// reserve policy, routing, the delta and event limits of a sync, the
    /// online window, heartbeat, rights wait and transfer deadline (not
    /// the process's own resources: connections, batch size, bodies).
    pub fn shared_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let shared = format!(
            "{:?}",
            (
                &self.policy,
                self.max_delta_entries,
                self.catalog_page,
                self.max_sync_events,
                self.online_window,
                self.heartbeat,
                self.rights_wait,
                &self.routing,
                self.transfer_overdue,
            )
        );
        let digest = Sha256::digest(shared.as_bytes());
        crate::pki::hex(&digest[..8])
    }

    /// Defaults for a data directory: a reserve covering 24 h of online
    /// demand (7-day half-life), 16 MiB sync bodies, 1 MiB admin bodies,
    /// 120 s online window, a heartbeat every 15 s on live links, orders
    /// wait up to 2 s for a store's rights, transfers are overdue after
    /// 48 h in transit; 64 connections per address,
    /// 10 s to a connection's first request, 60 s idle, 30 s to send a
    /// body, 1,000 events per sync, 256 MiB of bodies in flight, 4
    /// enrollments redeemed at once.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: None,
            database_reads: crate::storage::postgres::DEFAULT_READ_CONNECTIONS,
            policy: ReservePolicy::default(),
            max_sync_body: 16 * 1024 * 1024,
            max_admin_body: 1024 * 1024,
            max_delta_entries: 50_000,
            catalog_page: 10_000,
            max_batch: 256,
            online_window: Duration::from_secs(120),
            max_connections: 10_000,
            max_connections_per_peer: 64,
            limits: ServeLimits::default(),
            body_read_timeout: Duration::from_secs(30),
            max_sync_events: 1_000,
            max_queued_bytes: 256 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            heartbeat: Duration::from_secs(15),
            routing: Default::default(),
            rights_wait: Duration::from_secs(2),
            transfer_overdue: Duration::from_secs(48 * 3600),
            max_enrollments: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The fingerprint follows the settings processes must share, not a
    /// process's own resources.
    #[test]
    fn the_shared_fingerprint_follows_the_shared_settings_only() {
        let base = Config::new(Path::new("/tmp/hub"));
        let same = base.shared_fingerprint();
        assert_eq!(same.len(), 16);
        let mut own = Config::new(Path::new("/elsewhere"));
        own.max_connections += 1;
        own.max_batch += 1;
        assert_eq!(own.shared_fingerprint(), same);
        let mut policy = Config::new(Path::new("/tmp/hub"));
        policy.policy.horizon_ms += 1;
        assert_ne!(policy.shared_fingerprint(), same);
        let mut heartbeat = Config::new(Path::new("/tmp/hub"));
        heartbeat.heartbeat += Duration::from_secs(1);
        assert_ne!(heartbeat.shared_fingerprint(), same);
    }
}
