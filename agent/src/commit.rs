//! Group commit: the single committer that owns the write side.
//!
//! # Design constraints
//! - **One writer, many waiters.** Requests arrive on a bounded channel
//!   with a oneshot reply. The committer (a dedicated OS thread: redb and
//!   `fdatasync` block) takes the first request, drains everything else
//!   already waiting (up to `max_batch`), applies them in arrival order in
//!   ONE write transaction, commits once, then answers them all. So
//!   throughput is not bounded by one fsync per sale, and a sale's latency
//!   stays near one commit (plus at most the one in progress when it
//!   arrived).
//! - **Run ahead, but wait for the batch.** The committer thread runs at a
//!   raised priority ([`Limits::nice`], -10 by default) so that the HTTP
//!   side and anything else on a small box do not preempt it inside a
//!   commit: a commit's latency then stays near its own page writes and
//!   `fdatasync`. Since it then starts a transaction as soon as the last
//!   one returned, it first waits up to [`Limits::hold`] for the batch to
//!   regrow to the size of the one before ([`keep_holding`]), so batches
//!   stay as large as without the priority (measured: docs/benchmarks.md).
//! - **Acknowledged only when durable.** A recorded command is answered
//!   only after `commit` returned (redb `Durability::Immediate`: the data
//!   and the commit record were `fdatasync`ed). If the commit fails, every
//!   command of the batch gets an error and nothing of the batch is kept.
//! - **Each command sees the batch before it.** Commands run sequentially
//!   in the open transaction, so two sales of the last unit in one batch
//!   cannot both succeed, and a repeated id inside a batch is found.
//! - **Refusals do not wait for the disk.** A refused command wrote
//!   nothing (the core guarantees it), so it is answered at once; only an
//!   `insufficient_stock` refusal adds to the demand table, which rides on
//!   the batch's commit. A retry of an id committed by an earlier batch is
//!   answered at once too: it is already durable. A retry of an id
//!   recorded earlier in the same batch waits for the batch's commit.
//! - **Storage failure aborts the batch.** A storage error while applying
//!   any command aborts the transaction and answers every command of the
//!   batch with [`CommitError::Storage`]; clients retry with the same id.
//! - **Counters are written behind.** Commands' counter changes stay in
//!   memory (published to readers after the commit) and reach the counters
//!   table in a flush (see `crate::store`'s module docs): when
//!   [`FlushBound`]'s events or counters are waiting (by default
//!   [`MAX_UNFLUSHED_EVENTS`] and [`MAX_UNFLUSHED_COUNTERS`]), before a
//!   sync response or a dead letter is applied, on [`Job::Flush`] (the
//!   sync client's, before it reads a delta) and at shutdown. So a batch of sales writes the end pages of the event and
//!   outbox tables, not a random counter page per item.
//! - **Shutdown drains.** The thread exits when every sender is gone, after
//!   answering everything already queued and flushing the counters.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use tally_store::{StoreError, WriteTxn};
use tally_sync::message::CatalogItem;
use tally_sync::{EventId, EventKind, Refusal, SyncRequest, SyncResponse};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::{KindLabel, Metrics, ReasonLabel};
use crate::store::{
    apply_sync, dead_letter, put_catalog, AgentDb, AgentTxn, BatchCounters, SyncApplied,
};
use tally_sync::command::{execute, Command, Outcome, Stamp};

/// Flush once this many events' counter changes are waiting: bounds the
/// replay after a crash (~9 µs per event here, so ≤ ~0.6 s) and how often
/// a store under a sustained rush pays for a flush (~5 ms of CPU and a
/// large commit for 1,000 counters, which every waiting sale sits out).
pub const MAX_UNFLUSHED_EVENTS: u64 = 65_536;
/// Flush once this many counters are waiting (bounds the memory).
pub const MAX_UNFLUSHED_COUNTERS: usize = 4096;

/// Work for the committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A command of the core.
    Command(Command),
    /// Catalog items to store (import before the first sync).
    Catalog(Vec<CatalogItem>),
    /// The hub's answer to a sync request, to apply (the sync client).
    Sync(Box<SyncJob>),
    /// An event the hub will never accept: out of the outbox, into the
    /// dead-letter table.
    DeadLetter {
        /// The event.
        id: EventId,
        /// The hub's reason.
        reason: String,
    },
    /// Write every unflushed counter to the counters table (before reading
    /// a delta from it).
    Flush,
}

