//! What the conformance suite cannot see from outside: the answers that
//! rest on how the server reports a statement (rows changed, the insert
//! id), on one connection reused call after call; a table dropped under a
//! running store; bad configuration. Needs `store-mysql/scripts/with-mariadb`.

mod common;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use session_store_core::{
    Clock, Error, Expiry, ManualClock, Record, SessionData, SessionId, SessionStore, SystemClock,
};
use session_store_mysql::MysqlStore;

fn record(n: i64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).unwrap();
    Record::new(
        data,
        SystemClock.now(),
        &Expiry::OnInactivity(Duration::from_secs(3600)),
    )
}

async fn one_connection(url: &str, table: &str) -> MysqlStore {
    MysqlStore::builder(url)
        .table(table)
        .pool_size(1)
        .build()
        .await
        .expect("open the store")
}

/// A touch to the deadline a record already has changes no row and still
/// answers true; a touch of an absent id answers false even right after a
/// save on the same connection left its version as the connection's last
/// insert id; versions after many saves come back exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_do_not_depend_on_what_the_connection_did_before() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let store = one_connection(&url, &common::unique("answers")).await;
    let r = record(1);
    assert_eq!(store.create(&r).await.unwrap(), 1);
    assert!(
        store.touch(&r.id, r.expires_at).await.unwrap(),
        "the same deadline again"
    );
    for expected in 2..=6 {
        assert_eq!(store.save(&r).await.unwrap(), expected);
    }
    // The connection's last insert id is now 6 (the save's version).
    assert!(
        !store.touch(&SessionId::random(), r.expires_at).await.unwrap(),
        "an absent id"
    );
    let mut stale = r.clone();
    stale.version = 5;
    assert!(matches!(
        store.save_if_version(&stale).await,
        Err(Error::Conflict { .. })
    ));
    stale.version = 6;
    assert_eq!(store.save_if_version(&stale).await.unwrap(), 7);
    assert!(matches!(store.create(&r).await, Err(Error::IdCollision { .. })));
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 7);
}

/// A save over an expired record starts again at version 1, and a create
/// over it succeeds; both on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_row_is_written_over_as_if_absent() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let store = MysqlStore::builder(&url)
        .table(common::unique("expired"))
        .pool_size(1)
        .clock(clock.shared())
        .build()
        .await
        .unwrap();
    let mut r = record(1);
    r.expires_at = clock.now() + Duration::from_secs(1);
    store.create(&r).await.unwrap();
    store.save(&r).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let mut again = r.clone();
    again.expires_at = clock.now() + Duration::from_secs(60);
    assert_eq!(
        store.save(&again).await.unwrap(),
        1,
        "a save over an expired row starts at 1"
    );
    clock.advance(Duration::from_secs(120));
    again.expires_at = clock.now() + Duration::from_secs(60);
    assert_eq!(store.create(&again).await.unwrap(), 1, "a create over an expired row");
    assert_eq!(store.load(&r.id).await.unwrap().unwrap().version, 1);
}

/// The table dropped under a running store: its calls answer
/// `Error::Corrupt` (no retry can help), and a store opened again makes the
/// table anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_is_corrupt_until_a_store_opens_again() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let table = common::unique("dropped");
    let store = one_connection(&url, &table).await;
    let r = record(1);
    store.create(&r).await.unwrap();
    let mut raw = common::raw(&url).await.unwrap();
    raw.query_drop(format!("DROP TABLE `{table}`")).await.unwrap();
    let err = store.load(&r.id).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains(&r.id.to_string()), "{err}");
    let reopened = one_connection(&url, &table).await;
    assert_eq!(reopened.load(&r.id).await.unwrap(), None);
    reopened.create(&r).await.unwrap();
}

/// Bad configuration is a clear error before any connection is made, and
/// a URL's password never shows in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_clearly() {
    for table in ["", "a-b", "x`; DROP TABLE y; --", "1abc"] {
        let err = MysqlStore::builder("mysql://u:p@127.0.0.1:1/db")
            .table(table)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{table:?}: {err:?}");
    }
    let err = MysqlStore::builder("mysql://u:s3cret-pw@127.0.0.1:1/db?no_such_option=s3cret-pw")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
    let err = MysqlStore::builder("postgres://nope").build().await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
}

/// A server that is not there: the call answers within the timeout with a
/// transient error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_server_is_a_transient_error_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    let err = MysqlStore::builder(format!("mysql://u:p@127.0.0.1:{port}/db"))
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A table of the store's name that another program made (another
/// framework's sessions) is refused, and nothing in it is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_this_store_did_not_make_is_refused_and_left_alone() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let table = common::unique("foreign");
    let mut raw = common::raw(&url).await.unwrap();
    raw.query_drop(format!(
        "CREATE TABLE `{table}` (id VARCHAR(64) PRIMARY KEY, payload TEXT, last_activity INT)"
    ))
    .await
    .unwrap();
    raw.query_drop(format!("INSERT INTO `{table}` VALUES ('theirs', 'data', 1)"))
        .await
        .unwrap();
    let err = MysqlStore::builder(&url).table(&table).build().await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("not a session-store table"), "{err}");
    let rows: Option<u64> = raw
        .query_first(format!("SELECT COUNT(*) FROM `{table}`"))
        .await
        .unwrap();
    assert_eq!(rows, Some(1), "their row stays");
    raw.query_drop(format!("DROP TABLE `{table}`")).await.unwrap();
}

/// A column another program changed so that a row no longer converts:
/// that record's decode error (naming its fingerprint, never its data),
/// not a panic; other records still load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_convert_is_that_records_decode_error() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let table = common::unique("altered");
    let store = one_connection(&url, &table).await;
    let (bad, good) = (record(1), record(2));
    store.create(&bad).await.unwrap();
    store.create(&good).await.unwrap();
    let mut raw = common::raw(&url).await.unwrap();
    raw.query_drop(format!("ALTER TABLE `{table}` MODIFY version BIGINT NOT NULL"))
        .await
        .unwrap();
    raw.exec_drop(
        format!("UPDATE `{table}` SET version = -7 WHERE id = ?"),
        (bad.id.to_string(),),
    )
    .await
    .unwrap();
    let err = store.load(&bad.id).await.unwrap_err();
    assert!(err.is_decode(), "{err:?}");
    assert!(err.to_string().contains(&bad.id.fingerprint().to_string()), "{err}");
    assert!(!format!("{err} {err:?}").contains("\"n\""), "never the data: {err:?}");
    assert_eq!(store.load(&good.id).await.unwrap().unwrap().version, 1);
}

/// Creating a record whose deadline has passed, twice: the second create
/// replaces the expired first one (no collision), even though it changes
/// no column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_expired_record_twice_is_no_collision() {
    let Some(url) = common::env_or_skip(common::URL_VAR) else {
        return;
    };
    let store = one_connection(&url, &common::unique("expired_twice")).await;
    let mut r = record(1);
    r.expires_at = SystemClock.now() - Duration::from_secs(1);
    assert_eq!(store.create(&r).await.unwrap(), 1);
    assert_eq!(store.create(&r).await.unwrap(), 1);
    assert_eq!(store.load(&r.id).await.unwrap(), None);
}
