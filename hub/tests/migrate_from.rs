//! `tally-hub migrate --database URL --from DATA_DIR [--verify]`: an
//! embedded hub moved into PostgreSQL with the real binary, against a
//! real PostgreSQL (`support::pg`).
//!
//! The embedded hub's history is made by the real logic (model stores
//! running the real command core, `support::SimStore`, and the hub's own
//! writes): syncs, store-named and routed orders, a cancellation, a
//! pickup handed over, transfers (received, in transit, flagged
//! overdue), returns checked across stores and claims still open, a held
//! event, a grant, catalog changes, exceptions, a tag sold at two stores,
//! and a bulk of plain events (`TALLY_MIGRATE_EVENTS`, default 3,000).
//! Some of it happens after a store's last sync, so the store's cursors
//! lag: after the move, what that store's next sync, catalog page and
//! allocations page bring is checked against a twin, a copy of the
//! embedded file that keeps running the same requests, and against what
//! the history says changed. Every clock is fixed; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::child::hub_output;
use support::storage_backends::{loc, order, routed, settings, write, NOW};
use support::{gtin, pg, SimStore};
use tally_hub::storage::postgres::{import, DatabaseUrl, PgHub};
use tally_hub::storage::returns::CheckResult;
use tally_hub::storage::routed::{CancelResult, RoutedResult};
use tally_hub::storage::{
    verify, AckResult, GrantResult, HubStorage, OrderResult, RedbHub, SyncResult,
};
use tally_sync::command::{Command, LineIn};
use tally_sync::fulfilment::{Fulfilment, Status};
use tally_sync::message::CatalogItem;
use tally_sync::returns::{ReturnCheckRequest, ReturnLineCheck};
use tally_sync::{EventId, Gtin, ItemKey, LocationId, Shortage, SyncResponse};

/// How long a transfer may be in transit before it is flagged.
const OVERDUE: u64 = 3 * 24 * 3_600_000;
const EPC: &str = "3074257BF7194E4000001A85";

fn migrate(url: &str, from: &Path, verify: bool) -> (Option<i32>, String, String) {
    let from = from.to_str().unwrap();
    let mut args = vec!["migrate", "--database", url, "--from", from];
    if verify {
        args.push("--verify");
    }
    hub_output(&args)
}

/// `s`'s next request, merged at `now` and applied at the store; panics
/// if refused.
fn synced(hub: &dyn HubStorage, s: &mut SimStore, now: u64) -> Box<SyncResponse> {
    let req = s.request(1000);
    let result = write(hub, |txn| {
        txn.sync(&s.mem.who, &req, &Default::default(), now)
    });
    match result {
        SyncResult::Synced(resp, _) => {
            s.apply(&req, &resp);
            resp
        }
        SyncResult::Refused(r) => panic!("sync of {} refused: {r}", s.mem.who.replica),
    }
}

/// Syncs `s` until neither side has more.
fn settle(hub: &dyn HubStorage, s: &mut SimStore, now: u64) {
    for _ in 0..1_000 {
        let resp = synced(hub, s, now);
        if !resp.more && !s.has_pending() {
            return;
        }
    }
    panic!("{} did not settle", s.mem.who.replica);
}

/// Gives the hub a reserve of `g` at `s`'s store: an online order it
/// must refuse is demand, the next sync sets a reserve target, the store
/// moves rights to the hub, the sync after tells the hub.
fn reserve(hub: &dyn HubStorage, s: &mut SimStore, g: Gtin, demand: u64, n: u8) {
    let store = s.mem.who.location.to_string();
    let refused = write(hub, |txn| {
        txn.order(&order(
            &format!("demand-{n}"),
            &store,
            &[(g, demand)],
            n,
            true,
        ))
    });
    assert!(
        matches!(refused, OrderResult::InsufficientStock { .. }),
        "{refused:?}"
    );
    synced(hub, s, NOW);
    synced(hub, s, NOW);
}

fn back(g: Gtin, qty: u64) -> LineIn {
    LineIn {
        gtin: g,
        qty,
        unit_price_minor: None,
        price_from_label: false,
        epc: None,
    }
}

