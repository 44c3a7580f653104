//! RFID cycle counts (issue 23): the Count screen (F1 or Ctrl-K from an
//! empty basket). The cashier builds what to count (items scanned or
//! typed into a list, and/or a zone label typed after F2; nothing counts
//! the whole store) and Enter starts the session:
//! `POST /v1/counts/sessions` under a session id made before the first
//! POST and kept until the agent answers. While it counts (the reader in
//! `--rfid-mode count` feeds it) the screen polls
//! `GET /v1/counts/sessions/{id}` about once a second ([`Action::RefreshCount`]).
//! F5 finishes it (`POST …/finish`: the variance report), and F5 again
//! (confirmed with Y) accepts it (`POST …/accept`: the adjustments).
//!
//! A session outlives the terminal: typing its id (a code that reads as
//! no barcode) opens it again, live, finished or accepted. Each answer is
//! matched with the one call awaited ([`CountCall`]); a stale one is
//! ignored. Finishing and accepting are idempotent at the agent (the
//! adjustments' event ids derive from the session and the item), so a
//! call in doubt is simply asked again; a start in doubt is first looked
//! up under its id, and posted again (same id) only if the agent does
//! not know it.
//!
//! [`Action::RefreshCount`]: super::Action::RefreshCount

use tally_agent_api::{
    ApiError, CountAccepted, CountReportView, CountSessionRequest, CountSessionView, CountedItem,
};
use tally_sync::cycle_count::{MAX_SESSION_GTINS, MAX_ZONE_BYTES};

use super::{CatalogEntry, Dialog, Effect, Env, Key, Level, PosState, Screen};
use crate::scan::{self, ScanError, Scanned};

/// How many EPCs of each finding the report names (the totals are whole).
pub const EPCS_SHOWN: usize = 3;

/// Longest text from the agent shown in one place (names, ids, messages).
pub const MAX_SHOWN: usize = 200;

/// What the Count screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CountView {
    /// A new count being set up: the list and the zone.
    #[default]
    Setup,
    /// A session counting (the agent's last answer).
    Live(CountSessionView),
    /// A finished (or accepted) session's variance report.
    Report(CountReportView),
    /// The adjustments an acceptance recorded.
    Accepted(CountAccepted),
}

/// The call to the agent whose answer the Count screen awaits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountCall {
    /// `POST /v1/counts/sessions` with this request.
    Start(CountSessionRequest),
    /// `GET /v1/counts/sessions/{id}` for a start in doubt: posted again
    /// if the agent does not know it.
    Resolve(CountSessionRequest),
    /// `GET /v1/counts/sessions/{id}`: a session id typed or scanned.
    Open(String),
    /// `GET /v1/counts/sessions/{id}`: the live view's poll.
    Poll(String),
    /// `GET /v1/counts/sessions/{id}/report`.
    Report(String),
    /// `POST /v1/counts/sessions/{id}/finish`.
    Finish(String),
    /// `POST /v1/counts/sessions/{id}/accept`.
    Accept(String),
}

impl CountCall {
    /// The session the call is about.
    pub fn session_id(&self) -> &str {
        match self {
            CountCall::Start(r) | CountCall::Resolve(r) => r.session_id.as_deref().unwrap_or(""),
            CountCall::Open(id)
            | CountCall::Poll(id)
            | CountCall::Report(id)
            | CountCall::Finish(id)
            | CountCall::Accept(id) => id,
        }
    }
}

/// The Count screen's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Count {
    /// The items of the next count (14-digit GTINs, in scan order).
    pub gtins: Vec<String>,
    /// The zone of the next count.
    pub zone: Option<String>,
    /// The selected row of the table shown.
    pub selected: usize,
    /// What is shown.
    pub view: CountView,
    /// The call awaited.
    pub call: Option<CountCall>,
    /// A start whose outcome is unknown (Enter checks it, F8 drops it).
    pub start_in_doubt: Option<CountSessionRequest>,
}

