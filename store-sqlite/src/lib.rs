//! An embedded SQLite session store (rusqlite, bundled SQLite, WAL).