fn item(g: Gtin, name: &str, price: i64) -> CatalogItem {
    CatalogItem::new(g, name, price).unwrap()
}

/// A store's cursors before the move, and the embedded hub's exception
/// cursor as HQ held it, to check what each brings afterwards.
struct Lagging {
    hq_exceptions_since: u64,
}

/// The stores of the history, as they stand when the embedded hub stops.
struct Stores {
    s1: SimStore,
    s2: SimStore,
    s3: SimStore,
}

/// Makes an embedded hub's history in `hub` (see the module docs);
/// `bulk` plain events at s3. s1 syncs for the last time before the
/// changes listed in the module docs as late.
fn history(hub: &RedbHub, bulk: usize) -> (Stores, Lagging) {
    let (a, b, c) = (gtin(1), gtin(2), gtin(3));
    let (mut s1, mut s2, mut s3, mut s4) = (
        SimStore::new("s1", 1),
        SimStore::new("s2", 2),
        SimStore::new("s3", 3),
        SimStore::new("s4", 4),
    );
    let changed = write(hub, |txn| {
        txn.catalog(&[
            item(a, "Tea", 250),
            item(b, "Jam", 400),
            item(c, "Oats", 300),
        ])
    });
    assert_eq!(changed.changed, 3);

    // Stock, sales, exceptions of every kind a till raises, a tag sold
    // at two stores.
    s1.receive(a, 30);
    s1.receive(b, 10);
    s1.sell(a, 2).unwrap();
    s1.sell_epc(b, EPC).unwrap();
    s1.sell_override(c, 1);
    s1.refund_without_receipt(a, 1);
    s1.sell_keyed(a, 500, 450);
    let sale = s1.sell(a, 3).unwrap();
    settle(hub, &mut s1, NOW);
    s2.receive(a, 20);
    s2.receive(b, 5);
    s2.sell_epc(b, EPC).unwrap();
    settle(hub, &mut s2, NOW);

    // The bulk: receipts and sales of 50 items at s3.
    for i in 0..bulk {
        let g = gtin(100 + (i as u64 / 2) % 50);
        if i % 2 == 0 {
            s3.receive(g, 2);
        } else {
            s3.sell(g, 1).unwrap();
        }
    }
    settle(hub, &mut s3, NOW);

    // Reserves, store-named orders (one accepted, one refused and counted).
    reserve(hub, &mut s1, a, 70, 1);
    reserve(hub, &mut s2, a, 70, 2);
    let w1 = write(hub, |txn| {
        txn.order(&order("w-1", "s2", &[(a, 1)], 3, true))
    });
    assert!(matches!(w1, OrderResult::Accepted(_)), "{w1:?}");
    assert!(write(hub, |txn| txn.order_refused(
        &loc("s1"),
        Shortage::HeldElsewhere,
        NOW
    )));

    // Routed orders: shipped from s1, a pickup at s2, one cancelled.
    for (id, store, fulfilment, qty) in [
        ("r-1", Some("s1"), Fulfilment::Ship, 3),
        ("p-1", Some("s2"), Fulfilment::Pickup, 2),
        ("r-2", Some("s1"), Fulfilment::Ship, 1),
    ] {
        let r = write(hub, |txn| {
            txn.route_order(&routed(id, store, fulfilment, a, qty))
        });
        assert!(matches!(r, RoutedResult::Accepted(_)), "{id}: {r:?}");
    }
    let cancelled = write(hub, |txn| txn.cancel_order("r-2", [0xc2; 10], NOW + 1_000));
    assert!(
        matches!(cancelled, CancelResult::Cancelled(_)),
        "{cancelled:?}"
    );
    s2.fetch_allocations_in_storage(hub, 1);
    s2.fulfil("p-1", Status::Collected).unwrap();
    settle(hub, &mut s2, NOW + 2_000);

    // Transfers: T2 received, T1 in transit and flagged overdue.
    s1.transfer_out("T1", "s2", a, 2).unwrap();
    s1.transfer_out("T2", "s2", a, 1).unwrap();
    settle(hub, &mut s1, NOW);
    s2.fetch_allocations_in_storage(hub, 10);
    s2.transfer_in("T2").unwrap();
    settle(hub, &mut s2, NOW + 3_000);
    let flagged = write(hub, |txn| {
        txn.flag_overdue_transfers(NOW + OVERDUE + 1, OVERDUE)
    });
    assert_eq!(flagged, 1);

    // Returns: one checked at s2 and taken back there, one check whose
    // return never came (its claim stays open).
    let s2_at = LocationId::new("s2").unwrap();
    let check = |req: &ReturnCheckRequest| write(hub, |txn| txn.check_return(req, &s2_at, NOW));
    let ask = |n: u8, qty| ReturnCheckRequest {
        return_id: EventId::v7(NOW, [n; 10]),
        original_sale: Some(sale),
        order_id: None,
        lines: vec![ReturnLineCheck {
            gtin: a,
            qty,
            epc: None,
        }],
    };
    let CheckResult::Authorized(checked) = check(&ask(0xa1, 2)) else {
        panic!("return not authorized");
    };
    s2.run(Command::Return {
        id: Some(EventId::v7(NOW, [0xa1; 10])),
        lines: vec![back(a, 2)],
        original_sale: Some(sale),
        staff: Default::default(),
        checked: Some(checked),
    })
    .unwrap();
    settle(hub, &mut s2, NOW + 4_000);
    assert!(matches!(check(&ask(0xa2, 1)), CheckResult::Authorized(_)));

    // A grant of the hub's rights at s1.
    let req = s1.rights_request(EventId::v7(NOW, [0xb1; 10]), a, 1);
    let who = s1.mem.who.clone();
    if let GrantResult::Granted(g) = write(hub, |txn| txn.grant(&who, &req, 0)) {
        s1.mem.apply_grant(&g);
    }

    // A sale dated two days ahead of the hub: refused, held.
    s4.receive(a, 5);
    settle(hub, &mut s4, NOW);
    s4.set_clock(NOW + 2 * 24 * 3_600_000);
    s4.sell(a, 1).unwrap();
    let req = s4.request(1000);
    let refused = write(hub, |txn| {
        txn.sync(&s4.mem.who, &req, &Default::default(), NOW)
    });
    assert!(matches!(refused, SyncResult::Refused(_)), "{refused:?}");
    assert_eq!(hub.held_events(10).unwrap().len(), 1);

    // s1's last sync and allocations page before the move.
    s1.fetch_allocations_in_storage(hub, 10);
    settle(hub, &mut s1, NOW);
    s1.fetch_allocations_in_storage(hub, 10);
    let hq_exceptions_since = hub.exceptions(0, 10_000).unwrap().last().unwrap().id;
    // HQ acknowledged one: the acknowledgement and the count move too.
    let acked = write(hub, |txn| {
        txn.acknowledge_exception(1, "lp-ann", "seen", NOW)
    });
    assert!(matches!(acked, AckResult::Acknowledged(_)), "{acked:?}");

    // Late: a catalog change, an order routed to s1 and one named for it
    // (s1's counter of `a` changes), a transfer from s2 to s1, an
    // exception.
    let changed = write(hub, |txn| txn.catalog(&[item(b, "Jam", 450)]));
    assert_eq!(changed.changed, 1);
    let late = write(hub, |txn| {
        txn.route_order(&routed("r-late", Some("s1"), Fulfilment::Ship, a, 1))
    });
    assert!(matches!(late, RoutedResult::Accepted(_)), "{late:?}");
    let w_late = write(hub, |txn| {
        txn.order(&order("w-late", "s1", &[(a, 1)], 4, true))
    });
    assert!(matches!(w_late, OrderResult::Accepted(_)), "{w_late:?}");
    s2.transfer_out("T3", "s1", b, 1).unwrap();
    s2.sell_override(c, 1);
    settle(hub, &mut s2, NOW + 5_000);
    (
        Stores { s1, s2, s3 },
        Lagging {
            hq_exceptions_since,
        },
    )
}

