//! Property tests over arbitrary bytes for what the Redis store decodes: a
//! record's hash fields (`d` body, `e` deadline, `v` version), values of the
//! wrong type under a record's key, and the keys a scan finds.
//!
//! The store's decoding is private (it runs on `HMGET` and `SCAN` replies),
//! so these tests write straight into the private test server
//! (`store-redis/scripts/with-redis`), as a bug, another client or an
//! operator could leave it. Every operation must give an error for that
//! record only, never panic, and leave the other records as they were.

mod common;

use std::time::Duration;

use common::{Raw, Target, random_prefix};
use proptest::prelude::*;
use session_store_core::{Clock, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp, raw::codec};
use session_store_redis::RedisStore;

const T0: i64 = 1_700_000_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn record(clock: &ManualClock, ttl_ms: u64, n: i64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).expect("serializes");
    let now = clock.now();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_millis(ttl_ms))
}

/// A store on a fresh prefix with two live records and one expired one.
struct Seeded {
    store: RedisStore,
    raw: Raw,
    clock: ManualClock,
    live: Vec<Record>,
    expired: Record,
}

async fn seeded(target: &Target) -> Seeded {
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = target.open(&random_prefix(), clock.shared()).await;
    let mut live = vec![record(&clock, 60_000, 1), record(&clock, 60_000, 2)];
    for r in &mut live {
        r.version = store.save(r).await.expect("saves");
    }
    let mut expired = record(&clock, 10, 3);
    expired.version = store.save(&expired).await.expect("saves");
    clock.advance(Duration::from_millis(20));
    Seeded {
        store,
        raw: target.raw().await,
        clock,
        live,
        expired,
    }
}

async fn good_records_intact(s: &Seeded) -> Result<(), TestCaseError> {
    for r in &s.live {
        let loaded = s.store.load(&r.id).await;
        prop_assert_eq!(
            loaded.as_ref().ok().and_then(Option::as_ref),
            Some(r),
            "{:?}",
            loaded.as_ref().err()
        );
    }
    Ok(())
}

/// The `d` field.
#[derive(Debug, Clone)]
enum Body {
    Missing,
    Bytes(Vec<u8>),
    Truncated(prop::sample::Index),
    Edited(Vec<(prop::sample::Index, u8)>),
    /// A full record (the file store's layout), not a body.
    FullRecord,
    Valid,
}

impl Body {
    /// Whether no reading of this field can be a record.
    fn never_decodes(&self) -> bool {
        matches!(self, Self::Missing | Self::Truncated(_) | Self::FullRecord)
    }

    fn bytes(&self, valid: &Record) -> Option<Vec<u8>> {
        let body = codec::encode_body(valid).expect("encodes");
        match self {
            Self::Missing => None,
            Self::Bytes(b) => Some(b.clone()),
            Self::Truncated(cut) => Some(body[..cut.index(body.len())].to_vec()),
            Self::Edited(edits) => {
                let mut b = body;
                for (i, x) in edits {
                    let i = i.index(b.len());
                    b[i] ^= *x;
                }
                Some(b)
            }
            Self::FullRecord => Some(codec::encode_record(valid).expect("encodes")),
            Self::Valid => Some(body),
        }
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => Just(Body::Missing),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut b| {
            b.insert(0, codec::BODY_V1);
            Body::Bytes(b)
        }),
        2 => any::<prop::sample::Index>().prop_map(Body::Truncated),
        2 => prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Body::Edited),
        1 => Just(Body::FullRecord),
        1 => Just(Body::Valid),
    ]
}

/// Text that a number parser might half-accept.
fn near_number() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        "",
        "-",
        "+1",
        "-0",
        " 1",
        "1 ",
        "1e3",
        "0x10",
        "inf",
        "-inf",
        "nan",
        "1.5",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
    ])
    .prop_map(|s| s.as_bytes().to_vec())
}

/// A field holding a decimal integer: mostly `sane`, else anything.
fn number_field(sane: i64) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(Some(sane.to_string().into_bytes())),
        1 => Just(None),
        1 => any::<i64>().prop_map(|n| Some(n.to_string().into_bytes())),
        1 => near_number().prop_map(Some),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Some),
    ]
}

/// What sits under the bad record's key.
#[derive(Debug, Clone)]
enum Planted {
    Hash {
        d: Body,
        e: Option<Vec<u8>>,
        v: Option<Vec<u8>>,
        /// A field the store never writes.
        extra: Option<(Vec<u8>, Vec<u8>)>,
    },
    String(Vec<u8>),
    List(Vec<u8>),
    Set(Vec<u8>),
}

