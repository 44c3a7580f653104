//! The agent's store against a `BTreeMap` model, in the style of sled's
//! `test_tree_failpoints.rs`: random receipts, sales (with repeated ids),
//! counts and returns go through the real committer (queued in order, so
//! they share group commits), interleaved with `Restart` (stop the
//! committer, close and reopen the database) and `Crash` (commands applied
//! in a write transaction that is dropped uncommitted, then a restart),
//! `PowerCut` (commands committed but their counters never flushed, then
//! a reopen that must replay them) and `Flush`.
//! After every step the stock of every item, the recorded ids and the
//! outbox depth must equal the model's.
//!
//! The same operations also run on `tally_store::sim_disk::SimDisk`, a
//! disk with a volatile write cache, with one more: `DiskCut`, a real
//! power cut. The power goes off at a drawn write or sync while commands
//! go through the committer (or during its shutdown flush, or during the
//! reopen's replay); the disk then keeps a drawn subset of the sectors
//! written since the last completed sync. Every command acknowledged
//! before the cut must be there exactly once; of the ones that got an
//! error, the store may hold any batch-aligned prefix (the batch being
//! committed when the power went may or may not have made it), so the
//! state must equal the model after some prefix of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use tally_agent::commit::{Committer, FlushBound, Limits};
use tally_agent::metrics::Metrics;
use tally_agent::store::{AgentDb, AgentTxn, BatchCounters};
use tally_store::sim_disk::SimDisk;
use tally_store::SystemClock;
use tally_sync::command::{execute, Command, LineIn, Outcome, ReceiptLine, Stamp};
use tally_sync::{EventId, Gtin, ReplicaId};

