//! The binary on a MySQL store (`SESSION_STORE_MYSQL_URL`, the private
//! MariaDB `store-mysql/scripts/with-mariadb` starts, which `scripts/test`
//! runs under): a migration SQLite -> MySQL -> file keeps every session,
//! and `doctor` finds and removes an undecodable row.

mod common;

use common::*;
use session_store_core::{Clock, SessionId, SessionStore, SystemClock};
use session_store_file::FileStore;
use session_store_mysql::MysqlStore;
use session_store_mysql::mysql_async::prelude::Queryable;
use session_store_sqlite::SqliteStore;

fn mysql_url() -> Option<String> {
    env_or_skip("SESSION_STORE_MYSQL_URL")
}

/// A store URL on the test server with a fresh table of its own.
fn mysql_store(base: &str) -> (String, String) {
    let table = format!("cli_{}", SessionId::random().fingerprint())
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}table={table}"), table)
}

async fn drop_table(base: &str, table: &str) {
    let store = MysqlStore::builder(base).table(table).build().await.unwrap();
    let mut conn = store.pool().get_conn().await.unwrap();
    conn.query_drop(format!("DROP TABLE `{table}`")).await.unwrap();
}

#[test]
fn sqlite_to_mysql_to_file_keeps_every_session() {
    let Some(base) = mysql_url() else { return };
    let (my, table) = mysql_store(&base);
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let sqlite = tmp.path().join("s.db");
    let records: Vec<_> = {
        let store = SqliteStore::open(&sqlite).unwrap();
        let now = SystemClock.now();
        let mut records: Vec<_> = (0..300).map(|i| seed_record(i, now)).collect();
        rt.block_on(async {
            for (i, r) in records.iter_mut().enumerate() {
                // Versions 1 to 3: a migration keeps each exactly.
                r.version = 1 + (i as u64 % 3);
                assert!(store.import(r).await.unwrap());
            }
        });
        records
    };
    let v = run(&["--json", "migrate", "--from", &sqlite_url(&sqlite), "--to", &my]).json();
    assert_eq!(v["copied"], 300, "{v}");
    let again = run(&["--json", "migrate", "--from", &sqlite_url(&sqlite), "--to", &my]).json();
    assert_eq!(again["copied"], 0, "a second run copies nothing: {again}");
    let count = run(&["--json", "count", &my]).json();
    assert_eq!(count["count"], 300, "{count}");
    let dir = tmp.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let v = run(&["--json", "migrate", "--from", &my, "--to", &file_url(&dir)]).json();
    assert_eq!(v["copied"], 300, "{v}");
    let files = FileStore::open(&dir).unwrap();
    rt.block_on(async {
        for r in &records {
            let got = files.load(&r.id).await.unwrap().expect("every session arrives");
            assert_eq!(got.data, r.data);
            assert_eq!(got.expires_at, r.expires_at);
            assert_eq!(got.version, r.version);
            assert_eq!(got.owner, r.owner);
        }
        drop_table(&base, &table).await;
    });
}

#[test]
fn doctor_finds_and_removes_an_undecodable_row() {
    let Some(base) = mysql_url() else { return };
    let (my, table) = mysql_store(&base);
    let rt = runtime();
    let (good, bad) = rt.block_on(async {
        let store = MysqlStore::builder(base.clone())
            .table(table.clone())
            .build()
            .await
            .unwrap();
        let now = SystemClock.now();
        let (good, bad) = (seed_record(1, now), seed_record(2, now));
        store.create(&good).await.unwrap();
        store.create(&bad).await.unwrap();
        let mut conn = store.pool().get_conn().await.unwrap();
        conn.exec_drop(
            format!("UPDATE `{table}` SET body = X'7f0102' WHERE id = ?"),
            (bad.id.to_string(),),
        )
        .await
        .unwrap();
        (good, bad)
    });
    let found = run(&["--json", "doctor", &my]);
    assert_eq!(found.code, 6, "{found:?}");
    let v = found.json();
    assert_eq!(
        v["undecodable"][0]["fingerprint"],
        bad.id.fingerprint().to_string(),
        "{v}"
    );
    assert!(
        !found.stdout.contains(&bad.id.to_string()),
        "never the id: {}",
        found.stdout
    );
    let fixed = run(&["--json", "doctor", "--fix", &my]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let healthy = run(&["--json", "doctor", &my]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    let count = run(&["--json", "count", &my]).json();
    assert_eq!(count["count"], 1, "the good session stays: {count}");
    rt.block_on(async {
        let store = MysqlStore::builder(base.clone())
            .table(table.clone())
            .build()
            .await
            .unwrap();
        assert!(store.load(&good.id).await.unwrap().is_some());
        drop_table(&base, &table).await;
    });
}

#[test]
fn a_wrong_mysql_url_is_a_clear_error() {
    let run = run(&["count", "mysql://nobody:secret@127.0.0.1:1/none?timeout_ms=500"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        !run.stderr.contains("secret"),
        "the password never shows: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("mysql://nobody:***@127.0.0.1:1/none"),
        "{}",
        run.stderr
    );
}
