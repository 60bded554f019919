//! Record encoding: serde and bincode inside a versioned envelope.
//!
//! Every use of bincode in the workspace lives in this module, so the codec
//! can be swapped without touching a backend. bincode is pinned at `=2.0.1`:
//! the crate was declared unmaintained (RUSTSEC-2025-0141) and its 3.x
//! release is an empty tombstone that does not compile. The envelope's first
//! byte names the format, so a future codec is detected rather than misread.
//!
//! Two layouts exist:
//!
//! - a **full record** ([`encode_record`]): created, deadline, version and
//!   data, for backends that keep everything in one blob (the file store);
//! - a **body** ([`encode_body`]): created and data only, for backends that
//!   keep the deadline and version outside the blob (an indexed SQLite
//!   column, a Redis hash field), so a touch does not rewrite the data.
//!
//! Decoding treats its input as hostile: garbage, truncated or over-long
//! bytes are an [`Error::Decode`], never a panic, and a length prefix that
//! claims more than the input holds is refused before anything is
//! allocated for it, so decoding allocates in proportion to the bytes it is
//! given (which each backend bounds), never to the sizes they claim.
//!
//! ```
//! use session_store_core::{raw::codec, Record, SessionData, SessionId, Timestamp};
//!
//! let mut data = SessionData::new();
//! data.insert("n", &1)?;
//! let mut record = Record::with_deadline(SessionId::random(), data, Timestamp::from_millis(1), Timestamp::from_millis(9));
//! record.version = 3;
//! let bytes = codec::encode_record(&record)?;
//! assert_eq!(bytes[0], codec::RECORD_V1);
//! assert_eq!(codec::decode_record(record.id, &bytes)?, record);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Record, Result, SessionData, SessionId, Timestamp};

/// Format byte of a full record, version 1.
pub const RECORD_V1: u8 = 0x01;
/// Format byte of a body (created and data), version 1.
pub const BODY_V1: u8 = 0x11;
/// Format byte of a full record with an owner (created, deadline, version,
/// owner, data): written only for a record that has an owner, so records
/// without one stay readable by a reader that knows only version 1.
pub const RECORD_V2: u8 = 0x02;
/// Format byte of a body with an owner (created, owner, data).
pub const BODY_V2: u8 = 0x12;

#[derive(Serialize)]
struct RecordRef<'a> {
    created_at: i64,
    expires_at: i64,
    version: u64,
    data: &'a BTreeMap<String, String>,
}

/// A decoded record whose strings still point into the input; see
/// [`decode_limited`] for why decoding borrows.
#[derive(Deserialize)]
struct RecordBorrowed<'a> {
    created_at: i64,
    expires_at: i64,
    version: u64,
    #[serde(borrow)]
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct RecordRefV2<'a> {
    created_at: i64,
    expires_at: i64,
    version: u64,
    owner: &'a str,
    data: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RecordBorrowedV2<'a> {
    created_at: i64,
    expires_at: i64,
    version: u64,
    #[serde(borrow)]
    owner: &'a str,
    #[serde(borrow)]
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct BodyRefV2<'a> {
    created_at: i64,
    owner: &'a str,
    data: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct BodyBorrowedV2<'a> {
    created_at: i64,
    #[serde(borrow)]
    owner: &'a str,
    #[serde(borrow)]
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    created_at: i64,
    data: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct BodyBorrowed<'a> {
    created_at: i64,
    #[serde(borrow)]
    data: BTreeMap<&'a str, &'a str>,
}

fn owned(data: BTreeMap<&str, &str>) -> SessionData {
    SessionData::from_map(data.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode_with<T: Serialize>(format: u8, value: &T, size_hint: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint + 32);
    out.push(format);
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|e| Error::Encode(Box::new(e)))?;
    Ok(out)
}

