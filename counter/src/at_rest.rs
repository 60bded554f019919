//! `--hash-ids` and `--encrypt`: the chosen store wrapped in
//! `session_store_core::at_rest::Protected`, so its files, keys or rows
//! hold neither cookie values nor session data.

use session_store_core::at_rest::AtRest;
use session_store_core::seal::KeyRing;

use crate::config::{Backend, Config};

/// The environment variable that holds the key ring of `--encrypt`:
/// `1:<key>` or `1:<old key>,2:<new key>` (the last one seals, every one
/// opens).
pub const KEYS_VAR: &str = "SESSION_AT_REST_KEYS";

/// What protects the store's records, and how the startup line says it.
#[derive(Debug, Clone)]
pub struct Protection {
    /// The options for `Protected`; `None` when neither is on.
    pub at_rest: Option<AtRest>,
    /// What is on (key ids, never keys).
    pub description: String,
}

/// The protection the flags ask for, with the key ring from `env`; a
/// message for the operator when a flag does not fit the store or the key
/// ring is missing or bad (never the key itself). Nothing is generated.
pub fn protection(config: &Config, env: impl Fn(&str) -> Option<String>) -> Result<Protection, String> {
    let keys_set = env(KEYS_VAR).is_some();
    if !config.hash_ids && !config.encrypt {
        let unused = if keys_set {
            format!(" ({KEYS_VAR} is set but unused: --encrypt is off)")
        } else {
            String::new()
        };
        return Ok(Protection {
            at_rest: None,
            description: format!("ids and data kept as they are (--hash-ids and --encrypt protect them){unused}"),
        });
    }
    if config.backend == Backend::Cookie {
        return Err(
            "--hash-ids and --encrypt protect a store's records, and --store cookie keeps no store (its cookies \
             are sealed already): drop them, or choose a store"
                .to_owned(),
        );
    }
    let mut at_rest = AtRest::new().hash_ids(config.hash_ids);
    let mut said = Vec::new();
    if config.hash_ids {
        said.push("ids hashed (SHA-256, 128 bits: no file name, key or row holds a cookie value)".to_owned());
    }
    if config.encrypt {
        let Some(text) = env(KEYS_VAR) else {
            return Err(format!(
                "--encrypt needs the key ring in {KEYS_VAR}: set it to \"1:<key>\", the key being 64 hex \
                 characters or the base64 of 32 random bytes (for example `openssl rand -hex 32`)"
            ));
        };
        let keys = KeyRing::parse(&text).map_err(|e| format!("{KEYS_VAR}: {}", crate::chain(&e)))?;
        said.push(format!(
            "data and owners sealed (XChaCha20-Poly1305; key ids {:?}, new records sealed with {})",
            keys.ids().collect::<Vec<_>>(),
            keys.current_id()
        ));
        at_rest = at_rest.encrypt(keys);
    } else if keys_set {
        said.push(format!(
            "data kept as it is ({KEYS_VAR} is set but unused: --encrypt is off)"
        ));
    }
    Ok(Protection {
        at_rest: Some(at_rest),
        description: said.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn config(args: &[&str]) -> Config {
        Config::from_args_and_env(args.iter().map(|s| (*s).to_owned()), |_| None)
            .unwrap()
            .unwrap()
    }

    fn with_keys(keys: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let keys = keys.map(str::to_owned);
        move |name| (name == KEYS_VAR).then(|| keys.clone()).flatten()
    }

    #[test]
    fn off_unless_asked() {
        let p = protection(&config(&[]), with_keys(Some(KEY))).unwrap();
        assert!(p.at_rest.is_none());
        assert!(p.description.contains("set but unused"), "{}", p.description);
    }

    #[test]
    fn what_is_on_is_said_with_key_ids_only() {
        let p = protection(&config(&["--hash-ids", "--encrypt"]), with_keys(Some(KEY))).unwrap();
        let at_rest = p.at_rest.unwrap();
        assert!(at_rest.hashes_ids() && at_rest.encrypts());
        assert!(p.description.contains("ids hashed"), "{}", p.description);
        assert!(
            p.description.contains("key ids [1], new records sealed with 1"),
            "{}",
            p.description
        );
        assert!(!p.description.contains("00112233"), "{}", p.description);
        let p = protection(&config(&["--hash-ids"]), with_keys(None)).unwrap();
        assert!(p.at_rest.unwrap().hashes_ids());
        assert!(!p.description.contains("sealed"), "{}", p.description);
    }

    #[test]
    fn refused_for_cookie_mode_and_without_a_good_key_ring() {
        for flag in ["--hash-ids", "--encrypt"] {
            let e = protection(&config(&["--store", "cookie", flag]), with_keys(Some(KEY))).unwrap_err();
            assert!(e.contains("--store cookie"), "{e}");
        }
        let e = protection(&config(&["--encrypt"]), with_keys(None)).unwrap_err();
        assert!(e.contains(KEYS_VAR), "{e}");
        let secret = "ab".repeat(31);
        let e = protection(&config(&["--encrypt"]), with_keys(Some(&format!("1:{secret}")))).unwrap_err();
        assert!(e.contains(KEYS_VAR) && !e.contains(&secret), "{e}");
    }
}
