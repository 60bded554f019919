//! Session id text: any bytes, read as UTF-8 when they are and lossily
//! always. A parse is an error or the canonical id, whose text is the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_store_core::{SESSION_ID_LEN, SessionId};

fn check(s: &str) {
    if let Ok(id) = s.parse::<SessionId>() {
        assert_eq!(id.to_string(), s, "accepted a non-canonical id");
        assert_eq!(s.len(), SESSION_ID_LEN);
        assert_eq!(SessionId::from_u128(id.as_u128()), id);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
    check(&String::from_utf8_lossy(data));
});
