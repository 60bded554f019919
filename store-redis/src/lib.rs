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
//! with three fields: `d`, the body ([`codec::encode_body`]: created time and
//! data), `e`, the deadline in Unix milliseconds, and `v`, the version.
//! Create, save, save-if-version, touch and a single-slot rotate are each one
//! Lua script (`EVALSHA`), so each is atomic and one round trip; a load is one
//! `HMGET`. A hash whose fields this store did not write (a `d` that does
//! not decode, an `e` or `v` that is not a decimal integer) is a decode
//! error for that record's load; a save overwrites it, restarting at
//! version 1 when the stored `v` is not one it could have written.
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

mod builder;
mod connection;
mod owners;
mod rotate;
mod scan;
mod scripts;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use session_store_core::{Error, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait, codec};

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
    scripts: Scripts,
    clock: SharedClock,
    max_record_bytes: usize,
    prefix: String,
    pattern: String,
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
    Error::backend(format!("unexpected Redis reply to {what}"), e)
}

impl RedisStore {
    /// A builder for a store on one Redis server, by URL:
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` (TLS,
    /// with the `tls` feature).
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
        self.inner.single.is_none()
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

    /// `script` on `record`'s key with the arguments every record write
    /// starts with: the body, the deadline, `now` and the key's TTL.
    fn write_step<'a>(
        &self,
        script: &'a redis::Script,
        record: &Record,
        body: Vec<u8>,
        now: Timestamp,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.key(self.key(&record.id));
        inv.arg(body)
            .arg(record.expires_at.as_millis())
            .arg(now.as_millis())
            .arg(self.ttl_ms(record.expires_at, now));
        inv
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.inner.clock)
    }

    async fn create(&self, record: &Record) -> Result<()> {
        let body = self.encode(record)?;
        let now = self.now();
        let created: i64 = self
            .run(
                "creating a session",
                self.write_step(&self.inner.scripts.create, record, body, now)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        if created == 1 {
            Ok(())
        } else {
            Err(Error::IdCollision { id: record.id })
        }
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
        let body = self.encode(record)?;
        let now = self.now();
        let version: i64 = self
            .run(
                "saving a session",
                self.write_step(&self.inner.scripts.save, record, body, now)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        u64::try_from(version).map_err(|_| Error::backend_msg(format!("the save script returned version {version}")))
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        let conflict = Error::Conflict {
            id: record.id,
            expected: record.version,
        };
        let body = self.encode(record)?;
        // No stored record ever has version u64::MAX.
        let Some(next) = record.version.checked_add(1) else {
            return Err(conflict);
        };
        let now = self.now();
        let saved: i64 = self
            .run(
                "saving a session conditionally",
                self.write_step(&self.inner.scripts.save_if_version, record, body, now)
                    .arg(record.version)
                    .arg(next)
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, &record.id))?;
        if saved == 1 { Ok(next) } else { Err(conflict) }
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let now = self.now();
        let touched: i64 = self
            .run(
                "touching a session",
                self.inner
                    .scripts
                    .touch
                    .key(self.key(id))
                    .arg(expires_at.as_millis())
                    .arg(now.as_millis())
                    .arg(self.ttl_ms(expires_at, now))
                    .invoke_async(&mut self.conn()),
            )
            .await
            .map_err(|e| wrong_type(e, id))?;
        Ok(touched == 1)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let mut conn = self.conn();
        let _: i64 = self
            .run(
                "deleting a session",
                redis::cmd("DEL").arg(self.key(id)).query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        match self.rotate_keys(old, new).await {
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
        }
    }

    async fn purge_expired(&self) -> Result<u64> {
        let mut op = PageOp::Purge(self.now(), 0);
        self.scan(&mut op).await?;
        Ok(match op {
            PageOp::Purge(_, removed) => removed,
            _ => 0,
        })
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.ids().await?.len() as u64)
    }

    async fn ids(&self) -> Result<Vec<SessionId>> {
        let mut op = PageOp::Ids(self.now(), Vec::new());
        self.scan(&mut op).await?;
        let PageOp::Ids(_, mut ids) = op else {
            return Ok(Vec::new());
        };
        // A key seen twice (SCAN may repeat one while the keyspace rehashes)
        // counts once.
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    async fn clear(&self) -> Result<()> {
        self.scan(&mut PageOp::Clear).await
    }
}

#[cfg(test)]
mod tests;
