//! [`HubStorage`] for [`PgHub`]: the batch entry point and the snapshot
//! reads HQ's pages and the API make, each on a pooled read connection;
//! a read of more than one statement runs in one `REPEATABLE READ`
//! transaction, so it sees one snapshot as the embedded hub's reads do.

use tally_sync::message::{AllocationsPage, CatalogItem};
use tally_sync::transfer::TransferStatus;
use tally_sync::{BoundedCounter, Epc, Gtin, ItemKey, LocationId, ReplicaId};

use super::conn::{cursor_i64, to_i64, PgConn};
use super::txn::{
    catalog_item, col, event, int, json, json_in_bytes, postcard, routed_order, stored_counter,
    transfer,
};
use super::PgHub;
use crate::storage::held::HeldEvent;
use crate::storage::logic::routed::allocations_page;
use crate::storage::returns::CrossReturn;
use crate::storage::routed::RoutedOrder;
use crate::storage::transfers::HubTransfer;
use crate::storage::{
    AuditReport, ExceptionRecord, HubStorage, HubWrite, StatusCounts, StorageError, StoreRecord,
    StoreStock,
};

/// Rows read per round trip when a read walks a whole table.
const CHUNK: i64 = 1_000;

/// Runs `read` in one read-only snapshot on `conn`.
fn snapshot<T>(
    conn: &PgConn,
    read: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let out = read();
    // Nothing was written: ending it either way is the same.
    let ended = conn.batch("ROLLBACK");
    let out = out?;
    ended?;
    Ok(out)
}

fn limit(n: usize) -> Result<i64, StorageError> {
    to_i64("limit", n as u64)
}

fn docs<T: serde::de::DeserializeOwned>(
    rows: &[tokio_postgres::Row],
    table: &'static str,
) -> Result<Vec<T>, StorageError> {
    rows.iter().map(|r| json(r, 0, table)).collect()
}

impl HubStorage for PgHub {
    fn write_batch(
        &self,
        batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.run_batch(batch)
    }

    fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, StorageError> {
        self.read(|c| stored_counter(c, key))
    }

