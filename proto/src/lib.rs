//! Generated protobuf and gRPC types for the SAE APIs.
//!
//! These types stay at the edges: the gRPC services convert them to and from the domain types
//! of `sae-node`, and `saectl` (`sae-ctl`) is a client of the management API; nothing else in
//! the workspace should depend on them.
//!
//! Feature `serde`: every message derives `serde::Serialize` (field names as in the .proto),
//! for the JSON output of `saectl`.

#![forbid(unsafe_code)]

/// Version 1 of the SAE management API.
pub mod v1 {
    #![allow(clippy::all, missing_docs, rust_2018_idioms)]
    tonic::include_proto!("sae.v1");
}

/// Encoded `FileDescriptorSet` of every .proto file in this crate, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sae_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_lists_the_management_service() {
        let fds = prost_types_like::decode(super::FILE_DESCRIPTOR_SET);
        assert!(
            fds.contains("sae/v1/management.proto"),
            "descriptor set: {fds}"
        );
    }

    /// Minimal decode of the descriptor set's file names without pulling in prost-types.
    mod prost_types_like {
        #[derive(Clone, PartialEq, prost::Message)]
        struct FileDescriptorSet {
            #[prost(message, repeated, tag = "1")]
            file: Vec<FileDescriptorProto>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct FileDescriptorProto {
            #[prost(string, optional, tag = "1")]
            name: Option<String>,
        }
        pub(super) fn decode(bytes: &[u8]) -> String {
            use prost::Message;
            let set = FileDescriptorSet::decode(bytes).expect("valid descriptor set");
            set.file
                .into_iter()
                .filter_map(|f| f.name)
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    #[test]
    fn node_status_round_trips() {
        let status = super::v1::NodeStatus {
            node_name: "sae-1".into(),
            version: "0.1.0".into(),
            diameter_peers: vec![super::v1::DiameterPeer {
                origin_host: "router.example".into(),
                state: "open".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = status.encode_to_vec();
        assert_eq!(
            super::v1::NodeStatus::decode(bytes.as_slice()).unwrap(),
            status
        );
    }
}
