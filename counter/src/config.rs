//! Command line and environment.

use std::path::PathBuf;

use session_store_tower::SameSite;

/// The help text.
pub const USAGE: &str = "\
usage: counter [--store memory|file|sqlite|redis|postgres|mysql|cookie] [--dir DIR] [--redis-url URL]
               [--redis-prefix P] [--postgres-url URL] [--postgres-table T] [--mysql-url URL] [--mysql-table T]
               [--memory-capacity N|unbounded] [--port PORT]
               [--middleware layer|tower-sessions] [--secure true|false] [--same-site strict|lax|none]
               [--max-sessions-per-user N] [--hash-ids] [--encrypt]

  --store            session backend (env SESSION_STORE; default: file); `cookie`: no store,
                     each session sealed in its cookie with the key ring in SESSION_COOKIE_KEYS
                     (\"1:<key>\" or \"1:<old key>,2:<new key>\", keys as 64 hex characters or
                     base64 of 32 random bytes; the last one seals, all of them open)
  --dir              directory of the file or sqlite store (env SESSION_DIR; default: ./counter-sessions
                     for file, ./counter-sqlite for sqlite), created 0700 if missing
  --redis-url        Redis server of the redis store, required with it (env REDIS_URL),
                     e.g. redis://127.0.0.1:6379, or behind Sentinel
                     redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster
  --redis-prefix     key prefix in Redis (env REDIS_PREFIX; default: counter:session:)
  --postgres-url     PostgreSQL server of the postgres store, required with it (env DATABASE_URL),
                     e.g. postgres://app@127.0.0.1:5432/app
  --postgres-table   table of the postgres store, created if missing (env POSTGRES_TABLE;
                     default: counter_sessions)
  --mysql-url        MySQL or MariaDB server of the mysql store, required with it (env MYSQL_URL),
                     e.g. mysql://app:secret@127.0.0.1:3306/app
  --mysql-table      table of the mysql store, created if missing (env MYSQL_TABLE;
                     default: counter_sessions)
  --memory-capacity  most sessions the memory store keeps, `unbounded` or 0 for no bound
                     (env SESSION_MEMORY_CAPACITY; default: 100000)
  --port             port on 127.0.0.1 (env PORT; default: 3000; 0 picks a free one)
  --middleware       layer: session-store-tower, version-checked, no lost counts (default);
                     tower-sessions: tower-sessions and the workspace's adapter, last writer wins
                     (env SESSION_MIDDLEWARE)
  --secure           the cookie's Secure attribute (env SESSION_COOKIE_SECURE; default: true);
                     false for plain HTTP to a host other than localhost / 127.0.0.1
  --same-site        the cookie's SameSite (env SESSION_COOKIE_SAMESITE; default: lax)
  --max-sessions-per-user
                     a login past N sessions of one user ends that user's oldest
                     (env SESSION_MAX_PER_USER; default: no cap)
  --hash-ids         keep each session under a hash of its id: no file name, key or row of the
                     store holds a cookie value (env SESSION_HASH_IDS=1; default: off)
  --encrypt          seal each session's data and owner (XChaCha20-Poly1305) with the key ring in
                     SESSION_AT_REST_KEYS (\"1:<key>\" or \"1:<old key>,2:<new key>\", keys as 64 hex
                     characters or base64 of 32 random bytes; the last one seals, all of them open)
                     (env SESSION_ENCRYPT=1; default: off). Neither fits --store cookie.

GET / counts visits in the session; POST /login rotates the session id; POST /logout deletes the session.
Logs go to stderr; RUST_LOG sets what is logged (default: info).
";

/// Which backend keeps the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In process memory: gone when the app stops.
    Memory,
    /// One file per session in a directory.
    File,
    /// A SQLite database file in a directory.
    Sqlite,
    /// A Redis server.
    Redis,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
    /// No store: each session sealed in its own cookie (`cookie_mode`).
    Cookie,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "memory" => Ok(Self::Memory),
            "file" => Ok(Self::File),
            "sqlite" => Ok(Self::Sqlite),
            "redis" => Ok(Self::Redis),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::Mysql),
            "cookie" => Ok(Self::Cookie),
            other => Err(format!(
                "unknown store {other:?}: use memory, file, sqlite, redis, postgres, mysql or cookie"
            )),
        }
    }
}

