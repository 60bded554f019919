//! How big the next batch of a batched purge is, for backends that delete
//! expired records in batches (SQLite, PostgreSQL): each batch aims at a
//! time budget, so a purge of millions of rows never holds a lock for long
//! and a small purge does not crawl in tiny steps.

use std::time::Duration;

/// The largest batch [`next_batch`] ever answers.
pub const MAX_BATCH: usize = 1 << 20;

/// The size of the batch after one of `batch` rows that took `took`:
/// scaled toward `target` time (at most 16 times larger per step, as a
/// batch's cost grows less than linearly with its rows; halved when it
/// overran), never below `min` nor above [`MAX_BATCH`]. A zero `target`
/// keeps batches of `min`.
///
/// ```
/// use std::time::Duration;
/// use session_store_core::raw::purge_batch::next_batch;
///
/// let ms = Duration::from_millis(1);
/// // A 1,000-row batch in 10 ms of a 50 ms budget: four times larger next.
/// assert_eq!(next_batch(1_000, 10 * ms, 1_000, 50 * ms), 4_000);
/// ```
#[must_use]
pub fn next_batch(batch: usize, took: Duration, min: usize, target: Duration) -> usize {
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
    next.clamp(min, MAX_BATCH.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_batch_grows_toward_the_target_time_and_shrinks_on_overrun() {
        let target = 50 * MS;
        // Fast batches grow, at most sixteenfold per step.
        assert_eq!(next_batch(1_000, MS, 1_000, target), 16_000);
        // 10 ms of 50: scaled toward 80% of the target.
        assert_eq!(next_batch(1_000, 10 * MS, 1_000, target), 4_000);
        assert_eq!(next_batch(10_000, 20 * MS, 1_000, target), 20_000);
        // Within [target/2, target]: kept.
        assert_eq!(next_batch(10_000, 40 * MS, 1_000, target), 10_000);
        // Overran: halved, never below the minimum.
        assert_eq!(next_batch(10_000, 80 * MS, 1_000, target), 5_000);
        assert_eq!(next_batch(1_500, 900 * MS, 1_000, target), 1_000);
        // Never above the cap, even for a zero-time batch.
        assert_eq!(next_batch(MAX_BATCH, Duration::ZERO, 1, target), MAX_BATCH);
        // A zero target keeps fixed batches.
        assert_eq!(next_batch(1_000, MS, 1_000, Duration::ZERO), 1_000);
    }
}
