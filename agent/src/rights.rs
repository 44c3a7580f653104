//! Rights on demand at the till: a sale the store lacks the rights for,
//! while the units are on its shelf and the hub holds their rights (its
//! online reserve), asks the hub for them (`POST /v1/rights`) and is run
//! again with the grant, both in one durable commit
//! ([`Committer::command_with_grant`]). Only sales: a transfer to another
//! store never takes the hub's online reserve.
//!
//! # Design constraints
//! - A command the store holds the rights for never waits for the hub:
//!   the first attempt is the ordinary one.
//! - Bounded: the whole exchange ends within the configured wait (about
//!   1 s); a store that believes the hub out of reach (its last sync did
//!   not get through, no live link, no answer to a request for rights in
//!   the last 30 s: [`Reach`]) asks it once every few seconds only (a
//!   probe: the hub may be back while the sync backs off), so offline
//!   tills answer at once (reason `offline`) but for that one. A
//!   manager's override is the exception: it asks whenever a hub is
//!   configured (one request to a hub believed out of reach, within the
//!   wait), since units it would record as found may be the hub's.
//! - Safe whatever happens: a grant is a CRDT transfer the store merges;
//!   a repeated one changes nothing, and the command is re-run under its
//!   own id, so it is recorded once. A lost answer may hide a grant the
//!   hub made (the rights are the store's in the hub's books): the next
//!   request for that item, within a minute, is the same request again
//!   (its id and units), which the hub answers with that grant rather
//!   than granting twice, and the sync is woken to bring it meanwhile
//!   (not for a probe's: the sync would give up its backoff for a hub
//!   likely down).
//! - Each round asks for the shortfall of the line that was refused; a
//!   sale short on several items takes a round per item while time is
//!   left.
//! - Requests from several tills for one item coalesce: one request per
//!   item is in flight; a till short of that item boards it (adds its
//!   units) and waits; the leader, once answered, asks once more for
//!   every unit boarded meanwhile, then lands the flight and the waiting
//!   tills run again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use tally_sync::clock::Clock;
use tally_sync::command::{Command, Outcome, Overrides};
use tally_sync::event::Shortfall;
use tally_sync::rights::{RightsGrant, RightsRequest, MAX_UNITS_PER_REQUEST};
use tally_sync::{BoundedCounter, EventId, Gtin, Refusal, ReplicaId, Shortage};
use tokio::sync::watch;

use crate::commit::{CommitError, Committer, RefusedSale, Rerun};
use crate::metrics::{Metrics, OutcomeLabel};
use crate::status::{SyncSnapshot, SyncStatus};
use crate::store::AgentDb;
use crate::sync::{Failure, HubClient};

/// The most rounds one command may take (items short at once).
const MAX_ROUNDS: usize = 8;

/// What a command came to, and whether the hub could be asked.
#[derive(Debug)]
pub struct Ran {
    /// The command's outcome (after any grant).
    pub outcome: Outcome,
    /// Whether the hub was reachable (for the reason of a refusal).
    pub hub_reachable: bool,
    /// When the command's first run was answered (the agent's clock,
    /// Unix ms): for a refusal, when its demand was added
    /// ([`Self::lost`]).
    pub answered_at_ms: u64,
}

impl Ran {
    /// The refused sale `id` as its lost-sale row keeps it.
    pub fn lost(&self, id: EventId) -> RefusedSale {
        RefusedSale {
            id,
            at_ms: self.answered_at_ms,
        }
    }
}

/// Runs commands with rights on demand (see the module docs).
#[derive(Debug, Clone)]
pub struct Rights {
    db: Arc<AgentDb>,
    committer: Committer,
    hub: Option<Arc<HubClient>>,
    status: Arc<SyncStatus>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    wait: Duration,
    flights: Arc<Flights>,
    /// Per item, the last request the hub did not answer.
    unanswered: Arc<Mutex<HashMap<Gtin, Unanswered>>>,
    /// Rung after such a request: the sync brings what the hub did.
    wake_sync: Option<Arc<tokio::sync::Notify>>,
    /// Commands running under an id, one at a time per id ([`Self::turn`]).
    turns: Arc<Turns>,
    /// When the hub last answered a request for rights, and when it was
    /// last probed while believed out of reach ([`Reach`]).
    reach: Arc<Mutex<Reach>>,
}

/// The ids commands run under now, each with whoever waits for its turn.
#[derive(Debug, Default)]
struct Turns(Mutex<HashMap<EventId, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    /// Waits for the turn of `id`.
    async fn turn(self: &Arc<Self>, id: EventId) -> Turn {
        let lock = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone();
        Turn {
            guard: Some(lock.lock_owned().await),
            id,
            turns: self.clone(),
        }
    }

    /// Ids with a command running or waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A command's turn to run under its id ([`Rights::turn`]): the next
/// command under the same id waits until it is dropped.
#[derive(Debug)]
pub struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    id: EventId,
    turns: Arc<Turns>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = self.turns.0.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.guard.take());
        // The last one out forgets the id (the map holds one reference,
        // each waiter another).
        if turns
            .get(&self.id)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            turns.remove(&self.id);
        }
    }
}

/// A request for rights the hub did not answer (it may have granted it).
#[derive(Debug, Clone, Copy)]
struct Unanswered {
    request_id: EventId,
    units: u64,
    at: Instant,
    /// The same, by the agent's clock (to compare with the last sync).
    at_ms: u64,
}

