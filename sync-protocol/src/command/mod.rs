//! The command core: what `sell`, `return`, `receive`, `count` and
//! `override` do, and a store's moves of its order allocations
//! (`fulfil`), with no HTTP, no clock and no entropy in it. The agent's
//! committer runs it inside its write transaction; the simulation and the
//! hub's tests run the very same code over [`MemStore`](crate::memstore::MemStore).
//!
//! # Design constraints
//! - A command is validated and planned into an immutable [`Event`] by
//!   [`plan`], a pure function of the command, the state it reads
//!   ([`Loaded`]) and a [`Stamp`] (clock and randomness supplied by the
//!   caller). Its effect is [`apply_event`], the one definition shared with
//!   the hub and the simulation, and [`record_event`] is the one place an
//!   applied event is written (counters, journal, EPC records): the agent's
//!   commands, the hub's online orders and the simulation all record
//!   through it.
//! - [`execute`] runs a command against a [`Ledger`] (one write
//!   transaction): idempotency check by id, load, plan, record, then the
//!   outbox entry. It writes only after the plan and the apply succeeded,
//!   so a refused command leaves nothing behind, except an
//!   `insufficient_stock` refusal of a sale, which adds the units it lacked
//!   to the demand table (the rebalancing signal for the hub).
//! - Ids make commands idempotent: a command whose id is already recorded
//!   returns the recorded event (`new: false`) and changes nothing, if it
//!   repeats the recorded request ([`retry_mismatch`]); under another kind
//!   or with other content it is refused as invalid.
//! - A return that names a sale this store recorded is bounded by it
//!   ([`return_lines`]): no item comes back more than the sale sold, less
//!   what earlier returns naming it took back (kept per sale by the
//!   ledger, written with each return), and no refund exceeds its price.
//!
//! Map: this file holds the command types, the [`Ledger`] trait,
//! [`execute`] and [`record_event`]; `plan.rs` the planning rules
//! (prices, tenders, refunds, overrides, counts); `retry.rs` what makes a
//! re-posted id a true retry.

mod plan;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::counter::BoundedCounter;
use crate::epcs::{EpcRecord, EpcSummary, SoldEpcs};
use crate::event::{Event, EventKind, Shortfall, Tender};
use crate::exchange::{Identity, ReplicaStore};
use crate::fulfilment::OrderAllocation;
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId, LocationId};
use crate::inventory::ItemKey;
use crate::journal::Inserted;
use crate::ledger::{apply_event, plan_override, units_per_item, Applied, Refusal};
use crate::transfer::{Transfer, TransferLine, TransferStatus};

pub use plan::{plan, price_overrides, return_lines};
pub use retry::retry_mismatch;

/// The storage a command runs against: the model's [`ReplicaStore`]
/// (counters, events, sold EPCs) plus what only the agent keeps. Backed by
/// one redb write transaction in the agent (`tally_agent::store`), by
/// [`MemStore`](crate::memstore::MemStore) in the simulation and tests.
pub trait Ledger: ReplicaStore {
    /// The recorded event with `id`.
    fn event(&self, id: &EventId) -> Result<Option<Event>, Self::Error>;
    /// The summary of one EPC's sales and returns (fixed-size: a command
    /// never reads a tag's whole history).
    fn epc_summary(&self, epc: &Epc) -> Result<Option<EpcSummary>, Self::Error>;
    /// The catalog price of an item, if the catalog knows it.
    fn catalog_price(&self, gtin: Gtin) -> Result<Option<i64>, Self::Error>;
    /// Appends an event to the outbox; returns its sequence number.
    fn append_outbox(&mut self, id: EventId) -> Result<u64, Self::Error>;
    /// Adds refused units of an item to the demand signal.
    fn add_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), Self::Error>;
    /// Units of each item that returns recorded here took back from `sale`.
    fn returned_from(&self, sale: &EventId) -> Result<BTreeMap<Gtin, u64>, Self::Error>;
    /// Records that a return took `units` (per item) back from `sale`.
    fn add_returned(
        &mut self,
        sale: &EventId,
        units: &BTreeMap<Gtin, u64>,
    ) -> Result<(), Self::Error>;
    /// This store's allocation of order `order_id`, as the hub sent it and
    /// the store moved it on.
    fn allocation(&self, order_id: &str) -> Result<Option<OrderAllocation>, Self::Error>;
    /// Stores an allocation (a new one from the hub, or one moved on).
    fn put_allocation(&mut self, allocation: &OrderAllocation) -> Result<(), Self::Error>;
    /// The transfer with this id, to or from this store.
    fn transfer(&self, transfer_id: &str) -> Result<Option<Transfer>, Self::Error>;
    /// Stores a transfer (sent here, received here, or from the hub).
    fn put_transfer(&mut self, transfer: &Transfer) -> Result<(), Self::Error>;
}

