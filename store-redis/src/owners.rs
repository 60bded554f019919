//! The owner index: a set per owner, `{prefix}o:{<owner key>}`, whose
//! members are the ids of that owner's records; each record names its set
//! in its field `o`.
//!
//! On a single server every script that writes, deletes, rotates or purges
//! a record changes the set in the same atomic step, and listing or revoking
//! an owner is one script over that owner's set: exact, and in time
//! proportional to the owner's sessions.
//!
//! Redis's own expiry drops a record's key without touching its owner's set
//! (no keyspace notifications are used), so a set may hold entries of
//! records that are gone. Each set lives at least as long as its
//! longest-lived record (every write and touch extends its TTL), every read
//! checks each entry against its record (present, live, naming this set),
//! and listing, revoking and purging drop the stale ones.
//!
//! On a cluster the set is in another slot than the record, so the index is
//! not changed in the same step: a write adds the entry to the set first,
//! then writes the record, then adds the entry again; a delete, an owner
//! change or a rotate leaves the old entry behind, stale, for a read or a
//! purge to drop. Each add is counted in the set's marks,
//! `{prefix}g:{<owner key>}` (a hash in the set's slot), and a purge or
//! revoke drops an entry it found stale only if no add came since it read
//! the entry: so a live record is never missing from its set once its
//! write has returned. A revoke re-reads the set until it finds no entry
//! it has not handled, so a session rotated while it runs is ended too.

use session_store_core::{OWNER_KEY_LEN, Result, SessionId, Timestamp, owner_key};

use crate::{RedisStore, bad_reply, is_wrong_type, parse_i64};

/// How many times a cluster revoke re-reads an owner's set for entries
/// added while it ran.
const REVOKE_ROUNDS: usize = 8;

/// What a cluster adds to a set's TTL beyond its record's: the set's TTL is
/// set a round trip before the record's, so without it the set could run
/// out a moment before the record does.
const SET_TTL_MARGIN_MS: i64 = 1_000;

