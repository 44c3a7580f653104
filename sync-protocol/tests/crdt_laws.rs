//! Property tests of the escrow counter and the inventory deltas: the CRDT
//! laws, convergence under any delivery, the no-double-selling invariant
//! and the validation of forged updates.
//!
//! proptest prints the failing case and persists its seed under
//! `proptest-regressions/`, so every failure replays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tally_sync::counter::{EntryKind, TransferKey, Violation};
use tally_sync::{BoundedCounter, Delta, Gtin, Inventory, ItemKey, LocationId, ReplicaId};

const REPLICAS: [&str; 6] = ["hub", "s1", "s2", "s3", "s4", "s5"];

fn rid(i: usize) -> ReplicaId {
    ReplicaId::new(REPLICAS[i % REPLICAS.len()]).unwrap()
}

/// One operation by one replica on its own copy.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, u64),
    Remove(usize, u64),
    Transfer(usize, usize, u64),
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..replicas, 1u64..20).prop_map(|(r, n)| Op::Add(r, n)),
        (0..replicas, 1u64..20).prop_map(|(r, n)| Op::Remove(r, n)),
        (0..replicas, 0..replicas, 1u64..20).prop_map(|(r, s, n)| Op::Transfer(r, s, n)),
    ]
}

/// Applies `op` if the escrow rules allow it; refused ops change nothing.
fn apply(c: &mut BoundedCounter, op: &Op) {
    let before = c.clone();
    let res = match *op {
        Op::Add(r, n) => c.add(&rid(r), n),
        Op::Remove(r, n) => c.remove(&rid(r), n),
        Op::Transfer(r, s, n) => c.transfer(&rid(r), &rid(s), n),
    };
    if res.is_err() {
        assert_eq!(*c, before, "a refused op changed the counter");
    }
}

/// Where an honest replica `from` may transfer rights it meant for `to`:
/// a store only to the hub (`rid(0)`), the hub to any store.
fn honest_to(from: usize, to: usize) -> usize {
    if from % REPLICAS.len() == 0 {
        to
    } else {
        0
    }
}

/// A reachable counter state: ops by up to 6 replicas.
fn counter() -> impl Strategy<Value = BoundedCounter> {
    prop::collection::vec(op(6), 0..30).prop_map(|ops| {
        let mut c = BoundedCounter::new();
        for o in &ops {
            apply(&mut c, o);
        }
        c
    })
}

/// Three replicas that share a history and then diverged.
fn diverged() -> impl Strategy<Value = (BoundedCounter, BoundedCounter, BoundedCounter)> {
    (
        counter(),
        prop::collection::vec(op(6), 0..15),
        prop::collection::vec(op(6), 0..15),
        prop::collection::vec(op(6), 0..15),
    )
        .prop_map(|(base, x, y, z)| {
            let run = |ops: &[Op]| {
                let mut c = base.clone();
                for o in ops {
                    apply(&mut c, o);
                }
                c
            };
            (run(&x), run(&y), run(&z))
        })
}

