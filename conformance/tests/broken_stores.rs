//! The suite proves it can fail: deliberately broken stores, each breaking
//! one rule of the contract, must each be caught by the property that names
//! that rule (and, where the rule is not about concurrency or namespaces, by
//! the model-based test too). A control run shows the wrapper without a
//! flaw passes everything, so it is the flaw that is caught.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use session_store_conformance::model::{ModelSettings, model_matches_the_reference};
use session_store_conformance::{Capabilities, Failure, Harness, StoreConfig, Verdict, block_on, properties};
use session_store_core::{
    Clock, Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait,
    raw::codec::check_size,
};
use session_store_memory::MemoryStore;

/// The one rule a broken store breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// No flaw: the control.
    None,
    /// Records stay live at `now == expires_at` (the store's clock lags 1ms).
    OffByOneDeadline,
    /// Touch of an expired (or deleted) record writes it back.
    TouchRevives,
    /// Create overwrites a live record.
    CreateOverwrites,
    /// save_if_version checks the version, waits a round trip, then writes.
    NonAtomicConditionalSave,
    /// Purge also removes live records due within two seconds.
    PurgeDeletesLive,
    /// Count includes expired records not yet purged.
    CountIncludesExpired,
    /// Every namespace shares one global store.
    NamespaceLeak,
    /// Writes drop the data's last key.
    TruncatedData,
    /// Rotate copies: the old id keeps loading.
    RotateKeepsOld,
    /// save_if_version on a deleted or expired record writes it anyway.
    ConditionalSaveResurrects,
    /// save and save_if_version ignore the size limit (create keeps it).
    SizeLimitOnlyOnCreate,
    /// Touch rewrites the record through save, bumping its version.
    TouchBumpsVersion,
    /// Deadlines are stored in whole seconds (rounded down).
    DeadlineInSeconds,
    /// Save writes half the keys, yields, then the whole record.
    TornSave,
    /// Values over 1 MiB are cut to 1 MiB.
    HugeValuesCut,
    /// Create refuses an id whose record expired but was not purged yet.
    ExpiredRecordBlocksCreate,
    /// Deleting an id that is not stored is an error.
    DeleteOfAbsentFails,
    /// Rotate onto a live id overwrites it.
    RotateOverwritesLive,
    /// save_if_version accepts an older version than the stored one.
    StaleVersionAccepted,
    /// save_if_version with the right version writes over an expired record.
    ConditionalSaveOnExpired,
    /// Save deletes and creates, so versions restart at 1.
    SaveRestartsVersions,
    /// ids lists expired records not yet purged.
    IdsIncludeExpired,
    /// A capacity of 32 records: more are silently evicted.
    EvictsUnderLoad,
    /// Rotate of an expired record moves it (alive again) to the new id.
    RotateRevivesExpired,
    /// Create stores version 1 but answers 0.
    CreateAnswersNoVersion,
}

/// A clock `lag` milliseconds behind another.
#[derive(Debug)]
struct LagClock(SharedClock, u64);

impl Clock for LagClock {
    fn now(&self) -> Timestamp {
        self.0.now() - Duration::from_millis(self.1)
    }
}

/// A clock whose source can be swapped (for the leaking store, shared by
/// every namespace).
#[derive(Debug)]
struct ProxyClock(RwLock<SharedClock>);

impl Clock for ProxyClock {
    fn now(&self) -> Timestamp {
        self.0.read().map(|c| c.now()).unwrap_or_default()
    }
}

/// `MemoryStore` with one flaw. `written` shadows every record written and
/// not deleted, expired ones included (what a lazy store physically holds).
#[derive(Debug, Clone)]
struct BrokenStore {
    inner: MemoryStore,
    flaw: Flaw,
    clock: SharedClock,
    limit: usize,
    written: Arc<Mutex<HashMap<SessionId, Record>>>,
}

impl BrokenStore {
    fn remember(&self, record: &Record, version: u64) {
        let mut r = record.clone();
        r.version = version;
        self.written.lock().unwrap().insert(r.id, r);
    }

    fn forget(&self, id: &SessionId) {
        self.written.lock().unwrap().remove(id);
    }

    /// The record as this store writes it (mangled for some flaws).
    fn mangle(&self, record: &Record) -> Record {
        let mut r = record.clone();
        match self.flaw {
            Flaw::TruncatedData => {
                if let Some(last) = r.data.iter().last().map(|(k, _)| k.to_owned()) {
                    r.data.remove(&last);
                }
            }
            Flaw::DeadlineInSeconds => r.expires_at = seconds(r.expires_at),
            Flaw::HugeValuesCut => {
                let huge: Vec<(String, String)> = r
                    .data
                    .iter()
                    .filter(|(_, v)| v.len() > 1 << 20)
                    .map(|(k, v)| (k.to_owned(), format!("{}\"", &v[..(1 << 20) - 1])))
                    .collect();
                for (k, v) in huge {
                    r.data.insert_raw(k, v);
                }
            }
            _ => {}
        }
        r
    }

    fn check_size(&self, record: &Record) -> Result<()> {
        check_size(&record.data, self.limit)
    }

    fn shadow(&self, id: &SessionId) -> Option<Record> {
        self.written.lock().unwrap().get(id).cloned()
    }
}

/// `t` rounded down to a whole second.
fn seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_millis(t.as_millis().div_euclid(1_000) * 1_000)
}

#[async_trait]
impl SessionStore for BrokenStore {
    fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    async fn create(&self, record: &Record) -> Result<u64> {
        self.check_size(record)?;
        let r = self.mangle(record);
        match self.flaw {
            Flaw::CreateOverwrites => {
                let v = self.inner.save(&r).await?;
                self.remember(&r, v);
                return Ok(1);
            }
            Flaw::ExpiredRecordBlocksCreate if self.shadow(&r.id).is_some() => {
                return Err(Error::IdCollision { id: r.id });
            }
            _ => {}
        }
        self.inner.create(&r).await?;
        self.remember(&r, 1);
        Ok(if self.flaw == Flaw::CreateAnswersNoVersion {
            0
        } else {
            1
        })
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
        self.inner.load(id).await
    }

    async fn save(&self, record: &Record) -> Result<u64> {
        if self.flaw != Flaw::SizeLimitOnlyOnCreate {
            self.check_size(record)?;
        }
        let r = self.mangle(record);
        match self.flaw {
            Flaw::TornSave => {
                let mut half = r.clone();
                let keys: Vec<String> = half.data.iter().map(|(k, _)| k.to_owned()).collect();
                for k in &keys[keys.len() / 2..] {
                    half.data.remove(k);
                }
                self.inner.save(&half).await?;
                tokio::task::yield_now().await;
            }
            Flaw::SaveRestartsVersions => {
                self.inner.delete(&r.id).await?;
                self.inner.create(&r).await?;
                self.remember(&r, 1);
                return Ok(1);
            }
            _ => {}
        }
        let v = self.inner.save(&r).await?;
        self.remember(&r, v);
        Ok(v)
    }

    async fn save_if_version(&self, record: &Record) -> Result<u64> {
        if self.flaw != Flaw::SizeLimitOnlyOnCreate {
            self.check_size(record)?;
        }
        let r = self.mangle(record);
        let current = self.inner.load(&r.id).await?;
        let write_anyway = match self.flaw {
            Flaw::NonAtomicConditionalSave => {
                if current.is_none_or(|c| c.version != r.version) {
                    return Err(Error::Conflict {
                        id: r.id,
                        expected: r.version,
                    });
                }
                // The round trip between the check and the write of a
                // backend that does them as two commands.
                tokio::time::sleep(Duration::from_millis(1)).await;
                true
            }
            Flaw::ConditionalSaveResurrects => current.is_none(),
            Flaw::StaleVersionAccepted => current.is_some_and(|c| r.version < c.version),
            Flaw::ConditionalSaveOnExpired => {
                current.is_none() && self.shadow(&r.id).is_some_and(|s| s.version == r.version)
            }
            _ => false,
        };
        if write_anyway {
            self.inner.save(&r).await?;
            let v = r.version.wrapping_add(1);
            self.remember(&r, v);
            return Ok(v);
        }
        let v = self.inner.save_if_version(&r).await?;
        self.remember(&r, v);
        Ok(v)
    }

