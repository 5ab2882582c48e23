//! Capabilities exchange content (CER/CEA, RFC 6733 section 5.3).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::avp::{Avp, AvpFlags, Value};
use crate::codes::result;
use crate::codes::{app, avp};
use crate::message::Message;
use crate::validate::ProtocolError;

/// An application advertised inside Vendor-Specific-Application-Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VendorApplication {
    pub vendor_id: u32,
    pub auth_application_id: Option<u32>,
    pub acct_application_id: Option<u32>,
}

impl VendorApplication {
    /// An authorization application of `vendor_id`.
    pub fn auth(vendor_id: u32, application_id: u32) -> Self {
        VendorApplication {
            vendor_id,
            auth_application_id: Some(application_id),
            acct_application_id: None,
        }
    }
}

/// What a Diameter node says about itself in CER or CEA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub origin_host: String,
    pub origin_realm: String,
    pub host_ip_addresses: Vec<IpAddr>,
    pub vendor_id: u32,
    pub product_name: String,
    pub origin_state_id: Option<u32>,
    pub firmware_revision: Option<u32>,
    pub supported_vendor_ids: Vec<u32>,
    pub auth_application_ids: Vec<u32>,
    pub acct_application_ids: Vec<u32>,
    pub vendor_specific_applications: Vec<VendorApplication>,
}

impl Capabilities {
    /// Every application id advertised, plain or vendor-specific.
    pub fn application_ids(&self) -> BTreeSet<u32> {
        let vsa = self.vendor_specific_applications.iter().flat_map(|v| {
            v.auth_application_id
                .into_iter()
                .chain(v.acct_application_id)
        });
        self.auth_application_ids
            .iter()
            .chain(&self.acct_application_ids)
            .copied()
            .chain(vsa)
            .collect()
    }

    /// Applications both sides support; a relay on either side supports everything the other
    /// advertises.
    pub fn common_applications(&self, other: &Capabilities) -> BTreeSet<u32> {
        let ours = self.application_ids();
        let theirs = other.application_ids();
        let mut common: BTreeSet<u32> = if ours.contains(&app::RELAY) {
            theirs.clone()
        } else if theirs.contains(&app::RELAY) {
            ours.clone()
        } else {
            ours.intersection(&theirs).copied().collect()
        };
        common.remove(&app::RELAY);
        common
    }

    /// The capability AVPs in the order of the CER/CEA command format.
    pub fn to_avps(&self) -> Vec<Avp> {
        let ident = |code, s: &str| Avp::mandatory(code, &Value::DiameterIdentity(s.to_owned()));
        let u32_avp = |code, v| Avp::mandatory(code, &Value::Unsigned32(v));
        let mut avps = vec![
            ident(avp::ORIGIN_HOST, &self.origin_host),
            ident(avp::ORIGIN_REALM, &self.origin_realm),
        ];
        avps.extend(
            self.host_ip_addresses
                .iter()
                .map(|ip| Avp::mandatory(avp::HOST_IP_ADDRESS, &Value::Address((*ip).into()))),
        );
        avps.push(u32_avp(avp::VENDOR_ID, self.vendor_id));
        avps.push(Avp::new(
            avp::PRODUCT_NAME,
            0,
            AvpFlags::none(),
            &Value::Utf8String(self.product_name.clone()),
        ));
        if let Some(id) = self.origin_state_id {
            avps.push(u32_avp(avp::ORIGIN_STATE_ID, id));
        }
        avps.extend(
            self.supported_vendor_ids
                .iter()
                .map(|v| u32_avp(avp::SUPPORTED_VENDOR_ID, *v)),
        );
        avps.extend(
            self.auth_application_ids
                .iter()
                .map(|a| u32_avp(avp::AUTH_APPLICATION_ID, *a)),
        );
        avps.extend(
            self.acct_application_ids
                .iter()
                .map(|a| u32_avp(avp::ACCT_APPLICATION_ID, *a)),
        );
        for vsa in &self.vendor_specific_applications {
            let mut inner = vec![u32_avp(avp::VENDOR_ID, vsa.vendor_id)];
            if let Some(a) = vsa.auth_application_id {
                inner.push(u32_avp(avp::AUTH_APPLICATION_ID, a));
            }
            if let Some(a) = vsa.acct_application_id {
                inner.push(u32_avp(avp::ACCT_APPLICATION_ID, a));
            }
            avps.push(Avp::mandatory(
                avp::VENDOR_SPECIFIC_APPLICATION_ID,
                &Value::Grouped(inner),
            ));
        }
        if let Some(fw) = self.firmware_revision {
            avps.push(Avp::new(
                avp::FIRMWARE_REVISION,
                0,
                AvpFlags::none(),
                &Value::Unsigned32(fw),
            ));
        }
        avps
    }

