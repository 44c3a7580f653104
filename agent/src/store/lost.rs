//! Sales refused for lack of rights, by sale id, before they count as
//! lost (`agent_lost_pending`).
//!
//! A till retries a refused sale under its id (the cashier presses F5
//! again, rights on demand arrive a moment later, a manager approves an
//! override): counted at each refusal, one customer's sale was many lost
//! sales, and one that went through was lost all the same. So a refused
//! sale with an id waits here; once [`GRACE_MS`] has passed since its
//! first refusal ([`settle`], run with each sync's answer), it counts as
//! lost unless a sale under its id was recorded meanwhile. Its row stays
//! [`RETAIN_MS`] after that, so a later retry under the same id is not
//! counted again; then it goes, so the table holds a day of refusals,
//! not the store's history.
//!
//! The same row tells the committer that a sale refused again is a retry,
//! whose shortfall is no new demand ([`refused_before`]).
//!
//! Row: sale id (u128) → reason (1 byte, its index in
//! [`tally_sync::lost::REASONS`]), units (8, little-endian), first
//! refused at (8, Unix ms), counted (1: 0 or 1).

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{ReadTxn, StoreError, WriteTxn};
use tally_sync::lost::{ByReason, Lost, REASONS};
use tally_sync::{EventId, Shortage};

use super::tables::storage;

/// The table. See the module docs.
pub(super) const LOST_PENDING: TableDefinition<u128, &[u8]> =
    TableDefinition::new("agent_lost_pending");

/// How long a refused sale waits before it counts as lost.
pub const GRACE_MS: u64 = 10 * 60 * 1000;
/// How long a counted refusal's id is kept, so a retry is not counted
/// again.
pub const RETAIN_MS: u64 = 24 * 60 * 60 * 1000;

/// One refused sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    reason: Shortage,
    units: u64,
    at_ms: u64,
    counted: bool,
}

impl Pending {
    fn encode(&self) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[0] = REASONS
            .iter()
            .position(|&r| r == self.reason)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(0);
        out[1..9].copy_from_slice(&self.units.to_le_bytes());
        out[9..17].copy_from_slice(&self.at_ms.to_le_bytes());
        out[17] = u8::from(self.counted);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            table: "agent_lost_pending",
            detail: detail.to_string(),
        };
        let bytes: &[u8; 18] = bytes.try_into().map_err(|_| corrupt("not 18 bytes"))?;
        let reason = *REASONS
            .get(usize::from(bytes[0]))
            .ok_or_else(|| corrupt("unknown reason"))?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        Ok(Self {
            reason,
            units: word(1),
            at_ms: word(9),
            counted: match bytes[17] {
                0 => false,
                1 => true,
                _ => return Err(corrupt("bad counted flag")),
            },
        })
    }
}

/// Notes sale `id` refused for `reason` (`units` asked for) at `at_ms`,
/// unless it was refused before: its first refusal is the one that
/// counts.
pub(crate) fn note_refused(
    txn: &WriteTxn,
    id: EventId,
    reason: Shortage,
    units: u64,
    at_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.raw().open_table(LOST_PENDING).map_err(storage)?;
    if t.get(id.0.as_u128()).map_err(storage)?.is_some() {
        return Ok(());
    }
    let row = Pending {
        reason,
        units,
        at_ms,
        counted: false,
    };
    t.insert(id.0.as_u128(), row.encode().as_slice())
        .map_err(storage)?;
    Ok(())
}

