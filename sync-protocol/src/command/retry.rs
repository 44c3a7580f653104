//! Retries: a command re-posted under a recorded id must repeat the
//! recorded request; anything it changes is named, so the caller is never
//! told that something was recorded which never was.

use super::{Command, LineIn, ReceiptLine};
use crate::event::{Approval, Event, EventKind, Line, Staff};

/// How `cmd`, re-posted under the id of the recorded `event` (of the same
/// kind), differs from what was recorded, or `None` for a true retry.
///
/// A retry repeats its request, so anything the caller gave must match:
/// items, quantities, EPCs, tenders, the manager's approval (approver and
/// reason), the returned sale, the counted figure. Who keyed it (cashier,
/// till) is not compared: a retry may come from another till. A price the caller left out is
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
                staff,
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
            // Before protocol 4 the override alone held the approval.
            let legacy = override_.as_ref().map(|o| Approval {
                approver: o.approver.clone(),
                reason: o.reason.clone(),
            });
            approval_mismatch(staff, event.staff.approval.clone().or(legacy))
        }),
        (
            Command::Return {
                lines,
                original_sale,
                staff,
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
                .or_else(|| approval_mismatch(staff, event.staff.approval.clone()))
        }
        (Command::Receipt { lines, .. }, EventKind::Receipt) => {
            // Receipts carry no price: compared as lines without one.
            let given: Vec<LineIn> = lines.iter().map(ReceiptLine::as_line_in).collect();
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
        (
            Command::Fulfil { order_id, to, .. },
            EventKind::Fulfilment {
                order_id: recorded,
                status,
            },
        ) => {
            if order_id != recorded {
                Some(format!("order {recorded}, not {order_id}"))
            } else {
                (to != status).then(|| format!("moved to {status:?}, not {to:?}"))
            }
        }
        (
            Command::TransferOut {
                transfer_id,
                to,
                lines,
                ..
            },
            EventKind::TransferOut {
                transfer_id: recorded,
                to: recorded_to,
            },
        ) => {
            if transfer_id != recorded || to != recorded_to {
                return Some(format!("transfer {recorded} to {recorded_to}"));
            }
            let given: Vec<LineIn> = lines.iter().map(ReceiptLine::as_line_in).collect();
            lines_mismatch(&given, &event.lines)
        }
        (
            Command::TransferIn { transfer_id, .. },
            EventKind::TransferIn {
                transfer_id: recorded,
                ..
            },
        ) => (transfer_id != recorded).then(|| format!("transfer {recorded}")),
        _ => Some(format!("a {}", event.kind.name())),
    }
}

fn approval_mismatch(given: &Staff, recorded: Option<Approval>) -> Option<String> {
    (given.approval != recorded).then(|| "another manager's approval".into())
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
