//! Live links: which stores are connected to the hub right now
//! (`GET /v1/link`), the channel to push each a notice
//! (`tally_sync::link::Notice`), and the rights releases online orders
//! are waiting for.
//!
//! # Design constraints
//! - One live link per store location: a store that reconnects replaces
//!   its old link (whose stream then ends). A link is live from its
//!   `connect` until its [`LinkGuard`] is dropped (the response stream
//!   ended: the store went away, or the hub is stopping).
//! - Pushing never blocks and never grows memory without bound: each link
//!   has a small queue, and a notice that does not fit is dropped and
//!   counted (notices are hints; the periodic sync is the truth).
//! - An online order short of the hub's reserve asks the live store for
//!   rights ([`Links::ask_release`]) and waits, bounded, for its report;
//!   meanwhile the units it needs there (the hub's rights it counts on
//!   and those asked for) are *held* ([`Hold`]): the hub grants no store
//!   those rights, and a sync gives none of them back, until the order
//!   has run (first come, first served).
//! - No I/O here and no storage: the HTTP handlers (`api::link`,
//!   `api::orders`, `api::rights`) do the talking and the writing.
//! - **Several hub processes** (over one database) share their links
//!   through a [`Bus`] ([`Links::with_bus`]): each announces its links
//!   ([`BusMessage::Live`], again every heartbeat, so a crashed process's
//!   links expire), a notice for a store live at another process is
//!   published for that process to push, and a release report that
//!   reaches a process where no order waits for it is published for the
//!   process whose order does. Units held for an order waiting at one
//!   process are announced ([`BusMessage::Held`]) as the store is asked
//!   (ahead of the request when that goes on the bus too), so grants at
//!   every process hold them back as one hub would (best effort, like
//!   the bus); their end is announced too, and a hold whose end is never
//!   heard lapses 10 s after the order's wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use rand::RngCore;
use tally_sync::exchange::{Held, Identity};
use tally_sync::link::Notice;
use tally_sync::rights::RightsReleased;
use tally_sync::{BoundedCounter, EventId, Gtin, LocationId, ReplicaId};
use tokio::sync::{mpsc, oneshot};

/// Notices queued per link before new ones are dropped.
pub const NOTICE_QUEUE: usize = 64;

/// A store connected right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStore {
    /// The store's replica.
    pub replica: ReplicaId,
    /// Its location.
    pub location: LocationId,
    /// When its link opened (hub clock, Unix ms).
    pub since_ms: u64,
    /// Where its opening falls among every hub process's link openings
    /// (the database's sequence; none for the embedded hub, one process,
    /// or a process too old to say).
    pub order: Option<u64>,
}

impl LiveStore {
    /// Whether this link opened after `other` (a link of the same
    /// store): by their [`Self::order`] when both have one (the hosts'
    /// clocks may disagree by more than a reconnection takes), else by
    /// their hosts' clocks.
    fn newer_than(&self, other: &LiveStore) -> bool {
        match (self.order, other.order) {
            (Some(a), Some(b)) => a > b,
            _ => self.since_ms > other.since_ms,
        }
    }

    /// Whether this is the link `other` names (its opening's time and
    /// order).
    fn same_link(&self, other: &LiveStore) -> bool {
        self.since_ms == other.since_ms && self.order == other.order
    }
}

struct Live {
    id: u64,
    store: LiveStore,
    notices: mpsc::Sender<Notice>,
}

struct Waiting {
    location: LocationId,
    gtin: Gtin,
    report: oneshot::Sender<(Identity, RightsReleased)>,
}

/// A store live at another hub process, as that process last announced.
struct Remote {
    store: LiveStore,
    heard: Instant,
}

#[derive(Default)]
struct Inner {
    live: HashMap<LocationId, Live>,
    remote: HashMap<LocationId, Remote>,
    waiting: HashMap<EventId, Waiting>,
    held: HashMap<(LocationId, Gtin), u64>,
    /// This process's holds by request id, announced again to a process
    /// that (re)joins the bus ([`Links::announce_all`]).
    local_held: HashMap<EventId, RemoteHold>,
    /// Units held for orders waiting at other processes, by the order's
    /// request id; each counts until its end is heard or its deadline.
    remote_held: HashMap<EventId, RemoteHold>,
    /// Stores and items whose release report was refused, and until when
    /// they are not asked again ([`Links::release_refused`]).
    paused: HashMap<(LocationId, Gtin), Instant>,
    /// Settings fingerprints of other processes of this version that
    /// differ from this one's, and when each was last heard.
    differing: HashMap<String, Instant>,
    closed: bool,
}

/// How long a store is not asked to release an item after its report of
/// a release of it was refused (its entries fail the check, e.g. while
/// one of its events is dead-lettered): each ask would move more of its
/// rights to the hub in its own books only, where nobody can sell them.
pub const RELEASE_PAUSE: Duration = Duration::from_secs(600);

/// Units held for an order waiting at another process.
#[derive(Debug)]
struct RemoteHold {
    key: (LocationId, Gtin),
    units: u64,
    until: Instant,
}

/// How long past an order's wait a hold announced by another process
/// still counts if its end is never heard (a lost message, a crash).
const REMOTE_HOLD_GRACE: Duration = Duration::from_secs(10);

/// How the hub processes over one database talk (best effort): the
/// PostgreSQL backend's LISTEN/NOTIFY bus. See the module docs.
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// Sends `payload` (a [`BusMessage`] as JSON) to every other process.
    fn publish(&self, payload: String);
    /// Messages dropped so far (best effort: too long, or sent while
    /// disconnected).
    fn dropped(&self) -> u64 {
        0
    }
    /// Whether the bus is connected now (messages can flow).
    fn is_connected(&self) -> bool {
        true
    }
}

/// How the bus to the other hub processes is doing ([`Links::bus_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusState {
    /// Messages dropped so far.
    pub dropped: u64,
    /// Connected now.
    pub connected: bool,
    /// Another process of this version announced other shared settings
    /// lately (3 heartbeats).
    pub settings_differ: bool,
}

