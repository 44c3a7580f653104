//! The single writer: a dedicated thread that takes every waiting write
//! request into one durable transaction (group commit), and the typed
//! [`Writer`] handle to submit them: one method per kind of write, each
//! with its own result type.
//!
//! # Design constraints
//! - redb has one write transaction at a time and each commit is an
//!   fsync; one fsync per sync would cap the hub at a few hundred syncs per
//!   second. The writer takes the first waiting request and every other
//!   one already queued (up to `max_batch`), runs them in order in one
//!   transaction ([`HubStorage::write_batch`]) and answers all of them
//!   after the commit returns, so a 2xx always means "on disk".
//! - One queue holds every kind of write, in arrival order: a queued job
//!   knows its input, the [`HubWrite`] method to run it with and its own
//!   typed reply channel, so no answer can come back as the wrong kind.
//! - A batch that lost a race with another writer of the same database
//!   ([`StorageError::is_retriable`]: several hub processes over
//!   PostgreSQL) runs again, whole, a few times before it fails.
//! - A job whose own write fails (a non-retriable storage error from its
//!   write, not from the commit) is answered with it, and the rest of
//!   its batch runs again without it: one request's failure is not every
//!   request's.
//! - A storage failure of the batch itself (the commit) answers every
//!   job with a retriable [`WriteError::Storage`] once the transaction is
//!   aborted; results of jobs that ran before the failure are dropped
//!   with it.
//! - Storage is synchronous; it runs here, never on the async workers.
//! - The thread stops when every [`Writer`] handle is dropped, after
//!   finishing what was queued.

use std::sync::Arc;
use tally_service::vital::Vital;

use tally_sync::exchange::{Held, Identity};
use tally_sync::message::CatalogItem;
use tally_sync::rights::{RightsReleased, RightsRequest};
use tally_sync::{EventId, LocationId, Shortage, SyncRequest};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::metrics::Metrics;
use crate::storage::held::AdmitResult;
use crate::storage::routed::{CancelResult, RoutedOrderRequest, RoutedResult};
use crate::storage::{
    CatalogResult, GrantResult, HubStorage, HubWrite, OrderRequest, OrderResult, ReleaseResult,
    StorageError, SyncResult,
};

/// Why a write got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Storage failed; nothing of the batch was committed. Retriable.
    #[error("storage failure (nothing was written; retry): {0}")]
    Storage(String),
    /// The batch's commit was not confirmed: it may have been written.
    /// Retriable under the same ids (a sync, a grant, an order with its
    /// `order_id` are answered alike whichever way it went).
    #[error("the write may or may not have been committed (retry under the same ids): {0}")]
    Unknown(String),
    /// The writer has stopped (the hub is shutting down). Retriable.
    #[error("the hub is shutting down")]
    Stopped,
}

