//! Conversions between the `sae.v1.Nic` prost types and `sae_nic`'s: the only place they meet.

use sae_nic::cache::Invalidation;
use sae_nic::{Attributes, Binding, Match, NodeId, Publication, Resolution, SessionKey};
use sae_proto::v1 as pb;
use sae_proto::v1::nic_publication::Kind;

use crate::Error;

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}

/// A match as answered; `node_name` when the answering side knows it.
pub fn match_to_pb(m: &Match, node_name: Option<String>) -> pb::NicMatch {
    pb::NicMatch {
        node: m.node,
        node_name: node_name.unwrap_or_default(),
        router: m.router.clone(),
        epoch: m.epoch,
        session_id: m
            .session
            .as_ref()
            .map(|s| s.session_id.clone())
            .unwrap_or_default(),
    }
}

/// A match from an answer of another NIC.
pub fn match_from_pb(m: &pb::NicMatch) -> Match {
    Match {
        node: m.node,
        router: m.router.clone(),
        epoch: m.epoch,
        session: (!m.session_id.is_empty()).then(|| SessionKey::new(&m.router, &m.session_id)),
    }
}

/// A resolution as answered, with the reference as parsed.
pub fn resolution_to_pb(
    reference: &sae_nic::Reference,
    res: &Resolution,
    names: impl Fn(NodeId) -> Option<String>,
) -> pb::ResolveReply {
    pb::ResolveReply {
        reference: reference.to_string(),
        chain: res.chain.clone(),
        matches: res
            .matches
            .iter()
            .map(|m| match_to_pb(m, names(m.node)))
            .collect(),
    }
}

/// A resolution from an answer of another NIC.
pub fn resolution_from_pb(reply: &pb::ResolveReply) -> Resolution {
    Resolution {
        chain: reply.chain.clone(),
        matches: reply.matches.iter().map(match_from_pb).collect(),
    }
}

fn binding_to_pb(session: &SessionKey, node: u64, epoch: u64, a: &Attributes) -> pb::NicBinding {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    pb::NicBinding {
        router: session.router.clone(),
        session_id: session.session_id.clone(),
        node,
        epoch,
        addresses: a.addresses.iter().map(ToString::to_string).collect(),
        prefixes: a.prefixes.iter().map(ToString::to_string).collect(),
        login_name: text(&a.login_name),
        primary_user_name: text(&a.primary_user_name),
        dn: text(&a.dn),
        interface_name: text(&a.interface_name),
        vr: a.vr.as_ref().map(ToString::to_string).unwrap_or_default(),
        accounting_id: text(&a.accounting_id),
    }
}

/// A stored binding as listed.
pub fn entry_to_pb(b: &Binding) -> pb::NicBinding {
    binding_to_pb(&b.session, b.node, b.epoch, &b.attributes)
}

/// A binding from the wire; every address, prefix and VR must parse.
pub fn binding_from_pb(b: pb::NicBinding) -> Result<Binding, Error> {
    let text = |s: String| (!s.is_empty()).then_some(s);
    Ok(Binding {
        session: SessionKey::new(b.router, b.session_id),
        node: b.node,
        epoch: b.epoch,
        attributes: Attributes {
            addresses: b
                .addresses
                .iter()
                .map(|a| a.parse().map_err(|e| invalid("address", e)))
                .collect::<Result<_, _>>()?,
            prefixes: b
                .prefixes
                .iter()
                .map(|p| p.parse().map_err(|e| invalid("prefix", e)))
                .collect::<Result<_, _>>()?,
            login_name: text(b.login_name),
            primary_user_name: text(b.primary_user_name),
            dn: text(b.dn),
            interface_name: text(b.interface_name),
            vr: match b.vr.as_str() {
                "" => None,
                vr => Some(vr.parse().map_err(|e| invalid("vr", e))?),
            },
            accounting_id: text(b.accounting_id),
        },
    })
}

