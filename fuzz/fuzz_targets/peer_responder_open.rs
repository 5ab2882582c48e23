#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use sae_diameter_fuzz::{Responder, chunks};

// An open connection (CER/CEA done) receiving arbitrary bytes.
fuzz_target!(|data: &[u8]| {
    let mut sae = Responder::open();
    for chunk in chunks(data) {
        sae.feed(chunk);
        sae.drain();
    }
    sae.expire_timers();
});
