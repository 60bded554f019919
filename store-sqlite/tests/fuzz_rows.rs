//! Property tests over arbitrary values for what the SQLite store decodes
//! from a row: the data blob, the deadline and version columns, the id
//! column.
//!
//! Rows are written straight into the real table with rusqlite, as a bug, a
//! migration gone wrong or an operator with a shell could leave them:
//! arbitrary blobs, text, reals and integers in every column (SQLite keeps
//! any type in any column). Every operation must give a decode error for
//! that record only, never panic, and leave the other records as they were.

mod common;

use std::time::Duration;

use common::{Db, clock, raw, record};
use proptest::prelude::*;
use rusqlite::types::Value;
use session_store_core::{Clock, ManualClock, Record, SessionId, SessionStore, raw::codec};
use session_store_sqlite::{DEFAULT_TABLE, SqliteStore};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A store with two live records and one expired one, saved through it.
struct Seeded {
    store: SqliteStore,
    clock: ManualClock,
    live: Vec<Record>,
    expired: Record,
}

async fn seeded(db: &Db) -> Seeded {
    let clock = clock();
    let store = db.builder(&clock).open().expect("opens");
    let mut live = vec![record(clock.now(), 60_000, 1), record(clock.now(), 60_000, 2)];
    for r in &mut live {
        r.version = store.save(r).await.expect("saves");
    }
    let mut expired = record(clock.now(), 10, 3);
    expired.version = store.save(&expired).await.expect("saves");
    clock.advance(Duration::from_millis(20));
    Seeded {
        store,
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

/// What the data column holds.
#[derive(Debug, Clone)]
enum Data {
    Blob(Vec<u8>),
    /// A strict prefix of a valid body.
    Truncated(prop::sample::Index),
    /// A valid body with bytes changed.
    Edited(Vec<(prop::sample::Index, u8)>),
    /// A full record (the file store's layout), not a body.
    FullRecord,
    Text(String),
    Integer(i64),
    Real(f64),
}

impl Data {
    /// Whether no reading of this value can be a record.
    fn never_decodes(&self) -> bool {
        matches!(
            self,
            Self::Truncated(_) | Self::FullRecord | Self::Integer(_) | Self::Real(_)
        )
    }

    fn value(&self, valid: &Record) -> Value {
        let body = codec::encode_body(valid).expect("encodes");
        match self {
            Self::Blob(b) => Value::Blob(b.clone()),
            Self::Truncated(cut) => Value::Blob(body[..cut.index(body.len())].to_vec()),
            Self::Edited(edits) => {
                let mut b = body;
                for (i, x) in edits {
                    let i = i.index(b.len());
                    b[i] ^= *x;
                }
                Value::Blob(b)
            }
            Self::FullRecord => Value::Blob(codec::encode_record(valid).expect("encodes")),
            Self::Text(t) => Value::Text(t.clone()),
            Self::Integer(i) => Value::Integer(*i),
            Self::Real(r) => Value::Real(*r),
        }
    }
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Data::Blob),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|mut b| {
            b.insert(0, codec::BODY_V1);
            Data::Blob(b)
        }),
        2 => any::<prop::sample::Index>().prop_map(Data::Truncated),
        2 => prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Data::Edited),
        1 => Just(Data::FullRecord),
        1 => ".{0,40}".prop_map(Data::Text),
        1 => any::<i64>().prop_map(Data::Integer),
        1 => real().prop_map(Data::Real),
    ]
}

/// Any real SQLite can hold (it stores a NaN as NULL, which the NOT NULL
/// columns refuse).
fn real() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("not NaN", |r| !r.is_nan())
}

/// A value for the deadline or version column: mostly a sane integer, so
/// that the data column is reached, else anything.
fn column(sane: i64) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => Just(Value::Integer(sane)),
        1 => any::<i64>().prop_map(Value::Integer),
        1 => real().prop_map(Value::Real),
        1 => ".{0,24}".prop_map(Value::Text),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Blob),
    ]
}

