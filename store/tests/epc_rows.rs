//! What the store keeps per EPC: a fixed-size summary and one row per
//! sale or return, so recording an event touching a tag costs the same
//! whatever the tag's history (asserted on the structure, not on a
//! timing, like the hub's `hostile_store.rs`); and a database written
//! before that (one postcard history per EPC, rewritten per event) is
//! converted once when opened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tally_store::redb::Value;
use tally_store::redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition, TableHandle};
use tally_store::Db;
use tally_sync::epcs::{EpcHistory, EpcRecord, EpcSummary};
use tally_sync::exchange::{ReplicaStore, MAX_LISTED_SALES};
use tally_sync::{codec, Epc, EventId, ReplicaId};

/// The tables as their format defines them (a test of the format: opening
/// them with other types fails).
const STATE: TableDefinition<&[u8], (u64, u64, Option<u128>)> = TableDefinition::new("epc_state");
const ROWS: TableDefinition<(&[u8], u8, u128, &str), ()> = TableDefinition::new("epc_rows");
const OLD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("epcs");

fn tag(n: u32) -> Epc {
    Epc::from_hex(&format!("3074257BF7194E40{n:08X}")).unwrap()
}

fn rec(n: u64, replica: &str) -> EpcRecord {
    EpcRecord {
        event: EventId::v7(1_750_000_000_000 + n, [7; 10]),
        replica: ReplicaId::new(replica).unwrap(),
    }
}

fn table_names(db: &Db) -> Vec<String> {
    let r = db.raw().begin_read().unwrap();
    r.list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect()
}

#[test]
fn an_event_touching_a_tag_with_a_long_history_writes_one_row_and_a_fixed_size_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let mut n = 0;
    let mut cycle = |db: &Db, epc: &Epc| {
        let t = db.begin_write().unwrap();
        {
            let mut r = t.replica().unwrap();
            n += 2;
            assert!(r.record_epc_sale(epc, rec(n, "s1")).unwrap().is_none());
            r.record_epc_return(epc, rec(n + 1, "s1")).unwrap();
        }
        t.commit().unwrap();
    };
    // One tag sold and returned `cycles` times, one transaction per cycle;
    // then fresh tags once each.
    let old = tag(1);
    let cycles: u64 = 400;
    for _ in 0..cycles {
        cycle(&db, &old);
    }
    let fresh = 20u32;
    for i in 0..fresh {
        cycle(&db, &tag(100 + i));
    }

    let r = db.begin_read().unwrap();
    // The summary: what a sale or return reads and rewrites, the same
    // fixed-width record after 400 cycles as after one.
    assert_eq!(
        <(u64, u64, Option<u128>) as Value>::fixed_width(),
        Some(8 + 8 + 17),
        "the state has a fixed width"
    );
    let states = r.raw().open_table(STATE).unwrap();
    assert_eq!(states.len().unwrap(), 1 + u64::from(fresh));
    let (sales, returns, first) = states.get(old.as_bytes()).unwrap().unwrap().value();
    assert_eq!((sales, returns), (cycles, cycles));
    assert_eq!(first, Some(rec(2, "s1").event.0.as_u128()));
    let long = r.epc_summary(&old).unwrap().unwrap();
    let short = r.epc_summary(&tag(100)).unwrap().unwrap();
    assert_eq!((long.sales, long.returns), (cycles, cycles));
    assert_eq!((short.sales, short.returns), (1, 1));
    // One row per event touching a tag, nothing else.
    let rows = r.raw().open_table(ROWS).unwrap();
    assert_eq!(rows.len().unwrap(), 2 * cycles + 2 * u64::from(fresh));
    let e = old.as_bytes();
    let of_old = rows
        .range((e, 0u8, 0u128, "")..(e, 2u8, 0u128, ""))
        .unwrap()
        .count() as u64;
    assert_eq!(of_old, 2 * cycles, "row count == events touching the tag");
    // The whole history, for whoever needs it, is a range read.
    let history = r.epc_history(&old).unwrap().unwrap();
    assert_eq!(history.sales.len() as u64, cycles);
    assert_eq!(history.returns.len() as u64, cycles);
    assert_eq!(EpcSummary::of(&history), long);
    // The old format (one history per tag, rewritten per event) is gone.
    assert!(!table_names(&db).contains(&"epcs".to_string()));
}

#[test]
fn a_double_sale_is_detected_from_the_summary_and_lists_a_bounded_number_of_sales() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let epc = tag(9);
    let t = db.begin_write().unwrap();
    {
        let mut r = t.replica().unwrap();
        // Sold and returned many times: not sold twice.
        for i in 0..(MAX_LISTED_SALES as u64 + 4) {
            assert!(r
                .record_epc_sale(&epc, rec(10 + 2 * i, "s1"))
                .unwrap()
                .is_none());
            r.record_epc_return(&epc, rec(11 + 2 * i, "s1")).unwrap();
        }
        assert!(r.record_epc_sale(&epc, rec(500, "s1")).unwrap().is_none());
        // A record held already changes nothing and reports nothing.
        assert!(r.record_epc_sale(&epc, rec(500, "s1")).unwrap().is_none());
        // Another store's sale while it is sold: double-sold, reported once.
        let double = r.record_epc_sale(&epc, rec(1, "s2")).unwrap().unwrap();
        assert_eq!(double.epc, epc);
        assert_eq!(double.sales.len(), MAX_LISTED_SALES);
        assert_eq!(double.sales[0], rec(1, "s2"), "in record order");
        assert!(r.record_epc_sale(&epc, rec(501, "s3")).unwrap().is_none());
        let s = r.epc_summary(&epc).unwrap().unwrap();
        assert!(s.is_double_sold());
        assert_eq!(s.first_sale, Some(rec(1, "s2").event));
        assert_eq!(
            Some(s),
            r.epc_history(&epc).unwrap().as_ref().map(EpcSummary::of)
        );
    }
    t.commit().unwrap();
}

