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

/// Deadlines at the epoch, before it (down to `i64::MIN` ms) and at
/// `Timestamp::MAX` (what `Expiry::OnInactivity(Duration::MAX)` produces):
/// each is live exactly while `now < expires_at`, round-trips exactly, and
/// no backend's TTL arithmetic overflows; with the clock itself before the
/// epoch, across it, and one millisecond before the end of time.
pub async fn extreme_deadlines_are_live_exactly_while_now_is_before_them<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "extreme_deadlines_are_live_exactly_while_now_is_before_them").await?;
    let store = env.open().await?;
    let at = |env: &Env<'_, H>, deadline: Timestamp, n: i64| {
        let mut r = env.record(data_of(&[("n", n)]), 1);
        r.expires_at = deadline;
        r
    };
    // Already expired when written: created, saved, never live.
    for (i, deadline) in [
        Timestamp::EPOCH,
        Timestamp::from_millis(-1),
        Timestamp::from_millis(i64::MIN),
    ]
    .into_iter()
    .enumerate()
    {
        let r = at(&env, deadline, i as i64);
        store
            .create(&r)
            .await
            .map_err(env.op(&format!("create with deadline {deadline}")))?;
        expect_loaded(
            &env,
            &store,
            &r.id,
            None,
            EXTREMES,
            &format!("a deadline of {deadline}"),
        )
        .await?;
        let v = store.save(&r).await.map_err(env.op("save"))?;
        ensure!(
            env,
            v == 1,
            EXTREMES,
            "save of a record with the past deadline {deadline} over an expired one returned version {v}, expected 1"
        );
        let touched = store.touch(&r.id, Timestamp::MAX).await.map_err(env.op("touch"))?;
        ensure!(
            env,
            !touched,
            EXTREMES,
            "touch of a record with deadline {deadline} returned true"
        );
        expect_loaded(
            &env,
            &store,
            &r.id,
            None,
            EXTREMES,
            &format!("a deadline of {deadline}, touched"),
        )
        .await?;
    }
    // The end of time.
    let forever = at(&env, Timestamp::MAX, 10);
    store
        .create(&forever)
        .await
        .map_err(env.op("create with deadline Timestamp::MAX"))?;
    let forever = stored(&forever, 1);
    expect_loaded(
        &env,
        &store,
        &forever.id,
        Some(&forever),
        EXTREMES,
        "a deadline of Timestamp::MAX",
    )
    .await?;
    let saved = at(&env, Timestamp::MAX, 11);
    let v = store
        .save(&saved)
        .await
        .map_err(env.op("save with deadline Timestamp::MAX"))?;
    let saved = stored(&saved, v);
    expect_loaded(
        &env,
        &store,
        &saved.id,
        Some(&saved),
        EXTREMES,
        "a saved deadline of Timestamp::MAX",
    )
    .await?;
    let touched_rec = at(&env, env.now() + Duration::from_secs(60), 12);
    store.create(&touched_rec).await.map_err(env.op("create"))?;
    let touched = store
        .touch(&touched_rec.id, Timestamp::MAX)
        .await
        .map_err(env.op("touch to Timestamp::MAX"))?;
    ensure!(
        env,
        touched,
        TOUCH,
        "touch of a live record to Timestamp::MAX returned false"
    );
    let mut touched_rec = stored(&touched_rec, 1);
    touched_rec.expires_at = Timestamp::MAX;
    expect_loaded(
        &env,
        &store,
        &touched_rec.id,
        Some(&touched_rec),
        EXTREMES,
        "touched to Timestamp::MAX",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 3,
        EXTREMES,
        "count with three records live until Timestamp::MAX is {count}"
    );
    // The clock before the epoch.
    env.set(Timestamp::from_millis(-10_000));
    let before = at(&env, Timestamp::from_millis(-5_000), 20);
    store
        .create(&before)
        .await
        .map_err(env.op("create at a clock before the epoch"))?;
    let before = stored(&before, 1);
    env.set(Timestamp::from_millis(-5_001));
    expect_loaded(
        &env,
        &store,
        &before.id,
        Some(&before),
        EXTREMES,
        "deadline -5000ms at clock -5001ms",
    )
    .await?;
    expect_loaded(
        &env,
        &store,
        &forever.id,
        Some(&forever),
        EXTREMES,
        "deadline Timestamp::MAX at clock -5001ms",
    )
    .await?;
    env.set(Timestamp::from_millis(-5_000));
    expect_loaded(
        &env,
        &store,
        &before.id,
        None,
        EXTREMES,
        "deadline -5000ms at clock -5000ms",
    )
    .await?;
    // Across the epoch.
    env.set(Timestamp::from_millis(-1));
    let at_epoch = at(&env, Timestamp::EPOCH, 21);
    store.create(&at_epoch).await.map_err(env.op("create"))?;
    let after_epoch = at(&env, Timestamp::from_millis(1), 22);
    let v = store.save(&after_epoch).await.map_err(env.op("save"))?;
    let (at_epoch, after_epoch) = (stored(&at_epoch, 1), stored(&after_epoch, v));
    expect_loaded(
        &env,
        &store,
        &at_epoch.id,
        Some(&at_epoch),
        EXTREMES,
        "deadline 0 at clock -1ms",
    )
    .await?;
    env.set(Timestamp::EPOCH);
    expect_loaded(&env, &store, &at_epoch.id, None, EXTREMES, "deadline 0 at clock 0").await?;
    expect_loaded(
        &env,
        &store,
        &after_epoch.id,
        Some(&after_epoch),
        EXTREMES,
        "deadline 1ms at clock 0",
    )
    .await?;
    env.set(Timestamp::from_millis(1));
    expect_loaded(
        &env,
        &store,
        &after_epoch.id,
        None,
        EXTREMES,
        "deadline 1ms at clock 1ms",
    )
    .await?;
    // One millisecond before the end of time, and at it.
    env.set(Timestamp::from_millis(i64::MAX - 1));
    expect_loaded(
        &env,
        &store,
        &forever.id,
        Some(&forever),
        EXTREMES,
        "deadline Timestamp::MAX at clock MAX - 1ms",
    )
    .await?;
    let late = at(&env, Timestamp::MAX, 30);
    store.create(&late).await.map_err(env.op("create at clock MAX - 1ms"))?;
    expect_loaded(
        &env,
        &store,
        &late.id,
        Some(&stored(&late, 1)),
        EXTREMES,
        "created at clock MAX - 1ms",
    )
    .await?;
    env.set(Timestamp::MAX);
    for r in [&forever, &saved, &touched_rec] {
        expect_loaded(
            &env,
            &store,
            &r.id,
            None,
            EXTREMES,
            "deadline Timestamp::MAX at clock Timestamp::MAX",
        )
        .await?;
    }
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 0,
        EXTREMES,
        "count at clock Timestamp::MAX is {count}, expected 0"
    );
    store
        .purge_expired()
        .await
        .map_err(env.op("purge_expired at clock Timestamp::MAX"))?;
    let ids = store.ids().await.map_err(env.op("ids"))?;
    ensure!(
        env,
        ids.is_empty(),
        EXTREMES,
        "ids at clock Timestamp::MAX list {} ids",
        ids.len()
    );
    Ok(Pass::Passed)
}