/// A handle to submit writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    /// Whether the writer thread still runs (a write queued as it stopped
    /// is never answered: `tally_service::vital::answered`).
    alive: tally_service::vital::Alive,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread over `storage`. Returns the handle and the
    /// thread, to join after every handle is dropped (or to watch: its
    /// panic must stop the hub).
    pub fn start(
        storage: Arc<dyn HubStorage>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        queue: usize,
    ) -> std::io::Result<(Writer, Vital)> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let thread = tally_service::vital::spawn_checked("tally-hub-writer", move || {
            run(storage, metrics, rx, max_batch.max(1))
        })?;
        let alive = thread.alive();
        Ok((Writer { tx, alive }, thread))
    }

    /// Submits a store's sync (`who` from its certificate, `holds_at` the
    /// hub's rights at a location held for waiting orders, read when the
    /// sync runs, `now_ms` the hub's clock, Unix ms) and waits until it is
    /// committed or refused.
    pub async fn sync(
        &self,
        who: Identity,
        req: SyncRequest,
        holds_at: HoldsAt,
        now_ms: u64,
    ) -> Result<SyncResult, WriteError> {
        self.submit(
            (who, req, holds_at, now_ms),
            |txn, (who, req, holds_at, now_ms)| {
                txn.sync(who, req, &holds_at(&who.location), *now_ms)
            },
        )
        .await
    }

    /// Submits an online order and waits until it is committed or refused.
    pub async fn order(&self, order: OrderRequest) -> Result<OrderResult, WriteError> {
        self.submit(order, |txn, order| txn.order(order)).await
    }

    /// Submits catalog items to add or change and waits until they are
    /// committed.
    pub async fn catalog(&self, items: Vec<CatalogItem>) -> Result<CatalogResult, WriteError> {
        self.submit(items, |txn, items| txn.catalog(items)).await
    }

    /// A store's request for the hub's rights at its location, keeping
    /// back those held for waiting orders (`holds_at`, read when the
    /// grant runs); answered after the commit.
    pub async fn grant(
        &self,
        who: Identity,
        req: RightsRequest,
        holds_at: HoldsAt,
    ) -> Result<GrantResult, WriteError> {
        self.submit((who, req, holds_at), |txn, (who, req, holds_at)| {
            let hold_back = holds_at(&who.location).get(&req.gtin).copied().unwrap_or(0);
            txn.grant(who, req, hold_back)
        })
        .await
    }

    /// A store's report of rights it released, merged alone (no order
    /// waits for it).
    pub async fn release(
        &self,
        who: Identity,
        released: RightsReleased,
    ) -> Result<ReleaseResult, WriteError> {
        self.submit((who, released), |txn, (who, released)| {
            txn.release(who, released)
        })
        .await
    }

    /// A store's reports of rights it released for `order` (one per
    /// item), merged, then the order, in one transaction: nothing can take
    /// the released rights in between. Answers each report's result, in
    /// order, and the order's.
    pub async fn order_after_releases(
        &self,
        reports: Vec<(Identity, RightsReleased)>,
        order: OrderRequest,
    ) -> Result<(Vec<ReleaseResult>, OrderResult), WriteError> {
        self.submit((reports, order), |txn, (reports, order)| {
            let mut merged = Vec::with_capacity(reports.len());
            for (who, released) in reports {
                merged.push(txn.release(who, released)?);
            }
            Ok((merged, txn.order(order)?))
        })
        .await
    }

    /// Counts an online order refused for `reason` at `now_ms` (hub
    /// clock) in `store`'s record; answers whether the store is known (it
    /// synced), after the commit.
    pub async fn order_refused(
        &self,
        store: LocationId,
        reason: Shortage,
        now_ms: u64,
    ) -> Result<bool, WriteError> {
        self.submit((store, reason, now_ms), |txn, (store, reason, now_ms)| {
            txn.order_refused(store, *reason, *now_ms)
        })
        .await
    }

    /// Admits the held event `id` (HQ reviewed it; `now_ms` the hub's
    /// clock) and waits until it is committed or refused.
    pub async fn admit_held(&self, id: EventId, now_ms: u64) -> Result<AdmitResult, WriteError> {
        self.submit((id, now_ms), |txn, (id, now_ms)| {
            txn.admit_held(*id, *now_ms)
        })
        .await
    }

    /// Routes and records an order that names no store; waits until it is
    /// committed or refused.
    pub async fn route_order(&self, o: RoutedOrderRequest) -> Result<RoutedResult, WriteError> {
        self.submit(o, |txn, o| txn.route_order(o)).await
    }

    /// Checks a store's return chain-wide and claims its units; answers
    /// after the commit.
    pub async fn check_return(
        &self,
        req: tally_sync::returns::ReturnCheckRequest,
        store: tally_sync::LocationId,
        now_ms: u64,
    ) -> Result<crate::storage::returns::CheckResult, WriteError> {
        self.submit((req, store, now_ms), |txn, (req, store, now)| {
            txn.check_return(req, store, *now)
        })
        .await
    }

    /// HQ acknowledges exception `id`; answers after the commit.
    pub async fn acknowledge_exception(
        &self,
        id: u64,
        by: String,
        note: String,
        now_ms: u64,
    ) -> Result<crate::storage::AckResult, WriteError> {
        self.submit((id, by, note, now_ms), |txn, (id, by, note, now)| {
            txn.acknowledge_exception(*id, by, note, *now)
        })
        .await
    }

    /// Raises `transfer_overdue` for transfers in transit longer than
    /// `overdue_ms`; answers how many, after the commit.
    pub async fn flag_overdue_transfers(
        &self,
        now_ms: u64,
        overdue_ms: u64,
    ) -> Result<usize, WriteError> {
        self.submit((now_ms, overdue_ms), |txn, (now, limit)| {
            txn.flag_overdue_transfers(*now, *limit)
        })
        .await
    }

    /// Cancels a routed order; waits until it is committed.
    pub async fn cancel_order(
        &self,
        order_id: String,
        seed: [u8; 10],
        now_ms: u64,
    ) -> Result<CancelResult, WriteError> {
        self.submit((order_id, seed, now_ms), |txn, (id, seed, now_ms)| {
            txn.cancel_order(id, *seed, *now_ms)
        })
        .await
    }

    /// Queues `input` to be written with `write` and waits for its answer.
    async fn submit<I, O>(&self, input: I, write: WriteFn<I, O>) -> Result<O, WriteError>
    where
        I: Send + 'static,
        O: Send + 'static,
    {
        let (job, answer) = queued(input, write);
        self.tx.send(job).await.map_err(|_| WriteError::Stopped)?;
        tally_service::vital::answered(answer, &self.alive)
            .await
            .ok_or(WriteError::Stopped)?
    }
}

