//! The committer thread: takes the first waiting job and everything
//! queued behind it (holding up to [`Limits::hold`] for the batch to regrow,
//! see [`keep_holding`]), applies them in order in ONE write transaction,
//! commits once (one `fdatasync`), then answers them all; refusals and
//! already-durable retries are answered at once. The design constraints
//! are [`crate::commit`]'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_service::vital::Vital;

use rand::RngCore;
use tally_store::{StoreError, WriteTxn};
use tally_sync::clock::Clock;
use tally_sync::command::{
    execute_with, merge_allocations, merge_transfers, Command, Outcome, Overrides, Stamp,
};
use tally_sync::fulfilment::OrderAllocation;
use tally_sync::rights::{apply_grant, release};
use tally_sync::{ByReason, EventId, EventKind, Lost, Refusal};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    answer, keep_holding, CatalogStored, CommitError, FlushBound, Job, Limits, Released, Reply,
    Request, Rerun,
};
use crate::metrics::{KindLabel, Metrics, ReasonLabel};
use crate::store::{
    add_lost, apply_sync, dead_letter, note_refused, put_catalog, refused_before, settle_lost,
    unsynced, AgentDb, AgentTxn, BatchCounters, CountDone, SyncApplied,
};

/// How long the committer sleeps between looks at the queue while it holds
/// a batch (the kernel's timer slack, 50 µs for a normal thread, comes on
/// top).
const HOLD_STEP: Duration = Duration::from_micros(20);

/// Starts the thread over `db`: it takes jobs from `rx` until every
/// sender is gone, stamps commands with `clock`'s time and bumps
/// `recorded` after each commit that appended to the outbox.
pub(super) fn spawn(
    db: Arc<AgentDb>,
    metrics: Arc<Metrics>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    rx: mpsc::Receiver<Request>,
    recorded: watch::Sender<u64>,
) -> std::io::Result<Vital> {
    tally_service::vital::spawn_checked("tally-committer", move || {
        set_nice(limits.nice);
        let stamps = Stamps {
            clock: clock.as_ref(),
            rng: rand::thread_rng(),
        };
        run(&db, &metrics, rx, limits, stamps, &recorded)
    })
}

/// Sets the calling thread's nice value, or logs why it could not.
fn set_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), nice) {
        Ok(()) => tracing::debug!(nice, "Committer thread priority set."),
        Err(e) => tracing::info!(
            nice,
            error = %e,
            "Committer thread stays at the process's priority (raising it needs \
             CAP_SYS_NICE or RLIMIT_NICE, e.g. systemd's LimitNICE=)."
        ),
    }
}

/// A job applied in the open transaction, with its result, answered once
/// the transaction committed (or failed with it).
#[derive(Debug)]
enum Answer {
    Command(Reply<Outcome>, Box<Outcome>),
    Catalog(Reply<CatalogStored>, CatalogStored),
    Synced(Reply<SyncApplied>, SyncApplied),
    DeadLettered(Reply<bool>, bool),
    Flushed(Reply<usize>, usize),
    Released(Reply<Released>, Released),
    Allocations(Reply<Vec<OrderAllocation>>, Vec<OrderAllocation>),
    Counted(Reply<CountDone>, CountDone),
    Lost(Reply<()>),
}

impl Answer {
    /// Answers with the result: the batch committed.
    fn send(self, metrics: &Metrics, queued: Instant, now: Instant) {
        match self {
            Answer::Command(reply, outcome) => {
                metrics
                    .durable_seconds
                    .observe(now.saturating_duration_since(queued).as_secs_f64());
                count(metrics, &outcome);
                answer(reply, Ok(*outcome));
            }
            Answer::Catalog(reply, stored) => answer(reply, Ok(stored)),
            Answer::Synced(reply, applied) => answer(reply, Ok(applied)),
            Answer::DeadLettered(reply, was_queued) => answer(reply, Ok(was_queued)),
            Answer::Flushed(reply, n) => answer(reply, Ok(n)),
            Answer::Released(reply, r) => answer(reply, Ok(r)),
            Answer::Allocations(reply, changed) => answer(reply, Ok(changed)),
            Answer::Counted(reply, done) => answer(reply, Ok(done)),
            Answer::Lost(reply) => answer(reply, Ok(())),
        }
    }