/// Time and randomness for a new event, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Now, Unix milliseconds.
    pub now_ms: u64,
    /// 10 random bytes for a UUIDv7.
    pub random: [u8; 10],
}

/// One line of a sale or return as the front-end gave it (already parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIn {
    /// The item.
    pub gtin: Gtin,
    /// Units (> 0).
    pub qty: u64,
    /// Price per unit; the catalog price when absent.
    pub unit_price_minor: Option<i64>,
    /// Whether the price was read from the item's own label (a
    /// price-embedded or weighed-goods barcode) rather than keyed by the
    /// cashier: only a keyed price other than the catalog's is a price
    /// override.
    pub price_from_label: bool,
    /// The serialized item, for RFID-tagged goods.
    pub epc: Option<Epc>,
}

/// One line of a receipt: units of an item, or one tagged unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// The item.
    pub gtin: Gtin,
    /// Units (> 0; 1 with an EPC).
    pub qty: u64,
    /// The tag of a serialized unit (an RFID receipt), kept on the event's
    /// line so the hub and audits see which tag arrived.
    pub epc: Option<Epc>,
}

impl ReceiptLine {
    /// `qty` untagged units of `gtin`.
    pub fn units(gtin: Gtin, qty: u64) -> Self {
        Self {
            gtin,
            qty,
            epc: None,
        }
    }

    /// One tagged unit of `gtin`.
    pub fn tagged(gtin: Gtin, epc: Epc) -> Self {
        Self {
            gtin,
            qty: 1,
            epc: Some(epc),
        }
    }

    /// The event line it records: units carry no price (received or
    /// transferred, not sold).
    pub fn unpriced(&self) -> crate::event::Line {
        crate::event::Line {
            gtin: self.gtin,
            qty: self.qty,
            unit_price_minor: 0,
            epc: self.epc.clone(),
        }
    }

    /// The line as a priced command would give it, without a price (what
    /// a retry compares).
    pub fn as_line_in(&self) -> LineIn {
        LineIn {
            gtin: self.gtin,
            qty: self.qty,
            unit_price_minor: None,
            price_from_label: false,
            epc: self.epc.clone(),
        }
    }
}

pub use crate::event::{Approval, Staff};