/// How long an unanswered request is asked again under its id rather
/// than a new one (the hub keeps grants by id; after this, a sync has
/// brought whatever it granted).
const REPLAY_FOR: Duration = Duration::from_secs(60);

/// How often a till asks the hub while it is believed out of reach
/// ([`Reach`]).
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How long an answer of the hub to a request for rights counts as the
/// hub being reachable ([`Reach`]).
pub const ANSWERED_FOR: Duration = Duration::from_secs(30);

/// What the tills learned of the hub's reach by asking it, beside the
/// sync's status (pure; [`Rights::hub_if_reachable`]).
///
/// The hub is reachable when the last sync got through, the live link is
/// open, or it answered a request for rights within [`ANSWERED_FOR`] (a
/// sync it refuses does not stop the tills from asking). Believed out of
/// reach, a sale short of rights still asks it once every
/// [`PROBE_EVERY`] (a probe): a sync backing off after a blip would
/// otherwise keep every till from the hub's reserve for up to its
/// backoff cap (a minute), the hub long back. The other tills meanwhile
/// are answered at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// When the hub last answered a request for rights (none since one
    /// went unanswered).
    answered: Option<Instant>,
    /// When it was last probed.
    probed: Option<Instant>,
}

impl Reach {
    /// Whether the hub is reachable at `now`, the sync's status being `s`.
    fn reachable(&self, s: &SyncSnapshot, now: Instant) -> bool {
        s.hub_reachable()
            || self
                .answered
                .is_some_and(|t| now.saturating_duration_since(t) < ANSWERED_FOR)
    }

    /// Whether a probe is due at `now` (none spent): believed out of
    /// reach and none sent in the last [`PROBE_EVERY`]. Reachable: `false`.
    fn probe_due(&self, s: &SyncSnapshot, now: Instant) -> bool {
        !self.reachable(s, now)
            && self
                .probed
                .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_EVERY)
    }

    /// Whether a sale short of rights may ask the hub at `now`: reachable,
    /// or a probe is due (then spent).
    fn ask_or_probe(&mut self, s: &SyncSnapshot, now: Instant) -> bool {
        if self.reachable(s, now) {
            return true;
        }
        if !self.probe_due(s, now) {
            return false;
        }
        self.probed = Some(now);
        true
    }

    /// The hub answered at `now` (`true`) or did not (`false`).
    fn heard(&mut self, answered: bool, now: Instant) {
        self.answered = answered.then_some(now);
    }
}

impl Rights {
    /// The hub's connection when the hub is reachable ([`Reach`]; none
    /// when no hub is configured or it is out of reach), and how long a
    /// request to it may wait. No probe: for what is not a sale.
    pub fn hub_if_reachable(&self) -> Option<(&HubClient, Duration)> {
        let hub = self.hub.as_deref()?;
        self.reach()
            .reachable(&self.status.snapshot(), Instant::now())
            .then_some((hub, self.wait))
    }

    /// Rings the sync, if it is to be woken.
    fn wake_sync(&self) {
        if let Some(wake) = &self.wake_sync {
            wake.notify_one();
        }
    }

    fn reach(&self) -> std::sync::MutexGuard<'_, Reach> {
        self.reach.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh event id by this agent's clock.
    pub fn fresh_id(&self) -> EventId {
        let mut random = [0u8; 10];
        rand::thread_rng().fill_bytes(&mut random);
        EventId::v7(self.clock.now_ms(), random)
    }

    /// Commands go to `committer` (the store's entries sent with a request
    /// are read from `db`); `hub` is the sync client's connection (none: no
    /// hub configured, never asked); `wait` bounds the asking.
    pub fn new(
        db: Arc<AgentDb>,
        committer: Committer,
        hub: Option<Arc<HubClient>>,
        status: Arc<SyncStatus>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        wait: Duration,
    ) -> Self {
        Self {
            db,
            committer,
            hub,
            status,
            clock,
            metrics,
            wait,
            flights: Arc::default(),
            unanswered: Arc::default(),
            wake_sync: None,
            turns: Arc::default(),
            reach: Arc::default(),
        }
    }

    /// Waits for the turn of a command under `id` (none: no wait): a
    /// till's retry of a sale still being run (a double press, a
    /// timeout) runs after it, answered from the journal if it was
    /// recorded, instead of asking the hub for its units a second time
    /// and counting its demand twice. Hold the turn until the command's
    /// answer, lost sale included, is written.
    pub async fn turn(&self, id: Option<EventId>) -> Option<Turn> {
        Some(self.turns.turn(id?).await)
    }

    /// The same, ringing `wake_sync` after a request the hub did not
    /// answer (the sync then brings any grant it made).
    #[must_use]
    pub fn waking(mut self, wake_sync: Arc<tokio::sync::Notify>) -> Self {
        self.wake_sync = Some(wake_sync);
        self
    }

    /// Runs `cmd`; if it is refused for rights the hub holds, asks the hub
    /// and runs it again with the grant.
    ///
    /// A sale a manager approved asks too, before its approval sells
    /// beyond rights: the override is held ([`Overrides::Hold`]) while
    /// the hub is asked for the rights to the units the store's books
    /// show on its shelf, and applied to what the hub did not give. The
    /// units the hub holds for online orders are sold once: by the till
    /// with the hub's grant, or by the online order.
    pub async fn run(&self, cmd: Command) -> Result<Ran, CommitError> {
        // An approved sale is held whenever there is a hub to ask, even
        // one believed out of reach: overrides are few, a manager is
        // there, and a hub that does not answer within the wait lets the
        // approval apply. (Held only while a probe is due, a second
        // till's override during the first's probe applied at once.)
        let overrides = if approved_sale(&cmd) && self.hub.is_some() {
            Overrides::Hold
        } else {
            Overrides::Apply
        };
        let outcome = self.committer.command_as(cmd.clone(), overrides).await?;
        let answered_at_ms = self.clock.now_ms();
        self.resolve_as(cmd, outcome, overrides, answered_at_ms)
            .await
    }

