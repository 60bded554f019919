//! Data: exact round-trips, large values, delete, corrupt bytes and the size limit.

use super::*;
use session_store_core::SessionData;

// The strategies and awkward cases are shared with store authors' own tests.
use crate::fixtures::{awkward_data as special_data, session_data as arbitrary_data};

fn samples<S: Strategy>(strategy: &S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .filter_map(|_| strategy.new_tree(&mut runner).ok().map(|t| t.current()))
        .collect()
}

/// Data round-trips exactly: any keys (empty, unicode), nested JSON values,
/// the full `i64`/`u64`/`i128`/`u128` ranges through typed insert and get,
/// and the empty map; through create and through save.
pub async fn data_round_trips_exactly<H: Harness>(harness: &H) -> Verdict {
    let mut cases = special_data();
    let random = samples(&arbitrary_data(), 24);
    cases.extend(random.into_iter().map(|d| ("arbitrary data", d)));
    let env = Env::new(harness, "data_round_trips_exactly").await?;
    let store = env.open().await?;
    let mut written = Vec::new();
    for (what, data) in &cases {
        let record = env.record(data.clone(), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let expected = stored(&record, 1);
        expect_loaded(
            &env,
            &store,
            &record.id,
            Some(&expected),
            ROUND_TRIP,
            &format!("after creating {what}"),
        )
        .await?;
        written.push(expected);
    }
    // Overwrite each record with the next one's data through save.
    for i in 0..written.len() {
        let mut next = written[i].clone();
        next.data = written[(i + 1) % written.len()].data.clone();
        let version = store.save(&next).await.map_err(env.op("save"))?;
        ensure!(
            env,
            version == 2,
            VERSIONS,
            "save over a version-1 record returned version {version}"
        );
        let expected = stored(&next, 2);
        expect_loaded(
            &env,
            &store,
            &next.id,
            Some(&expected),
            ROUND_TRIP,
            "after overwriting with save",
        )
        .await?;
        written[i] = expected;
    }
    // Typed reads of the integer extremes.
    let ints = &written[written.len() - 1];
    let ints = store.load(&ints.id).await.map_err(env.op("load"))?;
    let ints = ints.ok_or_else(|| env.fail(ROUND_TRIP, "a live record vanished"))?;
    let typed = (
        ints.data.get::<u128>("u128"),
        ints.data.get::<i128>("i128"),
        ints.data.get::<i128>("i128max"),
        ints.data.get::<u64>("u64"),
        ints.data.get::<i64>("i64min"),
        ints.data.get::<i64>("i64max"),
    );
    ensure!(
        env,
        matches!(
            typed,
            (
                Ok(Some(u128::MAX)),
                Ok(Some(i128::MIN)),
                Ok(Some(i128::MAX)),
                Ok(Some(u64::MAX)),
                Ok(Some(i64::MIN)),
                Ok(Some(i64::MAX))
            )
        ),
        ROUND_TRIP,
        "the integer extremes read back as {typed:?}"
    );
    Ok(Pass::Passed)
}

/// A value of about 3 MiB, and a record of a thousand keys, round-trip
/// exactly through create and save.
pub async fn values_of_several_mebibytes_round_trip<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "values_of_several_mebibytes_round_trip").await?;
    let store = env.open().await?;
    let big = data_of_size("big", 3 * 1024 * 1024, 1);
    let record = env.record(big, 60_000);
    store.create(&record).await.map_err(env.op("create of a 3 MiB value"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&record, 1)),
        ROUND_TRIP,
        "after creating a 3 MiB value",
    )
    .await?;
    let mut many = data_of_size("big", 1024 * 1024, 2);
    for i in 0..1_000 {
        let _ = many.insert(format!("key-{i}"), &format!("value {i} ✓"));
    }
    let mut next = record.clone();
    next.data = many;
    let v = store.save(&next).await.map_err(env.op("save of 1 MiB and 1000 keys"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&next, v)),
        ROUND_TRIP,
        "after saving 1 MiB and 1000 keys",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Delete removes a record; deleting an absent or already deleted id is