/// Touch of a live record to one millisecond ago, to exactly now and to the
/// epoch returns true, and the record is expired at once (load, count and
/// ids no longer see it, and a later touch does not revive it).
pub async fn touch_to_a_past_deadline_expires_the_record_at_once<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "touch_to_a_past_deadline_expires_the_record_at_once").await?;
    let store = env.open().await?;
    let keep = env.record(data_of(&[("keep", 1)]), 60_000);
    store.create(&keep).await.map_err(env.op("create"))?;
    let now = env.now();
    for (what, deadline) in [
        ("one millisecond ago", now - Duration::from_millis(1)),
        ("exactly now", now),
        ("the epoch", Timestamp::EPOCH),
    ] {
        let record = env.record(data_of(&[("n", 1)]), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let touched = store.touch(&record.id, deadline).await.map_err(env.op("touch"))?;
        ensure!(
            env,
            touched,
            TOUCH_PAST,
            "touch of a live record to {what} returned false"
        );
        expect_loaded(
            &env,
            &store,
            &record.id,
            None,
            TOUCH_PAST,
            &format!("after touch to {what}"),
        )
        .await?;
        let count = store.count().await.map_err(env.op("count"))?;
        ensure!(
            env,
            count == 1,
            TOUCH_PAST,
            "count after touch to {what} is {count}, expected 1"
        );
        let ids = store.ids().await.map_err(env.op("ids"))?;
        ensure!(
            env,
            ids == vec![store.listing_handle(&keep.id)],
            TOUCH_PAST,
            "ids after touch to {what} list {} ids",
            ids.len()
        );
        let again = store
            .touch(&record.id, now + Duration::from_secs(60))
            .await
            .map_err(env.op("touch"))?;
        ensure!(
            env,
            !again,
            NO_REVIVAL,
            "touch of a record touched into the past returned true"
        );
        expect_loaded(&env, &store, &record.id, None, NO_REVIVAL, "after touching it back").await?;
    }
    Ok(Pass::Passed)
}

