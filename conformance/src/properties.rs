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
use serde_json::{Value, json};
use session_store_core::{Error, Record, SessionData, SessionId, SessionStore, Timestamp};

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
const DECODE: &str =
    "corrupt stored bytes give Error::Decode naming that id, other records still load, and nothing panics";
const TOO_LARGE: &str = "data over the size limit is refused with TooLarge and nothing is written";
const LOST_WRITES: &str = "concurrent writes to distinct ids are all kept";
const TORN: &str =
    "save is atomic, last writer wins: racing saves leave exactly one writer's whole record with distinct versions";
const ONE_WINNER: &str = "racing save_if_version from one version have exactly one winner";

/// The names of every targeted property, in the order the macro runs them.
pub const PROPERTY_NAMES: &[&str] = crate::__property_list!(__property_names!());

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

/// `record` as the store should hold it after a write that returned `version`.
fn stored(record: &Record, version: u64) -> Record {
    let mut r = record.clone();
    r.version = version;
    r
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary session data: any keys (empty and unicode too), nested JSON.
pub(crate) fn arbitrary_data() -> impl Strategy<Value = SessionData> {
    proptest::collection::btree_map(any::<String>(), json_value(), 0..6).prop_map(|m| {
        let mut data = SessionData::new();
        for (k, v) in m {
            data.insert_json(k, &v);
        }
        data
    })
}

fn samples<S: Strategy>(strategy: &S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .filter_map(|_| strategy.new_tree(&mut runner).ok().map(|t| t.current()))
        .collect()
}

fn special_data() -> Vec<(&'static str, SessionData)> {
    let mut ints = SessionData::new();
    let _ = ints.insert("u128", &u128::MAX);
    let _ = ints.insert("i128", &i128::MIN);
    let _ = ints.insert("i128max", &i128::MAX);
    let _ = ints.insert("u64", &u64::MAX);
    let _ = ints.insert("i64min", &i64::MIN);
    let _ = ints.insert("i64max", &i64::MAX);
    let _ = ints.insert("zero", &0u8);
    let mut keys = SessionData::new();
    keys.insert_json("", &json!("the empty key"));
    keys.insert_json("ключ 🔑 鍵", &json!("värde ✓ \u{0} \n \" \\ \u{10FFFF}"));
    keys.insert_json(" ", &json!(null));
    keys.insert_json("a\u{0}b", &json!(true));
    let mut nested = SessionData::new();
    nested.insert_json(
        "nested",
        &json!({"user": {"id": 7, "roles": ["admin", "ü"], "prefs": {"deep": [[[{"x": -1.5e-300}]]]}}, "": []}),
    );
    nested.insert_json("float", &json!(0.1));
    vec![
        ("the empty map", SessionData::new()),
        ("full integer ranges", ints),
        ("empty, unicode and control-character keys", keys),
        ("nested JSON values", nested),
    ]
}

/// Data round-trips exactly: any keys (empty, unicode), nested JSON values,
/// the full `i64`/`u64`/`i128`/`u128` ranges through typed insert and get,
/// and the empty map; through create and through save.
pub async fn data_round_trips_exactly<H: Harness>(harness: &H) -> Verdict {
    let mut cases = special_data();
    let random = samples(&arbitrary_data(), 24);
    cases.extend(random.into_iter().map(|d| ("arbitrary data", d)));
    let env = Env::new(harness, "data_round_trips_exactly").await?;
    let store = env.open().await?;
    let mut written = Vec::new();
    for (what, data) in &cases {
        let record = env.record(data.clone(), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let expected = stored(&record, 1);
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&expected),
            ROUND_TRIP,
            &format!("after creating {what}"),
        )
        .await?;
        written.push(expected);
    }
    // Overwrite each record with the next one's data through save.
    for i in 0..written.len() {
        let mut next = written[i].clone();
        next.data = written[(i + 1) % written.len()].data.clone();
        let version = store.save(&next).await.map_err(env.op("save"))?;
        ensure!(
            env,
            version == 2,
            crate::properties::VERSIONS,
            "save over a version-1 record returned version {version}"
        );
        let expected = stored(&next, 2);
        expect_loaded(
            &env,
            &store,
            &next.id,
            Some(&expected),
            ROUND_TRIP,
            "after overwriting with save",
        )
        .await?;
        written[i] = expected;
    }
    // Typed reads of the integer extremes.
    let ints = &written[written.len() - 1];
    let ints = store.load(&ints.id).await.map_err(env.op("load"))?;
    let ints = ints.ok_or_else(|| env.fail(ROUND_TRIP, "a live record vanished"))?;
    let typed = (
        ints.data.get::<u128>("u128"),
        ints.data.get::<i128>("i128"),
        ints.data.get::<i128>("i128max"),
        ints.data.get::<u64>("u64"),
        ints.data.get::<i64>("i64min"),
        ints.data.get::<i64>("i64max"),
    );
    ensure!(
        env,
        matches!(
            typed,
            (
                Ok(Some(u128::MAX)),
                Ok(Some(i128::MIN)),
                Ok(Some(i128::MAX)),
                Ok(Some(u64::MAX)),
                Ok(Some(i64::MIN)),
                Ok(Some(i64::MAX))
            )
        ),
        ROUND_TRIP,
        "the integer extremes read back as {typed:?}"
    );
    Ok(Pass::Passed)
}

/// A value of about 3 MiB, and a record of a thousand keys, round-trip
/// exactly through create and save.
pub async fn values_of_several_mebibytes_round_trip<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "values_of_several_mebibytes_round_trip").await?;
    let store = env.open().await?;
    let big = data_of_size("big", 3 * 1024 * 1024, 1);
    let record = env.record(big, 60_000);
    store.create(&record).await.map_err(env.op("create of a 3 MiB value"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&record, 1)),
        ROUND_TRIP,
        "after creating a 3 MiB value",
    )
    .await?;
    let mut many = data_of_size("big", 1024 * 1024, 2);
    for i in 0..1_000 {
        let _ = many.insert(format!("key-{i}"), &format!("value {i} ✓"));
    }
    let mut next = record.clone();
    next.data = many;
    let v = store.save(&next).await.map_err(env.op("save of 1 MiB and 1000 keys"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&next, v)),
        ROUND_TRIP,
        "after saving 1 MiB and 1000 keys",
    )
    .await?;
    Ok(Pass::Passed)
}

