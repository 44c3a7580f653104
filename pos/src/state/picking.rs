//! Picking: the pick list's keys (select an order, refresh, mark picked)
//! and its scans. A scan of an order's barcode selects that order; a scan
//! of an item (the same decoding as the basket's: GTINs, AIM prefixes,
//! GS1 element strings, tags) checks off a unit of the selected order's
//! line for that item ([`Pick::check_off`]). An item not in the order, a
//! unit beyond the line's quantity or a tag counted already is a warning
//! and is not counted. The scan that completes the last line posts
//! `picked`, once; F5 marks an order picked by hand (asking first when
//! units are missing).

use std::collections::BTreeSet;

use tally_agent_api::OrderView;
use tally_sync::fulfilment::Status;

use super::{Dialog, Effect, Env, Key, Level, PosState, Screen};
use crate::scan::{self, ScanError, Scanned};

/// The units counted towards one order's lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pick {
    /// Units counted, per line of the order (same index).
    pub counted: Vec<u64>,
    /// Tags counted (a tag counts once).
    pub tags: BTreeSet<String>,
}

/// What a scanned item did to a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOff {
    /// Counted on `line`: now `counted` of `qty`.
    Counted {
        /// The order's line.
        line: usize,
        /// Units counted on it now.
        counted: u64,
        /// Units it asks for.
        qty: u64,
    },
    /// Every line of this item is complete: not counted.
    Enough {
        /// The (first) line of the item.
        line: usize,
        /// Units it asks for.
        qty: u64,
    },
    /// The order has no line of this item: not counted.
    NotInOrder,
    /// This tag was counted already: not counted again.
    TagAgain,
}

impl Pick {
    /// Nothing counted yet towards `order`.
    pub fn new(order: &OrderView) -> Self {
        Pick {
            counted: vec![0; order.lines.len()],
            tags: BTreeSet::new(),
        }
    }

    /// Units counted on line `i`.
    pub fn on_line(&self, i: usize) -> u64 {
        self.counted.get(i).copied().unwrap_or(0)
    }

    /// Counts one unit of `gtin` (with its tag, if any) towards `order`:
    /// on the first of its lines not yet complete. Never beyond a line's
    /// quantity.
    pub fn check_off(&mut self, order: &OrderView, gtin: &str, epc: Option<&str>) -> CheckOff {
        if self.counted.len() != order.lines.len() {
            self.counted.resize(order.lines.len(), 0);
        }
        if epc.is_some_and(|t| self.tags.contains(t)) {
            return CheckOff::TagAgain;
        }
        let mut enough = None;
        for (i, line) in order.lines.iter().enumerate() {
            if line.gtin.to_string() != gtin {
                continue;
            }
            let Some(counted) = self.counted.get_mut(i) else {
                continue;
            };
            if *counted < line.qty {
                *counted += 1;
                if let Some(t) = epc {
                    self.tags.insert(t.to_string());
                }
                return CheckOff::Counted {
                    line: i,
                    counted: *counted,
                    qty: line.qty,
                };
            }
            enough.get_or_insert(CheckOff::Enough {
                line: i,
                qty: line.qty,
            });
        }
        enough.unwrap_or(CheckOff::NotInOrder)
    }

    /// Whether every line of `order` is counted in full.
    pub fn complete(&self, order: &OrderView) -> bool {
        order
            .lines
            .iter()
            .enumerate()
            .all(|(i, l)| self.on_line(i) >= l.qty)
    }

    /// Units counted and units the order asks for.
    pub fn units(&self, order: &OrderView) -> (u64, u64) {
        order
            .lines
            .iter()
            .enumerate()
            .fold((0u64, 0u64), |(done, all), (i, l)| {
                (
                    done.saturating_add(self.on_line(i).min(l.qty)),
                    all.saturating_add(l.qty),
                )
            })
    }
}

/// An order line's item as the screens name it.
pub fn line_name(order: &OrderView, i: usize) -> String {
    match order.lines.get(i) {
        Some(l) => l.name.clone().unwrap_or_else(|| l.gtin.to_string()),
        None => String::new(),
    }
}

impl PosState {
    /// The pick of `order_id` (nothing counted when none started).
    pub fn pick_of(&self, order: &OrderView) -> Pick {
        self.orders
            .picks
            .get(&order.order_id)
            .cloned()
            .unwrap_or_else(|| Pick::new(order))
    }

