//! Versions: create, version bumps and save_if_version.

use super::*;

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
