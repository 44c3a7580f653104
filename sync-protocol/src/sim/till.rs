//! What happens at a store's tills and back door: sales (some tagged, some
//! at a cashier's price, some refused and then overridden by a manager, now
//! and then a sold tag scanned again), receipts, returns (naming their
//! sale, sometimes asking for more than it left), cycle counts, and tills
//! that re-post a request. Every command goes through the store's
//! [`MemStore::execute`](crate::memstore::MemStore::execute), the agent's
//! command core; each answer is checked against the sim's own model.

use rand::seq::SliceRandom;
use rand::Rng;

use super::{Sim, PRICE};
use crate::command::{Approval, Command, LineIn, Outcome, Overrides, ReceiptLine, Staff};
use crate::event::{Event, EventKind, Tender};
use crate::gtin::Gtin;
use crate::ids::{Epc, EventId};
use crate::ledger::Refusal;
use crate::rights::{self, RightsRequest};

/// Most untagged sales a store remembers for returns.
const REMEMBERED_SALES: usize = 64;

/// A tag sold at a store and the sale that sold it.
#[derive(Debug, Clone)]
pub(super) struct SoldTag {
    gtin: Gtin,
    epc: Epc,
    sale: EventId,
}

/// An untagged sale and what the sim's model says it has left to return.
#[derive(Debug, Clone)]
pub(super) struct ReturnableSale {
    pub(super) id: EventId,
    pub(super) gtin: Gtin,
    pub(super) left: u64,
}

pub(super) fn line(gtin: Gtin, qty: u64, price: Option<i64>, epc: Option<Epc>) -> LineIn {
    LineIn {
        gtin,
        qty,
        unit_price_minor: price,
        epc,
        price_from_label: false,
    }
}

/// The store's cashier at its till.
pub(super) fn cashier(s: usize) -> Staff {
    Staff {
        cashier: Some(format!("cashier-{s}")),
        till: Some(format!("till-{s}")),
        approval: None,
    }
}

/// The store's cashier, with the manager's approval for `reason`.
pub(super) fn approved(s: usize, reason: &str) -> Staff {
    Staff {
        approval: Some(Approval {
            approver: "manager-1".into(),
            reason: reason.into(),
        }),
        ..cashier(s)
    }
}

/// Cash covering `qty` units at `price`.
fn cash(qty: u64, price: i64) -> Vec<Tender> {
    vec![Tender {
        method: "cash".into(),
        amount_minor: price.saturating_mul(i64::try_from(qty).unwrap_or(i64::MAX)),
        reference: None,
    }]
}

impl Sim {
    /// Runs `cmd` at store `s` now.
    pub(super) fn exec(&mut self, s: usize, cmd: &Command) -> Outcome {
        self.exec_as(s, cmd, Overrides::Apply)
    }

    /// [`Self::exec`], an approved sale beyond rights as `overrides` say.
    fn exec_as(&mut self, s: usize, cmd: &Command, overrides: Overrides) -> Outcome {
        let stamp = self.stamp();
        self.stores[s].mem.execute_with(cmd, stamp, overrides)
    }

    /// Runs a new command at store `s`: its event when recorded (and
    /// remembered for a retry), else the refusal.
    pub(super) fn record(&mut self, s: usize, cmd: Command) -> Result<Event, Refusal> {
        self.record_as(s, cmd, Overrides::Apply)
    }

    /// [`Self::record`], an approved sale beyond rights as `overrides` say.
    fn record_as(
        &mut self,
        s: usize,
        cmd: Command,
        overrides: Overrides,
    ) -> Result<Event, Refusal> {
        match self.exec_as(s, &cmd, overrides) {
            Outcome::Recorded { event, new: true } => {
                self.stores[s].last = Some(cmd);
                Ok(event)
            }
            Outcome::Recorded { event, new: false } => Err(Refusal::Invalid(format!(
                "a new command was answered as a retry of {}",
                event.id
            ))),
            Outcome::Refused { refusal, .. } => Err(refusal),
        }
    }

    /// Whether store `s` reaches the hub now (its live link is up unless
    /// it is partitioned).
    pub(super) fn link_up(&self, s: usize) -> bool {
        self.stores[s].partitioned_until <= self.step
    }

