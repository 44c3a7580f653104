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
//!   meanwhile the units it asked for are *held* ([`Hold`]): the hub
//!   grants no store those rights until the order has run (first come,
//!   first served).
//! - No I/O here and no storage: the HTTP handlers (`api::link`,
//!   `api::orders`, `api::rights`) do the talking and the writing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::RngCore;
use tally_sync::exchange::Identity;
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

#[derive(Default)]
struct Inner {
    live: HashMap<LocationId, Live>,
    waiting: HashMap<EventId, Waiting>,
    held: HashMap<(LocationId, Gtin), u64>,
    closed: bool,
}

/// The hub's live links. Shared by the handlers (`Arc`).
#[derive(Default)]
pub struct Links {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    dropped: AtomicU64,
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
            inner.live.remove(&self.location);
        }
    }
}

/// Units an online order waits for at a location: while it lives, grants
/// to stores keep them back ([`Links::held`]).
#[derive(Debug)]
pub struct Hold {
    links: Arc<Links>,
    key: (LocationId, Gtin),
    units: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut inner = self.links.lock();
        if let Some(h) = inner.held.get_mut(&self.key) {
            *h = h.saturating_sub(self.units);
            if *h == 0 {
                inner.held.remove(&self.key);
            }
        }
    }
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
            },
            notices: tx,
        };
        // A replaced link's sender is dropped here: its stream ends.
        inner.live.insert(who.location.clone(), live);
        Some((
            LinkGuard {
                links: self.clone(),
                location: who.location.clone(),
                id,
            },
            rx,
        ))
    }

    /// Ends every link (their streams finish) and refuses new ones: the
    /// hub is stopping.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.live.clear();
    }

    /// How many stores are live.
    pub fn count(&self) -> usize {
        self.lock().live.len()
    }

    /// The live stores, by location.
    pub fn live(&self) -> Vec<LiveStore> {
        let mut v: Vec<LiveStore> = self.lock().live.values().map(|l| l.store.clone()).collect();
        v.sort_by(|a, b| a.location.cmp(&b.location));
        v
    }

    /// Whether the store at `location` is live.
    pub fn is_live(&self, location: &LocationId) -> bool {
        self.lock().live.contains_key(location)
    }

    /// Notices dropped because a link's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Pushes `notice` to the store at `location`; false if it is not
    /// live or its queue is full (the notice is dropped).
    pub fn notify(&self, location: &LocationId, notice: Notice) -> bool {
        let inner = self.lock();
        let Some(live) = inner.live.get(location) else {
            return false;
        };
        let sent = live.notices.try_send(notice).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Pushes `notice` to every live store; how many got it.
    pub fn broadcast(&self, notice: &Notice) -> usize {
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

    /// Units held at (`location`, `gtin`) for orders waiting on a release.
    pub fn held(&self, location: &LocationId, gtin: Gtin) -> u64 {
        self.lock()
            .held
            .get(&(location.clone(), gtin))
            .copied()
            .unwrap_or(0)
    }

    /// Asks the live store at `location` to release up to `units` unsold
    /// rights to `gtin`, holding them for the asking order, and waits up to
    /// `wait` for its report. `counter` is the hub's view of the counter:
    /// its entries other than the store's go with the request.
    pub async fn ask_release(
        self: &Arc<Self>,
        location: &LocationId,
        gtin: Gtin,
        units: u64,
        counter: &BoundedCounter,
        wait: Duration,
        now_ms: u64,
    ) -> Asked {
        let mut random = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let request_id = EventId::v7(now_ms, random);
        let (report, answer) = oneshot::channel();
        let hold = {
            let mut inner = self.lock();
            let Some(live) = inner.live.get(location) else {
                return Asked::NotLive;
            };
            let notice = Notice::RightsWanted {
                request_id,
                gtin,
                units,
                counter: Box::new(counter.without(&live.store.replica)),
            };
            if live.notices.try_send(notice).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Asked::NoAnswer;
            }
            inner.waiting.insert(
                request_id,
                Waiting {
                    location: location.clone(),
                    gtin,
                    report,
                },
            );
            *inner.held.entry((location.clone(), gtin)).or_default() += units;
            Hold {
                links: self.clone(),
                key: (location.clone(), gtin),
                units,
            }
        };
        let got = tokio::time::timeout(wait, answer).await;
        self.lock().waiting.remove(&request_id);
        match got {
            Ok(Ok((who, released))) => Asked::Reported {
                who,
                released,
                hold,
            },
            _ => Asked::NoAnswer,
        }
    }

    /// Hands `who`'s report to the order waiting for it, if any.
    pub fn deliver(&self, who: &Identity, released: RightsReleased) -> Delivered {
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
            links
                .ask_release(
                    &s1.location,
                    gtin(),
                    2,
                    &BoundedCounter::default(),
                    Duration::from_millis(10),
                    1
                )
                .await,
            Asked::NotLive
        ));
        let (_g, mut rx) = links.connect(&s1, 0).unwrap();
        let asking = {
            let links = links.clone();
            let loc = s1.location.clone();
            tokio::spawn(async move {
                links
                    .ask_release(
                        &loc,
                        gtin(),
                        2,
                        &BoundedCounter::default(),
                        Duration::from_secs(30),
                        1,
                    )
                    .await
            })
        };
        let Some(Notice::RightsWanted {
            request_id, units, ..
        }) = rx.recv().await
        else {
            panic!("no notice");
        };
        assert_eq!((units, links.held(&s1.location, gtin())), (2, 2));
        let report = RightsReleased {
            request_id,
            gtin: gtin(),
            released: 1,
            own: BoundedCounter::default(),
        };
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
        let asked = links
            .ask_release(
                &s1.location,
                gtin(),
                1,
                &BoundedCounter::default(),
                Duration::from_millis(20),
                2,
            )
            .await;
        assert!(matches!(asked, Asked::NoAnswer));
        assert_eq!(links.held(&s1.location, gtin()), 0);
    }
}