/// A sync exchange to apply: what was sent and what the hub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncJob {
    /// The request as sent.
    pub request: SyncRequest,
    /// The hub's answer.
    pub response: SyncResponse,
}

/// What the committer did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A command's outcome.
    Command(Outcome),
    /// Catalog items stored, and how many of them changed.
    Catalog {
        /// Items in the job.
        items: usize,
        /// Items that were new or different.
        changed: usize,
    },
    /// A sync response applied.
    Synced(SyncApplied),
    /// An event dead-lettered (`true` if it was still in the outbox).
    DeadLettered(bool),
    /// Counters flushed (how many were written).
    Flushed(usize),
}

/// Why a job got no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// Storage failed; nothing of the job's batch was kept. Retriable with
    /// the same id.
    #[error("storage failure, nothing was recorded: {0}")]
    Storage(String),
    /// The agent is shutting down.
    #[error("the agent is shutting down")]
    Closed,
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        CommitError::Storage(e.to_string())
    }
}

type Reply = oneshot::Sender<Result<Done, CommitError>>;

struct Request {
    job: Job,
    reply: Reply,
    /// When it was queued.
    queued: Instant,
}

/// Limits of the committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most jobs per transaction.
    pub max_batch: usize,
    /// Channel capacity.
    pub queue: usize,
    /// When held-back counters are flushed without being asked.
    pub flush: FlushBound,
    /// How long the committer may wait, after taking a batch's first
    /// request, for the batch to grow back to the size of the one before
    /// (see [`keep_holding`]); zero commits at once.
    pub hold: Duration,
    /// The committer thread's nice value (-20 ..= 19, lower runs first);
    /// 0 leaves it at the process's. Raising the priority (below 0) needs
    /// `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it; without them the
    /// committer logs it and runs at the process's priority.
    pub nice: i32,
}

/// How long the committer sleeps between looks at the queue while it holds
/// a batch (the kernel's timer slack, 50 µs for a normal thread, comes on
/// top).
const HOLD_STEP: Duration = Duration::from_micros(20);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 1024,
            queue: 4096,
            flush: FlushBound::default(),
            // About one raw `fdatasync` of a fast disk.
            hold: Duration::from_micros(200),
            nice: -10,
        }
    }
}

/// Whether the committer should wait for more requests before it starts
/// the transaction: while the batch is smaller than `target` (the size of
/// the batch before, capped at `max_batch` by the caller) and it has held
/// it for less than `hold`.
///
/// Why: the committer runs at a raised priority so that nothing preempts
/// it inside a commit (that is what keeps the commit's latency near one
/// `fdatasync` on a busy box). But then it also starts the next
/// transaction the moment the last one returned, before the clients it
/// just answered have sent their next sales, and under load batches
/// shrink to half and every sale pays twice the commit's fixed cost. The
/// batch just answered is the best guess of how many will be back within
/// about one round trip, so the committer waits for that many, for at most
/// `hold`. At low load (a batch of one) it never waits; when load falls,
/// one batch waits the whole `hold` and the next target is smaller.
#[must_use]
pub fn keep_holding(len: usize, target: usize, held: Duration, hold: Duration) -> bool {
    len < target && held < hold
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

/// Held-back counters are flushed once either bound is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushBound {
    /// Events whose counter changes are not in the counters table.
    pub events: u64,
    /// Counters changed since the last flush.
    pub counters: usize,
}

impl Default for FlushBound {
    fn default() -> Self {
        FlushBound {
            events: MAX_UNFLUSHED_EVENTS,
            counters: MAX_UNFLUSHED_COUNTERS,
        }
    }
}

/// A handle to submit jobs; cheap to clone. The committer stops when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
    recorded: watch::Receiver<u64>,
}

impl Committer {
    /// Starts the committer thread over `db`.
    pub fn start(
        db: Arc<AgentDb>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> std::io::Result<(Committer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let (recorded_tx, recorded) = watch::channel(0u64);
        let handle = std::thread::Builder::new()
            .name("tally-committer".into())
            .spawn(move || {
                set_nice(limits.nice);
                run(&db, &metrics, rx, limits, &recorded_tx);
            })?;
        Ok((Committer { tx, recorded }, handle))
    }

    /// Rises after every commit that appended events to the outbox: the
    /// sync client's cue to sync soon.
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.clone()
    }

    /// Submits a job and waits for its outcome (durable if recorded).
    pub async fn submit(&self, job: Job) -> Result<Done, CommitError> {
        self.enqueue(job).await?.wait().await
    }