/// A record loads at `expires_at - 1ms` and not at `expires_at` (nor after):
/// `now == expires_at` is expired.
pub async fn load_returns_none_at_the_exact_deadline<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "load_returns_none_at_the_exact_deadline").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("n", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let expected = stored(&record, 1);
    env.set(record.expires_at - Duration::from_millis(1));
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        LIVENESS,
        "at expires_at - 1ms",
    )
    .await?;
    env.set(record.expires_at);
    expect_loaded(&env, &store, &record.id, None, LIVENESS, "at exactly expires_at").await?;
    env.advance(1);
    expect_loaded(&env, &store, &record.id, None, LIVENESS, "at expires_at + 1ms").await?;
    // The same holds for a deadline moved by touch.
    env.set(Timestamp::from_millis(START_MILLIS));
    let other = env.record(data_of(&[("n", 2)]), 1_000);
    store.create(&other).await.map_err(env.op("create"))?;
    let deadline = env.now() + Duration::from_millis(5_000);
    let touched = store.touch(&other.id, deadline).await.map_err(env.op("touch"))?;
    ensure!(env, touched, TOUCH, "touch of a live record returned false");
    let mut expected = stored(&other, 1);
    expected.expires_at = deadline;
    env.set(deadline - Duration::from_millis(1));
    expect_loaded(
        &env,
        &store,
        &other.id,
        Some(&expected),
        LIVENESS,
        "at the touched deadline - 1ms",
    )
    .await?;
    env.set(deadline);
    expect_loaded(
        &env,
        &store,
        &other.id,
        None,
        LIVENESS,
        "at exactly the touched deadline",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Touch returns false for an absent id and for an expired record, and does
/// not bring the expired record back (nor create the absent one).
pub async fn touch_never_revives_an_expired_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "touch_never_revives_an_expired_record").await?;
    let store = env.open().await?;
    let absent = SessionId::random();
    let far = env.now() + Duration::from_secs(3_600);
    let touched = store.touch(&absent, far).await.map_err(env.op("touch"))?;
    ensure!(env, !touched, TOUCH, "touch of an id never stored returned true");
    expect_loaded(&env, &store, &absent, None, NO_REVIVAL, "after touching an absent id").await?;

    let record = env.record(data_of(&[("n", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    env.set(record.expires_at);
    let far = env.now() + Duration::from_secs(3_600);
    let touched = store.touch(&record.id, far).await.map_err(env.op("touch"))?;
    ensure!(
        env,
        !touched,
        TOUCH,
        "touch of a record at exactly its deadline returned true"
    );
    expect_loaded(
        &env,
        &store,
        &record.id,
        None,
        NO_REVIVAL,
        "after touching an expired record",
    )
    .await?;
    env.advance(10_000);
    let touched = store
        .touch(&record.id, far + Duration::from_secs(10))
        .await
        .map_err(env.op("touch"))?;
    ensure!(env, !touched, TOUCH, "touch of a record long expired returned true");
    expect_loaded(
        &env,
        &store,
        &record.id,
        None,
        NO_REVIVAL,
        "after touching a long-expired record",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 0,
        NO_REVIVAL,
        "count is {count} after touching expired records, expected 0"
    );
    let deleted = env.record(data_of(&[("n", 2)]), 60_000);
    store.create(&deleted).await.map_err(env.op("create"))?;
    store.delete(&deleted.id).await.map_err(env.op("delete"))?;
    let touched = store
        .touch(&deleted.id, far + Duration::from_secs(60))
        .await
        .map_err(env.op("touch"))?;
    ensure!(env, !touched, TOUCH, "touch of a deleted record returned true");
    expect_loaded(
        &env,
        &store,
        &deleted.id,
        None,
        NO_REVIVAL,
        "after touching a deleted record",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Touch of a live record moves its deadline (later or earlier) and keeps
/// its data, created time and version.
pub async fn touch_moves_the_deadline_and_keeps_data_and_version<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "touch_moves_the_deadline_and_keeps_data_and_version").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("a", 1), ("b", 2)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let v = store.save(&record).await.map_err(env.op("save"))?;
    let mut expected = stored(&record, v);
    for deadline_ms in [60_000_u64, 500, 7_777] {
        let deadline = env.now() + Duration::from_millis(deadline_ms);
        let touched = store.touch(&record.id, deadline).await.map_err(env.op("touch"))?;
        ensure!(env, touched, TOUCH, "touch of a live record returned false");
        expected.expires_at = deadline;
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&expected),
            TOUCH,
            &format!("after touch to now + {deadline_ms}ms"),
        )
        .await?;
    }
    env.advance(7_000);
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        TOUCH,
        "7s later, before the touched deadline",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Create over a live record returns `IdCollision` and changes nothing.
pub async fn create_never_overwrites_a_live_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "create_never_overwrites_a_live_record").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("owner", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let v = store.save(&record).await.map_err(env.op("save"))?;
    let expected = stored(&record, v);
    let mut intruder = record.clone();
    intruder.data = data_of(&[("owner", 2), ("extra", 3)]);
    intruder.expires_at = record.expires_at + Duration::from_secs(3_600);
    env.set(record.expires_at - Duration::from_millis(1));
    match store.create(&intruder).await {
        Err(Error::IdCollision { id }) if id == record.id => {}
        other => {
            return Err(env.fail(
                CREATE,
                format!("create over a live record (1ms before its deadline) returned {other:?}, expected IdCollision"),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        CREATE,
        "after a refused create",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Create over an expired record replaces it, with version 1.
pub async fn create_replaces_an_expired_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "create_replaces_an_expired_record").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("old", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    store.save(&record).await.map_err(env.op("save"))?;
    env.set(record.expires_at);
    let mut fresh = record.clone();
    fresh.data = data_of(&[("new", 2)]);
    fresh.created_at = env.now();
    fresh.expires_at = env.now() + Duration::from_secs(60);
    store.create(&fresh).await.map_err(|e| {
        env.fail(
            CREATE,
            format!("create over a record expired exactly now returned {}", chain(&e)),
        )
    })?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&fresh, 1)),
        CREATE,
        "after create over an expired record",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Versions: create stores 1, each save one more (2, 3, …), save_if_version
/// one more, touch and rotate keep it, save after expiry starts again at 1.
pub async fn every_write_of_data_bumps_the_version<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "every_write_of_data_bumps_the_version").await?;
    let store = env.open().await?;
    let mut record = env.record(data_of(&[("n", 0)]), 10_000);
    let v = store.save(&record).await.map_err(env.op("save"))?;
    ensure!(
        env,
        v == 1,
        VERSIONS,
        "save of a new id returned version {v}, expected 1"
    );
    for expected in 2..=4 {
        record.data = data_of(&[("n", expected as i64)]);
        let v = store.save(&record).await.map_err(env.op("save"))?;
        ensure!(
            env,
            v == expected,
            VERSIONS,
            "save number {expected} returned version {v}"
        );
    }
    record.version = 4;
    let v = store
        .save_if_version(&record)
        .await
        .map_err(env.op("save_if_version"))?;
    ensure!(
        env,
        v == 5,
        VERSIONS,
        "save_if_version from version 4 returned version {v}, expected 5"
    );
    let touched = store
        .touch(&record.id, env.now() + Duration::from_secs(20))
        .await
        .map_err(env.op("touch"))?;
    ensure!(env, touched, TOUCH, "touch of a live record returned false");
    let new = SessionId::random();
    let moved = store.rotate(&record.id, &new).await.map_err(env.op("rotate"))?;
    ensure!(env, moved, ROTATE, "rotate of a live record returned false");
    let loaded = store.load(&new).await.map_err(env.op("load"))?;
    ensure!(
        env,
        loaded.as_ref().map(|r| r.version) == Some(5),
        VERSIONS,
        "after touch and rotate: {}, expected version 5",
        describe(loaded.as_ref())
    );
    record.id = new;
    let v = store.save(&record).await.map_err(env.op("save"))?;
    ensure!(
        env,
        v == 6,
        VERSIONS,
        "save after rotate returned version {v}, expected 6"
    );
    env.advance(60_000);
    let v = store.save(&record).await.map_err(env.op("save"))?;
    ensure!(
        env,
        v == 1,
        VERSIONS,
        "save over an expired record returned version {v}, expected 1 (no live predecessor)"
    );
    let other = env.record(data_of(&[("n", 1)]), 10_000);
    store.create(&other).await.map_err(env.op("create"))?;
    let loaded = store.load(&other.id).await.map_err(env.op("load"))?;
    ensure!(
        env,
        loaded.as_ref().map(|r| r.version) == Some(1),
        VERSIONS,
        "after create: {}, expected version 1",
        describe(loaded.as_ref())
    );
    Ok(Pass::Passed)
}

/// save_if_version with a stale (or future) version returns `Conflict` and
/// changes nothing; with the current version it writes and returns it + 1.
pub async fn save_if_version_with_a_stale_version_is_a_conflict_and_changes_nothing<H: Harness>(
    harness: &H,
) -> Verdict {
    let env = Env::new(
        harness,
        "save_if_version_with_a_stale_version_is_a_conflict_and_changes_nothing",
    )
    .await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("n", 1)]), 60_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let v = store.save(&record).await.map_err(env.op("save"))?; // version 2
    let expected = stored(&record, v);
    for wrong in [v - 1, v + 1, 0, u64::MAX] {
        let mut late = record.clone();
        late.version = wrong;
        late.data = data_of(&[("n", 99)]);
        match store.save_if_version(&late).await {
            Err(Error::Conflict { id, expected: e }) if id == record.id && e == wrong => {}
            other => {
                return Err(env.fail(
                    CONDITIONAL,
                    format!(
                        "save_if_version with version {wrong} over version {v} returned {other:?}, expected Conflict"
                    ),
                ));
            }
        }
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&expected),
            CONDITIONAL,
            &format!("after a conflicting save_if_version (version {wrong})"),
        )
        .await?;
    }
    let mut good = expected.clone();
    good.data = data_of(&[("n", 3)]);
    let nv = store
        .save_if_version(&good)
        .await
        .map_err(env.op("save_if_version with the current version"))?;
    ensure!(
        env,
        nv == v + 1,
        CONDITIONAL,
        "save_if_version from version {v} returned {nv}"
    );
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&good, nv)),
        CONDITIONAL,
        "after a successful save_if_version",
    )
    .await?;
    Ok(Pass::Passed)
}

