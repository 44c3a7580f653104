//! `tally-agent`: the store daemon. Records every sale, return, receipt and
//! count durably in a local redb database (group commit: one `fdatasync`
//! per batch of concurrent commands), serves the local HTTP API, and keeps
//! an outbox of events for the hub.
//!
//! Map (a request's path through the agent):
//! - [`api`]: HTTP/JSON ↔ `tally_sync::command::Command`; reads from
//!   snapshots.
//! - [`rights`]: rights on demand: a sale short of rights the hub holds
//!   asks the hub for them (bounded wait) and is recorded with the grant.
//! - [`commit`]: the single writer: one typed method per kind of job
//!   (command, command with a grant of rights, catalog import, sync
//!   response, dead letter, flush), batched
//!   into one transaction, each command run through
//!   `tally_sync::command::execute` and stamped with the injected clock.
//! - [`store`]: the agent's tables beside `tally-store`'s, one database:
//!   opening and snapshot reads, the command core's `Ledger` over a write
//!   transaction, the sync request and the applying of the hub's answer.
//! - [`outbox`]: the outbox table's layout (runs of sequence numbers, one
//!   row per batch; entries leave only on the hub's acknowledgement).
//! - [`sync`]: the sync client (mTLS to the hub; outbox out, hub's
//!   entries, rights and catalog in), over [`hub_client`], the one
//!   connection to the hub.
//! - [`link`]: the live link: the hub's notices (sync now, rights wanted
//!   for an online order) pushed down a long-lived request.
//! - [`devices`]: a scanner that sells (self-checkout) and an RFID reader
//!   that receives (dock portal), wired to the agent through the real
//!   drivers and the committer (embedded prices and weights of scanned
//!   codes: `tally_hardware::measure`, shared with the cashier terminal).
//! - [`managers`], [`cashiers`]: PINs (Argon2id, lockout) of the
//!   managers who approve overrides and of the cashiers who sign in, and
//!   the cashiers' sessions.
//! - [`config`], [`metrics`], [`status`]: configuration, Prometheus
//!   metrics, sync status. [`catalog`], [`cli`]: the CLI (a client of
//!   the API through `tally_agent_api::AgentClient`)
//!   (errors print through `tally_sync::report::one_line`).
//!
//! Wall-clock time comes only from the `tally_sync::clock::Clock` given to
//! [`run`] (`tally_store::SystemClock` in the binary, a `ManualClock` in
//! tests); `Instant`s time durations and deadlines.
//!
//! Library/binary split as in mini-redis: `main.rs` parses flags and calls
//! [`run`] with a bound listener and a shutdown future, so tests start the
//! agent on `127.0.0.1:0` and stop it.

pub mod api;
pub mod api_tls;
pub mod cashiers;
pub mod catalog;
pub mod cli;
pub mod commit;
pub mod config;
pub mod devices;
pub mod enroll;
pub mod event_ids;
pub mod hub_client;
pub mod link;
pub mod lockouts;
pub mod managers;
pub mod metrics;
pub mod outbox;
pub mod rights;
pub mod status;
pub mod store;
pub mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tally_service::serve::{self, Admission, Handshake};
use tally_sync::clock::Clock;
use tokio::net::TcpListener;

