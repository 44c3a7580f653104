//! The command core: what `sell`, `return`, `receive`, `count` and
//! `override` do, with no HTTP, no clock and no entropy in it.
//!
//! # Design constraints
//! - A command is validated and planned into an immutable [`Event`] by
//!   [`plan`], a pure function of the command, the state it reads
//!   ([`Loaded`]) and a [`Stamp`] (clock and randomness supplied by the
//!   caller). Its effect is `tally_sync::apply_event`, the one definition
//!   shared with the hub and the simulation.
//! - [`execute`] runs a command against a [`Ledger`] (one write
//!   transaction): idempotency check by id, load, plan, apply, then write
//!   counters, event, EPC records and the outbox entry. It writes only
//!   after the plan and the apply succeeded, so a refused command leaves
//!   nothing behind, except an `insufficient_stock` refusal of a sale,
//!   which adds the units it lacked to the demand table (the rebalancing
//!   signal for the hub).
//! - Ids make commands idempotent: a command whose id is already recorded
//!   returns the recorded event (`new: false`) and changes nothing, if it
//!   repeats the recorded request ([`retry_mismatch`]); under another kind
//!   or with other content it is refused as invalid.
//! - A return that names a sale this store recorded is bounded by it
//!   ([`return_lines`]): no item comes back more than the sale sold, less
//!   what earlier returns naming it took back (kept per sale by the
//!   ledger, written with each return), and no refund exceeds its price.

use std::collections::{BTreeMap, BTreeSet};

use tally_sync::epcs::{EpcHistory, EpcRecord};
use tally_sync::event::checked_total_minor;
use tally_sync::exchange::ReplicaStore;
use tally_sync::journal::Inserted;
use tally_sync::ledger::{plan_count, plan_override, units_per_item};
use tally_sync::{
    apply_event, BoundedCounter, Epc, EpcLedger, Event, EventId, EventKind, Gtin, ItemKey, Line,
    LocationId, Override, Refusal, ReplicaId, Shortfall, Tender,
};

/// The storage a command runs against: the model's [`ReplicaStore`]
/// (counters, events, sold EPCs) plus what only the agent keeps. Backed by
/// one redb write transaction in production ([`crate::store`]).
pub trait Ledger: ReplicaStore {
    /// The recorded event with `id`.
    fn event(&self, id: &EventId) -> Result<Option<Event>, Self::Error>;
    /// The sale and return history of one EPC.
    fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, Self::Error>;
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
}

/// Who records: this agent's replica and location (one agent per store:
/// the store id is both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The replica whose counter entries the agent moves.
    pub replica: ReplicaId,
    /// The store.
    pub location: LocationId,
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
}

/// A manager's approval to sell beyond rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// Why.
    pub reason: String,
}

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
        /// A manager's approval to sell beyond rights.
        approval: Option<Approval>,
    },
    /// Take goods back.
    Return {
        /// Idempotency key.
        id: Option<EventId>,
        /// Lines.
        lines: Vec<LineIn>,
        /// The sale they came from, if known.
        original_sale: Option<EventId>,
    },
    /// Receive goods (prices do not apply).
    Receipt {
        /// Idempotency key.
        id: Option<EventId>,
        /// Items and units (tagged units carry their EPC).
        lines: Vec<ReceiptLine>,
    },
    /// A cycle count of one item.
    Count {
        /// Idempotency key.
        id: Option<EventId>,
        /// The item.
        gtin: Gtin,
        /// Units counted on the shelf.
        counted: u64,
    },
}

impl Command {
    /// The caller-supplied id, if any.
    pub fn id(&self) -> Option<EventId> {
        match self {
            Command::Sale { id, .. }
            | Command::Return { id, .. }
            | Command::Receipt { id, .. }
            | Command::Count { id, .. } => *id,
        }
    }

    /// The name of the event kind this command records.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Command::Sale { .. } => "sale",
            Command::Return { .. } => "return",
            Command::Receipt { .. } => "receipt",
            Command::Count { .. } => "count_adjustment",
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
        }
    }

    /// Items of lines that take the catalog price (no price given).
    pub fn unpriced(&self) -> BTreeSet<Gtin> {
        match self {
            Command::Sale { lines, .. } | Command::Return { lines, .. } => lines
                .iter()
                .filter(|l| l.unit_price_minor.is_none())
                .map(|l| l.gtin)
                .collect(),
            Command::Receipt { .. } | Command::Count { .. } => BTreeSet::new(),
        }
    }

    /// Every EPC the command names.
    pub fn epcs(&self) -> Vec<&Epc> {
        match self {
            Command::Sale { lines, .. } | Command::Return { lines, .. } => {
                lines.iter().filter_map(|l| l.epc.as_ref()).collect()
            }
            Command::Receipt { .. } | Command::Count { .. } => Vec::new(),
        }
    }
}

/// The state a command reads, loaded from the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Current counters of the command's items at this location.
    pub counters: BTreeMap<Gtin, BoundedCounter>,
    /// Histories of the command's EPCs.
    pub epcs: EpcLedger,
    /// Catalog prices of the command's unpriced items that the catalog knows.
    pub prices: BTreeMap<Gtin, i64>,
    /// The sale a return names, when this store recorded it.
    pub original: Option<OriginalSale>,
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

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
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

fn price_lines(lines: &[LineIn], prices: &BTreeMap<Gtin, i64>) -> Result<Vec<Line>, Refusal> {
    lines
        .iter()
        .map(|l| {
            let unit_price_minor = match l.unit_price_minor {
                Some(p) if p < 0 => {
                    return Err(invalid(format!(
                        "unit_price_minor must be >= 0 for {}",
                        l.gtin
                    )))
                }
                Some(p) => p,
                None => *prices.get(&l.gtin).ok_or_else(|| {
                    invalid(format!(
                        "item {} is not in the catalog; give unit_price_minor",
                        l.gtin
                    ))
                })?,
            };
            Ok(Line {
                gtin: l.gtin,
                qty: l.qty,
                unit_price_minor,
                epc: l.epc.clone(),
            })
        })
        .collect()
}