/// Which session middleware serves the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Middleware {
    /// `session-store-tower`: version-checked commits, `update` for the count.
    Layer,
    /// tower-sessions through `session-store-tower-sessions`: last writer wins.
    TowerSessions,
}

impl std::str::FromStr for Middleware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "layer" | "session-store-tower" => Ok(Self::Layer),
            "tower-sessions" => Ok(Self::TowerSessions),
            other => Err(format!("unknown middleware {other:?}: use layer or tower-sessions")),
        }
    }
}

impl std::fmt::Display for Middleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Layer => "session-store-tower",
            Self::TowerSessions => "tower-sessions (session-store-tower-sessions adapter)",
        })
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
fn parse_bool(flag: &str, s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid {flag} {s:?}: use true or false")),
    }
}

/// How many sessions the memory store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCapacity {
    /// At most this many; a full store evicts the session closest to expiring.
    Records(usize),
    /// No bound: memory grows with every live session.
    Unbounded,
}

impl Default for MemoryCapacity {
    fn default() -> Self {
        Self::Records(session_store_memory::DEFAULT_CAPACITY)
    }
}

impl std::str::FromStr for MemoryCapacity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "0" => Ok(Self::Unbounded),
            t if t.eq_ignore_ascii_case("unbounded") => Ok(Self::Unbounded),
            t => t.parse().map(Self::Records).map_err(|_| {
                format!("invalid memory capacity {s:?}: use a number of sessions, or `unbounded` (or 0) for no bound")
            }),
        }
    }
}

/// Everything the app is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The backend.
    pub backend: Backend,
    /// Directory of the file or SQLite store (each has its own default, so
    /// following the README with both never mixes them).
    pub dir: PathBuf,
    /// Redis URL of the Redis store: required with it (no default writes
    /// into a server the user did not name).
    pub redis_url: Option<String>,
    /// Key prefix of the Redis store.
    pub redis_prefix: String,
    /// Connection URL of the PostgreSQL store: required with it.
    pub postgres_url: Option<String>,
    /// Table of the PostgreSQL store.
    pub postgres_table: String,
    /// Connection URL of the MySQL store: required with it.
    pub mysql_url: Option<String>,
    /// Table of the MySQL store.
    pub mysql_table: String,
    /// Capacity of the memory store.
    pub memory_capacity: MemoryCapacity,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The session middleware.
    pub middleware: Middleware,
    /// Whether the cookie is `Secure`.
    pub secure: bool,
    /// The cookie's `SameSite`.
    pub same_site: SameSite,
    /// At most this many sessions per logged-in user (the layer only).
    pub max_sessions_per_user: Option<usize>,
    /// Whether the store keeps sessions under a hash of their id.
    pub hash_ids: bool,
    /// Whether the store seals each session's data (key ring in
    /// `SESSION_AT_REST_KEYS`).
    pub encrypt: bool,
}

impl Config {
    /// The cookie's attributes, for the startup lines.
    pub fn cookie_description(&self) -> String {
        let same_site = match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        };
        format!(
            "HttpOnly; SameSite={same_site}{}",
            if self.secure {
                "; Secure"
            } else {
                " (not Secure: --secure false)"
            }
        )
    }
}

