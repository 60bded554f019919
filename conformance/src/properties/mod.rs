//! The targeted properties: one `pub async fn` per rule of the contract.
//!
//! Each function opens stores through the [`Harness`] on fresh namespaces,
//! drives them with a [`ManualClock`](session_store_core::ManualClock), and
//! returns [`Pass::Passed`], [`Pass::Skipped`] (a capability the property
//! needs is missing) or a [`Failure`] naming the rule that broke.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use session_store_core::{Error, ListingHandle, Record, SessionId, SessionStore, Timestamp};

use crate::env::{Env, START_MILLIS, chain, data_of, data_of_size, describe, diff_data, ensure};
use crate::{Failure, Harness, Pass, Verdict};

const ROUND_TRIP: &str = "data, created time, deadline and version round-trip exactly through the store";
const LIVENESS: &str = "a record is live while now < expires_at and expired from now == expires_at on";
const NO_REVIVAL: &str = "no operation ever returns or revives an expired record";
const TOUCH: &str = "touch moves the deadline of a live record without changing its data or version, and returns false for an absent or expired one";
const CREATE: &str =
    "create never overwrites a live record (IdCollision, nothing changed) and replaces an expired one with version 1";
const VERSIONS: &str =
    "every write of data stores a new version: 1 without a live predecessor, else one more than the record it replaces";
const CONDITIONAL: &str = "save_if_version writes only over a live record with exactly that version, else returns Conflict and changes nothing";
const DELETED: &str = "a record deleted meanwhile is a conflict for save_if_version and is never brought back";
const ROTATE: &str =
    "rotate moves the live record (data, created time, deadline, version) to the new id and the old id no longer loads";
const ROTATE_NOTHING: &str = "rotate returns false for an absent or expired old id and changes nothing";
const ROTATE_COLLISION: &str = "rotate onto a live id returns IdCollision and changes nothing";
const PURGE: &str = "purge_expired removes exactly the expired records, says how many, and leaves live ones untouched";
const LISTING: &str = "count, ids and clear see only the live records of their own store";
const ISOLATION: &str = "two namespaces never see each other's records; clear touches only its own";
const DEADLINES: &str = "deadlines round-trip through the store to the millisecond";
const DELETE: &str = "delete removes the record; deleting an absent id is not an error";
const DURABLE: &str = "a durable store keeps every record (data, version, deadline) across drop and reopen, and expired ones stay expired";
const SHARED: &str =
    "store objects on one namespace see each other's writes, and conditional saves across them have exactly one winner";
const CLOCK: &str = "a store's clock() is the clock it was given, so deadlines computed above the store agree with its liveness decisions";
const DECODE: &str = "corrupt stored bytes give Error::Decode naming that id's fingerprint, other records still load, and nothing panics";
const TOO_LARGE: &str = "data over the size limit is refused with TooLarge and nothing is written";
const LOST_WRITES: &str = "concurrent writes to distinct ids are all kept";
const TORN: &str =
    "save is atomic, last writer wins: racing saves leave exactly one writer's whole record with distinct versions";
const ONE_WINNER: &str = "racing save_if_version from one version have exactly one winner";
const ONE_CREATE: &str = "create checks and writes in one atomic step: racing creates on one id have exactly one winner, whose record is stored";
const ONE_ROTATE: &str = "rotate checks and moves in one atomic step: racing rotates onto one new id have exactly one winner, and every other record stays intact";
const ROTATE_ATOMIC: &str = "rotate is one atomic step: a reader during a rotate sees exactly one of the two ids live, never both and never neither";
const ROTATE_WEAK: &str = "a store declaring `rotate_briefly_shows_both_ids` still never shows neither id during a rotate, and only the new id once rotate returned";
const TOUCH_DELETE: &str = "touch is one atomic step: a touch racing a delete never brings the record back";
const PURGE_SAVE: &str = "purge removes only records expired when it removes them: a purge racing a save of the same expired id never removes the fresh record";
const ONE_WRITE: &str =
    "save is atomic: a reader during racing saves sees data, deadline and version of one and the same write";
const LATE_AFTER_ROTATE: &str = "a write that loaded the record before a rotate is a conflict (save_if_version) or false (touch), and never brings the old id back";
const EXTREMES: &str =
    "deadlines at the epoch, before it and at Timestamp::MAX are live exactly while now < expires_at, with no overflow";
const TOUCH_PAST: &str =
    "touch of a live record to a deadline at or before now returns true and the record is expired at once";