impl Count {
    /// The session shown, if any.
    pub fn session_id(&self) -> Option<&str> {
        match &self.view {
            CountView::Setup => None,
            CountView::Live(v) => Some(&v.session_id),
            CountView::Report(r) => Some(&r.session_id),
            CountView::Accepted(a) => Some(&a.session_id),
        }
    }

    /// Rows of the table shown.
    pub fn rows(&self) -> usize {
        match &self.view {
            CountView::Setup => self.gtins.len(),
            CountView::Live(v) => live_items(v).len(),
            CountView::Report(r) => r.items.len(),
            CountView::Accepted(a) => a.adjustments.len(),
        }
    }

    /// Whether the report shown is of a session accepted already.
    pub fn accepted(&self) -> bool {
        match &self.view {
            CountView::Accepted(_) => true,
            CountView::Report(r) => r.status == "accepted",
            _ => false,
        }
    }

    /// Whether a call other than the live poll is awaited.
    fn busy(&self) -> bool {
        matches!(&self.call, Some(c) if !matches!(c, CountCall::Poll(_)))
    }
}

/// The items of a live view: those read, and the listed ones not read
/// yet (0), by GTIN.
pub fn live_items(v: &CountSessionView) -> Vec<CountedItem> {
    let mut items = v.items.clone();
    for g in v.gtins.iter().flatten() {
        if !items.iter().any(|i| i.gtin == *g) {
            items.push(CountedItem {
                gtin: *g,
                name: None,
                counted: 0,
            });
        }
    }
    items.sort_by_key(|i| i.gtin);
    items
}

/// Items of a report whose count differs, and the units found and missing.
pub fn variance(r: &CountReportView) -> (usize, u64, u64) {
    r.items
        .iter()
        .fold((0, 0u64, 0u64), |(n, up, down), l| match l.difference {
            0 => (n, up, down),
            d if d > 0 => (n + 1, up.saturating_add(d.unsigned_abs()), down),
            d => (n + 1, up, down.saturating_add(d.unsigned_abs())),
        })
}

