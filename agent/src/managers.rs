//! Managers' credentials: who may approve what a cashier alone may not
//! (a sale beyond the store's rights). Each manager's PIN or password is
//! kept in the store's configuration as an Argon2id hash (a PHC string,
//! `tally-agent manager-pin` makes one), never in clear; an approval names
//! the manager and carries the PIN, which is checked here and never
//! recorded (the event records the manager's id).
//!
//! PINs are short, so guessing is slowed where it happens: after
//! [`FREE_FAILURES`] wrong PINs in a row for one manager, that manager's
//! approvals are refused for a lockout that doubles with each further
//! failure (from 30 s up to 15 min), whatever the PIN; a right PIN ends
//! the streak. An attempt counts as wrong from its start, so attempts in
//! parallel get no more guesses than attempts in turn. With a
//! [`LockoutStore`] ([`Managers::keeping`]) each count is on disk before
//! the PIN is checked, and a restart keeps the streaks and lockouts
//! (else whoever can restart the agent gets fresh guesses); an attempt
//! whose count cannot be written is refused. An unknown manager costs
//! the same hash as a known one. Which ids exist is no secret kept here
//! (a known id's wrong PIN costs a disk write, and five lock it out);
//! the PINs are.
//!
//! [`Managers::verify`] is CPU work (tens of milliseconds with the
//! default parameters): call it on the blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_store::SystemClock;
use tally_sync::clock::Clock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::config::ManagerConfig;
use crate::lockouts::{Kept, LockoutStore};

/// Wrong PINs in a row allowed before a manager is locked out.
pub const FREE_FAILURES: u32 = 5;
/// The first lockout; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
/// The longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Why an approval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// The store has no manager configured: nobody can approve.
    #[error("no manager is configured at this store ([[managers]] in the agent's configuration; tally-agent manager-pin)")]
    NoManagers,
    /// The approval carries no PIN.
    #[error("the approving manager's PIN is required")]
    MissingPin,
    /// Unknown manager or wrong PIN (not told apart).
    #[error("manager or PIN not accepted")]
    Refused,
    /// Too many wrong PINs for this manager: try again after the lockout.
    #[error("too many wrong PINs for this manager; try again in {0} s")]
    Locked(u64),
    /// The attempt could not be counted on disk: refused unchecked.
    #[error("the attempt could not be counted on the store's disk; try again (the agent's log says why)")]
    NotCounted,
}

/// A configuration entry that cannot be used: an id no request could
/// name as written (empty, padded, control characters, longer than the
/// API takes, twice), or a `pin_argon2` that is not an Argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id {id:?}: {why}")]
pub struct BadEntry {
    /// The entry's id.
    pub id: String,
    /// Why.
    pub why: String,
}

/// The store's managers and their failed attempts.
#[derive(Debug)]
pub struct Managers {
    hashes: HashMap<String, String>,
    dummy: String,
    failures: Mutex<HashMap<String, Streak>>,
    /// Where the streaks are kept, and under which kind.
    kept: Option<(Arc<LockoutStore>, &'static str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    wrong: u32,
    locked_until: Option<Instant>,
}

impl Managers {
    /// From the configuration's entries (each id and hash checked).
    pub fn new(entries: &[ManagerConfig]) -> Result<Self, BadEntry> {
        let mut hashes = HashMap::new();
        for m in entries {
            let bad = |why: String| BadEntry {
                id: m.id.clone(),
                why,
            };
            if m.id.trim().is_empty() || m.id.trim() != m.id {
                return Err(bad("empty, or spaces around it".into()));
            }
            if m.id.chars().any(char::is_control) {
                return Err(bad("control characters".into()));
            }
            if m.id.len() > tally_sync::limits::MAX_STAFF_ID_BYTES {
                return Err(bad(format!(
                    "longer than {} bytes",
                    tally_sync::limits::MAX_STAFF_ID_BYTES
                )));
            }
            PasswordHash::new(&m.pin_argon2).map_err(|e| {
                bad(format!(
                    "pin_argon2 is not an Argon2 hash (PHC string): {e}"
                ))
            })?;
            if hashes.insert(m.id.clone(), m.pin_argon2.clone()).is_some() {
                return Err(bad("listed twice".into()));
            }
        }
        // What an unknown id is checked against: the same cost as the
        // first manager's hash (or the defaults).
        let dummy = entries
            .first()
            .map(|m| m.pin_argon2.clone())
            .unwrap_or_default();
        Ok(Self {
            hashes,
            dummy,
            failures: Mutex::new(HashMap::new()),
            kept: None,
        })
    }

