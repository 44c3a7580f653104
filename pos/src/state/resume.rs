//! What the till keeps of a sale or return whose answer it awaits, so that
//! a restart (crash, power cut, the cashier quitting) finds it again in
//! doubt, under the same id: [`Saved`] is written to the till's journal
//! before the request is posted and removed once the agent's answer is
//! definite. Pure: `crate::journal` stores it. A sale being paid (a card
//! charged, nothing posted yet) is kept too: a restart opens it with its
//! payments, to finish or to give back.
//!
//! A manager's PIN is never kept: the agent answers a retry of a recorded
//! request without it, and a request it never recorded is refused for the
//! missing PIN, so the manager approves again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_agent_api::{ReturnRequest, SaleRequest};
use tally_hardware::measure::Measure;

use tally_sync::error_body::ErrorBody;

use super::{
    Approving, CatalogEntry, Dialog, Effect, Line, Mode, Pending, PosState, Refused, Tendered, Why,
};

/// A sale or return in flight or in doubt, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// The request exactly as posted, without any PIN.
    pub request: SavedRequest,
    /// The basket's lines (how each was priced: label, weight, keyed).
    pub lines: Vec<SavedLine>,
    /// The payments taken (cash handed over, for the change).
    pub tenders: Vec<SavedTender>,
    /// A return against a sale: what that sale charged per item.
    #[serde(default)]
    pub original_prices: BTreeMap<String, i64>,
}

/// The request of a [`Saved`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SavedRequest {
    /// A sale.
    Sale(SaleRequest),
    /// A return.
    Return(ReturnRequest),
    /// A sale being paid: payments taken (a card charged), nothing
    /// posted yet, so nothing the agent may have recorded.
    Paying,
}

/// A basket line of a [`Saved`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLine {
    /// GTIN, 14 digits.
    pub gtin: String,
    /// Units.
    pub qty: u64,
    /// Serialized item's EPC.
    #[serde(default)]
    pub epc: Option<String>,
    /// Price embedded in the label.
    #[serde(default)]
    pub label_price: Option<i64>,
    /// Weight embedded in the label, in grams.
    #[serde(default)]
    pub grams: Option<i64>,
    /// Price the cashier typed.
    #[serde(default)]
    pub manual_price: Option<i64>,
}

/// A payment of a [`Saved`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedTender {
    /// `cash` or `card`.
    pub method: String,
    /// Applied to the sale.
    pub applied_minor: i64,
    /// Handed over.
    pub given_minor: i64,
    /// Card reference.
    #[serde(default)]
    pub reference: Option<String>,
}

/// A journal entry this terminal cannot take back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// A payment method the terminal does not take.
    #[error("payment method {0:?} is not one this terminal takes")]
    Method(String),
    /// A line both weighed and price-embedded.
    #[error("line {0} is both weighed and price-embedded")]
    Measure(String),
    /// The request has no id (the terminal always gives one).
    #[error("the request has no id")]
    NoId,
}

impl Saved {
    /// Checks what [`PosState::resume`] relies on.
    pub fn check(&self) -> Result<(), ResumeError> {
        let id = match &self.request {
            SavedRequest::Sale(r) => r.sale_id,
            SavedRequest::Return(r) => r.return_id,
            SavedRequest::Paying => None,
        };
        if id.is_none() && self.request != SavedRequest::Paying {
            return Err(ResumeError::NoId);
        }
        for t in &self.tenders {
            method(&t.method)?;
        }
        for l in &self.lines {
            if l.label_price.is_some() && l.grams.is_some() {
                return Err(ResumeError::Measure(l.gtin.clone()));
            }
        }
        Ok(())
    }
}

fn method(m: &str) -> Result<&'static str, ResumeError> {
    match m {
        "cash" => Ok("cash"),
        "card" => Ok("card"),
        other => Err(ResumeError::Method(other.to_string())),
    }
}

