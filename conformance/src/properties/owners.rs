//! Owners: a record's owner round-trips, and the owner index (list and
//! revoke an owner's sessions) follows every write, rotate, delete, expiry
//! and purge.

use super::*;

const OWNER: &str = "a record's owner round-trips through every write, and rotate keeps it";
const OWNER_INDEX: &str = "owner_sessions lists exactly the live sessions whose record names that owner, after every write, rotate, delete, expiry and purge";
const REVOKE_RACE: &str = "a revoke racing logins of the same owner ends every session that existed before it began, counts exactly the live ones it ended, and every login that survives it stays listed";
const REVOKE: &str = "delete_owner_sessions removes every session of the owner except the one kept, counts the live ones, and touches no other session";

fn owned(env: &Env<'_, impl Harness>, owner: Option<&str>, n: i64, ttl_ms: u64) -> Record {
    let mut r = env.record(data_of(&[("n", n)]), ttl_ms);
    r.owner = owner.map(str::to_owned);
    r
}

/// The owner's listed ids, sorted.
async fn listed<H: Harness>(env: &Env<'_, H>, store: &H::Store, owner: &str) -> Result<Vec<ListingHandle>, Failure> {
    let mut ids = store.owner_sessions(owner).await.map_err(env.op("owner_sessions"))?;
    ids.sort();
    Ok(ids)
}

/// `ids` as `store`'s listings name them (see
/// [`SessionStore::listing_handle`]), sorted.
fn sorted<S: SessionStore + ?Sized>(store: &S, ids: Vec<SessionId>) -> Vec<ListingHandle> {
    let mut ids: Vec<ListingHandle> = ids.iter().map(|id| store.listing_handle(id)).collect();
    ids.sort();
    ids
}

/// Create, save and save-if-version store the record's owner (or none),
/// a save can change or remove it, and rotate keeps it. Every store keeps
/// the owner, with or without an owner index.
pub async fn the_owner_round_trips_through_every_write<H: Harness>(harness: &H) -> Verdict {
    let env = Env::new(harness, "the_owner_round_trips_through_every_write").await?;
    let store = env.open().await?;
    let mut r = owned(&env, Some("user:42 ünïcode"), 1, 60_000);
    store.create(&r).await.map_err(env.op("create"))?;
    for (step, owner) in [
        ("save", Some("user:7")),
        ("save_if_version", None),
        ("save", Some("user:42")),
    ] {
        let got = store.load(&r.id).await.map_err(env.op("load"))?;
        let got_owner = got.as_ref().and_then(|g| g.owner.clone());
        ensure!(
            env,
            got_owner == r.owner,
            OWNER,
            "before {step}: stored owner {got_owner:?}, written {:?}",
            r.owner
        );
        r.version = got.map_or(0, |g| g.version);
        r.owner = owner.map(str::to_owned);
        r.version = if step == "save" {
            store.save(&r).await.map_err(env.op("save"))?
        } else {
            store.save_if_version(&r).await.map_err(env.op("save_if_version"))?
        };
    }
    let new = SessionId::random();
    let moved = store.rotate(&r.id, &new).await.map_err(env.op("rotate"))?;
    ensure!(env, moved, ROTATE, "rotate of a live record returned false");
    let got = store.load(&new).await.map_err(env.op("load"))?.and_then(|g| g.owner);
    ensure!(
        env,
        got.as_deref() == Some("user:42"),
        OWNER,
        "after rotate the owner is {got:?}"
    );
    Ok(Pass::Passed)
}