    /// The same, its streaks kept in `store` as `kind` (`manager`,
    /// `cashier`), starting from `loaded` (what the store held for that
    /// kind: those of its configured ids are taken, at `now`, the wall
    /// clock being `wall_ms`, Unix ms; a lockout never outlasts the longest lockout,
    /// 15 min, from now, whatever the clock did).
    pub fn keeping(
        self,
        store: Arc<LockoutStore>,
        kind: &'static str,
        loaded: crate::lockouts::Streaks,
        now: Instant,
        wall_ms: u64,
    ) -> Self {
        let mut failures = HashMap::new();
        for (id, kept) in loaded {
            if !self.hashes.contains_key(&id) {
                continue;
            }
            let locked_until = kept.locked_until_ms.and_then(|until| {
                let left = Duration::from_millis(until.saturating_sub(wall_ms)).min(MAX_LOCKOUT);
                (!left.is_zero()).then(|| now + left)
            });
            failures.insert(
                id,
                Streak {
                    wrong: kept.wrong,
                    locked_until,
                },
            );
        }
        Self {
            failures: Mutex::new(failures),
            kept: Some((store, kind)),
            ..self
        }
    }

    /// Whether any manager is configured.
    pub fn any(&self) -> bool {
        !self.hashes.is_empty()
    }

