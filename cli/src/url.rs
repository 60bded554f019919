//! Store URLs: which backend, where, and its options.
//!
//! | URL | store | options (query string) |
//! |---|---|---|
//! | `file:DIR` | `session-store-file` on the directory `DIR` | `durability=fsync` (default) or `nosync` |
//! | `sqlite:PATH` | `session-store-sqlite` on the database file `PATH` | `table=NAME` (default `sessions`) |
//! | `redis://HOST[:PORT][/DB]`, `rediss://…` | `session-store-redis` | `prefix=P` (default `session:`), `cluster` (one seed URL of a cluster), `timeout_ms=N`, `ca=PEM-FILE` (`rediss://` with a private CA) |
//! | `redis://A,redis://B,…` | the same store on a Redis Cluster, these nodes as seeds | as above |
//! | `redis+sentinel://[:PASS@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]` | the same store on the master Redis Sentinel names, following failovers | `prefix=P`, `timeout_ms=N` |
//! | `postgres://USER@HOST[:PORT]/DB` | `session-store-postgres` | `schema=S`, `table=NAME` (default `sessions`), `timeout_ms=N`; the rest goes to the driver |
//! | `mysql://USER:PASS@HOST[:PORT]/DB` | `session-store-mysql` (MySQL or MariaDB) | `table=NAME` (default `sessions`), `timeout_ms=N`; the rest goes to the driver (`require_ssl=true`) |
//!
//! `file:` and `sqlite:` take a path as is (`file:./sessions`,
//! `sqlite:/var/lib/app/sessions.db`); `file:///abs` and `sqlite:///abs`
//! work too. Query values are percent-decoded (`prefix=app%3Asession%3A`).
//! A new backend is one more [`Kind`] and one more arm in [`StoreUrl::parse`]
//! and in [`crate::open`].

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use session_store_file::Durability;

/// A parsed store URL.
#[derive(Debug, Clone)]
pub struct StoreUrl {
    /// Which store, with its options.
    pub kind: Kind,
    /// The URL as shown in messages (a Redis password replaced by `***`).
    pub shown: String,
}

/// The backend a URL names.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A file store directory.
    File {
        /// The directory.
        dir: PathBuf,
        /// Whether writes are synced.
        durability: Durability,
    },
    /// An SQLite database.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: String,
    },
    /// A Redis server or cluster.
    Redis {
        /// One URL, or a cluster's seed URLs.
        urls: Vec<String>,
        /// Whether the URLs name a cluster.
        cluster: bool,
        /// The key prefix.
        prefix: String,
        /// The bound on every round trip.
        timeout: Option<Duration>,
        /// A CA certificate (PEM file) to trust for `rediss://`.
        ca: Option<PathBuf>,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The connection URL (without this tool's own options).
        url: String,
        /// The schema of the table (the server's search path when `None`).
        schema: Option<String>,
        /// The table.
        table: String,
        /// The bound on every call.
        timeout: Option<Duration>,
    },
    /// A MySQL or MariaDB database.
    Mysql {
        /// The connection URL (without this tool's own options).
        url: String,
        /// The table.
        table: String,
        /// The bound on every call.
        timeout: Option<Duration>,
    },
}

/// The schemes this build understands, for the message of a wrong URL.
pub const EXPECTED: &str = "expected file:DIR, sqlite:PATH, redis://HOST[:PORT][/DB], rediss://…, \
                            several comma-separated redis:// URLs (a cluster), \
                            redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER, \
                            postgres://USER@HOST[:PORT]/DB or mysql://USER:PASSWORD@HOST[:PORT]/DB";