/// A command: what the cashier or staff asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Sell (with an optional manager override).
    Sale {
        /// Idempotency key; a UUIDv7 is generated when absent.
        id: Option<EventId>,
        /// Lines.
        lines: Vec<LineIn>,
        /// Payments.
        tenders: Vec<Tender>,
        /// Who keys it; a manager's approval (`staff.approval`) lets it sell
        /// beyond rights and at prices other than the catalog's.
        staff: Staff,
    },
    /// Take goods back.
    Return {
        /// Idempotency key.
        id: Option<EventId>,
        /// Lines.
        lines: Vec<LineIn>,
        /// The sale they came from, if known.
        original_sale: Option<EventId>,
        /// Who keys it; a return this store cannot check against a sale it
        /// recorded needs a manager's approval (`staff.approval`).
        staff: Staff,
        /// The hub's check of a return across stores or channels: the
        /// original it is bounded and priced by, wherever it was sold
        /// ([`crate::returns`]). The return then needs no approval.
        checked: Option<Box<crate::returns::ReturnCheck>>,
    },
    /// Receive goods (prices do not apply).
    Receipt {
        /// Idempotency key.
        id: Option<EventId>,
        /// Items and units (tagged units carry their EPC).
        lines: Vec<ReceiptLine>,
        /// Who receives.
        staff: Staff,
    },
    /// A cycle count of one item.
    Count {
        /// Idempotency key.
        id: Option<EventId>,
        /// The item.
        gtin: Gtin,
        /// Units counted on the shelf.
        counted: u64,
        /// Who counts.
        staff: Staff,
    },
    /// Send units to another store (they leave this store's rights and
    /// are in transit until the destination receives them).
    TransferOut {
        /// Idempotency key.
        id: Option<EventId>,
        /// The transfer's id (unique in the chain).
        transfer_id: String,
        /// The destination store.
        to: LocationId,
        /// Items and units (tagged units carry their EPC).
        lines: Vec<ReceiptLine>,
        /// Who sends.
        staff: Staff,
    },
    /// Receive a transfer addressed to this store (its units, as sent).
    TransferIn {
        /// Idempotency key.
        id: Option<EventId>,
        /// The transfer's id.
        transfer_id: String,
        /// Who receives.
        staff: Staff,
    },
    /// Move this store's allocation of an order on: picked, collected
    /// (pickup) or shipped (ship).
    Fulfil {
        /// Idempotency key.
        id: Option<EventId>,
        /// The order.
        order_id: String,
        /// Where it moves to.
        to: crate::fulfilment::Status,
        /// Who picks or hands over.
        staff: Staff,
    },
}

impl Command {
    /// The caller-supplied id, if any.
    pub fn id(&self) -> Option<EventId> {
        match self {
            Command::Sale { id, .. }
            | Command::Return { id, .. }
            | Command::Receipt { id, .. }
            | Command::Count { id, .. }
            | Command::Fulfil { id, .. }
            | Command::TransferOut { id, .. }
            | Command::TransferIn { id, .. } => *id,
        }
    }

    /// The command with `id` as its id if it has none: every later run of
    /// it is then a retry of one request, recorded at most once.
    pub fn with_id_or(mut self, fresh: EventId) -> Self {
        match &mut self {
            Command::Sale { id, .. }
            | Command::Return { id, .. }
            | Command::Receipt { id, .. }
            | Command::Count { id, .. }
            | Command::Fulfil { id, .. }
            | Command::TransferOut { id, .. }
            | Command::TransferIn { id, .. } => {
                id.get_or_insert(fresh);
            }
        }
        self
    }

    /// Who keys it.
    pub fn staff(&self) -> &Staff {
        match self {
            Command::Sale { staff, .. }
            | Command::Return { staff, .. }
            | Command::Receipt { staff, .. }
            | Command::Count { staff, .. }
            | Command::Fulfil { staff, .. }
            | Command::TransferOut { staff, .. }
            | Command::TransferIn { staff, .. } => staff,
        }
    }

    /// The command keyed by `staff` instead.
    pub fn with_staff(mut self, by: Staff) -> Self {
        match &mut self {
            Command::Sale { staff, .. }
            | Command::Return { staff, .. }
            | Command::Receipt { staff, .. }
            | Command::Count { staff, .. }
            | Command::Fulfil { staff, .. }
            | Command::TransferOut { staff, .. }
            | Command::TransferIn { staff, .. } => *staff = by,
        }
        self
    }

