//! A "your devices" page over a store with ids hashed and bodies sealed at
//! rest (`at_rest::Protected`), next to the same page over the plain
//! store: the listing names sessions by handle, `Session::is_current` and
//! `Session::listing_fingerprint` mark this device in both, and ending the
//! other devices or the oldest past a cap works through the handles.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use common::{Browser, serve};
use session_store_core::SessionStore;
use session_store_core::at_rest::{AtRest, Protected, stored_id};
use session_store_core::seal::KeyRing;
use session_store_memory::MemoryStore;
use session_store_tower::{Session, SessionError, SessionLayer};

async fn count(session: Session) -> Result<String, SessionError> {
    let n = session
        .update(|s| {
            let n = s.get::<u64>("count")?.unwrap_or(0) + 1;
            s.insert("count", &n)?;
            Ok(n)
        })
        .await?;
    Ok(n.to_string())
}

async fn login(session: Session, Path(user): Path<String>) -> Result<&'static str, SessionError> {
    session.log_in(user).await?;
    Ok("in")
}

/// One line a device: its listed fingerprint, and ` *` for this one.
async fn devices(session: Session) -> Result<String, SessionError> {
    let mut body = String::new();
    for record in session.owner_sessions().await? {
        let mark = if session.is_current(&record).await? { " *" } else { "" };
        body.push_str(&format!("{}{mark}\n", record.handle.fingerprint()));
    }
    Ok(body)
}

/// This session's fingerprint and its listing fingerprint.
async fn whoami(session: Session) -> Result<String, SessionError> {
    let show = |f: Option<session_store_core::Fingerprint>| f.map_or_else(|| "-".to_owned(), |f| f.to_string());
    Ok(format!(
        "{} {}",
        show(session.fingerprint().await?),
        show(session.listing_fingerprint().await?)
    ))
}

async fn others(session: Session) -> Result<String, SessionError> {
    Ok(session.log_out_other_sessions().await?.to_string())
}

fn app(store: Arc<dyn SessionStore>, cap: Option<usize>) -> Router {
    let mut layer = SessionLayer::from_arc(store);
    if let Some(cap) = cap {
        layer = layer.max_sessions_per_owner(cap);
    }
    Router::new()
        .route("/", get(count))
        .route("/login/{user}", post(login))
        .route("/devices", get(devices))
        .route("/whoami", get(whoami))
        .route("/others", post(others))
        .layer(layer)
}

fn keys() -> KeyRing {
    KeyRing::parse(&format!("1:{}", "5a".repeat(32))).expect("a key ring")
}

/// The stores the page runs over, and whether each hashes ids.
fn stores() -> Vec<(&'static str, Arc<dyn SessionStore>, bool)> {
    vec![
        ("plain", Arc::new(MemoryStore::new()), false),
        (
            "hashed",
            Arc::new(Protected::new(MemoryStore::new(), AtRest::new().hash_ids(true))),
            true,
        ),
        (
            "encrypted",
            Arc::new(Protected::new(MemoryStore::new(), AtRest::new().encrypt(keys()))),
            false,
        ),
        (
            "hashed and encrypted",
            Arc::new(Protected::new(
                MemoryStore::new(),
                AtRest::new().hash_ids(true).encrypt(keys()),
            )),
            true,
        ),
    ]
}

async fn logged_in(base: &str, user: &str) -> Browser {
    let b = Browser::new(base);
    assert_eq!(b.ok("/").await, "1");
    assert_eq!(b.post(&format!("/login/{user}")).await.status, 200);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_devices_marks_this_one_with_ids_hashed_or_not() {
    for (name, store, hashed) in stores() {
        let base = serve(app(Arc::clone(&store), None)).await;
        let (laptop, phone) = (logged_in(&base, "alice").await, logged_in(&base, "alice").await);
        let bob = logged_in(&base, "bob").await;
        for (device, other) in [(&laptop, &phone), (&phone, &laptop)] {
            let listed = device.ok("/devices").await;
            assert_eq!(listed.lines().count(), 2, "{name}: {listed}");
            let marked: Vec<&str> = listed.lines().filter(|l| l.ends_with(" *")).collect();
            assert_eq!(marked.len(), 1, "{name}: exactly this device is marked: {listed}");
            let id = device.id().expect("a session id");
            let (fingerprint, listing) = device
                .ok("/whoami")
                .await
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .expect("two fingerprints");
            assert_eq!(fingerprint, id.fingerprint().to_string(), "{name}");
            assert_eq!(marked[0], format!("{listing} *"), "{name}: {listed}");
            // With hashed ids the listing names the stored hash, never the id.
            let handle = if hashed { stored_id(&id) } else { id };
            assert_eq!(listing, handle.fingerprint().to_string(), "{name}");
            assert_eq!(hashed, listing != fingerprint, "{name}");
            let other_handle = store.listing_handle(&other.id().expect("an id"));
            assert!(
                listed.contains(&format!("{}\n", other_handle.fingerprint())),
                "{name}: {listed}"
            );
            if hashed {
                assert!(
                    !listed.contains(&id.fingerprint().to_string()),
                    "{name}: the cookie's fingerprint is not what the listing shows: {listed}"
                );
            }
        }
        // A session not stored yet has no listing fingerprint.
        assert_eq!(Browser::new(&base).ok("/whoami").await, "- -", "{name}");

        // "Log out my other devices" from the laptop: the phone goes, bob stays.
        assert_eq!(laptop.post("/others").await.body, "1", "{name}");
        assert_eq!(laptop.ok("/").await, "2", "{name}: the laptop's session stays");
        assert_eq!(phone.ok("/").await, "1", "{name}: the phone's session ended");
        assert_eq!(bob.ok("/").await, "2", "{name}: another user's session is untouched");
        assert_eq!(laptop.ok("/devices").await.lines().count(), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_per_owner_ends_the_oldest_device_through_its_handle() {
    for (name, store, _) in stores() {
        let base = serve(app(Arc::clone(&store), Some(2))).await;
        let mut devices = Vec::new();
        for _ in 0..3 {
            devices.push(logged_in(&base, "alice").await);
            // Creation times are in milliseconds: keep the order plain.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let listed = devices[2].ok("/devices").await;
        assert_eq!(listed.lines().count(), 2, "{name}: {listed}");
        assert_eq!(
            devices[0].ok("/").await,
            "1",
            "{name}: the oldest device was logged out"
        );
        assert_eq!(devices[1].ok("/").await, "2", "{name}");
        assert_eq!(devices[2].ok("/").await, "2", "{name}");
        assert_eq!(listed.matches(" *").count(), 1, "{name}: {listed}");
    }
}
