//! A blocking client of a node's management API (gRPC).

use std::thread;
use std::time::{Duration, Instant};

use super::WAIT;
use super::process::SaeNode;

/// A blocking client of a node's management API.
pub struct Api {
    pub rt: tokio::runtime::Runtime,
    pub client: sae_proto::v1::management_client::ManagementClient<tonic::transport::Channel>,
}

impl Api {
    pub fn connect(node: &SaeNode) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt
            .block_on(sae_proto::v1::management_client::ManagementClient::connect(
                node.grpc_url(),
            ))
            .expect("connect to the management API");
        Api { rt, client }
    }

    /// Polls until `f` holds (at most [`WAIT`]).
    pub fn until<T>(&mut self, what: &str, mut f: impl FnMut(&mut Api) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A subscriber by user name.
    pub fn subscriber(&mut self, user: &str) -> Result<sae_proto::v1::Subscriber, tonic::Status> {
        use sae_proto::v1 as pb;
        let req = pb::GetSubscriberRequest {
            subscriber: Some(pb::SubscriberRef {
                key: Some(pb::subscriber_ref::Key::UserName(user.into())),
            }),
        };
        self.rt
            .block_on(self.client.get_subscriber(req))
            .map(|r| r.into_inner())
    }

    /// Usage records of a user.
    pub fn usage(&mut self, user: &str) -> Vec<sae_proto::v1::UsageRecord> {
        let req = sae_proto::v1::ListUsageRecordsRequest {
            user_name: user.into(),
            ..Default::default()
        };
        self.rt
            .block_on(self.client.list_usage_records(req))
            .expect("ListUsageRecords")
            .into_inner()
            .records
    }
}
