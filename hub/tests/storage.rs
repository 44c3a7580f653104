//! The hub's storage conformance suite: what the HTTP layer relies on
//! from `HubStorage` (one batch of typed `HubWrite`s committed whole or
//! not at all, and snapshot reads), written against the trait alone so
//! that every storage engine runs the very same tests. The engines are
//! listed in `support::storage_backends::backends`; each test runs on
//! each, in a fresh directory, and checks what must survive a restart by
//! reopening the storage.
//!
//! Requests are made by model stores running the real command core
//! (`support::SimStore`), so what reaches storage is what an agent
//! sends. Every clock is fixed: no test sleeps or times anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use support::storage_backends::{
    backends, loc, order, routed, settings, write, Backend, TestStorage, NOW,
};
use support::{gtin, SimStore};
use tally_hub::storage::held::AdmitResult;
use tally_hub::storage::returns::CheckResult;
use tally_hub::storage::routed::{CancelResult, RoutedOrderRequest, RoutedResult};
use tally_hub::storage::{
    AckResult, ExceptionAck, ExceptionRecord, GrantResult, HubStorage, OrderLine, OrderRequest,
    OrderResult, ReleaseResult, StorageError, StoreStock, SyncResult, SyncSummary,
    SALES_WINDOW_MINUTES,
};
use tally_sync::command::{Command, LineIn};
use tally_sync::exchange::{Identity, SyncRefusal};
use tally_sync::fulfilment::{Fulfilment, Status};
use tally_sync::limits::{offset_ms, DateAllowance, ALLOWANCE_MARGIN_MS, ALLOWANCE_TTL_MS};
use tally_sync::message::CatalogItem;
use tally_sync::returns::{ReturnCheckRequest, ReturnLineCheck};
use tally_sync::routing::{AllocatedLine, Allocation, Unfillable};
use tally_sync::transfer::TransferStatus;
use tally_sync::{
    EventId, Gtin, ItemKey, LocationId, Refusal, ReplicaId, ReserveTarget, Shortage, SyncRequest,
    SyncResponse,
};

const DAY: u64 = 24 * 3_600_000;

/// `qty` of `g` at `store`, as a routing plan gives it.
fn part(store: &str, g: Gtin, qty: u64) -> Allocation {
    Allocation {
        store: loc(store),
        lines: vec![AllocatedLine { gtin: g, qty }],
    }
}

fn key(store: &str, g: Gtin) -> ItemKey {
    ItemKey::new(loc(store), g)
}

/// `g`'s stock at `store` as `stock` reads it (zeros if not listed).
fn at(hub: &dyn HubStorage, g: Gtin, store: &str) -> StoreStock {
    hub.stock(g)
        .unwrap()
        .into_iter()
        .find(|(s, _)| s == store)
        .map_or(
            StoreStock {
                on_hand: 0,
                store_rights: 0,
                hub_rights: 0,
            },
            |(_, stock)| stock,
        )
}

/// `req` from `who` in a batch of its own, at `now` (hub clock).
fn sync_req(hub: &dyn HubStorage, who: &Identity, req: &SyncRequest, now: u64) -> SyncResult {
    write(hub, |txn| txn.sync(who, req, &Default::default(), now))
}

/// `s`'s next request, merged at `now` and applied at the store; panics
/// if refused.
fn synced(
    hub: &dyn HubStorage,
    s: &mut SimStore,
    now: u64,
) -> (SyncRequest, Box<SyncResponse>, SyncSummary) {
    let req = s.request(1000);
    match sync_req(hub, &s.mem.who, &req, now) {
        SyncResult::Synced(resp, summary) => {
            s.apply(&req, &resp);
            (req, resp, summary)
        }
        SyncResult::Refused(r) => panic!("sync of {} refused: {r}", s.mem.who.replica),
    }
}

fn place(hub: &dyn HubStorage, o: &OrderRequest) -> OrderResult {
    write(hub, |txn| txn.order(o))
}

/// Gives the hub a reserve of `g` at `s`'s location, the way it gets one:
/// an online order for `demand` units refused there (the hub holds
/// nothing yet) is online demand, the store's next sync answers a reserve
/// target and the store moves that many rights to the hub, and the hub
/// learns of the move on the sync after. Answers the hub's rights there.
fn reserve(hub: &dyn HubStorage, s: &mut SimStore, g: Gtin, demand: u64, n: u8) -> u64 {
    let store = s.mem.who.location.to_string();
    let refused = place(
        hub,
        &order(&format!("demand-{n}"), &store, &[(g, demand)], n, true),
    );
    assert!(
        matches!(refused, OrderResult::InsufficientStock { .. }),
        "{refused:?}"
    );
    synced(hub, s, NOW);
    synced(hub, s, NOW);
    let held = at(hub, g, &store).hub_rights;
    assert!(held > 0, "no reserve at {store}");
    held
}

fn route(hub: &dyn HubStorage, o: &RoutedOrderRequest) -> RoutedResult {
    write(hub, |txn| txn.route_order(o))
}

fn cancel(hub: &dyn HubStorage, id: &str, n: u8) -> CancelResult {
    write(hub, |txn| txn.cancel_order(id, [n; 10], NOW + 1_000))
}

/// Every exception, oldest first.
fn all_exceptions(hub: &dyn HubStorage) -> Vec<ExceptionRecord> {
    hub.exceptions(0, 10_000).unwrap()
}

fn kinds(hub: &dyn HubStorage) -> Vec<String> {
    all_exceptions(hub).into_iter().map(|x| x.kind).collect()
}

/// A return line priced by its original.
fn back(g: Gtin, qty: u64) -> LineIn {
    LineIn {
        gtin: g,
        qty,
        unit_price_minor: None,
        price_from_label: false,
        epc: None,
    }
}

/// A store's sync: its new events are stored once (a resent request
/// counts them as duplicates), its counters merged and readable, its
/// record and sales per minute kept, all of it durably.
#[test]
fn a_sync_stores_events_once_merges_counters_and_keeps_the_store_record() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let (a, b) = (gtin(1), gtin(2));
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 10);
        s1.receive(b, 4);
        let sale = s1.sell(a, 3).unwrap();
        // Refused at the till for lack of stock: a lost sale the store
        // reports.
        assert!(s1.sell(b, 10).is_err());
        assert_eq!(s1.mem.lost.no_stock.sales, 1);

        let req = s1.request(1000);
        let SyncResult::Synced(resp, summary) = sync_req(&*st, &s1.mem.who, &req, NOW) else {
            panic!("{backend}: refused");
        };
        assert_eq!(
            summary,
            SyncSummary {
                new_events: 3,
                duplicate_events: 0,
                rejected_events: 0,
                merged: 2,
                rights_given: 0,
                exceptions: 0,
            },
            "{backend}"
        );
        assert_eq!(resp.acked_events_upto, req.events_upto, "{backend}");
        assert_eq!(resp.acked_delta_version, req.delta_version, "{backend}");
        assert!(resp.rejected_events.is_empty(), "{backend}");
        // Nothing at the hub the store does not already have.
        assert!(resp.delta.entries.is_empty(), "{backend}: {:?}", resp.delta);
        assert!(resp.reserve.is_empty(), "{backend}");

        // The same request again (the answer was lost): nothing new.
        let SyncResult::Synced(again, summary) = sync_req(&*st, &s1.mem.who, &req, NOW + 1_000)
        else {
            panic!("{backend}: refused");
        };
        assert_eq!(
            (summary.new_events, summary.duplicate_events, summary.merged),
            (0, 3, 0),
            "{backend}"
        );
        assert_eq!(again.acked_events_upto, req.events_upto, "{backend}");
        s1.apply(&req, &again);
        assert!(!s1.has_pending(), "{backend}");

        let sale_minute = s1.mem.recorded(&sale).unwrap().at_ms / 60_000;
        for reopened in [false, true] {
            if reopened {
                st.reopen();
            }
            let c = st.counter(&key("s1", a)).unwrap();
            assert_eq!(c.value(), 7, "{backend} reopened={reopened}");
            assert_eq!(c, s1.mem.counter(a), "{backend}: the store's counter");
            assert_eq!(
                at(&*st, a, "s1"),
                StoreStock {
                    on_hand: 7,
                    store_rights: 7,
                    hub_rights: 0
                },
                "{backend}"
            );
            assert_eq!(st.stock(b).unwrap().len(), 1, "{backend}");
            assert_eq!(at(&*st, b, "s1").on_hand, 4, "{backend}");
            assert!(st.stock(gtin(3)).unwrap().is_empty(), "{backend}");

            let stores = st.stores().unwrap();
            assert_eq!(stores.len(), 1, "{backend}");
            let r = &stores[0];
            assert_eq!(r.store, "s1", "{backend}");
            assert_eq!(
                (r.first_sync_ms, r.last_sync_ms, r.syncs),
                (NOW, NOW + 1_000, 2),
                "{backend}"
            );
            assert_eq!(r.events_received, 3, "{backend}: counted once");
            assert_eq!(r.acked_events_upto, req.events_upto, "{backend}");
            assert_eq!(r.lost_sales, s1.mem.lost, "{backend}");
            assert_eq!(r.refused_orders.no_stock, 0, "{backend}");

            // Units sold per minute, counted once.
            assert_eq!(
                st.sales_per_minute(0).unwrap(),
                vec![("s1".to_string(), sale_minute, 3)],
                "{backend}"
            );
            assert_eq!(
                st.sales_per_minute(sale_minute).unwrap().len(),
                1,
                "{backend}: from its minute on"
            );
            assert!(st.sales_per_minute(sale_minute + 1).unwrap().is_empty());
        }

        // After the restart the events are still known: a third resend is
        // all duplicates, and a new sale is new.
        let SyncResult::Synced(_, summary) = sync_req(&*st, &s1.mem.who, &req, NOW + 2_000) else {
            panic!("{backend}: refused");
        };
        assert_eq!((summary.new_events, summary.duplicate_events), (0, 3));
        s1.sell(a, 2).unwrap();
        let (_, _, summary) = synced(&*st, &mut s1, NOW + 3_000);
        assert_eq!(summary.new_events, 1, "{backend}");
        assert_eq!(st.counter(&key("s1", a)).unwrap().value(), 5, "{backend}");
        let r = &st.stores().unwrap()[0];
        assert_eq!((r.syncs, r.events_received), (4, 4), "{backend}");
        let sold: u64 = st.sales_per_minute(0).unwrap().iter().map(|x| x.2).sum();
        assert_eq!(sold, 5, "{backend}");

        // Another event under a stored event's id: rejected for good,
        // nothing of it counted.
        let mut tampered = s1.request(1000);
        let mut forged = s1.mem.recorded(&sale).unwrap().clone();
        forged.lines[0].qty = 1;
        tampered.events = vec![forged];
        let SyncResult::Synced(resp, summary) = sync_req(&*st, &s1.mem.who, &tampered, NOW + 4_000)
        else {
            panic!("{backend}: refused");
        };
        assert_eq!(
            (
                summary.new_events,
                summary.duplicate_events,
                summary.rejected_events
            ),
            (0, 0, 1),
            "{backend}"
        );
        assert_eq!(resp.rejected_events.len(), 1, "{backend}");
        assert_eq!(resp.rejected_events[0].id, sale);
        st.reopen();
        assert_eq!(st.counter(&key("s1", a)).unwrap().value(), 5, "{backend}");
        assert_eq!(st.stores().unwrap()[0].events_received, 4, "{backend}");
        let sold: u64 = st.sales_per_minute(0).unwrap().iter().map(|x| x.2).sum();
        assert_eq!(sold, 5, "{backend}");
        assert_eq!(st.audit().unwrap().events, 4, "{backend}");
    }
}