/// Decodes borrowing every string from `bytes`, under a length limit
/// proportional to the input.
///
/// Borrowing is what bounds memory: bincode's owned decoding of a string
/// allocates (zero-filled) the length its prefix claims before it reads a
/// byte, so a crafted 16 MiB blob claiming a 60 GiB string made the process
/// abort on a failed allocation, under any limit large enough for the
/// records a store accepts. A borrowed `&str` is only a slice of the input,
/// and a claim longer than what is left is an error with no allocation; the
/// map of borrowed strings holds at most what the input holds, and
/// [`owned`] then copies exactly those bytes. The limit stays as a second
/// guard on the total that the decoder claims.
fn decode_limited<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::serde::borrow_decode_from_slice as d;
    let c = config();
    match bytes.len() {
        0..=1_024 => d(bytes, c.with_limit::<{ 1 << 16 }>()),
        1_025..=65_536 => d(bytes, c.with_limit::<{ 1 << 22 }>()),
        65_537..=1_048_576 => d(bytes, c.with_limit::<{ 1 << 26 }>()),
        1_048_577..=16_777_216 => d(bytes, c.with_limit::<{ 1 << 30 }>()),
        _ => d(bytes, c.with_limit::<{ 1 << 36 }>()),
    }
}

fn decode_with<'a, T: Deserialize<'a>>(id: SessionId, format: u8, bytes: &'a [u8]) -> Result<T> {
    let Some((&first, rest)) = bytes.split_first() else {
        return Err(Error::decode(id, "empty record", None));
    };
    if first != format {
        return Err(Error::decode(
            id,
            format!("unknown record format {first:#04x} (expected {format:#04x})"),
            None,
        ));
    }
    let (value, used) =
        decode_limited::<T>(rest).map_err(|e| Error::decode(id, "malformed record", Some(Box::new(e))))?;
    if used != rest.len() {
        return Err(Error::decode(
            id,
            format!("{} trailing bytes after the record", rest.len() - used),
            None,
        ));
    }
    Ok(value)
}

/// Encodes a full record (created, deadline, version, data).
///
/// # Errors
///
/// Only if serialization itself fails, which plain strings and integers do
/// not.
pub fn encode_record(record: &Record) -> Result<Vec<u8>> {
    let size = record.data.byte_size() + record.owner.as_ref().map_or(0, String::len);
    match &record.owner {
        None => encode_with(
            RECORD_V1,
            &RecordRef {
                created_at: record.created_at.as_millis(),
                expires_at: record.expires_at.as_millis(),
                version: record.version,
                data: record.data.entries(),
            },
            size,
        ),
        Some(owner) => encode_with(
            RECORD_V2,
            &RecordRefV2 {
                created_at: record.created_at.as_millis(),
                expires_at: record.expires_at.as_millis(),
                version: record.version,
                owner,
                data: record.data.entries(),
            },
            size,
        ),
    }
}

/// Decodes a full record stored under `id`.
///
/// # Errors
///
/// [`Error::Decode`] naming `id`'s fingerprint for an unknown format byte, malformed,
/// truncated or over-long bytes.
pub fn decode_record(id: SessionId, bytes: &[u8]) -> Result<Record> {
    if bytes.first() == Some(&RECORD_V2) {
        let r: RecordBorrowedV2<'_> = decode_with(id, RECORD_V2, bytes)?;
        return Ok(Record {
            id,
            data: owned(r.data),
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: Timestamp::from_millis(r.expires_at),
            version: r.version,
            owner: Some(r.owner.to_owned()),
        });
    }
    let r: RecordBorrowed<'_> = decode_with(id, RECORD_V1, bytes)?;
    Ok(Record {
        id,
        data: owned(r.data),
        created_at: Timestamp::from_millis(r.created_at),
        expires_at: Timestamp::from_millis(r.expires_at),
        version: r.version,
        owner: None,
    })
}

/// The most bytes [`decode_record_header`] needs from the start of a full
/// record: the format byte, two varint `i64`s and a varint `u64` (at most 9
/// bytes each).
pub const RECORD_HEADER_MAX: usize = 1 + 3 * 9;

/// What a full record says about itself before its data: enough for a
/// scan (a purge, a count) to decide without decoding the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RecordHeader {
    /// When the session was created.
    #[serde(deserialize_with = "millis")]
    pub created_at: Timestamp,
    /// The deadline: live while `now < expires_at`.
    #[serde(deserialize_with = "millis")]
    pub expires_at: Timestamp,
    /// The stored version.
    pub version: u64,
}

fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Timestamp, D::Error> {
    i64::deserialize(d).map(Timestamp::from_millis)
}

