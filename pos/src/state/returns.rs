//! Returns: switching between sales and returns (F6), the original sale a
//! return names (F7; looked up to show what it has left to return),
//! confirming the refund, posting the return and its answer. A return
//! naming its sale sends only the prices the cashier typed or the label
//! printed, so the agent refunds what that sale charged.

use tally_agent_api::{ApiError, OverrideRequest, ReturnRecorded, ReturnRequest, SaleView};
use tally_sync::{EventId, Refusal};

use super::{Dialog, Effect, Env, Key, Level, Line, Mode, Pending, PosState, Receipt};
use crate::scan::Measure;

impl PosState {
    /// F6: sales ↔ returns, with an empty basket only.
    pub(super) fn switch_mode(&mut self) -> Vec<Effect> {
        if self.basket_open() {
            self.notify(
                Level::Error,
                "Finish or discard (F8) the open basket first.",
            );
            return Vec::new();
        }
        self.mode = match self.mode {
            Mode::Sale => Mode::Return,
            Mode::Return => Mode::Sale,
        };
        self.original_sale_id = None;
        self.original_order_id = None;
        self.original_prices.clear();
        self.notify(
            Level::Info,
            match self.mode {
                Mode::Sale => "Sale mode.",
                Mode::Return => "Returns mode: scan the returned items; F7 original sale.",
            },
        );
        Vec::new()
    }

    /// F7 in returns mode: the original sale's id, or the web order's.
    pub(super) fn ask_original_sale(&mut self) -> Vec<Effect> {
        if self.editable() {
            self.dialog = Some(Dialog::OriginalSale {
                input: self
                    .original_sale_id
                    .map(|u| u.to_string())
                    .or_else(|| self.original_order_id.clone())
                    .unwrap_or_default(),
            });
        }
        Vec::new()
    }

    /// The original sale dialog: a sale id (looked up here), a web order
    /// id (the hub finds its sale when the return is posted), or nothing
    /// to clear it.
    pub(super) fn original_sale_key(&mut self, input: String, key: Key) -> Vec<Effect> {
        self.field(
            input,
            key,
            false,
            |s, text| s.name_original(text),
            |input| Dialog::OriginalSale { input },
        )
    }

    /// The return names `text` as its original: a sale id (looked up
    /// here), a web order id (the hub finds its sale when the return is
    /// posted), or nothing (empty).
    fn name_original(&mut self, text: &str) -> Result<Vec<Effect>, String> {
        self.original_prices.clear();
        self.original_sale_id = None;
        self.original_order_id = None;
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if let Ok(id) = text.parse::<EventId>() {
            self.original_sale_id = Some(id);
            return Ok(vec![Effect::LookupSale(id)]);
        }
        if !tally_sync::fulfilment::valid_order_id(text) {
            return Err(format!(
                "Neither a sale id (UUID) nor a web order id (1 to {} printable characters, no spaces).",
                tally_sync::fulfilment::MAX_ORDER_ID_BYTES
            ));
        }
        self.original_order_id = Some(text.to_string());
        self.notify(
            Level::Info,
            format!("Web order {text}: HQ finds its sale and bounds the refund when the return is posted."),
        );
        Ok(Vec::new())
    }

    /// Returns mode, a scanned code that is no item: a receipt's sale id
    /// (its barcode carries the id) names the original sale, as F7 does.
    /// `None` when the code is not a sale id.
    pub(super) fn scanned_receipt(&mut self, raw: &str) -> Option<Vec<Effect>> {
        if self.mode != Mode::Return {
            return None;
        }
        let (_, data) = tally_hardware::aim::split(raw.trim());
        let id = data.trim().parse::<EventId>().ok()?;
        if !self.editable() {
            return Some(Vec::new());
        }
        let effects = self.name_original(&id.to_string()).unwrap_or_default();
        self.notify(
            Level::Info,
            format!("Receipt scanned: the return is against sale {id}."),
        );
        Some(effects)
    }

    /// The agent's view of the original sale: units sold and left to
    /// return, or a warning that this store did not record it.
    pub(super) fn original_sale_answer(
        &mut self,
        id: EventId,
        result: Result<SaleView, ApiError>,
    ) -> Vec<Effect> {
        // An answer for a sale id no longer entered is stale.
        if self.original_sale_id != Some(id) {
            return Vec::new();
        }
        match result {
            Ok(sale) => {
                self.original_prices.clear();
                for l in &sale.lines {
                    let price = self
                        .original_prices
                        .entry(l.gtin.to_string())
                        .or_insert(l.unit_price_minor);
                    *price = (*price).min(l.unit_price_minor);
                }
                let (sold, left) = sale.sold_and_left();
                self.notify(
                    Level::Info,
                    format!("Sale {id}: {sold} units sold, {left} left to return."),
                );
            }
            Err(ApiError::NotFound) => self.notify(
                Level::Error,
                format!(
                    "Sale {id} is not recorded at this store: the return is checked with HQ when posted (a manager approves it if HQ cannot be reached)."
                ),
            ),
            Err(e) => self.note_failure(&e),
        }
        Vec::new()
    }

    /// The refund confirmation: Enter or `Y` posts the return.
    pub(super) fn confirm_refund_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        match key {
            Key::Enter | Key::Char('y' | 'Y') => self.post_return(None, env),
            Key::Esc | Key::Char('n' | 'N') => Vec::new(),
            _ => self.show(Dialog::ConfirmRefund),
        }
    }

    /// The price a line is posted with. A return against a named sale
    /// sends only prices the cashier typed or the label printed: the agent
    /// refunds the rest at what that sale charged, and refuses a refund
    /// above it (the catalog price may have risen since).
    pub(super) fn price_to_send(&self, l: &Line) -> Option<i64> {
        if self.refunds_as_sold(l) {
            return None;
        }
        self.unit_price(l)
    }

    /// Whether `l` is refunded at what the named original sale charged:
    /// a return against a sale, a line priced by neither the cashier nor
    /// its label.
    pub(super) fn refunds_as_sold(&self, l: &Line) -> bool {
        let from_catalog =
            l.manual_price.is_none() && !matches!(l.measure, Some(Measure::Price(_)));
        let names_original = self.original_sale_id.is_some() || self.original_order_id.is_some();
        self.mode == Mode::Return && names_original && from_catalog
    }

    /// Posts the returned items under the open id, with a manager's
    /// `approval` (needed when the return names no sale this store
    /// recorded).
    pub(super) fn post_return(
        &mut self,
        approval: Option<OverrideRequest>,
        env: &Env,
    ) -> Vec<Effect> {
        let return_id = *self.event_id.get_or_insert(env.fresh_id);
        let req = ReturnRequest {
            return_id: Some(return_id),
            lines: self.lines_body(),
            original_sale_id: self.original_sale_id,
            approval,
            cashier: Some(self.cashier.clone()),
            till: self.till.clone(),
            order_id: self.original_order_id.clone(),
        };
        self.send(Pending::Return(req))
    }

    /// The agent's answer to the return posted as `return_id`.
    pub(super) fn return_done(
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
                let receipt = Receipt {
                    original_sale_id: req.original_sale_id,
                    original_order_id: req.order_id,
                    override_: req.approval.map(|o| (o.approver, o.reason)),
                    ..self.receipt(Mode::Return, reply.return_id, reply.total_minor)
                };
                self.finish(receipt);
                Vec::new()
            }
            Err(e) => {
                // A manager may approve only what needs an approval.
                let can_approve = req.approval.is_none()
                    && matches!(e, ApiError::Refused(Refusal::ApprovalRequired(_)));
                self.post_failed(e, can_approve)
            }
        }
    }
}
