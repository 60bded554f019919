//! Session ids: 128 random bits written as 22 characters of URL-safe base64.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of the text form of a [`SessionId`].
pub const SESSION_ID_LEN: usize = 22;

/// A session id: 128 bits from the operating system's CSPRNG.
///
/// Its text form (`Display`, `FromStr`) is exactly 22 characters of unpadded
/// URL-safe base64 (`A-Z a-z 0-9 - _`). Parsing accepts that form and nothing
/// else, so a parsed id can never name a path, a SQL fragment or a Redis key
/// pattern. An id is a bearer credential: `Debug` prints only its
/// [`fingerprint`](Self::fingerprint), never the id, so ids do not leak into
/// logs or error messages.
///
/// ```
/// use session_store_core::SessionId;
///
/// let id = SessionId::random();
/// let text = id.to_string();
/// assert_eq!(text.len(), 22);
/// assert_eq!(text.parse::<SessionId>().unwrap(), id);
/// assert_eq!(SessionId::from_u128(id.as_u128()), id);
/// assert!("../../etc/passwd".parse::<SessionId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics only if the operating system cannot provide random bytes at
    /// all, in which case no session could be created safely.
    #[must_use]
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        Self(u128::from_le_bytes(bytes))
    }

    /// The id with these 128 bits (lossless; for adapters to other session
    /// libraries whose ids are 128-bit integers).
    #[must_use]
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The 128 bits of this id.
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The id as 16 little-endian bytes, the order its text form encodes.
    ///
    /// Little-endian matches tower-sessions, whose ids are 128-bit integers
    /// written the same way, so a cookie set through the tower-sessions
    /// adapter reads exactly like the id in the store (the file name, the
    /// SQLite key, the Redis key).
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// Writes the text form into a stack buffer, without allocating.
    #[must_use]
    pub fn encode(self) -> EncodedId {
        let mut buf = [0u8; SESSION_ID_LEN];
        let written = URL_SAFE_NO_PAD.encode_slice(self.to_bytes(), &mut buf).unwrap_or(0);
        debug_assert_eq!(written, SESSION_ID_LEN);
        EncodedId(buf)
    }

    /// A short, non-reversible fingerprint of this id, for logs and error
    /// messages: the first 4 bytes (8 hex characters) of the SHA-256 of the
    /// id's 16 bytes ([`to_bytes`](Self::to_bytes)).
    ///
    /// It names a session without revealing it: 32 bits of a hash leave the
    /// other 96 bits of the id unknown, so the fingerprint cannot be turned
    /// back into a usable id, yet an operator who has an id (a cookie, a file
    /// name, a key) computes its fingerprint and finds the log lines about
    /// it. Two sessions may share a fingerprint (among 100,000 live
    /// sessions about one pair does); it is a hint for humans, never a key.
    ///
    /// ```
    /// use session_store_core::SessionId;
    ///
    /// let id = SessionId::from_u128(0);
    /// let fingerprint = id.fingerprint();
    /// assert_eq!(fingerprint.to_string().len(), 8);
    /// assert!(!id.to_string().contains(&fingerprint.to_string()));
    /// assert_eq!(format!("{id:?}"), format!("SessionId({fingerprint})"));
    /// ```
    #[must_use]
    pub fn fingerprint(self) -> Fingerprint {
        Fingerprint::of_bytes(&self.to_bytes())
    }
}

/// A short, non-reversible fingerprint of a session id (see
/// [`SessionId::fingerprint`]): 8 lowercase hex characters, both in
/// `Display` and in `Debug`.
///
/// Errors and log lines name a session by its fingerprint, never by the id,
/// which is a credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 4]);

impl Fingerprint {
    /// The fingerprint of raw bytes: the first 4 bytes of their SHA-256.
    ///
    /// [`SessionId::fingerprint`] is this over the id's 16 bytes. Backends
    /// use it directly where they hold stored text that is not a valid id
    /// (a garbage id column, a foreign key name), so even such text never
    /// reaches a message in full.
    #[must_use]
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(bytes);
        Self([digest[0], digest[1], digest[2], digest[3]])
    }
}

impl From<SessionId> for Fingerprint {
    fn from(id: SessionId) -> Self {
        id.fingerprint()
    }
}

impl From<&SessionId> for Fingerprint {
    fn from(id: &SessionId) -> Self {
        id.fingerprint()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The 22-character text form of a [`SessionId`], held on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedId([u8; SESSION_ID_LEN]);

impl EncodedId {
    /// The text form as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only base64 alphabet bytes are ever written, which are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl AsRef<str> for EncodedId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for EncodedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same fingerprint as the id's: decode the text back to its bytes.
        let mut bytes = [0u8; 16];
        let fingerprint = match URL_SAFE_NO_PAD.decode_slice(self.0, &mut bytes) {
            Ok(16) => Fingerprint::of_bytes(&bytes),
            _ => Fingerprint::of_bytes(&self.0),
        };
        write!(f, "EncodedId({fingerprint})")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.fingerprint())
    }
}