/// A record deleted after it was loaded: save_if_version returns
/// `Conflict` and the record stays deleted.
pub async fn save_if_version_never_brings_back_a_deleted_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "save_if_version_never_brings_back_a_deleted_record").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("n", 1)]), 60_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let loaded = store.load(&record.id).await.map_err(env.op("load"))?;
    let loaded = loaded.ok_or_else(|| env.fail(ROUND_TRIP, "a record just created does not load"))?;
    store.delete(&record.id).await.map_err(env.op("delete"))?;
    let mut late = loaded.clone();
    late.data = data_of(&[("n", 2)]);
    match store.save_if_version(&late).await {
        Err(Error::Conflict { .. }) => {}
        other => {
            return Err(env.fail(
                DELETED,
                format!("save_if_version after delete returned {other:?}, expected Conflict"),
            ));
        }
    }
    expect_loaded(&env, &store, &record.id, None, DELETED, "after a late save_if_version").await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 0,
        DELETED,
        "count is {count} after a late save_if_version on a deleted record"
    );
    // Version 0 ("never stored") on an absent id is a conflict too.
    let mut never = env.record(data_of(&[("n", 3)]), 60_000);
    never.version = 0;
    match store.save_if_version(&never).await {
        Err(Error::Conflict { .. }) => {}
        other => {
            return Err(env.fail(
                CONDITIONAL,
                format!("save_if_version on an id never stored returned {other:?}, expected Conflict"),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &never.id,
        None,
        CONDITIONAL,
        "after save_if_version on an id never stored",
    )
    .await?;
    Ok(Pass::Passed)
}

/// save_if_version on a record that expired (exactly at its deadline) is a
/// conflict and does not revive it.
pub async fn save_if_version_on_an_expired_record_is_a_conflict<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "save_if_version_on_an_expired_record_is_a_conflict").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("n", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    env.set(record.expires_at);
    let mut late = stored(&record, 1);
    late.expires_at = env.now() + Duration::from_secs(60);
    match store.save_if_version(&late).await {
        Err(Error::Conflict { .. }) => {}
        other => {
            return Err(env.fail(
                CONDITIONAL,
                format!("save_if_version on a record at exactly its deadline returned {other:?}, expected Conflict"),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &record.id,
        None,
        NO_REVIVAL,
        "after save_if_version on an expired record",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Rotate moves data, created time, deadline and version to the new id; the
/// old id no longer loads (nor can it be touched).
pub async fn rotate_moves_the_record_and_the_old_id_no_longer_loads<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "rotate_moves_the_record_and_the_old_id_no_longer_loads").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("user", 42), ("csrf", 7)]), 5_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let v = store.save(&record).await.map_err(env.op("save"))?;
    env.advance(1_000);
    let new = SessionId::random();
    let moved = store.rotate(&record.id, &new).await.map_err(env.op("rotate"))?;
    ensure!(env, moved, ROTATE, "rotate of a live record returned false");
    let mut expected = stored(&record, v);
    expected.id = new;
    expect_loaded(&env, &store, &new, Some(&expected), ROTATE, "the new id after rotate").await?;
    expect_loaded(&env, &store, &record.id, None, ROTATE, "the old id after rotate").await?;
    let touched = store
        .touch(&record.id, env.now() + Duration::from_secs(60))
        .await
        .map_err(env.op("touch"))?;
    ensure!(env, !touched, ROTATE, "touch of the old id after rotate returned true");
    let ids = store.ids().await.map_err(env.op("ids"))?;
    ensure!(
        env,
        ids == vec![new],
        ROTATE,
        "ids after rotate: {} ids (new id present: {}), expected only the new id",
        ids.len(),
        ids.contains(&new)
    );
    // The record expires at its unchanged deadline.
    env.set(record.expires_at);
    expect_loaded(&env, &store, &new, None, ROTATE, "the new id at the original deadline").await?;
    Ok(Pass::Passed)
}

/// Rotate of an absent, deleted or expired id returns false and creates
/// nothing under the new id.
pub async fn rotate_of_an_absent_or_expired_record_returns_false<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "rotate_of_an_absent_or_expired_record_returns_false").await?;
    let store = env.open().await?;
    let new = SessionId::random();
    let moved = store
        .rotate(&SessionId::random(), &new)
        .await
        .map_err(env.op("rotate"))?;
    ensure!(env, !moved, ROTATE_NOTHING, "rotate of an absent id returned true");
    let record = env.record(data_of(&[("n", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    env.set(record.expires_at);
    let moved = store.rotate(&record.id, &new).await.map_err(env.op("rotate"))?;
    ensure!(
        env,
        !moved,
        ROTATE_NOTHING,
        "rotate of a record at exactly its deadline returned true"
    );
    expect_loaded(
        &env,
        &store,
        &new,
        None,
        NO_REVIVAL,
        "the new id after rotating an expired record",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 0,
        ROTATE_NOTHING,
        "count is {count} after rotating an expired record"
    );
    Ok(Pass::Passed)
}

/// Rotate onto a live id (or onto itself) returns `IdCollision` and both
/// records stay as they were.
pub async fn rotate_onto_a_live_id_is_a_collision_and_changes_nothing<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "rotate_onto_a_live_id_is_a_collision_and_changes_nothing").await?;
    let store = env.open().await?;
    let a = env.record(data_of(&[("a", 1)]), 60_000);
    let b = env.record(data_of(&[("b", 2)]), 30_000);
    store.create(&a).await.map_err(env.op("create"))?;
    store.create(&b).await.map_err(env.op("create"))?;
    store.save(&b).await.map_err(env.op("save"))?;
    let (ea, eb) = (stored(&a, 1), stored(&b, 2));
    match store.rotate(&a.id, &b.id).await {
        Err(Error::IdCollision { .. }) => {}
        other => {
            return Err(env.fail(
                ROTATE_COLLISION,
                format!("rotate onto a live id returned {other:?}, expected IdCollision"),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &a.id,
        Some(&ea),
        ROTATE_COLLISION,
        "the old id after a refused rotate",
    )
    .await?;
    expect_loaded(
        &env,
        &store,
        &b.id,
        Some(&eb),
        ROTATE_COLLISION,
        "the target id after a refused rotate",
    )
    .await?;
    match store.rotate(&a.id, &a.id).await {
        Err(Error::IdCollision { .. }) => {}
        other => {
            return Err(env.fail(
                ROTATE_COLLISION,
                format!("rotate of a live id onto itself returned {other:?}, expected IdCollision"),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &a.id,
        Some(&ea),
        ROTATE_COLLISION,
        "after a refused rotate onto itself",
    )
    .await?;
    // Once the target expired, rotating onto it is allowed and replaces it.
    env.set(b.expires_at);
    let moved = store
        .rotate(&a.id, &b.id)
        .await
        .map_err(env.op("rotate onto an expired id"))?;
    ensure!(env, moved, ROTATE, "rotate onto an expired id returned false");
    let mut moved = ea.clone();
    moved.id = b.id;
    expect_loaded(
        &env,
        &store,
        &b.id,
        Some(&moved),
        ROTATE,
        "after rotating onto an expired id",
    )
    .await?;
    expect_loaded(
        &env,
        &store,
        &a.id,
        None,
        ROTATE,
        "the old id after rotating onto an expired id",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Delete removes a record; deleting an absent or already deleted id is
/// not an error.
pub async fn delete_removes_and_deleting_an_absent_id_is_not_an_error<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "delete_removes_and_deleting_an_absent_id_is_not_an_error").await?;
    let store = env.open().await?;
    let keep = env.record(data_of(&[("keep", 1)]), 60_000);
    let gone = env.record(data_of(&[("gone", 1)]), 60_000);
    store.create(&keep).await.map_err(env.op("create"))?;
    store.create(&gone).await.map_err(env.op("create"))?;
    store.delete(&gone.id).await.map_err(env.op("delete"))?;
    expect_loaded(&env, &store, &gone.id, None, DELETE, "after delete").await?;
    expect_loaded(
        &env,
        &store,
        &keep.id,
        Some(&stored(&keep, 1)),
        DELETE,
        "another record after delete",
    )
    .await?;
    store
        .delete(&gone.id)
        .await
        .map_err(|e| env.fail(DELETE, format!("deleting a deleted id failed: {}", chain(&e))))?;
    store
        .delete(&SessionId::random())
        .await
        .map_err(|e| env.fail(DELETE, format!("deleting an id never stored failed: {}", chain(&e))))?;
    // A deleted id can be created again, with version 1.
    store.create(&gone).await.map_err(env.op("create after delete"))?;
    expect_loaded(
        &env,
        &store,
        &gone.id,
        Some(&stored(&gone, 1)),
        VERSIONS,
        "create after delete",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Purge removes exactly the expired records (including one at exactly its
/// deadline), returns how many, and leaves every live one loadable.
pub async fn purge_removes_exactly_the_expired_records_and_counts_them<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "purge_removes_exactly_the_expired_records_and_counts_them").await?;
    let store = env.open().await?;
    let mut live = Vec::new();
    let mut expired = Vec::new();
    for i in 0..12_i64 {
        // Deadlines 1000 (expires exactly at the purge instant), 999, and later ones.
        let ttl = match i % 3 {
            0 => 1_000,
            1 => 999,
            _ => 1_001 + i as u64,
        };
        let record = env.record(data_of(&[("i", i)]), ttl);
        store.create(&record).await.map_err(env.op("create"))?;
        if ttl <= 1_000 {
            expired.push(record)
        } else {
            live.push(stored(&record, 1))
        }
    }
    let purged = store.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged == 0,
        PURGE,
        "purge before any deadline removed {purged} records"
    );
    env.advance(1_000);
    let purged = store.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged == expired.len() as u64,
        PURGE,
        "purge with {} expired records (4 at exactly their deadline) returned {purged}",
        expired.len()
    );
    for r in &live {
        expect_loaded(&env, &store, &r.id, Some(r), PURGE, "a live record after purge").await?;
    }
    for r in &expired {
        expect_loaded(&env, &store, &r.id, None, NO_REVIVAL, "an expired record after purge").await?;
    }
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == live.len() as u64,
        PURGE,
        "count after purge is {count}, expected {}",
        live.len()
    );
    let again = store.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(env, again == 0, PURGE, "a second purge removed {again} more records");
    Ok(Pass::Passed)
}

/// count and ids list exactly the live records (not expired, not deleted);
/// clear removes them all.
pub async fn count_ids_and_clear_see_only_live_records<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "count_ids_and_clear_see_only_live_records").await?;
    let store = env.open().await?;
    let empty = store.count().await.map_err(env.op("count"))?;
    ensure!(env, empty == 0, LISTING, "a fresh namespace has count {empty}");
    let mut live = BTreeSet::new();
    for i in 0..10_i64 {
        let ttl = if i < 4 { 1_000 } else { 5_000 };
        let record = env.record(data_of(&[("i", i)]), ttl);
        store.create(&record).await.map_err(env.op("create"))?;
        if i >= 4 {
            live.insert(record.id);
        }
        if i == 9 {
            store.delete(&record.id).await.map_err(env.op("delete"))?;
            live.remove(&record.id);
        }
    }
    env.advance(1_000);
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == live.len() as u64,
        LISTING,
        "count is {count} with {} live records (4 expired at exactly now, 1 deleted)",
        live.len()
    );
    let ids = store.ids().await.map_err(env.op("ids"))?;
    let set: BTreeSet<_> = ids.iter().copied().collect();
    ensure!(
        env,
        set.len() == ids.len(),
        LISTING,
        "ids listed a record twice ({} ids, {} distinct)",
        ids.len(),
        set.len()
    );
    ensure!(
        env,
        set == live,
        LISTING,
        "ids listed {} ids, {} of them live; expected the {} live ones",
        ids.len(),
        set.intersection(&live).count(),
        live.len()
    );
    store.clear().await.map_err(env.op("clear"))?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(env, count == 0, LISTING, "count after clear is {count}");
    for id in &live {
        expect_loaded(&env, &store, id, None, LISTING, "a record after clear").await?;
    }
    let ids = store.ids().await.map_err(env.op("ids"))?;
    ensure!(env, ids.is_empty(), LISTING, "ids after clear listed {}", ids.len());
    Ok(Pass::Passed)
}

/// Two namespaces on one clock: load, count, ids, purge and clear of one
/// never see or touch the other's records, even under the same id.
pub async fn namespaces_are_isolated<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "namespaces_are_isolated").await?;
    let other_ns = env.another_namespace().await?;
    let a = env.open().await?;
    let b = env.open_on(&other_ns).await?;
    let in_a: Vec<Record> = (0..3).map(|i| env.record(data_of(&[("a", i)]), 60_000)).collect();
    for r in &in_a {
        a.create(r).await.map_err(env.op("create in namespace A"))?;
    }
    let shared_id = in_a[0].id;
    let mut in_b = env.record(data_of(&[("b", 1)]), 1_000);
    in_b.id = shared_id;
    b.create(&in_b).await.map_err(|e| {
        env.fail(
            ISOLATION,
            format!("create in namespace B of an id live only in A failed: {}", chain(&e)),
        )
    })?;
    let extra_b = env.record(data_of(&[("b", 2)]), 60_000);
    b.create(&extra_b).await.map_err(env.op("create in namespace B"))?;
    expect_loaded(
        &env,
        &a,
        &shared_id,
        Some(&stored(&in_a[0], 1)),
        ISOLATION,
        "namespace A's record under an id also used in B",
    )
    .await?;
    expect_loaded(
        &env,
        &b,
        &shared_id,
        Some(&stored(&in_b, 1)),
        ISOLATION,
        "namespace B's record under an id also used in A",
    )
    .await?;
    expect_loaded(
        &env,
        &b,
        &in_a[1].id,
        None,
        ISOLATION,
        "namespace B loading an id only A has",
    )
    .await?;
    expect_loaded(
        &env,
        &a,
        &extra_b.id,
        None,
        ISOLATION,
        "namespace A loading an id only B has",
    )
    .await?;
    let (ca, cb) = (
        a.count().await.map_err(env.op("count"))?,
        b.count().await.map_err(env.op("count"))?,
    );
    ensure!(
        env,
        ca == 3 && cb == 2,
        ISOLATION,
        "counts are A={ca}, B={cb}; expected 3 and 2"
    );
    let ids_b: BTreeSet<_> = b.ids().await.map_err(env.op("ids"))?.into_iter().collect();
    ensure!(
        env,
        ids_b == BTreeSet::from([shared_id, extra_b.id]),
        ISOLATION,
        "namespace B's ids hold {} ids, expected its own 2",
        ids_b.len()
    );
    // B's shared-id record expires; purging B must not touch A.
    env.advance(1_000);
    let purged = b.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged == 1,
        PURGE,
        "purge in B removed {purged}, expected its 1 expired record"
    );
    expect_loaded(
        &env,
        &a,
        &shared_id,
        Some(&stored(&in_a[0], 1)),
        ISOLATION,
        "A's record after B purged the same id",
    )
    .await?;
    b.clear().await.map_err(env.op("clear"))?;
    let ca = a.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        ca == 3,
        ISOLATION,
        "after clearing B, A's count is {ca}, expected 3"
    );
    for r in &in_a {
        expect_loaded(
            &env,
            &a,
            &r.id,
            Some(&stored(r, 1)),
            ISOLATION,
            "A's record after B was cleared",
        )
        .await?;
    }
    a.clear().await.map_err(env.op("clear"))?;
    Ok(Pass::Passed)
}