    /// Whether the hub is reachable now, no probe spent ([`Reach`]; with
    /// rights on demand off, the sync's word only): for the reason of a
    /// refusal that does not ask.
    fn reachable_now(&self) -> bool {
        let s = self.status.snapshot();
        match self.hub {
            Some(_) => self.reach().reachable(&s, Instant::now()),
            None => s.hub_reachable(),
        }
    }

    /// Whether the hub may be asked for `cmd`, which came to `outcome`
    /// (for the refusal's reason too): a probe is spent only by a sale
    /// refused for the rights to units on the shelf, every line of its
    /// basket on the shelf (`on_shelf`), which asks.
    fn may_ask(&self, cmd: &Command, outcome: &Outcome, on_shelf: bool) -> bool {
        let askable = matches!(cmd, Command::Sale { .. })
            && matches!(
                outcome,
                Outcome::Refused {
                    refusal: Refusal::InsufficientStock { requested, on_hand, .. },
                    ..
                } if on_hand >= requested
            );
        let reachable = self.reachable_now();
        if !reachable && askable && on_shelf && self.hub.is_some() {
            self.reach()
                .ask_or_probe(&self.status.snapshot(), Instant::now())
        } else {
            reachable
        }
    }

    /// Continues from `outcome`, what `cmd` came to: a refusal for rights
    /// the hub holds asks the hub and runs `cmd` again with the grant;
    /// anything else is returned as it is.
    pub async fn resolve(&self, cmd: Command, outcome: Outcome) -> Result<Ran, CommitError> {
        let answered_at_ms = self.clock.now_ms();
        self.resolve_as(cmd, outcome, Overrides::Apply, answered_at_ms)
            .await
    }

