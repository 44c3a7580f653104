//! `tally-hub`: the HQ server. Stores sync with it over mutual TLS; HQ
//! uses its admin API to sell store stock online and see the chain.
//!
//! Map:
//! - [`config`]: [`Config`], the hub's typed configuration (`main`
//!   builds it from flags).
//! - [`pki`]: the hub's CA: `init`, `enroll`, one-time enrollment codes
//!   and signing stores' requests, `revoke`, and reading a
//!   store's identity out of its certificate.
//! - [`tls`]: the rustls server configuration and each connection's
//!   [`tls::Peer`].
//! - [`api`]: the HTTP endpoints (axum): the shared state, router and
//!   helpers, with one private module per seam: `api::sync`
//!   (`POST /v1/sync`: identify, decode, submit, answer), `api::admin`
//!   (the admin token check and the admin reads), `api::orders`
//!   (`POST /v1/orders`), `api::catalog` (`POST /v1/catalog`) and
//!   `api::dashboard` (the embedded dashboard files).
//! - [`link`]: [`link::Links`], the stores live right now and the notices
//!   pushed to them.
//! - [`writer`]: the single writer thread (group commit) and its typed
//!   handle, [`writer::Writer`]: one method per kind of write.
//! - [`storage`]: the [`storage::HubStorage`] trait (reads, and
//!   [`storage::HubWrite`] for a batch's one write transaction) and
//!   [`storage::redb`], its implementation on `tally-store`.
//! - [`metrics`]: counters for `GET /metrics`.
//!
//! Wall-clock time comes only from the `tally_sync::clock::Clock` given to
//! [`run`] and kept in [`api::AppState`] (`tally_store::SystemClock` in the
//! binary, a `ManualClock` in tests): the handlers hand the writer the
//! time of each sync and order.
//!
//! [`run`] serves until `shutdown` resolves (tokio mini-redis style: the
//! caller owns the listener and the shutdown signal, so tests start the hub
//! on `127.0.0.1:0` and stop it).
//!
//! # Design constraints
//! - Graceful shutdown: stop accepting, tell every connection to finish its
//!   in-flight requests (a `watch`), wait until every connection task has
//!   dropped its completion sender (bounded by [`Config::shutdown_grace`]),
//!   then stop the writer after it has committed what was queued.
//! - Connections are admitted and held to time limits by
//!   `tally_service::serve` ([`Config::max_connections`] in all,
//!   [`Config::max_connections_per_peer`] per address, [`Config::limits`]:
//!   first request, idle, stall): a peer cannot hold slots for nothing.
//!   `accept` errors (e.g. out of file descriptors) are retried with
//!   backoff, never fatal.

pub mod api;
pub mod config;
pub mod config_file;
pub mod link;
pub mod metrics;
pub mod pki;
pub mod storage;
pub mod tls;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tally_service::serve::{self, Admission, Ended, Handshake};
use tally_sync::clock::Clock;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

pub use config::Config;

use crate::api::{ApiSettings, AppState};
use crate::metrics::Metrics;
use crate::pki::{DataDir, PkiError, Revocations};
use crate::storage::postgres::bus::PgBus;
use crate::storage::postgres::enroll_codes::DbCodeBook;
use crate::storage::postgres::revocations::DbRevocations;
use crate::storage::postgres::PgHub;
use crate::storage::redb::SyncSettings;
use crate::storage::{HubStorage, RedbHub, StorageError};
use crate::tls::{Peer, TlsError};
use crate::writer::Writer;

/// Why the hub could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The data directory's PKI files are missing or damaged.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database could not be opened.
    #[error("opening the database: {0}")]
    Storage(#[from] StorageError),
    /// An I/O failure (starting the writer thread, the listener).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The writer thread panicked: no write can succeed any more.
    #[error("the writer thread panicked ({0}); the hub stopped so that it can be restarted")]
    WriterDied(String),
}

