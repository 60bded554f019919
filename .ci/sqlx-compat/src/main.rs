//! An app that uses sqlx for its own SQLite database and session-store-sqlite
//! for its sessions: both link the one libsqlite3-sys cargo picks. `.ci/run`
//! builds and runs it; it fails to build if the two cannot share a graph.

use session_store_core::{Clock, Record, SessionData, SessionStore, SystemClock};
use session_store_sqlite::SqliteStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("sessions.db"))?;
    let mut data = SessionData::new();
    data.insert("n", &1)?;
    let now = SystemClock.now();
    let record = Record::with_deadline(session_store_core::SessionId::random(), data, now, now + std::time::Duration::from_secs(60));
    store.create(&record).await?;
    assert!(store.load(&record.id).await?.is_some());

    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()").fetch_one(&pool).await?;
    println!("sqlx-compat: session-store-sqlite and sqlx share SQLite {version}");
    Ok(())
}
