//! Purging expired rows in batches on the expiry index.

use std::time::Instant;

use mysql_async::prelude::Queryable;
use session_store_core::Result;

use crate::Inner;

impl Inner {
    /// Deletes every row expired at the clock's time (read once, at the
    /// start), in batches: each batch is one `DELETE ... ORDER BY
    /// expires_at LIMIT n` on the expiry index, its own transaction. The
    /// first batch has [`purge_batch`](crate::MysqlStoreBuilder::purge_batch)
    /// rows; later ones grow or shrink so that each takes about
    /// [`purge_batch_time`](crate::MysqlStoreBuilder::purge_batch_time).
    /// A row a writer made live meanwhile no longer matches and stays. Each
    /// batch is bounded by the store's timeout; rows a failed purge left
    /// are removed by the next one.
    pub(crate) async fn purge(&self) -> Result<u64> {
        let started = Instant::now();
        let now = self.now();
        let mut batch = self.purge_batch;
        let mut total = 0u64;
        loop {
            let limit = u64::try_from(batch).unwrap_or(u64::MAX);
            let start = Instant::now();
            let removed = self
                .conn
                .run("purge_expired", |mut c| async move {
                    c.exec_drop(&self.sql.purge, (now, limit)).await?;
                    Ok(c.affected_rows())
                })
                .await;
            match removed {
                Ok(removed) => {
                    total += removed;
                    if removed < limit {
                        tracing::debug!(removed = total, took = ?started.elapsed(), table = %self.table, "MySQL purge");
                        return Ok(total);
                    }
                    batch = session_store_core::raw::purge_batch::next_batch(
                        batch,
                        start.elapsed(),
                        self.purge_batch,
                        self.purge_batch_time,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, removed = total, table = %self.table, "MySQL purge failed");
                    return Err(e);
                }
            }
        }
    }
}
