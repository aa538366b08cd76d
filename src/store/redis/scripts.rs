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

use super::keys::LANE;

/// Lua helpers the record, queue and heartbeat scripts start with ([`Scripts::new`]): Redis's
/// clock in milliseconds, a session hash's name, and the one way a session record is written.
///
/// A session hash expires [`GRACE_MS`](super::GRACE_MS) after the later of its `expires_at`
/// and now, so Redis's memory stays bounded even if no daemon is left to delete it, while a
/// record is never dropped before the pool has had a month to retire and delete it.
pub(super) const LUA_COMMON: &str = r#"
-- How long a committed new session still counts for top_up (ms): several resync periods.
local SETTLE_MS = 3000
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
local function target_key(prefix, target, name)
  return prefix .. ':{t:' .. target .. '}:' .. name
end
-- Bumps the target's revision and tags session `sid` with it (`changed`); a deletion is also
-- remembered in `gone` until it is older than DELETIONS_KEPT, then forgotten, raising `floor`
-- (a `changes` call from below the floor must list everything).
local function mark_change(prefix, target, sid, deleted, now)
  local changed = target_key(prefix, target, 'changed')
  local gone = target_key(prefix, target, 'gone')
  local rev = redis.call('INCR', target_key(prefix, target, 'rev'))
  redis.call('ZADD', changed, rev, sid)
  if not deleted then
    redis.call('ZREM', gone, sid)
    return
  end
  redis.call('ZADD', gone, ms(now), sid)
  local floor_key = target_key(prefix, target, 'floor')
  local floor = tonumber(redis.call('GET', floor_key) or '0')
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', gone, '-inf', ms(now - 3600000))) do
    local r = tonumber(redis.call('ZSCORE', changed, old) or '0')
    redis.call('ZREM', changed, old)
    redis.call('ZREM', gone, old)
    if r > floor then
      floor = r
    end
  end
  redis.call('SET', floor_key, floor)
end
-- Drops session `sid` of `target` from the index and records its deletion.
local function unindex(prefix, index, target, sid)
  redis.call('HDEL', index, sid)
  mark_change(prefix, target, sid, true, now_ms())
end
-- Writes one session record and its index entry; `token` is the fence token of the claim
-- whose commit wrote it ('' for a direct write).
local function write_session(prefix, index, sid, target, blob, state, created, expires, token, now)
  local old = redis.call('HGET', index, sid)
  if old and old ~= target then
    redis.call('DEL', session_key(prefix, old, sid))
    mark_change(prefix, old, sid, true, now)
  end
  local k = session_key(prefix, target, sid)
  redis.call('HSET', k, 'v', '1', 'target', target, 'blob', blob, 'state', state,
    'created_at', created, 'expires_at', expires, 'warmed_by', token)
  redis.call('HINCRBY', k, 'rev', 1)
  local keep = math.max(tonumber(expires) or 0, now) + 2592000000
  redis.call('PEXPIREAT', k, ms(math.min(keep, 253402300799000)))
  redis.call('HSET', index, sid, target)
  mark_change(prefix, target, sid, false, now)
end
-- Queues `item` due at `due` (ms). The member is `<queueing order, 16 digits>|<item>`, so
-- members due at the same millisecond sort in queueing order and the head of the ZSET is the
-- next item to claim (no scan); `qseq` maps the item to its member.
local function queue(work, qseq, qctr, item, due)
  local member = string.format('%016d', redis.call('INCR', qctr)) .. '|' .. item
  redis.call('ZADD', work, ms(due), member)
  redis.call('HSET', qseq, item, member)
end
-- The item a queue member names.
local function item_of(member)
  return string.match(member, '^%d+|(.*)$') or member
end
-- Whether `tok` is the current, unexpired claim of `item`.
local function current(inflight, owner, item, tok, now)
  if redis.call('HGET', owner, item) ~= tok then
    return false
  end
  local deadline = redis.call('ZSCORE', inflight, item)
  return deadline ~= false and deadline ~= nil and tonumber(deadline) > now
end
-- Redis's time (ms) when `tok` is the current, unexpired claim of `item`, else nil: what a
-- fenced script checks first.
local function held_now(deadlines, owners, item, tok)
  local now = now_ms()
  if current(deadlines, owners, item, tok, now) then
    return now
  end
  return nil
end
-- Ends whatever claim `item` had: drops it from the deadlines ZSET and its owners HASH.
local function release(deadlines, owners, item)
  redis.call('ZREM', deadlines, item)
  redis.call('HDEL', owners, item)
end
-- Forgets a warm item for good: its attempts, and that it was a warm.
local function forget_warm(attempts, warms, item)
  redis.call('HDEL', attempts, item)
  redis.call('SREM', warms, item)
