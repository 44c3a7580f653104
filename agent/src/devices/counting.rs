//! The reader in count mode (`--rfid-mode count`): every tag it reports
//! goes to the count session counting now (`POST /v1/counts/sessions`),
//! in batches of what the driver has queued, one committer job each
//! (`crate::store::CountJob::Reads`). The session counts each EPC once;
//! with no session counting, reads are dropped and counted as such
//! (`tally_agent_device_tags_total{outcome="count_no_session"}`). Which
//! item a tag is, is decided purely ([`tag_item`]).

use tally_hardware::driver::rfid::RfidEvent;
use tally_hardware::driver::DriverHandle;
use tally_hardware::epc as epc_codec;
use tally_sync::{Epc, Gtin};
use tokio::sync::{mpsc, watch};

use super::wiring::{status, Events};
use super::DeviceContext;
use crate::store::{CountDone, CountJob, TagSeen};

/// Most reads fed to the committer in one job.
pub const MAX_BATCH: usize = 1024;

/// The item a tag counts for: an SGTIN's (96 or 198) GTIN; `None` for any
/// other scheme (counted as an unknown tag).
pub fn tag_item(epc: &Epc) -> Option<Gtin> {
    epc_codec::decode(epc).ok().and_then(|d| d.gtin())
}

/// Feeds tags to the session counting until the driver has stopped.
pub(super) async fn task(
    ctx: DeviceContext,
    handle: DriverHandle,
    rx: mpsc::Receiver<RfidEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut events = Events::new(handle, rx, stop);
    let mut batch: Vec<TagSeen> = Vec::new();
    while let Some(first) = events.next().await {
        let mut next = Some(first);
        while let Some(ev) = next {
            match ev {
                RfidEvent::Tag(report) => {
                    let item = tag_item(&report.epc);
                    batch.push((report.epc, item));
                }
                RfidEvent::Status(s) => status(&ctx.metrics, "rfid", &s),
                RfidEvent::ReaderError { code } => {
                    tracing::warn!(code, "RFID reader reported an error.");
                }
            }
            next = if batch.len() < MAX_BATCH {
                events.try_next()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            feed(&ctx, std::mem::take(&mut batch)).await;
        }
    }
    tracing::info!("RFID count task stopped.");
}

async fn feed(ctx: &DeviceContext, reads: Vec<TagSeen>) {
    let n = reads.len() as u64;
    match ctx.committer.count(CountJob::Reads(reads)).await {
        Ok(CountDone::Fed {
            session_id: Some(id),
            new_tags,
        }) => {
            ctx.metrics.tags("counted", new_tags);
            ctx.metrics.tags("count_again", n - new_tags);
            tracing::debug!(session_id = %id, reads = n, new_tags, "Tags counted.");
        }
        Ok(CountDone::Fed {
            session_id: None, ..
        }) => {
            ctx.metrics.tags("count_no_session", n);
            tracing::debug!(
                reads = n,
                "Tags read with no count session counting; dropped."
            );
        }
        Ok(other) => tracing::error!(?other, "Unexpected answer to count reads."),
        Err(error) => {
            ctx.metrics.tags("failed", n);
            tracing::error!(%error, reads = n, "Count reads not recorded.");
        }
    }
}
