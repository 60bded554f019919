//! Authenticated encryption with a key ring (feature `at-rest` or `cookie`):
//! XChaCha20-Poly1305, each sealed blob naming the key that sealed it.
//!
//! A [`KeyRing`] holds 32-byte keys, each under a one-byte id. The key added
//! last is the *current* one: every new [`seal`](KeyRing::seal) uses it.
//! Any key still in the ring [opens](KeyRing::open), so keys rotate without
//! logging anyone out: add a new key (it seals from then on), keep the old
//! one until nothing sealed under it is still in use, then
//! [`retire`](KeyRing::retire) it (or leave it out of the configuration).
//!
//! A sealed blob is `[key id][24-byte random nonce][ciphertext + 16-byte tag]`.
//! The associated data (`aad`) is authenticated but not stored: a blob only
//! opens with the same `aad` it was sealed with. Sealed cookies
//! (`session_store_tower::CookieSessions`) put the app's name there, so
//! a cookie of another app sealed with the same key does not open; records
//! sealed at rest put their session id there, so a blob moved to another
//! record does not open.
//!
//! ```
//! use session_store_core::seal::{KeyRing, OpenError};
//!
//! let mut ring = KeyRing::parse("1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! let old = ring.seal(b"hello", b"app");
//! assert_eq!(ring.open(&old, b"app").unwrap(), b"hello");
//! assert_eq!(ring.open(&old, b"another app"), Err(OpenError::Forged));
//!
//! ring.add(2, [7; 32])?;                           // rotation: 2 seals from now on
//! let new = ring.seal(b"hello", b"app");
//! assert_eq!(new[0], 2);
//! assert_eq!(ring.open(&old, b"app").unwrap(), b"hello"); // 1 still opens
//! ring.retire(1)?;
//! assert_eq!(ring.open(&old, b"app"), Err(OpenError::RetiredKey(1)));
//! # Ok::<(), session_store_core::Error>(())
//! ```
//!
//! Keys come from the caller ([`KeyRing::new`], [`KeyRing::parse`],
//! [`KeyRing::from_env`]); nothing is generated here, and neither `Debug`
//! nor any error message ever shows a key.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{Error, Result};

/// The length of a key, in bytes.
pub const KEY_LEN: usize = 32;
/// The length of a nonce, in bytes (XChaCha20's 192 bits: random nonces
/// never collide in practice).
pub const NONCE_LEN: usize = 24;
/// The length of the authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// How many bytes sealing adds to the plaintext: the key id, the nonce and
/// the tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a sealed blob did not open. None of them says anything about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than a key id, a nonce and a tag.
    Truncated,
    /// Sealed under a key id this ring never held.
    UnknownKey(u8),
    /// Sealed under a key this ring retired.
    RetiredKey(u8),
    /// The tag does not match: the blob was changed, sealed with other
    /// associated data (another app, another record), or under another key
    /// with the same id.
    Forged,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("sealed data is truncated"),
            Self::UnknownKey(id) => write!(f, "sealed under key {id}, which is not in the key ring"),
            Self::RetiredKey(id) => write!(f, "sealed under key {id}, which was retired"),
            Self::Forged => f.write_str("sealed data does not authenticate (changed, or sealed for something else)"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Keys for sealing and opening (see the [module docs](self)).
///
/// Cloning copies the keys. `Debug` shows the key ids only.
#[derive(Clone)]
pub struct KeyRing {
    /// In the order added; the last one seals.
    keys: Vec<(u8, XChaCha20Poly1305)>,
    /// Ids retired from this ring (so `open` can say so).
    retired: Vec<u8>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.ids().collect::<Vec<_>>())
            .field("current", &self.current_id())
            .field("retired", &self.retired)
            .finish()
    }
}

impl KeyRing {
    /// A ring holding one key, under `id`.
    #[must_use]
    pub fn new(id: u8, key: [u8; KEY_LEN]) -> Self {
        Self {
            keys: vec![(id, XChaCha20Poly1305::new(&key.into()))],
            retired: Vec::new(),
        }
    }

    /// Adds `key` under `id`; it seals from now on (the old keys still
    /// open).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `id` is already in the ring or was retired
    /// (reusing an id for another key would make old blobs fail as
    /// forgeries).
    pub fn add(&mut self, id: u8, key: [u8; KEY_LEN]) -> Result<&mut Self> {
        if self.keys.iter().any(|(k, _)| *k == id) {
            return Err(Error::config(format!("key ring: key id {id} is already in the ring")));
        }
        if self.retired.contains(&id) {
            return Err(Error::config(format!(
                "key ring: key id {id} was retired; use a new id"
            )));
        }
        self.keys.push((id, XChaCha20Poly1305::new(&key.into())));
        Ok(self)
    }

