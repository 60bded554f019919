//! Concurrency: many tasks, no lost or torn records, one winner.

use super::*;

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
