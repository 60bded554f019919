//! Stores protected at rest (`session_store_core::at_rest`: ids hashed,
//! data sealed) through the real binary: a plain store migrated into a
//! protected one keeps every session and holds no plain id or data value;
//! `list`, `show` and `delete` work on the listed handles; a protected
//! store migrates on under a new key; what cannot work is refused.

mod common;

use std::path::Path;

use common::*;
use session_store_core::at_rest::{AtRest, Protected, stored_id};
use session_store_core::seal::KeyRing;
use session_store_core::{Record, SessionId, SessionStore};
use session_store_file::FileStore;
use session_store_sqlite::SqliteStore;

const KEYS_VAR: &str = "SST_CLI_TEST_KEYS";
const KEY_1: &str = "1:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KEY_2: &str = "2:c2Vzc2lvbi1zdG9yZS1jbGktdGVzdC1rZXktdHdvISE";

fn keys(text: &str) -> AtRest {
    AtRest::new()
        .hash_ids(true)
        .encrypt(KeyRing::parse(text).expect("a key ring"))
}

/// Every name and every file's bytes under `dir`.
fn file_bytes(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push((
            format!("name {}", path.display()),
            entry.file_name().into_encoded_bytes(),
        ));
        if path.is_dir() {
            file_bytes(&path, out);
        } else {
            out.push((format!("bytes of {}", path.display()), std::fs::read(&path).unwrap()));
        }
    }
}

