//! The hub's content checks through `hub_handle` itself, over the
//! in-memory replica: an honest store's requests (any mix of receipts,
//! sales, counts, paged events, repeated requests) are always accepted;
//! any own entry raised beyond what its events explain is refused whole;
//! demand counts only up to the sales reported lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use tally_sync::command::{Command, LineIn, Outcome, ReceiptLine, Stamp};
use tally_sync::exchange::{
    effective_demand, hub_handle, HandleError, HubLimits, Identity, MemoryReplica, SyncRefusal,
};
use tally_sync::limits::DateWindow;
use tally_sync::memstore::MemStore;
use tally_sync::message::{Demand, LostSales};
use tally_sync::{DeltaEntry, Gtin, LocationId, ReplicaId, Shortage, SyncRequest};

const NOW: u64 = 1_750_000_000_000;

fn who() -> Identity {
    Identity {
        replica: ReplicaId::new("s1").unwrap(),
        location: LocationId::new("s1").unwrap(),
    }
}

fn gtin(n: u64) -> Gtin {
    Gtin::from_body(n).unwrap()
}

fn handle(hub: &mut MemoryReplica, req: &SyncRequest) -> Result<(), SyncRefusal> {
    match hub_handle(
        hub,
        &who(),
        req,
        &BTreeMap::new(),
        &BTreeMap::new(),
        &HubLimits::default(),
        &DateWindow::at(NOW),
    ) {
        Ok(_) => Ok(()),
        Err(HandleError::Refused(r)) => Err(r),
        Err(HandleError::Storage(never)) => match never {},
    }
}

/// A store command: 0 receipt, 1 sale, 2 count.
fn command(kind: u8, g: u64, qty: u64) -> Command {
    match kind {
        0 => Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(gtin(g), qty)],
            staff: Default::default(),
        },
        1 => Command::Sale {
            id: None,
            lines: vec![LineIn {
                gtin: gtin(g),
                qty,
                unit_price_minor: Some(100),
                epc: None,
                price_from_label: false,
            }],
            tenders: vec![],
            staff: Default::default(),
        },
        _ => Command::Count {
            id: None,
            gtin: gtin(g),
            counted: qty,
            staff: Default::default(),
        },
    }
}

proptest! {
    /// Whatever an honest store records, and however its requests are
    /// paged or repeated, the hub accepts them; raising any own entry of
    /// the last delta by one unit is refused as unexplained.
    #[test]
    fn honest_requests_pass_and_any_unexplained_increase_is_refused(
        ops in prop::collection::vec((0u8..3, 1u64..4, 1u64..8, 1usize..4), 1..40),
    ) {
        let mut store = MemStore::new(who());
        let mut hub = MemoryReplica::default();
        for (i, (kind, g, qty, page)) in ops.into_iter().enumerate() {
            let stamp = Stamp { now_ms: NOW + i as u64, random: [i as u8; 10] };
            let _ = store.execute(&command(kind, g, qty), stamp);
            let req = store.sync_request(page);
            prop_assert_eq!(handle(&mut hub, &req), Ok(()));
            // A repeat of the same request changes nothing and passes.
            prop_assert_eq!(handle(&mut hub, &req), Ok(()));
            // One unit more of an own entry than the events explain.
            if let Some(e) = req.delta.entries.first() {
                for bump in [0u8, 1] {
                    let mut forged = req.clone();
                    let mut c = e.counter.clone();
                    let r = &who().replica;
                    if bump == 0 {
                        c.add(r, 1).unwrap();
                    } else if c.rights(r) > 0 {
                        c.remove(r, 1).unwrap();
                    } else {
                        continue;
                    }
                    forged.delta.entries = vec![DeltaEntry { key: e.key.clone(), counter: c }];
                    let refused = matches!(
                        handle(&mut hub, &forged),
                        Err(SyncRefusal::Unexplained { .. })
                    );
                    prop_assert!(refused);
                }
            }
            let resp = hub_handle(&mut hub, &who(), &req, &BTreeMap::new(), &BTreeMap::new(), &HubLimits::default(), &DateWindow::at(NOW))
                .map_err(|_| TestCaseError::fail("refused"))?
                .0;
            store.apply_response(Some(&req), &resp);
        }
    }
}

