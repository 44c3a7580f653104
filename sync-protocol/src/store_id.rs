//! The one rule for a store id where it becomes a file name, a directory
//! name or a certificate field (the hub's `issued/<store>/`, the SAN URI
//! `urn:tally:store:<store>`, the agent's `--store-id`): a [`ReplicaId`]
//! narrowed, so a valid store id is always a valid replica id, and the
//! check answers one.
//!
//! # The rule
//! A replica id (1 to 64 characters of `[A-Za-z0-9._-]`,
//! [`crate::ids`]) and, further: at most 63 characters, lower case only;
//! the first is a letter or a digit (so no leading dot or dash, and never
//! `.` or `..`); no two dots in a row; not ending with a dot; not `hub`
//! (the hub's own replica id). Ids such as `store-042`, `s1` or `north.1`
//! are valid; `..`, `.hidden`, `A1`, `a/b` and `-x` are not.
//!
//! Lower case only, so two ids never name the same directory on a
//! case-insensitive file system; no `/`, `\`, NUL or spaces, so an id is
//! always one plain path component; at most 63 characters, so it fits a
//! DNS label.

use crate::ids::{IdError, ReplicaId};

/// The rule in words, for error messages and help texts.
pub const STORE_ID_RULE: &str = "1-63 characters of [a-z0-9._-], starting with a letter or digit, \
     no \"..\", not ending with \".\", not \"hub\"";

/// The longest store id.
pub const MAX_STORE_ID_LEN: usize = 63;

/// Why a string is not a store id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store id {shown:?}: {why}; a store id is {STORE_ID_RULE}")]
pub struct StoreIdError {
    /// The id given (at most 80 characters of it).
    pub shown: String,
    /// What broke the rule.
    pub why: &'static str,
}

/// Checks `id` against the store id rule (see the module docs): the
/// replica id it names, or what broke the rule.
pub fn check_store_id(id: &str) -> Result<ReplicaId, StoreIdError> {
    let fail = |why| {
        Err(StoreIdError {
            shown: id.chars().take(80).collect(),
            why,
        })
    };
    const OUTSIDE: &str = "it has a character outside [a-z0-9._-]";
    const LONGER: &str = "it is longer than 63 characters";
    let replica = match ReplicaId::new(id) {
        Ok(r) => r,
        Err(IdError::BadLength(0)) => return fail("it is empty"),
        Err(IdError::BadLength(_)) => return fail(LONGER),
        Err(_) => return fail(OUTSIDE),
    };
    let bytes = id.as_bytes();
    let Some(&first) = bytes.first() else {
        return fail("it is empty");
    };
    if bytes.len() > MAX_STORE_ID_LEN {
        return fail(LONGER);
    }
    if bytes.iter().any(u8::is_ascii_uppercase) {
        return fail(OUTSIDE);
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return fail("it does not start with a letter or digit");
    }
    if id.contains("..") {
        return fail("it contains \"..\"");
    }
    if id.ends_with('.') {
        return fail("it ends with \".\"");
    }
    if replica.is_hub() {
        return fail("\"hub\" is reserved for the hub's own replica id");
    }
    Ok(replica)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_rule_as_a_table() {
        let long_ok = "a".repeat(63);
        let too_long = "a".repeat(64);
        let valid = [
            "s1",
            "store-north",
            "store-042",
            "honest",
            "north.1",
            "a_b",
            "0",
            "9lives",
            long_ok.as_str(),
            "a.b.c",
            "hubs",
        ];
        for id in valid {
            let replica = check_store_id(id).unwrap();
            assert_eq!(replica.as_str(), id, "{id}");
        }
        let invalid = [
            ("", "empty"),
            ("..", "start"),
            (".", "start"),
            (".hidden", "start"),
            ("-x", "start"),
            ("_x", "start"),
            ("a..b", ".."),
            ("a.", "ends"),
            ("A1", "outside"),
            ("a/b", "outside"),
            ("a\\b", "outside"),
            ("a b", "outside"),
            ("a\0b", "outside"),
            ("é", "outside"),
            ("hub", "hub"),
            (too_long.as_str(), "longer"),
        ];
        for (id, why) in invalid {
            let e = check_store_id(id).unwrap_err();
            assert!(e.why.contains(why), "{id:?}: {}", e.why);
            assert!(e.to_string().contains(STORE_ID_RULE), "{e}");
        }
    }
}
