//! Serving HTTP connections so that a peer cannot hold them open for
//! nothing: the hub (behind TLS) and the agent (on loopback) both run
//! [`serve`], which admits each connection through [`Admission`], makes
//! it ready with the daemon's [`Handshake`] (TLS and the peer's identity
//! at the hub, nothing at the agent) and serves it with
//! [`serve_connection`].
//!
//! - **Admission**: at most `max_total` connections at once, and at most
//!   `max_per_peer` from one peer address, so a handful of sockets from
//!   one address cannot take every slot.
//! - **Idle**: a connection with no request in flight is closed once it has
//!   been idle for `idle` (or `first_request`, before its first request
//!   arrived). A request counts as in flight from its complete headers
//!   until its response body is finished or dropped, so headers dribbled
//!   one byte at a time (slowloris) are cut by the same clock, and a
//!   long-lived streamed response (the hub's live link) is never idle.
//! - **Stall**: with a request in flight, a connection on which no byte
//!   moved either way for `stall` is dropped (a peer that stopped reading
//!   its answer, or sending its body).
//! - HTTP/1 header reads are bounded by `header_read`; HTTP/2 pings find a
//!   peer that vanished.
//!
//! Body reads are bounded by the handlers themselves (they know the
//! limit per endpoint); see the hub's `read_body`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The clocks a connection is held to. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longest wait for a connection's first request (its complete
    /// headers), from the moment it is served (after TLS, for the hub).
    pub first_request: Duration,
    /// Longest time a connection may sit with no request in flight.
    pub idle: Duration,
    /// Longest time nothing moves on a connection with a request in
    /// flight.
    pub stall: Duration,
    /// Longest time to read an HTTP/1 request's headers once begun.
    pub header_read: Duration,
    /// How often HTTP/2 pings a quiet peer (and how long it waits for the
    /// answer): finds a peer gone without closing.
    pub keep_alive: Duration,
    /// Longest wait for a connection told to close (idle, or the daemon
    /// stopping) to finish its graceful close.
    pub close_grace: Duration,
    /// Most HTTP/2 streams (requests) one connection may have open at
    /// once: a peer's share of the daemon is its connections times this.
    pub max_streams: u32,
}

impl Default for ServeLimits {
    /// 10 s to the first request, 60 s idle, 60 s stalled, 10 s of
    /// headers, pings every 20 s, 1 s to close, 32 streams a connection
    /// (an agent has its link, a sync and a few rights requests open).
    fn default() -> Self {
        Self {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            stall: Duration::from_secs(60),
            header_read: Duration::from_secs(10),
            keep_alive: Duration::from_secs(20),
            close_grace: Duration::from_secs(1),
            max_streams: 32,
        }
    }
}

/// How a served connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The peer closed it, or HTTP ended it normally.
    Closed,
    /// HTTP ended it with an error (malformed request, reset, …).
    Error(String),
    /// It sat with no request in flight past its limit.
    Idle,
    /// Nothing moved on it with a request in flight past `stall`.
    Stalled,
    /// The daemon is stopping.
    Stopped,
}

impl Ended {
    /// A short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ended::Closed => "closed",
            Ended::Error(_) => "error",
            Ended::Idle => "idle",
            Ended::Stalled => "stalled",
            Ended::Stopped => "stopped",
        }
    }
}

/// Counts connections in all and per peer address. Shared by the accept
/// loop; each admitted connection holds a [`Ticket`].
#[derive(Debug)]
pub struct Admission {
    total: Arc<Semaphore>,
    max_per_peer: usize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in [`Admission`]; dropping it frees the place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    peer: IpAddr,
    _total: OwnedSemaphorePermit,
}

impl Admission {
    /// At most `max_total` connections, `max_per_peer` per peer address
    /// (each at least 1).
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(max_total.max(1))),
            max_per_peer: max_per_peer.max(1),
            per_peer: Mutex::new(HashMap::new()),
        })
    }

    /// Waits for a free place in the total (call before `accept`, so that
    /// excess connections wait in the kernel's backlog). `None` once
    /// [`Admission::close`]d.
    pub async fn place(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.total.clone().acquire_owned().await.ok()
    }

    /// Admits a connection from `peer` on the place `permit`, unless that
    /// peer already has `max_per_peer` open (`None`: close the socket).
    pub fn admit(self: &Arc<Self>, permit: OwnedSemaphorePermit, peer: IpAddr) -> Option<Ticket> {
        let peer = canonical(peer);
        let mut open = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(peer).or_insert(0);
        if *n >= self.max_per_peer {
            return None;
        }
        *n += 1;
        Some(Ticket {
            admission: self.clone(),
            peer,
            _total: permit,
        })
    }

    /// Connections open from `peer` now.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let open = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&canonical(peer)).copied().unwrap_or(0)
    }

    /// Stops admitting: a waiting [`Admission::place`] returns `None`.
    pub fn close(&self) {
        self.total.close();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .per_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// An IPv4 peer seen through an IPv6 socket counts as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Connections the kernel may queue for [`accept`] (capped by
/// `net.core.somaxconn`): the standard library's 128 fills at once when
/// the connection cap is full and SYNs get dropped, so a new connection
/// waits a second for its retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (a host or address and a port; each address it resolves
/// to is tried in turn) and listens with [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} names no address"),
        )
    }))
}