/// A tender names how it was paid and pays a non-negative amount (change
/// given and refunds are not tenders of a sale). Tenders, when given, pay
/// at least the total (`total` is `None` when it overflowed, refused
/// elsewhere): a sale recorded as committed but short-paid leaves the till
/// short. More than the total is fine: front-ends may record the cash
/// handed over rather than what was applied. No tenders means payment is
/// recorded elsewhere.
fn check_tenders(tenders: &[Tender], total: Option<i64>) -> Result<(), Refusal> {
    let mut paid: i64 = 0;
    for (i, t) in tenders.iter().enumerate() {
        if t.method.trim().is_empty() {
            return Err(invalid(format!("tenders[{i}].method is empty")));
        }
        if t.amount_minor < 0 {
            return Err(invalid(format!(
                "tenders[{i}].amount_minor must be >= 0, got {}",
                t.amount_minor
            )));
        }
        paid = paid
            .checked_add(t.amount_minor)
            .ok_or_else(|| invalid(format!("the tenders add up to more than {}", i64::MAX)))?;
    }
    match total {
        Some(total) if !tenders.is_empty() && paid < total => Err(invalid(format!(
            "the tenders pay {paid} of the total {total} minor units"
        ))),
        _ => Ok(()),
    }
}

/// Prices and checks the lines of a return against the sale it names:
/// each item at most the units the sale sold less what earlier returns
/// took back (else [`Refusal::ExceedsSale`]), refunded at the price it was
/// sold at (the lowest, if the sale sold it at several) unless a lower one
/// is given. A price above it is invalid: a refund never pays out more
/// than the sale took in; so is a tagged unit the sale did not sell.
pub fn return_lines(lines: &[LineIn], original: &OriginalSale) -> Result<Vec<Line>, Refusal> {
    let sale = &original.event;
    if !matches!(sale.kind, EventKind::Sale { .. }) {
        return Err(invalid(format!(
            "original_sale_id {} is a {}, not a sale",
            sale.id,
            sale.kind.name()
        )));
    }
    let mut sold: BTreeMap<Gtin, (u64, i64)> = BTreeMap::new();
    for l in &sale.lines {
        let (units, price) = sold.entry(l.gtin).or_insert((0, l.unit_price_minor));
        *units = units.saturating_add(l.qty);
        *price = (*price).min(l.unit_price_minor);
    }
    let mut priced = Vec::with_capacity(lines.len());
    for l in lines {
        if let Some(epc) = &l.epc {
            if !sale.lines.iter().any(|s| s.epc.as_ref() == Some(epc)) {
                return Err(invalid(format!(
                    "EPC {epc} was not sold in sale {}",
                    sale.id
                )));
            }
        }
        let sold_price = sold.get(&l.gtin).map(|&(_, p)| p);
        let unit_price_minor = match (l.unit_price_minor, sold_price) {
            (Some(p), _) if p < 0 => {
                return Err(invalid(format!(
                    "unit_price_minor must be >= 0 for {}",
                    l.gtin
                )))
            }
            (Some(p), Some(at)) if p > at => {
                return Err(invalid(format!(
                    "unit_price_minor {p} for {} is more than the {at} sale {} sold it at",
                    l.gtin, sale.id
                )))
            }
            (Some(p), _) => p,
            (None, Some(at)) => at,
            // Not in the sale: refused below with nothing returnable.
            (None, None) => 0,
        };
        priced.push(Line {
            gtin: l.gtin,
            qty: l.qty,
            unit_price_minor,
            epc: l.epc.clone(),
        });
    }
    for (gtin, units) in units_per_item(&priced) {
        let sold_units = sold.get(&gtin).map_or(0, |&(u, _)| u);
        let earlier = original.returned.get(&gtin).copied().unwrap_or(0);
        let returnable = sold_units.saturating_sub(earlier);
        if units > returnable {
            return Err(Refusal::ExceedsSale {
                sale: sale.id,
                gtin,
                requested: units,
                returnable,
            });
        }
    }
    Ok(priced)
}

/// How `cmd`, re-posted under the id of the recorded `event` (of the same
/// kind), differs from what was recorded, or `None` for a true retry.
///
/// A retry repeats its request, so anything the caller gave must match:
/// items, quantities, EPCs, tenders, the override's approver and reason,
/// the returned sale, the counted figure. A price the caller left out is
/// not compared, since the catalog (or the original sale) may have changed
/// it since; a price given must be the one recorded. Answering a changed
/// request with the old event would tell the caller that something was
/// recorded which never was.
pub fn retry_mismatch(cmd: &Command, event: &Event) -> Option<String> {
    match (cmd, &event.kind) {
        (
            Command::Sale {
                lines,
                tenders,
                approval,
                ..
            },
            EventKind::Sale {
                tenders: recorded_tenders,
                override_,
            },
        ) => lines_mismatch(lines, &event.lines).or_else(|| {
            if tenders != recorded_tenders {
                return Some("other tenders".into());
            }
            let recorded = override_.as_ref().map(|o| (&o.approver, &o.reason));
            let given = approval.as_ref().map(|a| (&a.approver, &a.reason));
            (given != recorded).then(|| "another override".into())
        }),
        (
            Command::Return {
                lines,
                original_sale,
                ..
            },
            EventKind::Return {
                original_sale: recorded,
            },
        ) => {
            if original_sale != recorded {
                return Some("another original_sale_id".into());
            }
            lines_mismatch(lines, &event.lines)
        }
        (Command::Receipt { lines, .. }, EventKind::Receipt) => {
            // Receipts carry no price: compared as lines without one.
            let given: Vec<LineIn> = lines
                .iter()
                .map(|l| LineIn {
                    gtin: l.gtin,
                    qty: l.qty,
                    unit_price_minor: None,
                    epc: l.epc.clone(),
                })
                .collect();
            lines_mismatch(&given, &event.lines)
        }
        (
            Command::Count { gtin, counted, .. },
            EventKind::CountAdjustment {
                counted: recorded, ..
            },
        ) => {
            let item = event.lines.first().map(|l| l.gtin);
            if item != Some(*gtin) {
                return Some("another item".into());
            }
            (counted != recorded).then(|| format!("counted {recorded}, not {counted}"))
        }
        _ => Some(format!("a {}", event.kind.name())),
    }
}