impl StoreUrl {
    /// Parses `text`; the error says what is wrong, without echoing a
    /// password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = redact(text);
        let (base, query) = match text.split_once('?') {
            Some((b, q)) => (b, q),
            None => (text, ""),
        };
        let mut options = parse_query(query).map_err(|e| format!("{shown}: {e}"))?;
        let Some((scheme, rest)) = base.split_once(':') else {
            return Err(format!("{shown}: not a store URL ({EXPECTED})"));
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let durability = match take(&mut options, "durability").as_deref() {
                    None | Some("fsync") => Durability::Fsync,
                    Some("nosync") => Durability::NoSync,
                    Some(other) => {
                        return Err(format!("{shown}: durability={other}: expected fsync or nosync"));
                    }
                };
                Kind::File {
                    dir: local_path(rest).ok_or_else(|| format!("{shown}: the directory is missing"))?,
                    durability,
                }
            }
            "sqlite" => Kind::Sqlite {
                table: take(&mut options, "table").unwrap_or_else(|| session_store_sqlite::DEFAULT_TABLE.to_owned()),
                path: local_path(rest).ok_or_else(|| format!("{shown}: the database path is missing"))?,
            },
            "redis" | "rediss" => {
                let prefix = take(&mut options, "prefix").unwrap_or_else(|| session_store_redis::DEFAULT_PREFIX.into());
                let cluster_flag = match take(&mut options, "cluster").as_deref() {
                    None | Some("false" | "0" | "no") => false,
                    Some("" | "true" | "1" | "yes") => true,
                    Some(other) => return Err(format!("{shown}: cluster={other}: expected true or false")),
                };
                let timeout = match take(&mut options, "timeout_ms") {
                    None => None,
                    Some(ms) => {
                        Some(Duration::from_millis(ms.parse().map_err(|_| {
                            format!("{shown}: timeout_ms={ms}: expected milliseconds")
                        })?))
                    }
                };
                let ca = take(&mut options, "ca").map(PathBuf::from);
                // What is left of the query belongs to the redis crate
                // (`protocol=resp3`, ...).
                let rest_query: Vec<String> = options.drain(..).map(|(k, v)| format!("{k}={v}")).collect();
                let mut urls = Vec::new();
                for url in base.split(',') {
                    let url = url.trim();
                    let lower = url.to_ascii_lowercase();
                    if !(lower.starts_with("redis://") || lower.starts_with("rediss://")) {
                        return Err(format!(
                            "{shown}: every URL of a cluster must start with redis:// or rediss://"
                        ));
                    }
                    if rest_query.is_empty() {
                        urls.push(url.to_owned());
                    } else {
                        urls.push(format!("{url}?{}", rest_query.join("&")));
                    }
                }
                Kind::Redis {
                    cluster: cluster_flag || urls.len() > 1,
                    urls,
                    prefix,
                    timeout,
                    ca,
                }
            }
            "redis+sentinel" => {
                let prefix = take(&mut options, "prefix").unwrap_or_else(|| session_store_redis::DEFAULT_PREFIX.into());
                let timeout = timeout_option(&mut options, &shown)?;
                Kind::Redis {
                    // The store's builder reads the sentinels and the master from it.
                    urls: vec![base.to_owned()],
                    cluster: false,
                    prefix,
                    timeout,
                    ca: None,
                }
            }
            "mysql" => {
                let table =
                    take(&mut options, "table").unwrap_or_else(|| session_store_mysql::DEFAULT_TABLE.to_owned());
                let timeout = timeout_option(&mut options, &shown)?;
                // What is left of the query belongs to the driver (`require_ssl`, ...).
                let rest_query: Vec<String> = options.drain(..).map(|(k, v)| format!("{k}={v}")).collect();
                let url = if rest_query.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", rest_query.join("&"))
                };
                Kind::Mysql { url, table, timeout }
            }
            "postgres" | "postgresql" => {
                let schema = take(&mut options, "schema");
                let table =
                    take(&mut options, "table").unwrap_or_else(|| session_store_postgres::DEFAULT_TABLE.to_owned());
                let timeout = match take(&mut options, "timeout_ms") {
                    None => None,
                    Some(ms) => {
                        Some(Duration::from_millis(ms.parse().map_err(|_| {
                            format!("{shown}: timeout_ms={ms}: expected milliseconds")
                        })?))
                    }
                };
                // What is left of the query belongs to the driver (`sslmode`, ...).
                let rest_query: Vec<String> = options.drain(..).map(|(k, v)| format!("{k}={v}")).collect();
                let url = if rest_query.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", rest_query.join("&"))
                };
                Kind::Postgres {
                    url,
                    schema,
                    table,
                    timeout,
                }
            }
            _ => return Err(format!("{shown}: unknown store kind {scheme:?} ({EXPECTED})")),
        };
        if let Some((key, _)) = options.first() {
            return Err(format!("{shown}: unknown option {key:?} for this kind of store"));
        }
        Ok(Self { kind, shown })
    }

    /// A short name of the backend: `file`, `sqlite`, `redis`, `redis-cluster`, `postgres`, `mysql`.
    pub fn backend(&self) -> &'static str {
        match &self.kind {
            Kind::File { .. } => "file",
            Kind::Sqlite { .. } => "sqlite",
            Kind::Redis { cluster: false, .. } => "redis",
            Kind::Redis { cluster: true, .. } => "redis-cluster",
            Kind::Postgres { .. } => "postgres",
            Kind::Mysql { .. } => "mysql",
        }
    }
}

/// The `timeout_ms` option, if given.
fn timeout_option(options: &mut Vec<(String, String)>, shown: &str) -> Result<Option<Duration>, String> {
    match take(options, "timeout_ms") {
        None => Ok(None),
        Some(ms) => ms
            .parse()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| format!("{shown}: timeout_ms={ms}: expected milliseconds")),
    }
}

