//! Threads the process cannot live without (the agent's committer, the
//! hub's writer): if one panics, or stops on a failure it cannot recover
//! from, every later write would fail while the process looked healthy.
//! [`spawn`] (or [`spawn_checked`], for a thread that can give up) runs
//! such a thread and hands back a [`Vital`]: its handle, and [`Died`],
//! which resolves with the panic's message or the failure; the daemon
//! stops on it and exits non-zero, so its service manager restarts it.
//!
//! Callers wait for such a thread's answers on oneshot channels sent to
//! it through a tokio `mpsc` queue; [`answered`] waits for one until the
//! thread is gone ([`Alive`]). The reply channel alone does not tell: a
//! job put in the queue just as the thread stops (its place taken before
//! the queue closed, the job put there after the queue was emptied) stays
//! in the queue, reply channel and all, while any sender lives
//! (tokio-rs/tokio#7714), and its caller would wait for ever.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

/// Resolves if the thread panicked or gave up; never if it ended
/// normally.
#[derive(Debug)]
pub struct Died(oneshot::Receiver<String>);

impl Died {
    /// The panic's message or the failure, once the thread has died.
    pub async fn wait(self) -> String {
        match self.0.await {
            Ok(message) => message,
            Err(_) => std::future::pending().await,
        }
    }
}

/// While a vital thread runs: [`Alive::gone`] completes once it has
/// ended, however it ended. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alive(watch::Receiver<()>);

impl Alive {
    /// Completes once the thread has ended.
    pub async fn gone(&mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// The answer on `answer`, or `None` once the thread `alive` follows has
/// ended without sending one (or the reply channel was dropped). An
/// answer sent just before the thread ended is kept.
pub async fn answered<T>(mut answer: oneshot::Receiver<T>, alive: &Alive) -> Option<T> {
    let mut alive = alive.clone();
    tokio::select! {
        biased;
        a = &mut answer => a.ok(),
        () = alive.gone() => answer.try_recv().ok(),
    }
}

/// A vital thread: join it, or split off its [`Died`] to watch.
#[derive(Debug)]
pub struct Vital {
    handle: JoinHandle<Option<String>>,
    died: Died,
    alive: Alive,
}

impl Vital {
    /// Waits for the thread to end: the panic's message or the failure
    /// if it died (also when no one watched its [`Died`] any more, as in
    /// a shutdown), `None` if it ended normally. The panic was caught,
    /// so the join itself is `Ok`.
    pub fn join(self) -> std::thread::Result<Option<String>> {
        self.handle.join()
    }

    /// What follows whether the thread still runs.
    pub fn alive(&self) -> Alive {
        self.alive.clone()
    }

    /// The handle (joined, the same as [`Self::join`]), and what
    /// resolves if the thread dies.
    pub fn split(self) -> (JoinHandle<Option<String>>, Died) {
        (self.handle, self.died)
    }
}

/// Spawns `f` on a thread named `name`; a panic in it is logged (with
/// `name`) and reported through [`Died`].
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<Vital> {
    spawn_checked(name, move || {
        f();
        Ok(())
    })
}

/// Like [`spawn`], for a thread that may give up: its `Err` is logged and
/// reported through [`Died`] as a panic is.
pub fn spawn_checked(
    name: &str,
    f: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> std::io::Result<Vital> {
    let (tx, rx) = oneshot::channel();
    let (running, alive) = watch::channel(());
    let label = name.to_string();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Dropped as the thread ends, however: `Alive::gone`.
            let _running = running;
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => {
                    tracing::error!(
                        thread = %label,
                        %failure,
                        "A vital thread stopped; the process stops so that it can be restarted."
                    );
                    let _ = tx.send(failure.clone());
                    Some(failure)
                }
                Err(panic) => {
                    let message = message(panic.as_ref());
                    tracing::error!(
                        thread = %label,
                        panic = %message,
                        "A vital thread panicked; the process stops so that it can be restarted."
                    );
                    let _ = tx.send(message.clone());
                    Some(message)
                }
            }
        })?;
    Ok(Vital {
        handle,
        died: Died(rx),
        alive: Alive(alive),
    })
}

fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_reported_and_a_normal_end_is_not() {
        let (handle, died) = spawn("doomed", || panic!("disk on fire"))
            .unwrap_or_else(|e| panic!("{e}"))
            .split();
        assert_eq!(died.wait().await, "disk on fire");
        assert_eq!(
            handle.join().ok().flatten().as_deref(),
            Some("disk on fire"),
            "the panic was caught, and the join says so"
        );
        let (handle, died) = spawn("fine", || {})
            .unwrap_or_else(|e| panic!("{e}"))
            .split();
        assert_eq!(handle.join().ok(), Some(None));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), died.wait()).await;
        assert!(waited.is_err(), "a normal end never resolves");
        let (handle, died) = spawn_checked("gives up", || Err("disk gone".into()))
            .unwrap_or_else(|e| panic!("{e}"))
            .split();
        assert_eq!(died.wait().await, "disk gone");
        assert_eq!(handle.join().ok().flatten().as_deref(), Some("disk gone"));
        // Its Died dropped unwatched (a shutdown under way): the join
        // still says why.
        let (handle, died) = spawn_checked("gives up unwatched", || Err("full".into()))
            .unwrap_or_else(|e| panic!("{e}"))
            .split();
        drop(died);
        assert_eq!(handle.join().ok().flatten().as_deref(), Some("full"));
    }

    /// A reply channel that outlives its thread (a job left in the queue
    /// after the thread emptied it, tokio-rs/tokio#7714) is not waited on
    /// for ever: `None` once the thread has ended; an answer sent just
    /// before it ended is kept.
    #[tokio::test]
    async fn an_answer_is_awaited_only_while_the_thread_runs() {
        let (go, stop) = std::sync::mpsc::channel::<()>();
        let vital = spawn("waits", move || {
            let _ = stop.recv();
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let (kept_reply, answer) = oneshot::channel::<u32>();
        let alive = vital.alive();
        let waiting = tokio::spawn(async move { answered(answer, &alive).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the thread runs: it waits");
        drop(go);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(matches!(waited, Ok(Ok(None))), "{waited:?}");
        drop(kept_reply);

        let (reply, answer) = oneshot::channel::<u32>();
        let vital = spawn("answers", move || {
            let _ = reply.send(7);
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let alive = vital.alive();
        assert_eq!(vital.join().ok(), Some(None));
        assert_eq!(answered(answer, &alive).await, Some(7));
    }
}
