//! The receiving portal: an RFID reader wired to the agent receives one
//! unit per newly seen SGTIN tag (SGTIN-96 or SGTIN-198), once while the unit is on hand (see
//! the design constraints of [`crate::devices`]). What a tag does is
//! decided purely ([`tag_plan`], [`transfer_plan`], ids from
//! [`crate::event_ids`]); the reader's task turns
//! each tag into a one-line receipt through the committer and counts how
//! it ended (`tally_agent_device_tags_total{outcome}`). A tag on a
//! transfer sent to this store and still in transit receives the whole
//! transfer instead ([`transfer_plan`]); its other tags are then on hand.

use tally_hardware::driver::rfid::RfidEvent;
use tally_hardware::driver::DriverHandle;
use tally_hardware::epc as epc_codec;
use tally_sync::command::{Command, Outcome, ReceiptLine};
use tally_sync::epcs::EpcSummary;
use tally_sync::transfer::{Transfer, TransferStatus};
use tally_sync::{Epc, EventId, Gtin};
use tokio::sync::{mpsc, watch};

use super::wiring::{drive, status, submit};
use super::DeviceContext;
use crate::event_ids::EventIds;

/// What to do with a tag the reader reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPlan {
    /// Receive one unit of `gtin` under `id` (a re-read gets the same id).
    Receive {
        /// The item.
        gtin: Gtin,
        /// The receipt's id.
        id: EventId,
        /// How many sales of this EPC are recorded.
        generation: u64,
    },
    /// The tag is on a transfer sent to this store and still in transit:
    /// receive the whole transfer (its units, as sent) under `id`.
    ReceiveTransfer {
        /// The transfer.
        transfer_id: String,
        /// The receipt's event id (every tag of the transfer computes the
        /// same one).
        id: EventId,
    },
    /// Sold and returned, or arrived with a transfer received already:
    /// the unit is on hand, nothing to receive.
    OnHand,
    /// Received here already and held since: a re-read, nothing to
    /// receive.
    AlreadyReceived,
    /// Not an SGTIN (an SSCC pallet tag, an asset tag, another scheme):
    /// no item to receive; the EPC is logged as read, raw.
    NotAnItem {
        /// The scheme, e.g. `sscc-96`, or the decoding error.
        scheme: String,
    },
}

/// Decides what a tag does at `store` (pure) from the summary of its
/// sales and returns here (fixed-size: a read of one row, however often
/// the tag was sold) and whether the unit is held here (`held_here`:
/// received and not sent out since): see [`crate::devices`]'s design
/// constraints. A unit held here is never received again, whatever id a
/// receipt of it would take (ids derived before the store's secret
/// existed differ from those derived after).
pub fn tag_plan(
    ids: &EventIds,
    epc: &Epc,
    summary: Option<&EpcSummary>,
    held_here: bool,
) -> TagPlan {
    let decoded = match epc_codec::decode(epc) {
        Ok(d) => d,
        Err(e) => {
            return TagPlan::NotAnItem {
                scheme: e.to_string(),
            }
        }
    };
    // SGTIN-96 and SGTIN-198 tags are units of their GTIN; any other
    // scheme is no item.
    let Some(gtin) = decoded.gtin() else {
        return TagPlan::NotAnItem {
            scheme: decoded.scheme().to_string(),
        };
    };
    if held_here {
        return TagPlan::AlreadyReceived;
    }
    let generation = match summary {
        None => 0,
        Some(s) if !s.is_sold() => return TagPlan::OnHand,
        Some(s) => s.sales,
    };
    TagPlan::Receive {
        gtin,
        id: ids.receipt(epc, generation),
        generation,
    }
}