/// When sale `id` was first refused for lack of rights (the agent's
/// clock, Unix ms), if it was and its row is still kept.
pub(crate) fn first_refused_at(txn: &ReadTxn, id: EventId) -> Result<Option<u64>, StoreError> {
    // Made by the first refusal's write: none yet, no refusal.
    let t = match txn.raw().open_table(LOST_PENDING) {
        Ok(t) => t,
        Err(tally_store::redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(storage(e)),
    };
    let row = t.get(id.0.as_u128()).map_err(storage)?;
    row.map(|v| Pending::decode(v.value()).map(|p| p.at_ms))
        .transpose()
}

/// Whether sale `id` was refused for lack of rights before (its row is
/// here, counted or not): a retry of one customer's sale, whose demand
/// was counted the first time.
pub(crate) fn refused_before(txn: &WriteTxn, id: EventId) -> Result<bool, StoreError> {
    let t = txn.raw().open_table(LOST_PENDING).map_err(storage)?;
    let found = t.get(id.0.as_u128()).map_err(storage)?.is_some();
    Ok(found)
}

/// At `now_ms`: the refused sales whose grace is over count as lost
/// (answered, to add to the totals) unless `recorded` says a sale under
/// their id was recorded since; ids counted more than [`RETAIN_MS`] ago
/// go. O(refusals of the last day).
pub(crate) fn settle(
    txn: &WriteTxn,
    now_ms: u64,
    recorded: impl Fn(EventId) -> Result<bool, StoreError>,
) -> Result<ByReason<Lost>, StoreError> {
    let mut t = txn.raw().open_table(LOST_PENDING).map_err(storage)?;
    let mut due = Vec::new();
    for row in t.iter().map_err(storage)? {
        let (k, v) = row.map_err(storage)?;
        let p = Pending::decode(v.value())?;
        let age = now_ms.saturating_sub(p.at_ms);
        if (p.counted && age >= RETAIN_MS) || (!p.counted && age >= GRACE_MS) {
            due.push((k.value(), p));
        }
    }
    let mut lost = ByReason::<Lost>::default();
    for (key, p) in due {
        if p.counted || recorded(EventId(uuid::Uuid::from_u128(key)))? {
            t.remove(key).map_err(storage)?;
            continue;
        }
        lost.get_mut(p.reason).add_sale(p.units);
        let counted = Pending { counted: true, ..p };
        t.insert(key, counted.encode().as_slice())
            .map_err(storage)?;
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AgentDb;
    use tally_store::redb::ReadableTableMetadata;
    use tally_sync::ReplicaId;

    fn id(n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(n))
    }

    /// One sale refused again and again counts once, after the grace; a
    /// sale recorded within the grace (an override, a retry that went
    /// through) not at all; a counted id is kept a day against retries,
    /// then dropped.
    #[test]
    fn a_refused_sale_counts_once_and_only_if_it_never_went_through() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = ReplicaId::new("s1").unwrap_or_else(|e| panic!("{e}"));
        let db = AgentDb::open(dir.path(), Some(&store)).unwrap_or_else(|e| panic!("{e}"));
        let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        let t0 = 1_780_000_000_000;
        let (lost_one, went_through) = (id(1), id(2));
        let run = |r: Result<(), StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        run(note_refused(&txn, lost_one, Shortage::NoStock, 2, t0));
        run(note_refused(&txn, lost_one, Shortage::Offline, 2, t0 + 5));
        run(note_refused(
            &txn,
            went_through,
            Shortage::HeldElsewhere,
            1,
            t0,
        ));
        let recorded = |i: EventId| Ok(i == went_through);
        let settle_at = |now| settle(&txn, now, recorded).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settle_at(t0 + GRACE_MS - 1), ByReason::default());
        let mut once = ByReason::<Lost>::default();
        once.get_mut(Shortage::NoStock).add_sale(2);
        assert_eq!(settle_at(t0 + GRACE_MS), once, "the first refusal's reason");
        // Refused again later: no new count; nothing twice.
        run(note_refused(
            &txn,
            lost_one,
            Shortage::NoStock,
            2,
            t0 + GRACE_MS + 1,
        ));
        assert_eq!(settle_at(t0 + 3 * GRACE_MS), ByReason::default());
        let rows = |txn: &WriteTxn| {
            let t = txn
                .raw()
                .open_table(LOST_PENDING)
                .unwrap_or_else(|e| panic!("{e}"));
            ReadableTableMetadata::len(&t).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(rows(&txn), 1, "the recorded sale's row went");
        assert_eq!(settle_at(t0 + RETAIN_MS), ByReason::default());
        assert_eq!(rows(&txn), 0, "kept a day, then dropped");
    }

    #[test]
    fn a_row_reads_back_as_written_and_damage_is_an_error() {
        for reason in REASONS {
            for counted in [false, true] {
                let p = Pending {
                    reason,
                    units: u64::MAX - 3,
                    at_ms: 1_780_000_000_000,
                    counted,
                };
                assert_eq!(Pending::decode(&p.encode()).ok(), Some(p));
            }
        }
        let mut bad = Pending {
            reason: Shortage::NoStock,
            units: 1,
            at_ms: 1,
            counted: false,
        }
        .encode();
        assert!(Pending::decode(&bad[..17]).is_err());
        bad[17] = 2;
        assert!(Pending::decode(&bad).is_err());
        bad[17] = 0;
        bad[0] = 9;
        assert!(Pending::decode(&bad).is_err());
    }
}
