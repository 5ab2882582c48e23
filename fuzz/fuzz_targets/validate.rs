#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_diameter::jsrc::SubscriberMessage;
use sae_diameter::validate::{check_answer_rules, check_strict, validate_answer, validate_request};
use sae_diameter::{Capabilities, Dictionary, Limits, Message};
use std::sync::OnceLock;

fn dictionary() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(Dictionary::base)
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let dict = dictionary();
    let limits = Limits::default();
    let checked = if m.is_request() {
        validate_request(dict, &m, &limits)
    } else {
        validate_answer(dict, &m, &limits).and_then(|()| check_answer_rules(dict, &m))
    };
    if let Err(err) = checked {
        // The error answer the peer sends for it must always be encodable.
        let answer = if m.is_request() {
            err.answer_to(dict, &m, "sae1.example.net", "example.net")
        } else {
            err.answer(&m.header, None, "sae1.example.net", "example.net")
        };
        answer.encode().expect("error answers encode");
    }
    // The strict grammar check never panics, whatever the nesting, and its error is encodable
    // as a Failed-AVP answer too.
    if let Err(err) = check_strict(dict, &m) {
        err.answer(&m.header, None, "sae1.example.net", "example.net")
            .encode()
            .expect("error answers encode");
    }
    // The typed views never panic either.
    let _ = Capabilities::from_message(&m);
    let _ = m.policy_installs();
    let _ = m.policy_removes();
    let _ = m.acct_records();
    let _ = (
        m.user_name(),
        m.framed_ip(),
        m.nas_port_id(),
        m.request_type(),
    );
});
