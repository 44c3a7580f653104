//! The cashier terminal's state machine: [`PosState::update`] takes an
//! [`Action`] (a key, a scan, an answer from the agent) and returns the
//! [`Effect`]s to run (API calls, quit). No I/O, no clock, no randomness:
//! a fresh id comes in through [`Env`], so every flow is tested directly.
//!
//! This module holds the machine's vocabulary (keys, actions, effects,
//! the state itself) and the dispatch; each flow is its own module:
//! - `basket`: scans, lines, quantities, prices, voids, and what they cost.
//! - `checkout`: payment, posting a sale, and what the agent answers.
//! - `override_`: the refusal dialog and the manager override.
//! - `returns`: returns mode, the original sale, posting a return.
//! - `orders`: the store's orders (issue 22): switching to the order
//!   screens, the pick list's pages and refreshes, and the moves of an
//!   order's allocation (posting, retrying, the agent's answer).
//! - `picking`: the pick list's keys and scans: checking an order's
//!   lines off ([`Pick`]) and posting `picked` once they are complete.
//! - `pickup`: the pickup screen: an order looked up by its barcode or
//!   id, handed over (`collected` or `shipped`).
//! - `transfers`: the Transfers screen: transfers from other stores in
//!   transit to this one, selected and received (issue 22).
//! - `counting`: the Count screen: RFID cycle-count sessions (issue 23)
//!   set up, started, watched live, finished and accepted.
//! - `dialogs`: the open dialog's keys, routed to its flow.
//!
//! # Design constraints
//! - **Idempotent commits.** A sale (or return) gets its id before its first
//!   POST and keeps it until the agent confirms it or the cashier discards
//!   the basket. A retry re-sends the very same request, and a re-post with
//!   a manager override uses the same id.
//! - **In doubt, locked.** When a POST's outcome is unknown (timeout,
//!   agent unreachable, 5xx), the agent may have recorded the sale. The
//!   basket is then locked: editing it and re-posting under the same id
//!   would be refused if the first attempt was recorded (a retry must
//!   repeat its request) and a new sale if it was not. Only a retry or an
//!   explicit discard leave that state.
//! - **Refused means unchanged.** On a 409/422 the agent recorded nothing,
//!   so the basket is editable again. Tenders taken before a refusal are
//!   dropped when the cashier goes back to the basket (the dialog says so);
//!   an override re-posts them unchanged.
//! - Answers are matched by id; a stale answer is ignored.
//! - **A move of an order is one request.** Its fulfilment id is made
//!   before its first POST and kept until the agent answers; a move in
//!   doubt is retried unchanged or dropped on purpose, and no other move
//!   starts meanwhile. Scans never count beyond a line's quantity, and
//!   `picked` is posted once, when the last unit is counted.
//! - **A receipt of a transfer is one request** too: its event id is made
//!   before its first POST and kept until the agent answers; in doubt it
//!   is retried unchanged or dropped on purpose.
//! - **A count session is named before it starts**: its id is made before
//!   the first POST; a start in doubt is looked up under that id and
//!   posted again only when the agent does not know it. Finishing and
//!   accepting are idempotent at the agent, so they are simply asked
//!   again.

mod basket;
mod checkout;
mod counting;
mod dialogs;
mod orders;
mod override_;
mod picking;
mod pickup;
mod resume;
mod returns;
mod signin;
mod transfers;

use std::collections::BTreeMap;

use tally_agent_api::{
    AgentStatus, ApiError, CountAccepted, CountReportView, CountSessionRequest, CountSessionView,
    FulfilmentRecorded, LineBody, OrderList, OrderView, OverrideRequest, ReturnRecorded,
    ReturnRequest, SaleRecorded, SaleRequest, SaleView, SignInRequest, SignedIn, Stock,
    TransferList, TransferRecorded, TransferView,
};
use tally_hardware::rcn::RcnLayout;
use tally_sync::message::CatalogItem;
use tally_sync::EventId;

pub use basket::{CatalogEntry, Line, MAX_QTY};
pub use checkout::{Receipt, ReceiptLine, Tendered};
pub use counting::{
    live_items, session_id_of, shown, variance, Count, CountCall, CountView, EPCS_SHOWN, MAX_SHOWN,
};
pub use dialogs::Dialog;
pub use orders::{Listing, Move, OrderRefused, OrderWhy, Orders, MAX_LISTED};
pub use override_::{Approving, Refused, Why};
pub use picking::{CheckOff, Pick};
pub use pickup::{hand_over_to, Pickup};
pub use resume::{ResumeError, Saved, SavedLine, SavedRequest, SavedTender};
pub use transfers::{receivable, units, Receive, TransferRefused, TransferWhy, Transfers};

