//! Expiry: the exact deadline, touch, and deadlines round-tripping.

use super::*;

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
