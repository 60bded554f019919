//! Purging expired rows in batches on the expiry index.

use std::time::{Duration, Instant};

use session_store_core::Result;

use crate::Inner;

/// The largest purge batch, however fast batches run.
const MAX_PURGE_BATCH: usize = 1 << 20;

/// The size of the purge batch after one of `batch` rows that took `took`:
/// scaled toward `target` time (at most 16 times larger per step, as a
/// batch's cost grows less than linearly with its rows; halved when it
/// overran), never below `min` nor above [`MAX_PURGE_BATCH`]. The same
/// rule as the SQLite store's.
fn next_purge_batch(batch: usize, took: Duration, min: usize, target: Duration) -> usize {
    if target.is_zero() {
        return min;
    }
    let next = if took > target {
        batch / 2
    } else if took < target / 2 {
        // Aim a little under the target: batches of one size vary.
        let factor = (target.as_secs_f64() / took.as_secs_f64().max(1e-6) * 0.8).min(16.0);
        (batch as f64 * factor) as usize
    } else {
        batch
    };
    next.clamp(min, MAX_PURGE_BATCH.max(min))
}

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
                    batch = next_purge_batch(batch, start.elapsed(), self.purge_batch, self.purge_batch_time);
                }
                Err(e) => {
                    tracing::warn!(error = %e, removed = total, table = %self.names.table, "PostgreSQL purge failed");
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn purge_batch_grows_toward_the_target_time_and_shrinks_on_overrun() {
        let target = 50 * MS;
        assert_eq!(next_purge_batch(1_000, MS, 1_000, target), 16_000);
        assert_eq!(next_purge_batch(1_000, 10 * MS, 1_000, target), 4_000);
        assert_eq!(next_purge_batch(10_000, 40 * MS, 1_000, target), 10_000);
        assert_eq!(next_purge_batch(10_000, 80 * MS, 1_000, target), 5_000);
        assert_eq!(next_purge_batch(1_500, 900 * MS, 1_000, target), 1_000);
        assert_eq!(
            next_purge_batch(MAX_PURGE_BATCH, Duration::ZERO, 1, target),
            MAX_PURGE_BATCH
        );
        assert_eq!(next_purge_batch(1_000, MS, 1_000, Duration::ZERO), 1_000);
    }
}
