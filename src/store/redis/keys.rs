//! [`Keys`]: the name of every key the Redis backend writes, all under `<prefix>:`.
//!
//! | Key | Type | Holds |
//! |---|---|---|
//! | `P:meta` | HASH | `schema_version`; `key_id` and `cipher` once a daemon with a key opened it |
//! | `P:sessions` | HASH | session id → target (the index `get_session(id)` starts from) |
//! | `P:{t:T}:s:<id>` | HASH | one session: `v`, `rev`, `target`, `state`, `blob` (JSON, or the same envelope sled writes when a key is set), `created_at`, `expires_at`, `warmed_by` (fence token of the committing claim) |
//! | `P:events` | HASH | `<target>\0<id>` → event JSON |
//! | `P:audit` | LIST | audit entries as JSON, newest first, capped |
//! | `P:targets` | SET | targets that have work queues (what `reap` walks) |
//! | `P:nodes` | ZSET | daemon name → its last heartbeat (ms, Redis clock); for status only |
//! | `P:node:<name>` | HASH | a daemon's coordination counters as of its last heartbeat |
//! | `P:{t:T}:work` | ZSET | `<queueing order, 16 digits>\|<item>` → due time (ms, Redis clock): the head is the next item to claim |
//! | `P:{t:T}:qseq`, `P:{t:T}:qctr` | HASH, STRING | queued item → its `work` member, and the queueing counter |
//! | `P:{t:T}:warms` | SET | new-session items (`warm:<n>`) queued or in flight (what `top_up` counts) |
//! | `P:{t:T}:settled` | ZSET | new-session items committed lately → until when (ms) they still count for `top_up`: other daemons' indexes see the new session only at their next resync |
//! | `P:{t:T}:holds` | ZSET | held session → hold deadline (ms): a target's holds listed in one step (`holds`) |
//! | `P:{t:T}:inflight` | ZSET | claimed item → lease deadline (ms): the one truth of expiry |
//! | `P:{t:T}:owner` | HASH | claimed item → fence token `<n>:<nonce>:<node>` |
//! | `P:{t:T}:items` | ZSET | named work item (`refresh:<id>`, `validate:<id>`, `rotate:<id>`, `keepalive:<account>`) → deadline of its grant, or of its rest once finished (ms) |
//! | `P:{t:T}:iowner` | HASH | named work item → fence token of its grant (`''` while it rests) |
//! | `P:{t:T}:attempts` | HASH | item → lapsed claims so far |
//! | `P:{t:T}:fence`, `P:{t:T}:seq` | STRING | fence counter, new-session item counter |
//! | `P:{t:T}:rev` | STRING | the target's revision: bumped by every session write, rewrite and delete (same script) |
//! | `P:{t:T}:changed` | ZSET | session id → revision of its last change (deletions included) |
//! | `P:{t:T}:gone`, `P:{t:T}:floor` | ZSET, STRING | deleted id → when (ms), kept an hour; highest revision of a forgotten deletion |
//! | `P:{t:T}:hold:<id>` | STRING | a scraper's exclusive hold: its token, expiring with it (`PX`) |
//! | `P:{t:T}:u:<id>` | HASH | usage counters `uses`, `successes`, `failures` (`HINCRBY`) |
//!
//! Every key of one target carries the hash tag `{t:T}`, so each coordination script touches
//! one slot. The records' index, events, audit and targets keys are shared by all targets:
//! the backend runs on one Redis primary (with replicas or Sentinel), not Redis Cluster.

/// A target's own work-queue keys (`P:{t:T}:<name>`), in the order every work-queue script
/// receives them as `KEYS`, followed by the shared `targets` set and `sessions` index
/// ([`Keys::lane`]); the scripts name them in the same order (scripts.rs).
pub(super) const LANE: [&str; 10] = [
    "work", "inflight", "owner", "attempts", "qseq", "qctr", "warms", "seq", "fence", "settled",
];

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `store.prefix`, without the trailing `:`.
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix (Lua scripts build session keys from it).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P:meta`.
    pub(super) fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }

    /// `P:sessions`, the id → target index.
    pub(super) fn index(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    /// `P:events`.
    pub(super) fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `P:audit`.
    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// `P:targets`.
    pub(super) fn targets(&self) -> String {
        format!("{}:targets", self.prefix)
    }

    /// `P:nodes`, the heartbeat ZSET (each daemon's counters are in `P:node:<name>`, a name
    /// the scripts build from the prefix).
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// `P:{t:T}:<name>`, a key of target `T`.
    pub(super) fn of(&self, target: &str, name: &str) -> String {
        format!("{}:{{t:{target}}}:{name}", self.prefix)
    }

    /// The `KEYS` of every work-queue script of `target`: its [`LANE`] keys, then `P:targets`
    /// and `P:sessions`.
    pub(super) fn lane(&self, target: &str) -> Vec<String> {
        let mut keys: Vec<String> = LANE.iter().map(|name| self.of(target, name)).collect();
        keys.extend([self.targets(), self.index()]);
        keys
    }

    /// The `KEYS` of every named-item script of `target`: `items`, `iowner`, `fence` (the
    /// target's token counter, shared with its queue) and `P:sessions`.
    pub(super) fn items(&self, target: &str) -> Vec<String> {
        vec![
            self.of(target, "items"),
            self.of(target, "iowner"),
            self.of(target, "fence"),
            self.index(),
        ]
    }

    /// `P:{t:T}:hold:<id>`.
    pub(super) fn hold(&self, target: &str, session: &str) -> String {
        self.of(target, &format!("hold:{session}"))
    }

    /// `P:{t:T}:holds`: held session → hold deadline (ms), beside each hold key, so a
    /// daemon lists a target's holds in one step.
    pub(super) fn holds(&self, target: &str) -> String {
        self.of(target, "holds")
    }

    /// `P:{t:T}:u:<id>`.
    pub(super) fn usage(&self, target: &str, session: &str) -> String {
        self.of(target, &format!("u:{session}"))
    }

    /// `P:{t:T}:s:<id>` (the Lua scripts build the same name).
    #[cfg(test)]
    pub(super) fn session(&self, target: &str, session: &str) -> String {
        self.of(target, &format!("s:{session}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_target_shares_its_hash_tag() {
        let k = Keys::new("sw");
        assert_eq!(k.of("tickets", "work"), "sw:{t:tickets}:work");
        assert_eq!(k.hold("tickets", "a1"), "sw:{t:tickets}:hold:a1");
        assert_eq!(k.usage("tickets", "a1"), "sw:{t:tickets}:u:a1");
        assert_eq!(k.session("tickets", "a1"), "sw:{t:tickets}:s:a1");
        assert_eq!(k.index(), "sw:sessions");
        assert_eq!(Keys::new("prod:eu").meta(), "prod:eu:meta");
    }
}