    async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
        let expires_at = if self.flaw == Flaw::DeadlineInSeconds {
            seconds(expires_at)
        } else {
            expires_at
        };
        if self.flaw == Flaw::TouchBumpsVersion
            && let Some(mut live) = self.inner.load(id).await?
        {
            live.expires_at = expires_at;
            let v = self.inner.save(&live).await?;
            self.remember(&live, v);
            return Ok(true);
        }
        if self.inner.touch(id, expires_at).await? {
            if let Some(r) = self.written.lock().unwrap().get_mut(id) {
                r.expires_at = expires_at;
            }
            return Ok(true);
        }
        if self.flaw == Flaw::TouchRevives
            && let Some(mut old) = self.shadow(id)
        {
            old.expires_at = expires_at;
            let v = self.inner.save(&old).await?;
            self.remember(&old, v);
            return Ok(true);
        }
        Ok(false)
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        if self.flaw == Flaw::DeleteOfAbsentFails && self.shadow(id).is_none() {
            return Err(Error::backend_msg("test", "no such session"));
        }
        self.inner.delete(id).await?;
        self.forget(id);
        Ok(())
    }

    async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
        let before = self.inner.load(old).await?;
        if self.flaw == Flaw::RotateOverwritesLive && before.is_some() && old != new {
            self.inner.delete(new).await?;
            self.forget(new);
        }
        let moved = self.inner.rotate(old, new).await?;
        if !moved
            && self.flaw == Flaw::RotateRevivesExpired
            && let Some(mut expired) = self.shadow(old)
        {
            self.delete(old).await?;
            expired.id = *new;
            let v = self.inner.save(&expired).await?;
            self.remember(&expired, v);
            return Ok(true);
        }
        if moved && let Some(record) = before {
            self.forget(old);
            let mut r = record.clone();
            r.id = *new;
            self.remember(&r, r.version);
            if self.flaw == Flaw::RotateKeepsOld {
                self.inner.save(&record).await?;
                self.remember(&record, record.version);
            }
        }
        Ok(moved)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let mut purged = self.inner.purge_expired().await?;
        let now = self.clock.now();
        self.written.lock().unwrap().retain(|_, r| r.is_live_at(now));
        if self.flaw == Flaw::PurgeDeletesLive {
            for id in self
                .inner
                .ids()
                .await?
                .into_iter()
                .map(|h| h.stored())
                .collect::<Vec<_>>()
            {
                if let Some(r) = self.inner.load(&id).await?
                    && r.expires_at <= now + Duration::from_secs(2)
                {
                    self.delete(&id).await?;
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    async fn count(&self) -> Result<u64> {
        if self.flaw == Flaw::CountIncludesExpired {
            return Ok(self.written.lock().unwrap().len() as u64);
        }
        self.inner.count().await
    }

    async fn ids(&self) -> Result<Vec<ListingHandle>> {
        if self.flaw == Flaw::IdsIncludeExpired {
            return Ok(self
                .written
                .lock()
                .unwrap()
                .keys()
                .copied()
                .map(ListingHandle::from_stored)
                .collect());
        }
        self.inner.ids().await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await?;
        self.written.lock().unwrap().clear();
        Ok(())
    }
    fn listing_handle(&self, id: &session_store_core::SessionId) -> ListingHandle {
        self.inner.listing_handle(id)
    }
    async fn load_listed(
        &self,
        handle: &ListingHandle,
    ) -> session_store_core::Result<Option<session_store_core::Record>> {
        self.inner.load_listed(handle).await
    }
    async fn delete_listed(&self, handle: &ListingHandle) -> session_store_core::Result<()> {
        self.inner.delete_listed(handle).await
    }
    async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<ListingHandle>> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
    async fn delete_owner_sessions(
        &self,
        _owner: &str,
        _keep: Option<&session_store_core::SessionId>,
    ) -> session_store_core::Result<u64> {
        Err(session_store_core::Error::Unsupported("an owner index"))
    }
}

/// Builds broken stores: one fresh `MemoryStore` per open (one global store
/// for the namespace leak).
struct BrokenHarness {
    flaw: Flaw,
    leak_clock: Arc<ProxyClock>,
    leaked: OnceLock<BrokenStore>,
}

impl BrokenHarness {
    fn new(flaw: Flaw) -> Self {
        Self {
            flaw,
            leak_clock: Arc::new(ProxyClock(RwLock::new(session_store_core::system_clock()))),
            leaked: OnceLock::new(),
        }
    }
}

#[async_trait]
impl Harness for BrokenHarness {
    type Store = BrokenStore;
    type Namespace = ();

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    async fn new_namespace(&self) -> Result<()> {
        Ok(())
    }

    async fn open(&self, _: &(), config: &StoreConfig) -> Result<BrokenStore> {
        let limit = config.max_record_bytes;
        if self.flaw == Flaw::NamespaceLeak {
            *self.leak_clock.0.write().unwrap() = config.clock.clone();
            let clock: SharedClock = self.leak_clock.clone();
            return Ok(self
                .leaked
                .get_or_init(|| BrokenStore {
                    inner: MemoryStore::builder().clock(clock.clone()).build(),
                    flaw: self.flaw,
                    clock,
                    limit,
                    written: Arc::default(),
                })
                .clone());
        }
        let store_clock: SharedClock = if self.flaw == Flaw::OffByOneDeadline {
            Arc::new(LagClock(config.clock.clone(), 1))
        } else {
            config.clock.clone()
        };
        let mut inner = MemoryStore::builder()
            .clock(store_clock.clone())
            .max_record_bytes(usize::MAX);
        if self.flaw == Flaw::EvictsUnderLoad {
            inner = inner.shards(1).capacity(32);
        }
        Ok(BrokenStore {
            inner: inner.build(),
            flaw: self.flaw,
            clock: store_clock,
            limit,
            written: Arc::default(),
        })
    }
}

/// Runs `property` against the store with `flaw` and demands it fails,
/// naming itself; prints the failure so the message can be read.
fn expect_caught(flaw: Flaw, expected_property: &str, verdict: Verdict) -> Failure {
    match verdict {
        Err(failure) => {
            eprintln!("{flaw:?} caught:\n{failure}");
            assert_eq!(
                failure.property, expected_property,
                "{flaw:?} was caught by the wrong property: {failure}"
            );
            failure
        }
        Ok(pass) => panic!("{expected_property} did not catch the store with the flaw {flaw:?} ({pass:?})"),
    }
}

/// The model-based test must catch `flaw` too.
fn expect_model_catches(flaw: Flaw) {
    let harness = BrokenHarness::new(flaw);
    let verdict = model_matches_the_reference(&harness, &ModelSettings::default().cases(256));
    let failure = expect_caught(flaw, "model_matches_the_reference", verdict);
    assert!(failure.detail.contains("shortest failing sequence"), "{failure}");
}

macro_rules! caught_by {
    ($test:ident, $flaw:expr, $property:ident, model: $model:expr) => {
        #[test]
        fn $test() {
            let harness = BrokenHarness::new($flaw);
            let verdict = block_on(properties::$property(&harness));
            expect_caught($flaw, stringify!($property), verdict);
            if $model {
                expect_model_catches($flaw);
            }
        }
    };
}

caught_by!(off_by_one_deadline, Flaw::OffByOneDeadline, load_returns_none_at_the_exact_deadline, model: true);
caught_by!(touch_that_revives, Flaw::TouchRevives, touch_never_revives_an_expired_record, model: true);
caught_by!(create_that_overwrites, Flaw::CreateOverwrites, create_never_overwrites_a_live_record, model: true);
caught_by!(
    non_atomic_conditional_save,
    Flaw::NonAtomicConditionalSave,
    racing_conditional_saves_have_exactly_one_winner,
    model: false
);
caught_by!(
    purge_that_deletes_live_records,
    Flaw::PurgeDeletesLive,
    purge_removes_exactly_the_expired_records_and_counts_them,
    model: true
);
caught_by!(
    count_that_includes_expired_records,
    Flaw::CountIncludesExpired,
    count_ids_and_clear_see_only_live_records,
    model: true
);
caught_by!(namespace_leak, Flaw::NamespaceLeak, namespaces_are_isolated, model: false);
caught_by!(truncated_data, Flaw::TruncatedData, data_round_trips_exactly, model: true);
caught_by!(
    rotate_that_keeps_the_old_id,
    Flaw::RotateKeepsOld,
    rotate_moves_the_record_and_the_old_id_no_longer_loads,
    model: true
);
caught_by!(
    conditional_save_that_resurrects,
    Flaw::ConditionalSaveResurrects,
    save_if_version_never_brings_back_a_deleted_record,
    model: true
);
caught_by!(
    size_limit_only_on_create,
    Flaw::SizeLimitOnlyOnCreate,
    oversized_records_are_refused_and_nothing_is_written,
    model: true
);

caught_by!(
    touch_that_bumps_the_version,
    Flaw::TouchBumpsVersion,
    touch_moves_the_deadline_and_keeps_data_and_version,
    model: true
);
caught_by!(
    deadlines_in_whole_seconds,
    Flaw::DeadlineInSeconds,
    deadlines_round_trip_to_the_millisecond,
    model: true
);
caught_by!(
    torn_save,
    Flaw::TornSave,
    racing_saves_on_one_id_leave_exactly_one_whole_record,
    model: true
);
caught_by!(
    huge_values_cut,
    Flaw::HugeValuesCut,
    values_of_several_mebibytes_round_trip,
    model: false
);
caught_by!(
    expired_record_blocks_create,
    Flaw::ExpiredRecordBlocksCreate,
    create_replaces_an_expired_record,
    model: true
);
caught_by!(
    delete_of_an_absent_id_fails,
    Flaw::DeleteOfAbsentFails,
    delete_removes_and_deleting_an_absent_id_is_not_an_error,
    model: true
);
caught_by!(
    rotate_that_overwrites_a_live_id,
    Flaw::RotateOverwritesLive,
    rotate_onto_a_live_id_is_a_collision_and_changes_nothing,
    model: true
);
caught_by!(
    stale_version_accepted,
    Flaw::StaleVersionAccepted,
    save_if_version_with_a_stale_version_is_a_conflict_and_changes_nothing,
    model: true
);
caught_by!(
    conditional_save_over_an_expired_record,
    Flaw::ConditionalSaveOnExpired,
    save_if_version_on_an_expired_record_is_a_conflict,
    model: true
);
caught_by!(
    save_that_restarts_versions,
    Flaw::SaveRestartsVersions,
    every_write_of_data_bumps_the_version,
    model: true
);
caught_by!(
    ids_that_include_expired_records,
    Flaw::IdsIncludeExpired,
    count_ids_and_clear_see_only_live_records,
    model: true
);
caught_by!(
    evicts_under_load,
    Flaw::EvictsUnderLoad,
    concurrent_writes_to_distinct_ids_lose_nothing,
    model: false
);

caught_by!(
    rotate_that_revives_an_expired_record,
    Flaw::RotateRevivesExpired,
    rotate_of_an_absent_or_expired_record_returns_false,
    model: true
);
caught_by!(
    create_that_answers_no_version,
    Flaw::CreateAnswersNoVersion,
    every_write_of_data_bumps_the_version,
    model: true
);

/// Broken stores that claim a capability they do not have, built on the
/// example third-party store (`examples/custom_store.rs`).
#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

mod capability_flaws {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::{Arc, Mutex};

    use session_store_conformance::{Capabilities, Harness, StoreConfig, block_on, properties};
    use session_store_core::{Error, ListingHandle, Record, Result, SessionId, SessionStore, Timestamp, async_trait};

    use super::custom_store::{TinyHarness, TinyStore};
    use super::expect_caught;

    /// The capability a store claims but does not keep.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum CapabilityFlaw {
        /// No flaw: the control.
        None,
        /// Reopening a namespace gives an empty store ("durable" is a lie).
        ForgetsOnReopen,
        /// Each store object works on its own copy ("shared" is a lie).
        PrivateCopies,
        /// Corrupt bytes load as "no record" instead of a decode error.
        CorruptLoadsAsAbsent,
        /// Each store object remembers ids it found absent and answers
        /// `None` for them until it writes them itself (a stale cache).
        NegativeCache,
        /// ids (and so count) fail when any stored record is undecodable.
        ListingFailsOnCorrupt,
        /// count adds the undecodable entries that ids leaves out (the
        /// SQL stores' `COUNT(*)` beside a row whose id is no session id).
        CountDisagreesBesideCorrupt,
    }

    /// `TinyStore` with one capability flaw.
    #[derive(Debug, Clone)]
    pub(super) struct Flawed {
        inner: TinyStore,
        flaw: CapabilityFlaw,
        /// This object's ids found absent, each with the count of this
        /// object's own finished writes when it was looked up
        /// (`NegativeCache`): an entry holds only while this object wrote
        /// nothing since, and none is taken or used while one of its own
        /// writes runs, so the cache is stale only for other objects'
        /// writes.
        absent: Arc<Mutex<HashMap<SessionId, u64>>>,
        /// This object's finished writes.
        writes: Arc<std::sync::atomic::AtomicU64>,
        /// This object's writes under way.
        writing: Arc<std::sync::atomic::AtomicU64>,
        /// The namespace's table (`ListingFailsOnCorrupt`).
        table: Option<super::custom_store::Table>,
    }

    impl Flawed {
        /// Called before each own write.
        fn writing(&self) {
            self.writing.fetch_add(1, SeqCst);
        }

        /// Called after each own write (whatever it answered): entries
        /// taken before it no longer hold.
        fn wrote(&self) {
            self.writes.fetch_add(1, SeqCst);
            self.writing.fetch_sub(1, SeqCst);
        }

        /// The count of finished writes, if none of this object's writes
        /// is under way.
        fn quiet(&self) -> Option<u64> {
            let writes = self.writes.load(SeqCst);
            (self.writing.load(SeqCst) == 0).then_some(writes)
        }
    }

    #[async_trait]
    impl SessionStore for Flawed {
        fn clock(&self) -> session_store_core::SharedClock {
            self.inner.clock()
        }

        async fn create(&self, record: &Record) -> Result<u64> {
            self.writing();
            let r = self.inner.create(record).await;
            self.wrote();
            r
        }
        async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
            let cached = self.flaw == CapabilityFlaw::NegativeCache;
            let before = self.quiet();
            if cached && before.is_some() && self.absent.lock().unwrap().get(id) == before.as_ref() {
                return Ok(None);
            }
            match self.inner.load(id).await {
                Err(Error::Decode { .. }) if self.flaw == CapabilityFlaw::CorruptLoadsAsAbsent => Ok(None),
                Ok(None) if cached => {
                    // Only a miss with none of this object's writes around it.
                    if let Some(writes) = before
                        && self.quiet() == before
                    {
                        self.absent.lock().unwrap().insert(*id, writes);
                    }
                    Ok(None)
                }
                other => other,
            }
        }
        async fn save(&self, record: &Record) -> Result<u64> {
            self.writing();
            let v = self.inner.save(record).await;
            self.wrote();
            v
        }
        async fn save_if_version(&self, record: &Record) -> Result<u64> {
            self.writing();
            let v = self.inner.save_if_version(record).await;
            self.wrote();
            v
        }
        async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
            self.inner.touch(id, expires_at).await
        }
        async fn delete(&self, id: &SessionId) -> Result<()> {
            self.inner.delete(id).await
        }
        async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
            self.writing();
            let moved = self.inner.rotate(old, new).await;
            self.wrote();
            moved
        }
        async fn purge_expired(&self) -> Result<u64> {
            self.inner.purge_expired().await
        }
        async fn ids(&self) -> Result<Vec<ListingHandle>> {
            if self.flaw == CapabilityFlaw::ListingFailsOnCorrupt
                && let Some(table) = &self.table
            {
                let table = table.lock().unwrap().clone();
                for (id, bytes) in &table {
                    session_store_core::raw::codec::decode_record(*id, bytes)?;
                }
            }
            self.inner.ids().await
        }
        async fn count(&self) -> Result<u64> {
            let listed = self.ids().await?.len() as u64;
            if self.flaw == CapabilityFlaw::CountDisagreesBesideCorrupt
                && let Some(table) = &self.table
            {
                let table = table.lock().unwrap().clone();
                let undecodable = table
                    .iter()
                    .filter(|(id, bytes)| session_store_core::raw::codec::decode_record(**id, bytes).is_err())
                    .count() as u64;
                return Ok(listed + undecodable);
            }
            Ok(listed)
        }
        async fn clear(&self) -> Result<()> {
            self.inner.clear().await
        }
        fn listing_handle(&self, id: &session_store_core::SessionId) -> ListingHandle {
            self.inner.listing_handle(id)
        }
        async fn load_listed(
            &self,
            handle: &ListingHandle,
        ) -> session_store_core::Result<Option<session_store_core::Record>> {
            self.inner.load_listed(handle).await
        }
        async fn delete_listed(&self, handle: &ListingHandle) -> session_store_core::Result<()> {
            self.inner.delete_listed(handle).await
        }
        async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<ListingHandle>> {
            Err(session_store_core::Error::Unsupported("an owner index"))
        }
        async fn delete_owner_sessions(
            &self,
            _owner: &str,
            _keep: Option<&session_store_core::SessionId>,
        ) -> session_store_core::Result<u64> {
            Err(session_store_core::Error::Unsupported("an owner index"))
        }
    }

    /// Claims every capability; `TinyHarness` underneath.
    pub(super) struct FlawedHarness {
        inner: TinyHarness,
        flaw: CapabilityFlaw,
        opened: Mutex<HashMap<u64, usize>>,
    }

    impl FlawedHarness {
        pub(super) fn new(flaw: CapabilityFlaw) -> Self {
            Self {
                inner: TinyHarness::default(),
                flaw,
                opened: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Harness for FlawedHarness {
        type Store = Flawed;
        type Namespace = u64;

        fn capabilities(&self) -> Capabilities {
            Capabilities::all()
        }

        async fn new_namespace(&self) -> Result<u64> {
            self.inner.new_namespace().await
        }

        async fn open(&self, namespace: &u64, config: &StoreConfig) -> Result<Flawed> {
            let times = {
                let mut opened = self.opened.lock().unwrap();
                let n = opened.entry(*namespace).or_default();
                *n += 1;
                *n
            };
            let inner = match self.flaw {
                CapabilityFlaw::ForgetsOnReopen if times > 1 => {
                    let fresh = self.inner.new_namespace().await?;
                    self.inner.open(&fresh, config).await?
                }
                CapabilityFlaw::PrivateCopies => {
                    let table = self.inner.table(*namespace)?;
                    let copy = table.lock().unwrap().clone();
                    TinyStore::new(
                        Arc::new(Mutex::new(copy)),
                        config.clock.clone(),
                        config.max_record_bytes,
                    )
                }
                _ => self.inner.open(namespace, config).await?,
            };
            Ok(Flawed {
                inner,
                flaw: self.flaw,
                absent: Arc::default(),
                writes: Arc::default(),
                writing: Arc::default(),
                table: self.inner.table(*namespace).ok(),
            })
        }

        async fn read_raw(&self, namespace: &u64, id: &SessionId) -> Result<Option<Vec<u8>>> {
            self.inner.read_raw(namespace, id).await
        }

        async fn write_raw(&self, namespace: &u64, id: &SessionId, bytes: &[u8]) -> Result<()> {
            self.inner.write_raw(namespace, id, bytes).await
        }
    }

    macro_rules! capability_caught_by {
        ($test:ident, $flaw:expr, $property:ident) => {
            #[test]
            fn $test() {
                let verdict = block_on(properties::$property(&FlawedHarness::new($flaw)));
                expect_caught(super::Flaw::None, stringify!($property), verdict);
            }
        };
    }

    capability_caught_by!(
        durable_store_that_forgets_on_reopen,
        CapabilityFlaw::ForgetsOnReopen,
        records_survive_drop_and_reopen
    );
    capability_caught_by!(
        shared_store_with_private_copies,
        CapabilityFlaw::PrivateCopies,
        store_objects_on_one_namespace_share_records_and_one_conditional_save_wins
    );
    capability_caught_by!(
        corrupt_bytes_that_load_as_absent,
        CapabilityFlaw::CorruptLoadsAsAbsent,
        corrupt_bytes_give_a_decode_error_for_that_record_only
    );

    /// A stale cache in one store object: only the property that loads
    /// through each object before the other writes catches it.
    #[test]
    fn shared_store_with_a_stale_negative_cache() {
        super::map_flaws::caught_only_by(
            "NegativeCache",
            &FlawedHarness::new(CapabilityFlaw::NegativeCache),
            "a_write_through_one_store_object_is_seen_by_the_next_load_through_another",
        );
    }

    /// The store-sqlite bug: one undecodable entry fails every listing.
    #[test]
    fn listing_that_fails_on_a_corrupt_record() {
        super::map_flaws::caught_only_by(
            "ListingFailsOnCorrupt",
            &FlawedHarness::new(CapabilityFlaw::ListingFailsOnCorrupt),
            "count_ids_and_purge_stay_exact_beside_corrupt_records",
        );
    }

    /// `count` and `ids` that disagree only beside corrupt entries.
    #[test]
    fn count_that_disagrees_with_ids_beside_a_corrupt_record() {
        super::map_flaws::caught_only_by(
            "CountDisagreesBesideCorrupt",
            &FlawedHarness::new(CapabilityFlaw::CountDisagreesBesideCorrupt),
            "count_ids_and_purge_stay_exact_beside_corrupt_records",
        );
    }

    /// The flawed harness without a flaw passes these three properties.
    #[test]
    fn the_capability_control_passes() {
        let harness = FlawedHarness::new(CapabilityFlaw::None);
        let verdicts = block_on(async {
            vec![
                properties::records_survive_drop_and_reopen(&harness).await,
                properties::store_objects_on_one_namespace_share_records_and_one_conditional_save_wins(&harness).await,
                properties::corrupt_bytes_give_a_decode_error_for_that_record_only(&harness).await,
            ]
        });
        for verdict in verdicts {
            assert_eq!(verdict, Ok(session_store_conformance::Pass::Passed));
        }
    }
}

/// Broken stores for the atomicity, time, size, scale and namespace rules:
/// a small map store, correct without a flaw, whose flaws split one atomic
/// step into two (with a pause between, where a real backend has a round
/// trip) or get one edge of the rules wrong. Each must fail exactly the one
/// property that names its flaw, and pass every other property.
mod map_flaws {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use session_store_conformance::model::{ModelSettings, model_matches_the_reference};
    use session_store_conformance::{Capabilities, Failure, Harness, StoreConfig, Verdict, block_on, properties};
    use session_store_core::{
        DEFAULT_MAX_RECORD_BYTES, Error, ListingHandle, Record, Result, SessionId, SessionStore, SharedClock,
        Timestamp, async_trait, raw::codec,
    };

    /// The one rule a map store breaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum MapFlaw {
        /// No flaw: the control.
        None,
        /// Create checks for a live record, pauses, then writes.
        CreateChecksThenWrites,
        /// Rotate checks both ids, pauses, then moves (overwriting the new id).
        RotateChecksThenMoves,
        /// Rotate copies to the new id, pauses, then deletes the old one.
        RotateCopiesThenDeletes,
        /// Rotate deletes the old id, pauses, then writes the new one.
        RotateDeletesThenCopies,
        /// Touch reads the live record, pauses, then writes it back with the
        /// new deadline.
        TouchReadsThenWrites,
        /// Touch reads the live record, pauses, then writes it back with the
        /// new deadline if the id is still live (so it never revives a
        /// deleted record, but undoes a save made meanwhile).
        TouchWritesBackWhatItRead,
        /// save_if_version compares the version, pauses, then writes.
        SaveIfVersionChecksThenWrites,
        /// Purge lists the expired ids, pauses, then deletes those ids.
        PurgeListsThenDeletes,
        /// Save (serialised with other saves) writes data and version, pauses,
        /// then the deadline.
        SaveWritesDeadlineLater,
        /// Rotate leaves the old entry behind, marked as moved, and
        /// save_if_version still matches a moved entry's version.
        RotateLeavesAMovedMark,
        /// Deadlines before the epoch are stored as the epoch (an unsigned column).
        NegativeDeadlinesClamped,
        /// Touch to a deadline at or before now is refused (returns false).
        TouchRefusesPastDeadlines,
        /// Save counts a record as a live predecessor at `now == expires_at`.
        SaveSeesLiveAtTheDeadline,
        /// Records vanish once real time passes `expires_at - now` plus 250 ms.
        TtlFromRealTime,
        /// Keys longer than 255 bytes are cut to 255 (a VARCHAR(255)).
        LongKeysCut,
        /// Values are parsed as JSON on the way in (serde_json's recursion
        /// limit of 128): a value nested deeper is refused.
        DeepValuesRefused,
        /// The backend refuses an encoded record over 8 MiB, so data of
        /// exactly the 8 MiB limit fails with a backend error.
        BlobCapAtTheLimit,
        /// ids returns the first page of 1,000 and does not follow the cursor.
        IdsStopAfterOnePage,
        /// Purge removes at most 256 records per call.
        PurgeRemovesOneBatch,
        /// Purge removes the expired records of every namespace (counting its own).
        PurgeSweepsEveryNamespace,
        /// clock() answers the system clock, not the clock it was given.
        ExposesTheSystemClock,
        /// Save and save-if-version store the record without its owner.
        OwnerDroppedOnWrite,
        /// owner_sessions lists the owner's expired sessions too.
        OwnerListsExpired,
        /// delete_owner_sessions deletes the session it was told to keep.
        RevokeIgnoresKeep,
        /// delete_owner_sessions finds sessions by the id they were written
        /// under, so a rotated session escapes it until its next save.
        RevokeMissesRotated,
        /// delete_owner_sessions lists, pauses, deletes what it listed, then
        /// empties the owner's index (as a `DEL` of a Redis set would): a
        /// login during the pause survives unlisted.
        RevokeForgetsLoginsMeanwhile,
        /// import stores the record as a create does (version 1).
        ImportRestartsVersions,
        /// create stores the version its record carries, where it is not 0.
        CreateKeepsACarriedVersion,
        /// The owner index compares owners without case (as a
        /// case-insensitive collation or a lowercased key would).
        OwnerFoldsCase,
        /// load_listed reads the stored record without checking its
        /// deadline (as a listing page that reads rows by key would).
        ListedLoadIgnoresExpiry,
        /// import compares versions with the stored record whether it is
        /// live or not, so an expired record not purged yet of the same or
        /// a newer version blocks it.
        ImportBlockedByExpired,
        /// Rotate locks the old id, pauses, then locks the new id (as a
        /// store taking row locks in argument order would): two crossing
        /// rotates wait for each other forever.
        RotateLocksOldThenNew,
        /// A write of an owned record to a free id adds the owner's index
        /// entry, pauses, then writes the record (as a Redis Cluster's two
        /// slots make it), and a purge drops every entry whose record is
        /// not there: a purge in the pause leaves the new session out of its
        /// owner's listing for good.
        PurgeDropsTheEntryOfAWriteUnderWay,
    }

    impl MapFlaw {
        /// Whether the store offers an owner index: the control and the
        /// index's own flaws (a store that drops owners has no index).
        fn has_owner_index(self) -> bool {
            matches!(
                self,
                Self::None
                    | Self::OwnerListsExpired
                    | Self::RevokeIgnoresKeep
                    | Self::RevokeMissesRotated
                    | Self::RevokeForgetsLoginsMeanwhile
                    | Self::OwnerFoldsCase
                    | Self::PurgeDropsTheEntryOfAWriteUnderWay
            )
        }
    }

    /// One stored record.
    #[derive(Debug, Clone)]
    struct Entry {
        record: Record,
        /// Left behind by a rotate (`RotateLeavesAMovedMark`).
        moved: bool,
        /// Moved here by a rotate (`RevokeMissesRotated`).
        rotated: bool,
        /// Out of the owner index (`RevokeForgetsLoginsMeanwhile`).
        unindexed: bool,
        /// When the record vanishes in real time (`TtlFromRealTime`).
        real_deadline: Option<Instant>,
    }

    type Backing = Arc<Mutex<HashMap<(u64, SessionId), Entry>>>;

    /// The pause inside a split step.
    const PAUSE: Duration = Duration::from_millis(2);

    /// A map store over a backing every namespace shares.
    #[derive(Debug, Clone)]
    pub(super) struct MapStore {
        map: Backing,
        ns: u64,
        clock: SharedClock,
        limit: usize,
        flaw: MapFlaw,
        saves: Arc<tokio::sync::Mutex<()>>,
        /// Per-id locks (`RotateLocksOldThenNew`), shared by the harness's stores.
        id_locks: IdLocks,
        /// Index entries of writes under way, and whether a purge dropped
        /// them (`PurgeDropsTheEntryOfAWriteUnderWay`), shared likewise.
        pending: Pending,
    }

    type IdLocks = Arc<Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>>;
    type Pending = Arc<Mutex<HashMap<(u64, SessionId), bool>>>;

    impl MapStore {
        /// Whether `record` names `owner` (`OwnerFoldsCase`: without case).
        fn owns(&self, record: &Record, owner: &str) -> bool {
            match record.owner.as_deref() {
                Some(stored) if self.flaw == MapFlaw::OwnerFoldsCase => stored.eq_ignore_ascii_case(owner),
                stored => stored == Some(owner),
            }
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, SessionId), Entry>> {
            self.map.lock().unwrap()
        }

        fn now(&self) -> Timestamp {
            self.clock.now()
        }

        fn live(&self, e: &Entry, now: Timestamp) -> bool {
            !e.moved && e.record.is_live_at(now) && e.real_deadline.is_none_or(|d| Instant::now() < d)
        }

        fn live_record(&self, map: &HashMap<(u64, SessionId), Entry>, id: &SessionId) -> Option<Record> {
            let now = self.now();
            map.get(&(self.ns, *id))
                .filter(|e| self.live(e, now))
                .map(|e| e.record.clone())
        }

        fn deadline(&self, t: Timestamp) -> Timestamp {
            if self.flaw == MapFlaw::NegativeDeadlinesClamped {
                t.max(Timestamp::EPOCH)
            } else {
                t
            }
        }

        fn entry(&self, record: &Record, version: u64) -> Entry {
            let mut r = record.clone();
            r.version = version;
            r.expires_at = self.deadline(r.expires_at);
            if self.flaw == MapFlaw::LongKeysCut {
                let long: Vec<String> = r
                    .data
                    .iter()
                    .filter(|(k, _)| k.len() > 255)
                    .map(|(k, _)| k.to_owned())
                    .collect();
                for k in long {
                    let v = r.data.remove(&k).unwrap_or_default();
                    let mut end = 255;
                    while !k.is_char_boundary(end) {
                        end -= 1;
                    }
                    r.data.insert_raw(k[..end].to_owned(), v);
                }
            }
            Entry {
                real_deadline: self.real_deadline(r.expires_at),
                record: r,
                moved: false,
                rotated: false,
                unindexed: false,
            }
        }

        fn real_deadline(&self, expires_at: Timestamp) -> Option<Instant> {
            (self.flaw == MapFlaw::TtlFromRealTime)
                .then(|| {
                    Instant::now()
                        .checked_add(expires_at.saturating_duration_since(self.now()) + Duration::from_millis(250))
                })
                .flatten()
        }

        fn put(&self, map: &mut HashMap<(u64, SessionId), Entry>, record: &Record, version: u64) {
            let mut entry = self.entry(record, version);
            if self.flaw == MapFlaw::OwnerDroppedOnWrite && version > 1 {
                entry.record.owner = None;
            }
            map.insert((self.ns, record.id), entry);
        }

        fn check(&self, record: &Record) -> Result<()> {
            codec::check_size(&record.data, self.limit)?;
            if self.flaw == MapFlaw::DeepValuesRefused {
                for (_, json) in record.data.iter() {
                    serde_json::from_str::<serde_json::Value>(json)
                        .map_err(|e| Error::backend("test", "parsing a value", e))?;
                }
            }
            if self.flaw == MapFlaw::BlobCapAtTheLimit && codec::encode_body(record)?.len() > DEFAULT_MAX_RECORD_BYTES {
                return Err(Error::backend_msg("test", "the backend refuses values over 8 MiB"));
            }
            Ok(())
        }

        fn collision(id: &SessionId) -> Error {
            Error::IdCollision { id: *id }
        }

        /// `PurgeDropsTheEntryOfAWriteUnderWay`'s first step: an owned
        /// record for a free id gets its index entry, then a pause. Answers
        /// whether an entry is pending.
        async fn index_first(&self, record: &Record) -> bool {
            if self.flaw != MapFlaw::PurgeDropsTheEntryOfAWriteUnderWay
                || record.owner.is_none()
                || self.live_record(&self.lock(), &record.id).is_some()
            {
                return false;
            }
            self.pending.lock().unwrap().insert((self.ns, record.id), false);
            tokio::time::sleep(PAUSE).await;
            true
        }

        /// The second step, after the record's write: the record is out of
        /// the index if a purge dropped its entry meanwhile.
        fn index_then(&self, pending: bool, id: &SessionId) {
            if !pending {
                return;
            }
            let dropped = self.pending.lock().unwrap().remove(&(self.ns, *id)) == Some(true);
            if let Some(e) = self.lock().get_mut(&(self.ns, *id))
                && dropped
            {
                e.unindexed = true;
            }
        }
    }

    #[async_trait]
    impl SessionStore for MapStore {
        fn clock(&self) -> SharedClock {
            if self.flaw == MapFlaw::ExposesTheSystemClock {
                return session_store_core::system_clock();
            }
            Arc::clone(&self.clock)
        }

        async fn create(&self, record: &Record) -> Result<u64> {
            self.check(record)?;
            if self.flaw == MapFlaw::CreateChecksThenWrites {
                if self.live_record(&self.lock(), &record.id).is_some() {
                    return Err(Self::collision(&record.id));
                }
                tokio::time::sleep(PAUSE).await;
                self.put(&mut self.lock(), record, 1);
                return Ok(1);
            }
            let pending = self.index_first(record).await;
            let version = {
                let mut map = self.lock();
                if self.live_record(&map, &record.id).is_some() {
                    return Err(Self::collision(&record.id));
                }
                let version = if self.flaw == MapFlaw::CreateKeepsACarriedVersion && record.version > 0 {
                    record.version
                } else {
                    1
                };
                self.put(&mut map, record, version);
                version
            };
            self.index_then(pending, &record.id);
            Ok(version)
        }

        async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
            Ok(self.live_record(&self.lock(), id))
        }

        async fn save(&self, record: &Record) -> Result<u64> {
            self.check(record)?;
            let version_over = |map: &HashMap<(u64, SessionId), Entry>| {
                let now = self.now();
                let previous = map.get(&(self.ns, record.id)).filter(|e| {
                    if self.flaw == MapFlaw::SaveSeesLiveAtTheDeadline {
                        !e.moved && now <= e.record.expires_at
                    } else {
                        self.live(e, now)
                    }
                });
                previous.map_or(1, |e| e.record.version + 1)
            };
            if self.flaw == MapFlaw::SaveWritesDeadlineLater {
                let _serialised = self.saves.lock().await;
                let version = {
                    let mut map = self.lock();
                    let version = version_over(&map);
                    let old_deadline = map.get(&(self.ns, record.id)).map(|e| e.record.expires_at);
                    let mut first = record.clone();
                    first.expires_at = old_deadline.unwrap_or(record.expires_at);
                    self.put(&mut map, &first, version);
                    version
                };
                tokio::time::sleep(PAUSE).await;
                self.put(&mut self.lock(), record, version);
                return Ok(version);
            }
            let pending = self.index_first(record).await;
            let version = {
                let mut map = self.lock();
                let version = version_over(&map);
                self.put(&mut map, record, version);
                version
            };
            self.index_then(pending, &record.id);
            Ok(version)
        }

        async fn save_if_version(&self, record: &Record) -> Result<u64> {
            self.check(record)?;
            let now = self.now();
            let matches = |map: &HashMap<(u64, SessionId), Entry>| {
                map.get(&(self.ns, record.id)).is_some_and(|e| {
                    let seen = self.live(e, now)
                        || (self.flaw == MapFlaw::RotateLeavesAMovedMark && e.moved && e.record.is_live_at(now));
                    seen && e.record.version == record.version
                })
            };
            if self.flaw == MapFlaw::SaveIfVersionChecksThenWrites {
                let matched = matches(&self.lock());
                tokio::time::sleep(PAUSE).await;
                if !matched {
                    return Err(Error::Conflict {
                        id: record.id,
                        expected: record.version,
                    });
                }
                let version = record.version + 1;
                self.put(&mut self.lock(), record, version);
                return Ok(version);
            }
            let mut map = self.lock();
            if !matches(&map) {
                return Err(Error::Conflict {
                    id: record.id,
                    expected: record.version,
                });
            }
            let version = record.version + 1;
            self.put(&mut map, record, version);
            Ok(version)
        }

        async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
            if self.flaw == MapFlaw::TouchRefusesPastDeadlines && expires_at <= self.now() {
                return Ok(false);
            }
            if self.flaw == MapFlaw::TouchWritesBackWhatItRead {
                let Some(record) = self.live_record(&self.lock(), id) else {
                    return Ok(false);
                };
                tokio::time::sleep(PAUSE).await;
                let mut map = self.lock();
                if self.live_record(&map, id).is_none() {
                    return Ok(false);
                }
                let mut r = record.clone();
                r.expires_at = expires_at;
                self.put(&mut map, &r, record.version);
                return Ok(true);
            }
            if self.flaw == MapFlaw::TouchReadsThenWrites {
                let Some(record) = self.live_record(&self.lock(), id) else {
                    return Ok(false);
                };
                tokio::time::sleep(PAUSE).await;
                let mut r = record.clone();
                r.expires_at = expires_at;
                self.put(&mut self.lock(), &r, record.version);
                return Ok(true);
            }
            let mut map = self.lock();
            let Some(record) = self.live_record(&map, id) else {
                return Ok(false);
            };
            let mut r = record.clone();
            r.expires_at = expires_at;
            self.put(&mut map, &r, record.version);
            Ok(true)
        }

        async fn delete(&self, id: &SessionId) -> Result<()> {
            self.lock().remove(&(self.ns, *id));
            Ok(())
        }

        async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
            let checks = |map: &HashMap<(u64, SessionId), Entry>| -> Result<Option<Record>> {
                if self.live_record(map, new).is_some() {
                    return Err(Self::collision(new));
                }
                Ok(self.live_record(map, old))
            };
            let moved = |record: &Record| {
                let mut r = record.clone();
                r.id = *new;
                r
            };
            // Held to the end of the rotate (`RotateLocksOldThenNew`).
            let mut _held = Vec::new();
            if self.flaw == MapFlaw::RotateLocksOldThenNew && old != new {
                for id in [old, new] {
                    let lock = Arc::clone(self.id_locks.lock().unwrap().entry(*id).or_default());
                    _held.push(lock.lock_owned().await);
                    tokio::time::sleep(PAUSE).await;
                }
            }
            match self.flaw {
                MapFlaw::RotateChecksThenMoves => {
                    let Some(_) = checks(&self.lock())? else {
                        return Ok(false);
                    };
                    tokio::time::sleep(PAUSE).await;
                    let mut map = self.lock();
                    let Some(entry) = map.remove(&(self.ns, *old)) else {
                        return Ok(false);
                    };
                    let r = moved(&entry.record);
                    self.put(&mut map, &r, r.version);
                    Ok(true)
                }
                MapFlaw::RotateCopiesThenDeletes => {
                    {
                        let mut map = self.lock();
                        let Some(record) = checks(&map)? else {
                            return Ok(false);
                        };
                        let r = moved(&record);
                        self.put(&mut map, &r, r.version);
                    }
                    tokio::time::sleep(PAUSE).await;
                    self.lock().remove(&(self.ns, *old));
                    Ok(true)
                }
                MapFlaw::RotateDeletesThenCopies => {
                    let entry = {
                        let mut map = self.lock();
                        if checks(&map)?.is_none() {
                            return Ok(false);
                        }
                        map.remove(&(self.ns, *old))
                    };
                    let Some(entry) = entry else { return Ok(false) };
                    tokio::time::sleep(PAUSE).await;
                    let mut map = self.lock();
                    if self.live_record(&map, new).is_some() {
                        map.insert((self.ns, *old), entry);
                        return Err(Self::collision(new));
                    }
                    let r = moved(&entry.record);
                    self.put(&mut map, &r, r.version);
                    Ok(true)
                }
                _ => {
                    let mut map = self.lock();
                    let Some(record) = checks(&map)? else {
                        return Ok(false);
                    };
                    if self.flaw == MapFlaw::RotateLeavesAMovedMark {
                        if let Some(e) = map.get_mut(&(self.ns, *old)) {
                            e.moved = true;
                        }
                    } else {
                        map.remove(&(self.ns, *old));
                    }
                    let r = moved(&record);
                    self.put(&mut map, &r, r.version);
                    if let Some(e) = map.get_mut(&(self.ns, *new)) {
                        e.rotated = true;
                    }
                    Ok(true)
                }
            }
        }

        async fn purge_expired(&self) -> Result<u64> {
            let now = self.now();
            let expired = |map: &HashMap<(u64, SessionId), Entry>, every_ns: bool| -> Vec<(u64, SessionId)> {
                map.iter()
                    .filter(|((ns, _), e)| (every_ns || *ns == self.ns) && !e.record.is_live_at(now))
                    .map(|(k, _)| *k)
                    .collect()
            };
            if self.flaw == MapFlaw::PurgeListsThenDeletes {
                let keys = expired(&self.lock(), false);
                tokio::time::sleep(PAUSE).await;
                let mut map = self.lock();
                let mut removed = 0;
                for k in keys {
                    removed += u64::from(map.remove(&k).is_some_and(|e| !e.moved));
                }
                return Ok(removed);
            }
            if self.flaw == MapFlaw::PurgeDropsTheEntryOfAWriteUnderWay {
                let map = self.lock();
                for (key, dropped) in self.pending.lock().unwrap().iter_mut() {
                    if key.0 == self.ns && map.get(key).is_none_or(|e| !self.live(e, now)) {
                        *dropped = true;
                    }
                }
            }
            let mut map = self.lock();
            let mut keys = expired(&map, self.flaw == MapFlaw::PurgeSweepsEveryNamespace);
            if self.flaw == MapFlaw::PurgeRemovesOneBatch {
                keys.truncate(256);
            }
            let mut removed = 0;
            for k in keys {
                if let Some(e) = map.remove(&k) {
                    removed += u64::from(!e.moved && k.0 == self.ns);
                }
            }
            Ok(removed)
        }

        async fn ids(&self) -> Result<Vec<ListingHandle>> {
            let now = self.now();
            let map = self.lock();
            let mut ids: Vec<SessionId> = map
                .iter()
                .filter(|((ns, _), e)| *ns == self.ns && self.live(e, now))
                .map(|((_, id), _)| *id)
                .collect();
            if self.flaw == MapFlaw::IdsStopAfterOnePage {
                ids.truncate(1_000);
            }
            Ok(ids.into_iter().map(ListingHandle::from_stored).collect())
        }

        async fn count(&self) -> Result<u64> {
            let now = self.now();
            let map = self.lock();
            Ok(map
                .iter()
                .filter(|((ns, _), e)| *ns == self.ns && self.live(e, now))
                .count() as u64)
        }

        async fn clear(&self) -> Result<()> {
            self.lock().retain(|(ns, _), _| *ns != self.ns);
            Ok(())
        }

        async fn import(&self, record: &Record) -> Result<bool> {
            if self.flaw != MapFlaw::ImportRestartsVersions {
                // One atomic write, as the file and SQLite stores do.
                self.check(record)?;
                let mut map = self.lock();
                if !record.is_live_at(self.now()) || record.version == 0 {
                    return Ok(false);
                }
                let existing = if self.flaw == MapFlaw::ImportBlockedByExpired {
                    map.get(&(self.ns, record.id))
                        .filter(|e| !e.moved)
                        .map(|e| e.record.clone())
                } else {
                    self.live_record(&map, &record.id)
                };
                if existing.is_some_and(|existing| existing.version >= record.version) {
                    return Ok(false);
                }
                map.insert((self.ns, record.id), self.entry(record, record.version));
                return Ok(true);
            }
            if !record.is_live_at(self.now()) || self.live_record(&self.lock(), &record.id).is_some() {
                return Ok(false);
            }
            self.create(record).await?;
            Ok(true)
        }

        async fn owner_sessions(&self, owner: &str) -> Result<Vec<ListingHandle>> {
            if !self.flaw.has_owner_index() {
                return Err(Error::Unsupported("an owner index"));
            }
            let now = self.now();
            Ok(self
                .lock()
                .iter()
                .filter(|((ns, _), e)| *ns == self.ns && self.owns(&e.record, owner) && !e.moved && !e.unindexed)
                .filter(|(_, e)| self.flaw == MapFlaw::OwnerListsExpired || self.live(e, now))
                .map(|((_, id), _)| ListingHandle::from_stored(*id))
                .collect())
        }

        async fn delete_owner_sessions(&self, owner: &str, keep: Option<&SessionId>) -> Result<u64> {
            if !self.flaw.has_owner_index() {
                return Err(Error::Unsupported("an owner index"));
            }
            let now = self.now();
            let keep = keep.filter(|_| self.flaw != MapFlaw::RevokeIgnoresKeep);
            let of_owner = |map: &HashMap<(u64, SessionId), Entry>| -> Vec<(u64, SessionId)> {
                map.iter()
                    .filter(|((ns, id), e)| {
                        *ns == self.ns
                            && self.owns(&e.record, owner)
                            && Some(id) != keep
                            && !e.unindexed
                            && !(self.flaw == MapFlaw::RevokeMissesRotated && e.rotated)
                    })
                    .map(|(k, _)| *k)
                    .collect()
            };
            let doomed = of_owner(&self.lock());
            if self.flaw == MapFlaw::RevokeForgetsLoginsMeanwhile {
                tokio::time::sleep(PAUSE).await;
            }
            let mut map = self.lock();
            let mut live = 0;
            for key in doomed {
                if map.remove(&key).is_some_and(|e| self.live(&e, now)) {
                    live += 1;
                }
            }
            if self.flaw == MapFlaw::RevokeForgetsLoginsMeanwhile {
                for key in of_owner(&map) {
                    if let Some(e) = map.get_mut(&key) {
                        e.unindexed = true;
                    }
                }
            }
            Ok(live)
        }
        fn listing_handle(&self, id: &session_store_core::SessionId) -> ListingHandle {
            ListingHandle::from_stored(*id)
        }
        async fn load_listed(
            &self,
            handle: &ListingHandle,
        ) -> session_store_core::Result<Option<session_store_core::Record>> {
            if self.flaw == MapFlaw::ListedLoadIgnoresExpiry {
                let map = self.lock();
                return Ok(map
                    .get(&(self.ns, handle.stored()))
                    .filter(|e| !e.moved)
                    .map(|e| e.record.clone()));
            }
            self.load(&handle.stored()).await
        }
        async fn delete_listed(&self, handle: &ListingHandle) -> session_store_core::Result<()> {
            self.delete(&handle.stored()).await
        }
    }

    /// Opens map stores with one flaw; a namespace is a number, and every
    /// store of the harness shares one backing map.
    pub(super) struct MapHarness {
        flaw: MapFlaw,
        weak_rotate: bool,
        map: Backing,
        next: AtomicU64,
        id_locks: IdLocks,
        pending: Pending,
    }

    impl MapHarness {
        pub(super) fn new(flaw: MapFlaw) -> Self {
            Self {
                flaw,
                weak_rotate: false,
                map: Backing::default(),
                next: AtomicU64::new(0),
                id_locks: IdLocks::default(),
                pending: Pending::default(),
            }
        }

        /// The same, declaring the weaker rotate rule of a Redis Cluster.
        pub(super) fn declaring_weak_rotate(flaw: MapFlaw) -> Self {
            Self {
                weak_rotate: true,
                ..Self::new(flaw)
            }
        }
    }

    #[async_trait]
    impl Harness for MapHarness {
        type Store = MapStore;
        type Namespace = u64;

        fn capabilities(&self) -> Capabilities {
            Capabilities::none()
                .rotate_briefly_shows_both_ids(self.weak_rotate)
                .owner_index(self.flaw.has_owner_index())
        }

        async fn new_namespace(&self) -> Result<u64> {
            Ok(self.next.fetch_add(1, Ordering::Relaxed))
        }

        async fn open(&self, ns: &u64, config: &StoreConfig) -> Result<MapStore> {
            Ok(MapStore {
                map: self.map.clone(),
                ns: *ns,
                clock: config.clock.clone(),
                limit: config.max_record_bytes,
                flaw: self.flaw,
                saves: Arc::default(),
                id_locks: Arc::clone(&self.id_locks),
                pending: Arc::clone(&self.pending),
            })
        }
    }

    /// Every property's verdict against `harness`.
    pub(super) fn every_verdict<H: Harness>(harness: &H) -> Vec<(&'static str, Verdict)> {
        block_on(async { session_store_conformance::__property_list!(__run_every_property!(harness)) })
    }

    /// Demands that exactly `expected` of every property fails against
    /// `harness`, and returns its failure.
    pub(super) fn caught_only_by<H: Harness>(what: &str, harness: &H, expected: &str) -> Failure {
        let verdicts = every_verdict(harness);
        assert_eq!(verdicts.len(), properties::PROPERTY_NAMES.len());
        let failed: Vec<&Failure> = verdicts.iter().filter_map(|(_, v)| v.as_ref().err()).collect();
        let names: Vec<&str> = failed.iter().map(|f| f.property).collect();
        assert!(
            names.contains(&expected),
            "{expected} did not catch the store with the flaw {what} (failing: {names:?})"
        );
        assert_eq!(
            names,
            [expected],
            "{what} is caught by other properties too: {failed:#?}"
        );
        let failure = failed[0].clone();
        eprintln!("{what} caught:\n{failure}");
        failure
    }

    macro_rules! map_caught_by {
        ($test:ident, $flaw:expr, $property:ident) => {
            #[test]
            fn $test() {
                caught_only_by(
                    &format!("{:?}", $flaw),
                    &MapHarness::new($flaw),
                    stringify!($property),
                );
            }
        };
    }

    map_caught_by!(
        owner_dropped_on_write,
        MapFlaw::OwnerDroppedOnWrite,
        the_owner_round_trips_through_every_write
    );
    map_caught_by!(
        owner_index_listing_expired_sessions,
        MapFlaw::OwnerListsExpired,
        owner_sessions_follow_every_write_rotate_delete_and_expiry
    );
    map_caught_by!(
        revoke_that_ignores_the_session_to_keep,
        MapFlaw::RevokeIgnoresKeep,
        revoking_an_owner_removes_exactly_that_owners_sessions
    );
    map_caught_by!(
        touch_that_writes_back_what_it_read,
        MapFlaw::TouchWritesBackWhatItRead,
        touch_racing_a_save_never_undoes_it
    );
    /// The linearizability checker catches a save, a conditional save, a
    /// touch and a rotate that are not one atomic step, with no property
    /// written for the race.
    #[test]
    fn the_checker_catches_every_write_that_is_not_one_step() {
        use session_store_conformance::linearizability::{CheckerSettings, histories_are_linearizable};
        for flaw in [
            MapFlaw::SaveWritesDeadlineLater,
            MapFlaw::SaveIfVersionChecksThenWrites,
            MapFlaw::TouchWritesBackWhatItRead,
            MapFlaw::RotateCopiesThenDeletes,
            MapFlaw::PurgeDropsTheEntryOfAWriteUnderWay,
        ] {
            let failure = histories_are_linearizable(&MapHarness::new(flaw), &CheckerSettings::default().rounds(400))
                .expect_err(&format!("the checker catches {flaw:?}"));
            assert_eq!(
                failure.property, "histories_of_concurrent_calls_are_linearizable",
                "{failure}"
            );
            eprintln!("{flaw:?} caught:\n{failure}");
        }
        let control = histories_are_linearizable(&MapHarness::new(MapFlaw::None), &CheckerSettings::default());
        assert_eq!(
            control,
            Ok(session_store_conformance::Pass::Passed),
            "the map store without a flaw"
        );
    }

    map_caught_by!(
        create_that_keeps_a_carried_version,
        MapFlaw::CreateKeepsACarriedVersion,
        create_stores_version_one_whatever_the_record_carries
    );
    map_caught_by!(
        values_nested_deep_refused,
        MapFlaw::DeepValuesRefused,
        data_of_any_shape_round_trips
    );
    map_caught_by!(
        listed_load_that_ignores_expiry,
        MapFlaw::ListedLoadIgnoresExpiry,
        listing_handles_load_and_end_exactly_the_live_records
    );
    map_caught_by!(
        owner_index_that_folds_case,
        MapFlaw::OwnerFoldsCase,
        owners_are_exact_strings_in_their_own_namespace
    );
    map_caught_by!(
        import_that_restarts_versions,
        MapFlaw::ImportRestartsVersions,
        import_keeps_the_version_and_never_replaces_a_newer_record
    );
    map_caught_by!(
        revoke_that_forgets_logins_made_meanwhile,
        MapFlaw::RevokeForgetsLoginsMeanwhile,
        a_revoke_racing_logins_ends_every_earlier_session_and_keeps_every_survivor_listed
    );

    /// A rotated session that escapes a revoke: no property rotates and then
    /// revokes, the model test's owner moves do.
    #[test]
    fn revoke_that_misses_rotated_sessions_is_caught_by_the_model_alone() {
        let harness = MapHarness::new(MapFlaw::RevokeMissesRotated);
        let failed: Vec<_> = every_verdict(&harness)
            .into_iter()
            .filter_map(|(name, v)| v.err().map(|f| (name, f)))
            .collect();
        assert!(failed.is_empty(), "a property caught it too: {failed:#?}");
        let verdict = model_matches_the_reference(&harness, &ModelSettings::default().cases(2_048));
        let failure = verdict.expect_err("the model's owner moves catch a revoke that misses rotated sessions");
        assert_eq!(failure.property, "model_matches_the_reference");
        assert!(failure.detail.contains("RevokeOwner"), "{failure}");
        eprintln!("RevokeMissesRotated caught:\n{failure}");
    }

    /// An import blocked by an expired record: the model's import moves
    /// catch it (no property imports over an expired record).
    #[test]
    fn import_blocked_by_an_expired_record_is_caught_by_the_model_alone() {
        let harness = MapHarness::new(MapFlaw::ImportBlockedByExpired);
        let failed: Vec<_> = every_verdict(&harness)
            .into_iter()
            .filter_map(|(name, v)| v.err().map(|f| (name, f)))
            .collect();
        assert!(failed.is_empty(), "a property caught it too: {failed:#?}");
        let verdict = model_matches_the_reference(&harness, &ModelSettings::default().cases(2_048));
        let failure = verdict.expect_err("the model's import moves catch an import an expired record blocks");
        assert_eq!(failure.property, "model_matches_the_reference");
        assert!(failure.detail.contains("Import"), "{failure}");
        eprintln!("ImportBlockedByExpired caught:\n{failure}");
    }

    /// A purge that drops the index entry of a write under way breaks no
    /// property (none races a purge with a first write): the checker alone
    /// finds the live session its owner's listing misses.
    #[test]
    fn purge_that_drops_the_entry_of_a_write_under_way_is_caught_by_the_checker_alone() {
        use session_store_conformance::linearizability::{CheckerSettings, histories_are_linearizable};
        let harness = MapHarness::new(MapFlaw::PurgeDropsTheEntryOfAWriteUnderWay);
        let failed: Vec<Failure> = every_verdict(&harness)
            .into_iter()
            .filter_map(|(_, v)| v.err())
            .collect();
        assert!(failed.is_empty(), "caught by properties: {failed:#?}");
        let failure = histories_are_linearizable(&harness, &CheckerSettings::default().rounds(400))
            .expect_err("the checker catches it");
        assert!(failure.detail.contains("owner_sessions()"), "{failure}");
        eprintln!("caught:\n{failure}");
    }
    map_caught_by!(
        rotate_that_locks_old_then_new,
        MapFlaw::RotateLocksOldThenNew,
        crossing_rotates_all_finish_and_keep_each_record_once
    );
    map_caught_by!(
        clock_that_is_not_the_given_one,
        MapFlaw::ExposesTheSystemClock,
        the_store_exposes_the_clock_it_was_given
    );
    map_caught_by!(
        create_that_checks_then_writes,
        MapFlaw::CreateChecksThenWrites,
        racing_creates_on_one_id_have_exactly_one_winner
    );
    map_caught_by!(
        rotate_that_checks_then_moves,
        MapFlaw::RotateChecksThenMoves,
        racing_rotates_onto_one_new_id_have_exactly_one_winner
    );
    map_caught_by!(
        rotate_that_copies_then_deletes,
        MapFlaw::RotateCopiesThenDeletes,
        a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live
    );
    map_caught_by!(
        rotate_that_deletes_then_copies,
        MapFlaw::RotateDeletesThenCopies,
        a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live
    );
    /// A touch that reads, pauses and writes back breaks both touch races:
    /// it revives a deleted record and undoes a save.
    #[test]
    fn touch_that_reads_then_writes() {
        let failed: Vec<&str> = every_verdict(&MapHarness::new(MapFlaw::TouchReadsThenWrites))
            .into_iter()
            .filter(|(_, v)| v.is_err())
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            failed,
            [
                "touch_racing_delete_never_brings_the_record_back",
                "touch_racing_a_save_never_undoes_it"
            ]
        );
    }
    map_caught_by!(
        purge_that_lists_then_deletes,
        MapFlaw::PurgeListsThenDeletes,
        purge_racing_a_save_of_the_same_expired_id_never_removes_the_fresh_record
    );
    map_caught_by!(
        save_that_writes_the_deadline_later,
        MapFlaw::SaveWritesDeadlineLater,
        readers_during_racing_saves_see_data_deadline_and_version_of_one_write
    );
    map_caught_by!(
        rotate_that_leaves_a_moved_mark,
        MapFlaw::RotateLeavesAMovedMark,
        late_writes_after_a_rotate_never_bring_the_old_id_back
    );
    map_caught_by!(
        negative_deadlines_clamped,
        MapFlaw::NegativeDeadlinesClamped,
        extreme_deadlines_are_live_exactly_while_now_is_before_them
    );
    map_caught_by!(
        touch_that_refuses_past_deadlines,
        MapFlaw::TouchRefusesPastDeadlines,
        touch_to_a_past_deadline_expires_the_record_at_once
    );
    map_caught_by!(
        save_that_sees_a_live_record_at_the_deadline,
        MapFlaw::SaveSeesLiveAtTheDeadline,
        writes_at_exactly_the_deadline_treat_the_record_as_expired
    );
    map_caught_by!(
        ttl_from_real_time,
        MapFlaw::TtlFromRealTime,
        records_stay_live_while_real_time_passes_and_the_clock_stands_still
    );
    map_caught_by!(
        long_keys_cut,
        MapFlaw::LongKeysCut,
        keys_of_hundreds_of_bytes_and_tens_of_kibibytes_round_trip
    );
    map_caught_by!(
        blob_cap_at_the_limit,
        MapFlaw::BlobCapAtTheLimit,
        data_at_the_configured_limit_round_trips_and_one_byte_over_is_refused
    );
    map_caught_by!(
        ids_that_stop_after_one_page,
        MapFlaw::IdsStopAfterOnePage,
        ids_and_count_over_thousands_of_records_agree_and_miss_none
    );
    map_caught_by!(
        purge_that_removes_one_batch,
        MapFlaw::PurgeRemovesOneBatch,
        purge_removes_and_counts_hundreds_of_expired_records
    );
    map_caught_by!(
        purge_that_sweeps_every_namespace,
        MapFlaw::PurgeSweepsEveryNamespace,
        purge_count_ids_and_clear_touch_only_their_own_namespace
    );

    /// The model test's new moves catch these flaws too: touch into the
    /// past, a clock on the exact deadline, and late save_if_version with
    /// the version an id had before it was rotated away.
    #[test]
    fn the_model_test_catches_the_edge_flaws_too() {
        use session_store_conformance::model::{ModelSettings, model_matches_the_reference};
        for flaw in [
            MapFlaw::TouchRefusesPastDeadlines,
            MapFlaw::SaveSeesLiveAtTheDeadline,
            MapFlaw::RotateLeavesAMovedMark,
        ] {
            let verdict = model_matches_the_reference(&MapHarness::new(flaw), &ModelSettings::default().cases(4_096));
            let failure = verdict.expect_err(&format!("the model test did not catch {flaw:?}"));
            assert!(failure.detail.contains("shortest failing sequence"), "{failure}");
            eprintln!("{flaw:?} caught by the model:\n{failure}");
        }
    }

    /// Under the weaker rotate rule a store may show both ids during a
    /// rotate, but never neither: the suite checks exactly that.
    #[test]
    fn the_weaker_rotate_rule_allows_both_ids_but_never_neither() {
        let reader =
            |h: &MapHarness| block_on(properties::a_reader_during_a_rotate_sees_exactly_one_of_the_two_ids_live(h));
        assert_eq!(
            reader(&MapHarness::declaring_weak_rotate(MapFlaw::RotateCopiesThenDeletes)),
            Ok(session_store_conformance::Pass::Passed)
        );
        let failure = reader(&MapHarness::declaring_weak_rotate(MapFlaw::RotateDeletesThenCopies))
            .expect_err("a rotate that shows neither id passed under the weaker rule");
        assert!(failure.rule.contains("rotate_briefly_shows_both_ids"), "{failure}");
        assert!(failure.detail.contains("neither"), "{failure}");
    }

    /// Without a flaw the map store passes every property and the model test.
    #[test]
    fn the_map_store_without_a_flaw_passes_everything() {
        for (name, verdict) in every_verdict(&MapHarness::new(MapFlaw::None)) {
            assert!(verdict.is_ok(), "control ({name}) failed: {verdict:?}");
        }
        let model = session_store_conformance::model::model_matches_the_reference(
            &MapHarness::new(MapFlaw::None),
            &session_store_conformance::model::ModelSettings::default(),
        );
        assert!(model.is_ok(), "control (model) failed: {model:?}");
    }
}