#[derive(Debug, Clone)]
enum Op {
    /// Commands queued back to back (one or more group commits).
    Batch(Vec<Cmd>),
    /// Close and reopen the database.
    Restart,
    /// Apply commands in a transaction that never commits, then restart.
    Crash(Vec<Cmd>),
    /// Commit commands without flushing their counters, lose the memory,
    /// reopen.
    PowerCut(Vec<Cmd>),
    /// Flush the held-back counters.
    Flush,
    /// Simulated disk only: the power goes off at the `calls`-th write or
    /// sync while `cmds` go through the committer (or later, during its
    /// shutdown); the reboot keeps the unsynced sectors `seed` draws. With
    /// `reopen_calls`, the power goes off again during the reopen (its
    /// replay) before a second reboot.
    DiskCut {
        calls: u16,
        cmds: Vec<Cmd>,
        seed: u64,
        reopen_calls: Option<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Receive {
        item: u8,
        qty: u8,
        id: u8,
    },
    Sell {
        item: u8,
        qty: u8,
        id: u8,
    },
    /// `of`: the id of the sale it names (bounded by it when recorded).
    Return {
        item: u8,
        qty: u8,
        id: u8,
        of: Option<u8>,
    },
    Count {
        item: u8,
        counted: u8,
        id: u8,
    },
}

fn cmd() -> impl Strategy<Value = Cmd> {
    // Few items and ids, so sales run short and ids repeat.
    let item = 0u8..3;
    let id = 0u8..24;
    prop_oneof![
        3 => (item.clone(), 1u8..6, id.clone()).prop_map(|(item, qty, id)| Cmd::Receive { item, qty, id }),
        5 => (item.clone(), 1u8..4, id.clone()).prop_map(|(item, qty, id)| Cmd::Sell { item, qty, id }),
        // Returns mostly name one of a few sale ids, so that several returns
        // meet the same recorded sale and some exceed it.
        2 => (item.clone(), 1u8..3, id.clone(), prop::option::weighted(0.7, 0u8..6))
            .prop_map(|(item, qty, id, of)| Cmd::Return { item, qty, id, of }),
        1 => (item, 0u8..8, id).prop_map(|(item, counted, id)| Cmd::Count { item, counted, id }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(cmd(), 1..12).prop_map(Op::Batch),
        1 => Just(Op::Restart),
        1 => prop::collection::vec(cmd(), 1..6).prop_map(Op::Crash),
        2 => prop::collection::vec(cmd(), 1..12).prop_map(Op::PowerCut),
        1 => Just(Op::Flush),
    ]
}

/// [`op`] plus real power cuts, for the simulated disk.
fn disk_op() -> impl Strategy<Value = Op> {
    let cut = (
        0u16..60,
        prop::collection::vec(cmd(), 1..16),
        any::<u64>(),
        prop::option::weighted(0.3, 0u8..40),
    )
        .prop_map(|(calls, cmds, seed, reopen_calls)| Op::DiskCut {
            calls,
            cmds,
            seed,
            reopen_calls,
        });
    prop_oneof![5 => op(), 3 => cut]
}

fn gtin(item: u8) -> Gtin {
    Gtin::from_body(400_638_133_390 + u64::from(item)).unwrap()
}

/// Ids are per kind so that one id is never used by two kinds here (that
/// case is covered by the API tests).
fn id(kind: u8, n: u8) -> EventId {
    EventId(uuid::Uuid::from_u128(
        0x0190_a5e0_0000_7000_8000_0000_0000_0000 | (u128::from(kind) << 8) | u128::from(n),
    ))
}

fn to_command(c: Cmd) -> Command {
    let line = |item, qty: u8| LineIn {
        gtin: gtin(item),
        qty: u64::from(qty),
        unit_price_minor: Some(10),
        epc: None,
        price_from_label: false,
    };
    match c {
        Cmd::Receive { item, qty, id: n } => Command::Receipt {
            id: Some(id(1, n)),
            lines: vec![ReceiptLine::units(gtin(item), u64::from(qty))],
            staff: Default::default(),
        },
        Cmd::Sell { item, qty, id: n } => Command::Sale {
            id: Some(id(2, n)),
            lines: vec![line(item, qty)],
            tenders: vec![],
            staff: Default::default(),
        },
        Cmd::Return {
            item,
            qty,
            id: n,
            of,
        } => Command::Return {
            id: Some(id(3, n)),
            lines: vec![line(item, qty)],
            original_sale: of.map(|s| id(2, s)),
            // Approved: a return naming no sale recorded here needs it.
            staff: tally_sync::Staff {
                approval: Some(tally_sync::Approval {
                    approver: "mgr".into(),
                    reason: "model".into(),
                }),
                ..Default::default()
            },
            checked: None,
        },
        Cmd::Count {
            item,
            counted,
            id: n,
        } => Command::Count {
            id: Some(id(4, n)),
            gtin: gtin(item),
            counted: u64::from(counted),
            staff: Default::default(),
        },
    }
}

/// The model: on hand per item (this store holds every right), the
/// command recorded under each id (a retry must repeat it), outbox depth,
/// and per recorded sale its item, units and the units returns naming it
/// took back.
#[derive(Debug, Default, Clone)]
struct Model {
    on_hand: BTreeMap<u8, u64>,
    ids: BTreeMap<EventId, Cmd>,
    outbox: u64,
    sales: BTreeMap<EventId, (u8, u64, u64)>,
}

/// What the model expects a command to do.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    New,
    Retry,
    Refused,
}

impl Model {
    fn apply(&mut self, c: Cmd) -> Expect {
        let command = to_command(c);
        let id = command.id().unwrap();
        if let Some(recorded) = self.ids.get(&id) {
            return if *recorded == c {
                Expect::Retry
            } else {
                Expect::Refused
            };
        }
        let have = self.on_hand.entry(match c {
            Cmd::Receive { item, .. }
            | Cmd::Sell { item, .. }
            | Cmd::Return { item, .. }
            | Cmd::Count { item, .. } => item,
        });
        let have = have.or_default();
        match c {
            Cmd::Receive { qty, .. } => *have += u64::from(qty),
            Cmd::Return { item, qty, of, .. } => {
                let qty = u64::from(qty);
                if let Some(sale) = of.and_then(|s| self.sales.get_mut(&crate::id(2, s))) {
                    let returnable = if sale.0 == item { sale.1 - sale.2 } else { 0 };
                    if qty > returnable {
                        return Expect::Refused;
                    }
                    sale.2 += qty;
                }
                *have += qty;
            }
            Cmd::Sell { item, qty, .. } => {
                if *have < u64::from(qty) {
                    return Expect::Refused;
                }
                *have -= u64::from(qty);
                self.sales.insert(id, (item, u64::from(qty), 0));
            }
            Cmd::Count { counted, .. } => *have = u64::from(counted),
        }
        self.ids.insert(id, c);
        self.outbox += 1;
        Expect::New
    }
}

/// Where the database lives: a file in a directory, or the simulated
/// disk (clones share it).
#[derive(Debug, Clone)]
enum Place {
    Dir(PathBuf),
    Sim(SimDisk),
}

impl Place {
    fn open_db(&self) -> Result<AgentDb, tally_agent::store::OpenError> {
        let id = ReplicaId::new("s1").unwrap();
        match self {
            Place::Dir(dir) => AgentDb::open(dir, Some(&id)),
            Place::Sim(disk) => {
                AgentDb::open_with_backend(disk.clone(), Path::new("sim"), Some(&id))
            }
        }
    }
}

struct Agent {
    db: Arc<AgentDb>,
    committer: Option<(Committer, tally_service::vital::Vital)>,
}

impl Agent {
    fn open(place: &Place, flush: FlushBound) -> Self {
        let db = Arc::new(place.open_db().unwrap());
        let committer = Committer::start(
            db.clone(),
            Arc::new(Metrics::new()),
            Limits {
                max_batch: 5,
                queue: 64,
                flush,
                ..Limits::default()
            },
            Arc::new(SystemClock),
        )
        .unwrap();
        Self {
            db,
            committer: Some(committer),
        }
    }