/// Every column of every row of every table of the database at `path`,
/// and the database's files byte for byte.
fn sqlite_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in tables {
        let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let width = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        let mut n = 0;
        while let Some(row) = rows.next().unwrap() {
            for i in 0..width {
                use rusqlite::types::ValueRef;
                let bytes = match row.get_ref(i).unwrap() {
                    ValueRef::Null => Vec::new(),
                    ValueRef::Integer(v) => v.to_string().into_bytes(),
                    ValueRef::Real(v) => v.to_string().into_bytes(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                };
                out.push((format!("{table} row {n} column {i}"), bytes));
            }
            n += 1;
        }
    }
    drop(conn);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&name) {
            out.push((entry.path().display().to_string(), std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nothing in `raw` holds an id of `records` (text or bytes) or one of
/// their data values or owners; each record's hash is there.
fn assert_no_plain_value(raw: &[(String, Vec<u8>)], records: &[Record]) {
    assert!(!raw.is_empty());
    let mut needles: Vec<Vec<u8>> = vec!["ключ".as_bytes().to_vec(), b"nested".to_vec(), b"user-".to_vec()];
    for r in records {
        needles.push(r.id.to_string().into_bytes());
        needles.push(r.id.to_bytes().to_vec());
        // The values long enough to be recognisable (not `3`, `null`).
        for (_, value) in r.data.iter().filter(|(_, v)| v.len() >= 8) {
            needles.push(value.as_bytes().to_vec());
        }
    }
    for (place, bytes) in raw {
        for needle in &needles {
            assert!(
                !contains(bytes, needle),
                "{:?} is in {place}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    for r in records {
        let hash = stored_id(&r.id).to_string();
        assert!(
            raw.iter().any(|(_, bytes)| contains(bytes, hash.as_bytes())),
            "{} is stored under its hash",
            r.id.fingerprint()
        );
    }
}

fn migrate(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["--json", "migrate"];
    all.extend(args);
    let r = run_with_env(&all, env);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

#[test]
fn a_plain_file_store_migrated_into_protected_file_and_sqlite_stores_keeps_every_session_and_shows_nothing() {
    let n = 300;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let expected = seed_file(&src, n, 30, 10);
    let from = file_url(&src);
    let env = [(KEYS_VAR, KEY_1)];
    let protect = ["--to-hash-ids", "--to-keys-env", KEYS_VAR];

    let to_file = file_url(&tmp.path().join("protected"));
    let db = tmp.path().join("protected.db");
    let to_sqlite = sqlite_url(&db);
    for to in [&to_file, &to_sqlite] {
        let mut args = vec!["--from", from.as_str(), "--to", to.as_str()];
        args.extend(protect);
        let v = migrate(&args, &env);
        assert_eq!((v["total"].as_u64(), v["copied"].as_u64()), (Some(n), Some(n)), "{v}");
        assert_eq!(
            (v["failed"].as_u64(), v["to_hash_ids"].as_bool()),
            (Some(0), Some(true)),
            "{v}"
        );
        // Again: nothing twice.
        let again = migrate(&args, &env);
        assert_eq!(again["already_there"].as_u64(), Some(n), "{again}");

        // The counts match, with the options or without (count needs no key).
        for extra in [&["--hash-ids", "--keys-env", KEYS_VAR][..], &[]] {
            let mut args = vec!["--json", "count", to.as_str()];
            args.extend(extra);
            let r = run_with_env(&args, &env);
            assert_eq!((r.code, r.json()["count"].as_u64()), (0, Some(n)), "{r:?}");
        }
    }

    // Raw: no plain id, data value or owner anywhere; each hash is there.
    let mut raw = Vec::new();
    file_bytes(&tmp.path().join("protected"), &mut raw);
    assert_no_plain_value(&raw, &expected);
    assert_no_plain_value(&sqlite_bytes(&db), &expected);

    // Through `Protected` every session reads back whole: data, times,
    // version, owner, under its own id.
    runtime().block_on(async {
        let file = Protected::new(FileStore::open(tmp.path().join("protected")).unwrap(), keys(KEY_1));
        assert_holds(&file, &expected).await;
        let sqlite = Protected::new(SqliteStore::open(&db).unwrap(), keys(KEY_1));
        assert_holds(&sqlite, &expected).await;
    });
}

/// A handle's record as `show --json` prints it.
fn show(store: &str, arg: &str, env: &[(&str, &str)]) -> Run {
    run_with_env(
        &["--json", "show", store, arg, "--hash-ids", "--keys-env", KEYS_VAR],
        env,
    )
}

#[test]
fn list_show_and_delete_work_on_the_listed_handles_of_a_protected_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let expected = seed_file(&src, 20, 0, 0);
    let store = sqlite_url(&tmp.path().join("p.db"));
    let env = [(KEYS_VAR, KEY_1)];
    migrate(
        &[
            "--from",
            &file_url(&src),
            "--to",
            &store,
            "--to-hash-ids",
            "--to-keys-env",
            KEYS_VAR,
        ],
        &env,
    );

    let r = run_with_env(
        &[
            "--json",
            "list",
            &store,
            "--show-ids",
            "--hash-ids",
            "--keys-env",
            KEYS_VAR,
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["listed"], "handles", "{v}");
    let listed = v["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), expected.len());
    let handles: Vec<SessionId> = listed
        .iter()
        .map(|s| {
            assert!(s.get("id").is_none(), "no ids, handles: {s}");
            s["handle"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    for r in &expected {
        assert!(handles.contains(&stored_id(&r.id)), "listed by its hash");
        assert!(!handles.contains(&r.id), "never by its id");
    }
    // The owners read back, not their hashes (the keys were given).
    let owners: Vec<&str> = listed.iter().filter_map(|s| s["owner"].as_str()).collect();
    let want = expected.iter().filter(|r| r.owner.is_some()).count();
    assert!(
        want > 0 && owners.len() == want && owners.iter().all(|o| o.starts_with("user-")),
        "{owners:?}"
    );
    // Text: a HANDLE column, no cookie value.
    let text = run_with_env(
        &["list", &store, "--show-ids", "--hash-ids", "--keys-env", KEYS_VAR],
        &env,
    );
    assert!(text.stdout.starts_with("SESSION  HANDLE"), "{text:?}");
    for r in &expected {
        assert!(!text.stdout.contains(&r.id.to_string()), "{text:?}");
    }

    // `show` by a listed handle, by its fingerprint, and by the session id.
    let target = &expected[3];
    let handle = stored_id(&target.id);
    for arg in [
        handle.to_string(),
        handle.fingerprint().to_string(),
        target.id.to_string(),
    ] {
        let r = show(&store, &arg, &env);
        assert_eq!(r.code, 0, "{arg}: {r:?}");
        let v = r.json();
        assert_eq!(v["fingerprint"], handle.fingerprint().to_string(), "{v}");
        assert_eq!(v["data"]["n"], 3, "{v}");
        assert_eq!(v["version"].as_u64(), Some(target.version), "{v}");
    }
    // The id's own fingerprint (as an app's log shows it) is not a listed one.
    let r = show(&store, &target.id.fingerprint().to_string(), &env);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("give the full session id"), "{r:?}");

    // Without the keys the record is still listed, sealed: no value shows.
    let r = run_with_env(&["--json", "show", &store, &handle.to_string(), "--hash-ids"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json()["data"].get("n").is_none(), "{r:?}");
    // A wrong key ring: the record does not open (exit 1), and no key shows.
    let r = run_with_env(
        &[
            "--json",
            "show",
            &store,
            &handle.to_string(),
            "--hash-ids",
            "--keys-env",
            KEYS_VAR,
        ],
        &[(KEYS_VAR, KEY_2)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        !r.stderr.contains(&KEY_2[2..]) && !r.stdout.contains(&KEY_2[2..]),
        "{r:?}"
    );

    // `delete` by a listed handle and by a fingerprint: gone for the app too.
    let (first, second) = (&expected[5], &expected[6]);
    let r = run_with_env(
        &[
            "--json",
            "delete",
            &store,
            "--hash-ids",
            "--keys-env",
            KEYS_VAR,
            // A handle may start with `-`.
            "--",
            &stored_id(&first.id).to_string(),
            &stored_id(&second.id).fingerprint().to_string(),
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["deleted"].as_array().map(Vec::len), Some(2), "{r:?}");
    let r = run_with_env(&["--json", "count", &store], &[]);
    assert_eq!(r.json()["count"].as_u64(), Some(expected.len() as u64 - 2), "{r:?}");
    runtime().block_on(async {
        let app = Protected::new(SqliteStore::open(tmp.path().join("p.db")).unwrap(), keys(KEY_1));
        assert!(app.load(&first.id).await.unwrap().is_none());
        assert!(app.load(&second.id).await.unwrap().is_none());
        assert_eq!(app.load(&target.id).await.unwrap().as_ref(), Some(target));
    });
}

#[test]
fn a_protected_store_migrates_on_under_a_new_key_and_what_cannot_work_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let expected = seed_file(&src, 50, 5, 0);
    let plain = file_url(&src);
    let one = file_url(&tmp.path().join("one"));
    let two = sqlite_url(&tmp.path().join("two.db"));
    let env = [(KEYS_VAR, KEY_1), ("SST_CLI_TEST_KEYS_NEW", KEY_2)];
    migrate(
        &[
            "--from",
            &plain,
            "--to",
            &one,
            "--to-hash-ids",
            "--to-keys-env",
            KEYS_VAR,
        ],
        &env,
    );

    // Hashed to hashed, key 1 to key 2: the hashes are kept as they are.
    let v = migrate(
        &[
            "--from",
            &one,
            "--from-hash-ids",
            "--from-keys-env",
            KEYS_VAR,
            "--to",
            &two,
            "--to-hash-ids",
            "--to-keys-env",
            "SST_CLI_TEST_KEYS_NEW",
        ],
        &env,
    );
    assert_eq!((v["copied"].as_u64(), v["failed"].as_u64()), (Some(50), Some(0)), "{v}");
    runtime().block_on(async {
        let store = Protected::new(SqliteStore::open(tmp.path().join("two.db")).unwrap(), keys(KEY_2));
        assert_holds(&store, &expected).await;
        let old_key = Protected::new(SqliteStore::open(tmp.path().join("two.db")).unwrap(), keys(KEY_1));
        assert!(
            old_key.load(&expected[0].id).await.unwrap_err().is_decode(),
            "sealed under key 2"
        );
    });

    // A hashed source cannot go to a target without hashed ids.
    let three = file_url(&tmp.path().join("three"));
    let r = run_with_env(
        &["--json", "migrate", "--from", &one, "--from-hash-ids", "--to", &three],
        &env,
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--to-hash-ids"), "{r:?}");
    // A sealed source read without its keys into a protected target: each
    // session fails (sealing it again would bury it), nothing is copied.
    let r = run_with_env(
        &[
            "--json",
            "migrate",
            "--from",
            &one,
            "--from-hash-ids",
            "--to",
            &three,
            "--to-hash-ids",
            "--to-keys-env",
            KEYS_VAR,
        ],
        &env,
    );
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!((v["copied"].as_u64(), v["failed"].as_u64()), (Some(0), Some(50)), "{v}");
    assert!(
        v["failures"][0]["error"].as_str().unwrap().contains("--from-keys-env"),
        "{v}"
    );

    // A missing or bad key ring: exit 2, the variable named, the key never shown.
    let secret = "ab".repeat(31);
    for value in [None, Some(format!("1:{secret}")), Some(format!("1:{secret}zz"))] {
        let env: Vec<(&str, &str)> = value.iter().map(|v| ("SST_CLI_TEST_KEYS_BAD", &v[..])).collect();
        for args in [
            vec!["--json", "count", one.as_str(), "--keys-env", "SST_CLI_TEST_KEYS_BAD"],
            vec![
                "--json",
                "migrate",
                "--from",
                plain.as_str(),
                "--to",
                three.as_str(),
                "--to-keys-env",
                "SST_CLI_TEST_KEYS_BAD",
            ],
        ] {
            let r = run_with_env(&args, &env);
            assert_eq!(r.code, 2, "{args:?} {value:?}: {r:?}");
            assert!(r.stderr.contains("SST_CLI_TEST_KEYS_BAD"), "{r:?}");
            assert!(!r.stderr.contains(&secret) && !r.stdout.contains(&secret), "{r:?}");
        }
    }
}