/// Serves the hub on `listener` until `shutdown` resolves, then shuts
/// down gracefully. See the module docs. `ready` is called with the
/// listener's address once the PKI files are read, the database is open
/// and the writer is started, just before connections are accepted (so a
/// "listening" line is never printed by a hub that then fails to start).
/// Every wall-clock time the hub records or compares against (syncs,
/// online orders, the online window) is `clock`'s
/// (`tally_store::SystemClock` in the binary).
pub async fn run(
    config: Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    let dir = DataDir::new(&config.data_dir);
    // Keys, codes and the database: the owner's only (0700).
    pki::secure_data_dir(&dir)?;
    let tls = tls::server_config(&dir)?;
    let admin_token: Arc<str> = dir.read_admin_token()?.into();
    let metrics_token: Option<Arc<str>> = dir.read_metrics_token()?.map(Into::into);
    let settings = SyncSettings {
        policy: config.policy,
        limits: tally_sync::exchange::HubLimits {
            max_delta_entries: config.max_delta_entries.max(1),
        },
        catalog_page: config.catalog_page.max(1),
    };
    let path = dir.database();
    let routing = config.routing.clone();
    let database = config.database.clone();
    let reads = config.database_reads;
    let storage: Arc<dyn HubStorage> = tokio::task::spawn_blocking(move || {
        Ok::<Arc<dyn HubStorage>, StorageError>(match database {
            Some(url) => Arc::new(
                PgHub::connect(&url, settings)?
                    .with_routing(routing)
                    .with_read_connections(reads),
            ),
            None => Arc::new(RedbHub::open(&path, settings)?.with_routing(routing)),
        })
    })
    .await
    .map_err(std::io::Error::other)??;
    let metrics = Arc::new(Metrics::default());
    let links = link::Links::new();
    let heartbeat = config.heartbeat.max(std::time::Duration::from_millis(10));
    if let Some(url) = &config.database {
        // Several hub processes over one database share their live links.
        let (hear, joined) = (Arc::downgrade(&links), Arc::downgrade(&links));
        let bus = PgBus::start(
            url.clone(),
            Box::new(move |payload| {
                if let Some(links) = hear.upgrade() {
                    links.on_bus(payload);
                }
            }),
            Box::new(move || {
                if let Some(links) = joined.upgrade() {
                    links.joined();
                }
            }),
        );
        links.with_bus(bus, heartbeat * 3);
        links.with_settings(env!("CARGO_PKG_VERSION"), &config.shared_fingerprint());
        tokio::spawn(announce_links(Arc::downgrade(&links), heartbeat));
    }
    let (writer, writer_thread) = Writer::start(
        storage.clone(),
        metrics.clone(),
        config.max_batch,
        config.max_connections.max(1024),
    )?;
    let budget = config
        .max_queued_bytes
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let state = AppState {
        storage,
        writer,
        revocations: Arc::new(match &config.database {
            Some(url) => Revocations::new(&dir).with_list(DbRevocations::start(url.clone()).await?),
            None => Revocations::new(&dir),
        }),
        enroll_codes: config
            .database
            .as_ref()
            .map(|url| Arc::new(DbCodeBook::new(url.clone())) as Arc<dyn crate::pki::CodeBook>),
        admin_token,
        metrics_token,
        metrics: metrics.clone(),
        settings: Arc::new(ApiSettings {
            max_sync_body: config.max_sync_body,
            max_admin_body: config.max_admin_body,
            online_window_ms: u64::try_from(config.online_window.as_millis()).unwrap_or(u64::MAX),
            heartbeat,
            rights_wait: config.rights_wait,
            body_read_timeout: config.body_read_timeout,
            max_sync_events: config.max_sync_events.max(1),
            max_queued_bytes: budget,
            transfer_overdue_ms: u64::try_from(config.transfer_overdue.as_millis())
                .unwrap_or(u64::MAX),
        }),
        clock,
        links: links.clone(),
        budget: Arc::new(api::budget::Budget::new(budget)),
        slots: Arc::default(),
        enrollments: Arc::new(tokio::sync::Semaphore::new(config.max_enrollments)),
    };
    let sweeper = tokio::spawn(sweep_overdue_transfers(
        writer_for_sweep(&state),
        state.clock.clone(),
        config.transfer_overdue,
    ));
    let router = api::router(state);
    let admission = Admission::new(config.max_connections, config.max_connections_per_peer);
    let addr = listener.local_addr()?;
    ready(addr);
    info!(
        addr = %addr,
        data_dir = %config.data_dir.display(),
        database = %config.database.as_ref().map_or_else(|| "embedded".to_string(), |u| u.to_string()),
        reserve_horizon_ms = config.policy.horizon_ms,
        demand_half_life_ms = config.policy.half_life_ms,
        "Hub serving."
    );
    let tls = TlsHandshake {
        acceptor: TlsAcceptor::from(tls),
        router,
        metrics,
        timeout: config.handshake_timeout,
    };
    // The writer's panic stops the hub as a signal would, and makes `run`
    // fail, so the process exits non-zero and is restarted.
    let (writer_thread, writer_died) = writer_thread.split();
    let mut died = None;
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            message = writer_died.wait() => died = Some(message),
        }
    };
    let draining = serve::serve(listener, admission, config.limits, tls, stop).await;

    // It holds a writer handle: gone before the writer is joined.
    sweeper.abort();
    let _ = sweeper.await;
    info!("Hub shutting down: finishing open requests.");
    // Live links never finish on their own: end them.
    links.close();
    if !draining.wait(config.shutdown_grace).await {
        // Connections still open hold writer handles; the writer keeps
        // serving them until the process exits. Nothing unacknowledged is
        // lost either way: a write is answered only after its commit.
        warn!("Shutdown grace period over; leaving remaining connections.");
        return match died {
            Some(message) => Err(HubError::WriterDied(message)),
            None => Ok(()),
        };
    }
    // Every Writer handle lived in the router state, owned by connection
    // tasks; now they are gone the writer drains its queue and stops.
    // The join says why too when the writer died draining its queue,
    // after the shutdown began, when no one watched any more.
    match tokio::task::spawn_blocking(move || writer_thread.join()).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(message))) => died = died.or(Some(message)),
        _ => error!("The writer thread panicked."),
    }
    if let Some(message) = died {
        return Err(HubError::WriterDied(message));
    }
    info!("Hub stopped.");
    Ok(())
}

