//! A node started with an operator's dictionary file that moves the project's own Juniper AVPs
//! (Juniper-Template-Name, Juniper-Substitution and its Name and Value): the policies it sends
//! and the ones it reads use the moved codes.

use std::collections::BTreeMap;

use sae_diameter::codes::{app, avp, command, juniper, result, vendor};
use sae_diameter::jsrc::{
    PolicyDefinition, PolicyInstall, RequestType, SubscriberMessage, Substitution,
};
use sae_diameter::{Avp, Message, Value};
use sae_node::subscriber::registry::SubscriberRef;

use crate::client::ident;
use crate::diameter::{open_client, start};

const ROUTER: &str = "router1.test.realm";

/// The example operator file moving the project's own Juniper AVPs to 3023–3026.
const MOVED: &str = include_str!("../../diameter/dictionary/examples/move-juniper-codes.toml");

const CATALOG: &str = r#"
[sessions]
arbiters = 1

[[service]]
name = "gold"
policy_name = "gold-policy"
template_name = "rate-limit"
substitutions = { rate = "100m" }
accounting = true

[[service]]
name = "video"
template_name = "video-boost"

[[rule]]
name = "default"
priority = 10
services = ["gold"]
"#;

fn utf8(code: u32, s: &str) -> Avp {
    Avp::mandatory(code, &Value::Utf8String(s.into()))
}

fn login(session: &str, user: &str) -> Message {
    Message::request(command::AA, app::JSRC, true)
        .with(utf8(avp::SESSION_ID, session))
        .with(Avp::mandatory(
            avp::AUTH_APPLICATION_ID,
            &Value::Unsigned32(app::JSRC),
        ))
        .with(ident(avp::ORIGIN_HOST, ROUTER))
        .with(ident(avp::ORIGIN_REALM, "test.realm"))
        .with(ident(avp::DESTINATION_REALM, "test.realm"))
        .with(utf8(avp::USER_NAME, user))
}

fn jnpr(code: u32, value: &Value) -> Avp {
    Avp::vendor_mandatory(code, vendor::JUNIPER, value)
}

fn octets(s: &str) -> Value {
    Value::OctetString(s.as_bytes().to_vec().into())
}

/// The one Juniper member `code` of a grouped AVP.
fn member(group: &Avp, code: u32) -> Avp {
    let found: Vec<Avp> = group
        .grouped()
        .unwrap()
        .into_iter()
        .filter(|a| a.is(code, vendor::JUNIPER))
        .collect();
    assert_eq!(found.len(), 1, "member {code} of {group:?}");
    found.into_iter().next().unwrap()
}

/// (code, vendor) of each member of a grouped AVP.
fn members(group: &Avp) -> Vec<(u32, u32)> {
    group
        .grouped()
        .unwrap()
        .iter()
        .map(|a| (a.code(), a.vendor()))
        .collect()
}

/// Checks, AVP by AVP, a Juniper-Policy-Install whose definition has one substitution.
fn assert_moved_definition(install: &Avp, template: &str, name: &str, value: &str) {
    let definition = member(install, juniper::POLICY_DEFINITION);
    let j = vendor::JUNIPER;
    assert_eq!(
        members(&definition),
        vec![(juniper::POLICY_NAME, j), (3023, j), (3024, j)]
    );
    assert_eq!(member(&definition, 3023).as_str().unwrap(), template);
    let substitution = member(&definition, 3024);
    assert_eq!(members(&substitution), vec![(3025, j), (3026, j)]);
    assert_eq!(member(&substitution, 3025).as_str().unwrap(), name);
    assert_eq!(member(&substitution, 3026).as_str().unwrap(), value);
}