/// Accepts the next connection, retrying failures (out of file
/// descriptors, a connection reset before it was accepted) with backoff:
/// they are never fatal.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// What a daemon does with an admitted connection before HTTP, and what
/// it notes when one is refused or ends.
pub trait Handshake: Send + Sync + 'static {
    /// The stream HTTP runs on (TLS at the hub, the socket at the agent).
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Makes `socket` ready for HTTP: the stream and the router to serve
    /// it with (which may carry the peer's identity), or `None` to drop it.
    fn handshake(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<(Self::Io, axum::Router)>> + Send;
    /// A connection from `peer` was closed at once: its address has too
    /// many open.
    fn refused(&self, peer: SocketAddr) {
        tracing::debug!(%peer, "Connection refused: too many from this address.");
    }
    /// A served connection ended.
    fn ended(&self, peer: SocketAddr, how: &Ended) {
        tracing::debug!(%peer, how = how.as_str(), "Connection ended.");
    }
}

/// The connections still open once [`serve`] stopped accepting; each
/// finishes its in-flight requests.
#[derive(Debug)]
pub struct Draining {
    done: mpsc::Receiver<()>,
}

impl Draining {
    /// Waits until every connection has ended, at most `grace`: whether
    /// they all did.
    pub async fn wait(mut self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.done.recv()).await.is_ok()
    }
}

/// Accepts and serves connections on `listener` until `shutdown`
/// resolves; then tells every open connection to finish (in-flight
/// requests complete, no new ones start) and returns them as
/// [`Draining`].
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    admission: Arc<Admission>,
    limits: ServeLimits,
    handshake: H,
    shutdown: impl Future<Output = ()>,
) -> Draining {
    let handshake = Arc::new(handshake);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            p = admission.place() => match p {
                Some(p) => p,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let (socket, peer) = tokio::select! {
            s = accept(&listener) => s,
            () = &mut shutdown => break,
        };
        let Some(ticket) = admission.admit(place, peer.ip()) else {
            handshake.refused(peer);
            continue;
        };
        let handshake = handshake.clone();
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let _socket = socket.set_nodelay(true);
            if let Some((io, router)) = handshake.handshake(socket, peer).await {
                let service = hyper_util::service::TowerToHyperService::new(router);
                let ended = serve_connection(io, service, &limits, stopped(&mut stop)).await;
                handshake.ended(peer, &ended);
            }
            drop(ticket);
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    Draining { done }
}

/// Resolves once the daemon is told to stop (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on `io` with `service` until the peer or
/// HTTP closes it, a limit ends it, or `stop` resolves (then in-flight
/// requests finish, within `close_grace` once they are done).
pub async fn serve_connection<I, S, B>(
    io: I,
    service: S,
    limits: &ServeLimits,
    stop: impl Future<Output = ()>,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let io = Watched {
        inner: io,
        activity: activity.clone(),
    };
    let service = Tracked {
        inner: service,
        activity: activity.clone(),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.keep_alive))
        .keep_alive_timeout(limits.keep_alive)
        .max_concurrent_streams(limits.max_streams.max(1));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::pin!(stop);
    let tick = tick(limits);
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            r = conn.as_mut() => return finished(r),
            () = &mut stop => break Ended::Stopped,
            _ = ticks.tick() => match activity.verdict(limits) {
                None => {}
                Some(Ended::Stalled) => return Ended::Stalled,
                Some(other) => break other,
            },
        }
    };
    // Closing: requests in flight finish (the daemon's own grace bounds
    // them when it stops); once none has been in flight for
    // `close_grace`, the connection is dropped even if the peer never
    // acknowledges the close (an HTTP/2 peer that does not answer).
    conn.as_mut().graceful_shutdown();
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = ticks.tick() => {
                if activity.in_flight.load(Ordering::Acquire) > 0 {
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= limits.close_grace {
                    break;
                }
            }
        }
    }
    ended
}

