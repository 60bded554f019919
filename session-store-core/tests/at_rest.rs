//! `at_rest::Protected` over a real store: what it hides, what it
//! refuses, and rotate with encryption.

use std::sync::Arc;

use session_store_core::at_rest::{AtRest, Protected, inner_limit, stored_id, stored_owner};
use session_store_core::seal::KeyRing;
use session_store_core::{
    Clock, Error, ManualClock, Record, SessionData, SessionId, SessionStore, Timestamp, raw::codec,
};

/// A plain in-memory store: what the tests look beneath.
fn plain(clock: &Arc<ManualClock>) -> session_store_memory::MemoryStore {
    session_store_memory::MemoryStore::builder()
        .clock(clock.clone())
        .build()
}

fn ring(entries: &[(u8, u8)]) -> KeyRing {
    let mut ring: Option<KeyRing> = None;
    for &(id, byte) in entries {
        match &mut ring {
            None => ring = Some(KeyRing::new(id, [byte; 32])),
            Some(r) => {
                r.add(id, [byte; 32]).unwrap();
            }
        }
    }
    ring.unwrap()
}

fn record(clock: &ManualClock, owner: Option<&str>) -> Record {
    let mut data = SessionData::new();
    data.insert("secret", &"marker-value-42").unwrap();
    let now = clock.now();
    let mut r = Record::with_deadline(SessionId::random(), data, now, now + std::time::Duration::from_secs(60));
    r.owner = owner.map(str::to_owned);
    r
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn the_inner_store_sees_neither_the_id_nor_the_data_nor_the_owner() {
    block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let store = Protected::new(plain(&clock), AtRest::new().hash_ids(true).encrypt(ring(&[(1, 7)])));
        let r = record(&clock, Some("alice@example.com"));
        store.create(&r).await.unwrap();
        let loaded = store.load(&r.id).await.unwrap().unwrap();
        assert_eq!(
            (loaded.id, &loaded.data, loaded.owner.as_deref()),
            (r.id, &r.data, Some("alice@example.com"))
        );

        assert!(store.inner().load(&r.id).await.unwrap().is_none());
        let inner = store.inner().load(&stored_id(&r.id)).await.unwrap().unwrap();
        let bytes = codec::encode_record(&inner).unwrap();
        for needle in [
            r.id.to_string().as_bytes(),
            &r.id.to_bytes()[..],
            b"marker-value-42",
            b"secret",
            b"alice",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{needle:?} is stored"
            );
        }
        assert_eq!(inner.owner, Some(stored_owner("alice@example.com")));
        // Listings give handles, which end the session but are no ids.
        let handles = store.owner_sessions("alice@example.com").await.unwrap();
        assert_eq!(handles, [store.listing_handle(&r.id)]);
        assert_eq!(store.ids().await.unwrap(), handles);
        assert!(store.load(&handles[0].stored()).await.unwrap().is_none());
        assert_eq!(store.load_listed(&handles[0]).await.unwrap().unwrap().data, r.data);
        store.delete_listed(&handles[0]).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_none());
    });
}

#[test]
fn a_body_moved_to_another_id_or_under_a_retired_key_fails_for_that_record_only() {
    block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let inner = plain(&clock);
        let old = Protected::new(inner.clone(), AtRest::new().hash_ids(true).encrypt(ring(&[(1, 7)])));
        let (a, b) = (record(&clock, None), record(&clock, None));
        old.create(&a).await.unwrap();
        old.create(&b).await.unwrap();
        // b's stored record now holds a's sealed body.
        let mut moved = inner.load(&stored_id(&a.id)).await.unwrap().unwrap();
        moved.id = stored_id(&b.id);
        inner.save(&moved).await.unwrap();
        let e = old.load(&b.id).await.unwrap_err();
        assert!(e.is_decode() && e.fingerprint() == Some(b.id.fingerprint()), "{e}");
        assert!(!e.to_string().contains(&b.id.to_string()));
        assert_eq!(old.load(&a.id).await.unwrap().unwrap().data, a.data);

        // Rotation of keys: 2 seals from now on, 1 still opens; retired, it does not.
        let both = Protected::new(
            inner.clone(),
            AtRest::new().hash_ids(true).encrypt(ring(&[(1, 7), (2, 9)])),
        );
        let c = record(&clock, None);
        both.create(&c).await.unwrap();
        assert!(both.load(&a.id).await.unwrap().is_some());
        let mut retired = ring(&[(1, 7), (2, 9)]);
        retired.retire(1).unwrap();
        let new = Protected::new(inner.clone(), AtRest::new().hash_ids(true).encrypt(retired));
        let e = new.load(&a.id).await.unwrap_err();
        assert!(e.is_decode() && e.to_string().contains("retired"), "{e}");
        assert_eq!(new.load(&c.id).await.unwrap().unwrap().data, c.data);
        let wrong = Protected::new(inner.clone(), AtRest::new().hash_ids(true).encrypt(ring(&[(2, 8)])));
        assert!(wrong.load(&c.id).await.unwrap_err().is_decode());
    });
}

