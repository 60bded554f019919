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
    let live_listed = listed(&store, live.iter().copied());
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
        set == live_listed,
        LISTING,
        "ids listed {} ids, {} of them live; expected the {} live ones",
        ids.len(),
        set.intersection(&live_listed).count(),
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
        ids_b == listed(&b, [shared_id, extra_b.id]),
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

/// Creates `n` records live for `ttl_ms` (data tagged with `tag`) from eight
/// tasks at once; returns them as stored.
async fn create_many<H: Harness>(
    env: &Env<'_, H>,
    store: &Arc<H::Store>,
    n: usize,
    ttl_ms: impl Fn(usize) -> u64,
    tag: i64,
) -> Result<Vec<Record>, Failure> {
    let records: Vec<Record> = (0..n)
        .map(|i| env.record(data_of(&[("tag", tag), ("i", i as i64)]), ttl_ms(i)))
        .collect();
    let jobs = records
        .chunks(n.div_ceil(8).max(1))
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            async move {
                for r in &chunk {
                    store.create(r).await?;
                }
                Ok::<_, Error>(())
            }
        })
        .collect();
    for result in start_together(env, crate::env::HEALTHY, "a creating task", jobs).await? {
        result.map_err(env.op("create"))?;
    }
    Ok(records.iter().map(|r| stored(r, 1)).collect())
}

/// 2,000 live and 200 expired records: `ids` lists every live one exactly
/// once and no other, and `count` says 2,000 (paged scans miss nothing and
/// repeat nothing).
pub async fn ids_and_count_over_thousands_of_records_agree_and_miss_none<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "ids_and_count_over_thousands_of_records_agree_and_miss_none").await?;
    let store = Arc::new(env.open().await?);
    let live = create_many(&env, &store, 2_000, |_| 60_000, 1).await?;
    create_many(&env, &store, 200, |_| 1_000, 2).await?;
    env.advance(1_000);
    let expected: BTreeSet<ListingHandle> = listed(&*store, live.iter().map(|r| r.id));
    let ids = store.ids().await.map_err(env.op("ids"))?;
    let set: BTreeSet<ListingHandle> = ids.iter().copied().collect();
    ensure!(
        env,
        set.len() == ids.len(),
        SCALE_LISTING,
        "ids over 2,200 records listed {} ids, {} distinct",
        ids.len(),
        set.len()
    );
    ensure!(
        env,
        set == expected,
        SCALE_LISTING,
        "ids over 2,000 live and 200 expired records listed {} ids: {} live ones missing, {} not live",
        ids.len(),
        expected.difference(&set).count(),
        set.difference(&expected).count()
    );
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 2_000,
        SCALE_LISTING,
        "count over 2,000 live and 200 expired records is {count}"
    );
    store.clear().await.map_err(env.op("clear"))?;
    Ok(Pass::Passed)
}

/// 600 expired records (deadlines spread over a second) beside 100 live
/// ones: one purge removes and counts all 600, the live ones all still load,
/// and a second purge finds nothing.
pub async fn purge_removes_and_counts_hundreds_of_expired_records<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "purge_removes_and_counts_hundreds_of_expired_records").await?;
    let store = Arc::new(env.open().await?);
    let expired = create_many(&env, &store, 600, |i| 1 + (i as u64 * 1_000) / 600, 1).await?;
    let live = create_many(&env, &store, 100, |i| 1_001 + i as u64, 2).await?;
    env.advance(1_000);
    let purged = store.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged == 600,
        SCALE_PURGE,
        "purge with 600 expired records (beside 100 live) returned {purged}"
    );
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 100,
        SCALE_PURGE,
        "count after the purge is {count}, expected 100"
    );
    for r in &live {
        expect_loaded(
            &env,
            &*store,
            &r.id,
            Some(r),
            PURGE,
            "a live record after a large purge",
        )
        .await?;
    }
    for r in expired.iter().step_by(37) {
        expect_loaded(
            &env,
            &*store,
            &r.id,
            None,
            NO_REVIVAL,
            "an expired record after a large purge",
        )
        .await?;
    }
    let again = store.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        again == 0,
        SCALE_PURGE,
        "a second purge removed {again} more records"
    );
    store.clear().await.map_err(env.op("clear"))?;
    Ok(Pass::Passed)
}