    /// The name of the event kind this command records.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Command::Sale { .. } => "sale",
            Command::Return { .. } => "return",
            Command::Receipt { .. } => "receipt",
            Command::Count { .. } => "count_adjustment",
            Command::Fulfil { .. } => "fulfilment",
            Command::TransferOut { .. } => "transfer_out",
            Command::TransferIn { .. } => "transfer_in",
        }
    }

    /// Every item the command touches, each once.
    pub fn gtins(&self) -> BTreeSet<Gtin> {
        match self {
            Command::Sale { lines, .. } | Command::Return { lines, .. } => {
                lines.iter().map(|l| l.gtin).collect()
            }
            Command::Receipt { lines, .. } => lines.iter().map(|l| l.gtin).collect(),
            Command::Count { gtin, .. } => BTreeSet::from([*gtin]),
            Command::Fulfil { .. } | Command::TransferIn { .. } => BTreeSet::new(),
            Command::TransferOut { lines, .. } => lines.iter().map(|l| l.gtin).collect(),
        }
    }

    /// Items whose catalog price the command reads: every item of a sale
    /// or a return (a line without a price takes it; a line with another
    /// price is a price override).
    pub fn priced(&self) -> BTreeSet<Gtin> {
        match self {
            Command::Sale { lines, .. } | Command::Return { lines, .. } => {
                lines.iter().map(|l| l.gtin).collect()
            }
            Command::Receipt { .. }
            | Command::Count { .. }
            | Command::Fulfil { .. }
            | Command::TransferOut { .. }
            | Command::TransferIn { .. } => BTreeSet::new(),
        }
    }

    /// Every EPC the command names.
    pub fn epcs(&self) -> Vec<&Epc> {
        match self {
            Command::Sale { lines, .. } | Command::Return { lines, .. } => {
                lines.iter().filter_map(|l| l.epc.as_ref()).collect()
            }
            Command::TransferOut { lines, .. } => {
                lines.iter().filter_map(|l| l.epc.as_ref()).collect()
            }
            Command::Receipt { .. }
            | Command::Count { .. }
            | Command::Fulfil { .. }
            | Command::TransferIn { .. } => Vec::new(),
        }
    }
}

/// The state a command reads, loaded from the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Current counters of the command's items at this location.
    pub counters: BTreeMap<Gtin, BoundedCounter>,
    /// Summaries of the command's EPCs (those ever sold or returned).
    pub epcs: BTreeMap<Epc, EpcSummary>,
    /// Catalog prices of the command's sale or return items that the
    /// catalog knows.
    pub prices: BTreeMap<Gtin, i64>,
    /// The sale a return names, when this store recorded it.
    pub original: Option<OriginalSale>,
    /// For a return, the item each of its EPCs was first sold as here
    /// (the hub refuses a tag returned as another item).
    pub epc_items: BTreeMap<Epc, Gtin>,
    /// For a fulfilment move, the allocation it moves.
    pub allocation: Option<OrderAllocation>,
    /// For a transfer, the one with its id this store knows.
    pub transfer: Option<Transfer>,
}

/// The sale a return names and what earlier returns took back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalSale {
    /// The recorded event (a return may name any id; planning refuses one
    /// that is not a sale).
    pub event: Event,
    /// Units of each item earlier returns against it took back.
    pub returned: BTreeMap<Gtin, u64>,
}

/// What a command did. One per command, moved to its caller and dropped:
/// never stored in bulk, so the recorded event is kept inline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Recorded: `new` is false when the id was already recorded (a retry),
    /// in which case nothing changed.
    Recorded {
        /// The event (the stored one for a retry).
        event: Event,
        /// Whether this call recorded it.
        new: bool,
    },
    /// Refused; nothing changed except the demand signal.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Units the store lacked rights for, per item, added to demand
        /// (only for a sale refused for insufficient stock).
        demand: Vec<Shortfall>,
    },
}

fn invalid(detail: impl Into<String>) -> Refusal {
    Refusal::Invalid(detail.into())
}