    /// [`Self::resolve`], for `cmd` run as `overrides` say: held, its
    /// rounds ask for the units on the shelf item by item, then its
    /// approval takes as found what the hub did not give. Whether the
    /// hub may be asked is decided once per command ([`Self::may_ask`]:
    /// a probe is one request's); an override is held whenever a hub is
    /// configured ([`Self::run`]). `answered_at_ms`: when
    /// `outcome` was answered.
    async fn resolve_as(
        &self,
        cmd: Command,
        mut outcome: Outcome,
        overrides: Overrides,
        answered_at_ms: u64,
    ) -> Result<Ran, CommitError> {
        // Only a customer's sale draws on the hub's reserve: a transfer
        // to another store (or any other command) never takes units the
        // hub holds for online orders.
        let sale = matches!(cmd, Command::Sale { .. });
        let held = overrides == Overrides::Hold;
        let mut on_shelf = true;
        if sale && !held && is_short_of_rights(&outcome) {
            let refused = match &outcome {
                Outcome::Refused {
                    refusal: Refusal::InsufficientStock { gtin, .. },
                    ..
                } => Some(*gtin),
                _ => None,
            };
            // (The item refused itself, short on the shelf, is already
            // answered so.)
            let lacking = self.line_lacking_units(&cmd).await?;
            on_shelf = lacking.is_none();
            let lacking = lacking.filter(
                |r| !matches!(r, Refusal::InsufficientStock { gtin, .. } if Some(*gtin) == refused),
            );
            if let Some(refusal) = lacking {
                // A basket that fails for want of units on the shelf
                // fails whatever the hub grants: asking would only move
                // its online reserve here for nothing (a till could drain
                // it so). The refusal names that line (`no_stock`), not
                // the first line short of rights, reachable hub or not.
                return Ok(Ran {
                    outcome: Outcome::Refused {
                        refusal,
                        demand: refused_demand(&outcome),
                    },
                    hub_reachable: self.reachable_now(),
                    answered_at_ms,
                });
            }
        }
        let mut hub_reachable = held || self.may_ask(&cmd, &outcome, on_shelf);
        let hub = self.hub.as_deref().filter(|_| hub_reachable && sale);
        let Some(hub) = hub.filter(|_| !held) else {
            if held && is_short_of_rights(&outcome) {
                // The approval waits no longer than the hub answers; one
                // believed out of reach is asked once.
                let out_of_reach = !self.reachable_now();
                let cmd = cmd.with_id_or(self.fresh_id());
                let first_demand = refused_demand(&outcome);
                let first_at = self.first_refused_at(&cmd, answered_at_ms).await;
                let asking = Asking {
                    cmd: &cmd,
                    first: (first_demand.as_slice(), first_at),
                    overrides,
                };
                outcome = self
                    .ask_before_override(hub, out_of_reach, asking, outcome)
                    .await?;
            }
            return Ok(Ran {
                outcome,
                hub_reachable,
                answered_at_ms,
            });
        };
        if !is_short_of_rights(&outcome) {
            // Recorded, or refused for another reason: nothing to ask.
            return Ok(Ran {
                outcome,
                hub_reachable,
                answered_at_ms,
            });
        }
        // From here `cmd` may run more than once (with a grant, again for
        // a flight's followers): named, each run after it is recorded is
        // a retry, answered from the journal, never a second sale. The
        // first run was refused, so nothing is recorded under any id yet.
        let cmd = cmd.with_id_or(self.fresh_id());
        // What the first refusal added to the store's demand: taken back
        // if a rerun records the sale (unless a sync reported it since).
        let first_demand = refused_demand(&outcome);
        let first_at = self.first_refused_at(&cmd, answered_at_ms).await;
        let asking = Asking {
            cmd: &cmd,
            first: (first_demand.as_slice(), first_at),
            overrides,
        };
        let deadline = Instant::now() + self.wait;
        // The latest request for this command (its own or the leader's
        // it waited for) got no answer from the hub.
        let mut unanswered = false;
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
            let (gtin, short) = (*gtin, requested - available);
            if on_hand < requested {
                break;
            }
            if Instant::now() >= deadline {
                // Out of time after a request the hub did not answer: the
                // refusal is the hub's being out of reach.
                hub_reachable &= !unanswered;
                break;
            }
            let step = match self.flights.board(gtin, short) {
                Boarded::Leader(flight) => {
                    unanswered = false;
                    self.lead(hub, flight, short, deadline, asking, outcome)
                        .await?
                }
                Boarded::Follower(mut landed) => {
                    // Another till is asking for this item and asks for
                    // this one's units too: wait for it, then try again.
                    let landed = landing(&mut landed, deadline).await;
                    // The leader's grant; or (its request failed or was
                    // dropped) try again while time is left, as leader
                    // perhaps: the leader may have had less time than
                    // this till. Out of time waiting: the hub did not
                    // answer in time.
                    unanswered = matches!(landed, Some(Landed::Failed));
                    let (granted, reached) = match landed {
                        Some(Landed::Granted(n)) => (n, true),
                        Some(Landed::Failed | Landed::Abandoned) => (1, true),
                        None => (0, false),
                    };
                    Step {
                        outcome: self.committer.rerun(self.rerun(asking)).await?,
                        granted,
                        reached,
                    }
                }
            };
            outcome = step.outcome;
            if !step.reached {
                hub_reachable = false;
                break;
            }

            if step.granted == 0 {
                break;
            }
        }
        Ok(Ran {
            outcome,
            hub_reachable,
            answered_at_ms,
        })
    }

    /// A sale a manager approved, held short of rights: asks the hub,
    /// one item at a time while time is left, for the rights to the units
    /// the store's books show on its shelf ([`Self::next_on_shelf`]),
    /// each run again with its grant; then, still short, runs it with its
    /// approval, which records what it lacks as found.
    ///
    /// With no `hub`, the approval applies at once; `out_of_reach` (the
    /// hub believed so), after the first item the hub does not answer.
    async fn ask_before_override(
        &self,
        hub: Option<&HubClient>,
        out_of_reach: bool,
        asking: Asking<'_>,
        mut outcome: Outcome,
    ) -> Result<Outcome, CommitError> {
        let deadline = Instant::now() + self.wait;
        let mut asked = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let Some(hub) = hub else {
                break;
            };
            if !is_short_of_rights(&outcome) || Instant::now() >= deadline {
                break;
            }
            let Some((gtin, units)) = self.next_on_shelf(asking.cmd, &asked).await? else {
                break;
            };
            asked.push(gtin);
            let step = match self.flights.board(gtin, units) {
                Boarded::Leader(flight) => {
                    let step = self
                        .lead(hub, flight, units, deadline, asking, outcome)
                        .await?;
                    if step.granted > 0 {
                        // Something given (perhaps less than asked: a
                        // replay of an unanswered request, another
                        // till's units): asked again while the shelf
                        // still shows units beyond the store's rights.
                        asked.retain(|g| *g != gtin);
                    }
                    step
                }
                Boarded::Follower(mut landed) => {
                    let landed = landing(&mut landed, deadline).await;
                    if matches!(
                        landed,
                        Some(Landed::Failed | Landed::Abandoned | Landed::Granted(1..))
                    ) {
                        // The leader's request got no answer in its own
                        // time, perhaps shorter, or the hub gave (to the
                        // tills of the flight, perhaps not enough for
                        // this one): asked again, as leader perhaps,
                        // while this sale's time lasts.
                        asked.retain(|g| *g != gtin);
                    }
                    Step {
                        outcome: self.committer.rerun(self.rerun(asking)).await?,
                        granted: 0,
                        reached: !matches!(landed, Some(Landed::Failed) | None),
                    }
                }
            };
            // An item the hub did not answer for does not stop the
            // asking for the next: the deadline does, or (a hub believed
            // out of reach) its first unanswered request.
            outcome = step.outcome;
            if out_of_reach && !step.reached {
                break;
            }
        }
        if !is_short_of_rights(&outcome) {
            return Ok(outcome);
        }
        self.committer
            .rerun(Rerun {
                overrides: Overrides::Apply,
                ..self.rerun(asking)
            })
            .await
    }

    /// The next item of sale `cmd` not yet `asked` for whose units the
    /// store's books show on its shelf while it lacks their rights (the
    /// hub's online reserve holds them), and how many: for each item, the
    /// units the sale takes, up to those on hand, beyond the store's
    /// rights.
    async fn next_on_shelf(
        &self,
        cmd: &Command,
        asked: &[Gtin],
    ) -> Result<Option<(Gtin, u64)>, CommitError> {
        self.first_item(cmd, asked, |gtin, requested, c, me| {
            let units = requested.min(c.value()).saturating_sub(c.rights(me));
            (units > 0).then_some((gtin, units))
        })
        .await
    }

    /// What `pick` answers for the first item of sale `cmd` (its lines
    /// added up, in their order; the `skip`ped left out) it answers for,
    /// given the units the sale takes of it, its counter here and this
    /// store's replica.
    async fn first_item<T: Send + 'static>(
        &self,
        cmd: &Command,
        skip: &[Gtin],
        pick: impl Fn(Gtin, u64, &BoundedCounter, &ReplicaId) -> Option<T> + Send + 'static,
    ) -> Result<Option<T>, CommitError> {
        let wanted: Vec<(Gtin, u64)> = units_per_item(cmd)
            .into_iter()
            .filter(|(g, _)| !skip.contains(g))
            .collect();
        let me = self.db.who().replica.clone();
        Ok(self
            .db
            .read_blocking(move |db| {
                for (gtin, requested) in wanted {
                    if let Some(found) = pick(gtin, requested, &db.counter(gtin)?, &me) {
                        return Ok(Some(found));
                    }
                }
                Ok(None)
            })
            .await?)
    }

    /// When `cmd` was first refused (`now`, unless a till's earlier post
    /// under its id was refused for rights): its demand was counted
    /// then, and a sync since has reported it ([`Self::unmet`]).
    async fn first_refused_at(&self, cmd: &Command, now: u64) -> u64 {
        let Some(id) = cmd.id() else {
            return now;
        };
        // Only the demand taken back depends on it: a read that fails
        // takes now (as if the first refusal were this one).
        let at = match self
            .db
            .read_blocking(move |db| db.first_refused_at(id))
            .await
        {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(error = %e, "The first refusal's time could not be read.");
                None
            }
        };
        at.map_or(now, |t| t.min(now))
    }

    /// How `asking`'s command runs again after its first refusal.
    fn rerun(&self, asking: Asking<'_>) -> Rerun {
        Rerun {
            cmd: asking.cmd.clone(),
            first_demand: self.unmet(asking.first),
            overrides: asking.overrides,
        }
    }

    /// The first refusal's demand (`first.0`, added at `first.1`, the
    /// agent's clock), if no sync has reported it since: what a rerun that
    /// records the sale takes back. Once reported, the sync cleared it,
    /// and taking it back again would take other customers' demand.
    fn unmet(&self, first: (&[Shortfall], u64)) -> Vec<Shortfall> {
        let (demand, since_ms) = first;
        if reported(&self.status.snapshot(), since_ms) {
            Vec::new()
        } else {
            demand.to_vec()
        }
    }

    /// The refusal of sale `cmd` for its first item with fewer units on
    /// the shelf than the sale takes (its lines added up), if one has:
    /// no grant can let it through.
    async fn line_lacking_units(&self, cmd: &Command) -> Result<Option<Refusal>, CommitError> {
        self.first_item(cmd, &[], |gtin, requested, c, me| {
            (c.value() < requested).then(|| Refusal::InsufficientStock {
                gtin,
                requested,
                available: c.rights(me),
                on_hand: c.value(),
            })
        })
        .await
    }

    /// Asks the hub for `units` of `gtin` and runs `cmd` (which came to
    /// `refused`) with the grant;
    /// then, while other tills joined the flight meanwhile and the hub
    /// still gives, asks once more for all of their units together.
    async fn lead(
        &self,
        hub: &HubClient,
        mut flight: Flight,
        mut units: u64,
        deadline: Instant,
        asking: Asking<'_>,
        refused: Outcome,
    ) -> Result<Step, CommitError> {
        // Until the hub answers, the command stands refused as it was.
        let mut step = Step {
            outcome: refused,
            granted: 0,
            reached: true,
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(grant) = self.ask(hub, flight.gtin, units, left).await? else {
                step.reached = false;
                flight.failed = true;
                break;
            };
            let (granted, asked) = (grant.granted, grant.asked);
            step.granted += granted;
            flight.granted += granted;
            // Even a grant of nothing brings the hub's view of the
            // counter (units it sold online meanwhile): the refusal then
            // says what is really left. Once `cmd` is recorded, a later
            // round (for the followers' units) runs it as a retry of
            // itself: recorded once, and its first answer is the one kept.
            let outcome = self
                .committer
                .command_with_grant(grant, self.rerun(asking))
                .await?;
            if !matches!(step.outcome, Outcome::Recorded { .. }) {
                step.outcome = outcome;
            }
            units = flight.take_waiting();
            if units == 0 || granted < asked {
                break;
            }
        }
        flight.done = true;
        Ok(step)
    }

    /// One request for rights: the grant, or `None` if the hub did not
    /// answer in `left`.
    async fn ask(
        &self,
        hub: &HubClient,
        gtin: Gtin,
        units: u64,
        left: Duration,
    ) -> Result<Option<RightsGrant>, CommitError> {
        // The store's own entries go with the request, so the hub grants
        // on its latest state (rights it gave at its last sync).
        let own = self.db.read_blocking(move |db| db.counter(gtin)).await?;
        // A request the hub did not answer lately is asked again as it
        // was: if the hub granted it, it answers that grant again.
        // Not once a sync has reached the hub since (it brought whatever
        // the hub granted), nor for more units than are short now (had it
        // never reached the hub, the replay would be a new grant of them).
        let synced_since = |u: &Unanswered| {
            self.status
                .snapshot()
                .last_sync_at_ms
                .is_some_and(|t| t > u.at_ms)
        };
        let replay = self
            .unanswered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&gtin)
            .copied()
            .filter(|u| u.at.elapsed() < REPLAY_FOR && u.units <= units && !synced_since(u));
        let (request_id, units) = match replay {
            Some(u) => (u.request_id, u.units),
            None => (self.fresh_id(), units.min(MAX_UNITS_PER_REQUEST)),
        };
        let req = RightsRequest {
            request_id,
            gtin,
            units,
            own: own.owned_by(&self.db.who().replica),
        };
        let asked_at = Instant::now();
        // A probe (the hub believed out of reach) wakes the sync only if
        // the hub answers it; an ordinary request only if it does not.
        let was_reachable = self.reach().reachable(&self.status.snapshot(), asked_at);
        let answer = hub.rights(&req, left).await;
        match &answer {
            Ok(_) => self.reach().heard(true, Instant::now()),
            // No answer in a fair share of the wait: out of reach. (A
            // request cut short by its sale's own deadline says nothing;
            // a refusal, 401 to 422, proves no grant can come.)
            Err(Failure::Transient { .. }) if left >= self.wait / 2 => {
                self.reach().heard(false, Instant::now());
            }
            Err(_) => {}
        }
        self.metrics
            .rights_seconds
            .observe(asked_at.elapsed().as_secs_f64());
        let result = match &answer {
            Ok(g) if g.granted == 0 => "refused",
            Ok(g) if g.granted < g.asked => "partial",
            Ok(_) => "granted",
            Err(_) => "failed",
        };
        self.metrics
            .rights_requests
            .get_or_create(&OutcomeLabel { outcome: result })
            .inc();
        let mut unanswered = self.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        match answer {
            Ok(g) => {
                unanswered.remove(&gtin);
                if !was_reachable {
                    // A probe got through: the hub is back, and the sync,
                    // perhaps backing off, goes now.
                    self.wake_sync();
                }
                Ok(Some(g))
            }
            Err(error) => {
                if matches!(error, Failure::Transient { .. }) {
                    // Perhaps granted: asked again as it was, and the
                    // sync brings it meanwhile.
                    unanswered.insert(
                        gtin,
                        Unanswered {
                            request_id,
                            units,
                            at: replay.map_or_else(Instant::now, |u| u.at),
                            at_ms: replay.map_or_else(|| self.clock.now_ms(), |u| u.at_ms),
                        },
                    );
                    if was_reachable {
                        self.wake_sync();
                    }
                } else {
                    // Answered with a refusal: nothing to ask again.
                    unanswered.remove(&gtin);
                }
                tracing::info!(%error, %gtin, "The hub did not grant rights; the sale is refused.");
                Ok(None)
            }
        }
    }
}