/// Two namespaces, each with live and expired records (one id in both,
/// expired in one and live in the other): count, ids, purge and clear of
/// each see, remove and count only its own.
pub async fn purge_count_ids_and_clear_touch_only_their_own_namespace<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "purge_count_ids_and_clear_touch_only_their_own_namespace").await?;
    let other_ns = env.another_namespace().await?;
    let a = env.open().await?;
    let b = env.open_on(&other_ns).await?;
    // (namespace A?, ttl): A has 3 live and 2 expired, B 2 live and 3 expired.
    let shared_id = SessionId::random();
    let mut records: Vec<(bool, Record)> = Vec::new();
    for (in_a, ttl, n) in [
        (true, 60_000, 0),
        (true, 60_000, 1),
        (true, 60_000, 2),
        (true, 1_000, 3),
        (true, 500, 4),
        (false, 60_000, 5),
        (false, 60_000, 6),
        (false, 1_000, 7),
        (false, 999, 8),
        (false, 1, 9),
    ] {
        let mut r = env.record(data_of(&[("n", n)]), ttl);
        if n == 3 || n == 5 {
            r.id = shared_id; // expired in A, live in B
        }
        let store = if in_a { &a } else { &b };
        store.create(&r).await.map_err(env.op("create"))?;
        records.push((in_a, stored(&r, 1)));
    }
    env.advance(1_000);
    let live_of = |in_a: bool| -> BTreeSet<SessionId> {
        records
            .iter()
            .filter(|(ns, r)| *ns == in_a && r.expires_at > env.now())
            .map(|(_, r)| r.id)
            .collect()
    };
    let (live_a, live_b) = (live_of(true), live_of(false));
    for (name, store, live) in [("A", &a, &live_a), ("B", &b, &live_b)] {
        let count = store.count().await.map_err(env.op("count"))?;
        ensure!(
            env,
            count == live.len() as u64,
            NAMESPACE_LISTING,
            "count in namespace {name} is {count}, expected its own {} live records",
            live.len()
        );
        let ids: BTreeSet<_> = store.ids().await.map_err(env.op("ids"))?.into_iter().collect();
        let own = listed(store, live.iter().copied());
        ensure!(
            env,
            ids == own,
            NAMESPACE_LISTING,
            "ids in namespace {name} list {} ids, {} of them its own live ones (of {})",
            ids.len(),
            ids.intersection(&own).count(),
            live.len()
        );
    }
    let purged_a = a.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged_a == 2,
        NAMESPACE_LISTING,
        "purge in A removed {purged_a}, expected its own 2 expired records (B has 3)"
    );
    for (in_a, r) in &records {
        let (store, live) = if *in_a { (&a, &live_a) } else { (&b, &live_b) };
        let expected = live.contains(&r.id).then_some(r);
        expect_loaded(&env, store, &r.id, expected, NAMESPACE_LISTING, "after purging A").await?;
    }
    let purged_b = b.purge_expired().await.map_err(env.op("purge_expired"))?;
    ensure!(
        env,
        purged_b == 3,
        NAMESPACE_LISTING,
        "purge in B after purging A removed {purged_b}, expected B's own 3 expired records"
    );
    a.clear().await.map_err(env.op("clear"))?;
    let (ca, cb) = (
        a.count().await.map_err(env.op("count"))?,
        b.count().await.map_err(env.op("count"))?,
    );
    ensure!(
        env,
        ca == 0 && cb == live_b.len() as u64,
        NAMESPACE_LISTING,
        "after clearing A: count A = {ca}, count B = {cb}, expected 0 and {}",
        live_b.len()
    );
    let ids_b: BTreeSet<_> = b.ids().await.map_err(env.op("ids"))?.into_iter().collect();
    ensure!(
        env,
        ids_b == listed(&b, live_b.iter().copied()),
        NAMESPACE_LISTING,
        "after clearing A, B's ids list {} ids, expected its {} live ones",
        ids_b.len(),
        live_b.len()
    );
    b.clear().await.map_err(env.op("clear"))?;
    Ok(Pass::Passed)
}

