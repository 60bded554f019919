//! Concurrency: many tasks, no lost or torn records, one winner.

use super::*;

/// One boxed store call, so calls of different kinds race in one batch.
type Job<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, Error>> + Send>>;

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

/// 16 racing creates of different data on one fresh id, four rounds:
/// exactly one returns `Ok`, the others `IdCollision`, and the winner's
/// record is stored with version 1.
pub async fn racing_creates_on_one_id_have_exactly_one_winner<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "racing_creates_on_one_id_have_exactly_one_winner").await?;
    let store = Arc::new(env.open().await?);
    for round in 0..4_i64 {
        let id = SessionId::random();
        let jobs = (0..16_i64)
            .map(|i| {
                let store = store.clone();
                let mut attempt = env.record(data_of(&[("writer", i), ("round", round)]), 60_000);
                attempt.id = id;
                async move {
                    let result = store.create(&attempt).await;
                    (attempt, result)
                }
            })
            .collect();
        let mut winners = Vec::new();
        for (attempt, result) in start_together(&env, ONE_CREATE, "a racing create", jobs).await? {
            match result {
                Ok(_) => winners.push(attempt),
                Err(Error::IdCollision { .. }) => {}
                Err(e) => return Err(env.op("a racing create")(e)),
            }
        }
        ensure!(
            env,
            winners.len() == 1,
            ONE_CREATE,
            "round {round}: {} of 16 racing creates on one fresh id succeeded",
            winners.len()
        );
        expect_loaded(
            &env,
            &*store,
            &id,
            Some(&stored(&winners[0], 1)),
            ONE_CREATE,
            &format!("round {round}: after racing creates, the winner's record"),
        )
        .await?;
    }
    Ok(Pass::Passed)
}

/// Eight live records racing to rotate onto one new id, three rounds:
/// exactly one returns `Ok(true)` and is stored under the new id (its old id
/// gone), the others return `IdCollision` and stay intact under their ids.
pub async fn racing_rotates_onto_one_new_id_have_exactly_one_winner<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "racing_rotates_onto_one_new_id_have_exactly_one_winner").await?;
    let store = Arc::new(env.open().await?);
    for round in 0..3_i64 {
        let target = SessionId::random();
        let mut records = Vec::new();
        for i in 0..8_i64 {
            let record = env.record(data_of(&[("record", i), ("round", round)]), 60_000 + i as u64);
            store.create(&record).await.map_err(env.op("create"))?;
            records.push(stored(&record, 1));
        }
        let jobs = records
            .iter()
            .map(|r| {
                let store = store.clone();
                let old = r.id;
                async move { store.rotate(&old, &target).await }
            })
            .collect();
        let mut winners = Vec::new();
        for (i, result) in start_together(&env, ONE_ROTATE, "a racing rotate", jobs)
            .await?
            .into_iter()
            .enumerate()
        {
            match result {
                Ok(true) => winners.push(i),
                Ok(false) => {
                    return Err(env.fail(
                        ONE_ROTATE,
                        format!("round {round}: a racing rotate of a live record returned false"),
                    ));
                }
                Err(Error::IdCollision { .. }) => {}
                Err(e) => return Err(env.op("a racing rotate")(e)),
            }
        }
        ensure!(
            env,
            winners.len() == 1,
            ONE_ROTATE,
            "round {round}: {} of 8 racing rotates onto one new id succeeded",
            winners.len()
        );
        let winner = winners[0];
        let mut moved = records[winner].clone();
        moved.id = target;
        expect_loaded(
            &env,
            &*store,
            &target,
            Some(&moved),
            ONE_ROTATE,
            &format!("round {round}: the new id after racing rotates"),
        )
        .await?;
        for (i, r) in records.iter().enumerate() {
            let expected = (i != winner).then_some(r);
            let when = if i == winner {
                format!("round {round}: the winner's old id")
            } else {
                format!("round {round}: a loser's record under its own id")
            };
            expect_loaded(&env, &*store, &r.id, expected, ONE_ROTATE, &when).await?;
        }
    }
    Ok(Pass::Passed)
}

/// Which pair of loads a rotate reader does, in which order.
#[derive(Clone, Copy, Debug)]
enum ReadOrder {
    /// The old id, then the new one: an atomic rotate can never give
    /// "neither" (once the old id is gone, the new one is there).
    OldThenNew,
    /// The new id, then the old one: an atomic rotate can never give
    /// "both" (once the new id is there, the old one is gone).
    NewThenOld,
}