/// Decodes only the header of a full record (created time, deadline,
/// version) from its first bytes: at least the first [`RECORD_HEADER_MAX`],
/// or the whole record if it is shorter. The data is neither read nor
/// checked.
///
/// ```
/// use session_store_core::{raw::codec, Record, SessionData, SessionId, Timestamp};
///
/// let mut record = Record::with_deadline(SessionId::random(), SessionData::new(), Timestamp::from_millis(1), Timestamp::from_millis(9));
/// record.version = 3;
/// let bytes = codec::encode_record(&record)?;
/// let header = codec::decode_record_header(record.id, &bytes[..codec::RECORD_HEADER_MAX.min(bytes.len())])?;
/// assert_eq!((header.created_at, header.expires_at, header.version), (record.created_at, record.expires_at, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Decode`] naming `id` for an unknown format byte or a header
/// that does not decode.
pub fn decode_record_header(id: SessionId, bytes: &[u8]) -> Result<RecordHeader> {
    let Some((&first, rest)) = bytes.split_first() else {
        return Err(Error::decode(id, "empty record", None));
    };
    if first != RECORD_V1 && first != RECORD_V2 {
        return Err(Error::decode(
            id,
            format!("unknown record format {first:#04x} (expected {RECORD_V1:#04x} or {RECORD_V2:#04x})"),
            None,
        ));
    }
    // Both versions start with created, deadline and version.
    let (header, _): (RecordHeader, usize) = bincode::serde::decode_from_slice(rest, config().with_limit::<64>())
        .map_err(|e| Error::decode(id, "malformed record header", Some(Box::new(e))))?;
    Ok(header)
}

/// Encodes a body: created and data only.
///
/// # Errors
///
/// Only if serialization itself fails.
pub fn encode_body(record: &Record) -> Result<Vec<u8>> {
    let size = record.data.byte_size() + record.owner.as_ref().map_or(0, String::len);
    match &record.owner {
        None => encode_with(
            BODY_V1,
            &BodyRef {
                created_at: record.created_at.as_millis(),
                data: record.data.entries(),
            },
            size,
        ),
        Some(owner) => encode_with(
            BODY_V2,
            &BodyRefV2 {
                created_at: record.created_at.as_millis(),
                owner,
                data: record.data.entries(),
            },
            size,
        ),
    }
}

/// Decodes a body stored under `id`, joining it with the deadline and
/// version kept outside the blob.
///
/// # Errors
///
/// [`Error::Decode`] naming `id`'s fingerprint, as for [`decode_record`].
pub fn decode_body(id: SessionId, bytes: &[u8], expires_at: Timestamp, version: u64) -> Result<Record> {
    if bytes.first() == Some(&BODY_V2) {
        let b: BodyBorrowedV2<'_> = decode_with(id, BODY_V2, bytes)?;
        return Ok(Record {
            id,
            data: owned(b.data),
            created_at: Timestamp::from_millis(b.created_at),
            expires_at,
            version,
            owner: Some(b.owner.to_owned()),
        });
    }
    let b: BodyBorrowed<'_> = decode_with(id, BODY_V1, bytes)?;
    Ok(Record {
        id,
        data: owned(b.data),
        created_at: Timestamp::from_millis(b.created_at),
        expires_at,
        version,
        owner: None,
    })
}