    /// Checks that `manager`'s PIN is `pin` (at `now`): Ok, or why not.
    /// Counts failures and locks out as the module docs say.
    pub fn verify(
        &self,
        manager: &str,
        pin: Option<&str>,
        now: Instant,
    ) -> Result<(), ApprovalError> {
        if self.hashes.is_empty() {
            return Err(ApprovalError::NoManagers);
        }
        let pin = pin
            .filter(|p| !p.is_empty())
            .ok_or(ApprovalError::MissingPin)?;
        let (hash, known) = match self.hashes.get(manager) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        if known {
            self.begin(manager, now)?;
        }
        let matches = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(pin.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if matches && known {
            // A right PIN ends the streak (kept or not: a streak left on
            // disk only counts on from where it was).
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.remove(manager);
            if let Some((store, kind)) = &self.kept {
                if let Err(e) = store.put(kind, manager, None) {
                    tracing::warn!(error = %e, kind, "A right PIN's end of a streak was not kept.");
                }
            }
            return Ok(());
        }
        Err(ApprovalError::Refused)
    }

    /// Starts one attempt for `manager` at `at`: refused while the
    /// manager is locked out; otherwise counted at once as a wrong PIN
    /// (until the hash says otherwise), under the same lock as the check,
    /// so attempts sent in parallel cannot all pass the check before any
    /// failure is counted. Past the free failures, it locks the manager
    /// out.
    fn begin(&self, manager: &str, at: Instant) -> Result<(), ApprovalError> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let streak = failures.entry(manager.to_string()).or_insert(Streak {
            wrong: 0,
            locked_until: None,
        });
        if let Some(until) = streak.locked_until.filter(|&until| until > at) {
            return Err(ApprovalError::Locked(
                until.saturating_duration_since(at).as_secs().max(1),
            ));
        }
        let before = *streak;
        streak.wrong = streak.wrong.saturating_add(1);
        if streak.wrong >= FREE_FAILURES {
            let doublings = (streak.wrong - FREE_FAILURES).min(16);
            let lockout = FIRST_LOCKOUT
                .saturating_mul(1u32 << doublings)
                .min(MAX_LOCKOUT);
            streak.locked_until = Some(at + lockout);
        }
        if let Some((store, kind)) = &self.kept {
            // On disk before the PIN is checked (the lock held: attempts
            // are kept in the order they are counted).
            let kept = Kept {
                wrong: streak.wrong,
                locked_until_ms: streak.locked_until.map(|until| {
                    SystemClock
                        .now_ms()
                        .saturating_add(millis(until.saturating_duration_since(at)))
                }),
            };
            if let Err(e) = store.put(kind, manager, Some(kept)) {
                // No PIN is checked: no guess to count.
                *streak = before;
                return Err(not_counted(e));
            }
        }
        Ok(())
    }
}

/// An attempt refused because it could not be counted on disk (the
/// details logged, not told to the till).
fn not_counted(e: crate::lockouts::LockoutError) -> ApprovalError {
    tracing::error!(error = %e, "A PIN attempt could not be counted on disk; refused unchecked.");
    ApprovalError::NotCounted
}

/// `d` in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An Argon2id hash of `pin` with the default parameters (19 MiB, 2
/// passes), as a PHC string for `pin_argon2`.
pub fn hash_pin(pin: &str) -> Result<String, String> {
    hash_pin_with(pin, Argon2::default())
}

/// An Argon2id hash of `pin` with cheap parameters (tests only: fast in
/// debug builds, worthless against guessing).
pub fn hash_pin_cheap(pin: &str) -> Result<String, String> {
    let params = argon2::Params::new(256, 1, 1, None).map_err(|e| e.to_string())?;
    hash_pin_with(
        pin,
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
    )
}

fn hash_pin_with(pin: &str, argon: Argon2<'_>) -> Result<String, String> {
    let mut salt = [0u8; 16];
    use rand::RngCore;
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managers() -> Managers {
        let entry = |id: &str, pin: &str| ManagerConfig {
            id: id.into(),
            pin_argon2: hash_pin_cheap(pin).unwrap_or_default(),
        };
        Managers::new(&[entry("ann", "4711"), entry("bo", "0000")])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_right_pin_of_a_known_manager_approves() {
        let m = managers();
        let now = Instant::now();
        assert_eq!(m.verify("ann", Some("4711"), now), Ok(()));
        assert_eq!(
            m.verify("ann", Some("0000"), now),
            Err(ApprovalError::Refused)
        );
        assert_eq!(
            m.verify("bo", Some("4711"), now),
            Err(ApprovalError::Refused)
        );
        assert_eq!(
            m.verify("eve", Some("4711"), now),
            Err(ApprovalError::Refused)
        );
        assert_eq!(m.verify("ann", None, now), Err(ApprovalError::MissingPin));
        assert_eq!(
            m.verify("ann", Some(""), now),
            Err(ApprovalError::MissingPin)
        );
    }

    #[test]
    fn wrong_pins_lock_the_manager_out_and_the_lockout_grows() {
        let m = managers();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(m.verify("ann", Some("1"), t0), Err(ApprovalError::Refused));
        }
        // Locked now, even with the right PIN; another manager is not.
        assert_eq!(
            m.verify("ann", Some("4711"), t0),
            Err(ApprovalError::Locked(30))
        );
        assert_eq!(m.verify("bo", Some("0000"), t0), Ok(()));
        // After the lockout, one more wrong PIN locks for twice as long.
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(m.verify("ann", Some("1"), t1), Err(ApprovalError::Refused));
        assert_eq!(
            m.verify("ann", Some("4711"), t1),
            Err(ApprovalError::Locked(60))
        );
        // The right PIN after that ends the streak.
        let t2 = t1 + Duration::from_secs(61);
        assert_eq!(m.verify("ann", Some("4711"), t2), Ok(()));
        assert_eq!(m.verify("ann", Some("1"), t2), Err(ApprovalError::Refused));
        assert_eq!(m.verify("ann", Some("4711"), t2), Ok(()));
    }

    /// With a store, the streak and the lockout outlast the process: a
    /// restart gives no fresh guesses. Read back, a lockout keeps the
    /// time it had left by the wall clock, never more than the longest
    /// lockout (a clock set back); a right PIN's end of the streak is
    /// kept too; another kind's streaks are its own.
    #[test]
    fn a_restart_keeps_the_streak_and_the_lockout() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = || Arc::new(LockoutStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
        let wall = SystemClock.now_ms();
        let t0 = Instant::now();
        let kept = |store: Arc<LockoutStore>, now, wall| {
            let loaded = store.load("manager").unwrap_or_else(|e| panic!("{e}"));
            managers().keeping(store, "manager", loaded, now, wall)
        };
        let m = kept(store(), t0, wall);
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(m.verify("ann", Some("1"), t0), Err(ApprovalError::Refused));
        }
        drop(m);
        // Restarted: one guess left before the lockout, not five.
        let m = kept(store(), t0, wall);
        assert_eq!(m.verify("ann", Some("1"), t0), Err(ApprovalError::Refused));
        assert!(matches!(
            m.verify("ann", Some("4711"), t0),
            Err(ApprovalError::Locked(29 | 30))
        ));
        drop(m);
        // Restarted 10 s later by the wall clock: 20 s left.
        let later = SystemClock.now_ms() + 10_000;
        let m = kept(store(), t0, later);
        assert!(matches!(
            m.verify("ann", Some("4711"), t0),
            Err(ApprovalError::Locked(19 | 20))
        ));
        drop(m);
        // The clock set back a day: no more than the longest lockout.
        let back = SystemClock.now_ms() - 86_400_000;
        let m = kept(store(), t0, back);
        assert_eq!(
            m.verify("ann", Some("4711"), t0),
            Err(ApprovalError::Locked(MAX_LOCKOUT.as_secs()))
        );
        // Once over, the right PIN ends the streak, kept ended.
        let over = t0 + MAX_LOCKOUT;
        assert_eq!(m.verify("ann", Some("4711"), over), Ok(()));
        drop(m);
        let m = kept(store(), t0, SystemClock.now_ms());
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(m.verify("ann", Some("1"), t0), Err(ApprovalError::Refused));
        }
        drop(m);
        // A cashier of the same id has a streak of its own.
        let cashiers = managers().keeping(store(), "cashier", Vec::new(), t0, SystemClock.now_ms());
        assert_eq!(cashiers.verify("ann", Some("4711"), t0), Ok(()));
        drop(cashiers);
        // An unknown id is kept nowhere.
        let s = store();
        let m = managers().keeping(s.clone(), "manager", Vec::new(), t0, SystemClock.now_ms());
        assert_eq!(m.verify("eve", Some("1"), t0), Err(ApprovalError::Refused));
        let rows = s.load("manager").unwrap_or_default();
        assert!(!rows.iter().any(|(id, _)| id == "eve"), "{rows:?}");
    }

    /// Attempts still being hashed count against the lockout: a cashier
    /// sending many approvals at once gets no more guesses than one at a
    /// time.
    #[test]
    fn attempts_in_flight_count_against_the_lockout() {
        let m = managers();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(m.begin("ann", t0), Ok(()));
        }
        assert_eq!(m.begin("ann", t0), Err(ApprovalError::Locked(30)));
        assert_eq!(
            m.verify("ann", Some("4711"), t0),
            Err(ApprovalError::Locked(30))
        );
        // In parallel, from threads: at most the free failures are tried.
        let m = std::sync::Arc::new(managers());
        let tried: Vec<_> = (0..4 * FREE_FAILURES)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || m.verify("ann", Some("1"), t0))
            })
            .collect();
        let refused = tried
            .into_iter()
            .map(|t| t.join())
            .filter(|t| matches!(t, Ok(Err(ApprovalError::Refused))))
            .count();
        assert_eq!(refused, FREE_FAILURES as usize);
    }

    #[test]
    fn without_managers_nobody_approves_and_bad_hashes_are_refused() {
        let none = Managers::new(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!none.any());
        assert_eq!(
            none.verify("ann", Some("4711"), Instant::now()),
            Err(ApprovalError::NoManagers)
        );
        let bad = ManagerConfig {
            id: "ann".into(),
            pin_argon2: "4711".into(),
        };
        assert!(Managers::new(&[bad]).is_err());
        // Ids a request could not name as written, or twice.
        let entry = |id: &str| ManagerConfig {
            id: id.into(),
            pin_argon2: hash_pin_cheap("4711").unwrap_or_default(),
        };
        for id in ["", " ", " ann", "ann ", "a\u{7}n", &"a".repeat(129)] {
            let refused = Managers::new(&[entry(id)]);
            assert!(refused.is_err(), "{id:?}");
        }
        let twice = Managers::new(&[entry("ann"), entry("ann")]).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(Managers::new(&[entry("Ann O'Neil")]).is_ok());
    }
}
