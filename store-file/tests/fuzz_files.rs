//! Property tests over arbitrary bytes for what the file store decodes from
//! disk: a session file's contents and the names of the files it scans.
//!
//! A real store directory holds good records next to one session file whose
//! bytes are garbage, a truncation or an edit of a valid file; every
//! operation must give a decode error for that record only (or, for bytes
//! that happen to decode, a record), never panic, and leave the other
//! records as they were. Planted files with arbitrary names must never be
//! taken for sessions, nor removed.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use session_store_core::{Clock, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp, raw::codec};
use session_store_file::{Durability, FileStore};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn record(clock: &ManualClock, ttl_ms: i64, n: i64) -> Record {
    let mut data = SessionData::new();
    data.insert("n", &n).expect("serializes");
    data.insert("", &"empty key").expect("serializes");
    let expires = Timestamp::from_millis(clock.now().as_millis() + ttl_ms);
    Record::with_deadline(SessionId::random(), data, clock.now(), expires)
}

/// A store in `dir` with two live records and one expired one, all saved
/// through the store.
struct Seeded {
    store: FileStore,
    clock: ManualClock,
    live: Vec<Record>,
    expired: Record,
}

async fn seeded(dir: &Path) -> Seeded {
    let clock = ManualClock::new(START);
    let store = FileStore::builder(dir)
        .clock(clock.shared())
        .durability(Durability::NoSync)
        .open()
        .expect("opens");
    let mut live = vec![record(&clock, 60_000, 1), record(&clock, 60_000, 2)];
    for r in &mut live {
        r.version = store.save(r).await.expect("saves");
    }
    let mut expired = record(&clock, 10, 3);
    expired.version = store.save(&expired).await.expect("saves");
    clock.advance(Duration::from_millis(20));
    Seeded {
        store,
        clock,
        live,
        expired,
    }
}

/// The live records still load exactly as saved.
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

/// What the bad file holds.
#[derive(Debug, Clone)]
enum Planted {
    /// Any bytes.
    Garbage(Vec<u8>),
    /// A strict prefix of a valid file (a torn write).
    Truncated(prop::sample::Index),
    /// A valid file with bytes changed.
    Edited(Vec<(prop::sample::Index, u8)>),
    /// A valid body (the SQLite and Redis layout), not a full record.
    Body,
}

impl Planted {
    /// Whether no reading of these bytes can be a record.
    fn never_decodes(&self) -> bool {
        matches!(self, Self::Truncated(_) | Self::Body)
    }

    fn bytes(&self, valid: &Record) -> Vec<u8> {
        let encoded = codec::encode_record(valid).expect("encodes");
        match self {
            Self::Garbage(b) => b.clone(),
            Self::Truncated(cut) => encoded[..cut.index(encoded.len())].to_vec(),
            Self::Edited(edits) => {
                let mut b = encoded;
                for (i, x) in edits {
                    let i = i.index(b.len());
                    b[i] ^= *x;
                }
                b
            }
            Self::Body => codec::encode_body(valid).expect("encodes"),
        }
    }
}

fn planted() -> impl Strategy<Value = Planted> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Planted::Garbage),
        // Garbage behind a valid format byte gets further into the decoder.
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|mut b| {
            b.insert(0, codec::RECORD_V1);
            Planted::Garbage(b)
        }),
        2 => any::<prop::sample::Index>().prop_map(Planted::Truncated),
        2 => prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Planted::Edited),
        1 => Just(Planted::Body),
    ]
}

