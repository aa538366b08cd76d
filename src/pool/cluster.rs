//! The cluster as this daemon last saw it: it beats a heartbeat into the coordination every
//! [`BEAT_EVERY`] (with its counters) and reads back the daemons seen within [`SEEN_WITHIN`]
//! ([`Pool::beat`], run by `schedule::heartbeat`). `/metrics` and `GET /api/status` show that
//! cached view, so they never wait on the store. With sled or memory the cluster is this daemon
//! alone. Nothing decides on it: a lapsing lease is what hands a dead daemon's work over.

use std::time::Duration;

use super::{chain, lock, Pool};
use crate::store::{CoordCounters, NodeInfo};
use crate::warm::Warm;

/// How often a daemon beats its heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_secs(3);

/// A daemon is "seen" while its last beat is at most this old (five beats).
pub const SEEN_WITHIN: Duration = Duration::from_secs(15);

/// A daemon silent for this long is forgotten by the backend.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);

/// What [`Pool::beat`] last saw of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The daemons seen within [`SEEN_WITHIN`], most recent first (this one included once it
    /// has beaten). Kept from the last beat that could read them.
    pub nodes: Vec<NodeInfo>,
    /// Why the last beat failed (the store unreachable), if it did; no credentials.
    pub error: Option<String>,
}

impl<W: Warm> Pool<W> {
    /// Beats this daemon's heartbeat (its name and counters) into the coordination and reads
    /// back who is alive, for [`Pool::cluster_view`]. A failure is kept as the view's `error`
    /// (the last list of daemons stays).
    pub async fn beat(&self) {
        let coordination = self.coordination();
        let seen = match coordination.heartbeat(FORGET_AFTER).await {
            Ok(()) => coordination.nodes(SEEN_WITHIN).await,
            Err(e) => Err(e),
        };
        let mut view = lock(&self.cluster);
        match seen {
            Ok(nodes) => {
                view.nodes = nodes;
                view.error = None;
            }
            Err(e) => {
                tracing::debug!(error = %chain(&e), "cluster heartbeat");
                view.error = Some(chain(&e));
            }
        }
    }

    /// The cluster as the last [`Pool::beat`] saw it (no store call).
    pub fn cluster_view(&self) -> ClusterView {
        lock(&self.cluster).clone()
    }

    /// This daemon's coordination counters now: claims held, takeovers, lease losses (no store
    /// call).
    pub fn coord_counters(&self) -> CoordCounters {
        self.coordination().counters()
    }
}
