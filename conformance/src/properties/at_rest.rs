//! Secrets at rest: hashed ids, sealed bodies bound to their id, key
//! rotation. Only for stores declaring [`Capabilities::at_rest`](crate::Capabilities::at_rest).

use super::*;
use session_store_core::SessionData;
use session_store_core::seal::KeyRing;

use crate::fixtures::at_rest_key;

const HIDDEN: &str = "with secrets at rest, no listing and no stored byte holds a cookie value, a data key or value, or the owner, and a listed handle still loads and ends its session";
const BOUND: &str = "with secrets at rest, a body copied under another id fails to decode (Error::Decode naming that id) and the original still loads";
const KEYS: &str = "with secrets at rest, every key of the ring opens, a record sealed under a retired or wrong key is Error::Decode for that record only, and a rewrite seals it under the newest key";

fn at_rest_skip<H: Harness>(harness: &H, also: &[(&str, bool)]) -> Option<Verdict> {
    let caps = harness.capabilities();
    if !caps.at_rest {
        return Some(skipped("the harness does not declare the `at_rest` capability"));
    }
    also.iter()
        .find(|(_, has)| !has)
        .map(|(name, _)| skipped(&format!("the harness does not declare the `{name}` capability")))
}

/// Whether `needle` occurs in `haystack`.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn marked_data(marker: &str) -> SessionData {
    let mut data = SessionData::new();
    data.insert_raw(format!("key-{marker}"), format!("\"value-{marker}\""));
    data
}

/// With secrets at rest, the stored bytes of a record (read through raw
/// access) hold neither the cookie value (its text or its 16 bytes), nor
/// a data key or value, nor the owner; `ids` and `owner_sessions` answer
/// handles, not the cookie value; and the handle still loads the record
/// (`load_listed`) and ends it (`delete_listed`).
pub async fn at_rest_no_listing_or_stored_byte_holds_a_cookie_value_or_a_data_value<H: Harness>(
    harness: &H,
) -> Verdict {
    let caps = harness.capabilities();
    if let Some(skip) = at_rest_skip(harness, &[("raw_access", caps.raw_access)]) {
        return skip;
    }
    let env = Env::new(
        harness,
        "at_rest_no_listing_or_stored_byte_holds_a_cookie_value_or_a_data_value",
    )
    .await?;
    let store = env.open().await?;
    let mut record = env.record(marked_data("7f3a9c51"), 60_000);
    record.owner = Some("owner-c0ffee42".to_owned());
    store.create(&record).await.map_err(env.op("create"))?;
    let expected = stored(&record, 1);
    expect_loaded(&env, &store, &record.id, Some(&expected), HIDDEN, "after create").await?;

    let raw = env
        .h
        .read_raw(&env.ns, &record.id)
        .await
        .map_err(env.op("harness.read_raw"))?
        .ok_or_else(|| env.fail(HIDDEN, "harness.read_raw found nothing for a live record"))?;
    let text = record.id.to_string();
    for (what, needle) in [
        ("the cookie value (its text)", text.as_bytes()),
        ("the cookie value (its 16 bytes)", &record.id.to_bytes()[..]),
        ("a data key", b"key-7f3a9c51"),
        ("a data value", b"value-7f3a9c51"),
        ("the owner", b"owner-c0ffee42"),
    ] {
        ensure!(
            env,
            !holds(&raw, needle),
            HIDDEN,
            "the stored bytes of a record hold {what}"
        );
    }

    let listed = store.ids().await.map_err(env.op("ids"))?;
    ensure!(
        env,
        !listed.contains(&ListingHandle::from_stored(record.id)),
        HIDDEN,
        "ids() answers the cookie value itself, not a handle"
    );
    let handle = store.listing_handle(&record.id);
    ensure!(
        env,
        listed == [handle],
        HIDDEN,
        "ids() answered {} entries, not the one handle listing_handle(id) names",
        listed.len()
    );
    if caps.owner_index {
        let owned = store
            .owner_sessions("owner-c0ffee42")
            .await
            .map_err(env.op("owner_sessions"))?;
        ensure!(
            env,
            owned == [handle],
            HIDDEN,
            "owner_sessions answered {} entries{}, not the one handle",
            owned.len(),
            if owned.contains(&ListingHandle::from_stored(record.id)) {
                ", one of them the cookie value"
            } else {
                ""
            }
        );
    }
    ensure!(
        env,
        store
            .load(&handle.stored())
            .await
            .map_err(env.op("load of a handle"))?
            .is_none(),
        HIDDEN,
        "load of a listed handle found the session: a handle works as a cookie value"
    );
    let shown = store.load_listed(&handle).await.map_err(env.op("load_listed"))?;
    ensure!(
        env,
        shown.as_ref().map(|r| (&r.data, r.owner.as_deref())) == Some((&record.data, Some("owner-c0ffee42"))),
        HIDDEN,
        "load_listed of the handle returned {}, not the record's data and owner",
        describe(shown.as_ref())
    );
    store.delete_listed(&handle).await.map_err(env.op("delete_listed"))?;
    expect_loaded(
        &env,
        &store,
        &record.id,
        None,
        HIDDEN,
        "after delete_listed of its handle",
    )
    .await?;
    Ok(Pass::Passed)
}

