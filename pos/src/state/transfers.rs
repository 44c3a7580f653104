//! Transfers from other stores (issue 22): the Transfers screen (F11 from
//! an empty basket) lists the transfers in transit to this store (and,
//! read-only, the ones it sent that are still on their way), fetched page
//! by page and refreshed on a key or every few seconds. The cashier
//! selects one (Up/Down, or scans or types its id: one not on the list is
//! looked up) and F5 receives it: `POST /v1/transfers/{id}/received`
//! under an event id made before the first POST and kept until the agent
//! answers, so a retry after a timeout is the same receipt. A refusal
//! (404: the hub's page naming it has not arrived yet; 409
//! `transfer_received`: received already; 422: addressed to another
//! store) is shown with what to do, and nothing was recorded.

use tally_agent_api::{
    ApiError, TransferList, TransferReceivedRequest, TransferRecorded, TransferView,
};
use tally_sync::transfer::TransferStatus;
use tally_sync::{EventId, Refusal};

use super::{Dialog, Effect, Env, Key, Level, Listing, PosState, Screen, MAX_LISTED};
use crate::scan::{self, ScanError, Scanned};

/// A receipt of a transfer, as posted (and re-posted unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receive {
    /// The transfer.
    pub transfer_id: String,
    /// The body: the event id, who, the till.
    pub body: TransferReceivedRequest,
}

/// Why the agent did not record a receipt, or does not know a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferWhy {
    /// 404: this store has not heard of the transfer (yet: the hub's page
    /// naming it has not arrived).
    NotHere,
    /// 409 `transfer_received`: it was received already.
    Received,
    /// This store sent it: there is nothing to receive here.
    Outbound {
        /// Where it goes.
        to_store: String,
    },
    /// 422 (addressed to another store, …) or another definite failure,
    /// as the agent said.
    Other(String),
}

/// The dialog of a refused receipt or an unknown transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRefused {
    /// The transfer.
    pub transfer_id: String,
    /// Whether a receipt was posted (else it was a look-up).
    pub posted: bool,
    /// Why.
    pub why: TransferWhy,
}

/// The store's transfers as the terminal knows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transfers {
    /// In transit: inbound ones first (by id), then outbound (by id).
    pub list: Vec<TransferView>,
    /// Whether the list is being fetched.
    pub listing: Listing,
    /// The agent has more transfers in transit than [`MAX_LISTED`].
    pub truncated: bool,
    /// Pages of a listing in progress.
    incoming: Vec<TransferView>,
    /// The selected inbound transfer.
    pub selected: Option<String>,
    /// A transfer id looked up (scanned or typed, not on the list).
    pub looking: Option<String>,
    /// The receipt posted and not yet answered, or in doubt.
    pub receiving: Option<Receive>,
    /// Whether the receipt's outcome is unknown (retry it or drop it).
    pub in_doubt: bool,
}

/// Whether `t` is sent to this store and not received yet.
pub fn receivable(t: &TransferView) -> bool {
    t.direction == "in" && t.status == TransferStatus::InTransit
}

/// Units on a transfer.
pub fn units(t: &TransferView) -> u64 {
    t.lines.iter().fold(0u64, |n, l| n.saturating_add(l.qty))
}

impl Transfers {
    /// The selected transfer.
    pub fn selected_transfer(&self) -> Option<&TransferView> {
        let id = self.selected.as_deref()?;
        self.list.iter().find(|t| t.transfer_id == id)
    }

    /// The index of the selected transfer in the list.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_deref()?;
        self.list.iter().position(|t| t.transfer_id == id)
    }

    /// The inbound transfers in transit (the ones that can be selected).
    pub fn inbound(&self) -> impl Iterator<Item = &TransferView> {
        self.list.iter().filter(|t| receivable(t))
    }

    /// Inbound first, then outbound; each by id.
    fn sort(list: &mut [TransferView]) {
        list.sort_by(|a, b| {
            (!receivable(a), &a.transfer_id).cmp(&(!receivable(b), &b.transfer_id))
        });
    }
}

impl PosState {
    /// F11 (or Ctrl-T) from the basket: the Transfers screen, fetched.
    pub(super) fn open_transfers(&mut self) -> Vec<Effect> {
        if self.basket_open() {
            self.notify(
                Level::Error,
                "Finish or discard (F8) the open basket first.",
            );
            return Vec::new();
        }
        self.screen = Screen::Transfers;
        self.input.clear();
        self.notify(
            Level::Info,
            "Transfers: select one sent to this store (or scan its id), then F5 receives it.",
        );
        self.list_transfers()
    }