    /// Records a new command at store `s` as the agent does with rights
    /// on demand: refused for rights the hub holds while the link is up,
    /// it asks the hub for the shortfall ([`rights::grant_explained`], the code the
    /// hub runs), merges the grant and runs again; a request may be lost
    /// like any message. A sale a manager approved asks first too, its
    /// override held, for the units on the shelf, then its approval finds
    /// what the hub did not give (`tally_agent::rights`).
    fn record_with_rights(&mut self, s: usize, cmd: Command) -> Result<Event, Refusal> {
        let held = self.link_up(s)
            && matches!(&cmd, Command::Sale { staff, .. } if staff.approval.is_some());
        let overrides = if held {
            Overrides::Hold
        } else {
            Overrides::Apply
        };
        let mut shelf: Vec<(Gtin, u64)> = match &cmd {
            Command::Sale { lines, .. } => lines
                .iter()
                .map(|l| (l.gtin, self.stores[s].mem.on_hand(l.gtin)))
                .collect(),
            _ => Vec::new(),
        };
        let mut answer = self.record_as(s, cmd.clone(), overrides);
        let (mut asked, mut lost) = (false, false);
        for _ in 0..3 {
            let Err(Refusal::InsufficientStock {
                gtin,
                requested,
                available,
                on_hand,
            }) = answer
            else {
                break;
            };
            // Held, the units on the shelf; else the whole shortfall, if
            // the shelf holds it.
            let units = if held {
                requested.min(on_hand).saturating_sub(available)
            } else if on_hand >= requested {
                requested - available
            } else {
                0
            };
            if units == 0 || !self.link_up(s) {
                break;
            }
            if self.rng.gen_bool(self.cfg.loss) {
                // The request or its answer is lost: the till's wait ends
                // and the sale is refused as offline.
                self.report.rights_lost += 1;
                lost = true;
                break;
            }
            let request_id = self.event_id();
            let st = &self.stores[s];
            let req = RightsRequest {
                request_id,
                gtin,
                units,
                own: st.mem.counter(gtin).owned_by(&st.mem.who.replica),
            };
            let who = self.stores[s].mem.who.clone();
            let grant = match rights::grant_explained(&mut self.hub, &who, &req, 0) {
                Ok(Ok(g)) => g,
                Ok(Err(v)) => {
                    self.violation(format!("the hub refused an honest request for rights: {v}"));
                    break;
                }
                Err(never) => match never {},
            };
            asked = true;
            self.report.rights_requests += 1;
            self.report.rights_granted += grant.granted;
            self.stores[s].mem.apply_grant(&grant);
            answer = self.record_as(s, cmd.clone(), overrides);
            // Asked again while the hub gives (held, as the agent does:
            // the grant's view of the counter may show more on the shelf).
            if grant.granted == 0 {
                break;
            }
        }
        if let Err(Refusal::InsufficientStock { gtin, on_hand, .. }) = &answer {
            // The shelf as the hub's last answer showed it (units it sold
            // online meanwhile are gone from it).
            for (g, n) in shelf.iter_mut() {
                if g == gtin {
                    *n = *on_hand;
                }
            }
        }
        if held && matches!(answer, Err(Refusal::InsufficientStock { .. })) {
            // The approval finds what the hub did not give.
            answer = self.record(s, cmd.clone());
        }
        let shelf_before = |g: Gtin| shelf.iter().find(|(x, _)| *x == g).map_or(0, |(_, n)| *n);
        if let (true, false, Ok(e)) = (held, lost, &answer) {
            // Once the hub answered (it holds nothing back here), an
            // override never finds a unit the shelf held.
            if let EventKind::Sale {
                override_: Some(ov),
                ..
            } = &e.kind
            {
                for f in &ov.shortfall {
                    let sold = e
                        .lines
                        .iter()
                        .filter(|l| l.gtin == f.gtin)
                        .map(|l| l.qty)
                        .sum::<u64>();
                    let beyond = sold.saturating_sub(shelf_before(f.gtin));
                    if f.units > beyond {
                        self.violation(format!(
                            "an override found {} units of {} with {beyond} beyond the shelf",
                            f.units, f.gtin
                        ));
                    }
                }
            }
        }
        if let Err(
            refusal @ Refusal::InsufficientStock {
                requested, on_hand, ..
            },
        ) = &answer
        {
            // Counted as lost, as the agent does once rights on demand ran
            // (what bounds the demand the hub acts on).
            if let (Some(reason), Command::Sale { lines, .. }) =
                (refusal.shortage(self.link_up(s)), &cmd)
            {
                let units = lines.iter().fold(0u64, |n, l| n.saturating_add(l.qty));
                self.stores[s].mem.lost.get_mut(reason).add_sale(units);
            }
            if on_hand >= requested {
                if asked {
                    self.report.refused_while_stocked_link_up += 1;
                } else {
                    self.report.refused_while_stocked_link_down += 1;
                }
            }
        }
        answer
    }