    /// Reads the capabilities of a CER or CEA. The message is expected to have passed
    /// dictionary validation; what is still wrong is reported as a protocol error.
    pub fn from_message(msg: &Message) -> Result<Capabilities, ProtocolError> {
        let bad = |a: &Avp, what: &str| ProtocolError {
            result_code: result::INVALID_AVP_VALUE,
            failed_avp: Some(a.clone()),
            message: format!("invalid {what}"),
        };
        let missing =
            |what: &str| ProtocolError::new(result::MISSING_AVP, format!("missing {what}"));
        let mut caps = Capabilities::default();
        let mut have_vendor = false;
        for a in &msg.avps {
            if a.vendor() != 0 {
                continue;
            }
            match a.code() {
                avp::ORIGIN_HOST => {
                    caps.origin_host = a.as_str().map_err(|_| bad(a, "Origin-Host"))?.into()
                }
                avp::ORIGIN_REALM => {
                    caps.origin_realm = a.as_str().map_err(|_| bad(a, "Origin-Realm"))?.into()
                }
                avp::HOST_IP_ADDRESS => {
                    // An address we cannot read (or of another family than IPv4/IPv6) is
                    // refused rather than left out: the peer would be known by fewer
                    // addresses than it announced.
                    let ip = a
                        .as_address()
                        .ok()
                        .and_then(|addr| addr.ip())
                        .ok_or_else(|| bad(a, "Host-IP-Address: not an IPv4 or IPv6 address"))?;
                    caps.host_ip_addresses.push(ip);
                }
                avp::VENDOR_ID => {
                    caps.vendor_id = a.as_u32().map_err(|_| bad(a, "Vendor-Id"))?;
                    have_vendor = true;
                }
                avp::PRODUCT_NAME => {
                    caps.product_name = a.as_str().map_err(|_| bad(a, "Product-Name"))?.into()
                }
                avp::ORIGIN_STATE_ID => caps.origin_state_id = a.as_u32().ok(),
                avp::FIRMWARE_REVISION => caps.firmware_revision = a.as_u32().ok(),
                avp::SUPPORTED_VENDOR_ID => caps
                    .supported_vendor_ids
                    .push(a.as_u32().map_err(|_| bad(a, "Supported-Vendor-Id"))?),
                avp::AUTH_APPLICATION_ID => caps
                    .auth_application_ids
                    .push(a.as_u32().map_err(|_| bad(a, "Auth-Application-Id"))?),
                avp::ACCT_APPLICATION_ID => caps
                    .acct_application_ids
                    .push(a.as_u32().map_err(|_| bad(a, "Acct-Application-Id"))?),
                avp::VENDOR_SPECIFIC_APPLICATION_ID => {
                    caps.vendor_specific_applications
                        .push(vendor_application(a)?);
                }
                _ => {}
            }
        }
        if caps.origin_host.is_empty() {
            return Err(missing("Origin-Host"));
        }
        if caps.origin_realm.is_empty() {
            return Err(missing("Origin-Realm"));
        }
        if !have_vendor {
            return Err(missing("Vendor-Id"));
        }
        Ok(caps)
    }
}