/// `resp` without its inventory cursor: PostgreSQL numbers counter
/// versions per location, the embedded hub over every location, so after
/// the move the two engines' cursors differ while meaning the same.
fn but_cursor(resp: &SyncResponse) -> SyncResponse {
    SyncResponse {
        hub_cursor: 0,
        ..resp.clone()
    }
}

/// One sync of the same store (`pg` and `twin`, two copies of it) on
/// each engine: the answers must be the same but for the inventory
/// cursor. Answers the database's.
fn sync_both(
    pg: &dyn HubStorage,
    twin: &dyn HubStorage,
    on_pg: &mut SimStore,
    on_twin: &mut SimStore,
) -> Box<SyncResponse> {
    let before = on_pg.mem.cursors.hub_cursor;
    let resp = synced(pg, on_pg, NOW + 10_000);
    let theirs = synced(twin, on_twin, NOW + 10_000);
    assert_eq!(
        but_cursor(&resp),
        but_cursor(&theirs),
        "{}",
        on_pg.mem.who.replica
    );
    assert!(resp.hub_cursor >= before, "a cursor never goes back");
    resp
}

/// An embedded hub with a real history moves to PostgreSQL with the
/// real binary; `--verify` finds every read the same; then the stores
/// carry on against PostgreSQL from the cursors the embedded hub gave
/// them, exactly as they would have on the embedded hub (a twin of it
/// runs the same requests), and new orders work. Once the database has
/// moved on, `--verify` says what differs and fails.
#[test]
fn an_embedded_hub_moves_to_postgres_and_its_stores_carry_on() {
    let bulk = support::env_u64("TALLY_MIGRATE_EVENTS", 3_000) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("hub.redb");
    let (stores, lagging) = {
        let hub = RedbHub::open(&file, settings(2)).unwrap();
        history(&hub, bulk)
        // Stopped here: the file is closed.
    };
    let twin_file = tmp.path().join("twin.redb");
    std::fs::copy(&file, &twin_file).unwrap();

    let url = pg::database("migrate_from");
    let before = std::fs::read(&file).unwrap();
    let (code, stdout, stderr) = migrate(&url, &data, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        std::fs::read(&file).unwrap() == before,
        "the import wrote to the file"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("Imported "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    eprintln!("{summary}");
    for table in [
        "hub_events",
        "hub_counters",
        "hub_stores",
        "hub_exceptions",
        "hub_transfers",
    ] {
        assert!(
            summary.contains(&format!(" {table} ")),
            "{table}: {summary}"
        );
    }
    assert!(summary.contains(" hub_held_events 1"), "{summary}");

    // Every read the same.
    let (code, stdout, stderr) = migrate(&url, &data, true);
    eprintln!("{stdout}");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("importing nothing"), "{stdout}");
    assert!(stdout.contains("every one the same"), "{stdout}");
    for read in [
        "counter:",
        "stock:",
        "allocations:",
        "audit:",
        "exceptions:",
        "transfer:",
    ] {
        assert!(stdout.contains(read), "{read}: {stdout}");
    }

    // The stores carry on, on PostgreSQL and on the twin alike.
    let db: DatabaseUrl = url.parse().unwrap();
    let pg = PgHub::connect(&db, settings(2)).unwrap();
    let twin = RedbHub::open(&twin_file, settings(2)).unwrap();
    let Stores { s1, s2, s3 } = stores;
    let (mut s1_pg, mut s1_twin) = (s1.clone(), s1);
    let (a, b) = (gtin(1), gtin(2));

    // s1's cursor lags behind two orders that took `a` there: its sync
    // brings that counter, and the catalog change, once.
    let first = sync_both(&pg, &twin, &mut s1_pg, &mut s1_twin);
    let keys: Vec<&ItemKey> = first.delta.entries.iter().map(|e| &e.key).collect();
    assert!(keys.contains(&&ItemKey::new(loc("s1"), a)), "{keys:?}");
    assert!(keys.iter().all(|k| k.location == loc("s1")));
    let at_hub = pg.counter(&ItemKey::new(loc("s1"), a)).unwrap();
    let sent = first
        .delta
        .entries
        .iter()
        .find(|e| e.key.gtin == a)
        .unwrap();
    assert_eq!(sent.counter, at_hub.without(&s1_pg.mem.who.replica));
    assert_eq!(first.catalog, vec![item(b, "Jam", 450)]);
    // The store moves rights for its reserve; once both sides are quiet,
    // a sync brings nothing again.
    let mut rounds = 0;
    while s1_pg.has_pending() {
        sync_both(&pg, &twin, &mut s1_pg, &mut s1_twin);
        rounds += 1;
        assert!(rounds < 10, "s1 did not settle");
    }
    let quiet = sync_both(&pg, &twin, &mut s1_pg, &mut s1_twin);
    assert!(quiet.delta.entries.is_empty(), "repeated: {quiet:?}");
    assert!(quiet.catalog.is_empty(), "repeated: {quiet:?}");
    assert!(!quiet.more);
    assert_eq!(s1_pg.on_hand(a), s1_twin.on_hand(a));

    // Its allocations page brings the late order and transfer, once.
    let pages = s1_pg.fetch_allocations_in_storage(&pg, 1);
    assert_eq!(pages, s1_twin.fetch_allocations_in_storage(&twin, 1));
    let orders: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.allocations)
        .map(|x| x.order_id.as_str())
        .collect();
    let transfers: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.transfers)
        .map(|t| t.transfer_id.as_str())
        .collect();
    assert_eq!((orders, transfers), (vec!["r-late"], vec!["T3"]));
    assert!(s1_pg.fetch_allocations_in_storage(&pg, 1)[0]
        .allocations
        .is_empty());

    // HQ's exception cursor brings the late one.
    let late = pg.exceptions(lagging.hq_exceptions_since, 100).unwrap();
    assert_eq!(
        late,
        twin.exceptions(lagging.hq_exceptions_since, 100).unwrap()
    );
    let kinds: Vec<&str> = late.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(kinds, vec!["override_sale"]);

    // The others sync; new events, orders, a routed order, a receipt.
    let (mut s2_pg, mut s2_twin) = (s2.clone(), s2);
    let (mut s3_pg, mut s3_twin) = (s3.clone(), s3);
    for (on_pg, on_twin) in [(&mut s2_pg, &mut s2_twin), (&mut s3_pg, &mut s3_twin)] {
        on_pg.sell(gtin(1), 1).ok();
        on_twin.sell(gtin(1), 1).ok();
        sync_both(&pg, &twin, on_pg, on_twin);
    }
    let new = order("w-new", "s1", &[(a, 1)], 5, true);
    let placed = write(&pg, |txn| txn.order(&new));
    assert!(matches!(placed, OrderResult::Accepted(_)), "{placed:?}");
    assert_eq!(placed, write(&twin, |txn| txn.order(&new)));
    let r = routed("r-new", None, Fulfilment::Ship, a, 1);
    let on_pg = write(&pg, |txn| txn.route_order(&r));
    assert!(matches!(on_pg, RoutedResult::Accepted(_)), "{on_pg:?}");
    assert_eq!(on_pg, write(&twin, |txn| txn.route_order(&r)));
    s1_pg.transfer_in("T3").unwrap();
    s1_twin.transfer_in("T3").unwrap();
    sync_both(&pg, &twin, &mut s1_pg, &mut s1_twin);
    assert_eq!(
        pg.transfer("T3").unwrap().unwrap().transfer.status,
        tally_sync::transfer::TransferStatus::Received
    );
    let new_ids = pg.exceptions(lagging.hq_exceptions_since, 100).unwrap();
    assert!(new_ids.windows(2).all(|w| w[0].id < w[1].id));

    // Every read agrees with the twin's: the sequences went on alike.
    let report = verify::compare(&twin, &pg).unwrap();
    assert!(report.is_clean(), "{report}");
    drop(pg);
    drop(twin);

    // The database has moved on from the embedded file: --verify says
    // what differs and fails.
    let (code, stdout, stderr) = migrate(&url, &data, true);
    eprintln!("{stdout}");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("differ"), "{stdout}");
    assert!(stderr.contains("reads differently"), "{stderr}");
}