#[test]
fn a_delta_ahead_of_its_events_is_refused_and_passes_with_them() {
    let mut store = MemStore::new(who());
    for i in 0..3u8 {
        let stamp = Stamp {
            now_ms: NOW,
            random: [i; 10],
        };
        assert!(matches!(
            store.execute(&command(0, 1, 2), stamp),
            Outcome::Recorded { .. }
        ));
    }
    let mut hub = MemoryReplica::default();
    // A request carrying one event of three but the whole delta.
    let mut ahead = store.sync_request(3);
    ahead.events.truncate(1);
    assert!(matches!(
        handle(&mut hub, &ahead),
        Err(SyncRefusal::Unexplained { .. })
    ));
    // The client holds the delta back while events remain, then sends it.
    let first = store.sync_request(1);
    assert!(first.delta.is_empty(), "held back: {first:?}");
    handle(&mut hub, &first).unwrap();
    handle(&mut hub, &store.sync_request(3)).unwrap();
}

#[test]
fn demand_counts_only_up_to_the_units_reported_lost() {
    let d = |g, units| Demand {
        gtin: gtin(g),
        units,
    };
    let lost = |reason, units| LostSales {
        reason,
        sales: 1,
        units,
    };
    assert!(effective_demand(&[d(1, 5)], &[]).is_empty());
    assert_eq!(
        effective_demand(
            &[d(1, 5), d(2, 5)],
            &[lost(Shortage::Offline, 4), lost(Shortage::NoStock, 3)]
        ),
        BTreeMap::from([(gtin(1), 5), (gtin(2), 2)])
    );
    // A reason listed twice counts once, at its largest.
    assert_eq!(
        effective_demand(
            &[d(1, 50)],
            &[lost(Shortage::Offline, 4), lost(Shortage::Offline, 4)]
        ),
        BTreeMap::from([(gtin(1), 4)])
    );
    assert_eq!(
        effective_demand(&[d(1, u64::MAX)], &[lost(Shortage::Offline, u64::MAX)]),
        BTreeMap::from([(gtin(1), u64::MAX)])
    );
}

/// A store that synced its sales but keeps its `N` at 0 cannot hand the
/// hub the rights those sales used: the escrow check counts the sales
/// the hub accepted, whatever `N` the delta (or a release report) says.
/// Else the hub would sell those units online a second time.
#[test]
fn rights_synced_sales_used_cannot_be_handed_to_the_hub() {
    use tally_sync::counter::TransferKey;
    use tally_sync::BoundedCounter;
    let mut store = MemStore::new(who());
    let stamp = |i: u8| Stamp {
        now_ms: NOW,
        random: [i; 10],
    };
    assert!(matches!(
        store.execute(&command(0, 1, 10), stamp(0)),
        Outcome::Recorded { .. }
    ));
    for i in 1..=10u8 {
        assert!(matches!(
            store.execute(&command(1, 1, 1), stamp(i)),
            Outcome::Recorded { .. }
        ));
    }
    let mut hub = MemoryReplica::default();
    // The events synced with a delta that hides the sales.
    let mut req = store.sync_request(100);
    let me = who().replica;
    let forge = |c: &BoundedCounter, to_hub: u64| {
        let (added, removed, mut transferred) = c.entries();
        let removed: Vec<_> = removed
            .into_iter()
            .map(|(r, n)| (r.clone(), if r == me { 0 } else { n }))
            .collect();
        if to_hub > 0 {
            transferred.push((
                TransferKey {
                    from: me.clone(),
                    to: ReplicaId::hub(),
                },
                to_hub,
            ));
        }
        BoundedCounter::from_entries(added, removed, transferred)
    };
    for e in &mut req.delta.entries {
        e.counter = forge(&e.counter, 0);
    }
    handle(&mut hub, &req).unwrap();
    // Next: the same N = 0 and the 10 units "given" to the hub.
    let mut give = store.sync_request(100);
    give.events.clear();
    give.delta.entries = req
        .delta
        .entries
        .iter()
        .map(|e| DeltaEntry {
            key: e.key.clone(),
            counter: forge(&e.counter, 10),
        })
        .collect();
    assert!(
        matches!(handle(&mut hub, &give), Err(SyncRefusal::Delta(_))),
        "synced sales count in the escrow check"
    );
}

