//! The binary on a PostgreSQL store (`SESSION_STORE_POSTGRES_URL`, the
//! private server `store-postgres/scripts/with-postgres` starts, which
//! `scripts/test` runs under): a migration SQLite -> PostgreSQL -> file
//! keeps every session, and `doctor` finds and removes an undecodable row.

mod common;

use common::*;
use session_store_core::{Clock, SessionId, SessionStore, SystemClock};
use session_store_file::FileStore;
use session_store_postgres::PostgresStore;
use session_store_sqlite::SqliteStore;

fn postgres_url() -> Option<String> {
    env_or_skip("SESSION_STORE_POSTGRES_URL")
}

/// A store URL on the test server with a fresh schema of its own.
fn postgres_store(base: &str) -> (String, String) {
    let schema = format!("cli_{}", SessionId::random().fingerprint()).to_ascii_lowercase();
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}schema={schema}"), schema)
}

#[test]
fn sqlite_to_postgres_to_file_keeps_every_session() {
    let Some(base) = postgres_url() else { return };
    let (pg, schema) = postgres_store(&base);
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
    let v = run(&["--json", "migrate", "--from", &sqlite_url(&sqlite), "--to", &pg]).json();
    assert_eq!(v["copied"], 300, "{v}");
    let again = run(&["--json", "migrate", "--from", &sqlite_url(&sqlite), "--to", &pg]).json();
    assert_eq!(again["copied"], 0, "a second run copies nothing: {again}");
    let count = run(&["--json", "count", &pg]).json();
    assert_eq!(count["count"], 300, "{count}");
    let dir = tmp.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let v = run(&["--json", "migrate", "--from", &pg, "--to", &file_url(&dir)]).json();
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
        drop_schema(&base, &schema).await;
    });
}

#[test]
fn doctor_finds_and_removes_an_undecodable_row() {
    let Some(base) = postgres_url() else { return };
    let (pg, schema) = postgres_store(&base);
    let rt = runtime();
    let (good, bad) = rt.block_on(async {
        let store = PostgresStore::builder(base.clone())
            .schema(schema.clone())
            .build()
            .await
            .unwrap();
        let now = SystemClock.now();
        let (good, bad) = (seed_record(1, now), seed_record(2, now));
        store.create(&good).await.unwrap();
        store.create(&bad).await.unwrap();
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .execute(
                &format!("UPDATE \"{schema}\".sessions SET body = '\\x7f0102' WHERE id = $1"),
                &[&bad.id.to_string()],
            )
            .await
            .unwrap();
        (good, bad)
    });
    let found = run(&["--json", "doctor", &pg]);
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
    // A row whose id is no session id (22 characters, the last one not
    // canonical): `count` and `list` leave it out alike, `doctor` reports it.
    let not_an_id = format!("{}B", &good.id.to_string()[..21]);
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .execute(
                &format!(
                    "INSERT INTO \"{schema}\".sessions (id, body, expires_at, version) \
                     SELECT $1, body, expires_at, 1 FROM \"{schema}\".sessions WHERE id = $2"
                ),
                &[&not_an_id, &good.id.to_string()],
            )
            .await
            .unwrap();
    });
    assert_eq!(
        run(&["--json", "count", &pg]).json()["count"],
        2,
        "the good and the undecodable row"
    );
    let list = run(&["--json", "list", &pg]).json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["undecodable"].as_array().unwrap().len(), 1, "{list}");
    let found = run(&["--json", "doctor", &pg]);
    assert_eq!(found.code, 6, "{found:?}");
    assert_eq!(
        found.json()["undecodable"].as_array().unwrap().len(),
        2,
        "the undecodable row and the row that is no session: {found:?}"
    );
    assert!(!found.stdout.contains(&not_an_id), "never the value: {}", found.stdout);
    let fixed = run(&["--json", "doctor", "--fix", &pg]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let healthy = run(&["--json", "doctor", &pg]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    let count = run(&["--json", "count", &pg]).json();
    assert_eq!(count["count"], 1, "the good session stays: {count}");
    rt.block_on(drop_schema(&base, &schema));
}

#[test]
fn a_wrong_postgres_url_is_a_clear_error() {
    let run = run(&["count", "postgres://nobody:secret@127.0.0.1:1/none?timeout_ms=500"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        !run.stderr.contains("secret"),
        "the password never shows: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("postgres://nobody:***@127.0.0.1:1/none"),
        "{}",
        run.stderr
    );
}

async fn drop_schema(base: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"), &[])
        .await
        .unwrap();
}