/// A job for `input`, and where its answer will arrive.
fn queued<I, O>(
    input: I,
    write: WriteFn<I, O>,
) -> (Box<dyn Job>, oneshot::Receiver<Result<O, WriteError>>)
where
    I: Send + 'static,
    O: Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Queued {
        input,
        write,
        reply,
        result: None,
    };
    (Box::new(job), answer)
}

/// How a job of input `I` runs in the batch's transaction.
type WriteFn<I, O> = fn(&mut dyn HubWrite, &I) -> Result<O, StorageError>;

/// The hub's rights at a location held for orders waiting on its store's
/// release (`crate::link::Links::holds_at`), read by a sync as it runs:
/// an order that placed its hold while the sync waited in the queue is
/// honoured too.
pub type HoldsAt = Arc<dyn Fn(&LocationId) -> Held + Send + Sync>;

/// A queued write of any kind (so one queue keeps every kind in order).
trait Job: Send {
    /// Runs the write in the batch's transaction and keeps its result
    /// until the batch's fate is known (a batch run again runs it again,
    /// replacing the result).
    fn run(&mut self, txn: &mut dyn HubWrite) -> Result<(), StorageError>;
    /// Answers: the kept result if the batch committed, else its error.
    fn answer(self: Box<Self>, batch: Result<(), WriteError>);
}

/// A write waiting in the queue, with its own typed reply channel.
struct Queued<I, O> {
    input: I,
    write: WriteFn<I, O>,
    reply: oneshot::Sender<Result<O, WriteError>>,
    result: Option<O>,
}

impl<I: Send + 'static, O: Send + 'static> Job for Queued<I, O> {
    fn run(&mut self, txn: &mut dyn HubWrite) -> Result<(), StorageError> {
        self.result = None;
        self.result = Some((self.write)(txn, &self.input)?);
        Ok(())
    }

    fn answer(self: Box<Self>, batch: Result<(), WriteError>) {
        let answer = match (batch, self.result) {
            (Ok(()), Some(result)) => Ok(result),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(WriteError::Storage(
                "the write did not run in the committed batch".into(),
            )),
        };
        let _ = self.reply.send(answer);
    }
}

