//! The event loop: glues the terminal (crossterm keys in, ratatui frames
//! out), the scanner driver, a status poll, the order and transfer
//! screens' refresh, the count screen's poll and the agent API to the pure [`PosState`]. Each
//! [`Effect`] runs as its own task and comes back as an [`Action`]; the
//! screen is redrawn after every batch of actions.
//!
//! # Design constraints
//! - The loop owns the state; nothing else mutates it.
//! - Keys are read on a dedicated thread (crossterm's read blocks) and the
//!   scanner driver has its own thread; both feed one channel.
//! - Nothing is logged to the terminal while it is drawn (`--log FILE`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Terminal;
use tally_hardware::driver::scanner::{self as scanner_driver, ScannerConfig, ScannerEvent};
use tally_hardware::driver::DeviceStatus;
use tally_sync::EventId;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::AgentApi;
use crate::journal::Journal;
use crate::render;
use crate::scan;
use crate::state::{Action, Effect, Env, Key, PosState};

/// How often the agent's status is asked.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// How often an order screen or the Transfers screen is refreshed
/// ([`Action::RefreshOrders`]): the pick list, the order shown at pickup,
/// or the transfers in transit.
pub const ORDERS_EVERY: Duration = Duration::from_secs(10);

/// How often the count session shown live is polled
/// ([`Action::RefreshCount`]).
pub const COUNT_EVERY: Duration = Duration::from_secs(1);

/// Longest the terminal waits, quitting, for the agent to end the
/// cashier's session.
const SIGN_OUT_WAIT: Duration = Duration::from_secs(2);

/// Why the terminal stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Drawing or reading the terminal failed.
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    /// The scanner driver could not start.
    #[error("starting the scanner driver on {path}: {source}")]
    Scanner {
        /// The port.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// Translates a terminal key into the state machine's, if it means one.
pub fn map_key(k: KeyEvent) -> Option<Key> {
    if k.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match k.code {
        KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Tab => Key::Tab,
        KeyCode::F(n) => Key::F(n),
        _ => return None,
    })
}

/// Turns a scanner driver event into an action.
pub fn scanner_action(e: ScannerEvent) -> Action {
    match e {
        ScannerEvent::Scan { raw, barcode } => Action::Scanned(scan::from_barcode(&raw, &barcode)),
        ScannerEvent::ScanError { raw, error } => {
            Action::Scanned(Err(scan::ScanError::Barcode { raw, error }))
        }
        ScannerEvent::Status(DeviceStatus::Connected { path }) => Action::Scanner {
            connected: true,
            detail: path.display().to_string(),
        },
        ScannerEvent::Status(DeviceStatus::Disconnected { path, reason }) => Action::Scanner {
            connected: false,
            detail: format!("{}: {reason}", path.display()),
        },
    }
}

/// What the loop's channel carries.
#[derive(Debug)]
enum Input {
    /// For the state machine (boxed: an answer such as a sale's view is
    /// large, a key is not).
    Action(Box<Action>),
    /// The terminal was resized.
    Redraw,
    /// Reading the terminal failed: stop.
    TerminalFailed(io::Error),
}

