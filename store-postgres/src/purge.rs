//! Purging expired rows in batches on the expiry index.

use std::time::Instant;

use session_store_core::Result;

use crate::Inner;

impl Inner {
    /// Deletes every row expired at the clock's time (read once, at the
    /// start), in batches: each batch is one statement (its own
    /// transaction) that finds rows on the `expires_at` index and deletes
    /// them by tuple id. The first batch has [`purge_batch`](crate::PostgresStoreBuilder::purge_batch)
    /// rows; later ones grow or shrink so that each takes about
    /// [`purge_batch_time`](crate::PostgresStoreBuilder::purge_batch_time).
    /// Row locks only, held for one batch: readers never wait, nor do
    /// writers of live rows; a row a writer replaced meanwhile is re-checked
    /// and kept. Each batch is bounded by the store's timeout; rows a
    /// failed purge left are removed by the next one.
    pub(crate) async fn purge(&self) -> Result<u64> {
        let started = Instant::now();
        let now = self.now();
        let mut batch = self.purge_batch;
        let mut total = 0u64;
        loop {
            let limit = i64::try_from(batch).unwrap_or(i64::MAX);
            let start = Instant::now();
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
                    if removed < batch as u64 {
                        tracing::debug!(removed = total, took = ?started.elapsed(), table = %self.names.table, "PostgreSQL purge");
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
                    tracing::warn!(error = %e, removed = total, table = %self.names.table, "PostgreSQL purge failed");
                    return Err(e);
                }
            }
        }
    }
}
