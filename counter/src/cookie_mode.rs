//! `--store cookie`: no store at all; each visitor's session is sealed in
//! its own cookie (`session_store_tower::CookieSessions` through
//! `SessionLayer::cookie`), under the key ring of `SESSION_COOKIE_KEYS`.

use session_store_core::seal::KeyRing;
use session_store_tower::CookieSessions;

use crate::config::{Config, Middleware};

/// The environment variable that holds the key ring: `1:<key>` or
/// `1:<old key>,2:<new key>` (the last one seals, every one opens).
pub const KEYS_VAR: &str = "SESSION_COOKIE_KEYS";

/// The app name sealed into every cookie (another app's cookies, even
/// under the same key, do not open here).
pub const APP_NAME: &str = "counter";

/// The cookie-mode handle, from the environment; a message for the
/// operator when the key ring is missing or bad (never the key itself) or
/// the other flags do not fit cookie mode. Nothing is generated.
pub fn sessions(config: &Config, env: impl Fn(&str) -> Option<String>) -> Result<CookieSessions, String> {
    if config.middleware != Middleware::Layer {
        return Err("--store cookie works with --middleware layer only".to_owned());
    }
    if config.max_sessions_per_user.is_some() {
        return Err(
            "--max-sessions-per-user needs server-side sessions: cookie mode cannot end another browser's session"
                .to_owned(),
        );
    }
    let Some(text) = env(KEYS_VAR) else {
        return Err(format!(
            "--store cookie needs the key ring in {KEYS_VAR}: set it to \"1:<key>\", the key being 64 hex \
             characters or the base64 of 32 random bytes (for example `openssl rand -hex 32`)"
        ));
    };
    let keys = KeyRing::parse(&text).map_err(|e| format!("{KEYS_VAR}: {}", crate::chain(&e)))?;
    Ok(CookieSessions::new(keys, APP_NAME))
}

/// The startup line's description of cookie mode (key ids, never keys).
pub fn describe(sessions: &CookieSessions) -> String {
    let keys = sessions.keys();
    format!(
        "cookie (no store: each session sealed in its cookie with XChaCha20-Poly1305; key ids {:?}, new cookies \
         sealed with {}; at most {} bytes a cookie value)",
        keys.ids().collect::<Vec<_>>(),
        keys.current_id(),
        sessions.value_limit()
    )
}