/// At exactly `now == expires_at`: save stores version 1 (no live
/// predecessor), create replaces the record, touch and rotate return false
/// and save_if_version is a conflict.
pub async fn writes_at_exactly_the_deadline_treat_the_record_as_expired<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "writes_at_exactly_the_deadline_treat_the_record_as_expired").await?;
    let store = env.open().await?;
    let start = env.now();
    let fresh = |env: &Env<'_, H>, r: &Record, n: i64| {
        let mut f = r.clone();
        f.data = data_of(&[("fresh", n)]);
        f.created_at = env.now();
        f.expires_at = env.now() + Duration::from_secs(60);
        f
    };
    // save
    let record = env.record(data_of(&[("n", 1)]), 1_000);
    store.create(&record).await.map_err(env.op("create"))?;
    store.save(&record).await.map_err(env.op("save"))?;
    env.set(record.expires_at);
    let next = fresh(&env, &record, 1);
    let v = store
        .save(&next)
        .await
        .map_err(env.op("save at exactly the deadline"))?;
    ensure!(
        env,
        v == 1,
        AT_DEADLINE,
        "save at exactly the deadline of a version-2 record returned version {v}, expected 1"
    );
    expect_loaded(
        &env,
        &store,
        &next.id,
        Some(&stored(&next, 1)),
        AT_DEADLINE,
        "after save at exactly the deadline",
    )
    .await?;
    // save_if_version, touch, rotate, create
    env.set(start);
    let record = env.record(data_of(&[("n", 2)]), 2_000);
    store.create(&record).await.map_err(env.op("create"))?;
    env.set(record.expires_at);
    let late = fresh(&env, &stored(&record, 1), 2);
    match store.save_if_version(&late).await {
        Err(Error::Conflict { .. }) => {}
        other => {
            return Err(env.fail(
                AT_DEADLINE,
                format!("save_if_version at exactly the deadline returned {other:?}, expected Conflict"),
            ));
        }
    }
    let touched = store
        .touch(&record.id, env.now() + Duration::from_secs(60))
        .await
        .map_err(env.op("touch"))?;
    ensure!(
        env,
        !touched,
        AT_DEADLINE,
        "touch at exactly the deadline returned true"
    );
    let new = SessionId::random();
    let rotated = store.rotate(&record.id, &new).await.map_err(env.op("rotate"))?;
    ensure!(
        env,
        !rotated,
        AT_DEADLINE,
        "rotate at exactly the deadline returned true"
    );
    expect_loaded(
        &env,
        &store,
        &new,
        None,
        AT_DEADLINE,
        "the new id of a rotate at exactly the deadline",
    )
    .await?;
    let replacement = fresh(&env, &record, 3);
    store.create(&replacement).await.map_err(|e| {
        env.fail(
            AT_DEADLINE,
            format!("create at exactly the deadline failed: {}", chain(&e)),
        )
    })?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&replacement, 1)),
        AT_DEADLINE,
        "after create at exactly the deadline",
    )
    .await?;
    Ok(Pass::Passed)
}

/// The manual clock stands still while 1.2 s of real time pass: records
/// whose deadline is only 200 ms after the clock's now (through create, save
/// and touch) still load, count and list afterwards. Catches a store whose
/// own expiry (a TTL) is set from real time without grace.
pub async fn records_stay_live_while_real_time_passes_and_the_clock_stands_still<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(
        harness,
        "records_stay_live_while_real_time_passes_and_the_clock_stands_still",
    )
    .await?;
    let store = env.open().await?;
    let created = env.record(data_of(&[("via", 1)]), 200);
    store.create(&created).await.map_err(env.op("create"))?;
    let saved = env.record(data_of(&[("via", 2)]), 200);
    let v = store.save(&saved).await.map_err(env.op("save"))?;
    let mut touched = env.record(data_of(&[("via", 3)]), 60_000);
    store.create(&touched).await.map_err(env.op("create"))?;
    let deadline = env.now() + Duration::from_millis(200);
    ensure!(
        env,
        store.touch(&touched.id, deadline).await.map_err(env.op("touch"))?,
        TOUCH,
        "touch of a live record returned false"
    );
    touched.expires_at = deadline;
    let expected = [stored(&created, 1), stored(&saved, v), stored(&touched, 1)];
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for r in &expected {
        expect_loaded(
            &env,
            &store,
            &r.id,
            Some(r),
            REAL_TIME,
            "1.2 s of real time later, the clock 200 ms before the deadline",
        )
        .await?;
    }
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 3,
        REAL_TIME,
        "count after 1.2 s of real time is {count}, expected 3"
    );
    let ids: BTreeSet<_> = store.ids().await.map_err(env.op("ids"))?.into_iter().collect();
    ensure!(
        env,
        ids == listed(&store, expected.iter().map(|r| r.id)),
        REAL_TIME,
        "ids after 1.2 s of real time list {} ids, expected the 3 live ones",
        ids.len()
    );
    env.advance(200);
    for r in &expected {
        expect_loaded(
            &env,
            &store,
            &r.id,
            None,
            LIVENESS,
            "once the clock reached the deadline",
        )
        .await?;
    }
    Ok(Pass::Passed)
}

/// The store's [`clock`](SessionStore::clock) is the clock the harness gave
/// it: it reads the same instant before and after the test moves time, so
/// the session handle and the adapters, which take their deadlines from it,
/// agree with the store's own liveness decisions.
pub async fn the_store_exposes_the_clock_it_was_given<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "the_store_exposes_the_clock_it_was_given").await?;
    let store = env.open().await?;
    for step in [0u64, 1, 86_400_000] {
        env.advance(step);
        let exposed = store.clock().now();
        let now = env.now();
        ensure!(
            env,
            exposed == now,
            CLOCK,
            "store.clock() reads {exposed:?} while the given clock reads {now:?}"
        );
    }
    Ok(Pass::Passed)
}