/// What one hub process tells the others about live links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
pub enum BusMessage {
    /// A process (re)joined: everyone announces their links again.
    Hello,
    /// The store is live at the sender (`live`), or no longer.
    Live {
        /// The store.
        replica: ReplicaId,
        /// Its location.
        location: LocationId,
        /// When its link opened (the sender's clock, Unix ms).
        since_ms: u64,
        /// Its opening's place among every process's (the database's
        /// sequence), if the sender has one: [`LiveStore::order`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<u64>,
        /// Whether it is live.
        live: bool,
    },
    /// Push `notice` to the store at `location` if it is live here.
    Notice {
        /// The store's location.
        location: LocationId,
        /// The notice.
        notice: Notice,
    },
    /// Push `notice` to every store live here.
    Broadcast {
        /// The notice.
        notice: Notice,
    },
    /// A store's release report, for the order waiting for it here.
    Released {
        /// The store, from its certificate at the process it reached.
        replica: ReplicaId,
        /// Its location.
        location: LocationId,
        /// The report.
        released: RightsReleased,
    },
    /// `units` of `gtin` at `location` are held for an order waiting at
    /// the sender (asked with `request_id`): grants here hold them back
    /// too, until [`BusMessage::Unheld`] or `for_ms` from now.
    Held {
        /// The order's request to the store.
        request_id: EventId,
        /// The store's location.
        location: LocationId,
        /// The item.
        gtin: Gtin,
        /// Units held.
        units: u64,
        /// Longest the hold lasts, in ms.
        for_ms: u64,
    },
    /// The hold for `request_id` ended.
    Unheld {
        /// The order's request to the store.
        request_id: EventId,
    },
    /// The store's release report of `gtin` was refused at the sender:
    /// no process asks it for that item for `for_ms`
    /// ([`Links::release_refused`]).
    Paused {
        /// The store's location.
        location: LocationId,
        /// The item.
        gtin: Gtin,
        /// How long, in ms.
        for_ms: u64,
    },
    /// The sender's version and the fingerprint of the settings every
    /// process over the database must share (each heartbeat): a process
    /// of the same version with other settings is reported
    /// ([`Links::with_settings`]).
    Settings {
        /// The sender's `tally-hub` version.
        version: String,
        /// Its shared settings' fingerprint.
        fingerprint: String,
    },
}

/// The hub's live links. Shared by the handlers (`Arc`).
#[derive(Default)]
pub struct Links {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// Notices dropped (shared with the tasks that wait for room).
    dropped: Arc<AtomicU64>,
    bus: OnceLock<Arc<dyn Bus>>,
    /// How long another process's announcement counts (3 heartbeats).
    remote_ttl: OnceLock<Duration>,
    /// This process's version and shared settings' fingerprint.
    settings: OnceLock<(String, String)>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("live", &self.count())
            .finish_non_exhaustive()
    }
}

/// Keeps a link registered; dropping it unregisters the link (unless a
/// newer link of the same store replaced it).
#[derive(Debug)]
pub struct LinkGuard {
    links: Arc<Links>,
    location: LocationId,
    id: u64,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let mut inner = self.links.lock();
        if inner.live.get(&self.location).map(|l| l.id) == Some(self.id) {
            if let Some(live) = inner.live.remove(&self.location) {
                drop(inner);
                self.links.announce(&live.store, false);
            }
        }
    }
}

/// Units an online order needs at a location while it waits for the
/// store's release: while it lives, grants to stores keep them back
/// ([`Links::held`]) and syncs give none of them back
/// ([`Links::holds_at`]).
#[derive(Debug)]
pub struct Hold {
    links: Arc<Links>,
    key: (LocationId, Gtin),
    units: u64,
    request_id: EventId,
}

impl Hold {
    /// The location and item it holds units of.
    pub fn key(&self) -> &(LocationId, Gtin) {
        &self.key
    }

    /// How many units it holds.
    pub fn units(&self) -> u64 {
        self.units
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        {
            let mut inner = self.links.lock();
            inner.local_held.remove(&self.request_id);
            if let Some(h) = inner.held.get_mut(&self.key) {
                *h = h.saturating_sub(self.units);
                if *h == 0 {
                    inner.held.remove(&self.key);
                }
            }
        }
        self.links.publish(&BusMessage::Unheld {
            request_id: self.request_id,
        });
    }
}

/// Removes an ask's waiting entry when the ask ends, however it ends.
struct WaitingEntry {
    links: Arc<Links>,
    request_id: EventId,
}

impl Drop for WaitingEntry {
    fn drop(&mut self) {
        self.links.lock().waiting.remove(&self.request_id);
    }
}

/// What an order asks of one live store ([`Links::ask_release`]).
#[derive(Debug, Clone, Copy)]
pub struct ReleaseAsk<'a> {
    /// The store's location.
    pub location: &'a LocationId,
    /// The item.
    pub gtin: Gtin,
    /// Unsold rights the store is asked to release.
    pub units: u64,
    /// The hub's rights there held for the asking order meanwhile: what
    /// it needs there (the rights the hub has and those it asked for).
    pub hold: u64,
    /// The hub's view of the counter: its entries other than the store's
    /// go with the request.
    pub counter: &'a BoundedCounter,
    /// How long the order waits for the store's report.
    pub wait: Duration,
}

/// What came of asking a store to release rights.
#[derive(Debug)]
pub enum Asked {
    /// The store reported (perhaps releasing nothing): merge `released`
    /// with the order, in its transaction, while `hold` lives.
    Reported {
        /// The store, from its certificate.
        who: Identity,
        /// Its report.
        released: RightsReleased,
        /// The units held for the order.
        hold: Hold,
    },
    /// No store at that location is live.
    NotLive,
    /// The store did not report in time (or its queue was full).
    NoAnswer,
}

/// What became of a store's report.
#[derive(Debug)]
pub enum Delivered {
    /// An order was waiting for it: it merges the report.
    ToOrder,
    /// Nobody waits (the order ended): the caller merges it alone.
    Unclaimed(Box<RightsReleased>),
    /// The report is not for this store or item.
    Mismatch,
}

impl Links {
    /// No link yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Shares the links with the other hub processes over `bus`; their
    /// announcements count for `remote_ttl` (3 heartbeats). Once.
    pub fn with_bus(&self, bus: Arc<dyn Bus>, remote_ttl: Duration) {
        let _ = self.remote_ttl.set(remote_ttl);
        let _ = self.bus.set(bus);
    }

    fn publish(&self, message: &BusMessage) {
        if let Some(bus) = self.bus.get() {
            match serde_json::to_string(message) {
                Ok(payload) => bus.publish(payload),
                Err(e) => tracing::warn!(error = %e, "a bus message could not be encoded"),
            }
        }
    }

    fn announce(&self, store: &LiveStore, live: bool) {
        self.publish(&BusMessage::Live {
            replica: store.replica.clone(),
            location: store.location.clone(),
            since_ms: store.since_ms,
            order: store.order,
            live,
        });
    }

    /// Announces every link live here, and every unit held here for a
    /// waiting order, to the other processes (each heartbeat, and when
    /// one joins), and forgets their announcements older than the TTL.
    pub fn announce_all(&self) {
        if self.bus.get().is_none() {
            return;
        }
        let now = Instant::now();
        let stores: Vec<LiveStore> = {
            let mut inner = self.lock();
            if let Some(ttl) = self.remote_ttl.get().copied() {
                inner.remote.retain(|_, r| r.heard.elapsed() < ttl);
            }
            // And the units held here for waiting orders: a process that
            // (re)joins, or missed the first announcement while its bus
            // was down, holds them back from its grants too. Published
            // under the lock, first: a hold that ends meanwhile has its
            // end published after this (its drop takes the lock first).
            for (&request_id, h) in inner.local_held.iter().filter(|(_, h)| h.until > now) {
                self.publish(&BusMessage::Held {
                    request_id,
                    location: h.key.0.clone(),
                    gtin: h.key.1,
                    units: h.units,
                    for_ms: u64::try_from((h.until - now).as_millis()).unwrap_or(u64::MAX),
                });
            }
            inner.live.values().map(|l| l.store.clone()).collect()
        };
        for store in &stores {
            self.announce(store, true);
        }
        // Not while the bus is down: it would only count as dropped.
        let connected = self.bus.get().is_some_and(|b| b.is_connected());
        if let (true, Some((version, fingerprint))) = (connected, self.settings.get()) {
            self.publish(&BusMessage::Settings {
                version: version.clone(),
                fingerprint: fingerprint.clone(),
            });
        }
    }

