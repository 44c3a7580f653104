//! The content bounds of what a replica may record or report: one
//! definition, used by the agent when it plans an event
//! ([`crate::command::plan`]) and by the hub when a store's events and
//! demand arrive ([`crate::exchange::hub_handle`]). So an event the agent
//! records always passes the hub's checks, and nothing a store sends can
//! carry an absurd quantity, a negative price or tender, a multi-megabyte
//! text, or a date centuries away.
//!
//! # Design constraints
//! - Every bound is generous for a shop (a million units on one line, ten
//!   billion currency units for one item) and small enough that no sum the
//!   hub computes over a request can overflow: 1,000 events × 1,000 lines ×
//!   [`MAX_LINE_QTY`] is 10^15 units, far from `u64::MAX`. Sums are still
//!   computed checked or in `i128`/`u128` wherever store-supplied numbers
//!   add up (defence in depth, and the audit's sums span the chain's whole
//!   history).
//! - Shape and content only: nothing here reads state. Whether an event's
//!   counter effect is allowed (rights, EPCs sold) is
//!   [`crate::ledger::apply_event`] at the recorder and
//!   [`crate::explain`] plus the EPC checks at the hub.
//! - Time is checked only at the hub, against its own clock
//!   ([`check_event_time`]): the recorder stamps events with its clock, so
//!   the bound is on clock disagreement, not on the event.
//! - New free-text fields on events must be bounded here.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{Direction, Event, EventKind, Line};
use crate::gtin::Gtin;
use crate::message::Demand;

/// Most lines in one event.
pub const MAX_LINES: usize = 1_000;
/// Most units on one line (and moved by one count adjustment).
pub const MAX_LINE_QTY: u64 = 1_000_000;
/// Highest unit price, in minor units (10^10 major units).
pub const MAX_UNIT_PRICE_MINOR: i64 = 1_000_000_000_000;
/// Highest total of a sale or return, and highest tender, in minor units.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
/// Most tenders paying one sale.
pub const MAX_TENDERS: usize = 32;
/// Longest tender method (`cash`, `card`, …), in bytes.
pub const MAX_METHOD_BYTES: usize = 64;
/// Longest reference (a card authorisation, an order reference), in bytes.
pub const MAX_REFERENCE_BYTES: usize = 256;
/// Longest approver name on an override, in bytes.
pub const MAX_APPROVER_BYTES: usize = 128;
/// Longest override reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1_024;
/// Highest count a cycle count may report, and most units it may leave
/// unresolved.
pub const MAX_COUNTED: u64 = 1_000_000_000_000;
/// How far ahead of the hub's clock an event may be dated (clock skew).
pub const MAX_CLOCK_SKEW_MS: u64 = 24 * 3_600_000;
/// How far behind the hub's clock an event may be dated: five years, the
/// life of a store's certificate (no store can hold events older).
pub const MAX_EVENT_AGE_MS: u64 = 5 * 366 * 24 * 3_600_000;
/// Most items in one request's demand.
pub const MAX_DEMAND_ITEMS: usize = 10_000;
/// Longest cashier or till id.
pub const MAX_STAFF_ID_BYTES: usize = 128;
/// Most refused units of one item one request may report as demand.
pub const MAX_DEMAND_UNITS: u64 = 1_000_000_000;
/// Most counters in one sync request's delta. A store with more changed
/// counters sends them in pages of this many, oldest change first (its
/// inventory version orders them), so one request's check and merge are
/// bounded however much changed since the last sync.
pub const MAX_DELTA_ENTRIES: usize = 10_000;

/// Content beyond the bounds. The hub refuses the whole request; the
/// agent refuses the command (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A number above its bound.
    #[error("{what} is {found}, more than the {max} allowed")]
    TooLarge {
        /// Which field.
        what: String,
        /// Its value.
        found: i128,
        /// The bound.
        max: i128,
    },
    /// A number below its bound (a negative price or tender).
    #[error("{what} is {found}, less than the {min} allowed")]
    TooSmall {
        /// Which field.
        what: String,
        /// Its value.
        found: i128,
        /// The bound.
        min: i128,
    },
    /// Too many elements or bytes.
    #[error("{what} has {found} {unit}, more than the {max} allowed")]
    TooMany {
        /// Which field.
        what: String,
        /// Its length.
        found: usize,
        /// The bound.
        max: usize,
        /// `bytes`, `lines`, `tenders`, `items`.
        unit: &'static str,
    },
    /// Dated too far from the hub's clock.
    #[error("dated {at_ms} (Unix ms), outside the hub's window {earliest_ms}..={latest_ms}")]
    OutOfWindow {
        /// The event's date.
        at_ms: u64,
        /// Earliest date accepted now.
        earliest_ms: u64,
        /// Latest date accepted now.
        latest_ms: u64,
    },
    /// Fields that contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