use crate::scan::{ScanError, Scanned};

/// Longest text the input line or a dialog field takes.
pub const MAX_INPUT: usize = 120;

/// A key, as the event loop translates the terminal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Ctrl + a letter.
    Ctrl(char),
    /// Function key F1–F12.
    F(u8),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Delete.
    Delete,
    /// Up arrow.
    Up,
    /// Down arrow.
    Down,
    /// Tab.
    Tab,
}

/// Everything that can happen to the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The cashier pressed a key.
    Key(Key),
    /// The store's scanner read a code (decoded by the driver).
    Scanned(Result<Scanned, ScanError>),
    /// The scanner connected (`true`) or was lost.
    Scanner {
        /// Connected now.
        connected: bool,
        /// Port path and, when lost, why.
        detail: String,
    },
    /// Answer to [`Effect::LookupCatalog`].
    Catalog {
        /// The item.
        gtin: String,
        /// The answer.
        result: Result<CatalogItem, ApiError>,
    },
    /// Answer to [`Effect::FetchStock`].
    Stock {
        /// The item.
        gtin: String,
        /// The answer.
        result: Result<Stock, ApiError>,
    },
    /// Answer to [`Effect::PostSale`].
    SaleDone {
        /// The id of the sale posted (as its request carried it).
        sale_id: Option<EventId>,
        /// The answer.
        result: Result<SaleRecorded, ApiError>,
    },
    /// Answer to [`Effect::PostReturn`].
    ReturnDone {
        /// The id of the return posted (as its request carried it).
        return_id: Option<EventId>,
        /// The answer.
        result: Result<ReturnRecorded, ApiError>,
    },
    /// Answer to [`Effect::LookupSale`].
    OriginalSale {
        /// The sale asked for.
        id: EventId,
        /// The answer.
        result: Result<SaleView, ApiError>,
    },
    /// A periodic `GET /v1/status` answer.
    Status(Result<AgentStatus, ApiError>),
    /// Answer to [`Effect::ListOrders`]: a page of the pick list.
    Orders {
        /// The `after` the page was asked from.
        after: String,
        /// The answer.
        result: Result<OrderList, ApiError>,
    },
    /// Answer to [`Effect::LookupOrder`].
    Order {
        /// The order asked for.
        order_id: String,
        /// The answer.
        result: Result<OrderView, ApiError>,
    },
    /// Answer to [`Effect::Fulfil`].
    Fulfilled {
        /// The order moved.
        order_id: String,
        /// The move's id (as its request carried it).
        fulfilment_id: Option<EventId>,
        /// The answer.
        result: Result<FulfilmentRecorded, ApiError>,
    },
    /// Time to refresh what an order screen or the Transfers screen
    /// shows (the event loop sends it every few seconds; the other
    /// screens ignore it).
    RefreshOrders,
    /// Answer to [`Effect::ListTransfers`]: a page of the transfers in
    /// transit.
    Transfers {
        /// The `after` the page was asked from.
        after: String,
        /// The answer.
        result: Result<TransferList, ApiError>,
    },
    /// Answer to [`Effect::LookupTransfer`].
    Transfer {
        /// The transfer asked for.
        transfer_id: String,
        /// The answer.
        result: Result<TransferView, ApiError>,
    },
    /// Answer to [`Effect::ReceiveTransfer`].
    TransferReceived {
        /// The transfer received.
        transfer_id: String,
        /// The receipt's event id (as its request carried it).
        event_id: Option<EventId>,
        /// The answer.
        result: Result<TransferRecorded, ApiError>,
    },
    /// Time to poll the live count session shown (the event loop sends
    /// it every second; ignored unless the Count screen shows one).
    RefreshCount,
    /// Answer to [`Effect::StartCount`].
    CountStarted {
        /// The session's id (as its request carried it).
        session_id: String,
        /// The answer.
        result: Result<CountSessionView, ApiError>,
    },
    /// Answer to [`Effect::LookupCount`].
    CountSession {
        /// The session asked for.
        session_id: String,
        /// The answer.
        result: Result<CountSessionView, ApiError>,
    },
    /// Answer to [`Effect::CountReport`].
    CountReport {
        /// The session asked for.
        session_id: String,
        /// The answer.
        result: Result<CountReportView, ApiError>,
    },
    /// Answer to [`Effect::FinishCount`].
    CountFinished {
        /// The session finished.
        session_id: String,
        /// The answer: its variance report.
        result: Result<CountReportView, ApiError>,
    },
    /// Answer to [`Effect::AcceptCount`].
    CountAccepted {
        /// The session accepted.
        session_id: String,
        /// The answer: the adjustments recorded.
        result: Result<CountAccepted, ApiError>,
    },
    /// The agent's answer to a cashier's sign-in.
    SignedIn(Result<SignedIn, ApiError>),
}