/// Units sold per minute are kept for the stats' window and no longer:
/// a store's first sync in a minute forgets its minutes that left it,
/// sales dated before it (a store back after weeks offline) are not
/// counted, and a read answers each store's minutes from `since` alone.
#[test]
fn sales_per_minute_keep_the_window_and_no_more() {
    const MIN: u64 = 60_000;
    let window = SALES_WINDOW_MINUTES * MIN;
    for backend in backends() {
        let st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut stores: Vec<SimStore> = ["s1", "s2", "s3"]
            .iter()
            .enumerate()
            .map(|(i, id)| SimStore::new(id, i as u64 + 1))
            .collect();
        // Each store sells in three minutes a day apart.
        for (i, s) in stores.iter_mut().enumerate() {
            s.set_clock(NOW);
            s.receive(a, 100);
            for day in 0..3u64 {
                s.set_clock(NOW + day * 24 * 60 * MIN);
                s.sell(a, i as u64 + 1).unwrap();
            }
            synced(&*st, s, NOW + 2 * 24 * 60 * MIN);
        }
        let minute = |day: u64| (NOW + day * 24 * 60 * MIN) / MIN;
        let rows = st.sales_per_minute(0).unwrap();
        assert_eq!(rows.len(), 9, "{backend}: {rows:?}");
        assert_eq!(
            st.sales_per_minute(minute(1)).unwrap(),
            vec![
                ("s1".to_string(), minute(1), 1),
                ("s1".to_string(), minute(2), 1),
                ("s2".to_string(), minute(1), 2),
                ("s2".to_string(), minute(2), 2),
                ("s3".to_string(), minute(1), 3),
                ("s3".to_string(), minute(2), 3),
            ],
            "{backend}: store then minute, from `since` on"
        );

        // A week and a half later s1 syncs again: its first day left the
        // window and is forgotten; the other stores keep theirs until
        // they sync.
        let later = NOW + window + 36 * 60 * MIN;
        stores[0].set_clock(later);
        stores[0].sell(a, 1).unwrap();
        synced(&*st, &mut stores[0], later);
        let s1: Vec<u64> = st
            .sales_per_minute(0)
            .unwrap()
            .into_iter()
            .filter(|r| r.0 == "s1")
            .map(|r| r.1)
            .collect();
        assert_eq!(s1, vec![minute(2), later / MIN], "{backend}");
        assert_eq!(st.sales_per_minute(0).unwrap().len(), 8, "{backend}");

        // s2 was offline all along: its sale dated before the window is
        // in its events, not in the minutes.
        stores[1].set_clock(NOW + 3 * 60 * MIN);
        stores[1].sell(a, 5).unwrap();
        let (_, _, summary) = synced(&*st, &mut stores[1], later + MIN);
        assert_eq!(summary.new_events, 1, "{backend}");
        let s2: Vec<(u64, u64)> = st
            .sales_per_minute(0)
            .unwrap()
            .into_iter()
            .filter(|r| r.0 == "s2")
            .map(|r| (r.1, r.2))
            .collect();
        assert_eq!(s2, vec![(minute(2), 2)], "{backend}");
    }
}

/// Text a store sent with a NUL or an escape sequence in it is refused
/// with its event, which is held whole (a NUL too: PostgreSQL's `jsonb`
/// cannot hold one, so a held event is kept as JSON text in `bytea`),
/// and the store's other writes and later syncs go on.
#[test]
fn an_event_with_control_characters_in_its_text_is_refused_and_held_whole() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let g = gtin(1);
        for (i, bad) in ["c\0", "\u{1b}]0;pwned\u{7}"].into_iter().enumerate() {
            let mut s = SimStore::new(&format!("s{}", i + 1), i as u64 + 1);
            s.receive(g, 5);
            let sale = s.sell(g, 1).unwrap();
            let mut req = s.request(1000);
            let e = req.events.iter_mut().find(|e| e.id == sale).unwrap();
            e.staff.cashier = Some(bad.to_string());
            let refused = sync_req(&*st, &s.mem.who, &req, NOW + i as u64);
            assert!(
                matches!(&refused, SyncResult::Refused(SyncRefusal::Event { id, reason })
                    if *id == sale && reason.contains("control character")),
                "{backend}: {refused:?}"
            );
            st.reopen();
            let held = st.held_events(10).unwrap();
            assert_eq!(held.len(), i + 1, "{backend}");
            let h = held.iter().find(|h| h.event.id == sale).unwrap();
            assert_eq!(h.event.staff.cashier.as_deref(), Some(bad), "{backend}");
        }
        // Nothing of the request was kept, and other stores sync on.
        assert_eq!(st.counter(&key("s1", g)).unwrap().value(), 0, "{backend}");
        let mut s3 = SimStore::new("s3", 3);
        s3.receive(g, 2);
        let (_, _, summary) = synced(&*st, &mut s3, NOW + 5);
        assert_eq!(summary.new_events, 1, "{backend}");
    }
}

/// A refused sync writes nothing of its request, holds the event it was
/// refused for (with an `event_held` exception), once; HQ admits it and
/// the store syncs again.
#[test]
fn a_refused_sync_writes_nothing_and_holds_its_event_until_admitted() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let g = gtin(7);
        let mut s1 = SimStore::new("s1", 3);
        s1.receive(g, 5);
        synced(&*st, &mut s1, NOW);
        let record = st.stores().unwrap();

        // More stock, then a sale dated two days ahead of the hub's clock.
        s1.receive(g, 3);
        s1.set_clock(NOW + 2 * 24 * 3_600_000);
        let ahead = s1.sell(g, 1).unwrap();
        let req = s1.request(1000);
        assert_eq!(req.events.len(), 2);
        let SyncResult::Refused(refusal) = sync_req(&*st, &s1.mem.who, &req, NOW + 1) else {
            panic!("{backend}: an event dated beyond the window was merged");
        };
        assert!(
            matches!(&refusal, SyncRefusal::OutOfWindow { id, .. } if *id == ahead),
            "{backend}: {refusal:?}"
        );
        // Nothing of it: not the receipt, not the counter, not the record.
        assert_eq!(st.counter(&key("s1", g)).unwrap().value(), 5, "{backend}");
        assert_eq!(st.stores().unwrap(), record, "{backend}");
        assert!(st.sales_per_minute(0).unwrap().is_empty(), "{backend}");

        let held = st.held_events(10).unwrap();
        assert_eq!(held.len(), 1, "{backend}");
        assert_eq!(held[0].event.id, ahead);
        assert_eq!(
            (held[0].store.as_str(), held[0].location.as_str()),
            ("s1", "s1")
        );
        assert_eq!(held[0].held_at_ms, NOW + 1);
        assert!(held[0].reason.contains("window"), "{}", held[0].reason);
        let x = all_exceptions(&*st);
        assert_eq!(x.len(), 1, "{backend}: {x:?}");
        assert_eq!(
            (x[0].kind.as_str(), &x[0].event_ids),
            ("event_held", &vec![ahead])
        );

        // Refused again: held once. The rest without it (the store
        // dead-lettered it) is refused too, and holds nothing more.
        sync_req(&*st, &s1.mem.who, &req, NOW + 2);
        let mut rest = req.clone();
        rest.events.retain(|e| e.id != ahead);
        let refused = sync_req(&*st, &s1.mem.who, &rest, NOW + 3);
        assert!(
            matches!(refused, SyncResult::Refused(_)),
            "{backend}: {refused:?}"
        );
        st.reopen();
        assert_eq!(st.held_events(10).unwrap().len(), 1, "{backend}");
        assert_eq!(kinds(&*st), vec!["event_held"], "{backend}");
        assert_eq!(st.counter(&key("s1", g)).unwrap().value(), 5, "{backend}");

        // Admitted the next morning: stored, no longer held; the store,
        // which kept the event, syncs again. Its allowance covers its
        // clock's two days ahead (measured when the sale came, not
        // shrunk by the night since) and an hour more, for a week.
        let morning = NOW + DAY / 2;
        let admitted = write(&*st, |txn| txn.admit_held(ahead, morning));
        let at = req.events.iter().find(|e| e.id == ahead).unwrap().at_ms;
        let allowed = DateAllowance::default().covering(offset_ms(at, NOW + 1), morning);
        assert_eq!(allowed.ahead_ms, at - NOW - 1 + ALLOWANCE_MARGIN_MS);
        assert_eq!(
            admitted,
            AdmitResult::Admitted {
                store: "s1".into(),
                dates_allowed: Some(allowed),
            },
            "{backend}"
        );
        assert!(st.held_events(10).unwrap().is_empty(), "{backend}");
        assert_eq!(
            kinds(&*st),
            vec!["event_held", "event_admitted"],
            "{backend}"
        );
        let SyncResult::Synced(resp, summary) = sync_req(&*st, &s1.mem.who, &req, morning + 1)
        else {
            panic!("{backend}: still refused after the admission");
        };
        assert_eq!(summary.new_events, 1, "{backend}: the receipt");
        assert_eq!(summary.duplicate_events, 1, "{backend}: the admitted sale");
        s1.apply(&req, &resp);
        st.reopen();
        assert_eq!(st.counter(&key("s1", g)).unwrap().value(), 7, "{backend}");
        let record = &st.stores().unwrap()[0];
        assert_eq!(record.syncs, 2, "{backend}");
        assert_eq!(record.dates_allowed, Some(allowed), "{backend}");
        assert_eq!(
            write(&*st, |txn| txn.admit_held(ahead, morning + 2)),
            AdmitResult::NotHeld,
            "{backend}"
        );

        // The clock is still two days ahead of the hub's: its sales this
        // morning go through without HQ; one dated further still is held
        // in turn.
        s1.set_clock(morning + 2 * DAY);
        s1.sell(g, 1).unwrap();
        s1.set_clock(morning + 2 * DAY + 60_000);
        s1.sell(g, 1).unwrap();
        let (_, _, summary) = synced(&*st, &mut s1, morning + 60_000);
        assert_eq!(summary.new_events, 2, "{backend}");
        // Charted in the hub's minute, not two days on.
        let minutes: Vec<u64> = st
            .sales_per_minute(0)
            .unwrap()
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(minutes, vec![(morning + 60_000) / 60_000], "{backend}");
        s1.set_clock(NOW + 9 * DAY);
        let further = s1.sell(g, 1).unwrap();
        let req = s1.request(1000);
        let refused = sync_req(&*st, &s1.mem.who, &req, morning + 120_000);
        assert!(
            matches!(&refused, SyncResult::Refused(SyncRefusal::OutOfWindow { id, .. }) if *id == further),
            "{backend}: {refused:?}"
        );
        assert_eq!(st.held_events(10).unwrap().len(), 1, "{backend}");
        // A week after the admission, the usual window again.
        let week = morning + ALLOWANCE_TTL_MS + 1;
        s1.set_clock(week + 2 * DAY);
        let late = s1.sell(g, 1).unwrap();
        let mut req = s1.request(1000);
        req.events.retain(|e| e.id == late);
        let refused = sync_req(&*st, &s1.mem.who, &req, week);
        assert!(
            matches!(&refused, SyncResult::Refused(SyncRefusal::OutOfWindow { id, .. }) if *id == late),
            "{backend}: {refused:?}"
        );
    }
}