/// A failing sequence is saved beside the source file named in the
/// settings (the macro passes the caller's `file!()`).
#[test]
fn failing_sequences_are_saved_beside_the_calling_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("conformance.rs");
    std::fs::write(&source, "// a caller's test file\n").unwrap();
    let source: &'static str = Box::leak(source.to_str().unwrap().to_owned().into_boxed_str());
    let settings = ModelSettings::default().regressions_beside(source);
    let harness = BrokenHarness::new(Flaw::CreateOverwrites);
    assert!(model_matches_the_reference(&harness, &settings).is_err());
    let saved = std::fs::read_to_string(dir.path().join("conformance.proptest-regressions")).unwrap();
    assert!(saved.lines().any(|l| l.starts_with("cc ")), "no seed saved: {saved}");
}

/// The control: without a flaw the wrapper passes every property and the
/// model test, so what the tests above catch is the flaw alone.
#[test]
fn the_wrapper_without_a_flaw_passes_everything() {
    let harness = BrokenHarness::new(Flaw::None);
    let verdicts: Vec<(&str, Verdict)> = block_on(async {
        vec![
            ("data", properties::data_round_trips_exactly(&harness).await),
            (
                "deadline",
                properties::load_returns_none_at_the_exact_deadline(&harness).await,
            ),
            (
                "touch",
                properties::touch_never_revives_an_expired_record(&harness).await,
            ),
            (
                "create",
                properties::create_never_overwrites_a_live_record(&harness).await,
            ),
            (
                "race",
                properties::racing_conditional_saves_have_exactly_one_winner(&harness).await,
            ),
            (
                "purge",
                properties::purge_removes_exactly_the_expired_records_and_counts_them(&harness).await,
            ),
            (
                "count",
                properties::count_ids_and_clear_see_only_live_records(&harness).await,
            ),
            ("namespaces", properties::namespaces_are_isolated(&harness).await),
            (
                "rotate",
                properties::rotate_moves_the_record_and_the_old_id_no_longer_loads(&harness).await,
            ),
            (
                "deleted",
                properties::save_if_version_never_brings_back_a_deleted_record(&harness).await,
            ),
            (
                "size",
                properties::oversized_records_are_refused_and_nothing_is_written(&harness).await,
            ),
        ]
    });
    for (what, verdict) in verdicts {
        assert!(verdict.is_ok(), "control ({what}) failed: {verdict:?}");
    }
    let model = model_matches_the_reference(&harness, &ModelSettings::default());
    assert!(model.is_ok(), "control (model) failed: {model:?}");
}

