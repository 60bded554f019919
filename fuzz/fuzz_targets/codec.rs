//! The codec's record and body decoding: any bytes are a decode error or a
//! record for the asked id that holds no more data than the bytes, and that
//! encodes to bytes decoding to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_store_core::{SessionId, Timestamp, codec};

fuzz_target!(|data: &[u8]| {
    let id = SessionId::from_u128(0x5eed);
    match codec::decode_record(id, data) {
        Ok(r) => {
            assert_eq!(r.id, id);
            assert!(r.data.byte_size() <= data.len());
            let again = codec::encode_record(&r).expect("a decoded record encodes");
            assert_eq!(codec::decode_record(id, &again).expect("its encoding decodes"), r);
        }
        Err(e) => assert!(e.is_decode(), "{e}"),
    }
    match codec::decode_body(id, data, Timestamp::from_millis(9), 4) {
        Ok(r) => {
            assert_eq!((r.id, r.expires_at, r.version), (id, Timestamp::from_millis(9), 4));
            assert!(r.data.byte_size() <= data.len());
            let again = codec::encode_body(&r).expect("a decoded body encodes");
            assert_eq!(
                codec::decode_body(id, &again, r.expires_at, r.version).expect("its encoding decodes"),
                r
            );
        }
        Err(e) => assert!(e.is_decode(), "{e}"),
    }
});