/// Store-named online orders: refused for lack of the hub's rights (the
/// refusal still counts as demand, so the next sync's reserve follows
/// it), accepted against them, answered alike on a repeat of the id and
/// refused as a conflict with other lines; a refusal is counted in the
/// store's record.
#[test]
fn store_named_orders_take_the_hubs_rights_once_per_id() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let changed = write(&*st, |txn| {
            txn.catalog(&[CatalogItem::new(a, "Tea", 250).unwrap()])
        });
        assert_eq!(changed.changed, 1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 20);
        synced(&*st, &mut s1, NOW);

        // The hub holds no rights: refused, with the shelf as it is; no
        // order is recorded, but the demand is.
        let short = place(&*st, &order("w0", "s1", &[(a, 15)], 1, true));
        assert_eq!(
            short,
            OrderResult::InsufficientStock {
                gtin: a,
                requested: 15,
                available: 0,
                on_hand: 20
            },
            "{backend}"
        );
        // The client sends the same order again (its own retry): the same
        // answer, and no new demand (the reserve below follows one).
        let again = place(&*st, &order("w0", "s1", &[(a, 15)], 1, true));
        assert_eq!(again, short, "{backend}");
        assert!(write(&*st, |txn| txn.order_refused(
            &loc("s1"),
            Shortage::HeldElsewhere,
            NOW
        )));
        assert!(
            !write(&*st, |txn| txn.order_refused(
                &loc("s9"),
                Shortage::NoStock,
                NOW
            )),
            "{backend}: a store that never synced has no record"
        );
        assert_eq!(st.stores().unwrap().len(), 1, "{backend}");
        st.reopen();
        let (_, resp, _) = synced(&*st, &mut s1, NOW);
        assert_eq!(
            resp.reserve,
            vec![ReserveTarget { gtin: a, units: 2 }],
            "{backend}"
        );
        synced(&*st, &mut s1, NOW);
        assert_eq!(
            at(&*st, a, "s1"),
            StoreStock {
                on_hand: 20,
                store_rights: 18,
                hub_rights: 2
            },
            "{backend}"
        );
        let rec = &st.stores().unwrap()[0];
        assert_eq!(
            (
                rec.refused_orders.held_elsewhere,
                rec.refused_orders.no_stock
            ),
            (1, 0),
            "{backend}"
        );
        // In the last day's counts too, kept by both engines.
        let day = rec.recent.last_day(NOW);
        assert_eq!(
            (
                day.refused_orders.held_elsewhere,
                day.refused_orders.no_stock
            ),
            (1, 0),
            "{backend}"
        );

        // Within the hub's rights: accepted, priced from the catalog.
        let w1 = order("w1", "s1", &[(a, 1)], 2, true);
        let OrderResult::Accepted(receipt) = place(&*st, &w1) else {
            panic!("{backend}: not accepted");
        };
        assert_eq!(receipt.order_id, "w1");
        assert_eq!(receipt.event_id, w1.event_id);
        assert_eq!(receipt.store, loc("s1"));
        assert_eq!(receipt.at_ms, NOW);
        assert_eq!(
            receipt.lines,
            vec![OrderLine {
                gtin: a,
                qty: 1,
                unit_price_minor: 250
            }]
        );
        assert_eq!(
            at(&*st, a, "s1"),
            StoreStock {
                on_hand: 19,
                store_rights: 18,
                hub_rights: 1
            },
            "{backend}"
        );
        // A retry (a new event id, later, not counted as demand): the same
        // receipt, nothing more taken.
        let mut retry = order("w1", "s1", &[(a, 1)], 3, false);
        retry.now_ms = NOW + 5_000;
        assert_eq!(place(&*st, &retry), OrderResult::Replayed(receipt.clone()));
        // The id with other lines, or at another store: a conflict.
        for other in [
            order("w1", "s1", &[(a, 2)], 4, true),
            order("w1", "s2", &[(a, 1)], 4, true),
        ] {
            assert_eq!(
                place(&*st, &other),
                OrderResult::IdConflict {
                    order_id: "w1".into()
                },
                "{backend}"
            );
        }
        // Beyond what the hub holds: refused, nothing taken.
        let over = place(&*st, &order("w2", "s1", &[(a, 5)], 5, false));
        assert_eq!(
            over,
            OrderResult::InsufficientStock {
                gtin: a,
                requested: 5,
                available: 1,
                on_hand: 19
            },
            "{backend}"
        );
        assert_eq!(at(&*st, a, "s1").on_hand, 19, "{backend}");

        // The store hears of the order in its next sync's delta; the
        // reserve follows the demand back up to its target (2), which the
        // hub learns of on the sync after.
        st.reopen();
        let (_, resp, _) = synced(&*st, &mut s1, NOW);
        assert!(!resp.delta.entries.is_empty(), "{backend}");
        assert_eq!(s1.on_hand(a), 19, "{backend}");
        assert_eq!(
            resp.reserve,
            vec![ReserveTarget { gtin: a, units: 2 }],
            "{backend}"
        );
        synced(&*st, &mut s1, NOW);
        assert_eq!(s1.mem.counter(a), st.counter(&key("s1", a)).unwrap());
        assert_eq!(
            at(&*st, a, "s1"),
            StoreStock {
                on_hand: 19,
                store_rights: 17,
                hub_rights: 2
            },
            "{backend}"
        );
        assert_eq!(place(&*st, &retry), OrderResult::Replayed(receipt));
    }
}

/// Orders that name no store: routed to the stores where the hub holds
/// rights, all or nothing, listed and paged by status, announced to their
/// stores page by page; a cancellation gives the units back once; a
/// handed-over allocation cannot be cancelled; an id names one order
/// among routed and store-named ones.
#[test]
fn routed_orders_are_allocated_paged_cancelled_and_handed_over() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let (mut s1, mut s2) = (SimStore::new("s1", 1), SimStore::new("s2", 2));
        s1.receive(a, 20);
        s2.receive(a, 20);
        let r1 = reserve(&*st, &mut s1, a, 70, 1);
        let r2 = reserve(&*st, &mut s2, a, 70, 2);
        assert_eq!((r1, r2), (7, 7), "{backend}");

        // Three units: one store, the first by id.
        let req = routed("r-1", None, Fulfilment::Ship, a, 3);
        let RoutedResult::Accepted(order1) = route(&*st, &req) else {
            panic!("{backend}: not routed");
        };
        assert_eq!(order1.order_id, "r-1");
        assert_eq!(
            (order1.status, order1.fulfilment),
            (Status::Allocated, Fulfilment::Ship)
        );
        assert_eq!(order1.allocations.len(), 1, "{backend}: {order1:?}");
        assert_eq!(order1.allocations[0].store, loc("s1"));
        assert_eq!(order1.allocations[0].status, Status::Allocated);
        assert_eq!(
            order1.allocations[0].lines,
            vec![AllocatedLine { gtin: a, qty: 3 }]
        );
        assert_eq!(at(&*st, a, "s1").hub_rights, 4, "{backend}");
        assert_eq!(at(&*st, a, "s1").on_hand, 17, "{backend}");
        // A store-named order at s2 from the hub's rights there.
        let w1 = order("w-1", "s2", &[(a, 1)], 1, true);
        assert!(matches!(place(&*st, &w1), OrderResult::Accepted(_)));
        // A repeat: the same order; other lines under the id: a conflict,
        // as is a store-named order under it, and a routed order under a
        // store-named order's id.
        assert_eq!(route(&*st, &req), RoutedResult::Replayed(order1.clone()));
        assert_eq!(
            route(&*st, &routed("r-1", None, Fulfilment::Ship, a, 4)),
            RoutedResult::IdConflict
        );
        assert_eq!(
            place(&*st, &order("r-1", "s1", &[(a, 3)], 9, false)),
            OrderResult::IdConflict {
                order_id: "r-1".into()
            }
        );
        assert_eq!(
            route(&*st, &routed("w-1", None, Fulfilment::Ship, a, 1)),
            RoutedResult::IdConflict,
            "{backend}"
        );

        // More than the chain's reserves (4 at s1, 6 at s2): the units
        // missing, nothing written.
        let before = (
            at(&*st, a, "s1"),
            at(&*st, a, "s2"),
            st.status_counts().unwrap(),
        );
        assert_eq!(
            route(&*st, &routed("r-big", None, Fulfilment::Ship, a, 11)),
            RoutedResult::Unfillable(Unfillable {
                missing: vec![AllocatedLine { gtin: a, qty: 1 }],
                partial: vec![part("s2", a, 6), part("s1", a, 4)],
            }),
            "{backend}"
        );
        assert_eq!(st.routed_order("r-big").unwrap(), None, "{backend}");
        assert_eq!(
            (
                at(&*st, a, "s1"),
                at(&*st, a, "s2"),
                st.status_counts().unwrap()
            ),
            before,
            "{backend}"
        );

        // A pickup order at s2 (4 left there), and two more shipped ones
        // (2 left at s1).
        let RoutedResult::Accepted(pickup) =
            route(&*st, &routed("p-1", Some("s2"), Fulfilment::Pickup, a, 2))
        else {
            panic!("{backend}: pickup not allocated");
        };
        assert_eq!(pickup.allocations.len(), 1);
        assert_eq!(pickup.allocations[0].store, loc("s2"));
        for id in ["r-2", "r-3"] {
            assert!(matches!(
                route(&*st, &routed(id, None, Fulfilment::Ship, a, 1)),
                RoutedResult::Accepted(_)
            ));
        }
        assert_eq!(
            (at(&*st, a, "s1").hub_rights, at(&*st, a, "s2").hub_rights),
            (2, 4),
            "{backend}"
        );
        // No store holds 5: split over both, the larger part first.
        let RoutedResult::Accepted(split) =
            route(&*st, &routed("r-4", None, Fulfilment::Ship, a, 5))
        else {
            panic!("{backend}: not split");
        };
        let parts: Vec<(&str, u64)> = split
            .allocations
            .iter()
            .map(|x| (x.store.as_str(), x.lines[0].qty))
            .collect();
        assert_eq!(parts, vec![("s2", 4), ("s1", 1)], "{backend}: {split:?}");
        assert_eq!(
            (at(&*st, a, "s1").hub_rights, at(&*st, a, "s2").hub_rights),
            (1, 0),
            "{backend}"
        );

        // s2's reserve is gone: 2 more cannot be had (s1 holds 1).
        assert_eq!(
            route(&*st, &routed("r-5", None, Fulfilment::Ship, a, 2)),
            RoutedResult::Unfillable(Unfillable {
                missing: vec![AllocatedLine { gtin: a, qty: 1 }],
                partial: vec![part("s1", a, 1)],
            }),
            "{backend}"
        );

        // Listed by status, by id, in pages.
        let ids = |orders: Vec<tally_hub::storage::routed::RoutedOrder>| -> Vec<String> {
            orders.into_iter().map(|o| o.order_id).collect()
        };
        assert_eq!(
            ids(st.routed_orders(Status::Allocated, "", 2).unwrap()),
            vec!["p-1", "r-1"],
            "{backend}"
        );
        assert_eq!(
            ids(st.routed_orders(Status::Allocated, "r-1", 2).unwrap()),
            vec!["r-2", "r-3"]
        );
        assert_eq!(
            ids(st.routed_orders(Status::Allocated, "r-3", 2).unwrap()),
            vec!["r-4"]
        );
        assert!(st
            .routed_orders(Status::Allocated, "r-4", 2)
            .unwrap()
            .is_empty());
        assert!(st
            .routed_orders(Status::Cancelled, "", 10)
            .unwrap()
            .is_empty());
        assert_eq!(st.routed_order("p-1").unwrap(), Some(pickup.clone()));

        // Each store's allocations, one change a page, each once, with a
        // rising cursor.
        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let page = st.allocations(&loc("s1"), cursor, 1).unwrap();
            assert!(page.allocations.len() <= 1, "{backend}: {page:?}");
            assert!(page.transfers.is_empty());
            if page.allocations.is_empty() {
                assert!(!page.more);
                break;
            }
            assert!(page.cursor > cursor, "{backend}: {page:?}");
            cursor = page.cursor;
            seen.extend(page.allocations.into_iter().map(|x| x.order_id));
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, vec!["r-1", "r-2", "r-3", "r-4"], "{backend}");
        assert_eq!(
            st.allocations(&loc("s1"), cursor, 10).unwrap().allocations,
            vec![]
        );
        let s2_page = st.allocations(&loc("s2"), 0, 10).unwrap();
        let at_s2: Vec<&str> = s2_page
            .allocations
            .iter()
            .map(|x| x.order_id.as_str())
            .collect();
        assert_eq!(at_s2, vec!["p-1", "r-4"], "{backend}");
        assert!(!s2_page.more);
        let r4_at_s2 = &s2_page.allocations[1];
        assert_eq!(
            r4_at_s2.lines, split.allocations[0].lines,
            "{backend}: its part only"
        );

        // Cancelled: the units go back to the hub's rights, once; the
        // store's next page brings the change.
        let s1_before = at(&*st, a, "s1");
        let CancelResult::Cancelled(cancelled) = cancel(&*st, "r-1", 1) else {
            panic!("{backend}: not cancelled");
        };
        assert_eq!(cancelled.status, Status::Cancelled);
        assert_eq!(cancelled.allocations[0].status, Status::Cancelled);
        let s1_after = at(&*st, a, "s1");
        assert_eq!(
            (s1_after.hub_rights, s1_after.on_hand),
            (s1_before.hub_rights + 3, s1_before.on_hand + 3),
            "{backend}"
        );
        let again = cancel(&*st, "r-1", 2);
        assert_eq!(
            again,
            CancelResult::Cancelled(cancelled.clone()),
            "{backend}"
        );
        assert_eq!(at(&*st, a, "s1"), s1_after, "{backend}: given back once");
        assert_eq!(cancel(&*st, "nope", 3), CancelResult::NotFound);
        let page = st.allocations(&loc("s1"), cursor, 10).unwrap();
        assert_eq!(page.allocations.len(), 1, "{backend}");
        assert_eq!(
            (
                page.allocations[0].order_id.as_str(),
                page.allocations[0].status
            ),
            ("r-1", Status::Cancelled)
        );
        // Read from the start, each allocation is there once, in the
        // order it last changed.
        let whole = st.allocations(&loc("s1"), 0, 10).unwrap();
        let changed: Vec<(&str, Status)> = whole
            .allocations
            .iter()
            .map(|x| (x.order_id.as_str(), x.status))
            .collect();
        assert_eq!(
            changed,
            vec![
                ("r-2", Status::Allocated),
                ("r-3", Status::Allocated),
                ("r-4", Status::Allocated),
                ("r-1", Status::Cancelled)
            ],
            "{backend}"
        );
        assert_eq!(whole.cursor, page.cursor, "{backend}");

        // s2 learns of its allocations, hands the pickup over, syncs: the
        // hub marks it collected, and it can no longer be cancelled.
        s2.fetch_allocations_in_storage(&*st, 1);
        s2.fulfil("p-1", Status::Collected).unwrap();
        synced(&*st, &mut s2, NOW + 2_000);
        let p1 = st.routed_order("p-1").unwrap().unwrap();
        assert_eq!(p1.status, Status::Collected, "{backend}");
        assert_eq!(p1.allocations[0].status, Status::Collected);
        let s2_before = at(&*st, a, "s2");
        assert_eq!(cancel(&*st, "p-1", 4), CancelResult::HandedOver(p1.clone()));
        assert_eq!(at(&*st, a, "s2"), s2_before, "{backend}");

        let counts = st.status_counts().unwrap();
        let expect = |allocated, cancelled, collected| {
            [
                ("allocated", allocated),
                ("cancelled", cancelled),
                ("collected", collected),
                ("picked", 0),
                ("shipped", 0),
            ]
        };
        for (status, n) in expect(3, 1, 1) {
            assert_eq!(
                counts.orders.get(status).copied(),
                Some(n),
                "{backend} {status}: {counts:?}"
            );
        }

        st.reopen();
        assert_eq!(st.status_counts().unwrap(), counts, "{backend}");
        assert_eq!(
            st.routed_order("r-1").unwrap(),
            Some(cancelled),
            "{backend}"
        );
        assert_eq!(st.routed_order("p-1").unwrap(), Some(p1), "{backend}");
        assert_eq!(
            ids(st.routed_orders(Status::Cancelled, "", 10).unwrap()),
            vec!["r-1"]
        );
        assert_eq!(
            ids(st.routed_orders(Status::Collected, "", 10).unwrap()),
            vec!["p-1"]
        );
        assert_eq!(
            ids(st.routed_orders(Status::Allocated, "", 10).unwrap()),
            vec!["r-2", "r-3", "r-4"]
        );
        assert_eq!(
            route(&*st, &req),
            RoutedResult::Replayed(st.routed_order("r-1").unwrap().unwrap())
        );
    }
}