fn at_most(what: impl FnOnce() -> String, found: i128, max: i128) -> Result<(), ContentError> {
    if found > max {
        return Err(ContentError::TooLarge {
            what: what(),
            found,
            max,
        });
    }
    Ok(())
}

fn at_least(what: impl FnOnce() -> String, found: i128, min: i128) -> Result<(), ContentError> {
    if found < min {
        return Err(ContentError::TooSmall {
            what: what(),
            found,
            min,
        });
    }
    Ok(())
}

fn len_at_most(
    what: impl FnOnce() -> String,
    found: usize,
    max: usize,
    unit: &'static str,
) -> Result<(), ContentError> {
    if found > max {
        return Err(ContentError::TooMany {
            what: what(),
            found,
            max,
            unit,
        });
    }
    Ok(())
}

/// A text field: at most `max` bytes, and no control character but tab,
/// line feed and carriage return (a NUL would be refused by a database
/// downstream, ESC sequences would reach a terminal or a log as
/// commands).
fn text(what: impl Fn() -> String, value: &str, max: usize) -> Result<(), ContentError> {
    len_at_most(&what, value.len(), max, "bytes")?;
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ContentError::Inconsistent(format!(
            "{} holds the control character U+{:04X}",
            what(),
            u32::from(c)
        )));
    }
    Ok(())
}

/// Units per item over `lines`, in `u128` (cannot overflow).
fn units_by_item(lines: &[Line]) -> BTreeMap<Gtin, u128> {
    let mut out: BTreeMap<Gtin, u128> = BTreeMap::new();
    for l in lines {
        *out.entry(l.gtin).or_default() += u128::from(l.qty);
    }
    out
}