end
-- Extends the current claim `tok` of `item` (deadlines ZSET, owners HASH) to `ttl` ms from
-- now: 1, or 0 when it is not current.
local function renew(deadlines, owners, item, tok, ttl)
  local now = held_now(deadlines, owners, item, tok)
  if not now then return 0 end
  redis.call('ZADD', deadlines, 'XX', ms(now + tonumber(ttl)), item)
  return 1
end
"#;

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
    /// `KEYS` rev, changed, floor of a target; `ARGV` prefix, target, since. Returns `{rev,
    /// '1'}` when `since` cannot be answered, else `{rev, '0', id, blob or '' (deleted),
    /// ...}`, oldest change first.
    pub changes: Script,
    /// `KEYS[1]` audit list; `ARGV` keep. Returns how many entries were removed.
    pub trim_audit: Script,
    /// The work-queue scripts below all take [`Keys::lane`](super::keys::Keys::lane) as
    /// `KEYS` and name them as [`LANE`] does (see [`Scripts::new`]).
    /// `ARGV` item, delay ms, target. Returns 1 when queued.
    pub enqueue: Script,
    /// `ARGV` missing, target. Returns how many new-session items were queued.
    pub top_up: Script,
    /// `ARGV` ttl ms, nonce, holder.
    /// Returns `{item, token, lapsed claims of the item so far}` or nil.
    pub claim: Script,
    /// `ARGV` item, token, ttl ms. Returns 1 when renewed.
    pub renew: Script,
    /// `ARGV` item, token, prefix, then nothing or one session ([`SESSION_ARGS`]). Returns 1
    /// when committed.
    pub commit: Script,
    /// `ARGV` item, token, retry ms or ''. Returns 1 when abandoned.
    pub abandon: Script,
    /// The named-item scripts below take [`Keys::items`](super::keys::Keys::items) as `KEYS`
    /// and name them `items`, `iowner`, `fence`, `index`.
    /// `ARGV` item, ttl ms, nonce, holder. Returns `{token, 1 when a lapsed grant was taken
    /// over else 0}` or nil while the item is claimed or resting.
    pub claim_item: Script,
    /// `ARGV` item, token, ttl ms. Returns 1 when renewed.
    pub renew_item: Script,
    /// `ARGV` item, token, prefix, one session ([`SESSION_ARGS`]). Returns 1 when written.
    pub put_fenced: Script,
    /// `ARGV` item, token, rest ms. Returns 1 when finished.
    pub finish_item: Script,
    /// `ARGV` max attempts.
    /// Returns `{item, attempts, dead (0|1), token of the lapsed claim, ...}`.
    pub reap: Script,
    /// `KEYS` hold key, fence, holds; `ARGV` nonce, holder, ttl ms, session. Returns the
    /// token or nil.
    pub hold: Script,
    /// `KEYS` hold key, holds; `ARGV` token, ttl ms, session. Returns 1 when renewed.
    pub renew_hold: Script,
    /// `KEYS` hold key, holds; `ARGV` token, session. Returns 1 when it was current (and is
    /// now released).
    pub release_hold: Script,
    /// `KEYS` holds. Drops lapsed entries; returns the sessions held now.
    pub holds: Script,
    /// `KEYS` usage hash; `ARGV` uses, successes, failures. Returns 1 when seeded.
    pub seed_usage: Script,
    /// `KEYS` usage hash; `ARGV` uses, successes, failures. Returns the new `{uses, successes,
    /// failures}`.
    pub add_usage: Script,
    /// `KEYS` nodes; `ARGV` prefix, node, forget after ms, then counter name/value pairs.
    pub heartbeat: Script,
    /// `KEYS` nodes; `ARGV` prefix, seen within ms. Returns, most recent first,
    /// `{node, ms since its beat, number of counters, name, value, ..., node, ...}`.
    pub nodes: Script,
}

