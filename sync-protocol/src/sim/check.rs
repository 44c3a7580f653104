//! The verdict: the escrow invariant on every replica, convergence after
//! healing, double-selling computed from the events alone, and counters
//! cross-checked against those events.

use super::Sim;
use crate::exchange::MemoryReplica;

impl Sim {
    /// No replica anywhere has negative on-hand or negative rights.
    pub(super) fn check_escrow(&mut self, when: &str) {
        let mut found = Vec::new();
        let replicas: Vec<&MemoryReplica> = std::iter::once(&self.hub)
            .chain(self.stores.iter().map(|s| &s.mem.replica))
            .collect();
        for state in replicas {
            for (key, c) in state.inventory.iter() {
                if c.on_hand_signed() < 0 {
                    found.push(format!("{when}: negative on-hand at {key:?}"));
                }
                for r in c.replicas() {
                    if c.balance(&r) < 0 {
                        found.push(format!("{when}: negative rights for {r} at {key:?}"));
                    }
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    pub(super) fn check(&mut self) {
        self.check_escrow("after healing");
        // Convergence: every store's counters equal the hub's, and the hub
        // holds every store's events.
        let mut converged = true;
        for st in &self.stores {
            let mine = &st.mem.replica;
            if !mine
                .inventory
                .same_state_at(&self.hub.inventory, &st.mem.who.location)
            {
                converged = false;
            }
            if mine
                .journal
                .iter()
                .any(|e| !self.hub.journal.contains(&e.id))
            {
                converged = false;
            }
        }
        self.report.converged = converged;

        // Double-selling, from the events every replica accepted.
        let mut all = crate::journal::Journal::new();
        all.merge(&self.hub.journal);
        for st in &self.stores {
            all.merge(&st.mem.replica.journal);
        }
        self.report.double_sold = crate::audit::double_sold(all.iter());
        let mut epcs = self.hub.epcs.clone();
        for st in &self.stores {
            epcs.merge(&st.mem.replica.epcs);
        }
        self.report.double_sold_epcs = epcs.double_sold().len();

        // Counters and events must tell the same story.
        let flows = crate::audit::flows(all.iter());
        let mut mismatches = Vec::new();
        for (key, flow) in &flows {
            let on_hand = self.hub.inventory.counter(key).value();
            if u128::from(on_hand) != flow.on_hand() {
                mismatches.push(format!(
                    "{key:?}: counters say {on_hand} on hand, events say {}",
                    flow.on_hand()
                ));
            }
        }
        for m in mismatches {
            self.violation(m);
        }
    }
}
