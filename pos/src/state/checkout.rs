//! Checkout: taking payment (cash with change, card with its reference,
//! mixed), posting the sale under its id, re-sending a request whose
//! outcome is unknown, and what the agent answers: the receipt, or a
//! failure (in doubt, refused, invalid). Posting and answering are shared
//! with returns (`returns`), whose requests go the same way.

use std::collections::BTreeMap;

use tally_agent_api::{
    ApiError, LineBody, OverrideRequest, PriceSource, SaleRecorded, SaleRequest, Stock,
};
use tally_sync::command::{price_overrides, LineIn};
use tally_sync::{EventId, Gtin, Refusal, Tender};

use super::{CatalogEntry, Dialog, Effect, Env, Key, Level, Mode, Pending, PosState, Refused, Why};
use crate::money::{format_minor, parse_amount};

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
    /// Return: the web order it named.
    pub original_order_id: Option<String>,
}

impl PosState {
    /// What is still due after the tenders taken.
    pub fn due(&self) -> Option<i64> {
        self.total().ok().map(|t| t - self.paid())
    }

    fn paid(&self) -> i64 {
        self.tenders
            .iter()
            .fold(0i64, |sum, t| sum.saturating_add(t.applied_minor))
    }

    /// F5 (or Enter on an empty input line): pay, refund, or retry a
    /// request in doubt.
    pub(super) fn start_payment(&mut self, env: &Env) -> Vec<Effect> {
        if self.in_doubt {
            return self.resend();
        }
        if self.in_flight() {
            // Another payment now would post the same id with other
            // tenders while the first is on its way.
            self.notify(Level::Info, "Waiting for the agent's answer.");
            return Vec::new();
        }
        if self.lines.is_empty() {
            self.notify(Level::Info, "The basket is empty: scan or type a barcode.");
            return Vec::new();
        }
        if self.sign_in_needed() {
            // Before the customer pays, not after.
            self.notify(
                Level::Error,
                "Sign in first: sales are recorded under the cashier signed in.",
            );
            return self.ask_sign_in();
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
        if let Some((why, stock)) = self.approval_needed() {
            // The manager approves before the customer pays, not after:
            // no payment to hand back if they refuse.
            self.notify(Level::Info, "A manager approves this sale before payment.");
            return self.show(Dialog::OverrideApprover {
                refused: Refused {
                    why: Why::Rule(why),
                    can_override: true,
                    stock,
                },
                input: String::new(),
            });
        }
        match self.mode {
            Mode::Return => {
                self.dialog = Some(Dialog::ConfirmRefund);
                Vec::new()
            }
            Mode::Sale if total <= 0 => self.post_sale(self.approval_ahead(), env),
            Mode::Sale => {
                self.dialog = Some(Dialog::Tender);
                Vec::new()
            }
        }
    }

    /// The payment dialog: `C` cash, `K` card, `R` takes back the last
    /// payment taken (nothing is posted until the sale is paid; with none
    /// left, the basket can be edited again).
    pub(super) fn tender_key(&mut self, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('c' | 'C') => self.show(Dialog::Cash {
                input: String::new(),
            }),
            Key::Char('k' | 'K') => self.show(Dialog::Card {
                input: String::new(),
                amount: String::new(),
                on_amount: false,
            }),
            Key::Char('r' | 'R') => {
                match self.tenders.pop() {
                    Some(t) => self.notify(
                        Level::Info,
                        format!(
                            "Payment removed: hand back {} {}. Paid so far {}; due {}.",
                            t.method,
                            format_minor(t.given_minor),
                            format_minor(self.paid()),
                            format_minor(self.due().unwrap_or(0))
                        ),
                    ),
                    None => self.notify(Level::Error, "No payment taken yet."),
                }
                self.show(Dialog::Tender)
            }
            Key::Esc => Vec::new(),
            _ => self.show(Dialog::Tender),
        }
    }

