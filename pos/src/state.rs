//! The cashier terminal's state machine: [`PosState::update`] takes an
//! [`Action`] (a key, a scan, an answer from the agent) and returns the
//! [`Effect`]s to run (API calls, quit). No I/O, no clock, no randomness:
//! a fresh id comes in through [`Env`], so every flow is tested directly.
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

use std::collections::BTreeMap;

use crate::money::{format_minor, parse_amount};
use crate::scan::{self, Measure, ScanError, Scanned};
use tally_agent_api::{
    AgentStatus, ApiError, ErrorBody, LineBody, ReturnRecorded, ReturnRequest, SaleRecorded,
    SaleRequest, SaleView, Stock,
};
use tally_hardware::rcn::RcnLayout;
use tally_sync::command::Approval;
use tally_sync::message::CatalogItem;
use tally_sync::{EventId, Refusal, Tender};

/// Longest text the input line or a dialog field takes.
pub const MAX_INPUT: usize = 120;
/// Largest quantity of one line.
pub const MAX_QTY: u64 = 9_999;

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
    /// Leave the terminal.
    Quit,
}

/// Inputs from outside the machine for one update.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// A fresh UUIDv7, used only when a new sale or return id is needed.
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

/// What the terminal knows of an item's catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEntry {
    /// Asked, no answer yet.
    Pending,
    /// Known.
    Found(CatalogItem),
    /// The agent does not know the item.
    Missing,
    /// The question failed.
    Failed(String),
}

/// One basket line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// GTIN, 14 digits.
    pub gtin: String,
    /// Units.
    pub qty: u64,
    /// Serialized item's EPC (qty is then 1).
    pub epc: Option<String>,
    /// Embedded price or weight.
    pub measure: Option<Measure>,
    /// Price set by the cashier (F4), over any other.
    pub manual_price: Option<i64>,
}

impl Line {
    fn from_scan(s: &Scanned) -> Self {
        Line {
            gtin: s.gtin.clone(),
            qty: 1,
            epc: s.epc.clone(),
            measure: s.measure,
            manual_price: None,
        }
    }

    /// A plain line a second scan of the same item adds to.
    fn merges_with(&self, s: &Scanned) -> bool {
        self.gtin == s.gtin
            && self.epc.is_none()
            && s.epc.is_none()
            && self.measure.is_none()
            && s.measure.is_none()
            && self.manual_price.is_none()
    }
}

/// A tender taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tendered {
    /// `cash` or `card`.
    pub method: &'static str,
    /// Applied to the sale.
    pub applied_minor: i64,
    /// Handed over (cash; equals `applied_minor` for card).
    pub given_minor: i64,
    /// Card reference.
    pub reference: Option<String>,
}

/// A printed line of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// Item name (or GTIN).
    pub name: String,
    /// Units.
    pub qty: u64,
    /// Price per unit.
    pub unit_price_minor: i64,
    /// Line total.
    pub total_minor: i64,
}

/// What the cashier sees after the agent confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Sale or return.
    pub mode: Mode,
    /// Sale or return id.
    pub id: EventId,
    /// Lines.
    pub lines: Vec<ReceiptLine>,
    /// The total the agent recorded.
    pub total_minor: i64,
    /// The total the terminal computed, if different (shown as a warning).
    pub local_total_minor: Option<i64>,
    /// Tenders.
    pub tenders: Vec<Tendered>,
    /// Change due to the customer.
    pub change_minor: i64,
    /// Manager override (approver, reason).
    pub override_: Option<(String, String)>,
    /// Return: the original sale.
    pub original_sale_id: Option<EventId>,
}

/// Why the agent refused a post (409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// One of the rules, with its details.
    Rule(Refusal),
    /// A code this terminal does not know, as the agent answered it.
    Unknown(Box<ErrorBody>),
}

/// Where a refused sale stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub why: Why,
    /// Whether a manager override may be tried: a sale whose refused
    /// request did not already carry one.
    pub can_override: bool,
    /// The item's stock, once fetched (insufficient stock).
    pub stock: Option<Stock>,
}

