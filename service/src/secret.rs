//! Comparing secrets without telling an attacker how much of a guess was
//! right: the agent's till tokens, the hub's admin token and enrollment
//! code hashes all go through [`secrets_equal`].

use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in time independent of their
/// contents (only of their lengths: a secret's length is not secret).
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_are_compared() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
        assert!(secrets_equal(&[7; 32], &[7; 32]));
        assert!(!secrets_equal(&[7; 32], &[8; 32]));
    }
}