/// What the event loop must do for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `GET /v1/catalog/{gtin}` → [`Action::Catalog`].
    LookupCatalog(String),
    /// `GET /v1/stock/{gtin}` → [`Action::Stock`].
    FetchStock(String),
    /// `POST /v1/sales` → [`Action::SaleDone`].
    PostSale(SaleRequest),
    /// `POST /v1/returns` → [`Action::ReturnDone`].
    PostReturn(ReturnRequest),
    /// `GET /v1/sales/{id}` → [`Action::OriginalSale`].
    LookupSale(EventId),
    /// `GET /v1/orders?status=open&after=…` → [`Action::Orders`].
    ListOrders {
        /// The last order id of the page before (empty: the first page).
        after: String,
    },
    /// `GET /v1/orders/{id}` → [`Action::Order`].
    LookupOrder(String),
    /// `POST /v1/orders/{id}/picked|collected|shipped` →
    /// [`Action::Fulfilled`].
    Fulfil(Move),
    /// `GET /v1/transfers?status=in_transit&after=…` →
    /// [`Action::Transfers`].
    ListTransfers {
        /// The last transfer id of the page before (empty: the first page).
        after: String,
    },
    /// `GET /v1/transfers/{id}` → [`Action::Transfer`].
    LookupTransfer(String),
    /// `POST /v1/transfers/{id}/received` → [`Action::TransferReceived`].
    ReceiveTransfer(Receive),
    /// `POST /v1/counts/sessions` → [`Action::CountStarted`].
    StartCount(CountSessionRequest),
    /// `GET /v1/counts/sessions/{id}` → [`Action::CountSession`].
    LookupCount(String),
    /// `GET /v1/counts/sessions/{id}/report` → [`Action::CountReport`].
    CountReport(String),
    /// `POST /v1/counts/sessions/{id}/finish` → [`Action::CountFinished`].
    FinishCount(String),
    /// `POST /v1/counts/sessions/{id}/accept` → [`Action::CountAccepted`].
    AcceptCount(String),
    /// `POST /v1/cashiers/sign-in` → [`Action::SignedIn`]; the client
    /// keeps the session.
    SignIn(SignInRequest),
    /// `POST /v1/cashiers/sign-out`; the client forgets the session.
    SignOut,
    /// Leave the terminal.
    Quit,
}

/// Inputs from outside the machine for one update.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// A fresh UUIDv7, used only when a new sale, return or fulfilment id
    /// is needed.
    pub fresh_id: EventId,
}

/// Selling or taking returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sales.
    Sale,
    /// Returns.
    Return,
}

/// The screen the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The basket (sales or returns).
    Basket,
    /// The pick list: the store's open orders; scans pick the selected one.
    PickList,
    /// Pickup: an order looked up by its barcode or id, handed over.
    Pickup,
    /// Transfers: transfers from other stores in transit to this one,
    /// received here.
    Transfers,
    /// Count: RFID cycle-count sessions started, watched, finished and
    /// accepted.
    Count,
}

/// What the terminal knows of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentLink {
    /// No answer yet.
    Unknown,
    /// The last call answered.
    Up(AgentStatus),
    /// The last call got no answer.
    Down(String),
    /// The agent answered that it does not serve this terminal (its till
    /// token missing or wrong, or a host it does not answer to): what it
    /// said and what to do.
    Refused(String),
}

impl PosState {
    /// Whether the agent reported, at its last answer, that it reaches
    /// the hub (a shortage of rights held elsewhere is then not for want
    /// of a link).
    pub fn hub_online(&self) -> bool {
        matches!(&self.agent, AgentLink::Up(st) if st.online)
    }
}

