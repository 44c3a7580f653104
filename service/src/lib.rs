//! `tally-service`: what Tally's programs share as processes, written
//! once for the agent, the hub and the cashier terminal: how they log
//! ([`log_filter`], [`log_to_stderr`], [`log_to_file`]), when a daemon
//! stops ([`shutdown_signal`]: SIGINT, SIGTERM or, when asked, the end of
//! standard input), how the daemons serve HTTP connections under limits
//! a hostile peer cannot outlast ([`serve`]), and the threads whose panic
//! must stop the process ([`vital`]). Only binaries install a subscriber.
//!
//! What the hub and the agent both need to keep a store's identity:
//! writing keys and bundles safely ([`files`]), the enrollment and
//! renewal bodies and the store a certificate is bound to ([`identity`],
//! with the store id rule of `tally_sync::store_id`), and comparing
//! secrets in constant time ([`secret`]); the CA and server certificates
//! both make for themselves ([`certs`]).

pub mod certs;
pub mod files;
pub mod identity;
pub mod secret;
pub mod serve;
pub mod vital;

use std::io::IsTerminal;
use std::path::Path;

/// Every program's log filter: `RUST_LOG`, else `info`.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Logs to stderr (stdout may carry a program's output): as text, in
/// colour only on a terminal (a log file or the journal gets plain text),
/// or as JSON lines. A subscriber already installed is kept.
pub fn log_to_stderr(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter());
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Logs plain text to the end of `path` (a full-screen program, whose
/// screen is its terminal).
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(log_filter())
        .try_init();
    Ok(())
}

/// Completes on SIGINT, SIGTERM or, with `stdin`, the end of standard
/// input (a supervisor holding a pipe to it stops the daemon by closing
/// the pipe, or by dying, even of SIGKILL); logs which.
///
/// Call it inside the runtime, before serving: the signal handlers are
/// installed at once, so a signal that arrives while the daemon starts is
/// not lost. Where SIGTERM cannot be watched, SIGINT and stdin still are.
pub fn shutdown_signal(stdin: bool) -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| tracing::warn!(error = %e, "Cannot watch SIGTERM."))
        .ok();
    let stdin_closed = stdin_eof(stdin);
    async move {
        #[cfg(unix)]
        let sigterm = async move {
            match term {
                Some(mut term) => {
                    term.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received."),
            _ = sigterm => tracing::info!("SIGTERM received."),
            _ = stdin_closed => tracing::info!("Standard input closed."),
        }
    }
}

/// With `watch`, completes when standard input reaches its end (or fails
/// to read); otherwise never. The read blocks a detached OS thread, not
/// the runtime's blocking pool, so it never holds up the runtime's
/// shutdown.
async fn stdin_eof(watch: bool) {
    if !watch {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            // Returns at the end of stdin (or on a read error).
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot watch standard input; stopping on signals only.");
            std::future::pending::<()>().await;
        }
    }
}