/// Reads one Vendor-Specific-Application-Id: `{ Vendor-Id }` and exactly one of
/// `[ Auth-Application-Id ]` and `[ Acct-Application-Id ]` (RFC 6733 section 6.11; the first of
/// several Vendor-Ids, as RFC 3588 peers send them). A missing Vendor-Id is 5005 and never read
/// as vendor 0; an inner AVP that cannot be read is 5004; a repeated application id is 5009. Failed-AVP holds the Grouped AVP with the offending (or, for 5005, a
/// zero-filled example of the missing) AVP inside, as RFC 6733 section 7.5 allows.
fn vendor_application(a: &Avp) -> Result<VendorApplication, ProtocolError> {
    let wrap = |inner: Avp| {
        Avp::new(
            avp::VENDOR_SPECIFIC_APPLICATION_ID,
            0,
            a.flags(),
            &Value::Grouped(vec![inner]),
        )
    };
    let inner = a.grouped().map_err(|_| ProtocolError {
        result_code: result::INVALID_AVP_VALUE,
        failed_avp: Some(a.clone()),
        message: "invalid Vendor-Specific-Application-Id".into(),
    })?;
    let mut vendor_id = None;
    let mut auth = None;
    let mut acct = None;
    for i in &inner {
        let slot = match (i.code(), i.vendor()) {
            (avp::VENDOR_ID, 0) => &mut vendor_id,
            (avp::AUTH_APPLICATION_ID, 0) => &mut auth,
            (avp::ACCT_APPLICATION_ID, 0) => &mut acct,
            _ => continue,
        };
        let name = match i.code() {
            avp::VENDOR_ID => "Vendor-Id",
            avp::AUTH_APPLICATION_ID => "Auth-Application-Id",
            _ => "Acct-Application-Id",
        };
        if slot.is_some() && i.code() == avp::VENDOR_ID {
            // RFC 3588 allowed several Vendor-Ids; the first names the application's vendor.
            continue;
        }
        if slot.is_some() {
            return Err(ProtocolError {
                result_code: result::AVP_OCCURS_TOO_MANY_TIMES,
                failed_avp: Some(wrap(i.clone())),
                message: format!("{name} occurs more than once in Vendor-Specific-Application-Id"),
            });
        }
        let value = i.as_u32().map_err(|_| ProtocolError {
            result_code: result::INVALID_AVP_VALUE,
            failed_avp: Some(wrap(i.clone())),
            message: format!("invalid {name} in Vendor-Specific-Application-Id"),
        })?;
        *slot = Some(value);
    }
    let Some(vendor_id) = vendor_id else {
        return Err(ProtocolError {
            result_code: result::MISSING_AVP,
            failed_avp: Some(wrap(Avp::mandatory(avp::VENDOR_ID, &Value::Unsigned32(0)))),
            message: "missing Vendor-Id in Vendor-Specific-Application-Id".into(),
        });
    };
    if auth.is_none() == acct.is_none() {
        return Err(ProtocolError {
            result_code: result::INVALID_AVP_VALUE,
            failed_avp: Some(a.clone()),
            message: "invalid Vendor-Specific-Application-Id: needs exactly one of \
                      Auth-/Acct-Application-Id"
                .into(),
        });
    }
    Ok(VendorApplication {
        vendor_id,
        auth_application_id: auth,
        acct_application_id: acct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{command, vendor};

    fn sae() -> Capabilities {
        Capabilities {
            origin_host: "sae1.example.net".into(),
            origin_realm: "example.net".into(),
            host_ip_addresses: vec!["192.0.2.1".parse().unwrap()],
            vendor_id: 0,
            product_name: "SAE".into(),
            origin_state_id: Some(7),
            supported_vendor_ids: vec![vendor::JUNIPER],
            vendor_specific_applications: vec![VendorApplication::auth(vendor::JUNIPER, app::JSRC)],
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_through_a_cer() {
        let caps = sae();
        let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
        cer.avps = caps.to_avps();
        assert_eq!(Capabilities::from_message(&cer).unwrap(), caps);
    }

    #[test]
    fn common_applications_include_vendor_specific_and_relay() {
        let plain = Capabilities {
            auth_application_ids: vec![app::JSRC, app::NASREQ],
            ..sae()
        };
        let mut relay = sae();
        relay.vendor_specific_applications.clear();
        relay.auth_application_ids = vec![app::RELAY];
        assert_eq!(
            sae().common_applications(&plain),
            BTreeSet::from([app::JSRC])
        );
        assert_eq!(
            relay.common_applications(&plain),
            BTreeSet::from([app::JSRC, app::NASREQ])
        );
        let none = Capabilities {
            auth_application_ids: vec![4],
            vendor_specific_applications: vec![],
            ..sae()
        };
        assert!(sae().common_applications(&none).is_empty());
    }

    fn cer_with(avps: Vec<Avp>) -> Message {
        let mut cer = Message::request(command::CAPABILITIES_EXCHANGE, 0, false);
        cer.avps = avps;
        cer
    }

    #[test]
    fn vendor_specific_application_without_vendor_id_is_5005_not_vendor_0() {
        let mut avps = sae().to_avps();
        avps.retain(|a| a.code() != avp::VENDOR_SPECIFIC_APPLICATION_ID);
        let vsai = Avp::mandatory(
            avp::VENDOR_SPECIFIC_APPLICATION_ID,
            &Value::Grouped(vec![Avp::mandatory(
                avp::AUTH_APPLICATION_ID,
                &Value::Unsigned32(app::JSRC),
            )]),
        );
        avps.push(vsai);
        let err = Capabilities::from_message(&cer_with(avps)).unwrap_err();
        assert_eq!(err.result_code, result::MISSING_AVP);
        assert!(err.message.contains("Vendor-Id"), "{}", err.message);
        // Failed-AVP: the Grouped AVP with a zero-filled Vendor-Id inside.
        let failed = err.failed_avp.expect("Failed-AVP");
        assert_eq!(failed.code(), avp::VENDOR_SPECIFIC_APPLICATION_ID);
        let inner = failed.grouped().unwrap();
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].code(), avp::VENDOR_ID);
        assert_eq!(inner[0].as_u32().unwrap(), 0);
    }

    #[test]
    fn vendor_specific_application_with_several_vendor_ids_takes_the_first() {
        let mut avps = sae().to_avps();
        avps.retain(|a| a.code() != avp::VENDOR_SPECIFIC_APPLICATION_ID);
        let u = |code, v| Avp::mandatory(code, &Value::Unsigned32(v));
        avps.push(Avp::mandatory(
            avp::VENDOR_SPECIFIC_APPLICATION_ID,
            &Value::Grouped(vec![
                u(avp::VENDOR_ID, vendor::JUNIPER),
                u(avp::VENDOR_ID, 10415),
                u(avp::AUTH_APPLICATION_ID, app::JSRC),
            ]),
        ));
        let caps = Capabilities::from_message(&cer_with(avps)).unwrap();
        assert_eq!(
            caps.vendor_specific_applications,
            vec![VendorApplication::auth(vendor::JUNIPER, app::JSRC)]
        );
    }

    #[test]
    fn vendor_specific_application_with_two_auth_application_ids_is_5009() {
        let mut avps = sae().to_avps();
        avps.retain(|a| a.code() != avp::VENDOR_SPECIFIC_APPLICATION_ID);
        let u = |code, v| Avp::mandatory(code, &Value::Unsigned32(v));
        avps.push(Avp::mandatory(
            avp::VENDOR_SPECIFIC_APPLICATION_ID,
            &Value::Grouped(vec![
                u(avp::VENDOR_ID, vendor::JUNIPER),
                u(avp::AUTH_APPLICATION_ID, app::JSRC),
                u(avp::AUTH_APPLICATION_ID, app::PTSP),
            ]),
        ));
        let err = Capabilities::from_message(&cer_with(avps)).unwrap_err();
        assert_eq!(err.result_code, result::AVP_OCCURS_TOO_MANY_TIMES);
        let inner = err.failed_avp.unwrap().grouped().unwrap();
        assert_eq!(inner[0].as_u32().unwrap(), app::PTSP);
    }

    #[test]
    fn undecodable_host_ip_address_is_5004_not_left_out() {
        let mut avps = sae().to_avps();
        // Family 1 (IPv4) with two octets of address.
        let short = Avp::from_raw(
            avp::HOST_IP_ADDRESS,
            AvpFlags::mandatory(),
            None,
            bytes::Bytes::from_static(&[0, 1, 192, 0]),
        );
        avps.insert(3, short.clone());
        let err = Capabilities::from_message(&cer_with(avps.clone())).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
        assert_eq!(err.failed_avp, Some(short));
        // E.164 (family 8) is a valid Address, but not a host's IP address.
        let e164 = Avp::from_raw(
            avp::HOST_IP_ADDRESS,
            AvpFlags::mandatory(),
            None,
            bytes::Bytes::from_static(&[0, 8, b'1', b'2', b'3']),
        );
        avps[3] = e164.clone();
        let err = Capabilities::from_message(&cer_with(avps)).unwrap_err();
        assert_eq!(err.result_code, result::INVALID_AVP_VALUE);
        assert_eq!(err.failed_avp, Some(e164));
    }
}
