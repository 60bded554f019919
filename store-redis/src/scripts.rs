//! The Lua scripts behind the atomic operations.
//!
//! Every script compares deadlines with the `now` passed as an argument (the
//! store's injected clock), never with Redis's own clock. Deadlines are
//! stored as decimal `i64` milliseconds and compared as decimal strings by
//! `lt`, so no precision is lost in Lua's doubles, whatever their size.

/// `lt(a, b)`: `a < b` for canonical decimal integer strings.
const LT: &str = r"
local function lt(a, b)
  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if na ~= nb then return na end
  if #a ~= #b then return (#a < #b) ~= na end
  if a == b then return false end
  return (a < b) ~= na
end
";

macro_rules! script {
    ($body:literal) => {
        redis::Script::new(&format!("{}{}", LT, $body))
    };
}

/// Every script of the store, hashed once.
pub(crate) struct Scripts {
    pub create: redis::Script,
    pub save: redis::Script,
    pub save_if_version: redis::Script,
    pub touch: redis::Script,
    pub rotate: redis::Script,
    pub take: redis::Script,
    pub place: redis::Script,
    pub delete_if: redis::Script,
    /// Source of the purge script, loaded with `SCRIPT LOAD` at the head of
    /// each purge pipeline.
    pub purge_src: String,
    /// Its SHA1, for the `EVALSHA`s that follow in the pipeline.
    pub purge_sha: String,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let purge_src = format!(
            "{LT}{}",
            r"
local e = redis.call('HGET', KEYS[1], 'e')
if e and not lt(ARGV[1], e) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"
        );
        Self {
            // KEYS[1]; ARGV: d, e, now, ttl. Returns 1, or 0 on a live record.
            create: script!(
                r"
local e = redis.call('HGET', KEYS[1], 'e')
if e and lt(ARGV[3], e) then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2], 'v', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"
            ),
            // KEYS[1]; ARGV: d, e, now, ttl. Returns the stored version.
            // A stored version that is not decimal digits below 2^53 (which
            // Lua's doubles hold exactly) restarts at 1, like an absent one:
            // a save overwrites whatever the hash held.
            save: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'v')
local v = 1
if cur[1] and cur[2] and lt(ARGV[3], cur[1]) then
  local n = string.match(cur[2], '^[0-9]+$') and tonumber(cur[2])
  if n and n < 9007199254740992 then v = n + 1 end
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2], 'v', string.format('%d', v))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return v
"
            ),
            // KEYS[1]; ARGV: d, e, now, ttl, expected version, new version.
            // Returns 1, or 0 on a conflict.
            save_if_version: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'v')
if not cur[1] or not lt(ARGV[3], cur[1]) or cur[2] ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'e', ARGV[2], 'v', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"
            ),
            // KEYS[1]; ARGV: new e, now, ttl. Returns 1, or 0 when not live.
            touch: script!(
                r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e or not lt(ARGV[2], e) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"
            ),
            // KEYS: old, new (one hash slot); ARGV: now.
            // Returns -1 (live record under new), 0 (old not live) or 1.
            // RENAME keeps the fields and the TTL.
            rotate: script!(
                r"
local ne = redis.call('HGET', KEYS[2], 'e')
if ne and lt(ARGV[1], ne) then return -1 end
local oe = redis.call('HGET', KEYS[1], 'e')
if not oe or not lt(ARGV[1], oe) then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"
            ),
            // Cross-slot rotate, step 1 (old key). ARGV: now.
            // Returns nil when not live, else {d, e, v}.
            take: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'd', 'e', 'v')
if not cur[2] or not lt(ARGV[1], cur[2]) then return false end
return {cur[1], cur[2], cur[3]}
"
            ),
            // Cross-slot rotate, step 2 (new key). ARGV: now, d, e, v, ttl.
            // Returns 1, or 0 on a live record (nothing written).
            place: script!(
                r"
local ne = redis.call('HGET', KEYS[1], 'e')
if ne and lt(ARGV[1], ne) then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'e', ARGV[3], 'v', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"
            ),
            // Cross-slot rotate, step 3 (old key) and its undo (new key).
            // ARGV: e, v. Deletes the key only if it still holds them.
            delete_if: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'v')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"
            ),
            // KEYS[1]; ARGV: now. Deletes the key if its deadline has passed.
            purge_sha: redis::Script::new(&purge_src).get_hash().to_owned(),
            purge_src,
        }
    }
}
