//! What the conformance suite does not reach: names, URLs, an unreachable
//! server, a caller's pool, migrations and their bookkeeping, purging in
//! many batches, and the rotate guard.

mod common;

use std::time::{Duration, Instant};

use session_store_core::{Clock, Error, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp};
use session_store_postgres::PostgresStore;

fn record(clock: &ManualClock, ttl_ms: u64) -> Record {
    let mut data = SessionData::new();
    data.insert("k", &"v").unwrap();
    let now = clock.now();
    Record::with_deadline(SessionId::random(), data, now, now + Duration::from_millis(ttl_ms))
}

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
}

#[tokio::test]
async fn invalid_names_and_urls_are_config_errors_before_any_connection() {
    // Nothing listens on port 1: a name check that connected first would time out.
    let url = "postgres://u@127.0.0.1:1/db";
    for table in [
        "",
        "1a",
        "a-b",
        "a\"b",
        "x; DROP TABLE y",
        "pg_x",
        "session_store_schema",
        &"a".repeat(49),
    ] {
        let err = PostgresStore::builder(url).table(table).build().await.unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{table:?}: {}", err.chain());
    }
    for schema in ["", "a b", "pg_catalog", "s\"; --"] {
        let err = PostgresStore::builder(url).schema(schema).build().await.unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{schema:?}: {}", err.chain());
    }
    let err = PostgresStore::builder("postgres://u@host:notaport/db")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{}", err.chain());
    let secret = "postgres://u:hunter2@127.0.0.1:1/db?sslmode=bogus";
    let err = PostgresStore::builder(secret).build().await.unwrap_err();
    assert!(!err.chain().contains("hunter2"), "{}", err.chain());
    let debug = format!("{:?}", PostgresStore::builder(secret));
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test]
async fn an_unreachable_server_fails_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = PostgresStore::builder(format!("postgres://u@127.0.0.1:{port}/db"))
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{}", err.chain());
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    // A blackholed address (TEST-NET-1, never routed): only the timeout ends the wait.
    let start = Instant::now();
    let err = PostgresStore::builder("postgres://u@192.0.2.1:5433/db")
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{}", err.chain());
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_callers_pool_and_a_schema_of_its_own() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager).max_size(2).build().unwrap();
    let schema = common::unique("pool");
    let clock = clock();
    let store = PostgresStore::with_pool(pool.clone())
        .schema(&schema)
        .clock(clock.shared())
        .build()
        .await
        .unwrap();
    assert_eq!((store.schema(), store.table()), (Some(schema.as_str()), "sessions"));
    let r = record(&clock, 1_000);
    store.create(&r).await.unwrap();
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
    // The same rows through the caller's pool.
    let client = pool.get().await.unwrap();
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".sessions"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_openers_migrate_once_and_a_newer_schema_is_refused() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let schema = common::unique("migrate");
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PostgresStore::builder(url).schema(schema).pool_size(1).build().await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let client = common::raw(&url).await.unwrap();
    let version: i32 = client
        .query_one(
            &format!("SELECT version FROM \"{schema}\".session_store_schema WHERE table_name = 'sessions'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 1);
    // Bodies are compressed with lz4 where the server has it (this one does).
    let lz4: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_settings \
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let method: i8 = client
        .query_one(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'body'",
            &[&format!("\"{schema}\".sessions")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        method == b'l' as i8,
        lz4,
        "lz4 on the body column exactly where the server has it"
    );
    client
        .batch_execute(&format!("UPDATE \"{schema}\".session_store_schema SET version = 99"))
        .await
        .unwrap();
    let err = PostgresStore::builder(&url).schema(&schema).build().await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{}", err.chain());
    assert!(err.to_string().contains("newer"), "{err}");
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_runs_many_batches_and_keeps_live_rows() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let schema = common::unique("purge");
    let clock = clock();
    let store = PostgresStore::builder(&url)
        .schema(&schema)
        .clock(clock.shared())
        .purge_batch(7)
        .build()
        .await
        .unwrap();
    let mut live = Vec::new();
    for i in 0..150 {
        let r = record(&clock, if i % 3 == 0 { 60_000 } else { 1_000 });
        store.create(&r).await.unwrap();
        if i % 3 == 0 {
            live.push(r.id);
        }
    }
    clock.advance(Duration::from_millis(1_000));
    assert_eq!(
        store.purge_expired().await.unwrap(),
        100,
        "exactly the expired rows, over 15 batches"
    );
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(store.count().await.unwrap(), 50);
    for id in &live {
        assert!(store.load(id).await.unwrap().is_some());
    }
    common::raw(&url)
        .await
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// Should a live row appear under the new id after rotate's snapshot (a
/// trigger on the delete stands in for a concurrent create of the same
/// id), the whole statement is rolled back: a collision, and the old record
/// stays.
#[tokio::test]
async fn the_rotate_guard_never_loses_the_old_record() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let schema = common::unique("guard");
    let clock = clock();
    let store = PostgresStore::builder(&url)
        .schema(&schema)
        .clock(clock.shared())
        .build()
        .await
        .unwrap();
    let (old, new) = (record(&clock, 60_000), SessionId::random());
    store.create(&old).await.unwrap();
    let client = common::raw(&url).await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE FUNCTION \"{schema}\".squat() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 INSERT INTO \"{schema}\".sessions (id, body, expires_at, version) \
                 VALUES ('{new}', '\\x00', 9223372036854775807, 1); RETURN OLD; END $$; \
             CREATE TRIGGER squat AFTER DELETE ON \"{schema}\".sessions \
                 FOR EACH ROW WHEN (OLD.id = '{}') EXECUTE FUNCTION \"{schema}\".squat();",
            old.id
        ))
        .await
        .unwrap();
    let err = store.rotate(&old.id, &new).await.unwrap_err();
    assert!(matches!(err, Error::IdCollision { id } if id == new), "{}", err.chain());
    let kept = store.load(&old.id).await.unwrap().expect("the old record stays");
    assert_eq!(kept.data, old.data);
    assert!(
        store.load(&new).await.unwrap().is_none(),
        "the squatter's insert was rolled back too"
    );
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dropped_table_is_a_permanent_error_until_the_store_opens_again_and_makes_it() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let schema = common::unique("dropped");
    let clock = clock();
    let store = PostgresStore::builder(&url)
        .schema(&schema)
        .clock(clock.shared())
        .build()
        .await
        .unwrap();
    let r = record(&clock, 60_000);
    store.create(&r).await.unwrap();
    let raw = common::raw(&url).await.unwrap();
    raw.batch_execute(&format!("DROP TABLE \"{schema}\".sessions"))
        .await
        .unwrap();
    // Not "the server is down, retry": the schema changed under the store.
    let err = store.load(&r.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_transient(), "{err}");
    assert_eq!(err.backend_name(), Some("postgres"));
    // The schema record still names the table: opening again notices that
    // it is gone and makes it again (its rows are gone with it).
    let reopened = PostgresStore::builder(&url)
        .schema(&schema)
        .clock(clock.shared())
        .build()
        .await
        .expect("a store whose table was dropped opens again");
    assert_eq!(reopened.load(&r.id).await.unwrap(), None);
    reopened.create(&r).await.unwrap();
    assert!(reopened.load(&r.id).await.unwrap().is_some());
    // An index dropped by hand is made again too.
    raw.batch_execute(&format!("DROP INDEX \"{schema}\".sessions_owner"))
        .await
        .unwrap();
    PostgresStore::builder(&url).schema(&schema).build().await.unwrap();
    let owner_index: bool = raw
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("\"{schema}\".sessions_owner")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(owner_index, "the owner index is back");
    assert!(reopened.load(&r.id).await.unwrap().is_some(), "and the rows stay");
    raw.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}