const LISTED: &str = "a listing handle loads its live record through load_listed and ends it through delete_listed; for an expired, deleted or never-stored record load_listed answers None and delete_listed is no error";

/// Every handle `ids` answers (the handles `owner_sessions` answers are
/// the same, `owner_sessions_follow_every_write_rotate_delete_and_expiry`
/// checks) loads its record through `load_listed`, the very record `load` of its
/// id answers, and `delete_listed` ends it; the handle of a record that
/// expired (not purged yet), was deleted, or was never stored loads
/// nothing, and `delete_listed` of it is no error. Stores that hash ids at
/// rest without sealing bodies run it too, as every store does.
pub async fn listing_handles_load_and_end_exactly_the_live_records<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "listing_handles_load_and_end_exactly_the_live_records").await?;
    let store = env.open().await?;
    let owner = "owner-of-listed";
    let mut live = Vec::new();
    for i in 0..3_i64 {
        let mut record = env.record(data_of(&[("i", i)]), 60_000);
        record.owner = Some(owner.to_owned());
        store.create(&record).await.map_err(env.op("create"))?;
        live.push(stored(&record, 1));
    }
    let mut short = env.record(data_of(&[("short", 1)]), 1_000);
    short.owner = Some(owner.to_owned());
    store.create(&short).await.map_err(env.op("create"))?;
    let short_handle = store.listing_handle(&short.id);
    let never = store.listing_handle(&SessionId::random());
    env.advance(1_000);

    let mut expected: Vec<ListingHandle> = live.iter().map(|r| store.listing_handle(&r.id)).collect();
    expected.sort();
    let mut listed = store.ids().await.map_err(env.op("ids"))?;
    listed.sort();
    ensure!(
        env,
        listed == expected,
        LISTED,
        "ids answered {} handles, not the {} of the live records' ids",
        listed.len(),
        expected.len()
    );
    for record in &live {
        let handle = store.listing_handle(&record.id);
        let shown = store.load_listed(&handle).await.map_err(env.op("load_listed"))?;
        ensure!(
            env,
            shown
                .as_ref()
                .map(|r| (&r.data, &r.owner, r.expires_at, r.created_at, r.version))
                == Some((
                    &record.data,
                    &record.owner,
                    record.expires_at,
                    record.created_at,
                    record.version
                )),
            LISTED,
            "load_listed of a live record's handle answered {}",
            describe(shown.as_ref())
        );
    }
    for (what, handle) in [("an expired record", short_handle), ("a never-stored id", never)] {
        let shown = store.load_listed(&handle).await.map_err(env.op("load_listed"))?;
        ensure!(
            env,
            shown.is_none(),
            LISTED,
            "load_listed of {what}'s handle answered {}",
            describe(shown.as_ref())
        );
        store.delete_listed(&handle).await.map_err(env.op("delete_listed"))?;
    }
    let gone = &live[0];
    let handle = store.listing_handle(&gone.id);
    store.delete_listed(&handle).await.map_err(env.op("delete_listed"))?;
    expect_loaded(
        &env,
        &store,
        &gone.id,
        None,
        LISTED,
        "after delete_listed of its handle",
    )
    .await?;
    let shown = store.load_listed(&handle).await.map_err(env.op("load_listed"))?;
    ensure!(
        env,
        shown.is_none(),
        LISTED,
        "load_listed of a handle delete_listed ended answered {}",
        describe(shown.as_ref())
    );
    store
        .delete_listed(&handle)
        .await
        .map_err(env.op("delete_listed of an ended handle"))?;
    for record in &live[1..] {
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(record),
            LISTED,
            "beside one ended by its handle",
        )
        .await?;
    }
    Ok(Pass::Passed)
}