/// The publication on the wire; pools are not sent (they come from each NIC's configuration).
pub fn publication_to_pb(p: &Publication) -> Option<pb::NicPublication> {
    let router = |router: &str, node, epoch| pb::NicRouter {
        router: router.to_owned(),
        node,
        epoch,
    };
    let kind = match p {
        Publication::Bind(b) => {
            Kind::Bind(binding_to_pb(&b.session, b.node, b.epoch, &b.attributes))
        }
        Publication::Unbind {
            session,
            node,
            epoch,
        } => Kind::Unbind(pb::NicUnbind {
            router: session.router.clone(),
            session_id: session.session_id.clone(),
            node: *node,
            epoch: *epoch,
        }),
        Publication::Owner {
            router: r,
            node,
            epoch,
        } => Kind::Owner(router(r, *node, *epoch)),
        Publication::Synced {
            router: r,
            node,
            epoch,
        } => Kind::Synced(router(r, *node, *epoch)),
        Publication::ReplayStart { node } => Kind::ReplayStart(*node),
        Publication::ReplayEnd { node } => Kind::ReplayEnd(*node),
        Publication::Pools { .. } => return None,
    };
    Some(pb::NicPublication { kind: Some(kind) })
}

/// A publication from the wire.
pub fn publication_from_pb(p: pb::NicPublication) -> Result<Publication, Error> {
    Ok(match p.kind {
        Some(Kind::Bind(b)) => Publication::bind(binding_from_pb(b)?),
        Some(Kind::Unbind(u)) => Publication::Unbind {
            session: SessionKey::new(u.router, u.session_id),
            node: u.node,
            epoch: u.epoch,
        },
        Some(Kind::Owner(r)) => Publication::Owner {
            router: r.router,
            node: r.node,
            epoch: r.epoch,
        },
        Some(Kind::Synced(r)) => Publication::Synced {
            router: r.router,
            node: r.node,
            epoch: r.epoch,
        },
        Some(Kind::ReplayStart(node)) => Publication::ReplayStart { node },
        Some(Kind::ReplayEnd(node)) => Publication::ReplayEnd { node },
        None => return Err(invalid("kind", "none set")),
    })
}

pub fn invalidation_to_pb(i: &Invalidation) -> pb::NicInvalidation {
    pb::NicInvalidation {
        all: i.all,
        tokens: i.tokens.clone(),
        nets: i.nets.iter().map(ToString::to_string).collect(),
    }
}

/// An invalidation from the wire; a net that does not parse makes it drop everything.
pub fn invalidation_from_pb(i: pb::NicInvalidation) -> Invalidation {
    let nets: Result<Vec<_>, _> = i.nets.iter().map(|n| n.parse()).collect();
    match nets {
        Ok(nets) => Invalidation {
            all: i.all,
            tokens: i.tokens,
            nets,
        },
        Err(_) => Invalidation {
            all: true,
            ..Invalidation::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_survive_the_wire() {
        let binding = Binding {
            session: SessionKey::new("BNG1", "bng1;1;7"),
            node: 2,
            epoch: 5,
            attributes: Attributes {
                addresses: vec!["10.0.0.7".parse().unwrap()],
                prefixes: vec!["2001:db8::/56".parse().unwrap()],
                login_name: Some("alice@isp".into()),
                vr: Some(sae_nic::Vr::new("cust1", "bng1")),
                accounting_id: Some("a-7".into()),
                ..Attributes::default()
            },
        };
        for p in [
            Publication::bind(binding),
            Publication::Unbind {
                session: SessionKey::new("bng1", "x"),
                node: 2,
                epoch: 5,
            },
            Publication::Owner {
                router: "bng1".into(),
                node: 2,
                epoch: 5,
            },
            Publication::Synced {
                router: "bng1".into(),
                node: 2,
                epoch: 5,
            },
            Publication::ReplayStart { node: 2 },
            Publication::ReplayEnd { node: 2 },
        ] {
            let wire = publication_to_pb(&p).unwrap();
            assert_eq!(publication_from_pb(wire).unwrap(), p);
        }
    }

    #[test]
    fn hostile_publications_are_refused_with_the_field() {
        let mut b = pb::NicBinding {
            router: "bng1".into(),
            session_id: "s".into(),
            addresses: vec!["10.0.0.300".into()],
            ..Default::default()
        };
        let e = binding_from_pb(b.clone()).unwrap_err().to_string();
        assert!(e.contains("address"), "{e}");
        b.addresses.clear();
        b.vr = "no-at-sign".into();
        assert!(binding_from_pb(b).unwrap_err().to_string().contains("vr"));
        let e = publication_from_pb(pb::NicPublication { kind: None }).unwrap_err();
        assert!(e.to_string().contains("kind"));
        let i = invalidation_from_pb(pb::NicInvalidation {
            all: false,
            tokens: vec!["ip=10.0.0.1/32".into()],
            nets: vec!["garbage".into()],
        });
        assert!(i.all);
    }
}