use crate::api::AppState;
use crate::commit::Committer;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::status::SyncStatus;
use crate::store::{AgentDb, OpenError};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The database could not be opened (held by another process, wrong
    /// store id, corrupt, …).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading the database at start failed.
    #[error(transparent)]
    Store(#[from] tally_store::StoreError),
    /// Serving or a system resource failed.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A background task panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The committer thread died (a panic, or a commit the database
    /// failed): the process exits non-zero so that it is restarted.
    #[error("the committer stopped: {0}")]
    CommitterDied(String),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The API's HTTPS could not be set up.
    #[error("the API's TLS: {0}")]
    ApiTls(#[from] api_tls::ApiTlsError),
    /// The wrong-PIN streaks could not be opened or read.
    #[error(transparent)]
    Lockouts(#[from] lockouts::LockoutError),
}

/// How long shutdown waits for open requests to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The API's connections need nothing before HTTP (loopback, no TLS).
struct Plain(axum::Router);

/// The API's connections when it serves HTTPS (`api_tls`): a TLS
/// handshake, held to `timeout`, before HTTP; plain HTTP from this
/// machine only (`api_tls::speak`, read from the first byte).
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    timeout: std::time::Duration,
}

impl Handshake for Tls {
    type Io = tokio_util::either::Either<
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        tokio::net::TcpStream,
    >;

    async fn handshake(
        &self,
        socket: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<(Self::Io, axum::Router)> {
        use tokio_util::either::Either;
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.timeout, socket.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return None,
        }
        match api_tls::speak(first[0], peer.ip()) {
            api_tls::Speak::Tls => {}
            api_tls::Speak::Plain => return Some((Either::Right(socket), self.router.clone())),
            api_tls::Speak::Refuse => {
                tracing::debug!(%peer, "Plain HTTP from beyond loopback refused: this API serves HTTPS.");
                return None;
            }
        }
        match tokio::time::timeout(self.timeout, self.acceptor.accept(socket)).await {
            Ok(Ok(tls)) => Some((Either::Left(tls), self.router.clone())),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out.");
                None
            }
        }
    }
}

impl Handshake for Plain {
    type Io = tokio::net::TcpStream;

    async fn handshake(
        &self,
        socket: tokio::net::TcpStream,
        _peer: SocketAddr,
    ) -> Option<(Self::Io, axum::Router)> {
        Some((socket, self.0.clone()))
    }
}

/// Runs the agent on `listener` until `shutdown` completes, then finishes
/// in-flight requests and commits and returns. Every wall-clock time it
/// records (events, sync status, scanner sales' ids) is `clock`'s
/// (`tally_store::SystemClock` in the binary). `ready` is called with the
/// API's address once the database is open and the committer, sync and
/// devices are started, just before requests are served (so a "listening"
/// line is never printed by an agent that then fails to open its store).
pub async fn run(
    config: Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let Config {
        data_dir,
        store_id,
        api: api_config,
        commit: commit_config,
        sync: sync_config,
        devices: devices_config,
        managers,
        cashiers,
        ..
    } = config;
    let managers =
        managers::Managers::new(&managers).map_err(|e| AgentError::Config(e.to_string()))?;
    let cashiers =
        managers::Managers::new(&cashiers).map_err(|e| AgentError::Config(e.to_string()))?;
    if cashiers.any() {
        tracing::info!("Cashiers sign in: sales and returns are recorded under a signed-in cashier ([[cashiers]]).");
    }
    if !managers.any() {
        tracing::info!("No manager is configured: overrides cannot be approved ([[managers]]).");
    }
    let db = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || AgentDb::open(&data_dir, store_id.as_ref()))
            .await
            .map_err(|_| AgentError::Panicked("opening the database"))??
    };
    let db = Arc::new(db);
    // The wrong-PIN streaks, once the data directory is ours.
    let (managers, cashiers) = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let (store, mut loaded) =
                lockouts::LockoutStore::open_and_load(&data_dir, &["manager", "cashier"])?;
            let store = Arc::new(store);
            let (cashiers_kept, managers_kept) = (
                loaded.pop().unwrap_or_default(),
                loaded.pop().unwrap_or_default(),
            );
            let (now, wall) = (
                std::time::Instant::now(),
                tally_sync::clock::Clock::now_ms(&tally_store::SystemClock),
            );
            Ok::<_, lockouts::LockoutError>((
                managers.keeping(store.clone(), "manager", managers_kept, now, wall),
                cashiers.keeping(store, "cashier", cashiers_kept, now, wall),
            ))
        })
        .await
        .map_err(|_| AgentError::Panicked("opening the PIN lockouts"))??
    };
    let (managers, cashiers) = (Arc::new(managers), Arc::new(cashiers));
    // The API's TLS, once the database is ours (one agent per directory).
    let addr = listener.local_addr().map_err(|source| AgentError::Io {
        what: "reading the listen address",
        source,
    })?;
    if !addr.ip().is_loopback() && api_config.tls == Some(false) {
        return Err(AgentError::Config(format!(
            "the API would listen on {addr}, beyond loopback, in plain HTTP: remove `tls = false` from [api]"
        )));
    }
    let tls = if api_config.tls_on(addr) {
        let dir = api_tls::ApiTlsDir::new(&data_dir);
        let names = api_tls::api_names(addr, &api_config.allowed_hosts);
        let config = api_tls::server_config(&dir, &names, clock.as_ref())?;
        Some(tokio_rustls::TlsAcceptor::from(config))
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new());
    let depth = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.outbox_len())
            .await
            .map_err(|_| AgentError::Panicked("reading the outbox"))??
    };
    metrics.set_outbox_depth(depth);
    let (committer, committer_thread) = Committer::start(
        db.clone(),
        metrics.clone(),
        commit_config.limits(),
        clock.clone(),
    )
    .map_err(|source| AgentError::Io {
        what: "starting the committer",
        source,
    })?;
    let status = Arc::new(SyncStatus::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One connection to the hub serves the sync client and the tills'
    // requests for rights.
    let hub = sync_config
        .as_ref()
        .and_then(|cfg| match sync::HubClient::new(cfg, clock.clone()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::error!(error = %e, "Sync disabled: the hub client could not be set up.");
                status.failed(e.to_string());
                None
            }
        });
    let rights_wait = sync_config
        .as_ref()
        .map_or(std::time::Duration::ZERO, |c| c.rights_wait);
    let foreign_returns_offline = sync_config
        .as_ref()
        .map_or(Default::default(), |c| c.foreign_returns_offline);
    let wake_sync = Arc::new(tokio::sync::Notify::new());
    let rights = rights::Rights::new(
        db.clone(),
        committer.clone(),
        hub.clone().filter(|_| !rights_wait.is_zero()),
        status.clone(),
        clock.clone(),
        metrics.clone(),
        rights_wait,
    )
    .waking(wake_sync.clone());
    let syncer = sync_config.zip(hub).map(|(cfg, hub)| {
        tracing::info!(hub = %cfg.hub, interval_s = cfg.interval.as_secs(), "Syncing with the hub.");
        let ctx = sync::SyncContext {
            db: db.clone(),
            committer: committer.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            wake: wake_sync.clone(),
        };
        let linker = link::LinkContext {
            committer: committer.clone(),
            hub: hub.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            wake_sync: wake_sync.clone(),
        };
        [
            tokio::spawn(link::run(linker, cfg.clone(), stop_rx.clone())),
            tokio::spawn(sync::run(ctx, hub, cfg, stop_rx.clone())),
        ]
    });
    let device_tasks = devices::start(
        &devices::DeviceContext {
            db: db.clone(),
            committer: committer.clone(),
            metrics: metrics.clone(),
            clock,
            rights: rights.clone(),
        },
        &devices_config,
        &stop_rx,
    )
    .map_err(|source| AgentError::Io {
        what: "starting the device drivers",
        source,
    })?;
    let state = AppState {
        db: db.clone(),
        committer,
        rights,
        metrics,
        sync: status,
        managers,
        cashiers,
        sessions: Arc::new(cashiers::Sessions::default()),
        foreign_returns_offline,
    };
    tracing::info!(store = %db.who().replica, %addr, outbox = depth, "Agent ready.");
    ready(addr);
    let guard = api::guard::Guard::new(addr, &api_config.allowed_hosts, &api_config.tills);
    if guard.tokens_required() {
        tracing::info!(
            tills = api_config.tills.len(),
            "The API needs a till's token."
        );
    }
    let app = api::router(state, &api_config, Arc::new(guard));
    let stop_tx = Arc::new(stop_tx);
    let stop_on_shutdown = stop_tx.clone();
    // The committer's death (a panic, or a commit the database failed)
    // stops the agent as a signal would, and makes `run` fail, so the
    // process exits non-zero and is restarted.
    let (committer_thread, committer_died) = committer_thread.split();
    let died = Arc::new(std::sync::Mutex::new(None::<String>));
    let died_slot = died.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            why = committer_died.wait() => {
                *died_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
            }
        }
        let _ = stop_on_shutdown.send(true);
    };
    let admission = Admission::new(api_config.max_connections, api_config.max_connections);
    let limits = api_config.limits();
    let draining = match tls {
        Some(acceptor) => {
            let timeout = limits.first_request;
            let tls = Tls {
                acceptor,
                router: app,
                timeout,
            };
            serve::serve(listener, admission, limits, tls, shutdown).await
        }
        None => serve::serve(listener, admission, limits, Plain(app), shutdown).await,
    };
    if !draining.wait(SHUTDOWN_GRACE).await {
        tracing::warn!("Shutdown grace period over; leaving remaining connections.");
    }
    // The sync and link tasks stop at once (an interrupted exchange is
    // safe to repeat; a release is committed before it is reported) and
    // drop their committer handles.
    for task in syncer.into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    // The device tasks stop their drivers, record what the drivers still
    // hand over (the RFID driver flushes its open windows), and drop their
    // committer handles.
    let _ = stop_tx.send(true);
    for task in device_tasks {
        if task.await.is_err() {
            tracing::error!("A device task panicked.");
        }
    }
    // Every handler (and its committer handle) is gone now: the committer
    // answers what is still queued, commits, and stops.
    tracing::info!("Shutting down: finishing queued commits.");
    let joined = tokio::task::spawn_blocking(move || committer_thread.join()).await;
    let died = died
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    // The join says why too when the committer died after the shutdown
    // began (its last commit failed), when no one watched any more.
    match (joined, died) {
        (Ok(Ok(None)), None) => {
            tracing::info!("Agent stopped.");
            Ok(())
        }
        (_, Some(why)) | (Ok(Ok(Some(why))), None) => Err(AgentError::CommitterDied(why)),
        _ => Err(AgentError::Panicked("the committer")),
    }
}
