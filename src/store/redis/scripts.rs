//! The Lua scripts of the Redis backend: every change that touches more than one key, or
//! reads then decides, is one script, so it is atomic with respect to every other daemon's
//! calls. Times come from `redis.call('TIME')` inside the script (Redis replicates a script's
//! effects, so this is allowed and every daemon agrees on one clock); callers pass durations
//! in milliseconds, never instants.
//!
//! Scripts are sent with EVALSHA and loaded on `NOSCRIPT` (after a Redis restart, too) by
//! [`redis::Script`]. Key names are built in Rust ([`super::keys::Keys`]) and passed as `KEYS`,
//! except a session's own hash in the record scripts, which depends on the target stored in the
//! index and is built here with the same layout (`<prefix>:{t:<target>}:s:<id>`).

use redis::Script;

/// Lua helpers prepended to the scripts that need them: Redis's clock in milliseconds, a
/// session hash's name, and the one way a session record is written.
///
/// A session hash expires [`GRACE_MS`](super::GRACE_MS) after the later of its `expires_at`
/// and now, so Redis's memory stays bounded even if no daemon is left to delete it, while a
/// record is never dropped before the pool has had a month to retire and delete it.
macro_rules! lua_common {
    () => {
        r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(n)
  return string.format('%.0f', n)
end
local function session_key(prefix, target, sid)
  return prefix .. ':{t:' .. target .. '}:s:' .. sid
end
-- Writes one session record and its index entry; `token` is the fence token of the claim
-- whose commit wrote it ('' for a direct write).
local function write_session(prefix, index, sid, target, blob, state, created, expires, token, now)
  local old = redis.call('HGET', index, sid)
  if old and old ~= target then
    redis.call('DEL', session_key(prefix, old, sid))
  end
  local k = session_key(prefix, target, sid)
  redis.call('HSET', k, 'v', '1', 'target', target, 'blob', blob, 'state', state,
    'created_at', created, 'expires_at', expires, 'warmed_by', token)
  redis.call('HINCRBY', k, 'rev', 1)
  local keep = math.max(tonumber(expires) or 0, now) + 2592000000
  redis.call('PEXPIREAT', k, ms(math.min(keep, 253402300799000)))
  redis.call('HSET', index, sid, target)
end
-- Whether `tok` is the current, unexpired claim of `item`.
local function current(inflight, owner, item, tok, now)
  if redis.call('HGET', owner, item) ~= tok then
    return false
  end
  local deadline = redis.call('ZSCORE', inflight, item)
  return deadline ~= false and deadline ~= nil and tonumber(deadline) > now
end
"#
    };
}

/// The shared helpers' text (for tests of the constants it holds).
#[cfg(test)]
pub(super) fn lua_common_text() -> &'static str {
    lua_common!()
}

/// Number of `ARGV` entries per session in [`Scripts::update_sessions`] and the record part
/// of [`Scripts::commit`]: id, target, blob, state, created_at, expires_at.
pub(super) const SESSION_ARGS: usize = 6;

/// Every script, compiled (hashed) once per store.
pub(super) struct Scripts {
    /// Checks the schema version and records or checks the key id.
    /// `KEYS[1]` meta; `ARGV` schema version, key id or ''. Returns `{schema, stored key id or ''}`.
    pub open: Script,
    /// `KEYS[1]` index; `ARGV` prefix, then one session ([`SESSION_ARGS`]).
    pub put_session: Script,
    /// `KEYS[1]` index; `ARGV` prefix, then sessions ([`SESSION_ARGS`] each). Rewrites those
    /// still stored; returns how many.
    pub update_sessions: Script,
    /// `KEYS[1]` index; `ARGV` prefix, id. Returns the blob or nil (dropping an index entry
    /// whose record expired).
    pub get_session: Script,
    /// `KEYS[1]` index; `ARGV` prefix, id. Returns 1 when a record was deleted.
    pub delete_session: Script,
    /// `KEYS[1]` index; `ARGV` prefix. Returns `{id, blob, id, blob, ...}`.
    pub list_sessions: Script,
    /// `KEYS[1]` audit list; `ARGV` keep. Returns how many entries were removed.
    pub trim_audit: Script,
    /// `KEYS` work, inflight, qseq, qctr, targets; `ARGV` item, delay ms, target.
    pub enqueue: Script,
    /// `KEYS` work, inflight, qseq, qctr, seq, targets; `ARGV` missing, target.
    pub top_up: Script,
    /// `KEYS` work, inflight, owner, qseq, fence; `ARGV` ttl ms, nonce, holder.
    /// Returns `{item, token}` or nil.
    pub claim: Script,
    /// `KEYS` inflight, owner; `ARGV` item, token, ttl ms. Returns 1 when renewed.
    pub renew: Script,
    /// `KEYS` inflight, owner, attempts, index; `ARGV` item, token, prefix, then nothing or
    /// one session ([`SESSION_ARGS`]). Returns 1 when committed.
    pub commit: Script,
    /// `KEYS` work, inflight, owner, attempts, qseq, qctr; `ARGV` item, token, retry ms or ''.
    /// Returns 1 when abandoned.
    pub abandon: Script,
    /// `KEYS` work, inflight, owner, attempts, qseq, qctr; `ARGV` max attempts.
    /// Returns `{item, attempts, dead (0|1), ...}`.
    pub reap: Script,
    /// `KEYS` hold key, fence; `ARGV` nonce, holder, ttl ms. Returns the token or nil.
    pub hold: Script,
    /// `KEYS` hold key; `ARGV` token, ttl ms. Returns 1 when renewed.
    pub renew_hold: Script,
    /// `KEYS` hold key; `ARGV` token. Returns 1 when it was current (and is now released).
    pub release_hold: Script,
    /// `KEYS` usage hash; `ARGV` uses, successes, failures. Returns 1 when seeded.
    pub seed_usage: Script,
    /// `KEYS` usage hash; `ARGV` uses, successes, failures. Returns the new `{uses, successes,
    /// failures}`.
    pub add_usage: Script,
}