    /// Answers with `e` instead: the batch was not committed.
    fn fail(self, e: &CommitError) {
        match self {
            Answer::Command(reply, _) => answer(reply, Err(e.clone())),
            Answer::Catalog(reply, _) => answer(reply, Err(e.clone())),
            Answer::Synced(reply, _) => answer(reply, Err(e.clone())),
            Answer::DeadLettered(reply, _) => answer(reply, Err(e.clone())),
            Answer::Flushed(reply, _) => answer(reply, Err(e.clone())),
            Answer::Released(reply, _) => answer(reply, Err(e.clone())),
            Answer::Allocations(reply, _) => answer(reply, Err(e.clone())),
            Answer::Counted(reply, _) => answer(reply, Err(e.clone())),
            Answer::Lost(reply) => answer(reply, Err(e.clone())),
        }
    }
}

fn run(
    db: &AgentDb,
    metrics: &Metrics,
    mut rx: mpsc::Receiver<Request>,
    limits: Limits,
    mut stamps: Stamps<'_, impl RngCore>,
    recorded: &watch::Sender<u64>,
) -> Result<(), String> {
    let (max_batch, flush) = (limits.max_batch.max(1), limits.flush);
    let mut target = 1;
    while let Some(first) = rx.blocking_recv() {
        let taken = Instant::now();
        let mut batch = vec![first];
        loop {
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let held = taken.elapsed();
            if !keep_holding(batch.len(), target, held, limits.hold) {
                break;
            }
            std::thread::sleep(HOLD_STEP.min(limits.hold.saturating_sub(held)));
        }
        target = batch.len();
        match process(db, metrics, flush, batch, &mut stamps) {
            Ok(0) => {}
            Ok(_) => recorded.send_modify(|n| *n += 1),
            Err(fatal) => return Err(fatal.give_up()),
        }
    }
    if db.unflushed_len() > 0 {
        let (reply, _ignored) = oneshot::channel();
        let last = Request {
            job: Job::Flush(reply),
            queued: Instant::now(),
        };
        if let Err(fatal) = process(db, metrics, flush, vec![last], &mut stamps) {
            return Err(fatal.give_up());
        }
    }
    tracing::debug!(unflushed = db.unflushed_len(), "Committer stopped.");
    Ok(())
}

/// A write transaction that could not begin or commit. redb takes a
/// failed commit's I/O error as the end of the open database (every
/// later transaction fails with it), so the committer stops: the agent
/// exits non-zero, its service manager starts it again, and opening the
/// database recovers its last durable commit and replays the journal.
/// Before, the agent stayed up refusing every sale until someone
/// restarted it by hand.
#[derive(Debug)]
struct Fatal(CommitError);

impl Fatal {
    fn give_up(self) -> String {
        format!(
            "the database failed to commit ({}); stopping so that the agent is restarted and the database recovered",
            self.0
        )
    }
}

/// Where commands' stamps come from: the injected wall clock and the
/// committer's randomness (event ids).
struct Stamps<'c, R> {
    clock: &'c dyn Clock,
    rng: R,
}

impl<R: RngCore> Stamps<'_, R> {
    fn next(&mut self) -> Stamp {
        let mut random = [0u8; 10];
        self.rng.fill_bytes(&mut random);
        Stamp {
            now_ms: self.clock.now_ms(),
            random,
        }
    }
}

/// An applied job waiting for its batch's commit, and when it was queued.
type Waiting = (Answer, Instant);