impl Scripts {
    /// Hashes every script (they are loaded into Redis on first use). The record and queue
    /// scripts start with [`LUA_COMMON`]; the queue scripts then name their `KEYS` as the
    /// Lua locals of [`LANE`]'s names, `targets` and `index`.
    pub(super) fn new() -> Self {
        let common = |body: &str| Script::new(&format!("{LUA_COMMON}{body}"));
        let names = LANE.join(", ");
        let item = |body: &str| {
            Script::new(&format!(
                "{LUA_COMMON}local items, iowner, fence, index = unpack(KEYS)\n{body}"
            ))
        };
        let lane = |body: &str| {
            Script::new(&format!(
                "{LUA_COMMON}local {names}, targets, index = unpack(KEYS)\n{body}"
            ))
        };
        Self {
            open: Script::new(OPEN),
            put_session: common(PUT_SESSION),
            update_sessions: common(UPDATE_SESSIONS),
            get_session: common(GET_SESSION),
            delete_session: common(DELETE_SESSION),
            list_sessions: common(LIST_SESSIONS),
            changes: common(CHANGES),
            trim_audit: Script::new(TRIM_AUDIT),
            enqueue: lane(ENQUEUE),
            top_up: lane(TOP_UP),
            claim: lane(CLAIM),
            renew: lane(RENEW),
            commit: lane(COMMIT),
            abandon: lane(ABANDON),
            claim_item: item(CLAIM_ITEM),
            renew_item: item(RENEW_ITEM),
            put_fenced: item(PUT_FENCED),
            finish_item: item(FINISH_ITEM),
            reap: lane(REAP),
            hold: common(HOLD),
            renew_hold: common(RENEW_HOLD),
            release_hold: Script::new(RELEASE_HOLD),
            holds: common(HOLDS),
            seed_usage: Script::new(SEED_USAGE),
            add_usage: Script::new(ADD_USAGE),
            heartbeat: common(HEARTBEAT),
            nodes: common(NODES),
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

const PUT_SESSION: &str = r#"
local a = ARGV
write_session(a[1], KEYS[1], a[2], a[3], a[4], a[5], a[6], a[7], '', now_ms())
return 1
"#;

const UPDATE_SESSIONS: &str = r#"
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
"#;

const GET_SESSION: &str = r#"
local target = redis.call('HGET', KEYS[1], ARGV[2])
local blob = target and redis.call('HGET', session_key(ARGV[1], target, ARGV[2]), 'blob')
if target and not blob then
  -- The record expired (PEXPIREAT): gone for every daemon's index too.
  unindex(ARGV[1], KEYS[1], target, ARGV[2])
end
return blob
"#;

const DELETE_SESSION: &str = r#"
local target = redis.call('HGET', KEYS[1], ARGV[2])
if not target then
  return 0
end
unindex(ARGV[1], KEYS[1], target, ARGV[2])
return redis.call('DEL', session_key(ARGV[1], target, ARGV[2]))
"#;

const LIST_SESSIONS: &str = r#"
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
"#;

const CHANGES: &str = r#"
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
local since = tonumber(ARGV[3])
if since > rev or since < floor then
  return {tostring(rev), '1'}
end
local out = {tostring(rev), '0'}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[3], '+inf')) do
  out[#out + 1] = sid
  out[#out + 1] = redis.call('HGET', session_key(ARGV[1], ARGV[2], sid), 'blob') or ''
end
return out
"#;

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

const ENQUEUE: &str = r#"
local item = ARGV[1]
if redis.call('HEXISTS', qseq, item) == 1 or redis.call('ZSCORE', inflight, item) then
  return 0
end
queue(work, qseq, qctr, item, now_ms() + tonumber(ARGV[2]))
if string.sub(item, 1, 5) == 'warm:' then
  redis.call('SADD', warms, item)
end
redis.call('SADD', targets, ARGV[3])
return 1
"#;

const TOP_UP: &str = r#"
redis.call('ZREMRANGEBYSCORE', settled, '-inf', now_ms())
local add = tonumber(ARGV[1]) - redis.call('SCARD', warms) - redis.call('ZCARD', settled)
if add <= 0 then
  return 0
end
local now = now_ms()
for _ = 1, add do
  local item = 'warm:' .. redis.call('INCR', seq)
  queue(work, qseq, qctr, item, now)
  redis.call('SADD', warms, item)
end
redis.call('SADD', targets, ARGV[2])
return add
"#;

const CLAIM: &str = r#"
local now = now_ms()
-- The head: earliest due, then first queued (the member starts with the queueing order).
local first = redis.call('ZRANGE', work, 0, 0, 'WITHSCORES')
if #first == 0 or tonumber(first[2]) > now then
  return false
end
local item = item_of(first[1])
redis.call('ZREM', work, first[1])
redis.call('HDEL', qseq, item)
local tok = redis.call('INCR', fence) .. ':' .. ARGV[2] .. ':' .. ARGV[3]
redis.call('ZADD', inflight, ms(now + tonumber(ARGV[1])), item)
redis.call('HSET', owner, item, tok)
return {item, tok, tonumber(redis.call('HGET', attempts, item) or '0')}
"#;

// Named items: `items` is a ZSET of item -> deadline (of the grant, or of the rest after it
// finished), `iowner` the current token ('' while resting). A lapsed entry is free; a few are
// swept out by each claim so the keys stay small.
const CLAIM_ITEM: &str = r#"
local now = now_ms()
local item = ARGV[1]
local deadline = redis.call('ZSCORE', items, item)
if deadline and tonumber(deadline) > now then
  return false
end
local lapsed = deadline and (redis.call('HGET', iowner, item) or '') ~= ''
for _, old in ipairs(redis.call('ZRANGEBYSCORE', items, '-inf', ms(now), 'LIMIT', 0, 20)) do
  release(items, iowner, old)
end
local tok = redis.call('INCR', fence) .. ':' .. ARGV[3] .. ':' .. ARGV[4]
redis.call('ZADD', items, ms(now + tonumber(ARGV[2])), item)
redis.call('HSET', iowner, item, tok)
return {tok, lapsed and 1 or 0}
"#;

const RENEW_ITEM: &str = r#"
return renew(items, iowner, ARGV[1], ARGV[2], ARGV[3])
"#;

const PUT_FENCED: &str = r#"
local now = held_now(items, iowner, ARGV[1], ARGV[2])
if not now then return 0 end
write_session(ARGV[3], index, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[2], now)
return 1
"#;

const FINISH_ITEM: &str = r#"
local item, tok, rest = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = held_now(items, iowner, item, tok)
if not now then return 0 end
if rest <= 0 then
  release(items, iowner, item)
  return 1
end
-- Resting: the entry stays, free of any owner, until the rest is over.
redis.call('ZADD', items, ms(now + rest), item)
redis.call('HSET', iowner, item, '')
return 1
"#;

const RENEW: &str = r#"
return renew(inflight, owner, ARGV[1], ARGV[2], ARGV[3])
"#;

const COMMIT: &str = r#"
local item, tok = ARGV[1], ARGV[2]
local now = held_now(inflight, owner, item, tok)
if not now then return 0 end
if #ARGV > 3 then
  write_session(ARGV[3], index, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], tok, now)
  if redis.call('SISMEMBER', warms, item) == 1 then
    -- A daemon that has not resynced yet counts the pool one short: the new session still
    -- counts here until every daemon's index has it (resync runs every 300 ms).
    redis.call('ZADD', settled, ms(now + SETTLE_MS), item)
  end
end
release(inflight, owner, item)
forget_warm(attempts, warms, item)
return 1
"#;

const ABANDON: &str = r#"
local item, tok = ARGV[1], ARGV[2]
local now = held_now(inflight, owner, item, tok)
if not now then return 0 end
release(inflight, owner, item)
if ARGV[3] ~= '' then
  queue(work, qseq, qctr, item, now + tonumber(ARGV[3]))
else
  forget_warm(attempts, warms, item)
end
return 1
"#;

const REAP: &str = r#"
local now = now_ms()
local max = tonumber(ARGV[1])
local out = {}
for _, item in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', ms(now), 'LIMIT', 0, 100)) do
  local tok = redis.call('HGET', owner, item) or ''
  release(inflight, owner, item)
  local tries = redis.call('HINCRBY', attempts, item, 1)
  local dead = 0
  if tries < max then
    queue(work, qseq, qctr, item, now)
  else
    forget_warm(attempts, warms, item)
    dead = 1
  end
  out[#out + 1] = item
  out[#out + 1] = tries
  out[#out + 1] = dead
  out[#out + 1] = tok
end
return out
"#;

const HOLD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local tok = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], tok, 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[3]), ARGV[4])
return tok
"#;

const RENEW_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), ARGV[3])
return 1
"#;

const RELEASE_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"#;

const HOLDS: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
return redis.call('ZRANGE', KEYS[1], 0, -1)
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

const HEARTBEAT: &str = r#"
local now = now_ms()
local forget = tonumber(ARGV[3])
local mine = ARGV[1] .. ':node:' .. ARGV[2]
redis.call('ZADD', KEYS[1], ms(now), ARGV[2])
redis.call('DEL', mine)
if #ARGV > 3 then
  redis.call('HSET', mine, unpack(ARGV, 4))
  redis.call('PEXPIRE', mine, ARGV[3])
end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ms(now - forget))) do
  redis.call('ZREM', KEYS[1], n)
  redis.call('DEL', ARGV[1] .. ':node:' .. n)
end
return 1
"#;

const NODES: &str = r#"
local now = now_ms()
local seen = redis.call('ZRANGEBYSCORE', KEYS[1], ms(now - tonumber(ARGV[2])), '+inf',
  'WITHSCORES')
local out = {}
for i = #seen - 1, 1, -2 do
  local counters = redis.call('HGETALL', ARGV[1] .. ':node:' .. seen[i])
  out[#out + 1] = seen[i]
  out[#out + 1] = ms(math.max(0, now - tonumber(seen[i + 1])))
  out[#out + 1] = tostring(#counters / 2)
  for _, v in ipairs(counters) do
    out[#out + 1] = v
  end
end
return out
"#;
