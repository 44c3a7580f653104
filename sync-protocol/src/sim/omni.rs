//! The stores' side of omnichannel orders (issue 22), through the command
//! core as the agent runs it: a store picks, hands over or ships its
//! allocation of a routed order (`Command::Fulfil`), sends units to
//! another store (`Command::TransferOut`) and receives a transfer the hub
//! told it of (`Command::TransferIn`), and takes back part of a sale made
//! at another store: checked by the hub when its link is up
//! (`Command::Return { checked, .. }`), else on a manager's approval (the
//! offline "approve" policy) or not at all. The sim keeps its own model of
//! every transfer and of what each such sale has left chain-wide, and
//! checks the answers against it.

use rand::Rng;

use super::till::{approved, cashier, line};
use super::Sim;
use crate::command::{Command, Outcome, ReceiptLine};
use crate::event::EventKind;
use crate::fulfilment::{Fulfilment, Status};
use crate::gtin::Gtin;
use crate::ids::EventId;
use crate::ledger::Refusal;
use crate::transfer::TransferStatus;

/// Most sales the sim remembers for returns across stores.
const REMEMBERED_CHAIN_SALES: usize = 64;

/// A sale whose returns may come back at any store, and what the sim's
/// model says it has left to return chain-wide.
#[derive(Debug, Clone)]
pub(super) struct ChainSale {
    id: EventId,
    store: usize,
    gtin: Gtin,
    sold: u64,
    left: u64,
}

/// A transfer as the sim's model knows it.
#[derive(Debug, Clone)]
pub(super) struct SimTransfer {
    pub(super) gtin: Gtin,
    pub(super) qty: u64,
    pub(super) received: bool,
    /// Lost in the van: never received during the run.
    pub(super) never: bool,
}

impl Sim {
    /// Store `s` moves one of its open allocations: picks it, or hands it
    /// over (collected at the counter, or shipped).
    pub(super) fn fulfil(&mut self, s: usize) {
        let open: Vec<(String, Status, Fulfilment)> = self.stores[s]
            .mem
            .allocations
            .values()
            .filter(|a| a.status.open())
            .map(|a| (a.order_id.clone(), a.status, a.fulfilment))
            .collect();
        if open.is_empty() {
            return;
        }
        let (order_id, status, fulfilment) = open[self.rng.gen_range(0..open.len())].clone();
        let to = if status == Status::Allocated && self.rng.gen_bool(0.5) {
            Status::Picked
        } else if fulfilment == Fulfilment::Pickup {
            Status::Collected
        } else {
            Status::Shipped
        };
        let id = self.event_id();
        let cmd = Command::Fulfil {
            id: Some(id),
            order_id: order_id.clone(),
            to,
            staff: cashier(s),
        };
        match self.record(s, cmd) {
            Ok(_) => match to {
                Status::Picked => self.report.allocations_picked += 1,
                Status::Collected => self.report.allocations_collected += 1,
                _ => self.report.allocations_shipped += 1,
            },
            Err(e) => self.violation(format!("move of {order_id} to {to:?} refused: {e}")),
        }
    }

    /// Store `s` sends units to another store, within its rights.
    pub(super) fn transfer_out(&mut self, s: usize) {
        if self.stores.len() < 2 {
            return;
        }
        let mut to = self.rng.gen_range(0..self.stores.len() - 1);
        if to >= s {
            to += 1;
        }
        let gtin = self.item();
        let qty = self.rng.gen_range(1..=3);
        self.next_transfer += 1;
        let transfer_id = format!("tr-{}", self.next_transfer);
        let id = self.event_id();
        let cmd = Command::TransferOut {
            id: Some(id),
            transfer_id: transfer_id.clone(),
            to: self.stores[to].mem.who.location.clone(),
            lines: vec![ReceiptLine::units(gtin, qty)],
            staff: cashier(s),
        };
        match self.record(s, cmd) {
            Ok(_) => {
                self.report.transfers_sent += 1;
                let never = self.rng.gen_bool(0.1);
                self.transfers.insert(
                    transfer_id,
                    SimTransfer {
                        gtin,
                        qty,
                        received: false,
                        never,
                    },
                );
            }
            Err(Refusal::InsufficientStock { .. }) => self.report.transfers_refused += 1,
            Err(e) => self.violation(format!("transfer {transfer_id} refused: {e}")),
        }
    }

