//! Rotate: moving a record to a fresh id.

use super::*;

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
        ids == vec![store.listing_handle(&new)],
        ROTATE,
        "ids after rotate: {} ids (new id present: {}), expected only the new id",
        ids.len(),
        ids.contains(&store.listing_handle(&new))
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

/// A request loaded the record, then a login rotated it: the request's late
/// save_if_version (with the version it loaded, and with the version the
/// moved record still has) is a conflict, its late touch returns false, and
/// the old id never loads again; the moved record is unchanged. The same
/// after a second rotate, for the middle id.
pub async fn late_writes_after_a_rotate_never_bring_the_old_id_back<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "late_writes_after_a_rotate_never_bring_the_old_id_back").await?;
    let store = env.open().await?;
    let record = env.record(data_of(&[("user", 0), ("cart", 3)]), 60_000);
    store.create(&record).await.map_err(env.op("create"))?;
    let v = store.save(&record).await.map_err(env.op("save"))?;
    let mut ids = vec![record.id];
    let mut moved = stored(&record, v);
    for hop in 1..=2 {
        let old = moved.id;
        let loaded = store
            .load(&old)
            .await
            .map_err(env.op("load"))?
            .ok_or_else(|| env.fail(ROUND_TRIP, "a live record does not load"))?;
        let new = SessionId::random();
        let rotated = store.rotate(&old, &new).await.map_err(env.op("rotate"))?;
        ensure!(env, rotated, ROTATE, "rotate {hop} of a live record returned false");
        moved.id = new;
        ids.push(new);
        let mut late = loaded.clone();
        late.data = data_of(&[("user", -1), ("late", hop)]);
        late.expires_at = env.now() + Duration::from_secs(7_200);
        match store.save_if_version(&late).await {
            Err(Error::Conflict { .. }) => {}
            other => {
                return Err(env.fail(
                    LATE_AFTER_ROTATE,
                    format!(
                        "save_if_version on the old id (version {}) after rotate {hop} returned {other:?}, expected Conflict",
                        late.version
                    ),
                ));
            }
        }
        expect_loaded(
            &env,
            &store,
            &old,
            None,
            LATE_AFTER_ROTATE,
            &format!("the old id after a late save_if_version (rotate {hop})"),
        )
        .await?;
        let touched = store
            .touch(&old, env.now() + Duration::from_secs(7_200))
            .await
            .map_err(env.op("touch"))?;
        ensure!(
            env,
            !touched,
            LATE_AFTER_ROTATE,
            "a late touch of the old id after rotate {hop} returned true"
        );
        expect_loaded(
            &env,
            &store,
            &old,
            None,
            LATE_AFTER_ROTATE,
            &format!("the old id after a late touch (rotate {hop})"),
        )
        .await?;
        expect_loaded(
            &env,
            &store,
            &new,
            Some(&moved),
            LATE_AFTER_ROTATE,
            &format!("the moved record after late writes to its old id (rotate {hop})"),
        )
        .await?;
    }
    for old in &ids[..ids.len() - 1] {
        expect_loaded(&env, &store, old, None, LATE_AFTER_ROTATE, "an old id at the end").await?;
    }
    let listed = store.ids().await.map_err(env.op("ids"))?;
    ensure!(
        env,
        listed == vec![store.listing_handle(&moved.id)],
        LATE_AFTER_ROTATE,
        "ids after two rotates and late writes to the old ids list {} ids (the current one present: {})",
        listed.len(),
        listed.contains(&store.listing_handle(&moved.id))
    );
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 1,
        LATE_AFTER_ROTATE,
        "count after two rotates and late writes to the old ids is {count}, expected 1"
    );
    Ok(Pass::Passed)
}
