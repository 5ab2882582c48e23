#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_diameter::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(Bytes::copy_from_slice(data)) {
        // What decodes re-encodes to a message of the same length that decodes the same.
        let again = m.encode().expect("a decoded message re-encodes");
        assert_eq!(again.len(), data.len());
        assert_eq!(
            Message::decode(again).expect("re-encoded message decodes"),
            m
        );
    }
});