/// `owner_sessions` lists exactly the live sessions of an owner: after
/// create and save (other owners and unowned sessions never listed), a
/// save that changes the owner, rotate (the new id, not the old), delete,
/// expiry (at exactly the deadline) and purge.
pub async fn owner_sessions_follow_every_write_rotate_delete_and_expiry<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().owner_index {
        return skipped("the harness does not declare the `owner_index` capability");
    }
    let env = Env::new(harness, "owner_sessions_follow_every_write_rotate_delete_and_expiry").await?;
    let store = env.open().await?;
    let a1 = owned(&env, Some("alice"), 1, 60_000);
    let a2 = owned(&env, Some("alice"), 2, 60_000);
    let short = owned(&env, Some("alice"), 3, 1_000);
    let b1 = owned(&env, Some("bob"), 4, 60_000);
    let none = owned(&env, None, 5, 60_000);
    for r in [&a1, &short, &b1, &none] {
        store.create(r).await.map_err(env.op("create"))?;
    }
    store.save(&a2).await.map_err(env.op("save"))?;
    let got = listed(&env, &store, "alice").await?;
    let want = sorted(&store, vec![a1.id, a2.id, short.id]);
    ensure!(
        env,
        got == want,
        OWNER_INDEX,
        "after creates and a save: {got:?}, expected {want:?}"
    );
    let got = listed(&env, &store, "nobody").await?;
    ensure!(env, got.is_empty(), OWNER_INDEX, "an unknown owner lists {got:?}");

    // A save moves a2 from alice to bob.
    let mut moved = a2.clone();
    moved.version = 1;
    moved.owner = Some("bob".into());
    store.save_if_version(&moved).await.map_err(env.op("save_if_version"))?;
    let (alice, bob) = (listed(&env, &store, "alice").await?, listed(&env, &store, "bob").await?);
    ensure!(
        env,
        alice == sorted(&store, vec![a1.id, short.id]) && bob == sorted(&store, vec![b1.id, a2.id]),
        OWNER_INDEX,
        "after a save changed a2's owner: alice {alice:?}, bob {bob:?}"
    );

    // Rotate: the new id is listed, the old one is not.
    let rotated = SessionId::random();
    let ok = store.rotate(&a1.id, &rotated).await.map_err(env.op("rotate"))?;
    ensure!(env, ok, ROTATE, "rotate of a live record returned false");
    let got = listed(&env, &store, "alice").await?;
    let want = sorted(&store, vec![rotated, short.id]);
    ensure!(
        env,
        got == want,
        OWNER_INDEX,
        "after a rotate: {got:?}, expected {want:?}"
    );

    // Expiry, at exactly the deadline, then purge.
    env.set(short.expires_at);
    let got = listed(&env, &store, "alice").await?;
    ensure!(
        env,
        got == sorted(&store, vec![rotated]),
        OWNER_INDEX,
        "at the short session's deadline: {got:?}"
    );
    store.purge_expired().await.map_err(env.op("purge_expired"))?;
    let got = listed(&env, &store, "alice").await?;
    ensure!(
        env,
        got == sorted(&store, vec![rotated]),
        OWNER_INDEX,
        "after purge: {got:?}"
    );

    // Delete; then a new session under the purged id's owner.
    store.delete(&rotated).await.map_err(env.op("delete"))?;
    let got = listed(&env, &store, "alice").await?;
    ensure!(
        env,
        got.is_empty(),
        OWNER_INDEX,
        "after deleting alice's last session: {got:?}"
    );
    let again = owned(&env, Some("alice"), 6, 60_000);
    store.create(&again).await.map_err(env.op("create"))?;
    let got = listed(&env, &store, "alice").await?;
    ensure!(
        env,
        got == sorted(&store, vec![again.id]),
        OWNER_INDEX,
        "after a new login: {got:?}"
    );
    let got = listed(&env, &store, "bob").await?;
    ensure!(
        env,
        got == sorted(&store, vec![b1.id, a2.id]),
        OWNER_INDEX,
        "bob's sessions changed: {got:?}"
    );
    Ok(Pass::Passed)
}