fn lines_mismatch(given: &[LineIn], recorded: &[Line]) -> Option<String> {
    if given.len() != recorded.len() {
        return Some(format!("{} lines, not {}", recorded.len(), given.len()));
    }
    given
        .iter()
        .zip(recorded)
        .enumerate()
        .find_map(|(n, (g, r))| {
            let n = n + 1;
            if g.gtin != r.gtin {
                Some(format!("line {n} is item {}, not {}", r.gtin, g.gtin))
            } else if g.qty != r.qty {
                Some(format!("line {n} has qty {}, not {}", r.qty, g.qty))
            } else if g.epc != r.epc {
                Some(format!("line {n} has another EPC"))
            } else {
                match g.unit_price_minor {
                    Some(p) if p != r.unit_price_minor => Some(format!(
                        "line {n} has unit_price_minor {}, not {p}",
                        r.unit_price_minor
                    )),
                    _ => None,
                }
            }
        })
}

/// Plans `cmd` into the event it records, given the state it reads.
/// Pure; refusals found by planning (bad input, unknown price) come back
/// as `Err`. Rights and EPCs are checked by `apply_event` afterwards.
pub fn plan(cmd: &Command, who: &Who, loaded: &Loaded, stamp: Stamp) -> Result<Event, Refusal> {
    let id = cmd
        .id()
        .unwrap_or_else(|| EventId::v7(stamp.now_ms, stamp.random));
    let (kind, lines) = match cmd {
        Command::Sale {
            lines,
            tenders,
            approval,
            ..
        } => {
            let lines = price_lines(lines, &loaded.prices)?;
            check_tenders(tenders, checked_total_minor(&lines))?;
            let override_ = match approval {
                None => None,
                Some(a) => {
                    if a.approver.trim().is_empty() || a.reason.trim().is_empty() {
                        return Err(invalid("an override needs an approver and a reason"));
                    }
                    Some(Override {
                        approver: a.approver.clone(),
                        reason: a.reason.clone(),
                        shortfall: plan_override(&lines, &loaded.counters, &who.replica),
                    })
                }
            };
            (
                EventKind::Sale {
                    tenders: tenders.clone(),
                    override_,
                },
                lines,
            )
        }
        Command::Return {
            lines,
            original_sale,
            ..
        } => (
            EventKind::Return {
                original_sale: *original_sale,
            },
            // A sale recorded elsewhere (another store of the chain) cannot
            // be checked here: priced like a sale.
            match &loaded.original {
                Some(original) => return_lines(lines, original)?,
                None => price_lines(lines, &loaded.prices)?,
            },
        ),
        Command::Receipt { lines, .. } => (
            EventKind::Receipt,
            lines
                .iter()
                .map(|l| Line {
                    gtin: l.gtin,
                    qty: l.qty,
                    unit_price_minor: 0,
                    epc: l.epc.clone(),
                })
                .collect(),
        ),
        Command::Count { gtin, counted, .. } => {
            let counter = loaded.counters.get(gtin).cloned().unwrap_or_default();
            let plan = plan_count(&counter, &who.replica, *counted);
            (
                EventKind::CountAdjustment {
                    counted: *counted,
                    direction: plan.direction,
                    unresolved: plan.unresolved,
                },
                vec![Line {
                    gtin: *gtin,
                    qty: plan.units,
                    unit_price_minor: 0,
                    epc: None,
                }],
            )
        }
    };
    if matches!(kind, EventKind::Sale { .. } | EventKind::Return { .. })
        && checked_total_minor(&lines).is_none()
    {
        return Err(invalid(format!(
            "the total of these lines exceeds {} minor units",
            i64::MAX
        )));
    }
    Ok(Event {
        id,
        location: who.location.clone(),
        replica: who.replica.clone(),
        at_ms: stamp.now_ms,
        kind,
        lines,
    })
}

