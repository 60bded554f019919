//! A Redis and Redis Cluster session store (redis-rs, tokio).
//!
//! ```no_run
//! use session_store_core::{Clock, Expiry, Record, SessionData, SessionStore, SystemClock};
//! use session_store_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0")
//!     .prefix("myapp:session:")
//!     .timeout(std::time::Duration::from_secs(1))
//!     .build()
//!     .await?;
//! let mut data = SessionData::new();
//! data.insert("user", &"alice")?;
//! let record = Record::new(data, SystemClock.now(), &Expiry::default());
//! store.create(&record).await?;
//! let loaded = store.load(&record.id).await?.expect("live");
//! assert_eq!(loaded.data.get::<String>("user")?.as_deref(), Some("alice"));
//!
//! // The same store type on a Redis Cluster: any reachable nodes as seeds.
//! let cluster = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
//!     .build()
//!     .await?;
//! # let _ = cluster;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! A record lives under the key `{prefix}{{id}}` (for example
//! `session:{AAAAAAAAAAAAAAAAAAAAAA}`): the braces make the id a hash tag, so
//! on a cluster each key's slot depends on the id alone. The key holds a hash
//! with the fields `d`, the body ([`codec::encode_body`]: created time, owner
//! and data), `e`, the deadline in Unix milliseconds, `v`, the version, and,
//! for a record with an owner, `o`, the key of its owner's set (see
//! [Owners](#owners)).
//! Create, save, save-if-version, touch, delete and a single-slot rotate are
//! each one Lua script (`EVALSHA`), so each is atomic and one round trip; a
//! load is one `HMGET`. A hash whose fields this store did not write (a `d` that does
//! not decode, an `e` or `v` that is not a decimal integer) is a decode
//! error for that record's load; a save overwrites it, restarting at
//! version 1 when the stored `v` is not one it could have written.
//!
//! # Owners
//!
//! [`SessionStore::owner_sessions`] and
//! [`SessionStore::delete_owner_sessions`] read a set per owner,
//! `{prefix}o:{<owner key>}` ([`RedisStore::owner_set`]), holding the ids of
//! that owner's records. On a single server every write, delete, rotate and
//! purge changes it in the same script as the record, and listing or
//! revoking an owner is one script over that set: exact, atomic, and in time
//! proportional to that owner's sessions, however many are stored.
//!
//! Redis's own expiry drops a record's key without touching its set (no
//! keyspace notifications), so a set may hold entries of records that are
//! gone. A set lives at least as long as its longest-lived record (every
//! write and touch extends its TTL, so sets vanish by themselves too), every
//! read checks each entry against its record (present, live, naming this
//! set), and listing, revoking and purging drop the stale ones.
//!
//! On a cluster the set is in another slot than the record, so the index
//! does not change in the same step (the rule the contract lets a cluster
//! weaken): a write adds the entry first, then writes the record, then adds
//! the entry again; a delete, an owner change or a rotate leaves the old
//! entry behind, stale, for reads to filter and purge to drop. Each add is
//! counted in a hash beside the set, `{prefix}g:{<owner key>}` (same slot),
//! and a purge or revoke drops an entry it found stale only if nothing
//! added it since it read it, so a live session is never missing from its
//! owner's listing once its write has returned (the suite's
//! linearizability checker races purges, listings and writes to check
//! it). A revoke re-reads the set until it finds no entry it has not
//! handled, so a session rotated while it runs is ended too.
//!
//! # Expiry
//!
//! Liveness is decided with the store's injected [`Clock`](session_store_core::Clock):
//! the scripts compare `e` with the `now` passed to them, and a load compares
//! it on the client. Every write also sets the key's `PEXPIRE` to
//! `expires_at - now + grace` ([`RedisStoreBuilder::ttl_grace`], 60 s by
//! default, at least 1 ms), so Redis drops expired keys by itself without a
//! purge; that TTL only collects garbage and never decides liveness.
//!
//! # Cluster
//!
//! [`RedisStore::cluster_builder`] gives the same store on a Redis Cluster.
//! Every operation but rotate touches one key. Rotate moves a record between
//! two ids whose keys are in different slots, usually on different masters,
//! so there it is **not atomic**: the store reads the old record, writes it
//! under the new id only if no live record is there (never overwriting one),
//! then deletes the old key only if it still holds what was copied. A crash
//! or a lost connection between the two writes leaves **both** ids holding
//! the record (the old one still valid), never neither. A write to the old id
//! that races the rotation is detected: the copy is withdrawn and the
//! rotation retried. This is the one rule the store weakens, exactly: while
//! a cross-slot rotate runs, a reader may load the record under both ids,
//! never under neither, and once rotate has returned only the new id loads.
//! Its conformance harness declares it as the capability
//! `rotate_briefly_shows_both_ids`, and the suite checks that weaker rule.
//!
//! A key of this store's shape that holds another Redis type than a hash
//! (written by something else) is a decode error for that id
//! ([`Error::Decode`], not worth a retry), not a backend failure; `count`,
//! `ids` and `purge_expired` skip it. When both keys fall into one slot (a prefix with its own
//! hash tag, such as `app{sessions}:`) rotate is one atomic script there too.
//! `count`, `ids`, `clear` and `purge_expired` SCAN every master.
//!
//! # Sentinel
//!
//! [`RedisStore::sentinel_builder`] gives the same store on the master that
//! Redis Sentinel names, with every rule of a single server. When a call
//! finds the master out of reach, or finds that the server it reaches has
//! become a replica (`READONLY`), the store asks the sentinels again (at
//! most every 100 ms) and moves to the master they name once it answers as
//! one: no restart, no new store object. Calls fail with transient errors
//! meanwhile (the tower layer answers 503).
//!
//! Measured here (`tests/sentinel.rs`: a master, two replicas and three
//! sentinels on loopback, `down-after-milliseconds` 500, eight visitors
//! counting, the master killed): calls failed for 1.8 s after the kill,
//! almost all of it the sentinels' own detection and election, and then
//! went on against the promoted replica.
//!
//! Replication is asynchronous: a write the master acknowledged and died
//! before sending on is lost when a replica is promoted. On loopback the
//! test lost none of about 4,600 acknowledged increments, but across a
//! network a failover loses what was in flight.
//! [`RedisStoreBuilder::wait_for_replicas`] makes every write wait (Redis
//! `WAIT`) until that many replicas have it, and fail otherwise, so an
//! acknowledged write survives a promotion; measured with one replica, it
//! lost none, and the median increment (load and write) went from 1.7 ms to
//! 2.4 ms there.
//!
//! # TLS
//!
//! With the `tls` feature, `rediss://` URLs connect over rustls, trusting
//! the platform's roots or the CA given to `RedisStoreBuilder::tls_root_ca`.
//!
//! # When Redis goes away
//!
//! Every round trip is bounded by [`RedisStoreBuilder::timeout`]: an
//! operation fails with [`Error::Timeout`] or [`Error::Backend`], never
//! hangs. The connection reconnects by itself in the background (and after a
//! timeout the store swaps in a fresh connection, so a half-open socket
//! cannot stall it), so the same store object works again once the server
//! is back.
//!
//! What the operator's log gets (`tracing`, target `session_store_redis`),
//! one event per change of state and nothing on the hot path: a `warn` when
//! calls start failing for want of a server (refused, dropped or timed-out
//! connections; then `debug` for each further failure), an `info` when
//! Redis answers again, a `warn` each time a timed-out connection is
//! replaced by a fresh one, and an `info` when a cross-slot rotate retries
//! after racing a concurrent write.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod connection;
mod owners;
mod rotate;
mod scan;
mod scripts;
mod sentinel;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use session_store_core::{
    Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait, raw::codec,
};

