//! The ids of events the agent derives from what it saw (a tag read, a
//! transfer's first tag, a count's result for an item) instead of
//! drawing at random, so that a re-read or a retry computes the same id
//! and records nothing twice (pure: no I/O).
//!
//! # Design constraints
//! - **Unguessable by other stores.** Event ids are unique chain-wide at
//!   the hub. Were a derived id computable from public facts (a store's
//!   id, a transfer's id, an EPC), another store could sync an event
//!   under it first: the hub would then refuse this store's own receipt
//!   as an id conflict, and with it, since its counters carry that
//!   receipt, every later sync of this store. So each id is keyed by a
//!   random 256-bit secret the store's database makes once and never
//!   sends ([`EventIds::new`] takes it; `AgentDb::open` keeps it).
//! - **Stable.** The same store, secret and inputs give the same id in
//!   every version and after restarts: a UUIDv8 whose 122 free bits are
//!   the first bits of SHA-256 over a fixed label, the secret, the store
//!   id, the key and a generation (RFC 9562 §5.8). Only the secret's 122
//!   output bits are ever seen, so the hash's length extension gives an
//!   observer nothing.

use sha2::{Digest, Sha256};
use tally_sync::{Epc, EventId, Gtin, ReplicaId};

/// Bytes of the secret that keys derived ids.
pub const SECRET_LEN: usize = 32;

/// Derives this store's event ids (see the module docs).
#[derive(Clone)]
pub struct EventIds {
    store: ReplicaId,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for EventIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("EventIds")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl EventIds {
    /// The ids of `store`'s events, keyed by its `secret`.
    pub fn new(store: ReplicaId, secret: [u8; SECRET_LEN]) -> Self {
        Self { store, secret }
    }

    /// The store whose ids these are.
    pub fn store(&self) -> &ReplicaId {
        &self.store
    }

    /// The id of the receipt of `epc` in `generation` (how many sales of
    /// the tag are recorded here): a re-read gets the same one.
    pub fn receipt(&self, epc: &Epc, generation: u64) -> EventId {
        self.derive(b"tally/rfid-receipt/v2\0", epc.as_bytes(), generation)
    }

    /// The id of the receipt of the whole transfer `transfer_id` (every
    /// tag of it computes the same one).
    pub fn transfer_receipt(&self, transfer_id: &str) -> EventId {
        self.derive(b"tally/rfid-transfer/v2\0", transfer_id.as_bytes(), 0)
    }

    /// The id of the adjustment a count session's result makes to `gtin`.
    pub fn count_adjustment(&self, session: &str, gtin: Gtin) -> EventId {
        let key = format!("{session}\0{gtin}");
        self.derive(b"tally/rfid-count/v2\0", key.as_bytes(), 0)
    }

    fn derive(&self, label: &[u8], key: &[u8], generation: u64) -> EventId {
        let mut h = Sha256::new();
        h.update(label);
        h.update(self.secret);
        h.update(self.store.as_str().as_bytes());
        h.update(b"\0");
        h.update(key);
        h.update(generation.to_be_bytes());
        let digest = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = 0x80 | (b[6] & 0x0F); // version 8
        b[8] = 0x80 | (b[8] & 0x3F); // RFC 9562 variant
        EventId(uuid::Uuid::from_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epc(n: u8) -> Epc {
        Epc::from_bytes(&[0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n]).unwrap()
    }

    #[test]
    fn ids_are_stable_and_differ_by_store_secret_key_and_generation() {
        let s1 = ReplicaId::new("s1").unwrap();
        let ids = EventIds::new(s1.clone(), [7; SECRET_LEN]);
        let first = ids.receipt(&epc(1), 0);
        assert_eq!(
            first,
            EventIds::new(s1.clone(), [7; SECRET_LEN]).receipt(&epc(1), 0)
        );
        assert_ne!(first, ids.receipt(&epc(1), 1), "per generation");
        assert_ne!(first, ids.receipt(&epc(2), 0), "per tag");
        let other_store = EventIds::new(ReplicaId::new("s2").unwrap(), [7; SECRET_LEN]);
        assert_ne!(first, other_store.receipt(&epc(1), 0), "per store");
        // Another store that knows this one's id, the tag and the transfer
        // but not the secret computes other ids.
        let guess = EventIds::new(s1, [0; SECRET_LEN]);
        assert_ne!(first, guess.receipt(&epc(1), 0));
        assert_ne!(ids.transfer_receipt("t-9"), guess.transfer_receipt("t-9"));
        let g = Gtin::from_body(61414112345).unwrap();
        assert_ne!(
            ids.count_adjustment("c1", g),
            guess.count_adjustment("c1", g)
        );
        assert_eq!(ids.count_adjustment("c1", g), ids.count_adjustment("c1", g));
        // A v8 UUID with the RFC 9562 variant.
        assert_eq!(first.0.get_version_num(), 8);
        assert_eq!(first.0.as_bytes()[8] & 0xC0, 0x80);
        assert!(!format!("{ids:?}").contains('7'), "no secret in Debug");
    }
}