fn planted() -> impl Strategy<Value = Planted> {
    let live_deadline = T0 + 3_600_000;
    prop_oneof![
        8 => (
            body(),
            number_field(live_deadline),
            number_field(5),
            prop::option::of((prop::collection::vec(any::<u8>(), 1..8), prop::collection::vec(any::<u8>(), 0..8))),
        )
            .prop_map(|(d, e, v, extra)| Planted::Hash { d, e, v, extra }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Planted::String),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Planted::List),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Planted::Set),
    ]
}

async fn plant(raw: &mut Raw, key: &str, planted: &Planted, valid: &Record) {
    let _: i64 = raw.query(redis::cmd("DEL").arg(key)).await.expect("DEL");
    match planted {
        Planted::Hash { d, e, v, extra } => {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(key);
            let mut fields = 0;
            for (name, value) in [("d", d.bytes(valid)), ("e", e.clone()), ("v", v.clone())] {
                if let Some(value) = value {
                    cmd.arg(name).arg(value);
                    fields += 1;
                }
            }
            if let Some((name, value)) = extra
                && !matches!(name.as_slice(), b"d" | b"e" | b"v")
            {
                cmd.arg(name.as_slice()).arg(value.as_slice());
                fields += 1;
            }
            if fields == 0 {
                // A hash needs a field; one the store never reads.
                cmd.arg("x").arg("");
            }
            let _: i64 = raw.query(&cmd).await.expect("HSET");
        }
        Planted::String(b) => {
            let _: () = raw
                .query(redis::cmd("SET").arg(key).arg(b.as_slice()))
                .await
                .expect("SET");
        }
        Planted::List(b) => {
            let _: i64 = raw
                .query(redis::cmd("RPUSH").arg(key).arg(b.as_slice()))
                .await
                .expect("RPUSH");
        }
        Planted::Set(b) => {
            let _: i64 = raw
                .query(redis::cmd("SADD").arg(key).arg(b.as_slice()))
                .await
                .expect("SADD");
        }
    }
    let _: i64 = raw
        .query(redis::cmd("PEXPIRE").arg(key).arg(600_000))
        .await
        .expect("PEXPIRE");
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_bad_value_spoils_only_its_own_record(planted in planted()) {
        let Some(target) = Target::single() else { return Ok(()) };
        runtime().block_on(async {
            let mut s = seeded(&target).await;
            let bad = record(&s.clock, 60_000, 4);
            let key = s.store.key(&bad.id);
            plant(&mut s.raw, &key, &planted, &bad).await;
            let now = s.clock.now().as_millis();
            let hash = matches!(planted, Planted::Hash { .. });

            let loaded = s.store.load(&bad.id).await;
            match &loaded {
                Ok(Some(r)) => prop_assert_eq!(r.id, bad.id),
                Ok(None) => {}
                // A hash holding garbage is a decode error; a value of
                // another type is the server's WRONGTYPE, an error either way.
                Err(e) => prop_assert!(!hash || e.is_decode(), "not a decode error: {e}"),
            }
            if let Planted::Hash { d, e: Some(e), v: Some(v), .. } = &planted {
                let sane = parse_i64(e).is_some_and(|e| e > now) && parse_i64(v).is_some_and(|v| v >= 0);
                if sane && d.never_decodes() {
                    prop_assert!(loaded.is_err(), "decoded {:?}", loaded);
                }
            }
            good_records_intact(&s).await?;

            let ids = s.store.ids().await.expect("ids skips what it cannot read").into_iter().map(|h| h.stored()).collect::<Vec<_>>();
            for r in &s.live {
                prop_assert!(ids.contains(&r.id));
            }
            prop_assert!(ids.iter().all(|id| *id == bad.id || s.live.iter().any(|r| r.id == *id)));
            prop_assert_eq!(s.store.count().await.expect("count"), ids.len() as u64);

            let touched = s.store.touch(&bad.id, s.clock.now() + Duration::from_secs(60)).await;
            prop_assert!(hash || !matches!(touched, Ok(true)), "touch: {:?}", touched);
            let purged = s.store.purge_expired().await.expect("purge carries on past a bad value");
            prop_assert!((1..=2).contains(&purged), "purged {purged}");
            prop_assert!(s.store.load(&s.expired.id).await.expect("loads").is_none());
            good_records_intact(&s).await?;

            // A save overwrites a hash whatever its fields held.
            let mut fresh = bad.clone();
            match s.store.save(&fresh).await {
                Ok(v) => {
                    fresh.version = v;
                    prop_assert!(v >= 1);
                    prop_assert_eq!(s.store.load(&bad.id).await.expect("loads"), Some(fresh));
                }
                Err(e) => prop_assert!(!hash, "save over a hash failed: {e}"),
            }
            s.store.delete(&bad.id).await.expect("deletes whatever is there");
            prop_assert!(s.store.load(&bad.id).await.expect("loads").is_none());
            good_records_intact(&s).await?;
            s.store.clear().await.expect("clears");
            Ok(())
        })?;
    }

    #[test]
    fn keys_of_other_shapes_are_never_sessions(
        bits in any::<u128>(),
        shape in 0..6u8,
        junk in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let Some(target) = Target::single() else { return Ok(()) };
        runtime().block_on(async {
            let mut s = seeded(&target).await;
            let prefix = s.store.key(&s.live[0].id);
            let prefix = prefix.as_bytes()[..prefix.len() - 24].to_vec();
            let id = SessionId::from_u128(bits).to_string().into_bytes();
            let key: Vec<u8> = match shape {
                // The id without braces, with junk after it, with an edited
                // character, with the prefix cut short, or any bytes.
                0 => [&prefix[..], &id[..]].concat(),
                1 => [&prefix[..], b"{", &id[..], b"}", &junk[..]].concat(),
                2 => {
                    let mut id = id.clone();
                    let at = usize::from(junk.first().copied().unwrap_or(0)) % id.len();
                    id[at] = junk.get(1).copied().unwrap_or(b'=');
                    [&prefix[..], b"{", &id[..], b"}"].concat()
                }
                3 => [&prefix[..prefix.len() - 1], b"{", &id[..], b"}"].concat(),
                4 => [&prefix[..], b"{", &junk[..], b"}"].concat(),
                _ => [&prefix[..], &junk[..]].concat(),
            };
            let parsed = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(std::str::from_utf8(&prefix).ok()?))
                .and_then(|k| k.strip_prefix('{')?.strip_suffix('}')?.parse::<SessionId>().ok());
            prop_assume!(parsed.is_none());
            // A live record's fields, so only the key's shape can exclude it.
            let body = codec::encode_body(&s.live[0]).expect("encodes");
            let _: i64 = s.raw
                .query(redis::cmd("HSET").arg(&key).arg("d").arg(body).arg("e").arg(T0 + 3_600_000).arg("v").arg(1))
                .await
                .expect("HSET");
            let _: i64 = s.raw.query(redis::cmd("PEXPIRE").arg(&key).arg(600_000)).await.expect("PEXPIRE");

            let mut ids = s.store.ids().await.expect("ids").into_iter().map(|h| h.stored()).collect::<Vec<_>>();
            ids.sort();
            let mut want: Vec<SessionId> = s.live.iter().map(|r| r.id).collect();
            want.sort();
            prop_assert_eq!(ids, want);
            prop_assert_eq!(s.store.count().await.expect("count"), 2);
            prop_assert_eq!(s.store.purge_expired().await.expect("purges"), 1);
            s.store.clear().await.expect("clears");
            prop_assert_eq!(s.store.count().await.expect("count"), 0);
            let exists: i64 = s.raw.query(redis::cmd("EXISTS").arg(&key)).await.expect("EXISTS");
            prop_assert_eq!(exists, 1, "a key of another shape was removed");
            let _: i64 = s.raw.query(redis::cmd("DEL").arg(&key)).await.expect("DEL");
            Ok(())
        })?;
    }
}