    /// A key on the pick list with no dialog open.
    pub(super) fn pick_list_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if self.typed(key) {
            return Vec::new();
        }
        match key {
            Key::Esc => self.leave_orders(),
            Key::Up | Key::Down => {
                let n = self.orders.list.len();
                if n > 0 {
                    let i = self.orders.selected_index().unwrap_or(0);
                    let i = if key == Key::Up {
                        i.saturating_sub(1)
                    } else {
                        (i + 1).min(n - 1)
                    };
                    self.orders.selected = self.orders.list.get(i).map(|o| o.order_id.clone());
                }
                Vec::new()
            }
            Key::Enter if !self.input.trim().is_empty() => {
                let text = std::mem::take(&mut self.input);
                let scan = scan::from_typed(&text, &self.rcn_layouts);
                self.pick_scan(scan, env)
            }
            Key::Enter => {
                self.notify(
                    Level::Info,
                    "Scan the selected order's items (F5 marks it picked by hand).",
                );
                Vec::new()
            }
            Key::F(5) | Key::Ctrl('p') if self.orders.in_doubt => self.resend_move(),
            Key::F(5) | Key::Ctrl('p') => self.mark_picked(env),
            Key::F(8) | Key::Ctrl('n') if self.orders.in_doubt => self.drop_move(),
            Key::F(8) | Key::Ctrl('n') => {
                if let Some(id) = self.orders.selected.clone() {
                    if self.orders.picks.remove(&id).is_some() {
                        self.notify(Level::Info, format!("Scans of order {id} cleared."));
                    }
                }
                Vec::new()
            }
            Key::F(9) | Key::Ctrl('o') => {
                self.notify(Level::Info, "Refreshing the pick list…");
                self.list_orders()
            }
            Key::F(12) | Key::Ctrl('u') => {
                if self.move_blocks() {
                    return Vec::new();
                }
                self.switch_screen(Screen::Pickup)
            }
            _ => Vec::new(),
        }
    }

    /// A scan (or a typed code) on the pick list.
    pub(super) fn pick_scan(&mut self, scan: Result<Scanned, ScanError>, env: &Env) -> Vec<Effect> {
        if self.dialog.is_some() {
            self.notify(Level::Error, "Scan ignored: close the dialog first (Esc).");
            return Vec::new();
        }
        let raw = match &scan {
            Ok(s) => s.raw.clone(),
            Err(e) => e.raw().to_string(),
        };
        // An order's barcode selects it (before an item's reading: an
        // order id may be all digits).
        let id = scan::order_id(&raw);
        if let Some(id) = &id {
            if self.orders.list.iter().any(|o| &o.order_id == id) {
                self.orders.selected = Some(id.clone());
                self.notify(Level::Info, format!("Order {id}: scan its items."));
                return Vec::new();
            }
        }
        // Digits that do not decode are a misread item more likely than
        // an order: the decoder says why.
        let digits = raw.trim().bytes().all(|b| b.is_ascii_digit());
        let s = match (scan, id) {
            (Ok(s), _) => s,
            (Err(ScanError::NoGtin { .. }), Some(id))
            | (Err(ScanError::Barcode { .. }), Some(id))
                if !digits =>
            {
                self.notify(
                    Level::Error,
                    format!("No open order {id} on the pick list (F9 refreshes it)."),
                );
                return Vec::new();
            }
            (Err(e), _) => {
                self.notify(Level::Error, e.to_string());
                return Vec::new();
            }
        };
        let Some(order) = self.orders.selected_order().cloned() else {
            self.notify(
                Level::Error,
                "No order selected: the pick list has no open order (F9 refreshes it).",
            );
            return Vec::new();
        };
        if order.status != Status::Allocated {
            self.notify(
                Level::Error,
                format!(
                    "Order {} is {} already: nothing to pick. Not counted.",
                    order.order_id,
                    order.status.name()
                ),
            );
            return Vec::new();
        }
        if self.move_blocks() {
            return Vec::new();
        }
        let pick = self
            .orders
            .picks
            .entry(order.order_id.clone())
            .or_insert_with(|| Pick::new(&order));
        let checked = pick.check_off(&order, &s.gtin, s.epc.as_deref());
        let complete = pick.complete(&order);
        let (done, all) = pick.units(&order);
        let id = &order.order_id;
        match checked {
            CheckOff::Counted { line, counted, qty } => {
                let name = line_name(&order, line);
                if complete {
                    self.notify(
                        Level::Info,
                        format!("{name}: {counted} of {qty}. All {all} units of order {id} scanned: recording it as picked."),
                    );
                    return self.post_move(id, Status::Picked, env);
                }
                self.notify(
                    Level::Info,
                    format!("{name}: {counted} of {qty} (order {id}: {done} of {all} units)."),
                );
            }
            CheckOff::Enough { line, qty } => self.notify(
                Level::Error,
                format!(
                    "{}: order {id} needs only {qty}. This one is NOT counted: put it back.",
                    line_name(&order, line)
                ),
            ),
            CheckOff::NotInOrder => self.notify(
                Level::Error,
                format!(
                    "Item {} is NOT in order {id}: not counted, put it back.",
                    s.gtin
                ),
            ),
            CheckOff::TagAgain => self.notify(
                Level::Error,
                format!(
                    "Tag {} was counted already for order {id}: not counted again.",
                    s.epc.unwrap_or_default()
                ),
            ),
        }
        Vec::new()
    }

    /// F5 on the pick list: mark the selected order picked (asking first
    /// when not every unit was scanned).
    fn mark_picked(&mut self, env: &Env) -> Vec<Effect> {
        let Some(order) = self.orders.selected_order().cloned() else {
            self.notify(Level::Error, "No order selected.");
            return Vec::new();
        };
        if order.status != Status::Allocated {
            self.notify(
                Level::Error,
                format!(
                    "Order {} is {} already.",
                    order.order_id,
                    order.status.name()
                ),
            );
            return Vec::new();
        }
        if self.move_blocks() {
            return Vec::new();
        }
        if self.pick_of(&order).complete(&order) {
            return self.post_move(&order.order_id, Status::Picked, env);
        }
        self.show(Dialog::ConfirmPicked {
            order_id: order.order_id,
        })
    }

    /// The mark-picked question: `Y` (or Enter) posts `picked`.
    pub(super) fn confirm_picked_key(
        &mut self,
        order_id: String,
        key: Key,
        env: &Env,
    ) -> Vec<Effect> {
        match key {
            Key::Char('y' | 'Y') | Key::Enter => self.post_move(&order_id, Status::Picked, env),
            _ => Vec::new(),
        }
    }
}