/// Rights on demand: a grant moves the hub's rights at a store to it,
/// keeping what it must hold back; a retry of the request id is answered
/// with the same grant and moves nothing more; another request under the
/// id is a conflict; a store's report of rights it released merges.
#[test]
fn rights_are_granted_once_per_request_and_released_rights_merge() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 10);
        assert_eq!(reserve(&*st, &mut s1, a, 15, 1), 2, "{backend}");
        for _ in 0..8 {
            s1.sell(a, 1).unwrap();
        }
        assert_eq!(s1.rights(a), 0);
        let id = |n: u8| EventId::v7(NOW, [n; 10]);
        let who = s1.mem.who.clone();

        // Sales not synced yet: a request's entries cannot tell the hub
        // of them (their events explain them, not the request).
        let early = s1.rights_request(id(9), a, 1);
        let GrantResult::Granted(g) = write(&*st, |txn| txn.grant(&who, &early, 0)) else {
            panic!("{backend}: not granted");
        };
        assert!(s1.mem.apply_grant(&g));
        let hub_side = at(&*st, a, "s1");
        assert_eq!(
            (hub_side.hub_rights, hub_side.store_rights, hub_side.on_hand),
            (1, 9, 10),
            "{backend}"
        );
        // The store sells what it was granted, and syncs: now it does.
        s1.sell(a, 1).unwrap();
        synced(&*st, &mut s1, NOW);
        let hub_side = at(&*st, a, "s1");
        assert_eq!(
            (hub_side.hub_rights, hub_side.store_rights, hub_side.on_hand),
            (1, 0, 1),
            "{backend}"
        );
        s1.receive(a, 1);
        synced(&*st, &mut s1, NOW);

        let req = s1.rights_request(id(1), a, 1);
        let GrantResult::Granted(g) = write(&*st, |txn| txn.grant(&who, &req, 0)) else {
            panic!("{backend}: not granted");
        };
        assert_eq!(
            (g.request_id, g.asked, g.granted, g.reason),
            (id(1), 1, 1, None)
        );
        assert!(s1.mem.apply_grant(&g));
        assert_eq!(s1.rights(a), 1);
        let hub_side = at(&*st, a, "s1");
        assert_eq!(
            (hub_side.hub_rights, hub_side.store_rights),
            (1, 1),
            "{backend}"
        );
        // The store's sales came with its entries: the hub sees them.
        assert_eq!(hub_side.on_hand, 2, "{backend}");

        // A retry, even after a restart: the same grant, nothing more.
        st.reopen();
        let GrantResult::Replayed(again) = write(&*st, |txn| txn.grant(&who, &req, 0)) else {
            panic!("{backend}: not replayed");
        };
        assert_eq!(
            (again.request_id, again.asked, again.granted),
            (id(1), 1, 1),
            "{backend}"
        );
        assert!(
            !s1.mem.apply_grant(&again),
            "{backend}: nothing new to merge"
        );
        assert_eq!(at(&*st, a, "s1").hub_rights, 1, "{backend}");
        // The id under another quantity, or from another store: a
        // conflict, nothing moved.
        let more = s1.rights_request(id(1), a, 2);
        assert_eq!(
            write(&*st, |txn| txn.grant(&who, &more, 0)),
            GrantResult::IdConflict
        );
        let s2 = SimStore::new("s2", 2);
        let theirs = s2.rights_request(id(1), a, 1);
        assert_eq!(
            write(&*st, |txn| txn.grant(&s2.mem.who, &theirs, 0)),
            GrantResult::IdConflict,
            "{backend}"
        );
        assert_eq!(at(&*st, a, "s1").hub_rights, 1, "{backend}");

        // Entries the store does not own: forged, nothing written.
        let mut forged = s1.rights_request(id(2), a, 1);
        forged.own.add(&ReplicaId::hub(), 100).unwrap();
        assert!(matches!(
            write(&*st, |txn| txn.grant(&who, &forged, 0)),
            GrantResult::Forged(_)
        ));
        // Its id was not taken: a genuine request under it is granted —
        // the hub's last unit but the one held back: none.
        let held_back = s1.rights_request(id(2), a, 1);
        let GrantResult::Granted(none) = write(&*st, |txn| txn.grant(&who, &held_back, 1)) else {
            panic!("{backend}: not answered");
        };
        assert_eq!(
            (none.granted, none.reason),
            (0, Some(Shortage::NoStock)),
            "{backend}"
        );
        assert_eq!(at(&*st, a, "s1").hub_rights, 1, "{backend}");

        // The store gives its unit back, as asked for an order: merged
        // once.
        let seen = st.counter(&key("s1", a)).unwrap();
        let released = s1.mem.release(id(3), a, 1, &seen);
        assert_eq!(released.released, 1);
        assert_eq!(
            write(&*st, |txn| txn.release(&who, &released)),
            ReleaseResult::Merged(true),
            "{backend}"
        );
        assert_eq!(
            write(&*st, |txn| txn.release(&who, &released)),
            ReleaseResult::Merged(false),
            "{backend}"
        );
        let mut forged = released.clone();
        forged.own.add(&ReplicaId::hub(), 100).unwrap();
        assert!(matches!(
            write(&*st, |txn| txn.release(&who, &forged)),
            ReleaseResult::Forged(_)
        ));
        st.reopen();
        let hub_side = at(&*st, a, "s1");
        assert_eq!(
            (hub_side.hub_rights, hub_side.store_rights),
            (2, 0),
            "{backend}"
        );
        assert_eq!(
            st.counter(&key("s1", a)).unwrap(),
            s1.mem.counter(a),
            "{backend}"
        );

        // A grant of more than the hub holds: what it holds, and why.
        let big = s1.rights_request(id(4), a, 5);
        let GrantResult::Granted(g) = write(&*st, |txn| txn.grant(&who, &big, 0)) else {
            panic!("{backend}: not granted");
        };
        assert_eq!(
            (g.granted, g.reason),
            (2, Some(Shortage::NoStock)),
            "{backend}"
        );
        assert!(s1.mem.apply_grant(&g));
        assert_eq!(s1.rights(a), 2);
        assert_eq!(at(&*st, a, "s1").hub_rights, 0, "{backend}");
    }
}

/// A store's return checks are counted in its record per day, a check
/// again of its own claim not counted (every engine).
#[test]
fn return_checks_are_counted_per_store_and_day() {
    use tally_hub::storage::returns::CLAIM_KEPT_MS;
    for backend in backends() {
        let st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 6);
        let sale = s1.sell(a, 5).unwrap();
        synced(&*st, &mut s1, NOW);
        let ask = |n: u8| ReturnCheckRequest {
            return_id: EventId::v7(NOW, [n; 10]),
            original_sale: Some(sale),
            order_id: None,
            lines: vec![ReturnLineCheck {
                gtin: a,
                qty: 1,
                epc: None,
            }],
        };
        let s2_at = LocationId::new("s2").unwrap();
        let check = |req: &ReturnCheckRequest, now: u64| {
            write(&*st, |txn| txn.check_return(req, &s2_at, now))
        };
        for n in [1, 2, 2] {
            assert!(
                matches!(check(&ask(n), NOW), CheckResult::Authorized(_)),
                "{backend}"
            );
        }
        let counted = |st: &dyn HubStorage| {
            let stores = st.stores().unwrap();
            let s2 = stores.iter().find(|r| r.store == "s2");
            s2.and_then(|r| r.claims_today).map(|d| d.count)
        };
        assert_eq!(
            counted(&*st),
            Some(2),
            "{backend}: a check again is not counted"
        );
        // A week and a day later: a new day's count.
        let later = NOW + CLAIM_KEPT_MS + 1;
        assert!(matches!(check(&ask(3), later), CheckResult::Authorized(_)));
        assert_eq!(counted(&*st), Some(1), "{backend}: a new day");
    }
}