#[actix::test]
async fn a_dictionary_file_moving_the_template_and_substitution_avps_moves_them_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site-dictionary.toml");
    std::fs::write(&path, MOVED).unwrap();
    let (node, addr) = start(&format!("dictionary = {path:?}\n{CATALOG}")).await;
    let sae = node.engine().clone();
    let codes = *node.diameter().diameter().codes();
    assert_eq!(
        (
            codes.template_name,
            codes.substitution,
            codes.substitution_name,
            codes.substitution_value
        ),
        (3023, 3024, 3025, 3026)
    );
    let mut c = open_client(addr, ROUTER).await;

    // AAA to a login: the rule's service installed with the moved codes.
    c.send(login("r1;1;1", "alice@isp.example")).await;
    let aaa = c.expect_message().await;
    assert_eq!(aaa.result_code(), Some(result::SUCCESS), "{aaa:?}");
    let installs: Vec<&Avp> = aaa
        .find_all(juniper::POLICY_INSTALL, vendor::JUNIPER)
        .collect();
    assert_eq!(installs.len(), 1);
    assert_moved_definition(installs[0], "rate-limit", "rate", "100m");
    let gold = PolicyInstall {
        policy_name: "gold-policy".into(),
        definition: Some(PolicyDefinition {
            policy_name: "gold-policy".into(),
            template_name: "rate-limit".into(),
            substitutions: vec![Substitution {
                name: "rate".into(),
                value: "100m".into(),
            }],
        }),
        collect_accounting: true,
    };
    assert_eq!(aaa.policy_installs_with(&codes).unwrap(), vec![gold]);
    // A reader on the built-in codes refuses it rather than reading a policy without template.
    assert!(aaa.policy_installs().is_err());

    // PPR of an activation: the same.
    let who = SubscriberRef::UserName("alice@isp.example".into());
    let (s, w) = (sae.clone(), who.clone());
    let op = actix::spawn(async move {
        s.activate(&w, "video", BTreeMap::from([("x".into(), "1".into())]))
            .await
    });
    let ppr = c.expect_message().await;
    assert_eq!(ppr.header.command_code, command::PUSH_PROFILE);
    let install = ppr
        .find(juniper::POLICY_INSTALL, vendor::JUNIPER)
        .unwrap()
        .clone();
    assert_moved_definition(&install, "video-boost", "x", "1");
    let mut ppa = Message::answer_to(&ppr);
    ppa.set_result_code(result::SUCCESS);
    ppa.push_origin(ROUTER, "test.realm");
    c.send(ppa).await;
    assert!(op.await.unwrap().unwrap().success);

    // A replayed session the node does not hold: its policy is read with the moved codes.
    let held = jnpr(
        juniper::POLICY_INSTALL,
        &Value::Grouped(vec![
            jnpr(juniper::POLICY_NAME, &octets("held-policy")),
            jnpr(
                juniper::POLICY_DEFINITION,
                &Value::Grouped(vec![
                    jnpr(juniper::POLICY_NAME, &octets("held-policy")),
                    jnpr(3023, &octets("shaper")),
                    jnpr(
                        3024,
                        &Value::Grouped(vec![
                            jnpr(3025, &octets("rate")),
                            jnpr(3026, &octets("20m")),
                        ]),
                    ),
                ]),
            ),
        ]),
    );
    c.send(
        login("r1;2;1", "bob@isp.example")
            .with(RequestType::Synchronization.to_avp_with(&codes))
            .with(held),
    )
    .await;
    let answer = c.expect_message().await;
    assert_eq!(answer.result_code(), Some(result::SUCCESS), "{answer:?}");
    let mut rebuilt = None;
    for _ in 0..500 {
        rebuilt = sae.sessions.get("r1;2;1").map(|e| e.record);
        if rebuilt.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rebuilt = rebuilt.expect("the replayed session");
    assert_eq!(rebuilt.services.len(), 1);
    let s = &rebuilt.services[0];
    assert_eq!(s.template_name, "shaper");
    assert_eq!(
        s.substitutions,
        BTreeMap::from([("rate".to_string(), "20m".to_string())])
    );
}

#[test]
fn a_dictionary_file_leaving_a_juniper_avp_without_a_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site-dictionary.toml");
    std::fs::write(
        &path,
        "[[avp]]\ncode = 2023\nvendor = 2636\nname = \"Site-Template\"\ntype = \"OctetString\"\n",
    )
    .unwrap();
    let err = sae_node::Config::from_toml(
        &format!("[diameter]\ndictionary = {path:?}\n"),
        std::path::Path::new("test.toml"),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("diameter.dictionary"), "{err}");
    assert!(err.contains("Juniper-Template-Name"), "{err}");
}