/// The hub's connections before HTTP: the TLS handshake (bounded in
/// time), then the router with the peer's identity ([`Peer`]) attached.
struct TlsHandshake {
    acceptor: TlsAcceptor,
    router: axum::Router,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl Handshake for TlsHandshake {
    type Io = TlsStream<TcpStream>;

    async fn handshake(
        &self,
        socket: TcpStream,
        addr: SocketAddr,
    ) -> Option<(Self::Io, axum::Router)> {
        let tls = match tokio::time::timeout(self.timeout, self.acceptor.accept(socket)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.metrics.handshake_failed();
                debug!(peer = %addr, error = %e, "TLS handshake failed.");
                return None;
            }
            Err(_) => {
                self.metrics.handshake_failed();
                debug!(peer = %addr, "TLS handshake timed out.");
                return None;
            }
        };
        self.metrics.connection(true);
        let peer = Peer::from_connection(addr, tls.get_ref().1);
        Some((tls, self.router.clone().layer(axum::Extension(peer))))
    }

    fn refused(&self, peer: SocketAddr) {
        self.metrics.connection_refused();
        debug!(%peer, "Connection refused: too many from this address.");
    }

    fn ended(&self, peer: SocketAddr, how: &Ended) {
        match how {
            Ended::Error(e) => debug!(%peer, error = %e, "Connection ended with an error."),
            Ended::Idle | Ended::Stalled => {
                debug!(%peer, why = how.as_str(), "Connection closed by the hub.");
            }
            Ended::Closed | Ended::Stopped => {}
        }
        self.metrics.connection_ended(how.as_str());
    }
}

fn writer_for_sweep(state: &AppState) -> Writer {
    state.writer.clone()
}

/// Raises `transfer_overdue` for transfers in transit longer than
/// `overdue`, checking every minute (more often when `overdue` is short),
/// until aborted at shutdown.
async fn sweep_overdue_transfers(writer: Writer, clock: Arc<dyn Clock>, overdue: Duration) {
    let every = (overdue / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let overdue_ms = u64::try_from(overdue.as_millis()).unwrap_or(u64::MAX);
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match writer
            .flag_overdue_transfers(clock.now_ms(), overdue_ms)
            .await
        {
            Ok(0) => {}
            Ok(n) => warn!(transfers = n, "Transfers overdue: exceptions raised."),
            Err(e) => warn!(error = %e, "Overdue transfers not checked."),
        }
    }
}

/// Hub processes over one database talk on the PostgreSQL bus.
impl link::Bus for PgBus {
    fn publish(&self, payload: String) {
        PgBus::publish(self, payload);
    }

    fn dropped(&self) -> u64 {
        PgBus::dropped(self)
    }

    fn is_connected(&self) -> bool {
        PgBus::is_connected(self)
    }
}

/// Announces this process's live links to the others every `every`
/// (their announcements expire after three), until the links are gone.
async fn announce_links(links: std::sync::Weak<link::Links>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match links.upgrade() {
            Some(links) => links.announce_all(),
            None => return,
        }
    }
}
