//! `import-tower-sessions`: sessions written as tower-sessions' stores write
//! them (rmp-serde of tower-sessions-core's `Record`; the sqlx SQLite and
//! PostgreSQL tables, the Redis store's string keys) come into our stores
//! under the same ids, with the same data and expiry, so the same cookie
//! finds them; a second run imports nothing twice; an expired or damaged
//! entry is skipped (the damaged one reported by fingerprint).

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;
use session_store_core::{SessionId, SessionStore};
use session_store_file::FileStore;
use session_store_sqlite::SqliteStore;
use time::OffsetDateTime;
use tower_sessions_core_014::session::{Id, Record};

/// A tower-sessions record: a logged-in user and a counter, live for an
/// hour (or expired a minute ago).
fn tower_record(n: i64, live: bool) -> Record {
    let mut data = HashMap::new();
    data.insert(
        "axum-login.data".to_owned(),
        json!({"user_id": n, "auth_hash": [1, 2, 3]}),
    );
    data.insert("count".to_owned(), json!(n));
    let offset = if live {
        time::Duration::hours(1)
    } else {
        -time::Duration::minutes(1)
    };
    Record {
        id: Id(SessionId::random().as_u128() as i128),
        data,
        expiry_date: OffsetDateTime::now_utc() + offset,
    }
}

/// What the store must hold for `record`: found by the cookie's text.
async fn assert_imported(store: &dyn SessionStore, record: &Record) {
    let cookie = record.id.to_string();
    let id: SessionId = cookie.parse().expect("the cookie is a session id");
    let got = store
        .load(&id)
        .await
        .unwrap()
        .expect("the session is there under the cookie's id");
    assert_eq!(got.data.get::<i64>("count").unwrap(), record.data["count"].as_i64());
    assert_eq!(
        got.data.get_json("axum-login.data"),
        Some(record.data["axum-login.data"].clone())
    );
    let millis = (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
    assert_eq!(got.expires_at.as_millis(), millis, "the expiry, to the millisecond");
    assert_eq!(got.version, 1);
}

/// Three live sessions, one expired and one damaged entry.
fn source_records() -> (Vec<Record>, Record) {
    ((0..3).map(|n| tower_record(n, true)).collect(), tower_record(9, false))
}

#[test]
fn from_the_sqlx_sqlite_store() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("tower.db");
    let (live, expired) = source_records();
    {
        let conn = rusqlite::Connection::open(&source).unwrap();
        // tower-sessions-sqlx-store's SqliteStore::migrate.
        conn.execute_batch(
            "create table if not exists tower_sessions \
             (id text primary key not null, data blob not null, expiry_date integer not null)",
        )
        .unwrap();
        for r in live.iter().chain([&expired]) {
            conn.execute(
                "insert into tower_sessions (id, data, expiry_date) values (?1, ?2, ?3)",
                rusqlite::params![
                    r.id.to_string(),
                    rmp_serde::to_vec(r).unwrap(),
                    r.expiry_date.unix_timestamp()
                ],
            )
            .unwrap();
        }
        conn.execute(
            "insert into tower_sessions (id, data, expiry_date) values ('damaged', x'c1c1c1', 0)",
            [],
        )
        .unwrap();
    }
    let target = tmp.path().join("ours.db");
    let args = [
        "--json",
        "import-tower-sessions",
        "--from",
        &format!("sqlite:{}", source.display()),
        "--to",
        &sqlite_url(&target),
    ];
    let first = run(&args);
    assert_eq!(first.code, 1, "a damaged entry is reported: {first:?}");
    let v = first.json();
    assert_eq!(
        (v["read"].as_u64(), v["imported"].as_u64(), v["expired"].as_u64()),
        (Some(5), Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(v["undecodable"].as_array().unwrap().len(), 1, "{v}");
    for r in &live {
        assert!(
            !first.stdout.contains(&r.id.to_string()),
            "never a session id: {first:?}"
        );
    }
    let store = SqliteStore::open(&target).unwrap();
    runtime().block_on(async {
        for r in &live {
            assert_imported(&store, r).await;
        }
        assert_eq!(store.count().await.unwrap(), 3);
    });
    let again = run(&args).json();
    assert_eq!(
        (again["imported"].as_u64(), again["already_there"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );
}

#[test]
fn from_the_redis_store() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("ts-import-{}:", SessionId::random().fingerprint());
    let (live, _) = source_records();
    runtime().block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        // tower-sessions-redis-store's save: SET <id> <rmp-serde> EXAT <expiry>.
        for r in &live {
            let _: () = redis::cmd("SET")
                .arg(format!("{prefix}{}", r.id))
                .arg(rmp_serde::to_vec(r).unwrap())
                .arg("EXAT")
                .arg(r.expiry_date.unix_timestamp())
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        // Not sessions: another type under an id, a key that is no id.
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}{}", SessionId::random()))
            .arg("f")
            .arg("v")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}not-an-id"))
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("files");
    let from = format!("{url}?prefix={prefix}");
    let v = run(&[
        "--json",
        "import-tower-sessions",
        "--from",
        &from,
        "--to",
        &file_url(&dir),
    ])
    .json();
    assert_eq!((v["read"].as_u64(), v["imported"].as_u64()), (Some(3), Some(3)), "{v}");
    let store = FileStore::open(&dir).unwrap();
    runtime().block_on(async {
        for r in &live {
            assert_imported(&store, r).await;
        }
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(keys.len(), 5, "the source is only read");
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    });
}

#[test]
fn from_the_sqlx_postgres_store() {
    let Some(base) = env_or_skip("SESSION_STORE_POSTGRES_URL") else {
        return;
    };
    let schema = format!("ts_{}", SessionId::random().fingerprint()).to_ascii_lowercase();
    let (live, expired) = source_records();
    let rt = runtime();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        // tower-sessions-sqlx-store's PostgresStore::migrate, in a schema of our own.
        client
            .batch_execute(&format!(
                "create schema \"{schema}\"; create table \"{schema}\".\"session\" \
                 (id text primary key not null, data bytea not null, expiry_date timestamptz not null)"
            ))
            .await
            .unwrap();
        for r in live.iter().chain([&expired]) {
            client
                .execute(
                    &format!(
                        "insert into \"{schema}\".\"session\" (id, data, expiry_date) values ($1, $2, to_timestamp($3))"
                    ),
                    &[
                        &r.id.to_string(),
                        &rmp_serde::to_vec(r).unwrap(),
                        &(r.expiry_date.unix_timestamp() as f64),
                    ],
                )
                .await
                .unwrap();
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("ours.db");
    let sep = if base.contains('?') { '&' } else { '?' };
    let from = format!("{base}{sep}schema={schema}");
    let v = run(&[
        "--json",
        "import-tower-sessions",
        "--from",
        &from,
        "--to",
        &sqlite_url(&target),
    ])
    .json();
    assert_eq!(
        (v["imported"].as_u64(), v["expired"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    let store = SqliteStore::open(&target).unwrap();
    rt.block_on(async {
        for r in &live {
            assert_imported(&store, r).await;
        }
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("drop schema \"{schema}\" cascade"))
            .await
            .unwrap();
    });
}

#[test]
fn a_source_that_is_not_a_tower_sessions_store_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("y");
    let r = run(&[
        "import-tower-sessions",
        "--from",
        "file:./x",
        "--to",
        &file_url(&target),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    let missing = tmp.path().join("nowhere").join("all.db");
    let r = run(&[
        "import-tower-sessions",
        "--from",
        &format!("sqlite:{}", missing.display()),
        "--to",
        &file_url(&target),
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(!target.exists(), "a wrong source creates no target");
}