/// Severity of the notice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something the cashier must act on.
    Error,
}

/// The request whose answer is awaited or in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A sale.
    Sale(SaleRequest),
    /// A return.
    Return(ReturnRequest),
}

impl Pending {
    /// The same request keyed by `cashier`.
    pub fn with_cashier(self, cashier: &str) -> Self {
        let cashier = Some(cashier.to_string());
        match self {
            Pending::Sale(r) => Pending::Sale(SaleRequest { cashier, ..r }),
            Pending::Return(r) => Pending::Return(ReturnRequest { cashier, ..r }),
        }
    }

    /// The same request with `approval` (a sale's override, a return's
    /// approval).
    pub fn with_approval(self, approval: OverrideRequest) -> Self {
        match self {
            Pending::Sale(r) => Pending::Sale(SaleRequest {
                override_: Some(approval),
                ..r
            }),
            Pending::Return(r) => Pending::Return(ReturnRequest {
                approval: Some(approval),
                ..r
            }),
        }
    }
}

/// The whole terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct PosState {
    /// The agent's URL (shown).
    pub agent_url: String,
    /// Restricted-circulation layouts for typed weighed-goods codes.
    pub rcn_layouts: Vec<RcnLayout>,
    /// Sale or return.
    pub mode: Mode,
    /// The basket.
    pub lines: Vec<Line>,
    /// Selected line index.
    pub selected: usize,
    /// The input line.
    pub input: String,
    /// Catalog answers, per GTIN (cleared for each new basket).
    pub catalog: BTreeMap<String, CatalogEntry>,
    /// Stock answers, per GTIN (cleared for each new basket).
    pub stock: BTreeMap<String, Stock>,
    /// Tenders taken for the open sale.
    pub tenders: Vec<Tendered>,
    /// Return: the original sale.
    pub original_sale_id: Option<EventId>,
    /// Return: the web order the items came from (the hub finds its
    /// sale), when no sale id is given.
    pub original_order_id: Option<String>,
    /// Return against a named sale: what it charged per item (its lowest
    /// unit price for the item, as the agent refunds), once looked up.
    pub original_prices: BTreeMap<String, i64>,
    /// Id of the open sale or return, from its first POST on.
    pub event_id: Option<EventId>,
    /// The request in flight or in doubt.
    pub pending: Option<Pending>,
    /// Whether the last POST's outcome is unknown (basket locked).
    pub in_doubt: bool,
    /// The approval the request in flight carries (refusal, manager,
    /// reason): a PIN the agent does not accept asks for the PIN again,
    /// the tenders kept.
    pub approving: Option<Approving>,
    /// A manager's approval given before payment (a keyed price), for
    /// the lines as they were then: posted with the sale while they are
    /// unchanged.
    pub approved_ahead: Option<(Vec<LineBody>, OverrideRequest)>,
    /// The open dialog.
    pub dialog: Option<Dialog>,
    /// The agent.
    pub agent: AgentLink,
    /// The scanner: (connected, detail), when one is configured.
    pub scanner: Option<(bool, String)>,
    /// One-line notice.
    pub notice: Option<(Level, String)>,
    /// The cashier at this terminal (sent with every post; where the
    /// agent wants cashiers signed in, the one signed in).
    pub cashier: String,
    /// The cashier signed in with the agent, where it wants one.
    pub signed_in: Option<String>,
    /// The agent's catalog version last seen in its status.
    pub catalog_seen: Option<u64>,
    /// The catalog moved and the basket is to be looked up again, as soon
    /// as no payment is under way.
    pub reprice_due: bool,
    /// This till's id, sent with every post when known (with a till token
    /// the agent knows the till from the token).
    pub till: Option<String>,
    /// The screen shown.
    pub screen: Screen,
    /// The store's orders: the pick list, picks, the pickup screen's
    /// order, a move in flight.
    pub orders: Orders,
    /// Transfers in transit, the selected one, a receipt in flight.
    pub transfers: Transfers,
    /// The Count screen: the next count's list and zone, the session
    /// shown, the call awaited.
    pub count: Count,
}

