//! `tally-hub migrate --from … --verify`: proof that a database answers
//! every read of [`HubStorage`] (what HQ's pages, the dashboard and the
//! stores' pages ask) as the embedded hub it was imported from does.
//!
//! # Design constraints
//! - **Every read, over everything.** `stores`; `counter` for every
//!   counter the embedded hub holds and `stock` for every item one holds;
//!   `catalog_item` for every catalog item; every page of `exceptions`
//!   and how many are acknowledged;
//!   `held_events`; every page of `routed_orders` and `transfers` of each
//!   status, and `routed_order` / `transfer` for each listed;
//!   `cross_returns` and `transfers_received_recently` as deep as the
//!   admin API reads them; `status_counts`; every page of each store's
//!   `allocations` from 0; `sales_per_minute(0)`; `audit()`.
//! - **The lists come from the source.** [`HubStorage`] has no "every
//!   item" read: the counters and catalog items are listed from the
//!   embedded hub's own snapshot, the stores by `stores()`, orders and
//!   transfers by their pages (of both engines, so an extra one on
//!   either side shows).
//! - **Memory does not grow with the data** beyond what the trait
//!   answers whole (`stores`, `sales_per_minute`, the audit's rows):
//!   counters are compared as they are listed (only the set of items is
//!   kept), everything paged is compared a page at a time.
//! - **Report, don't stop.** Every read is compared; each keeps how many
//!   answers it compared, how many differed and the first
//!   [`EXAMPLES`] differences.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use tally_sync::exchange::HubLimits;
use tally_sync::{LocationId, ReservePolicy};

use super::postgres::import::{source_path, MigrateError};
use super::postgres::{DatabaseUrl, PgHub};
use super::status_counts::{ORDER_STATUSES, TRANSFER_STATUSES};
use super::{HubStorage, RedbHub, StorageError, SyncSettings};

/// Differences kept per read.
pub const EXAMPLES: usize = 3;
/// Records asked for per page.
const PAGE: usize = 1_000;
/// Allocations asked for per page (as a store asks).
const ALLOCATIONS_PAGE: usize = 100;
/// The most `cross_returns` and `transfers_received_recently` the admin
/// API asks for.
const RECENT: usize = 1_000;
/// The most `held_events` the admin API asks for.
const HELD: usize = 10_000;
/// Longest rendering of one answer in a difference.
const SHOWN: usize = 400;

/// How one read compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCheck {
    /// The [`HubStorage`] read.
    pub read: &'static str,
    /// Answers (or list elements) compared.
    pub compared: u64,
    /// Of them, how many differed.
    pub differing: u64,
    /// The first few differences, described.
    pub examples: Vec<String>,
}

/// How every read compared, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One entry per read.
    pub reads: Vec<ReadCheck>,
}

impl VerifyReport {
    /// Answers that differed, over every read.
    pub fn differences(&self) -> u64 {
        self.reads.iter().map(|r| r.differing).sum()
    }

    /// Whether every answer was the same.
    pub fn is_clean(&self) -> bool {
        self.differences() == 0
    }

    fn check(&mut self, read: &'static str) -> &mut ReadCheck {
        let at = match self.reads.iter().position(|r| r.read == read) {
            Some(at) => at,
            None => {
                self.reads.push(ReadCheck {
                    read,
                    compared: 0,
                    differing: 0,
                    examples: Vec::new(),
                });
                self.reads.len() - 1
            }
        };
        &mut self.reads[at]
    }

    /// Compares one answer of `read` (about `what`).
    fn same<T: PartialEq + fmt::Debug>(
        &mut self,
        read: &'static str,
        what: impl fmt::Display,
        embedded: &T,
        database: &T,
    ) {
        let check = self.check(read);
        check.compared += 1;
        if embedded != database {
            check.differing += 1;
            if check.examples.len() < EXAMPLES {
                check.examples.push(format!(
                    "{what}: embedded {}, database {}",
                    shown(embedded),
                    shown(database)
                ));
            }
        }
    }

