//! A message bus between the hub processes over one database, on
//! LISTEN/NOTIFY: what one process publishes every other one hears
//! (never itself), best effort and unordered across publishers: the live
//! links' notices and reports ride on it, which are hints (losing one
//! costs time, never a unit).
//!
//! - Publishing never blocks and never grows memory without bound:
//!   payloads go on a bounded queue the bus task sends (`pg_notify`)
//!   while connected; published while it is not, or with the queue full,
//!   they are dropped and counted.
//! - A payload over NOTIFY's limit (about 8,000 bytes) is dropped and
//!   counted; the hub's messages are far smaller.
//! - After (re)connecting, the bus calls `on_connect` (a process tells
//!   the others it is there, and they re-announce their links).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::conn::{db_err, DatabaseUrl};
use super::listen::listening;
use crate::storage::StorageError;

/// The channel the hub processes talk on.
pub const CHANNEL: &str = "tally_links";

/// Largest payload sent (NOTIFY's limit is 8,000 bytes, less the
/// instance tag).
const MAX_PAYLOAD: usize = 7_900;

/// Messages queued to send before new ones are dropped.
const QUEUE: usize = 4_096;

/// What a process does with a message another process published.
pub type OnMessage = Box<dyn Fn(&str) + Send + Sync>;

/// The bus of one hub process. See the module docs.
#[derive(Debug)]
pub struct PgBus {
    instance: String,
    queue: mpsc::Sender<String>,
    dropped: AtomicU64,
    connected: std::sync::atomic::AtomicBool,
}

impl PgBus {
    /// Joins the bus at `url` on the current runtime: `on_message` gets
    /// every other process's payloads, `on_connect` runs after each
    /// (re)connection.
    pub fn start(
        url: DatabaseUrl,
        on_message: OnMessage,
        on_connect: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Self> {
        let (queue, outbox) = mpsc::channel(QUEUE);
        let bus = Arc::new(Self {
            instance: uuid::Uuid::now_v7().simple().to_string(),
            queue,
            dropped: AtomicU64::new(0),
            connected: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(run(bus.clone(), url, outbox, on_message, on_connect));
        bus
    }

    /// Sends `payload` to every other hub process (best effort).
    pub fn publish(&self, payload: String) {
        if payload.len() > MAX_PAYLOAD || !self.connected.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.queue.try_send(payload).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages dropped (too long, or published while disconnected).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the bus is connected now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

async fn run(
    bus: Arc<PgBus>,
    url: DatabaseUrl,
    mut outbox: mpsc::Receiver<String>,
    on_message: OnMessage,
    on_connect: Box<dyn Fn() + Send + Sync>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = session(&bus, &url, &mut outbox, &on_message, &on_connect).await;
        bus.connected.store(false, Ordering::Relaxed);
        // What was queued for the lost connection is stale now.
        while outbox.try_recv().is_ok() {
            bus.dropped.fetch_add(1, Ordering::Relaxed);
        }
        match ended {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "the hub bus lost its connection; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's worth: publish what is queued, hand on what others
/// publish. `Ok` only when the process is dropping the bus.
async fn session(
    bus: &PgBus,
    url: &DatabaseUrl,
    outbox: &mut mpsc::Receiver<String>,
    on_message: &OnMessage,
    on_connect: &(dyn Fn() + Send + Sync),
) -> Result<(), StorageError> {
    let (client, mut heard) = listening(url, &[CHANNEL]).await?;
    let notify = client
        .prepare("SELECT pg_notify($1, $2)")
        .await
        .map_err(db_err)?;
    bus.connected.store(true, Ordering::Relaxed);
    on_connect();
    let tag = format!("{}|", bus.instance);
    loop {
        tokio::select! {
            out = outbox.recv() => {
                let Some(payload) = out else { return Ok(()) };
                let tagged = format!("{tag}{payload}");
                client.execute(&notify, &[&CHANNEL, &tagged]).await.map_err(db_err)?;
            }
            h = heard.recv() => {
                let Some(h) = h else {
                    return Err(StorageError::Db("the database closed the connection".into()));
                };
                match h.payload.split_once('|') {
                    Some((from, _)) if from == bus.instance => {}
                    Some((_, payload)) => on_message(payload),
                    None => tracing::debug!("a bus message without a sender was ignored"),
                }
            }
        }
    }
}
