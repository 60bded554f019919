//! Session data and the record a store keeps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Expiry, Result, SessionId, Timestamp};

/// The data of one session: string keys mapped to self-describing values.
///
/// Each value is held as its own JSON text, so any serde type goes in and
/// comes out ([`insert`](Self::insert), [`get`](Self::get)) and adapters to
/// libraries whose sessions hold `serde_json::Value`s convert without
/// knowing the user's types ([`insert_json`](Self::insert_json),
/// [`get_json`](Self::get_json)). Because values are text, data round-trips
/// exactly through a non-self-describing codec such as bincode.
///
/// Cloning is cheap: the map is shared and copied on the first write.
///
/// ```
/// use session_store_core::SessionData;
///
/// let mut data = SessionData::new();
/// data.insert("count", &3u32)?;
/// data.insert("user", &("alice", vec![1, 2]))?;
/// assert_eq!(data.get::<u32>("count")?, Some(3));
/// assert_eq!(data.get::<(String, Vec<i32>)>("user")?, Some(("alice".into(), vec![1, 2])));
/// assert_eq!(data.get::<u32>("missing")?, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionData {
    entries: Arc<BTreeMap<String, String>>,
    /// Sum of the byte lengths of every key and value.
    size: usize,
}

impl SessionData {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Serializes `value` to JSON and stores it under `key`, returning the
    /// JSON text of the value it replaced.
    ///
    /// # Errors
    ///
    /// When `value` cannot be written as JSON (a map with non-string keys, a
    /// float that is NaN or infinite).
    pub fn insert<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Option<String>, serde_json::Error> {
        let json = serde_json::to_string(value)?;
        Ok(self.insert_raw(key.into(), json))
    }

    /// Stores an already-built JSON value.
    pub fn insert_json(&mut self, key: impl Into<String>, value: &serde_json::Value) {
        // Writing a `Value` as JSON text cannot fail: its map keys are strings
        // and it holds no non-finite floats.
        let json = value.to_string();
        self.insert_raw(key.into(), json);
    }

    /// Stores a value that is already JSON text. The text is kept as given;
    /// use [`insert`](Self::insert) unless it is known to be valid JSON.
    pub fn insert_raw(&mut self, key: String, json: String) -> Option<String> {
        let added = key.len() + json.len();
        let entries = Arc::make_mut(&mut self.entries);
        let key_len = key.len();
        let old = entries.insert(key, json);
        self.size += added;
        if let Some(old) = &old {
            self.size -= key_len + old.len();
        }
        old
    }

    /// Deserializes the value under `key` into `T`.
    ///
    /// # Errors
    ///
    /// When the stored JSON does not fit `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        self.entries.get(key).map(|json| serde_json::from_str(json)).transpose()
    }

    /// The value under `key` as a JSON value, or `None` when the key is
    /// absent or its text is not valid JSON.
    #[must_use]
    pub fn get_json(&self, key: &str) -> Option<serde_json::Value> {
        self.entries.get(key).and_then(|json| serde_json::from_str(json).ok())
    }

    /// The raw JSON text stored under `key`.
    #[must_use]
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Removes `key`, returning its JSON text.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        if !self.entries.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(&mut self.entries).remove(key);
        if let Some(old) = &old {
            self.size -= key.len() + old.len();
        }
        old
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries = Arc::default();
        self.size = 0;
    }

    /// Keys and raw JSON texts, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    pub(crate) fn from_map(entries: BTreeMap<String, String>) -> Self {
        let size = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        Self {
            entries: Arc::new(entries),
            size,
        }
    }

    /// The size of the data in bytes: the sum of the lengths of every key and
    /// every value's JSON text. This is what a store's record-size limit is
    /// compared with, the same on every backend.
    #[must_use]
    pub fn byte_size(&self) -> usize {
        self.size
    }
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may hold secrets: show the keys only.
        f.debug_struct("SessionData")
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .field("bytes", &self.size)
            .finish()
    }
}

impl FromIterator<(String, String)> for SessionData {
    /// Builds data from keys and raw JSON texts.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut data = Self::new();
        for (k, v) in iter {
            data.insert_raw(k, v);
        }
        data
    }
}

/// One stored session: id, data, deadline and version.
///
/// `created_at` is kept so that an absolute lifetime
/// ([`Expiry::IdleAndAbsolute`]) can be enforced across requests.
/// `version` is set by the store: every write of data bumps it, and
/// [`save_if_version`](crate::SessionStore::save_if_version) compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The session id.
    pub id: SessionId,
    /// The session data.
    pub data: SessionData,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The absolute deadline: live while `now < expires_at`.
    pub expires_at: Timestamp,
    /// The version the store last wrote (0 for a record never stored).
    pub version: u64,
    /// The authenticated user this session belongs to, if any: an opaque
    /// string (a user id). Stores keep it with the record; those with an
    /// owner index list and revoke an owner's sessions by it (see
    /// [`SessionStore::owner_sessions`](crate::SessionStore::owner_sessions)).
    /// Set it with the write that logs the user in.
    pub owner: Option<String>,
}

impl Record {
    /// A new record with a fresh random id, created at `now`, with the
    /// deadline `expiry` gives, version 0.
    #[must_use]
    pub fn new(data: SessionData, now: Timestamp, expiry: &Expiry) -> Self {
        Self {
            id: SessionId::random(),
            data,
            created_at: now,
            expires_at: expiry.deadline(now, now),
            version: 0,
            owner: None,
        }
    }