    fn close(mut self) {
        if let Some((c, t)) = self.committer.take() {
            drop(c);
            t.join().unwrap();
        }
        // The committer thread held the other reference.
        Arc::into_inner(self.db).expect("db still shared");
    }
}

fn check(agent: &Agent, model: &Model) -> Result<(), TestCaseError> {
    for item in 0..3u8 {
        let stock = agent.db.stock(gtin(item)).unwrap();
        let want = model.on_hand.get(&item).copied().unwrap_or(0);
        prop_assert_eq!(stock.on_hand, want, "item {}", item);
        prop_assert_eq!(stock.rights, want);
    }
    let ids: BTreeSet<EventId> = agent.db.events().unwrap().iter().map(|e| e.id).collect();
    prop_assert_eq!(&ids, &model.ids.keys().copied().collect::<BTreeSet<_>>());
    prop_assert_eq!(agent.db.outbox_len().unwrap(), model.outbox);
    let seqs: Vec<u64> = agent
        .db
        .outbox(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    prop_assert_eq!(
        seqs,
        (1..=model.outbox).collect::<Vec<_>>(),
        "gapless, increasing"
    );
    Ok(())
}

/// Runs `cmds` in one write transaction of its own (the committer
/// stopped, so it is the only writer). With a model, the commands are
/// checked against it and committed WITHOUT flushing their counters (a
/// power cut after the commit); without, the transaction is dropped (a
/// crash before the commit).
fn direct(place: &Place, cmds: &[Cmd], model: Option<&mut Model>) -> Result<(), TestCaseError> {
    let db = place.open_db().unwrap();
    let txn = db.begin_write().unwrap();
    let mut model = model;
    {
        let mut ledger = AgentTxn::open(&txn, &db, BatchCounters::default()).unwrap();
        for (i, c) in cmds.iter().enumerate() {
            let stamp = Stamp {
                now_ms: 1,
                random: [i as u8; 10],
            };
            let outcome = execute(&mut ledger, db.who(), &to_command(*c), stamp).unwrap();
            if let Some(model) = model.as_deref_mut() {
                let got = match outcome {
                    Outcome::Recorded { new: true, .. } => Expect::New,
                    Outcome::Recorded { new: false, .. } => Expect::Retry,
                    Outcome::Refused { .. } => Expect::Refused,
                };
                prop_assert_eq!(got, model.apply(*c), "{:?}", c);
            }
        }
        // Writes the appended outbox entries (one run).
        ledger.close().unwrap();
    }
    if model.is_some() {
        txn.commit().unwrap();
    } else {
        drop(txn);
    }
    Ok(())
}

/// What the committer answered, as the model names it.
fn expect_of(done: &Outcome) -> Expect {
    match done {
        Outcome::Recorded { new: true, .. } => Expect::New,
        Outcome::Recorded { new: false, .. } => Expect::Retry,
        Outcome::Refused { .. } => Expect::Refused,
    }
}

/// Queues `cmds` back to back and returns each answer, in order.
fn submit_all(
    rt: &tokio::runtime::Runtime,
    committer: &Committer,
    cmds: &[Cmd],
) -> Vec<Result<Outcome, tally_agent::commit::CommitError>> {
    rt.block_on(async {
        let mut tickets = Vec::new();
        for c in cmds {
            tickets.push(committer.enqueue_command(to_command(*c)).await);
        }
        let mut answers = Vec::new();
        for t in tickets {
            answers.push(match t {
                Ok(t) => t.wait().await,
                Err(e) => Err(e),
            });
        }
        answers
    })
}

/// The power cut of [`Op::DiskCut`]: returns the model after the acknowledged
/// commands, the commands left in doubt (from the first error on, in
/// order) and the reopened agent.
fn disk_cut(
    rt: &tokio::runtime::Runtime,
    disk: &SimDisk,
    place: &Place,
    agent: Agent,
    model: &mut Model,
    (calls, cmds, seed, reopen_calls): (u16, &[Cmd], u64, Option<u8>),
    flush: FlushBound,
) -> Result<(Vec<Cmd>, Agent), TestCaseError> {
    disk.power_cut_after(u64::from(calls));
    let (committer, _) = agent.committer.as_ref().unwrap();
    let answers = submit_all(rt, committer, cmds);
    let mut in_doubt = Vec::new();
    for (c, answer) in cmds.iter().zip(answers) {
        match answer {
            Ok(done) if in_doubt.is_empty() => {
                prop_assert_eq!(expect_of(&done), model.apply(*c), "{:?}", c);
            }
            Ok(_) | Err(_) => {
                // An error: was the batch durable or not? The ones after it
                // (even refusals answered at once) saw that batch.
                prop_assert!(
                    disk.powered_off(),
                    "an error with the power on: {:?}",
                    answer
                );
                in_doubt.push(*c);
            }
        }
    }
    agent.close();
    disk.restore_power(seed);
    if let Some(calls) = reopen_calls {
        disk.power_cut_after(u64::from(calls));
        // The reopen (its replay) may or may not get through.
        if let Ok(db) = place.open_db() {
            drop(db);
        }
        disk.restore_power(seed.rotate_left(17));
    }
    Ok((in_doubt, Agent::open(place, flush)))
}

/// Runs `ops` with the committer flushing on its own at `flush`.
fn run(ops: Vec<Op>, flush: FlushBound) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    run_at(&Place::Dir(dir.path().to_path_buf()), ops, flush)
}

/// [`run`] at `place`.
fn run_at(place: &Place, ops: Vec<Op>, flush: FlushBound) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut model = Model::default();
    let mut agent = Agent::open(place, flush);
    for op in ops {
        match op {
            Op::Batch(cmds) => {
                let (committer, _) = agent.committer.as_ref().unwrap();
                let answers = submit_all(&rt, committer, &cmds);
                for (c, answer) in cmds.iter().zip(answers) {
                    let expect = model.apply(*c);
                    prop_assert_eq!(expect_of(&answer.unwrap()), expect, "{:?}", c);
                }
            }
            Op::Restart => {
                agent.close();
                agent = Agent::open(place, flush);
            }
            Op::Flush => {
                let (committer, _) = agent.committer.as_ref().unwrap();
                rt.block_on(committer.flush()).unwrap();
            }
            Op::PowerCut(cmds) => {
                agent.close();
                direct(place, &cmds, Some(&mut model))?;
                agent = Agent::open(place, flush);
            }
            Op::Crash(cmds) => {
                agent.close();
                direct(place, &cmds, None)?;
                agent = Agent::open(place, flush);
            }
            Op::DiskCut {
                calls,
                cmds,
                seed,
                reopen_calls,
            } => {
                let Place::Sim(disk) = place else {
                    panic!("a disk cut needs the simulated disk");
                };
                let (in_doubt, reopened) = disk_cut(
                    &rt,
                    disk,
                    place,
                    agent,
                    &mut model,
                    (calls, &cmds, seed, reopen_calls),
                    flush,
                )?;
                agent = reopened;
                model = settle(&agent, model, &in_doubt)?;
                continue;
            }
        }
        check(&agent, &model)?;
    }
    agent.close();
    let agent = Agent::open(place, flush);
    check(&agent, &model)?;
    agent.close();
    Ok(())
}