fn merged(a: &BoundedCounter, b: &BoundedCounter) -> BoundedCounter {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn merge_is_commutative((a, b, _) in diverged()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative((a, b, c) in diverged()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent((a, b, _) in diverged()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b), ab.clone());
    }

    #[test]
    fn merge_is_the_least_upper_bound((a, b, _) in diverged()) {
        let m = merged(&a, &b);
        prop_assert!(m.covers(&a) && m.covers(&b));
        // Nothing beyond a and b: every entry of m comes from one of them.
        let (p, n, t) = m.entries();
        let (pa, na, ta) = a.entries();
        let (pb, nb, tb) = b.entries();
        let get = |v: &[(ReplicaId, u64)], r: &ReplicaId| v.iter().find(|(x, _)| x == r).map_or(0, |e| e.1);
        let gett = |v: &[(TransferKey, u64)], k: &TransferKey| v.iter().find(|(x, _)| x == k).map_or(0, |e| e.1);
        for (r, v) in &p { prop_assert_eq!(*v, get(&pa, r).max(get(&pb, r))); }
        for (r, v) in &n { prop_assert_eq!(*v, get(&na, r).max(get(&nb, r))); }
        for (k, v) in &t { prop_assert_eq!(*v, gett(&ta, k).max(gett(&tb, k))); }
    }

    /// Up to 6 replicas each act on their own copy with only locally
    /// permitted removes and transfers, and gossip in any pattern. At every
    /// point, in every copy and in the merge of all copies: on-hand >= 0,
    /// every replica's rights >= 0, and ΣN <= ΣP. This is "no unit is sold
    /// twice", however long the replicas were apart.
    #[test]
    fn escrow_never_oversells(
        n in 2usize..=6,
        steps in prop::collection::vec((0usize..6, op(6), any::<bool>(), 0usize..6), 1..120),
    ) {
        let mut copies = vec![BoundedCounter::new(); n];
        for (who, o, gossip, peer) in steps {
            let who = who % n;
            // Each replica only acts as itself.
            let o = match o {
                Op::Add(_, k) => Op::Add(who, k),
                Op::Remove(_, k) => Op::Remove(who, k),
                Op::Transfer(_, to, k) => Op::Transfer(who, to % n, k),
            };
            apply(&mut copies[who], &o);
            if gossip {
                let from = copies[who].clone();
                copies[peer % n].merge(&from);
            }
            let mut all = BoundedCounter::new();
            for c in &copies {
                all.merge(c);
            }
            for c in copies.iter().chain(std::iter::once(&all)) {
                prop_assert!(c.on_hand_signed() >= 0);
                prop_assert!(c.total_removed() <= c.total_added());
                for r in 0..n {
                    prop_assert!(c.balance(&rid(r)) >= 0, "rights of {} negative in {:?}", rid(r), c);
                }
            }
        }
    }

    /// An honest replica's update (any ops it may do on top of what the
    /// hub knows) always validates; every forgery is refused.
    #[test]
    fn validate_accepts_honest_and_refuses_forged(
        hub_view in counter(),
        from in 0usize..6,
        honest_ops in prop::collection::vec(op(6), 0..10),
        victim in 0usize..6,
        target in 0usize..6,
        kind in 0u8..3,
        bump in 1u64..1000,
    ) {
        let me = rid(from);
        let mut honest = hub_view.clone();
        for o in &honest_ops {
            let o = match *o {
                Op::Add(_, k) => Op::Add(from, k),
                Op::Remove(_, k) => Op::Remove(from, k),
                // Rights move between a store and the hub only.
                Op::Transfer(_, to, k) => Op::Transfer(from, honest_to(from, to), k),
            };
            apply(&mut honest, &o);
        }
        prop_assert_eq!(hub_view.validate(&me, &honest), Ok(()));
        prop_assert_eq!(hub_view.validate(&me, &honest.owned_by(&me)), Ok(()));

        // Forgery 1: advance an entry owned by someone else.
        let victim = if rid(victim) == me { rid(victim + 1) } else { rid(victim) };
        let (mut p, mut n, mut t) = honest.entries();
        let raise = |v: &mut Vec<(ReplicaId, u64)>, r: &ReplicaId| {
            match v.iter_mut().find(|(x, _)| x == r) {
                Some(e) => e.1 = e.1.saturating_add(bump),
                None => v.push((r.clone(), bump)),
            }
        };
        let expected_kind = match kind {
            0 => { raise(&mut p, &victim); EntryKind::Added }
            1 => { raise(&mut n, &victim); EntryKind::Removed }
            _ => {
                let key = TransferKey { from: victim.clone(), to: rid(target) };
                match t.iter_mut().find(|(k, _)| *k == key) {
                    Some(e) => e.1 = e.1.saturating_add(bump),
                    None => t.push((key, bump)),
                }
                EntryKind::Transferred
            }
        };
        let forged = BoundedCounter::from_entries(p, n, t);
        match hub_view.validate(&me, &forged) {
            Err(Violation::ForeignEntry { kind, .. }) => prop_assert_eq!(kind, expected_kind),
            other => prop_assert!(false, "forgery accepted or misreported: {:?}", other),
        }

        // Forgery 2: remove or transfer more than one's rights.
        let (p, mut n, mut t) = honest.entries();
        let over = honest.rights(&me) + bump;
        if kind == 0 {
            let cur = honest.removed_by(&me);
            n.retain(|(r, _)| r != &me);
            n.push((me.clone(), cur + over));
        } else {
            let to = rid(honest_to(from, if rid(target) == me { target + 1 } else { target }));
            let key = TransferKey { from: me.clone(), to: to.clone() };
            let cur = honest.transferred(&me, &to);
            t.retain(|(k, _)| *k != key);
            t.push((key, cur + over));
        }
        let overdrawn = BoundedCounter::from_entries(p, n, t);
        let refused = matches!(
            hub_view.validate(&me, &overdrawn),
            Err(Violation::NegativeRights { .. })
        );
        prop_assert!(refused);
    }

    /// A replica's deltas, delivered in any order, duplicated, and with
    /// some lost and re-sent later, bring the receiver to the sender's state.
    #[test]
    fn deltas_converge_under_any_delivery(
        ops in prop::collection::vec((0u64..6, op(1)), 1..60),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
        lose in prop::collection::vec(any::<bool>(), 0..200),
    ) {
        let me = rid(1);
        let loc = LocationId::new("s1").unwrap();
        let mut sender = Inventory::new();
        let mut deltas: Vec<Delta> = Vec::new();
        let mut cursor = 0;
        for (item, o) in &ops {
            let key = ItemKey::new(loc.clone(), Gtin::from_body(*item).unwrap());
            let _ = match *o {
                Op::Add(_, k) => sender.add(&key, &me, k),
                Op::Remove(_, k) => sender.remove(&key, &me, k),
                Op::Transfer(_, _, k) => sender.transfer(&key, &me, &rid(0), k),
            };
            deltas.push(sender.delta_since(&loc, cursor));
            cursor = sender.version();
        }
        // Deliver in a shuffled, duplicated order; lost ones go to a retry queue.
        let mut receiver = Inventory::new();
        let mut retry = Vec::new();
        for (i, idx) in order.iter().enumerate() {
            let d = &deltas[idx.index(deltas.len())];
            if lose.get(i).copied().unwrap_or(false) {
                retry.push(d.clone());
            } else {
                receiver.merge_delta(d);
            }
        }
        // Eventually everything is re-sent (the sender retries until acked).
        for d in retry.iter().rev().chain(deltas.iter()) {
            receiver.merge_delta(d);
        }
        prop_assert!(receiver.same_state(&sender));
    }

    /// Several replicas exchanging deltas through a hub in a random order
    /// converge, and the delta a replica receives never carries a forged
    /// entry: each delta passes validation at the hub.
    #[test]
    fn replicas_converge_through_the_hub(
        ops in prop::collection::vec((1usize..5, 0u64..4, op(5)), 1..80),
        syncs in prop::collection::vec(1usize..5, 1..80),
    ) {
        let loc = LocationId::new("shop").unwrap();
        let mut hub = Inventory::new();
        let mut reps = vec![Inventory::new(); 5];
        let mut acked = [0u64; 5];
        let mut hub_cursor = [0u64; 5];
        let mut sync_iter = syncs.iter().cycle();
        for (who, item, o) in &ops {
            let me = rid(*who);
            let key = ItemKey::new(loc.clone(), Gtin::from_body(*item).unwrap());
            let _ = match *o {
                Op::Add(_, k) => reps[*who].add(&key, &me, k),
                Op::Remove(_, k) => reps[*who].remove(&key, &me, k),
                Op::Transfer(_, to, k) => {
                    reps[*who].transfer(&key, &me, &rid(honest_to(*who, to)), k)
                }
            };
            let s = *sync_iter.next().unwrap();
            let up = reps[s].delta_since(&loc, acked[s]).owned_by(&rid(s));
            prop_assert_eq!(hub.validate_delta(&rid(s), &loc, &up), Ok(()));
            hub.merge_delta(&up);
            acked[s] = reps[s].version();
            let down = hub.delta_since(&loc, hub_cursor[s]);
            hub_cursor[s] = hub.version();
            reps[s].merge_delta(&down);
        }
        for s in 1..5 {
            let up = reps[s].delta_since(&loc, acked[s]).owned_by(&rid(s));
            hub.merge_delta(&up);
        }
        for s in 1..5 {
            reps[s].merge_delta(&hub.delta_since(&loc, hub_cursor[s]));
            prop_assert!(reps[s].same_state_at(&hub, &loc));
        }
    }
}