/// `delete_owner_sessions` with a session to keep removes the owner's
/// others and says how many live ones it removed (an expired one is not
/// counted); without one it removes them all; other owners' and unowned
/// sessions stay.
pub async fn revoking_an_owner_removes_exactly_that_owners_sessions<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().owner_index {
        return skipped("the harness does not declare the `owner_index` capability");
    }
    let env = Env::new(harness, "revoking_an_owner_removes_exactly_that_owners_sessions").await?;
    let store = env.open().await?;
    let alice: Vec<Record> = (0..4).map(|n| owned(&env, Some("alice"), n, 60_000)).collect();
    let stale = owned(&env, Some("alice"), 9, 1_000);
    let bob = owned(&env, Some("bob"), 10, 60_000);
    let none = owned(&env, None, 11, 60_000);
    for r in alice.iter().chain([&stale, &bob, &none]) {
        store.create(r).await.map_err(env.op("create"))?;
    }
    env.set(stale.expires_at);
    let keep = alice[1].id;
    let removed = store
        .delete_owner_sessions("alice", Some(&keep))
        .await
        .map_err(env.op("delete_owner_sessions"))?;
    ensure!(
        env,
        removed == 3,
        REVOKE,
        "revoking all but one of 4 live sessions (and 1 expired) said {removed}"
    );
    for r in &alice {
        let loaded = store.load(&r.id).await.map_err(env.op("load"))?.is_some();
        ensure!(
            env,
            loaded == (r.id == keep),
            REVOKE,
            "after revoking all but one, session {:?} {}",
            r.id,
            if loaded {
                "still loads"
            } else {
                "is gone, but it was the one kept"
            }
        );
    }
    for r in [&bob, &none] {
        let loaded = store.load(&r.id).await.map_err(env.op("load"))?.is_some();
        ensure!(
            env,
            loaded,
            REVOKE,
            "revoking alice removed {:?} (owner {:?})",
            r.id,
            r.owner
        );
    }
    let got = listed(&env, &store, "alice").await?;
    ensure!(
        env,
        got == sorted(&store, vec![keep]),
        REVOKE,
        "after revoking all but one, alice lists {got:?}"
    );
    let removed = store
        .delete_owner_sessions("alice", None)
        .await
        .map_err(env.op("delete_owner_sessions"))?;
    ensure!(
        env,
        removed == 1,
        REVOKE,
        "revoking alice's last session said {removed}"
    );
    let got = listed(&env, &store, "alice").await?;
    ensure!(env, got.is_empty(), REVOKE, "after revoking all, alice lists {got:?}");
    let removed = store
        .delete_owner_sessions("alice", None)
        .await
        .map_err(env.op("delete_owner_sessions"))?;
    ensure!(
        env,
        removed == 0,
        REVOKE,
        "revoking an owner with no sessions said {removed}"
    );
    Ok(Pass::Passed)
}