/// Runs one effect against the agent; the answer as an action (`None` for
/// [`Effect::Quit`], which the loop handles itself).
pub async fn perform<A: AgentApi>(api: &A, effect: Effect) -> Option<Action> {
    Some(match effect {
        Effect::LookupCatalog(gtin) => {
            let result = api.catalog_item(&gtin).await;
            Action::Catalog { gtin, result }
        }
        Effect::FetchStock(gtin) => {
            let result = api.stock(&gtin).await;
            Action::Stock { gtin, result }
        }
        Effect::PostSale(req) => {
            let result = api.post_sale(&req).await;
            let sale = req.sale_id.map(|id| id.to_string()).unwrap_or_default();
            if let Err(e) = &result {
                tracing::warn!(sale = %sale, error = %e, "Sale not confirmed.");
            } else {
                tracing::info!(sale = %sale, "Sale committed.");
            }
            Action::SaleDone {
                sale_id: req.sale_id,
                result,
            }
        }
        Effect::PostReturn(req) => {
            let result = api.post_return(&req).await;
            Action::ReturnDone {
                return_id: req.return_id,
                result,
            }
        }
        Effect::LookupSale(id) => {
            let result = api.sale(id).await;
            Action::OriginalSale { id, result }
        }
        Effect::ListOrders { after } => {
            let result = api.open_orders(&after).await;
            Action::Orders { after, result }
        }
        Effect::LookupOrder(order_id) => {
            let result = api.order(&order_id).await;
            Action::Order { order_id, result }
        }
        Effect::Fulfil(mv) => {
            let result = api.fulfil(&mv.order_id, mv.to, &mv.body).await;
            match &result {
                Err(e) => tracing::warn!(
                    order = %mv.order_id,
                    to = mv.to.name(),
                    error = %e,
                    "Order move not confirmed."
                ),
                Ok(r) => tracing::info!(
                    order = %mv.order_id,
                    status = r.order_status.name(),
                    "Order moved."
                ),
            }
            Action::Fulfilled {
                order_id: mv.order_id,
                fulfilment_id: mv.body.fulfilment_id,
                result,
            }
        }
        Effect::ListTransfers { after } => {
            let result = api.transfers_in_transit(&after).await;
            Action::Transfers { after, result }
        }
        Effect::LookupTransfer(transfer_id) => {
            let result = api.transfer(&transfer_id).await;
            Action::Transfer {
                transfer_id,
                result,
            }
        }
        Effect::ReceiveTransfer(r) => {
            let result = api.receive_transfer(&r.transfer_id, &r.body).await;
            match &result {
                Err(e) => tracing::warn!(
                    transfer = %r.transfer_id,
                    error = %e,
                    "Transfer receipt not confirmed."
                ),
                Ok(rec) => tracing::info!(
                    transfer = %r.transfer_id,
                    units = rec.units,
                    "Transfer received."
                ),
            }
            Action::TransferReceived {
                transfer_id: r.transfer_id,
                event_id: r.body.event_id,
                result,
            }
        }
        Effect::StartCount(req) => {
            let result = api.start_count(&req).await;
            let session_id = req.session_id.clone().unwrap_or_default();
            match &result {
                Err(e) => tracing::warn!(session = %session_id, error = %e, "Count not started."),
                Ok(_) => tracing::info!(session = %session_id, "Count started."),
            }
            Action::CountStarted { session_id, result }
        }
        Effect::LookupCount(session_id) => {
            let result = api.count_session(&session_id).await;
            Action::CountSession { session_id, result }
        }
        Effect::CountReport(session_id) => {
            let result = api.count_report(&session_id).await;
            Action::CountReport { session_id, result }
        }
        Effect::FinishCount(session_id) => {
            let result = api.finish_count(&session_id).await;
            if let Err(e) = &result {
                tracing::warn!(session = %session_id, error = %e, "Count not finished.");
            }
            Action::CountFinished { session_id, result }
        }
        Effect::AcceptCount(session_id) => {
            let result = api.accept_count(&session_id).await;
            match &result {
                Err(e) => tracing::warn!(session = %session_id, error = %e, "Count not accepted."),
                Ok(a) => tracing::info!(
                    session = %session_id,
                    adjustments = a.adjustments.len(),
                    "Count accepted."
                ),
            }
            Action::CountAccepted { session_id, result }
        }
        Effect::SignIn(req) => {
            let result = api.sign_in(&req).await;
            match &result {
                Ok(s) => tracing::info!(cashier = %s.cashier, "Cashier signed in."),
                Err(e) => {
                    tracing::warn!(cashier = %req.cashier, error = %e, "Cashier not signed in.")
                }
            }
            Action::SignedIn(result)
        }
        Effect::SignOut => {
            if let Err(e) = api.sign_out().await {
                tracing::warn!(error = %e, "Signing out at the agent failed (the session is forgotten here).");
            }
            return None;
        }
        Effect::Quit => return None,
    })
}

/// What the loop needs besides the API.
#[derive(Debug)]
pub struct LoopConfig {
    /// The scanner, if one is attached.
    pub scanner: Option<ScannerConfig>,
    /// The till's journal: a request it holds opens in doubt; every
    /// request is kept there before it is posted.
    pub journal: Option<Journal>,
}