/// Loads what `cmd` reads from `ledger`.
pub fn load<L: Ledger>(ledger: &L, who: &Identity, cmd: &Command) -> Result<Loaded, L::Error> {
    let mut loaded = Loaded {
        counters: counters_at(ledger, &who.location, cmd.gtins())?,
        ..Loaded::default()
    };
    if let Command::Fulfil { order_id, .. } = cmd {
        loaded.allocation = ledger.allocation(order_id)?;
        return Ok(loaded);
    }
    if let Command::TransferOut { transfer_id, .. } | Command::TransferIn { transfer_id, .. } = cmd
    {
        loaded.transfer = ledger.transfer(transfer_id)?;
        // A receipt's lines are the transfer's: their counters are read
        // here (else the event would be applied to empty ones and write
        // them over the store's).
        if let (Command::TransferIn { .. }, Some(t)) = (cmd, &loaded.transfer) {
            let gtins = t.lines.iter().map(|l| l.gtin);
            loaded
                .counters
                .extend(counters_at(ledger, &who.location, gtins)?);
        }
    }
    if let Command::Return {
        checked: Some(check),
        ..
    } = cmd
    {
        // Bounded by the hub's count of returns anywhere, or this store's
        // own if higher (returns here the hub has not heard of yet).
        let mut returned = check.returned_map();
        for (gtin, units) in ledger.returned_from(&check.original.id)? {
            let r = returned.entry(gtin).or_default();
            *r = (*r).max(units);
        }
        loaded.original = Some(OriginalSale {
            event: check.original.clone(),
            returned,
        });
        let mut loaded = load_epcs(ledger, cmd, loaded)?;
        // Tags sold elsewhere in the chain come back here.
        for tag in &check.tags {
            loaded.epc_items.insert(tag.epc.clone(), tag.gtin);
            let s = loaded.epcs.entry(tag.epc.clone()).or_default();
            if s.sales <= s.returns {
                s.sales = s.returns.saturating_add(1);
                s.first_sale = s.first_sale.or(Some(check.original.id));
            }
        }
        return Ok(loaded);
    }
    if let Command::Return {
        original_sale: Some(sale),
        ..
    } = cmd
    {
        if let Some(event) = ledger.event(sale)? {
            loaded.original = Some(OriginalSale {
                returned: ledger.returned_from(sale)?,
                event,
            });
            // Priced from the sale.
            return load_epcs(ledger, cmd, loaded);
        }
    }
    for gtin in cmd.priced() {
        if let Some(p) = ledger.catalog_price(gtin)? {
            loaded.prices.insert(gtin, p);
        }
    }
    load_epcs(ledger, cmd, loaded)
}

fn load_epcs<L: Ledger>(ledger: &L, cmd: &Command, mut loaded: Loaded) -> Result<Loaded, L::Error> {
    let returning = matches!(cmd, Command::Return { .. });
    for epc in cmd.epcs() {
        if let Some(summary) = ledger.epc_summary(epc)? {
            // One event read: the first sale of the tag.
            if let (true, Some(first)) = (returning, summary.first_sale) {
                let sold_as = ledger.event(&first)?.and_then(|sale| {
                    sale.lines
                        .iter()
                        .find(|l| l.epc.as_ref() == Some(epc))
                        .map(|l| l.gtin)
                });
                if let Some(gtin) = sold_as {
                    loaded.epc_items.insert(epc.clone(), gtin);
                }
            }
            loaded.epcs.insert(epc.clone(), summary);
        }
    }
    Ok(loaded)
}

/// Whether a manager's approval may sell beyond the store's rights in a
/// run of a command ([`execute_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overrides {
    /// An approved sale short of rights records what it lacks as found
    /// stock (an override).
    #[default]
    Apply,
    /// An approved sale short of rights is refused for them, as a sale
    /// without approval is, but adds no demand (its approval records it
    /// once the hub was asked: no customer is turned away): the agent
    /// asks the hub for the rights first, so an override never sells
    /// units whose rights the hub would give, and takes as found only
    /// what the hub did not give. Its approval still covers its prices.
    Hold,
}