impl PosState {
    /// A terminal with an empty basket.
    pub fn new(agent_url: impl Into<String>, rcn_layouts: Vec<RcnLayout>) -> Self {
        PosState {
            agent_url: agent_url.into(),
            rcn_layouts,
            mode: Mode::Sale,
            lines: Vec::new(),
            selected: 0,
            input: String::new(),
            catalog: BTreeMap::new(),
            stock: BTreeMap::new(),
            tenders: Vec::new(),
            original_sale_id: None,
            original_order_id: None,
            original_prices: BTreeMap::new(),
            event_id: None,
            pending: None,
            in_doubt: false,
            approving: None,
            approved_ahead: None,
            dialog: None,
            agent: AgentLink::Unknown,
            scanner: None,
            notice: None,
            cashier: "cashier".into(),
            signed_in: None,
            catalog_seen: None,
            reprice_due: false,
            till: None,
            screen: Screen::Basket,
            orders: Orders::default(),
            transfers: Transfers::default(),
            count: Count::default(),
        }
    }

    /// The terminal with `cashier` (as named; signed in where the agent
    /// wants it) at `till`.
    pub fn with_staff(mut self, cashier: impl Into<String>, till: Option<String>) -> Self {
        self.cashier = cashier.into();
        self.till = till;
        self
    }

    /// The till's journal could not keep what [`Self::saved`] says. A
    /// request about to be posted is then not posted (answers `true`: the
    /// caller drops its post): nothing leaves the till that a restart
    /// could lose track of. Otherwise (clearing failed) it is only said.
    pub fn journal_failed(&mut self, error: &str) -> bool {
        if self.in_flight() {
            self.pending = None;
            self.approving = None;
            self.dialog = Some(Dialog::Invalid {
                message: format!(
                    "The till's journal cannot be written ({error}): nothing was sent, nothing is recorded. Use another till until this one's disk is fixed."
                ),
            });
            return true;
        }
        self.notify(
            Level::Error,
            format!("The till's journal cannot be written ({error})."),
        );
        false
    }

    /// Whether the first attempt of a sale or return is on its way (its
    /// answer awaited, its outcome not yet in doubt): nothing may pay,
    /// discard or send it again until the answer comes.
    pub fn in_flight(&self) -> bool {
        self.pending.is_some() && !self.in_doubt
    }

    /// Whether any request awaits the agent's answer (a sale or return,
    /// an order move, a transfer receipt, a count call): a "sending"
    /// dialog is up for one of them.
    pub(super) fn awaiting_answer(&self) -> bool {
        self.pending.is_some()
            || self.orders.moving.is_some()
            || self.transfers.receiving.is_some()
            || self.count.call.is_some()
    }

    /// Whether a sale or return is open (quitting would lose it).
    pub fn basket_open(&self) -> bool {
        !self.lines.is_empty() || self.pending.is_some()
    }

    /// Applies one action; returns the effects to run.
    pub fn update(&mut self, action: Action, env: &Env) -> Vec<Effect> {
        match action {
            Action::Key(key) => self.key(key, env),
            Action::Scanned(scan) => match self.screen {
                Screen::Basket => self.scanned(scan),
                Screen::PickList => self.pick_scan(scan, env),
                Screen::Pickup => self.pickup_scan(scan),
                Screen::Transfers => self.transfer_scan(scan),
                Screen::Count => self.count_scan(scan),
            },
            Action::Scanner { connected, detail } => {
                self.scanner = Some((connected, detail));
                Vec::new()
            }
            Action::Catalog { gtin, result } => self.catalog_answer(gtin, result),
            Action::Stock { gtin, result } => self.stock_answer(gtin, result),
            Action::SaleDone { sale_id, result } => self.sale_done(sale_id, result),
            Action::ReturnDone { return_id, result } => self.return_done(return_id, result),
            Action::OriginalSale { id, result } => self.original_sale_answer(id, result),
            Action::Status(result) => self.status(result),
            Action::Orders { after, result } => self.orders_answer(&after, result),
            Action::Order { order_id, result } => self.order_answer(&order_id, result),
            Action::Fulfilled {
                order_id,
                fulfilment_id,
                result,
            } => self.fulfilled(&order_id, fulfilment_id, result),
            Action::RefreshOrders => self.refresh_orders(),
            Action::Transfers { after, result } => self.transfers_answer(&after, result),
            Action::Transfer {
                transfer_id,
                result,
            } => self.transfer_answer(&transfer_id, result),
            Action::TransferReceived {
                transfer_id,
                event_id,
                result,
            } => self.transfer_received(&transfer_id, event_id, result),
            Action::RefreshCount => self.refresh_count(),
            Action::CountStarted { session_id, result } => self.count_started(&session_id, result),
            Action::CountSession { session_id, result } => {
                self.count_session_answer(&session_id, result)
            }
            Action::CountReport { session_id, result } => {
                self.count_report_answer(&session_id, result)
            }
            Action::CountFinished { session_id, result } => {
                self.count_finished(&session_id, result)
            }
            Action::CountAccepted { session_id, result } => {
                self.count_accepted(&session_id, result)
            }
            Action::SignedIn(result) => self.signed_in_answer(result),
        }
    }

