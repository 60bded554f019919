//! Opens the chosen backend.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::at_rest::{AtRest, Protected, inner_limit};
use session_store_core::{DEFAULT_MAX_RECORD_BYTES, SessionStore};
use session_store_file::FileStore;
use session_store_memory::MemoryStore;
use session_store_mysql::MysqlStore;
use session_store_postgres::PostgresStore;
use session_store_redis::RedisStore;
use session_store_sqlite::SqliteStore;

use crate::chain;
use crate::config::{Backend, Config, MemoryCapacity};

/// The SQLite database file inside the store directory.
const SQLITE_FILE: &str = "sessions.db";

/// The store (wrapped in [`Protected`] when `at_rest` is given) and a line
/// saying what it is.
pub async fn open(config: &Config, at_rest: Option<&AtRest>) -> Result<(Arc<dyn SessionStore>, String), String> {
    // Below `Protected`, a sealed record is larger than the data it seals:
    // the store's own limit leaves room for that (`Protected` keeps the
    // default limit on the data itself).
    let limit = if at_rest.is_some() {
        inner_limit(DEFAULT_MAX_RECORD_BYTES)
    } else {
        DEFAULT_MAX_RECORD_BYTES
    };
    let protect = |store: Arc<dyn SessionStore>| match at_rest {
        Some(at_rest) => Arc::new(Protected::new(store, at_rest.clone())) as Arc<dyn SessionStore>,
        None => store,
    };
    let ids = if config.hash_ids { "hash of the id" } else { "id" };
    let (store, description): (Arc<dyn SessionStore>, String) = match config.backend {
        Backend::Memory => {
            let builder = MemoryStore::builder().max_record_bytes(limit);
            let (store, bound) = match config.memory_capacity {
                MemoryCapacity::Records(n) => (
                    builder.capacity(n).build(),
                    format!("at most {n} sessions, the closest to expiring evicted first"),
                ),
                MemoryCapacity::Unbounded => (builder.unbounded().build(), "unbounded".to_owned()),
            };
            (
                Arc::new(store),
                format!("memory ({bound}; sessions end when the app stops)"),
            )
        }
        Backend::File => {
            let store = FileStore::builder(&config.dir)
                .max_record_bytes(limit)
                .open()
                .map_err(|e| format!("cannot open the file store in {}: {}", config.dir.display(), chain(&e)))?;
            (Arc::new(store), format!("file, directory {}", config.dir.display()))
        }
        Backend::Sqlite => {
            create_dir(config)?;
            let path = config.dir.join(SQLITE_FILE);
            let store = SqliteStore::builder(&path)
                .max_record_bytes(limit)
                .open()
                .map_err(|e| format!("cannot open the SQLite database {}: {}", path.display(), chain(&e)))?;
            (Arc::new(store), format!("sqlite, database {}", path.display()))
        }
        Backend::Redis => {
            let url = config.redis_url.clone().unwrap_or_default();
            let shown = redacted(&url);
            let store = RedisStore::builder(url)
                .prefix(config.redis_prefix.clone())
                .max_record_bytes(limit)
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .map_err(|e| {
                    format!(
                        "cannot use Redis at {shown}: {}\n(start one with `redis-server`, pass --redis-url, \
                         or use --store file)",
                        redacted(&chain(&e))
                    )
                })?;
            (
                Arc::new(store),
                format!("redis at {shown}, keys {}{{{ids}}}", config.redis_prefix),
            )
        }
        Backend::Postgres => {
            let url = config.postgres_url.clone().unwrap_or_default();
            let shown = redacted(&url);
            let store = PostgresStore::builder(url)
                .table(config.postgres_table.clone())
                .max_record_bytes(limit)
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .map_err(|e| {
                    format!(
                        "cannot use PostgreSQL at {shown}: {}\n(pass --postgres-url or DATABASE_URL, \
                         or use --store file)",
                        redacted(&chain(&e))
                    )
                })?;
            (
                Arc::new(store),
                format!("postgres at {shown}, table {}", config.postgres_table),
            )
        }
        Backend::Mysql => {
            let url = config.mysql_url.clone().unwrap_or_default();
            let shown = redacted(&url);
            let store = MysqlStore::builder(url)
                .table(config.mysql_table.clone())
                .max_record_bytes(limit)
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .map_err(|e| {
                    format!(
                        "cannot use MySQL at {shown}: {}\n(pass --mysql-url or MYSQL_URL, or use --store file)",
                        redacted(&chain(&e))
                    )
                })?;
            (
                Arc::new(store),
                format!("mysql at {shown}, table {}", config.mysql_table),
            )
        }
        // Served by `cookie_mode`, which opens no store.
        Backend::Cookie => return Err("cookie mode keeps no store".to_owned()),
    };
    Ok((protect(store), description))
}

/// A connection URL without its password (`user:***@host`).
/// `text` (a URL, a libpq key-value string, or a message holding URLs)
/// with every password replaced by `***`.
fn redacted(text: &str) -> String {
    if text.contains("://") && text.split_whitespace().count() > 1 {
        return text.split(' ').map(redacted).collect::<Vec<_>>().join(" ");
    }
    let url = text;
    let Some((scheme, rest)) = url.split_once("://") else {
        // The key=value form: drop the password setting.
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    // The password of the user info, and of a query parameter (`pass`,
    // `password`: redis and libpq read both).
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let mut shown = match base.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}")
        }
        None => format!("{scheme}://{base}"),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                    format!("{k}=***")
                }
                _ => kv.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

/// Creates the SQLite store's directory, owner-only (0700) as the file
/// store makes its own.
fn create_dir(config: &Config) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&config.dir).map_err(|e| {
        format!(
            "cannot create the store directory {}: {}",
            config.dir.display(),
            chain(&e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("postgres://h/db"), "postgres://h/db");
        assert_eq!(redacted("host=h password=s3cret user=u"), "host=h password=*** user=u");
        assert_eq!(redacted("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redacted("rediss://u:s3cret@h/"), "rediss://u:***@h/");
        assert_eq!(redacted("redis://u:pa@ss@h/"), "redis://u:***@h/");
        assert_eq!(
            redacted("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            redacted("postgres://u@h/db?password=s3cret&x=a@b"),
            "postgres://u@h/db?password=***&x=a@b"
        );
        assert_eq!(
            redacted("connecting to redis://:s3cret@h:6379 failed"),
            "connecting to redis://:***@h:6379 failed"
        );
    }
}
