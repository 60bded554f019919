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