/// Four rounds of `delete_owner_sessions` racing twelve new logins
/// (creates) of the same owner, all started together: every one of the six
/// sessions stored before the revoke began is gone, the revoke's count is
/// exactly the live sessions it ended (the six and the logins it caught),
/// every login that survived is listed by `owner_sessions` (an index that
/// lost a login made during a revoke would leave a session no later revoke
/// can end), another owner's session is untouched, and a second revoke
/// ends every survivor.
pub async fn a_revoke_racing_logins_ends_every_earlier_session_and_keeps_every_survivor_listed<H: Harness>(
    harness: &H,
) -> Verdict {
    if !harness.capabilities().owner_index {
        return skipped("the harness does not declare the `owner_index` capability");
    }
    let env = Env::new(
        harness,
        "a_revoke_racing_logins_ends_every_earlier_session_and_keeps_every_survivor_listed",
    )
    .await?;
    let store = Arc::new(env.open().await?);
    let bystander = owned(&env, Some("bystander"), -1, 60_000);
    store.create(&bystander).await.map_err(env.op("create"))?;
    for round in 0..4 {
        let owner = format!("racer-{round}");
        let before: Vec<Record> = (0..6).map(|n| owned(&env, Some(&owner), n, 60_000)).collect();
        for r in &before {
            store.create(r).await.map_err(env.op("create"))?;
        }
        let logins: Vec<Record> = (0..12).map(|n| owned(&env, Some(&owner), 100 + n, 60_000)).collect();
        type Job = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, Error>> + Send>>;
        let mut jobs: Vec<Job> = Vec::new();
        {
            let (store, owner) = (store.clone(), owner.clone());
            jobs.push(Box::pin(async move { store.delete_owner_sessions(&owner, None).await }));
        }
        for r in &logins {
            let (store, r) = (store.clone(), r.clone());
            jobs.push(Box::pin(async move { store.create(&r).await.map(|_| 0) }));
        }
        let outputs = start_together(&env, REVOKE_RACE, "a racing revoke or login", jobs).await?;
        let mut outputs = outputs.into_iter();
        let ended = outputs
            .next()
            .unwrap_or(Ok(0))
            .map_err(env.op("delete_owner_sessions racing logins"))?;
        for r in outputs {
            r.map_err(env.op("create (a login racing a revoke)"))?;
        }
        for r in &before {
            let loaded = store.load(&r.id).await.map_err(env.op("load"))?;
            ensure!(
                env,
                loaded.is_none(),
                REVOKE_RACE,
                "round {round}: session {:?}, stored before the revoke began, survived it",
                r.id
            );
        }
        let mut survivors = Vec::new();
        for r in &logins {
            if store.load(&r.id).await.map_err(env.op("load"))?.is_some() {
                survivors.push(r.id);
            }
        }
        let want = (before.len() + logins.len() - survivors.len()) as u64;
        ensure!(
            env,
            ended == want,
            REVOKE_RACE,
            "round {round}: the revoke said it ended {ended} live sessions, but {want} are gone (6 from before and {} of 12 racing logins)",
            logins.len() - survivors.len()
        );
        let got = listed(&env, &store, &owner).await?;
        let surviving = sorted(&store, survivors.clone());
        ensure!(
            env,
            got == surviving,
            REVOKE_RACE,
            "round {round}: after the race the owner lists {got:?}, but the logins that survived are {surviving:?}"
        );
        let again = store
            .delete_owner_sessions(&owner, None)
            .await
            .map_err(env.op("delete_owner_sessions"))?;
        ensure!(
            env,
            again == survivors.len() as u64,
            REVOKE_RACE,
            "round {round}: a second revoke ended {again}, but {} logins had survived the first",
            survivors.len()
        );
        for id in &survivors {
            let loaded = store.load(id).await.map_err(env.op("load"))?;
            ensure!(
                env,
                loaded.is_none(),
                REVOKE_RACE,
                "round {round}: login {id:?} survived a revoke with nothing racing it"
            );
        }
    }
    let loaded = store.load(&bystander.id).await.map_err(env.op("load"))?;
    ensure!(
        env,
        loaded.is_some(),
        REVOKE_RACE,
        "another owner's session was ended by the racing revokes"
    );
    Ok(Pass::Passed)
}

const OWNER_STRINGS: &str = "owners are exact strings: owner_sessions and delete_owner_sessions match an owner byte for byte (no case folding, no normalization, no prefix or pattern match, the empty owner is an owner like any other), whatever its length, and only in their own namespace";