    /// Queues a job (waiting only for room in the queue) and returns a
    /// ticket for its outcome. Jobs are applied in the order they were
    /// queued.
    pub async fn enqueue(&self, job: Job) -> Result<Ticket, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                job,
                reply,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| CommitError::Closed)?;
        Ok(Ticket(rx))
    }
}

/// The pending outcome of a queued job.
#[derive(Debug)]
pub struct Ticket(oneshot::Receiver<Result<Done, CommitError>>);

impl Ticket {
    /// Waits for the outcome (durable if recorded).
    pub async fn wait(self) -> Result<Done, CommitError> {
        self.0.await.map_err(|_| CommitError::Closed)?
    }
}

fn run(
    db: &AgentDb,
    metrics: &Metrics,
    mut rx: mpsc::Receiver<Request>,
    limits: Limits,
    recorded: &watch::Sender<u64>,
) {
    let (max_batch, flush) = (limits.max_batch.max(1), limits.flush);
    let mut rng = rand::thread_rng();
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
        if process(db, metrics, flush, batch, &mut rng) > 0 {
            recorded.send_modify(|n| *n += 1);
        }
    }
    if db.unflushed_len() > 0 {
        let (reply, _ignored) = oneshot::channel();
        let last = Request {
            job: Job::Flush,
            reply,
            queued: Instant::now(),
        };
        process(db, metrics, flush, vec![last], &mut rng);
    }
    tracing::debug!(unflushed = db.unflushed_len(), "Committer stopped.");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn refusal_reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::InsufficientStock { .. } => "insufficient_stock",
        Refusal::AlreadySold { .. } => "already_sold",
        Refusal::NotSold { .. } => "not_sold",
        Refusal::ExceedsSale { .. } => "exceeds_sale",
        Refusal::Invalid(_) => "invalid",
    }
}

/// Applies one batch in one transaction and answers every request.
/// Returns how many events it durably appended to the outbox.
fn process(
    db: &AgentDb,
    metrics: &Metrics,
    flush: FlushBound,
    batch: Vec<Request>,
    rng: &mut impl RngCore,
) -> u64 {
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
            fail(metrics, batch.into_iter().map(|r| r.reply), &e.into());
            return 0;
        }
    };
    let mut waiting: Vec<(Reply, Done, Instant)> = Vec::with_capacity(size);
    let mut jobs = batch.into_iter();
    match apply_all(&txn, db, metrics, flush, &mut jobs, rng, &mut waiting) {
        Ok(Applied { dirty: false, .. }) => {
            // Only refusals and already-durable retries: nothing to commit.
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "Aborting an empty transaction failed.");
            }
            0
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
                for (reply, done, queued) in waiting {
                    if let Done::Command(_) = done {
                        metrics
                            .durable_seconds
                            .observe(now.saturating_duration_since(queued).as_secs_f64());
                    }
                    count(metrics, &done);
                    let _ = reply.send(Ok(done));
                }
                appended
            }
            Err(e) => {
                fail(metrics, waiting.into_iter().map(|(r, ..)| r), &e.into());
                0
            }
        },
        Err((reply, e)) => {
            // Dropping the transaction aborts it: nothing of the batch stays.
            drop(txn);
            let replies = waiting
                .into_iter()
                .map(|(r, ..)| r)
                .chain(reply)
                .chain(jobs.map(|r| r.reply));
            fail(metrics, replies, &e);
            0
        }
    }
}

fn timed<T>(metrics: &Metrics, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    metrics.commit_seconds.observe(t.elapsed().as_secs_f64());
    out
}

