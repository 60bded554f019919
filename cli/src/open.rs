//! Opening the store a URL names.

use std::sync::Arc;

use session_store_core::at_rest::{AtRest, Protected, inner_limit};
use session_store_core::seal::KeyRing;
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, SessionStore};
use session_store_file::FileStore;
use session_store_redis::RedisStore;
use session_store_sqlite::{SqliteStore, inspect::is_sqlite_file};

use crate::fail::{Exit, Failure};
use crate::url::{Kind, StoreUrl};

/// Whether opening may create the store (a migration's target) or must find
/// one there (every other command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The directory or database must exist and be a store of that kind.
    Existing,
    /// A missing directory or database is created.
    Create,
}

/// How a store's records are protected at rest
/// (`session_store_core::at_rest`): what the command must undo to read
/// them, and do to write them.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    /// Records are keyed by a hash of their id; listings answer handles.
    pub hash_ids: bool,
    /// The environment variable that holds the key ring the bodies are
    /// sealed with.
    pub keys_env: Option<String>,
}

impl Protection {
    /// Whether anything is on.
    pub fn is_on(&self) -> bool {
        self.hash_ids || self.keys_env.is_some()
    }

    /// The options for `Protected`, the key ring read from the environment;
    /// `None` when nothing is on. With `hash_ids_below` false, ids pass
    /// through unhashed (a migration between two stores with hashed ids
    /// copies the stored hashes as they are).
    fn at_rest(&self, hash_ids_below: bool) -> Result<Option<AtRest>, Failure> {
        if !self.is_on() {
            return Ok(None);
        }
        let mut at_rest = AtRest::new().hash_ids(hash_ids_below);
        if let Some(var) = &self.keys_env {
            // The message names the variable and what is wrong, never the key.
            let keys = KeyRing::from_env(var).map_err(|e| Failure::new(Exit::Usage, None, e.chain()))?;
            at_rest = at_rest.encrypt(keys);
        }
        Ok(Some(at_rest))
    }
}

/// An opened store, with the URL it came from.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The URL.
    pub url: StoreUrl,
    /// The store, behind the trait (wrapped in `Protected` when the store
    /// is protected at rest).
    pub store: Arc<dyn SessionStore>,
    /// Whether its ids are hashed: its listings answer handles, not ids.
    pub hashed: bool,
}

