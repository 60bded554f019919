//! The session data every subject stores: the same keys and JSON values for
//! our stores, the peers and the floors.

use serde_json::{Value, json};
use session_store_core::SessionData;

/// The size classes the save workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Five keys, about 200 bytes: a typical login session.
    Small,
    /// About 4 KB: a session carrying a cart or a short history.
    Medium,
    /// About 64 KB: a session someone should have put in a database.
    Large,
}

impl Size {
    /// The bench group name suffix (`small`, `medium`, `large`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }

    /// The target data size in bytes ([`SessionData::byte_size`]).
    #[must_use]
    pub const fn target_bytes(self) -> usize {
        match self {
            Self::Small => 198,
            Self::Medium => 4 * 1024,
            Self::Large => 64 * 1024,
        }
    }
}

/// Keys and JSON values, converted by each subject into its own record type.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    entries: Vec<(String, Value)>,
}

impl Payload {
    /// The payload of a size class.
    #[must_use]
    pub fn of(size: Size) -> Self {
        match size {
            Size::Small => Self::small(),
            Size::Medium | Size::Large => Self::with_history(size.target_bytes()),
        }
    }

    /// Five keys, 198 bytes: a user id, a CSRF token, roles, preferences and
    /// a flash message.
    #[must_use]
    pub fn small() -> Self {
        let mut entries = vec![
            ("user_id".to_owned(), json!(4_815_162_342_u64)),
            ("csrf".to_owned(), json!("kq3Zb9vX2mLr8TfW1yHcQe")),
            ("roles".to_owned(), json!(["reader", "editor"])),
            (
                "prefs".to_owned(),
                json!({"theme": "dark", "lang": "en-GB", "tz": "Europe/London"}),
            ),
            ("flash".to_owned(), json!({"kind": "info", "text": ""})),
        ];
        // Pad the flash text so the data is exactly Size::Small's target.
        let size = Self::measure(&entries);
        let pad = Size::Small.target_bytes().saturating_sub(size);
        entries[4].1 = json!({"kind": "info", "text": "w".repeat(pad)});
        Self { entries }
    }

    /// The small payload plus a `history` list of visited pages, grown to
    /// about `target` bytes.
    fn with_history(target: usize) -> Self {
        let mut entries = Self::small().entries;
        let mut history = Vec::new();
        let mut size = Self::measure(&entries) + "history".len() + 2;
        let mut i: u64 = 0;
        while size < target {
            let item =
                json!({"path": format!("/products/{}", 10_000 + i * 7), "at": 1_700_000_000_000_u64 + i * 1_013});
            size += item.to_string().len() + 1;
            history.push(item);
            i += 1;
        }
        entries.push(("history".to_owned(), Value::Array(history)));
        Self { entries }
    }

    fn measure(entries: &[(String, Value)]) -> usize {
        entries.iter().map(|(k, v)| k.len() + v.to_string().len()).sum()
    }

    /// Keys and values.
    #[must_use]
    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// The payload as our [`SessionData`] (each value held as JSON text).
    #[must_use]
    pub fn to_session_data(&self) -> SessionData {
        let mut data = SessionData::new();
        for (k, v) in &self.entries {
            data.insert_json(k.clone(), v);
        }
        data
    }

    /// The payload as a map of JSON values (the tower-sessions shape).
    #[must_use]
    pub fn to_json_map(&self) -> std::collections::HashMap<String, Value> {
        self.entries.iter().cloned().collect()
    }

    /// The data size in bytes, as [`SessionData::byte_size`] counts it.
    #[must_use]
    pub fn byte_size(&self) -> usize {
        Self::measure(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_is_five_keys_of_198_bytes() {
        let p = Payload::small();
        assert_eq!(p.entries().len(), 5);
        assert_eq!(p.byte_size(), 198);
        assert_eq!(p.to_session_data().byte_size(), 198);
    }

    #[test]
    fn sizes_are_near_their_targets() {
        for size in [Size::Medium, Size::Large] {
            let p = Payload::of(size);
            let bytes = p.to_session_data().byte_size();
            let target = size.target_bytes();
            assert!(bytes >= target && bytes < target + 100, "{size:?}: {bytes} bytes");
        }
    }

    #[test]
    fn conversions_keep_every_value() {
        let p = Payload::of(Size::Medium);
        let data = p.to_session_data();
        let map = p.to_json_map();
        for (k, v) in p.entries() {
            assert_eq!(data.get_json(k).as_ref(), Some(v));
            assert_eq!(map.get(k), Some(v));
        }
    }
}