pub use builder::RedisStoreBuilder;
use builder::Target;
use connection::{Conn, ConnSlot};
use scan::PageOp;
use scripts::Scripts;

/// The default bound on every round trip to Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default time a key outlives its deadline before Redis drops it.
pub const DEFAULT_TTL_GRACE: Duration = Duration::from_secs(60);
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "session:";

/// The largest TTL set on a key (about 3,000 years): a far-future deadline
/// must not overflow Redis's expiry arithmetic.
const MAX_TTL_MS: i64 = 100_000_000_000_000;
/// How often a cross-slot rotate that raced a write is retried.
const ROTATE_ATTEMPTS: usize = 4;

/// A Redis or Redis Cluster session store. Cloning it shares the connection.
///
/// See the [crate docs](crate) for the key layout, expiry and cluster
/// behaviour.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: RwLock<ConnSlot>,
    /// How to make a fresh single-server connection (see `on_timeout`).
    single: Option<(redis::Client, ConnectionManagerConfig)>,
    /// Behind Sentinel: how to find the master again (see `follow_master`).
    sentinel: Option<sentinel::Sentinel>,
    cluster: bool,
    /// After each write: `WAIT` for this many replicas, this long (see
    /// [`RedisStoreBuilder::wait_for_replicas`]).
    wait: Option<(u32, Duration)>,
    scripts: Scripts,
    clock: SharedClock,
    max_record_bytes: usize,
    prefix: String,
    /// `SCAN` pattern of the records' keys.
    pattern: String,
    /// `SCAN` pattern of the owner sets' keys.
    owner_pattern: String,
    timeout: Duration,
    grace_ms: i64,
    scan_count: usize,
    /// Whether the last call failed for want of a server (see `run`).
    unreachable: AtomicBool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "mode",
                &match self.conn() {
                    Conn::Single(_) if self.inner.sentinel.is_some() => "sentinel",
                    Conn::Single(_) => "single",
                    Conn::Cluster(_) => "cluster",
                },
            )
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("ttl_grace_ms", &self.inner.grace_ms)
            .field("max_record_bytes", &self.inner.max_record_bytes)
            .finish_non_exhaustive()
    }
}