/// Readers loading both ids in a loop while a record is rotated, eight
/// rounds: a reader never sees neither id live; without the capability
/// `rotate_briefly_shows_both_ids` it never sees both either; whatever it
/// loads is the whole record; and once rotate returned only the new id
/// loads.
pub async fn a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live<H: Harness>(harness: &H) -> Verdict {
    use std::sync::atomic::{AtomicBool, Ordering};
    let weak = harness.capabilities().rotate_briefly_shows_both_ids;
    let env = Env::new(harness, "a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live").await?;
    let store = Arc::new(env.open().await?);
    for round in 0..8_i64 {
        let record = env.record(data_of(&[("round", round), ("user", 7)]), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let (old, new) = (record.id, SessionId::random());
        let expected = stored(&record, 1);
        let mut moved = expected.clone();
        moved.id = new;
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = [ReadOrder::OldThenNew, ReadOrder::NewThenOld]
            .into_iter()
            .cycle()
            .take(4)
            .map(|order| {
                let (store, done) = (store.clone(), done.clone());
                let (expected, moved) = (expected.clone(), moved.clone());
                tokio::spawn(async move {
                    let mut reads = 0_u32;
                    // A few reads after rotate returned, so the last state is seen too.
                    let mut after = 0;
                    while after < 3 {
                        if done.load(Ordering::Acquire) {
                            after += 1;
                        }
                        let (o, n) = match order {
                            ReadOrder::OldThenNew => {
                                let o = store.load(&old).await?;
                                (o, store.load(&new).await?)
                            }
                            ReadOrder::NewThenOld => {
                                let n = store.load(&new).await?;
                                (store.load(&old).await?, n)
                            }
                        };
                        reads += 1;
                        if o.as_ref().is_some_and(|r| *r != expected) || n.as_ref().is_some_and(|r| *r != moved) {
                            return Ok(Err(format!(
                                "a reader loaded {} under the old id and {} under the new one, not the whole record",
                                describe(o.as_ref()),
                                describe(n.as_ref())
                            )));
                        }
                        match (order, o.is_some(), n.is_some()) {
                            (ReadOrder::OldThenNew, false, false) => {
                                return Ok(Err(
                                    "a reader loading the old id, then the new one, found neither live".to_owned()
                                ));
                            }
                            (ReadOrder::NewThenOld, true, true) if !weak => {
                                return Ok(Err(
                                    "a reader loading the new id, then the old one, found both live".to_owned()
                                ));
                            }
                            _ => {}
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, Error>(Ok(reads))
                })
            })
            .collect();
        // Let the readers start before the rotate.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let rotated = store.rotate(&old, &new).await;
        done.store(true, Ordering::Release);
        let mut outcomes = Vec::new();
        for reader in readers {
            outcomes.push(
                reader
                    .await
                    .map_err(|e| env.fail(ROTATE_ATOMIC, format!("a reader during rotate panicked: {e}")))?,
            );
        }
        let rotated = rotated.map_err(env.op("rotate"))?;
        ensure!(
            env,
            rotated,
            ROTATE,
            "round {round}: rotate of a live record returned false"
        );
        for outcome in outcomes {
            match outcome.map_err(env.op("a load during rotate"))? {
                Ok(_) => {}
                Err(what) => {
                    let rule = if weak { ROTATE_WEAK } else { ROTATE_ATOMIC };
                    return Err(env.fail(rule, format!("round {round}: {what}")));
                }
            }
        }
        let rule = if weak { ROTATE_WEAK } else { ROTATE_ATOMIC };
        expect_loaded(&env, &*store, &old, None, rule, "the old id once rotate returned").await?;
        expect_loaded(
            &env,
            &*store,
            &new,
            Some(&moved),
            rule,
            "the new id once rotate returned",
        )
        .await?;
    }
    Ok(Pass::Passed)
}

/// A touch to a far deadline racing a delete of the same record, sixteen
/// rounds (the delete a little later in some): whichever runs first, the
/// record is gone afterwards.
pub async fn touch_racing_delete_never_brings_the_record_back<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "touch_racing_delete_never_brings_the_record_back").await?;
    let store = Arc::new(env.open().await?);
    let far = env.now() + Duration::from_secs(3_600);
    let mut ids = Vec::new();
    for round in 0..16_usize {
        let record = env.record(data_of(&[("round", round as i64)]), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let id = record.id;
        let (s1, s2) = (store.clone(), store.clone());
        let jobs: Vec<Job<()>> = vec![
            Box::pin(async move { s1.touch(&id, far).await.map(drop) }),
            Box::pin(async move {
                for _ in 0..round % 4 {
                    tokio::task::yield_now().await;
                }
                s2.delete(&id).await
            }),
        ];
        for result in start_together(&env, TOUCH_DELETE, "a touch or delete", jobs).await? {
            result.map_err(env.op("a racing touch or delete"))?;
        }
        expect_loaded(
            &env,
            &*store,
            &id,
            None,
            TOUCH_DELETE,
            &format!("round {round}: after a touch raced a delete"),
        )
        .await?;
        ids.push(id);
    }
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 0,
        TOUCH_DELETE,
        "count is {count} after every record was deleted (each racing a touch)"
    );
    Ok(Pass::Passed)
}

const TOUCH_SAVE: &str = "touch is one atomic step on the stored record: a touch racing a save never undoes the save (its data and version stay), and the deadline is the save's or the touch's";

/// A save of new data racing three touches of the same live record, sixteen
/// rounds (the save a little later in some): afterwards the record holds
/// the save's data and version (one more than before; a touch bumps no
/// version), every touch answered `true` (the record was live throughout),
/// and the deadline is the save's or a touch's.
pub async fn touch_racing_a_save_never_undoes_it<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "touch_racing_a_save_never_undoes_it").await?;
    let store = Arc::new(env.open().await?);
    let mut current = env.record(data_of(&[("round", -1)]), 60_000);
    current.version = store.create(&current).await.map_err(env.op("create"))?;
    for round in 0..16_i64 {
        let touched = env.now() + Duration::from_millis(90_000 + round as u64);
        let mut next = current.clone();
        next.data = data_of(&[("round", round)]);
        next.expires_at = env.now() + Duration::from_millis(70_000 + round as u64);
        let mut jobs: Vec<Job<Option<u64>>> = Vec::new();
        for _ in 0..3 {
            let (s, id) = (store.clone(), current.id);
            jobs.push(Box::pin(async move {
                match s.touch(&id, touched).await {
                    Ok(true) => Ok(None),
                    Ok(false) => Err(Error::Unsupported("a touch of a live record that answered false")),
                    Err(e) => Err(e),
                }
            }));
        }
        let (s, record) = (store.clone(), next.clone());
        jobs.push(Box::pin(async move {
            for _ in 0..round % 3 {
                tokio::task::yield_now().await;
            }
            s.save(&record).await.map(Some)
        }));
        let mut saved = None;
        for result in start_together(&env, TOUCH_SAVE, "a touch or save", jobs).await? {
            match result {
                Ok(Some(v)) => saved = Some(v),
                Ok(None) => {}
                Err(Error::Unsupported(what)) => {
                    return Err(env.fail(TOUCH_SAVE, format!("round {round}: {what}")));
                }
                Err(e) => return Err(env.op("a racing touch or save")(e)),
            }
        }
        let version = current.version + 1;
        ensure!(
            env,
            saved == Some(version),
            TOUCH_SAVE,
            "round {round}: the save over version {} answered {saved:?}",
            current.version
        );
        let got = store
            .load(&current.id)
            .await
            .map_err(env.op("load"))?
            .ok_or_else(|| env.fail(TOUCH_SAVE, format!("round {round}: the record is gone after the race")))?;
        ensure!(
            env,
            got.data == next.data && got.version == version,
            TOUCH_SAVE,
            "round {round}: after a touch raced a save the record holds {} at version {}, expected the save's data at version {version}",
            describe(Some(&got)),
            got.version
        );
        ensure!(
            env,
            got.expires_at == next.expires_at || got.expires_at == touched,
            TOUCH_SAVE,
            "round {round}: the deadline is {:?}, neither the save's {:?} nor the touch's {:?}",
            got.expires_at,
            next.expires_at,
            touched
        );
        current = got;
    }
    Ok(Pass::Passed)
}

