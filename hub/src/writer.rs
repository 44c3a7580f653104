//! The single writer: a dedicated thread that takes every waiting write
//! request into one durable transaction (group commit).
//!
//! # Design constraints
//! - redb has one write transaction at a time and each commit is an
//!   fsync; one fsync per sync would cap the hub at a few hundred syncs per
//!   second. The writer takes the first waiting request and every other
//!   one already queued (up to `max_batch`), runs them in order in one
//!   transaction and answers all of them after the commit returns, so a
//!   2xx always means "on disk".
//! - Storage is synchronous; it runs here, never on the async workers.
//! - The thread stops when every [`Writer`] handle is dropped, after
//!   finishing what was queued.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error};

use crate::metrics::Metrics;
use crate::storage::{HubStorage, WriteRequest, WriteResult};

/// Why a write got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Storage failed; nothing of the batch was committed. Retriable.
    #[error("storage failure (nothing was written; retry): {0}")]
    Storage(String),
    /// The writer has stopped (the hub is shutting down). Retriable.
    #[error("the hub is shutting down")]
    Stopped,
}

struct Job {
    req: WriteRequest,
    reply: oneshot::Sender<Result<WriteResult, WriteError>>,
}

/// A handle to submit writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread over `storage`. Returns the handle and the
    /// thread, to join after every handle is dropped.
    pub fn start(
        storage: Arc<dyn HubStorage>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        queue: usize,
    ) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("tally-hub-writer".into())
            .spawn(move || run(storage, metrics, rx, max_batch.max(1)))?;
        Ok((Writer { tx }, thread))
    }

    /// Submits one write and waits until it is committed (or refused).
    pub async fn submit(&self, req: WriteRequest) -> Result<WriteResult, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { req, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }
}

fn run(
    storage: Arc<dyn HubStorage>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (reqs, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.req, j.reply)).unzip();
        match storage.apply(&reqs) {
            Ok(results) => {
                metrics.commit(reqs.len() as u64);
                debug!(requests = reqs.len(), "Batch committed.");
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                error!(error = %e, requests = reqs.len(), "Write batch failed; nothing was committed.");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(WriteError::Storage(msg.clone())));
                }
            }
        }
    }
    debug!("Writer stopped.");
}