const AT_DEADLINE: &str = "at now == expires_at the record is expired for every write: save starts again at version 1, create replaces it, touch and rotate return false, save_if_version is a conflict";
const REAL_TIME: &str = "liveness follows the injected clock alone: a record stays live while real time passes and the clock stands still (a store's own TTL is set from the injected clock, with grace)";
const LONG_KEYS: &str = "keys of hundreds of bytes and tens of KiB round-trip exactly";
const AT_LIMIT: &str = "data exactly at and just under the configured limit (SessionData::byte_size) round-trips; one byte over is refused with TooLarge and nothing is written";
const SCALE_LISTING: &str = "ids and count over thousands of records agree, list every live record once and no other";
const SCALE_PURGE: &str = "purge over hundreds of expired records removes and counts every one of them";
const NAMESPACE_LISTING: &str = "purge, count, ids and clear each touch and count only their own namespace";
const NO_STALE: &str =
    "store objects on one namespace keep no stale state: a write through one is seen by the next load through another";
const CORRUPT_LISTING: &str = "a corrupt record does not make count, ids or purge_expired fail, and their answers stay exact for every healthy record";

/// The one list of property names: calls `$crate::$callback!((args) names…)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __property_list {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            data_round_trips_exactly,
            values_of_several_mebibytes_round_trip,
            load_returns_none_at_the_exact_deadline,
            touch_never_revives_an_expired_record,
            touch_moves_the_deadline_and_keeps_data_and_version,
            create_never_overwrites_a_live_record,
            create_replaces_an_expired_record,
            every_write_of_data_bumps_the_version,
            create_stores_version_one_whatever_the_record_carries,
            save_if_version_with_a_stale_version_is_a_conflict_and_changes_nothing,
            save_if_version_never_brings_back_a_deleted_record,
            save_if_version_on_an_expired_record_is_a_conflict,
            rotate_moves_the_record_and_the_old_id_no_longer_loads,
            rotate_of_an_absent_or_expired_record_returns_false,
            rotate_onto_a_live_id_is_a_collision_and_changes_nothing,
            delete_removes_and_deleting_an_absent_id_is_not_an_error,
            purge_removes_exactly_the_expired_records_and_counts_them,
            count_ids_and_clear_see_only_live_records,
            namespaces_are_isolated,
            deadlines_round_trip_to_the_millisecond,
            records_survive_drop_and_reopen,
            store_objects_on_one_namespace_share_records_and_one_conditional_save_wins,
            corrupt_bytes_give_a_decode_error_for_that_record_only,
            oversized_records_are_refused_and_nothing_is_written,
            concurrent_writes_to_distinct_ids_lose_nothing,
            racing_saves_on_one_id_leave_exactly_one_whole_record,
            racing_conditional_saves_have_exactly_one_winner,
            racing_creates_on_one_id_have_exactly_one_winner,
            racing_rotates_onto_one_new_id_have_exactly_one_winner,
            a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live,
            crossing_rotates_all_finish_and_keep_each_record_once,
            touch_racing_delete_never_brings_the_record_back,
            touch_racing_a_save_never_undoes_it,
            purge_racing_a_save_of_the_same_expired_id_never_removes_the_fresh_record,
            readers_during_racing_saves_see_data_deadline_and_version_of_one_write,
            late_writes_after_a_rotate_never_bring_the_old_id_back,
            extreme_deadlines_are_live_exactly_while_now_is_before_them,
            touch_to_a_past_deadline_expires_the_record_at_once,
            writes_at_exactly_the_deadline_treat_the_record_as_expired,
            records_stay_live_while_real_time_passes_and_the_clock_stands_still,
            keys_of_hundreds_of_bytes_and_tens_of_kibibytes_round_trip,
            data_of_any_shape_round_trips,
            data_at_the_configured_limit_round_trips_and_one_byte_over_is_refused,
            ids_and_count_over_thousands_of_records_agree_and_miss_none,
            listing_handles_load_and_end_exactly_the_live_records,
            purge_removes_and_counts_hundreds_of_expired_records,
            purge_count_ids_and_clear_touch_only_their_own_namespace,
            a_write_through_one_store_object_is_seen_by_the_next_load_through_another,
            count_ids_and_purge_stay_exact_beside_corrupt_records,
            the_store_exposes_the_clock_it_was_given,
            the_owner_round_trips_through_every_write,
            owner_sessions_follow_every_write_rotate_delete_and_expiry,
            revoking_an_owner_removes_exactly_that_owners_sessions,
            a_revoke_racing_logins_ends_every_earlier_session_and_keeps_every_survivor_listed,
            owners_are_exact_strings_in_their_own_namespace,
            import_keeps_the_version_and_never_replaces_a_newer_record,
            at_rest_no_listing_or_stored_byte_holds_a_cookie_value_or_a_data_value,
            at_rest_a_body_moved_to_another_id_fails_to_decode_for_that_id_only,
            at_rest_a_record_under_a_retired_or_wrong_key_fails_to_decode_for_that_record_only,
        }
    };
}