/// Deadlines and created times round-trip to the millisecond, from 1ms
/// ahead to the year 9999, through create, save and touch.
pub async fn deadlines_round_trip_to_the_millisecond<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "deadlines_round_trip_to_the_millisecond").await?;
    let store = env.open().await?;
    let now = env.now().as_millis();
    let deadlines = [
        now + 1,
        now + 999,
        now + 1_001,
        now + 86_400_123,
        4_102_444_800_123,   // 2100-01-01 + 123ms
        253_402_300_799_999, // 9999-12-31T23:59:59.999
    ];
    for (i, &deadline) in deadlines.iter().enumerate() {
        let mut record = env.record(data_of(&[("i", i as i64)]), 1);
        record.created_at = Timestamp::from_millis(now - 7 - i as i64);
        record.expires_at = Timestamp::from_millis(deadline);
        if i % 2 == 0 {
            store.create(&record).await.map_err(env.op("create"))?;
        } else {
            store.save(&record).await.map_err(env.op("save"))?;
        }
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&stored(&record, 1)),
            DEADLINES,
            &format!("deadline {deadline}ms"),
        )
        .await?;
        let touched_to = Timestamp::from_millis(deadline.max(now + 1) + 3);
        let touched = store.touch(&record.id, touched_to).await.map_err(env.op("touch"))?;
        ensure!(env, touched, TOUCH, "touch of a live record returned false");
        let mut expected = stored(&record, 1);
        expected.expires_at = touched_to;
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&expected),
            DEADLINES,
            &format!("touched to {touched_to}"),
        )
        .await?;
    }
    Ok(Pass::Passed)
}