    /// Fetches the transfers in transit from the first page (unless a
    /// fetch is on).
    pub(super) fn list_transfers(&mut self) -> Vec<Effect> {
        if matches!(self.transfers.listing, Listing::Loading { .. }) {
            return Vec::new();
        }
        self.transfers.incoming.clear();
        self.transfers.listing = Listing::Loading {
            after: String::new(),
        };
        vec![Effect::ListTransfers {
            after: String::new(),
        }]
    }

    /// The list again once the agent answers, if it failed.
    pub(super) fn transfers_to_retry(&mut self) -> Vec<Effect> {
        if self.screen == Screen::Transfers && matches!(self.transfers.listing, Listing::Failed(_))
        {
            return self.list_transfers();
        }
        Vec::new()
    }

    /// Whether a receipt in flight or in doubt stops another (says so).
    pub(super) fn receipt_blocks(&mut self) -> bool {
        let Some(r) = &self.transfers.receiving else {
            return false;
        };
        let text = if self.transfers.in_doubt {
            format!(
                "Transfer {} may have been received: F5 retries it (same id), F8 drops it.",
                r.transfer_id
            )
        } else {
            format!(
                "Waiting for the agent to record transfer {} as received.",
                r.transfer_id
            )
        };
        self.notify(Level::Error, text);
        true
    }