/// After a power cut: the store must equal the model after some prefix of
/// the commands in doubt. Returns that model.
fn settle(agent: &Agent, model: Model, in_doubt: &[Cmd]) -> Result<Model, TestCaseError> {
    let mut candidate = model;
    let mut tried = Vec::new();
    for k in 0..=in_doubt.len() {
        if k > 0 {
            candidate.apply(in_doubt[k - 1]);
        }
        match check(agent, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) => tried.push(format!("{k}: {e}")),
        }
    }
    Err(TestCaseError::fail(format!(
        "after the power cut the store matches no prefix of the {} commands in doubt {:?}:\n{}",
        in_doubt.len(),
        in_doubt,
        tried.join("\n")
    )))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Small flush bounds, so the committer's own flushes fall between
    /// and inside the model's operations (3 items: a counter bound of 4
    /// never fires).
    #[test]
    fn store_matches_model_across_restarts_and_crashes(
        ops in prop::collection::vec(op(), 1..24),
        events in 1u64..20,
        counters in 1usize..5,
    ) {
        run(ops, FlushBound { events, counters })?;
    }

    /// The same on the simulated disk, with real power cuts: unsynced
    /// writes lost or kept sector by sector.
    #[test]
    fn store_matches_model_across_power_cuts(
        ops in prop::collection::vec(disk_op(), 1..24),
        events in 1u64..20,
        counters in 1usize..5,
    ) {
        run_at(&Place::Sim(SimDisk::new()), ops, FlushBound { events, counters })?;
    }
}