    /// Compares a list answer of `read` (about `what`) element by
    /// element.
    fn list<T: PartialEq + fmt::Debug>(
        &mut self,
        read: &'static str,
        what: impl fmt::Display,
        embedded: &[T],
        database: &[T],
    ) {
        let check = self.check(read);
        for i in 0..embedded.len().max(database.len()) {
            let (a, b) = (embedded.get(i), database.get(i));
            check.compared += 1;
            if a != b {
                check.differing += 1;
                if check.examples.len() < EXAMPLES {
                    check.examples.push(format!(
                        "{what}, #{i}: embedded {}, database {}",
                        shown(&a),
                        shown(&b)
                    ));
                }
            }
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compared: u64 = self.reads.iter().map(|r| r.compared).sum();
        if self.is_clean() {
            writeln!(
                f,
                "Verified: {} reads, {compared} answers, every one the same on both engines.",
                self.reads.len()
            )?;
        } else {
            writeln!(
                f,
                "Verify found {} differences in {compared} answers:",
                self.differences()
            )?;
        }
        for r in &self.reads {
            if r.differing == 0 {
                writeln!(f, "  {}: {} compared, same", r.read, r.compared)?;
            } else {
                writeln!(
                    f,
                    "  {}: {} compared, {} differ",
                    r.read, r.compared, r.differing
                )?;
                for x in &r.examples {
                    writeln!(f, "    {x}")?;
                }
            }
        }
        Ok(())
    }
}

/// `v` rendered, cut to [`SHOWN`] characters.
fn shown(v: &impl fmt::Debug) -> String {
    let s = format!("{v:?}");
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Opens the embedded hub of data directory `data_dir` (stopped) and the
/// database at `url` and compares every read ([`compare`]). Blocks.
///
/// The file is opened as a hub opens it ([`RedbHub::open`]), so it
/// commits its (empty) opening transaction: its records do not change,
/// its bytes may.
pub fn verify(data_dir: &Path, url: &DatabaseUrl) -> Result<VerifyReport, MigrateError> {
    let settings = SyncSettings {
        policy: ReservePolicy::default(),
        limits: HubLimits::default(),
        catalog_page: 100,
    };
    let source = RedbHub::open(&source_path(data_dir)?, settings)?;
    let target = PgHub::connect(url, settings)?;
    Ok(compare(&source, &target)?)
}

/// Compares every read of `target` with `source`'s (see the module
/// docs). An `Err` is a read that failed, not a difference.
pub fn compare(source: &RedbHub, target: &dyn HubStorage) -> Result<VerifyReport, StorageError> {
    let mut r = VerifyReport::default();

    let stores = source.stores()?;
    r.list("stores", "stores", &stores, &target.stores()?);

    // Counters, as the embedded hub lists them; then each item's stock.
    let snapshot = source.db().begin_read()?;
    let mut items = BTreeSet::new();
    snapshot.try_visit_counters(|key, _, _| {
        items.insert(key.gtin);
        let (a, b) = (source.counter(&key)?, target.counter(&key)?);
        r.same(
            "counter",
            format_args!("{}/{}", key.location, key.gtin),
            &a,
            &b,
        );
        Ok::<_, StorageError>(())
    })?;
    for g in items {
        r.list(
            "stock",
            format_args!("item {g}"),
            &source.stock(g)?,
            &target.stock(g)?,
        );
    }
    snapshot.try_visit_catalog(|_, item| {
        let g = item.gtin;
        let (a, b) = (source.catalog_item(g)?, target.catalog_item(g)?);
        r.same("catalog_item", format_args!("item {g}"), &a, &b);
        Ok::<_, StorageError>(())
    })?;
    drop(snapshot);

    let mut since = 0;
    loop {
        let (a, b) = (
            source.exceptions(since, PAGE)?,
            target.exceptions(since, PAGE)?,
        );
        r.list("exceptions", format_args!("after id {since}"), &a, &b);
        match a.last().or(b.last()) {
            Some(x) if a.len() == PAGE || b.len() == PAGE => since = x.id,
            _ => break,
        }
    }
    r.same(
        "acknowledged_exceptions",
        "count",
        &source.acknowledged_exceptions()?,
        &target.acknowledged_exceptions()?,
    );
    r.list(
        "held_events",
        "held",
        &source.held_events(HELD)?,
        &target.held_events(HELD)?,
    );

    for status in ORDER_STATUSES {
        let mut after = String::new();
        loop {
            let (a, b) = (
                source.routed_orders(status, &after, PAGE)?,
                target.routed_orders(status, &after, PAGE)?,
            );
            r.list(
                "routed_orders",
                format_args!("{} after {after:?}", status.name()),
                &a,
                &b,
            );
            let ids: BTreeSet<&str> = a.iter().chain(&b).map(|o| o.order_id.as_str()).collect();
            for id in ids {
                let (x, y) = (source.routed_order(id)?, target.routed_order(id)?);
                r.same("routed_order", id, &x, &y);
            }
            match a.last().or(b.last()) {
                Some(o) if a.len() == PAGE || b.len() == PAGE => after = o.order_id.clone(),
                _ => break,
            }
        }
    }
    for status in TRANSFER_STATUSES {
        let mut after = String::new();
        loop {
            let (a, b) = (
                source.transfers(status, &after, PAGE)?,
                target.transfers(status, &after, PAGE)?,
            );
            r.list(
                "transfers",
                format_args!("{} after {after:?}", status.name()),
                &a,
                &b,
            );
            let ids: BTreeSet<&str> = a
                .iter()
                .chain(&b)
                .map(|t| t.transfer.transfer_id.as_str())
                .collect();
            for id in ids {
                let (x, y) = (source.transfer(id)?, target.transfer(id)?);
                r.same("transfer", id, &x, &y);
            }
            match a.last().or(b.last()) {
                Some(t) if a.len() == PAGE || b.len() == PAGE => {
                    after = t.transfer.transfer_id.clone();
                }
                _ => break,
            }
        }
    }
    r.list(
        "cross_returns",
        "latest",
        &source.cross_returns(RECENT)?,
        &target.cross_returns(RECENT)?,
    );
    r.list(
        "transfers_received_recently",
        "latest",
        &source.transfers_received_recently(RECENT)?,
        &target.transfers_received_recently(RECENT)?,
    );
    r.same(
        "status_counts",
        "counts",
        &source.status_counts()?,
        &target.status_counts()?,
    );

    let mut names: BTreeSet<String> = stores.into_iter().map(|s| s.store).collect();
    names.extend(target.stores()?.into_iter().map(|s| s.store));
    for name in names {
        let store = LocationId::new(&name).map_err(|e| StorageError::corrupt("hub_stores", e))?;
        let mut after = 0;
        loop {
            let (a, b) = (
                source.allocations(&store, after, ALLOCATIONS_PAGE)?,
                target.allocations(&store, after, ALLOCATIONS_PAGE)?,
            );
            let page = format!("{name} after {after}");
            r.list("allocations", &page, &a.allocations, &b.allocations);
            r.list("allocations", &page, &a.transfers, &b.transfers);
            r.same(
                "allocations",
                &page,
                &(a.cursor, a.more),
                &(b.cursor, b.more),
            );
            if !a.more || a.cursor <= after {
                break;
            }
            after = a.cursor;
        }
    }

    r.list(
        "sales_per_minute",
        "since minute 0",
        &source.sales_per_minute(0)?,
        &target.sales_per_minute(0)?,
    );
    let (a, b) = (source.audit()?, target.audit()?);
    r.same(
        "audit",
        "totals (events, double sold, EPCs sold twice, holdings disagreeing)",
        &(
            a.events,
            a.double_sold,
            &a.epcs_sold_twice,
            a.holdings_disagreeing,
        ),
        &(
            b.events,
            b.double_sold,
            &b.epcs_sold_twice,
            b.holdings_disagreeing,
        ),
    );
    r.list("audit", "rows", &a.rows, &b.rows);
    Ok(r)
}
