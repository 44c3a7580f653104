//! The modal dialogs over the screens: [`Dialog`], every one the terminal
//! can show, and the routing of a key to the flow whose dialog is open
//! (the basket's quantity and price, checkout's payment and receipt,
//! returns', the refusal and override, the orders' moves). The editing every single-field
//! dialog shares (`field`, `edit`) lives here, and the quit and discard
//! questions are answered here.

use tally_agent_api::OrderView;

use super::{
    Effect, Env, Key, Level, OrderRefused, PosState, Receipt, Refused, TransferRefused, MAX_INPUT,
};

/// A modal dialog over the screen.
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
    /// A card payment: its slip's reference and its amount (empty: all
    /// that is due).
    Card {
        /// The reference typed.
        input: String,
        /// The amount typed.
        amount: String,
        /// Whether keys go to the amount (Tab or the arrows switch).
        on_amount: bool,
    },
    /// A cashier signs in: id and PIN (masked).
    SignIn {
        /// The cashier's id typed.
        cashier: String,
        /// The PIN typed.
        pin: String,
        /// Whether keys go to the PIN.
        on_pin: bool,
    },
    /// Confirm a refund (returns).
    ConfirmRefund,
    /// The original sale of a return.
    OriginalSale {
        /// Typed.
        input: String,
    },
    /// A POST is in flight (a sale, a return, or a move of an order).
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
    /// Override: the approving manager's PIN (shown masked, never kept
    /// beyond the post).
    OverridePin {
        /// The refusal being overridden.
        refused: Refused,
        /// Approver.
        approver: String,
        /// Reason.
        reason: String,
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
    /// Quit with an open basket? Any other key than Y puts back the
    /// dialog it opened over (a sale being sent stays being sent).
    ConfirmQuit {
        /// The dialog open when quitting was asked.
        under: Option<Box<Dialog>>,
    },
    /// Discard the open basket?
    ConfirmDiscard,
    /// Mark an order picked though not every unit was scanned?
    ConfirmPicked {
        /// The order.
        order_id: String,
    },
    /// The agent does not know an order here, or refused its move.
    OrderRefused(OrderRefused),
    /// A move's outcome is unknown: retry with the same id.
    MoveInDoubt {
        /// What went wrong.
        error: String,
    },
    /// An order was handed over (collected or shipped).
    HandedOver {
        /// The order, as shown before the handover.
        order: OrderView,
        /// It was there already: nothing new was recorded.
        already: bool,
    },
    /// The agent does not know a transfer here, or refused its receipt.
    TransferRefused(TransferRefused),
    /// A receipt's outcome is unknown: retry with the same id.
    ReceiptInDoubt {
        /// What went wrong.
        error: String,
    },
    /// The zone of the next count.
    CountZone {
        /// Typed.
        input: String,
    },
    /// Accept a count's variance report (records its adjustments)?
    ConfirmAccept {
        /// The session.
        session_id: String,
    },
}

impl PosState {
    /// A key while `dialog` is open (taken out of the state: a handler
    /// that keeps it open puts it back).
    pub(super) fn dialog_key(&mut self, dialog: Dialog, key: Key, env: &Env) -> Vec<Effect> {
        match dialog {
            Dialog::Quantity { input } => self.quantity_key(input, key),
            Dialog::Price { input } => self.price_key(input, key),
            Dialog::Tender => self.tender_key(key),
            Dialog::Cash { input } => self.cash_key(input, key, env),
            Dialog::Card {
                input,
                amount,
                on_amount,
            } => self.card_key(input, amount, on_amount, key, env),
            Dialog::ConfirmRefund => self.confirm_refund_key(key, env),
            Dialog::SignIn {
                cashier,
                pin,
                on_pin,
            } => self.sign_in_key(cashier, pin, on_pin, key),
            Dialog::OriginalSale { input } => self.original_sale_key(input, key),
            Dialog::Sending => self.show(Dialog::Sending),
            Dialog::Refused(refused) => self.refused_key(refused, key),
            Dialog::OverrideApprover { refused, input } => self.approver_key(refused, input, key),
            Dialog::OverrideReason {
                refused,
                approver,
                input,
            } => self.reason_key(refused, approver, input, key),
            Dialog::OverridePin {
                refused,
                approver,
                reason,
                input,
            } => self.pin_key(refused, approver, reason, input, key, env),
            Dialog::Invalid { message } => self.invalid_key(message, key),
            Dialog::InDoubt { error } => self.in_doubt_key(error, key),
            Dialog::Receipt(receipt) => self.receipt_key(receipt, key),
            Dialog::ConfirmQuit { under } => match key {
                Key::Char('y' | 'Y') => vec![Effect::Quit],
                _ => {
                    // The dialog asked over comes back, but a "sending"
                    // whose answer came meanwhile (its handler closes
                    // only a sending dialog on top) does not.
                    self.dialog = under
                        .map(|d| *d)
                        .filter(|d| !matches!(d, Dialog::Sending) || self.awaiting_answer());
                    Vec::new()
                }
            },
            Dialog::ConfirmPicked { order_id } => self.confirm_picked_key(order_id, key, env),
            Dialog::OrderRefused(refused) => self.order_refused_key(refused, key),
            Dialog::MoveInDoubt { error } => self.move_in_doubt_key(error, key),
            Dialog::HandedOver { order, already } => self.handed_over_key(order, already, key),
            Dialog::TransferRefused(refused) => self.transfer_refused_key(refused, key),
            Dialog::ReceiptInDoubt { error } => self.receipt_in_doubt_key(error, key),
            Dialog::CountZone { input } => self.count_zone_key(input, key),
            Dialog::ConfirmAccept { session_id } => self.confirm_accept_key(session_id, key),
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

    /// Opens `dialog` (or keeps it open); no effects.
    pub(super) fn show(&mut self, dialog: Dialog) -> Vec<Effect> {
        self.dialog = Some(dialog);
        Vec::new()
    }

    /// A single-field dialog: Enter submits (`submit` may refuse with a
    /// message, keeping the dialog), Esc closes, other keys edit.
    pub(super) fn field(
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
                    self.show(reopen(input))
                }
            },
            Key::Char(c) if digits_only && !c.is_ascii_digit() => self.show(reopen(input)),
            k => self.show(reopen(edit(input, k))),
        }
    }
}

impl PosState {
    /// The typed line of the order, transfer and count screens: a character,
    /// Backspace ([`edit`]), or Esc while something is typed (clears it).
    /// Answers whether `key` was one of those.
    pub(super) fn typed(&mut self, key: Key) -> bool {
        match key {
            Key::Char(c) if !c.is_control() => {}
            Key::Backspace => {}
            Key::Esc if !self.input.is_empty() => {
                self.input.clear();
                return true;
            }
            _ => return false,
        }
        self.input = edit(std::mem::take(&mut self.input), key);
        true
    }
}

/// Edits a dialog field with a key.
pub(super) fn edit(mut input: String, key: Key) -> String {
    match key {
        Key::Char(c) if !c.is_control() && input.chars().count() < MAX_INPUT => input.push(c),
        Key::Backspace => {
            input.pop();
        }
        _ => {}
    }
    input
}
