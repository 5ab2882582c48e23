#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

// Subscriber reference expressions: any text is parsed, statically checked and, if allowed,
// evaluated over a fixed set of fields, within the evaluator's step and size limits; errors
// are values, never panics, hangs or unbounded allocations.
fuzz_target!(|data: &[u8]| {
    sae_nic::expr::fuzz_one(data);
});
