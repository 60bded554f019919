//! Purging expired rows in batches on the expiry index.

use std::time::Instant;

use session_store_core::Result;

use crate::Inner;

impl Inner {
    /// Deletes every row expired at the clock's time (read once, at the
    /// start), in batches of [`purge_batch`](crate::PostgresStoreBuilder::purge_batch)
    /// rows: each batch is one statement (its own transaction) that finds
    /// rows on the `expires_at` index, locks them skipping rows another
    /// transaction holds, and deletes them by tuple id. Row locks only, held
    /// for one batch: writers and readers of other rows never wait, and a
    /// writer replacing an expired row is skipped rather than waited for.
    /// Each batch is bounded by the store's timeout; rows a failed purge
    /// left are removed by the next one.
    pub(crate) async fn purge(&self) -> Result<u64> {
        let started = Instant::now();
        let now = self.now();
        let limit = i64::try_from(self.purge_batch).unwrap_or(i64::MAX);
        let mut total = 0u64;
        loop {
            let removed = self
                .conn
                .run("purge_expired", |client| async move {
                    let stmt = client.prepare_cached(&self.sql.purge).await?;
                    Ok(client.execute(&stmt, &[&now, &limit]).await?)
                })
                .await;
            match removed {
                Ok(removed) => {
                    total += removed;
                    if removed < self.purge_batch as u64 {
                        tracing::debug!(removed = total, took = ?started.elapsed(), table = %self.names.table, "PostgreSQL purge");
                        return Ok(total);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, removed = total, table = %self.names.table, "PostgreSQL purge failed");
                    return Err(e);
                }
            }
        }
    }
}