    pub(super) fn sale(&mut self, s: usize) {
        if !self.stores[s].sold_tags.is_empty() && self.rng.gen_bool(0.03) {
            return self.sell_sold_tag(s);
        }
        let tagged = !self.stores[s].shelf_tags.is_empty() && self.rng.gen_bool(0.3);
        let (gtin, qty, epc, tag_index) = if tagged {
            let i = self.rng.gen_range(0..self.stores[s].shelf_tags.len());
            let (gtin, epc) = self.stores[s].shelf_tags[i].clone();
            (gtin, 1, Some(epc), Some(i))
        } else {
            let qty = self.rng.gen_range(1..=3);
            (self.item(), qty, None, None)
        };
        // Now and then the cashier gives a (markdown) price, which a
        // manager approves; else the catalog's applies.
        let given = self.rng.gen_bool(0.1).then_some(PRICE - 20);
        let staff = match given {
            Some(_) => approved(s, "markdown"),
            None => cashier(s),
        };
        let resale = epc.as_ref().is_some_and(|epc| {
            self.stores[s]
                .mem
                .replica
                .epcs
                .get(epc)
                .is_some_and(|h| !h.returns.is_empty())
        });
        let id = self.event_id();
        let mut cmd = Command::Sale {
            id: Some(id),
            lines: vec![line(gtin, qty, given, epc.clone())],
            tenders: cash(qty, given.unwrap_or(PRICE)),
            staff,
        };
        let event = match self.record_with_rights(s, cmd.clone()) {
            Ok(event) => event,
            Err(Refusal::InsufficientStock { .. }) => {
                self.report.refused_sales += 1;
                // Sometimes the unit is in the cashier's hand all the same
                // (a miscount, a unit reserved online but taken from the
                // shelf) and a manager approves the sale: the till re-posts
                // it under the same id with the approval.
                if !self.rng.gen_bool(0.25) {
                    return;
                }
                // The re-post runs as the agent runs it: held while the
                // hub is asked for what the shelf holds.
                cmd = cmd.with_staff(approved(s, "unit on the shelf"));
                let asked_before = self.report.rights_requests;
                let reposted = self.record_with_rights(s, cmd);
                if self.report.rights_requests > asked_before {
                    self.report.overrides_asked += 1;
                }
                match reposted {
                    Ok(event) => {
                        let found: u64 = match &event.kind {
                            EventKind::Sale {
                                override_: Some(ov),
                                ..
                            } => ov.shortfall.iter().map(|x| x.units).sum(),
                            _ => 0,
                        };
                        self.report.overrides += 1;
                        self.report.override_units += found;
                        event
                    }
                    Err(e) => return self.violation(format!("override sale refused: {e}")),
                }
            }
            Err(other) => return self.violation(format!("sale refused unexpectedly: {other}")),
        };
        self.report.sales += 1;
        self.report.epc_resales += u64::from(resale);
        let st = &mut self.stores[s];
        *st.sold_units.entry(gtin).or_default() += qty;
        match (tag_index, epc) {
            (Some(i), Some(epc)) => {
                st.shelf_tags.swap_remove(i);
                st.sold_tags.push(SoldTag {
                    gtin,
                    epc,
                    sale: event.id,
                });
            }
            _ => {
                if st.sales.len() == REMEMBERED_SALES {
                    st.sales.remove(0);
                }
                st.sales.push(ReturnableSale {
                    id: event.id,
                    gtin,
                    left: qty,
                });
            }
        }
    }