/// A command being run with rights on demand, as each of its runs after
/// the first needs it.
#[derive(Clone, Copy)]
struct Asking<'a> {
    /// The command, under the id of its first run.
    cmd: &'a Command,
    /// Its first refusal's demand, and when it was added (the agent's
    /// clock): see [`Rights::unmet`].
    first: (&'a [Shortfall], u64),
    /// Whether its approval may sell beyond rights in these runs.
    overrides: Overrides,
}

/// Whether the demand a refusal answered at `answered_at_ms` (the agent's
/// clock, taken once the answer was heard) added has been reported to
/// the hub, the sync's status being `s`: a sync that succeeded, or one
/// under way, began to read the store after it
/// ([`SyncSnapshot::last_sync_read_at_ms`],
/// [`SyncSnapshot::sync_read_in_flight_ms`]: taken back too, the sync's
/// answer would clear it again from other customers' demand; should that
/// sync then fail, the demand stays counted until the next reports it).
/// One read at the same millisecond may or may not have seen it: not
/// reported.
///
/// Still approximate: a rerun decided just before a sync's read and
/// committed just after it takes back demand the page carries. Exact
/// would be for the committer to decide, against the flush that
/// preceded the read.
fn reported(s: &SyncSnapshot, answered_at_ms: u64) -> bool {
    [s.last_sync_read_at_ms, s.sync_read_in_flight_ms]
        .into_iter()
        .flatten()
        .any(|t| t > answered_at_ms)
}