/// not an error.
pub async fn delete_removes_and_deleting_an_absent_id_is_not_an_error<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "delete_removes_and_deleting_an_absent_id_is_not_an_error").await?;
    let store = env.open().await?;
    let keep = env.record(data_of(&[("keep", 1)]), 60_000);
    let gone = env.record(data_of(&[("gone", 1)]), 60_000);
    store.create(&keep).await.map_err(env.op("create"))?;
    store.create(&gone).await.map_err(env.op("create"))?;
    store.delete(&gone.id).await.map_err(env.op("delete"))?;
    expect_loaded(&env, &store, &gone.id, None, DELETE, "after delete").await?;
    expect_loaded(
        &env,
        &store,
        &keep.id,
        Some(&stored(&keep, 1)),
        DELETE,
        "another record after delete",
    )
    .await?;
    store
        .delete(&gone.id)
        .await
        .map_err(|e| env.fail(DELETE, format!("deleting a deleted id failed: {}", chain(&e))))?;
    store
        .delete(&SessionId::random())
        .await
        .map_err(|e| env.fail(DELETE, format!("deleting an id never stored failed: {}", chain(&e))))?;
    // A deleted id can be created again, with version 1.
    store.create(&gone).await.map_err(env.op("create after delete"))?;
    expect_loaded(
        &env,
        &store,
        &gone.id,
        Some(&stored(&gone, 1)),
        VERSIONS,
        "create after delete",
    )
    .await?;
    Ok(Pass::Passed)
}

/// Raw access: garbage, truncated bytes, an unknown format byte and empty
/// bytes each give `Error::Decode` naming that id's fingerprint on load; other records
/// still load; count, ids and purge_expired do not panic.
pub async fn corrupt_bytes_give_a_decode_error_for_that_record_only<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().raw_access {
        return skipped("the harness does not declare the `raw_access` capability");
    }
    let env = Env::new(harness, "corrupt_bytes_give_a_decode_error_for_that_record_only").await?;
    let store = Arc::new(env.open().await?);
    let healthy = env.record(data_of(&[("healthy", 1)]), 60_000);
    store.create(&healthy).await.map_err(env.op("create"))?;
    let mut corrupted = Vec::new();
    for (i, how) in [
        "garbage bytes",
        "truncated bytes",
        "an unknown format byte",
        "empty bytes",
    ]
    .into_iter()
    .enumerate()
    {
        let record = env.record(data_of_size("victim", 200, i as u64), 60_000);
        store.create(&record).await.map_err(env.op("create"))?;
        let raw = env
            .h
            .read_raw(&env.ns, &record.id)
            .await
            .map_err(env.op("harness.read_raw"))?
            .ok_or_else(|| env.fail(DECODE, "harness.read_raw returned None for a live record"))?;
        let bytes = match i {
            0 => crate::env::pseudo_random_text(raw.len(), 77).into_bytes(),
            1 => raw[..raw.len() / 2].to_vec(),
            2 => {
                let mut b = raw.clone();
                b[0] = 0xEE;
                b
            }
            _ => Vec::new(),
        };
        env.h
            .write_raw(&env.ns, &record.id, &bytes)
            .await
            .map_err(env.op("harness.write_raw"))?;
        corrupted.push((record, how));
    }
    for (record, how) in &corrupted {
        match store.load(&record.id).await {
            Err(Error::Decode { id, .. }) if id == record.id.fingerprint() => {}
            Err(Error::Decode { id, .. }) => {
                return Err(env.fail(
                    DECODE,
                    format!(
                        "load of a record holding {how} gave a decode error naming {id}, not {}",
                        record.id.fingerprint()
                    ),
                ));
            }
            other => {
                return Err(env.fail(
                    DECODE,
                    format!("load of a record holding {how} returned {other:?}, expected Error::Decode naming it"),
                ));
            }
        }
    }
    expect_loaded(
        &env,
        &*store,
        &healthy.id,
        Some(&stored(&healthy, 1)),
        DECODE,
        "a healthy record beside corrupt ones",
    )
    .await?;
    let s = store.clone();
    let listing = tokio::spawn(async move {
        let _ = s.count().await;
        let _ = s.ids().await;
        let _ = s.purge_expired().await;
    });
    listing.await.map_err(|e| {
        env.fail(
            DECODE,
            format!("count, ids or purge_expired panicked over corrupt records: {e}"),
        )
    })?;
    expect_loaded(
        &env,
        &*store,
        &healthy.id,
        Some(&stored(&healthy, 1)),
        DECODE,
        "a healthy record after count/ids/purge",
    )
    .await?;
    Ok(Pass::Passed)
}