fn fail(metrics: &Metrics, replies: impl Iterator<Item = Reply>, e: &CommitError) {
    metrics.commit_failures.inc();
    tracing::error!(error = %e, "Batch not committed.");
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

fn count(metrics: &Metrics, done: &Done) {
    if let Done::Command(Outcome::Recorded { event, new }) = done {
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

    fn finish(mut self) -> Result<(u64, BatchCounters), StoreError> {
        self.close()?;
        Ok((self.appended, self.closed))
    }
}

/// Runs the jobs in `txn`, in order. Answers refusals and already-durable
/// retries at once and pushes the rest onto `waiting`. Returns what was
/// written, or the reply of the job whose storage failed (the caller then
/// aborts and answers everything left).
fn apply_all(
    txn: &WriteTxn,
    db: &AgentDb,
    metrics: &Metrics,
    flush: FlushBound,
    jobs: &mut std::vec::IntoIter<Request>,
    rng: &mut impl RngCore,
    waiting: &mut Vec<(Reply, Done, Instant)>,
) -> Result<Applied, (Option<Reply>, CommitError)> {
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
    let mut recorded: HashSet<EventId> = HashSet::new();
    for Request { job, reply, queued } in jobs.by_ref() {
        let cmd = match job {
            Job::Catalog(items) => {
                if let Err(e) = tables.close() {
                    return Err((Some(reply), e.into()));
                }
                match put_catalog(txn, &items) {
                    Ok(changed) => waiting.push((
                        reply,
                        Done::Catalog {
                            items: items.len(),
                            changed,
                        },
                        queued,
                    )),
                    Err(e) => return Err((Some(reply), e.into())),
                }
                continue;
            }
            Job::Sync(sync) => {
                // It reads and writes the counters table and removes outbox
                // entries: both need the counters flushed first.
                if let Err(e) = tables.flush().and_then(|_| tables.close()) {
                    return Err((Some(reply), e.into()));
                }
                match apply_sync(txn, db.who(), &sync.request, &sync.response) {
                    Ok(applied) => {
                        removed += applied.acked + applied.dead_lettered as u64;
                        waiting.push((reply, Done::Synced(applied), queued));
                    }
                    Err(e) => return Err((Some(reply), e.into())),
                }
                continue;
            }
            Job::DeadLetter { id, reason } => {
                if let Err(e) = tables.flush().and_then(|_| tables.close()) {
                    return Err((Some(reply), e.into()));
                }
                match dead_letter(txn, id, &reason) {
                    Ok(was_queued) => {
                        removed += u64::from(was_queued);
                        waiting.push((reply, Done::DeadLettered(was_queued), queued));
                    }
                    Err(e) => return Err((Some(reply), e.into())),
                }
                continue;
            }
            Job::Flush => {
                match tables.flush() {
                    Ok(n) => waiting.push((reply, Done::Flushed(n), queued)),
                    Err(e) => return Err((Some(reply), e.into())),
                }
                continue;
            }
            Job::Command(cmd) => cmd,
        };
        let l = match tables.ledger() {
            Ok(l) => l,
            Err(e) => return Err((Some(reply), e.into())),
        };
        let mut random = [0u8; 10];
        rng.fill_bytes(&mut random);
        let stamp = Stamp {
            now_ms: now_ms(),
            random,
        };
        match execute(l, db.who(), &cmd, stamp) {
            Err(e) => return Err((Some(reply), e.into())),
            Ok(Outcome::Refused { refusal, demand }) => {
                demand_added |= !demand.is_empty();
                metrics
                    .refusals
                    .get_or_create(&ReasonLabel {
                        reason: refusal_reason(&refusal),
                    })
                    .inc();
                let _ = reply.send(Ok(Done::Command(Outcome::Refused { refusal, demand })));
            }
            Ok(Outcome::Recorded { event, new }) => {
                let in_batch = !new && recorded.contains(&event.id);
                if new {
                    recorded.insert(event.id);
                }
                let done = Done::Command(Outcome::Recorded { event, new });
                if new || in_batch {
                    waiting.push((reply, done, queued));
                } else {
                    // Recorded by an earlier, committed batch: durable.
                    count(metrics, &done);
                    let _ = reply.send(Ok(done));
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
            if let Err(e) = l.flush() {
                return Err((None, e.into()));
            }
        }
    }
    let (appended, counters) = tables.finish().map_err(|e| (None, e.into()))?;
    Ok(Applied {
        appended,
        removed,
        dirty: demand_added || !waiting.is_empty() || counters.flushed(),
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_batch_as_large_as_the_last_one_is_not_held() {
        assert!(!keep_holding(1, 1, Duration::ZERO, MS));
        assert!(!keep_holding(30, 25, Duration::ZERO, MS));
    }

    #[test]
    fn a_smaller_batch_is_held_until_the_hold_runs_out() {
        assert!(keep_holding(3, 25, Duration::ZERO, MS));
        assert!(keep_holding(24, 25, MS - Duration::from_nanos(1), MS));
        assert!(!keep_holding(24, 25, MS, MS));
    }

    #[test]
    fn no_hold_never_waits() {
        assert!(!keep_holding(1, 1024, Duration::ZERO, Duration::ZERO));
    }
}