/// Returns across stores: checked against the original chain-wide (units
/// claimed by checked returns count until their events arrive), listed
/// for HQ when taken at another store, and a return taken offline beyond
/// the original raises `return_exceeds_sale`.
#[test]
fn returns_are_bounded_chain_wide_and_listed_across_stores() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let (mut s1, mut s2) = (SimStore::new("s1", 1), SimStore::new("s2", 2));
        s1.receive(a, 6);
        let sale = s1.sell(a, 3).unwrap();
        let other_sale = s1.sell(a, 1).unwrap();
        synced(&*st, &mut s1, NOW);
        let id = |n: u8| EventId::v7(NOW, [n; 10]);
        let ask = |return_id: EventId, qty: u64| ReturnCheckRequest {
            return_id,
            original_sale: Some(sale),
            order_id: None,
            lines: vec![ReturnLineCheck {
                gtin: a,
                qty,
                epc: None,
            }],
        };
        // The checks are made at s2.
        let s2_at = LocationId::new("s2").unwrap();
        let check = |st: &dyn HubStorage, req: &ReturnCheckRequest, now: u64| {
            write(st, |txn| txn.check_return(req, &s2_at, now))
        };

        // 2 of 3 claimed by a check at s2; 2 more would be 4 of 3.
        let CheckResult::Authorized(checked) = check(&*st, &ask(id(1), 2), NOW) else {
            panic!("{backend}: not authorized");
        };
        assert_eq!(checked.original.id, sale);
        // Its lines, not how it was paid or who keyed it.
        assert_eq!(checked.original.lines.len(), 1, "{backend}");
        assert!(
            matches!(&checked.original.kind, tally_sync::EventKind::Sale { tenders, .. } if tenders.is_empty()),
            "{backend}: {:?}",
            checked.original.kind
        );
        assert!(checked.returned.is_empty(), "{backend}");
        assert!(
            matches!(
                check(&*st, &ask(id(2), 2), NOW),
                CheckResult::Refused(Refusal::ExceedsSale { .. })
            ),
            "{backend}: the claim does not count"
        );
        // The check again (a retry): authorized alike; its own claim is
        // not counted against it.
        assert_eq!(
            check(&*st, &ask(id(1), 2), NOW + 1),
            CheckResult::Authorized(checked.clone())
        );
        // Another store checking under s2's return id: refused, s2's
        // claim kept (every engine keeps who made it).
        let s1_at = LocationId::new("s1").unwrap();
        assert!(
            matches!(
                write(&*st, |txn| txn.check_return(
                    &ask(id(1), 1),
                    &s1_at,
                    NOW + 1
                )),
                CheckResult::Refused(Refusal::Invalid(_))
            ),
            "{backend}"
        );
        let unknown = ReturnCheckRequest {
            original_sale: Some(id(99)),
            ..ask(id(3), 1)
        };
        assert!(matches!(
            check(&*st, &unknown, NOW),
            CheckResult::UnknownOriginal(_)
        ));

        // s2 takes it back under the checked id and syncs: the claim is
        // redeemed by the event, listed as a return across stores.
        let r1 = s2
            .run(Command::Return {
                id: Some(id(1)),
                lines: vec![back(a, 2)],
                original_sale: Some(sale),
                staff: Default::default(),
                checked: Some(checked),
            })
            .unwrap();
        synced(&*st, &mut s2, NOW + 1_000);
        st.reopen();
        let cross = st.cross_returns(10).unwrap();
        assert_eq!(cross.len(), 1, "{backend}: {cross:?}");
        let c = &cross[0];
        assert_eq!((c.return_id, c.original_id), (r1, sale));
        assert_eq!((c.store.as_str(), c.original_store.as_str()), ("s2", "s1"));
        assert_eq!(c.original_kind, "sale");
        assert_eq!(
            (c.units.len(), c.units[0].gtin, c.units[0].units),
            (1, a, 2)
        );
        assert_eq!(c.refund_minor, 200);
        assert!(c.checked, "{backend}");
        assert_eq!(st.counter(&key("s2", a)).unwrap().value(), 2, "{backend}");

        // One left: one more is authorized (after the 2 returned), two
        // are not.
        let CheckResult::Authorized(one) = check(&*st, &ask(id(4), 1), NOW + 2_000) else {
            panic!("{backend}: not authorized");
        };
        assert_eq!(one.returned_map().get(&a), Some(&2), "{backend}");
        assert!(matches!(
            check(&*st, &ask(id(5), 2), NOW + 2_000),
            CheckResult::Refused(Refusal::ExceedsSale { .. })
        ));
        assert!(kinds(&*st).is_empty(), "{backend}");

        // s1, not knowing of s2's return, takes back all 3 of its own
        // sale: 5 of 3 came back, which the hub raises.
        let r2 = s1
            .run(Command::Return {
                id: None,
                lines: vec![back(a, 3)],
                original_sale: Some(sale),
                staff: Default::default(),
                checked: None,
            })
            .unwrap();
        synced(&*st, &mut s1, NOW + 3_000);
        let x = all_exceptions(&*st);
        assert_eq!(x.len(), 1, "{backend}: {x:?}");
        assert_eq!(x[0].kind, "return_exceeds_sale");
        assert_eq!(x[0].store, "s1");
        assert_eq!(x[0].event_ids, vec![r2, sale]);
        // Not across stores: still one listed.
        assert_eq!(st.cross_returns(10).unwrap().len(), 1, "{backend}");

        // Another sale taken back at s2, later: listed first.
        let later = EventId::v7(NOW + 10_000, [7; 10]);
        let ask_other = ReturnCheckRequest {
            return_id: later,
            original_sale: Some(other_sale),
            ..ask(later, 1)
        };
        let CheckResult::Authorized(checked) = check(&*st, &ask_other, NOW + 10_000) else {
            panic!("{backend}: not authorized");
        };
        s2.set_clock(NOW + 10_000);
        s2.run(Command::Return {
            id: Some(later),
            lines: vec![back(a, 1)],
            original_sale: Some(other_sale),
            staff: Default::default(),
            checked: Some(checked),
        })
        .unwrap();
        synced(&*st, &mut s2, NOW + 11_000);
        let newest: Vec<EventId> = st
            .cross_returns(10)
            .unwrap()
            .iter()
            .map(|c| c.return_id)
            .collect();
        assert_eq!(newest, vec![later, r1], "{backend}: newest first");
        let first = st.cross_returns(1).unwrap();
        assert_eq!((first.len(), first[0].original_id), (1, other_sale));
        st.reopen();
        assert!(matches!(
            check(&*st, &ask(id(6), 1), NOW + 4_000),
            CheckResult::Refused(Refusal::ExceedsSale { .. })
        ));
    }
}

/// Transfers: a synced `transfer_out` opens a transfer in transit, listed
/// by status in pages and on both stores' allocation pages; the overdue
/// sweep raises it once; the destination's `transfer_in` closes it.
#[test]
fn a_transfer_is_in_transit_flagged_overdue_once_and_closed_on_receipt() {
    const OVERDUE: u64 = 3 * 24 * 3_600_000;
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let (mut s1, mut s2) = (SimStore::new("s1", 1), SimStore::new("s2", 2));
        s1.receive(a, 5);
        s1.transfer_out("T1", "s2", a, 2).unwrap();
        s1.transfer_out("T2", "s2", a, 1).unwrap();
        synced(&*st, &mut s1, NOW);
        // Another sent later, so not due with the others.
        s1.transfer_out("T3", "s2", a, 1).unwrap();
        synced(&*st, &mut s1, NOW + 60_000);
        assert_eq!(st.counter(&key("s1", a)).unwrap().value(), 1, "{backend}");

        let ids = |list: Vec<tally_hub::storage::transfers::HubTransfer>| -> Vec<String> {
            list.into_iter().map(|t| t.transfer.transfer_id).collect()
        };
        assert_eq!(
            ids(st.transfers(TransferStatus::InTransit, "", 2).unwrap()),
            vec!["T1", "T2"]
        );
        assert_eq!(
            ids(st.transfers(TransferStatus::InTransit, "T2", 2).unwrap()),
            vec!["T3"]
        );
        assert!(st
            .transfers(TransferStatus::Received, "", 10)
            .unwrap()
            .is_empty());
        let t1 = st.transfer("T1").unwrap().unwrap();
        assert_eq!(
            (t1.transfer.from.as_str(), t1.transfer.to.as_str()),
            ("s1", "s2")
        );
        assert_eq!(t1.transfer.status, TransferStatus::InTransit);
        assert_eq!(t1.transfer.units().get(&a), Some(&2));
        assert_eq!(
            (t1.seen_at_ms, t1.received_at_ms, t1.overdue),
            (NOW, None, false)
        );
        assert!(t1.transfer.sent_event.is_some());
        assert_eq!(st.transfer("T9").unwrap(), None);
        assert_eq!(
            st.status_counts().unwrap().transfers["in_transit"],
            3,
            "{backend}"
        );
        // The destination hears of them on its page (the source knows).
        let page = st.allocations(&loc("s2"), 0, 10).unwrap();
        let listed: Vec<&str> = page
            .transfers
            .iter()
            .map(|t| t.transfer_id.as_str())
            .collect();
        assert_eq!(listed, vec!["T1", "T2", "T3"], "{backend}");
        assert_eq!(page.transfers[0], t1.transfer);
        assert!(page.allocations.is_empty());
        // Transfers count towards a page's size as allocations do: a
        // store back after a long time away gets its backlog in pages.
        let first = st.allocations(&loc("s2"), 0, 2).unwrap();
        assert_eq!(first.transfers.len(), 2, "{backend}");
        assert!(first.more, "{backend}");
        let rest = st.allocations(&loc("s2"), first.cursor, 2).unwrap();
        assert_eq!(rest.transfers.len(), 1, "{backend}");
        assert!(!rest.more, "{backend}");
        assert!(st
            .allocations(&loc("s1"), 0, 10)
            .unwrap()
            .transfers
            .is_empty());

        // Not due before its time; T1 and T2 due once after it.
        let flag =
            |st: &dyn HubStorage, now| write(st, |txn| txn.flag_overdue_transfers(now, OVERDUE));
        assert_eq!(flag(&*st, NOW + OVERDUE - 1), 0, "{backend}");
        assert_eq!(flag(&*st, NOW + OVERDUE + 1), 2, "{backend}");
        assert_eq!(flag(&*st, NOW + OVERDUE + 2), 0, "{backend}");
        st.reopen();
        assert_eq!(
            flag(&*st, NOW + OVERDUE + 3),
            0,
            "{backend}: flagged once, durably"
        );
        let x = all_exceptions(&*st);
        assert_eq!(x.len(), 2, "{backend}: {x:?}");
        assert!(x
            .iter()
            .all(|x| x.kind == "transfer_overdue" && x.store == "s2"));
        let flagged: BTreeSet<&str> = x
            .iter()
            .map(|x| x.detail["transfer_id"].as_str().unwrap())
            .collect();
        assert_eq!(flagged, BTreeSet::from(["T1", "T2"]));
        assert!(st.transfer("T1").unwrap().unwrap().overdue, "{backend}");
        assert!(!st.transfer("T3").unwrap().unwrap().overdue, "{backend}");

        // s2 learns of the transfers from its pages and receives T2.
        s2.fetch_allocations_in_storage(&*st, 10);
        let received = s2.transfer_in("T2").unwrap();
        synced(&*st, &mut s2, NOW + OVERDUE + 10);
        let t2 = st.transfer("T2").unwrap().unwrap();
        assert_eq!(t2.transfer.status, TransferStatus::Received, "{backend}");
        assert_eq!(
            t2.received_at_ms,
            Some(s2.mem.recorded(&received).unwrap().at_ms)
        );
        assert_eq!(st.counter(&key("s2", a)).unwrap().value(), 1, "{backend}");
        assert_eq!(
            ids(st.transfers(TransferStatus::InTransit, "", 10).unwrap()),
            vec!["T1", "T3"]
        );
        assert_eq!(
            ids(st.transfers(TransferStatus::Received, "", 10).unwrap()),
            vec!["T2"]
        );
        assert_eq!(ids(st.transfers_received_recently(10).unwrap()), vec!["T2"]);
        // s1 hears of the receipt on its page.
        let page = st.allocations(&loc("s1"), 0, 10).unwrap();
        assert_eq!(page.transfers.len(), 1, "{backend}: {page:?}");
        let t = &page.transfers[0];
        assert_eq!(
            (t.transfer_id.as_str(), t.status),
            ("T2", TransferStatus::Received)
        );

        // T1 arrives later: the latest receipt first, whatever the ids.
        s2.transfer_in("T1").unwrap();
        synced(&*st, &mut s2, NOW + OVERDUE + 20);
        st.reopen();
        assert_eq!(st.counter(&key("s2", a)).unwrap().value(), 3, "{backend}");
        let counts = st.status_counts().unwrap();
        assert_eq!(
            (counts.transfers["in_transit"], counts.transfers["received"]),
            (1, 2),
            "{backend}"
        );
        assert_eq!(
            ids(st.transfers_received_recently(10).unwrap()),
            vec!["T1", "T2"],
            "{backend}"
        );
        assert_eq!(ids(st.transfers_received_recently(1).unwrap()), vec!["T1"]);
        assert_eq!(
            ids(st.transfers(TransferStatus::InTransit, "", 10).unwrap()),
            vec!["T3"]
        );
        // T3 is due in its own time.
        assert_eq!(flag(&*st, NOW + 60_000 + OVERDUE + 1), 1, "{backend}");
        assert_eq!(kinds(&*st).len(), 3, "{backend}");
    }
}

