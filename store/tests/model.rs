//! tally-store against the in-memory model (`tally_sync::Inventory`,
//! `Journal`, `EpcLedger`), sled-failpoint style: random operations,
//! committed or aborted transactions, and restarts (close and reopen the
//! file), after which the store must equal the model of what committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_store::{Db, StoreError};
use tally_sync::epcs::{EpcRecord, EpcSummary};
use tally_sync::exchange::{MemoryReplica, ReplicaStore};
use tally_sync::message::CatalogItem;
use tally_sync::{Epc, Event, EventId, EventKind, Gtin, ItemKey, Line, LocationId, ReplicaId};

#[derive(Debug, Clone)]
enum Op {
    Add {
        loc: u8,
        item: u8,
        n: u64,
    },
    Remove {
        loc: u8,
        item: u8,
        n: u64,
    },
    Transfer {
        loc: u8,
        item: u8,
        n: u64,
    },
    Event {
        id: u8,
    },
    EpcSale {
        tag: u8,
        event: u8,
    },
    EpcReturn {
        tag: u8,
        event: u8,
    },
    Catalog {
        item: u8,
        price: i64,
    },
    /// Prune stale change-index entries of a location up to a version
    /// (storage only: the model has none; nothing observable may change).
    Prune {
        loc: u8,
        upto: u64,
    },
    /// Commit the transaction so far (else it is aborted at the next restart).
    Commit,
    /// Drop uncommitted work, close the database and open it again.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..6, 1u64..9).prop_map(|(loc, item, n)| Op::Add { loc, item, n }),
        3 => (0u8..3, 0u8..6, 1u64..9).prop_map(|(loc, item, n)| Op::Remove { loc, item, n }),
        2 => (0u8..3, 0u8..6, 1u64..9).prop_map(|(loc, item, n)| Op::Transfer { loc, item, n }),
        1 => any::<u8>().prop_map(|id| Op::Event { id: id % 8 }),
        1 => (0u8..4, 0u8..8).prop_map(|(tag, event)| Op::EpcSale { tag, event }),
        1 => (0u8..4, 0u8..8).prop_map(|(tag, event)| Op::EpcReturn { tag, event }),
        1 => (0u8..6, 0i64..500).prop_map(|(item, price)| Op::Catalog { item, price }),
        1 => (0u8..3, 0u64..80).prop_map(|(loc, upto)| Op::Prune { loc, upto }),
        2 => Just(Op::Commit),
        1 => Just(Op::Restart),
    ]
}

fn loc(i: u8) -> LocationId {
    LocationId::new(&format!("store-{i}")).unwrap()
}

fn key(l: u8, item: u8) -> ItemKey {
    ItemKey::new(loc(l), Gtin::from_body(u64::from(item) + 1000).unwrap())
}

fn me() -> ReplicaId {
    ReplicaId::new("store-0").unwrap()
}

fn event(id: u8) -> Event {
    Event {
        id: EventId::v7(u64::from(id), [id; 10]),
        location: loc(0),
        replica: me(),
        at_ms: 1,
        kind: EventKind::Receipt,
        lines: vec![Line {
            gtin: Gtin::from_body(7).unwrap(),
            qty: 1,
            unit_price_minor: 0,
            epc: None,
        }],
        staff: Default::default(),
        price_overrides: Vec::new(),
    }
}

fn epc(tag: u8) -> Epc {
    Epc::from_bytes(&[0x30, tag, 0, 0]).unwrap()
}

/// Applies one counter/event/epc op to any ReplicaStore.
fn apply<S: ReplicaStore>(s: &mut S, op: &Op) -> Result<(), S::Error> {
    let counter_op = |s: &mut S, k: &ItemKey, f: &dyn Fn(&mut tally_sync::BoundedCounter)| {
        let mut c = s.counter(k)?;
        f(&mut c);
        s.put_counter(k, c)
    };
    match *op {
        Op::Add { loc, item, n } => counter_op(s, &key(loc, item), &|c| {
            let _ = c.add(&me(), n);
        }),
        Op::Remove { loc, item, n } => counter_op(s, &key(loc, item), &|c| {
            let _ = c.remove(&me(), n);
        }),
        Op::Transfer { loc, item, n } => counter_op(s, &key(loc, item), &|c| {
            let _ = c.transfer(&me(), &ReplicaId::hub(), n);
        }),
        Op::Event { id } => s.insert_event(&event(id)).map(|_| ()),
        Op::EpcSale { tag, event } => {
            let rec = EpcRecord {
                event: EventId::v7(u64::from(event), [event; 10]),
                replica: me(),
            };
            s.record_epc_sale(&epc(tag), rec).map(|_| ())
        }
        Op::EpcReturn { tag, event } => {
            let rec = EpcRecord {
                event: EventId::v7(u64::from(event), [event; 10]),
                replica: me(),
            };
            s.record_epc_return(&epc(tag), rec)
        }
        Op::Catalog { .. } | Op::Prune { .. } | Op::Commit | Op::Restart => Ok(()),
    }
}

