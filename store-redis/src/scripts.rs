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

/// The owner index, shared by every script that writes, deletes or moves
/// a record. A record key is `{prefix}{<id>}` (the id is its last 22
/// characters before the `}`), and the record's field `o` names its owner's
/// set, `{prefix}o:{<owner key>}`, whose members are ids. `ix` is `'1'` when
/// the script keeps the index itself (a single server: the record and the
/// set change in one atomic step), `'0'` on a cluster, where the set is in
/// another slot and the client adds the entry before the write.
const INDEX: &str = r"
local function id_of(key) return string.sub(key, -23, -2) end
-- Whether o names an owner set of the store that key belongs to (a field
-- written by something else never makes a script touch another key).
local function ours(key, o)
  if not o then return false end
  local p = string.sub(key, 1, -25) .. 'o:{'
  return #o == #p + 33 and string.sub(o, 1, #p) == p and string.sub(o, -1) == '}'
end
-- Keeps set o alive at least as long as a member whose key lives ttl ms.
local function extend(o, ttl)
  if redis.call('PTTL', o) < tonumber(ttl) then redis.call('PEXPIRE', o, ttl) end
end
-- Moves key's entry from set old (a stored field, maybe false) to set new
-- ('' for none).
local function reindex(key, old, new, ttl)
  local id = id_of(key)
  if ours(key, old) and old ~= new then redis.call('SREM', old, id) end
  if new ~= '' then
    redis.call('SADD', new, id)
    extend(new, ttl)
  end
end
-- Writes a whole record: index first, so a failing index write (a foreign
-- value under the set's name) fails the script before the record changes.
local function put(key, d, e, v, ttl, old, o, ix)
  if ix == '1' then reindex(key, old, o, ttl) end
  if o ~= '' then
    redis.call('HSET', key, 'd', d, 'e', e, 'v', v, 'o', o)
  else
    redis.call('HSET', key, 'd', d, 'e', e, 'v', v)
    if old then redis.call('HDEL', key, 'o') end
  end
  redis.call('PEXPIRE', key, ttl)
end
";

macro_rules! script {
    ($body:literal) => {
        redis::Script::new(&format!("{LT}{INDEX}{}", $body))
    };
}

/// Every script of the store, hashed once.
pub(crate) struct Scripts {
    pub create: redis::Script,
    pub save: redis::Script,
    pub save_if_version: redis::Script,
    pub import: redis::Script,
    pub touch: redis::Script,
    pub delete: redis::Script,
    pub rotate: redis::Script,
    pub take: redis::Script,
    pub place: redis::Script,
    pub delete_if: redis::Script,
    pub owner_sessions: redis::Script,
    pub delete_owner_sessions: redis::Script,
    pub delete_if_owner: redis::Script,
    pub index_add: redis::Script,
    pub index_read: redis::Script,
    pub index_drop: redis::Script,
    /// Source of the purge script, loaded with `SCRIPT LOAD` at the head of
    /// each purge pipeline.
    pub purge_src: String,
    /// Its SHA1, for the `EVALSHA`s that follow in the pipeline.
    pub purge_sha: String,
    /// Source of the owner-set sweep of a purge, loaded the same way.
    pub sweep_src: String,
    /// Its SHA1.
    pub sweep_sha: String,
}

/// Walks the members of owner set KEYS[1] (a single server only: the
/// members' keys are derived from the set's name). `mode` is `list` (returns
/// the live ids), `revoke` (deletes every record of the owner but `keep`,
/// returns how many were live) or `sweep` (returns how many entries it
/// dropped). Every mode drops the entries that no longer name a record of
/// this owner: deleted, expired and gone, moved to another owner, or not an
/// id.
const WALK: &str = r"
local function walk(set, now, mode, keep)
  local p = string.sub(set, 1, -37)
  local out, n = {}, 0
  for _, m in ipairs(redis.call('SMEMBERS', set)) do
    local k = p .. '{' .. m .. '}'
    local cur = false
    if #m == 22 and redis.call('TYPE', k).ok == 'hash' then cur = redis.call('HMGET', k, 'e', 'o') end
    local mine = cur and cur[2] == set
    local live = mine and cur[1] and lt(now, cur[1])
    if not mine then
      redis.call('SREM', set, m)
      if mode == 'sweep' then n = n + 1 end
    elseif mode == 'revoke' and m ~= keep then
      redis.call('DEL', k)
      redis.call('SREM', set, m)
      if live then n = n + 1 end
    elseif mode == 'list' and live then
      out[#out + 1] = m
    end
  end
  if mode == 'list' then return out end
  return n
end
";

impl Scripts {
    pub(crate) fn new() -> Self {
        let purge_src = format!(
            "{LT}{INDEX}{}",
            r"
-- KEYS[1]; ARGV: now, ix. Deletes the key if its deadline has passed.
local cur = redis.call('HMGET', KEYS[1], 'e', 'o')
if cur[1] and not lt(ARGV[1], cur[1]) then
  redis.call('DEL', KEYS[1])
  if ARGV[2] == '1' and ours(KEYS[1], cur[2]) then redis.call('SREM', cur[2], id_of(KEYS[1])) end
  return 1
end
return 0
"
        );
        let sweep_src = format!(
            "{LT}{WALK}{}",
            "\n-- KEYS[1]: an owner set; ARGV: now.\nreturn walk(KEYS[1], ARGV[1], 'sweep', '')\n"
        );
        Self {
            // KEYS[1] (and KEYS[2], the owner set ARGV[5], when ix is '1');
            // ARGV: d, e, now, ttl, o ('' for none), ix.
            // Returns 1, or 0 on a live record.
            create: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'o')
if cur[1] and lt(ARGV[3], cur[1]) then return 0 end
put(KEYS[1], ARGV[1], ARGV[2], '1', ARGV[4], cur[2], ARGV[5], ARGV[6])
return 1
"
            ),
            // KEYS and ARGV as for create. Returns the stored version.
            // A stored version that is not decimal digits below 2^53 (which
            // Lua's doubles hold exactly) restarts at 1, like an absent one:
            // a save overwrites whatever the hash held.
            save: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'v', 'o')
local v = 1
if cur[1] and cur[2] and lt(ARGV[3], cur[1]) then
  local n = string.match(cur[2], '^[0-9]+$') and tonumber(cur[2])
  if n and n < 9007199254740992 then v = n + 1 end
end
put(KEYS[1], ARGV[1], ARGV[2], string.format('%d', v), ARGV[4], cur[3], ARGV[5], ARGV[6])
return v
"
            ),
            // KEYS and ARGV as for create, then: expected version, new version.
            // Returns 1, or 0 on a conflict.
            save_if_version: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'v', 'o')
