//! Routed orders and transfers counted by status, kept as they move (in
//! the transaction that moves them), so HQ reads the counts in
//! O(statuses) however many orders and transfers the hub holds
//! (`GET /v1/stats/orders`, the dashboard).
//!
//! Table `hub_status_counts`: (`"orders"` or `"transfers"`, status name)
//! → how many have that status.
//!
//! # Upgrade
//! A hub database from before this table gets it filled once, when
//! opened ([`build`]): one pass over the two status indexes
//! (`hub_routed_orders_by_status`, `hub_transfers_by_status`), and the
//! index of received transfers (`hub_transfers_received`) filled from the
//! received ones, by their receipt's time. The meta key
//! `hub_status_counts_v1` set to `1` marks it done.

use tally_store::redb::{ReadableTable, TableDefinition};
use tally_store::{Db, ReadTxn, StoreError, WriteTxn};

use super::redb_err;

pub(in crate::storage) const COUNTS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("hub_status_counts");

use crate::storage::status_counts::{StatusCounts, ORDER_STATUSES, TRANSFER_STATUSES};
pub(in crate::storage) use crate::storage::status_counts::{ORDERS, TRANSFERS};

pub(in crate::storage) const BUILT: &str = "hub_status_counts_v1";

/// Records that one record of `kind` moved from status `was` (`None`: a
/// new record) to `now`; nothing when it stays where it was.
pub(in crate::storage) fn moved(
    txn: &WriteTxn,
    kind: &str,
    was: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    if was == Some(now) {
        return Ok(());
    }
    let mut counts = txn.raw().open_table(COUNTS).map_err(redb_err)?;
    let mut add = |status: &str, up: bool| -> Result<(), StoreError> {
        let n = counts
            .get((kind, status))
            .map_err(redb_err)?
            .map_or(0, |v| v.value());
        let n = if up {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
        counts.insert((kind, status), n).map_err(redb_err)?;
        Ok(())
    };
    if let Some(was) = was {
        add(was, false)?;
    }
    add(now, true)
}

/// The counts, from a snapshot.
pub(in crate::storage) fn read(txn: &ReadTxn) -> Result<StatusCounts, StoreError> {
    let counts = txn.raw().open_table(COUNTS).map_err(redb_err)?;
    StatusCounts::read(|kind, status| {
        Ok(counts
            .get((kind, status))
            .map_err(redb_err)?
            .map_or(0, |v| v.value()))
    })
}

/// How many entries of a status index have `status`.
fn count_in(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    status: &str,
) -> Result<u64, StoreError> {
    let mut n = 0u64;
    for row in index.range((status, "")..).map_err(redb_err)? {
        let (k, _) = row.map_err(redb_err)?;
        if k.value().0 != status {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Fills the counts and the index of received transfers once, from what
/// the database holds (see the module docs); a no-op once done.
pub(in crate::storage) fn build(db: &Db) -> Result<(), StoreError> {
    let txn: WriteTxn = db.begin_write()?;
    if txn.get_meta(BUILT)?.as_deref() == Some(b"1".as_slice()) {
        return txn.abort();
    }
    let raw = txn.raw();
    let mut counted = 0u64;
    {
        let orders = raw.open_table(super::routed::BY_STATUS).map_err(redb_err)?;
        let transfers = raw
            .open_table(super::transfers::BY_STATUS)
            .map_err(redb_err)?;
        let mut counts = raw.open_table(COUNTS).map_err(redb_err)?;
        for s in ORDER_STATUSES {
            let n = count_in(&orders, s.name())?;
            counts.insert((ORDERS, s.name()), n).map_err(redb_err)?;
            counted += n;
        }
        for s in TRANSFER_STATUSES {
            let n = count_in(&transfers, s.name())?;
            counts.insert((TRANSFERS, s.name()), n).map_err(redb_err)?;
            counted += n;
        }
    }
    super::transfers::index_received(&txn)?;
    txn.put_meta(BUILT, b"1")?;
    txn.commit()?;
    if counted > 0 {
        tracing::info!(
            records = counted,
            "Counted routed orders and transfers by status."
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use tally_sync::transfer::{Transfer, TransferStatus};
    use tally_sync::LocationId;

    use super::super::to_json;
    use super::super::transfers;
    use super::*;
    use crate::storage::redb::routed;

    fn transfer(id: &str, status: TransferStatus, received_at_ms: Option<u64>) -> Vec<u8> {
        let t = crate::storage::transfers::HubTransfer {
            transfer: Transfer {
                transfer_id: id.into(),
                from: LocationId::new("s1").unwrap(),
                to: LocationId::new("s2").unwrap(),
                lines: Vec::new(),
                status,
                sent_at_ms: 1,
                sent_event: None,
            },
            seen_at_ms: 2,
            received_at_ms,
            overdue: false,
        };
        to_json("hub_transfers", &t).unwrap()
    }

    #[test]
    fn counts_are_built_once_from_the_indexes_then_follow_each_move() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("hub.redb")).unwrap();
        // What a hub from before the counts holds: records and indexes.
        let txn = db.begin_write().unwrap();
        {
            let raw = txn.raw();
            let mut orders = raw.open_table(routed::BY_STATUS).unwrap();
            for (status, id) in [("allocated", "a1"), ("allocated", "a2"), ("shipped", "s1")] {
                orders.insert((status, id), ()).unwrap();
            }
            let mut index = raw.open_table(transfers::BY_STATUS).unwrap();
            let mut table = raw.open_table(transfers::TRANSFERS).unwrap();
            for (id, status, at) in [
                ("t1", TransferStatus::Received, Some(30)),
                ("t2", TransferStatus::InTransit, None),
                ("t3", TransferStatus::Received, Some(10)),
            ] {
                index.insert((status.name(), id), ()).unwrap();
                table
                    .insert(id, transfer(id, status, at).as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();

        build(&db).unwrap();
        let counts = read(&db.begin_read().unwrap()).unwrap();
        let n = |m: &BTreeMap<String, u64>, s: &str| m[s];
        assert_eq!(counts.orders.len(), 5, "every status: {counts:?}");
        assert_eq!(n(&counts.orders, "allocated"), 2);
        assert_eq!(n(&counts.orders, "shipped"), 1);
        assert_eq!(n(&counts.orders, "cancelled"), 0);
        assert_eq!(n(&counts.transfers, "in_transit"), 1);
        assert_eq!(n(&counts.transfers, "received"), 2);
        // The received ones, latest receipt first.
        let recent: Vec<String> = transfers::recent(&db.begin_read().unwrap(), 10)
            .unwrap()
            .into_iter()
            .map(|t| t.transfer.transfer_id)
            .collect();
        assert_eq!(recent, ["t1", "t3"]);

        // Moves are counted; staying put is not; a second build is a no-op.
        let txn = db.begin_write().unwrap();
        moved(&txn, ORDERS, Some("allocated"), "picked").unwrap();
        moved(&txn, ORDERS, Some("picked"), "picked").unwrap();
        moved(&txn, ORDERS, None, "allocated").unwrap();
        moved(&txn, TRANSFERS, Some("in_transit"), "received").unwrap();
        txn.commit().unwrap();
        build(&db).unwrap();
        let counts = read(&db.begin_read().unwrap()).unwrap();
        assert_eq!(n(&counts.orders, "allocated"), 2);
        assert_eq!(n(&counts.orders, "picked"), 1);
        assert_eq!(n(&counts.transfers, "in_transit"), 0);
        assert_eq!(n(&counts.transfers, "received"), 3);
    }
}
