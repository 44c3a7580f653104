//! Request bodies, as posted. Fields keep the types a front-end sends
//! (GTINs as text, signed quantities) so the agent can answer a bad value
//! with a 422 that names it instead of a parser's message; every body
//! refuses unknown fields. Money is integer minor units.

use serde::{Deserialize, Serialize};
use tally_sync::command::{Approval, LineIn};
use tally_sync::{Epc, EventId, Gtin, Tender};

/// One line of a sale or a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// GTIN-8, -12, -13 or -14.
    pub gtin: String,
    /// Units, > 0.
    pub qty: i64,
    /// Price per unit; the catalog's (or, for a return naming its sale,
    /// the sale's) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    /// The tag's EPC (hex) for a serialized item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
    /// Where `unit_price_minor` came from; `keyed` when absent. A keyed
    /// price other than the catalog's needs a manager's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<PriceSource>,
}

impl LineBody {
    /// The line as the command core takes it, or what is wrong with it
    /// (a message naming the value): the one reading of a posted line,
    /// the agent's and the terminal's (which checks prices before
    /// payment with the core's own rule).
    pub fn line_in(&self) -> Result<LineIn, String> {
        let gtin = Gtin::parse(&self.gtin).map_err(|e| format!("gtin {:?}: {e}", self.gtin))?;
        let qty = u64::try_from(self.qty)
            .ok()
            .filter(|&q| q > 0)
            .ok_or_else(|| format!("qty must be > 0 for {gtin}, got {}", self.qty))?;
        let epc = self
            .epc
            .as_deref()
            .map(|e| Epc::from_hex(e).map_err(|err| err.to_string()))
            .transpose()?;
        Ok(LineIn {
            gtin,
            qty,
            unit_price_minor: self.unit_price_minor,
            price_from_label: self.price_source == Some(PriceSource::Label),
            epc,
        })
    }
}

/// Where a line's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// Typed by the cashier.
    Keyed,
    /// Read from the item's own label: a price-embedded or weighed-goods
    /// barcode.
    Label,
}

/// `POST /v1/sales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// Idempotency key, chosen before the first post and kept across
    /// retries; the agent makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<EventId>,
    /// The basket.
    pub lines: Vec<LineBody>,
    /// How it was paid (none: payment recorded elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenders: Vec<Tender>,
    /// A manager's approval: to sell beyond the store's rights, and for
    /// lines priced other than the catalog's.
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<OverrideRequest>,
    /// The cashier keying it (recorded on the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till it is keyed at; with till tokens configured, the token's
    /// till (a different one given here is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// A manager's approval as posted (a sale's `override`, a return's
/// `approval`): who approves, why, and the manager's PIN or password,
/// which the agent checks against its configuration and never records
/// (the event records `approver` and `reason`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The approving manager's id (`[[managers]] id`).
    pub approver: String,
    /// Why.
    pub reason: String,
    /// The manager's PIN or password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

impl OverrideRequest {
    /// An approval by `approver` for `reason` with `pin`.
    pub fn new(approver: &str, reason: &str, pin: &str) -> Self {
        Self {
            approver: approver.to_string(),
            reason: reason.to_string(),
            pin: Some(pin.to_string()),
        }
    }

    /// What the sale records: who and why (not the PIN).
    pub fn approval(&self) -> Approval {
        Approval {
            approver: self.approver.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl std::fmt::Debug for OverrideRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverrideRequest")
            .field("approver", &self.approver)
            .field("reason", &self.reason)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `POST /v1/returns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<EventId>,
    /// Returned items.
    pub lines: Vec<LineBody>,
    /// The sale the items came from, if known (bounds and prices it):
    /// this store's, another store's or an online order's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_sale_id: Option<EventId>,
    /// The web order the items came from, by the order's id (the hub finds
    /// it; needs the hub reachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// A manager's approval, needed when the return names no sale this
    /// store recorded (a refund without a receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<OverrideRequest>,
    /// The cashier keying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till it is keyed at (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// One line of a receipt of goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLineBody {
    /// The item.
    pub gtin: String,
    /// Units, > 0 (1 with an `epc`).
    pub qty: i64,
    /// The unit's tag (EPC, hex), for tagged goods received by hand or
    /// from an advance ship notice: the store then holds that tag, which
    /// RFID counts look for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
}

/// `POST /v1/receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<EventId>,
    /// Items and units received.
    pub lines: Vec<ReceiptLineBody>,
    /// Who receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// `POST /v1/counts`: a cycle count of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_id: Option<EventId>,
    /// The item.
    pub gtin: String,
    /// Units counted on the shelf, >= 0.
    pub counted: i64,
    /// Who counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// `POST /v1/orders/{id}/picked`, `/collected`, `/shipped`: a move of
/// this store's allocation of the order. The body is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FulfilRequest {
    /// Idempotency key of the move's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilment_id: Option<EventId>,
    /// Who picks or hands over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// One line of a transfer as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLineBody {
    /// The item.
    pub gtin: String,
    /// Units, > 0 (1 with an EPC).
    pub qty: i64,
    /// The tag of a serialized unit (hex EPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
}

/// `POST /v1/transfers`: send units to another store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The transfer's id, unique in the chain (a retry repeats it): 1 to
    /// 128 printable ASCII characters.
    pub transfer_id: String,
    /// Idempotency key of the event (optional: the transfer id is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The destination store.
    pub to_store: String,
    /// Items and units; a tagged unit with its `epc` (qty 1).
    pub lines: Vec<TransferLineBody>,
    /// Who sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// `POST /v1/transfers/{id}/received`: receive a transfer sent here (its
/// units, as sent). The body is optional (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReceivedRequest {
    /// Idempotency key of the receipt's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// Who receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// The till (see [`SaleRequest::till`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub till: Option<String>,
}

/// `POST /v1/cashiers/sign-in`: a cashier and their PIN.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The cashier's id (`[[cashiers]] id`).
    pub cashier: String,
    /// The cashier's PIN.
    pub pin: String,
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("cashier", &self.cashier)
            .field("pin", &"…")
            .finish()
    }
}