    /// A page of the list: the next one is asked for, or the list is
    /// complete and replaces the one shown.
    pub(super) fn transfers_answer(
        &mut self,
        after: &str,
        result: Result<TransferList, ApiError>,
    ) -> Vec<Effect> {
        if !matches!(&self.transfers.listing, Listing::Loading { after: a } if a == after) {
            return Vec::new();
        }
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                self.note_failure(&e);
                self.transfers.incoming.clear();
                self.transfers.listing = Listing::Failed(e.to_string());
                return Vec::new();
            }
        };
        let more = !page.transfers.is_empty();
        self.transfers.incoming.extend(page.transfers);
        let next = page.next.filter(|n| more && !n.is_empty() && n != after);
        if let Some(next) = next.clone() {
            if self.transfers.incoming.len() < MAX_LISTED {
                self.transfers.listing = Listing::Loading {
                    after: next.clone(),
                };
                return vec![Effect::ListTransfers { after: next }];
            }
        }
        let mut list = std::mem::take(&mut self.transfers.incoming);
        self.transfers.truncated = next.is_some() || list.len() > MAX_LISTED;
        list.truncate(MAX_LISTED);
        Transfers::sort(&mut list);
        self.transfers.list = list;
        self.transfers.listing = Listing::Loaded;
        let still = self.transfers.selected_transfer().is_some_and(receivable);
        if !still {
            let first = self
                .transfers
                .inbound()
                .next()
                .map(|t| t.transfer_id.clone());
            self.transfers.selected = first;
        }
        Vec::new()
    }

    /// A key on the Transfers screen with no dialog open.
    pub(super) fn transfers_key(&mut self, key: Key, env: &Env) -> Vec<Effect> {
        if self.typed(key) {
            return Vec::new();
        }
        match key {
            Key::Esc => {
                if self.receipt_blocks() {
                    return Vec::new();
                }
                self.screen = Screen::Basket;
                self.input.clear();
                self.notify(Level::Info, "Back to the basket.");
                Vec::new()
            }
            Key::Up | Key::Down => {
                let ids: Vec<String> = self
                    .transfers
                    .inbound()
                    .map(|t| t.transfer_id.clone())
                    .collect();
                if !ids.is_empty() {
                    let i = self
                        .transfers
                        .selected
                        .as_ref()
                        .and_then(|s| ids.iter().position(|id| id == s))
                        .unwrap_or(0);
                    let i = if key == Key::Up {
                        i.saturating_sub(1)
                    } else {
                        (i + 1).min(ids.len() - 1)
                    };
                    self.transfers.selected = ids.get(i).cloned();
                }
                Vec::new()
            }
            Key::Enter if !self.input.trim().is_empty() => {
                let text = std::mem::take(&mut self.input);
                let scan = scan::from_typed(&text, &self.rcn_layouts);
                self.transfer_scan(scan)
            }
            Key::Enter => {
                self.notify(
                    Level::Info,
                    "Select a transfer (Up/Down, or scan its id), then F5 receives it.",
                );
                Vec::new()
            }
            Key::F(5) | Key::Ctrl('p') if self.transfers.in_doubt => self.resend_receipt(),
            Key::F(5) | Key::Ctrl('p') => self.receive_selected(env),
            Key::F(8) | Key::Ctrl('n') if self.transfers.in_doubt => self.drop_receipt(),
            Key::F(11) | Key::Ctrl('t') => {
                self.notify(Level::Info, "Refreshing the transfers…");
                self.list_transfers()
            }
            _ => Vec::new(),
        }
    }

    /// A scan (or a typed code) on the Transfers screen: the transfer it
    /// names is selected (looked up when not on the list).
    pub(super) fn transfer_scan(&mut self, scan: Result<Scanned, ScanError>) -> Vec<Effect> {
        if self.dialog.is_some() {
            self.notify(Level::Error, "Scan ignored: close the dialog first (Esc).");
            return Vec::new();
        }
        let raw = match &scan {
            Ok(s) => s.raw.as_str(),
            Err(e) => e.raw(),
        };
        let Some(id) = scan::order_id(raw) else {
            self.notify(
                Level::Error,
                format!("{raw:?} is not a transfer id (1 to 128 characters, no spaces)."),
            );
            return Vec::new();
        };
        if self.receipt_blocks() {
            return Vec::new();
        }
        if let Some(t) = self.transfers.list.iter().find(|t| t.transfer_id == id) {
            if receivable(t) {
                self.transfers.selected = Some(id.clone());
                self.notify(
                    Level::Info,
                    format!(
                        "Transfer {id} from {}: check the goods, then F5 receives it.",
                        t.from_store
                    ),
                );
            } else {
                self.notify(
                    Level::Error,
                    format!(
                        "Transfer {id} was sent BY this store to {}: nothing to receive here.",
                        t.to_store
                    ),
                );
            }
            return Vec::new();
        }
        self.transfers.looking = Some(id.clone());
        self.notify(Level::Info, format!("Looking up transfer {id}…"));
        vec![Effect::LookupTransfer(id)]
    }

    /// The agent's answer to a look-up of a transfer not on the list.
    pub(super) fn transfer_answer(
        &mut self,
        transfer_id: &str,
        result: Result<TransferView, ApiError>,
    ) -> Vec<Effect> {
        if self.transfers.looking.as_deref() != Some(transfer_id) {
            return Vec::new();
        }
        self.transfers.looking = None;
        let refused = |why| {
            Dialog::TransferRefused(TransferRefused {
                transfer_id: transfer_id.to_string(),
                posted: false,
                why,
            })
        };
        match result {
            Ok(t) if receivable(&t) => {
                let from = t.from_store.to_string();
                self.transfers.list.retain(|x| x.transfer_id != transfer_id);
                self.transfers.list.push(t);
                Transfers::sort(&mut self.transfers.list);
                self.transfers.selected = Some(transfer_id.to_string());
                self.notify(
                    Level::Info,
                    format!(
                        "Transfer {transfer_id} from {from}: check the goods, then F5 receives it."
                    ),
                );
            }
            Ok(t) if t.status == TransferStatus::Received => {
                self.notice = None;
                self.dialog = Some(refused(TransferWhy::Received));
            }
            Ok(t) => {
                self.notice = None;
                self.dialog = Some(refused(TransferWhy::Outbound {
                    to_store: t.to_store.to_string(),
                }));
            }
            Err(e) if e.outcome_unknown() => {
                self.note_failure(&e);
                self.notify(
                    Level::Error,
                    format!("Transfer {transfer_id} could not be looked up: {e}. Scan it again."),
                );
            }
            Err(e) => {
                self.notice = None;
                self.dialog = Some(refused(why_of(e)));
            }
        }
        Vec::new()
    }

    /// F5: receive the selected transfer under a fresh event id.
    fn receive_selected(&mut self, env: &Env) -> Vec<Effect> {
        if self.receipt_blocks() {
            return Vec::new();
        }
        let Some(t) = self.transfers.selected_transfer() else {
            self.notify(
                Level::Error,
                "No transfer selected: none is on its way to this store (F11 refreshes).",
            );
            return Vec::new();
        };
        if !receivable(t) {
            let id = t.transfer_id.clone();
            self.notify(
                Level::Error,
                format!("Transfer {id} is not on its way to this store: nothing to receive."),
            );
            return Vec::new();
        }
        let r = Receive {
            transfer_id: t.transfer_id.clone(),
            body: TransferReceivedRequest {
                event_id: Some(env.fresh_id),
                cashier: Some(self.cashier.clone()),
                till: self.till.clone(),
            },
        };
        self.send_receipt(r)
    }

    /// Posts `r` (again: the same id and body) and waits for its answer.
    fn send_receipt(&mut self, r: Receive) -> Vec<Effect> {
        self.transfers.receiving = Some(r.clone());
        self.transfers.in_doubt = false;
        self.dialog = Some(Dialog::Sending);
        vec![Effect::ReceiveTransfer(r)]
    }

    /// F5 with a receipt in doubt: the very same request again.
    pub(super) fn resend_receipt(&mut self) -> Vec<Effect> {
        match self.transfers.receiving.clone() {
            Some(r) => self.send_receipt(r),
            None => {
                self.transfers.in_doubt = false;
                Vec::new()
            }
        }
    }

    /// F8 with a receipt in doubt: forget it (it may have been recorded;
    /// the list shows whether the transfer is still on its way).
    pub(super) fn drop_receipt(&mut self) -> Vec<Effect> {
        let Some(r) = self.transfers.receiving.take() else {
            return Vec::new();
        };
        self.transfers.in_doubt = false;
        self.notify(
            Level::Error,
            format!(
                "Dropped: transfer {} may or may not be received; the list shows whether it is still on its way.",
                r.transfer_id
            ),
        );
        self.list_transfers()
    }

    /// The agent's answer to a receipt.
    pub(super) fn transfer_received(
        &mut self,
        transfer_id: &str,
        event_id: Option<EventId>,
        result: Result<TransferRecorded, ApiError>,
    ) -> Vec<Effect> {
        let Some(r) = self.transfers.receiving.clone() else {
            return Vec::new();
        };
        if r.transfer_id != transfer_id || r.body.event_id != event_id {
            return Vec::new();
        }
        if matches!(self.dialog, Some(Dialog::Sending)) {
            self.dialog = None;
        }
        match result {
            Ok(recorded) => {
                self.transfers.receiving = None;
                self.transfers.in_doubt = false;
                self.notify(
                    Level::Info,
                    format!(
                        "Transfer {transfer_id} from {} received: {} unit{} added to this store's stock.",
                        recorded.store,
                        recorded.units,
                        if recorded.units == 1 { "" } else { "s" }
                    ),
                );
                self.list_transfers()
            }
            Err(e) => {
                self.note_failure(&e);
                if e.outcome_unknown() {
                    self.transfers.in_doubt = true;
                    self.dialog = Some(Dialog::ReceiptInDoubt {
                        error: e.to_string(),
                    });
                    return Vec::new();
                }
                self.transfers.receiving = None;
                self.transfers.in_doubt = false;
                self.notice = None;
                self.dialog = Some(Dialog::TransferRefused(TransferRefused {
                    transfer_id: transfer_id.to_string(),
                    posted: true,
                    why: why_of(e),
                }));
                self.list_transfers()
            }
        }
    }

    /// The not-confirmed dialog of a receipt: retry (same id and body),
    /// back, or drop it.
    pub(super) fn receipt_in_doubt_key(&mut self, error: String, key: Key) -> Vec<Effect> {
        match key {
            Key::Char('r' | 'R') | Key::Enter | Key::F(5) => self.resend_receipt(),
            Key::Esc => {
                self.receipt_blocks();
                Vec::new()
            }
            Key::F(8) => self.drop_receipt(),
            _ => self.show(Dialog::ReceiptInDoubt { error }),
        }
    }

    /// A refused receipt or an unknown transfer: Esc or Enter close it.
    pub(super) fn transfer_refused_key(
        &mut self,
        refused: TransferRefused,
        key: Key,
    ) -> Vec<Effect> {
        match key {
            Key::Esc | Key::Enter => Vec::new(),
            _ => self.show(Dialog::TransferRefused(refused)),
        }
    }
}

/// What a definite failure about a transfer tells the cashier.
fn why_of(e: ApiError) -> TransferWhy {
    match e {
        ApiError::NotFound | ApiError::Refused(Refusal::UnknownTransfer(_)) => TransferWhy::NotHere,
        ApiError::Refused(Refusal::TransferReceived(_)) => TransferWhy::Received,
        ApiError::Conflict(body) if body.error == "transfer_received" => TransferWhy::Received,
        ApiError::Refused(Refusal::Invalid(message)) | ApiError::Invalid { message, .. } => {
            TransferWhy::Other(message)
        }
        other => TransferWhy::Other(other.to_string()),
    }
}