/// The reason a string is not a valid [`SessionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// The string does not have exactly 22 bytes.
    #[error("a session id has exactly 22 characters, this one has {0} bytes")]
    Length(usize),
    /// The string holds a byte outside the URL-safe base64 alphabet.
    #[error("a session id holds only A-Z a-z 0-9 - _, found byte {byte:#04x} at {position}")]
    Character {
        /// The offending byte.
        byte: u8,
        /// Its position in the string.
        position: usize,
    },
    /// The last character carries bits beyond the 128 of an id (not canonical).
    #[error("a session id's last character must encode no bits beyond 128")]
    NonCanonical,
}

fn is_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl FromStr for SessionId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != SESSION_ID_LEN {
            return Err(InvalidId::Length(bytes.len()));
        }
        if let Some(position) = bytes.iter().position(|&b| !is_alphabet(b)) {
            return Err(InvalidId::Character {
                byte: bytes[position],
                position,
            });
        }
        let mut out = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(bytes, &mut out) {
            Ok(16) => Ok(Self(u128::from_le_bytes(out))),
            // The alphabet and length were checked, so the only way left to
            // fail is trailing bits in the last character.
            _ => Err(InvalidId::NonCanonical),
        }
    }
}

impl TryFrom<&str> for SessionId {
    type Error = InvalidId;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SessionId> for u128 {
    fn from(id: SessionId) -> Self {
        id.0
    }
}

impl From<u128> for SessionId {
    fn from(bits: u128) -> Self {
        Self(bits)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode().as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_ids_differ_and_round_trip() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<SessionId>(), Ok(a));
    }

    #[test]
    fn debug_shows_the_fingerprint_only() {
        for _ in 0..100 {
            let id = SessionId::random();
            let text = id.to_string();
            for debug in [format!("{id:?}"), format!("{:?}", id.encode())] {
                assert!(debug.contains(&id.fingerprint().to_string()), "{debug}");
                // Not even a prefix of the id: a credential leaks no characters.
                assert!(!debug.contains(&text[..4]), "{debug} shows the start of {text}");
            }
        }
    }

    #[test]
    fn fingerprint_is_the_start_of_the_sha256_of_the_bytes() {
        // SHA-256 of 16 zero bytes is 374708ff f7719dd5 979ec875 d56cd228...
        let zero = SessionId::from_u128(0);
        assert_eq!(zero.fingerprint().to_string(), "374708ff");
        assert_eq!(format!("{:?}", zero.fingerprint()), "374708ff");
        assert_eq!(Fingerprint::of_bytes(&zero.to_bytes()), zero.fingerprint());
        assert_eq!(Fingerprint::from(&zero), zero.fingerprint());
        // SHA-256 of "abc" is ba7816bf...
        assert_eq!(Fingerprint::of_bytes(b"abc").to_string(), "ba7816bf");
        assert_ne!(SessionId::from_u128(1).fingerprint(), zero.fingerprint());
    }

    #[test]
    fn rejects_bad_forms() {
        let good = SessionId::from_u128(0).to_string();
        assert_eq!(good, "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!("".parse::<SessionId>(), Err(InvalidId::Length(0)));
        assert!(matches!(
            "AAAAAAAAAAAAAAAAAAAAA/".parse::<SessionId>(),
            Err(InvalidId::Character {
                byte: b'/',
                position: 21
            })
        ));
        assert!(matches!(
            "AAAAAAAAAAAAAAAAAAAAA=".parse::<SessionId>(),
            Err(InvalidId::Character { .. })
        ));
        // 'B' in the last place sets a bit beyond 128.
        assert_eq!(
            "AAAAAAAAAAAAAAAAAAAAAB".parse::<SessionId>(),
            Err(InvalidId::NonCanonical)
        );
        assert!("AAAAAAAAAAAAAAAAAAAAAAé".parse::<SessionId>().is_err());
        assert_eq!(
            "__________________________________________________________________________________"[..22]
                .parse::<SessionId>()
                .map(|_| ()),
            Err(InvalidId::NonCanonical)
        );
    }

    proptest! {
        #[test]
        fn any_u128_round_trips(bits in any::<u128>()) {
            let id = SessionId::from_u128(bits);
            let text = id.to_string();
            prop_assert_eq!(text.len(), SESSION_ID_LEN);
            prop_assert!(text.bytes().all(is_alphabet));
            prop_assert_eq!(text.parse::<SessionId>(), Ok(id));
            prop_assert_eq!(u128::from(id), bits);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics_and_accepts_only_canonical_ids(s in any::<String>()) {
            if let Ok(id) = s.parse::<SessionId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }

        #[test]
        fn parsing_near_miss_strings(s in "[A-Za-z0-9_\\-=+/. ]{20,24}") {
            match s.parse::<SessionId>() {
                Ok(id) => prop_assert_eq!(id.to_string(), s),
                Err(_) => {
                    let canonical = s.len() == 22
                        && s.bytes().all(is_alphabet)
                        && URL_SAFE_NO_PAD.decode(&s).is_ok();
                    prop_assert!(!canonical, "rejected a valid id {s}");
                }
            }
        }
    }
}