/// A file name near a session file's, or anything a directory can hold.
fn file_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // A valid id with one character changed, added or removed.
        (
            any::<u128>(),
            any::<prop::sample::Index>(),
            "[A-Za-z0-9_.=+/ -]",
            0..3u8
        )
            .prop_map(|(bits, i, c, how)| {
                let mut s = SessionId::from_u128(bits).to_string();
                let at = i.index(s.len());
                match how {
                    0 => s.replace_range(at..=at, &c),
                    1 => s.insert_str(at, &c),
                    _ => {
                        s.remove(at);
                    }
                }
                s.into_bytes()
            }),
        // Temporary and lock file look-alikes.
        "\\.tmp-[A-Za-z0-9_-]{0,30}".prop_map(String::into_bytes),
        "\\.lock.{0,3}".prop_map(String::into_bytes),
        // Any text, and any bytes (not UTF-8 at all).
        ".{1,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..40),
    ]
    .prop_map(|mut name| {
        // What no file name can hold.
        name.retain(|b| *b != b'/' && *b != 0);
        name
    })
    .prop_filter("a name a file can have", |n| !n.is_empty() && n != b"." && n != b"..")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_bad_session_file_spoils_only_its_own_record(planted in planted()) {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        runtime().block_on(async {
            let s = seeded(tmp.path()).await;
            // The bad record: saved through the store (so its shard and file
            // exist), then overwritten.
            let bad = record(&s.clock, 60_000, 4);
            s.store.save(&bad).await.expect("saves");
            let path = FileStore::path_in(tmp.path(), &bad.id);
            let bytes = planted.bytes(&bad);
            fs::write(&path, &bytes).expect("writes the planted file");

            let loaded = s.store.load(&bad.id).await;
            let undecodable = match &loaded {
                Err(e) => {
                    prop_assert!(e.is_decode(), "not a decode error: {e}");
                    true
                }
                Ok(_) => false,
            };
            prop_assert!(!planted.never_decodes() || undecodable, "decoded {:?}", loaded);
            let bad_live = matches!(&loaded, Ok(Some(_)));
            good_records_intact(&s).await?;

            // Listed and counted alike: a live record, or one whose
            // deadline cannot be read (the listing names it, loading it
            // answers the decode error).
            let mut want: Vec<SessionId> = s.live.iter().map(|r| r.id).collect();
            let listed = match codec::decode_record_header(bad.id, &bytes) {
                Err(_) => true,
                Ok(header) => header.expires_at > s.clock.now(),
            };
            prop_assert!(!bad_live || listed, "a live record is listed");
            if listed {
                want.push(bad.id);
            }
            want.sort();
            let mut ids = s.store.ids().await.expect("ids goes past an undecodable file").into_iter().map(|h| h.stored()).collect::<Vec<_>>();
            ids.sort();
            prop_assert_eq!(&ids, &want);
            prop_assert_eq!(s.store.count().await.expect("count goes past it"), want.len() as u64);

            if undecodable {
                // Every operation that must read it says so, and changes nothing.
                let mut newer = bad.clone();
                newer.version = 1;
                prop_assert!(s.store.save(&newer).await.is_err_and(|e| e.is_decode()));
                prop_assert!(s.store.save_if_version(&newer).await.is_err_and(|e| e.is_decode()));
                prop_assert!(s.store.create(&newer).await.is_err_and(|e| e.is_decode()));
                let later = Timestamp::from_millis(s.clock.now().as_millis() + 1_000);
                prop_assert!(s.store.touch(&bad.id, later).await.is_err_and(|e| e.is_decode()));
                prop_assert!(s.store.rotate(&bad.id, &SessionId::random()).await.is_err_and(|e| e.is_decode()));
                prop_assert_eq!(fs::read(&path).expect("still there"), bytes.clone());
            }

            // Purge removes the expired good record, and the bad one if it
            // decoded as expired. An undecodable file is left for an
            // operator, or removed if the purge (reading only a file's
            // header) finds a past deadline there: either way, whole.
            let bad_expired = matches!(&loaded, Ok(None));
            let purged = s.store.purge_expired().await.expect("purge carries on past an undecodable file");
            prop_assert!(s.store.load(&s.expired.id).await.expect("loads").is_none());
            prop_assert!(!FileStore::path_in(tmp.path(), &s.expired.id).exists());
            if undecodable {
                match fs::read(&path) {
                    Ok(left) => {
                        prop_assert_eq!(left, bytes);
                        prop_assert_eq!(purged, 1);
                    }
                    Err(e) => {
                        prop_assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                        prop_assert_eq!(purged, 2);
                    }
                }
            } else {
                prop_assert_eq!(purged, 1 + u64::from(bad_expired));
                prop_assert_eq!(path.exists(), !bad_expired);
            }
            good_records_intact(&s).await?;

            // Delete removes it whatever it holds.
            s.store.delete(&bad.id).await.expect("deletes");
            prop_assert!(!path.exists());
            prop_assert!(s.store.load(&bad.id).await.expect("loads").is_none());
            good_records_intact(&s).await?;
            Ok(())
        })?;
    }

    #[test]
    fn files_with_other_names_are_never_sessions(
        names in prop::collection::vec((file_name(), 0..3u8), 1..6),
    ) {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        runtime().block_on(async {
            let s = seeded(tmp.path()).await;
            let shard = FileStore::path_in(tmp.path(), &s.live[0].id)
                .parent()
                .expect("a shard directory")
                .to_path_buf();
            let mut planted = Vec::new();
            for (name, place) in &names {
                let dir = match place {
                    0 => shard.clone(),
                    1 => tmp.path().to_path_buf(),
                    // A shard-like directory of its own.
                    _ => tmp.path().join("zz"),
                };
                let path = dir.join(OsStr::from_bytes(name));
                if path.exists() {
                    continue;
                }
                // A name that is exactly a session file of this shard is one.
                let is_session = std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| n.parse::<SessionId>().ok())
                    .is_some_and(|id| FileStore::path_in(tmp.path(), &id) == path);
                prop_assume!(!is_session);
                fs::create_dir_all(&dir).expect("makes the directory");
                // Contents that would count if the name were taken for an id.
                let mut other = record(&s.clock, 60_000, 9);
                other.version = 1;
                fs::write(&path, codec::encode_record(&other).expect("encodes")).expect("plants a file");
                planted.push(path);
            }
            let mut want: Vec<SessionId> = s.live.iter().map(|r| r.id).collect();
            want.sort();
            let mut ids = s.store.ids().await.expect("ids").into_iter().map(|h| h.stored()).collect::<Vec<_>>();
            ids.sort();
            prop_assert_eq!(&ids, &want);
            prop_assert_eq!(s.store.count().await.expect("count"), 2);
            prop_assert_eq!(s.store.purge_expired().await.expect("purges"), 1);
            good_records_intact(&s).await?;
            s.store.clear().await.expect("clears");
            prop_assert_eq!(s.store.count().await.expect("count"), 0);
            for path in &planted {
                // A temporary file's name may tell the store that its writer
                // is gone, and the store removes those; nothing else.
                let temporary = path.file_name().is_some_and(|n| n.as_bytes().starts_with(b".tmp-"));
                prop_assert!(temporary || path.exists(), "{} was removed", path.display());
            }
            Ok(())
        })?;
    }
}