impl Config {
    /// Reads flags (which win) and environment variables; `Ok(None)` for
    /// `--help`.
    pub fn from_args_and_env(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let mut store = env("SESSION_STORE").filter(|s| !s.is_empty());
        let mut dir = env("SESSION_DIR").filter(|s| !s.is_empty()).map(PathBuf::from);
        let mut redis_url = env("REDIS_URL").filter(|s| !s.is_empty());
        let mut redis_prefix = env("REDIS_PREFIX").filter(|s| !s.is_empty());
        let mut postgres_url = env("DATABASE_URL").filter(|s| !s.is_empty());
        let mut postgres_table = env("POSTGRES_TABLE").filter(|s| !s.is_empty());
        let mut mysql_url = env("MYSQL_URL").filter(|s| !s.is_empty());
        let mut mysql_table = env("MYSQL_TABLE").filter(|s| !s.is_empty());
        let mut memory_capacity = env("SESSION_MEMORY_CAPACITY").filter(|s| !s.is_empty());
        let mut port = env("PORT").filter(|s| !s.is_empty());
        let mut middleware = env("SESSION_MIDDLEWARE").filter(|s| !s.is_empty());
        let mut secure = env("SESSION_COOKIE_SECURE").filter(|s| !s.is_empty());
        let mut same_site = env("SESSION_COOKIE_SAMESITE").filter(|s| !s.is_empty());
        let mut max_per_user = env("SESSION_MAX_PER_USER").filter(|s| !s.is_empty());
        let mut hash_ids = env("SESSION_HASH_IDS").filter(|s| !s.is_empty());
        let mut encrypt = env("SESSION_ENCRYPT").filter(|s| !s.is_empty());
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
                _ => (arg.clone(), None),
            };
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--store" => store = Some(value()?),
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--redis-url" => redis_url = Some(value()?),
                "--redis-prefix" => redis_prefix = Some(value()?),
                "--postgres-url" => postgres_url = Some(value()?),
                "--postgres-table" => postgres_table = Some(value()?),
                "--mysql-url" => mysql_url = Some(value()?),
                "--mysql-table" => mysql_table = Some(value()?),
                "--memory-capacity" => memory_capacity = Some(value()?),
                "--port" => port = Some(value()?),
                "--middleware" => middleware = Some(value()?),
                "--secure" => secure = Some(value()?),
                "--same-site" => same_site = Some(value()?),
                "--max-sessions-per-user" => max_per_user = Some(value()?),
                // Switches: on when given alone, or `--hash-ids=false`.
                "--hash-ids" => hash_ids = Some(inline.clone().unwrap_or_else(|| "true".to_owned())),
                "--encrypt" => encrypt = Some(inline.clone().unwrap_or_else(|| "true".to_owned())),
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        let backend: Backend = store.as_deref().unwrap_or("file").parse()?;
        // No default writes into a server the user did not name.
        if backend == Backend::Redis && redis_url.is_none() {
            return Err("--store redis needs --redis-url URL (or REDIS_URL), e.g. redis://127.0.0.1:6379".to_owned());
        }
        if backend == Backend::Postgres && postgres_url.is_none() {
            return Err(
                "--store postgres needs --postgres-url URL (or DATABASE_URL), e.g. postgres://app@127.0.0.1:5432/app"
                    .to_owned(),
            );
        }
        if backend == Backend::Mysql && mysql_url.is_none() {
            return Err(
                "--store mysql needs --mysql-url URL (or MYSQL_URL), e.g. mysql://app:secret@127.0.0.1:3306/app"
                    .to_owned(),
            );
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
            None => 3000,
        };
        let memory_capacity = match memory_capacity {
            Some(c) => c.parse()?,
            None => MemoryCapacity::default(),
        };
        let middleware = middleware.as_deref().unwrap_or("layer").parse()?;
        let secure = match secure {
            Some(s) => parse_bool("--secure", &s)?,
            None => true,
        };
        let same_site = match same_site {
            Some(s) => s.parse()?,
            None => SameSite::Lax,
        };
        let max_sessions_per_user = match max_per_user {
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("invalid --max-sessions-per-user {n:?}: a number of at least 1")),
            },
            None => None,
        };
        let hash_ids = match hash_ids {
            Some(s) => parse_bool("--hash-ids (SESSION_HASH_IDS)", &s)?,
            None => false,
        };
        let encrypt = match encrypt {
            Some(s) => parse_bool("--encrypt (SESSION_ENCRYPT)", &s)?,
            None => false,
        };
        Ok(Some(Self {
            max_sessions_per_user,
            hash_ids,
            encrypt,
            middleware,
            secure,
            same_site,
            backend,
            dir: dir.unwrap_or_else(|| default_dir(backend)),
            redis_url,
            redis_prefix: redis_prefix.unwrap_or_else(|| "counter:session:".to_owned()),
            postgres_url,
            postgres_table: postgres_table.unwrap_or_else(|| "counter_sessions".to_owned()),
            mysql_url,
            mysql_table: mysql_table.unwrap_or_else(|| "counter_sessions".to_owned()),
            memory_capacity,
            port,
        }))
    }
}