/// Text from the agent made safe to draw: control and bidirectional
/// formatting characters become `?` (a name cannot move the cursor,
/// clear the screen or reorder what follows it), and it is cut at
/// [`MAX_SHOWN`] characters.
pub fn shown(text: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN)
        .map(|c| if unsafe_char(c) { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out
}

/// A new session's id: `count-` and 8 hex digits of the fresh id's
/// random end, short enough to type again after a restart (an id the
/// agent has already is refused with a 409, and the next Enter makes
/// another).
pub fn session_id_of(env: &Env) -> String {
    let hex = env.fresh_id.0.simple().to_string();
    format!("count-{}", &hex[hex.len().saturating_sub(8)..])
}

/// What a definite failure says, as a sentence's end (the agent's message
/// when it gave one).
fn said(e: &ApiError) -> String {
    match e {
        ApiError::Conflict(body) | ApiError::Denied(body) => shown(&body.message),
        ApiError::Invalid { message, .. } => shown(message),
        ApiError::NotFound => "the agent has no such count session".into(),
        other => shown(&other.to_string()),
    }
}

impl PosState {
    /// F1 (or Ctrl-K) from an empty basket: the Count screen; a live
    /// session shown is polled at once.
    pub(super) fn open_count(&mut self) -> Vec<Effect> {
        if self.basket_open() {
            self.notify(
                Level::Error,
                "Finish or discard (F8) the open basket first.",
            );
            return Vec::new();
        }
        self.screen = Screen::Count;
        self.input.clear();
        match self.count.view.clone() {
            CountView::Setup => {
                self.notify(
                    Level::Info,
                    "Count: scan items to count only those (F2 names a zone), Enter starts; or type a session's id.",
                );
                Vec::new()
            }
            CountView::Live(v) => {
                self.notify(
                    Level::Info,
                    format!(
                        "Count {} is counting: F5 finishes it.",
                        shown(&v.session_id)
                    ),
                );
                self.poll_count()
            }
            CountView::Report(_) | CountView::Accepted(_) => {
                self.notify(Level::Info, "Count: F8 sets up a new one.");
                Vec::new()
            }
        }
    }

    /// A key on the Count screen with no dialog open.
    pub(super) fn count_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if self.typed(key) {
            return Vec::new();
        }
        match key {
            Key::Esc => {
                let live = match &self.count.view {
                    CountView::Live(v) => Some(shown(&v.session_id)),
                    _ => None,
                };
                self.screen = Screen::Basket;
                self.input.clear();
                match live {
                    Some(id) => self.notify(
                        Level::Info,
                        format!("Back to the basket. Count {id} goes on counting: F1 shows it."),
                    ),
                    None => self.notify(Level::Info, "Back to the basket."),
                }
                Vec::new()
            }
            Key::Up => {
                self.count.selected = self.count.selected.saturating_sub(1);
                Vec::new()
            }
            Key::Down => {
                if self.count.selected + 1 < self.count.rows() {
                    self.count.selected += 1;
                }
                Vec::new()
            }
            Key::Enter if !self.input.trim().is_empty() => {
                let text = std::mem::take(&mut self.input);
                let scan = scan::from_typed(&text, &self.rcn_layouts);
                self.count_scan(scan)
            }
            Key::Enter | Key::F(5) | Key::Ctrl('p') => self.count_next(env),
            Key::F(2) if self.count.view == CountView::Setup => {
                let input = self.count.zone.clone().unwrap_or_default();
                self.show(Dialog::CountZone { input })
            }
            Key::F(3) | Key::Delete if self.count.view == CountView::Setup => {
                if self.count.selected < self.count.gtins.len() {
                    let gtin = self.count.gtins.remove(self.count.selected);
                    let name = self.count_name(&gtin);
                    self.count.selected = self
                        .count
                        .selected
                        .min(self.count.gtins.len().saturating_sub(1));
                    self.notify(Level::Info, format!("Removed from the count: {name}."));
                }
                Vec::new()
            }
            Key::F(8) | Key::Ctrl('n') => self.new_count(),
            Key::F(1) | Key::Ctrl('k') => match self.count.view.clone() {
                CountView::Live(_) => self.poll_count(),
                CountView::Report(r) => self.count_call(CountCall::Report(r.session_id)),
                CountView::Setup | CountView::Accepted(_) => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Enter (input empty) or F5: the next step of what is shown.
    fn count_next(&mut self, env: &Env) -> Vec<Effect> {
        if self.count.busy() {
            self.notify(Level::Error, "Waiting for the agent's answer.");
            return Vec::new();
        }
        match self.count.view.clone() {
            CountView::Setup => match self.count.start_in_doubt.clone() {
                Some(req) => {
                    self.notify(
                        Level::Info,
                        format!(
                            "Asking the agent whether count {} started…",
                            shown(req.session_id.as_deref().unwrap_or(""))
                        ),
                    );
                    self.count_call(CountCall::Resolve(req))
                }
                None => self.start_count(env),
            },
            CountView::Live(v) => {
                self.dialog = Some(Dialog::Sending);
                self.count_call(CountCall::Finish(v.session_id))
            }
            CountView::Report(r) if r.status == "accepted" => {
                self.say_accepted(&r.session_id);
                Vec::new()
            }
            CountView::Report(r) => self.show(Dialog::ConfirmAccept {
                session_id: r.session_id,
            }),
            CountView::Accepted(a) => {
                self.say_accepted(&a.session_id);
                Vec::new()
            }
        }
    }

    fn say_accepted(&mut self, session_id: &str) {
        self.notify(
            Level::Error,
            format!(
                "Count {} was accepted already: nothing more to record. F8 sets up a new count.",
                shown(session_id)
            ),
        );
    }

    /// F8: set up a new count (a session still counting is left to the
    /// agent only on purpose: it must be finished first).
    fn new_count(&mut self) -> Vec<Effect> {
        if self.count.busy() {
            self.notify(Level::Error, "Waiting for the agent's answer.");
            return Vec::new();
        }
        if let Some(req) = self.count.start_in_doubt.take() {
            self.notify(
                Level::Error,
                format!(
                    "Dropped: count {} may or may not have started; type its id to check.",
                    shown(req.session_id.as_deref().unwrap_or(""))
                ),
            );
            return Vec::new();
        }
        match &self.count.view {
            CountView::Setup => {
                self.count.gtins.clear();
                self.count.zone = None;
                self.count.selected = 0;
                self.notify(Level::Info, "The list and the zone are cleared.");
            }
            CountView::Live(v) => {
                let id = shown(&v.session_id);
                self.notify(
                    Level::Error,
                    format!(
                        "Count {id} is still counting: F5 finishes it first (one count at a time)."
                    ),
                );
            }
            CountView::Report(_) | CountView::Accepted(_) => {
                self.count = super::Count::default();
                self.notify(
                    Level::Info,
                    "New count: scan items to count only those (F2 names a zone), Enter starts.",
                );
            }
        }
        Vec::new()
    }

    /// Posts a new session with the list and zone, under an id made now
    /// ([`session_id_of`]).
    fn start_count(&mut self, env: &Env) -> Vec<Effect> {
        let req = CountSessionRequest {
            session_id: Some(session_id_of(env)),
            gtins: (!self.count.gtins.is_empty()).then(|| self.count.gtins.clone()),
            zone: self.count.zone.clone(),
            cashier: Some(self.cashier.clone()),
            till: self.till.clone(),
        };
        self.dialog = Some(Dialog::Sending);
        self.count_call(CountCall::Start(req))
    }

    /// Makes `call` the one awaited; its effect.
    fn count_call(&mut self, call: CountCall) -> Vec<Effect> {
        let id = call.session_id().to_string();
        let effect = match &call {
            CountCall::Start(req) => Effect::StartCount(req.clone()),
            CountCall::Resolve(_) | CountCall::Open(_) | CountCall::Poll(_) => {
                Effect::LookupCount(id)
            }
            CountCall::Report(_) => Effect::CountReport(id),
            CountCall::Finish(_) => Effect::FinishCount(id),
            CountCall::Accept(_) => Effect::AcceptCount(id),
        };
        self.count.call = Some(call);
        vec![effect]
    }

    /// The live view's poll (none while another call is awaited).
    fn poll_count(&mut self) -> Vec<Effect> {
        match &self.count.view {
            CountView::Live(v) if self.count.call.is_none() => {
                let id = v.session_id.clone();
                self.count_call(CountCall::Poll(id))
            }
            _ => Vec::new(),
        }
    }

    /// The event loop's tick: the live view polled, on the Count screen.
    pub(super) fn refresh_count(&mut self) -> Vec<Effect> {
        if self.screen == Screen::Count {
            return self.poll_count();
        }
        Vec::new()
    }

    /// The catalog's name of an item on the list, else its GTIN.
    pub fn count_name(&self, gtin: &str) -> String {
        match self.catalog.get(gtin) {
            Some(CatalogEntry::Found(item)) => shown(&item.name),
            _ => gtin.to_string(),
        }
    }

    /// A scan (or a typed code) on the Count screen: an item goes on the
    /// list of a count being set up; a code that reads as no barcode is a
    /// session's id, opened.
    pub(super) fn count_scan(&mut self, scan: Result<Scanned, ScanError>) -> Vec<Effect> {
        if self.dialog.is_some() {
            self.notify(Level::Error, "Scan ignored: close the dialog first (Esc).");
            return Vec::new();
        }
        let raw = match &scan {
            Ok(s) => s.raw.clone(),
            Err(e) => e.raw().to_string(),
        };
        let digits = raw.trim().bytes().all(|b| b.is_ascii_digit());
        match (scan, scan::order_id(&raw)) {
            (Ok(s), _) => self.count_item(s),
            (Err(ScanError::NoGtin { .. }) | Err(ScanError::Barcode { .. }), Some(id))
                if !digits =>
            {
                if self.count.busy() {
                    self.notify(Level::Error, "Waiting for the agent's answer.");
                    return Vec::new();
                }
                self.notify(Level::Info, format!("Looking up count {}…", shown(&id)));
                self.count_call(CountCall::Open(id))
            }
            (Err(e), _) => {
                self.notify(Level::Error, shown(&e.to_string()));
                Vec::new()
            }
        }
    }

    /// An item scanned: on the list of the count being set up.
    fn count_item(&mut self, s: Scanned) -> Vec<Effect> {
        if self.count.view != CountView::Setup {
            self.notify(
                Level::Error,
                "Items are counted by the RFID reader, not scanned: F8 sets up a new count.",
            );
            return Vec::new();
        }
        if let Some(i) = self.count.gtins.iter().position(|g| *g == s.gtin) {
            self.count.selected = i;
            let name = self.count_name(&s.gtin);
            self.notify(Level::Info, format!("{name} is on the list already."));
            return Vec::new();
        }
        if self.count.gtins.len() >= MAX_SESSION_GTINS {
            self.notify(
                Level::Error,
                format!("A count lists at most {MAX_SESSION_GTINS} items."),
            );
            return Vec::new();
        }
        self.count.gtins.push(s.gtin.clone());
        self.count.selected = self.count.gtins.len() - 1;
        let n = self.count.gtins.len();
        self.notify(
            Level::Info,
            format!(
                "{n} item{} on the list. Enter starts the count.",
                if n == 1 { "" } else { "s" }
            ),
        );
        if matches!(
            self.catalog.get(&s.gtin),
            Some(CatalogEntry::Found(_) | CatalogEntry::Pending)
        ) {
            return Vec::new();
        }
        self.catalog.insert(s.gtin.clone(), CatalogEntry::Pending);
        vec![Effect::LookupCatalog(s.gtin)]
    }

    /// The zone dialog (F2): a label, Enter alone clears it.
    pub(super) fn count_zone_key(&mut self, input: String, key: Key) -> Vec<Effect> {
        self.field(
            input,
            key,
            false,
            |s, text| {
                let zone = text.trim();
                if zone.len() > MAX_ZONE_BYTES {
                    return Err(format!("A zone is at most {MAX_ZONE_BYTES} bytes."));
                }
                s.count.zone = (!zone.is_empty()).then(|| zone.to_string());
                match &s.count.zone {
                    Some(z) => s.notify(Level::Info, format!("Zone: {z}. Enter starts the count.")),
                    None => s.notify(Level::Info, "No zone."),
                }
                Ok(Vec::new())
            },
            |input| Dialog::CountZone { input },
        )
    }

    /// The accept question: `Y` (or Enter) posts the acceptance.
    pub(super) fn confirm_accept_key(&mut self, session_id: String, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('y' | 'Y') | Key::Enter => {
                self.dialog = Some(Dialog::Sending);
                self.count_call(CountCall::Accept(session_id))
            }
            _ => Vec::new(),
        }
    }

    /// Takes the awaited call if `pred` matches it (else the answer is
    /// stale); closes the sending dialog.
    fn count_answered(&mut self, pred: impl Fn(&CountCall) -> bool) -> Option<CountCall> {
        let call = self.count.call.take()?;
        if !pred(&call) {
            self.count.call = Some(call);
            return None;
        }
        if matches!(self.dialog, Some(Dialog::Sending)) {
            self.dialog = None;
        }
        Some(call)
    }

    /// Shows a session the agent answered: live while it counts; its
    /// report is fetched once it is finished or accepted.
    fn show_session(&mut self, v: CountSessionView) -> Vec<Effect> {
        if v.status == "counting" {
            if !matches!(&self.count.view, CountView::Live(old) if old.session_id == v.session_id) {
                self.count.selected = 0;
            }
            self.count.view = CountView::Live(v);
            return Vec::new();
        }
        self.count_call(CountCall::Report(v.session_id))
    }

    /// The agent's answer to a start.
    pub(super) fn count_started(
        &mut self,
        session_id: &str,
        result: Result<CountSessionView, ApiError>,
    ) -> Vec<Effect> {
        let Some(CountCall::Start(req)) = self.count_answered(
            |c| matches!(c, CountCall::Start(r) if r.session_id.as_deref() == Some(session_id)),
        ) else {
            return Vec::new();
        };
        let id = shown(session_id);
        match result {
            Ok(v) => {
                self.count.start_in_doubt = None;
                self.notify(
                    Level::Info,
                    format!("Count {id} started: the RFID reader in count mode feeds it. F5 finishes it."),
                );
                self.count.view = CountView::Setup;
                self.show_session(v)
            }
            Err(e) if e.outcome_unknown() => {
                self.note_failure(&e);
                self.count.start_in_doubt = Some(req);
                self.notify(
                    Level::Error,
                    format!("Count {id} may or may not have started ({}): Enter checks with the agent (same id), F8 drops it.", shown(&e.to_string())),
                );
                Vec::new()
            }
            Err(e) => {
                self.count.start_in_doubt = None;
                let hint = if matches!(e, ApiError::Conflict(_)) {
                    " Type that session's id to open it."
                } else {
                    ""
                };
                self.notify(
                    Level::Error,
                    format!("Count not started: {}.{hint}", said(&e)),
                );
                Vec::new()
            }
        }
    }

    /// The agent's answer to `GET /v1/counts/sessions/{id}`: a poll, a
    /// session opened by its id, or a start in doubt checked.
    pub(super) fn count_session_answer(
        &mut self,
        session_id: &str,
        result: Result<CountSessionView, ApiError>,
    ) -> Vec<Effect> {
        let Some(call) = self.count_answered(|c| {
            matches!(
                c,
                CountCall::Poll(_) | CountCall::Open(_) | CountCall::Resolve(_)
            ) && c.session_id() == session_id
        }) else {
            return Vec::new();
        };
        let id = shown(session_id);
        match (call, result) {
            (CountCall::Poll(_), Ok(v)) => {
                if v.status != "counting" {
                    self.notify(
                        Level::Info,
                        format!(
                            "Count {id} was {} (at another till): its report…",
                            shown(&v.status)
                        ),
                    );
                }
                self.show_session(v)
            }
            (CountCall::Poll(_), Err(ApiError::NotFound)) => {
                self.notify(
                    Level::Error,
                    format!("The agent no longer knows count {id}."),
                );
                Vec::new()
            }
            (CountCall::Poll(_), Err(e)) => {
                self.note_failure(&e);
                Vec::new()
            }
            (CountCall::Open(_), Ok(v)) => {
                self.count.start_in_doubt = None;
                self.notify(
                    Level::Info,
                    match v.status.as_str() {
                        "counting" => format!("Count {id} is counting: F5 finishes it."),
                        status => format!("Count {id} is {}: its report…", shown(status)),
                    },
                );
                self.show_session(v)
            }
            (CountCall::Open(_), Err(ApiError::NotFound)) => {
                self.notify(
                    Level::Error,
                    format!("No count session {id} at this store: check the id."),
                );
                Vec::new()
            }
            (CountCall::Open(_), Err(e)) => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!(
                        "Count {id} could not be looked up: {}. Type it again.",
                        said(&e)
                    ),
                );
                Vec::new()
            }
            (CountCall::Resolve(_), Ok(v)) => {
                self.count.start_in_doubt = None;
                self.notify(
                    Level::Info,
                    format!("Count {id} had started: F5 finishes it."),
                );
                self.show_session(v)
            }
            (CountCall::Resolve(req), Err(ApiError::NotFound)) => {
                self.notify(
                    Level::Info,
                    format!("Count {id} had not started: starting it now (same id)…"),
                );
                self.dialog = Some(Dialog::Sending);
                self.count_call(CountCall::Start(req))
            }
            (CountCall::Resolve(_), Err(e)) => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!("Count {id} may or may not have started ({}): Enter checks again, F8 drops it.", said(&e)),
                );
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The agent's answer to `GET …/report`.
    pub(super) fn count_report_answer(
        &mut self,
        session_id: &str,
        result: Result<CountReportView, ApiError>,
    ) -> Vec<Effect> {
        if self
            .count_answered(|c| matches!(c, CountCall::Report(id) if id == session_id))
            .is_none()
        {
            return Vec::new();
        }
        match result {
            Ok(r) => self.show_report(r),
            Err(e) => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!(
                        "The report of count {} could not be fetched: {}. F1 asks again.",
                        shown(session_id),
                        said(&e)
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Shows a variance report, saying what to do with it.
    fn show_report(&mut self, r: CountReportView) -> Vec<Effect> {
        let id = shown(&r.session_id);
        let (n, up, down) = variance(&r);
        let text = match r.status.as_str() {
            "accepted" => format!(
                "Count {id} was accepted already: its adjustments are recorded. F8: a new count."
            ),
            _ if n == 0 => "Finished: every item matches the records. F5 accepts.".to_string(),
            _ => format!(
                "Finished: {n} item{} differ{} (+{up} found, -{down} missing). F5 accepts.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" },
            ),
        };
        self.notify(
            if r.status == "accepted" {
                Level::Error
            } else {
                Level::Info
            },
            text,
        );
        self.count.selected = 0;
        self.count.view = CountView::Report(r);
        Vec::new()
    }

    /// The agent's answer to a finish.
    pub(super) fn count_finished(
        &mut self,
        session_id: &str,
        result: Result<CountReportView, ApiError>,
    ) -> Vec<Effect> {
        if self
            .count_answered(|c| matches!(c, CountCall::Finish(id) if id == session_id))
            .is_none()
        {
            return Vec::new();
        }
        let id = shown(session_id);
        match result {
            Ok(r) => self.show_report(r),
            Err(e) if e.outcome_unknown() => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!("Count {id} may not be finished ({}): F5 tries again (finishing twice is harmless).", shown(&e.to_string())),
                );
                Vec::new()
            }
            Err(e @ ApiError::Conflict(_)) => {
                self.notify(Level::Error, format!("Count {id}: {}.", said(&e)));
                self.count_call(CountCall::Report(session_id.to_string()))
            }
            Err(e) => {
                self.notify(
                    Level::Error,
                    format!("Count {id} not finished: {}.", said(&e)),
                );
                Vec::new()
            }
        }
    }

    /// The agent's answer to an acceptance.
    pub(super) fn count_accepted(
        &mut self,
        session_id: &str,
        result: Result<CountAccepted, ApiError>,
    ) -> Vec<Effect> {
        if self
            .count_answered(|c| matches!(c, CountCall::Accept(id) if id == session_id))
            .is_none()
        {
            return Vec::new();
        }
        let id = shown(session_id);
        match result {
            Ok(a) => {
                let n = a.adjustments.len();
                self.notify(
                    Level::Info,
                    if n == 0 {
                        format!("Count {id} accepted: nothing to adjust.")
                    } else {
                        format!(
                            "Count {id} accepted: {n} adjustment{} recorded.",
                            if n == 1 { "" } else { "s" }
                        )
                    },
                );
                self.count.selected = 0;
                self.count.view = CountView::Accepted(a);
                Vec::new()
            }
            Err(e) if e.outcome_unknown() => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!("Count {id} may or may not be accepted ({}): F5 asks again; nothing is recorded twice.", shown(&e.to_string())),
                );
                Vec::new()
            }
            Err(e @ ApiError::Conflict(_)) => {
                // Accepted already (at another till, or by an attempt whose
                // answer was lost): the report says so.
                self.notify(Level::Error, format!("Count {id}: {}.", said(&e)));
                self.count_call(CountCall::Report(session_id.to_string()))
            }
            Err(e) => {
                let tail = if matches!(e, ApiError::Refused(_)) {
                    " Adjustments recorded before this stay; F5 tries again (nothing is recorded twice)."
                } else {
                    ""
                };
                self.notify(
                    Level::Error,
                    format!("Count {id} not accepted: {}.{tail}", said(&e)),
                );
                Vec::new()
            }
        }
    }
}