/// Owners that look alike but are not the same string: case, accents
/// (composed and decomposed), a prefix and a separator, characters that
/// are patterns in SQL, Redis globs and shells, whitespace, the empty
/// owner and owners of hundreds of bytes. Each has sessions in two
/// namespaces (a different number in each); every owner lists exactly its
/// own in each namespace, and revoking one owner in one namespace ends
/// exactly its sessions there, nothing of a look-alike and nothing in the
/// other namespace. One owner holds a few hundred sessions,
/// listed and revoked in full.
pub async fn owners_are_exact_strings_in_their_own_namespace<H: Harness>(harness: &H) -> Verdict {
    if !harness.capabilities().owner_index {
        return skipped("the harness does not declare the `owner_index` capability");
    }
    let env = Env::new(harness, "owners_are_exact_strings_in_their_own_namespace").await?;
    let a = env.open().await?;
    let other_ns = env.another_namespace().await?;
    let b = env.open_on(&other_ns).await?;
    let long = "ü".repeat(150);
    let owners: Vec<String> = [
        "alice",
        "Alice",
        "ALICE",
        "alice ",
        " alice",
        "alice:",
        "alice:1",
        "alic",
        "alicé",
        "alice\u{301}",
        "alice*",
        "ali?e",
        "al[i]ce",
        "al%ce",
        "al_ce",
        "al\\ce",
        "al'ce",
        "al\"ce",
        "al{i}ce",
        "al\nce",
        "",
        "*",
        "%",
        long.as_str(),
        &long[..long.len() - 2],
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // Owner i has i % 3 + 1 sessions in a and i % 2 + 1 in b.
    let mut in_a: Vec<Vec<SessionId>> = Vec::new();
    let mut in_b: Vec<Vec<SessionId>> = Vec::new();
    for (i, owner) in owners.iter().enumerate() {
        let mut ids = Vec::new();
        for n in 0..(i % 3 + 1) {
            let r = owned(&env, Some(owner), n as i64, 60_000);
            a.create(&r).await.map_err(env.op("create"))?;
            ids.push(r.id);
        }
        in_a.push(ids);
        let mut ids = Vec::new();
        for n in 0..(i % 2 + 1) {
            let r = owned(&env, Some(owner), n as i64, 60_000);
            b.create(&r).await.map_err(env.op("create"))?;
            ids.push(r.id);
        }
        in_b.push(ids);
    }
    let check_all = |when: &'static str, in_a: Vec<Vec<SessionId>>, in_b: Vec<Vec<SessionId>>| {
        let (a, b, env, owners) = (&a, &b, &env, &owners);
        async move {
            for (i, owner) in owners.iter().enumerate() {
                for (store, expected, ns) in [(a, &in_a[i], "a"), (b, &in_b[i], "b")] {
                    let got = listed(env, store, owner).await?;
                    ensure!(
                        env,
                        got == sorted(store, expected.clone()),
                        OWNER_STRINGS,
                        "{when}: owner {owner:?} in namespace {ns} lists {} sessions, expected its {}",
                        got.len(),
                        expected.len()
                    );
                }
            }
            Ok::<(), Failure>(())
        }
    };
    check_all("after the creates", in_a.clone(), in_b.clone()).await?;
    // Revoke look-alikes of "alice" one by one in namespace a.
    for i in [0_usize, 1, 5, 9, 10, 20, 23] {
        let removed = a
            .delete_owner_sessions(&owners[i], None)
            .await
            .map_err(env.op("delete_owner_sessions"))?;
        let expected = in_a[i].len() as u64;
        ensure!(
            env,
            removed == expected,
            OWNER_STRINGS,
            "revoking owner {:?} in namespace a said {removed}, expected {expected}",
            owners[i]
        );
        in_a[i].clear();
        check_all("after a revoke", in_a.clone(), in_b.clone()).await?;
    }
    // One owner with many sessions: listed, then revoked in full.
    let many = 300;
    let mut crowd = Vec::new();
    for n in 0..many {
        let r = owned(&env, Some("crowd"), n, 60_000);
        a.create(&r).await.map_err(env.op("create"))?;
        crowd.push(r.id);
    }
    let got = listed(&env, &a, "crowd").await?;
    ensure!(
        env,
        got == sorted(&a, crowd.clone()),
        OWNER_STRINGS,
        "an owner with {many} sessions lists {}",
        got.len()
    );
    let removed = a
        .delete_owner_sessions("crowd", None)
        .await
        .map_err(env.op("delete_owner_sessions"))?;
    ensure!(
        env,
        removed == many as u64,
        OWNER_STRINGS,
        "revoking an owner with {many} sessions said {removed}"
    );
    for id in &crowd {
        ensure!(
            env,
            a.load(id).await.map_err(env.op("load"))?.is_none(),
            OWNER_STRINGS,
            "a session of the revoked owner with {many} sessions still loads"
        );
    }
    check_all("at the end", in_a, in_b).await?;
    Ok(Pass::Passed)
}
