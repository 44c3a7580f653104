//! The hub's storage across power cuts, on `tally_store::sim_disk`'s disk
//! with a volatile write cache.
//!
//! A store deletes events from its outbox once the hub acknowledged them,
//! so an acknowledged sync the hub then loses is a sale lost for the whole
//! chain. Three model stores (the real `tally-sync` logic, from
//! `support`) sell, receive and sync in group commits with online orders
//! mixed in; the power goes off at a drawn write or sync, and the reboot
//! keeps a drawn subset of the sectors written since the last completed
//! sync. After every reboot each acknowledged event and order must be at
//! the hub and no unit may be sold twice. Unacknowledged syncs are resent, as an
//! agent does, so the hub must also take a sync it already committed
//! without answering. At the end every store syncs to the end and the
//! hub must agree with each of them, every counter with its events.
//!
//! Seeded: `TALLY_POWER_SEED` replays a run; the seed is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{gtin, SimStore};
use tally_hub::storage::redb::SyncSettings;
use tally_hub::storage::{HubStorage, OrderRequest, OrderResult, RedbHub, SyncResult};
use tally_store::sim_disk::SimDisk;
use tally_sync::{EventId, Gtin, SyncRequest};

const STORES: usize = 3;
const ITEMS: u64 = 4;
const STEPS: usize = 300;

fn settings() -> SyncSettings {
    // The defaults; the data directory is not used.
    let defaults = tally_hub::Config::new(Path::new("unused"));
    SyncSettings {
        policy: defaults.policy,
        limits: tally_sync::exchange::HubLimits {
            max_delta_entries: defaults.max_delta_entries,
        },
        catalog_page: defaults.catalog_page,
    }
}

fn open(disk: &SimDisk) -> RedbHub {
    RedbHub::open_with_backend(disk.clone(), Path::new("sim"), settings())
        .expect("the hub opens after a power cut")
}

/// What the hub acknowledged, to find after every reboot.
#[derive(Default)]
struct Acked {
    events: BTreeSet<EventId>,
    /// Order id → the event recorded for it.
    orders: BTreeMap<String, EventId>,
}

/// After a reboot: every acknowledged event and order is there, and no unit
/// was sold twice. With `settled` (every store synced to the end) every
/// counter also equals what its events say; mid-run a store's delta may
/// run ahead of the events it has sent so far.
fn check(hub: &RedbHub, acked: &Acked, settled: bool, seed: u64) {
    let read = hub.db().begin_read().unwrap();
    for id in acked.events.iter().chain(acked.orders.values()) {
        assert!(
            read.event(id).unwrap().is_some(),
            "acknowledged event {id} lost by a power cut (seed {seed})"
        );
    }
    let audit = hub.audit().unwrap();
    assert!(audit.epcs_sold_twice.is_empty(), "seed {seed}");
    assert_eq!(audit.holdings_disagreeing, 0, "seed {seed}");
    for row in &audit.rows {
        assert_eq!(row.oversold, 0, "{row:?} (seed {seed})");
        if settled {
            assert_eq!(
                u128::from(row.on_hand),
                row.on_hand_by_events,
                "{row:?} (seed {seed})"
            );
        }
    }
}

/// Random sales and receipts at a store.
fn trade(store: &mut SimStore, rng: &mut ChaCha8Rng) {
    for _ in 0..rng.gen_range(0..4) {
        let g = gtin(rng.gen_range(0..ITEMS));
        if rng.gen_ratio(1, 5) {
            store.receive(g, rng.gen_range(1..6));
        } else {
            // Refused sales only add demand.
            let _ = store.sell(g, rng.gen_range(1..3));
        }
    }
}

