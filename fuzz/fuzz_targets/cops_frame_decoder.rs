#![no_main]
#![forbid(unsafe_code)]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sae_cops::{Frame, FrameDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message_len: 512,
    };
    let mut dec = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut framed = 0usize;
    for chunk in sae_diameter_fuzz::chunks(data) {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Frame::Message(m))) => {
                    let len = m.encoded_len();
                    assert!(len <= limits.max_message_len);
                    framed += len;
                }
                Ok(Some(Frame::Malformed { error, .. })) => {
                    let _ = error.error_object();
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = e.error.error_object();
                    return;
                }
            }
        }
        assert!(framed + buf.len() <= fed);
    }
});