/// Runs one command in `ledger` (see the module docs). `Err` is a storage
/// failure only: the caller must then abort the whole transaction.
pub fn execute<L: Ledger>(
    ledger: &mut L,
    who: &Identity,
    cmd: &Command,
    stamp: Stamp,
) -> Result<Outcome, L::Error> {
    execute_with(ledger, who, cmd, stamp, Overrides::Apply)
}

/// [`execute`], with `overrides` saying whether an approved sale may sell
/// beyond rights in this run.
pub fn execute_with<L: Ledger>(
    ledger: &mut L,
    who: &Identity,
    cmd: &Command,
    stamp: Stamp,
    overrides: Overrides,
) -> Result<Outcome, L::Error> {
    if let Some(id) = cmd.id() {
        if let Some(event) = ledger.event(&id)? {
            let kind = event.kind.name();
            if kind != cmd.kind_name() {
                return Ok(Outcome::Refused {
                    refusal: invalid(format!("id {id} is already used by a {kind}")),
                    demand: Vec::new(),
                });
            }
            if let Some(difference) = retry_mismatch(cmd, &event) {
                return Ok(Outcome::Refused {
                    refusal: invalid(format!(
                        "id {id} is already recorded as a different {kind} ({difference}); \
                         a retry must repeat the request, a new {kind} needs a new id"
                    )),
                    demand: Vec::new(),
                });
            }
            return Ok(Outcome::Recorded { event, new: false });
        }
    }
    let loaded = load(ledger, who, cmd)?;
    let event = match plan(cmd, who, &loaded, stamp) {
        Ok(mut e) => {
            if let (Overrides::Hold, EventKind::Sale { override_, .. }) = (overrides, &mut e.kind) {
                *override_ = None;
            }
            e
        }
        Err(refusal) => {
            return Ok(Outcome::Refused {
                refusal,
                demand: Vec::new(),
            })
        }
    };
    if let Err(refusal) = record_event(ledger, &event, &loaded.counters, &loaded.epcs)? {
        let mut demand = Vec::new();
        // A held override is no customer turned away: its approval
        // records it once the hub was asked.
        if let (Refusal::InsufficientStock { .. }, EventKind::Sale { .. }, Overrides::Apply) =
            (&refusal, &event.kind, overrides)
        {
            demand = plan_override(&event.lines, &loaded.counters, &who.replica);
            for s in &demand {
                ledger.add_demand(s.gtin, s.units)?;
            }
        }
        return Ok(Outcome::Refused { refusal, demand });
    }
    if let (Some(original), EventKind::Return { .. }) = (&loaded.original, &event.kind) {
        ledger.add_returned(&original.event.id, &units_per_item(&event.lines))?;
    }
    if let (Some(allocation), EventKind::Fulfilment { status, .. }) =
        (&loaded.allocation, &event.kind)
    {
        ledger.put_allocation(&OrderAllocation {
            status: *status,
            ..allocation.clone()
        })?;
    }
    match (&event.kind, &loaded.transfer) {
        (EventKind::TransferOut { transfer_id, to }, _) => ledger.put_transfer(&Transfer {
            transfer_id: transfer_id.clone(),
            from: event.location.clone(),
            to: to.clone(),
            lines: TransferLine::of_event(&event.lines),
            status: TransferStatus::InTransit,
            sent_at_ms: event.at_ms,
            sent_event: Some(event.id),
        })?,
        (EventKind::TransferIn { .. }, Some(t)) => ledger.put_transfer(&Transfer {
            status: TransferStatus::Received,
            ..t.clone()
        })?,
        _ => {}
    }
    ledger.append_outbox(event.id)?;
    Ok(Outcome::Recorded { event, new: true })
}

