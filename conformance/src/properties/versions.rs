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
    let v = store.create(&other).await.map_err(env.op("create"))?;
    ensure!(
        env,
        v == 1,
        VERSIONS,
        "create returned version {v}, expected 1 (the version it stored)"
    );
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

const CREATE_VERSION: &str = "create stores version 1 and answers it, whatever version the record it is given carries";

/// Create ignores the version its record carries (a record loaded from
/// somewhere else, a handle's stale copy): records carrying 0, 1, 7 and
/// `u64::MAX` are each stored at version 1, and a save over each then
/// stores 2.
pub async fn create_stores_version_one_whatever_the_record_carries<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "create_stores_version_one_whatever_the_record_carries").await?;
    let store = env.open().await?;
    for carried in [0, 1, 7, u64::MAX] {
        let mut r = env.record(data_of(&[("carried", carried as i64)]), 60_000);
        r.version = carried;
        let answered = store.create(&r).await.map_err(env.op("create"))?;
        ensure!(
            env,
            answered == 1,
            CREATE_VERSION,
            "create of a record carrying version {carried} answered {answered}"
        );
        expect_loaded(
            &env,
            &store,
            &r.id,
            Some(&stored(&r, 1)),
            CREATE_VERSION,
            &format!("a created record that carried version {carried}"),
        )
        .await?;
        let saved = store.save(&r).await.map_err(env.op("save"))?;
        ensure!(
            env,
            saved == 2,
            CREATE_VERSION,
            "a save over a record created from one carrying version {carried} answered {saved}"
        );
    }
    Ok(Pass::Passed)
}

const IMPORT: &str = "import stores a live record with exactly its version, data, created time, deadline and owner, writes nothing for an expired record or over a live one of the same or a newer version, and replaces an older or expired one";

/// `import` (a migration's write): a live record lands with exactly its
/// version (5), data, created time, deadline and owner, and the versions go
/// on from there (save_if_version from 5 gives 6); importing it again, or
/// an older version, writes nothing and answers false; a newer version
/// replaces it; an expired record is never imported; a record over an
/// expired one replaces it.
pub async fn import_keeps_the_version_and_never_replaces_a_newer_record<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "import_keeps_the_version_and_never_replaces_a_newer_record").await?;
    let store = env.open().await?;
    let mut record = env.record(data_of(&[("n", 1)]), 60_000);
    record.version = 5;
    record.owner = Some("importer".into());
    record.created_at = env.now() - Duration::from_secs(3_600);
    let imported = store.import(&record).await.map_err(env.op("import"))?;
    ensure!(env, imported, IMPORT, "import of a new live record answered false");
    expect_loaded(&env, &store, &record.id, Some(&record), IMPORT, "after import").await?;
    for (what, version) in [("the same version", 5), ("an older version", 3)] {
        let mut again = record.clone();
        again.version = version;
        again.data = data_of(&[("n", 99)]);
        let imported = store.import(&again).await.map_err(env.op("import"))?;
        ensure!(
            env,
            !imported,
            IMPORT,
            "import of {what} over a live record answered true"
        );
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&record),
            IMPORT,
            &format!("after importing {what}"),
        )
        .await?;
    }
    let mut newer = record.clone();
    newer.version = 7;
    newer.data = data_of(&[("n", 7)]);
    let imported = store.import(&newer).await.map_err(env.op("import"))?;
    ensure!(env, imported, IMPORT, "import of a newer version answered false");
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&newer),
        IMPORT,
        "after importing a newer version",
    )
    .await?;
    let v = store.save_if_version(&newer).await.map_err(env.op("save_if_version"))?;
    ensure!(
        env,
        v == 8,
        VERSIONS,
        "save_if_version after an import of version 7 returned {v}, expected 8"
    );

    let mut expired = env.record(data_of(&[("n", 2)]), 1_000);
    expired.version = 2;
    expired.expires_at = env.now();
    let imported = store.import(&expired).await.map_err(env.op("import"))?;
    ensure!(
        env,
        !imported,
        IMPORT,
        "import of a record at its deadline answered true"
    );
    let gone = env.record(data_of(&[("n", 3)]), 1_000);
    store.create(&gone).await.map_err(env.op("create"))?;
    env.set(gone.expires_at);
    let mut over = gone.clone();
    over.version = 4;
    over.expires_at = env.now() + Duration::from_secs(60);
    let imported = store.import(&over).await.map_err(env.op("import"))?;
    ensure!(env, imported, IMPORT, "import over an expired record answered false");
    expect_loaded(
        &env,
        &store,
        &over.id,
        Some(&over),
        IMPORT,
        "after importing over an expired record",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 2,
        IMPORT,
        "count after the imports is {count}, expected 2"
    );
    Ok(Pass::Passed)
}