/// With a 1 KiB limit: data of exactly 1024 bytes is accepted, 1025 bytes is
/// refused with `TooLarge` by create, save and save_if_version, and nothing
/// is written (the old record stays as it was).
pub async fn oversized_records_are_refused_and_nothing_is_written<H: Harness>(harness: &H) -> Verdict {
    const LIMIT: usize = 1024;
    let env = Env::with_limit(harness, "oversized_records_are_refused_and_nothing_is_written", LIMIT).await?;
    let store = env.open().await?;
    let fits = data_of_size("k", LIMIT, 1);
    let over = data_of_size("k", LIMIT + 1, 2);
    debug_assert_eq!((fits.byte_size(), over.byte_size()), (LIMIT, LIMIT + 1));
    let too_large = |what: &str, r: Result<String, Error>| -> Result<(), Failure> {
        match r {
            Err(Error::TooLarge { size, limit }) if size == LIMIT + 1 && limit == LIMIT => Ok(()),
            Err(Error::TooLarge { size, limit }) => Err(env.fail(
                TOO_LARGE,
                format!(
                    "{what}: TooLarge reported size {size} and limit {limit}, expected {} and {LIMIT}",
                    LIMIT + 1
                ),
            )),
            other => Err(env.fail(
                TOO_LARGE,
                format!(
                    "{what} with {} bytes of data over a {LIMIT}-byte limit returned {}",
                    LIMIT + 1,
                    other.unwrap_or_else(|e| format!("Err({})", chain(&e)))
                ),
            )),
        }
    };
    let big = env.record(over.clone(), 60_000);
    too_large("create", store.create(&big).await.map(|v| format!("Ok({v})")))?;
    expect_loaded(&env, &store, &big.id, None, TOO_LARGE, "after a refused create").await?;
    too_large("save of a new id", store.save(&big).await.map(|v| format!("Ok({v})")))?;
    expect_loaded(
        &env,
        &store,
        &big.id,
        None,
        TOO_LARGE,
        "after a refused save of a new id",
    )
    .await?;
    let record = env.record(fits.clone(), 60_000);
    store.create(&record).await.map_err(|e| {
        env.fail(
            TOO_LARGE,
            format!("create of data exactly at the limit failed: {}", chain(&e)),
        )
    })?;
    let expected = stored(&record, 1);
    let mut grown = expected.clone();
    grown.data = over;
    too_large("save", store.save(&grown).await.map(|v| format!("Ok({v})")))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        TOO_LARGE,
        "after a refused save",
    )
    .await?;
    too_large(
        "save_if_version",
        store.save_if_version(&grown).await.map(|v| format!("Ok({v})")),
    )?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&expected),
        TOO_LARGE,
        "after a refused save_if_version",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 1,
        TOO_LARGE,
        "count is {count} after refused writes, expected 1"
    );
    Ok(Pass::Passed)
}

/// Keys of 255, 256 and 300 bytes, 500 bytes of multi-byte unicode, 20 KiB
/// and 64 KiB round-trip exactly, through create and through save, beside
/// short keys.
pub async fn keys_of_hundreds_of_bytes_and_tens_of_kibibytes_round_trip<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "keys_of_hundreds_of_bytes_and_tens_of_kibibytes_round_trip").await?;
    let store = env.open().await?;
    let long_keys = [
        crate::env::pseudo_random_text(255, 1),
        crate::env::pseudo_random_text(256, 2),
        crate::env::pseudo_random_text(300, 3),
        "ключ🔑".repeat(50),
        crate::env::pseudo_random_text(20 * 1024, 4),
        crate::env::pseudo_random_text(64 * 1024, 5),
    ];
    let mut data = SessionData::new();
    let _ = data.insert("short", &1);
    for (i, key) in long_keys.iter().enumerate() {
        let _ = data.insert(key.clone(), &format!("value {i}"));
    }
    let record = env.record(data, 60_000);
    store.create(&record).await.map_err(env.op("create with long keys"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&record, 1)),
        LONG_KEYS,
        "after creating keys of 255 B to 64 KiB",
    )
    .await?;
    let mut next = record.clone();
    next.data = SessionData::new();
    for (i, key) in long_keys.iter().rev().enumerate() {
        let _ = next.data.insert(format!("{key}{i}"), &i);
    }
    let v = store.save(&next).await.map_err(env.op("save with long keys"))?;
    expect_loaded(
        &env,
        &store,
        &next.id,
        Some(&stored(&next, v)),
        LONG_KEYS,
        "after saving keys of 256 B to 64 KiB",
    )
    .await?;
    Ok(Pass::Passed)
}

const SHAPES: &str = "data of any shape round-trips exactly: keys with control characters, newlines and NUL, the empty key, the empty string, thousands of keys, values nested hundreds deep";