    /// The cash dialog: the amount handed over (Enter alone: exact); less
    /// than due is a partial payment.
    pub(super) fn cash_key(&mut self, input: String, key: Key, env: &Env) -> Vec<Effect> {
        match key {
            Key::Esc => self.show(Dialog::Tender),
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
                        self.show(Dialog::Cash { input })
                    }
                    Err(e) => {
                        self.notify(Level::Error, e.to_string());
                        self.show(Dialog::Cash { input })
                    }
                }
            }
            k => self.show(Dialog::Cash {
                input: super::dialogs::edit(input, k),
            }),
        }
    }

    /// The card dialog: the slip's reference (required) and the amount
    /// the card pays (Tab or an arrow to change it; empty: all that is
    /// due, more is refused: a card gives no change), so a payment can be
    /// split across cards, or card and cash.
    pub(super) fn card_key(
        &mut self,
        input: String,
        amount: String,
        on_amount: bool,
        key: Key,
        env: &Env,
    ) -> Vec<Effect> {
        let card = |input, amount, on_amount| Dialog::Card {
            input,
            amount,
            on_amount,
        };
        match key {
            Key::Esc => self.show(Dialog::Tender),
            Key::Tab | Key::Up | Key::Down => self.show(card(input, amount, !on_amount)),
            Key::Enter if input.trim().is_empty() => {
                self.notify(Level::Error, "Type the card slip's reference.");
                self.show(card(input, amount, false))
            }
            Key::Enter => {
                let due = self.due().unwrap_or(0);
                let paid = if amount.trim().is_empty() {
                    Ok(due)
                } else {
                    parse_amount(&amount).map_err(|e| e.to_string())
                };
                match paid {
                    Ok(p) if p > 0 && p <= due => {
                        self.tenders.push(Tendered {
                            method: "card",
                            applied_minor: p,
                            given_minor: p,
                            reference: Some(input.trim().to_string()),
                        });
                        self.after_tender(env)
                    }
                    Ok(_) => {
                        self.notify(
                            Level::Error,
                            format!(
                                "A card pays more than 0 and at most what is due ({}).",
                                format_minor(due)
                            ),
                        );
                        self.show(card(input, amount, true))
                    }
                    Err(e) => {
                        self.notify(Level::Error, e);
                        self.show(card(input, amount, true))
                    }
                }
            }
            k if on_amount => {
                let amount = super::dialogs::edit(amount, k);
                self.show(card(input, amount, true))
            }
            k => {
                let input = super::dialogs::edit(input, k);
                self.show(card(input, amount, false))
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
                self.show(Dialog::Tender)
            }
            _ => self.post_sale(self.approval_ahead(), env),
        }
    }

    /// What a manager must approve before payment, when these very lines
    /// have no approval yet: a keyed price (as [`Self::price_approval_needed`]
    /// says), or units beyond the store's rights that HQ will not be asked
    /// for (the hub unreachable, or the units not on the shelf), which the
    /// agent refuses without a manager: the refusal it would give, and the
    /// item's stock.
    fn approval_needed(&self) -> Option<(Refusal, Option<Stock>)> {
        if self.mode != Mode::Sale || self.approval_ahead().is_some() {
            return None;
        }
        if let Some(what) = self.price_approval_needed() {
            return Some((Refusal::ApprovalRequired(what), None));
        }
        let line = self
            .lines
            .iter()
            .find(|l| self.short_of(l).is_some() && !self.hq_asked_for(l))?;
        let stock = self.stock.get(&line.gtin)?;
        Some((
            Refusal::InsufficientStock {
                gtin: line.gtin.parse().ok()?,
                requested: self.units_of(&line.gtin),
                available: stock.rights,
                on_hand: stock.on_hand,
            },
            Some(*stock),
        ))
    }

    /// A sale whose keyed prices need a manager (the command core's rule,
    /// `price_overrides`, on what would be posted): what to approve, as
    /// the cashier reads it.
    fn price_approval_needed(&self) -> Option<String> {
        let lines: Vec<LineIn> = self
            .lines_body()
            .iter()
            .filter_map(|l| l.line_in().ok())
            .collect();
        let catalog: BTreeMap<Gtin, i64> = self
            .catalog
            .iter()
            .filter_map(|(g, e)| match e {
                CatalogEntry::Found(item) => Some((g.parse().ok()?, item.price_minor)),
                _ => None,
            })
            .collect();
        let overrides = price_overrides(&lines, &catalog);
        if overrides.is_empty() {
            return None;
        }
        let items: Vec<String> = overrides
            .iter()
            .map(|p| {
                let name = self
                    .lines
                    .iter()
                    .find(|l| l.gtin.parse::<Gtin>().ok() == Some(p.gtin))
                    .map_or_else(|| p.gtin.to_string(), |l| self.name(l));
                format!(
                    "{name} keyed at {} (catalog {})",
                    format_minor(p.keyed_minor),
                    format_minor(p.catalog_minor)
                )
            })
            .collect();
        Some(items.join(", "))
    }

    /// The approval given before payment, while the lines are the ones it
    /// was given for.
    pub(super) fn approval_ahead(&self) -> Option<OverrideRequest> {
        let (lines, approval) = self.approved_ahead.as_ref()?;
        (*lines == self.lines_body()).then(|| approval.clone())
    }

    /// The basket's lines as posted.
    pub(super) fn lines_body(&self) -> Vec<LineBody> {
        self.lines
            .iter()
            .map(|l| LineBody {
                gtin: l.gtin.clone(),
                qty: i64::try_from(l.qty).unwrap_or(i64::MAX),
                unit_price_minor: self.price_to_send(l),
                epc: l.epc.clone(),
                // A weighed or price-embedded label's price is the
                // label's; a price typed (F4) is keyed.
                price_source: (l.manual_price.is_none() && l.measure.is_some())
                    .then_some(PriceSource::Label),
            })
            .collect()
    }

    /// Posts the basket as a sale under the open id (a new one for the
    /// first post), with the tenders taken and a manager's `override_`.
    pub(super) fn post_sale(
        &mut self,
        override_: Option<OverrideRequest>,
        env: &Env,
    ) -> Vec<Effect> {
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
            cashier: Some(self.cashier.clone()),
            till: self.till.clone(),
        };
        self.send(Pending::Sale(req))
    }

    /// Posts `request`, which is then awaited (and kept for a retry).
    pub(super) fn send(&mut self, request: Pending) -> Vec<Effect> {
        let effect = match &request {
            Pending::Sale(r) => Effect::PostSale(r.clone()),
            Pending::Return(r) => Effect::PostReturn(r.clone()),
        };
        self.pending = Some(request);
        self.dialog = Some(Dialog::Sending);
        vec![effect]
    }

    /// Re-sends the pending request unchanged (same id, same body).
    pub(super) fn resend(&mut self) -> Vec<Effect> {
        let Some(p) = self.pending.clone() else {
            self.in_doubt = false;
            return Vec::new();
        };
        self.send(p)
    }

    /// The agent's answer to the sale posted as `sale_id`.
    pub(super) fn sale_done(
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
                let given = self
                    .tenders
                    .iter()
                    .fold(0i64, |sum, t| sum.saturating_add(t.given_minor));
                let receipt = Receipt {
                    tenders: self.tenders.clone(),
                    change_minor: (given - self.paid()).max(0),
                    override_: req.override_.map(|o| (o.approver, o.reason)),
                    ..self.receipt(Mode::Sale, reply.sale_id, reply.total_minor)
                };
                self.finish(receipt);
                Vec::new()
            }
            Err(e) => self.post_failed(e, req.override_.is_none()),
        }
    }

    /// The receipt of the basket the agent recorded as `id` with
    /// `total_minor`; no tenders, change or override yet.
    pub(super) fn receipt(&self, mode: Mode, id: EventId, total_minor: i64) -> Receipt {
        Receipt {
            mode,
            id,
            lines: self
                .lines
                .iter()
                .map(|l| ReceiptLine {
                    name: self.name(l),
                    qty: l.qty,
                    unit_price_minor: self.unit_price(l).unwrap_or(0),
                    total_minor: self.line_total(l).unwrap_or(0),
                })
                .collect(),
            total_minor,
            local_total_minor: self.total().ok().filter(|&l| l != total_minor),
            tenders: Vec::new(),
            change_minor: 0,
            override_: None,
            original_sale_id: None,
            original_order_id: None,
        }
    }

    /// Shows the receipt over a new, empty basket.
    pub(super) fn finish(&mut self, receipt: Receipt) {
        self.new_basket();
        self.dialog = Some(Dialog::Receipt(receipt));
    }

    /// A post failed: in doubt (retry with the same id), or definite (the
    /// agent recorded nothing): refused or invalid.
    pub(super) fn post_failed(&mut self, e: ApiError, can_override: bool) -> Vec<Effect> {
        self.note_failure(&e);
        // A request kept across a restart goes again without its PIN
        // (never stored): refused for it, it is not known unrecorded (the
        // first request, with the PIN, may still be on its way).
        let pinless = match &self.pending {
            Some(Pending::Sale(r)) => r.override_.as_ref().is_some_and(|o| o.pin.is_none()),
            Some(Pending::Return(r)) => r.approval.as_ref().is_some_and(|o| o.pin.is_none()),
            None => false,
        };
        if let Some(effects) = self.sign_in_required(&e) {
            return effects;
        }
        if let Some(effects) = self.approval_not_accepted(&e) {
            // An approval not accepted is not given again unasked.
            self.approved_ahead = None;
            if pinless || self.in_doubt {
                // Still in doubt, still kept: the PIN goes with the very
                // same request. (A retry refused for its approval says
                // nothing of the first attempt: a lockout since, say.)
                self.in_doubt = true;
                return effects;
            }
            // Definite: nothing recorded; the same id is posted again.
            self.pending = None;
            self.in_doubt = false;
            return effects;
        }
        // A retry of a request in doubt refused before the agent looked
        // its id up (a till's token, the host, a session, a malformed
        // retry, a return the hub could not check, any answer the client
        // does not know) says nothing of the first attempt: still in
        // doubt. Only the command core's refusal (a 409 with the rules'
        // code: it found no event under the id and refused it now) is
        // definite for a retry.
        let says_nothing = self.in_doubt && !matches!(e, ApiError::Refused(_));
        if e.outcome_unknown() || says_nothing {
            // The approval stays: a PIN refused on the next retry asks
            // for it again, the sale still in doubt.
            self.in_doubt = true;
            self.dialog = Some(Dialog::InDoubt {
                error: e.to_string(),
            });
            return Vec::new();
        }
        self.approving = None;
        // Definite: the agent recorded nothing.
        self.in_doubt = false;
        self.pending = None;
        let message = match e {
            ApiError::Refused(Refusal::Invalid(message)) | ApiError::Invalid { message, .. } => {
                message
            }
            ApiError::Refused(refusal) => return self.refused(Why::Rule(refusal), can_override),
            ApiError::Conflict(body) => return self.refused(Why::Unknown(body), can_override),
            other => other.to_string(),
        };
        self.show(Dialog::Invalid { message })
    }

    /// The not-confirmed dialog: retry (same id and body), back to the
    /// locked basket, or discard.
    pub(super) fn in_doubt_key(&mut self, error: String, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('r' | 'R') | Key::Enter | Key::F(5) => self.resend(),
            Key::Esc => {
                self.notify(
                    Level::Error,
                    "Sale in doubt: F5 retries it with the same id; F8 discards it.",
                );
                Vec::new()
            }
            Key::F(8) => self.show(Dialog::ConfirmDiscard),
            _ => self.show(Dialog::InDoubt { error }),
        }
    }

    /// The receipt: Enter (or typing, or a scan) starts the next customer.
    pub(super) fn receipt_key(&mut self, receipt: Receipt, key: Key) -> Vec<Effect> {
        match key {
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
            _ => self.show(Dialog::Receipt(receipt)),
        }
    }
}