fn insert(db: &Db, id: &Value, data: &Value, expires_at: &Value, version: &Value) {
    raw(&db.path)
        .execute(
            &format!("INSERT OR REPLACE INTO {DEFAULT_TABLE} (id, data, expires_at, version) VALUES (?1, ?2, ?3, ?4)"),
            rusqlite::params![id, data, expires_at, version],
        )
        .expect("writes the row");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_bad_row_spoils_only_its_own_record(
        data in data(),
        expires_at in column(1_700_000_000_000 + 3_600_000),
        version in column(5),
    ) {
        let db = Db::new();
        runtime().block_on(async {
            let s = seeded(&db).await;
            let bad = record(s.clock.now(), 60_000, 4);
            let bad_key = Value::Text(bad.id.to_string());
            let sane = matches!(expires_at, Value::Integer(e) if e > s.clock.now().as_millis())
                && matches!(version, Value::Integer(v) if v >= 0);
            insert(&db, &bad_key, &data.value(&bad), &expires_at, &version);

            let loaded = s.store.load(&bad.id).await;
            if let Err(e) = &loaded {
                prop_assert!(e.is_decode(), "not a decode error: {e}");
            }
            if sane && data.never_decodes() {
                prop_assert!(loaded.is_err(), "decoded {:?}", loaded);
            }
            good_records_intact(&s).await?;

            // count and ids read only the id and deadline columns: the bad
            // row may or may not count (SQLite orders any text or blob after
            // every number), the good ones always do.
            let count = s.store.count().await.expect("count");
            prop_assert!((2..=3).contains(&count), "count {count}");
            let ids = s.store.ids().await.expect("ids").into_iter().map(|h| h.stored()).collect::<Vec<_>>();
            for r in &s.live {
                prop_assert!(ids.contains(&r.id));
            }
            prop_assert!(ids.iter().all(|id| *id == bad.id || s.live.iter().any(|r| r.id == *id)));
            prop_assert_eq!(ids.len() as u64, count);

            // Every write of the bad record either replaces it or fails;
            // then it is a record again, or still the same decode error.
            let touched = s.store.touch(&bad.id, s.clock.now() + Duration::from_secs(60)).await;
            if let Err(e) = &touched {
                prop_assert!(e.is_decode(), "touch: {e}");
            }
            let purged = s.store.purge_expired().await.expect("purge");
            prop_assert!((1..=2).contains(&purged), "purged {purged}");
            prop_assert!(s.store.load(&s.expired.id).await.expect("loads").is_none());
            good_records_intact(&s).await?;

            // A save overwrites the data and deadline whatever the row held;
            // it bumps the stored version, so a garbage version may still
            // be one (a decode error, as for a load).
            let mut fresh = bad.clone();
            match s.store.save(&fresh).await {
                Ok(v) => {
                    fresh.version = v;
                    prop_assert_eq!(s.store.load(&bad.id).await.expect("loads"), Some(fresh));
                }
                Err(e) => {
                    prop_assert!(e.is_decode(), "save: {e}");
                    prop_assert!(s.store.load(&bad.id).await.is_err_and(|e| e.is_decode()));
                }
            }
            s.store.delete(&bad.id).await.expect("deletes");
            prop_assert!(s.store.load(&bad.id).await.expect("loads").is_none());
            good_records_intact(&s).await?;
            Ok(())
        })?;
    }

    #[test]
    fn a_row_with_a_bad_id_spoils_no_other_record(
        id in prop_oneof![
            ".{0,30}".prop_map(Value::Text),
            "[A-Za-z0-9_-]{21,23}".prop_map(Value::Text),
            prop::collection::vec(any::<u8>(), 0..30).prop_map(Value::Blob),
            any::<i64>().prop_map(Value::Integer),
            real().prop_map(Value::Real),
        ],
        expires_at in column(1_700_000_000_000 + 3_600_000),
    ) {
        let db = Db::new();
        runtime().block_on(async {
            let s = seeded(&db).await;
            let valid = match &id {
                Value::Text(t) => t.parse::<SessionId>().ok(),
                _ => None,
            };
            prop_assume!(valid.is_none());
            let body = Value::Blob(codec::encode_body(&s.live[0]).expect("encodes"));
            insert(&db, &id, &body, &expires_at, &Value::Integer(1));

            good_records_intact(&s).await?;
            let count = s.store.count().await.expect("count");
            prop_assert!((2..=3).contains(&count), "count {count}");
            match s.store.ids().await {
                Ok(ids) => {
                    prop_assert!(ids.iter().all(|id| s.live.iter().any(|r| r.id == id.stored())), "a bad id was listed");
                    prop_assert!(s.live.iter().all(|r| ids.contains(&s.store.listing_handle(&r.id))));
                }
                Err(e) => prop_assert!(e.is_decode(), "ids: {e}"),
            }
            let purged = s.store.purge_expired().await.expect("purge");
            prop_assert!((1..=2).contains(&purged), "purged {purged}");
            good_records_intact(&s).await?;
            s.store.clear().await.expect("clears");
            prop_assert_eq!(s.store.count().await.expect("count"), 0);
            Ok(())
        })?;
    }
}
