//! What `session-store doctor` asks of a table beyond the trait: rows that
//! are no session at all.

use session_store_core::{Fingerprint, Result};

use crate::PostgresStore;

impl PostgresStore {
    /// The rows of this store's table whose id column holds no session id
    /// (a row some other program wrote), by the fingerprint of their id's
    /// bytes, never the value. No visitor can load such a row, and
    /// [`count`](session_store_core::SessionStore::count) and
    /// [`ids`](session_store_core::SessionStore::ids) leave it out, so
    /// only this finds it.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](session_store_core::Error::Backend) when the query fails.
    pub async fn malformed_rows(&self) -> Result<Vec<Fingerprint>> {
        let s = &*self.inner;
        let rows = s
            .conn
            .run("malformed_rows", |c| async move {
                let stmt = c.prepare_cached(&s.sql.malformed).await?;
                Ok(c.query(&stmt, &[]).await?)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| Fingerprint::of_bytes(row.try_get::<_, &str>(0).unwrap_or_default().as_bytes()))
            .collect())
    }

    /// Deletes every row [`malformed_rows`](Self::malformed_rows) finds, in
    /// one statement; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](session_store_core::Error::Backend) when the statement fails.
    pub async fn remove_malformed_rows(&self) -> Result<u64> {
        let s = &*self.inner;
        s.conn
            .run("remove_malformed_rows", |c| async move {
                let stmt = c.prepare_cached(&s.sql.remove_malformed).await?;
                Ok(c.execute(&stmt, &[]).await?)
            })
            .await
    }
}
