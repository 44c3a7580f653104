//! Group commit: the single committer that owns the write side.
//!
//! # Design constraints
//! - **One writer, many waiters.** Requests arrive on a bounded channel,
//!   one [`Committer`] method per kind of job, each with a oneshot reply
//!   of its own result type ([`Ticket`]). The committer (a dedicated OS thread: redb and
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
//!   sync response or a dead letter is applied, on [`Committer::flush`]
//!   (the sync client's, before it reads a delta) and at shutdown. So a batch of sales writes the end pages of the event and
//!   outbox tables, not a random counter page per item.
//! - **Shutdown drains.** The thread exits when every sender is gone, after
//!   answering everything already queued and flushing the counters.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::RngCore;
use tally_store::{StoreError, WriteTxn};
use tally_sync::clock::Clock;
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

/// Work for the committer: one kind per [`Committer`] method, each with
/// the reply channel of its own result type.
#[derive(Debug)]
enum Job {
    /// A command of the core.
    Command(Command, Reply<Outcome>),
    /// Catalog items to store (import before the first sync).
    Catalog(Vec<CatalogItem>, Reply<CatalogStored>),
    /// The hub's answer to a sync request, to apply (the sync client).
    Sync(Box<SyncJob>, Reply<SyncApplied>),
    /// An event the hub will never accept: out of the outbox, into the
    /// dead-letter table.
    DeadLetter {
        /// The event.
        id: EventId,
        /// The hub's reason.
        reason: String,
        /// Whether it was still in the outbox.
        reply: Reply<bool>,
    },
    /// Write every unflushed counter to the counters table (before reading
    /// a delta from it); answers how many were written.
    Flush(Reply<usize>),
}

impl Job {
    /// Answers the job with `e` (its batch was not committed).
    fn fail(self, e: &CommitError) {
        match self {
            Job::Command(_, reply) => answer(reply, Err(e.clone())),
            Job::Catalog(_, reply) => answer(reply, Err(e.clone())),
            Job::Sync(_, reply) => answer(reply, Err(e.clone())),
            Job::DeadLetter { reply, .. } => answer(reply, Err(e.clone())),
            Job::Flush(reply) => answer(reply, Err(e.clone())),
        }
    }
}

/// A sync exchange to apply: what was sent and what the hub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncJob {
    /// The request as sent.
    pub request: SyncRequest,
    /// The hub's answer.
    pub response: SyncResponse,
}

/// Catalog items stored, and how many of them changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogStored {
    /// Items in the job.
    pub items: usize,
    /// Items that were new or different.
    pub changed: usize,
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

type Reply<T> = oneshot::Sender<Result<T, CommitError>>;

/// Sends a job's answer; a caller that stopped waiting is not an error.
fn answer<T>(reply: Reply<T>, result: Result<T, CommitError>) {
    let _ = reply.send(result);
}

#[derive(Debug)]
struct Request {
    job: Job,
    /// When it was queued.
    queued: Instant,
}

/// A job applied in the open transaction, with its result, answered once
/// the transaction committed (or failed with it).
#[derive(Debug)]
enum Answer {
    Command(Reply<Outcome>, Outcome),
    Catalog(Reply<CatalogStored>, CatalogStored),
    Synced(Reply<SyncApplied>, SyncApplied),
    DeadLettered(Reply<bool>, bool),
    Flushed(Reply<usize>, usize),
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
                answer(reply, Ok(outcome));
            }
            Answer::Catalog(reply, stored) => answer(reply, Ok(stored)),
            Answer::Synced(reply, applied) => answer(reply, Ok(applied)),
            Answer::DeadLettered(reply, was_queued) => answer(reply, Ok(was_queued)),
            Answer::Flushed(reply, n) => answer(reply, Ok(n)),
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
        }
    }
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
    /// Starts the committer thread over `db`; commands are stamped with
    /// `clock`'s time.
    pub fn start(
        db: Arc<AgentDb>,
        metrics: Arc<Metrics>,
        limits: Limits,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<(Committer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let (recorded_tx, recorded) = watch::channel(0u64);
        let handle = std::thread::Builder::new()
            .name("tally-committer".into())
            .spawn(move || {
                set_nice(limits.nice);
                let stamps = Stamps {
                    clock: clock.as_ref(),
                    rng: rand::thread_rng(),
                };
                run(&db, &metrics, rx, limits, stamps, &recorded_tx);
            })?;
        Ok((Committer { tx, recorded }, handle))
    }

    /// Rises after every commit that appended events to the outbox: the
    /// sync client's cue to sync soon.
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.clone()
    }

    /// Runs a command of the core and waits for its outcome: recorded
    /// (durable once answered), a retried id's stored event, or refused.
    pub async fn command(&self, cmd: Command) -> Result<Outcome, CommitError> {
        self.enqueue_command(cmd).await?.wait().await
    }

    /// Queues a command (waiting only for room in the queue) and returns a
    /// ticket for its outcome. Jobs are applied in the order they were
    /// queued.
    pub async fn enqueue_command(&self, cmd: Command) -> Result<Ticket<Outcome>, CommitError> {
        self.enqueue(|reply| Job::Command(cmd, reply)).await
    }

    /// Stores catalog items; answers how many there were and how many
    /// changed.
    pub async fn catalog(&self, items: Vec<CatalogItem>) -> Result<CatalogStored, CommitError> {
        self.enqueue(|reply| Job::Catalog(items, reply))
            .await?
            .wait()
            .await
    }

    /// Applies the hub's answer to a sync request (see
    /// [`crate::store::apply_sync`]), after flushing the counters.
    pub async fn apply_sync(&self, job: SyncJob) -> Result<SyncApplied, CommitError> {
        self.enqueue(|reply| Job::Sync(Box::new(job), reply))
            .await?
            .wait()
            .await
    }

    /// Moves an event the hub refused for good out of the outbox into the
    /// dead-letter table; answers whether it was still in the outbox.
    pub async fn dead_letter(&self, id: EventId, reason: String) -> Result<bool, CommitError> {
        self.enqueue(|reply| Job::DeadLetter { id, reason, reply })
            .await?
            .wait()
            .await
    }

    /// Writes every held-back counter to the counters table; answers how
    /// many were written.
    pub async fn flush(&self) -> Result<usize, CommitError> {
        self.enqueue(Job::Flush).await?.wait().await
    }

    /// Queues the job `make` builds around its reply channel.
    async fn enqueue<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<Ticket<T>, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                job: make(reply),
                queued: Instant::now(),
            })
            .await
            .map_err(|_| CommitError::Closed)?;
        Ok(Ticket(rx))
    }
}