/// Sixteen expired records; a purge races a save of fresh data to each of
/// their ids, four rounds: every fresh record is stored (version 1) after
/// the race, and the purge counted at most the sixteen expired ones.
pub async fn purge_racing_a_save_of_the_same_expired_id_never_removes_the_fresh_record<H: Harness>(
    harness: &H,
) -> Verdict {
    let env = Env::new(
        harness,
        "purge_racing_a_save_of_the_same_expired_id_never_removes_the_fresh_record",
    )
    .await?;
    let store = Arc::new(env.open().await?);
    for round in 0..4_i64 {
        let mut fresh = Vec::new();
        for i in 0..16_i64 {
            let old = env.record(data_of(&[("old", i)]), 1_000);
            store.create(&old).await.map_err(env.op("create"))?;
            let mut new = old.clone();
            new.data = data_of(&[("fresh", i), ("round", round)]);
            fresh.push(new);
        }
        env.advance(1_500);
        let now = env.now();
        for r in &mut fresh {
            r.created_at = now;
            r.expires_at = now + Duration::from_secs(60);
        }
        let mut jobs: Vec<Job<u64>> = Vec::new();
        let s = store.clone();
        jobs.push(Box::pin(async move { s.purge_expired().await }));
        for r in &fresh {
            let (s, r) = (store.clone(), r.clone());
            jobs.push(Box::pin(async move { s.save(&r).await }));
        }
        let results = start_together(&env, PURGE_SAVE, "a purge or save", jobs).await?;
        let mut results = results.into_iter();
        let purged = results
            .next()
            .unwrap_or(Ok(0))
            .map_err(env.op("a purge racing saves"))?;
        for v in results {
            let v = v.map_err(env.op("a save racing a purge"))?;
            ensure!(
                env,
                v == 1,
                VERSIONS,
                "round {round}: a save over an expired record returned version {v}, expected 1"
            );
        }
        ensure!(
            env,
            purged <= 16,
            PURGE_SAVE,
            "round {round}: a purge with 16 expired records reported {purged} removed"
        );
        for r in &fresh {
            expect_loaded(
                &env,
                &*store,
                &r.id,
                Some(&stored(r, 1)),
                PURGE_SAVE,
                &format!("round {round}: a fresh record saved while a purge ran"),
            )
            .await?;
        }
        store.clear().await.map_err(env.op("clear"))?;
    }
    Ok(Pass::Passed)
}