impl RedisStore {
    /// The Redis key of `owner`'s index set, `{prefix}o:{<owner key>}`
    /// (see [`owner_key`]): a set of the ids of that owner's sessions, which
    /// may hold stale entries (see the [crate docs](crate#owners)).
    #[must_use]
    pub fn owner_set(&self, owner: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + OWNER_KEY_LEN + 4);
        key.push_str(&self.inner.prefix);
        key.push_str("o:{");
        key.push_str(&owner_key(owner));
        key.push('}');
        key
    }

    /// The marks of owner set `set` (a cluster's): `{prefix}g:{<owner key>}`,
    /// in the set's slot, counting the adds of each entry.
    pub(crate) fn marks_of(set: &[u8]) -> Vec<u8> {
        let at = set.len().saturating_sub(OWNER_KEY_LEN + 4);
        let mut marks = set.to_vec();
        if marks.get(at) == Some(&b'o') {
            marks[at] = b'g';
        }
        marks
    }

    /// Whether `key` has the shape of one of this store's owner sets.
    pub(crate) fn is_owner_set(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.inner.prefix.as_bytes())
            .and_then(|k| k.strip_prefix(b"o:{"))
            .and_then(|k| k.strip_suffix(b"}"))
            .is_some_and(|k| k.len() == OWNER_KEY_LEN && k.iter().all(|b| b.is_ascii_hexdigit()))
    }

    /// Adds `id` to owner set `set` and keeps the set alive at least `ttl`
    /// ms, plus a margin (a cluster's first step of a write).
    pub(crate) async fn index_add(&self, set: &str, id: &SessionId, ttl: i64) -> Result<()> {
        let ttl = ttl.saturating_add(SET_TTL_MARGIN_MS);
        let _: i64 = self
            .run(
                "adding to the owner index",
                self.inner
                    .scripts
                    .index_add
                    .key(set)
                    .key(Self::marks_of(set.as_bytes()))
                    .arg(id.encode().as_str())
                    .arg(ttl)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(())
    }

    /// The live ids of `owner`'s sessions.
    pub(crate) async fn list_owner(&self, owner: &str) -> Result<Vec<SessionId>> {
        let set = self.owner_set(owner);
        let now = self.now();
        if !self.is_cluster() {
            let ids: Vec<String> = self
                .run(
                    "listing an owner's sessions",
                    self.inner
                        .scripts
                        .owner_sessions
                        .key(&set)
                        .arg(now.as_millis())
                        .invoke_async(&mut self.conn()),
                )
                .await?;
            return Ok(ids.iter().filter_map(|id| id.parse().ok()).collect());
        }
        let mut live = Vec::new();
        for (id, _) in self.members(&set).await? {
            if self.names_set(&id, &set, now).await? == Some(true) {
                live.push(id);
            }
        }
        Ok(live)
    }

    /// Deletes `owner`'s sessions but `keep`; how many were live.
    pub(crate) async fn revoke_owner(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let set = self.owner_set(owner);
        if !self.is_cluster() {
            let keep = keep.map(|k| k.encode());
            let deleted: u64 = self
                .run(
                    "ending an owner's sessions",
                    self.inner
                        .scripts
                        .delete_owner_sessions
                        .key(&set)
                        .arg(self.now().as_millis())
                        .arg(keep.as_ref().map_or("", |k| k.as_str()))
                        .invoke_async(&mut self.conn()),
                )
                .await?;
            return Ok(deleted);
        }
        let mut handled: Vec<SessionId> = keep.into_iter().copied().collect();
        let mut deleted = 0;
        for _ in 0..REVOKE_ROUNDS {
            let fresh: Vec<(SessionId, String)> = self
                .members(&set)
                .await?
                .into_iter()
                .filter(|(id, _)| !handled.contains(id))
                .collect();
            if fresh.is_empty() {
                return Ok(deleted);
            }
            for (id, adds) in fresh {
                let outcome: i64 = self
                    .run(
                        "ending an owner's session",
                        self.inner
                            .scripts
                            .delete_if_owner
                            .key(self.key(&id))
                            .arg(&set)
                            .arg(self.now().as_millis())
                            .invoke_async(&mut self.conn()),
                    )
                    .await?;
                deleted += u64::from(outcome == 2);
                // An absent record may be a write under way (its entry
                // comes first on a cluster): its entry stays.
                if outcome >= 0 {
                    self.drop_entry(&set, &id, &adds).await?;
                }
                handled.push(id);
            }
        }
        tracing::warn!(
            rounds = REVOKE_ROUNDS,
            "an owner's sessions kept being added while they were ended; some added meanwhile may remain"
        );
        Ok(deleted)
    }

    /// A cluster purge's pass over one owner set: drops the entries whose
    /// record is gone or names another set; how many.
    pub(crate) async fn sweep_cluster_set(&self, set: &[u8], now: Timestamp) -> Result<u64> {
        let set = std::str::from_utf8(set).map_err(|e| bad_reply("SCAN", e))?;
        let mut dropped = 0;
        for (id, adds) in self.members(set).await? {
            if self.names_set(&id, set, now).await?.is_none() && self.drop_entry(set, &id, &adds).await? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// The ids in owner set `set` (a cluster's), each with its count of adds
    /// (entries that are not ids are dropped).
    async fn members(&self, set: &str) -> Result<Vec<(SessionId, String)>> {
        let members: Vec<(Vec<u8>, String)> = self
            .run(
                "reading the owner index",
                self.inner
                    .scripts
                    .index_read
                    .key(set)
                    .key(Self::marks_of(set.as_bytes()))
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        let mut ids = Vec::with_capacity(members.len());
        for (m, adds) in members {
            match std::str::from_utf8(&m).ok().and_then(|m| m.parse().ok()) {
                Some(id) => ids.push((id, adds)),
                None => {
                    let _: i64 = self
                        .run(
                            "dropping a stale owner-index entry",
                            redis::cmd("SREM").arg(set).arg(&m).query_async(&mut self.conn()),
                        )
                        .await?;
                }
            }
        }
        Ok(ids)
    }

    /// Whether `id`'s record names `set`: `Some(live)` when it does, `None`
    /// when it is gone or names another set (a stale entry).
    async fn names_set(&self, id: &SessionId, set: &str, now: Timestamp) -> Result<Option<bool>> {
        let reply = self
            .run(
                "reading an owner's session",
                redis::cmd("HMGET")
                    .arg(self.key(id))
                    .arg("e")
                    .arg("o")
                    .query_async(&mut self.conn()),
            )
            .await;
        let (e, o): (Option<Vec<u8>>, Option<Vec<u8>>) = match reply {
            Ok(fields) => fields,
            // A foreign value under the record's key: not this owner's.
            Err(e) if is_wrong_type(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if o.as_deref() != Some(set.as_bytes()) {
            return Ok(None);
        }
        Ok(Some(
            e.as_deref().and_then(parse_i64).is_some_and(|e| e > now.as_millis()),
        ))
    }

    /// Drops `id`'s entry from `set` (a cluster's) unless it was added
    /// again since `adds` was read (a write under way: its record may be
    /// there by now). Answers whether it was dropped.
    async fn drop_entry(&self, set: &str, id: &SessionId, adds: &str) -> Result<bool> {
        let dropped: i64 = self
            .run(
                "dropping an owner-index entry",
                self.inner
                    .scripts
                    .index_drop
                    .key(set)
                    .key(Self::marks_of(set.as_bytes()))
                    .arg(id.encode().as_str())
                    .arg(adds)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(dropped == 1)
    }
}
