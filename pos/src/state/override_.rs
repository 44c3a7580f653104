//! Refusals and the manager's approval: the dialog that says why the agent
//! refused a post (409) and that nothing was recorded, the stock figures
//! behind an `insufficient_stock`, the approval (approving manager, reason,
//! then the manager's PIN; the same sale or return re-posted under its
//! id: a sale beyond rights or at a keyed price, a refund without a
//! receipt), and the way back to the basket from a refusal or an invalid
//! request.

use tally_agent_api::{ApiError, ErrorBody, OverrideRequest, Stock};
use tally_sync::Refusal;

use super::{Dialog, Effect, Env, Key, Level, Mode, PosState};

/// Why the agent refused a post (409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// One of the rules, with its details.
    Rule(Refusal),
    /// A code this terminal does not know, as the agent answered it.
    Unknown(Box<ErrorBody>),
}

/// An approval on its way to the agent with a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approving {
    /// The refusal it answers.
    pub refused: Refused,
    /// The approving manager's id.
    pub approver: String,
    /// The reason.
    pub reason: String,
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

impl PosState {
    /// Shows a refusal; for insufficient stock, asks for the item's stock
    /// to show beside it.
    pub(super) fn refused(&mut self, why: Why, can_override: bool) -> Vec<Effect> {
        let fetch = match &why {
            Why::Rule(Refusal::InsufficientStock { gtin, .. }) => {
                vec![Effect::FetchStock(gtin.to_string())]
            }
            _ => Vec::new(),
        };
        self.dialog = Some(Dialog::Refused(Refused {
            why,
            can_override,
            stock: None,
        }));
        fetch
    }

    /// Puts a stock answer into the open refusal dialog if it is about
    /// that item's shortage.
    pub(super) fn refused_stock(&mut self, gtin: &str, stock: Stock) {
        if let Some(Dialog::Refused(r)) = &mut self.dialog {
            if matches!(&r.why, Why::Rule(Refusal::InsufficientStock { gtin: g, .. }) if g.to_string() == gtin)
            {
                r.stock = Some(stock);
            }
        }
    }

    /// The refusal dialog: `O` starts the override (when allowed), Esc or
    /// Enter go back to the basket.
    pub(super) fn refused_key(&mut self, refused: Refused, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('o' | 'O') if refused.can_override => self.show(Dialog::OverrideApprover {
                refused,
                input: String::new(),
            }),
            Key::Esc | Key::Enter => {
                self.back_after_refusal();
                Vec::new()
            }
            _ => self.show(Dialog::Refused(refused)),
        }
    }

    /// Override, first step: the approving manager's id (required, as
    /// configured at the agent).
    pub(super) fn approver_key(
        &mut self,
        refused: Refused,
        input: String,
        key: Key,
    ) -> Vec<Effect> {
        match key {
            Key::Esc => self.show(Dialog::Refused(refused)),
            Key::Enter if input.trim().is_empty() => {
                self.notify(Level::Error, "Type the approving manager's id.");
                self.show(Dialog::OverrideApprover { refused, input })
            }
            Key::Enter => {
                self.notice = None;
                self.show(Dialog::OverrideReason {
                    refused,
                    approver: input.trim().to_string(),
                    input: String::new(),
                })
            }
            k => self.show(Dialog::OverrideApprover {
                refused,
                input: super::dialogs::edit(input, k),
            }),
        }
    }

    /// Override, second step: the reason (required).
    pub(super) fn reason_key(
        &mut self,
        refused: Refused,
        approver: String,
        input: String,
        key: Key,
    ) -> Vec<Effect> {
        match key {
            Key::Esc => self.show(Dialog::OverrideApprover {
                refused,
                input: approver,
            }),
            Key::Enter if input.trim().is_empty() => {
                self.notify(Level::Error, "Type the reason for the override.");
                self.show(Dialog::OverrideReason {
                    refused,
                    approver,
                    input,
                })
            }
            Key::Enter => {
                self.notice = None;
                self.show(Dialog::OverridePin {
                    refused,
                    approver,
                    reason: input.trim().to_string(),
                    input: String::new(),
                })
            }
            k => self.show(Dialog::OverrideReason {
                refused,
                approver,
                input: super::dialogs::edit(input, k),
            }),
        }
    }

    /// Override, third step: the manager types their PIN (required); then
    /// the same sale is posted again, under its id, with the approval.
    pub(super) fn pin_key(
        &mut self,
        refused: Refused,
        approver: String,
        reason: String,
        input: String,
        key: Key,
        env: &Env,
    ) -> Vec<Effect> {
        match key {
            // A request in doubt keeps its approver and reason (another
            // would be another request): back to the in-doubt dialog.
            Key::Esc if self.in_doubt => {
                let error = format!("the manager's PIN ({approver}) is needed to send it again");
                self.approving = Some(Approving {
                    refused,
                    approver,
                    reason,
                });
                self.show(Dialog::InDoubt { error })
            }
            Key::Esc => self.show(Dialog::OverrideReason {
                refused,
                approver,
                input: reason,
            }),
            Key::Enter if input.is_empty() => {
                self.notify(Level::Error, "The approving manager types their PIN.");
                self.show(Dialog::OverridePin {
                    refused,
                    approver,
                    reason,
                    input,
                })
            }
            Key::Enter => {
                self.notice = None;
                let approval = OverrideRequest::new(&approver, &reason, &input);
                self.approving = Some(Approving {
                    refused,
                    approver,
                    reason,
                });
                if self.in_doubt {
                    // The request in doubt, unchanged but for the PIN.
                    if let Some(p) = self.pending.clone() {
                        return self.send(p.with_approval(approval));
                    }
                }
                if self.mode == Mode::Sale && self.due().is_some_and(|d| d > 0) {
                    // Approved before payment: the payment next, then the
                    // sale goes with this approval.
                    self.approved_ahead = Some((self.lines_body(), approval));
                    return self.show(Dialog::Tender);
                }
                match self.mode {
                    Mode::Sale => self.post_sale(Some(approval), env),
                    Mode::Return => self.post_return(Some(approval), env),
                }
            }
            k => self.show(Dialog::OverridePin {
                refused,
                approver,
                reason,
                input: super::dialogs::edit(input, k),
            }),
        }
    }

    /// A post whose approval the agent did not accept (`approval_refused`:
    /// unknown manager or wrong PIN; `approval_locked`: too many wrong
    /// PINs): the PIN is asked again, with what the agent said; the
    /// tenders stay. `None` for any other failure.
    pub(super) fn approval_not_accepted(&mut self, e: &ApiError) -> Option<Vec<Effect>> {
        let ApiError::Denied(body) = e else {
            return None;
        };
        if !matches!(body.error.as_str(), "approval_refused" | "approval_locked") {
            return None;
        }
        let Approving {
            refused,
            approver,
            reason,
        } = self.approving.take()?;
        self.notify(
            Level::Error,
            format!(
                "Not approved: {}. Check the manager id ({approver}) and PIN, or Esc.",
                body.message
            ),
        );
        Some(self.show(Dialog::OverridePin {
            refused,
            approver,
            reason,
            input: String::new(),
        }))
    }

    /// The invalid-request dialog: Esc or Enter go back to the basket.
    pub(super) fn invalid_key(&mut self, message: String, key: Key) -> Vec<Effect> {
        match key {
            Key::Esc | Key::Enter => {
                self.back_after_refusal();
                Vec::new()
            }
            _ => self.show(Dialog::Invalid { message }),
        }
    }

    /// Back to the basket after a definite failure: nothing was recorded,
    /// so tenders taken are dropped (to be handed back) and the basket is
    /// editable again.
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