/// Whether `cmd` is a sale a manager approved (it may sell beyond rights).
fn approved_sale(cmd: &Command) -> bool {
    matches!(cmd, Command::Sale { staff, .. } if staff.approval.is_some())
}

/// How the flight a follower boarded (`landed`) ended, waited for until
/// `deadline` (none: not yet).
async fn landing(
    landed: &mut watch::Receiver<Option<Landed>>,
    deadline: Instant,
) -> Option<Landed> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, landed.wait_for(Option::is_some)).await {
        Ok(Ok(landed)) => *landed,
        _ => None,
    }
}

/// The demand `outcome`'s refusal added (none if recorded).
fn refused_demand(outcome: &Outcome) -> Vec<Shortfall> {
    match outcome {
        Outcome::Refused { demand, .. } => demand.clone(),
        Outcome::Recorded { .. } => Vec::new(),
    }
}

/// Whether `outcome` is a refusal for want of rights.
fn is_short_of_rights(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Refused {
            refusal: Refusal::InsufficientStock { .. },
            ..
        }
    )
}

/// Units per item of sale `cmd`, in the order its lines name them (its
/// lines added up); empty for any other command.
fn units_per_item(cmd: &Command) -> Vec<(Gtin, u64)> {
    let Command::Sale { lines, .. } = cmd else {
        return Vec::new();
    };
    let mut wanted: Vec<(Gtin, u64)> = Vec::new();
    for l in lines {
        match wanted.iter_mut().find(|(g, _)| *g == l.gtin) {
            Some((_, w)) => *w = w.saturating_add(l.qty),
            None => wanted.push((l.gtin, l.qty)),
        }
    }
    wanted
}