/// The case the property test found: a save over a live hash whose version
/// is no whole number the store writes wrote the record, then failed on the
/// version its script computed (`-5107078316807143424` from a stored
/// `-5107078316807143423`), and so did every later save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_over_a_garbage_version_restarts_at_one() {
    let Some(target) = Target::single() else { return };
    let mut s = seeded(&target).await;
    for v in [
        "-5107078316807143423",
        "-1",
        "99999999999999999999999",
        "inf",
        "nan",
        "1.5",
        "0x10",
        "x",
    ] {
        let mut r = record(&s.clock, 60_000, 5);
        let key = s.store.key(&r.id);
        let _: i64 = s
            .raw
            .query(
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("e")
                    .arg(T0 + 3_600_000)
                    .arg("v")
                    .arg(v),
            )
            .await
            .unwrap();
        assert!(s.store.load(&r.id).await.unwrap_err().is_decode(), "v={v}");
        r.version = s.store.save(&r).await.unwrap_or_else(|e| panic!("v={v}: {e}"));
        assert_eq!(r.version, 1, "v={v}");
        assert_eq!(s.store.load(&r.id).await.unwrap(), Some(r.clone()), "v={v}");
        assert_eq!(s.store.save(&r).await.unwrap(), 2, "v={v}");
    }
    // Whole numbers below 2^53 are bumped as before.
    let r = record(&s.clock, 60_000, 6);
    let key = s.store.key(&r.id);
    let _: i64 = s
        .raw
        .query(
            redis::cmd("HSET")
                .arg(&key)
                .arg("e")
                .arg(T0 + 3_600_000)
                .arg("v")
                .arg("9007199254740990"),
        )
        .await
        .unwrap();
    assert_eq!(s.store.save(&r).await.unwrap(), 9_007_199_254_740_991);
    good_records_intact(&s).await.unwrap();
    s.store.clear().await.unwrap();
}