/// Applies one batch in one transaction and answers every request.
/// Returns how many events it durably appended to the outbox, or
/// [`Fatal`] if the transaction could not begin or commit (the batch
/// answered with the failure).
fn process(
    db: &AgentDb,
    metrics: &Metrics,
    flush: FlushBound,
    batch: Vec<Request>,
    stamps: &mut Stamps<'_, impl RngCore>,
) -> Result<u64, Fatal> {
    let started = Instant::now();
    let size = batch.len();
    for r in &batch {
        metrics
            .queue_seconds
            .observe(started.saturating_duration_since(r.queued).as_secs_f64());
    }
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let e = CommitError::from(e);
            fail(metrics, &e, Vec::new(), batch);
            return Err(Fatal(e));
        }
    };
    let mut waiting: Vec<Waiting> = Vec::with_capacity(size);
    let mut jobs = batch.into_iter();
    match apply_all(&txn, db, metrics, flush, &mut jobs, stamps, &mut waiting) {
        Ok(Applied { dirty: false, .. }) => {
            // Only refusals and already-durable retries: nothing to commit.
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "Aborting an empty transaction failed.");
            }
            Ok(0)
        }
        Ok(Applied {
            appended,
            removed,
            counters,
            ..
        }) => match timed(metrics, || txn.commit()) {
            Ok(()) => {
                if counters.flushed() {
                    metrics.counter_flushes.inc();
                }
                // Readers see the batch's counters before anyone hears of it.
                db.publish(counters);
                metrics.set_unflushed(db.unflushed_len());
                metrics
                    .batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_size.observe(size as f64);
                metrics.set_outbox_depth(
                    metrics
                        .outbox_depth()
                        .saturating_add(appended)
                        .saturating_sub(removed),
                );
                let now = Instant::now();
                for (answer, queued) in waiting {
                    answer.send(metrics, queued, now);
                }
                Ok(appended)
            }
            Err(e) => {
                let e = CommitError::from(e);
                fail(metrics, &e, waiting, Vec::new());
                Err(Fatal(e))
            }
        },
        Err(e) => {
            // Dropping the transaction aborts it: nothing of the batch
            // stays, and the database is as it was (a record that would
            // not decode, a refused write): later batches go on.
            drop(txn);
            fail(metrics, &e, waiting, jobs);
            Ok(0)
        }
    }
}

fn timed<T>(metrics: &Metrics, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    metrics.commit_seconds.observe(t.elapsed().as_secs_f64());
    out
}

/// Answers a batch that was not committed: the jobs it applied and the
/// ones it did not reach.
fn fail(
    metrics: &Metrics,
    e: &CommitError,
    applied: Vec<Waiting>,
    left: impl IntoIterator<Item = Request>,
) {
    metrics.commit_failures.inc();
    tracing::error!(error = %e, "Batch not committed.");
    for (answer, _) in applied {
        answer.fail(e);
    }
    for r in left {
        r.job.fail(e);
    }
}

fn count(metrics: &Metrics, outcome: &Outcome) {
    if let Outcome::Recorded { event, new } = outcome {
        if *new {
            metrics
                .events
                .get_or_create(&KindLabel {
                    kind: event.kind.name(),
                })
                .inc();
            if matches!(event.kind, EventKind::Sale { .. }) {
                metrics.sales.inc();
            }
        } else {
            metrics.duplicates.inc();
        }
    }
}

/// What [`apply_all`] wrote.
struct Applied {
    /// Outbox entries appended.
    appended: u64,
    /// Outbox entries removed (acknowledged by the hub or dead-lettered).
    removed: u64,
    /// Whether anything was written (else the transaction is not committed).
    dirty: bool,
    /// The counters the batch changed and did not flush.
    counters: BatchCounters,
}

/// The agent's tables in the open transaction, opened on first use and
/// closed around jobs that write the shared tables themselves; the batch's
/// counters and appended-event count carry across.
struct Tables<'t> {
    txn: &'t WriteTxn,
    db: &'t AgentDb,
    open: Option<AgentTxn<'t>>,
    closed: BatchCounters,
    appended: u64,
}