/// Durable stores: records (data, versions, deadlines, created times)
/// survive dropping the store and opening it again; expired records stay
/// expired and deleted ones stay deleted.
pub async fn records_survive_drop_and_reopen<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().durable {
        return skipped("the harness does not declare the `durable` capability");
    }
    let env = Env::new(harness, "records_survive_drop_and_reopen").await?;
    let mut kept = Vec::new();
    let short;
    let deleted;
    {
        let store = env.open().await?;
        for i in 0..5_i64 {
            let record = env.record(data_of(&[("i", i)]), 60_000 + i as u64);
            store.create(&record).await.map_err(env.op("create"))?;
            let mut version = 1;
            for _ in 0..i {
                version = store.save(&record).await.map_err(env.op("save"))?;
            }
            kept.push(stored(&record, version));
        }
        let deadline = env.now() + Duration::from_millis(90_123);
        let touched = store.touch(&kept[0].id, deadline).await.map_err(env.op("touch"))?;
        ensure!(env, touched, TOUCH, "touch of a live record returned false");
        kept[0].expires_at = deadline;
        let big = env.record(data_of_size("big", 512 * 1024, 9), 60_000);
        store.create(&big).await.map_err(env.op("create"))?;
        kept.push(stored(&big, 1));
        short = env.record(data_of(&[("short", 1)]), 1_000);
        store.create(&short).await.map_err(env.op("create"))?;
        deleted = env.record(data_of(&[("deleted", 1)]), 60_000);
        store.create(&deleted).await.map_err(env.op("create"))?;
        store.delete(&deleted.id).await.map_err(env.op("delete"))?;
    }
    env.advance(1_000);
    let store = env.open().await?;
    for r in &kept {
        expect_loaded(&env, &store, &r.id, Some(r), DURABLE, "after drop and reopen").await?;
    }
    expect_loaded(
        &env,
        &store,
        &short.id,
        None,
        DURABLE,
        "a record that expired while the store was closed",
    )
    .await?;
    expect_loaded(
        &env,
        &store,
        &deleted.id,
        None,
        DURABLE,
        "a record deleted before the store was closed",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == kept.len() as u64,
        DURABLE,
        "count after reopen is {count}, expected {}",
        kept.len()
    );
    // Versions carry on where they were.
    let last = &kept[4];
    let v = store
        .save_if_version(last)
        .await
        .map_err(env.op("save_if_version after reopen"))?;
    ensure!(
        env,
        v == last.version + 1,
        DURABLE,
        "save_if_version after reopen returned {v}, expected {}",
        last.version + 1
    );
    Ok(Pass::Passed)
}