fn parse_i64(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether `e` is Redis's `WRONGTYPE`: a key of ours holding another type
/// than a hash (written by something else).
fn is_wrong_type(e: &Error) -> bool {
    matches!(e, Error::Backend { source: Some(source), .. }
        if source.downcast_ref::<redis::RedisError>().is_some_and(|r| r.code() == Some("WRONGTYPE")))
}

/// A `WRONGTYPE` reply is a decode failure of that record, not a backend
/// failure: permanent (not worth a retry) and about `id` alone.
fn wrong_type(e: Error, id: &SessionId) -> Error {
    if is_wrong_type(&e) {
        Error::decode(
            id,
            "the key holds another Redis type than a session hash",
            Some(Box::new(e)),
        )
    } else {
        e
    }
}

fn bad_reply(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::backend("redis", format!("unexpected Redis reply to {what}"), e)
}

impl RedisStore {
    /// A builder for a store on one Redis server, by URL:
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` (TLS,
    /// with the `tls` feature); or on the master Redis Sentinel names:
    /// `redis+sentinel://[[user]:password@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]`
    /// (the sentinels' addresses, the master's name; the password is the
    /// master's), as [`sentinel_builder`](Self::sentinel_builder) with
    /// [`master_password`](RedisStoreBuilder::master_password).
    #[must_use]
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Single(url.into()))
    }

    /// A builder for a store on a Redis Cluster, from the URLs of one or more
    /// of its nodes (the rest are discovered).
    #[must_use]
    pub fn cluster_builder<I, S>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// A builder for a store on the master that Redis Sentinel names
    /// `master_name`, from the URLs of one or more sentinels
    /// (`redis://host:26379`). The store follows a failover by itself: see
    /// the [crate docs](crate#sentinel).
    #[must_use]
    pub fn sentinel_builder<I, S>(sentinel_urls: I, master_name: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::new(Target::Sentinel {
            urls: sentinel_urls.into_iter().map(Into::into).collect(),
            master: master_name.into(),
            db: 0,
        })
    }

    /// The Redis key of `id`'s record: `{prefix}{{id}}`.
    #[must_use]
    pub fn key(&self, id: &SessionId) -> String {
        let id = id.encode();
        let mut key = String::with_capacity(self.inner.prefix.len() + 24);
        key.push_str(&self.inner.prefix);
        key.push('{');
        key.push_str(id.as_str());
        key.push('}');
        key
    }

    /// Whether this store runs against a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// The id of a key of this store, or `None` for a foreign key.
    fn id_of_key(&self, key: &[u8]) -> Option<SessionId> {
        let rest = key.strip_prefix(self.inner.prefix.as_bytes())?;
        let rest = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }
    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The TTL for a key with this deadline: `expires_at - now + grace`,
    /// between 1 ms and [`MAX_TTL_MS`].
    fn ttl_ms(&self, expires_at: Timestamp, now: Timestamp) -> i64 {
        let ms = i128::from(expires_at.as_millis()) - i128::from(now.as_millis()) + i128::from(self.inner.grace_ms);
        ms.clamp(1, i128::from(MAX_TTL_MS)) as i64
    }

    fn encode(&self, record: &Record) -> Result<Vec<u8>> {
        codec::check_size(&record.data, self.inner.max_record_bytes)?;
        codec::encode_body(record)
    }

    /// `'1'` when the scripts keep the owner index in the same step as the
    /// record (a single server), `'0'` on a cluster (see [`owners`]).
    fn index_flag(&self) -> &'static str {
        if self.is_cluster() { "0" } else { "1" }
    }

    /// Runs `script` on `record`'s key with the arguments every record
    /// write starts with (the body, the deadline, `now`, the key's TTL, the
    /// owner set and the index flag), then `extra`. On a cluster, the
    /// owner's set gets the entry first, so a listing never misses a stored
    /// record.
    async fn write<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &redis::Script,
        record: &Record,
        extra: &[u64],
    ) -> Result<T> {
        let body = self.encode(record)?;
        let now = self.now();
        let ttl = self.ttl_ms(record.expires_at, now);
        let set = record.owner.as_deref().map(|o| self.owner_set(o));
        if let (Some(set), true) = (&set, self.is_cluster()) {
            self.index_add(set, &record.id, ttl).await?;
        }
        let mut inv = script.key(self.key(&record.id));
        if let (Some(set), false) = (&set, self.is_cluster()) {
            inv.key(set);
        }
        inv.arg(body)
            .arg(record.expires_at.as_millis())
            .arg(now.as_millis())
            .arg(ttl)
            .arg(set.as_deref().unwrap_or(""))
            .arg(self.index_flag());
        for a in extra {
            inv.arg(*a);
        }
        let written = self
            .run(what, inv.invoke_async(&mut self.conn()))
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        if let (Some(set), true) = (&set, self.is_cluster()) {
            // Again, now the record is there: a purge or revoke that read
            // it as absent may have dropped the first entry.
            self.index_add(set, &record.id, ttl).await?;
        }
        self.replicated().await?;
        Ok(written)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        let created: i64 = self
            .write("creating a session", &self.inner.scripts.create, record, &[])
            .await?;
        if created == 1 {
            Ok(1)
        } else {
            Err(Error::IdCollision { id: record.id })
        }
    }

    /// One script: the record with exactly its version, unless it is not
    /// live or a live one of the same or a newer version is stored.
    async fn import(&self, record: &Record) -> Result<bool> {
        if record.version == 0 {
            return Ok(false);
        }
        let imported: i64 = self
            .write(
                "importing a session",
                &self.inner.scripts.import,
                record,
                &[record.version],
            )
            .await?;
        Ok(imported == 1)
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        let mut conn = self.conn();
        let key = self.key(id);
        let (d, e, v): (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) = self
            .run(
                "loading a session",
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("d")
                    .arg("e")
                    .arg("v")
                    .query_async(&mut conn),
            )
            .await
            .map_err(|e| wrong_type(e, id))?;
        let now = self.now();
        let Some(e) = e else {
            return match d.is_some() || v.is_some() {
                true => Err(Error::decode(id, "the stored record has no deadline", None)),
                false => Ok(None),
            };
        };
        let expires_at =
            parse_i64(&e).ok_or_else(|| Error::decode(id, "the stored deadline is not an integer", None))?;
        if expires_at <= now.as_millis() {
            return Ok(None);
        }
        let version = v
            .as_deref()
            .and_then(parse_u64)
            .ok_or_else(|| Error::decode(id, "the stored version is missing or not an integer", None))?;
        let body = d.ok_or_else(|| Error::decode(id, "the stored record has no body", None))?;
        codec::decode_body(*id, &body, Timestamp::from_millis(expires_at), version).map(Some)
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        let version: i64 = self
            .write("saving a session", &self.inner.scripts.save, record, &[])
            .await?;
        u64::try_from(version)
            .map_err(|_| Error::backend_msg("redis", format!("the save script returned version {version}")))
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        // No stored record ever has version u64::MAX.
        let Some(next) = record.version.checked_add(1) else {
            self.encode(record)?;
            return Err(conflict);
        };
        let saved: i64 = self
            .write(
                "saving a session conditionally",
                &self.inner.scripts.save_if_version,
                record,
                &[record.version, next],
            )
            .await?;
        if saved == 1 { Ok(next) } else { Err(conflict) }
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let now = self.now();
        let ttl = self.ttl_ms(expires_at, now);
        let touched: redis::Value = self
            .run(
                "touching a session",
                self.inner
                    .scripts
                    .touch
                    .key(self.key(id))
                    .arg(expires_at.as_millis())
                    .arg(now.as_millis())
                    .arg(ttl)
                    .arg(self.index_flag())
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, id))?;
        match touched {
            redis::Value::Int(n) => {
                self.replicated().await?;
                Ok(n == 1)
            }
            // A cluster: the record names its owner's set, which must live
            // as long as the record now does (and gets the entry back if a
            // purge dropped it while a write was under way).
            other => {
                let set: String = redis::from_redis_value(other).map_err(|e| bad_reply("touch", e))?;
                self.index_add(&set, id, ttl).await?;
                Ok(true)
            }
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let key = self.key(id);
        let _: i64 = if self.is_cluster() {
            // The owner's entry stays, stale, until a read or a purge drops it.
            self.run(
                "deleting a session",
                redis::cmd("DEL").arg(key).query_async(&mut self.conn()),
            )
            .await?
        } else {
            self.run(
                "deleting a session",
                self.inner.scripts.delete.key(key).invoke_async(&mut self.conn()),
            )
            .await?
        };
        self.replicated().await
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let rotated = match self.rotate_keys(old, new).await {
            Err(e) if is_wrong_type(&e) => {
                // Name the id whose key holds the wrong type.
                let mut conn = self.conn();
                let kind: String = self
                    .run(
                        "reading a key's type",
                        redis::cmd("TYPE").arg(self.key(new)).query_async(&mut conn),
                    )
                    .await
                    .unwrap_or_default();
                let culprit = if matches!(kind.as_str(), "hash" | "none") {
                    old
                } else {
                    new
                };
                Err(wrong_type(e, culprit))
            }
            other => other,
        }?;
        self.replicated().await?;
        Ok(rotated)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        let mut op = PageOp::Purge(now, 0);
        self.scan(&mut op).await?;
        // Then the owner sets: entries whose record is gone (Redis's own
        // expiry, a delete or a move on a cluster) are dropped.
        let mut sweep = PageOp::Sweep(now, 0);
        self.scan(&mut sweep).await?;
        if let PageOp::Sweep(_, dropped) = sweep
            && dropped > 0
        {
            tracing::debug!(dropped, "purge dropped stale owner-index entries");
        }
        Ok(match op {
            PageOp::Purge(_, removed) => removed,
            _ => 0,
        })
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.ids().await?.len() as u64)
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        let mut op = PageOp::Ids(self.now(), Vec::new());
        self.scan(&mut op).await?;
        let PageOp::Ids(_, mut ids) = op else {
            return Ok(Vec::new());
        };
        // A key seen twice (SCAN may repeat one while the keyspace rehashes)
        // counts once.
        ids.sort_unstable();
        ids.dedup();
        Ok(ids.into_iter().map(ListingHandle::from_stored).collect())
    }

    fn listing_handle(&self, id: &SessionId) -> ListingHandle {
        ListingHandle::from_stored(*id)
    }

    async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
        self.load(&handle.stored()).await
    }

    async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
        self.delete(&handle.stored()).await
    }

    async fn clear(&self) -> Result<()> {
        self.scan(&mut PageOp::Clear).await?;
        self.scan(&mut PageOp::ClearOwners).await
    }

    async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
        let ids = self.list_owner(owner).await?;
        Ok(ids.into_iter().map(ListingHandle::from_stored).collect())
    }

    async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
        let ended = self.revoke_owner(owner, keep).await?;
        self.replicated().await?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests;

/// The README's examples, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
