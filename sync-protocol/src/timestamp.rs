//! How the APIs show a time: Unix milliseconds (what the journal and the
//! sync state store) as RFC 3339 in UTC, so the agent's `/v1/status`, the
//! hub's store list and its dashboard all read the same way.

/// Unix milliseconds as RFC 3339 UTC, e.g. `2025-11-23T12:13:20.123Z`
/// (the fraction only when it is not zero). Beyond year 9999, which
/// RFC 3339 cannot write, it answers an empty string.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_763_900_000_123), "2025-11-23T12:13:20.123Z");
    }

    #[test]
    fn times_rfc3339_cannot_write_are_empty() {
        assert_eq!(rfc3339(u64::MAX), "");
    }
}