/// An event HQ admits whose id another store's event holds already is
/// refused (and so stays held), not answered as admitted with nothing
/// stored.
#[test]
fn an_admitted_event_whose_id_another_store_holds_is_refused() {
    use tally_sync::exchange::hub_admit_held;
    use tally_sync::EventId;
    let id = EventId::v7(NOW, [9; 10]);
    let receipt = |qty| Command::Receipt {
        id: Some(id),
        lines: vec![ReceiptLine::units(gtin(1), qty)],
        staff: Default::default(),
    };
    let stamp = Stamp {
        now_ms: NOW,
        random: [1; 10],
    };
    let other = Identity {
        replica: ReplicaId::new("s2").unwrap(),
        location: LocationId::new("s2").unwrap(),
    };
    let mut s2 = MemStore::new(other.clone());
    assert!(matches!(
        s2.execute(&receipt(3), stamp),
        Outcome::Recorded { .. }
    ));
    let mut hub = MemoryReplica::default();
    let req = s2.sync_request(10);
    assert!(hub_handle(
        &mut hub,
        &other,
        &req,
        &BTreeMap::new(),
        &BTreeMap::new(),
        &HubLimits::default(),
        &DateWindow::at(NOW),
    )
    .is_ok());
    let mut s1 = MemStore::new(who());
    assert!(matches!(
        s1.execute(&receipt(5), stamp),
        Outcome::Recorded { .. }
    ));
    let event = s1.sync_request(10).events.remove(0);
    assert_eq!(event.id, id);
    assert!(matches!(
        hub_admit_held(&mut hub, &who(), &event),
        Err(HandleError::Refused(SyncRefusal::Event { .. }))
    ));
}

/// The date is checked last: an event dated outside the window that
/// fails another check too is refused for that (the store dead-letters
/// it), not kept for its date, which no admission would help.
#[test]
fn an_event_failing_another_check_is_not_refused_for_its_date() {
    use tally_sync::limits::MAX_CLOCK_SKEW_MS;
    let mut store = MemStore::new(who());
    let ahead = NOW + 2 * MAX_CLOCK_SKEW_MS;
    let stamp = |i: u8| Stamp {
        now_ms: ahead,
        random: [i; 10],
    };
    assert!(matches!(
        store.execute(&command(0, 1, 2), stamp(1)),
        Outcome::Recorded { .. }
    ));
    let mut hub = MemoryReplica::default();
    let req = store.sync_request(10);
    assert!(matches!(
        handle(&mut hub, &req),
        Err(SyncRefusal::OutOfWindow { .. })
    ));
    // A return, dated alike, of a tag the chain never sold: refused for
    // the tag.
    let mut bad = req.clone();
    bad.events[0].kind = tally_sync::EventKind::Return {
        original_sale: None,
    };
    bad.events[0].lines[0].qty = 1;
    bad.events[0].lines[0].epc =
        Some(tally_sync::Epc::from_hex("30340242201d8840009efdf7").unwrap());
    let refused = handle(&mut hub, &bad);
    assert!(
        matches!(&refused, Err(SyncRefusal::Event { reason, .. }) if reason.contains("sold")),
        "{refused:?}"
    );
}
