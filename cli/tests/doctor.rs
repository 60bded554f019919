//! `doctor` on damaged stores: a record that does not decode (named by its
//! fingerprint), a stray temporary file, modes open to others, and `--fix`.

mod common;

use common::*;
use session_store_core::{Clock, Record, SessionStore, SystemClock};
use session_store_file::FileStore;
use session_store_sqlite::SqliteStore;

fn problems(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

fn undecodable(v: &serde_json::Value) -> Vec<String> {
    v["undecodable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn file_store_damaged_record_and_stray_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let records = seed_file(&dir, 4, 0, 0);
    let url = file_url(&dir);
    let healthy = run(&["--json", "doctor", &url]);
    assert_eq!(healthy.code, 0, "{healthy:?}");

    // Damage one record, and leave a temporary file as a killed writer does.
    let damaged = &records[0];
    let path = FileStore::path_in(&dir, &damaged.id);
    std::fs::write(&path, b"\x02garbage that is no record").unwrap();
    let shard = path.parent().unwrap();
    std::fs::write(shard.join(format!(".tmp-{}-999999-0", records[1].id)), b"half a write").unwrap();

    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "{r:?}");
    let v = r.json();
    assert_eq!(problems(&v), ["temporary files", "records"], "{v}");
    assert_eq!(undecodable(&v), [damaged.id.fingerprint().to_string()], "{v}");
    for rec in &records {
        assert!(
            !r.stdout.contains(&rec.id.to_string()),
            "a full id in the report: {r:?}"
        );
    }
    let text = run(&["doctor", &url]);
    assert!(
        text.stdout
            .contains(&format!("undecodable session {}", damaged.id.fingerprint())),
        "{text:?}"
    );
    assert!(
        text.stdout
            .contains("PROBLEM temporary files: 1 left by interrupted writes"),
        "{text:?}"
    );

    let r = run(&["--json", "doctor", "--fix", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["fixed"].as_array().unwrap().len(), 2, "{v}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(shard)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp-"))
            .count(),
        0
    );
    runtime().block_on(async { assert_holds(&FileStore::open(&dir).unwrap(), &records[1..]).await });
}

/// A directory where a session file belongs is that record's problem only:
/// `count`, `list` and `doctor` give the same answer and go on, `--fix`
/// removes it.
#[test]
fn file_store_directory_in_place_of_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let records = seed_file(&dir, 3, 0, 0);
    let url = file_url(&dir);
    let bad = &records[0];
    let path = FileStore::path_in(&dir, &bad.id);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let fingerprint = bad.id.fingerprint().to_string();

    let count = run(&["--json", "count", &url]);
    assert_eq!(count.code, 0, "{count:?}");
    assert_eq!(count.json()["count"], 3, "{count:?}");
    let list = run(&["--json", "list", &url]);
    assert_eq!(list.code, 1, "an undecodable record is reported: {list:?}");
    let v = list.json();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(undecodable(&v), std::slice::from_ref(&fingerprint), "{v}");
    let purge = run(&["--json", "purge", &url]);
    assert_eq!(purge.code, 0, "{purge:?}");

    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "reported, not a failure to inspect: {r:?}");
    let v = r.json();
    assert_eq!(problems(&v), ["records"], "{v}");
    assert_eq!(undecodable(&v), [fingerprint], "{v}");
    assert!(!r.stdout.contains(&bad.id.to_string()), "{r:?}");

    let r = run(&["--json", "doctor", "--fix", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!path.exists(), "the empty directory is gone");
    assert_eq!(run(&["--json", "count", &url]).json()["count"], 2);
    runtime().block_on(async { assert_holds(&FileStore::open(&dir).unwrap(), &records[1..]).await });
}

/// A row whose id is no session id: `count` and `list` leave it out alike
/// (no visitor can load it), `doctor` reports it, `--fix` removes it.
#[test]
fn sqlite_store_row_whose_id_is_no_session_id() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    let records: Vec<Record> = runtime().block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        let mut out = Vec::new();
        for i in 0..2 {
            let mut r = seed_record(i, SystemClock.now());
            r.version = store.create(&r).await.unwrap();
            out.push(r);
        }
        out
    });
    let url = sqlite_url(&db);
    // 22 characters, the last one not canonical.
    let not_an_id = format!("{}B", &records[0].id.to_string()[..21]);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO sessions (id, data, expires_at, version) SELECT ?1, data, expires_at, 1 FROM sessions LIMIT 1",
            [&not_an_id],
        )
        .unwrap();
    assert_eq!(run(&["--json", "count", &url]).json()["count"], 2);
    let list = run(&["--json", "list", &url]);
    assert_eq!(list.json()["sessions"].as_array().unwrap().len(), 2, "{list:?}");
    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(problems(&r.json()), ["records"], "{r:?}");
    assert!(!r.stdout.contains(&not_an_id), "never the value: {r:?}");
    assert_eq!(run(&["--json", "doctor", "--fix", &url]).code, 0);
    assert_eq!(run(&["--json", "doctor", &url]).code, 0);
    runtime().block_on(async { assert_holds(&SqliteStore::open(&db).unwrap(), &records).await });
}

