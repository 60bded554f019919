//! Every command of the real binary on an empty store, a missing
//! directory, a wrong URL and a store of the wrong kind; and what `list`,
//! `show`, `delete`, `purge` and `clear` do on a store with sessions.

mod common;

use common::*;
use session_store_core::SessionStore;
use session_store_file::FileStore;
use session_store_sqlite::SqliteStore;

/// Every command, with `STORE` standing for the store's URL.
const COMMANDS: &[&[&str]] = &[
    &["count", "STORE"],
    &["purge", "STORE"],
    &["list", "STORE"],
    &["show", "STORE", "374708ff"],
    &["delete", "STORE", "374708ff"],
    &["clear", "--yes", "STORE"],
    &["doctor", "STORE"],
    &["migrate", "--from", "STORE", "--to", "OTHER"],
];

fn with_store<'a>(cmd: &[&'a str], store: &'a str, other: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--json"];
    args.extend(cmd.iter().map(|a| match *a {
        "STORE" => store,
        "OTHER" => other,
        a => a,
    }));
    args
}

fn empty_store_answers(store: &str, other: &str) {
    for cmd in COMMANDS {
        let r = run(&with_store(cmd, store, other));
        let v = r.json();
        match cmd[0] {
            "count" => assert_eq!((r.code, &v["count"]), (0, &serde_json::json!(0)), "{r:?}"),
            "purge" => assert_eq!((r.code, &v["purged"]), (0, &serde_json::json!(0)), "{r:?}"),
            "list" => assert_eq!((r.code, v["sessions"].as_array().map(Vec::len)), (0, Some(0)), "{r:?}"),
            "show" => {
                assert_eq!(r.code, 4, "{r:?}");
                assert!(r.stderr.contains("no live session 374708ff"), "{r:?}");
            }
            "delete" => assert_eq!(
                (r.code, &v["not_found"][0]),
                (4, &serde_json::json!("374708ff")),
                "{r:?}"
            ),
            "clear" => assert_eq!((r.code, &v["cleared"]), (0, &serde_json::json!(0)), "{r:?}"),
            "doctor" => assert_eq!((r.code, &v["healthy"]), (0, &serde_json::json!(true)), "{r:?}"),
            "migrate" => assert_eq!((r.code, &v["copied"], &v["total"]), (0, &0.into(), &0.into()), "{r:?}"),
            _ => unreachable!(),
        }
    }
}

#[test]
fn every_command_on_an_empty_file_store() {
    let tmp = tempfile::tempdir().unwrap();
    // Owner only, as the store makes it (doctor reports a directory open to others).
    let mut dir = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(tmp.path().join("empty")).unwrap();
    let other = sqlite_url(&tmp.path().join("other.db"));
    empty_store_answers(&file_url(&tmp.path().join("empty")), &other);
}

#[test]
fn every_command_on_an_empty_sqlite_store() {
    let tmp = tempfile::tempdir().unwrap();
    SqliteStore::open(tmp.path().join("empty.db")).unwrap();
    let other = file_url(&tmp.path().join("other"));
    empty_store_answers(&sqlite_url(&tmp.path().join("empty.db")), &other);
}

#[test]
fn every_command_on_an_empty_redis_store() {
    let Some(redis) = redis_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    empty_store_answers(&redis_store(&redis), &file_url(&tmp.path().join("other")));
}

/// Runs every command on `store` and expects exit code `code`, a message
/// naming the store and containing `says`, and no store created.
fn every_command_fails(store: &str, other: &str, code: i32, says: &str) {
    for cmd in COMMANDS {
        let r = run(&with_store(cmd, store, other));
        assert_eq!(r.code, code, "{cmd:?} {r:?}");
        assert!(r.stderr.contains(says), "{cmd:?}: {r:?}");
        assert!(
            r.stderr.contains(store.split('?').next().unwrap()),
            "names the store: {r:?}"
        );
        let v = r.json();
        assert_eq!(v["error"]["exit_code"], code, "{v}");
        // Text mode says the same on stderr, without JSON on stdout.
        let text = run(&with_store(cmd, store, other)[1..]);
        assert_eq!((text.code, text.stdout.as_str()), (code, ""), "{text:?}");
    }
}

#[test]
fn a_missing_directory_or_database_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let other = sqlite_url(&tmp.path().join("other.db"));
    every_command_fails(&file_url(&tmp.path().join("nope")), &other, 3, "does not exist");
    assert!(!tmp.path().join("nope").exists());
    every_command_fails(&sqlite_url(&tmp.path().join("nope.db")), &other, 3, "does not exist");
    assert!(!tmp.path().join("nope.db").exists());
}

