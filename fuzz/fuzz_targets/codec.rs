//! The codec's record, record header and body decoding: any bytes are a
//! decode error or a record for the asked id that holds no more data than
//! the bytes, whose header (also from its first bytes alone) says the same,
//! and that encodes to bytes decoding to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_store_core::{SessionId, Timestamp, raw::codec};

fuzz_target!(|data: &[u8]| {
    let id = SessionId::from_u128(0x5eed);
    let header = codec::decode_record_header(id, data);
    if let Err(e) = &header {
        assert!(e.is_decode(), "{e}");
    }
    match codec::decode_record(id, data) {
        Ok(r) => {
            assert_eq!(r.id, id);
            assert!(r.data.byte_size() <= data.len());
            let h = header.expect("a record's header decodes");
            assert_eq!(
                (h.created_at, h.expires_at, h.version),
                (r.created_at, r.expires_at, r.version)
            );
            let head = &data[..codec::RECORD_HEADER_MAX.min(data.len())];
            assert_eq!(codec::decode_record_header(id, head).expect("from its first bytes"), h);
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
