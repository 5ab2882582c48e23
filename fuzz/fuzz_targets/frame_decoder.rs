#![no_main]
#![forbid(unsafe_code)]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sae_diameter::{Frame, FrameDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message_len: 512,
        max_grouped_depth: 4,
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
                    assert!(m.encoded_len() <= limits.max_message_len);
                    framed += m.encoded_len();
                }
                Ok(Some(Frame::Malformed { .. })) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(framed + buf.len() <= fed);
    }
});