/// Runs the terminal until the cashier quits.
pub async fn run<A: AgentApi, B: Backend>(
    api: Arc<A>,
    terminal: &mut Terminal<B>,
    mut state: PosState,
    config: LoopConfig,
) -> Result<(), LoopError>
where
    LoopError: From<B::Error>,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let stop = Arc::new(AtomicBool::new(false));
    let keys = spawn_key_reader(tx.clone(), stop.clone());

    let scanner = match config.scanner {
        Some(cfg) => {
            let path = cfg.port.path.display().to_string();
            state.scanner = Some((false, format!("{path}: opening")));
            let (stx, mut srx) = mpsc::channel::<ScannerEvent>(64);
            let handle = scanner_driver::spawn(cfg, stx)
                .map_err(|source| LoopError::Scanner { path, source })?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(e) = srx.recv().await {
                    if tx.send(Input::Action(Box::new(scanner_action(e)))).is_err() {
                        break;
                    }
                }
            });
            Some(handle)
        }
        None => None,
    };

    let status_busy = Arc::new(AtomicBool::new(false));
    let mut ticker = tokio::time::interval(STATUS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut orders_ticker = tokio::time::interval(ORDERS_EVERY);
    orders_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut count_ticker = tokio::time::interval(COUNT_EVERY);
    count_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut journal = config.journal;
    let mut first_effects = Vec::new();
    if let Some(saved) = journal.as_ref().and_then(|j| j.open_request()).cloned() {
        // Checked when the journal was read: it cannot fail here.
        first_effects = state.resume(saved).unwrap_or_default();
    }
    run_effects(&api, &tx, first_effects, &mut journal, &mut state);

    let result = async {
        terminal.draw(|f| render::draw(f, &state))?;
        loop {
            let first = tokio::select! {
                a = rx.recv() => a,
                _ = orders_ticker.tick() => Some(Input::Action(Box::new(Action::RefreshOrders))),
                _ = count_ticker.tick() => Some(Input::Action(Box::new(Action::RefreshCount))),
                _ = ticker.tick() => {
                    if !status_busy.swap(true, Ordering::SeqCst) {
                        let (api, tx, busy) = (api.clone(), tx.clone(), status_busy.clone());
                        tokio::spawn(async move {
                            let r = api.status().await;
                            busy.store(false, Ordering::SeqCst);
                            let _ = tx.send(Input::Action(Box::new(Action::Status(r))));
                        });
                    }
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while let Ok(a) = rx.try_recv() {
                batch.push(a);
            }
            let mut quit = false;
            for input in batch {
                let action = match input {
                    Input::Action(a) => *a,
                    Input::Redraw => continue,
                    Input::TerminalFailed(e) => return Err(LoopError::Terminal(e)),
                };
                let env = Env {
                    fresh_id: EventId(Uuid::now_v7()),
                };
                let effects = state.update(action, &env);
                quit |= run_effects(&api, &tx, effects, &mut journal, &mut state);
            }
            if quit {
                break;
            }
            terminal.draw(|f| render::draw(f, &state))?;
        }
        Ok::<(), LoopError>(())
    }
    .await;

    // A cashier who quits the terminal signs out: the session does not
    // stay open at the agent until it idles out. Not with a sale or a
    // return awaiting its answer (in the journal for the next start),
    // which the sign-out could overtake; and not for longer than
    // SIGN_OUT_WAIT, so an agent that does not answer cannot hold the
    // till.
    if state.signed_in.is_some() && state.saved().is_none() {
        match tokio::time::timeout(SIGN_OUT_WAIT, api.sign_out()).await {
            Ok(Ok(())) => tracing::info!("Signed out on quitting."),
            Ok(Err(e)) => tracing::warn!(error = %e, "Signing out on quitting failed."),
            Err(_) => tracing::warn!("Signing out on quitting: no answer in time."),
        }
    }

    stop.store(true, Ordering::SeqCst);
    if let Some(h) = scanner {
        h.request_stop();
    }
    let _ = keys.join();
    result
}

/// Runs `effects` as tasks (their answers come back as actions), once the
/// till's journal holds what `state` says must be kept: a request leaves
/// only once the journal holds it, and if it cannot, the request does not
/// leave. Answers whether the cashier quit.
fn run_effects<A: AgentApi>(
    api: &Arc<A>,
    tx: &mpsc::UnboundedSender<Input>,
    effects: Vec<Effect>,
    journal: &mut Option<Journal>,
    state: &mut PosState,
) -> bool {
    let mut unjournaled = false;
    if let Some(j) = journal.as_mut() {
        if let Err(e) = j.keep(state.saved().as_ref()) {
            tracing::error!(error = %e, "The till journal cannot be written.");
            unjournaled = state.journal_failed(&e.to_string());
        }
    }
    let mut quit = false;
    for effect in effects {
        match effect {
            Effect::Quit => quit = true,
            Effect::PostSale(_) | Effect::PostReturn(_) if unjournaled => {}
            effect => {
                let (api, tx) = (api.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(a) = perform(api.as_ref(), effect).await {
                        let _ = tx.send(Input::Action(Box::new(a)));
                    }
                });
            }
        }
    }
    quit
}

/// Reads terminal events on a thread until `stop`; polls so it can stop.
fn spawn_key_reader(
    tx: mpsc::UnboundedSender<Input>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let input = match event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) => match map_key(k) {
                        Some(key) => Input::Action(Box::new(Action::Key(key))),
                        None => continue,
                    },
                    Ok(Event::Resize(..)) => Input::Redraw,
                    Ok(_) => continue,
                    Err(e) => Input::TerminalFailed(e),
                },
                Err(e) => Input::TerminalFailed(e),
            };
            let failed = matches!(input, Input::TerminalFailed(_));
            if tx.send(input).is_err() || failed {
                return;
            }
        }
    })
}