    /// Retires the key `id`: blobs sealed under it no longer open
    /// ([`OpenError::RetiredKey`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `id` is not in the ring, or is the current
    /// key (the one that seals: add its successor first).
    pub fn retire(&mut self, id: u8) -> Result<&mut Self> {
        let Some(at) = self.keys.iter().position(|(k, _)| *k == id) else {
            return Err(Error::config(format!("key ring: no key {id} to retire")));
        };
        if at + 1 == self.keys.len() {
            return Err(Error::config(format!(
                "key ring: key {id} is the current key and cannot be retired; add its successor first"
            )));
        }
        self.keys.remove(at);
        self.retired.push(id);
        Ok(self)
    }

    /// The id of the key new seals use (the last one added).
    #[must_use]
    pub fn current_id(&self) -> u8 {
        self.current().0
    }

    /// The ids of the keys in the ring, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    fn current(&self) -> &(u8, XChaCha20Poly1305) {
        // Never empty: built with one key, and the current one is never removed.
        &self.keys[self.keys.len() - 1]
    }

    /// A ring from text: comma-separated `id:key` entries, the id a number
    /// from 0 to 255, the key 64 hex characters or the base64 (standard or
    /// URL-safe alphabet, padded or not) of 32 bytes. The last entry is the
    /// current key: `"1:<old key>,2:<new key>"` seals with 2 and opens both.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying which entry is wrong and how (never
    /// showing the key): empty text, an entry without `:`, a bad id, a
    /// repeated id, a key that is neither form or not 32 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_named(text, "key ring")
    }

    /// [`parse`](Self::parse) of the environment variable `var`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `var` when it is unset, not UTF-8, or does
    /// not parse (the message never shows the key).
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(text) => Self::parse_named(&text, var),
            Err(std::env::VarError::NotPresent) => Err(Error::config(format!(
                "{var} is not set: give it as \"1:<key>\" (64 hex characters or base64 of 32 random bytes)"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(format!("{var} is not valid UTF-8"))),
        }
    }

    fn parse_named(text: &str, what: &str) -> Result<Self> {
        let mut ring: Option<Self> = None;
        let entries: Vec<&str> = text.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Err(Error::config(format!(
                "{what} is empty: give at least one \"id:key\" entry"
            )));
        }
        for (n, entry) in entries.iter().enumerate() {
            let n = n + 1;
            let Some((id, key)) = entry.split_once(':') else {
                return Err(Error::config(format!("{what}: entry {n} is not \"id:key\" (no ':')")));
            };
            let Ok(id) = id.trim().parse::<u8>() else {
                return Err(Error::config(format!(
                    "{what}: entry {n} has a key id that is not a number from 0 to 255"
                )));
            };
            let Some(key) = decode_key(key.trim()) else {
                return Err(Error::config(format!(
                    "{what}: the key of entry {n} (id {id}) is neither 64 hex characters nor base64 of 32 bytes"
                )));
            };
            match &mut ring {
                None => ring = Some(Self::new(id, key)),
                Some(ring) => {
                    if ring.keys.iter().any(|(k, _)| *k == id) {
                        return Err(Error::config(format!("{what}: key id {id} appears twice")));
                    }
                    ring.add(id, key)?;
                }
            }
        }
        Ok(ring.expect("at least one entry"))
    }

    /// Seals `plaintext` under the current key, authenticating `aad` too:
    /// `[key id][nonce][ciphertext + tag]`, [`OVERHEAD`] bytes longer than
    /// `plaintext`.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes at all (as
    /// [`SessionId::random`](crate::SessionId::random)).
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let (id, cipher) = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
            // Only fails for plaintexts over 256 GiB.
            .expect("XChaCha20-Poly1305 seals any practical length");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(*id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal`](Self::seal) made with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`OpenError`]: truncated, an unknown or retired key id, or bytes
    /// that do not authenticate. Never a panic, whatever the input.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> std::result::Result<Vec<u8>, OpenError> {
        Ok(self.open_with_id(sealed, aad)?.1)
    }

    /// [`open`](Self::open), also answering the id of the key that opened
    /// it (a blob under an older key is worth sealing again under the
    /// current one).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with_id(&self, sealed: &[u8], aad: &[u8]) -> std::result::Result<(u8, Vec<u8>), OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let (id, rest) = (sealed[0], &sealed[1..]);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let Some((_, cipher)) = self.keys.iter().find(|(k, _)| *k == id) else {
            return Err(if self.retired.contains(&id) {
                OpenError::RetiredKey(id)
            } else {
                OpenError::UnknownKey(id)
            });
        };
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| OpenError::Truncated)?;
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad })
            .map(|plain| (id, plain))
            .map_err(|_| OpenError::Forged)
    }
}

/// 64 hex characters, or base64 (any of the four usual forms) of 32 bytes.
fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        return Some(key);
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn ring() -> KeyRing {
        KeyRing::parse(&format!("1:{HEX1}")).unwrap()
    }

    fn config_message(e: Error) -> String {
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn parses_hex_and_every_base64_form() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        // 0xfb bytes give '+' '/' in standard base64 and '-' '_' in URL-safe.
        let key = [0xfb; 32];
        let reference = KeyRing::new(1, key).seal(b"x", b"");
        let hex = "fb".repeat(32);
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            STANDARD.encode(key),
            STANDARD_NO_PAD.encode(key),
            URL_SAFE.encode(key),
            URL_SAFE_NO_PAD.encode(key),
        ] {
            let ring = KeyRing::parse(&format!(" 1 : {text} ")).unwrap();
            assert_eq!(ring.open(&reference, b"").unwrap(), b"x", "{text}");
        }
    }

    #[test]
    fn the_last_entry_seals_and_every_entry_opens() {
        let two = KeyRing::parse(&format!("1:{HEX1},2:{}", "ab".repeat(32))).unwrap();
        assert_eq!(two.current_id(), 2);
        assert_eq!(two.ids().collect::<Vec<_>>(), [1, 2]);
        let old = ring().seal(b"old", b"a");
        assert_eq!(two.open_with_id(&old, b"a").unwrap(), (1, b"old".to_vec()));
        assert_eq!(two.seal(b"new", b"a")[0], 2);
    }

    #[test]
    fn parse_errors_name_the_problem_never_the_key() {
        let secret = "cd".repeat(32);
        for (text, says) in [
            (String::new(), "empty"),
            (" , ".to_owned(), "empty"),
            (secret.clone(), "no ':'"),
            (format!("256:{secret}"), "0 to 255"),
            (format!("x:{secret}"), "0 to 255"),
            (format!("1:{}", &secret[..62]), "entry 1 (id 1)"),
            (format!("1:{secret}zz"), "neither"),
            ("1:AAAA".to_owned(), "32 bytes"),
            (format!("1:{secret},1:{HEX1}"), "appears twice"),
            (format!("1:{HEX1},2:{secret}!"), "entry 2"),
        ] {
            let message = config_message(KeyRing::parse(&text).unwrap_err());
            assert!(message.contains(says), "{text:?}: {message}");
            assert!(!message.contains(&secret[..16]), "{message}");
            assert!(!message.contains(&HEX1[..16]), "{message}");
        }
    }

    #[test]
    fn from_env_names_the_variable() {
        let message = config_message(KeyRing::from_env("SESSION_STORE_SEAL_TEST_UNSET_VAR").unwrap_err());
        assert!(
            message.contains("SESSION_STORE_SEAL_TEST_UNSET_VAR is not set"),
            "{message}"
        );
    }

    #[test]
    fn debug_shows_ids_only() {
        let debug = format!("{:?}", ring());
        assert!(debug.contains("key_ids: [1]"), "{debug}");
        assert!(!debug.contains("0102"), "{debug}");
    }

    #[test]
    fn retire_never_the_current_key() {
        let mut ring = ring();
        assert!(ring.retire(1).is_err(), "the only key");
        let old = ring.seal(b"p", b"");
        ring.add(2, [2; 32]).unwrap();
        assert!(ring.add(2, [3; 32]).is_err(), "id in use");
        assert!(ring.retire(2).is_err(), "the current key");
        assert!(ring.retire(9).is_err(), "absent");
        ring.retire(1).unwrap();
        assert!(ring.add(1, [1; 32]).is_err(), "a retired id is not reused");
        assert_eq!(ring.open(&old, b""), Err(OpenError::RetiredKey(1)));
        assert_eq!(ring.current_id(), 2);
        assert_eq!(KeyRing::new(2, [2; 32]).open(&old, b""), Err(OpenError::UnknownKey(1)));
    }

    #[test]
    fn wrong_aad_or_same_id_other_key_is_forged() {
        let sealed = ring().seal(b"payload", b"aad");
        assert_eq!(ring().open(&sealed, b"aad").unwrap(), b"payload");
        assert_eq!(ring().open(&sealed, b"aae"), Err(OpenError::Forged));
        assert_eq!(ring().open(&sealed, b""), Err(OpenError::Forged));
        assert_eq!(KeyRing::new(1, [9; 32]).open(&sealed, b"aad"), Err(OpenError::Forged));
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_fails() {
        let ring = ring();
        let sealed = ring.seal(b"some session payload", b"aad");
        assert_eq!(sealed.len(), 20 + OVERHEAD);
        for len in 0..sealed.len() {
            let err = ring.open(&sealed[..len], b"aad").unwrap_err();
            if len < OVERHEAD {
                assert_eq!(err, OpenError::Truncated, "{len}");
            } else {
                assert_eq!(err, OpenError::Forged, "{len}");
            }
        }
        for bit in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = ring.open(&bad, b"aad").unwrap_err();
            if bit < 8 {
                assert!(matches!(err, OpenError::UnknownKey(_)), "{bit}: {err:?}");
            } else {
                assert_eq!(err, OpenError::Forged, "{bit}");
            }
        }
    }

    #[test]
    fn nonces_differ() {
        let ring = ring();
        assert_ne!(ring.seal(b"same", b""), ring.seal(b"same", b""));
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), aad in proptest::collection::vec(any::<u8>(), 0..8)) {
            let ring = ring();
            prop_assert!(ring.open(&bytes, &aad).is_err());
        }

        #[test]
        fn parse_never_panics(text in ".{0,120}") {
            let _ = KeyRing::parse(&text);
        }
    }
}