/// A small embedded hub in `data` (one store, one sync).
fn small_hub(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    let hub = RedbHub::open(&data.join("hub.redb"), settings(100)).unwrap();
    let mut s1 = SimStore::new("s1", 1);
    s1.receive(gtin(1), 5);
    s1.sell(gtin(1), 1).unwrap();
    settle(&hub, &mut s1, NOW);
    let t = write(&hub, |txn| txn.catalog(&[item(gtin(1), "Tea", 250)]));
    assert_eq!(t.changed, 1);
}

/// A database that holds hub data is refused (nothing more written), as
/// are a source that is not an embedded hub and one a running hub has
/// open; `--verify` needs `--from`. Each says what is wrong.
#[test]
fn a_database_with_data_a_bad_source_and_a_running_hub_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    small_hub(&data);
    let url = pg::database("refused");
    let (code, _, stderr) = migrate(&url, &data, false);
    assert_eq!(code, Some(0), "{stderr}");
    let db: DatabaseUrl = url.parse().unwrap();
    let events = || {
        let pg = PgHub::connect(&db, settings(100)).unwrap();
        pg.audit().unwrap().events
    };
    assert_eq!(events(), 2);

    let (code, _, stderr) = migrate(&url, &data, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("already holds hub data"), "{stderr}");
    assert!(stderr.contains("hub_events"), "{stderr}");
    assert_eq!(events(), 2, "nothing more written");

    // Not a hub's data directory; not a database at all.
    let other = pg::database("refused_bad_source");
    let missing = tmp.path().join("nowhere");
    let (code, _, stderr) = migrate(&other, &missing, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no embedded hub database at"), "{stderr}");
    assert!(!missing.exists(), "nothing created");
    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("hub.redb"), b"not a database at all").unwrap();
    let (code, _, stderr) = migrate(&other, &junk, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: importing"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A hub still running on the file: refused until it stops.
    let running = RedbHub::open(&data.join("hub.redb"), settings(100)).unwrap();
    let (code, _, stderr) = migrate(&other, &data, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("already open"), "{stderr}");
    drop(running);
    assert!(import::hub_data_in(&other.parse().unwrap())
        .unwrap()
        .is_empty());
    let (code, _, stderr) = migrate(&other, &data, true);
    assert_eq!(code, Some(0), "{stderr}");

    // --verify alone has nothing to compare with.
    let (code, _, stderr) = hub_output(&["migrate", "--database", &url, "--verify"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--from"), "{stderr}");
}

/// A record that does not decode stops the import with an error naming
/// its table, and the database keeps nothing of it, not even the tables
/// copied before (one transaction). A file an older hub left without its
/// open-time upgrades is refused with what to do.
#[test]
fn a_corrupt_record_fails_the_import_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hub");
    small_hub(&data);
    {
        let hub = RedbHub::open(&data.join("hub.redb"), settings(100)).unwrap();
        let txn = hub.db().begin_write().unwrap();
        {
            let def = tally_store::redb::TableDefinition::<&str, &[u8]>::new("hub_transfers");
            let mut t = txn.raw().open_table(def).unwrap();
            t.insert("T-bad", b"{not json".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let url = pg::database("corrupt");
    let (code, _, stderr) = migrate(&url, &data, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("corrupt record in hub_transfers"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let db: DatabaseUrl = url.parse().unwrap();
    assert_eq!(import::hub_data_in(&db).unwrap(), Vec::<&str>::new());

    let old = tmp.path().join("old");
    small_hub(&old);
    {
        let hub = RedbHub::open(&old.join("hub.redb"), settings(100)).unwrap();
        let txn = hub.db().begin_write().unwrap();
        txn.put_meta("hub_content_v1", b"0").unwrap();
        txn.commit().unwrap();
    }
    let (code, _, stderr) = migrate(&url, &old, false);
    eprint!("{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("older tally-hub"), "{stderr}");
    assert!(
        stderr.contains("start the current tally-hub on it once"),
        "{stderr}"
    );
    assert_eq!(import::hub_data_in(&db).unwrap(), Vec::<&str>::new());
}
