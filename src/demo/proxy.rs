//! A fault-injecting TCP proxy between a store's agent and the hub, on
//! loopback: it passes traffic, black-holes it (a partition: connections
//! hang, bytes vanish) or refuses it (connections closed at once).
//! Switching mode also cuts every open connection, as a real outage does to
//! requests in flight. Muted ([`FaultProxy::mute`]), the open connections
//! carry requests to the hub but lose its answers: the hub acts on a
//! request whose client never hears of it. TLS runs end to end through it (the agent talks to
//! the hub, the proxy only moves bytes). It can also be pointed at
//! another upstream, as a TCP load balancer moves clients off a hub
//! process that died. The end-to-end tests and the reconcile benchmark
//! use it too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways.
    Pass = 0,
    /// Accept connections, forward nothing: requests time out.
    Blackhole = 1,
    /// Close every connection at once: requests fail fast.
    Refuse = 2,
    /// On the open connections, forward what the client sends, drop what
    /// the upstream answers; new connections are refused
    /// ([`FaultProxy::mute`]).
    Mute = 3,
}

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    mode: Arc<AtomicU8>,
    generation: watch::Sender<u64>,
    connections: Arc<AtomicU64>,
    bytes: Arc<[AtomicU64; 2]>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let (generation, gen_rx) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let upstream = Arc::new(Mutex::new(upstream));
        let (m, c, b) = (mode.clone(), connections.clone(), bytes.clone());
        let up_to = upstream.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                let mut cut = gen_rx.clone();
                // Only cuts after this connection was accepted count; a
                // move of the upstream before it is seen just below.
                cut.borrow_and_update();
                let mode = m.load(Ordering::SeqCst);
                let target = *up_to
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let counters = b.clone();
                let m2 = m.clone();
                tokio::spawn(async move {
                    if mode == Mode::Refuse as u8 || mode == Mode::Mute as u8 {
                        drop(client);
                        return;
                    }
                    if mode == Mode::Blackhole as u8 {
                        // Hold the connection, swallow bytes, until cut.
                        let mut client = client;
                        let mut sink = [0u8; 4096];
                        loop {
                            tokio::select! {
                                _ = cut.changed() => return,
                                n = client.read(&mut sink) => if matches!(n, Ok(0) | Err(_)) { return },
                            }
                        }
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        pump(&mut cr, &mut sw, &counters[0], None).await;
                        sw.shutdown().await.ok();
                    };
                    let down = async {
                        pump(&mut sr, &mut cw, &counters[1], Some(&m2)).await;
                        cw.shutdown().await.ok();
                    };
                    tokio::select! {
                        _ = cut.changed() => {}
                        _ = async { tokio::join!(up, down) } => {}
                    }
                });
            }
        });
        Ok(FaultProxy {
            addr,
            upstream,
            mode,
            generation,
            connections,
            bytes,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `upstream` from now on and cuts the open
    /// ones (their clients reconnect, to it).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self
            .upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = upstream;
        self.generation.send_modify(|g| *g += 1);
    }

    /// Mutes the open connections without cutting them (their TLS
    /// sessions stand): what their clients send still reaches the
    /// upstream, which answers into the void; new connections are
    /// refused. [`Self::set`] ends it (and cuts them).
    pub fn mute(&self) {
        self.mode.store(Mode::Mute as u8, Ordering::SeqCst);
    }

    /// Switches mode and cuts every open connection ([`Mode::Mute`]
    /// through it is [`Mode::Refuse`] in effect: no connection is left to
    /// mute; use [`Self::mute`]).
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Bytes forwarded so far (client → upstream, upstream → client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes[0].load(Ordering::Relaxed),
            self.bytes[1].load(Ordering::Relaxed),
        )
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            0 => Mode::Pass,
            1 => Mode::Blackhole,
            2 => Mode::Refuse,
            _ => Mode::Mute,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Copies until EOF or error, counting bytes as they pass (so a cut
/// connection's bytes are counted too); while `mode` says
/// [`Mode::Mute`], what is read is dropped (and not counted).
async fn pump(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    counter: &AtomicU64,
    mode: Option<&AtomicU8>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) if mode.is_some_and(|m| m.load(Ordering::SeqCst) == Mode::Mute as u8) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.set(Mode::Refuse);
        self.task.abort();
    }
}