    fn stock(&self, gtin: Gtin) -> Result<Vec<(String, StoreStock)>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT s.store, k.counter FROM hub_stores s
                 JOIN hub_counters k ON k.location = s.store AND k.gtin = $1
                 ORDER BY s.store",
                &[&to_i64("gtin", gtin.as_u64())?],
            )?;
            let hub = ReplicaId::hub();
            let mut out = Vec::new();
            for r in &rows {
                let id: String = col(r, 0, "hub_stores")?;
                let replica =
                    ReplicaId::new(&id).map_err(|e| StorageError::corrupt("hub_stores", e))?;
                let k: BoundedCounter = postcard(r, 1, "hub_counters")?;
                if k.is_empty() {
                    continue;
                }
                out.push((
                    id,
                    StoreStock {
                        on_hand: k.value(),
                        store_rights: k.rights(&replica),
                        hub_rights: k.rights(&hub),
                    },
                ));
            }
            Ok(out)
        })
    }

    fn catalog_item(&self, gtin: Gtin) -> Result<Option<CatalogItem>, StorageError> {
        self.read(|c| catalog_item(c, gtin))
    }

    fn stores(&self) -> Result<Vec<StoreRecord>, StorageError> {
        self.read(|c| {
            let rows = c.query("SELECT record FROM hub_stores ORDER BY store", &[])?;
            docs(&rows, "hub_stores")
        })
    }

    fn sales_per_minute(&self, since_minute: u64) -> Result<Vec<(String, u64, u64)>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT store, minute, units FROM hub_sales_per_minute WHERE minute >= $1
                 ORDER BY store, minute",
                &[&to_i64("minute", since_minute)?],
            )?;
            rows.iter()
                .map(|r| {
                    Ok((
                        col(r, 0, "hub_sales_per_minute")?,
                        int(r, 1, "hub_sales_per_minute")?,
                        int(r, 2, "hub_sales_per_minute")?,
                    ))
                })
                .collect()
        })
    }

    fn exceptions(&self, since: u64, n: usize) -> Result<Vec<ExceptionRecord>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_exceptions WHERE id > $1 ORDER BY id LIMIT $2",
                &[&cursor_i64(since), &limit(n)?],
            )?;
            docs(&rows, "hub_exceptions")
        })
    }

    fn acknowledged_exceptions(&self) -> Result<u64, StorageError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT value FROM hub_sequences WHERE name = 'exceptions_acked'",
                &[],
            )?;
            int(&row, 0, "hub_sequences")
        })
    }

    fn last_exception_id(&self) -> Result<u64, StorageError> {
        self.read(|c| {
            let row = c.query_one("SELECT coalesce(max(id), 0) FROM hub_exceptions", &[])?;
            int(&row, 0, "hub_exceptions")
        })
    }

    fn held_events(&self, n: usize) -> Result<Vec<HeldEvent>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_held_events ORDER BY id LIMIT $1",
                &[&limit(n)?],
            )?;
            rows.iter()
                .map(|r| json_in_bytes(r, 0, "hub_held_events"))
                .collect()
        })
    }

    fn routed_orders(
        &self,
        status: tally_sync::fulfilment::Status,
        after: &str,
        n: usize,
    ) -> Result<Vec<RoutedOrder>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_routed_orders WHERE status = $1 AND order_id > $2
                 ORDER BY order_id LIMIT $3",
                &[&status.name(), &after, &limit(n)?],
            )?;
            docs(&rows, "hub_routed_orders")
        })
    }

    fn routed_order(&self, order_id: &str) -> Result<Option<RoutedOrder>, StorageError> {
        self.read(|c| routed_order(c, order_id))
    }

    fn transfers(
        &self,
        status: TransferStatus,
        after: &str,
        n: usize,
    ) -> Result<Vec<HubTransfer>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_transfers WHERE status = $1 AND transfer_id > $2
                 ORDER BY transfer_id LIMIT $3",
                &[&status.name(), &after, &limit(n)?],
            )?;
            docs(&rows, "hub_transfers")
        })
    }

    fn transfer(&self, id: &str) -> Result<Option<HubTransfer>, StorageError> {
        self.read(|c| transfer(c, id))
    }

    fn cross_returns(&self, n: usize) -> Result<Vec<CrossReturn>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_cross_returns ORDER BY return_id DESC LIMIT $1",
                &[&limit(n)?],
            )?;
            docs(&rows, "hub_cross_returns")
        })
    }

    fn transfers_received_recently(&self, n: usize) -> Result<Vec<HubTransfer>, StorageError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT doc FROM hub_transfers WHERE received_hub_ms IS NOT NULL
                 ORDER BY received_hub_ms DESC, transfer_id DESC LIMIT $1",
                &[&limit(n)?],
            )?;
            docs(&rows, "hub_transfers")
        })
    }

    fn status_counts(&self) -> Result<StatusCounts, StorageError> {
        self.read(|c| {
            let rows = c.query("SELECT kind, status, n FROM hub_status_counts", &[])?;
            let mut found = std::collections::BTreeMap::new();
            for r in &rows {
                let kind: String = col(r, 0, "hub_status_counts")?;
                let status: String = col(r, 1, "hub_status_counts")?;
                found.insert((kind, status), int(r, 2, "hub_status_counts")?);
            }
            StatusCounts::read(|kind, status| {
                Ok::<_, StorageError>(
                    found
                        .get(&(kind.to_string(), status.to_string()))
                        .copied()
                        .unwrap_or(0),
                )
            })
        })
    }

    fn allocations(
        &self,
        store: &LocationId,
        after: u64,
        n: usize,
    ) -> Result<AllocationsPage, StorageError> {
        self.read(|c| {
            snapshot(c, || {
                // Changes are read a chunk at a time: a page stops after
                // `n` allocations, however many transfers ride along.
                let mut buffered = std::collections::VecDeque::new();
                let mut cursor = after;
                let mut exhausted = false;
                let next_change = || -> Result<Option<(u64, String)>, StorageError> {
                    if buffered.is_empty() && !exhausted {
                        let rows = c.query(
                            "SELECT version, key FROM hub_allocation_changes
                             WHERE store = $1 AND version > $2 ORDER BY version LIMIT $3",
                            &[&store.as_str(), &cursor_i64(cursor), &CHUNK],
                        )?;
                        exhausted = (rows.len() as i64) < CHUNK;
                        for r in &rows {
                            let version = int(r, 0, "hub_allocation_changes")?;
                            cursor = version;
                            buffered.push_back((version, col(r, 1, "hub_allocation_changes")?));
                        }
                    }
                    Ok(buffered.pop_front())
                };
                allocations_page(
                    store,
                    after,
                    n,
                    next_change,
                    |id| routed_order(c, id),
                    |id| transfer(c, id),
                )
            })
        })
    }

    fn next_link_order(&self) -> Result<Option<u64>, StorageError> {
        self.read(|c| {
            let row = c.query_one("SELECT nextval('hub_link_order')", &[])?;
            int(&row, 0, "hub_link_order").map(Some)
        })
    }

    fn audit(&self) -> Result<AuditReport, StorageError> {
        self.read(|c| {
            snapshot(c, || {
                // Streamed a chunk at a time: memory grows with items ×
                // stores, not with the chain's whole history of events.
                let mut tally = tally_sync::audit::FlowTally::default();
                let mut events = 0u64;
                let mut last = uuid::Uuid::nil();
                loop {
                    let rows = c.query(
                        "SELECT id, body FROM hub_events WHERE id > $1 ORDER BY id LIMIT $2",
                        &[&last, &CHUNK],
                    )?;
                    for r in &rows {
                        last = col(r, 0, "hub_events")?;
                        tally.add(&event(r, 1)?);
                        events += 1;
                    }
                    if (rows.len() as i64) < CHUNK {
                        break;
                    }
                }
                let sold_twice = c.query(
                    "SELECT epc FROM hub_epc_state WHERE double_sold ORDER BY epc",
                    &[],
                )?;
                let epcs = sold_twice
                    .iter()
                    .map(|r| {
                        Epc::from_bytes(col(r, 0, "hub_epc_state")?)
                            .map_err(|e| StorageError::corrupt("hub_epc_state", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let disagreeing = holdings_disagreeing(c)?;
                AuditReport::from_flows(
                    events,
                    tally,
                    |key| Ok(stored_counter(c, key)?.value()),
                    epcs,
                    disagreeing,
                )
            })
        })
    }
}

/// Counters whose `hub_rights` column disagrees with the hub's rights in
/// the counter itself (0: routing's candidates are right).
fn holdings_disagreeing(c: &PgConn) -> Result<u64, StorageError> {
    let hub = ReplicaId::hub();
    let mut n = 0u64;
    let mut last: (String, i64) = (String::new(), -1);
    loop {
        let rows = c.query(
            "SELECT location, gtin, counter, hub_rights FROM hub_counters
             WHERE (location, gtin) > ($1, $2) ORDER BY location, gtin LIMIT $3",
            &[&last.0, &last.1, &CHUNK],
        )?;
        for r in &rows {
            last = (col(r, 0, "hub_counters")?, col(r, 1, "hub_counters")?);
            let k: BoundedCounter = postcard(r, 2, "hub_counters")?;
            if k.rights(&hub) != int(r, 3, "hub_counters")? {
                n += 1;
            }
        }
        if (rows.len() as i64) < CHUNK {
            return Ok(n);
        }
    }
}