/// Data a line-based or per-key format would get wrong: keys holding a
/// newline, a tab, a NUL, other control characters, quotes and the empty
/// key; the empty string and JSON `null` as values; a value nested 300
/// arrays deep; and 5,000 keys in one session. Each round-trips exactly
/// through create and through save.
pub async fn data_of_any_shape_round_trips<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "data_of_any_shape_round_trips").await?;
    let store = env.open().await?;
    let mut data = SessionData::new();
    for (i, key) in [
        "line\nbreak",
        "tab\there",
        "nul\0inside",
        "\u{1}\u{7f}\u{1b}[0m",
        "quote\"'`",
        "",
        " ",
        "\r\n",
    ]
    .iter()
    .enumerate()
    {
        data.insert_raw((*key).to_owned(), format!("{i}"));
    }
    data.insert_raw("empty string".to_owned(), "\"\"".to_owned());
    data.insert_raw("null".to_owned(), "null".to_owned());
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    data.insert_raw("deep".to_owned(), deep);
    let record = env.record(data, 60_000);
    store.create(&record).await.map_err(env.op("create"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        Some(&stored(&record, 1)),
        SHAPES,
        "after create",
    )
    .await?;

    let mut many = record.clone();
    many.data = SessionData::new();
    for i in 0..5_000 {
        many.data.insert_raw(format!("k{i}"), format!("{i}"));
    }
    let v = store.save(&many).await.map_err(env.op("save of 5,000 keys"))?;
    expect_loaded(
        &env,
        &store,
        &many.id,
        Some(&stored(&many, v)),
        SHAPES,
        "after saving 5,000 keys",
    )
    .await?;
    Ok(Pass::Passed)
}

/// With the default limit (8 MiB of [`SessionData::byte_size`]): data of
/// exactly the limit round-trips through create, one byte less through
/// save, and one byte over is refused by create and save with `TooLarge`
/// naming both sizes, writing nothing.
pub async fn data_at_the_configured_limit_round_trips_and_one_byte_over_is_refused<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(
        harness,
        "data_at_the_configured_limit_round_trips_and_one_byte_over_is_refused",
    )
    .await?;
    let limit = env.config.max_record_bytes;
    let store = env.open().await?;
    let exact = env.record(data_of_size("big", limit, 11), 60_000);
    debug_assert_eq!(exact.data.byte_size(), limit);
    store.create(&exact).await.map_err(|e| {
        env.fail(
            AT_LIMIT,
            format!("create of data of exactly the {limit}-byte limit failed: {}", chain(&e)),
        )
    })?;
    expect_loaded(
        &env,
        &store,
        &exact.id,
        Some(&stored(&exact, 1)),
        AT_LIMIT,
        "data of exactly the limit",
    )
    .await?;
    let mut under = exact.clone();
    under.data = data_of_size("big", limit - 1, 12);
    let v = store.save(&under).await.map_err(|e| {
        env.fail(
            AT_LIMIT,
            format!("save of data one byte under the limit failed: {}", chain(&e)),
        )
    })?;
    expect_loaded(
        &env,
        &store,
        &exact.id,
        Some(&stored(&under, v)),
        AT_LIMIT,
        "data one byte under the limit",
    )
    .await?;
    let over = data_of_size("big", limit + 1, 13);
    let mut grown = stored(&under, v);
    grown.data = over.clone();
    let fresh = env.record(over, 60_000);
    for (what, result) in [
        ("save", store.save(&grown).await.map(|_| ())),
        ("create", store.create(&fresh).await.map(|_| ())),
    ] {
        match result {
            Err(Error::TooLarge { size, limit: l }) if size == limit + 1 && l == limit => {}
            other => {
                return Err(env.fail(
                    AT_LIMIT,
                    format!(
                        "{what} of data one byte over the {limit}-byte limit returned {}",
                        match other {
                            Ok(()) => "Ok".to_owned(),
                            Err(e) => chain(&e),
                        }
                    ),
                ));
            }
        }
    }
    expect_loaded(
        &env,
        &store,
        &exact.id,
        Some(&stored(&under, v)),
        AT_LIMIT,
        "after a refused save one byte over the limit",
    )
    .await?;
    expect_loaded(&env, &store, &fresh.id, None, AT_LIMIT, "after a refused create").await?;
    Ok(Pass::Passed)
}