/// Shared stores: two store objects on one namespace see each other's
/// creates, saves, deletes and clears, and 16 racing save_if_version split
/// across them have exactly one winner.
pub async fn store_objects_on_one_namespace_share_records_and_one_conditional_save_wins<H: Harness>(
    harness: &H,
) -> Verdict {
    if !harness.capabilities().shared {
        return skipped("the harness does not declare the `shared` capability");
    }
    let env = Env::new(
        harness,
        "store_objects_on_one_namespace_share_records_and_one_conditional_save_wins",
    )
    .await?;
    let a = Arc::new(env.open().await?);
    let b = Arc::new(env.open().await?);
    let record = env.record(data_of(&[("n", 1)]), 60_000);
    a.create(&record).await.map_err(env.op("create on A"))?;
    expect_loaded(
        &env,
        &*b,
        &record.id,
        Some(&stored(&record, 1)),
        SHARED,
        "B loading A's create",
    )
    .await?;
    match b.create(&record).await {
        Err(Error::IdCollision { .. }) => {}
        other => {
            return Err(env.fail(
                SHARED,
                format!("create on B of an id live through A returned {other:?}, expected IdCollision"),
            ));
        }
    }
    let mut next = record.clone();
    next.data = data_of(&[("n", 2)]);
    let v = b.save(&next).await.map_err(env.op("save on B"))?;
    ensure!(env, v == 2, SHARED, "save on B over A's version 1 returned {v}");
    expect_loaded(
        &env,
        &*a,
        &record.id,
        Some(&stored(&next, 2)),
        SHARED,
        "A loading B's save",
    )
    .await?;
    let winners = race_conditional_saves(&env, &[a.clone(), b.clone()], &stored(&next, 2)).await?;
    ensure!(
        env,
        winners == 1,
        SHARED,
        "{winners} of 16 racing save_if_version across two store objects succeeded"
    );
    a.delete(&record.id).await.map_err(env.op("delete on A"))?;
    expect_loaded(&env, &*b, &record.id, None, SHARED, "B loading after A deleted").await?;
    let other = env.record(data_of(&[("n", 3)]), 60_000);
    b.create(&other).await.map_err(env.op("create on B"))?;
    a.clear().await.map_err(env.op("clear on A"))?;
    let count = b.count().await.map_err(env.op("count on B"))?;
    ensure!(
        env,
        count == 0,
        SHARED,
        "B counts {count} records after A cleared the namespace"
    );
    Ok(Pass::Passed)
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

/// Raw access: garbage, truncated bytes, an unknown format byte and empty
/// bytes each give `Error::Decode` naming that id on load; other records
/// still load; count, ids and purge_expired do not panic.
pub async fn corrupt_bytes_give_a_decode_error_for_that_record_only<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().raw_access {
        return skipped("the harness does not declare the `raw_access` capability");
    }
    let env = Env::new(harness, "corrupt_bytes_give_a_decode_error_for_that_record_only").await?;
    let store = Arc::new(env.open().await?);
    let healthy = env.record(data_of(&[("healthy", 1)]), 60_000);
    store.create(&healthy).await.map_err(env.op("create"))?;
    let mut corrupted = Vec::new();
    for (i, how) in [
        "garbage bytes",
        "truncated bytes",
        "an unknown format byte",
        "empty bytes",
    ]
    .into_iter()
    .enumerate()
    {
        let record = env.record(data_of_size("victim", 200, i as u64), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let raw = env
            .h
            .read_raw(&env.ns, &record.id)
            .await
            .map_err(env.op("harness.read_raw"))?
            .ok_or_else(|| env.fail(DECODE, "harness.read_raw returned None for a live record"))?;
        let bytes = match i {
            0 => crate::env::pseudo_random_text(raw.len(), 77).into_bytes(),
            1 => raw[..raw.len() / 2].to_vec(),
            2 => {
                let mut b = raw.clone();
                b[0] = 0xEE;
                b
            }
            _ => Vec::new(),
        };
        env.h
            .write_raw(&env.ns, &record.id, &bytes)
            .await
            .map_err(env.op("harness.write_raw"))?;
        corrupted.push((record, how));
    }
    for (record, how) in &corrupted {
        match store.load(&record.id).await {
            Err(Error::Decode { id, .. }) if id == record.id.to_string() => {}
            Err(Error::Decode { id, .. }) => {
                return Err(env.fail(
                    DECODE,
                    format!(
                        "load of a record holding {how} gave a decode error naming {id:?}, not {}",
                        record.id
                    ),
                ));
            }
            other => {
                return Err(env.fail(
                    DECODE,
                    format!("load of a record holding {how} returned {other:?}, expected Error::Decode naming it"),
                ));
            }
        }
    }
    expect_loaded(
        &env,
        &*store,
        &healthy.id,
        Some(&stored(&healthy, 1)),
        DECODE,
        "a healthy record beside corrupt ones",
    )
    .await?;
    let s = store.clone();
    let listing = tokio::spawn(async move {
        let _ = s.count().await;
        let _ = s.ids().await;
        let _ = s.purge_expired().await;
    });
    listing.await.map_err(|e| {
        env.fail(
            DECODE,
            format!("count, ids or purge_expired panicked over corrupt records: {e}"),
        )
    })?;
    expect_loaded(
        &env,
        &*store,
        &healthy.id,
        Some(&stored(&healthy, 1)),
        DECODE,
        "a healthy record after count/ids/purge",
    )
    .await?;
    Ok(Pass::Passed)
}

/// With a 1 KiB limit: data of exactly 1024 bytes is accepted, 1025 bytes is
/// refused with `TooLarge` by create, save and save_if_version, and nothing
/// is written (the old record stays as it was).
pub async fn oversized_records_are_refused_and_nothing_is_written<H: Harness>(harness: &H) -> Verdict {
    const LIMIT: usize = 1024;
    let env = Env::with_limit(harness, "oversized_records_are_refused_and_nothing_is_written", LIMIT).await?;
    let store = env.open().await?;
    let fits = data_of_size("k", LIMIT, 1);
    let over = data_of_size("k", LIMIT + 1, 2);
    debug_assert_eq!((fits.byte_size(), over.byte_size()), (LIMIT, LIMIT + 1));
    let too_large = |what: &str, r: Result<String, Error>| -> Result<(), Failure> {
        match r {
            Err(Error::TooLarge { size, limit }) if size == LIMIT + 1 && limit == LIMIT => Ok(()),
            Err(Error::TooLarge { size, limit }) => Err(env.fail(
                TOO_LARGE,
                format!(
                    "{what}: TooLarge reported size {size} and limit {limit}, expected {} and {LIMIT}",
                    LIMIT + 1
                ),
            )),
            other => Err(env.fail(
                TOO_LARGE,
                format!(
                    "{what} with {} bytes of data over a {LIMIT}-byte limit returned {}",
                    LIMIT + 1,
                    other.unwrap_or_else(|e| format!("Err({})", chain(&e)))
                ),
            )),
        }
    };
    let big = env.record(over.clone(), 60_000);
    too_large("create", store.create(&big).await.map(|()| "Ok(())".to_owned()))?;
    expect_loaded(&env, &store, &big.id, None, TOO_LARGE, "after a refused create").await?;
    too_large("save of a new id", store.save(&big).await.map(|v| format!("Ok({v})")))?;
    expect_loaded(
        &env,
        &store,
        &big.id,
        None,
        TOO_LARGE,
        "after a refused save of a new id",
    )
    .await?;
    let record = env.record(fits.clone(), 60_000);
    store.create(&record).await.map_err(|e| {
        env.fail(
            TOO_LARGE,
            format!("create of data exactly at the limit failed: {}", chain(&e)),
        )
    })?;
    let expected = stored(&record, 1);
    let mut grown = expected.clone();
    grown.data = over;
    too_large("save", store.save(&grown).await.map(|v| format!("Ok({v})")))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        TOO_LARGE,
        "after a refused save",
    )
    .await?;
    too_large(
        "save_if_version",
        store.save_if_version(&grown).await.map(|v| format!("Ok({v})")),
    )?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        TOO_LARGE,
        "after a refused save_if_version",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 1,
        TOO_LARGE,
        "count is {count} after refused writes, expected 1"
    );
    Ok(Pass::Passed)
}