/// What one round of asking came to.
struct Step {
    outcome: Outcome,
    /// Units the hub granted (to the flight, for a follower).
    granted: u64,
    /// Whether the hub answered.
    reached: bool,
}

/// The requests for rights in flight, one per item: a till short of an
/// item another till is already asking for boards that flight instead of
/// asking on its own (requests from several tills coalesce).
#[derive(Debug, Default)]
struct Flights {
    inner: Mutex<HashMap<Gtin, InFlight>>,
}

#[derive(Debug)]
struct InFlight {
    /// Units the followers need beyond the leader's.
    waiting: u64,
    /// Turns to how the flight ended when it lands.
    landed: watch::Sender<Option<Landed>>,
}

/// How a till boarded a flight.
enum Boarded {
    /// It asks, for itself and for whoever boards meanwhile.
    Leader(Flight),
    /// Another till asks; this one waits for it to land.
    Follower(watch::Receiver<Option<Landed>>),
}

/// How a flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// The hub answered: this many units granted in all.
    Granted(u64),
    /// The hub did not answer the leader's request (in the leader's
    /// time, which may have been shorter than a follower's).
    Failed,
    /// The leader went away before (its request was dropped).
    Abandoned,
}

impl Flights {
    fn board(self: &Arc<Self>, gtin: Gtin, units: u64) -> Boarded {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inner.get_mut(&gtin) {
            f.waiting = f.waiting.saturating_add(units);
            return Boarded::Follower(f.landed.subscribe());
        }
        let (landed, _) = watch::channel(None);
        inner.insert(gtin, InFlight { waiting: 0, landed });
        Boarded::Leader(Flight {
            flights: self.clone(),
            gtin,
            granted: 0,
            done: false,
            failed: false,
        })
    }
}

/// A leader's flight: lands (its followers wake) when dropped, however
/// the leader ends.
struct Flight {
    flights: Arc<Flights>,
    gtin: Gtin,
    /// Units granted so far.
    granted: u64,
    /// The leader finished asking (else it was dropped midway).
    done: bool,
    /// The hub did not answer the leader's request.
    failed: bool,
}

impl Flight {
    /// The units followers added since the last call.
    fn take_waiting(&self) -> u64 {
        let mut inner = self.flights.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .get_mut(&self.gtin)
            .map_or(0, |f| std::mem::take(&mut f.waiting))
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut inner = self.flights.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inner.remove(&self.gtin) {
            let landed = if self.failed {
                Landed::Failed
            } else if self.done {
                Landed::Granted(self.granted)
            } else {
                Landed::Abandoned
            };
            let _ = f.landed.send(Some(landed));
        }
    }
}

/// Units a sale asks for (all its lines, saturating); `None` for any
/// other command (only sales are counted as lost).
pub fn sale_units(cmd: &Command) -> Option<(u64, Option<EventId>)> {
    match cmd {
        Command::Sale { lines, id, .. } => Some((
            lines.iter().map(|l| l.qty).fold(0, u64::saturating_add),
            *id,
        )),
        _ => None,
    }
}