/// Raw access: beside four live and three expired healthy records, one live
/// record holds garbage bytes and (where the harness can) one is broken in a
/// backend-specific way ([`Harness::write_malformed`]). Then `count` and
/// `ids` succeed and are exact for the healthy records (a corrupt record
/// may or may not be counted and listed, but `count` is always the length
/// of `ids`: an operator's `count` and `list` agree), `purge_expired` removes and counts
/// exactly the three expired ones, and the corrupt records still give
/// `Error::Decode` afterwards.
pub async fn count_ids_and_purge_stay_exact_beside_corrupt_records<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().raw_access {
        return skipped("the harness does not declare the `raw_access` capability");
    }
    let env = Env::new(harness, "count_ids_and_purge_stay_exact_beside_corrupt_records").await?;
    let store = env.open().await?;
    let mut live = Vec::new();
    for i in 0..4_i64 {
        let r = env.record(data_of(&[("live", i)]), 60_000);
        store.create(&r).await.map_err(env.op("create"))?;
        live.push(stored(&r, 1));
    }
    let mut expired = Vec::new();
    for i in 0..3_i64 {
        let r = env.record(data_of(&[("expired", i)]), 1_000);
        store.create(&r).await.map_err(env.op("create"))?;
        expired.push(r.id);
    }
    let garbage = env.record(data_of_size("victim", 200, 5), 60_000);
    store.create(&garbage).await.map_err(env.op("create"))?;
    let raw = env
        .h
        .read_raw(&env.ns, &garbage.id)
        .await
        .map_err(env.op("harness.read_raw"))?
        .ok_or_else(|| env.fail(DECODE, "harness.read_raw returned None for a live record"))?;
    env.h
        .write_raw(
            &env.ns,
            &garbage.id,
            crate::env::pseudo_random_text(raw.len(), 78).as_bytes(),
        )
        .await
        .map_err(env.op("harness.write_raw"))?;
    let mut corrupt = vec![garbage.id];
    let mut allowance = 1_u64;
    let malformed = env.record(data_of(&[("malformed", 1)]), 60_000);
    store.create(&malformed).await.map_err(env.op("create"))?;
    match env
        .h
        .write_malformed(&env.ns, &malformed.id)
        .await
        .map_err(env.op("harness.write_malformed"))?
    {
        Some(extra) => {
            corrupt.push(malformed.id);
            allowance += 1 + extra;
        }
        None => live.push(stored(&malformed, 1)),
    }
    env.advance(1_000);
    let healthy: BTreeSet<ListingHandle> = listed(&store, live.iter().map(|r| r.id));
    let corrupt_set: BTreeSet<ListingHandle> = listed(&store, corrupt.iter().copied());
    let n = healthy.len() as u64;
    let count = store.count().await.map_err(|e| {
        env.fail(
            CORRUPT_LISTING,
            format!("count beside corrupt records failed: {}", chain(&e)),
        )
    })?;
    ensure!(
        env,
        (n..=n + allowance).contains(&count),
        CORRUPT_LISTING,
        "count beside {} corrupt entries is {count}, expected the {n} healthy live records (plus at most the corrupt entries)",
        allowance
    );
    let ids = store.ids().await.map_err(|e| {
        env.fail(
            CORRUPT_LISTING,
            format!("ids beside corrupt records failed: {}", chain(&e)),
        )
    })?;
    let set: BTreeSet<ListingHandle> = ids.iter().copied().collect();
    let listed_healthy: BTreeSet<ListingHandle> = set.difference(&corrupt_set).copied().collect();
    ensure!(
        env,
        set.len() == ids.len() && listed_healthy == healthy,
        CORRUPT_LISTING,
        "ids beside corrupt records list {} ids ({} distinct), {} of the {n} healthy live ones, {} not healthy and live",
        ids.len(),
        set.len(),
        listed_healthy.intersection(&healthy).count(),
        listed_healthy.difference(&healthy).count()
    );
    ensure!(
        env,
        count == ids.len() as u64,
        CORRUPT_LISTING,
        "count beside {} corrupt entries is {count}, but ids lists {}: the two must agree",
        allowance,
        ids.len()
    );
    let purged = store.purge_expired().await.map_err(|e| {
        env.fail(
            CORRUPT_LISTING,
            format!("purge_expired beside corrupt records failed: {}", chain(&e)),
        )
    })?;
    ensure!(
        env,
        purged == expired.len() as u64,
        CORRUPT_LISTING,
        "purge beside corrupt records removed {purged}, expected exactly the {} expired healthy records",
        expired.len()
    );
    for id in &expired {
        expect_loaded(&env, &store, id, None, NO_REVIVAL, "an expired record after purge").await?;
    }
    for r in &live {
        expect_loaded(
            &env,
            &store,
            &r.id,
            Some(r),
            CORRUPT_LISTING,
            "a healthy record after purge",
        )
        .await?;
    }
    for id in &corrupt {
        match store.load(id).await {
            Err(Error::Decode { .. }) => {}
            other => {
                return Err(env.fail(
                    DECODE,
                    format!("load of a corrupt live record after purge returned {other:?}, expected Error::Decode"),
                ));
            }
        }
    }
    let again = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        again == count,
        CORRUPT_LISTING,
        "count after purging only expired healthy records changed from {count} to {again}"
    );
    Ok(Pass::Passed)
}
