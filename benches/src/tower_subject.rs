//! The one [`Subject`](crate::subject::Subject) impl every tower-sessions
//! peer shares, as a macro: a wrapper around a tower-sessions store of a
//! given `tower_sessions_core` version. Also compiled into the sqlx peers'
//! crate (`benches/sqlx-peers`, `#[path]`), which cannot depend on this
//! crate's stores; the invoking module imports `Duration`, `Payload`,
//! `Subject`, `Op`, `BenchResult` and `Timestamp`.

use session_store_core::Timestamp;
use time::OffsetDateTime;

/// `t` as the `OffsetDateTime` tower-sessions records hold.
pub(crate) fn offset_date_time(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Implements [`Subject`] for a wrapper around a tower-sessions store of
/// the given `tower_sessions_core` version.
macro_rules! tower_subject {
    ($ty:ty, $core:ident, supports: $supports:expr) => {
        impl Subject for $ty {
            type Rec = $core::session::Record;
            type Id = $core::session::Id;

            fn supports(&self, op: Op) -> bool {
                let supports: fn(&Self, Op) -> bool = $supports;
                supports(self, op)
            }

            fn fresh_id(&self) -> Self::Id {
                $core::session::Id::default()
            }

            fn record(&self, payload: &Payload, expires_at: Timestamp) -> Self::Rec {
                $core::session::Record {
                    id: $core::session::Id::default(),
                    data: payload.to_json_map(),
                    expiry_date: crate::tower_subject::offset_date_time(expires_at),
                }
            }

            fn id_of(rec: &Self::Rec) -> Self::Id {
                rec.id
            }

            fn set_id(rec: &mut Self::Rec, id: Self::Id) {
                rec.id = id;
            }

            async fn create(&self, rec: &mut Self::Rec) -> BenchResult<()> {
                Ok($core::SessionStore::create(&self.store, rec).await?)
            }

            async fn load(&self, id: Self::Id) -> BenchResult<Option<Self::Rec>> {
                Ok($core::SessionStore::load(&self.store, &id).await?)
            }

            async fn save(&self, rec: &Self::Rec) -> BenchResult<()> {
                Ok($core::SessionStore::save(&self.store, rec).await?)
            }

            async fn delete(&self, id: Self::Id) -> BenchResult<()> {
                Ok($core::SessionStore::delete(&self.store, &id).await?)
            }

            async fn purge(&self) -> BenchResult<Option<u64>> {
                self.purge_expired().await
            }

            async fn clear(&self, ids: Vec<Self::Id>) -> BenchResult<()> {
                self.clear_ids(ids).await
            }

            fn expiry_resolution(&self) -> Duration {
                self.resolution()
            }
        }
    };
}

pub(crate) use tower_subject;