/// Checks every bound on `event`'s content (not its date, not its effect
/// on counters). See the module docs.
pub fn check_event(event: &Event) -> Result<(), ContentError> {
    let lines = &event.lines;
    len_at_most(|| "the event".into(), lines.len(), MAX_LINES, "lines")?;
    let mut total: i128 = 0;
    for (i, l) in lines.iter().enumerate() {
        at_most(
            || format!("lines[{i}].qty"),
            i128::from(l.qty),
            i128::from(MAX_LINE_QTY),
        )?;
        at_least(
            || format!("lines[{i}].unit_price_minor"),
            l.unit_price_minor.into(),
            0,
        )?;
        at_most(
            || format!("lines[{i}].unit_price_minor"),
            l.unit_price_minor.into(),
            MAX_UNIT_PRICE_MINOR.into(),
        )?;
        // Bounded above: ≤ 1,000 × 10^6 × 10^12, far inside i128.
        total += i128::from(l.qty) * i128::from(l.unit_price_minor);
    }
    check_staff(event)?;
    match &event.kind {
        EventKind::Sale { tenders, override_ } => {
            at_most(|| "the sale's total".into(), total, MAX_AMOUNT_MINOR.into())?;
            len_at_most(|| "the sale".into(), tenders.len(), MAX_TENDERS, "tenders")?;
            for (i, t) in tenders.iter().enumerate() {
                text(
                    || format!("tenders[{i}].method"),
                    &t.method,
                    MAX_METHOD_BYTES,
                )?;
                at_least(
                    || format!("tenders[{i}].amount_minor"),
                    t.amount_minor.into(),
                    0,
                )?;
                at_most(
                    || format!("tenders[{i}].amount_minor"),
                    t.amount_minor.into(),
                    MAX_AMOUNT_MINOR.into(),
                )?;
                if let Some(r) = &t.reference {
                    text(|| format!("tenders[{i}].reference"), r, MAX_REFERENCE_BYTES)?;
                }
            }
            if let Some(ov) = override_ {
                text(
                    || "override.approver".into(),
                    &ov.approver,
                    MAX_APPROVER_BYTES,
                )?;
                text(|| "override.reason".into(), &ov.reason, MAX_REASON_BYTES)?;
                // The shortfall is found stock the sale then removes: never
                // more of an item than the sale sells (else a "sale" would
                // add stock), each item once.
                let sold = units_by_item(lines);
                let mut seen = BTreeSet::new();
                for s in &ov.shortfall {
                    if !seen.insert(s.gtin) {
                        return Err(ContentError::Inconsistent(format!(
                            "override.shortfall names {} twice",
                            s.gtin
                        )));
                    }
                    let line_units = sold.get(&s.gtin).copied().unwrap_or(0);
                    if u128::from(s.units) > line_units {
                        return Err(ContentError::Inconsistent(format!(
                            "override.shortfall of {} is {} units, more than the {line_units} the sale sells",
                            s.gtin, s.units
                        )));
                    }
                }
            }
        }
        EventKind::Return { .. } => {
            at_most(
                || "the return's total".into(),
                total,
                MAX_AMOUNT_MINOR.into(),
            )?;
        }
        EventKind::Receipt => {}
        EventKind::CountAdjustment {
            counted,
            unresolved,
            direction,
        } => {
            at_most(
                || "counted".into(),
                i128::from(*counted),
                i128::from(MAX_COUNTED),
            )?;
            at_most(
                || "unresolved".into(),
                i128::from(*unresolved),
                i128::from(MAX_COUNTED),
            )?;
            if lines.len() != 1 || lines.iter().any(|l| l.epc.is_some()) {
                return Err(ContentError::Inconsistent(
                    "a count adjustment has exactly one line, without an EPC".into(),
                ));
            }
            if *direction == Direction::Up && *unresolved != 0 {
                return Err(ContentError::Inconsistent(
                    "a count that found more has nothing unresolved".into(),
                ));
            }
        }
        EventKind::Order { reference } => {
            if let Some(r) = reference {
                text(|| "reference".into(), r, MAX_REFERENCE_BYTES)?;
            }
        }
        EventKind::TransferOut {
            transfer_id: id, ..
        }
        | EventKind::TransferIn {
            transfer_id: id, ..
        } => {
            if !crate::fulfilment::valid_order_id(id) {
                return Err(ContentError::Inconsistent(format!(
                    "transfer_id must be 1 to {} printable ASCII characters",
                    crate::fulfilment::MAX_ORDER_ID_BYTES
                )));
            }
            if lines.iter().any(|l| l.unit_price_minor != 0) {
                return Err(ContentError::Inconsistent(
                    "a transfer's lines carry no price".into(),
                ));
            }
        }
        EventKind::Fulfilment { order_id, .. } => {
            if !crate::fulfilment::valid_order_id(order_id) {
                return Err(ContentError::Inconsistent(format!(
                    "order_id must be 1 to {} printable ASCII characters",
                    crate::fulfilment::MAX_ORDER_ID_BYTES
                )));
            }
            if !lines.is_empty() {
                return Err(ContentError::Inconsistent(
                    "a fulfilment event has no lines".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Who keyed the event, who approved it and its price overrides: ids and
/// texts bounded, price overrides only on priced kinds, each naming an
/// item of the event once, with prices in bounds.
fn check_staff(event: &Event) -> Result<(), ContentError> {
    let staff = &event.staff;
    for (what, v) in [
        ("staff.cashier", &staff.cashier),
        ("staff.till", &staff.till),
    ] {
        if let Some(v) = v {
            text(|| what.into(), v, MAX_STAFF_ID_BYTES)?;
        }
    }
    if let Some(a) = &staff.approval {
        text(
            || "staff.approval.approver".into(),
            &a.approver,
            MAX_APPROVER_BYTES,
        )?;
        text(
            || "staff.approval.reason".into(),
            &a.reason,
            MAX_REASON_BYTES,
        )?;
    }
    let overrides = &event.price_overrides;
    if overrides.is_empty() {
        return Ok(());
    }
    if !matches!(
        event.kind,
        EventKind::Sale { .. } | EventKind::Return { .. }
    ) {
        return Err(ContentError::Inconsistent(format!(
            "a {} has no prices to override",
            event.kind.name()
        )));
    }
    let items = units_by_item(&event.lines);
    let mut seen = BTreeSet::new();
    for (i, p) in overrides.iter().enumerate() {
        if !items.contains_key(&p.gtin) || !seen.insert(p.gtin) {
            return Err(ContentError::Inconsistent(format!(
                "price_overrides[{i}] names {}, not an item of the event or named twice",
                p.gtin
            )));
        }
        for (field, v) in [
            ("catalog_minor", p.catalog_minor),
            ("keyed_minor", p.keyed_minor),
        ] {
            at_least(|| format!("price_overrides[{i}].{field}"), v.into(), 0)?;
            at_most(
                || format!("price_overrides[{i}].{field}"),
                v.into(),
                MAX_UNIT_PRICE_MINOR.into(),
            )?;
        }
    }
    Ok(())
}

/// Checks that an event dated `at_ms` is within the hub's window at hub
/// time `now_ms`: at most [`MAX_CLOCK_SKEW_MS`] ahead, at most
/// [`MAX_EVENT_AGE_MS`] behind.
pub fn check_event_time(at_ms: u64, now_ms: u64) -> Result<(), ContentError> {
    DateWindow::at(now_ms).check(at_ms)
}

/// How far past the usual window HQ lets one store's events be dated
/// for a while, after admitting a held event of that store that was
/// refused for its date (its clock ran ahead, or restarted at a date
/// long past): that store's other events dated alike then sync without
/// each waiting for HQ. Widened by [`DateAllowance::covering`]; the
/// default allows nothing more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DateAllowance {
    /// Events may be dated this far ahead of the hub's clock.
    pub ahead_ms: u64,
    /// Events may be dated this far behind it.
    pub behind_ms: u64,
    /// Until this hub time (Unix ms); then the usual window again.
    pub until_ms: u64,
}

/// Margin past a store clock's distance from the hub's: a clock that
/// runs fast drifts further.
pub const ALLOWANCE_MARGIN_MS: u64 = 3_600_000;
/// The most an allowance lets events be dated ahead of the hub's clock
/// (a clock a year out, the year mistyped, is still covered; centuries
/// are not, whatever HQ admits).
pub const MAX_ALLOWANCE_AHEAD_MS: u64 = 400 * 24 * 3_600_000;

/// An event's date less the hub's clock, ms (positive: ahead).
pub fn offset_ms(at_ms: u64, now_ms: u64) -> i64 {
    let diff = i128::from(at_ms) - i128::from(now_ms);
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}
/// How long an allowance lasts after the last admission that widened it:
/// a clock still wrong a week on is HQ's to look at again.
pub const ALLOWANCE_TTL_MS: u64 = 7 * 24 * 3_600_000;

impl DateAllowance {
    /// This allowance widened, at hub time `now_ms`, to cover events
    /// dated `offset_ms` from the hub's clock (an admitted event's
    /// [`offset_ms`], or how far the store's clock was from the hub's
    /// when it sent it), with [`ALLOWANCE_MARGIN_MS`] more and at most
    /// [`MAX_ALLOWANCE_AHEAD_MS`] ahead; lasting [`ALLOWANCE_TTL_MS`] from
    /// now. Unchanged but renewed for an offset within the usual window.
    #[must_use]
    pub fn covering(self, offset_ms: i64, now_ms: u64) -> Self {
        let live = if now_ms <= self.until_ms {
            self
        } else {
            Self::default()
        };
        let mut out = Self {
            until_ms: now_ms.saturating_add(ALLOWANCE_TTL_MS),
            ..live
        };
        let distance = offset_ms.unsigned_abs();
        if offset_ms > 0 && distance > MAX_CLOCK_SKEW_MS {
            let ahead = distance
                .saturating_add(ALLOWANCE_MARGIN_MS)
                .min(MAX_ALLOWANCE_AHEAD_MS);
            out.ahead_ms = out.ahead_ms.max(ahead).min(MAX_ALLOWANCE_AHEAD_MS);
        } else if offset_ms < 0 && distance > MAX_EVENT_AGE_MS {
            let behind = distance.saturating_add(ALLOWANCE_MARGIN_MS);
            out.behind_ms = out.behind_ms.max(behind);
        }
        out
    }
}

/// The dates a store's events may carry at one hub time: the usual
/// window, widened by the store's [`DateAllowance`] while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    /// The hub's clock (Unix ms).
    pub now_ms: u64,
    /// The store's allowance (none: the usual window).
    pub allowance: DateAllowance,
}

impl DateWindow {
    /// The usual window at hub time `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        Self {
            now_ms,
            allowance: DateAllowance::default(),
        }
    }

    /// This window widened by `allowance` (if it still lasts).
    #[must_use]
    pub fn with(self, allowance: DateAllowance) -> Self {
        Self { allowance, ..self }
    }

    /// The earliest and latest dates accepted.
    pub fn bounds(&self) -> (u64, u64) {
        let (mut behind, mut ahead) = (MAX_EVENT_AGE_MS, MAX_CLOCK_SKEW_MS);
        if self.now_ms <= self.allowance.until_ms {
            behind = behind.max(self.allowance.behind_ms);
            ahead = ahead.max(self.allowance.ahead_ms);
        }
        (
            self.now_ms.saturating_sub(behind),
            self.now_ms.saturating_add(ahead),
        )
    }

    /// Checks that an event dated `at_ms` is within the window.
    pub fn check(&self, at_ms: u64) -> Result<(), ContentError> {
        let (earliest_ms, latest_ms) = self.bounds();
        if at_ms < earliest_ms || at_ms > latest_ms {
            return Err(ContentError::OutOfWindow {
                at_ms,
                earliest_ms,
                latest_ms,
            });
        }
        Ok(())
    }
}

/// Checks that a request's delta names at most [`MAX_DELTA_ENTRIES`]
/// counters.
pub fn check_delta_size(delta: &crate::inventory::Delta) -> Result<(), ContentError> {
    len_at_most(
        || "delta".into(),
        delta.entries.len(),
        MAX_DELTA_ENTRIES,
        "counters",
    )
}

/// Checks a request's demand: at most [`MAX_DEMAND_ITEMS`] items, each
/// once, each at most [`MAX_DEMAND_UNITS`] units.
pub fn check_demand(demand: &[Demand]) -> Result<(), ContentError> {
    len_at_most(|| "demand".into(), demand.len(), MAX_DEMAND_ITEMS, "items")?;
    let mut seen = BTreeSet::new();
    for d in demand {
        if !seen.insert(d.gtin) {
            return Err(ContentError::Inconsistent(format!(
                "demand names {} twice",
                d.gtin
            )));
        }
        at_most(
            || format!("demand for {}", d.gtin),
            i128::from(d.units),
            i128::from(MAX_DEMAND_UNITS),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Override, Shortfall, Tender};
    use crate::ids::{Epc, EventId, LocationId, ReplicaId};
    use proptest::prelude::*;

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(n).unwrap()
    }

    fn sale(lines: Vec<Line>, tenders: Vec<Tender>) -> Event {
        Event {
            id: EventId::v7(1, [1; 10]),
            location: LocationId::new("s1").unwrap(),
            replica: ReplicaId::new("s1").unwrap(),
            at_ms: 1,
            kind: EventKind::Sale {
                tenders,
                override_: None,
            },
            lines,
            staff: Default::default(),
            price_overrides: Vec::new(),
        }
    }

    fn line(qty: u64, price: i64) -> Line {
        Line {
            gtin: gtin(1),
            qty,
            unit_price_minor: price,
            epc: None,
        }
    }

    fn cash(amount_minor: i64) -> Tender {
        Tender {
            method: "cash".into(),
            amount_minor,
            reference: None,
        }
    }

    #[test]
    fn each_bound_refuses_just_beyond_it() {
        let ok = sale(vec![line(MAX_LINE_QTY, 100)], vec![cash(100)]);
        assert_eq!(check_event(&ok), Ok(()));
        let bad = [
            sale(vec![line(MAX_LINE_QTY + 1, 1)], vec![]),
            sale(vec![line(1, -1)], vec![]),
            sale(vec![line(1, MAX_UNIT_PRICE_MINOR + 1)], vec![]),
            sale(vec![line(1, 1)], vec![cash(-1)]),
            sale(vec![line(1, 1)], vec![cash(MAX_AMOUNT_MINOR + 1)]),
            sale(vec![line(1, 1); MAX_LINES + 1], vec![]),
            sale(vec![line(1, 1)], vec![cash(1); MAX_TENDERS + 1]),
            sale(
                vec![line(1, 1)],
                vec![Tender {
                    method: "x".repeat(MAX_METHOD_BYTES + 1),
                    amount_minor: 1,
                    reference: None,
                }],
            ),
            sale(
                vec![line(1, 1)],
                vec![Tender {
                    method: "card".into(),
                    amount_minor: 1,
                    reference: Some("r".repeat(MAX_REFERENCE_BYTES + 1)),
                }],
            ),
            // The total: a thousand lines at the highest price.
            sale(vec![line(MAX_LINE_QTY, MAX_UNIT_PRICE_MINOR)], vec![]),
        ];
        for e in bad {
            assert!(check_event(&e).is_err(), "{e:?}");
        }
    }

    #[test]
    fn text_fields_refuse_control_characters_but_keep_line_breaks() {
        use crate::event::{Approval, Staff};
        let tender = |method: &str, reference: Option<&str>| Tender {
            method: method.into(),
            amount_minor: 1,
            reference: reference.map(Into::into),
        };
        let staffed = |cashier: &str, till: &str, approver: &str, reason: &str| {
            let mut e = sale(vec![line(1, 1)], vec![cash(1)]);
            e.staff = Staff {
                cashier: Some(cashier.into()),
                till: Some(till.into()),
                approval: Some(Approval {
                    approver: approver.into(),
                    reason: reason.into(),
                }),
            };
            e
        };
        let fine = staffed(
            "c1",
            "t1",
            "m1",
            "damaged box:\n\tsold at the\r\nshelf price",
        );
        assert_eq!(check_event(&fine), Ok(()));
        for bad in ["\0", "a\u{1b}[2J", "\u{7f}", "\u{85}"] {
            let events = [
                staffed(bad, "t1", "m1", "r"),
                staffed("c1", bad, "m1", "r"),
                staffed("c1", "t1", bad, "r"),
                staffed("c1", "t1", "m1", bad),
                sale(vec![line(1, 1)], vec![tender(bad, None)]),
                sale(vec![line(1, 1)], vec![tender("card", Some(bad))]),
            ];
            for e in events {
                assert!(
                    matches!(check_event(&e), Err(ContentError::Inconsistent(m)) if m.contains("control character")),
                    "{bad:?} in {e:?}"
                );
            }
        }
    }

    #[test]
    fn an_override_shortfall_never_exceeds_what_the_sale_sells() {
        let mut e = sale(vec![line(3, 1)], vec![]);
        let with = |units, approver: &str| EventKind::Sale {
            tenders: vec![],
            override_: Some(Override {
                approver: approver.into(),
                reason: "on the shelf".into(),
                shortfall: vec![Shortfall {
                    gtin: gtin(1),
                    units,
                }],
            }),
        };
        e.kind = with(3, "m");
        assert_eq!(check_event(&e), Ok(()));
        e.kind = with(4, "m");
        assert!(matches!(
            check_event(&e),
            Err(ContentError::Inconsistent(_))
        ));
        e.kind = with(1, &"m".repeat(MAX_APPROVER_BYTES + 1));
        assert!(check_event(&e).is_err());
    }

    #[test]
    fn the_time_window_is_around_hub_time() {
        let now = 1_750_000_000_000;
        assert!(check_event_time(now, now).is_ok());
        assert!(check_event_time(now + MAX_CLOCK_SKEW_MS, now).is_ok());
        assert!(check_event_time(now + MAX_CLOCK_SKEW_MS + 1, now).is_err());
        assert!(check_event_time(now - MAX_EVENT_AGE_MS, now).is_ok());
        assert!(check_event_time(now - MAX_EVENT_AGE_MS - 1, now).is_err());
        // Centuries ahead.
        assert!(check_event_time(u64::MAX, now).is_err());
        assert!(check_event_time(0, 0).is_ok());
    }

    #[test]
    fn an_allowance_covers_what_hq_admitted_for_a_while() {
        let now = 1_750_000_000_000;
        let day = 24 * 3_600_000;
        let ahead = now + 3 * day;
        assert!(DateWindow::at(now).check(ahead).is_err());
        let allowed = DateAllowance::default().covering(offset_ms(ahead, now), now);
        assert_eq!(allowed.ahead_ms, 3 * day + ALLOWANCE_MARGIN_MS);
        assert_eq!(allowed.behind_ms, 0);
        assert_eq!(allowed.until_ms, now + ALLOWANCE_TTL_MS);
        let w = DateWindow::at(now).with(allowed);
        assert!(w.check(ahead).is_ok());
        // The store's next events, by the same clock a little later.
        assert!(w.check(ahead + ALLOWANCE_MARGIN_MS).is_ok());
        assert!(w.check(ahead + ALLOWANCE_MARGIN_MS + 1).is_err());
        // The usual window still holds the other way.
        assert!(w.check(now - MAX_EVENT_AGE_MS - 1).is_err());
        // A week on, the usual window again.
        let later = now + ALLOWANCE_TTL_MS + 1;
        let w = DateWindow::at(later).with(allowed);
        assert!(w.check(later + 3 * day).is_err());
        assert!(w.check(later).is_ok());
        // A clock that restarted long ago: widened behind.
        let old = now - MAX_EVENT_AGE_MS - day;
        let both = allowed.covering(offset_ms(old, now + 1), now + 1);
        assert_eq!(both.ahead_ms, allowed.ahead_ms, "kept while it lasts");
        assert_eq!(
            both.behind_ms,
            MAX_EVENT_AGE_MS + day + 1 + ALLOWANCE_MARGIN_MS
        );
        assert!(DateWindow::at(now + 1).with(both).check(old).is_ok());
        // An expired allowance is not carried into a new one.
        let fresh = allowed.covering(offset_ms(later + 2 * day, later), later);
        assert_eq!(fresh.ahead_ms, 2 * day + ALLOWANCE_MARGIN_MS);
        // Nothing to widen: renewed only.
        let same = allowed.covering(-5, now + 5);
        assert_eq!(
            (same.ahead_ms, same.until_ms),
            (allowed.ahead_ms, now + 5 + ALLOWANCE_TTL_MS)
        );
        // Centuries ahead: capped, whatever HQ admitted.
        let far = DateAllowance::default().covering(i64::MAX, now);
        assert_eq!(far.ahead_ms, MAX_ALLOWANCE_AHEAD_MS);
        assert!(DateWindow::at(now)
            .with(far)
            .check(now + 300 * 365 * day)
            .is_err());
        // No overflow at the ends of time.
        let w = DateWindow::at(now).with(DateAllowance::default().covering(i64::MIN, now));
        assert!(w.check(0).is_ok(), "a clock reset to 1970");
        let w = DateWindow::at(u64::MAX)
            .with(DateAllowance::default().covering(offset_ms(0, u64::MAX), u64::MAX));
        assert!(w.check(u64::MAX).is_ok());
        assert_eq!(offset_ms(u64::MAX, 0), i64::MAX);
    }

    #[test]
    fn demand_is_bounded_and_names_each_item_once() {
        let d = |g, units| Demand {
            gtin: gtin(g),
            units,
        };
        assert!(check_demand(&[d(1, MAX_DEMAND_UNITS), d(2, 1)]).is_ok());
        assert!(check_demand(&[d(1, MAX_DEMAND_UNITS + 1)]).is_err());
        assert!(check_demand(&[d(1, 1), d(1, 1)]).is_err());
    }

    #[test]
    fn a_delta_names_at_most_the_bound_of_counters() {
        use crate::counter::BoundedCounter;
        use crate::inventory::{Delta, DeltaEntry, ItemKey};
        let at = crate::ids::LocationId::new("s1").unwrap();
        let delta = |n: u64| Delta {
            entries: (0..n)
                .map(|g| DeltaEntry {
                    key: ItemKey::new(at.clone(), gtin(g + 1)),
                    counter: BoundedCounter::default(),
                })
                .collect(),
        };
        assert!(check_delta_size(&delta(MAX_DELTA_ENTRIES as u64)).is_ok());
        let err = check_delta_size(&delta(MAX_DELTA_ENTRIES as u64 + 1)).unwrap_err();
        assert!(err.to_string().contains("counters"), "{err}");
    }

    proptest! {
        /// Whatever the numbers, checking never panics, and what passes
        /// keeps every bound.
        #[test]
        fn any_numbers_are_checked_without_panic(
            lines in prop::collection::vec((any::<u64>(), any::<i64>(), any::<bool>()), 0..5),
            tenders in prop::collection::vec(any::<i64>(), 0..4),
        ) {
            let lines: Vec<Line> = lines
                .into_iter()
                .enumerate()
                .map(|(i, (qty, price, tagged))| Line {
                    gtin: gtin(1 + i as u64),
                    qty,
                    unit_price_minor: price,
                    epc: tagged.then(|| Epc::from_hex("3074257BF7194E4000001A85").unwrap()),
                })
                .collect();
            let e = sale(lines, tenders.into_iter().map(cash).collect());
            if check_event(&e).is_ok() {
                for l in &e.lines {
                    prop_assert!(l.qty <= MAX_LINE_QTY);
                    prop_assert!((0..=MAX_UNIT_PRICE_MINOR).contains(&l.unit_price_minor));
                }
                prop_assert!(crate::event::checked_total_minor(&e.lines)
                    .is_some_and(|t| t <= MAX_AMOUNT_MINOR));
            }
        }
    }
}
