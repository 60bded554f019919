//! Property tests over arbitrary bytes for every decoder of outside bytes in
//! the core: session id text (a cookie value, a file name, a key), and the
//! codec's record, record header and body layouts (a file, a row, a hash
//! field).
//!
//! Each decoder must answer an error or a value, never panic; where a
//! value comes back it must be the one thing the bytes mean (the canonical
//! id, a record for the id it was asked for). The coverage-guided fuzzer in
//! `fuzz/` at the repository root runs the same decoders for longer.

use std::collections::BTreeMap;

use proptest::prelude::*;
use session_store_core::{Record, SESSION_ID_LEN, SessionData, SessionId, Timestamp, raw::codec};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An oracle for the id parser written without base64: 22 alphabet
/// characters whose last one carries no bits beyond the 128th (21 full
/// characters hold 126 bits, the last one 2 more and 4 zero bits).
fn is_canonical(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == SESSION_ID_LEN
        && b.iter().all(|c| ALPHABET.contains(c))
        && ALPHABET
            .iter()
            .position(|c| *c == b[SESSION_ID_LEN - 1])
            .is_some_and(|v| v % 16 == 0)
}

/// Parses `s` every way an id is parsed from outside text and checks the
/// answers agree: the canonical id exactly when the oracle says so.
fn check_id_text(s: &str) -> Result<(), TestCaseError> {
    let parsed = s.parse::<SessionId>();
    match &parsed {
        Ok(id) => prop_assert_eq!(id.to_string(), s, "accepted a non-canonical form"),
        Err(e) => {
            // The reason never repeats the input (which may be a near-valid
            // credential).
            if s.len() >= 8 {
                prop_assert!(!e.to_string().contains(s), "{e}");
            }
        }
    }
    prop_assert_eq!(parsed.is_ok(), is_canonical(s), "{:?}: {:?}", s, parsed);
    prop_assert_eq!(SessionId::try_from(s).ok(), parsed.clone().ok());
    // Through serde (an id inside JSON), the same answer.
    let json = serde_json::to_string(s).expect("a string serializes");
    prop_assert_eq!(serde_json::from_str::<SessionId>(&json).ok(), parsed.ok());
    Ok(())
}

/// One edit of an id's text.
#[derive(Debug, Clone)]
enum IdEdit {
    Replace(prop::sample::Index, char),
    Insert(prop::sample::Index, char),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
    Append(char),
}

/// Characters near the alphabet: the alphabet itself, standard base64,
/// padding, separators, controls, look-alikes (Kelvin sign, fullwidth A,
/// a combining mark) and any char at all.
fn near_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(ALPHABET.to_vec()).prop_map(char::from),
        2 => prop::sample::select(vec!['+', '/', '=', '.', ' ', '\0', '%', '\n', '{', '}', '*', '\u{7f}']),
        1 => prop::sample::select(vec!['\u{212a}', '\u{ff21}', '\u{301}', 'é', '\u{feff}']),
        1 => any::<char>(),
    ]
}

fn id_edit() -> impl Strategy<Value = IdEdit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), near_char()).prop_map(|(i, c)| IdEdit::Replace(i, c)),
        1 => (any::<prop::sample::Index>(), near_char()).prop_map(|(i, c)| IdEdit::Insert(i, c)),
        1 => any::<prop::sample::Index>().prop_map(IdEdit::Remove),
        1 => any::<prop::sample::Index>().prop_map(IdEdit::Truncate),
        1 => near_char().prop_map(IdEdit::Append),
    ]
}

fn apply_id_edit(s: &mut Vec<char>, edit: &IdEdit) {
    match edit {
        IdEdit::Replace(i, c) if !s.is_empty() => {
            let i = i.index(s.len());
            s[i] = *c;
        }
        IdEdit::Insert(i, c) => {
            let i = i.index(s.len() + 1);
            s.insert(i, *c);
        }
        IdEdit::Remove(i) if !s.is_empty() => {
            let i = i.index(s.len());
            s.remove(i);
        }
        IdEdit::Truncate(i) => {
            let i = i.index(s.len() + 1);
            s.truncate(i);
        }
        IdEdit::Append(c) => s.push(*c),
        _ => {}
    }
}

