//! The basket: what a scan or a typed code adds, the lines' quantities,
//! prices and voids, the catalog and stock answers about their items, and
//! what the basket costs. Keys pressed on the basket screen with no
//! dialog open land here (F9 and F12 leave it for the order screens, F11
//! for transfers, F1 for counts).

use tally_agent_api::{ApiError, Stock};
use tally_sync::message::CatalogItem;

use super::{Dialog, Effect, Env, Key, Level, Mode, PosState, Screen, MAX_INPUT};
use crate::money::parse_amount;
use crate::scan::{self, Measure, ScanError, Scanned};

/// Largest quantity of one line.
pub const MAX_QTY: u64 = 9_999;

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

    /// A tagged or weighed item: one unit per line, always.
    fn qty_fixed(&self) -> bool {
        self.epc.is_some() || self.measure.is_some()
    }
}

impl PosState {
    /// The unit price of a line, when known: the cashier's, the one in the
    /// barcode, what the original sale charged (a return against a sale:
    /// what the agent refunds), or the catalog's (per kg × weight for
    /// weighed goods).
    pub fn unit_price(&self, line: &Line) -> Option<i64> {
        if let Some(p) = line.manual_price {
            return Some(p);
        }
        if self.refunds_as_sold(line) {
            if let Some(&p) = self.original_prices.get(&line.gtin) {
                return Some(p);
            }
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

    /// Whether HQ is asked for the rights a short line lacks when the sale
    /// is posted (rights on demand): the hub reachable and the units on
    /// the shelf. Otherwise the agent refuses the sale unless a manager
    /// approves it.
    pub fn hq_asked_for(&self, line: &Line) -> bool {
        let on_hand = self.stock.get(&line.gtin).map_or(0, |st| st.on_hand);
        self.hub_online() && self.units_of(&line.gtin) <= on_hand
    }

    /// Whether the basket may be edited; says why not otherwise.
    pub(super) fn editable(&mut self) -> bool {
        match self.locked_because() {
            Some(why) => {
                self.notify(Level::Error, why);
                false
            }
            None => true,
        }
    }

    /// Why the basket may not change now (a sale in doubt, awaited, or
    /// being paid), if it may not.
    fn locked_because(&self) -> Option<&'static str> {
        if self.in_doubt {
            return Some(
                "The last attempt may have been recorded: F5 retries it (same id), F8 discards.",
            );
        }
        if self.pending.is_some() {
            return Some("Waiting for the agent's answer.");
        }
        if !self.tenders.is_empty() {
            return Some("Payment started: F5 to finish it, F8 to discard the sale.");
        }
        None
    }

    /// Says so when a line's quantity cannot change.
    fn qty_fixed(&mut self, line: &Line) -> bool {
        if line.qty_fixed() {
            self.notify(
                Level::Error,
                "This line's quantity is fixed (tagged or weighed item).",
            );
        }
        line.qty_fixed()
    }

    /// A key with no dialog open.
    pub(super) fn basket_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
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
                    if !self.qty_fixed(&line) && self.editable() {
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
            Key::F(6) | Key::Ctrl('r') => self.switch_mode(),
            Key::F(9) | Key::Ctrl('o') => self.open_screen(Screen::PickList),
            Key::F(12) | Key::Ctrl('u') => self.open_screen(Screen::Pickup),
            Key::F(11) | Key::Ctrl('t') => self.open_transfers(),
            Key::F(1) | Key::Ctrl('k') => self.open_count(),
            Key::F(7) if self.mode == Mode::Return => self.ask_original_sale(),
            Key::F(8) | Key::Ctrl('n') => {
                if self.in_flight() {
                    self.notify(
                        Level::Info,
                        "Waiting for the agent's answer: the sale may be recorded.",
                    );
                } else if self.basket_open() {
                    self.dialog = Some(Dialog::ConfirmDiscard);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn bump_qty(&mut self, line: &Line, up: bool) -> Vec<Effect> {
        if self.qty_fixed(line) || !self.editable() {
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

    /// The quantity dialog (F2): digits only, 1 to [`MAX_QTY`].
    pub(super) fn quantity_key(&mut self, input: String, key: Key) -> Vec<Effect> {
        self.field(
            input,
            key,
            true,
            |s, text| match text.trim().parse::<u64>() {
                Ok(q) if (1..=MAX_QTY).contains(&q) => Ok(s.set_qty(q)),
                _ => Err(format!("Quantity must be 1 to {MAX_QTY}.")),
            },
            |input| Dialog::Quantity { input },
        )
    }

    /// The unit price dialog (F4): the cashier's price wins over any other.
    pub(super) fn price_key(&mut self, input: String, key: Key) -> Vec<Effect> {
        self.field(
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
        )
    }

    /// A scan from the scanner or the input line.
    pub(super) fn scanned(&mut self, scan: Result<Scanned, ScanError>) -> Vec<Effect> {
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
                if let Some(effects) = self.scanned_receipt(e.raw()) {
                    return effects;
                }
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

    /// The catalog's answer about an item (kept while it is in the basket).
    pub(super) fn catalog_answer(
        &mut self,
        gtin: String,
        result: Result<CatalogItem, ApiError>,
    ) -> Vec<Effect> {
        let entry = match result {
            Ok(item) => CatalogEntry::Found(item),
            Err(ApiError::NotFound) => CatalogEntry::Missing,
            Err(e) => {
                self.note_failure(&e);
                CatalogEntry::Failed(e.to_string())
            }
        };
        let known = matches!(self.catalog.get(&gtin), Some(CatalogEntry::Found(_)));
        if known && matches!(entry, CatalogEntry::Failed(_)) {
            // A lookup that failed says nothing new: the price known
            // stands, and is looked up again on the next status.
            self.reprice_due = true;
            return Vec::new();
        }
        if known && matches!(entry, CatalogEntry::Missing) && !self.repricing_allowed() {
            // Gone from the catalog while a payment is taken: its amounts
            // stand; looked up again once it is over.
            self.reprice_due = true;
            return Vec::new();
        }
        if let (Some(CatalogEntry::Found(was)), CatalogEntry::Found(now)) =
            (self.catalog.get(&gtin), &entry)
        {
            if was.price_minor != now.price_minor && !self.repricing_allowed() {
                // A payment started meanwhile: its amounts stand; looked
                // up again once it is over.
                self.reprice_due = true;
                return Vec::new();
            }
            if was.price_minor != now.price_minor && self.lines.iter().any(|l| l.gtin == gtin) {
                self.notify(
                    Level::Info,
                    format!(
                        "Price changed at HQ: {} is now {} (was {}).",
                        now.name,
                        crate::money::format_minor(now.price_minor),
                        crate::money::format_minor(was.price_minor)
                    ),
                );
            }
        }
        if self.lines.iter().any(|l| l.gtin == gtin) || self.count.gtins.contains(&gtin) {
            self.catalog.insert(gtin, entry);
        }
        Vec::new()
    }

    /// Whether the basket's prices may change: the basket may (no payment
    /// taken, no sale in flight) and no payment is being taken (the
    /// payment dialogs).
    fn repricing_allowed(&self) -> bool {
        self.locked_because().is_none()
            && !matches!(
                self.dialog,
                Some(
                    Dialog::Tender
                        | Dialog::Cash { .. }
                        | Dialog::Card { .. }
                        | Dialog::ConfirmRefund
                        | Dialog::OverrideApprover { .. }
                        | Dialog::OverrideReason { .. }
                        | Dialog::OverridePin { .. }
                        | Dialog::Sending
                )
            )
    }

    /// The catalog changed at the agent: the basket's items are looked up
    /// again, so the sale goes at today's prices (a price the terminal
    /// still had from before would be a keyed one, needing a manager).
    /// Not while a payment is under way or a sale is in flight: its
    /// amounts are taken.
    pub(super) fn reprice_basket(&mut self) -> Vec<Effect> {
        if !self.reprice_due || !self.repricing_allowed() {
            return Vec::new();
        }
        self.reprice_due = false;
        let mut gtins: Vec<String> = self
            .lines
            .iter()
            .filter(|l| matches!(self.catalog.get(&l.gtin), Some(CatalogEntry::Found(_))))
            .map(|l| l.gtin.clone())
            .collect();
        gtins.sort();
        gtins.dedup();
        gtins.into_iter().map(Effect::LookupCatalog).collect()
    }

    /// Lookups that failed, asked again (the agent answers again).
    pub(super) fn lookups_to_retry(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (gtin, entry) in &mut self.catalog {
            if matches!(entry, CatalogEntry::Failed(_)) {
                *entry = CatalogEntry::Pending;
                effects.push(Effect::LookupCatalog(gtin.clone()));
            }
        }
        effects
    }

    /// The agent's stock of an item: for the basket's shortage marks and
    /// for a refusal dialog about that item.
    pub(super) fn stock_answer(
        &mut self,
        gtin: String,
        result: Result<Stock, ApiError>,
    ) -> Vec<Effect> {
        match result {
            Ok(s) => {
                self.refused_stock(&gtin, s);
                if self.lines.iter().any(|l| l.gtin == gtin) {
                    self.stock.insert(gtin, s);
                }
            }
            Err(e) => self.note_failure(&e),
        }
        Vec::new()
    }
}
