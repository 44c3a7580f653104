//! `tally-hub`: the HQ server. Stores sync with it over mutual TLS; HQ
//! uses its admin API to sell store stock online and see the chain.
//!
//! Map:
//! - [`config`]: [`Config`], the hub's typed configuration (`main`
//!   builds it from flags).
//! - [`pki`]: the hub's CA: `init`, `enroll`, `revoke`, and reading a
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
//! - Connections are bounded by a semaphore; `accept` errors (e.g. out of
//!   file descriptors) are retried with backoff, never fatal.

pub mod api;
pub mod config;
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

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tally_sync::clock::Clock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

pub use config::Config;

use crate::api::{ApiSettings, AppState};
use crate::metrics::Metrics;
use crate::pki::{DataDir, PkiError, Revocations};
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
    let tls = tls::server_config(&dir)?;
    let admin_token: Arc<str> = dir.read_admin_token()?.into();
    let settings = SyncSettings {
        policy: config.policy,
        limits: tally_sync::exchange::HubLimits {
            max_delta_entries: config.max_delta_entries.max(1),
        },
        catalog_page: config.catalog_page.max(1),
    };
    let path = dir.database();
    let storage: Arc<dyn HubStorage> = Arc::new(
        tokio::task::spawn_blocking(move || RedbHub::open(&path, settings))
            .await
            .map_err(std::io::Error::other)??,
    );
    let metrics = Arc::new(Metrics::default());
    let links = link::Links::new();
    let (writer, writer_thread) = Writer::start(
        storage.clone(),
        metrics.clone(),
        config.max_batch,
        config.max_connections.max(1024),
    )?;
    let state = AppState {
        storage,
        writer,
        revocations: Arc::new(Revocations::new(&dir)),
        admin_token,
        metrics: metrics.clone(),
        settings: Arc::new(ApiSettings {
            max_sync_body: config.max_sync_body,
            max_admin_body: config.max_admin_body,
            online_window_ms: u64::try_from(config.online_window.as_millis()).unwrap_or(u64::MAX),
            heartbeat: config.heartbeat.max(std::time::Duration::from_millis(10)),
            rights_wait: config.rights_wait,
        }),
        clock,
        links: links.clone(),
    };
    let router = api::router(state);
    let acceptor = TlsAcceptor::from(tls);
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let addr = listener.local_addr()?;
    ready(addr);
    info!(
        addr = %addr,
        data_dir = %config.data_dir.display(),
        reserve_horizon_ms = config.policy.horizon_ms,
        demand_half_life_ms = config.policy.half_life_ms,
        "Hub serving."
    );

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (socket, addr) = tokio::select! {
            s = accept(&listener) => s,
            () = &mut shutdown => break,
        };
        let conn = Connection {
            acceptor: acceptor.clone(),
            router: router.clone(),
            metrics: metrics.clone(),
            stop: stop_rx.clone(),
            handshake_timeout: config.handshake_timeout,
            _done: done_tx.clone(),
        };
        tokio::spawn(async move {
            conn.serve(socket, addr).await;
            drop(permit);
        });
    }

    info!("Hub shutting down: finishing open requests.");
    drop(listener);
    let _ = stop_tx.send(true);
    // Live links never finish on their own: end them.
    links.close();
    drop(done_tx);
    drop(router);
    drop(acceptor);
    if tokio::time::timeout(config.shutdown_grace, done_rx.recv())
        .await
        .is_err()
    {
        // Connections still open hold writer handles; the writer keeps
        // serving them until the process exits. Nothing unacknowledged is
        // lost either way: a write is answered only after its commit.
        warn!("Shutdown grace period over; leaving remaining connections.");
        return Ok(());
    }
    // Every Writer handle lived in the router state, owned by connection
    // tasks; now they are gone the writer drains its queue and stops.
    match tokio::task::spawn_blocking(move || writer_thread.join()).await {
        Ok(Ok(())) => {}
        _ => error!("The writer thread panicked."),
    }
    info!("Hub stopped.");
    Ok(())
}

/// Resolves once the hub is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok(s) => return s,
            Err(e) => {
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    router: axum::Router,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
    _done: mpsc::Sender<()>,
}

impl Connection {
    async fn serve(mut self, socket: TcpStream, addr: SocketAddr) {
        let _ = socket.set_nodelay(true);
        let tls = match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(socket))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.metrics.handshake_failed();
                debug!(peer = %addr, error = %e, "TLS handshake failed.");
                return;
            }
            Err(_) => {
                self.metrics.handshake_failed();
                debug!(peer = %addr, "TLS handshake timed out.");
                return;
            }
        };
        self.metrics.connection(true);
        let peer = Peer::from_connection(addr, tls.get_ref().1);
        let app = self.router.layer(axum::Extension(peer));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        // A store's live link is one long HTTP/2 stream: pings find a peer
        // that vanished without closing (power cut, cable pulled).
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(10));
        let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(peer = %addr, error = %e, "Connection ended with an error.");
                }
            }
            _ = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                if let Err(e) = conn.await {
                    debug!(peer = %addr, error = %e, "Connection ended with an error.");
                }
            }
        }
        self.metrics.connection(false);
    }
}
