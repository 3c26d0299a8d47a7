//! The one reading of the wall clock, for the edges.
//!
//! Core's logic never calls this: every function that needs the time takes `now` (milliseconds
//! since the Unix epoch, as an `i64`) as an argument, so tests choose it. The CLI, the web app,
//! the relay's sync agent and the tests read the clock here, at the edge, so that the unit and
//! the treatment of a clock set before 1970 are the same everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the system clock; 0 for a clock set before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_this_code_was_written() {
        // 2024-01-01T00:00:00Z: a clock reading before it is not milliseconds since 1970.
        assert!(now_ms() > 1_704_067_200_000);
    }
}
