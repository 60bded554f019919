//! SCANs over this store's keys on every node: ids, clear and purge, of
//! the records and of the owner sets.

use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, Value};
use session_store_core::{Error, Result, SessionId, Timestamp};

use crate::connection::Conn;
use crate::{RedisStore, bad_reply, parse_i64};

/// Escapes Redis glob characters so `MATCH` takes them literally.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where one SCAN runs: the single server, or one cluster master.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Single,
    Master { host: String, port: u16 },
}

/// What to do with each page of scanned keys.
pub(crate) enum PageOp {
    /// The live records' ids.
    Ids(Timestamp, Vec<SessionId>),
    /// Unlinks every record.
    Clear,
    /// Deletes the expired records; counts them.
    Purge(Timestamp, u64),
    /// Unlinks every owner set.
    ClearOwners,
    /// Drops the owner sets' stale entries; counts them.
    Sweep(Timestamp, u64),
}

impl PageOp {
    /// Whether the op walks the owner sets rather than the records.
    fn on_owner_sets(&self) -> bool {
        matches!(self, Self::ClearOwners | Self::Sweep(..))
    }
}

impl RedisStore {
    fn scan_cmd(&self, cursor: &str, op: &PageOp) -> Cmd {
        let pattern = match op.on_owner_sets() {
            true => &self.inner.owner_pattern,
            false => &self.inner.pattern,
        };
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(self.inner.scan_count);
        cmd
    }

