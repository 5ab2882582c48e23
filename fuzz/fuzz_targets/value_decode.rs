#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_diameter::{Avp, AvpFlags, AvpType, Value};

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let ty = AvpType::ALL[usize::from(*first) % AvpType::ALL.len()];
    let bytes = Bytes::copy_from_slice(rest);
    let checked = Value::check(ty, &bytes);
    match Value::decode(ty, &bytes) {
        Ok(v) => {
            assert_eq!(v.avp_type(), ty);
            assert!(checked.is_ok(), "decode accepted what check refused");
            let again = v.encode();
            if ty == AvpType::Grouped {
                // Padding octets are not kept: the same length, the same AVPs.
                assert_eq!(again.len(), bytes.len());
                let back = Value::decode(ty, &again).expect("re-encoded Grouped data decodes");
                assert_eq!(back.encode(), again);
            } else {
                assert_eq!(again, bytes, "re-encoded octets differ");
            }
            if let Value::Time(t) = v {
                let secs = t.to_unix_seconds();
                assert_eq!(
                    sae_diameter::DiameterTime::from_unix_seconds(secs as u64),
                    t
                );
            }
        }
        Err(e) if ty != AvpType::Grouped => assert_eq!(checked, Err(e)),
        Err(_) => {}
    }
    let a = Avp::from_raw(1, AvpFlags::mandatory(), None, bytes);
    let _ = (
        a.as_u32(),
        a.as_u64(),
        a.as_i32(),
        a.as_str(),
        a.as_address(),
        a.grouped(),
    );
});