/// A record with small, varied data.
fn record() -> impl Strategy<Value = Record> {
    (
        any::<u128>(),
        prop::collection::btree_map(".{0,12}", ".{0,24}", 0..6),
        any::<i64>(),
        any::<i64>(),
        any::<u64>(),
    )
        .prop_map(|(id, entries, created, expires, version)| {
            let mut data = SessionData::new();
            for (k, v) in entries {
                data.insert(k, &v).expect("a string serializes");
            }
            let mut r = Record::with_deadline(
                SessionId::from_u128(id),
                data,
                Timestamp::from_millis(created),
                Timestamp::from_millis(expires),
            );
            r.version = version;
            r
        })
}

/// One edit of an encoded record's bytes.
#[derive(Debug, Clone)]
enum ByteEdit {
    Set(prop::sample::Index, u8),
    Xor(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    /// Overwrites from the index with a varint claiming a huge length.
    HugeVarint(prop::sample::Index, u64),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        2 => (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, b)| ByteEdit::Xor(i, b)),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1..9usize).prop_map(|(i, n)| ByteEdit::Remove(i, n)),
        1 => any::<prop::sample::Index>().prop_map(ByteEdit::Truncate),
        2 => (any::<prop::sample::Index>(), prop_oneof![Just(u64::MAX), Just(1 << 60), Just(1 << 36), Just(1 << 31), 251..u64::MAX])
            .prop_map(|(i, n)| ByteEdit::HugeVarint(i, n)),
    ]
}

fn apply_byte_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let len = bytes.len();
    match edit {
        ByteEdit::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        ByteEdit::Xor(i, b) if len > 0 => bytes[i.index(len)] ^= *b,
        ByteEdit::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        ByteEdit::Remove(i, n) if len > 0 => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        ByteEdit::Truncate(i) => bytes.truncate(i.index(len + 1)),
        ByteEdit::HugeVarint(i, n) => {
            let at = i.index(len + 1);
            let mut claim = vec![253u8];
            claim.extend(n.to_le_bytes());
            let end = (at + claim.len()).min(len);
            bytes.splice(at..end, claim);
        }
        _ => {}
    }
}

/// Decodes `bytes` as both layouts under `id`: each answer is a decode
/// error or a record for `id` holding no more data than the bytes.
fn check_decode(id: SessionId, bytes: &[u8]) -> Result<(Option<Record>, Option<Record>), TestCaseError> {
    let header = codec::decode_record_header(id, bytes);
    if let Err(e) = &header {
        prop_assert!(e.is_decode(), "not a decode error: {e}");
    }
    let full = match codec::decode_record(id, bytes) {
        Ok(r) => {
            prop_assert_eq!(r.id, id);
            prop_assert!(r.data.byte_size() <= bytes.len());
            check_values(&r.data);
            // A record's header says what the record says, from its first
            // bytes alone.
            let head = &bytes[..codec::RECORD_HEADER_MAX.min(bytes.len())];
            for h in [
                header.as_ref().ok().copied(),
                codec::decode_record_header(id, head).ok(),
            ] {
                let h = h.ok_or_else(|| TestCaseError::fail("a record whose header does not decode"))?;
                prop_assert_eq!(
                    (h.created_at, h.expires_at, h.version),
                    (r.created_at, r.expires_at, r.version)
                );
            }
            Some(r)
        }
        Err(e) => {
            prop_assert!(e.is_decode(), "not a decode error: {e}");
            None
        }
    };
    let body = match codec::decode_body(id, bytes, Timestamp::from_millis(9), 4) {
        Ok(r) => {
            prop_assert_eq!(r.id, id);
            prop_assert_eq!(r.expires_at, Timestamp::from_millis(9));
            prop_assert_eq!(r.version, 4);
            prop_assert!(r.data.byte_size() <= bytes.len());
            check_values(&r.data);
            Some(r)
        }
        Err(e) => {
            prop_assert!(e.is_decode(), "not a decode error: {e}");
            None
        }
    };
    // A format byte names one layout: no input is both.
    prop_assert!(full.is_none() || body.is_none());
    Ok((full, body))
}