/// With secrets at rest, a record's stored bytes copied under another
/// record's id (raw access) make that id fail to decode, naming it, and
/// the original still loads: the body is bound to its id.
pub async fn at_rest_a_body_moved_to_another_id_fails_to_decode_for_that_id_only<H: Harness>(harness: &H) -> Verdict {
    let caps = harness.capabilities();
    if let Some(skip) = at_rest_skip(harness, &[("raw_access", caps.raw_access)]) {
        return skip;
    }
    let env = Env::new(
        harness,
        "at_rest_a_body_moved_to_another_id_fails_to_decode_for_that_id_only",
    )
    .await?;
    let store = env.open().await?;
    let source = env.record(marked_data("source"), 60_000);
    let target = env.record(marked_data("target"), 60_000);
    store.create(&source).await.map_err(env.op("create"))?;
    store.create(&target).await.map_err(env.op("create"))?;
    let raw = env
        .h
        .read_raw(&env.ns, &source.id)
        .await
        .map_err(env.op("harness.read_raw"))?
        .ok_or_else(|| env.fail(BOUND, "harness.read_raw found nothing for a live record"))?;
    env.h
        .write_raw(&env.ns, &target.id, &raw)
        .await
        .map_err(env.op("harness.write_raw"))?;
    match store.load(&target.id).await {
        Err(Error::Decode { id, .. }) if id == target.id.fingerprint() => {}
        Ok(Some(r)) if r.data == source.data => {
            return Err(env.fail(
                BOUND,
                "the body copied under another id opened there, with the source's data",
            ));
        }
        other => {
            return Err(env.fail(
                BOUND,
                format!(
                    "load of an id holding another record's body returned {}, expected Error::Decode naming it",
                    match other {
                        Ok(r) => describe(r.as_ref()),
                        Err(e) => chain(&e),
                    }
                ),
            ));
        }
    }
    expect_loaded(
        &env,
        &store,
        &source.id,
        Some(&stored(&source, 1)),
        BOUND,
        "the source, after the copy",
    )
    .await?;
    Ok(Pass::Passed)
}

/// With secrets at rest (and a durable store, reopened under each ring):
/// a record sealed under key 1 still opens once key 2 seals new writes;
/// with key 1 retired it is [`Error::Decode`] naming it while the record
/// under key 2 loads and `count` is exact; a save rewrites it under key
/// 2; and a ring whose key 2 is the wrong key opens nothing.
pub async fn at_rest_a_record_under_a_retired_or_wrong_key_fails_to_decode_for_that_record_only<H: Harness>(
    harness: &H,
) -> Verdict {
    let caps = harness.capabilities();
    if let Some(skip) = at_rest_skip(harness, &[("durable", caps.durable)]) {
        return skip;
    }
    let env = Env::new(
        harness,
        "at_rest_a_record_under_a_retired_or_wrong_key_fails_to_decode_for_that_record_only",
    )
    .await?;
    let ring = |keys: &[u8], retire: &[u8]| -> KeyRing {
        let mut ring = KeyRing::new(keys[0], at_rest_key(keys[0]));
        for &k in &keys[1..] {
            ring.add(k, at_rest_key(k)).expect("distinct key ids");
        }
        for &k in retire {
            ring.retire(k).expect("a key of the ring");
        }
        ring
    };
    let open = async |keys: KeyRing| {
        env.h
            .open(&env.ns, &env.config.clone().at_rest_keys(keys))
            .await
            .map_err(|e| env.fail(crate::env::HEALTHY, format!("harness.open failed: {}", chain(&e))))
    };
    let decode_error =
        |store_load: session_store_core::Result<Option<Record>>, id: &SessionId, when: &str| match store_load {
            Err(Error::Decode { id: named, .. }) if named == id.fingerprint() => Ok(()),
            Ok(r) => Err(env.fail(
                KEYS,
                format!(
                    "{when}: load returned {}, expected Error::Decode naming it",
                    describe(r.as_ref())
                ),
            )),
            Err(e) => Err(env.fail(
                KEYS,
                format!("{when}: load returned {}, expected Error::Decode naming it", chain(&e)),
            )),
        };

    let old = env.record(marked_data("under-key-1"), 60_000);
    let store = open(ring(&[1], &[])).await?;
    store.create(&old).await.map_err(env.op("create"))?;
    drop(store);

    let new = env.record(marked_data("under-key-2"), 60_000);
    let store = open(ring(&[1, 2], &[])).await?;
    store.create(&new).await.map_err(env.op("create"))?;
    expect_loaded(
        &env,
        &store,
        &old.id,
        Some(&stored(&old, 1)),
        KEYS,
        "key 2 added: the record under key 1",
    )
    .await?;
    drop(store);

    let store = open(ring(&[1, 2], &[1])).await?;
    decode_error(
        store.load(&old.id).await,
        &old.id,
        "key 1 retired: the record sealed under it",
    )?;
    expect_loaded(
        &env,
        &store,
        &new.id,
        Some(&stored(&new, 1)),
        KEYS,
        "key 1 retired: the record under key 2",
    )
    .await?;
    let count = store.count().await.map_err(env.op("count"))?;
    ensure!(
        env,
        count == 2,
        KEYS,
        "count with one record under a retired key answered {count}, not 2"
    );
    let mut rewritten = old.clone();
    rewritten.data = marked_data("rewritten");
    let version = store
        .save(&rewritten)
        .await
        .map_err(env.op("save over a record under a retired key"))?;
    expect_loaded(
        &env,
        &store,
        &old.id,
        Some(&stored(&rewritten, version)),
        KEYS,
        "rewritten under key 2",
    )
    .await?;
    drop(store);

    let mut wrong = KeyRing::new(2, at_rest_key(3));
    wrong.add(4, at_rest_key(4)).expect("distinct key ids");
    let store = open(wrong).await?;
    decode_error(store.load(&new.id).await, &new.id, "a ring whose key 2 is another key")?;
    Ok(Pass::Passed)
}