    /// A tag that was sold here and not returned is scanned again (a
    /// cloned or mixed-up label): the command core must refuse it.
    fn sell_sold_tag(&mut self, s: usize) {
        let i = self.rng.gen_range(0..self.stores[s].sold_tags.len());
        let tag = self.stores[s].sold_tags[i].clone();
        let id = self.event_id();
        let cmd = Command::Sale {
            id: Some(id),
            lines: vec![line(tag.gtin, 1, None, Some(tag.epc.clone()))],
            tenders: cash(1, PRICE),
            staff: cashier(s),
        };
        match self.exec(s, &cmd) {
            Outcome::Refused {
                refusal: Refusal::AlreadySold { epc },
                ..
            } if epc == tag.epc => self.report.epc_refusals += 1,
            other => self.violation(format!("a sold tag sold again: {other:?}")),
        }
    }

    pub(super) fn receipt(&mut self, s: usize) {
        let gtin = self.item();
        let receipt_line = if self.rng.gen_bool(0.2) {
            let st = &mut self.stores[s];
            let mut bytes = [0u8; 12];
            bytes[0] = 0x30;
            bytes[1] = s as u8;
            bytes[4..].copy_from_slice(&st.next_tag.to_be_bytes());
            st.next_tag += 1;
            let Ok(epc) = Epc::from_bytes(&bytes) else {
                return;
            };
            st.shelf_tags.push((gtin, epc.clone()));
            ReceiptLine::tagged(gtin, epc)
        } else {
            let qty = self.rng.gen_range(1..=10);
            ReceiptLine::units(gtin, qty)
        };
        let id = self.event_id();
        let cmd = Command::Receipt {
            id: Some(id),
            lines: vec![receipt_line],
            staff: cashier(s),
        };
        if let Err(e) = self.record(s, cmd) {
            self.violation(format!("receipt refused: {e}"));
        }
    }

    /// A customer brings something back: a tagged unit with the sale that
    /// sold it (on the shelf again, so it can be sold again), units of an
    /// untagged sale named by its receipt (sometimes more than it left,
    /// which must be refused), or a unit without a receipt.
    pub(super) fn give_back(&mut self, s: usize) {
        let roll = self.rng.gen_range(0..10u32);
        if roll < 3 && !self.stores[s].sold_tags.is_empty() {
            self.return_tag(s);
        } else if roll < 8 && !self.stores[s].sales.is_empty() {
            self.return_against_sale(s);
        } else {
            self.return_without_receipt(s);
        }
    }

    fn return_tag(&mut self, s: usize) {
        let i = self.rng.gen_range(0..self.stores[s].sold_tags.len());
        let tag = self.stores[s].sold_tags[i].clone();
        let id = self.event_id();
        let cmd = Command::Return {
            id: Some(id),
            lines: vec![line(tag.gtin, 1, None, Some(tag.epc.clone()))],
            original_sale: Some(tag.sale),
            staff: cashier(s),
            checked: None,
        };
        if let Err(e) = self.record(s, cmd) {
            return self.violation(format!("tagged return refused: {e}"));
        }
        self.report.epc_returns += 1;
        self.report.returns_against_sales += 1;
        let st = &mut self.stores[s];
        if let Some(n) = st.sold_units.get_mut(&tag.gtin) {
            *n = n.saturating_sub(1);
        }
        st.sold_tags.swap_remove(i);
        st.shelf_tags.push((tag.gtin, tag.epc));
    }