/// The store directory when none is given: one per backend, so the file
/// store never finds the SQLite database among its shards.
fn default_dir(backend: Backend) -> PathBuf {
    PathBuf::from(match backend {
        Backend::Sqlite => "counter-sqlite",
        _ => "counter-sessions",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Config>, String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_args_and_env(args.iter().map(|s| (*s).to_owned()), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults() {
        let config = parse(&[], &[]).unwrap().unwrap();
        assert_eq!(config.backend, Backend::File);
        assert_eq!(config.dir, PathBuf::from("counter-sessions"));
        assert_eq!(config.port, 3000);
        assert_eq!(config.memory_capacity, MemoryCapacity::Records(100_000));
        assert_eq!(config.middleware, Middleware::Layer);
        assert!(config.secure, "Secure unless turned off");
        assert_eq!(config.same_site, SameSite::Lax);
        let sqlite = parse(&["--store", "sqlite"], &[]).unwrap().unwrap();
        assert_eq!(
            sqlite.dir,
            PathBuf::from("counter-sqlite"),
            "not the file store's directory"
        );
    }

    #[test]
    fn network_stores_need_a_url() {
        let err = parse(&["--store", "postgres"], &[]).unwrap_err();
        assert!(err.contains("--postgres-url"), "{err}");
        let err = parse(&["--store", "mysql"], &[]).unwrap_err();
        assert!(err.contains("--mysql-url"), "{err}");
        let c = parse(&["--store", "mariadb"], &[("MYSQL_URL", "mysql://u:p@h/db")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.backend, c.mysql_url.as_deref()),
            (Backend::Mysql, Some("mysql://u:p@h/db"))
        );
        let err = parse(&["--store", "redis"], &[]).unwrap_err();
        assert!(err.contains("--redis-url"), "{err}");
        let c = parse(&["--store", "postgres"], &[("DATABASE_URL", "postgres://h/db")])
            .unwrap()
            .unwrap();
        assert_eq!(c.postgres_url.as_deref(), Some("postgres://h/db"));
        // Only the chosen backend needs one.
        assert_eq!(parse(&["--store", "file"], &[]).unwrap().unwrap().redis_url, None);
    }

    #[test]
    fn cookie_settings_and_middleware() {
        let of = |args: &[&str], env: &[(&str, &str)]| parse(args, env).unwrap().unwrap();
        assert!(!of(&["--secure", "false"], &[]).secure);
        assert!(!of(&["--secure=0"], &[]).secure);
        assert!(!of(&[], &[("SESSION_COOKIE_SECURE", "off")]).secure);
        assert!(
            of(&["--secure", "yes"], &[("SESSION_COOKIE_SECURE", "false")]).secure,
            "the flag wins"
        );
        assert_eq!(of(&["--same-site", "Strict"], &[]).same_site, SameSite::Strict);
        assert_eq!(of(&[], &[]).max_sessions_per_user, None);
        assert_eq!(
            of(&["--max-sessions-per-user", "3"], &[]).max_sessions_per_user,
            Some(3)
        );
        assert!(parse(&["--max-sessions-per-user", "0"], &[]).is_err());
        assert!(parse(&["--max-sessions-per-user", "many"], &[]).is_err());
        assert_eq!(
            of(&[], &[("SESSION_COOKIE_SAMESITE", "none")]).same_site,
            SameSite::None
        );
        assert_eq!(
            of(&["--middleware", "tower-sessions"], &[]).middleware,
            Middleware::TowerSessions
        );
        assert_eq!(
            of(&[], &[("SESSION_MIDDLEWARE", "layer")]).middleware,
            Middleware::Layer
        );
        assert!(parse(&["--secure", "maybe"], &[]).unwrap_err().contains("--secure"));
        assert!(
            parse(&["--same-site", "sometimes"], &[])
                .unwrap_err()
                .contains("SameSite")
        );
        assert!(
            parse(&["--middleware", "rack"], &[])
                .unwrap_err()
                .contains("middleware")
        );
    }

    #[test]
    fn at_rest_switches() {
        let of = |args: &[&str], env: &[(&str, &str)]| {
            let c = parse(args, env).unwrap().unwrap();
            (c.hash_ids, c.encrypt)
        };
        assert_eq!(of(&[], &[]), (false, false), "off by default");
        assert_eq!(of(&["--hash-ids"], &[]), (true, false));
        assert_eq!(of(&["--encrypt"], &[]), (false, true));
        assert_eq!(of(&["--hash-ids", "--encrypt", "--store", "sqlite"], &[]), (true, true));
        assert_eq!(
            of(&[], &[("SESSION_HASH_IDS", "1"), ("SESSION_ENCRYPT", "yes")]),
            (true, true)
        );
        assert_eq!(
            of(&["--hash-ids=false"], &[("SESSION_HASH_IDS", "1")]),
            (false, false),
            "the flag wins"
        );
        // A switch takes no separate value: the next argument is its own flag.
        let c = parse(&["--encrypt", "--port", "1"], &[]).unwrap().unwrap();
        assert_eq!((c.encrypt, c.port), (true, 1));
        assert!(
            parse(&[], &[("SESSION_ENCRYPT", "maybe")])
                .unwrap_err()
                .contains("SESSION_ENCRYPT")
        );
        assert!(parse(&["--hash-ids=sure"], &[]).unwrap_err().contains("--hash-ids"));
    }

    #[test]
    fn memory_capacity() {
        let of = |args: &[&str], env: &[(&str, &str)]| parse(args, env).unwrap().unwrap().memory_capacity;
        assert_eq!(of(&["--memory-capacity", "5"], &[]), MemoryCapacity::Records(5));
        assert_eq!(of(&["--memory-capacity=unbounded"], &[]), MemoryCapacity::Unbounded);
        assert_eq!(of(&["--memory-capacity", "0"], &[]), MemoryCapacity::Unbounded);
        assert_eq!(
            of(&[], &[("SESSION_MEMORY_CAPACITY", "Unbounded")]),
            MemoryCapacity::Unbounded
        );
        assert_eq!(
            of(&[], &[("SESSION_MEMORY_CAPACITY", "42")]),
            MemoryCapacity::Records(42)
        );
        assert_eq!(
            of(&["--memory-capacity", "7"], &[("SESSION_MEMORY_CAPACITY", "42")]),
            MemoryCapacity::Records(7),
            "the flag wins"
        );
        for bad in ["-1", "lots", "1e6", ""] {
            let err = parse(&["--memory-capacity", bad], &[]).unwrap_err();
            assert!(err.contains("memory capacity"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn flags_win_over_environment() {
        let env = [
            ("SESSION_STORE", "redis"),
            ("PORT", "8080"),
            ("REDIS_URL", "redis://env"),
        ];
        let config = parse(&[], &env).unwrap().unwrap();
        assert_eq!(
            (
                config.backend,
                config.port,
                config.redis_url.as_deref().unwrap_or_default()
            ),
            (Backend::Redis, 8080, "redis://env")
        );
        let config = parse(&["--store", "sqlite", "--port=0", "--dir", "/tmp/x"], &env)
            .unwrap()
            .unwrap();
        assert_eq!(config.backend, Backend::Sqlite);
        assert_eq!(config.port, 0);
        assert_eq!(config.dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&["--store", "mongo"], &[]).unwrap_err().contains("mongo"));
        assert!(parse(&["--port", "99999"], &[]).is_err());
        assert!(parse(&["--store"], &[]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--frobnicate"], &[]).is_err());
        assert_eq!(parse(&["--help"], &[]).unwrap(), None);
    }
}