/// What a tag never sold here does when it is on a transfer: the whole
/// transfer is received by its first tag read (a transfer in transit sent
/// to `here`), and its other tags are then on hand; `None` when the tag is
/// on no transfer to this store (then [`tag_plan`] decides).
pub fn transfer_plan(
    here: &tally_sync::LocationId,
    ids: &EventIds,
    summary: Option<&EpcSummary>,
    inbound: Option<&Transfer>,
) -> Option<TagPlan> {
    let t = inbound.filter(|t| t.to == *here)?;
    if summary.is_some() {
        // Sold or returned here since: its own history decides.
        return None;
    }
    Some(match t.status {
        TransferStatus::InTransit => TagPlan::ReceiveTransfer {
            transfer_id: t.transfer_id.clone(),
            id: ids.transfer_receipt(&t.transfer_id),
        },
        TransferStatus::Received => TagPlan::OnHand,
    })
}

/// Receives one unit per new tag until the driver has stopped.
pub(super) async fn task(
    ctx: DeviceContext,
    handle: DriverHandle,
    rx: mpsc::Receiver<RfidEvent>,
    stop: watch::Receiver<bool>,
) {
    drive(handle, rx, stop, |ev| on_tag(&ctx, ev)).await;
    tracing::info!("RFID task stopped.");
}

async fn on_tag(ctx: &DeviceContext, ev: RfidEvent) {
    let store = ctx.db.who().replica.clone();
    let report = match ev {
        RfidEvent::Status(s) => return status(&ctx.metrics, "rfid", &s),
        RfidEvent::ReaderError { code } => {
            tracing::warn!(%store, code, "RFID reader reported an error.");
            return;
        }
        RfidEvent::Tag(report) => report,
    };
    let epc = report.epc;
    let (summary, inbound, held_here) = {
        let key = epc.clone();
        let item = epc_codec::decode(&epc).ok().and_then(|d| d.gtin());
        let read = ctx
            .db
            .read_blocking(move |db| {
                let here = match item {
                    Some(gtin) => db.tag_held_here(gtin, &key)?,
                    None => false,
                };
                Ok((db.epc_summary(&key)?, db.transfer_of_epc(&key)?, here))
            })
            .await;
        match read {
            Ok(s) => s,
            Err(error) => {
                ctx.metrics.tag("failed");
                tracing::error!(%store, %epc, %error, "Reading the EPC summary failed; tag not received.");
                return;
            }
        }
    };
    let here = ctx.db.who().location.clone();
    let ids = ctx.db.event_ids();
    let plan = transfer_plan(&here, ids, summary.as_ref(), inbound.as_ref())
        .unwrap_or_else(|| tag_plan(ids, &epc, summary.as_ref(), held_here));
    let (gtin, id) = match plan {
        TagPlan::ReceiveTransfer { transfer_id, id } => {
            return receive_transfer(ctx, &epc, transfer_id, id).await;
        }
        TagPlan::NotAnItem { scheme } => {
            ctx.metrics.tag("not_an_item");
            tracing::info!(%store, %epc, %scheme, reads = report.count, "Tag read (not an SGTIN item); nothing received.");
            return;
        }
        TagPlan::OnHand => {
            ctx.metrics.tag("on_hand");
            tracing::debug!(%store, %epc, "Tag of a returned unit, already on hand.");
            return;
        }
        TagPlan::AlreadyReceived => {
            ctx.metrics.tag("already_received");
            tracing::debug!(%store, %epc, "Tag re-read; already received.");
            return;
        }
        TagPlan::Receive { gtin, id, .. } => (gtin, id),
    };
    let cmd = Command::Receipt {
        id: Some(id),
        lines: vec![ReceiptLine::tagged(gtin, epc.clone())],
        // Received by the store's RFID reader, not at a till.
        staff: tally_sync::Staff {
            till: Some("device:rfid".into()),
            ..Default::default()
        },
    };
    match submit(&ctx.committer, cmd).await {
        Ok(Outcome::Recorded { new: true, .. }) => {
            ctx.metrics.tag("received");
            tracing::info!(%store, %epc, %gtin, receipt = %id, reads = report.count, rssi = report.best_rssi, "Tag received one unit.");
        }
        Ok(Outcome::Recorded { new: false, .. }) => {
            ctx.metrics.tag("already_received");
            tracing::debug!(%store, %epc, receipt = %id, "Tag re-read; already received.");
        }
        Ok(Outcome::Refused { refusal, .. }) => {
            ctx.metrics.tag("refused");
            tracing::warn!(%store, %epc, reason = %refusal, "Tag receipt refused.");
        }
        Err(error) => {
            ctx.metrics.tag("failed");
            tracing::error!(%store, %epc, %error, "Tag receipt not recorded.");
        }
    }
}

