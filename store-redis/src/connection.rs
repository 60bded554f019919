//! The connection: one server or a cluster, every call bounded by the
//! timeout, and a fresh connection after a timeout.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use session_store_core::{Error, Result};

use crate::RedisStore;
use crate::scan::Node;

/// Bounds `f` by `timeout` and maps its errors.
pub(crate) async fn run<T>(timeout: Duration, what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T> {
    run_classified(timeout, what, f).await.map_err(|(e, _)| e)
}

/// As [`run`], and says whether a failure means the server is out of reach
/// (refused, dropped, timed out) or is a replica (`READONLY`: a master
/// demoted by a failover) rather than a reply it gave.
async fn run_classified<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = RedisResult<T>>,
) -> Result<T, (Error, bool)> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        // redis-rs's own response or connect timeout (set to the same bound).
        Ok(Err(e)) if e.is_timeout() => Err((Error::Timeout(timeout), true)),
        Ok(Err(e)) => {
            let unreachable = e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.code() == Some("READONLY")
                || e.to_string().contains("READONLY");
            Err((
                Error::backend("redis", format!("Redis failed while {what}"), e),
                unreachable,
            ))
        }
        Err(_) => Err((Error::Timeout(timeout), true)),
    }
}

/// One connection: a single server or a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The current connection, and since when.
pub(crate) struct ConnSlot {
    pub(crate) conn: Conn,
    pub(crate) since: Instant,
}

impl RedisStore {
    pub(crate) fn conn(&self) -> Conn {
        self.inner
            .conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .conn
            .clone()
    }

    /// After a call timed out: the server may be gone without closing the
    /// socket (a half-open connection), which redis-rs does not treat as a
    /// reason to reconnect. Replace the single-server connection with a
    /// fresh one that connects on first use, at most once per timeout period.
    fn on_timeout(&self) {
        let Some((client, config)) = &self.inner.single else {
            return;
        };
        let mut slot = self.inner.conn.write().unwrap_or_else(PoisonError::into_inner);
        if slot.since.elapsed() < self.inner.timeout {
            return;
        }
        match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
            Ok(manager) => {
                tracing::warn!(
                    timeout = ?self.inner.timeout,
                    "a Redis call timed out; replacing the connection with a fresh one"
                );
                *slot = ConnSlot {
                    conn: Conn::Single(manager),
                    since: Instant::now(),
                };
            }
            Err(e) => tracing::warn!(error = %e, "a Redis call timed out and a fresh connection could not be made"),
        }
    }

    pub(crate) async fn run<T>(&self, what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T> {
        match run_classified(self.inner.timeout, what, f).await {
            Ok(v) => {
                // One relaxed load per call; a store operator hears once when Redis is back.
                if self.inner.unreachable.load(Ordering::Relaxed)
                    && self.inner.unreachable.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(operation = what, "Redis answers again");
                }
                Ok(v)
            }
            Err((error, unreachable)) => {
                if unreachable {
                    if self.inner.unreachable.swap(true, Ordering::Relaxed) {
                        tracing::debug!(operation = what, error = %error.chain(), "Redis still out of reach");
                    } else {
                        tracing::warn!(
                            operation = what,
                            error = %error.chain(),
                            "Redis is out of reach; calls fail until it answers again (reconnecting in the background)"
                        );
                    }
                }
                if matches!(error, Error::Timeout(_)) {
                    self.on_timeout();
                }
                if unreachable {
                    self.follow_master().await;
                }
                Err(error)
            }
        }
    }

    /// After a write: with [`wait_for_replicas`](crate::RedisStoreBuilder::wait_for_replicas),
    /// waits until that many replicas have it, else fails.
    pub(crate) async fn replicated(&self) -> Result<()> {
        let Some((replicas, timeout)) = self.inner.wait else {
            return Ok(());
        };
        // Within the store's own bound on the round trip.
        let timeout = timeout.min(self.inner.timeout * 3 / 4);
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let acked: u32 = self
            .run(
                "waiting for replicas",
                redis::cmd("WAIT")
                    .arg(replicas)
                    .arg(millis)
                    .query_async(&mut self.conn()),
            )
            .await?;
        if acked < replicas {
            return Err(Error::backend_msg(
                "redis",
                format!(
                    "the write reached the master but {acked} of {replicas} replicas within {timeout:?}; \
                     it may be lost if the master fails now"
                ),
            ));
        }
        Ok(())
    }

    /// Runs `pipe` on `node` (a cluster pipeline must stay on one node).
    pub(crate) async fn node_pipe(&self, node: &Node, pipe: Pipeline, what: &str) -> Result<Vec<Value>> {
        let n = pipe.len();
        match (self.conn(), node) {
            (Conn::Cluster(mut c), Node::Master { host, port }) => {
                let route = SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                };
                self.run(what, c.route_pipeline(pipe, 0, n, route)).await
            }
            (mut c, _) => self.run(what, pipe.query_async(&mut c)).await,
        }
    }
}