/// The values of decoded garbage are JSON text that may not parse: reading
/// them is an error or a value, never a panic.
fn check_values(data: &SessionData) {
    for (k, _) in data.iter() {
        let _ = data.get_json(k);
        let _ = data.get::<i64>(k);
        let _ = data.get::<String>(k);
        let _ = data.get::<BTreeMap<String, serde_json::Value>>(k);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn id_from_any_string(s in any::<String>()) {
        check_id_text(&s)?;
    }

    #[test]
    fn id_from_any_bytes_read_lossily(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        check_id_text(&String::from_utf8_lossy(&bytes))?;
        if let Ok(s) = std::str::from_utf8(&bytes) {
            check_id_text(s)?;
        }
    }

    #[test]
    fn id_from_alphabet_strings_of_about_the_right_length(s in "[A-Za-z0-9_-]{20,24}") {
        check_id_text(&s)?;
    }

    #[test]
    fn id_near_a_valid_one(bits in any::<u128>(), edits in prop::collection::vec(id_edit(), 1..4)) {
        let valid = SessionId::from_u128(bits).to_string();
        let mut chars: Vec<char> = valid.chars().collect();
        for edit in &edits {
            apply_id_edit(&mut chars, edit);
        }
        let s: String = chars.into_iter().collect();
        check_id_text(&s)?;
        if s == valid {
            prop_assert_eq!(s.parse::<SessionId>(), Ok(SessionId::from_u128(bits)));
        }
    }

    #[test]
    fn codec_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decode(SessionId::from_u128(7), &bytes)?;
    }

    #[test]
    fn codec_any_bytes_after_a_valid_format_byte(
        format in prop::sample::select(vec![codec::RECORD_V1, codec::BODY_V1]),
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![format];
        bytes.extend(tail);
        check_decode(SessionId::from_u128(8), &bytes)?;
    }

    #[test]
    fn codec_edited_valid_records(r in record(), body in any::<bool>(), edits in prop::collection::vec(byte_edit(), 1..5)) {
        let mut bytes = if body { codec::encode_body(&r) } else { codec::encode_record(&r) }.expect("encodes");
        for edit in &edits {
            apply_byte_edit(&mut bytes, edit);
        }
        check_decode(r.id, &bytes)?;
    }

    #[test]
    fn codec_every_strict_prefix_and_any_suffix_is_an_error(r in record(), cut in any::<prop::sample::Index>(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
        for encoded in [codec::encode_record(&r).expect("encodes"), codec::encode_body(&r).expect("encodes")] {
            let cut = cut.index(encoded.len());
            let (full, body) = check_decode(r.id, &encoded[..cut])?;
            prop_assert!(full.is_none() && body.is_none(), "a prefix of {} of {} bytes decoded", cut, encoded.len());
            let mut longer = encoded.clone();
            longer.extend(&extra);
            let (full, body) = check_decode(r.id, &longer)?;
            prop_assert!(full.is_none() && body.is_none(), "trailing bytes were accepted");
            // And the untouched bytes still decode to the record.
            let (full, body) = check_decode(r.id, &encoded)?;
            prop_assert!(full.is_some() || body.is_some());
        }
        prop_assert_eq!(codec::decode_record(r.id, &codec::encode_record(&r).expect("encodes")).ok(), Some(r));
    }
}

#[test]
fn the_oracle_accepts_exactly_four_last_characters() {
    // A check of the oracle itself (and of the parser at every last
    // character): 64 candidates, 4 canonical (A, Q, g, w).
    let prefix = &SessionId::from_u128(0).to_string()[..SESSION_ID_LEN - 1];
    let accepted: Vec<char> = ALPHABET
        .iter()
        .map(|c| format!("{prefix}{}", char::from(*c)))
        .filter(|s| {
            assert_eq!(s.parse::<SessionId>().is_ok(), is_canonical(s), "{s}");
            is_canonical(s)
        })
        .map(|s| s.chars().last().unwrap_or_default())
        .collect();
    assert_eq!(accepted, vec!['A', 'Q', 'g', 'w']);
}