/// Merges a page of allocations from the hub into `ledger`: each joined
/// with what the store knows ([`OrderAllocation::merge`]), so a move the
/// store made and the hub has not heard of yet is never undone, and a
/// cancellation at HQ reaches an allocation still open here. Answers the
/// allocations whose status changed here, as merged (for logs and the
/// terminal). Idempotent.
pub fn merge_allocations<L: Ledger>(
    ledger: &mut L,
    page: &[OrderAllocation],
) -> Result<Vec<OrderAllocation>, L::Error> {
    let mut changed = Vec::new();
    for from_hub in page {
        let known = ledger.allocation(&from_hub.order_id)?;
        let merged = match &known {
            Some(k) => k.clone().merge(from_hub.clone()),
            None => from_hub.clone(),
        };
        if known.as_ref() != Some(&merged) {
            ledger.put_allocation(&merged)?;
            if known.map(|k| k.status) != Some(merged.status) {
                changed.push(merged);
            }
        }
    }
    Ok(changed)
}

/// Merges transfers from the hub into `ledger` (each joined with what the
/// store knows: [`Transfer::merge`]); answers those whose status changed
/// here. Idempotent.
pub fn merge_transfers<L: Ledger>(
    ledger: &mut L,
    page: &[Transfer],
) -> Result<Vec<Transfer>, L::Error> {
    let mut changed = Vec::new();
    for from_hub in page {
        let known = ledger.transfer(&from_hub.transfer_id)?;
        let merged = match &known {
            Some(k) => k.clone().merge(from_hub.clone()),
            None => from_hub.clone(),
        };
        if known.as_ref() != Some(&merged) {
            ledger.put_transfer(&merged)?;
            changed.push(merged);
        }
    }
    Ok(changed)
}

/// The current counters of `gtins` at `location`, by item (the state an
/// event at that location reads).
pub fn counters_at<S: ReplicaStore>(
    store: &S,
    location: &LocationId,
    gtins: impl IntoIterator<Item = Gtin>,
) -> Result<BTreeMap<Gtin, BoundedCounter>, S::Error> {
    gtins
        .into_iter()
        .map(|gtin| Ok((gtin, store.counter(&ItemKey::new(location.clone(), gtin))?)))
        .collect()
}

/// Records a new `event` in `store`: applies it ([`apply_event`]) to
/// `counters` (the current counters of its items at its location) and
/// `epcs` (which of its EPCs are sold), then stores the event, the counters
/// it moved and its EPC sales and returns. All or nothing: a refusal (the
/// inner `Err`) writes nothing, nor does an id already taken. The outer
/// `Err` is a storage failure: the caller aborts its transaction.
///
/// The one place an event is recorded where it happens: the agent's
/// commands (through [`execute`]), the hub's online orders, and the
/// simulation's stores and hub.
pub fn record_event<S: ReplicaStore, E: SoldEpcs>(
    store: &mut S,
    event: &Event,
    counters: &BTreeMap<Gtin, BoundedCounter>,
    epcs: &E,
) -> Result<Result<Applied, Refusal>, S::Error> {
    let applied = match apply_event(event, counters, epcs) {
        Ok(a) => a,
        Err(refusal) => return Ok(Err(refusal)),
    };
    // A freshly generated id cannot collide in practice, and callers check
    // a given id first; anything but `New` means the store changed under
    // the caller, which a single writer rules out. Refuse, never overwrite.
    if store.insert_event(event)? != Inserted::New {
        return Ok(Err(Refusal::Invalid(format!(
            "id {} is already used",
            event.id
        ))));
    }
    for (gtin, counter) in &applied.counters {
        store.put_counter(
            &ItemKey::new(event.location.clone(), *gtin),
            counter.clone(),
        )?;
    }
    let record = || EpcRecord {
        event: event.id,
        replica: event.replica.clone(),
    };
    for epc in &applied.sold {
        store.record_epc_sale(epc, record())?;
    }
    for epc in &applied.returned {
        store.record_epc_return(epc, record())?;
    }
    Ok(Ok(applied))
}