impl Scripts {
    /// Hashes every script (they are loaded into Redis on first use).
    pub(super) fn new() -> Self {
        Self {
            open: Script::new(OPEN),
            put_session: Script::new(PUT_SESSION),
            update_sessions: Script::new(UPDATE_SESSIONS),
            get_session: Script::new(GET_SESSION),
            delete_session: Script::new(DELETE_SESSION),
            list_sessions: Script::new(LIST_SESSIONS),
            trim_audit: Script::new(TRIM_AUDIT),
            enqueue: Script::new(ENQUEUE),
            top_up: Script::new(TOP_UP),
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            commit: Script::new(COMMIT),
            abandon: Script::new(ABANDON),
            reap: Script::new(REAP),
            hold: Script::new(HOLD),
            renew_hold: Script::new(RENEW_HOLD),
            release_hold: Script::new(RELEASE_HOLD),
            seed_usage: Script::new(SEED_USAGE),
            add_usage: Script::new(ADD_USAGE),
        }
    }
}

const OPEN: &str = r#"
redis.call('HSETNX', KEYS[1], 'schema_version', ARGV[1])
local schema = redis.call('HGET', KEYS[1], 'schema_version')
local stored = redis.call('HGET', KEYS[1], 'key_id')
if ARGV[2] ~= '' and not stored then
  redis.call('HSET', KEYS[1], 'key_id', ARGV[2], 'cipher', 'chacha20poly1305')
  stored = ARGV[2]
end
return {schema, stored or ''}
"#;

const PUT_SESSION: &str = concat!(
    lua_common!(),
    r#"
local a = ARGV
write_session(a[1], KEYS[1], a[2], a[3], a[4], a[5], a[6], a[7], '', now_ms())
return 1
"#
);

const UPDATE_SESSIONS: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
local written = 0
for i = 2, #ARGV, 6 do
  local sid = ARGV[i]
  local target = redis.call('HGET', KEYS[1], sid)
  if target and redis.call('EXISTS', session_key(ARGV[1], target, sid)) == 1 then
    write_session(ARGV[1], KEYS[1], sid, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
      ARGV[i + 5], '', now)
    written = written + 1
  end
end
return written
"#
);

const GET_SESSION: &str = concat!(
    lua_common!(),
    r#"
local target = redis.call('HGET', KEYS[1], ARGV[2])
if not target then
  return false
end
local blob = redis.call('HGET', session_key(ARGV[1], target, ARGV[2]), 'blob')
if not blob then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return false
end
return blob
"#
);

const DELETE_SESSION: &str = concat!(
    lua_common!(),
    r#"
local target = redis.call('HGET', KEYS[1], ARGV[2])
if not target then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
return redis.call('DEL', session_key(ARGV[1], target, ARGV[2]))
"#
);