/// Checks what is at a local path before a store opens it, so that a typo
/// does not create an empty store and a file of another kind is named.
pub fn check_local(url: &StoreUrl, mode: Mode) -> Result<(), Failure> {
    let unavailable = |why: String| Failure::new(Exit::Unavailable, Some(url), why);
    match &url.kind {
        Kind::File { dir, .. } => match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => {
                let hint = if is_sqlite_file(dir).unwrap_or(false) {
                    " (it is an SQLite database: use sqlite:)"
                } else {
                    ""
                };
                Err(unavailable(format!(
                    "{} is a file, not a file store's directory{hint}",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == Mode::Create => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(unavailable(format!("the directory {} does not exist", dir.display())))
            }
            Err(e) => Err(unavailable(format!("{}: {e}", dir.display()))),
        },
        Kind::Sqlite { path, table } => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(unavailable(format!(
                "{} is a directory, not an SQLite database (a file store? use file:)",
                path.display()
            ))),
            Ok(m) if m.len() == 0 && mode == Mode::Create => Ok(()),
            Ok(_) => {
                if !is_sqlite_file(path).map_err(|e| unavailable(e.chain()))? {
                    return Err(unavailable(format!("{} is not an SQLite database", path.display())));
                }
                if mode == Mode::Existing
                    && session_store_sqlite::inspect::schema_version(path, table)
                        .map_err(|e| unavailable(e.chain()))?
                        .is_none()
                {
                    return Err(unavailable(format!(
                        "{} holds no session table {table:?} (not a session store, or another table=)",
                        path.display()
                    )));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == Mode::Create => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(unavailable(format!("the database {} does not exist", path.display())))
            }
            Err(e) => Err(unavailable(format!("{}: {e}", path.display()))),
        },
        Kind::Redis { .. } | Kind::Postgres { .. } | Kind::Mysql { .. } => Ok(()),
    }
}

/// Opens the store `url` names, as it is (no protection at rest).
pub async fn open(url: &StoreUrl, mode: Mode) -> Result<Opened, Failure> {
    open_protected(url, mode, &Protection::default()).await
}

/// Opens the store `url` names, protected at rest as `protection` says.
pub async fn open_protected(url: &StoreUrl, mode: Mode, protection: &Protection) -> Result<Opened, Failure> {
    open_with(url, mode, protection, protection.hash_ids).await
}

/// As [`open_protected`]; with `hash_ids_below` false, `Protected` passes
/// ids through unhashed (the ids given are stored hashes already).
pub async fn open_with(
    url: &StoreUrl,
    mode: Mode,
    protection: &Protection,
    hash_ids_below: bool,
) -> Result<Opened, Failure> {
    let at_rest = protection.at_rest(hash_ids_below)?;
    // Below `Protected`, a sealed record is larger than the data it seals.
    let limit = if at_rest.is_some() {
        inner_limit(DEFAULT_MAX_RECORD_BYTES)
    } else {
        DEFAULT_MAX_RECORD_BYTES
    };
    check_local(url, mode)?;
    let unavailable = |e: session_store_core::Error| Failure::new(Exit::Unavailable, Some(url), e.chain());
    let store: Arc<dyn SessionStore> = match &url.kind {
        Kind::File { dir, durability } => Arc::new(
            FileStore::builder(dir.clone())
                .durability(*durability)
                .max_record_bytes(limit)
                .open()
                .map_err(unavailable)?,
        ),
        Kind::Sqlite { path, table } => Arc::new(
            SqliteStore::builder(path)
                .table(table.clone())
                .max_record_bytes(limit)
                .open()
                .map_err(unavailable)?,
        ),
        Kind::Redis {
            urls,
            cluster,
            prefix,
            timeout,
            ca,
        } => {
            let builder = if *cluster {
                RedisStore::cluster_builder(urls.clone())
            } else {
                RedisStore::builder(urls[0].clone())
            };
            let mut builder = builder.prefix(prefix.clone()).max_record_bytes(limit);
            if let Some(t) = timeout {
                builder = builder.timeout(*t);
            }
            if let Some(ca) = ca {
                let pem = std::fs::read(ca).map_err(|e| {
                    Failure::new(
                        Exit::Unavailable,
                        Some(url),
                        format!("reading the CA file {}: {e}", ca.display()),
                    )
                })?;
                builder = with_ca(builder, pem).map_err(|e| Failure::new(Exit::Usage, Some(url), e))?;
            }
            Arc::new(builder.build().await.map_err(unavailable)?)
        }
        Kind::Postgres { .. } => Arc::new(postgres_store(url, limit).await?),
        Kind::Mysql { .. } => Arc::new(mysql_store(url, limit).await?),
    };
    let store = match at_rest {
        Some(at_rest) => Arc::new(Protected::new(store, at_rest)) as Arc<dyn SessionStore>,
        None => store,
    };
    Ok(Opened {
        url: url.clone(),
        store,
        hashed: protection.hash_ids,
    })
}

/// The PostgreSQL store `url` names (the caller checked its kind); its
/// schema is migrated if older, refused if newer.
pub async fn postgres_store(url: &StoreUrl, limit: usize) -> Result<session_store_postgres::PostgresStore, Failure> {
    let Kind::Postgres {
        url: pg,
        schema,
        table,
        timeout,
    } = &url.kind
    else {
        return Err(Failure::new(Exit::Usage, Some(url), "not a PostgreSQL store URL"));
    };
    let mut builder = session_store_postgres::PostgresStore::builder(pg.clone())
        .table(table.clone())
        .max_record_bytes(limit);
    if let Some(schema) = schema {
        builder = builder.schema(schema.clone());
    }
    if let Some(t) = timeout {
        builder = builder.timeout(*t);
    }
    builder
        .build()
        .await
        .map_err(|e| Failure::new(Exit::Unavailable, Some(url), e.chain()))
}

/// The MySQL store `url` names (the caller checked its kind); its table is
/// made if missing, refused if a newer build migrated it.
pub async fn mysql_store(url: &StoreUrl, limit: usize) -> Result<session_store_mysql::MysqlStore, Failure> {
    let Kind::Mysql {
        url: my,
        table,
        timeout,
    } = &url.kind
    else {
        return Err(Failure::new(Exit::Usage, Some(url), "not a MySQL store URL"));
    };
    let mut builder = session_store_mysql::MysqlStore::builder(my.clone())
        .table(table.clone())
        .max_record_bytes(limit);
    if let Some(t) = timeout {
        builder = builder.timeout(*t);
    }
    builder
        .build()
        .await
        .map_err(|e| Failure::new(Exit::Unavailable, Some(url), e.chain()))
}

#[cfg(feature = "tls")]
fn with_ca(
    builder: session_store_redis::RedisStoreBuilder,
    pem: Vec<u8>,
) -> Result<session_store_redis::RedisStoreBuilder, String> {
    Ok(builder.tls_root_ca(pem))
}

#[cfg(not(feature = "tls"))]
fn with_ca(
    _: session_store_redis::RedisStoreBuilder,
    _: Vec<u8>,
) -> Result<session_store_redis::RedisStoreBuilder, String> {
    Err("ca= needs rediss://, which this build leaves out (feature tls)".into())
}