    fn status(&mut self, result: Result<AgentStatus, ApiError>) -> Vec<Effect> {
        match result {
            Ok(s) => {
                let was_up = matches!(self.agent, AgentLink::Up(_));
                if self.catalog_seen.is_some_and(|v| v != s.catalog_version) {
                    self.reprice_due = true;
                }
                self.catalog_seen = Some(s.catalog_version);
                self.agent = AgentLink::Up(s);
                let mut effects = self.reprice_basket();
                if was_up {
                    return effects;
                }
                // Back (or up for the first time): ask again what failed,
                // and a cashier to sign in where the agent wants one.
                if self.sign_in_needed() && self.dialog.is_none() {
                    effects.extend(self.ask_sign_in());
                }
                effects.extend(self.lookups_to_retry());
                effects.extend(self.orders_to_retry());
                effects.extend(self.transfers_to_retry());
                effects
            }
            Err(e) => {
                self.note_failure(&e);
                Vec::new()
            }
        }
    }

    /// Marks the agent down when a call got no answer at all, and
    /// refusing this terminal when it said so (until it answers again).
    fn note_failure(&mut self, e: &ApiError) {
        match e {
            ApiError::Unreachable(why) => self.agent = AgentLink::Down(why.clone()),
            ApiError::Denied(body) => {
                let what = match body.error.as_str() {
                    "till_token_required" => "this till's token is missing or wrong: start the terminal with --token TOKEN (or TALLY_TILL_TOKEN) of a till configured at the agent",
                    "host_not_allowed" | "origin_not_allowed" => {
                        "the agent does not answer to the address this terminal uses: add it to [api] allowed_hosts at the agent, or use the agent's own address"
                    }
                    // A manager's approval refused: about one request.
                    _ => return,
                };
                self.agent = AgentLink::Refused(format!("{what} ({})", body.message));
            }
            _ => {}
        }
    }

    fn notify(&mut self, level: Level, text: impl Into<String>) {
        self.notice = Some((level, text.into()));
    }

    fn key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if matches!(key, Key::Ctrl('c') | Key::Ctrl('q') | Key::F(10)) {
            return self.ask_quit();
        }
        if key == Key::Ctrl('l') && self.dialog.is_none() {
            return self.sign_out();
        }
        match (self.dialog.take(), self.screen) {
            (None, Screen::Basket) => self.basket_key(key, env),
            (None, Screen::PickList) => self.pick_list_key(key, env),
            (None, Screen::Pickup) => self.pickup_key(key, env),
            (None, Screen::Transfers) => self.transfers_key(key, env),
            (None, Screen::Count) => self.count_key(key, env),
            (Some(d), _) => self.dialog_key(d, key, env),
        }
    }

    fn ask_quit(&mut self) -> Vec<Effect> {
        if matches!(self.dialog, Some(Dialog::ConfirmQuit { .. })) {
            return Vec::new();
        }
        if self.basket_open() || self.orders.moving.is_some() || self.transfers.receiving.is_some()
        {
            let under = self.dialog.take().map(Box::new);
            self.dialog = Some(Dialog::ConfirmQuit { under });
            Vec::new()
        } else {
            vec![Effect::Quit]
        }
    }

    /// Clears the basket for the next customer (the mode stays).
    fn new_basket(&mut self) {
        self.lines.clear();
        self.selected = 0;
        self.catalog.clear();
        self.stock.clear();
        self.tenders.clear();
        self.original_sale_id = None;
        self.original_order_id = None;
        self.original_prices.clear();
        self.event_id = None;
        self.pending = None;
        self.in_doubt = false;
        self.approving = None;
        self.approved_ahead = None;
        self.dialog = None;
        self.notice = None;
    }
}
