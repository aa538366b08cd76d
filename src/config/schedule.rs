//! `[schedule]`: daemon-wide worker intervals (per-target ones live on the target).

use super::duration::duration;
use serde::Deserialize;
use std::time::Duration;

/// `[schedule]`: daemon-wide worker intervals (per-target ones live on the target).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// How often the top-up checks pool sizes (it is also woken on every retire). Default: 2 s.
    #[serde(deserialize_with = "duration")]
    pub top_up_every: Duration,
    /// How often in-memory use counts and health are written. Default: 2 s.
    #[serde(deserialize_with = "duration")]
    pub persist_every: Duration,
    /// How often retired sessions are cleaned up. Default: 10 min.
    #[serde(deserialize_with = "duration")]
    pub cleanup_every: Duration,
    /// How long a retired session is kept for inspection. Default: 1 h.
    #[serde(deserialize_with = "duration")]
    pub retired_retention: Duration,
    /// Audit entries kept. Default: 10000.
    pub audit_keep: usize,
    /// Heartbeat log line. Default: 1 min.
    #[serde(deserialize_with = "duration")]
    pub heartbeat_every: Duration,
    /// Status report (counts per state per target). Default: 10 min.
    #[serde(deserialize_with = "duration")]
    pub status_every: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            top_up_every: Duration::from_secs(2),
            persist_every: Duration::from_secs(2),
            cleanup_every: Duration::from_secs(600),
            retired_retention: Duration::from_secs(3600),
            audit_keep: 10_000,
            heartbeat_every: Duration::from_secs(60),
            status_every: Duration::from_secs(600),
        }
    }
}