/// Loads what `cmd` reads from `ledger`.
pub fn load<L: Ledger>(ledger: &L, who: &Who, cmd: &Command) -> Result<Loaded, L::Error> {
    let mut loaded = Loaded::default();
    for gtin in cmd.gtins() {
        let key = ItemKey::new(who.location.clone(), gtin);
        loaded.counters.insert(gtin, ledger.counter(&key)?);
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
    for gtin in cmd.unpriced() {
        if let Some(p) = ledger.catalog_price(gtin)? {
            loaded.prices.insert(gtin, p);
        }
    }
    load_epcs(ledger, cmd, loaded)
}

fn load_epcs<L: Ledger>(ledger: &L, cmd: &Command, mut loaded: Loaded) -> Result<Loaded, L::Error> {
    for epc in cmd.epcs() {
        if let Some(h) = ledger.epc_history(epc)? {
            for r in h.sales {
                loaded.epcs.record_sale(epc, r);
            }
            for r in h.returns {
                loaded.epcs.record_return(epc, r);
            }
        }
    }
    Ok(loaded)
}

/// Runs one command in `ledger` (see the module docs). `Err` is a storage
/// failure only: the caller must then abort the whole transaction.
pub fn execute<L: Ledger>(
    ledger: &mut L,
    who: &Who,
    cmd: &Command,
    stamp: Stamp,
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
        Ok(e) => e,
        Err(refusal) => {
            return Ok(Outcome::Refused {
                refusal,
                demand: Vec::new(),
            })
        }
    };
    let applied = match apply_event(&event, &loaded.counters, &loaded.epcs) {
        Ok(a) => a,
        Err(refusal) => {
            let mut demand = Vec::new();
            if let (Refusal::InsufficientStock { .. }, EventKind::Sale { .. }) =
                (&refusal, &event.kind)
            {
                demand = plan_override(&event.lines, &loaded.counters, &who.replica);
                for s in &demand {
                    ledger.add_demand(s.gtin, s.units)?;
                }
            }
            return Ok(Outcome::Refused { refusal, demand });
        }
    };
    // A freshly generated id cannot collide in practice; a caller's id was
    // checked above, so anything but `New` means the ledger changed under
    // us, which the single writer rules out. Refuse rather than overwrite.
    if ledger.insert_event(&event)? != Inserted::New {
        return Ok(Outcome::Refused {
            refusal: invalid(format!("id {} is already used", event.id)),
            demand: Vec::new(),
        });
    }
    for (gtin, counter) in applied.counters {
        ledger.put_counter(&ItemKey::new(who.location.clone(), gtin), counter)?;
    }
    let record = || EpcRecord {
        event: event.id,
        replica: who.replica.clone(),
    };
    for epc in &applied.sold {
        ledger.record_epc_sale(epc, record())?;
    }
    for epc in &applied.returned {
        ledger.record_epc_return(epc, record())?;
    }
    if let (Some(original), EventKind::Return { .. }) = (&loaded.original, &event.kind) {
        ledger.add_returned(&original.event.id, &units_per_item(&event.lines))?;
    }
    ledger.append_outbox(event.id)?;
    Ok(Outcome::Recorded { event, new: true })
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory [`Ledger`] over the model's `MemoryReplica`, for tests.

    use super::*;
    use std::convert::Infallible;
    use tally_sync::epcs::DoubleSale;
    use tally_sync::exchange::MemoryReplica;
    use tally_sync::Delta;

    #[derive(Debug, Default, Clone)]
    pub struct MemLedger {
        pub replica: MemoryReplica,
        pub prices: BTreeMap<Gtin, i64>,
        pub outbox: Vec<EventId>,
        pub demand: BTreeMap<Gtin, u64>,
        pub returned: BTreeMap<EventId, BTreeMap<Gtin, u64>>,
    }

    impl ReplicaStore for MemLedger {
        type Error = Infallible;
        fn counter(&self, key: &ItemKey) -> Result<BoundedCounter, Infallible> {
            self.replica.counter(key)
        }
        fn put_counter(&mut self, key: &ItemKey, c: BoundedCounter) -> Result<(), Infallible> {
            self.replica.put_counter(key, c)
        }
        fn delta_since(
            &self,
            location: &LocationId,
            cursor: u64,
            limit: usize,
        ) -> Result<(Delta, u64), Infallible> {
            self.replica.delta_since(location, cursor, limit)
        }
        fn insert_event(&mut self, event: &Event) -> Result<Inserted, Infallible> {
            self.replica.insert_event(event)
        }
        fn record_epc_sale(
            &mut self,
            epc: &Epc,
            record: EpcRecord,
        ) -> Result<Option<DoubleSale>, Infallible> {
            self.replica.record_epc_sale(epc, record)
        }
        fn record_epc_return(&mut self, epc: &Epc, record: EpcRecord) -> Result<(), Infallible> {
            self.replica.record_epc_return(epc, record)
        }
    }

    impl Ledger for MemLedger {
        fn event(&self, id: &EventId) -> Result<Option<Event>, Infallible> {
            Ok(self.replica.journal.get(id).cloned())
        }
        fn epc_history(&self, epc: &Epc) -> Result<Option<EpcHistory>, Infallible> {
            Ok(self.replica.epcs.get(epc).cloned())
        }
        fn catalog_price(&self, gtin: Gtin) -> Result<Option<i64>, Infallible> {
            Ok(self.prices.get(&gtin).copied())
        }
        fn append_outbox(&mut self, id: EventId) -> Result<u64, Infallible> {
            self.outbox.push(id);
            Ok(self.outbox.len() as u64)
        }
        fn add_demand(&mut self, gtin: Gtin, units: u64) -> Result<(), Infallible> {
            *self.demand.entry(gtin).or_default() += units;
            Ok(())
        }
        fn returned_from(&self, sale: &EventId) -> Result<BTreeMap<Gtin, u64>, Infallible> {
            Ok(self.returned.get(sale).cloned().unwrap_or_default())
        }
        fn add_returned(
            &mut self,
            sale: &EventId,
            units: &BTreeMap<Gtin, u64>,
        ) -> Result<(), Infallible> {
            let returned = self.returned.entry(*sale).or_default();
            for (gtin, u) in units {
                *returned.entry(*gtin).or_default() += u;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemLedger;
    use super::*;
    use tally_sync::Direction;

    fn who() -> Who {
        Who {
            replica: ReplicaId::new("s1").unwrap(),
            location: LocationId::new("s1").unwrap(),
        }
    }

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn stamp(n: u8) -> Stamp {
        Stamp {
            now_ms: 1_700_000_000_000 + u64::from(n),
            random: [n; 10],
        }
    }

    fn line(g: u64, qty: u64, price: Option<i64>) -> LineIn {
        LineIn {
            gtin: gtin(g),
            qty,
            unit_price_minor: price,
            epc: None,
        }
    }

    fn sale(id: Option<u8>, lines: Vec<LineIn>) -> Command {
        Command::Sale {
            id: id.map(|n| EventId::v7(1, [n; 10])),
            lines,
            tenders: vec![],
            approval: None,
        }
    }

    fn receive(l: &mut MemLedger, g: u64, qty: u64) {
        let cmd = Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(gtin(g), qty)],
        };
        static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(100);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = execute(l, &who(), &cmd, stamp(n)).unwrap();
        assert!(matches!(out, Outcome::Recorded { new: true, .. }));
    }

    fn on_hand(l: &MemLedger, g: u64) -> u64 {
        l.replica
            .inventory
            .counter(&ItemKey::new(who().location, gtin(g)))
            .value()
    }

    #[test]
    fn sale_uses_catalog_price_or_given_price() {
        let mut l = MemLedger::default();
        l.prices.insert(gtin(1), 250);
        receive(&mut l, 1, 5);
        receive(&mut l, 2, 5);
        let cmd = sale(Some(1), vec![line(1, 2, None), line(2, 1, Some(99))]);
        let Outcome::Recorded { event, new } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap()
        else {
            panic!("refused")
        };
        assert!(new);
        assert_eq!(event.total_minor(), 599);
        assert_eq!((on_hand(&l, 1), on_hand(&l, 2)), (3, 4));
        assert_eq!(l.outbox.len(), 3);
    }

    #[test]
    fn unknown_item_without_price_is_invalid_and_changes_nothing() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 5);
        let before = l.clone();
        let out = execute(
            &mut l,
            &who(),
            &sale(None, vec![line(1, 1, None)]),
            stamp(1),
        )
        .unwrap();
        assert!(matches!(
            out,
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
        assert_eq!(l.outbox, before.outbox);
        assert_eq!(on_hand(&l, 1), 5);
    }

    #[test]
    fn a_tender_without_method_negative_or_short_of_the_total_is_invalid() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 5);
        let before = l.clone();
        let tender = |method: &str, amount_minor| Tender {
            method: method.into(),
            amount_minor,
            reference: None,
        };
        for (tenders, says) in [
            (vec![tender(" ", 250)], "tenders[0].method is empty"),
            (
                vec![tender("card", 200), tender("cash", -50)],
                "tenders[1].amount_minor must be >= 0, got -50",
            ),
            (
                vec![tender("card", 100), tender("cash", 49)],
                "the tenders pay 149 of the total 150 minor units",
            ),
            (
                vec![tender("card", i64::MAX), tender("cash", 1)],
                "the tenders add up to more than 9223372036854775807",
            ),
        ] {
            let cmd = Command::Sale {
                id: None,
                lines: vec![line(1, 1, Some(150))],
                tenders,
                approval: None,
            };
            match execute(&mut l, &who(), &cmd, stamp(1)).unwrap() {
                Outcome::Refused {
                    refusal: Refusal::Invalid(d),
                    ..
                } => assert_eq!(d, says),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(l.outbox, before.outbox);
        assert_eq!(on_hand(&l, 1), 5);
        let paid = Command::Sale {
            id: None,
            lines: vec![line(1, 1, Some(150))],
            tenders: vec![tender("voucher", 0), tender("cash", 150)],
            approval: None,
        };
        recorded(execute(&mut l, &who(), &paid, stamp(2)).unwrap());
        // Cash handed over beyond the total (change given) is fine.
        let with_change = Command::Sale {
            id: None,
            lines: vec![line(1, 1, Some(150))],
            tenders: vec![tender("cash", 200)],
            approval: None,
        };
        recorded(execute(&mut l, &who(), &with_change, stamp(3)).unwrap());
    }

    #[test]
    fn a_total_beyond_i64_is_invalid_and_changes_nothing() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 4_000_000_000_000_000_000);
        let before = l.clone();
        let huge_qty = vec![line(1, 4_000_000_000_000_000_000, Some(100))];
        let two_max_prices = vec![line(1, 1, Some(i64::MAX)), line(1, 1, Some(1))];
        for lines in [huge_qty, two_max_prices] {
            for cmd in [sale(None, lines.clone()), ret(None, lines, None)] {
                match execute(&mut l, &who(), &cmd, stamp(1)).unwrap() {
                    Outcome::Refused {
                        refusal: Refusal::Invalid(d),
                        ..
                    } => assert!(d.contains("exceeds 9223372036854775807"), "{d}"),
                    other => panic!("{cmd:?}: {other:?}"),
                }
            }
        }
        assert_eq!(l.outbox, before.outbox);
        assert_eq!(on_hand(&l, 1), 4_000_000_000_000_000_000);
        // The largest total that fits is recorded as it is.
        let fits = sale(
            None,
            vec![line(1, 1, Some(i64::MAX - 1)), line(1, 1, Some(1))],
        );
        let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &fits, stamp(2)).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(event.total_minor(), i64::MAX);
    }

    #[test]
    fn insufficient_stock_refuses_whole_sale_and_records_demand() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 2);
        receive(&mut l, 2, 1);
        let cmd = sale(
            Some(1),
            vec![
                line(1, 1, Some(1)),
                line(2, 3, Some(1)),
                line(1, 2, Some(1)),
            ],
        );
        let out = execute(&mut l, &who(), &cmd, stamp(1)).unwrap();
        let Outcome::Refused { refusal, demand } = out else {
            panic!("accepted")
        };
        assert!(matches!(refusal, Refusal::InsufficientStock { .. }));
        assert_eq!(
            demand,
            vec![
                Shortfall {
                    gtin: gtin(1),
                    units: 1
                },
                Shortfall {
                    gtin: gtin(2),
                    units: 2
                }
            ]
        );
        assert_eq!(l.demand.get(&gtin(2)), Some(&2));
        assert_eq!((on_hand(&l, 1), on_hand(&l, 2)), (2, 1));
        assert_eq!(l.outbox.len(), 2, "only the two receipts");
        // The refused id was not recorded: posting it again may succeed.
        receive(&mut l, 2, 5);
        receive(&mut l, 1, 5);
        assert!(matches!(
            execute(&mut l, &who(), &cmd, stamp(2)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
    }

    #[test]
    fn same_id_is_applied_once() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 5);
        let cmd = sale(Some(7), vec![line(1, 2, Some(10))]);
        let first = execute(&mut l, &who(), &cmd, stamp(1)).unwrap();
        let again = execute(&mut l, &who(), &cmd, stamp(2)).unwrap();
        let (
            Outcome::Recorded {
                event: a,
                new: true,
            },
            Outcome::Recorded {
                event: b,
                new: false,
            },
        ) = (first, again)
        else {
            panic!("not recorded once")
        };
        assert_eq!(a, b);
        assert_eq!(on_hand(&l, 1), 3);
        // The same id as another kind is refused.
        let ret = Command::Return {
            id: Some(a.id),
            lines: vec![line(1, 1, Some(10))],
            original_sale: None,
        };
        assert!(matches!(
            execute(&mut l, &who(), &ret, stamp(3)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
    }

    #[test]
    fn a_changed_request_under_a_recorded_id_is_refused_and_changes_nothing() {
        let mut l = MemLedger::default();
        l.prices.insert(gtin(1), 250);
        receive(&mut l, 1, 9);
        receive(&mut l, 2, 9);
        let first = sale(Some(7), vec![line(1, 2, None), line(2, 1, Some(10))]);
        assert!(matches!(
            execute(&mut l, &who(), &first, stamp(1)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
        let before = l.clone();
        // A true retry after the catalog price changed: the price was not
        // given, so it is not compared.
        l.prices.insert(gtin(1), 300);
        assert!(matches!(
            execute(&mut l, &who(), &first, stamp(2)).unwrap(),
            Outcome::Recorded { new: false, .. }
        ));
        let with = |f: &dyn Fn(&mut Command)| {
            let mut c = first.clone();
            f(&mut c);
            c
        };
        fn lines(c: &mut Command) -> &mut Vec<LineIn> {
            match c {
                Command::Sale { lines, .. } => lines,
                _ => unreachable!(),
            }
        }
        let changed = [
            with(&|c| lines(c)[0].qty = 3),
            with(&|c| lines(c)[1].unit_price_minor = Some(11)),
            with(&|c| lines(c)[0].unit_price_minor = Some(300)),
            with(&|c| lines(c)[1].gtin = gtin(3)),
            with(&|c| lines(c)[1].epc = Some(Epc::from_hex("3074257bf7194e4000001a85").unwrap())),
            with(&|c| lines(c).truncate(1)),
            with(&|c| {
                if let Command::Sale { tenders, .. } = c {
                    tenders.push(Tender {
                        method: "cash".into(),
                        amount_minor: 510,
                        reference: None,
                    });
                }
            }),
            with(&|c| {
                if let Command::Sale { approval, .. } = c {
                    *approval = Some(Approval {
                        approver: "mgr".into(),
                        reason: "shelf".into(),
                    });
                }
            }),
        ];
        for (n, cmd) in changed.iter().enumerate() {
            let out = execute(&mut l, &who(), cmd, stamp(3)).unwrap();
            let Outcome::Refused {
                refusal: Refusal::Invalid(detail),
                ..
            } = out
            else {
                panic!("change {n} accepted: {out:?}")
            };
            assert!(
                detail.contains("already recorded as a different sale"),
                "{detail}"
            );
        }
        assert_eq!(
            (on_hand(&l, 1), on_hand(&l, 2)),
            (7, 8),
            "counters unchanged"
        );
        assert_eq!(l.outbox, before.outbox, "nothing recorded");

        // Returns, receipts and counts are held to the same rule.
        let sale_id = EventId::v7(1, [7; 10]);
        let r = ret(Some(8), vec![line(1, 1, None)], Some(sale_id));
        assert!(matches!(
            execute(&mut l, &who(), &r, stamp(4)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
        assert_eq!(retry_mismatch(&r, &recorded_event(&l, &r)), None);
        let other_sale = ret(Some(8), vec![line(1, 1, None)], None);
        assert!(retry_mismatch(&other_sale, &recorded_event(&l, &r)).is_some());
        let receipt = |qty| Command::Receipt {
            id: Some(EventId::v7(1, [9; 10])),
            lines: vec![ReceiptLine::units(gtin(2), qty)],
        };
        execute(&mut l, &who(), &receipt(4), stamp(5)).unwrap();
        assert_eq!(
            retry_mismatch(&receipt(4), &recorded_event(&l, &receipt(4))),
            None
        );
        assert!(retry_mismatch(&receipt(5), &recorded_event(&l, &receipt(4))).is_some());
        let count = |counted| Command::Count {
            id: Some(EventId::v7(1, [10; 10])),
            gtin: gtin(2),
            counted,
        };
        execute(&mut l, &who(), &count(4), stamp(6)).unwrap();
        assert_eq!(
            retry_mismatch(&count(4), &recorded_event(&l, &count(4))),
            None
        );
        assert!(retry_mismatch(&count(5), &recorded_event(&l, &count(4))).is_some());
    }

    fn recorded_event(l: &MemLedger, cmd: &Command) -> Event {
        l.event(&cmd.id().unwrap()).unwrap().unwrap()
    }

    #[test]
    fn override_sells_beyond_rights_and_is_flagged() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 1);
        let cmd = Command::Sale {
            id: None,
            lines: vec![line(1, 3, Some(100))],
            tenders: vec![],
            approval: Some(Approval {
                approver: "mgr".into(),
                reason: "on the shelf".into(),
            }),
        };
        let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap()
        else {
            panic!("refused")
        };
        assert!(event.is_override());
        let EventKind::Sale {
            override_: Some(ov),
            ..
        } = &event.kind
        else {
            panic!("no override")
        };
        assert_eq!(
            ov.shortfall,
            vec![Shortfall {
                gtin: gtin(1),
                units: 2
            }]
        );
        assert_eq!(on_hand(&l, 1), 0);
        // An approval needs a name and a reason.
        let bad = Command::Sale {
            id: None,
            lines: vec![line(1, 1, Some(100))],
            tenders: vec![],
            approval: Some(Approval {
                approver: " ".into(),
                reason: "x".into(),
            }),
        };
        assert!(matches!(
            execute(&mut l, &who(), &bad, stamp(2)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
    }

    #[test]
    fn epc_sold_once_then_returned_then_sold_again() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 5);
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let tagged = |price| LineIn {
            epc: Some(epc.clone()),
            ..line(1, 1, Some(price))
        };
        let s = |n| Command::Sale {
            id: Some(EventId::v7(1, [n; 10])),
            lines: vec![tagged(10)],
            tenders: vec![],
            approval: None,
        };
        assert!(matches!(
            execute(&mut l, &who(), &s(1), stamp(1)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
        assert_eq!(
            execute(&mut l, &who(), &s(2), stamp(2)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::AlreadySold { epc: epc.clone() },
                demand: vec![]
            }
        );
        let ret = Command::Return {
            id: None,
            lines: vec![tagged(10)],
            original_sale: None,
        };
        assert!(matches!(
            execute(&mut l, &who(), &ret, stamp(3)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
        assert!(matches!(
            execute(&mut l, &who(), &ret, stamp(4)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::NotSold { .. },
                ..
            }
        ));
        assert!(matches!(
            execute(&mut l, &who(), &s(3), stamp(5)).unwrap(),
            Outcome::Recorded { new: true, .. }
        ));
        assert_eq!(on_hand(&l, 1), 4);
    }

    #[test]
    fn count_moves_on_hand_to_counted() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 10);
        let count = |counted| Command::Count {
            id: None,
            gtin: gtin(1),
            counted,
        };
        let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &count(7), stamp(1)).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            event.kind,
            EventKind::CountAdjustment {
                counted: 7,
                direction: Direction::Down,
                unresolved: 0
            }
        );
        assert_eq!(on_hand(&l, 1), 7);
        execute(&mut l, &who(), &count(12), stamp(2)).unwrap();
        assert_eq!(on_hand(&l, 1), 12);
        let Outcome::Recorded { event, .. } =
            execute(&mut l, &who(), &count(12), stamp(3)).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(event.lines[0].qty, 0);
        assert_eq!(on_hand(&l, 1), 12);
    }

    #[test]
    fn count_cannot_remove_units_whose_rights_another_replica_holds() {
        let mut l = MemLedger::default();
        receive(&mut l, 1, 10);
        let key = ItemKey::new(who().location, gtin(1));
        let mut c = l.replica.inventory.counter(&key);
        c.transfer(&who().replica, &ReplicaId::hub(), 4).unwrap();
        l.replica.inventory.put(&key, c);
        let cmd = Command::Count {
            id: None,
            gtin: gtin(1),
            counted: 1,
        };
        let Outcome::Recorded { event, .. } = execute(&mut l, &who(), &cmd, stamp(1)).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            event.kind,
            EventKind::CountAdjustment {
                counted: 1,
                direction: Direction::Down,
                unresolved: 3
            }
        );
        assert_eq!(on_hand(&l, 1), 4);
    }

    #[test]
    fn a_tagged_receipt_line_keeps_its_epc_on_the_event() {
        let epc = Epc::from_hex("3074257BF7194E4000001A85").unwrap();
        let cmd = Command::Receipt {
            id: None,
            lines: vec![
                ReceiptLine::tagged(gtin(1), epc.clone()),
                ReceiptLine::units(gtin(2), 5),
            ],
        };
        let e = plan(&cmd, &who(), &Loaded::default(), stamp(3)).unwrap();
        assert_eq!(e.lines[0].epc, Some(epc));
        assert_eq!(e.lines[0].qty, 1);
        assert_eq!(e.lines[1].epc, None);
        assert_eq!(e.lines[1].qty, 5);
    }

    #[test]
    fn plan_generates_a_v7_id_from_the_stamp() {
        let cmd = Command::Receipt {
            id: None,
            lines: vec![ReceiptLine::units(gtin(1), 1)],
        };
        let e = plan(&cmd, &who(), &Loaded::default(), stamp(9)).unwrap();
        assert_eq!(e.id, EventId::v7(stamp(9).now_ms, [9; 10]));
        assert_eq!(e.at_ms, stamp(9).now_ms);
    }

    #[test]
    fn negative_price_and_empty_lines_are_invalid() {
        let mut l = MemLedger::default();
        for cmd in [
            sale(None, vec![line(1, 1, Some(-1))]),
            sale(None, vec![]),
            sale(None, vec![line(1, 0, Some(1))]),
        ] {
            assert!(matches!(
                execute(&mut l, &who(), &cmd, stamp(1)).unwrap(),
                Outcome::Refused {
                    refusal: Refusal::Invalid(_),
                    ..
                }
            ));
        }
        assert!(l.outbox.is_empty());
    }

    fn ret(id: Option<u8>, lines: Vec<LineIn>, original_sale: Option<EventId>) -> Command {
        Command::Return {
            id: id.map(|n| EventId::v7(2, [n; 10])),
            lines,
            original_sale,
        }
    }

    fn recorded(out: Outcome) -> Event {
        match out {
            Outcome::Recorded { event, new: true } => event,
            other => panic!("not recorded: {other:?}"),
        }
    }

    #[test]
    fn a_return_against_a_sale_is_refunded_at_its_price_and_bounded_by_it() {
        let mut l = MemLedger::default();
        l.prices.insert(gtin(1), 500);
        receive(&mut l, 1, 10);
        receive(&mut l, 2, 10);
        let s = recorded(
            execute(
                &mut l,
                &who(),
                &sale(None, vec![line(1, 3, Some(150)), line(2, 1, Some(80))]),
                stamp(1),
            )
            .unwrap(),
        );
        // Refunded at the 150 it was sold at, not the catalog's 500.
        let r = recorded(
            execute(
                &mut l,
                &who(),
                &ret(None, vec![line(1, 2, None)], Some(s.id)),
                stamp(2),
            )
            .unwrap(),
        );
        assert_eq!(r.lines[0].unit_price_minor, 150);
        assert_eq!(on_hand(&l, 1), 9);
        let before = l.clone();
        let refused = |l: &mut MemLedger, lines, n| match execute(
            l,
            &who(),
            &ret(None, lines, Some(s.id)),
            stamp(n),
        )
        .unwrap()
        {
            Outcome::Refused { refusal, demand } => {
                assert!(demand.is_empty());
                refusal
            }
            other => panic!("not refused: {other:?}"),
        };
        // One of the three is left to return.
        assert_eq!(
            refused(&mut l, vec![line(1, 2, None)], 3),
            Refusal::ExceedsSale {
                sale: s.id,
                gtin: gtin(1),
                requested: 2,
                returnable: 1
            }
        );
        // Two lines of the same item count together.
        assert!(matches!(
            refused(&mut l, vec![line(1, 1, None), line(1, 1, None)], 4),
            Refusal::ExceedsSale { requested: 2, .. }
        ));
        // An item the sale did not sell: nothing returnable.
        assert_eq!(
            refused(&mut l, vec![line(3, 1, Some(10))], 5),
            Refusal::ExceedsSale {
                sale: s.id,
                gtin: gtin(3),
                requested: 1,
                returnable: 0
            }
        );
        // A refund above the price paid is invalid.
        assert!(matches!(
            refused(&mut l, vec![line(2, 1, Some(81))], 6),
            Refusal::Invalid(_)
        ));
        // The refusals changed nothing.
        assert_eq!(l.outbox, before.outbox);
        assert_eq!(l.returned, before.returned);
        assert_eq!(l.replica.journal.len(), before.replica.journal.len());
        assert_eq!(on_hand(&l, 1), 9);
        // The last unit, at a lower price (a damaged item), and the other item.
        let r = recorded(
            execute(
                &mut l,
                &who(),
                &ret(
                    None,
                    vec![line(1, 1, Some(100)), line(2, 1, None)],
                    Some(s.id),
                ),
                stamp(7),
            )
            .unwrap(),
        );
        assert_eq!(
            r.lines
                .iter()
                .map(|l| l.unit_price_minor)
                .collect::<Vec<_>>(),
            [100, 80]
        );
        assert_eq!(
            l.returned[&s.id],
            BTreeMap::from([(gtin(1), 3), (gtin(2), 1)])
        );
        assert_eq!(
            refused(&mut l, vec![line(2, 1, None)], 8),
            Refusal::ExceedsSale {
                sale: s.id,
                gtin: gtin(2),
                requested: 1,
                returnable: 0
            }
        );
    }

    #[test]
    fn a_retried_return_counts_once_and_only_sales_can_be_named() {
        let mut l = MemLedger::default();
        l.prices.insert(gtin(1), 40);
        let receipt = Command::Receipt {
            id: Some(EventId::v7(3, [1; 10])),
            lines: vec![ReceiptLine::units(gtin(1), 5)],
        };
        let receipt = recorded(execute(&mut l, &who(), &receipt, stamp(1)).unwrap());
        let s = recorded(
            execute(
                &mut l,
                &who(),
                &sale(Some(1), vec![line(1, 2, None)]),
                stamp(2),
            )
            .unwrap(),
        );
        let r = ret(Some(9), vec![line(1, 2, None)], Some(s.id));
        recorded(execute(&mut l, &who(), &r, stamp(3)).unwrap());
        assert!(matches!(
            execute(&mut l, &who(), &r, stamp(4)).unwrap(),
            Outcome::Recorded { new: false, .. }
        ));
        assert_eq!(l.returned[&s.id][&gtin(1)], 2);
        assert_eq!(on_hand(&l, 1), 5);
        // A receipt is not a sale.
        assert!(matches!(
            execute(
                &mut l,
                &who(),
                &ret(None, vec![line(1, 1, None)], Some(receipt.id)),
                stamp(5)
            )
            .unwrap(),
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
        // A sale this store never recorded (another store's) cannot be
        // checked: priced from the catalog and taken back.
        let elsewhere = EventId::v7(4, [4; 10]);
        let r = recorded(
            execute(
                &mut l,
                &who(),
                &ret(None, vec![line(1, 3, None)], Some(elsewhere)),
                stamp(6),
            )
            .unwrap(),
        );
        assert_eq!(r.lines[0].unit_price_minor, 40);
        assert!(!l.returned.contains_key(&elsewhere));
    }

    #[test]
    fn a_tagged_return_must_name_the_sale_that_sold_the_tag() {
        let mut l = MemLedger::default();
        let tag = |hex: &str| Epc::from_hex(hex).unwrap();
        let (a, b) = (
            tag("3074257BF7194E4000001A85"),
            tag("3074257BF7194E4000001A86"),
        );
        for epc in [&a, &b] {
            let cmd = Command::Receipt {
                id: None,
                lines: vec![ReceiptLine::tagged(gtin(1), epc.clone())],
            };
            recorded(execute(&mut l, &who(), &cmd, stamp(epc.as_bytes()[11])).unwrap());
        }
        let tagged = |epc: &Epc| LineIn {
            epc: Some(epc.clone()),
            ..line(1, 1, Some(900))
        };
        let s1 =
            recorded(execute(&mut l, &who(), &sale(None, vec![tagged(&a)]), stamp(1)).unwrap());
        let s2 =
            recorded(execute(&mut l, &who(), &sale(None, vec![tagged(&b)]), stamp(2)).unwrap());
        let wrong = ret(
            None,
            vec![LineIn {
                unit_price_minor: None,
                ..tagged(&b)
            }],
            Some(s1.id),
        );
        assert!(matches!(
            execute(&mut l, &who(), &wrong, stamp(3)).unwrap(),
            Outcome::Refused {
                refusal: Refusal::Invalid(_),
                ..
            }
        ));
        let right = ret(
            None,
            vec![LineIn {
                unit_price_minor: None,
                ..tagged(&b)
            }],
            Some(s2.id),
        );
        let r = recorded(execute(&mut l, &who(), &right, stamp(4)).unwrap());
        assert_eq!(r.lines[0].unit_price_minor, 900);
    }

    proptest::proptest! {
        /// However returns are made against this store's sales, no sale
        /// gets more of an item back than it sold, nor refunds more than it
        /// took in; and a return is refused exactly when it would.
        #[test]
        fn returns_never_exceed_their_sale(
            ops in proptest::collection::vec(
                (proptest::bool::ANY, 0usize..8, 1u64..4, 1u64..4, proptest::option::of(0i64..120)),
                1..60,
            )
        ) {
            let mut l = MemLedger::default();
            for g in 1..4 {
                receive(&mut l, g, 1_000);
            }
            let mut sales: Vec<Event> = Vec::new();
            // Model: units returned per (sale, item).
            let mut model: BTreeMap<(EventId, Gtin), u64> = BTreeMap::new();
            for (n, (is_sale, pick, g, qty, price)) in ops.into_iter().enumerate() {
                let st = Stamp { now_ms: 1_000 + n as u64, random: [0; 10] };
                if is_sale || sales.is_empty() {
                    let cmd = sale(None, vec![line(g, qty, Some(100)), line(1, 1, Some(60))]);
                    sales.push(recorded(execute(&mut l, &who(), &cmd, st).unwrap()));
                    continue;
                }
                let s = &sales[pick % sales.len()];
                let sold: u64 = s.lines.iter().filter(|x| x.gtin == gtin(g)).map(|x| x.qty).sum();
                let lowest = s.lines.iter().filter(|x| x.gtin == gtin(g)).map(|x| x.unit_price_minor).min();
                let earlier = model.get(&(s.id, gtin(g))).copied().unwrap_or(0);
                let out = execute(&mut l, &who(), &ret(None, vec![line(g, qty, price)], Some(s.id)), st).unwrap();
                let price_ok = match (price, lowest) {
                    (Some(p), Some(at)) => p <= at,
                    _ => true,
                };
                match out {
                    Outcome::Recorded { event, new: true } => {
                        proptest::prop_assert!(price_ok && earlier + qty <= sold);
                        proptest::prop_assert_eq!(Some(event.lines[0].unit_price_minor), price.or(lowest));
                        *model.entry((s.id, gtin(g))).or_default() += qty;
                    }
                    Outcome::Refused { refusal: Refusal::ExceedsSale { returnable, .. }, .. } => {
                        proptest::prop_assert!(price_ok && earlier + qty > sold);
                        proptest::prop_assert_eq!(returnable, sold - earlier);
                    }
                    Outcome::Refused { refusal: Refusal::Invalid(_), .. } => {
                        proptest::prop_assert!(!price_ok);
                    }
                    other => proptest::prop_assert!(false, "{:?}", other),
                }
            }
            // The invariant, from the journal alone.
            for s in &sales {
                let mut back: BTreeMap<Gtin, (u64, i64)> = BTreeMap::new();
                for e in l.replica.journal.iter() {
                    if e.kind == (EventKind::Return { original_sale: Some(s.id) }) {
                        for x in &e.lines {
                            let b = back.entry(x.gtin).or_default();
                            b.0 += x.qty;
                            b.1 += x.unit_price_minor * x.qty as i64;
                        }
                    }
                }
                for (g, (units, refund)) in back {
                    let sold = s.lines.iter().filter(|x| x.gtin == g);
                    proptest::prop_assert!(units <= sold.clone().map(|x| x.qty).sum::<u64>());
                    proptest::prop_assert!(refund <= sold.map(|x| x.unit_price_minor * x.qty as i64).sum::<i64>());
                }
            }
        }
    }
}
