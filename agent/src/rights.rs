//! Rights on demand at the till: a command the store lacks the rights for,
//! while the units are on its shelf and the hub holds their rights (its
//! online reserve), asks the hub for them (`POST /v1/rights`) and is run
//! again with the grant, both in one durable commit
//! ([`Committer::command_with_grant`]).
//!
//! # Design constraints
//! - A command the store holds the rights for never waits for the hub:
//!   the first attempt is the ordinary one.
//! - Bounded: the whole exchange ends within the configured wait (about
//!   1 s); a store whose last sync did not reach the hub does not ask at
//!   all, so offline tills answer at once (reason `offline`).
//! - Safe whatever happens: a grant is a CRDT transfer the store merges;
//!   a lost answer leaves the rights at the hub (a later sync brings
//!   them), a repeated one changes nothing, and the command is re-run
//!   under its own id, so it is recorded once.
//! - Each round asks for the shortfall of the line that was refused; a
//!   sale short on several items takes a round per item while time is
//!   left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tally_sync::clock::Clock;
use tally_sync::command::{Command, Outcome};
use tally_sync::rights::RightsRequest;
use tally_sync::{EventId, Refusal};

use crate::commit::{CommitError, Committer};
use crate::status::SyncStatus;
use crate::store::AgentDb;
use crate::sync::HubClient;

/// The most rounds one command may take (items short at once).
const MAX_ROUNDS: usize = 8;

/// What a command came to, and whether the hub could be asked.
#[derive(Debug)]
pub struct Ran {
    /// The command's outcome (after any grant).
    pub outcome: Outcome,
    /// Whether the hub was reachable (for the reason of a refusal).
    pub hub_reachable: bool,
}

/// Runs commands with rights on demand (see the module docs).
#[derive(Debug, Clone)]
pub struct Rights {
    db: Arc<AgentDb>,
    committer: Committer,
    hub: Option<Arc<HubClient>>,
    status: Arc<SyncStatus>,
    clock: Arc<dyn Clock>,
    wait: Duration,
}

impl Rights {
    /// Commands go to `committer` (the store's entries sent with a request
    /// are read from `db`); `hub` is the sync client's connection (none: no
    /// hub configured, never asked); `wait` bounds the asking.
    pub fn new(
        db: Arc<AgentDb>,
        committer: Committer,
        hub: Option<Arc<HubClient>>,
        status: Arc<SyncStatus>,
        clock: Arc<dyn Clock>,
        wait: Duration,
    ) -> Self {
        Self {
            db,
            committer,
            hub,
            status,
            clock,
            wait,
        }
    }

    /// Runs `cmd`; if it is refused for rights the hub holds, asks the hub
    /// and runs it again with the grant.
    pub async fn run(&self, cmd: Command) -> Result<Ran, CommitError> {
        let outcome = self.committer.command(cmd.clone()).await?;
        self.resolve(cmd, outcome).await
    }

    /// Continues from `outcome`, what `cmd` came to: a refusal for rights
    /// the hub holds asks the hub and runs `cmd` again with the grant;
    /// anything else is returned as it is.
    pub async fn resolve(&self, cmd: Command, mut outcome: Outcome) -> Result<Ran, CommitError> {
        let mut hub_reachable = self.status.snapshot().online;
        let Some(hub) = self.hub.as_ref().filter(|_| hub_reachable) else {
            return Ok(Ran {
                outcome,
                hub_reachable,
            });
        };
        let deadline = Instant::now() + self.wait;
        for _ in 0..MAX_ROUNDS {
            let Outcome::Refused {
                refusal:
                    Refusal::InsufficientStock {
                        gtin,
                        requested,
                        available,
                        on_hand,
                    },
                ..
            } = &outcome
            else {
                break;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if on_hand < requested || left.is_zero() {
                break;
            }
            let mut random = [0u8; 10];
            rand::thread_rng().fill_bytes(&mut random);
            // The store's own entries go with the request, so the hub
            // grants on its latest state (rights it gave at its last sync).
            let key = *gtin;
            let own = self.db.read_blocking(move |db| db.counter(key)).await?;
            let req = RightsRequest {
                request_id: EventId::v7(self.clock.now_ms(), random),
                gtin: *gtin,
                units: requested - available,
                own: own.owned_by(&self.db.who().replica),
            };
            let grant = match hub.rights(&req, left).await {
                Ok(g) => g,
                Err(error) => {
                    tracing::info!(%error, gtin = %req.gtin, "The hub did not grant rights; the sale is refused.");
                    hub_reachable = false;
                    break;
                }
            };
            let granted = grant.granted;
            // Even a grant of nothing brings the hub's view of the
            // counter (units it sold online meanwhile): the refusal then
            // says what is really left.
            outcome = self
                .committer
                .command_with_grant(grant, cmd.clone())
                .await?;
            if granted == 0 {
                break;
            }
        }
        Ok(Ran {
            outcome,
            hub_reachable,
        })
    }
}