/// The pending outcome of a queued job.
#[derive(Debug)]
pub struct Ticket<T>(oneshot::Receiver<Result<T, CommitError>>);

impl<T> Ticket<T> {
    /// Waits for the outcome (durable if recorded).
    pub async fn wait(self) -> Result<T, CommitError> {
        self.0.await.map_err(|_| CommitError::Closed)?
    }
}

fn run(
    db: &AgentDb,
    metrics: &Metrics,
    mut rx: mpsc::Receiver<Request>,
    limits: Limits,
    mut stamps: Stamps<'_, impl RngCore>,
    recorded: &watch::Sender<u64>,
) {
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
        if process(db, metrics, flush, batch, &mut stamps) > 0 {
            recorded.send_modify(|n| *n += 1);
        }
    }
    if db.unflushed_len() > 0 {
        let (reply, _ignored) = oneshot::channel();
        let last = Request {
            job: Job::Flush(reply),
            queued: Instant::now(),
        };
        process(db, metrics, flush, vec![last], &mut stamps);
    }
    tracing::debug!(unflushed = db.unflushed_len(), "Committer stopped.");
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

fn refusal_reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::InsufficientStock { .. } => "insufficient_stock",
        Refusal::AlreadySold { .. } => "already_sold",
        Refusal::NotSold { .. } => "not_sold",
        Refusal::ExceedsSale { .. } => "exceeds_sale",
        Refusal::Invalid(_) => "invalid",
    }
}

/// An applied job waiting for its batch's commit, and when it was queued.
type Waiting = (Answer, Instant);

/// Applies one batch in one transaction and answers every request.
/// Returns how many events it durably appended to the outbox.
fn process(
    db: &AgentDb,
    metrics: &Metrics,
    flush: FlushBound,
    batch: Vec<Request>,
    stamps: &mut Stamps<'_, impl RngCore>,
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
            fail(metrics, &e.into(), Vec::new(), batch);
            return 0;
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
                for (answer, queued) in waiting {
                    answer.send(metrics, queued, now);
                }
                appended
            }
            Err(e) => {
                fail(metrics, &e.into(), waiting, Vec::new());
                0
            }
        },
        Err(e) => {
            // Dropping the transaction aborts it: nothing of the batch stays.
            drop(txn);
            fail(metrics, &e, waiting, jobs);
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
    let mut recorded: HashSet<EventId> = HashSet::new();
    for Request { job, queued } in jobs.by_ref() {
        let (cmd, reply) = match job {
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
                let applied = tables
                    .flush_and_close()
                    .and_then(|()| apply_sync(txn, db.who(), &sync.request, &sync.response));
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
            Job::Flush(reply) => {
                let (reply, n) = settle(tables.flush(), reply)?;
                waiting.push((Answer::Flushed(reply, n), queued));
                continue;
            }
            Job::Command(cmd, reply) => (cmd, reply),
        };
        let stamp = stamps.next();
        let outcome = tables
            .ledger()
            .and_then(|l| execute(l, db.who(), &cmd, stamp));
        match settle(outcome, reply)? {
            (reply, Outcome::Refused { refusal, demand }) => {
                demand_added |= !demand.is_empty();
                metrics
                    .refusals
                    .get_or_create(&ReasonLabel {
                        reason: refusal_reason(&refusal),
                    })
                    .inc();
                answer(reply, Ok(Outcome::Refused { refusal, demand }));
            }
            (reply, Outcome::Recorded { event, new }) => {
                let in_batch = !new && recorded.contains(&event.id);
                if new {
                    recorded.insert(event.id);
                }
                let outcome = Outcome::Recorded { event, new };
                if new || in_batch {
                    waiting.push((Answer::Command(reply, outcome), queued));
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