/// The catalog: a change counts only items new or different, each item
/// reads back, and a store's sync brings what changed after its cursor, a
/// page at a time.
#[test]
fn catalog_changes_are_counted_and_paged_to_stores_by_cursor() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(2));
        let (a, b, c) = (gtin(1), gtin(2), gtin(3));
        let item = |g, name: &str, price| CatalogItem::new(g, name, price).unwrap();
        let put = |st: &dyn HubStorage, items: &[CatalogItem]| {
            write(st, |txn| txn.catalog(items)).changed
        };
        assert_eq!(
            put(
                &*st,
                &[
                    item(a, "Tea", 250),
                    item(b, "Jam", 400),
                    item(c, "Oats", 300)
                ]
            ),
            3
        );
        // The same again: nothing changed; one price: one.
        assert_eq!(
            put(&*st, &[item(a, "Tea", 250), item(b, "Jam", 400)]),
            0,
            "{backend}"
        );
        assert_eq!(
            put(&*st, &[item(a, "Tea", 250), item(b, "Jam", 450)]),
            1,
            "{backend}"
        );
        st.reopen();
        assert_eq!(
            st.catalog_item(b).unwrap(),
            Some(item(b, "Jam", 450)),
            "{backend}"
        );
        assert_eq!(st.catalog_item(c).unwrap(), Some(item(c, "Oats", 300)));
        assert_eq!(st.catalog_item(gtin(9)).unwrap(), None);

        // Two a page, in the order they last changed.
        let mut s1 = SimStore::new("s1", 1);
        let (_, first, _) = synced(&*st, &mut s1, NOW);
        assert_eq!(
            first.catalog,
            vec![item(a, "Tea", 250), item(c, "Oats", 300)],
            "{backend}"
        );
        assert!(first.more, "{backend}");
        let (_, second, _) = synced(&*st, &mut s1, NOW);
        assert_eq!(second.catalog, vec![item(b, "Jam", 450)], "{backend}");
        assert!(!second.more, "{backend}");
        assert!(second.catalog_cursor > first.catalog_cursor);
        let (_, third, _) = synced(&*st, &mut s1, NOW);
        assert!(third.catalog.is_empty(), "{backend}");
        assert_eq!(third.catalog_cursor, second.catalog_cursor);
        assert_eq!(s1.mem.catalog.len(), 3);

        // A later change: only it.
        assert_eq!(put(&*st, &[item(c, "Oats", 320)]), 1);
        let (_, fourth, _) = synced(&*st, &mut s1, NOW);
        assert_eq!(fourth.catalog, vec![item(c, "Oats", 320)], "{backend}");
        assert_eq!(s1.mem.catalog[&c].price_minor, 320);
    }
}

/// Exceptions page by strictly rising ids: read after the last id of a
/// page, the next page goes on where it stopped, none skipped or
/// repeated, across a restart too.
#[test]
fn exceptions_page_by_rising_ids_without_gaps() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 1);
        s1.sell_override(a, 3);
        s1.refund_without_receipt(a, 1);
        s1.sell_keyed(a, 500, 450);
        synced(&*st, &mut s1, NOW);
        let mut s2 = SimStore::new("s2", 2);
        s2.sell_override(a, 1);
        s2.refund_without_receipt(a, 2);
        synced(&*st, &mut s2, NOW + 1);
        let all = all_exceptions(&*st);
        assert_eq!(
            all.iter().map(|x| x.kind.as_str()).collect::<Vec<_>>(),
            vec![
                "override_sale",
                "no_receipt_refund",
                "price_override",
                "override_sale",
                "no_receipt_refund"
            ],
            "{backend}"
        );
        assert_eq!(all[0].store, "s1");
        assert_eq!(all[4].store, "s2");
        assert_eq!(all[4].detected_at_ms, NOW + 1);
        // The newest id is how many there are: the newest N are read
        // from `last - N`, whatever came before.
        assert_eq!(st.last_exception_id().unwrap(), 5, "{backend}");
        assert_eq!(st.exceptions(5 - 2, 10).unwrap(), all[3..].to_vec());

        let pages = |st: &dyn HubStorage| {
            let mut since = 0;
            let mut out = Vec::new();
            loop {
                let page = st.exceptions(since, 2).unwrap();
                assert!(page.len() <= 2);
                let Some(last) = page.last() else { break };
                assert!(page[0].id > since, "{backend}: {page:?}");
                since = last.id;
                out.extend(page);
            }
            out
        };
        assert_eq!(pages(&*st), all, "{backend}");
        assert!(
            all.windows(2).all(|w| w[0].id < w[1].id),
            "{backend}: {all:?}"
        );
        assert!(st.exceptions(all[4].id, 10).unwrap().is_empty());
        assert!(st.exceptions(0, 0).unwrap().is_empty());
        assert_eq!(st.exceptions(all[1].id, 2).unwrap(), all[2..4].to_vec());

        // After a restart, new ones come after every earlier one.
        st.reopen();
        s1.sell_override(a, 1);
        synced(&*st, &mut s1, NOW + 2);
        let now = all_exceptions(&*st);
        assert_eq!(now.len(), 6, "{backend}");
        assert_eq!(now[..5], all[..], "{backend}");
        assert!(now[5].id > all[4].id, "{backend}");
        assert_eq!(pages(&*st), now, "{backend}");
    }
}

/// An override sale that syncs while the hub holds units of its item at
/// the store for online orders waiting on the store's release is flagged
/// for HQ with those units (every engine); without such a hold, it is not.
#[test]
fn an_override_of_units_held_for_waiting_orders_is_flagged() {
    for backend in backends() {
        let st = TestStorage::new(backend, settings(100));
        let (a, b) = (gtin(1), gtin(2));
        let mut s1 = SimStore::new("s1", 1);
        s1.sell_override(a, 2);
        s1.sell_override(b, 1);
        let req = s1.request(1000);
        let holds = [(a, 3)].into_iter().collect();
        let SyncResult::Synced(resp, _) =
            write(&*st, |txn| txn.sync(&s1.mem.who, &req, &holds, NOW))
        else {
            panic!("{backend}: refused");
        };
        s1.apply(&req, &resp);
        let all = all_exceptions(&*st);
        let details: Vec<_> = all
            .iter()
            .map(|x| (x.kind.as_str(), x.detail.get("held_for_orders").cloned()))
            .collect();
        assert_eq!(
            details,
            vec![
                (
                    "override_sale",
                    Some(serde_json::json!([{"gtin": a, "units": 3}]))
                ),
                ("override_sale", None),
            ],
            "{backend}"
        );
    }
}

/// HQ acknowledges an exception once: who, the note and when are kept on
/// it (every engine, across a restart), a second acknowledgement changes
/// nothing and answers the first, an unknown id is not found, and the
/// count of acknowledged ones is kept as they come.
#[test]
fn exceptions_are_acknowledged_once_and_counted() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 1);
        s1.sell_override(a, 3);
        s1.refund_without_receipt(a, 1);
        synced(&*st, &mut s1, NOW);
        assert_eq!(st.acknowledged_exceptions().unwrap(), 0, "{backend}");
        let ack = |st: &dyn HubStorage, id: u64, by: &str, at: u64| {
            write(st, |txn| {
                txn.acknowledge_exception(id, by, "checked the till roll", at)
            })
        };
        let AckResult::Acknowledged(x) = ack(&*st, 2, "lp-ann", NOW + 5) else {
            panic!("{backend}: not acknowledged");
        };
        let first = ExceptionAck {
            by: "lp-ann".into(),
            note: "checked the till roll".into(),
            at_ms: NOW + 5,
        };
        assert_eq!(x.acknowledged.as_ref(), Some(&first), "{backend}");
        assert_eq!(x.kind, "no_receipt_refund", "{backend}");
        let AckResult::Already(again) = ack(&*st, 2, "bo", NOW + 9) else {
            panic!("{backend}: acknowledged twice");
        };
        assert_eq!(again.acknowledged.as_ref(), Some(&first), "{backend}");
        assert_eq!(ack(&*st, 99, "bo", NOW), AckResult::NotFound, "{backend}");
        assert_eq!(st.acknowledged_exceptions().unwrap(), 1, "{backend}");
        st.reopen();
        let all = all_exceptions(&*st);
        assert_eq!(all[0].acknowledged, None, "{backend}");
        assert_eq!(all[1].acknowledged.as_ref(), Some(&first), "{backend}");
        assert_eq!(st.acknowledged_exceptions().unwrap(), 1, "{backend}");
        assert!(matches!(
            ack(&*st, 1, "bo", NOW),
            AckResult::Acknowledged(_)
        ));
        assert_eq!(st.acknowledged_exceptions().unwrap(), 2, "{backend}");
    }
}