#[test]
fn acknowledged_syncs_and_orders_survive_power_cuts() {
    let seed = std::env::var("TALLY_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().next_u64());
    eprintln!("power-cut seed {seed} (TALLY_POWER_SEED={seed} replays it)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let disk = SimDisk::new();
    let mut hub = open(&disk);
    let mut stores: Vec<SimStore> = (0..STORES)
        .map(|i| SimStore::new(&format!("s{}", i + 1), seed.wrapping_add(i as u64)))
        .collect();
    for s in &mut stores {
        for i in 0..ITEMS {
            s.receive(gtin(i), 20);
        }
    }
    let mut acked = Acked::default();
    let (mut cuts, mut failed_batches, mut orders) = (0, 0, 0u64);
    for step in 0..STEPS {
        for s in &mut stores {
            trade(s, &mut rng);
        }
        // Some stores sync in this group commit, maybe an online order.
        let now_ms = 1_750_000_000_000 + step as u64;
        let mut syncing: Vec<(usize, SyncRequest)> = Vec::new();
        for (i, s) in stores.iter().enumerate() {
            if rng.gen_bool(0.6) {
                syncing.push((i, s.request(rng.gen_range(1..20))));
            }
        }
        let mut order = None;
        if rng.gen_ratio(1, 3) {
            // Sometimes an id already used: a client retrying.
            orders += u64::from(!rng.gen_ratio(1, 4));
            let mut random = [0u8; 10];
            rng.fill_bytes(&mut random);
            let store = &stores[rng.gen_range(0..STORES)].mem.who.location;
            let g: Gtin = gtin(rng.gen_range(0..ITEMS));
            order = Some(OrderRequest {
                order_id: format!("web-{orders}"),
                store: store.clone(),
                lines: vec![(g, 1)],
                event_id: EventId::v7(now_ms, random),
                now_ms,
                record_demand: true,
            });
        }
        if rng.gen_ratio(2, 5) {
            disk.power_cut_after(rng.gen_range(0..30));
        }
        // What the batch answers, kept only if it commits.
        let (mut synced, mut ordered) = (Vec::new(), None);
        let batch = hub.write_batch(&mut |txn| {
            synced.clear();
            for (i, req) in &syncing {
                synced.push(txn.sync(&stores[*i].mem.who, req, &Default::default(), now_ms)?);
            }
            ordered = order.as_ref().map(|o| txn.order(o)).transpose()?;
            Ok(())
        });
        match batch {
            Ok(()) => {
                for ((i, req), result) in syncing.iter().zip(synced) {
                    let SyncResult::Synced(resp, _) = result else {
                        panic!("step {step}: {result:?} (seed {seed})");
                    };
                    stores[*i].apply(req, &resp);
                    acked.events.extend(req.events.iter().map(|e| e.id));
                }
                if let Some(OrderResult::Accepted(r) | OrderResult::Replayed(r)) = ordered {
                    acked.orders.insert(r.order_id, r.event_id);
                }
            }
            Err(e) => {
                assert!(
                    disk.powered_off(),
                    "step {step}: {e} with the power on (seed {seed})"
                );
                failed_batches += 1;
            }
        }
        if disk.powered_off() || rng.gen_ratio(1, 20) {
            drop(hub);
            disk.restore_power(rng.next_u64());
            hub = open(&disk);
            cuts += 1;
            check(&hub, &acked, false, seed);
        }
    }
    // Power stays on: every store syncs to the end, twice round, so each
    // also hears of what the others' syncs moved.
    drop(hub);
    disk.restore_power(rng.next_u64());
    let hub = open(&disk);
    for _round in 0..2 {
        for s in &mut stores {
            for _ in 0..50 {
                let (req, resp) = s.sync_in_storage(&hub, 1_750_000_999_000);
                acked.events.extend(req.events.iter().map(|e| e.id));
                if !resp.more && !s.has_pending() {
                    break;
                }
            }
        }
    }
    check(&hub, &acked, true, seed);
    for s in &stores {
        assert!(
            !s.has_pending(),
            "{} did not settle (seed {seed})",
            s.mem.who.replica
        );
        for i in 0..ITEMS {
            let g = gtin(i);
            let at_hub = hub.stock(g).unwrap();
            let here = at_hub
                .iter()
                .find(|(store, _)| *store == s.mem.who.location.to_string())
                .map_or(0, |(_, st)| st.on_hand);
            assert_eq!(
                here,
                s.on_hand(g),
                "{} {g} (seed {seed})",
                s.mem.who.replica
            );
        }
    }
    // Every store event is now acknowledged (so `check` found it); beyond
    // them the hub holds the acknowledged orders and perhaps some whose
    // answer the power cut took.
    let events: usize = stores.iter().map(|s| s.mem.replica.journal.len()).sum();
    assert_eq!(acked.events.len(), events, "seed {seed}");
    let held = hub.audit().unwrap().events as usize;
    assert!(
        (events + acked.orders.len()..=events + orders as usize).contains(&held),
        "{held} events at the hub: {events} from stores, {} orders acknowledged, {orders} ids used (seed {seed})",
        acked.orders.len()
    );
    eprintln!(
        "{STEPS} steps: {cuts} reboots, {failed_batches} batches cut short, {} events and {} orders acknowledged",
        acked.events.len(),
        acked.orders.len()
    );
    assert!(
        failed_batches > 10,
        "the failpoint fired too rarely: {failed_batches}"
    );
}
