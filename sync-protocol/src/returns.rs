//! Returns across stores and channels (issue 22): a return naming a sale
//! made at another store, or a web order, or a tag sold anywhere in the
//! chain, is bounded chain-wide by the hub. The store asks the hub
//! ([`ReturnCheckRequest`], `POST /v1/returns/check`); the hub finds the
//! original (a sale or an online order, at any store), bounds the return
//! by it net of every return anywhere (those it holds, and those it
//! authorized that have not arrived yet), holds the units for this return
//! and answers a [`ReturnCheck`]; the store then plans the return with
//! that original exactly as one of its own sales
//! ([`crate::command::return_lines`], the one rule at both ends).
//!
//! Offline, the store cannot ask: its configured policy decides (a
//! manager's approval, or a refusal), and the hub raises an exception for
//! an accepted return that breaks the bound when it arrives.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId};

/// One line of a return the store wants checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLineCheck {
    /// The item.
    pub gtin: Gtin,
    /// Units.
    pub qty: u64,
    /// The tag of a serialized unit.
    #[serde(default)]
    pub epc: Option<Epc>,
}

/// Store → hub: may this return be taken, and against what?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnCheckRequest {
    /// The return's event id (the hub holds its units under it; a retry
    /// under the same id is answered alike).
    pub return_id: EventId,
    /// The sale or online order's event it names, if it names one.
    #[serde(default)]
    pub original_sale: Option<EventId>,
    /// The web order it names (by the order's id), if it names one.
    #[serde(default)]
    pub order_id: Option<String>,
    /// What comes back.
    pub lines: Vec<ReturnLineCheck>,
}

/// Units of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemUnits {
    /// The item.
    pub gtin: Gtin,
    /// Units.
    pub units: u64,
}

/// A tag and the item it was sold as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoldTag {
    /// The tag.
    pub epc: Epc,
    /// The item its sale named.
    pub gtin: Gtin,
}

/// Hub → store: the return is within the chain-wide bound of `original`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnCheck {
    /// The sale or online order the return is bounded and priced by.
    pub original: Event,
    /// Units of each item returns anywhere took back from it before this
    /// one (those the hub holds and those it authorized).
    pub returned: Vec<ItemUnits>,
    /// The return's tags, each sold (somewhere in the chain) as an item.
    pub tags: Vec<SoldTag>,
}

/// What a store checking a return learns of the original (a sale at
/// another store, or an online order): its id, store, time, kind and
/// lines, what the return is bounded and priced by; not who keyed or
/// approved it, nor how it was paid (card references), which are that
/// store's and HQ's.
pub fn shown_to_stores(mut original: Event) -> Event {
    original.staff = Default::default();
    if let crate::event::EventKind::Sale { tenders, override_ } = &mut original.kind {
        tenders.clear();
        *override_ = None;
    }
    original
}

impl ReturnCheck {
    /// `returned` as a map.
    pub fn returned_map(&self) -> std::collections::BTreeMap<Gtin, u64> {
        self.returned.iter().map(|r| (r.gtin, r.units)).collect()
    }
}