const LIST_SESSIONS: &str = concat!(
    lua_common!(),
    r#"
local out = {}
local index = redis.call('HGETALL', KEYS[1])
for i = 1, #index, 2 do
  local blob = redis.call('HGET', session_key(ARGV[1], index[i + 1], index[i]), 'blob')
  if blob then
    out[#out + 1] = index[i]
    out[#out + 1] = blob
  end
end
return out
"#
);

const TRIM_AUDIT: &str = r#"
local keep = tonumber(ARGV[1])
local len = redis.call('LLEN', KEYS[1])
if len <= keep then
  return 0
end
if keep == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('LTRIM', KEYS[1], 0, keep - 1)
end
return len - keep
"#;

const ENQUEUE: &str = concat!(
    lua_common!(),
    r#"
local item = ARGV[1]
if redis.call('ZSCORE', KEYS[1], item) or redis.call('ZSCORE', KEYS[2], item) then
  return 0
end
redis.call('ZADD', KEYS[1], ms(now_ms() + tonumber(ARGV[2])), item)
redis.call('HSET', KEYS[3], item, redis.call('INCR', KEYS[4]))
redis.call('SADD', KEYS[5], ARGV[3])
return 1
"#
);

const TOP_UP: &str = concat!(
    lua_common!(),
    r#"
local have = 0
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(m, 1, 5) == 'warm:' then
      have = have + 1
    end
  end
end
local add = tonumber(ARGV[1]) - have
if add <= 0 then
  return 0
end
local now = ms(now_ms())
for _ = 1, add do
  local item = 'warm:' .. redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[1], now, item)
  redis.call('HSET', KEYS[3], item, redis.call('INCR', KEYS[4]))
end
redis.call('SADD', KEYS[6], ARGV[2])
return add
"#
);

const CLAIM: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 or tonumber(first[2]) > now then
  return false
end
-- Items due at the same millisecond go in the order they were queued.
local best, best_seq = nil, nil
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], first[2], first[2])) do
  local q = tonumber(redis.call('HGET', KEYS[4], m) or '0')
  if best_seq == nil or q < best_seq then
    best, best_seq = m, q
  end
end
redis.call('ZREM', KEYS[1], best)
redis.call('HDEL', KEYS[4], best)
local tok = redis.call('INCR', KEYS[5]) .. ':' .. ARGV[2] .. ':' .. ARGV[3]
redis.call('ZADD', KEYS[2], ms(now + tonumber(ARGV[1])), best)
redis.call('HSET', KEYS[3], best, tok)
return {best, tok}
"#
);

const RENEW: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
if not current(KEYS[1], KEYS[2], ARGV[1], ARGV[2], now) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ms(now + tonumber(ARGV[3])), ARGV[1])
return 1
"#
);

const COMMIT: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
local item, tok = ARGV[1], ARGV[2]
if not current(KEYS[1], KEYS[2], item, tok, now) then
  return 0
end
if #ARGV > 3 then
  write_session(ARGV[3], KEYS[4], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], tok, now)
end
redis.call('ZREM', KEYS[1], item)
redis.call('HDEL', KEYS[2], item)
redis.call('HDEL', KEYS[3], item)
return 1
"#
);

const ABANDON: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
local item = ARGV[1]
if not current(KEYS[2], KEYS[3], item, ARGV[2], now) then
  return 0
end
redis.call('ZREM', KEYS[2], item)
redis.call('HDEL', KEYS[3], item)
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], ms(now + tonumber(ARGV[3])), item)
  redis.call('HSET', KEYS[5], item, redis.call('INCR', KEYS[6]))
else
  redis.call('HDEL', KEYS[4], item)
end
return 1
"#
);

const REAP: &str = concat!(
    lua_common!(),
    r#"
local now = now_ms()
local max = tonumber(ARGV[1])
local out = {}
for _, item in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms(now), 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], item)
  redis.call('HDEL', KEYS[3], item)
  local attempts = redis.call('HINCRBY', KEYS[4], item, 1)
  local dead = 0
  if attempts < max then
    redis.call('ZADD', KEYS[1], ms(now), item)
    redis.call('HSET', KEYS[5], item, redis.call('INCR', KEYS[6]))
  else
    redis.call('HDEL', KEYS[4], item)
    dead = 1
  end
  out[#out + 1] = item
  out[#out + 1] = attempts
  out[#out + 1] = dead
end
return out
"#
);

const HOLD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local tok = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], tok, 'PX', ARGV[3])
return tok
"#;

const RENEW_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

const RELEASE_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"#;

const SEED_USAGE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'uses', ARGV[1], 'successes', ARGV[2], 'failures', ARGV[3])
return 1
"#;

const ADD_USAGE: &str = r#"
return {
  redis.call('HINCRBY', KEYS[1], 'uses', ARGV[1]),
  redis.call('HINCRBY', KEYS[1], 'successes', ARGV[2]),
  redis.call('HINCRBY', KEYS[1], 'failures', ARGV[3]),
}
"#;