/// 64 tasks on a multi-thread runtime, each creating, saving twice and
/// loading its own id: every record is there with its last data and version 3.
pub async fn concurrent_writes_to_distinct_ids_lose_nothing<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "concurrent_writes_to_distinct_ids_lose_nothing").await?;
    let store = Arc::new(env.open().await?);
    let jobs = (0..64_i64)
        .map(|i| {
            let store = store.clone();
            let mut record = env.record(data_of(&[("task", i), ("step", 0)]), 60_000);
            async move {
                store.create(&record).await?;
                for step in 1..=2 {
                    record.data = data_of(&[("task", i), ("step", step)]);
                    store.save(&record).await?;
                }
                Ok::<_, Error>(stored(&record, 3))
            }
        })
        .collect();
    let mut expected = Vec::new();
    for r in start_together(&env, LOST_WRITES, "a writing task", jobs).await? {
        expected.push(r.map_err(env.op("a concurrent create or save"))?);
    }
    for r in &expected {
        expect_loaded(
            &env,
            &*store,
            &r.id,
            Some(r),
            LOST_WRITES,
            "after 64 concurrent writers",
        )
        .await?;
    }
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 64,
        LOST_WRITES,
        "count after 64 concurrent writers is {count}"
    );
    Ok(Pass::Passed)
}