#[test]
fn a_sale_and_its_retry_in_one_batch_apply_once() {
    run(
        vec![
            Op::Batch(vec![
                Cmd::Receive {
                    item: 0,
                    qty: 3,
                    id: 0,
                },
                Cmd::Sell {
                    item: 0,
                    qty: 2,
                    id: 1,
                },
                Cmd::Sell {
                    item: 0,
                    qty: 2,
                    id: 1,
                },
                Cmd::Sell {
                    item: 0,
                    qty: 2,
                    id: 2,
                },
                Cmd::Sell {
                    item: 0,
                    qty: 1,
                    id: 3,
                },
            ]),
            Op::Crash(vec![
                Cmd::Receive {
                    item: 0,
                    qty: 2,
                    id: 5,
                },
                Cmd::Sell {
                    item: 0,
                    qty: 1,
                    id: 4,
                },
            ]),
            Op::Restart,
        ],
        FlushBound::default(),
    )
    .unwrap();
}

/// The committer flushes on its own once the bound is reached, and not
/// before: counters wait in memory under the default bound, and are all in
/// the table after a batch that crosses a bound of 4 events.
#[test]
fn the_committer_flushes_at_its_bound() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cmds: Vec<Cmd> = (0..6)
        .map(|id| Cmd::Receive {
            item: id % 3,
            qty: 2,
            id,
        })
        .collect();
    for (bound, held) in [
        (FlushBound::default(), 3),
        (
            FlushBound {
                events: 4,
                counters: 100,
            },
            2,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::open(&Place::Dir(dir.path().to_path_buf()), bound);
        let (committer, _) = agent.committer.as_ref().unwrap();
        for c in &cmds {
            rt.block_on(committer.command(to_command(*c))).unwrap();
        }
        // One receipt per batch: at the bound of 4 the 4th batch flushes
        // all three counters, and the 5th and 6th hold back two again.
        assert_eq!(agent.db.unflushed_len(), held, "at {bound:?}");
        agent.close();
    }
}
