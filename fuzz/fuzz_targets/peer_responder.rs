#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use sae_diameter_fuzz::{Responder, chunks};

// A router's connection before capabilities exchange: only a CER is acceptable.
fuzz_target!(|data: &[u8]| {
    let mut sae = Responder::waiting_for_cer();
    for chunk in chunks(data) {
        sae.feed(chunk);
        sae.drain();
    }
    sae.expire_timers();
});
