#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use sae_nic::Reference;

// Any text parses or is refused with a reason; what parses prints to text that parses back to
// the same reference.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Reference::parse(&text) {
        Ok(reference) => {
            let printed = reference.to_string();
            let again = Reference::parse(&printed).expect("a printed reference parses");
            assert_eq!(again, reference, "{printed}");
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