/// Runs every property against `$harness` (an expression), one after the
/// other, giving `Vec<(&'static str, Verdict)>`; must be used inside an
/// async block. For the suite's own tests (a broken store must fail exactly
/// the one property that names its flaw).
#[doc(hidden)]
#[macro_export]
macro_rules! __run_every_property {
    (($harness:expr) $($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $crate::properties::$name($harness).await)),*]
    };
}

/// The names of every targeted property, in the order the macro runs them.
pub const PROPERTY_NAMES: &[&str] = crate::__property_list!(__property_names!());

mod at_rest;
mod concurrency;
mod data;
mod durability;
mod expiry;
mod listing;
mod owners;
mod rotate;
mod versions;

pub use at_rest::*;
pub use concurrency::*;
pub use data::*;
pub use durability::*;
pub use expiry::*;
pub use listing::*;
pub use owners::*;
pub use rotate::*;
pub use versions::*;

fn skipped(reason: &str) -> Verdict {
    Ok(Pass::Skipped {
        reason: reason.to_owned(),
    })
}

/// Loads `id` and demands exactly `expected` (or no record).
async fn expect_loaded<H: Harness>(
    env: &Env<'_, H>,
    store: &H::Store,
    id: &SessionId,
    expected: Option<&Record>,
    rule: &str,
    when: &str,
) -> Result<(), Failure> {
    let got = store.load(id).await.map_err(env.op("load"))?;
    if got.as_ref() == expected {
        return Ok(());
    }
    let mut detail = format!(
        "{when}: load({id}) returned {}, expected {}",
        describe(got.as_ref()),
        describe(expected)
    );
    if let (Some(g), Some(e)) = (&got, expected)
        && g.data != e.data
    {
        detail.push_str(&format!("; data differs: {}", diff_data(&e.data, &g.data)));
    }
    Err(env.fail(rule, detail))
}

/// The handles `store`'s listings name `ids` by (see
/// [`SessionStore::listing_handle`]): the ids themselves, unless the store
/// hashes ids at rest.
fn listed<S: SessionStore + ?Sized>(store: &S, ids: impl IntoIterator<Item = SessionId>) -> BTreeSet<ListingHandle> {
    ids.into_iter().map(|id| store.listing_handle(&id)).collect()
}

/// `record` as the store should hold it after a write that returned `version`.
fn stored(record: &Record, version: u64) -> Record {
    let mut r = record.clone();
    r.version = version;
    r
}

/// Spawns each job as a task on the runtime, lets them all start at once
/// (one barrier), and returns their outputs in order. A task that panicked
/// fails `rule`, naming `what` the tasks were doing.
async fn start_together<H: Harness, T, F>(
    env: &Env<'_, H>,
    rule: &str,
    what: &str,
    jobs: Vec<F>,
) -> Result<Vec<T>, Failure>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(jobs.len()));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                job.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(
            task.await
                .map_err(|e| env.fail(rule, format!("{what} panicked: {e}")))?,
        );
    }
    Ok(outputs)
}

/// Runs 16 save_if_version from `base.version`, spread over `stores`, and
/// checks the winner's data is what is stored. Returns the number of winners.
async fn race_conditional_saves<H: Harness>(
    env: &Env<'_, H>,
    stores: &[Arc<H::Store>],
    base: &Record,
) -> Result<usize, Failure> {
    let jobs = (0..16_i64)
        .map(|i| {
            let store = stores[i as usize % stores.len()].clone();
            let mut attempt = base.clone();
            attempt.data = data_of(&[("writer", i), ("base", base.version as i64)]);
            async move {
                let result = store.save_if_version(&attempt).await;
                (attempt, result)
            }
        })
        .collect();
    let mut winners = Vec::new();
    for (attempt, result) in start_together(env, ONE_WINNER, "a racing save_if_version", jobs).await? {
        match result {
            Ok(v) => {
                ensure!(
                    env,
                    v == base.version + 1,
                    ONE_WINNER,
                    "a racing save_if_version from version {} returned {v}",
                    base.version
                );
                winners.push(attempt);
            }
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(env.op("racing save_if_version")(e)),
        }
    }
    if let [winner] = winners.as_slice() {
        expect_loaded(
            env,
            &*stores[0],
            &base.id,
            Some(&stored(winner, base.version + 1)),
            ONE_WINNER,
            "after the race, the winner's record",
        )
        .await?;
    }
    Ok(winners.len())
}
