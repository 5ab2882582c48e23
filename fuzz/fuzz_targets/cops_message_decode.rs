#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_cops::Message;
use sae_cops::integrity::{KeyTable, Verifier};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    match Message::decode(frame.clone()) {
        Ok(m) => {
            // What decodes re-encodes to a message that decodes the same.
            let again = m.encode().expect("a decoded message encodes");
            assert_eq!(Message::decode(again).as_ref(), Ok(&m));
            let mut v = Verifier::new(KeyTable::new().with(1, &b"fuzz"[..]), true);
            let _ = v.verify(&frame, &m);
        }
        Err(e) => {
            let _ = e.error_object();
            let _ = e.reason();
        }
    }
});
