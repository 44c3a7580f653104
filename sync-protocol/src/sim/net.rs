//! The faulty network between the stores and the hub: requests and
//! responses as encoded bytes, delivered one at a time in random order,
//! lost, duplicated or cut off by partitions; restarts that drop what was
//! in flight; and the final heal that syncs every store until quiet.

use rand::Rng;

use super::{Msg, Sim};
use crate::codec::{self, Encoding};
use crate::command::{merge_allocations, merge_transfers};
use crate::message::{AllocationsPage, SyncResponse};

/// Most heal rounds before the run is declared not to quiesce.
const MAX_HEAL_ROUNDS: usize = 50;

impl Sim {
    /// Store `s` sends its next request.
    pub(super) fn sync(&mut self, s: usize) {
        let req = self.stores[s]
            .mem
            .sync_request(self.cfg.max_events_per_sync);
        match codec::encode(&req, Encoding::Binary) {
            Ok(bytes) => {
                let req_id = self.next_req;
                self.next_req += 1;
                self.stores[s].pending.insert(req_id, req);
                let cursor = self.stores[s].alloc_cursor;
                self.send(Msg::Request {
                    store: s,
                    req_id,
                    bytes,
                    cursor,
                });
            }
            Err(e) => self.violation(format!("encode request: {e}")),
        }
    }

    /// Store `s` syncs at once (a request and its answer, each of which
    /// may be lost like any message, not reordered with others): whether
    /// the answer arrived.
    pub(super) fn sync_at_once(&mut self, s: usize) -> bool {
        let in_flight = self.net.len();
        self.sync(s);
        for _ in 0..2 {
            if self.net.len() != in_flight + 1 {
                return false; // not sent (a violation is recorded)
            }
            let Some(msg) = self.net.pop() else {
                return false;
            };
            if self.rng.gen_bool(self.cfg.loss) {
                self.report.lost += 1;
                return false;
            }
            self.deliver(msg);
        }
        true
    }

    pub(super) fn send(&mut self, msg: Msg) {
        self.report.messages += 1;
        self.net.push(msg);
    }

    /// One message in flight, picked at random, arrives (or is lost, or
    /// arrives twice).
    pub(super) fn deliver_one(&mut self, step: usize) {
        if self.net.is_empty() {
            return;
        }
        let i = self.rng.gen_range(0..self.net.len());
        let msg = self.net.swap_remove(i);
        if self.stores[msg.store()].partitioned_until > step || self.rng.gen_bool(self.cfg.loss) {
            self.report.lost += 1;
            return;
        }
        if self.rng.gen_bool(self.cfg.duplication) {
            self.send(msg.clone());
        }
        self.deliver(msg);
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Request {
                store,
                req_id,
                bytes,
                cursor,
            } => self.at_hub(store, req_id, &bytes, cursor),
            Msg::Response {
                store,
                req_id,
                bytes,
                page,
            } => {
                self.at_store(store, req_id, &bytes);
                self.merge_page(store, &page);
            }
        }
    }

    /// Store `s` merges its allocation page (its allocations and
    /// transfers that changed at the hub) with the command core's
    /// [`merge_allocations`] and [`merge_transfers`], and keeps its cursor.
    fn merge_page(&mut self, s: usize, page: &AllocationsPage) {
        let st = &mut self.stores[s];
        let merged = merge_allocations(&mut st.mem, &page.allocations)
            .and_then(|_| merge_transfers(&mut st.mem, &page.transfers));
        if let Err(never) = merged {
            match never {}
        }
        st.alloc_cursor = st.alloc_cursor.max(page.cursor);
    }

    /// A response arrives at store `s`: applied as the agent applies it
    /// (a duplicate, or one whose request a restart forgot, too).
    fn at_store(&mut self, s: usize, req_id: u64, bytes: &[u8]) {
        let resp: SyncResponse =
            match codec::decode(bytes, Encoding::Binary, codec::DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(r) => r,
                Err(e) => return self.violation(format!("store decode: {e}")),
            };
        let st = &mut self.stores[s];
        let req = st.pending.remove(&req_id);
        let applied = st.mem.apply_response(req.as_ref(), &resp);
        self.report.rights_moved += applied.given.iter().map(|(_, n)| n).sum::<u64>();
        if !applied.rejected.is_empty() {
            self.violation(format!("hub rejected events: {:?}", applied.rejected));
        }
    }

    pub(super) fn restart_store(&mut self, s: usize) {
        self.report.restarts += 1;
        self.stores[s].pending.clear();
        self.net.retain(|m| m.store() != s);
    }

    pub(super) fn restart_hub(&mut self) {
        self.report.restarts += 1;
        self.net.clear();
    }

    /// Heals the network and syncs every store until nothing changes.
    pub(super) fn heal(&mut self) {
        for st in &mut self.stores {
            st.partitioned_until = 0;
        }
        self.net.clear();
        let mut last = self.fingerprint();
        let mut quiet_rounds = 0;
        for round in 1..=MAX_HEAL_ROUNDS {
            self.report.heal_rounds = round;
            for s in 0..self.stores.len() {
                // Like the agent: keep syncing while the outbox has a backlog.
                let pages =
                    self.stores[s].mem.outbox.len() / self.cfg.max_events_per_sync.max(1) + 1;
                for _ in 0..pages {
                    self.sync(s);
                    while let Some(msg) = self.net.pop() {
                        self.deliver(msg);
                    }
                }
            }
            let now = self.fingerprint();
            let drained = self.stores.iter().all(|s| s.mem.outbox.is_empty());
            if now == last && drained {
                quiet_rounds += 1;
                if quiet_rounds == 2 {
                    return;
                }
            } else {
                quiet_rounds = 0;
            }
            last = now;
        }
        self.violation(format!("no quiescence after {MAX_HEAL_ROUNDS} heal rounds"));
    }

    fn fingerprint(&self) -> Vec<u64> {
        let mut v = vec![self.hub.inventory.version()];
        v.extend(
            self.stores
                .iter()
                .map(|s| s.mem.replica.inventory.version()),
        );
        v
    }
}