/// Eight writers each save one id four times (different data and deadline
/// each time) while four readers load it in a loop: every record a reader
/// loads is one write's whole data with that write's deadline and the
/// version that write returned.
pub async fn readers_during_racing_saves_see_data_deadline_and_version_of_one_write<H: Harness>(
    harness: &H,
) -> Verdict {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new(
        harness,
        "readers_during_racing_saves_see_data_deadline_and_version_of_one_write",
    )
    .await?;
    let store = Arc::new(env.open().await?);
    let base = env.record(data_of(&[("writer", -1), ("n", -1)]), 60_000);
    store.create(&base).await.map_err(env.op("create"))?;
    // Write (w, n): its data, and its deadline base + 1 + 4w + n ms.
    let write_of = |w: i64, n: i64| {
        let mut r = base.clone();
        let mut data = data_of_size("payload", 2_048, (w * 4 + n) as u64);
        let _ = data.insert("writer", &w);
        let _ = data.insert("n", &n);
        r.data = data;
        r.expires_at = base.expires_at + Duration::from_millis((1 + 4 * w + n) as u64);
        r
    };
    let writes: Arc<Vec<Record>> = Arc::new(
        (0..8)
            .flat_map(|w| (0..4).map(move |n| (w, n)))
            .map(|(w, n)| write_of(w, n))
            .collect(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, done, writes, base) = (store.clone(), done.clone(), writes.clone(), stored(&base, 1));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !done.load(Ordering::Acquire) {
                    let Some(got) = store.load(&base.id).await? else {
                        return Ok(Err("a reader found no record while saves ran".to_owned()));
                    };
                    let (w, n) = (
                        got.data.get::<i64>("writer").ok().flatten(),
                        got.data.get::<i64>("n").ok().flatten(),
                    );
                    let Some((w, n)) = w.zip(n) else {
                        return Ok(Err(format!("a reader loaded data of no write: {}", describe(Some(&got)))));
                    };
                    if w < 0 {
                        if got != base {
                            return Ok(Err(format!(
                                "a reader loaded {}, a mix of the created record and a later write",
                                describe(Some(&got))
                            )));
                        }
                    } else {
                        let write = &writes[(w * 4 + n) as usize];
                        if got.data != write.data || got.expires_at != write.expires_at || got.created_at != write.created_at
                        {
                            return Ok(Err(format!(
                                "a reader loaded the data of write ({w}, {n}) with deadline {} (that write's is {}): {}",
                                got.expires_at,
                                write.expires_at,
                                if got.data == write.data { "data whole".to_owned() } else { diff_data(&write.data, &got.data) }
                            )));
                        }
                        seen.push((w * 4 + n, got.version));
                    }
                    tokio::task::yield_now().await;
                }
                Ok::<_, Error>(Ok(seen))
            })
        })
        .collect();
    let jobs = (0..8_usize)
        .map(|w| {
            let (store, writes) = (store.clone(), writes.clone());
            async move {
                let mut versions = Vec::new();
                for n in 0..4 {
                    versions.push((w * 4 + n, store.save(&writes[w * 4 + n]).await?));
                }
                Ok::<_, Error>(versions)
            }
        })
        .collect();
    let written = start_together(&env, ONE_WRITE, "a writer", jobs).await;
    done.store(true, Ordering::Release);
    let mut version_of = std::collections::BTreeMap::new();
    for versions in written? {
        version_of.extend(versions.map_err(env.op("a racing save"))?);
    }
    for reader in readers {
        let seen = reader
            .await
            .map_err(|e| env.fail(ONE_WRITE, format!("a reader panicked: {e}")))?
            .map_err(env.op("a load during racing saves"))?
            .map_err(|what| env.fail(ONE_WRITE, what))?;
        for (write, version) in seen {
            let returned = version_of.get(&(write as usize)).copied();
            ensure!(
                env,
                returned == Some(version),
                ONE_WRITE,
                "a reader loaded the data of write ({}, {}) with version {version}, but that save returned {returned:?}",
                write / 4,
                write % 4
            );
        }
    }
    Ok(Pass::Passed)
}