/// Most runs of one batch that lost a race with another writer of the
/// database (PostgreSQL: serialization failure, deadlock, a unique key
/// taken meanwhile) before its requests are answered with the error.
const MAX_RUNS: u32 = 5;

/// Writes batches until every handle is dropped (`Ok`), or until the
/// database cannot take another write (`Err`, why: the hub stops for a
/// restart; what is still queued is answered `Stopped`).
fn run(
    storage: Arc<dyn HubStorage>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
) -> Result<(), String> {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(storage.as_ref(), &metrics, jobs)?;
    }
    debug!("Writer stopped.");
    Ok(())
}

/// Runs `jobs` in order in one transaction, commits it, then answers
/// every job: each its result, or all the same error. A batch that lost
/// a race with another writer (a retriable storage error) runs again,
/// whole, up to [`MAX_RUNS`] times: nothing of a failed run was kept,
/// and every write is a function of its input and what is stored. A job
/// that failed on its own (a non-retriable error from its write, not
/// from the commit) is answered with its error and the others run again
/// without it, so one request's failure is not every request's.
///
/// `Err` (why) once answered: the database cannot take another write
/// ([`StorageError::CommitFailed`]).
fn commit_batch(
    storage: &dyn HubStorage,
    metrics: &Metrics,
    mut jobs: Vec<Box<dyn Job>>,
) -> Result<(), String> {
    let mut runs = 0;
    let outcome = loop {
        runs += 1;
        let mut failed_at = None;
        let outcome = storage.write_batch(&mut |txn| {
            for (i, job) in jobs.iter_mut().enumerate() {
                if let Err(e) = job.run(txn) {
                    failed_at = Some(i);
                    return Err(e);
                }
            }
            Ok(())
        });
        match (outcome, failed_at) {
            (Err(e), _) if e.is_retriable() && runs < MAX_RUNS => {
                metrics.batch_run_again();
                warn!(error = %e, requests = jobs.len(), runs, "Write batch lost a race; running it again.");
                // A little apart, so racing writers do not collide again.
                std::thread::sleep(std::time::Duration::from_millis(
                    u64::from(runs) * u64::from(runs) + u64::from(rand::random::<u8>() % 4),
                ));
            }
            (Err(e), Some(i)) if !e.is_retriable() && jobs.len() > 1 => {
                metrics.batch_run_again();
                error!(error = %e, requests = jobs.len(), "A write failed on its own; it gets the error, the rest of its batch runs again without it.");
                jobs.remove(i)
                    .answer(Err(WriteError::Storage(e.to_string())));
            }
            (other, _) => break other,
        }
    };
    let requests = jobs.len();
    let mut fatal = None;
    let batch = match outcome {
        Ok(()) => {
            metrics.commit(requests as u64);
            debug!(requests, runs, "Batch committed.");
            Ok(())
        }
        Err(e @ (StorageError::CommitUnknown(_) | StorageError::CommitFailed(_))) => {
            error!(error = %e, requests, runs, "Write batch's commit not confirmed; it may have been written.");
            if let StorageError::CommitFailed(_) = e {
                fatal = Some(e.to_string());
            }
            Err(WriteError::Unknown(e.to_string()))
        }
        Err(e) => {
            error!(error = %e, requests, runs, "Write batch failed; nothing was committed.");
            Err(WriteError::Storage(e.to_string()))
        }
    };
    for job in jobs {
        job.answer(batch.clone());
    }
    fatal.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tally_sync::{EventId, Gtin, LocationId};

    use super::*;
    use crate::storage::{AuditReport, ExceptionRecord, StoreRecord, StoreStock};

    /// Storage that keeps nothing: it counts commits, fails an order whose
    /// id is `"fail"` and, with `fail_commit`, every commit.
    #[derive(Default)]
    struct Fake {
        fail_commit: bool,
        /// The commit fails without saying whether it took.
        unconfirmed_commit: bool,
        /// The commit fails, and the database takes no more writes.
        failed_commit: bool,
        panic_in_commit: bool,
        commits: Mutex<usize>,
        /// Runs that lose a race (after running the batch) before one
        /// commits.
        lose_races: Mutex<u32>,
        /// Batches run.
        runs: Mutex<u32>,
    }

    fn failure() -> StorageError {
        StorageError::Store(tally_store::StoreError::Storage("disk on fire".into()))
    }

    struct FakeTxn;

    impl HubWrite for FakeTxn {
        fn flag_overdue_transfers(&mut self, _: u64, _: u64) -> Result<usize, StorageError> {
            Err(failure())
        }

        fn acknowledge_exception(
            &mut self,
            _: u64,
            _: &str,
            _: &str,
            _: u64,
        ) -> Result<crate::storage::AckResult, StorageError> {
            Err(failure())
        }

        fn check_return(
            &mut self,
            _: &tally_sync::returns::ReturnCheckRequest,
            _: &tally_sync::LocationId,
            _: u64,
        ) -> Result<crate::storage::returns::CheckResult, StorageError> {
            Err(failure())
        }

        fn sync(
            &mut self,
            _: &Identity,
            _: &SyncRequest,
            _: &Held,
            _: u64,
        ) -> Result<SyncResult, StorageError> {
            Err(failure())
        }

        fn order(&mut self, order: &OrderRequest) -> Result<OrderResult, StorageError> {
            if order.order_id == "fail" {
                return Err(failure());
            }
            Ok(OrderResult::IdConflict {
                order_id: order.order_id.clone(),
            })
        }

        fn order_refused(
            &mut self,
            _: &tally_sync::LocationId,
            _: tally_sync::Shortage,
            _: u64,
        ) -> Result<bool, StorageError> {
            Ok(false)
        }

        fn catalog(&mut self, items: &[CatalogItem]) -> Result<CatalogResult, StorageError> {
            Ok(CatalogResult {
                changed: items.len(),
            })
        }

        fn grant(
            &mut self,
            _: &Identity,
            _: &RightsRequest,
            _: u64,
        ) -> Result<GrantResult, StorageError> {
            Ok(GrantResult::IdConflict)
        }

        fn release(
            &mut self,
            _: &Identity,
            _: &RightsReleased,
        ) -> Result<ReleaseResult, StorageError> {
            Ok(ReleaseResult::Merged(false))
        }

        fn admit_held(&mut self, _: EventId, _: u64) -> Result<AdmitResult, StorageError> {
            Ok(AdmitResult::NotHeld)
        }

        fn route_order(&mut self, _: &RoutedOrderRequest) -> Result<RoutedResult, StorageError> {
            Ok(RoutedResult::IdConflict)
        }

        fn cancel_order(
            &mut self,
            _: &str,
            _: [u8; 10],
            _: u64,
        ) -> Result<CancelResult, StorageError> {
            Ok(CancelResult::NotFound)
        }
    }

    impl HubStorage for Fake {
        fn write_batch(
            &self,
            batch: &mut dyn FnMut(&mut dyn HubWrite) -> Result<(), StorageError>,
        ) -> Result<(), StorageError> {
            *self.runs.lock().unwrap() += 1;
            batch(&mut FakeTxn)?;
            {
                let mut lose = self.lose_races.lock().unwrap();
                if *lose > 0 {
                    *lose -= 1;
                    return Err(StorageError::Retry(
                        crate::storage::RetryReason::Serialization,
                    ));
                }
            }
            assert!(!self.panic_in_commit, "a bug in the commit");
            if self.fail_commit {
                return Err(failure());
            }
            if self.unconfirmed_commit {
                return Err(StorageError::CommitUnknown("connection reset".into()));
            }
            if self.failed_commit {
                return Err(StorageError::CommitFailed("fsync: I/O error".into()));
            }
            *self.commits.lock().unwrap() += 1;
            Ok(())
        }
        fn counter(
            &self,
            _: &tally_sync::ItemKey,
        ) -> Result<tally_sync::BoundedCounter, StorageError> {
            Ok(Default::default())
        }
        fn stock(&self, _: Gtin) -> Result<Vec<(String, StoreStock)>, StorageError> {
            Ok(Vec::new())
        }
        fn catalog_item(&self, _: Gtin) -> Result<Option<CatalogItem>, StorageError> {
            Ok(None)
        }
        fn stores(&self) -> Result<Vec<StoreRecord>, StorageError> {
            Ok(Vec::new())
        }
        fn sales_per_minute(&self, _: u64) -> Result<Vec<(String, u64, u64)>, StorageError> {
            Ok(Vec::new())
        }
        fn routed_order(
            &self,
            _: &str,
        ) -> Result<Option<crate::storage::routed::RoutedOrder>, StorageError> {
            Ok(None)
        }
        fn transfers(
            &self,
            _: tally_sync::transfer::TransferStatus,
            _: &str,
            _: usize,
        ) -> Result<Vec<crate::storage::transfers::HubTransfer>, StorageError> {
            Ok(Vec::new())
        }
        fn transfer(
            &self,
            _: &str,
        ) -> Result<Option<crate::storage::transfers::HubTransfer>, StorageError> {
            Ok(None)
        }
        fn cross_returns(
            &self,
            _: usize,
        ) -> Result<Vec<crate::storage::returns::CrossReturn>, StorageError> {
            Ok(Vec::new())
        }
        fn transfers_received_recently(
            &self,
            _: usize,
        ) -> Result<Vec<crate::storage::transfers::HubTransfer>, StorageError> {
            Ok(Vec::new())
        }
        fn status_counts(&self) -> Result<crate::storage::StatusCounts, StorageError> {
            Ok(Default::default())
        }
        fn allocations(
            &self,
            _: &tally_sync::LocationId,
            after: u64,
            _: usize,
        ) -> Result<tally_sync::message::AllocationsPage, StorageError> {
            Ok(tally_sync::message::AllocationsPage {
                allocations: Vec::new(),
                transfers: Vec::new(),
                cursor: after,
                more: false,
            })
        }
        fn routed_orders(
            &self,
            _: tally_sync::fulfilment::Status,
            _: &str,
            _: usize,
        ) -> Result<Vec<crate::storage::routed::RoutedOrder>, StorageError> {
            Ok(Vec::new())
        }
        fn held_events(
            &self,
            _: usize,
        ) -> Result<Vec<crate::storage::held::HeldEvent>, StorageError> {
            Ok(Vec::new())
        }
        fn exceptions(&self, _: u64, _: usize) -> Result<Vec<ExceptionRecord>, StorageError> {
            Ok(Vec::new())
        }
        fn last_exception_id(&self) -> Result<u64, StorageError> {
            Ok(0)
        }
        fn acknowledged_exceptions(&self) -> Result<u64, StorageError> {
            Ok(0)
        }
        fn audit(&self) -> Result<AuditReport, StorageError> {
            Ok(AuditReport::default())
        }
    }

    fn items(n: u64) -> Vec<CatalogItem> {
        (0..n)
            .map(|i| {
                let gtin = Gtin::from_body(1_000 + i).unwrap();
                CatalogItem::new(gtin, "tea", 100).unwrap()
            })
            .collect()
    }

    fn order(id: &str) -> OrderRequest {
        OrderRequest {
            order_id: id.into(),
            store: LocationId::new("s1").unwrap(),
            lines: Vec::new(),
            event_id: EventId::v7(1, [0; 10]),
            now_ms: 1,
            record_demand: true,
        }
    }

    type Reply<O> = oneshot::Receiver<Result<O, WriteError>>;

    /// A batch of a catalog change, the order `order_id`, another catalog
    /// change, and where their answers arrive.
    struct Batch {
        jobs: Vec<Box<dyn Job>>,
        first: Reply<CatalogResult>,
        order: Reply<OrderResult>,
        last: Reply<CatalogResult>,
    }

    fn batch(order_id: &str) -> Batch {
        let (a, first) = queued(items(1), |txn, i| txn.catalog(i));
        let (b, order) = queued(order(order_id), |txn, o| txn.order(o));
        let (c, last) = queued(items(2), |txn, i| txn.catalog(i));
        Batch {
            jobs: vec![a, b, c],
            first,
            order,
            last,
        }
    }

    #[test]
    fn one_commit_answers_each_job_with_its_own_result() {
        let fake = Fake::default();
        let mut b = batch("web-1");
        commit_batch(&fake, &Metrics::default(), b.jobs).unwrap();
        assert_eq!(*fake.commits.lock().unwrap(), 1);
        assert_eq!(b.first.try_recv().unwrap().unwrap().changed, 1);
        assert_eq!(
            b.order.try_recv().unwrap().unwrap(),
            OrderResult::IdConflict {
                order_id: "web-1".into()
            }
        );
        assert_eq!(b.last.try_recv().unwrap().unwrap().changed, 2);
    }

    fn failed<O: std::fmt::Debug>(reply: &mut Reply<O>) -> bool {
        matches!(reply.try_recv(), Ok(Err(WriteError::Storage(m))) if m.contains("disk on fire"))
    }

    /// Every job runs and the commit fails: each gets the error.
    #[test]
    fn a_failed_commit_answers_every_job_of_the_batch_with_it() {
        let fake = Fake {
            fail_commit: true,
            ..Fake::default()
        };
        let mut b = batch("web-1");
        commit_batch(&fake, &Metrics::default(), b.jobs).unwrap();
        assert_eq!(*fake.commits.lock().unwrap(), 0);
        assert!(failed(&mut b.first));
        assert!(failed(&mut b.order));
        assert!(failed(&mut b.last));
    }

    /// A commit the database did not confirm (it may have been written)
    /// is answered as such to every job, not as "nothing was written",
    /// and is not run again.
    #[test]
    fn an_unconfirmed_commit_answers_that_the_outcome_is_unknown() {
        let fake = Fake {
            unconfirmed_commit: true,
            ..Fake::default()
        };
        let mut b = batch("web-1");
        commit_batch(&fake, &Metrics::default(), b.jobs).unwrap();
        assert_eq!(*fake.runs.lock().unwrap(), 1, "not run again");
        for reply in [&mut b.first, &mut b.last] {
            assert!(matches!(
                reply.try_recv(),
                Ok(Err(WriteError::Unknown(m))) if m.contains("connection reset")
            ));
        }
        assert!(matches!(
            b.order.try_recv(),
            Ok(Err(WriteError::Unknown(_)))
        ));
    }

    /// The order's own write fails after the first job ran and before
    /// the last one did: it alone gets the error, the other two commit
    /// in a second run without it. Alone in its batch, it gets it too.
    #[test]
    fn a_job_that_fails_on_its_own_fails_alone() {
        let fake = Fake::default();
        let mut b = batch("fail");
        commit_batch(&fake, &Metrics::default(), b.jobs).unwrap();
        assert_eq!(
            (*fake.runs.lock().unwrap(), *fake.commits.lock().unwrap()),
            (2, 1)
        );
        assert!(failed(&mut b.order));
        assert_eq!(b.first.try_recv().unwrap().unwrap().changed, 1);
        assert_eq!(b.last.try_recv().unwrap().unwrap().changed, 2);

        let fake = Fake::default();
        let (job, mut alone) = queued(order("fail"), |txn, o| txn.order(o));
        commit_batch(&fake, &Metrics::default(), vec![job]).unwrap();
        assert_eq!(*fake.runs.lock().unwrap(), 1);
        assert!(failed(&mut alone));
    }

    /// A batch that lost a race runs again, whole, and each job is
    /// answered with its result from the run that committed; one that
    /// keeps losing is answered with the error after `MAX_RUNS` runs.
    #[test]
    fn a_batch_that_lost_a_race_runs_again() {
        let fake = Fake::default();
        *fake.lose_races.lock().unwrap() = 2;
        let metrics = Metrics::default();
        let mut b = batch("web-1");
        commit_batch(&fake, &metrics, b.jobs).unwrap();
        assert_eq!(
            (*fake.runs.lock().unwrap(), *fake.commits.lock().unwrap()),
            (3, 1)
        );
        assert_eq!(b.first.try_recv().unwrap().unwrap().changed, 1);
        assert!(matches!(
            b.order.try_recv().unwrap().unwrap(),
            OrderResult::IdConflict { .. }
        ));
        assert_eq!(b.last.try_recv().unwrap().unwrap().changed, 2);
        let text = metrics.render(0, 0, crate::metrics::Gauges::default());
        assert!(
            text.contains("tally_hub_write_batches_run_again_total 2\n"),
            "{text}"
        );

        let fake = Fake::default();
        *fake.lose_races.lock().unwrap() = u32::MAX;
        let mut b = batch("web-2");
        commit_batch(&fake, &Metrics::default(), b.jobs).unwrap();
        assert_eq!(
            (*fake.runs.lock().unwrap(), *fake.commits.lock().unwrap()),
            (MAX_RUNS, 0)
        );
        for answer in [b.first.try_recv().unwrap(), b.last.try_recv().unwrap()] {
            assert!(
                matches!(&answer, Err(WriteError::Storage(m)) if m.contains("retried")),
                "{answer:?}"
            );
        }
        assert!(b.order.try_recv().unwrap().is_err());
    }

    /// A commit the database failed for good (redb's flush) answers its
    /// batch that the outcome is unknown, then stops the writer, and so
    /// the hub, for a restart that reopens the database: it would refuse
    /// every write after while the hub looked healthy.
    #[tokio::test]
    async fn a_failed_commit_stops_the_writer_for_a_restart() {
        let fake = Fake {
            failed_commit: true,
            ..Fake::default()
        };
        let (writer, thread) = Writer::start(Arc::new(fake), Arc::default(), 8, 8).unwrap();
        let (handle, died) = thread.split();
        let answer = writer.order(order("web-1")).await;
        assert!(
            matches!(&answer, Err(WriteError::Unknown(m)) if m.contains("I/O error")),
            "{answer:?}"
        );
        assert!(died.wait().await.contains("must be reopened"));
        assert!(handle.join().is_ok());
        let again = writer.order(order("web-2")).await;
        assert!(matches!(again, Err(WriteError::Stopped)), "{again:?}");
    }

    /// A panic in the writer answers what was queued `Stopped` (retriable)
    /// and is reported, so that the hub stops instead of failing every
    /// write while it looks healthy.
    #[tokio::test]
    async fn a_panicking_writer_is_reported_and_stops_answering() {
        let fake = Fake {
            panic_in_commit: true,
            ..Fake::default()
        };
        let (writer, thread) = Writer::start(Arc::new(fake), Arc::default(), 8, 8).unwrap();
        let (handle, died) = thread.split();
        let answer = writer.order(order("web-1")).await;
        assert!(matches!(answer, Err(WriteError::Stopped)), "{answer:?}");
        assert!(died.wait().await.contains("a bug in the commit"));
        assert!(handle.join().is_ok());
        let again = writer.order(order("web-2")).await;
        assert!(matches!(again, Err(WriteError::Stopped)), "{again:?}");
    }
}