/// 16 racing saves of different data on one id: each returns a distinct
/// version (2..=17), and the stored record is exactly the data of the writer
/// that got version 17 (never a mix).
pub async fn racing_saves_on_one_id_leave_exactly_one_whole_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "racing_saves_on_one_id_leave_exactly_one_whole_record").await?;
    let store = Arc::new(env.open().await?);
    let base = env.record(data_of(&[("writer", -1)]), 60_000);
    store.create(&base).await.map_err(env.op("create"))?;
    let jobs = (0..16_u64)
        .map(|i| {
            let store = store.clone();
            let mut attempt = base.clone();
            let mut data = data_of_size("payload", 8 * 1024, i);
            for k in 0..8 {
                let _ = data.insert(format!("field-{k}"), &i);
            }
            attempt.data = data;
            attempt.expires_at = base.expires_at + Duration::from_millis(i);
            async move {
                let v = store.save(&attempt).await;
                (attempt, v)
            }
        })
        .collect();
    let mut by_version = std::collections::BTreeMap::new();
    for (attempt, v) in start_together(&env, TORN, "a racing save", jobs).await? {
        let v = v.map_err(env.op("a racing save"))?;
        if let Some(_dup) = by_version.insert(v, attempt) {
            return Err(env.fail(TORN, format!("two racing saves both returned version {v}")));
        }
    }
    let versions: Vec<u64> = by_version.keys().copied().collect();
    ensure!(
        env,
        versions == (2..=17).collect::<Vec<_>>(),
        TORN,
        "16 racing saves over version 1 returned versions {versions:?}, expected 2..=17"
    );
    let last = &by_version[&17];
    let got = store.load(&base.id).await.map_err(env.op("load"))?;
    let whole = by_version
        .values()
        .position(|a| got.as_ref().is_some_and(|g| g.data == a.data));
    ensure!(
        env,
        whole.is_some(),
        TORN,
        "after 16 racing saves the stored data is no writer's whole data: {}",
        describe(got.as_ref())
    );
    expect_loaded(
        &env,
        &*store,
        &base.id,
        Some(&stored(last, 17)),
        TORN,
        "after 16 racing saves, the record of the save that returned version 17",
    )
    .await?;
    Ok(Pass::Passed)
}

/// 16 racing save_if_version from one loaded version: exactly one returns
/// `Ok(version + 1)`, the others `Conflict`, and the winner's data is
/// stored; four races in a row.
pub async fn racing_conditional_saves_have_exactly_one_winner<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "racing_conditional_saves_have_exactly_one_winner").await?;
    let store = Arc::new(env.open().await?);
    let base = env.record(data_of(&[("writer", -1)]), 60_000);
    store.create(&base).await.map_err(env.op("create"))?;
    let mut v = store.save(&base).await.map_err(env.op("save"))?;
    for round in 1..=4 {
        let current = store
            .load(&base.id)
            .await
            .map_err(env.op("load"))?
            .ok_or_else(|| env.fail(ONE_WINNER, format!("the record vanished before race {round}")))?;
        ensure!(
            env,
            current.version == v,
            ONE_WINNER,
            "before race {round}: stored version {}, expected {v}",
            current.version
        );
        let winners = race_conditional_saves(&env, std::slice::from_ref(&store), &current).await?;
        ensure!(
            env,
            winners == 1,
            ONE_WINNER,
            "race {round}: {winners} of 16 racing save_if_version from version {v} succeeded"
        );
        v += 1;
    }
    Ok(Pass::Passed)
}