/// A batch whose closure fails keeps nothing of any write it made: not an
/// order, a sync, a catalog change, a routed order or a refusal counted.
#[test]
fn a_failed_batch_keeps_nothing_of_any_write_in_it() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 1);
        s1.receive(a, 20);
        let held = reserve(&*st, &mut s1, a, 70, 1);
        s1.sell(a, 2).unwrap();
        let req = s1.request(1000);
        let o = order("w1", "s1", &[(a, 1)], 2, true);
        let r = routed("r-1", None, Fulfilment::Ship, a, 2);
        let tea = CatalogItem::new(a, "Tea", 250).unwrap();
        let before = (
            at(&*st, a, "s1"),
            st.stores().unwrap(),
            st.sales_per_minute(0).unwrap(),
            all_exceptions(&*st),
            st.status_counts().unwrap(),
        );

        let mut answered = Vec::new();
        let failed = st.write_batch(&mut |txn| {
            answered.clear();
            answered.push(format!("{:?}", txn.catalog(std::slice::from_ref(&tea))?));
            let sync = txn.sync(&s1.mem.who, &req, &Default::default(), NOW + 1)?;
            answered.push(format!("{}", matches!(sync, SyncResult::Synced(..))));
            answered.push(format!(
                "{}",
                matches!(txn.order(&o)?, OrderResult::Accepted(_))
            ));
            answered.push(format!(
                "{}",
                matches!(txn.route_order(&r)?, RoutedResult::Accepted(_))
            ));
            answered.push(format!(
                "{}",
                txn.order_refused(&loc("s1"), Shortage::NoStock, NOW)?
            ));
            Err(StorageError::Db("injected failure".into()))
        });
        assert!(
            matches!(failed, Err(StorageError::Db(_))),
            "{backend}: {failed:?}"
        );
        // Each write went through inside the batch…
        assert_eq!(
            answered,
            vec![
                "CatalogResult { changed: 1 }",
                "true",
                "true",
                "true",
                "true"
            ],
            "{backend}"
        );
        // …and none of it was kept, before or after a restart.
        for reopened in [false, true] {
            if reopened {
                st.reopen();
            }
            let after = (
                at(&*st, a, "s1"),
                st.stores().unwrap(),
                st.sales_per_minute(0).unwrap(),
                all_exceptions(&*st),
                st.status_counts().unwrap(),
            );
            assert_eq!(after, before, "{backend} reopened={reopened}");
            assert_eq!(at(&*st, a, "s1").hub_rights, held);
            assert_eq!(st.catalog_item(a).unwrap(), None, "{backend}");
            assert_eq!(st.routed_order("r-1").unwrap(), None, "{backend}");
        }

        // The same writes again, committed: every one is new (the order
        // ids were not taken), and kept.
        let mut results = Vec::new();
        st.write_batch(&mut |txn| {
            results.clear();
            results.push(txn.catalog(std::slice::from_ref(&tea))?.changed == 1);
            results.push(matches!(
                txn.sync(&s1.mem.who, &req, &Default::default(), NOW + 1)?,
                SyncResult::Synced(..)
            ));
            results.push(matches!(txn.order(&o)?, OrderResult::Accepted(_)));
            results.push(matches!(txn.route_order(&r)?, RoutedResult::Accepted(_)));
            Ok(())
        })
        .unwrap();
        assert_eq!(results, vec![true; 4], "{backend}");
        st.reopen();
        assert_eq!(at(&*st, a, "s1").hub_rights, held - 3, "{backend}");
        assert_eq!(at(&*st, a, "s1").on_hand, 20 - 2 - 3, "{backend}");
        assert_eq!(st.catalog_item(a).unwrap(), Some(tea), "{backend}");
        assert!(st.routed_order("r-1").unwrap().is_some(), "{backend}");
        assert!(
            matches!(place(&*st, &o), OrderResult::Replayed(_)),
            "{backend}"
        );
    }
}

/// What a write changes is seen by the writes after it in the same
/// batch: an online order taken from the hub's reserve at a store, then
/// that store's sync naming the same item, both in one batch, keep both
/// the order's unit and the store's sale (the sync must not start from
/// the counter as it was before the batch).
#[test]
fn later_writes_in_a_batch_see_the_earlier_ones() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let a = gtin(1);
        let mut s1 = SimStore::new("s1", 7);
        s1.receive(a, 20);
        let held = reserve(&*st, &mut s1, a, 70, 1);
        s1.sell(a, 2).unwrap();
        let req = s1.request(1000);
        assert!(
            req.delta.entries.iter().any(|d| d.key == key("s1", a)),
            "the sync names the item"
        );
        let o = order("w1", "s1", &[(a, 1)], 2, false);
        let resp = write(&*st, |txn| {
            assert!(
                matches!(txn.order(&o)?, OrderResult::Accepted(_)),
                "{backend}"
            );
            match txn.sync(&s1.mem.who, &req, &Default::default(), NOW + 1)? {
                SyncResult::Synced(resp, _) => Ok(resp),
                SyncResult::Refused(r) => panic!("{backend}: refused {r}"),
            }
        });
        s1.apply(&req, &resp);
        for reopened in [false, true] {
            if reopened {
                st.reopen();
            }
            let stock = at(&*st, a, "s1");
            assert_eq!(stock.on_hand, 20 - 2 - 1, "{backend} reopened={reopened}");
            assert_eq!(stock.hub_rights, held - 1, "{backend} reopened={reopened}");
            assert_eq!(stock.on_hand, s1.on_hand(a), "{backend}: the store agrees");
        }
    }
}

/// One write of a random batch in [`random_history`].
enum Op {
    /// Store `i`'s sync.
    Sync(usize),
    /// A store-named order of `qty` of item `g` at store `i`.
    Order(usize, u64, u64, bool),
    /// An order that names no store, routed by the hub.
    Routed(u64, u64),
    /// Store `i` asks for `units` rights to item `g`.
    Grant(usize, u64, u64),
    /// HQ cancels routed order `id` (accepted earlier) of `qty` units.
    Cancel(String, u64),
}

/// A seeded random history of sales, syncs, store-named and routed orders
/// (some cancelled later) and rights grants, in batches of several writes
/// each (a store syncs at
/// most once per batch, as it waits for its answer), then every store
/// catches up. Checks that units are conserved and that the hub and the
/// stores agree; answers what every write answered and the stock after
/// every batch, for comparison between engines.
fn random_history(backend: Backend, seed: u64) -> Vec<String> {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    const STORES: usize = 4;
    const ITEMS: u64 = 3;
    const RECEIVED: u64 = 12;
    let st = TestStorage::new(backend, settings(100));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut stores: Vec<SimStore> = (0..STORES)
        .map(|i| SimStore::new(&format!("s{i}"), seed.wrapping_add(i as u64)))
        .collect();
    for s in &mut stores {
        for g in 1..=ITEMS {
            s.receive(gtin(g), RECEIVED);
        }
    }
    let mut transcript = Vec::new();
    let (mut sold, mut ordered) = (0u64, 0u64);
    // Routed orders accepted and not cancelled yet: (id, units).
    let mut open_routed: Vec<(String, u64)> = Vec::new();
    let mut n = 0u32;
    for round in 0..30 {
        for s in &mut stores {
            for _ in 0..rng.gen_range(0..3) {
                if s.sell(gtin(rng.gen_range(1..=ITEMS)), 1).is_ok() {
                    sold += 1;
                }
            }
        }
        let mut ops: Vec<Op> = (0..STORES)
            .filter(|_| rng.gen_bool(0.7))
            .map(Op::Sync)
            .collect();
        for _ in 0..rng.gen_range(0..4) {
            let g = rng.gen_range(1..=ITEMS);
            ops.push(match rng.gen_range(0..3) {
                0 => Op::Order(
                    rng.gen_range(0..STORES),
                    g,
                    rng.gen_range(1..=3),
                    rng.gen_bool(0.8),
                ),
                1 => Op::Routed(g, rng.gen_range(1..=2)),
                2 if !open_routed.is_empty() && rng.gen_bool(0.5) => {
                    let (id, qty) = open_routed.swap_remove(rng.gen_range(0..open_routed.len()));
                    Op::Cancel(id, qty)
                }
                _ => Op::Grant(rng.gen_range(0..STORES), g, rng.gen_range(1..=2)),
            });
        }
        ops.shuffle(&mut rng);
        let reqs: Vec<SyncRequest> = stores.iter().map(|s| s.request(1000)).collect();
        let mut answers = Vec::new();
        let mut synced_resps = Vec::new();
        let mut grants = Vec::new();
        let mut accepted = Vec::new();
        let (mut units, mut back) = (0u64, 0u64);
        write(&*st, |txn| {
            answers.clear();
            synced_resps.clear();
            grants.clear();
            accepted.clear();
            (units, back) = (0, 0);
            let mut k = n;
            for op in &ops {
                k += 1;
                let id = format!("o{k}");
                let bytes = k.to_be_bytes();
                let event_seed = [bytes[0], bytes[1], bytes[2], bytes[3], 0xee, 0, 0, 0, 0, 1];
                match *op {
                    Op::Sync(i) => {
                        match txn.sync(&stores[i].mem.who, &reqs[i], &Default::default(), NOW)? {
                            SyncResult::Synced(resp, summary) => {
                                let mut delta: Vec<String> = resp
                                    .delta
                                    .entries
                                    .iter()
                                    .map(|e| format!("{:?}={:?}", e.key, e.counter))
                                    .collect();
                                delta.sort();
                                answers.push(format!(
                                    "sync s{i}: {summary:?} delta {delta:?} reserve {:?} more {}",
                                    resp.reserve, resp.more
                                ));
                                synced_resps.push((i, resp));
                            }
                            SyncResult::Refused(r) => panic!("{backend} seed {seed}: refused {r}"),
                        }
                    }
                    Op::Order(i, g, qty, demand) => {
                        let o = OrderRequest {
                            order_id: id,
                            store: loc(&format!("s{i}")),
                            lines: vec![(gtin(g), qty)],
                            event_id: EventId::v7(NOW, event_seed),
                            now_ms: NOW,
                            record_demand: demand,
                        };
                        let r = txn.order(&o)?;
                        if matches!(r, OrderResult::Accepted(_)) {
                            units += qty;
                        }
                        answers.push(format!("order s{i} {g}x{qty}: {r:?}"));
                    }
                    Op::Routed(g, qty) => {
                        let mut o = routed(&id, None, Fulfilment::Ship, gtin(g), qty);
                        o.seed = event_seed;
                        let r = txn.route_order(&o)?;
                        if matches!(r, RoutedResult::Accepted(_)) {
                            units += qty;
                            accepted.push((id.clone(), qty));
                        }
                        answers.push(format!("routed {g}x{qty}: {r:?}"));
                    }
                    Op::Grant(i, g, qty) => {
                        let req =
                            stores[i].rights_request(EventId::v7(NOW, event_seed), gtin(g), qty);
                        let r = txn.grant(&stores[i].mem.who, &req, 0)?;
                        answers.push(format!("grant s{i} {g}x{qty}: {r:?}"));
                        grants.push((i, r));
                    }
                    Op::Cancel(ref order_id, qty) => {
                        let r = txn.cancel_order(order_id, event_seed, NOW)?;
                        if matches!(r, CancelResult::Cancelled(_)) {
                            back += qty;
                        }
                        answers.push(format!("cancel {order_id}: {r:?}"));
                    }
                }
            }
            Ok(())
        });
        n += ops.len() as u32;
        ordered = ordered + units - back;
        open_routed.append(&mut accepted);
        for (i, resp) in &synced_resps {
            stores[*i].apply(&reqs[*i], resp);
        }
        for (i, r) in &grants {
            if let GrantResult::Granted(g) = r {
                stores[*i].mem.apply_grant(g);
            }
        }
        transcript.push(format!("round {round}"));
        transcript.append(&mut answers);
        for g in 1..=ITEMS {
            transcript.push(format!("stock {g}: {:?}", st.stock(gtin(g)).unwrap()));
        }
    }
    // Every store catches up.
    for s in &mut stores {
        for _ in 0..20 {
            let (_, resp, _) = synced(&*st, s, NOW);
            if !resp.more && !s.has_pending() {
                break;
            }
        }
    }
    let mut on_hand = 0;
    for g in 1..=ITEMS {
        for s in &stores {
            let hub = at(&*st, gtin(g), &s.mem.who.location.to_string());
            assert_eq!(
                (hub.on_hand, hub.store_rights),
                (s.on_hand(gtin(g)), s.rights(gtin(g))),
                "{backend} seed {seed}: {} item {g}",
                s.mem.who.location
            );
            on_hand += hub.on_hand;
        }
    }
    assert_eq!(
        on_hand + sold + ordered,
        STORES as u64 * ITEMS * RECEIVED,
        "{backend} seed {seed}: units are conserved"
    );
    transcript
}