    fn return_against_sale(&mut self, s: usize) {
        let i = self.rng.gen_range(0..self.stores[s].sales.len());
        let sale = self.stores[s].sales[i].clone();
        let beyond = self.rng.gen_bool(0.2);
        let qty = if beyond {
            sale.left + 1
        } else {
            self.rng.gen_range(1..=sale.left)
        };
        let id = self.event_id();
        let cmd = Command::Return {
            id: Some(id),
            lines: vec![line(sale.gtin, qty, None, None)],
            original_sale: Some(sale.id),
            staff: cashier(s),
            checked: None,
        };
        match (beyond, self.record(s, cmd)) {
            (false, Ok(event)) => {
                // Refunded at the sale's price, never above it.
                if event.lines.iter().any(|l| l.unit_price_minor > PRICE) {
                    self.violation(format!("return {} refunds above the sale", event.id));
                }
                self.report.returns_against_sales += 1;
                let st = &mut self.stores[s];
                if let Some(n) = st.sold_units.get_mut(&sale.gtin) {
                    *n = n.saturating_sub(qty);
                }
                st.sales[i].left -= qty;
                if st.sales[i].left == 0 {
                    st.sales.swap_remove(i);
                }
            }
            (
                true,
                Err(Refusal::ExceedsSale {
                    sale: named,
                    requested,
                    returnable,
                    ..
                }),
            ) if named == sale.id && requested == qty && returnable == sale.left => {
                self.report.refund_bound_refusals += 1;
            }
            (beyond, answer) => self.violation(format!(
                "return of {qty} against sale {} with {} left (beyond: {beyond}): {answer:?}",
                sale.id, sale.left
            )),
        }
    }

