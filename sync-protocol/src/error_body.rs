//! The one error body of every HTTP API Tally serves (the agent's local
//! API and the hub's): `{"error": code, "message": text}`, plus the
//! details that code carries (`gtin`, `requested`, `available`, …), each
//! present only where it applies. Servers build it, clients read it back
//! into a typed [`Refusal`] where the code is one of the rules'.
//! Documented in `docs/api.md` and `docs/api-hub.md`.

use serde::{Deserialize, Serialize};

use crate::gtin::Gtin;
use crate::ids::{Epc, EventId};
use crate::ledger::{Refusal, Shortage};

/// An error answer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs: `invalid`, `insufficient_stock`,
    /// `already_sold`, `not_sold`, `exceeds_sale`, `not_found`,
    /// `too_large`, `unavailable`, and the hub's own codes.
    pub error: String,
    /// What went wrong, for people (may be empty).
    #[serde(default)]
    pub message: String,
    /// The item concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<Gtin>,
    /// Units asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<u64>,
    /// Units the refusing replica may sell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
    /// Units on hand at the location (every replica's, unsold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hand: Option<u64>,
    /// Why an `insufficient_stock` happened: `no_stock`, `held_elsewhere`
    /// or `offline` ([`Shortage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Units the named sale still has to give back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returnable: Option<u64>,
    /// The tag concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<Epc>,
    /// The sale a refused return named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_sale_id: Option<EventId>,
    /// The event a refused sync named (the store dead-letters it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The protocol version a refused sync spoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// The protocol versions the hub speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<String>,
    /// The order concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The transfer concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
    /// Where the order's allocation stands, when a move was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::fulfilment::Status>,
}

impl ErrorBody {
    /// `code` with `message` and no details.
    pub fn new(code: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            error: code.into(),
            message: message.to_string(),
            gtin: None,
            requested: None,
            available: None,
            on_hand: None,
            reason: None,
            returnable: None,
            epc: None,
            original_sale_id: None,
            event_id: None,
            found: None,
            supported: None,
            order_id: None,
            transfer_id: None,
            status: None,
        }
    }

    /// A refusal by the rules, with its details; `hub_reachable` decides
    /// whether a shortage of rights held elsewhere is `offline`.
    pub fn of_refusal(refusal: &Refusal, hub_reachable: bool) -> Self {
        let mut body = Self::new(refusal.code(), refusal_message(refusal));
        body.reason = refusal
            .shortage(hub_reachable)
            .map(|s| s.name().to_string());
        match refusal {
            Refusal::InsufficientStock {
                gtin,
                requested,
                available,
                on_hand,
            } => {
                body.gtin = Some(*gtin);
                body.requested = Some(*requested);
                body.available = Some(*available);
                body.on_hand = Some(*on_hand);
            }
            Refusal::AlreadySold { epc } | Refusal::NotSold { epc } => {
                body.epc = Some(epc.clone());
            }
            Refusal::ExceedsSale {
                sale,
                gtin,
                requested,
                returnable,
            } => {
                body.original_sale_id = Some(*sale);
                body.gtin = Some(*gtin);
                body.requested = Some(*requested);
                body.returnable = Some(*returnable);
            }
            Refusal::UnknownOrder(order_id) => body.order_id = Some(order_id.clone()),
            Refusal::UnknownTransfer(id) | Refusal::TransferReceived(id) => {
                body.transfer_id = Some(id.clone());
            }
            Refusal::Move { order_id, error } => {
                body.order_id = Some(order_id.clone());
                body.status = Some(error.status());
            }
            Refusal::ApprovalRequired(_) | Refusal::Invalid(_) => {}
        }
        body
    }

    /// The reason of an `insufficient_stock`, when the body names one.
    pub fn shortage(&self) -> Option<Shortage> {
        self.reason.as_deref().and_then(Shortage::from_name)
    }

    /// The refusal this body describes, when its code is one of the
    /// rules' and its details are all there.
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self.error.as_str() {
            "insufficient_stock" => Refusal::InsufficientStock {
                gtin: self.gtin?,
                requested: self.requested?,
                available: self.available?,
                // An answer without it (an older agent) says only what
                // this replica holds.
                on_hand: self.on_hand.or(self.available)?,
            },
            "already_sold" => Refusal::AlreadySold {
                epc: self.epc.clone()?,
            },
            "not_sold" => Refusal::NotSold {
                epc: self.epc.clone()?,
            },
            "exceeds_sale" => Refusal::ExceedsSale {
                sale: self.original_sale_id?,
                gtin: self.gtin?,
                requested: self.requested?,
                returnable: self.returnable?,
            },
            "approval_required" => Refusal::ApprovalRequired(self.message.clone()),
            "unknown_order" => Refusal::UnknownOrder(self.order_id.clone()?),
            "unknown_transfer" => Refusal::UnknownTransfer(self.transfer_id.clone()?),
            "transfer_received" => Refusal::TransferReceived(self.transfer_id.clone()?),
            "invalid" => Refusal::Invalid(self.message.clone()),
            _ => return None,
        })
    }
}