/// The same random histories on every engine: each conserves units and
/// agrees with its stores, and every engine answers every write alike
/// (the logic is shared; what differs is how an engine keeps a batch's
/// writes, so this is where an engine that loses or reorders one shows).
#[test]
fn random_batched_histories_are_answered_alike_by_every_engine() {
    let base = support::env_u64("TALLY_TEST_SEED", 20_261_205);
    let seeds = support::env_u64("TALLY_TEST_SEEDS", 3);
    // Writes that took stock, per kind: the histories must exercise
    // every kind.
    let mut taken = [0usize; 4];
    for seed in base..base + seeds {
        println!("seed {seed} (replay: TALLY_TEST_SEED={seed} TALLY_TEST_SEEDS=1)");
        let runs: Vec<(Backend, Vec<String>)> = backends()
            .into_iter()
            .map(|b| (b, random_history(b, seed)))
            .collect();
        let (first, expected) = &runs[0];
        for (kind, count) in ["order", "routed", "grant", "cancel"]
            .iter()
            .zip(&mut taken)
        {
            *count += expected
                .iter()
                .filter(|l| l.starts_with(kind))
                .filter(|l| {
                    l.contains(": Accepted")
                        || l.contains("granted: 1")
                        || l.contains("granted: 2")
                        || l.contains(": Cancelled")
                })
                .count();
        }
        for (backend, got) in &runs[1..] {
            for (i, (a, b)) in expected.iter().zip(got).enumerate() {
                assert_eq!(a, b, "seed {seed}: line {i}: {first} vs {backend}");
            }
            assert_eq!(expected.len(), got.len(), "seed {seed}");
        }
    }
    println!("orders, routed orders, grants and cancellations that moved stock: {taken:?}");
    assert!(taken.iter().all(|n| *n > 0), "{taken:?}");
}

/// The audit after a mixed history (receipts, sales, store-named and
/// routed orders, a cancellation, a transfer, returns, rights granted):
/// nothing sold twice, the holdings index agrees with the counters, and
/// every (store, item)'s counter agrees with its events.
#[test]
fn the_audit_agrees_with_the_counters_after_a_mixed_history() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let empty = st.audit().unwrap();
        assert_eq!(
            (empty.events, empty.rows.len(), empty.double_sold),
            (0, 0, 0),
            "{backend}"
        );

        let (a, b) = (gtin(1), gtin(2));
        let (mut s1, mut s2) = (SimStore::new("s1", 1), SimStore::new("s2", 2));
        s1.receive(a, 20);
        s1.receive(b, 5);
        s2.receive(a, 10);
        let sale = s1.sell(a, 2).unwrap();
        s2.sell(a, 1).unwrap();
        reserve(&*st, &mut s1, a, 70, 1);
        reserve(&*st, &mut s2, a, 40, 2);
        assert!(matches!(
            place(&*st, &order("w1", "s1", &[(a, 2)], 3, true)),
            OrderResult::Accepted(_)
        ));
        assert!(matches!(
            route(&*st, &routed("r-1", None, Fulfilment::Ship, a, 3)),
            RoutedResult::Accepted(_)
        ));
        assert!(matches!(
            route(&*st, &routed("r-2", Some("s2"), Fulfilment::Pickup, a, 1)),
            RoutedResult::Accepted(_)
        ));
        assert!(matches!(cancel(&*st, "r-1", 4), CancelResult::Cancelled(_)));
        s1.transfer_out("T1", "s2", b, 2).unwrap();
        s1.run(Command::Return {
            id: None,
            lines: vec![back(a, 1)],
            original_sale: Some(sale),
            staff: Default::default(),
            checked: None,
        })
        .unwrap();
        synced(&*st, &mut s1, NOW + 1_000);
        s2.fetch_allocations_in_storage(&*st, 10);
        s2.transfer_in("T1").unwrap();
        s2.fulfil("r-2", Status::Collected).unwrap();
        synced(&*st, &mut s2, NOW + 1_000);
        // s2 sells every unit of its own rights, then asks for more than
        // the hub holds there: it is granted all of them.
        let who = s2.mem.who.clone();
        let rights = s2.rights(a);
        for _ in 0..rights {
            s2.sell(a, 1).unwrap();
        }
        // (The request's own entries carry the rights s2 moved to the
        // hub's reserve since its last sync: granted back too.)
        let req = s2.rights_request(EventId::v7(NOW, [5; 10]), a, 10);
        let GrantResult::Granted(g) = write(&*st, |txn| txn.grant(&who, &req, 0)) else {
            panic!("{backend}: not granted");
        };
        assert!(g.granted > 0, "{backend}: {g:?}");
        assert_eq!(g.reason, Some(Shortage::NoStock), "{backend}");
        assert_eq!(at(&*st, a, "s2").hub_rights, 0, "{backend}");
        s2.mem.apply_grant(&g);
        s2.sell(a, 1).unwrap();
        synced(&*st, &mut s1, NOW + 2_000);
        synced(&*st, &mut s2, NOW + 2_000);

        for reopened in [false, true] {
            if reopened {
                st.reopen();
            }
            let audit = st.audit().unwrap();
            assert_eq!(audit.double_sold, 0, "{backend}: {audit:?}");
            assert_eq!(audit.holdings_disagreeing, 0, "{backend}: {audit:?}");
            assert!(audit.epcs_sold_twice.is_empty(), "{backend}: {audit:?}");
            let stored: u64 = st.stores().unwrap().iter().map(|r| r.events_received).sum();
            // The hub's own events: the store-named order, two routed
            // allocations and the cancellation of one.
            assert_eq!(audit.events, stored + 4, "{backend}");
            let pairs: Vec<(&str, Gtin)> = audit
                .rows
                .iter()
                .map(|r| (r.store.as_str(), r.gtin))
                .collect();
            assert_eq!(
                pairs,
                vec![("s1", a), ("s1", b), ("s2", a), ("s2", b)],
                "{backend}"
            );
            for row in &audit.rows {
                assert_eq!(
                    row.on_hand_by_events,
                    u128::from(row.on_hand),
                    "{backend}: {row:?}"
                );
                let counter = st.counter(&key(&row.store, row.gtin)).unwrap().value();
                assert_eq!(row.on_hand, counter, "{backend}: {row:?}");
                assert_eq!(row.oversold, 0);
            }
            let s1a = &audit.rows[0];
            assert_eq!(
                (s1a.units_in, s1a.sold, s1a.ordered),
                // 20 received, 1 returned, 3 given back by the
                // cancellation; 2 and 3 ordered online.
                (20 + 1 + 3, 2, 2 + 3),
                "{backend}: {s1a:?}"
            );
            assert_eq!(
                (audit.rows[1].transferred_out, audit.rows[3].transferred_in),
                (2, 2)
            );
            assert_eq!(audit.rows[3].on_hand, 2);
            assert_eq!(s1.on_hand(a), s1a.on_hand, "{backend}: the store agrees");
        }
    }
}

/// An EPC sold at two stores (each within its own rights, while
/// partitioned) is what the audit and the exceptions report; its count
/// survives a restart.
#[test]
fn an_epc_sold_at_two_stores_is_reported_by_the_audit() {
    for backend in backends() {
        let mut st = TestStorage::new(backend, settings(100));
        let (a, b) = (gtin(1), gtin(2));
        let epc = "3074257BF7194E4000001A85";
        let (mut s1, mut s2) = (SimStore::new("s1", 1), SimStore::new("s2", 2));
        s1.receive(a, 2);
        s2.receive(b, 2);
        s1.sell_epc(a, epc).unwrap();
        s2.sell_epc(b, epc).unwrap();
        synced(&*st, &mut s1, NOW);
        let (_, _, summary) = synced(&*st, &mut s2, NOW);
        assert_eq!(summary.exceptions, 1, "{backend}");
        st.reopen();
        let audit = st.audit().unwrap();
        assert_eq!(
            audit.epcs_sold_twice,
            vec![tally_sync::Epc::from_hex(epc).unwrap()],
            "{backend}"
        );
        assert_eq!(audit.double_sold, 0, "{backend}: each had its own unit");
        let x = all_exceptions(&*st);
        assert_eq!(x.len(), 1, "{backend}");
        assert_eq!(
            (x[0].kind.as_str(), x[0].store.as_str()),
            ("epc_sold_twice", "s2")
        );
        assert_eq!(x[0].event_ids.len(), 2);
    }
}

/// A store's delta back from the hub comes in pages of at most the
/// hub's limit, every changed counter in them, the cursor moving on: also
/// when the counters changed in the very batch that answers (an engine
/// that defers its writes must still page them right). Every engine
/// answers the same pages.
#[test]
fn a_stores_delta_is_paged_by_version_without_gaps_or_repeats() {
    type Pages = Vec<Vec<(Gtin, u64)>>;
    let mut answers: Vec<(String, Pages)> = Vec::new();
    for backend in backends() {
        let mut s = settings(100);
        s.limits.max_delta_entries = 3;
        let hub = TestStorage::new(backend, s);
        let mut s1 = SimStore::new("s1", 31);
        for n in 0..10 {
            s1.receive(gtin(100 + n), 5 + n);
        }
        // Online demand at s1 for every item: the hub keeps a reserve of
        // each, so its first answer changes all ten counters there.
        for n in 0..10u8 {
            let o = order(
                &format!("w{n}"),
                "s1",
                &[(gtin(100 + u64::from(n)), 15)],
                n,
                true,
            );
            assert!(matches!(
                place(&*hub, &o),
                OrderResult::InsufficientStock { .. }
            ));
        }
        // The store gives the hub its reserves (two exchanges).
        synced(&*hub, &mut s1, NOW);
        synced(&*hub, &mut s1, NOW);
        // In one batch: an online order of 1 unit of each item, taken
        // from the hub's reserves (ten counters change at s1), and s1's
        // sync, answered from that same batch, then the pages after it.
        let mut pages: Vec<Vec<(Gtin, u64)>> = Vec::new();
        let req = s1.request(1000);
        let resp = write(&*hub, |txn| {
            for n in 0..10u8 {
                let o = order(
                    &format!("v{n}"),
                    "s1",
                    &[(gtin(100 + u64::from(n)), 1)],
                    100 + n,
                    false,
                );
                assert!(
                    matches!(txn.order(&o)?, OrderResult::Accepted(_)),
                    "{backend}"
                );
            }
            match txn.sync(&s1.mem.who, &req, &Default::default(), NOW)? {
                SyncResult::Synced(resp, _) => Ok(resp),
                SyncResult::Refused(r) => panic!("{backend}: refused {r}"),
            }
        });
        s1.apply(&req, &resp);
        let mut resp = resp;
        loop {
            assert!(
                resp.delta.entries.len() <= 3,
                "{backend}: page of {}",
                resp.delta.entries.len()
            );
            pages.push(
                resp.delta
                    .entries
                    .iter()
                    .map(|e| (e.key.gtin, e.counter.value()))
                    .collect(),
            );
            if !resp.more && !s1.has_pending() {
                break;
            }
            assert!(pages.len() < 20, "{backend}: the delta never ends");
            resp = synced(&*hub, &mut s1, NOW).1;
        }
        let seen: Vec<Gtin> = pages.iter().flatten().map(|(g, _)| *g).collect();
        let distinct: BTreeSet<Gtin> = seen.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            10,
            "{backend}: every changed counter comes: {seen:?}"
        );
        for n in 0..10 {
            assert_eq!(
                s1.on_hand(gtin(100 + n)),
                4 + n,
                "{backend}: 1 ordered online"
            );
        }
        answers.push((backend.to_string(), pages));
    }
    for (backend, pages) in &answers[1..] {
        assert_eq!(
            pages, &answers[0].1,
            "{backend} pages unlike {}",
            answers[0].0
        );
    }
}