    fn return_without_receipt(&mut self, s: usize) {
        let sold: Vec<Gtin> = self.stores[s]
            .sold_units
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(g, _)| *g)
            .collect();
        let Some(&gtin) = sold.choose(&mut self.rng) else {
            return;
        };
        let id = self.event_id();
        let cmd = Command::Return {
            id: Some(id),
            lines: vec![line(gtin, 1, None, None)],
            original_sale: None,
            staff: cashier(s),
            checked: None,
        };
        // Refused until a manager approves it; then recorded under the
        // same id.
        match self.exec(s, &cmd) {
            Outcome::Refused {
                refusal: Refusal::ApprovalRequired(_),
                ..
            } => self.report.approvals_required += 1,
            other => return self.violation(format!("an unapproved refund: {other:?}")),
        }
        if let Err(e) = self.record(s, cmd.with_staff(approved(s, "no receipt"))) {
            return self.violation(format!("return refused: {e}"));
        }
        if let Some(n) = self.stores[s].sold_units.get_mut(&gtin) {
            *n = n.saturating_sub(1);
        }
    }

    pub(super) fn count(&mut self, s: usize) {
        let gtin = self.item();
        let on_hand = self.stores[s].mem.on_hand(gtin);
        let counted = (on_hand + self.rng.gen_range(0..3)).saturating_sub(self.rng.gen_range(0..3));
        let id = self.event_id();
        let cmd = Command::Count {
            id: Some(id),
            gtin,
            counted,
            staff: cashier(s),
        };
        if let Err(e) = self.record(s, cmd) {
            self.violation(format!("count refused: {e}"));
        }
    }

    /// An RFID count session (`crate::cycle_count`, the code the agent
    /// runs) over 1–3 items: the tags on the shelf (the store's units, a
    /// few missing or found), each read 1–5 times in any order, amid tags
    /// with no GTIN and tags of items off the list. The session must count
    /// each tag once (`count_distinct`); its variance against the store's
    /// records is accepted as `Command::Count`s, and accepting again (a
    /// retry under the same ids) records nothing.
    pub(super) fn rfid_count(&mut self, s: usize) {
        use crate::cycle_count::{self, CountSession, Recorded};
        use std::collections::{BTreeMap, BTreeSet, HashSet};

        let listed: BTreeSet<Gtin> = (0..self.rng.gen_range(1..=3))
            .map(|_| self.item())
            .collect();
        let mut session = CountSession::new(
            format!("sim-{}", self.step),
            None,
            Some(listed.clone()),
            cashier(s),
            self.now_ms,
        );
        // Tags: (item, serial); `None` for tags that carry no GTIN.
        let mut tags: Vec<(Option<Gtin>, u64)> = Vec::new();
        for &g in &listed {
            let on_hand = self.stores[s].mem.on_hand(g);
            let shelf =
                (on_hand + self.rng.gen_range(0..3)).saturating_sub(self.rng.gen_range(0..3));
            tags.extend((0..shelf).map(|n| (Some(g), n)));
        }
        let off_list = self.item();
        if !listed.contains(&off_list) {
            tags.push((Some(off_list), 0));
        }
        tags.extend((0..self.rng.gen_range(0..3)).map(|n| (None, n)));
        let mut reads = Vec::new();
        for t in &tags {
            for _ in 0..self.rng.gen_range(1..=5) {
                reads.push(*t);
            }
        }
        reads.shuffle(&mut self.rng);
        let mut seen = HashSet::new();
        let mut counted: BTreeMap<Gtin, u64> = BTreeMap::new();
        for tag in &reads {
            if let Recorded::Counted(g) =
                cycle_count::record(&mut session, !seen.insert(*tag), tag.0)
            {
                *counted.entry(g).or_default() += 1;
            }
        }
        if session.tags != tags.len() as u64 || session.reads != reads.len() as u64 {
            return self.violation(format!(
                "count_distinct: {} tags read {} times, session counted {} tags of {} reads",
                tags.len(),
                reads.len(),
                session.tags,
                session.reads
            ));
        }
        let expected: BTreeMap<Gtin, u64> = listed
            .iter()
            .map(|&g| (g, self.stores[s].mem.on_hand(g)))
            .collect();
        let lines = cycle_count::variance(session.scope(), &expected, &counted);
        let mut accepted = Vec::new();
        for (gtin, units) in cycle_count::adjustments(&lines) {
            let cmd = Command::Count {
                id: Some(self.event_id()),
                gtin,
                counted: units,
                staff: cashier(s),
            };
            if let Err(e) = self.record(s, cmd.clone()) {
                return self.violation(format!("RFID count adjustment refused: {e}"));
            }
            accepted.push(cmd);
        }
        for cmd in accepted {
            if !matches!(self.exec(s, &cmd), Outcome::Recorded { new: false, .. }) {
                return self.violation("an accepted count recorded twice".into());
            }
        }
        self.report.rfid_counts += 1;
        self.report.rfid_count_tags += session.tags;
    }

    /// A till re-posts the last command it recorded: as it was (its answer
    /// was lost), which must return the recorded event and change nothing,
    /// or changed (a bug or a reused id), which must be refused.
    pub(super) fn retry(&mut self, s: usize) {
        let Some(cmd) = self.stores[s].last.clone() else {
            return;
        };
        let Some(id) = cmd.id() else {
            return;
        };
        let mem = &self.stores[s].mem;
        let before = (
            mem.outbox.len(),
            mem.replica.inventory.version(),
            mem.replica.journal.len(),
        );
        if self.rng.gen_bool(0.5) {
            match self.exec(s, &cmd) {
                Outcome::Recorded { event, new: false } if event.id == id => {
                    self.report.retries += 1;
                }
                other => return self.violation(format!("retry of {id}: {other:?}")),
            }
        } else {
            let changed = more_of_the_first_line(cmd);
            match self.exec(s, &changed) {
                Outcome::Refused {
                    refusal: Refusal::Invalid(why),
                    ..
                } if why.contains("already recorded as a different") => {
                    self.report.retry_mismatches += 1;
                }
                other => return self.violation(format!("changed retry of {id}: {other:?}")),
            }
        }
        let mem = &self.stores[s].mem;
        let after = (
            mem.outbox.len(),
            mem.replica.inventory.version(),
            mem.replica.journal.len(),
        );
        if before != after {
            self.violation(format!("a retry of {id} changed the store"));
        }
    }
}

/// The same command asking for one unit more on its first line.
fn more_of_the_first_line(mut cmd: Command) -> Command {
    match &mut cmd {
        Command::Sale { lines, .. } | Command::Return { lines, .. } => {
            if let Some(l) = lines.first_mut() {
                l.qty += 1;
            }
        }
        Command::Receipt { lines, .. } => {
            if let Some(l) = lines.first_mut() {
                l.qty += 1;
            }
        }
        Command::Count { counted, .. } => *counted += 1,
        Command::Fulfil { order_id, .. } => order_id.push('x'),
        Command::TransferOut { lines, .. } => {
            if let Some(l) = lines.first_mut() {
                l.qty += 1;
            }
        }
        Command::TransferIn { transfer_id, .. } => transfer_id.push('x'),
    }
    cmd
}