/// Receives the transfer the tag `epc` arrived on (its first tag read).
async fn receive_transfer(ctx: &DeviceContext, epc: &Epc, transfer_id: String, id: EventId) {
    let store = ctx.db.who().replica.clone();
    let cmd = Command::TransferIn {
        id: Some(id),
        transfer_id: transfer_id.clone(),
        staff: tally_sync::Staff {
            till: Some("device:rfid".into()),
            ..Default::default()
        },
    };
    match submit(&ctx.committer, cmd).await {
        Ok(Outcome::Recorded { new: true, event }) => {
            ctx.metrics.tag("transfer_received");
            let units: u64 = event.lines.iter().map(|l| l.qty).sum();
            tracing::info!(%store, %epc, %transfer_id, units, "Tag of a transfer in transit: the transfer is received.");
        }
        Ok(Outcome::Recorded { new: false, .. }) => {
            ctx.metrics.tag("already_received");
        }
        Ok(Outcome::Refused { refusal, .. }) => {
            ctx.metrics.tag("refused");
            tracing::warn!(%store, %epc, %transfer_id, reason = %refusal, "Transfer receipt refused.");
        }
        Err(error) => {
            ctx.metrics.tag("failed");
            tracing::error!(%store, %epc, %transfer_id, %error, "Transfer receipt not recorded.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_hardware::epc::{Cset82, Sgtin198, Sgtin96};
    use tally_sync::epcs::EpcRecord;
    use tally_sync::ReplicaId;

    fn gtin(s: &str) -> Gtin {
        Gtin::parse(s).unwrap()
    }

    fn sgtin(serial: u64) -> Epc {
        let s = Sgtin96::from_gtin(1, gtin("00614141123452"), 7, serial).unwrap();
        Epc::from_bytes(&s.encode()).unwrap()
    }

    fn ids(store: &str) -> EventIds {
        EventIds::new(ReplicaId::new(store).unwrap(), [9; 32])
    }

    fn record(n: u8) -> EpcRecord {
        EpcRecord {
            event: EventId::v7(1, [n; 10]),
            replica: ReplicaId::new("s1").unwrap(),
        }
    }

    #[test]
    fn a_tag_is_received_once_per_generation_and_not_while_on_hand() {
        let s1 = ids("s1");
        let s2 = ids("s2");
        let epc = sgtin(42);
        let TagPlan::Receive {
            gtin: g,
            id: first,
            generation: 0,
        } = tag_plan(&s1, &epc, None, false)
        else {
            panic!("a new tag is received");
        };
        assert_eq!(g, gtin("00614141123452"));
        // A re-read computes the same id: the committer answers it from
        // the journal instead of receiving again.
        assert_eq!(
            tag_plan(&s1, &epc, None, false),
            TagPlan::Receive {
                gtin: g,
                id: first,
                generation: 0
            }
        );
        assert_ne!(first, s2.receipt(&epc, 0), "ids are per store");
        assert_ne!(first, s1.receipt(&sgtin(43), 0), "ids are per tag");
        // Sold: it left; back at the dock it is a new receipt.
        let (sold, _) = EpcSummary::default().after_sale(&record(1));
        match tag_plan(&s1, &epc, Some(&sold), false) {
            TagPlan::Receive { id, generation, .. } => {
                assert_eq!(generation, 1);
                assert_ne!(id, first);
            }
            other => panic!("{other:?}"),
        }
        // Sold and returned at the till: on hand, nothing to receive.
        let returned = sold.after_return();
        assert_eq!(tag_plan(&s1, &epc, Some(&returned), false), TagPlan::OnHand);
        // Received and held here: a re-read receives nothing, whatever id
        // a receipt would take (one made before the store's secret).
        assert_eq!(tag_plan(&s1, &epc, None, true), TagPlan::AlreadyReceived);
        assert_eq!(
            tag_plan(&s1, &epc, Some(&returned), true),
            TagPlan::AlreadyReceived
        );
    }

    #[test]
    fn a_tag_on_a_transfer_in_transit_receives_the_transfer_once() {
        let (a, b) = (
            tally_sync::LocationId::new("a").unwrap(),
            tally_sync::LocationId::new("b").unwrap(),
        );
        let epc = sgtin(7);
        let mut t = Transfer {
            transfer_id: "t-9".into(),
            from: a.clone(),
            to: b.clone(),
            lines: vec![tally_sync::transfer::TransferLine {
                gtin: gtin("00614141123452"),
                qty: 1,
                epc: Some(epc.clone()),
            }],
            status: TransferStatus::InTransit,
            sent_at_ms: 1,
            sent_event: None,
        };
        let Some(TagPlan::ReceiveTransfer { transfer_id, id }) =
            transfer_plan(&b, &ids("b"), None, Some(&t))
        else {
            panic!("the destination receives the transfer");
        };
        assert_eq!(transfer_id, "t-9");
        // Every tag of the transfer names the same receipt.
        assert!(matches!(
            transfer_plan(&b, &ids("b"), None, Some(&t)),
            Some(TagPlan::ReceiveTransfer { id: again, .. }) if again == id
        ));
        // Not at the sender; and once received its tags are on hand.
        assert_eq!(transfer_plan(&a, &ids("a"), None, Some(&t)), None);
        t.status = TransferStatus::Received;
        assert_eq!(
            transfer_plan(&b, &ids("b"), None, Some(&t)),
            Some(TagPlan::OnHand)
        );
        // A tag sold here since follows its own history.
        let (sold, _) = EpcSummary::default().after_sale(&record(1));
        assert_eq!(transfer_plan(&b, &ids("b"), Some(&sold), Some(&t)), None);
    }

    #[test]
    fn an_sgtin_198_tag_is_a_unit_of_its_gtin() {
        let s1 = ids("s1");
        // An alphanumeric serial only SGTIN-198 holds (TDS §12.3.1).
        let serial = Cset82::new("A1/07").unwrap();
        let tag = Sgtin198::from_gtin(1, gtin("00614141123452"), 7, serial).unwrap();
        let epc = Epc::from_bytes(&tag.encode()).unwrap();
        let TagPlan::Receive {
            gtin: g,
            id,
            generation: 0,
        } = tag_plan(&s1, &epc, None, false)
        else {
            panic!("an SGTIN-198 tag is received");
        };
        assert_eq!(g, gtin("00614141123452"));
        assert_eq!(id, s1.receipt(&epc, 0));
        // The same GTIN and serial digits as SGTIN-96 is another EPC
        // binary, hence another receipt id.
        let short = Sgtin198::from_gtin(1, g, 7, Cset82::new("42").unwrap()).unwrap();
        let short = Epc::from_bytes(&short.encode()).unwrap();
        assert_ne!(s1.receipt(&short, 0), s1.receipt(&sgtin(42), 0));
    }

    #[test]
    fn other_schemes_are_not_items() {
        let s1 = ids("s1");
        // SSCC-96 from the EPC TDS examples: a pallet, not an item.
        let sscc = Epc::from_hex("3174257BF4499602D2000000").unwrap();
        assert_eq!(
            tag_plan(&s1, &sscc, None, false),
            TagPlan::NotAnItem {
                scheme: "sscc-96".into()
            }
        );
        let raw = Epc::from_hex("E2801160600002054CC2093C").unwrap();
        assert!(matches!(
            tag_plan(&s1, &raw, None, false),
            TagPlan::NotAnItem { .. }
        ));
        // GIAI-96 (TDS §E.3): an asset, not an item.
        let giai = Epc::from_hex("3474257BF40000000000162E").unwrap();
        assert_eq!(
            tag_plan(&s1, &giai, None, false),
            TagPlan::NotAnItem {
                scheme: "giai-96".into()
            }
        );
    }
}