impl<'t> Tables<'t> {
    fn ledger(&mut self) -> Result<&mut AgentTxn<'t>, StoreError> {
        let l = match self.open.take() {
            Some(l) => l,
            None => AgentTxn::open(self.txn, self.db, std::mem::take(&mut self.closed))?,
        };
        Ok(self.open.insert(l))
    }

    fn close(&mut self) -> Result<(), StoreError> {
        if let Some(l) = self.open.take() {
            let (appended, batch) = l.close()?;
            self.appended += appended;
            self.closed = batch;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<usize, StoreError> {
        self.ledger()?.flush()
    }

    /// Flushes and closes the tables: before a job that reads and writes
    /// the counters table or removes outbox entries.
    fn flush_and_close(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.close()
    }

    fn finish(mut self) -> Result<(u64, BatchCounters), StoreError> {
        self.close()?;
        Ok((self.appended, self.closed))
    }
}

/// A job's storage step: its result and reply channel, to answer after
/// the commit, or (the job answered with it) the error that fails the
/// batch.
fn settle<T>(result: Result<T, StoreError>, reply: Reply<T>) -> Result<(Reply<T>, T), CommitError> {
    match result {
        Ok(v) => Ok((reply, v)),
        Err(e) => {
            let e = CommitError::from(e);
            answer(reply, Err(e.clone()));
            Err(e)
        }
    }
}

/// Runs the jobs in `txn`, in order. Answers refusals and already-durable
/// retries at once and pushes the rest onto `waiting`. Returns what was
/// written, or the error that fails the batch (the job it came from is
/// answered; the caller then aborts and answers everything left).
fn apply_all(
    txn: &WriteTxn,
    db: &AgentDb,
    metrics: &Metrics,
    flush: FlushBound,
    jobs: &mut std::vec::IntoIter<Request>,
    stamps: &mut Stamps<'_, impl RngCore>,
    waiting: &mut Vec<Waiting>,
) -> Result<Applied, CommitError> {
    // The agent's tables stay open across consecutive commands; a catalog
    // or sync job needs them closed (it writes the shared metadata table).
    let mut tables = Tables {
        txn,
        db,
        open: None,
        closed: BatchCounters::default(),
        appended: 0,
    };
    let mut removed = 0u64;
    let mut demand_added = false;
    // The batch's lost sales, written once at its end.
    let mut lost = ByReason::<Lost>::default();
    let mut recorded: HashSet<EventId> = HashSet::new();
    for Request { job, queued } in jobs.by_ref() {
        // `granted`: this job merged a grant.
        let (run, reply, rerun, granted) = match job {
            Job::Catalog(items, reply) => {
                let stored = tables.close().and_then(|()| {
                    Ok(CatalogStored {
                        items: items.len(),
                        changed: put_catalog(txn, &items)?,
                    })
                });
                let (reply, stored) = settle(stored, reply)?;
                waiting.push((Answer::Catalog(reply, stored), queued));
                continue;
            }
            Job::Sync(sync, reply) => {
                // It reads and writes the counters table and removes outbox
                // entries: both need the counters flushed first.
                let now_ms = stamps.clock.now_ms();
                let applied = tables.flush_and_close().and_then(|()| {
                    let applied = apply_sync(txn, db.who(), &sync.request, &sync.response)?;
                    // Refused sales whose grace is over count as lost now
                    // (reported with the next sync), unless recorded.
                    let settled =
                        settle_lost(txn, now_ms, |id| Ok(txn.replica()?.event(&id)?.is_some()))?;
                    lost.add(&settled);
                    Ok(applied)
                });
                let (reply, applied) = settle(applied, reply)?;
                removed += applied.acked + applied.dead_lettered as u64;
                waiting.push((Answer::Synced(reply, applied), queued));
                continue;
            }
            Job::DeadLetter { id, reason, reply } => {
                let was_queued = tables
                    .flush_and_close()
                    .and_then(|()| dead_letter(txn, id, &reason));
                let (reply, was_queued) = settle(was_queued, reply)?;
                removed += u64::from(was_queued);
                waiting.push((Answer::DeadLettered(reply, was_queued), queued));
                continue;
            }
            Job::Release {
                gtin,
                units,
                seen,
                reply,
            } => {
                // It moves a counter outside a command: flushed first.
                let released = tables.flush_and_close().and_then(|()| {
                    let unsynced = unsynced(txn)?;
                    let mut replica = txn.replica()?;
                    let done = release(&mut replica, db.who(), gtin, units, &seen, &unsynced)?;
                    Ok(Released {
                        units: done.given,
                        unexplained: done.unexplained,
                        own: done.own,
                    })
                });
                let (reply, released) = settle(released, reply)?;
                waiting.push((Answer::Released(reply, released), queued));
                continue;
            }
            Job::LostSale {
                reason,
                units,
                sale,
                reply,
            } => {
                let reply = match sale {
                    Some(sale) => {
                        let noted = note_refused(txn, sale.id, reason, units, sale.at_ms);
                        settle(noted, reply)?.0
                    }
                    None => {
                        lost.get_mut(reason).add_sale(units);
                        reply
                    }
                };
                waiting.push((Answer::Lost(reply), queued));
                continue;
            }
            Job::Flush(reply) => {
                let (reply, n) = settle(tables.flush(), reply)?;
                waiting.push((Answer::Flushed(reply, n), queued));
                continue;
            }
            Job::Allocations(page, reply) => {
                let changed = tables.ledger().and_then(|l| {
                    let changed = merge_allocations(l, &page.allocations)?;
                    let transfers = merge_transfers(l, &page.transfers)?;
                    for t in &transfers {
                        tracing::info!(transfer_id = %t.transfer_id, from = %t.from, to = %t.to, status = t.status.name(), "Transfer from the hub.");
                    }
                    l.set_allocations_cursor(page.cursor)?;
                    Ok(changed)
                });
                let (reply, changed) = settle(changed, reply)?;
                waiting.push((Answer::Allocations(reply, changed), queued));
                continue;
            }
            Job::Count(job, reply) => {
                let now_ms = stamps.clock.now_ms();
                let done = tables.ledger().and_then(|l| l.count(&job, now_ms));
                let (reply, done) = settle(done, reply)?;
                waiting.push((Answer::Counted(reply, done), queued));
                continue;
            }
            Job::Granted(grant, rerun, reply) => {
                // A grant moves counters outside a command: flushed first,
                // like a sync, then merged where the command reads it.
                let merged = tables.flush_and_close().and_then(|()| {
                    let mut replica = txn.replica()?;
                    apply_grant(&mut replica, db.who(), &grant)
                });
                match merged {
                    // Answered after the commit even if the grant changed
                    // nothing here (an earlier job of the batch, a sync,
                    // may have merged it): it is durable when heard.
                    Ok(_) => (rerun, reply, true, true),
                    Err(e) => {
                        let e = CommitError::from(e);
                        answer(reply, Err(e.clone()));
                        return Err(e);
                    }
                }
            }
            Job::Command(cmd, overrides, reply) => (
                Rerun {
                    cmd,
                    first_demand: Vec::new(),
                    overrides,
                },
                reply,
                false,
                false,
            ),
            Job::Rerun(rerun, reply) => (rerun, reply, true, false),
        };
        let Rerun {
            cmd,
            first_demand,
            overrides,
        } = run;
        let stamp = stamps.next();
        let outcome = tables.ledger().and_then(|l| {
            let outcome = execute_with(l, db.who(), &cmd, stamp, overrides)?;
            if let Outcome::Refused { demand, .. } = &outcome {
                // Counted when the sale was first refused: a sale that
                // went through rights on demand, or a till's retry under
                // the sale's id, is one customer's demand, however many
                // rounds it took.
                let again = rerun
                    || match &cmd {
                        Command::Sale { id: Some(id), .. } if !demand.is_empty() => {
                            refused_before(txn, *id)?
                        }
                        _ => false,
                    };
                if again {
                    for s in demand {
                        l.take_back_demand(s.gtin, s.units)?;
                    }
                }
            }
            if let Outcome::Recorded { new: true, .. } = &outcome {
                // Rights on demand let it through: the first refusal's
                // demand is met.
                for s in &first_demand {
                    l.take_back_demand(s.gtin, s.units)?;
                }
            }
            Ok(outcome)
        });
        match settle(outcome, reply)? {
            (reply, Outcome::Refused { refusal, demand }) => {
                demand_added |= !demand.is_empty();
                // A held override's refusal is a step, not an answer.
                if overrides == Overrides::Apply {
                    metrics
                        .refusals
                        .get_or_create(&ReasonLabel {
                            reason: Refusal::code(&refusal),
                        })
                        .inc();
                }
                let outcome = Outcome::Refused { refusal, demand };
                if granted {
                    // The grant is in the batch: the refusal (what the
                    // hub's view left) is answered once it is durable, so
                    // whoever hears it reads the grant.
                    waiting.push((Answer::Command(reply, Box::new(outcome)), queued));
                } else {
                    answer(reply, Ok(outcome));
                }
            }
            (reply, Outcome::Recorded { event, new }) => {
                let in_batch = !new && recorded.contains(&event.id);
                if new {
                    recorded.insert(event.id);
                }
                let outcome = Outcome::Recorded { event, new };
                if new || in_batch {
                    waiting.push((Answer::Command(reply, Box::new(outcome)), queued));
                } else {
                    // Recorded by an earlier, committed batch: durable.
                    count(metrics, &outcome);
                    answer(reply, Ok(outcome));
                }
            }
        }
    }
    // Checked when the batch ended on a command (the tables are open);
    // otherwise the next batch checks.
    if let Some(l) = tables.open.as_mut() {
        let (events, counters) = l.unflushed();
        if events >= flush.events || counters >= flush.counters {
            // Rides on this batch's commit; a failure here fails the batch.
            l.flush()?;
        }
    }
    let (appended, counters) = tables.finish()?;
    if lost != ByReason::default() {
        add_lost(txn, &lost)?;
    }
    Ok(Applied {
        appended,
        removed,
        dirty: demand_added || !waiting.is_empty() || counters.flushed(),
        counters,
    })
}