/// Every property the macro generates runs against the control too.
mod control {
    use super::{BrokenHarness, Flaw};
    session_store_conformance::conformance_tests!(BrokenHarness::new(Flaw::None));
}

/// Secrets at rest: each broken at-rest store is caught by exactly the
/// at-rest property that names its flaw, and the suite's own
/// `AtRestHarness` over the example store passes everything.
mod at_rest_flaws {
    use std::sync::Arc;

    use base64::Engine as _;
    use session_store_conformance::{AtRestHarness, Capabilities, Harness, StoreConfig, fixtures::at_rest_key};
    use session_store_core::at_rest::{AtRest, Protected, SEALED_KEY, inner_limit, stored_id, stored_owner};
    use session_store_core::seal::KeyRing;
    use session_store_core::{
        Error, ListingHandle, Record, Result, SessionData, SessionId, SessionStore, SharedClock, Timestamp,
        async_trait, raw::codec,
    };

    use super::custom_store::{TinyHarness, TinyStore};
    use super::map_flaws::{caught_only_by, every_verdict};

    /// The one rule of secrets at rest a store breaks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum AtRestFlaw {
        /// Bodies sealed and bound to their id, but ids kept as they are:
        /// the cookie value is the key and every listing answers it.
        IdsNotHashed,
        /// Ids hashed and bodies sealed, with the same associated data for
        /// every record: a body moved to another id opens there.
        BodiesNotBound,
        /// A ring that keeps every key it ever held: a retired (or
        /// replaced) key still opens.
        RetiredKeysOpen,
    }

    /// Ids hashed (by core's wrapper, with encryption off) and bodies
    /// sealed here, under one associated data for every record
    /// (`BodiesNotBound`).
    #[derive(Debug)]
    struct UnboundSeal {
        inner: Protected<TinyStore>,
        keys: KeyRing,
        limit: usize,
    }

    impl UnboundSeal {
        fn seal(&self, record: &Record) -> Result<Record> {
            codec::check_size(&record.data, self.limit)?;
            let body = codec::encode_body(record)?;
            let blob = self.keys.seal(&body, b"one for all");
            let mut data = SessionData::new();
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob);
            data.insert_raw(SEALED_KEY.to_owned(), format!("\"{text}\""));
            let mut sealed = record.clone();
            sealed.data = data;
            sealed.owner = record.owner.as_deref().map(stored_owner);
            Ok(sealed)
        }

        fn open(&self, loaded: Option<Record>) -> Result<Option<Record>> {
            let Some(r) = loaded else { return Ok(None) };
            let text = r.data.get_raw(SEALED_KEY).unwrap_or_default().trim_matches('"');
            let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| Error::decode(r.id, "not base64", None))?;
            let body = self
                .keys
                .open(&blob, b"one for all")
                .map_err(|e| Error::decode(r.id, e.to_string(), None))?;
            codec::decode_body(r.id, &body, r.expires_at, r.version).map(Some)
        }
    }

    #[async_trait]
    impl SessionStore for UnboundSeal {
        fn clock(&self) -> SharedClock {
            self.inner.clock()
        }
        async fn create(&self, record: &Record) -> Result<u64> {
            self.inner.create(&self.seal(record)?).await
        }
        async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
            self.open(self.inner.load(id).await?)
        }
        async fn save(&self, record: &Record) -> Result<u64> {
            self.inner.save(&self.seal(record)?).await
        }
        async fn save_if_version(&self, record: &Record) -> Result<u64> {
            self.inner.save_if_version(&self.seal(record)?).await
        }
        async fn import(&self, record: &Record) -> Result<bool> {
            self.inner.import(&self.seal(record)?).await
        }
        async fn touch(&self, id: &SessionId, expires_at: Timestamp) -> Result<bool> {
            self.inner.touch(id, expires_at).await
        }
        async fn delete(&self, id: &SessionId) -> Result<()> {
            self.inner.delete(id).await
        }
        async fn rotate(&self, old: &SessionId, new: &SessionId) -> Result<bool> {
            self.inner.rotate(old, new).await
        }
        async fn purge_expired(&self) -> Result<u64> {
            self.inner.purge_expired().await
        }
        async fn ids(&self) -> Result<Vec<ListingHandle>> {
            self.inner.ids().await
        }
        async fn clear(&self) -> Result<()> {
            self.inner.clear().await
        }
        fn listing_handle(&self, id: &SessionId) -> ListingHandle {
            self.inner.listing_handle(id)
        }
        async fn load_listed(&self, handle: &ListingHandle) -> Result<Option<Record>> {
            self.open(self.inner.load_listed(handle).await?)
        }
        async fn delete_listed(&self, handle: &ListingHandle) -> Result<()> {
            self.inner.delete_listed(handle).await
        }
        async fn owner_sessions(&self, _owner: &str) -> session_store_core::Result<Vec<ListingHandle>> {
            Err(session_store_core::Error::Unsupported("an owner index"))
        }
        async fn delete_owner_sessions(
            &self,
            _owner: &str,
            _keep: Option<&session_store_core::SessionId>,
        ) -> session_store_core::Result<u64> {
            Err(session_store_core::Error::Unsupported("an owner index"))
        }
    }

    /// The example store (durable, shared, raw access) with one at-rest flaw.
    struct FlawedAtRest {
        inner: TinyHarness,
        flaw: AtRestFlaw,
    }

    impl FlawedAtRest {
        fn new(flaw: AtRestFlaw) -> Self {
            Self {
                inner: TinyHarness::default(),
                flaw,
            }
        }

        fn stored(&self, id: &SessionId) -> SessionId {
            if self.flaw == AtRestFlaw::IdsNotHashed {
                *id
            } else {
                stored_id(id)
            }
        }
    }

    #[async_trait]
    impl Harness for FlawedAtRest {
        type Store = Arc<dyn SessionStore>;
        type Namespace = u64;

        fn capabilities(&self) -> Capabilities {
            self.inner
                .capabilities()
                .at_rest(true)
                .rotate_briefly_shows_both_ids(true)
        }

        async fn new_namespace(&self) -> Result<u64> {
            self.inner.new_namespace().await
        }

        async fn open(&self, namespace: &u64, config: &StoreConfig) -> Result<Arc<dyn SessionStore>> {
            let inner_config = config.clone().max_record_bytes(inner_limit(config.max_record_bytes));
            let inner = self.inner.open(namespace, &inner_config).await?;
            let keys = config
                .at_rest_keys
                .clone()
                .unwrap_or_else(session_store_conformance::default_at_rest_keys);
            let at_rest = AtRest::new().max_record_bytes(config.max_record_bytes);
            Ok(match self.flaw {
                AtRestFlaw::IdsNotHashed => Arc::new(Protected::new(inner, at_rest.encrypt(keys))),
                AtRestFlaw::BodiesNotBound => Arc::new(UnboundSeal {
                    inner: Protected::new(
                        inner,
                        at_rest.hash_ids(true).max_record_bytes(inner_config.max_record_bytes),
                    ),
                    keys,
                    limit: config.max_record_bytes,
                }),
                AtRestFlaw::RetiredKeysOpen => {
                    // Every key the properties use, whatever the ring says.
                    let mut all = KeyRing::new(1, at_rest_key(1));
                    all.add(2, at_rest_key(2)).expect("a new id");
                    Arc::new(Protected::new(inner, at_rest.hash_ids(true).encrypt(all)))
                }
            })
        }

        async fn read_raw(&self, namespace: &u64, id: &SessionId) -> Result<Option<Vec<u8>>> {
            self.inner.read_raw(namespace, &self.stored(id)).await
        }

        async fn write_raw(&self, namespace: &u64, id: &SessionId, bytes: &[u8]) -> Result<()> {
            self.inner.write_raw(namespace, &self.stored(id), bytes).await
        }
    }

    macro_rules! at_rest_caught_by {
        ($test:ident, $flaw:expr, $property:ident) => {
            #[test]
            fn $test() {
                caught_only_by(
                    &format!("{:?}", $flaw),
                    &FlawedAtRest::new($flaw),
                    stringify!($property),
                );
            }
        };
    }

    at_rest_caught_by!(
        ids_kept_as_they_are,
        AtRestFlaw::IdsNotHashed,
        at_rest_no_listing_or_stored_byte_holds_a_cookie_value_or_a_data_value
    );
    at_rest_caught_by!(
        bodies_not_bound_to_their_id,
        AtRestFlaw::BodiesNotBound,
        at_rest_a_body_moved_to_another_id_fails_to_decode_for_that_id_only
    );
    at_rest_caught_by!(
        retired_keys_that_still_open,
        AtRestFlaw::RetiredKeysOpen,
        at_rest_a_record_under_a_retired_or_wrong_key_fails_to_decode_for_that_record_only
    );

    /// The control: the suite's own at-rest harness over the example
    /// store passes every property (the at-rest ones run, none skipped)
    /// and the model test.
    #[test]
    fn the_at_rest_harness_passes_everything() {
        let harness = AtRestHarness::new(TinyHarness::default());
        for (name, verdict) in every_verdict(&harness) {
            assert!(verdict.is_ok(), "control ({name}) failed: {verdict:?}");
            if name.starts_with("at_rest_") {
                assert_eq!(verdict, Ok(session_store_conformance::Pass::Passed), "{name}");
            }
        }
        let model = session_store_conformance::model::model_matches_the_reference(
            &harness,
            &session_store_conformance::model::ModelSettings::default(),
        );
        assert!(model.is_ok(), "control (model) failed: {model:?}");
    }
}