    /// SCANs this store's keys on every node, applying `op` to each page.
    pub(crate) async fn scan(&self, op: &mut PageOp) -> Result<()> {
        let mut cursors: Vec<(Node, String)> = Vec::new();
        match self.conn() {
            Conn::Single(_) => cursors.push((Node::Single, "0".to_owned())),
            Conn::Cluster(mut c) => {
                // The first page from every master at once; the reply maps
                // each master's address to its page.
                let routing =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::Special)));
                let reply = self
                    .run("scanning", c.route_command(self.scan_cmd("0", op), routing))
                    .await?;
                let Value::Map(pages) = reply else {
                    return Err(Error::backend_msg(
                        "redis",
                        format!("unexpected Redis reply to SCAN on every master: {reply:?}"),
                    ));
                };
                for (addr, page) in pages {
                    let addr: String = redis::from_redis_value(addr).map_err(|e| bad_reply("SCAN", e))?;
                    let (host, port) = addr
                        .rsplit_once(':')
                        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                        .ok_or_else(|| {
                            Error::backend_msg("redis", format!("unexpected cluster node address {addr:?}"))
                        })?;
                    if let Value::ServerError(e) = page {
                        return Err(Error::backend(
                            "redis",
                            format!("SCAN failed on {addr}"),
                            redis::RedisError::from(e),
                        ));
                    }
                    let (cursor, keys): (String, Vec<Vec<u8>>) =
                        redis::from_redis_value(page).map_err(|e| bad_reply("SCAN", e))?;
                    let node = Node::Master { host, port };
                    self.page(&node, keys, op).await?;
                    if cursor != "0" {
                        cursors.push((node, cursor));
                    }
                }
            }
        }
        for (node, mut cursor) in cursors {
            loop {
                let mut pipe = redis::pipe();
                pipe.add_command(self.scan_cmd(&cursor, op));
                let mut reply = self.node_pipe(&node, pipe, "scanning").await?;
                let page = reply
                    .pop()
                    .ok_or_else(|| Error::backend_msg("redis", "empty Redis reply to SCAN"))?;
                let (next, keys): (String, Vec<Vec<u8>>) =
                    redis::from_redis_value(page).map_err(|e| bad_reply("SCAN", e))?;
                self.page(&node, keys, op).await?;
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Applies `op` to one page of keys scanned on `node`.
    async fn page(&self, node: &Node, keys: Vec<Vec<u8>>, op: &mut PageOp) -> Result<()> {
        if op.on_owner_sets() {
            return self.owner_page(node, keys, op).await;
        }
        let keys: Vec<(Vec<u8>, SessionId)> = keys
            .into_iter()
            .filter_map(|k| self.id_of_key(&k).map(|id| (k, id)))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        // A foreign value of the wrong type under a key of our shape fails
        // its own command only; it counts as not live and is not purged.
        pipe.ignore_errors();
        match op {
            PageOp::Ids(..) => {
                for (k, _) in &keys {
                    pipe.hget(k, "e");
                }
            }
            PageOp::Clear => {
                for (k, _) in &keys {
                    pipe.unlink(k);
                }
            }
            PageOp::Purge(now, _) => {
                // Loaded first in the same pipeline, so every EVALSHA after
                // it finds the script without sending its source per key.
                pipe.cmd("SCRIPT").arg("LOAD").arg(&self.inner.scripts.purge_src);
                for (k, _) in &keys {
                    pipe.cmd("EVALSHA")
                        .arg(&self.inner.scripts.purge_sha)
                        .arg(1)
                        .arg(k)
                        .arg(now.as_millis())
                        .arg(self.index_flag());
                }
            }
            PageOp::ClearOwners | PageOp::Sweep(..) => unreachable!("owner sets go through owner_page"),
        }
        let replies = self.node_pipe(node, pipe, "reading a page of keys").await?;
        match op {
            PageOp::Ids(now, ids) => {
                for ((_, id), e) in keys.iter().zip(replies) {
                    let e: Option<Vec<u8>> = redis::from_redis_value(e).unwrap_or(None);
                    if e.as_deref().and_then(parse_i64).is_some_and(|e| e > now.as_millis()) {
                        ids.push(*id);
                    }
                }
            }
            PageOp::Clear | PageOp::ClearOwners | PageOp::Sweep(..) => {}
            PageOp::Purge(_, removed) => {
                let mut replies = replies.into_iter();
                if let Some(Value::ServerError(e)) = replies.next() {
                    return Err(Error::backend(
                        "redis",
                        "Redis failed while loading the purge script",
                        redis::RedisError::from(e),
                    ));
                }
                for r in replies {
                    let r: i64 = redis::from_redis_value(r).unwrap_or(0);
                    *removed += u64::from(r == 1);
                }
            }
        }
        Ok(())
    }

    /// Applies `op` to one page of owner-set keys scanned on `node`.
    async fn owner_page(&self, node: &Node, keys: Vec<Vec<u8>>, op: &mut PageOp) -> Result<()> {
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| self.is_owner_set(k)).collect();
        if keys.is_empty() {
            return Ok(());
        }
        match op {
            PageOp::ClearOwners => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for k in &keys {
                    // A cluster's set has its marks in its slot.
                    pipe.unlink(&[k.clone(), Self::marks_of(k)]);
                }
                self.node_pipe(node, pipe, "clearing the owner index").await?;
            }
            PageOp::Sweep(now, dropped) if !self.is_cluster() => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                pipe.cmd("SCRIPT").arg("LOAD").arg(&self.inner.scripts.sweep_src);
                for k in &keys {
                    pipe.cmd("EVALSHA")
                        .arg(&self.inner.scripts.sweep_sha)
                        .arg(1)
                        .arg(k)
                        .arg(now.as_millis());
                }
                let mut replies = self
                    .node_pipe(node, pipe, "sweeping the owner index")
                    .await?
                    .into_iter();
                if let Some(Value::ServerError(e)) = replies.next() {
                    return Err(Error::backend(
                        "redis",
                        "Redis failed while loading the sweep script",
                        redis::RedisError::from(e),
                    ));
                }
                for r in replies {
                    *dropped += redis::from_redis_value::<u64>(r).unwrap_or(0);
                }
            }
            PageOp::Sweep(now, dropped) => {
                for k in &keys {
                    *dropped += self.sweep_cluster_set(k, *now).await?;
                }
            }
            PageOp::Ids(..) | PageOp::Clear | PageOp::Purge(..) => unreachable!("records go through page"),
        }
        Ok(())
    }
}
