//! Durability: reopening a store and store objects sharing a namespace.

use super::*;

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

/// Shared stores: each store object first looks (so a cache would be
/// warm), then a write through the other is seen by its very next load:
/// create, save, touch, rotate, save_if_version and delete, in turn
/// through A and B.
pub async fn a_write_through_one_store_object_is_seen_by_the_next_load_through_another<H: Harness>(
    harness: &H,
) -> Verdict {
    if !harness.capabilities().shared {
        return skipped("the harness does not declare the `shared` capability");
    }
    let env = Env::new(
        harness,
        "a_write_through_one_store_object_is_seen_by_the_next_load_through_another",
    )
    .await?;
    let a = env.open().await?;
    let b = env.open().await?;
    let record = env.record(data_of(&[("n", 1)]), 60_000);
    let id = record.id;
    expect_loaded(&env, &b, &id, None, NO_STALE, "B before anything was written").await?;
    expect_loaded(&env, &a, &id, None, NO_STALE, "A before anything was written").await?;
    a.create(&record).await.map_err(env.op("create on A"))?;
    let mut current = stored(&record, 1);
    expect_loaded(&env, &b, &id, Some(&current), NO_STALE, "B after A created").await?;
    let mut next = current.clone();
    next.data = data_of(&[("n", 2)]);
    let v = b.save(&next).await.map_err(env.op("save on B"))?;
    current = stored(&next, v);
    expect_loaded(&env, &a, &id, Some(&current), NO_STALE, "A after B saved").await?;
    let deadline = env.now() + Duration::from_millis(90_001);
    ensure!(
        env,
        a.touch(&id, deadline).await.map_err(env.op("touch on A"))?,
        TOUCH,
        "touch of a live record returned false"
    );
    current.expires_at = deadline;
    expect_loaded(&env, &b, &id, Some(&current), NO_STALE, "B after A touched").await?;
    let new = SessionId::random();
    expect_loaded(&env, &a, &new, None, NO_STALE, "A before the rotate").await?;
    ensure!(
        env,
        b.rotate(&id, &new).await.map_err(env.op("rotate on B"))?,
        ROTATE,
        "rotate of a live record returned false"
    );
    current.id = new;
    expect_loaded(&env, &a, &id, None, NO_STALE, "A's old id after B rotated").await?;
    expect_loaded(&env, &a, &new, Some(&current), NO_STALE, "A's new id after B rotated").await?;
    let mut next = current.clone();
    next.data = data_of(&[("n", 3)]);
    let v = a.save_if_version(&next).await.map_err(env.op("save_if_version on A"))?;
    let stale = current.clone();
    current = stored(&next, v);
    expect_loaded(&env, &b, &new, Some(&current), NO_STALE, "B after A's save_if_version").await?;
    match b.save_if_version(&stale).await {
        Err(Error::Conflict { .. }) => {}
        other => {
            return Err(env.fail(
                NO_STALE,
                format!("save_if_version on B with the version A replaced returned {other:?}, expected Conflict"),
            ));
        }
    }
    a.delete(&new).await.map_err(env.op("delete on A"))?;
    expect_loaded(&env, &b, &new, None, NO_STALE, "B after A deleted").await?;
    Ok(Pass::Passed)
}