    /// Announces, with the links, this process's version and the
    /// fingerprint of its settings that every process over the database
    /// must share (the reserve policy, routing, heartbeat…): a process of
    /// the same version announcing another is logged and counted in
    /// `tally_hub_bus_settings_differ`. Once.
    pub fn with_settings(&self, version: &str, fingerprint: &str) {
        let _ = self
            .settings
            .set((version.to_string(), fingerprint.to_string()));
    }

    /// Tells the other processes this one (re)joined the bus: they
    /// announce their links, and it announces its own.
    pub fn joined(&self) {
        self.publish(&BusMessage::Hello);
        self.announce_all();
    }

    /// Applies what another hub process published (`payload`, a
    /// [`BusMessage`]); one that does not decode is ignored.
    pub fn on_bus(&self, payload: &str) {
        let message: BusMessage = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "a bus message that does not decode was ignored");
                return;
            }
        };
        match message {
            BusMessage::Hello => self.announce_all(),
            BusMessage::Settings {
                version,
                fingerprint,
            } => {
                let Some((mine, own)) = self.settings.get() else {
                    return;
                };
                if version != *mine || fingerprint == *own {
                    return;
                }
                let first = self
                    .lock()
                    .differing
                    .insert(fingerprint.clone(), Instant::now())
                    .is_none();
                if first {
                    tracing::error!(
                        %fingerprint,
                        own = %own,
                        "Another hub process over this database runs with other settings (reserve policy, routing, heartbeat, limits): processes would decide differently. Give every process the same configuration."
                    );
                }
            }
            BusMessage::Live {
                replica,
                location,
                since_ms,
                order,
                live,
            } => {
                let announced = LiveStore {
                    replica,
                    location: location.clone(),
                    since_ms,
                    order,
                };
                let mut inner = self.lock();
                if live {
                    // The newest link wins: a store connects anew when its
                    // connection died, so an older link here is a dead
                    // connection's (kept until its pings time out) and
                    // notices sent down it would be lost. Its sender is
                    // dropped: its stream ends.
                    if inner
                        .live
                        .get(&location)
                        .is_some_and(|l| announced.newer_than(&l.store))
                    {
                        inner.live.remove(&location);
                    }
                    // Nor does an older link's announcement (repeated by
                    // its process each heartbeat until it goes) replace a
                    // newer one's.
                    let ttl = self.remote_ttl.get().copied().unwrap_or_default();
                    let newer_known = inner
                        .remote
                        .get(&location)
                        .is_some_and(|r| r.store.newer_than(&announced) && r.heard.elapsed() < ttl);
                    if !newer_known {
                        inner.remote.insert(
                            location,
                            Remote {
                                store: announced,
                                heard: Instant::now(),
                            },
                        );
                    }
                } else if inner
                    .remote
                    .get(&location)
                    .is_some_and(|r| r.store.same_link(&announced))
                {
                    inner.remote.remove(&location);
                }
            }
            BusMessage::Notice { location, notice } => {
                self.notify_here(&location, notice);
            }
            BusMessage::Broadcast { notice } => {
                self.broadcast_here(&notice);
            }
            BusMessage::Released {
                replica,
                location,
                released,
            } => {
                let who = Identity { replica, location };
                self.deliver_here(&who, released);
            }
            BusMessage::Held {
                request_id,
                location,
                gtin,
                units,
                for_ms,
            } => {
                let until = Instant::now()
                    + Duration::from_millis(for_ms).min(Duration::from_secs(3600))
                    + REMOTE_HOLD_GRACE;
                self.lock().remote_held.insert(
                    request_id,
                    RemoteHold {
                        key: (location, gtin),
                        units,
                        until,
                    },
                );
            }
            BusMessage::Unheld { request_id } => {
                self.lock().remote_held.remove(&request_id);
            }
            BusMessage::Paused {
                location,
                gtin,
                for_ms,
            } => {
                let pause = Duration::from_millis(for_ms).min(RELEASE_PAUSE);
                self.pause_here(location, gtin, pause);
            }
        }
    }

    /// The store at `location` as another process announced it, if that
    /// is recent enough.
    fn remote(&self, inner: &Inner, location: &LocationId) -> Option<LiveStore> {
        let ttl = self.remote_ttl.get().copied()?;
        inner
            .remote
            .get(location)
            .filter(|r| r.heard.elapsed() < ttl)
            .map(|r| r.store.clone())
    }

    /// [`Links::remote`], while the bus to that process is connected: a
    /// request published while it is down would be dropped, so the order
    /// is answered at once (`offline`) instead of after its whole wait.
    fn reachable_remote(&self, inner: &Inner, location: &LocationId) -> Option<LiveStore> {
        let connected = self.bus.get().is_some_and(|b| b.is_connected());
        self.remote(inner, location).filter(|_| connected)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half
        // changed (every change is one insert or remove): keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `who`'s link at `now_ms`: the notices to stream to it and
    /// the guard that keeps it live. `None` once the hub is stopping.
    pub fn connect(
        self: &Arc<Self>,
        who: &Identity,
        now_ms: u64,
    ) -> Option<(LinkGuard, mpsc::Receiver<Notice>)> {
        self.connect_ordered(who, now_ms, None)
    }

    /// [`Self::connect`], the opening being `order`th among every hub
    /// process's ([`LiveStore::order`]).
    pub fn connect_ordered(
        self: &Arc<Self>,
        who: &Identity,
        now_ms: u64,
        order: Option<u64>,
    ) -> Option<(LinkGuard, mpsc::Receiver<Notice>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let live = Live {
            id,
            store: LiveStore {
                replica: who.replica.clone(),
                location: who.location.clone(),
                since_ms: now_ms,
                order,
            },
            notices: tx,
        };
        let store = live.store.clone();
        let guard = LinkGuard {
            links: self.clone(),
            location: who.location.clone(),
            id,
        };
        // Another process announced a later link of the store while this
        // one took its place in the database's order: this is the store's
        // old connection. It ends at once (its sender dropped, its stream
        // finishes) and the later one stands. (Judged by the order only:
        // by the hosts' clocks, the link opening here is the newest.)
        let later_elsewhere = self
            .remote(&inner, &who.location)
            .is_some_and(|r| matches!((r.order, order), (Some(there), Some(here)) if there > here));
        if later_elsewhere {
            drop(inner);
            drop(live);
            return Some((guard, rx));
        }
        // A replaced link's sender is dropped here: its stream ends.
        inner.live.insert(who.location.clone(), live);
        inner.remote.remove(&who.location);
        drop(inner);
        self.announce(&store, true);
        Some((guard, rx))
    }

    /// Ends every link (their streams finish) and refuses new ones: the
    /// hub is stopping.
    pub fn close(&self) {
        let ended: Vec<LiveStore> = {
            let mut inner = self.lock();
            inner.closed = true;
            inner.live.drain().map(|(_, l)| l.store).collect()
        };
        for store in &ended {
            self.announce(store, false);
        }
    }

    /// How many stores are live (at any hub process).
    pub fn count(&self) -> usize {
        self.live().len()
    }

    /// The live stores (at any hub process), by location.
    pub fn live(&self) -> Vec<LiveStore> {
        let inner = self.lock();
        let mut v: Vec<LiveStore> = inner.live.values().map(|l| l.store.clone()).collect();
        for location in inner.remote.keys() {
            if !inner.live.contains_key(location) {
                v.extend(self.remote(&inner, location));
            }
        }
        v.sort_by(|a, b| a.location.cmp(&b.location));
        v
    }

    /// Whether the store at `location` is live (at any hub process).
    pub fn is_live(&self, location: &LocationId) -> bool {
        let inner = self.lock();
        inner.live.contains_key(location) || self.remote(&inner, location).is_some()
    }

    /// Notices dropped because a link's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The bus to the other hub processes, if links are shared.
    pub fn bus_state(&self) -> Option<BusState> {
        let ttl = self.remote_ttl.get().copied().unwrap_or_default();
        let settings_differ = self
            .lock()
            .differing
            .values()
            .any(|heard| heard.elapsed() < ttl);
        self.bus.get().map(|bus| BusState {
            dropped: bus.dropped(),
            connected: bus.is_connected(),
            settings_differ,
        })
    }

    /// Pushes `notice` to the store at `location` (through the process
    /// it is live at); false if it is not live or its queue here is full
    /// (the notice is dropped).
    pub fn notify(&self, location: &LocationId, notice: Notice) -> bool {
        let remote = {
            let inner = self.lock();
            !inner.live.contains_key(location) && self.reachable_remote(&inner, location).is_some()
        };
        if remote {
            self.publish(&BusMessage::Notice {
                location: location.clone(),
                notice,
            });
            return true;
        }
        self.notify_here(location, notice)
    }

    /// Pushes `notice` to the store at `location` if it is live here. An
    /// order's ask (`rights_wanted`, from another process) that meets a
    /// full queue waits for room within the order's wait, as one made
    /// here does; other notices are dropped and counted.
    fn notify_here(&self, location: &LocationId, notice: Notice) -> bool {
        let inner = self.lock();
        let Some(live) = inner.live.get(location) else {
            return false;
        };
        let notice = match live.notices.try_send(notice) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(n)) => n,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        };
        let wait = match &notice {
            Notice::RightsWanted { wait_ms, .. } => {
                wait_ms.map(|ms| Duration::from_millis(ms.min(3_600_000)))
            }
            _ => None,
        };
        match (wait, tokio::runtime::Handle::try_current()) {
            (Some(wait), Ok(runtime)) => {
                let notices = live.notices.clone();
                let dropped = self.dropped.clone();
                runtime.spawn(async move {
                    if !matches!(
                        tokio::time::timeout(wait, notices.send(notice)).await,
                        Ok(Ok(()))
                    ) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                });
                true
            }
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Pushes `notice` to every live store (at every hub process); how
    /// many here got it.
    pub fn broadcast(&self, notice: &Notice) -> usize {
        self.publish(&BusMessage::Broadcast {
            notice: notice.clone(),
        });
        self.broadcast_here(notice)
    }

    fn broadcast_here(&self, notice: &Notice) -> usize {
        let inner = self.lock();
        let mut sent = 0;
        for live in inner.live.values() {
            if live.notices.try_send(notice.clone()).is_ok() {
                sent += 1;
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        sent
    }

    /// The report of `location`'s release of `gtin` was refused: no order
    /// asks it for that item again for [`RELEASE_PAUSE`], at this hub
    /// process or (told over the bus) any other.
    pub fn release_refused(&self, location: &LocationId, gtin: Gtin) {
        self.pause_here(location.clone(), gtin, RELEASE_PAUSE);
        self.publish(&BusMessage::Paused {
            location: location.clone(),
            gtin,
            for_ms: u64::try_from(RELEASE_PAUSE.as_millis()).unwrap_or(u64::MAX),
        });
    }

    fn pause_here(&self, location: LocationId, gtin: Gtin, pause: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.paused.retain(|_, until| *until > now);
        inner.paused.insert((location, gtin), now + pause);
    }

    /// Whether `location` is not to be asked for `gtin` now (its last
    /// report of a release of it was refused a short while ago).
    pub fn release_paused(&self, location: &LocationId, gtin: Gtin) -> bool {
        self.lock()
            .paused
            .get(&(location.clone(), gtin))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Units this process holds for orders waiting on a release, in all.
    pub fn units_held(&self) -> u64 {
        self.lock()
            .held
            .values()
            .fold(0u64, |sum, &n| sum.saturating_add(n))
    }

    /// Units held at (`location`, `gtin`) for orders waiting on a release.
    pub fn held(&self, location: &LocationId, gtin: Gtin) -> u64 {
        self.holds_at(location).get(&gtin).copied().unwrap_or(0)
    }

    /// Units held at `location` for orders waiting on a release, per item
    /// (here and, as announced, at other processes).
    pub fn holds_at(&self, location: &LocationId) -> Held {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.remote_held.retain(|_, h| h.until > now);
        let mut out = Held::new();
        let remote = inner.remote_held.values().map(|h| (&h.key, h.units));
        let here = inner.held.iter().map(|(k, &n)| (k, n));
        for ((at, gtin), units) in here.chain(remote) {
            if at == location {
                let sum = out.entry(*gtin).or_default();
                *sum = sum.saturating_add(units);
            }
        }
        out
    }

    /// Holds `units` of `gtin` at `location` for an order that waits for
    /// a release of other items there (what the hub covers already is
    /// kept from the tills too, so the order, first come, is served
    /// first), here and, announced, at the other processes, for at most
    /// `wait` there; ended when the [`Hold`] drops.
    pub fn hold(
        self: &Arc<Self>,
        location: &LocationId,
        gtin: Gtin,
        units: u64,
        wait: Duration,
        now_ms: u64,
    ) -> Hold {
        let mut random = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let request_id = EventId::v7(now_ms, random);
        self.add_hold(&mut self.lock(), location, gtin, units, wait, request_id);
        Hold {
            links: self.clone(),
            key: (location.clone(), gtin),
            units,
            request_id,
        }
    }

    /// Counts `units` of `gtin` at `location` as held here and announces
    /// them to the other processes (for at most `wait` there), under the
    /// lock `inner`; a [`Hold`] under `request_id` ends them.
    fn add_hold(
        &self,
        inner: &mut Inner,
        location: &LocationId,
        gtin: Gtin,
        units: u64,
        wait: Duration,
        request_id: EventId,
    ) {
        *inner.held.entry((location.clone(), gtin)).or_default() += units;
        inner.local_held.insert(
            request_id,
            RemoteHold {
                key: (location.clone(), gtin),
                units,
                until: Instant::now() + wait,
            },
        );
        self.publish(&BusMessage::Held {
            request_id,
            location: location.clone(),
            gtin,
            units,
            for_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Asks the live store at `ask.location` to release up to
    /// `ask.units` unsold rights, holds `ask.hold` there meanwhile and
    /// waits up to `ask.wait` for its report ([`ReleaseAsk`]).
    pub async fn ask_release(self: &Arc<Self>, ask: ReleaseAsk<'_>, now_ms: u64) -> Asked {
        let ReleaseAsk {
            location,
            gtin,
            units,
            hold,
            counter,
            wait,
        } = ask;
        let mut random = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let request_id = EventId::v7(now_ms, random);
        let (report, answer) = oneshot::channel();
        let sent = {
            let mut inner = self.lock();
            let here = inner.live.get(location).map(|l| l.store.replica.clone());
            let Some(replica) =
                here.or_else(|| self.reachable_remote(&inner, location).map(|s| s.replica))
            else {
                return Asked::NotLive;
            };
            // The notice, telling the store how long the order still
            // waits (less, for one that waited for room in the queue).
            let theirs = counter.without(&replica);
            let notice = move |wait: Duration| Notice::RightsWanted {
                request_id,
                gtin,
                units,
                counter: Box::new(theirs),
                wait_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            };
            // Held before the store hears of it, here and (announced
            // first, so before the notice on the same bus) at the other
            // processes: a grant anywhere holds the units back.
            self.add_hold(&mut inner, location, gtin, hold, wait, request_id);
            // Waited for before the store hears of it, so a report as
            // quick as can be finds its order.
            inner.waiting.insert(
                request_id,
                Waiting {
                    location: location.clone(),
                    gtin,
                    report,
                },
            );
            match inner.live.get(location) {
                Some(live) => Some((live.notices.clone(), notice)),
                // Live at another process: it pushes the notice.
                None => {
                    self.publish(&BusMessage::Notice {
                        location: location.clone(),
                        notice: notice(wait),
                    });
                    None
                }
            }
        };
        // Made once the lock is released: dropping them takes the lock.
        // The waiting entry goes with this call, however it ends (an
        // order whose client went away included).
        let hold = Hold {
            links: self.clone(),
            key: (location.clone(), gtin),
            units: hold,
            request_id,
        };
        let _waiting = WaitingEntry {
            links: self.clone(),
            request_id,
        };
        let started = Instant::now();
        if let Some((notices, notice)) = sent {
            // A full queue (an order short of many items, many orders at
            // once) is waited on, within the ask's time, not taken for a
            // store out of reach; the notice then says the time left.
            match tokio::time::timeout(wait, notices.reserve()).await {
                Ok(Ok(room)) => room.send(notice(wait.saturating_sub(started.elapsed()))),
                Ok(Err(_)) => {
                    // The link closed meanwhile.
                    self.lock().waiting.remove(&request_id);
                    return Asked::NoAnswer;
                }
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.lock().waiting.remove(&request_id);
                    return Asked::NoAnswer;
                }
            }
        }
        let wait = wait.saturating_sub(started.elapsed());
        let mut answer = answer;
        let got = match tokio::time::timeout(wait, &mut answer).await {
            Ok(got) => {
                self.lock().waiting.remove(&request_id);
                got.ok()
            }
            // Out of time; but a report that took the waiting entry just
            // before is on its way here (`deliver_here` takes the entry,
            // then sends): take it, or it would be told "merged by the
            // order" and merged by nobody.
            Err(_) => {
                let unclaimed = self.lock().waiting.remove(&request_id).is_some();
                if unclaimed {
                    None
                } else {
                    answer.await.ok()
                }
            }
        };
        match got {
            Some((who, released)) => Asked::Reported {
                who,
                released,
                hold,
            },
            None => Asked::NoAnswer,
        }
    }

    /// Hands `who`'s report to the order waiting for it, if any; one no
    /// order here waits for is also published, for an order waiting at
    /// another process.
    pub fn deliver(&self, who: &Identity, released: RightsReleased) -> Delivered {
        let delivered = self.deliver_here(who, released);
        if let Delivered::Unclaimed(released) = &delivered {
            self.publish(&BusMessage::Released {
                replica: who.replica.clone(),
                location: who.location.clone(),
                released: (**released).clone(),
            });
        }
        delivered
    }

    fn deliver_here(&self, who: &Identity, released: RightsReleased) -> Delivered {
        let waiting = {
            let mut inner = self.lock();
            match inner.waiting.get(&released.request_id) {
                None => return Delivered::Unclaimed(Box::new(released)),
                Some(w) if w.location != who.location || w.gtin != released.gtin => {
                    return Delivered::Mismatch
                }
                Some(_) => inner.waiting.remove(&released.request_id),
            }
        };
        let Some(w) = waiting else {
            return Delivered::Unclaimed(Box::new(released));
        };
        match w.report.send((who.clone(), released)) {
            Ok(()) => Delivered::ToOrder,
            // The order stopped waiting just now.
            Err((_, released)) => Delivered::Unclaimed(Box::new(released)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(s: &str) -> Identity {
        Identity {
            replica: ReplicaId::new(s).unwrap(),
            location: LocationId::new(s).unwrap(),
        }
    }

    fn gtin() -> Gtin {
        Gtin::from_body(96_385_074).unwrap()
    }

    /// A store's report of one unit of the test item released for the
    /// ask `request_id`.
    fn one_released(request_id: EventId) -> RightsReleased {
        RightsReleased {
            request_id,
            gtin: gtin(),
            released: 1,
            own: BoundedCounter::default(),
        }
    }

    /// Asks store s1 for `units` of the test item, holding as many, with
    /// an empty counter, waiting up to `wait`.
    async fn ask_s1(links: &Arc<Links>, units: u64, wait: Duration) -> Asked {
        let (s1, counter) = (who("s1"), BoundedCounter::default());
        let ask = ReleaseAsk {
            location: &s1.location,
            gtin: gtin(),
            units,
            hold: units,
            counter: &counter,
            wait,
        };
        links.ask_release(ask, 9).await
    }

    #[tokio::test]
    async fn a_link_is_live_until_its_guard_drops_and_a_new_one_replaces_it() {
        let links = Links::new();
        let s1 = who("s1");
        let (g1, mut rx1) = links.connect(&s1, 5).unwrap();
        assert!(links.is_live(&s1.location));
        assert!(links.notify(&s1.location, Notice::SyncNow));
        assert_eq!(rx1.recv().await, Some(Notice::SyncNow));
        let (g2, _rx2) = links.connect(&s1, 6).unwrap();
        assert_eq!(rx1.recv().await, None, "the old stream ends");
        drop(g1);
        assert_eq!(
            links.live()[0].since_ms,
            6,
            "the old guard leaves the new link"
        );
        drop(g2);
        assert_eq!(links.count(), 0);
        assert!(!links.notify(&s1.location, Notice::SyncNow));
        links.close();
        assert!(links.connect(&s1, 7).is_none());
    }

    #[tokio::test]
    async fn a_full_queue_drops_notices_and_counts_them() {
        let links = Links::new();
        let (_g, _rx) = links.connect(&who("s1"), 0).unwrap();
        for _ in 0..NOTICE_QUEUE {
            assert!(links.notify(&who("s1").location, Notice::Heartbeat));
        }
        assert!(!links.notify(&who("s1").location, Notice::Heartbeat));
        assert_eq!(links.broadcast(&Notice::SyncNow), 0);
        assert_eq!(links.dropped(), 2);
    }

    #[tokio::test]
    async fn an_order_holds_units_while_it_waits_for_the_stores_report() {
        let links = Links::new();
        let s1 = who("s1");
        assert!(matches!(
            ask_s1(&links, 2, Duration::from_millis(10)).await,
            Asked::NotLive
        ));
        let (_g, mut rx) = links.connect(&s1, 0).unwrap();
        let asking = {
            let links = links.clone();
            tokio::spawn(async move { ask_s1(&links, 2, Duration::from_secs(30)).await })
        };
        let Some(Notice::RightsWanted {
            request_id, units, ..
        }) = rx.recv().await
        else {
            panic!("no notice");
        };
        assert_eq!((units, links.held(&s1.location, gtin())), (2, 2));
        let report = one_released(request_id);
        assert!(matches!(
            links.deliver(&who("s2"), report.clone()),
            Delivered::Mismatch
        ));
        assert!(matches!(
            links.deliver(&s1, report.clone()),
            Delivered::ToOrder
        ));
        let Asked::Reported { released, hold, .. } = asking.await.unwrap() else {
            panic!("no report");
        };
        assert_eq!(released.released, 1);
        assert_eq!(
            links.held(&s1.location, gtin()),
            2,
            "held while the order runs"
        );
        drop(hold);
        assert_eq!(links.held(&s1.location, gtin()), 0);
        assert!(matches!(
            links.deliver(&s1, report),
            Delivered::Unclaimed(_)
        ));
        // Nobody reports: the wait ends, the hold with it.
        let asked = ask_s1(&links, 1, Duration::from_millis(20)).await;
        assert!(matches!(asked, Asked::NoAnswer));
        assert_eq!(links.held(&s1.location, gtin()), 0);
    }

    /// An ask behind a full notice queue (an order short of many items)
    /// waits for room within its time and is answered, instead of being
    /// taken for a store out of reach; with no room in time, no answer.
    #[tokio::test]
    async fn an_ask_behind_a_full_queue_waits_for_room() {
        let links = Links::new();
        let s1 = who("s1");
        let (_g, mut rx) = links.connect(&s1, 0).unwrap();
        for _ in 0..NOTICE_QUEUE {
            assert!(links.notify(&s1.location, Notice::Heartbeat));
        }
        let asked = ask_s1(&links, 1, Duration::from_millis(30)).await;
        assert!(matches!(asked, Asked::NoAnswer), "no room in time");
        assert!(links.lock().waiting.is_empty(), "nothing left waiting");
        let asking = {
            let links = links.clone();
            tokio::spawn(async move { ask_s1(&links, 1, Duration::from_secs(30)).await })
        };
        // The store drains its queue; the ask's notice comes after, saying
        // the time the order still waits.
        let wanted = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match rx.recv().await {
                    Some(Notice::Heartbeat) => continue,
                    Some(Notice::RightsWanted {
                        request_id,
                        wait_ms,
                        ..
                    }) => break (request_id, wait_ms),
                    other => panic!("{other:?}"),
                }
            }
        })
        .await;
        let (request_id, wait_ms) = wanted.expect("the ask's notice after the queue drained");
        assert!(wait_ms.is_some_and(|ms| ms <= 30_000), "{wait_ms:?}");
        let report = one_released(request_id);
        assert!(matches!(links.deliver(&s1, report), Delivered::ToOrder));
        assert!(matches!(asking.await.unwrap(), Asked::Reported { .. }));
    }

    /// An ask whose order went away (its client disconnected) leaves
    /// nothing waiting: the store's late report is merged on its own.
    #[tokio::test]
    async fn an_ask_dropped_while_it_waits_leaves_nothing_waiting() {
        let links = Links::new();
        let s1 = who("s1");
        let (_g, mut rx) = links.connect(&s1, 0).unwrap();
        let asking = {
            let links = links.clone();
            tokio::spawn(async move { ask_s1(&links, 1, Duration::from_secs(30)).await })
        };
        let Some(Notice::RightsWanted { request_id, .. }) = rx.recv().await else {
            panic!("no notice");
        };
        assert_eq!(links.lock().waiting.len(), 1);
        asking.abort();
        let _ = asking.await;
        assert!(links.lock().waiting.is_empty());
        assert_eq!(links.held(&s1.location, gtin()), 0);
        let report = one_released(request_id);
        assert!(matches!(
            links.deliver(&s1, report),
            Delivered::Unclaimed(_)
        ));
    }

    /// A bus that keeps what is published, decoded.
    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<BusMessage>>, std::sync::atomic::AtomicBool);

    impl Bus for Recorded {
        fn publish(&self, payload: String) {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::from_str(&payload).unwrap());
        }

        fn is_connected(&self) -> bool {
            !self.1.load(Ordering::Relaxed)
        }
    }

    impl Recorded {
        fn take(&self) -> Vec<BusMessage> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn heard(links: &Links, m: &BusMessage) {
        links.on_bus(&serde_json::to_string(m).unwrap());
    }

    /// An order's ask from another process for a store linked here, met
    /// by a full queue, waits for room within the order's wait; other
    /// notices meeting it are dropped and counted.
    #[tokio::test]
    async fn an_ask_from_another_process_waits_for_room_here() {
        let (links, _bus) = shared();
        let s1 = who("s1");
        let (_g, mut rx) = links.connect(&s1, 0).unwrap();
        for _ in 0..NOTICE_QUEUE {
            assert!(links.notify(&s1.location, Notice::Heartbeat));
        }
        let request_id = EventId::v7(5, [3; 10]);
        heard(
            &links,
            &BusMessage::Notice {
                location: s1.location.clone(),
                notice: Notice::RightsWanted {
                    request_id,
                    gtin: gtin(),
                    units: 1,
                    counter: Box::new(BoundedCounter::default()),
                    wait_ms: Some(30_000),
                },
            },
        );
        heard(
            &links,
            &BusMessage::Notice {
                location: s1.location.clone(),
                notice: Notice::SyncNow,
            },
        );
        assert_eq!(links.dropped(), 1, "the sync-now dropped, not the ask");
        let got = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match rx.recv().await {
                    Some(Notice::Heartbeat) => continue,
                    other => break other,
                }
            }
        })
        .await
        .expect("the ask after the queue drained");
        assert!(
            matches!(got, Some(Notice::RightsWanted { request_id: r, .. }) if r == request_id),
            "{got:?}"
        );
    }

    /// Links sharing a recording bus; announcements count for a minute.
    fn shared() -> (Arc<Links>, Arc<Recorded>) {
        let links = Links::new();
        let bus = Arc::new(Recorded::default());
        links.with_bus(bus.clone(), Duration::from_secs(60));
        (links, bus)
    }

    /// Each process announces its version and shared settings with its
    /// links; one of the same version with other settings is reported
    /// (the bus state, so `/metrics`), one of another version (a rolling
    /// upgrade) or with the same settings is not.
    #[test]
    fn another_process_with_other_settings_is_reported() {
        let (links, bus) = shared();
        links.with_settings("1.2.0", "aaaa");
        links.announce_all();
        assert!(bus.take().contains(&BusMessage::Settings {
            version: "1.2.0".into(),
            fingerprint: "aaaa".into(),
        }));
        let settings = |version: &str, fingerprint: &str| BusMessage::Settings {
            version: version.into(),
            fingerprint: fingerprint.into(),
        };
        heard(&links, &settings("1.2.0", "aaaa"));
        heard(&links, &settings("1.3.0", "bbbb"));
        assert!(!links.bus_state().unwrap().settings_differ);
        heard(&links, &settings("1.2.0", "bbbb"));
        assert!(links.bus_state().unwrap().settings_differ);
    }

    /// `who`'s link (opened at `since_ms`) as a process announces it.
    fn announced(who: &Identity, since_ms: u64, live: bool) -> BusMessage {
        BusMessage::Live {
            replica: who.replica.clone(),
            location: who.location.clone(),
            since_ms,
            order: None,
            live,
        }
    }

    #[tokio::test]
    async fn links_at_other_hub_processes_are_shared_over_the_bus() {
        let (links, bus) = shared();
        let s1 = who("s1");
        let live = |since_ms, live| announced(&s1, since_ms, live);

        // Another process announces s1: live here too; notices for it
        // are published for that process to push.
        heard(&links, &live(5, true));
        assert!(links.is_live(&s1.location));
        assert_eq!(links.count(), 1);
        assert!(links.notify(&s1.location, Notice::SyncNow));
        assert_eq!(
            bus.take(),
            vec![BusMessage::Notice {
                location: s1.location.clone(),
                notice: Notice::SyncNow
            }]
        );
        // A report no order here waits for is published for the order
        // waiting there (and merged here all the same).
        let released = RightsReleased {
            request_id: EventId::v7(9, [1; 10]),
            gtin: gtin(),
            released: 2,
            own: BoundedCounter::default(),
        };
        assert!(matches!(
            links.deliver(&s1, released.clone()),
            Delivered::Unclaimed(_)
        ));
        assert_eq!(
            bus.take(),
            vec![BusMessage::Released {
                replica: s1.replica.clone(),
                location: s1.location.clone(),
                released: released.clone()
            }]
        );
        // An end announced for an older link leaves the newer one.
        heard(&links, &live(4, false));
        assert!(links.is_live(&s1.location));
        heard(&links, &live(5, false));
        assert!(!links.is_live(&s1.location));
        heard(&links, &live(5, true));

        // A link here is announced, and its end; a broadcast goes to
        // every process.
        let (g, mut rx) = links.connect(&s1, 7).unwrap();
        assert_eq!(bus.take(), vec![live(7, true)]);
        links.broadcast(&Notice::CatalogChanged);
        assert_eq!(rx.recv().await, Some(Notice::CatalogChanged));
        // A notice another process publishes for s1 is pushed here.
        heard(
            &links,
            &BusMessage::Notice {
                location: s1.location.clone(),
                notice: Notice::SyncNow,
            },
        );
        assert_eq!(rx.recv().await, Some(Notice::SyncNow));
        // So is a report for an order waiting here.
        let asking = {
            let links = links.clone();
            tokio::spawn(async move { ask_s1(&links, 2, Duration::from_secs(10)).await })
        };
        let Some(Notice::RightsWanted { request_id, .. }) = rx.recv().await else {
            panic!("no request")
        };
        heard(
            &links,
            &BusMessage::Released {
                replica: s1.replica.clone(),
                location: s1.location.clone(),
                released: RightsReleased {
                    request_id,
                    ..released
                },
            },
        );
        assert!(matches!(asking.await.unwrap(), Asked::Reported { .. }));
        drop(g);
        let sent = bus.take();
        assert_eq!(
            sent[0],
            BusMessage::Broadcast {
                notice: Notice::CatalogChanged
            }
        );
        assert_eq!(sent.last(), Some(&live(7, false)));
        // A process joining hears of the links here; nonsense is ignored.
        heard(&links, &BusMessage::Hello);
        links.on_bus("not a message");
        assert!(bus.take().is_empty(), "no link here any more");
    }

    /// A store that connects anew while its old connection is not yet
    /// known dead (another process holds the newer link): the newest link
    /// wins everywhere. The older link here ends, notices go to the newer
    /// one, and the old link's process repeating its announcement until
    /// its pings time out changes nothing.
    #[tokio::test]
    async fn the_newest_link_of_a_store_wins_across_processes() {
        let (links, bus) = shared();
        let s1 = who("s1");
        let live = |since_ms, live| announced(&s1, since_ms, live);
        let (g, mut rx) = links.connect(&s1, 5).unwrap();
        bus.take();
        // The store reconnected to another process at 7.
        heard(&links, &live(7, true));
        assert_eq!(rx.recv().await, None, "the old link here ended");
        assert!(links.is_live(&s1.location));
        assert!(links.notify(&s1.location, Notice::SyncNow));
        assert_eq!(
            bus.take(),
            vec![BusMessage::Notice {
                location: s1.location.clone(),
                notice: Notice::SyncNow
            }],
            "notices go to the newer link's process"
        );
        // A third process still announcing the older link elsewhere: the
        // newer one stands.
        heard(&links, &live(6, true));
        assert_eq!(links.live()[0].since_ms, 7);
        // The old link's guard goes: nothing more to end or announce.
        drop(g);
        assert!(bus.take().is_empty());
        assert_eq!(links.live()[0].since_ms, 7);

        // While the bus is down nothing reaches the other process: an
        // order is told at once the store cannot be asked, not after its
        // whole wait, and no notice counts as sent.
        bus.1.store(true, Ordering::Relaxed);
        assert!(matches!(
            ask_s1(&links, 1, Duration::from_secs(30)).await,
            Asked::NotLive
        ));
        assert!(!links.notify(&s1.location, Notice::SyncNow));
        assert_eq!(links.held(&s1.location, gtin()), 0);
        bus.1.store(false, Ordering::Relaxed);
        assert!(links.notify(&s1.location, Notice::SyncNow));
    }

    /// A hold is announced again with the links (each heartbeat, and to
    /// a process that joins): one that missed the first announcement (its
    /// bus was down, it was restarting) holds the units back too, and
    /// once the hold ends it is no longer announced.
    #[tokio::test]
    async fn a_hold_is_announced_again_to_a_process_that_missed_it() {
        let (here, there) = (Links::new(), Links::new());
        let bus = Arc::new(Recorded::default());
        here.with_bus(bus.clone(), Duration::from_secs(60));
        there.with_bus(Arc::new(Recorded::default()), Duration::from_secs(60));
        let s1 = who("s1");
        let hold = here.hold(&s1.location, gtin(), 3, Duration::from_secs(30), 1);
        // The first announcement never reached `there`.
        assert_eq!(bus.take().len(), 1);
        assert_eq!(there.held(&s1.location, gtin()), 0);
        here.announce_all();
        for m in bus.take() {
            heard(&there, &m);
        }
        assert_eq!(there.held(&s1.location, gtin()), 3);
        drop(hold);
        bus.take();
        here.announce_all();
        assert!(
            !bus.take()
                .iter()
                .any(|m| matches!(m, BusMessage::Held { .. })),
            "an ended hold is not announced again"
        );
    }

    /// A store whose release report one process refused is not asked
    /// for that item by orders at any process for a while: the pause is
    /// announced on the bus.
    #[tokio::test]
    async fn a_refused_release_pauses_asks_at_every_process() {
        let (here, there) = (Links::new(), Links::new());
        let bus = Arc::new(Recorded::default());
        here.with_bus(bus.clone(), Duration::from_secs(60));
        there.with_bus(Arc::new(Recorded::default()), Duration::from_secs(60));
        let s1 = who("s1");
        assert!(!there.release_paused(&s1.location, gtin()));
        here.release_refused(&s1.location, gtin());
        assert!(here.release_paused(&s1.location, gtin()));
        let sent = bus.take();
        assert!(
            matches!(&sent[..], [BusMessage::Paused { location, .. }] if *location == s1.location),
            "{sent:?}"
        );
        heard(&there, &sent[0]);
        assert!(there.release_paused(&s1.location, gtin()));
        assert!(!there.release_paused(&who("s2").location, gtin()));
    }

    /// Units held for an order at one process are held back by grants at
    /// every other: announced as the store is asked (on the bus ahead of
    /// the request, when that goes on the bus too: so before its
    /// release can reach any process), and their end announced too.
    /// With the database's order of openings, the newest link wins
    /// whatever the hosts' clocks say: a store reconnecting to a process
    /// whose clock is a minute behind replaces its old link here, and the
    /// old link's announcements (repeated until its pings time out) do
    /// not take it back. An announcement without an order (a process too
    /// old to give one) is judged by the clocks, as before.
    #[tokio::test]
    async fn the_newest_link_by_the_databases_order_wins_whatever_the_clocks() {
        let (links, bus) = shared();
        let s1 = who("s1");
        let ordered = |since_ms, order, live| BusMessage::Live {
            replica: s1.replica.clone(),
            location: s1.location.clone(),
            since_ms,
            order: Some(order),
            live,
        };
        // Opened here at 60,000 (this host's clock), 5th of all links.
        let (g, mut rx) = links.connect_ordered(&s1, 60_000, Some(5)).unwrap();
        bus.take();
        // The store reconnected at a host a minute behind: 6th.
        heard(&links, &ordered(1_000, 6, true));
        let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(ended, Ok(None), "the old link here ended");
        assert_eq!(links.live()[0].order, Some(6));
        // This process's old link, announced again (its guard not yet
        // gone): the newer stands.
        heard(&links, &ordered(60_000, 5, true));
        assert_eq!(links.live()[0].order, Some(6));
        drop(g);
        // The old link's end names its own opening: the newer stays.
        heard(&links, &ordered(60_000, 5, false));
        assert!(links.is_live(&s1.location));
        // Without an order, the clocks decide.
        heard(&links, &announced(&s1, 2_000, true));
        assert_eq!(links.live()[0].since_ms, 2_000);
        // The newer link ends: the store is not live.
        heard(&links, &announced(&s1, 2_000, false));
        assert!(!links.is_live(&s1.location));

        // A link whose place came before a later one another process
        // announced meanwhile is the store's old connection: it ends at
        // once, and the later one stands.
        heard(&links, &ordered(3_000, 9, true));
        bus.take();
        let (_old, mut rx) = links.connect_ordered(&s1, 3_001, Some(8)).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(ended, Ok(None), "the old connection's stream ends");
        assert_eq!(links.live()[0].order, Some(9));
        assert!(bus.take().is_empty(), "nothing announced for it");
    }

    #[tokio::test]
    async fn units_held_for_an_order_are_held_at_every_process() {
        let (here, there) = (Links::new(), Links::new());
        let bus = Arc::new(Recorded::default());
        here.with_bus(bus.clone(), Duration::from_secs(60));
        there.with_bus(Arc::new(Recorded::default()), Duration::from_secs(60));
        let s1 = who("s1");
        // s1 is live at a third process.
        heard(
            &here,
            &BusMessage::Live {
                replica: s1.replica.clone(),
                location: s1.location.clone(),
                since_ms: 1,
                order: None,
                live: true,
            },
        );
        let asking = {
            let here = here.clone();
            tokio::spawn(async move { ask_s1(&here, 3, Duration::from_millis(200)).await })
        };
        let mut sent = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent.is_empty() && Instant::now() < deadline {
            tokio::task::yield_now().await;
            sent = bus.take();
        }
        assert!(
            matches!(
                sent.as_slice(),
                [BusMessage::Held { units: 3, .. }, BusMessage::Notice { .. }]
            ),
            "held first, then asked: {sent:?}"
        );
        assert_eq!(here.held(&s1.location, gtin()), 3);
        heard(&there, &sent[0]);
        assert_eq!(there.held(&s1.location, gtin()), 3);
        assert_eq!(there.held(&who("s2").location, gtin()), 0);
        // Nobody answers: the wait ends, and so does the hold, everywhere.
        assert!(matches!(asking.await.unwrap(), Asked::NoAnswer));
        assert_eq!(here.held(&s1.location, gtin()), 0);
        let ended = bus.take();
        assert!(
            matches!(ended.as_slice(), [BusMessage::Unheld { .. }]),
            "{ended:?}"
        );
        heard(&there, &ended[0]);
        assert_eq!(there.held(&s1.location, gtin()), 0);
    }
}