#[test]
fn a_wrong_url_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let other = file_url(tmp.path());
    every_command_fails("ftp://example.invalid/x", &other, 2, "unknown store kind \"ftp\"");
    every_command_fails("sessions", &other, 2, "not a store URL");
    every_command_fails("sqlite:./x.db?colour=red", &other, 2, "unknown option \"colour\"");
    // A password in a URL is never echoed.
    let r = run(&["count", "mongodb://admin:hunter2@db/x"]);
    assert_eq!(r.code, 2);
    assert!(
        !r.stderr.contains("hunter2") && r.stderr.contains("admin:***@"),
        "{r:?}"
    );
}

#[test]
fn a_store_of_the_wrong_kind_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("sessions.db");
    SqliteStore::open(&db).unwrap();
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a database, not a directory\n").unwrap();
    let other = file_url(&tmp.path().join("other"));

    every_command_fails(&file_url(&db), &other, 3, "it is an SQLite database: use sqlite:");
    every_command_fails(&sqlite_url(&dir), &other, 3, "is a directory, not an SQLite database");
    every_command_fails(&sqlite_url(&text), &other, 3, "is not an SQLite database");
    every_command_fails(&file_url(&text), &other, 3, "is a file, not a file store's directory");
    // An SQLite database of another application: no session table.
    let foreign = tmp.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    every_command_fails(&sqlite_url(&foreign), &other, 3, "holds no session table");
    // A Redis URL where no Redis listens.
    let r = run(&["--json", "count", "redis://127.0.0.1:1/?timeout_ms=500"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("redis://127.0.0.1:1/") && r.stderr.contains("refused"),
        "{r:?}"
    );
}

#[test]
fn list_show_delete_purge_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let records = seed_file(&dir, 5, 1, 2);
    let url = file_url(&dir);

    let r = run(&["list", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    for rec in &records {
        assert!(r.stdout.contains(&rec.id.fingerprint().to_string()), "{r:?}");
        assert!(
            !r.stdout.contains(&rec.id.to_string()),
            "a full id without --show-ids: {r:?}"
        );
    }
    assert!(r.stdout.contains("5 sessions"), "{r:?}");
    let r = run(&["--json", "list", "--show-ids", &url]);
    let listed = r.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 5);
    let first = &records[0];
    let entry = listed
        .iter()
        .find(|e| e["id"] == first.id.to_string())
        .expect("listed with its id");
    assert_eq!(entry["fingerprint"], first.id.fingerprint().to_string());
    assert_eq!(entry["expires"]["unix_ms"], first.expires_at.as_millis());
    assert_eq!(entry["created"]["unix_ms"], first.created_at.as_millis());
    assert_eq!(entry["version"], first.version);
    assert_eq!(entry["owner"], serde_json::json!(first.owner));
    assert_eq!(entry["bytes"], first.data.byte_size());

    // show, by fingerprint and by id: the data as JSON.
    for arg in [first.id.fingerprint().to_string(), first.id.to_string()] {
        let r = run(&["--json", "show", &url, &arg]);
        assert_eq!(r.code, 0, "{r:?}");
        let v = r.json();
        assert_eq!(v["data"]["n"], 0);
        assert_eq!(v["data"]["ключ ✓"], "value 0 ✓");
        assert_eq!(v["data"]["nested"]["max"], u64::MAX);
        assert!(
            !r.stdout.contains(&first.id.to_string()),
            "show never prints the id: {r:?}"
        );
    }
    let r = run(&["show", &url, "not-an-id"]);
    assert_eq!(r.code, 2, "{r:?}");

    // purge removes the two expired sessions.
    let r = run(&["--json", "purge", &url]);
    assert_eq!((r.code, &r.json()["purged"]), (0, &serde_json::json!(2)), "{r:?}");

    // delete one by fingerprint.
    let r = run(&["--json", "delete", &url, &records[1].id.fingerprint().to_string()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["deleted"][0], records[1].id.fingerprint().to_string());
    assert_eq!(run(&["count", &url]).stdout.trim(), "4");

    // clear refuses without a terminal and without --yes, and deletes nothing.
    let r = run(&["clear", &url]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("pass --yes"), "{r:?}");
    assert_eq!(run(&["count", &url]).stdout.trim(), "4");
    let r = run(&["clear", "--yes", &url]);
    assert_eq!((r.code, r.stdout.trim()), (0, "cleared 4 live sessions"), "{r:?}");
    runtime().block_on(async {
        assert_eq!(FileStore::open(&dir).unwrap().count().await.unwrap(), 0);
    });
}

#[test]
fn help_documents_urls_and_exit_codes() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for needle in ["migrate", "doctor", "Exit codes", "sqlite:PATH", "redis://A,redis://B"] {
        assert!(r.stdout.contains(needle), "{needle}: {r:?}");
    }
    let r = run(&["frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
}
