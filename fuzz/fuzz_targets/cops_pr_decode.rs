#![no_main]
#![forbid(unsafe_code)]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sae_cops::pr::{
    Epd, Prid, decode_accounting_report, decode_install_decision, decode_outcome_report,
    decode_pr_objects, decode_remove_decision, decode_request_client_si,
};
use sae_cops::usage::{TrafficUsage, UsageClass};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    // COPS-PR sub-objects and the RFC 3084 structures built from them.
    if let Ok(objects) = decode_pr_objects(&bytes) {
        let again = sae_cops::pr::encode_pr_objects(&objects).expect("decoded objects encode");
        assert_eq!(decode_pr_objects(&again).as_ref(), Ok(&objects));
    }
    if let Ok(install) = decode_install_decision(&bytes) {
        for i in &install.0 {
            let _ = TrafficUsage::from_instance(i);
            let _ = sae_cops::pib::find::<sae_cops::pib::PolicyInstance>(&install.0);
        }
    }
    let _ = decode_remove_decision(&bytes);
    let _ = decode_request_client_si(&bytes);
    let _ = decode_accounting_report(&bytes);
    let _ = decode_outcome_report(&bytes).map_err(|e| e.provisioning_error());
    // Raw BER: attribute values and OIDs.
    if let Ok(epd) = Epd::from_ber(data) {
        let again = epd.to_ber().expect("a decoded EPD encodes");
        assert_eq!(Epd::from_ber(&again).as_ref(), Ok(&epd));
    }
    let _ = Prid::from_ber(data, 1);
});
