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
    Clock, Error, Record, Result, SessionId, SessionStore, SharedClock, Timestamp, async_trait, codec::check_size,
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

    async fn create(&self, record: &Record) -> Result<()> {
        self.check_size(record)?;
        let r = self.mangle(record);
        match self.flaw {
            Flaw::CreateOverwrites => {
                let v = self.inner.save(&r).await?;
                self.remember(&r, v);
                return Ok(());
            }
            Flaw::ExpiredRecordBlocksCreate if self.shadow(&r.id).is_some() => {
                return Err(Error::IdCollision { id: r.id });
            }
            _ => {}
        }
        self.inner.create(&r).await?;
        self.remember(&r, 1);
        Ok(())
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
            return Err(Error::backend_msg("no such session"));
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
            for id in self.inner.ids().await? {
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

    async fn ids(&self) -> Result<Vec<SessionId>> {
        if self.flaw == Flaw::IdsIncludeExpired {
            return Ok(self.written.lock().unwrap().keys().copied().collect());
        }
        self.inner.ids().await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await?;
        self.written.lock().unwrap().clear();
        Ok(())
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

/// Broken stores that claim a capability they do not have, built on the
/// example third-party store (`examples/custom_store.rs`).
#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

mod capability_flaws {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use session_store_conformance::{Capabilities, Harness, StoreConfig, block_on, properties};
    use session_store_core::{Error, Record, Result, SessionId, SessionStore, Timestamp, async_trait};

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
    }

    /// `TinyStore` with one capability flaw.
    #[derive(Debug, Clone)]
    pub(super) struct Flawed {
        inner: TinyStore,
        flaw: CapabilityFlaw,
    }

    #[async_trait]
    impl SessionStore for Flawed {
        fn clock(&self) -> session_store_core::SharedClock {
            self.inner.clock()
        }

        async fn create(&self, record: &Record) -> Result<()> {
            self.inner.create(record).await
        }
        async fn load(&self, id: &SessionId) -> Result<Option<Record>> {
            match self.inner.load(id).await {
                Err(Error::Decode { .. }) if self.flaw == CapabilityFlaw::CorruptLoadsAsAbsent => Ok(None),
                other => other,
            }
        }
        async fn save(&self, record: &Record) -> Result<u64> {
            self.inner.save(record).await
        }
        async fn save_if_version(&self, record: &Record) -> Result<u64> {
            self.inner.save_if_version(record).await
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
        async fn ids(&self) -> Result<Vec<SessionId>> {
            self.inner.ids().await
        }
        async fn clear(&self) -> Result<()> {
            self.inner.clear().await
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
            Ok(Flawed { inner, flaw: self.flaw })
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