impl PosState {
    /// What the journal must hold now: the open sale or return while its
    /// request is in flight or in doubt, or a sale being paid once a
    /// payment is taken; `None` once the answer is definite (or it was
    /// discarded, or its payments given back).
    pub fn saved(&self) -> Option<Saved> {
        let request = match self.pending.as_ref() {
            Some(Pending::Sale(r)) => SavedRequest::Sale(SaleRequest {
                override_: r.override_.as_ref().map(without_pin),
                ..r.clone()
            }),
            Some(Pending::Return(r)) => SavedRequest::Return(ReturnRequest {
                approval: r.approval.as_ref().map(without_pin),
                ..r.clone()
            }),
            None if self.mode == Mode::Sale && !self.tenders.is_empty() => SavedRequest::Paying,
            None => return None,
        };
        Some(Saved {
            request,
            lines: self
                .lines
                .iter()
                .map(|l| SavedLine {
                    gtin: l.gtin.clone(),
                    qty: l.qty,
                    epc: l.epc.clone(),
                    label_price: match l.measure {
                        Some(Measure::Price(p)) => Some(p),
                        _ => None,
                    },
                    grams: match l.measure {
                        Some(Measure::Grams(g)) => Some(g),
                        _ => None,
                    },
                    manual_price: l.manual_price,
                })
                .collect(),
            tenders: self
                .tenders
                .iter()
                .map(|t| SavedTender {
                    method: t.method.to_string(),
                    applied_minor: t.applied_minor,
                    given_minor: t.given_minor,
                    reference: t.reference.clone(),
                })
                .collect(),
            original_prices: self.original_prices.clone(),
        })
    }

    /// Opens `saved` (found in the journal at start) in doubt: its basket
    /// locked, its payments taken, the not-confirmed dialog up; F5 / R
    /// sends the same request again. Returns the catalog lookups its
    /// lines need.
    pub fn resume(&mut self, saved: Saved) -> Result<Vec<Effect>, ResumeError> {
        saved.check()?;
        self.new_basket();
        let (mode, id, original, order, pending) = match saved.request {
            SavedRequest::Sale(r) => (Mode::Sale, r.sale_id, None, None, Some(Pending::Sale(r))),
            SavedRequest::Return(r) => (
                Mode::Return,
                r.return_id,
                r.original_sale_id,
                r.order_id.clone(),
                Some(Pending::Return(r)),
            ),
            SavedRequest::Paying => (Mode::Sale, None, None, None, None),
        };
        self.mode = mode;
        self.event_id = id;
        self.original_order_id = order;
        self.original_sale_id = original;
        self.original_prices = saved.original_prices;
        self.in_doubt = pending.is_some();
        self.pending = pending;
        self.lines = saved
            .lines
            .into_iter()
            .map(|l| Line {
                measure: match (l.label_price, l.grams) {
                    (Some(p), _) => Some(Measure::Price(p)),
                    (None, Some(g)) => Some(Measure::Grams(g)),
                    (None, None) => None,
                },
                gtin: l.gtin,
                qty: l.qty,
                epc: l.epc,
                manual_price: l.manual_price,
            })
            .collect();
        self.tenders = saved
            .tenders
            .into_iter()
            .map(|t| {
                Ok(Tendered {
                    method: method(&t.method)?,
                    applied_minor: t.applied_minor,
                    given_minor: t.given_minor,
                    reference: t.reference,
                })
            })
            .collect::<Result<_, ResumeError>>()?;
        // Approved before the restart: a retry the agent never recorded
        // is refused for the PIN not kept, and asks the manager again.
        let approval = match &self.pending {
            Some(Pending::Sale(r)) => r.override_.as_ref(),
            Some(Pending::Return(r)) => r.approval.as_ref(),
            None => None,
        };
        self.approving = approval.map(|a| Approving {
            refused: Refused {
                why: Why::Unknown(Box::new(ErrorBody::new(
                    "approved_before_restart",
                    "the manager approved it before the till restarted; the PIN is not kept",
                ))),
                can_override: true,
                stock: None,
            },
            approver: a.approver.clone(),
            reason: a.reason.clone(),
        });
        self.dialog = if self.in_doubt {
            Some(Dialog::InDoubt {
                error: "the till stopped before the agent's answer arrived".into(),
            })
        } else {
            self.notify(
                super::Level::Error,
                "The till stopped during payment: the payments taken are kept. F5 finishes the payment; R in it gives a payment back.",
            );
            None
        };
        let mut effects = Vec::new();
        for l in &self.lines {
            if !self.catalog.contains_key(&l.gtin) {
                self.catalog.insert(l.gtin.clone(), CatalogEntry::Pending);
                effects.push(Effect::LookupCatalog(l.gtin.clone()));
            }
        }
        Ok(effects)
    }
}

fn without_pin(o: &tally_agent_api::OverrideRequest) -> tally_agent_api::OverrideRequest {
    tally_agent_api::OverrideRequest {
        pin: None,
        ..o.clone()
    }
}
