//! Rotate: one script when both keys share a slot, else the cross-slot
//! copy and conditional delete.

use redis::cluster_routing::Slot;
use session_store_core::{Error, Result, SessionId, Timestamp};

use crate::{ROTATE_ATTEMPTS, RedisStore, parse_i64};

/// What the first step of a cross-slot rotate read: body, deadline,
/// version and owner set (`""` for none).
type Taken = (Option<Vec<u8>>, String, String, String);

impl RedisStore {
    /// Rotate, with the keys' wrong-type errors still raw.
    pub(crate) async fn rotate_keys(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (old_key, new_key) = (self.key(old), self.key(new));
        if self.is_cluster() && Slot::for_key(&old_key) != Slot::for_key(&new_key) {
            return self.rotate_cross_slot(old, new).await;
        }
        let now = self.now();
        let mut index = None;
        if self.is_cluster() {
            // One slot on a cluster (a prefix with its own hash tag, or
            // chance): the owner's set may be in another, so the new id
            // joins it first.
            let (e, o): (Option<Vec<u8>>, Option<String>) = self
                .run(
                    "reading the record to rotate",
                    redis::cmd("HMGET")
                        .arg(&old_key)
                        .arg("e")
                        .arg("o")
                        .query_async(&mut self.conn()),
                )
                .await?;
            if let (Some(e), Some(o)) = (e.as_deref().and_then(parse_i64), o)
                && self.is_owner_set(o.as_bytes())
            {
                let ttl = self.ttl_ms(Timestamp::from_millis(e), now);
                self.index_add(&o, new, ttl).await?;
                index = Some((o, ttl));
            }
        }
        let moved: i64 = self
            .run(
                "rotating a session id",
                self.inner
                    .scripts
                    .rotate
                    .key(&old_key)
                    .key(&new_key)
                    .arg(now.as_millis())
                    .arg(self.index_flag())
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        match moved {
            -1 => Err(Error::IdCollision { id: *new }),
            0 => Ok(false),
            _ => {
                if let Some((set, ttl)) = index {
                    // Again, now the record is there (see `write`).
                    self.index_add(&set, new, ttl).await?;
                }
                Ok(true)
            }
        }
    }

    /// Rotate across two hash slots (cluster): copy, then delete the old
    /// key only if unchanged. See the crate docs for what is guaranteed.
    async fn rotate_cross_slot(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let (old_key, new_key) = (self.key(old), self.key(new));
        for _ in 0..ROTATE_ATTEMPTS {
            let now = self.now();
            let Some((body, e, v, o)) = self.take(&old_key, now).await? else {
                // Not live under `old`; a live record under `new` still wins.
                return match self.is_live(&new_key, now).await? {
                    true => Err(Error::IdCollision { id: *new }),
                    false => Ok(false),
                };
            };
            let body = body.ok_or_else(|| Error::decode(old, "the stored record has no body", None))?;
            let expires_at = parse_i64(e.as_bytes())
                .map(Timestamp::from_millis)
                .ok_or_else(|| Error::decode(old, "the stored deadline is not an integer", None))?;
            if !o.is_empty() {
                // The owner's set names the new id before the record is there.
                self.index_add(&o, new, self.ttl_ms(expires_at, now)).await?;
            }
            let placed: i64 = self
                .run(
                    "writing the rotated record",
                    self.copy_step(&new_key, now, &body, (&e, &v, &o), expires_at)
                        .invoke_async(&mut self.conn()),
                )
                .await?;
            if placed == 0 {
                return Err(Error::IdCollision { id: *new });
            }
            if !o.is_empty() {
                // Again, now the record is there (see `write`).
                self.index_add(&o, new, self.ttl_ms(expires_at, now)).await?;
            }
            if self
                .delete_if(&old_key, &e, &v, "removing the rotated record's old id")
                .await?
            {
                return Ok(true);
            }
            // The old record changed meanwhile: withdraw the copy and retry.
            self.delete_if(&new_key, &e, &v, "withdrawing a rotated copy").await?;
            tracing::info!(
                session = %old.fingerprint(),
                "a cross-slot rotate raced a concurrent write to the old id; retrying"
            );
        }
        tracing::warn!(
            session = %old.fingerprint(),
            attempts = ROTATE_ATTEMPTS,
            "a cross-slot rotate kept racing concurrent writes; nothing was moved"
        );
        Err(Error::backend_msg(
            "redis",
            "rotate kept racing concurrent writes to the old id; nothing was moved",
        ))
    }

    /// The first step of a cross-slot rotate: the live record under `key`
    /// as (body, deadline, version, owner set or `""`), or `None`.
    async fn take(&self, key: &str, now: Timestamp) -> Result<Option<Taken>> {
        self.run(
            "reading the record to rotate",
            self.inner
                .scripts
                .take
                .key(key)
                .arg(now.as_millis())
                .invoke_async(&mut self.conn()),
        )
        .await
    }

    /// Deletes `key` if it still holds deadline `e` and version `v`; whether
    /// it did.
    async fn delete_if(&self, key: &str, e: &str, v: &str, what: &str) -> Result<bool> {
        let deleted: i64 = self
            .run(
                what,
                self.inner
                    .scripts
                    .delete_if
                    .key(key)
                    .arg(e)
                    .arg(v)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(deleted == 1)
    }

    fn copy_step<'a>(
        &'a self,
        new_key: &str,
        now: Timestamp,
        body: &[u8],
        (e, v, o): (&str, &str, &str),
        expires_at: Timestamp,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = self.inner.scripts.place.key(new_key);
        inv.arg(now.as_millis())
            .arg(body)
            .arg(e)
            .arg(v)
            .arg(self.ttl_ms(expires_at, now))
            .arg(o);
        inv
    }

    async fn is_live(&self, key: &str, now: Timestamp) -> Result<bool> {
        let mut conn = self.conn();
        let e: Option<Vec<u8>> = self
            .run(
                "reading a deadline",
                redis::cmd("HGET").arg(key).arg("e").query_async(&mut conn),
            )
            .await?;
        Ok(e.as_deref().and_then(parse_i64).is_some_and(|e| e > now.as_millis()))
    }

    #[cfg(test)]
    pub(crate) async fn rotate_copy_only(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        // The first two steps of a cross-slot rotate: what a crash between
        // the copy and the delete leaves behind.
        let now = self.now();
        let (old_key, new_key) = (self.key(old), self.key(new));
        let Some((body, e, v, o)) = self.take(&old_key, now).await? else {
            return Ok(false);
        };
        let body = body.ok_or_else(|| Error::decode(old, "the stored record has no body", None))?;
        let expires_at = Timestamp::from_millis(parse_i64(e.as_bytes()).unwrap_or(0));
        let placed: i64 = self
            .run(
                "place",
                self.copy_step(&new_key, now, &body, (&e, &v, &o), expires_at)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        Ok(placed == 1)
    }
}
