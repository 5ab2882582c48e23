#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_diameter::Dictionary;
use sae_diameter::validate::{check_answer_rules, validate_answer, validate_request};
use sae_diameter_fuzz::{base_dictionary, sample_messages};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut dict: Dictionary = base_dictionary().clone();
    match dict.load_str(text) {
        // A file that fails to load changes nothing.
        Err(_) => assert!(
            dict == *base_dictionary(),
            "a failed load changed the dictionary"
        ),
        // Whatever rules it holds, validating with it never panics and error answers encode.
        Ok(()) => {
            let limits = sae_diameter::Limits::default();
            for m in sample_messages() {
                let checked = if m.is_request() {
                    validate_request(&dict, m, &limits)
                } else {
                    validate_answer(&dict, m, &limits)
                        .and_then(|()| check_answer_rules(&dict, m))
                };
                if let Err(err) = checked {
                    let answer = if m.is_request() {
                        err.answer_to(&dict, m, "sae1.example.net", "example.net")
                    } else {
                        err.answer(&m.header, None, "sae1.example.net", "example.net")
                    };
                    let bytes: Bytes = answer.encode().expect("error answers encode");
                    assert!(!bytes.is_empty());
                }
                let _ = dict.message_name(m.header.command_code, m.is_request());
            }
        }
    }
});
