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
//! - **Shutdown drains.** The thread exits when every sender is gone, after
//!   answering everything already queued.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use tally_store::{StoreError, WriteTxn};
use tally_sync::message::CatalogItem;
use tally_sync::{EventId, EventKind, Refusal};
use tokio::sync::{mpsc, oneshot};

use crate::core::{execute, Command, Outcome, Stamp};
use crate::metrics::{KindLabel, Metrics, ReasonLabel};
use crate::store::{put_catalog, AgentDb, AgentTxn};

/// Work for the committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A command of the core.
    Command(Command),
    /// Catalog items to store (import before the first sync).
    Catalog(Vec<CatalogItem>),
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
}

/// Limits of the committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most jobs per transaction.
    pub max_batch: usize,
    /// Channel capacity.
    pub queue: usize,
}

/// A handle to submit jobs; cheap to clone. The committer stops when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committer thread over `db`.
    pub fn start(
        db: Arc<AgentDb>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> std::io::Result<(Committer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let handle = std::thread::Builder::new()
            .name("tally-committer".into())
            .spawn(move || run(&db, &metrics, rx, limits.max_batch.max(1)))?;
        Ok((Committer { tx }, handle))
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
            .send(Request { job, reply })
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

fn run(db: &AgentDb, metrics: &Metrics, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    let mut rng = rand::thread_rng();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        process(db, metrics, batch, &mut rng);
    }
    tracing::debug!("Committer stopped.");
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
        Refusal::Invalid(_) => "invalid",
    }
}

/// Applies one batch in one transaction and answers every request.
fn process(db: &AgentDb, metrics: &Metrics, batch: Vec<Request>, rng: &mut impl RngCore) {
    let started = Instant::now();
    let size = batch.len();
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => return fail(metrics, batch.into_iter().map(|r| r.reply), &e.into()),
    };
    let mut waiting: Vec<(Reply, Done)> = Vec::with_capacity(size);
    let mut jobs = batch.into_iter();
    match apply_all(&txn, db, metrics, &mut jobs, rng, &mut waiting) {
        Ok(Applied { dirty: false, .. }) => {
            // Only refusals and already-durable retries: nothing to commit.
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "Aborting an empty transaction failed.");
            }
        }
        Ok(Applied { appended, .. }) => match timed(metrics, || txn.commit()) {
            Ok(()) => {
                metrics
                    .batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_size.observe(size as f64);
                metrics.set_outbox_depth(metrics.outbox_depth().saturating_add(appended));
                for (reply, done) in waiting {
                    count(metrics, &done);
                    let _ = reply.send(Ok(done));
                }
            }
            Err(e) => fail(metrics, waiting.into_iter().map(|(r, _)| r), &e.into()),
        },
        Err((reply, e)) => {
            // Dropping the transaction aborts it: nothing of the batch stays.
            drop(txn);
            let replies = waiting
                .into_iter()
                .map(|(r, _)| r)
                .chain(std::iter::once(reply))
                .chain(jobs.map(|r| r.reply));
            fail(metrics, replies, &e);
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
    /// Whether anything was written (else the transaction is not committed).
    dirty: bool,
}

/// Runs the jobs in `txn`, in order. Answers refusals and already-durable
/// retries at once and pushes the rest onto `waiting`. Returns what was
/// written, or the reply of the job whose storage failed (the caller then
/// aborts and answers everything left).
fn apply_all(
    txn: &WriteTxn,
    db: &AgentDb,
    metrics: &Metrics,
    jobs: &mut std::vec::IntoIter<Request>,
    rng: &mut impl RngCore,
    waiting: &mut Vec<(Reply, Done)>,
) -> Result<Applied, (Reply, CommitError)> {
    // The agent's tables stay open across consecutive commands; a catalog
    // job needs them closed (it writes the shared metadata table).
    let mut ledger: Option<AgentTxn<'_>> = None;
    let mut appended = 0u64;
    let mut demand_added = false;
    let mut recorded: HashSet<EventId> = HashSet::new();
    for Request { job, reply } in jobs.by_ref() {
        let cmd = match job {
            Job::Catalog(items) => {
                if let Some(l) = ledger.take() {
                    appended += l.appended();
                }
                match put_catalog(txn, &items) {
                    Ok(changed) => waiting.push((
                        reply,
                        Done::Catalog {
                            items: items.len(),
                            changed,
                        },
                    )),
                    Err(e) => return Err((reply, e.into())),
                }
                continue;
            }
            Job::Command(cmd) => cmd,
        };
        if ledger.is_none() {
            match AgentTxn::open(txn) {
                Ok(l) => ledger = Some(l),
                Err(e) => return Err((reply, e.into())),
            }
        }
        let Some(l) = ledger.as_mut() else {
            continue; // just opened above
        };
        let mut random = [0u8; 10];
        rng.fill_bytes(&mut random);
        let stamp = Stamp {
            now_ms: now_ms(),
            random,
        };
        match execute(l, db.who(), &cmd, stamp) {
            Err(e) => return Err((reply, e.into())),
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
                    waiting.push((reply, done));
                } else {
                    // Recorded by an earlier, committed batch: durable.
                    count(metrics, &done);
                    let _ = reply.send(Ok(done));
                }
            }
        }
    }
    if let Some(l) = ledger {
        appended += l.appended();
    }
    Ok(Applied {
        appended,
        dirty: demand_added || !waiting.is_empty(),
    })
}