/// Counts a sale refused for lack of rights (`why`, after rights on
/// demand ran) in the lost-sales totals each sync reports to the hub:
/// once per `sale` id, if it has one, and only if that sale is not
/// recorded soon after (a retry, an override). Queued to the committer
/// without waiting for its commit, so the refusal's answer does not wait
/// for a disk write.
pub async fn count_lost(
    committer: &Committer,
    why: Shortage,
    units: u64,
    sale: Option<RefusedSale>,
) {
    if let Err(e) = committer.lost_sale(why, units, sale).await {
        tracing::warn!(error = %e, reason = why.name(), "Lost sale not counted.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtin(n: u64) -> Gtin {
        Gtin::from_body(96_385_070 + n).unwrap()
    }

    #[tokio::test]
    async fn tills_short_of_one_item_board_one_flight_and_land_with_it() {
        let flights = Arc::new(Flights::default());
        let Boarded::Leader(mut flight) = flights.board(gtin(1), 2) else {
            panic!("the first till leads");
        };
        // Two more tills short of the same item board it; another item
        // gets its own flight.
        let Boarded::Follower(mut a) = flights.board(gtin(1), 1) else {
            panic!("a second till follows");
        };
        let Boarded::Follower(b) = flights.board(gtin(1), 3) else {
            panic!("a third till follows");
        };
        assert!(matches!(flights.board(gtin(2), 1), Boarded::Leader(_)));
        // The leader's next request asks for every unit boarded meanwhile,
        // once.
        assert_eq!(flight.take_waiting(), 4);
        assert_eq!(flight.take_waiting(), 0);
        assert_eq!(*a.borrow(), None, "still in flight");
        flight.granted = 6;
        flight.done = true;
        drop(flight);
        let landed = Some(Landed::Granted(6));
        assert_eq!(*a.wait_for(Option::is_some).await.unwrap(), landed);
        assert_eq!(*b.borrow(), landed);
        // Landed: the next till short of the item leads a new flight.
        assert!(matches!(flights.board(gtin(1), 1), Boarded::Leader(_)));
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_still_lands_its_flight() {
        let flights = Arc::new(Flights::default());
        let leader = flights.board(gtin(1), 1);
        let Boarded::Follower(mut f) = flights.board(gtin(1), 1) else {
            panic!("follows");
        };
        // The leader's request is dropped (its client went away).
        drop(leader);
        assert_eq!(
            *f.wait_for(Option::is_some).await.unwrap(),
            Some(Landed::Abandoned)
        );
        assert!(matches!(flights.board(gtin(1), 1), Boarded::Leader(_)));
    }

    /// A leader whose request the hub did not answer lands its flight as
    /// failed, not as "granted nothing": its followers, which may have
    /// more time left, try again instead of giving up with the hub
    /// counted reachable.
    #[tokio::test]
    async fn a_leader_the_hub_did_not_answer_lands_its_flight_failed() {
        let flights = Arc::new(Flights::default());
        let Boarded::Leader(mut flight) = flights.board(gtin(1), 1) else {
            panic!("leads");
        };
        let Boarded::Follower(mut f) = flights.board(gtin(1), 2) else {
            panic!("follows");
        };
        flight.failed = true;
        flight.done = true;
        drop(flight);
        assert_eq!(
            *f.wait_for(Option::is_some).await.unwrap(),
            Some(Landed::Failed)
        );
    }

    /// Out of reach, the hub is probed once every [`PROBE_EVERY`]; a
    /// sync that got through, an open live link, or an answer of the hub
    /// within [`ANSWERED_FOR`] lets every request ask, probes untouched;
    /// a request the hub did not answer ends that.
    #[test]
    fn out_of_reach_the_hub_is_probed_once_every_few_seconds() {
        let t0 = Instant::now();
        let offline = SyncSnapshot::default();
        let mut r = Reach::default();
        assert!(!r.reachable(&offline, t0));
        assert!(r.probe_due(&offline, t0), "due, not spent by looking");
        assert_eq!(r.probed, None);
        assert!(r.ask_or_probe(&offline, t0), "the first probes");
        let soon = t0 + PROBE_EVERY - Duration::from_millis(1);
        assert!(!r.probe_due(&offline, soon));
        assert!(!r.ask_or_probe(&offline, soon), "the next does not");
        let later = t0 + PROBE_EVERY;
        assert!(r.ask_or_probe(&offline, later), "then one probes again");
        assert_eq!(r.probed, Some(later));
        let synced = [
            SyncSnapshot {
                online: true,
                ..SyncSnapshot::default()
            },
            SyncSnapshot {
                live_since_ms: Some(1),
                ..SyncSnapshot::default()
            },
        ];
        for s in synced {
            assert!(!r.probe_due(&s, later + PROBE_EVERY), "reachable: {s:?}");
            assert!(r.ask_or_probe(&s, later), "{s:?}");
            assert_eq!(r.probed, Some(later), "no probe spent: {s:?}");
        }
        // The hub answered a request (its sync perhaps refused, SYNC
        // STOPPED): every till asks for a while, no probe spent.
        r.heard(true, later);
        let within = later + ANSWERED_FOR - Duration::from_millis(1);
        assert!(r.reachable(&offline, within));
        assert!(r.ask_or_probe(&offline, within));
        assert_eq!(r.probed, Some(later));
        assert!(!r.reachable(&offline, later + ANSWERED_FOR));
        // A request it did not answer: out of reach at once.
        r.heard(false, within);
        assert!(!r.reachable(&offline, within));
    }

    /// A refusal's demand counts as reported by a sync that read the
    /// store after the refusal was answered, not by one that read it
    /// before and was answered after (nor one read at the same
    /// millisecond).
    #[test]
    fn a_refusals_demand_is_reported_by_a_sync_that_read_the_store_after_it() {
        let synced = |read_at_ms| SyncSnapshot {
            online: true,
            last_sync_at_ms: Some(2_000),
            last_sync_read_at_ms: Some(read_at_ms),
            ..SyncSnapshot::default()
        };
        assert!(!reported(&SyncSnapshot::default(), 1_000), "no sync yet");
        assert!(
            !reported(&synced(999), 1_000),
            "read before, answered after"
        );
        assert!(!reported(&synced(1_000), 1_000), "the same millisecond");
        assert!(reported(&synced(1_001), 1_000));
        // A sync under way that read after it: its answer clears it.
        let under_way = SyncSnapshot {
            sync_read_in_flight_ms: Some(1_001),
            ..SyncSnapshot::default()
        };
        assert!(reported(&under_way, 1_000));
    }

    /// A till's retry of a sale still running (a double press, a
    /// timeout) waits for the first run's turn: it never asks the hub in
    /// parallel with it. Other ids do not wait; the ids are forgotten
    /// once nobody runs or waits under them.
    #[tokio::test]
    async fn a_command_under_an_id_waits_for_the_one_running_under_it() {
        let turns = Arc::new(Turns::default());
        let id = EventId::v7(1, [1; 10]);
        let first = turns.turn(id).await;
        let other = turns.turn(EventId::v7(1, [2; 10])).await;
        let waiting = {
            let turns = turns.clone();
            tokio::spawn(async move { turns.turn(id).await })
        };
        tokio::task::yield_now().await;
        let again = tokio::time::timeout(Duration::from_millis(50), async {
            while !waiting.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(again.is_err(), "the retry waits while the first runs");
        drop(first);
        let second = waiting.await.unwrap();
        drop((second, other));
        assert_eq!(turns.len(), 0, "nothing kept once done");
    }
}