/// An invalid command's message, and what an approval was required for,
/// are the reason as given; the others say what the rule found.
fn refusal_message(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Invalid(why) | Refusal::ApprovalRequired(why) => why.clone(),
        other => other.to_string(),
    }
}

impl Refusal {
    /// The error code this refusal is answered with.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InsufficientStock { .. } => "insufficient_stock",
            Refusal::AlreadySold { .. } => "already_sold",
            Refusal::NotSold { .. } => "not_sold",
            Refusal::ExceedsSale { .. } => "exceeds_sale",
            Refusal::ApprovalRequired(_) => "approval_required",
            Refusal::UnknownOrder(_) => "unknown_order",
            Refusal::UnknownTransfer(_) => "unknown_transfer",
            Refusal::TransferReceived(_) => "transfer_received",
            Refusal::Move { .. } => "order_status",
            Refusal::Invalid(_) => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reads_back_as_itself() {
        let gtin = Gtin::from_body(96_385_074).unwrap();
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let sale = EventId::v7(1, [7; 10]);
        for refusal in [
            Refusal::InsufficientStock {
                gtin,
                requested: 3,
                available: 1,
                on_hand: 3,
            },
            Refusal::AlreadySold { epc: epc.clone() },
            Refusal::NotSold { epc },
            Refusal::ExceedsSale {
                sale,
                gtin,
                requested: 2,
                returnable: 1,
            },
            Refusal::ApprovalRequired("a refund without a receipt".into()),
            Refusal::Invalid("qty must be > 0".into()),
        ] {
            let body = ErrorBody::of_refusal(&refusal, true);
            let json = serde_json::to_string(&body).unwrap();
            let back: ErrorBody = serde_json::from_str(&json).unwrap();
            assert_eq!(back.refusal(), Some(refusal), "{json}");
            assert!(!back.message.is_empty(), "{json}");
        }
    }

    #[test]
    fn a_shortage_says_why() {
        let gtin = Gtin::from_body(96_385_074).unwrap();
        let short = |requested, on_hand| Refusal::InsufficientStock {
            gtin,
            requested,
            available: 1,
            on_hand,
        };
        let reason = |r: &Refusal, reachable| ErrorBody::of_refusal(r, reachable).shortage();
        assert_eq!(reason(&short(3, 2), true), Some(Shortage::NoStock));
        assert_eq!(reason(&short(3, 2), false), Some(Shortage::NoStock));
        assert_eq!(reason(&short(3, 5), true), Some(Shortage::HeldElsewhere));
        assert_eq!(reason(&short(3, 5), false), Some(Shortage::Offline));
        assert_eq!(reason(&Refusal::Invalid("x".into()), false), None);
    }

    #[test]
    fn details_appear_only_where_they_apply() {
        let body = ErrorBody::new("not_found", "no such sale");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"not_found","message":"no such sale"}"#
        );
        // A body without a message or with unknown fields still reads.
        let v: ErrorBody = serde_json::from_str(r#"{"error":"x","other":1}"#).unwrap();
        assert_eq!((v.error.as_str(), v.message.as_str()), ("x", ""));
        assert_eq!(v.refusal(), None);
    }
}