#[cfg(unix)]
#[test]
fn file_store_modes_open_to_others() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let records = seed_file(&dir, 1, 0, 0);
    let path = FileStore::path_in(&dir, &records[0].id);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&["--json", "doctor", &file_url(&dir)]);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(problems(&r.json()), ["permissions"]);
    assert!(
        r.stdout.contains(&format!("{} (644)", records[0].id.fingerprint())),
        "{r:?}"
    );
}

#[test]
fn sqlite_store_damaged_row() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    let records: Vec<Record> = runtime().block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        let mut out = Vec::new();
        for i in 0..3 {
            let mut r = seed_record(i, SystemClock.now());
            r.version = 1;
            store.create(&r).await.unwrap();
            out.push(r);
        }
        out
    });
    let url = sqlite_url(&db);
    assert_eq!(run(&["doctor", &url]).code, 0);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE sessions SET data = x'0299' WHERE id = ?1",
            [records[2].id.to_string()],
        )
        .unwrap();
    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "{r:?}");
    let v = r.json();
    assert_eq!(problems(&v), ["records"], "{v}");
    assert_eq!(undecodable(&v), [records[2].id.fingerprint().to_string()]);
    // list names it too, and exits 1.
    let l = run(&["list", &url]);
    assert_eq!(l.code, 1, "{l:?}");
    assert!(
        l.stdout
            .contains(&format!("{} undecodable", records[2].id.fingerprint())),
        "{l:?}"
    );

    let r = run(&["--json", "doctor", "--fix", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    runtime().block_on(async { assert_holds(&SqliteStore::open(&db).unwrap(), &records[..2]).await });
}

#[test]
fn sqlite_schema_version_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    SqliteStore::open(&db).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE session_store_schema SET version = 99", [])
        .unwrap();
    let r = run(&["--json", "doctor", &sqlite_url(&db)]);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(problems(&r.json()), ["schema"]);
    assert!(r.stdout.contains("schema version 99"), "{r:?}");
    // Other commands refuse the newer schema with the store's own message.
    let c = run(&["count", &sqlite_url(&db)]);
    assert_eq!(c.code, 3, "{c:?}");
    assert!(c.stderr.contains("newer than this library"), "{c:?}");
}

#[test]
fn redis_store_damaged_record() {
    let Some(base) = redis_url() else { return };
    let url = redis_store(&base);
    let (server, prefix) = url.split_once("?prefix=").unwrap();
    let records: Vec<Record> = runtime().block_on(async {
        let store = session_store_redis::RedisStore::builder(server)
            .prefix(prefix)
            .build()
            .await
            .unwrap();
        let mut out = Vec::new();
        for i in 0..3 {
            let mut r = seed_record(i, SystemClock.now());
            r.version = 1;
            store.create(&r).await.unwrap();
            out.push(r);
        }
        let mut conn = redis::Client::open(server)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}{{{}}}", out[0].id))
            .arg("d")
            .arg(&b"\x12garbage"[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        out
    });
    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "{r:?}");
    let v = r.json();
    assert_eq!(problems(&v), ["records"], "{v}");
    assert_eq!(undecodable(&v), [records[0].id.fingerprint().to_string()]);
    let r = run(&["--json", "doctor", "--fix", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    runtime().block_on(async {
        let store = session_store_redis::RedisStore::builder(server)
            .prefix(prefix)
            .build()
            .await
            .unwrap();
        assert_holds(&store, &records[1..]).await;
        store.clear().await.unwrap();
    });
}

#[test]
fn redis_cluster_damaged_record() {
    let Some(urls) = env_or_skip("SESSION_STORE_REDIS_CLUSTER_URLS") else {
        return;
    };
    let url = redis_store(&urls);
    let (seeds, prefix) = url.split_once("?prefix=").unwrap();
    let seeds: Vec<String> = seeds.split(',').map(str::to_owned).collect();
    let records: Vec<Record> = runtime().block_on(async {
        let store = session_store_redis::RedisStore::cluster_builder(seeds.clone())
            .prefix(prefix)
            .build()
            .await
            .unwrap();
        let mut out = Vec::new();
        for i in 0..20 {
            let mut r = seed_record(i, SystemClock.now());
            r.version = 1;
            store.create(&r).await.unwrap();
            out.push(r);
        }
        let mut conn = redis::cluster::ClusterClient::new(seeds.clone())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        for r in &out[..2] {
            let _: () = redis::cmd("HSET")
                .arg(format!("{prefix}{{{}}}", r.id))
                .arg("v")
                .arg("not a number")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        out
    });
    let r = run(&["--json", "doctor", &url]);
    assert_eq!(r.code, 6, "{r:?}");
    let v = r.json();
    assert_eq!(problems(&v), ["records"], "{v}");
    let mut found = undecodable(&v);
    found.sort();
    let mut want: Vec<String> = records[..2].iter().map(|r| r.id.fingerprint().to_string()).collect();
    want.sort();
    assert_eq!(found, want, "{v}");
    assert!(r.stdout.contains("20 keys of this store's shape"), "{r:?}");
    let r = run(&["--json", "doctor", "--fix", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    runtime().block_on(async {
        let store = session_store_redis::RedisStore::cluster_builder(seeds)
            .prefix(prefix)
            .build()
            .await
            .unwrap();
        assert_holds(&store, &records[2..]).await;
        store.clear().await.unwrap();
    });
}