    /// Store `s` receives a transfer the hub told it of.
    pub(super) fn transfer_in(&mut self, s: usize) {
        let location = self.stores[s].mem.who.location.clone();
        let due: Vec<String> = self.stores[s]
            .mem
            .transfers
            .values()
            .filter(|t| t.to == location && t.status == TransferStatus::InTransit)
            .filter(|t| self.transfers.get(&t.transfer_id).is_some_and(|m| !m.never))
            .map(|t| t.transfer_id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let transfer_id = due[self.rng.gen_range(0..due.len())].clone();
        let id = self.event_id();
        let cmd = Command::TransferIn {
            id: Some(id),
            transfer_id: transfer_id.clone(),
            staff: cashier(s),
        };
        match self.record(s, cmd) {
            Ok(event) => {
                let Some(m) = self.transfers.get_mut(&transfer_id) else {
                    return;
                };
                let units: u64 = event
                    .lines
                    .iter()
                    .filter(|l| l.gtin == m.gtin)
                    .map(|l| l.qty)
                    .sum();
                if m.received || units != m.qty {
                    let what = format!("transfer {transfer_id} received twice or not as sent");
                    return self.violation(what);
                }
                m.received = true;
                self.report.transfers_received += 1;
            }
            Err(e) => self.violation(format!("receiving transfer {transfer_id}: {e}")),
        }
    }

    /// A customer brings part of a sale made at another store back to
    /// store `b`. Link up: the hub checks it chain-wide (and claims the
    /// units), then the store plans it with the original the hub found;
    /// asked for more than the sale has left while every return of it is
    /// known to the hub, the hub must refuse. Link down: a manager's
    /// approval takes it (sometimes beyond the bound: what the hub flags
    /// when it arrives), or the store declines it.
    pub(super) fn cross_store_return(&mut self, b: usize) {
        let Some(i) = self.chain_sale(b) else {
            return;
        };
        let sale = self.chain_sales[i].clone();
        let return_id = self.event_id();
        let hub_count = self
            .orders
            .returned_before(&sale.id, &return_id)
            .get(&sale.gtin)
            .copied()
            .unwrap_or(0);
        // Every return of the sale the sim knows of is counted at the hub.
        let known = hub_count == sale.sold - sale.left;
        let online = self.link_up(b) && !self.rng.gen_bool(self.cfg.loss);
        let beyond =
            (online && known && self.rng.gen_bool(0.2)) || (!online && self.rng.gen_bool(0.1));
        let qty = if beyond {
            sale.left + 1
        } else {
            self.rng.gen_range(1..=sale.left)
        };
        let lines = vec![line(sale.gtin, qty, None, None)];
        if !online {
            let cmd = Command::Return {
                id: Some(return_id),
                lines,
                original_sale: Some(sale.id),
                staff: cashier(b),
                checked: None,
            };
            match self.exec(b, &cmd) {
                Outcome::Refused {
                    refusal: Refusal::ApprovalRequired(_),
                    ..
                } => {}
                other => return self.violation(format!("an unchecked return taken: {other:?}")),
            }
            if self.rng.gen_bool(0.5) {
                self.report.cross_store_returns_declined += 1;
                return;
            }
            if let Err(e) = self.record(b, cmd.with_staff(approved(b, "offline return"))) {
                return self.violation(format!("approved offline return refused: {e}"));
            }
            self.report.cross_store_returns_offline += 1;
            return self.took_back(i, qty);
        }
        let original = self.hub.journal.get(&sale.id).cloned();
        let check = match self.orders.check(original.as_ref(), return_id, &lines) {
            Ok(check) => check,
            Err(refusal) => {
                self.report.cross_store_returns_refused += 1;
                let expected = match &refusal {
                    Refusal::ExceedsSale { .. } => beyond,
                    // The sale has not reached the hub yet.
                    _ => original.is_none(),
                };
                if !expected {
                    self.violation(format!(
                        "the hub refused a return of {qty} against {} with {} left: {refusal}",
                        sale.id, sale.left
                    ));
                }
                return;
            }
        };
        if beyond {
            return self.violation(format!(
                "the hub authorized {qty} back from {} with {} left",
                sale.id, sale.left
            ));
        }
        let cmd = Command::Return {
            id: Some(return_id),
            lines,
            original_sale: Some(sale.id),
            staff: cashier(b),
            checked: Some(Box::new(check)),
        };
        match self.record(b, cmd) {
            Ok(event) => {
                let names = matches!(event.kind, EventKind::Return { original_sale: Some(o) } if o == sale.id);
                if !names
                    || event
                        .lines
                        .iter()
                        .any(|l| l.unit_price_minor > super::PRICE)
                {
                    return self.violation(format!("checked return {}: {event:?}", event.id));
                }
                self.report.cross_store_returns_checked += 1;
                self.took_back(i, qty);
            }
            Err(e) => self.violation(format!("a checked return refused at the store: {e}")),
        }
    }

    /// The model: `qty` more units of chain sale `i` came back.
    fn took_back(&mut self, i: usize, qty: u64) {
        let sale = &mut self.chain_sales[i];
        sale.left = sale.left.saturating_sub(qty);
        let (store, gtin) = (sale.store, sale.gtin);
        if sale.left == 0 {
            self.chain_sales.swap_remove(i);
        }
        if let Some(n) = self.stores[store].sold_units.get_mut(&gtin) {
            *n = n.saturating_sub(qty);
        }
    }

    /// A sale made at another store than `b` to bring back there: one the
    /// chain already takes back, or one of another store's recent sales
    /// (from then on returned anywhere, no longer by its own store's
    /// till, whose ledger knows only its own returns).
    fn chain_sale(&mut self, b: usize) -> Option<usize> {
        if !self.chain_sales.is_empty() && self.rng.gen_bool(0.5) {
            let i = self.rng.gen_range(0..self.chain_sales.len());
            return (self.chain_sales[i].store != b).then_some(i);
        }
        let a = self.rng.gen_range(0..self.stores.len());
        if a == b || self.stores[a].sales.is_empty() {
            return None;
        }
        let j = self.rng.gen_range(0..self.stores[a].sales.len());
        let sale = self.stores[a].sales.swap_remove(j);
        let sold = self.stores[a]
            .mem
            .recorded(&sale.id)
            .map_or(0, |e| e.lines.iter().map(|l| l.qty).sum());
        if self.chain_sales.len() == REMEMBERED_CHAIN_SALES {
            self.chain_sales.remove(0);
        }
        self.chain_sales.push(ChainSale {
            id: sale.id,
            store: a,
            gtin: sale.gtin,
            sold,
            left: sale.left,
        });
        (sale.left > 0).then_some(self.chain_sales.len() - 1)
    }
}