if not cur[1] or not lt(ARGV[3], cur[1]) or cur[2] ~= ARGV[7] then return 0 end
put(KEYS[1], ARGV[1], ARGV[2], ARGV[8], ARGV[4], cur[3], ARGV[5], ARGV[6])
return 1
"
            ),
            // KEYS and ARGV as for create, then: the record's version.
            // Returns 1, or 0 (nothing written) when the record is not live
            // or a live one of the same or a newer version is stored. A
            // stored version that is not decimal digits counts as older.
            import: script!(
                r"
if not lt(ARGV[3], ARGV[2]) then return 0 end
local cur = redis.call('HMGET', KEYS[1], 'e', 'v', 'o')
if cur[1] and lt(ARGV[3], cur[1]) and cur[2] and string.match(cur[2], '^[1-9][0-9]*$')
    and not lt(cur[2], ARGV[7]) then
  return 0
end
put(KEYS[1], ARGV[1], ARGV[2], ARGV[7], ARGV[4], cur[3], ARGV[5], ARGV[6])
return 1
"
            ),
            // KEYS[1]; ARGV: new e, now, ttl, ix. Returns 0 when not live,
            // else 1, or (on a cluster, ix '0') the owner set's name, whose
            // TTL the client then extends.
            touch: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'o')
if not cur[1] or not lt(ARGV[2], cur[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ours(KEYS[1], cur[2]) then
  if ARGV[4] ~= '1' then return cur[2] end
  extend(cur[2], ARGV[3])
end
return 1
"
            ),
            // KEYS[1] (a single server). Deletes the key, of whatever type,
            // and its owner's entry.
            delete: script!(
                r"
local o = false
if redis.call('TYPE', KEYS[1]).ok == 'hash' then o = redis.call('HGET', KEYS[1], 'o') end
redis.call('DEL', KEYS[1])
if ours(KEYS[1], o) then redis.call('SREM', o, id_of(KEYS[1])) end
return 1
"
            ),
            // KEYS: old, new (one hash slot); ARGV: now, ix.
            // Returns -1 (live record under new), 0 (old not live) or 1.
            // RENAME keeps the fields (the owner too) and the TTL.
            rotate: script!(
                r"
local ne = redis.call('HMGET', KEYS[2], 'e', 'o')
if ne[1] and lt(ARGV[1], ne[1]) then return -1 end
local cur = redis.call('HMGET', KEYS[1], 'e', 'o')
if not cur[1] or not lt(ARGV[1], cur[1]) then return 0 end
if ARGV[2] == '1' then
  if ours(KEYS[2], ne[2]) then redis.call('SREM', ne[2], id_of(KEYS[2])) end
  if ours(KEYS[1], cur[2]) then
    redis.call('SREM', cur[2], id_of(KEYS[1]))
    redis.call('SADD', cur[2], id_of(KEYS[2]))
  end
end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"
            ),
            // Cross-slot rotate, step 1 (old key). ARGV: now.
            // Returns nil when not live, else {d, e, v, o}.
            take: script!(
                r"
local cur = redis.call('HMGET', KEYS[1], 'd', 'e', 'v', 'o')
if not cur[2] or not lt(ARGV[1], cur[2]) then return false end
if not ours(KEYS[1], cur[4]) then cur[4] = '' end
return {cur[1], cur[2], cur[3], cur[4]}
"
            ),
            // Cross-slot rotate, step 2 (new key). ARGV: now, d, e, v, ttl, o.
            // Returns 1, or 0 on a live record (nothing written). The
            // client added the new id to the owner's set before.
            place: script!(
                r"
local ne = redis.call('HMGET', KEYS[1], 'e', 'o')
if ne[1] and lt(ARGV[1], ne[1]) then return 0 end
put(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ne[2], ARGV[6], '0')
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
            // KEYS[1]: an owner set (a single server); ARGV: now.
            // Returns the live ids of the owner.
            owner_sessions: redis::Script::new(&format!(
                "{LT}{WALK}{}",
                "\nreturn walk(KEYS[1], ARGV[1], 'list', '')\n"
            )),
            // KEYS[1]: an owner set (a single server); ARGV: now, the id
            // kept ('' for none). Returns how many live sessions it deleted.
            delete_owner_sessions: redis::Script::new(&format!(
                "{LT}{WALK}{}",
                "\nreturn walk(KEYS[1], ARGV[1], 'revoke', ARGV[2])\n"
            )),
            // KEYS[1]: a record (a cluster's revoke); ARGV: the owner set,
            // now. Deletes the record if it names that owner. Returns 2
            // (deleted, was live), 1 (deleted, expired), 0 (another
            // owner's) or -1 (no such record).
            delete_if_owner: script!(
                r"
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return -1 end
local cur = redis.call('HMGET', KEYS[1], 'e', 'o')
if cur[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if cur[1] and lt(ARGV[2], cur[1]) then return 2 end
return 1
"
            ),
            // KEYS: an owner set and its marks (a cluster's write, before
            // and after the record); ARGV: id, ttl. Adds the entry, counts
            // one more add of it in the marks, and keeps both alive at
            // least as long as that record.
            index_add: script!(
                r"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
extend(KEYS[1], ARGV[2])
extend(KEYS[2], ARGV[2])
return 1
"
            ),
            // KEYS: an owner set and its marks (a cluster's). Returns each
            // member followed by its count of adds ('0' for none).
            index_read: script!(
                r"
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', KEYS[2], m) or '0'
end
return out
"
            ),
            // KEYS: an owner set and its marks (a cluster's); ARGV: id, the
            // count of adds read before its record was found gone. Drops the
            // entry only if nothing added it since: a write under way adds
            // its entry again once its record is there.
            index_drop: script!(
                r"
if (redis.call('HGET', KEYS[2], ARGV[1]) or '0') ~= ARGV[2] then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"
            ),
            purge_sha: redis::Script::new(&purge_src).get_hash().to_owned(),
            purge_src,
            sweep_sha: redis::Script::new(&sweep_src).get_hash().to_owned(),
            sweep_src,
        }
    }
}
