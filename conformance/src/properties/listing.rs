//! Listing: purge, count, ids, clear and namespaces.

use super::*;

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