pub(crate) fn local_path(rest: &str) -> Option<PathBuf> {
    // file:///abs -> /abs; file:./rel -> ./rel
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = percent_decode_str(path).decode_utf8_lossy().into_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

pub(crate) fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("option {k:?} is not UTF-8 once percent-decoded"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("option {k:?} is given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn take(options: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let at = options.iter().position(|(k, _)| k == key)?;
    Some(options.remove(at).1)
}

/// `text` with the password of every `scheme://user:password@` replaced,
/// and the value of every `password=` or `pass=` query option (libpq and
/// redis read both).
pub fn redact(text: &str) -> String {
    text.split(',')
        .map(|part| {
            let (base, query) = match part.split_once('?') {
                Some((base, query)) => (base, Some(query)),
                None => (part, None),
            };
            let mut shown = match (base.find("://"), base.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let auth = &base[s + 3..at];
                    match auth.split_once(':') {
                        Some((user, _)) => format!("{}{user}:***{}", &base[..s + 3], &base[at..]),
                        None => format!("{}***{}", &base[..s + 3], &base[at..]),
                    }
                }
                _ => base.to_owned(),
            };
            if let Some(query) = query {
                let options: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                            format!("{k}=***")
                        }
                        _ => kv.to_owned(),
                    })
                    .collect();
                shown.push('?');
                shown.push_str(&options.join("&"));
            }
            shown
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let u = StoreUrl::parse("file:./sessions").unwrap();
        assert!(
            matches!(u.kind, Kind::File { ref dir, durability: Durability::Fsync } if dir == &PathBuf::from("./sessions"))
        );
        let u = StoreUrl::parse("file:///tmp/x?durability=nosync").unwrap();
        assert!(
            matches!(u.kind, Kind::File { ref dir, durability: Durability::NoSync } if dir == &PathBuf::from("/tmp/x"))
        );
        let u = StoreUrl::parse("sqlite:./s.db?table=web").unwrap();
        assert!(matches!(u.kind, Kind::Sqlite { ref table, .. } if table == "web"));
        let u = StoreUrl::parse("redis://:secret@127.0.0.1:7000/2?prefix=app%3A&protocol=resp3").unwrap();
        assert_eq!(u.shown, "redis://:***@127.0.0.1:7000/2?prefix=app%3A&protocol=resp3");
        assert_eq!(
            redact("postgres://u@h/db?password=s3cret&sslmode=disable"),
            "postgres://***@h/db?password=***&sslmode=disable"
        );
        match u.kind {
            Kind::Redis {
                urls, cluster, prefix, ..
            } => {
                assert_eq!(urls, ["redis://:secret@127.0.0.1:7000/2?protocol=resp3"]);
                assert!(!cluster);
                assert_eq!(prefix, "app:");
            }
            other => panic!("{other:?}"),
        }
        let u = StoreUrl::parse("redis://a:1,redis://b:2").unwrap();
        assert_eq!(u.backend(), "redis-cluster");
        let u = StoreUrl::parse("rediss://a:1?cluster").unwrap();
        assert_eq!(u.backend(), "redis-cluster");
        let u = StoreUrl::parse("redis+sentinel://:pw@s1:26379,s2:26379/sessions?prefix=app%3A").unwrap();
        assert_eq!(
            u.shown,
            "redis+sentinel://:***@s1:26379,s2:26379/sessions?prefix=app%3A"
        );
        match u.kind {
            Kind::Redis {
                urls, cluster, prefix, ..
            } => {
                assert_eq!(urls, ["redis+sentinel://:pw@s1:26379,s2:26379/sessions"]);
                assert!(!cluster);
                assert_eq!(prefix, "app:");
            }
            other => panic!("{other:?}"),
        }
        assert!(StoreUrl::parse("redis+sentinel://s1:26379/m?protocol=resp3").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_open() {
        for bad in [
            "sessions",
            "ftp://x",
            "file:",
            "sqlite:x?colour=red",
            "file:x?durability=sometimes",
            "redis://a,file:b",
            "sqlite:x?table=a&table=b",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
        let e = StoreUrl::parse("mongodb://u:pw@h/db").unwrap_err();
        assert!(!e.contains("pw"), "{e}");
        let my = StoreUrl::parse("mysql://u:pw@h/db?table=app_sessions&timeout_ms=250&require_ssl=true").unwrap();
        assert!(!my.shown.contains("pw"), "{}", my.shown);
        match my.kind {
            Kind::Mysql { url, table, timeout } => {
                assert_eq!(url, "mysql://u:pw@h/db?require_ssl=true");
                assert_eq!(table, "app_sessions");
                assert_eq!(timeout, Some(Duration::from_millis(250)));
            }
            other => panic!("{other:?}"),
        }
    }
}