/// Refuses data over `limit` bytes (see [`SessionData::byte_size`]).
///
/// # Errors
///
/// [`Error::TooLarge`] when the data is over the limit.
pub fn check_size(data: &SessionData, limit: usize) -> Result<()> {
    let size = data.byte_size();
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(entries: Vec<(String, String)>, created: i64, expires: i64, version: u64) -> Record {
        Record {
            id: SessionId::from_u128(42),
            data: entries.into_iter().collect(),
            created_at: Timestamp::from_millis(created),
            expires_at: Timestamp::from_millis(expires),
            version,
            owner: None,
        }
    }

    #[test]
    fn unknown_format_is_a_decode_error_naming_the_fingerprint() {
        let r = record(vec![("a".into(), "1".into())], 1, 2, 3);
        let mut bytes = encode_record(&r).unwrap();
        bytes[0] = 0x7f;
        let err = decode_record(r.id, &bytes).unwrap_err();
        assert!(err.is_decode());
        assert!(err.to_string().contains(&r.id.fingerprint().to_string()), "{err}");
        assert!(!err.to_string().contains(&r.id.to_string()), "{err}");
        assert!(matches!(err, Error::Decode { id, .. } if id == r.id.fingerprint()));
        assert!(err.to_string().contains("0x7f"), "{err}");
        // A body is not a record.
        let body = encode_body(&r).unwrap();
        assert!(decode_record(r.id, &body).unwrap_err().is_decode());
        assert!(decode_record(r.id, &[]).unwrap_err().is_decode());
    }

    #[test]
    fn every_truncation_is_a_decode_error() {
        let r = record(
            vec![("key".into(), "\"value\"".into()), ("".into(), "[]".into())],
            5,
            6,
            7,
        );
        let bytes = encode_record(&r).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_record(r.id, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(r.id, &longer).is_err());
    }

    #[test]
    fn huge_claimed_lengths_are_refused() {
        // format byte, created, expires, version, then a map claiming u64::MAX entries.
        let bytes = [RECORD_V1, 0, 0, 0, 253, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode_record(SessionId::from_u128(1), &bytes).is_err());
        let bytes = [RECORD_V1, 0, 0, 0, 1, 252, 255, 255, 255, 255];
        assert!(decode_record(SessionId::from_u128(1), &bytes).is_err());
    }

    #[test]
    fn size_limit() {
        let r = record(vec![("ab".into(), "cd".into())], 0, 0, 0);
        assert!(check_size(&r.data, 4).is_ok());
        assert!(matches!(
            check_size(&r.data, 3),
            Err(Error::TooLarge { size: 4, limit: 3 })
        ));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn data_round_trips_through_the_codec(
            entries in proptest::collection::btree_map(".*", json_value(), 0..12),
            created in any::<i64>(),
            expires in any::<i64>(),
            version in any::<u64>(),
        ) {
            let mut data = SessionData::new();
            for (k, v) in &entries {
                data.insert_json(k.clone(), v);
            }
            let r = Record { id: SessionId::random(), data, created_at: Timestamp::from_millis(created), expires_at: Timestamp::from_millis(expires), version, owner: None };
            let back = decode_record(r.id, &encode_record(&r).unwrap()).unwrap();
            prop_assert_eq!(&back, &r);
            for (k, v) in &entries {
                prop_assert_eq!(back.data.get_json(k), Some(v.clone()));
            }
            let body = decode_body(r.id, &encode_body(&r).unwrap(), r.expires_at, r.version).unwrap();
            prop_assert_eq!(body, r);
        }

        #[test]
        fn typed_values_round_trip(a in any::<u128>(), b in any::<i128>(), s in ".*", v in proptest::collection::vec(any::<u8>(), 0..64)) {
            // The string is a key too: one of the fixed keys would be overwritten.
            prop_assume!(!["a", "b", "v"].contains(&s.as_str()));
            let mut data = SessionData::new();
            data.insert("a", &a).unwrap();
            data.insert("b", &b).unwrap();
            data.insert(s.clone(), &s).unwrap();
            data.insert("v", &v).unwrap();
            let r = Record::with_deadline(SessionId::random(), data, Timestamp::EPOCH, Timestamp::MAX);
            let back = decode_record(r.id, &encode_record(&r).unwrap()).unwrap();
            prop_assert_eq!(back.data.get::<u128>("a").unwrap(), Some(a));
            prop_assert_eq!(back.data.get::<i128>("b").unwrap(), Some(b));
            prop_assert_eq!(back.data.get::<String>(&s).unwrap(), Some(s.clone()));
            prop_assert_eq!(back.data.get::<Vec<u8>>("v").unwrap(), Some(v));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_record(SessionId::from_u128(7), &bytes);
            let _ = decode_body(SessionId::from_u128(7), &bytes, Timestamp::EPOCH, 0);
        }

        #[test]
        fn flipped_bytes_never_panic(flip in any::<proptest::sample::Index>(), to in any::<u8>()) {
            let r = record(vec![("key".into(), "\"value\"".into())], 5, 6, 7);
            let mut bytes = encode_record(&r).unwrap();
            let i = flip.index(bytes.len());
            bytes[i] = to;
            let _ = decode_record(r.id, &bytes);
        }
    }
}