    /// A record with every field given.
    #[must_use]
    pub fn with_deadline(id: SessionId, data: SessionData, created_at: Timestamp, expires_at: Timestamp) -> Self {
        Self {
            id,
            data,
            created_at,
            expires_at,
            version: 0,
            owner: None,
        }
    }

    /// Whether the record is live at `now` (`now < expires_at`).
    #[must_use]
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Moves the deadline as `expiry` says for activity at `now`.
    pub fn refresh(&mut self, now: Timestamp, expiry: &Expiry) {
        self.expires_at = expiry.deadline(self.created_at, now);
    }

    /// Checks that every value is valid JSON text, as values are meant to
    /// be ([`SessionData::insert_raw`] does not check).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for this record, naming the first key (in key
    /// order) whose value is not JSON.
    pub fn check_json(&self) -> Result<()> {
        for (key, json) in self.data.iter() {
            serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|e| self.not_json(key, e))?;
        }
        Ok(())
    }

    /// Every value parsed as a JSON value (the shape of a framework whose
    /// sessions hold `serde_json::Value`s).
    ///
    /// # Errors
    ///
    /// As [`check_json`](Self::check_json).
    pub fn json_values(&self) -> Result<HashMap<String, serde_json::Value>> {
        self.data
            .iter()
            .map(|(key, json)| match serde_json::from_str(json) {
                Ok(value) => Ok((key.to_owned(), value)),
                Err(e) => Err(self.not_json(key, e)),
            })
            .collect()
    }

    fn not_json(&self, key: &str, error: serde_json::Error) -> Error {
        Error::decode(
            self.id,
            format!("the value under key {key:?} is not valid JSON"),
            Some(Box::new(error)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn size_tracks_inserts_and_removes() {
        let mut data = SessionData::new();
        data.insert("ab", &"xyz").unwrap(); // "\"xyz\"" is 5 bytes
        assert_eq!(data.byte_size(), 7);
        data.insert("ab", &1).unwrap();
        assert_eq!(data.byte_size(), 3);
        data.insert_json("", &serde_json::json!({"a": [1, 2]}));
        assert_eq!(data.byte_size(), 3 + r#"{"a":[1,2]}"#.len());
        assert_eq!(data.remove("ab"), Some("1".to_owned()));
        assert_eq!(data.remove("ab"), None);
        assert_eq!(data.byte_size(), r#"{"a":[1,2]}"#.len());
        data.clear();
        assert_eq!(data.byte_size(), 0);
        assert!(data.is_empty());
    }

    #[test]
    fn clones_are_copy_on_write() {
        let mut a = SessionData::new();
        a.insert("k", &1).unwrap();
        let b = a.clone();
        a.insert("k", &2).unwrap();
        assert_eq!(b.get::<i32>("k").unwrap(), Some(1));
        assert_eq!(a.get::<i32>("k").unwrap(), Some(2));
    }

    #[test]
    fn full_integer_ranges_round_trip() {
        let mut data = SessionData::new();
        data.insert("u128", &u128::MAX).unwrap();
        data.insert("i128", &i128::MIN).unwrap();
        data.insert("u64", &u64::MAX).unwrap();
        data.insert("i64", &i64::MIN).unwrap();
        assert_eq!(data.get::<u128>("u128").unwrap(), Some(u128::MAX));
        assert_eq!(data.get::<i128>("i128").unwrap(), Some(i128::MIN));
        assert_eq!(data.get::<u64>("u64").unwrap(), Some(u64::MAX));
        assert_eq!(data.get::<i64>("i64").unwrap(), Some(i64::MIN));
    }

    #[test]
    fn debug_does_not_show_values() {
        let mut data = SessionData::new();
        data.insert("token", &"secret-value").unwrap();
        let debug = format!("{data:?}");
        assert!(debug.contains("token"));
        assert!(!debug.contains("secret-value"));
    }

    proptest! {
        #[test]
        fn size_is_sum_of_lengths(entries in proptest::collection::vec((".*", any::<i64>()), 0..20)) {
            let mut data = SessionData::new();
            for (k, v) in &entries {
                data.insert(k.clone(), v).unwrap();
            }
            let expected: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
            prop_assert_eq!(data.byte_size(), expected);
        }
    }
}

/// Length of [`owner_key`]: 16 bytes in lowercase hex.
pub const OWNER_KEY_LEN: usize = 32;

/// The name under which a backend indexes `owner`'s sessions (a directory,
/// a Redis key): the first 16 bytes of the SHA-256 of the owner, in
/// lowercase hex. It has a fixed length and alphabet whatever the owner
/// holds, so no owner can name a path or a key pattern, and the owner
/// itself stays out of the name. Backends still compare the owner stored in
/// each record, so a collision (2⁻⁶⁴ for 2³² owners) lists nothing extra.
#[must_use]
pub fn owner_key(owner: &str) -> String {
    use sha2::Digest as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(owner.as_bytes());
    let mut key = String::with_capacity(OWNER_KEY_LEN);
    for b in &digest[..OWNER_KEY_LEN / 2] {
        key.push(char::from(HEX[usize::from(b >> 4)]));
        key.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    key
}

#[cfg(test)]
mod owner_key_tests {
    use super::*;

    #[test]
    fn owner_keys_are_32_hex_characters_of_the_sha256() {
        // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(owner_key("abc"), "ba7816bf8f01cfea414140de5dae2223");
        for owner in ["", "alice", &"x".repeat(10_000), "ünï {*?}"] {
            let key = owner_key(owner);
            assert_eq!(key.len(), OWNER_KEY_LEN);
            assert!(key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        assert_ne!(owner_key("alice"), owner_key("bob"));
    }
}