fn catalog_item(item: u8, price: i64) -> CatalogItem {
    CatalogItem {
        gtin: Gtin::from_body(u64::from(item) + 1000).unwrap(),
        name: format!("item {item}"),
        price_minor: price,
    }
}

fn check(db: &Db, model: &MemoryReplica, catalog: &std::collections::BTreeMap<Gtin, CatalogItem>) {
    let r = db.begin_read().unwrap();
    for l in 0..3 {
        let stored = r.counters_at(&loc(l)).unwrap();
        let expected: Vec<_> = model
            .inventory
            .at_location(&loc(l))
            .map(|(k, c)| (k.gtin, c.clone()))
            .collect();
        assert_eq!(stored, expected, "counters at {l}");
        // Delta extraction from every cursor matches the model's.
        for cursor in 0..=model.inventory.version() {
            let (d, next) = r.delta_since(&loc(l), cursor, usize::MAX).unwrap();
            assert_eq!(
                d,
                model.inventory.delta_since(&loc(l), cursor),
                "delta {l} since {cursor}"
            );
            assert_eq!(next, model.inventory.version().max(cursor));
        }
    }
    assert_eq!(r.inventory_version().unwrap(), model.inventory.version());
    assert_eq!(r.event_count().unwrap(), model.journal.len() as u64);
    for e in model.journal.iter() {
        assert_eq!(r.event(&e.id).unwrap().as_ref(), Some(e));
    }
    for tag in 0..4 {
        assert_eq!(
            r.epc_history(&epc(tag)).unwrap().as_ref(),
            model.epcs.get(&epc(tag))
        );
        assert_eq!(
            r.epc_summary(&epc(tag)).unwrap(),
            model.epcs.get(&epc(tag)).map(EpcSummary::of)
        );
    }
    for item in catalog.values() {
        assert_eq!(r.catalog_item(item.gtin).unwrap().as_ref(), Some(item));
    }
    let (all, _) = r.catalog_since(0, usize::MAX).unwrap();
    assert_eq!(all.len(), catalog.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_across_commits_aborts_and_restarts(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tally.redb");
        let mut db = Db::open(&path).unwrap();
        // `committed` is the model of what is durable; `pending` of the open txn.
        let mut committed = MemoryReplica::default();
        let mut pending = committed.clone();
        let mut cat_committed = std::collections::BTreeMap::new();
        let mut cat_pending = cat_committed.clone();
        let mut txn = Some(db.begin_write().unwrap());
        for op in &ops {
            match op {
                Op::Commit => {
                    txn.take().unwrap().commit().unwrap();
                    committed = pending.clone();
                    cat_committed = cat_pending.clone();
                    check(&db, &committed, &cat_committed);
                    txn = Some(db.begin_write().unwrap());
                }
                Op::Restart => {
                    drop(txn.take());
                    drop(db);
                    db = Db::open(&path).unwrap();
                    pending = committed.clone();
                    cat_pending = cat_committed.clone();
                    check(&db, &committed, &cat_committed);
                    txn = Some(db.begin_write().unwrap());
                }
                Op::Prune { loc: l, upto } => {
                    let t = txn.as_ref().unwrap();
                    t.replica().unwrap().prune_changes(&loc(*l), *upto).unwrap();
                }
                Op::Catalog { item, price } => {
                    let it = catalog_item(*item, *price);
                    txn.as_ref().unwrap().put_catalog_item(&it).unwrap();
                    cat_pending.insert(it.gtin, it);
                }
                other => {
                    let t = txn.as_ref().unwrap();
                    let mut rep = t.replica().unwrap();
                    apply(&mut rep, other).unwrap();
                    apply(&mut pending, other).unwrap();
                }
            }
        }
    }
}

#[test]
fn a_second_open_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tally.redb");
    let _db = Db::open(&path).unwrap();
    let err = Db::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen(_)), "{err}");
    assert!(err.to_string().contains("already open in another process"));
}

