//! Cashiers signed in at the tills. With `[[cashiers]]` configured (each
//! an id and an Argon2id hash of the cashier's PIN, checked by the same
//! [`Managers`](crate::managers::Managers) code, lockout included), a
//! sale or a return is recorded only under a signed-in cashier's session:
//! the terminal signs in (`POST /v1/cashiers/sign-in`, cashier and PIN)
//! and sends the session's token with every request
//! ([`SESSION_HEADER`]); the event records the session's cashier, not a
//! name the request asserts. Without `[[cashiers]]` the cashier a request
//! names is recorded as given.
//!
//! Sessions live in memory: an agent restart signs everyone out (the
//! terminal asks again). A session ends when its cashier signs out, after
//! [`IDLE`] without a request, or when more than [`MAX_SESSIONS`] are
//! open (the longest idle goes). A session opened through a till's token
//! is good with that token only. Tokens are random (256 bits); the agent
//! keeps their SHA-256 digests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The request header that carries a session's token.
pub const SESSION_HEADER: &str = "x-tally-session";
/// How long a session lasts without a request.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// The most sessions open at once.
pub const MAX_SESSIONS: usize = 1_000;

/// A cashier's session, as a request presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The cashier's id (`[[cashiers]] id`).
    pub cashier: String,
    /// The till whose token opened it, when tills have tokens.
    pub till: Option<String>,
}

#[derive(Debug)]
struct Open {
    who: SignedIn,
    last_used: Instant,
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Open>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for `who` at `now`; answers its token (shown once).
    pub fn open(&self, who: SignedIn, now: Instant) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, s| now.saturating_duration_since(s.last_used) < IDLE);
        while open.len() >= MAX_SESSIONS {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            open.remove(&oldest);
        }
        open.insert(
            digest(&token),
            Open {
                who,
                last_used: now,
            },
        );
        token
    }

    /// The session `token` names, used at `now` (its idle time starts
    /// again); `None` if it is not open (never, signed out, or idle too
    /// long).
    pub fn check(&self, token: &str, now: Instant) -> Option<SignedIn> {
        let key = digest(token);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let expired = match open.get_mut(&key) {
            None => return None,
            Some(s) if now.saturating_duration_since(s.last_used) >= IDLE => true,
            Some(s) => {
                s.last_used = now;
                return Some(s.who.clone());
            }
        };
        if expired {
            open.remove(&key);
        }
        None
    }

    /// How many sessions are open at `now` (signed in, not idle too long).
    pub fn open_at(&self, now: Instant) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.values()
            .filter(|s| now.saturating_duration_since(s.last_used) < IDLE)
            .count()
    }

    /// Ends the session `token` names; whether one was open.
    pub fn close(&self, token: &str) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&digest(token)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> SignedIn {
        SignedIn {
            cashier: "ann".into(),
            till: Some("till-1".into()),
        }
    }

    #[test]
    fn a_session_is_good_until_signed_out_or_idle_too_long() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let token = s.open(ann(), t0);
        assert_eq!(token.len(), 64);
        assert_eq!(s.check(&token, t0 + Duration::from_secs(60)), Some(ann()));
        // Used: idle time starts again.
        let later = t0 + IDLE - Duration::from_secs(1);
        assert_eq!(s.check(&token, later), Some(ann()));
        assert_eq!(
            s.check(&token, later + IDLE - Duration::from_secs(1)),
            Some(ann())
        );
        assert_eq!(s.check(&token, later + 3 * IDLE), None, "idle too long");
        assert_eq!(s.check(&token, later), None, "gone for good");
        let again = s.open(ann(), t0);
        assert_ne!(again, token);
        assert_eq!(s.open_at(t0), 1);
        assert_eq!(s.open_at(t0 + IDLE), 0, "idle too long is not open");
        assert!(s.close(&again));
        assert_eq!(s.open_at(t0), 0);
        assert!(!s.close(&again));
        assert_eq!(s.check(&again, t0), None);
        assert_eq!(s.check("not a token", t0), None);
    }

    #[test]
    fn the_longest_idle_session_goes_beyond_the_cap() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open(ann(), t0);
        let mut last = String::new();
        for i in 1..=MAX_SESSIONS {
            last = s.open(ann(), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(s.check(&first, t0), None, "the oldest went");
        assert!(s.check(&last, t0 + Duration::from_secs(1)).is_some());
    }
}