fn finished(r: Result<(), Box<dyn std::error::Error + Send + Sync>>) -> Ended {
    match r {
        Ok(()) => Ended::Closed,
        Err(e) => Ended::Error(e.to_string()),
    }
}

/// How often the watchdog looks: a quarter of the shortest clock, between
/// 10 ms and 1 s.
fn tick(limits: &ServeLimits) -> Duration {
    let shortest = limits
        .first_request
        .min(limits.idle)
        .min(limits.stall)
        .max(Duration::from_millis(40));
    (shortest / 4).min(Duration::from_secs(1))
}

/// What a connection has been doing, as the watchdog sees it.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Any request seen yet.
    served: AtomicBool,
    /// When the last request ended (ms since `start`).
    last_request_end_ms: AtomicU64,
    /// When a byte last moved (ms since `start`).
    last_io_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last_request_end_ms: AtomicU64::new(0),
            last_io_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.moved();
        InFlight {
            activity: self.clone(),
        }
    }

    /// Whether a limit is past: the pure decision from the counts and
    /// clocks.
    fn verdict(&self, limits: &ServeLimits) -> Option<Ended> {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let quiet = now.saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
            return (quiet > ms(limits.stall)).then_some(Ended::Stalled);
        }
        let (since, limit) = if self.served.load(Ordering::Relaxed) {
            (
                self.last_request_end_ms.load(Ordering::Relaxed),
                limits.idle,
            )
        } else {
            (0, limits.first_request)
        };
        (now.saturating_sub(since) > ms(limit)).then_some(Ended::Idle)
    }
}

/// A request in flight; dropped when its response body is finished or
/// dropped.
#[derive(Debug)]
struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        a.last_request_end_ms.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's I/O, noting every byte that moves.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.moved();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The service, counting each request in flight until its response body
/// is done.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Unpin + Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Boxed<Result<Self::Response, S::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = self.activity.begin();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: guard,
            }))
        })
    }
}

/// A response body holding its request's place in flight.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServeLimits {
        ServeLimits {
            first_request: Duration::from_millis(100),
            idle: Duration::from_millis(300),
            stall: Duration::from_millis(500),
            ..ServeLimits::default()
        }
    }

    #[tokio::test]
    async fn bind_listens_on_what_the_address_names() {
        let l = bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (_client, (_, from)) =
            tokio::join!(async { TcpStream::connect(addr).await.unwrap() }, async {
                accept(&l).await
            });
        assert!(from.ip().is_loopback());
        assert!(bind("localhost:0").await.is_ok());
        assert!(bind("127.0.0.1").await.is_err(), "no port");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_idle_after_first_request() {
        let a = Arc::new(Activity::new());
        tokio::time::advance(Duration::from_millis(90)).await;
        assert_eq!(a.verdict(&limits()), None);
        a.moved(); // bytes of a header that never completes do not count
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(a.verdict(&limits()), Some(Ended::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_only_stalled() {
        let a = Arc::new(Activity::new());
        let req = a.begin();
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(a.verdict(&limits()), None);
        a.moved();
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(a.verdict(&limits()), None);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(a.verdict(&limits()), Some(Ended::Stalled));
        drop(req);
        // Idle counts from the end of the last request.
        assert_eq!(a.verdict(&limits()), None);
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(a.verdict(&limits()), Some(Ended::Idle));
    }

    #[tokio::test]
    async fn admission_caps_each_peer_and_frees_places() {
        let adm = Admission::new(10, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let mapped: IpAddr = "::ffff:127.0.0.1"
            .parse()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let b: IpAddr = IpAddr::from([127, 0, 0, 2]);
        let mut held = Vec::new();
        for _ in 0..2 {
            let p = adm.place().await;
            held.push(p.and_then(|p| adm.admit(p, a)));
        }
        assert!(held.iter().all(Option::is_some));
        let third = adm.place().await.and_then(|p| adm.admit(p, mapped));
        assert!(
            third.is_none(),
            "a third connection from one peer is refused"
        );
        let other = adm.place().await.and_then(|p| adm.admit(p, b));
        assert!(other.is_some(), "another peer is admitted");
        assert_eq!(adm.open_from(a), 2);
        held.pop();
        assert_eq!(adm.open_from(a), 1);
        let again = adm.place().await.and_then(|p| adm.admit(p, a));
        assert!(again.is_some());
        // The refused connection gave its place back: 3 held of 10.
        assert_eq!(adm.total.available_permits(), 7);
    }
}