const CROSSING: &str = "rotates that cross (a to b while b to a, from several tasks and store objects) all finish, and each record ends up live under exactly one of its two ids with its data";

/// Rotates that cross: for two records, eight tasks (spread over the store
/// objects) rotate each from its id to a free id and back at once, a to b
/// beside b to a, as a login racing another login of the same visitor may.
/// Every call answers (true, false or IdCollision) within ten seconds, so
/// a store that locks the two ids in argument order (and deadlocks two
/// crossing rotates) fails; afterwards each record is live under exactly
/// one of its ids, data unchanged.
pub async fn crossing_rotates_all_finish_and_keep_each_record_once<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "crossing_rotates_all_finish_and_keep_each_record_once").await?;
    let objects = if harness.capabilities().shared { 2 } else { 1 };
    let mut stores = Vec::new();
    for _ in 0..objects {
        stores.push(Arc::new(env.open().await?));
    }
    for round in 0..6_i64 {
        let mut pairs = Vec::new();
        for record in 0..2_i64 {
            let r = env.record(data_of(&[("round", round), ("record", record)]), 60_000);
            stores[0].create(&r).await.map_err(env.op("create"))?;
            pairs.push((stored(&r, 1), SessionId::random()));
        }
        let mut jobs: Vec<Job<bool>> = Vec::new();
        for k in 0..8_usize {
            let (record, other) = &pairs[k % 2];
            let (from, to) = if k % 4 < 2 {
                (record.id, *other)
            } else {
                (*other, record.id)
            };
            let store = Arc::clone(&stores[k % stores.len()]);
            jobs.push(Box::pin(async move { store.rotate(&from, &to).await }));
        }
        let raced = tokio::time::timeout(
            Duration::from_secs(10),
            start_together(&env, CROSSING, "a crossing rotate", jobs),
        )
        .await
        .map_err(|_| {
            env.fail(
                CROSSING,
                format!("round {round}: crossing rotates had not all answered after 10 s (a deadlock?)"),
            )
        })??;
        for result in raced {
            match result {
                Ok(_) | Err(Error::IdCollision { .. }) => {}
                Err(e) => return Err(env.op("a crossing rotate")(e)),
            }
        }
        for (record, other) in &pairs {
            let at_id = stores[0].load(&record.id).await.map_err(env.op("load"))?;
            let at_other = stores[0].load(other).await.map_err(env.op("load"))?;
            let holds = |r: &Option<Record>| r.as_ref().is_some_and(|r| r.data == record.data);
            ensure!(
                env,
                holds(&at_id) != holds(&at_other) && (at_id.is_none() || at_other.is_none()),
                CROSSING,
                "round {round}: after crossing rotates the record is {} under its first id and {} under the other",
                describe(at_id.as_ref()),
                describe(at_other.as_ref())
            );
        }
    }
    Ok(Pass::Passed)
}
