//! Durations in config: strings like `"30m"`, `"5s"`, `"2h"` (humantime), never zero.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Durations in config are strings like `"30m"`, `"5s"`, `"2h"`.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let v = humantime::parse_duration(s.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))?;
    if v.is_zero() {
        return Err(serde::de::Error::custom(format!(
            "duration {s:?} must be greater than zero"
        )));
    }
    Ok(v)
}

/// An optional duration (a present field must still be a valid, non-zero duration).
pub(super) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Writes an optional duration back as a humantime string (`"1s"`).
pub(super) fn ser_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        None => s.serialize_none(),
    }
}