#[test]
fn rotate_reseals_under_the_new_id_keeping_the_version() {
    block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        for at_rest in [
            AtRest::new().hash_ids(true),
            AtRest::new().encrypt(ring(&[(1, 7)])),
            AtRest::new().hash_ids(true).encrypt(ring(&[(1, 7)])),
        ] {
            let store = Protected::new(plain(&clock), at_rest);
            let mut r = record(&clock, Some("bob"));
            store.create(&r).await.unwrap();
            r.version = 1;
            store.save_if_version(&r).await.unwrap();
            let new = SessionId::random();
            assert!(store.rotate(&r.id, &new).await.unwrap());
            assert!(store.load(&r.id).await.unwrap().is_none());
            let moved = store.load(&new).await.unwrap().unwrap();
            assert_eq!(
                (moved.version, &moved.data, moved.owner.as_deref()),
                (2, &r.data, Some("bob"))
            );
            assert_eq!(store.owner_sessions("bob").await.unwrap(), [store.listing_handle(&new)]);
            r.version = 2;
            assert!(store.save_if_version(&r).await.unwrap_err().is_conflict());
            assert!(!store.rotate(&r.id, &SessionId::random()).await.unwrap());
            assert!(matches!(store.rotate(&new, &new).await, Err(Error::IdCollision { .. })));
            assert_eq!(store.count().await.unwrap(), 1);
        }
    });
}

#[test]
fn unsealed_records_are_refused_or_read_until_rewritten() {
    block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let inner = plain(&clock);
        let r = record(&clock, None);
        inner.create(&r).await.unwrap();
        let strict = Protected::new(inner.clone(), AtRest::new().encrypt(ring(&[(1, 7)])));
        let e = strict.load(&r.id).await.unwrap_err();
        assert!(e.is_decode() && e.to_string().contains("not sealed"), "{e}");
        let lenient = Protected::new(
            inner.clone(),
            AtRest::new().encrypt(ring(&[(1, 7)])).read_unsealed(true),
        );
        let mut loaded = lenient.load(&r.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, r.data);
        loaded.version = lenient.save_if_version(&loaded).await.unwrap();
        assert!(
            inner
                .load(&r.id)
                .await
                .unwrap()
                .unwrap()
                .data
                .get_raw("secret")
                .is_none()
        );
        assert_eq!(strict.load(&r.id).await.unwrap().unwrap().data, r.data);
    });
}

#[test]
fn the_limit_is_on_the_data_before_sealing() {
    block_on(async {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let inner = session_store_memory::MemoryStore::builder()
            .clock(clock.clone())
            .max_record_bytes(inner_limit(100))
            .build();
        let store = Protected::new(
            inner,
            AtRest::new()
                .hash_ids(true)
                .encrypt(ring(&[(1, 7)]))
                .max_record_bytes(100),
        );
        let mut r = record(&clock, Some("x"));
        r.data = SessionData::new();
        r.data.insert_raw("k".repeat(50), format!("\"{}\"", "v".repeat(48)));
        assert_eq!(r.data.byte_size(), 100);
        store.create(&r).await.unwrap();
        r.data.insert_raw("k".to_owned(), "1".to_owned());
        assert!(matches!(
            store.save(&r).await,
            Err(Error::TooLarge { size: 102, limit: 100 })
        ));
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data.len(), 1);
    });
}