/// A modal dialog over the basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// Set the selected line's quantity.
    Quantity {
        /// Typed.
        input: String,
    },
    /// Set the selected line's unit price.
    Price {
        /// Typed.
        input: String,
    },
    /// Choose cash or card.
    Tender,
    /// Cash handed over.
    Cash {
        /// Typed.
        input: String,
    },
    /// Card reference.
    Card {
        /// Typed.
        input: String,
    },
    /// Confirm a refund (returns).
    ConfirmRefund,
    /// The original sale of a return.
    OriginalSale {
        /// Typed.
        input: String,
    },
    /// A POST is in flight.
    Sending,
    /// The agent refused the sale (409).
    Refused(Refused),
    /// Override: who approves.
    OverrideApprover {
        /// The refusal being overridden.
        refused: Refused,
        /// Typed.
        input: String,
    },
    /// Override: why.
    OverrideReason {
        /// The refusal being overridden.
        refused: Refused,
        /// Approver.
        approver: String,
        /// Typed.
        input: String,
    },
    /// The agent found the request invalid (422).
    Invalid {
        /// The agent's message.
        message: String,
    },
    /// The outcome is unknown: retry with the same id.
    InDoubt {
        /// What went wrong.
        error: String,
    },
    /// The confirmed sale or return.
    Receipt(Receipt),
    /// Quit with an open basket?
    ConfirmQuit,
    /// Discard the open basket?
    ConfirmDiscard,
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
    /// Id of the open sale or return, from its first POST on.
    pub event_id: Option<EventId>,
    /// The request in flight or in doubt.
    pub pending: Option<Pending>,
    /// Whether the last POST's outcome is unknown (basket locked).
    pub in_doubt: bool,
    /// The open dialog.
    pub dialog: Option<Dialog>,
    /// The agent.
    pub agent: AgentLink,
    /// The scanner: (connected, detail), when one is configured.
    pub scanner: Option<(bool, String)>,
    /// One-line notice.
    pub notice: Option<(Level, String)>,
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
            event_id: None,
            pending: None,
            in_doubt: false,
            dialog: None,
            agent: AgentLink::Unknown,
            scanner: None,
            notice: None,
        }
    }

    // ---- derived values ---------------------------------------------------

    /// The unit price of a line, when known: the cashier's, the one in the
    /// barcode, or the catalog's (per kg × weight for weighed goods).
    pub fn unit_price(&self, line: &Line) -> Option<i64> {
        if let Some(p) = line.manual_price {
            return Some(p);
        }
        let catalog = match self.catalog.get(&line.gtin) {
            Some(CatalogEntry::Found(item)) => Some(item.price_minor),
            _ => None,
        };
        tally_hardware::measure::unit_price(line.measure, catalog)
    }

    /// A line's total, when its price is known.
    pub fn line_total(&self, line: &Line) -> Option<i64> {
        self.unit_price(line)
            .and_then(|p| p.checked_mul(i64::try_from(line.qty).ok()?))
    }

    /// The display name of a line's item.
    pub fn name(&self, line: &Line) -> String {
        match self.catalog.get(&line.gtin) {
            Some(CatalogEntry::Found(item)) => item.name.clone(),
            Some(CatalogEntry::Pending) | None => format!("{} (looking up…)", line.gtin),
            Some(CatalogEntry::Missing) => format!("{} (not in catalog)", line.gtin),
            Some(CatalogEntry::Failed(_)) => format!("{} (lookup failed)", line.gtin),
        }
    }

    /// The basket total, or the first line (index) without a price.
    pub fn total(&self) -> Result<i64, usize> {
        let mut sum: i64 = 0;
        for (i, l) in self.lines.iter().enumerate() {
            let t = self.line_total(l).ok_or(i)?;
            sum = sum.checked_add(t).ok_or(i)?;
        }
        Ok(sum)
    }

    /// What is still due after the tenders taken.
    pub fn due(&self) -> Option<i64> {
        let paid: i64 = self.tenders.iter().map(|t| t.applied_minor).sum();
        self.total().ok().map(|t| t - paid)
    }

    /// Units of an item in the basket.
    pub fn units_of(&self, gtin: &str) -> u64 {
        self.lines
            .iter()
            .filter(|l| l.gtin == gtin)
            .map(|l| l.qty)
            .sum()
    }

    /// Whether the basket holds more of a line's item than the store may
    /// sell, as far as the last stock answer tells: the units it may sell.
    pub fn short_of(&self, line: &Line) -> Option<u64> {
        if self.mode != Mode::Sale {
            return None;
        }
        let s = self.stock.get(&line.gtin)?;
        (self.units_of(&line.gtin) > s.rights).then_some(s.rights)
    }

    /// Whether a sale or return is open (quitting would lose it).
    pub fn basket_open(&self) -> bool {
        !self.lines.is_empty() || self.pending.is_some()
    }

    // ---- the machine ------------------------------------------------------

    /// Applies one action; returns the effects to run.
    pub fn update(&mut self, action: Action, env: &Env) -> Vec<Effect> {
        match action {
            Action::Key(key) => self.key(key, env),
            Action::Scanned(scan) => self.scanned(scan),
            Action::Scanner { connected, detail } => {
                self.scanner = Some((connected, detail));
                Vec::new()
            }
            Action::OriginalSale { id, result } => {
                // An answer for a sale id no longer entered is stale.
                if self.original_sale_id == Some(id) {
                    match result {
                        Ok(sale) => {
                            let (sold, left) = sale.sold_and_left();
                            self.notify(
                                Level::Info,
                                format!("Sale {id}: {sold} units sold, {left} left to return."),
                            );
                        }
                        Err(ApiError::NotFound) => self.notify(
                            Level::Error,
                            format!(
                                "Sale {id} is not recorded at this store: the refund is not checked against it."
                            ),
                        ),
                        Err(e) => self.note_failure(&e),
                    }
                }
                Vec::new()
            }
            Action::Catalog { gtin, result } => {
                let entry = match result {
                    Ok(item) => CatalogEntry::Found(item),
                    Err(ApiError::NotFound) => CatalogEntry::Missing,
                    Err(e) => {
                        self.note_failure(&e);
                        CatalogEntry::Failed(e.to_string())
                    }
                };
                if self.lines.iter().any(|l| l.gtin == gtin) {
                    self.catalog.insert(gtin, entry);
                }
                Vec::new()
            }
            Action::Stock { gtin, result } => {
                match result {
                    Ok(s) => {
                        if let Some(Dialog::Refused(r)) = &mut self.dialog {
                            if matches!(&r.why, Why::Rule(Refusal::InsufficientStock { gtin: g, .. }) if g.to_string() == gtin)
                            {
                                r.stock = Some(s);
                            }
                        }
                        if self.lines.iter().any(|l| l.gtin == gtin) {
                            self.stock.insert(gtin, s);
                        }
                    }
                    Err(e) => self.note_failure(&e),
                }
                Vec::new()
            }
            Action::SaleDone { sale_id, result } => self.sale_done(sale_id, result),
            Action::ReturnDone { return_id, result } => self.return_done(return_id, result),
            Action::Status(result) => self.status(result),
        }
    }

    fn status(&mut self, result: Result<AgentStatus, ApiError>) -> Vec<Effect> {
        match result {
            Ok(s) => {
                let was_up = matches!(self.agent, AgentLink::Up(_));
                self.agent = AgentLink::Up(s);
                if was_up {
                    return Vec::new();
                }
                // Back (or up for the first time): ask again what failed.
                let mut effects = Vec::new();
                for (gtin, entry) in &mut self.catalog {
                    if matches!(entry, CatalogEntry::Failed(_)) {
                        *entry = CatalogEntry::Pending;
                        effects.push(Effect::LookupCatalog(gtin.clone()));
                    }
                }
                effects
            }
            Err(e) => {
                self.note_failure(&e);
                Vec::new()
            }
        }
    }

    /// Marks the agent down when a call got no answer at all.
    fn note_failure(&mut self, e: &ApiError) {
        if let ApiError::Unreachable(why) = e {
            self.agent = AgentLink::Down(why.clone());
        }
    }

    fn notify(&mut self, level: Level, text: impl Into<String>) {
        self.notice = Some((level, text.into()));
    }

    fn key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if matches!(key, Key::Ctrl('c') | Key::Ctrl('q') | Key::F(10)) {
            return self.ask_quit();
        }
        match self.dialog.take() {
            None => self.basket_key(key, env),
            Some(d) => self.dialog_key(d, key, env),
        }
    }

    fn ask_quit(&mut self) -> Vec<Effect> {
        if matches!(self.dialog, Some(Dialog::ConfirmQuit)) {
            return Vec::new();
        }
        if self.basket_open() {
            self.dialog = Some(Dialog::ConfirmQuit);
            Vec::new()
        } else {
            vec![Effect::Quit]
        }
    }

    /// Whether the basket may be edited; says why not otherwise.
    fn editable(&mut self) -> bool {
        if self.in_doubt {
            self.notify(
                Level::Error,
                "The last attempt may have been recorded: F5 retries it (same id), F8 discards.",
            );
            return false;
        }
        if self.pending.is_some() {
            self.notify(Level::Error, "Waiting for the agent's answer.");
            return false;
        }
        if !self.tenders.is_empty() {
            self.notify(
                Level::Error,
                "Payment started: F5 to finish it, F8 to discard the sale.",
            );
            return false;
        }
        true
    }

    fn basket_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        let selected = self.lines.get(self.selected).cloned();
        match key {
            Key::Char(c) if !c.is_control() => {
                let plus_minus = (c == '+' || c == '-') && self.input.is_empty();
                if plus_minus {
                    if let Some(line) = selected {
                        return self.bump_qty(&line, c == '+');
                    }
                }
                if self.input.chars().count() < MAX_INPUT {
                    self.input.push(c);
                }
                Vec::new()
            }
            Key::Backspace => {
                self.input.pop();
                Vec::new()
            }
            Key::Esc => {
                self.input.clear();
                Vec::new()
            }
            Key::Up => {
                self.selected = self.selected.saturating_sub(1);
                Vec::new()
            }
            Key::Down => {
                if self.selected + 1 < self.lines.len() {
                    self.selected += 1;
                }
                Vec::new()
            }
            Key::Enter if !self.input.trim().is_empty() => {
                let text = std::mem::take(&mut self.input);
                let scan = scan::from_typed(&text, &self.rcn_layouts);
                self.scanned(scan)
            }
            Key::Enter | Key::F(5) | Key::Ctrl('p') => self.start_payment(env),
            Key::F(2) => {
                if let Some(line) = selected {
                    if line.epc.is_some() || line.measure.is_some() {
                        self.notify(
                            Level::Error,
                            "This line's quantity is fixed (tagged or weighed item).",
                        );
                    } else if self.editable() {
                        self.dialog = Some(Dialog::Quantity {
                            input: String::new(),
                        });
                    }
                }
                Vec::new()
            }
            Key::F(3) | Key::Delete => {
                if selected.is_some() && self.editable() {
                    let line = self.lines.remove(self.selected);
                    let name = self.name(&line);
                    self.selected = self.selected.min(self.lines.len().saturating_sub(1));
                    self.notify(Level::Info, format!("Voided: {name} × {}", line.qty));
                    if self.lines.is_empty() {
                        self.event_id = None;
                    }
                }
                Vec::new()
            }
            Key::F(4) => {
                if selected.is_some() && self.editable() {
                    self.dialog = Some(Dialog::Price {
                        input: String::new(),
                    });
                }
                Vec::new()
            }
            Key::F(6) | Key::Ctrl('r') => {
                if self.basket_open() {
                    self.notify(
                        Level::Error,
                        "Finish or discard (F8) the open basket first.",
                    );
                } else {
                    self.mode = match self.mode {
                        Mode::Sale => Mode::Return,
                        Mode::Return => Mode::Sale,
                    };
                    self.original_sale_id = None;
                    self.notify(
                        Level::Info,
                        match self.mode {
                            Mode::Sale => "Sale mode.",
                            Mode::Return => {
                                "Returns mode: scan the returned items; F7 original sale."
                            }
                        },
                    );
                }
                Vec::new()
            }
            Key::F(7) if self.mode == Mode::Return => {
                if self.editable() {
                    self.dialog = Some(Dialog::OriginalSale {
                        input: self
                            .original_sale_id
                            .map(|u| u.to_string())
                            .unwrap_or_default(),
                    });
                }
                Vec::new()
            }
            Key::F(8) | Key::Ctrl('n') => {
                if self.basket_open() {
                    self.dialog = Some(Dialog::ConfirmDiscard);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn bump_qty(&mut self, line: &Line, up: bool) -> Vec<Effect> {
        if line.epc.is_some() || line.measure.is_some() {
            self.notify(
                Level::Error,
                "This line's quantity is fixed (tagged or weighed item).",
            );
            return Vec::new();
        }
        if !self.editable() {
            return Vec::new();
        }
        let qty = if up {
            (line.qty + 1).min(MAX_QTY)
        } else if line.qty > 1 {
            line.qty - 1
        } else {
            self.notify(Level::Info, "Quantity is 1: Del voids the line.");
            return Vec::new();
        };
        self.set_qty(qty)
    }

    fn set_qty(&mut self, qty: u64) -> Vec<Effect> {
        let Some(line) = self.lines.get_mut(self.selected) else {
            return Vec::new();
        };
        line.qty = qty;
        let gtin = line.gtin.clone();
        self.notice = None;
        // Re-check the store's rights for the new quantity.
        if self.mode == Mode::Sale {
            vec![Effect::FetchStock(gtin)]
        } else {
            Vec::new()
        }
    }

    fn scanned(&mut self, scan: Result<Scanned, ScanError>) -> Vec<Effect> {
        match &self.dialog {
            Some(Dialog::Receipt(_)) => self.new_basket(),
            Some(_) => {
                self.notify(Level::Error, "Scan ignored: close the dialog first (Esc).");
                return Vec::new();
            }
            None => {}
        }
        let s = match scan {
            Ok(s) => s,
            Err(e) => {
                self.notify(Level::Error, e.to_string());
                return Vec::new();
            }
        };
        if !self.editable() {
            return Vec::new();
        }
        if let Some(epc) = &s.epc {
            if self.lines.iter().any(|l| l.epc.as_ref() == Some(epc)) {
                self.notify(Level::Error, format!("Tag {epc} is already in the basket."));
                return Vec::new();
            }
        }
        if let Some(i) = self.lines.iter().position(|l| l.merges_with(&s)) {
            self.selected = i;
            let qty = (self.lines[i].qty + 1).min(MAX_QTY);
            let effects = self.set_qty(qty);
            self.notify(
                Level::Info,
                format!("{} × {qty}", self.name(&self.lines[i])),
            );
            return effects;
        }
        self.lines.push(Line::from_scan(&s));
        self.selected = self.lines.len() - 1;
        self.notice = None;
        let mut effects = Vec::new();
        if !self.catalog.contains_key(&s.gtin)
            || matches!(self.catalog.get(&s.gtin), Some(CatalogEntry::Failed(_)))
        {
            self.catalog.insert(s.gtin.clone(), CatalogEntry::Pending);
            effects.push(Effect::LookupCatalog(s.gtin.clone()));
        }
        if self.mode == Mode::Sale {
            effects.push(Effect::FetchStock(s.gtin));
        }
        effects
    }

    /// Clears the basket for the next customer (the mode stays).
    fn new_basket(&mut self) {
        self.lines.clear();
        self.selected = 0;
        self.catalog.clear();
        self.stock.clear();
        self.tenders.clear();
        self.original_sale_id = None;
        self.event_id = None;
        self.pending = None;
        self.in_doubt = false;
        self.dialog = None;
        self.notice = None;
    }

    fn start_payment(&mut self, env: &Env) -> Vec<Effect> {
        if self.in_doubt {
            return self.resend();
        }
        if self.lines.is_empty() {
            self.notify(Level::Info, "The basket is empty: scan or type a barcode.");
            return Vec::new();
        }
        let total = match self.total() {
            Ok(t) => t,
            Err(i) => {
                self.selected = i;
                self.notify(
                    Level::Error,
                    format!("Line {} has no price yet: F4 sets it.", i + 1),
                );
                return Vec::new();
            }
        };
        match self.mode {
            Mode::Return => {
                self.dialog = Some(Dialog::ConfirmRefund);
                Vec::new()
            }
            Mode::Sale if total <= 0 => self.post_sale(None, env),
            Mode::Sale => {
                self.dialog = Some(Dialog::Tender);
                Vec::new()
            }
        }
    }

    fn lines_body(&self) -> Vec<LineBody> {
        self.lines
            .iter()
            .map(|l| LineBody {
                gtin: l.gtin.clone(),
                qty: i64::try_from(l.qty).unwrap_or(i64::MAX),
                unit_price_minor: self.price_to_send(l),
                epc: l.epc.clone(),
            })
            .collect()
    }

    /// The price a line is posted with. A return against a named sale
    /// sends only prices the cashier typed or the label printed: the agent
    /// refunds the rest at what that sale charged, and refuses a refund
    /// above it (the catalog price may have risen since).
    fn price_to_send(&self, l: &Line) -> Option<i64> {
        let from_catalog =
            l.manual_price.is_none() && !matches!(l.measure, Some(Measure::Price(_)));
        if self.mode == Mode::Return && self.original_sale_id.is_some() && from_catalog {
            return None;
        }
        self.unit_price(l)
    }

    fn post_sale(&mut self, override_: Option<Approval>, env: &Env) -> Vec<Effect> {
        let sale_id = *self.event_id.get_or_insert(env.fresh_id);
        let req = SaleRequest {
            sale_id: Some(sale_id),
            lines: self.lines_body(),
            tenders: self
                .tenders
                .iter()
                .map(|t| Tender {
                    method: t.method.to_string(),
                    amount_minor: t.applied_minor,
                    reference: t.reference.clone(),
                })
                .collect(),
            override_,
        };
        self.pending = Some(Pending::Sale(req.clone()));
        self.dialog = Some(Dialog::Sending);
        vec![Effect::PostSale(req)]
    }

    fn post_return(&mut self, env: &Env) -> Vec<Effect> {
        let return_id = *self.event_id.get_or_insert(env.fresh_id);
        let req = ReturnRequest {
            return_id: Some(return_id),
            lines: self.lines_body(),
            original_sale_id: self.original_sale_id,
        };
        self.pending = Some(Pending::Return(req.clone()));
        self.dialog = Some(Dialog::Sending);
        vec![Effect::PostReturn(req)]
    }

    /// Re-sends the pending request unchanged (same id, same body).
    fn resend(&mut self) -> Vec<Effect> {
        let Some(p) = self.pending.clone() else {
            self.in_doubt = false;
            return Vec::new();
        };
        self.dialog = Some(Dialog::Sending);
        vec![match p {
            Pending::Sale(r) => Effect::PostSale(r),
            Pending::Return(r) => Effect::PostReturn(r),
        }]
    }

    fn sale_done(
        &mut self,
        sale_id: Option<EventId>,
        result: Result<SaleRecorded, ApiError>,
    ) -> Vec<Effect> {
        let Some(Pending::Sale(req)) = self.pending.clone() else {
            return Vec::new();
        };
        if req.sale_id != sale_id {
            return Vec::new();
        }
        match result {
            Ok(reply) => {
                let local = self.total().ok();
                let paid: i64 = self.tenders.iter().map(|t| t.applied_minor).sum();
                let given: i64 = self.tenders.iter().map(|t| t.given_minor).sum();
                let receipt = Receipt {
                    mode: Mode::Sale,
                    id: reply.sale_id,
                    lines: self.receipt_lines(),
                    total_minor: reply.total_minor,
                    local_total_minor: local.filter(|&l| l != reply.total_minor),
                    tenders: self.tenders.clone(),
                    change_minor: (given - paid).max(0),
                    override_: req.override_.map(|o| (o.approver, o.reason)),
                    original_sale_id: None,
                };
                self.finish(receipt);
                Vec::new()
            }
            Err(e) => self.post_failed(e, req.override_.is_none()),
        }
    }

    fn return_done(
        &mut self,
        return_id: Option<EventId>,
        result: Result<ReturnRecorded, ApiError>,
    ) -> Vec<Effect> {
        let Some(Pending::Return(req)) = self.pending.clone() else {
            return Vec::new();
        };
        if req.return_id != return_id {
            return Vec::new();
        }
        match result {
            Ok(reply) => {
                let local = self.total().ok();
                let receipt = Receipt {
                    mode: Mode::Return,
                    id: reply.return_id,
                    lines: self.receipt_lines(),
                    total_minor: reply.total_minor,
                    local_total_minor: local.filter(|&l| l != reply.total_minor),
                    tenders: Vec::new(),
                    change_minor: 0,
                    override_: None,
                    original_sale_id: req.original_sale_id,
                };
                self.finish(receipt);
                Vec::new()
            }
            Err(e) => self.post_failed(e, false),
        }
    }

    fn receipt_lines(&self) -> Vec<ReceiptLine> {
        self.lines
            .iter()
            .map(|l| ReceiptLine {
                name: self.name(l),
                qty: l.qty,
                unit_price_minor: self.unit_price(l).unwrap_or(0),
                total_minor: self.line_total(l).unwrap_or(0),
            })
            .collect()
    }

    fn finish(&mut self, receipt: Receipt) {
        self.new_basket();
        self.dialog = Some(Dialog::Receipt(receipt));
    }

    fn post_failed(&mut self, e: ApiError, can_override: bool) -> Vec<Effect> {
        self.note_failure(&e);
        if e.outcome_unknown() {
            self.in_doubt = true;
            self.dialog = Some(Dialog::InDoubt {
                error: e.to_string(),
            });
            return Vec::new();
        }
        // Definite: the agent recorded nothing.
        self.in_doubt = false;
        self.pending = None;
        match e {
            ApiError::Refused(Refusal::Invalid(message)) | ApiError::Invalid { message, .. } => {
                self.dialog = Some(Dialog::Invalid { message });
                Vec::new()
            }
            ApiError::Refused(refusal) => {
                let fetch = match &refusal {
                    Refusal::InsufficientStock { gtin, .. } => {
                        vec![Effect::FetchStock(gtin.to_string())]
                    }
                    _ => Vec::new(),
                };
                self.dialog = Some(Dialog::Refused(Refused {
                    why: Why::Rule(refusal),
                    can_override,
                    stock: None,
                }));
                fetch
            }
            ApiError::Conflict(body) => {
                self.dialog = Some(Dialog::Refused(Refused {
                    why: Why::Unknown(body),
                    can_override,
                    stock: None,
                }));
                Vec::new()
            }
            other => {
                self.dialog = Some(Dialog::Invalid {
                    message: other.to_string(),
                });
                Vec::new()
            }
        }
    }

    fn dialog_key(&mut self, dialog: Dialog, key: Key, env: &Env) -> Vec<Effect> {
        match dialog {
            Dialog::Quantity { input } => self.field(
                input,
                key,
                true,
                |s, text| match text.trim().parse::<u64>() {
                    Ok(q) if (1..=MAX_QTY).contains(&q) => {
                        let effects = s.set_qty(q);
                        Ok(effects)
                    }
                    _ => Err(format!("Quantity must be 1 to {MAX_QTY}.")),
                },
                |input| Dialog::Quantity { input },
            ),
            Dialog::Price { input } => self.field(
                input,
                key,
                false,
                |s, text| {
                    let p = parse_amount(text).map_err(|e| e.to_string())?;
                    if let Some(line) = s.lines.get_mut(s.selected) {
                        line.manual_price = Some(p);
                    }
                    s.notice = None;
                    Ok(Vec::new())
                },
                |input| Dialog::Price { input },
            ),
            Dialog::Tender => match key {
                Key::Char('c' | 'C') => {
                    self.dialog = Some(Dialog::Cash {
                        input: String::new(),
                    });
                    Vec::new()
                }
                Key::Char('k' | 'K') => {
                    self.dialog = Some(Dialog::Card {
                        input: String::new(),
                    });
                    Vec::new()
                }
                Key::Esc => Vec::new(),
                _ => {
                    self.dialog = Some(Dialog::Tender);
                    Vec::new()
                }
            },
            Dialog::Cash { input } => match key {
                Key::Esc => {
                    self.dialog = Some(Dialog::Tender);
                    Vec::new()
                }
                Key::Enter => {
                    let due = self.due().unwrap_or(0);
                    let given = if input.trim().is_empty() {
                        Ok(due)
                    } else {
                        parse_amount(&input)
                    };
                    match given {
                        Ok(g) if g > 0 => {
                            self.tenders.push(Tendered {
                                method: "cash",
                                applied_minor: g.min(due),
                                given_minor: g,
                                reference: None,
                            });
                            self.after_tender(env)
                        }
                        Ok(_) => {
                            self.notify(Level::Error, "Cash must be more than 0.");
                            self.dialog = Some(Dialog::Cash { input });
                            Vec::new()
                        }
                        Err(e) => {
                            self.notify(Level::Error, e.to_string());
                            self.dialog = Some(Dialog::Cash { input });
                            Vec::new()
                        }
                    }
                }
                k => {
                    self.dialog = Some(Dialog::Cash {
                        input: edit(input, k),
                    });
                    Vec::new()
                }
            },
            Dialog::Card { input } => match key {
                Key::Esc => {
                    self.dialog = Some(Dialog::Tender);
                    Vec::new()
                }
                Key::Enter if input.trim().is_empty() => {
                    self.notify(Level::Error, "Type the card slip's reference.");
                    self.dialog = Some(Dialog::Card { input });
                    Vec::new()
                }
                Key::Enter => {
                    let due = self.due().unwrap_or(0);
                    self.tenders.push(Tendered {
                        method: "card",
                        applied_minor: due,
                        given_minor: due,
                        reference: Some(input.trim().to_string()),
                    });
                    self.after_tender(env)
                }
                k => {
                    self.dialog = Some(Dialog::Card {
                        input: edit(input, k),
                    });
                    Vec::new()
                }
            },
            Dialog::ConfirmRefund => match key {
                Key::Enter | Key::Char('y' | 'Y') => self.post_return(env),
                Key::Esc | Key::Char('n' | 'N') => Vec::new(),
                _ => {
                    self.dialog = Some(Dialog::ConfirmRefund);
                    Vec::new()
                }
            },
            Dialog::OriginalSale { input } => self.field(
                input,
                key,
                false,
                |s, text| {
                    if text.trim().is_empty() {
                        s.original_sale_id = None;
                        return Ok(Vec::new());
                    }
                    let id = text
                        .trim()
                        .parse::<EventId>()
                        .map_err(|e| format!("Not a sale id (UUID): {e}"))?;
                    s.original_sale_id = Some(id);
                    Ok(vec![Effect::LookupSale(id)])
                },
                |input| Dialog::OriginalSale { input },
            ),
            Dialog::Sending => {
                self.dialog = Some(Dialog::Sending);
                Vec::new()
            }
            Dialog::Refused(refused) => match key {
                Key::Char('o' | 'O') if refused.can_override => {
                    self.dialog = Some(Dialog::OverrideApprover {
                        refused,
                        input: String::new(),
                    });
                    Vec::new()
                }
                Key::Esc | Key::Enter => {
                    self.back_after_refusal();
                    Vec::new()
                }
                _ => {
                    self.dialog = Some(Dialog::Refused(refused));
                    Vec::new()
                }
            },
            Dialog::OverrideApprover { refused, input } => match key {
                Key::Esc => {
                    self.dialog = Some(Dialog::Refused(refused));
                    Vec::new()
                }
                Key::Enter if input.trim().is_empty() => {
                    self.notify(Level::Error, "Type the approving manager's name.");
                    self.dialog = Some(Dialog::OverrideApprover { refused, input });
                    Vec::new()
                }
                Key::Enter => {
                    self.notice = None;
                    self.dialog = Some(Dialog::OverrideReason {
                        refused,
                        approver: input.trim().to_string(),
                        input: String::new(),
                    });
                    Vec::new()
                }
                k => {
                    self.dialog = Some(Dialog::OverrideApprover {
                        refused,
                        input: edit(input, k),
                    });
                    Vec::new()
                }
            },
            Dialog::OverrideReason {
                refused,
                approver,
                input,
            } => match key {
                Key::Esc => {
                    self.dialog = Some(Dialog::OverrideApprover {
                        refused,
                        input: approver,
                    });
                    Vec::new()
                }
                Key::Enter if input.trim().is_empty() => {
                    self.notify(Level::Error, "Type the reason for the override.");
                    self.dialog = Some(Dialog::OverrideReason {
                        refused,
                        approver,
                        input,
                    });
                    Vec::new()
                }
                Key::Enter => {
                    self.notice = None;
                    self.post_sale(
                        Some(Approval {
                            approver,
                            reason: input.trim().to_string(),
                        }),
                        env,
                    )
                }
                k => {
                    self.dialog = Some(Dialog::OverrideReason {
                        refused,
                        approver,
                        input: edit(input, k),
                    });
                    Vec::new()
                }
            },
            Dialog::Invalid { message } => match key {
                Key::Esc | Key::Enter => {
                    self.back_after_refusal();
                    Vec::new()
                }
                _ => {
                    self.dialog = Some(Dialog::Invalid { message });
                    Vec::new()
                }
            },
            Dialog::InDoubt { error } => match key {
                Key::Char('r' | 'R') | Key::Enter | Key::F(5) => self.resend(),
                Key::Esc => {
                    self.notify(
                        Level::Error,
                        "Sale in doubt: F5 retries it with the same id; F8 discards it.",
                    );
                    Vec::new()
                }
                Key::F(8) => {
                    self.dialog = Some(Dialog::ConfirmDiscard);
                    Vec::new()
                }
                _ => {
                    self.dialog = Some(Dialog::InDoubt { error });
                    Vec::new()
                }
            },
            Dialog::Receipt(r) => match key {
                Key::Enter | Key::Esc | Key::F(8) => {
                    self.new_basket();
                    Vec::new()
                }
                Key::Char(c) if !c.is_control() => {
                    // Typing starts the next sale.
                    self.new_basket();
                    self.input.push(c);
                    Vec::new()
                }
                _ => {
                    self.dialog = Some(Dialog::Receipt(r));
                    Vec::new()
                }
            },
            Dialog::ConfirmQuit => match key {
                Key::Char('y' | 'Y') => vec![Effect::Quit],
                _ => Vec::new(),
            },
            Dialog::ConfirmDiscard => match key {
                Key::Char('y' | 'Y') => {
                    let mode = self.mode;
                    self.new_basket();
                    self.mode = mode;
                    self.notify(Level::Info, "Basket discarded.");
                    Vec::new()
                }
                _ => Vec::new(),
            },
        }
    }

    /// A single-field dialog: Enter submits (`submit` may refuse with a
    /// message, keeping the dialog), Esc closes, other keys edit.
    fn field(
        &mut self,
        input: String,
        key: Key,
        digits_only: bool,
        submit: impl FnOnce(&mut Self, &str) -> Result<Vec<Effect>, String>,
        reopen: impl FnOnce(String) -> Dialog,
    ) -> Vec<Effect> {
        match key {
            Key::Esc => Vec::new(),
            Key::Enter => match submit(self, &input) {
                Ok(effects) => effects,
                Err(msg) => {
                    self.notify(Level::Error, msg);
                    self.dialog = Some(reopen(input));
                    Vec::new()
                }
            },
            Key::Char(c) if digits_only && !c.is_ascii_digit() => {
                self.dialog = Some(reopen(input));
                Vec::new()
            }
            k => {
                self.dialog = Some(reopen(edit(input, k)));
                Vec::new()
            }
        }
    }

    fn after_tender(&mut self, env: &Env) -> Vec<Effect> {
        self.notice = None;
        match self.due() {
            Some(d) if d > 0 => {
                self.notify(
                    Level::Info,
                    format!(
                        "Paid so far {}; due {}.",
                        format_minor(self.paid()),
                        format_minor(d)
                    ),
                );
                self.dialog = Some(Dialog::Tender);
                Vec::new()
            }
            _ => self.post_sale(None, env),
        }
    }

    fn paid(&self) -> i64 {
        self.tenders.iter().map(|t| t.applied_minor).sum()
    }

    fn back_after_refusal(&mut self) {
        if !self.tenders.is_empty() {
            self.tenders.clear();
            self.notify(
                Level::Error,
                "Sale not recorded. Tenders were dropped: hand back the payment, edit, then F5.",
            );
        } else {
            self.notify(Level::Info, "Sale not recorded: edit the basket, then F5.");
        }
    }
}

/// Edits a dialog field with a key.
fn edit(mut input: String, key: Key) -> String {
    match key {
        Key::Char(c) if !c.is_control() && input.chars().count() < MAX_INPUT => input.push(c),
        Key::Backspace => {
            input.pop();
        }
        _ => {}
    }
    input
}