#[test]
fn catalog_pages_by_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let t = db.begin_write().unwrap();
    for i in 0..10 {
        assert!(t.put_catalog_item(&catalog_item(i, 100)).unwrap());
    }
    assert!(
        !t.put_catalog_item(&catalog_item(3, 100)).unwrap(),
        "unchanged item stamps nothing"
    );
    assert!(t.put_catalog_item(&catalog_item(3, 150)).unwrap());
    t.commit().unwrap();
    let r = db.begin_read().unwrap();
    let (page, next) = r.catalog_since(0, 4).unwrap();
    assert_eq!(page.len(), 4);
    let (rest, end) = r.catalog_since(next, 100).unwrap();
    assert_eq!(page.len() + rest.len(), 10);
    assert_eq!(end, 11);
    assert_eq!(rest.last().unwrap().price_minor, 150);
    assert!(r.catalog_since(end, 100).unwrap().0.is_empty());
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let t = db.begin_write().unwrap();
    {
        let def: tally_store::redb::TableDefinition<(&str, u64), &[u8]> =
            tally_store::redb::TableDefinition::new("counters");
        let mut table = t.raw().open_table(def).unwrap();
        let k = key(0, 1);
        table
            .insert(
                (k.location.as_str(), k.gtin.as_u64()),
                [1u8, 2, 3].as_slice(),
            )
            .unwrap();
    }
    t.commit().unwrap();
    let err = db.begin_read().unwrap().counter(&key(0, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                table: "counters",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn pruning_bounds_the_change_index_and_changes_no_delta() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let me = me();
    // One counter changed 100 times in separate transactions leaves 100
    // index entries until pruned (removal is lazy) ...
    for _ in 0..100 {
        let t = db.begin_write().unwrap();
        {
            let mut r = t.replica().unwrap();
            let mut c = r.counter(&key(0, 1)).unwrap();
            c.add(&me, 1).unwrap();
            r.put_counter(&key(0, 1), c).unwrap();
        }
        t.commit().unwrap();
    }
    let read = db.begin_read().unwrap();
    assert_eq!(read.change_index_len(&loc(0)).unwrap(), 100);
    let before: Vec<_> = (0..=100)
        .map(|c| read.delta_since(&loc(0), c, usize::MAX).unwrap())
        .collect();
    drop(read);
    // ... and one entry after pruning, with every delta unchanged.
    let t = db.begin_write().unwrap();
    assert_eq!(
        t.replica().unwrap().prune_changes(&loc(0), 100).unwrap(),
        99
    );
    t.commit().unwrap();
    let read = db.begin_read().unwrap();
    assert_eq!(read.change_index_len(&loc(0)).unwrap(), 1);
    let after: Vec<_> = (0..=100)
        .map(|c| read.delta_since(&loc(0), c, usize::MAX).unwrap())
        .collect();
    assert_eq!(before, after);
    drop(read);
    // Below the watermark, an entry that goes stale is removed at once.
    assert_eq!(tally_store::PRUNE_LAG % 2, 0);
    let t = db.begin_write().unwrap();
    {
        let mut r = t.replica().unwrap();
        let mut c = r.counter(&key(0, 1)).unwrap();
        c.add(&me, 1).unwrap();
        r.put_counter(&key(0, 1), c).unwrap();
    }
    t.commit().unwrap();
    assert_eq!(
        db.begin_read().unwrap().change_index_len(&loc(0)).unwrap(),
        1
    );
}

#[test]
fn the_change_index_stays_bounded_without_any_sync() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let me = me();
    let t = db.begin_write().unwrap();
    {
        let mut r = t.replica().unwrap();
        for i in 0..(5 * tally_store::PRUNE_LAG) {
            let k = key(0, (i % 7) as u8);
            let mut c = r.counter(&k).unwrap();
            c.add(&me, 1).unwrap();
            r.put_counter(&k, c).unwrap();
        }
    }
    t.commit().unwrap();
    let n = db.begin_read().unwrap().change_index_len(&loc(0)).unwrap();
    assert!(
        n <= 7 + 2 * tally_store::PRUNE_LAG,
        "{n} index entries for 7 counters"
    );
}