#[test]
fn a_database_with_the_old_epc_histories_is_converted_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    // Histories as the old format held them: sold, sold and returned,
    // sold twice (by two stores), and one without records.
    let mut histories: BTreeMap<Epc, EpcHistory> = BTreeMap::new();
    let h = histories.entry(tag(1)).or_default();
    h.sales.insert(rec(1, "s1"));
    let h = histories.entry(tag(2)).or_default();
    h.sales.insert(rec(2, "s1"));
    h.returns.insert(rec(3, "s1"));
    h.sales.insert(rec(4, "s1"));
    h.returns.insert(rec(5, "s1"));
    let h = histories.entry(tag(3)).or_default();
    h.sales.insert(rec(7, "s1"));
    h.sales.insert(rec(6, "s2"));
    histories.entry(tag(4)).or_default();
    let records: usize = histories
        .values()
        .map(|h| h.sales.len() + h.returns.len())
        .sum();

    // A database as an older version left it: the `epcs` table, and none
    // of the new ones.
    {
        let db = Db::open(&path).unwrap();
        let t = db.raw().begin_write().unwrap();
        assert!(t.delete_table(STATE).unwrap());
        assert!(t.delete_table(ROWS).unwrap());
        {
            let mut old = t.open_table(OLD).unwrap();
            for (epc, h) in &histories {
                old.insert(epc.as_bytes(), codec::to_bytes(h).unwrap().as_slice())
                    .unwrap();
            }
        }
        t.commit().unwrap();
    }

    let db = Db::open(&path).unwrap();
    let names = table_names(&db);
    assert!(!names.contains(&"epcs".to_string()), "{names:?}");
    let check = |db: &Db| {
        let r = db.begin_read().unwrap();
        for (epc, h) in &histories {
            assert_eq!(r.epc_history(epc).unwrap().as_ref(), Some(h), "{epc}");
            assert_eq!(
                r.epc_summary(epc).unwrap(),
                Some(EpcSummary::of(h)),
                "{epc}"
            );
        }
        assert_eq!(r.epc_history(&tag(5)).unwrap(), None);
        let rows = r.raw().open_table(ROWS).unwrap();
        assert_eq!(rows.len().unwrap(), records as u64);
    };
    check(&db);
    assert!(db
        .begin_read()
        .unwrap()
        .epc_summary(&tag(3))
        .unwrap()
        .unwrap()
        .is_double_sold());
    // Opening again converts nothing more.
    drop(db);
    let db = Db::open(&path).unwrap();
    check(&db);
    // And the converted tags are recorded on as any other.
    let t = db.begin_write().unwrap();
    t.replica()
        .unwrap()
        .record_epc_return(&tag(1), rec(8, "s1"))
        .unwrap();
    t.commit().unwrap();
    let s = db
        .begin_read()
        .unwrap()
        .epc_summary(&tag(1))
        .unwrap()
        .unwrap();
    assert!(!s.is_sold());
}

#[test]
fn an_old_table_beside_rows_is_folded_into_them_not_over_them() {
    // An older version run on a converted file writes its histories into
    // a new `epcs` table; the next open folds them in, each record once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("both.redb");
    let epc = tag(1);
    {
        let db = Db::open(&path).unwrap();
        let t = db.begin_write().unwrap();
        {
            let mut r = t.replica().unwrap();
            r.record_epc_sale(&epc, rec(1, "s1")).unwrap();
            r.record_epc_return(&epc, rec(2, "s1")).unwrap();
        }
        t.commit().unwrap();
        let mut later = EpcHistory::default();
        later.returns.insert(rec(2, "s1"));
        later.sales.insert(rec(3, "s1"));
        let t = db.raw().begin_write().unwrap();
        t.open_table(OLD)
            .unwrap()
            .insert(epc.as_bytes(), codec::to_bytes(&later).unwrap().as_slice())
            .unwrap();
        t.commit().unwrap();
    }
    let db = Db::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    let mut all = EpcHistory::default();
    all.sales.insert(rec(1, "s1"));
    all.returns.insert(rec(2, "s1"));
    all.sales.insert(rec(3, "s1"));
    assert_eq!(r.epc_history(&epc).unwrap(), Some(all.clone()));
    assert_eq!(r.epc_summary(&epc).unwrap(), Some(EpcSummary::of(&all)));
    assert_eq!(r.raw().open_table(ROWS).unwrap().len().unwrap(), 3);
    assert!(!table_names(&db).contains(&"epcs".to_string()));
}
