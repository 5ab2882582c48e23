//! The `sae.v1.Cluster` gRPC service: Raft RPCs into the local Raft, and control-state writes and
//! membership calls, served by the leader (other members forward them to it).

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use sae_proto::v1 as pb;
use sae_proto::v1::cluster_server::{Cluster as ClusterRpc, ClusterServer};
use serde::Serialize;
use tonic::{Request, Response as GrpcResponse, Status};

use super::convert::cluster_status as status;
use crate::cluster::{Cluster, Command, Member, Response, TypeConfig};

/// The service, for [`tonic::transport::Server::add_service`].
pub fn server(cluster: Arc<Cluster>) -> ClusterServer<ClusterService> {
    ClusterServer::new(ClusterService { cluster })
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// Serves the cluster RPCs of one node.
#[derive(Debug, Clone)]
pub struct ClusterService {
    cluster: Arc<Cluster>,
}

fn decode<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(json).map_err(|e| Status::invalid_argument(format!("payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<GrpcResponse<pb::RaftPayload>, Status> {
    serde_json::to_vec(value)
        .map(|json| GrpcResponse::new(pb::RaftPayload { json }))
        .map_err(|e| Status::internal(format!("reply: {e}")))
}

#[tonic::async_trait]
impl ClusterRpc for ClusterService {
    async fn append_entries(
        &self,
        request: Request<pb::RaftPayload>,
    ) -> Result<GrpcResponse<pb::RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.into_inner().json)?;
        encode(&self.cluster.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: Request<pb::RaftPayload>,
    ) -> Result<GrpcResponse<pb::RaftPayload>, Status> {
        let rpc: VoteRequest<u64> = decode(&request.into_inner().json)?;
        encode(&self.cluster.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::RaftPayload>,
    ) -> Result<GrpcResponse<pb::RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&request.into_inner().json)?;
        encode(&self.cluster.raft.install_snapshot(rpc).await)
    }

    async fn write(
        &self,
        request: Request<pb::RaftPayload>,
    ) -> Result<GrpcResponse<pb::WriteReply>, Status> {
        let cmd: Command = decode(&request.into_inner().json)?;
        // A removed node's renewals are refused, so it asks to be admitted again. (Only the
        // leader judges: a follower forwarding the write may lag behind.)
        if let Command::Heartbeat { node, .. } = &cmd
            && self.cluster.is_leader()
            && !self.cluster.is_member(*node)
        {
            return Err(Status::failed_precondition(format!(
                "node {node} is not a member of the cluster"
            )));
        }
        let (response, index): (Response, u64) =
            self.cluster.write_on_leader(cmd).await.map_err(status)?;
        let json = serde_json::to_vec(&response).map_err(|e| Status::internal(e.to_string()))?;
        Ok(GrpcResponse::new(pb::WriteReply { json, index }))
    }

    async fn allocate_node_id(
        &self,
        _request: Request<pb::AllocateNodeIdRequest>,
    ) -> Result<GrpcResponse<pb::AllocateNodeIdReply>, Status> {
        match self
            .cluster
            .write_on_leader(Command::AllocateNodeId)
            .await
            .map_err(status)?
        {
            (Response::NodeId { id }, _) => {
                Ok(GrpcResponse::new(pb::AllocateNodeIdReply { node_id: id }))
            }
            (other, _) => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<GrpcResponse<pb::JoinReply>, Status> {
        if !self.cluster.is_leader() {
            let mut leader = self.cluster.leader_client().map_err(status)?;
            return leader.join(request.into_inner()).await;
        }
        let req = request.into_inner();
        let member = req
            .member
            .map(Member::from)
            .ok_or_else(|| Status::invalid_argument("member is required"))?;
        if req.node_id == 0 {
            return Err(Status::invalid_argument("node_id is required"));
        }
        let voter = self
            .cluster
            .admit(req.node_id, member)
            .await
            .map_err(status)?;
        Ok(GrpcResponse::new(pb::JoinReply {
            voter,
            leader_id: self.cluster.id,
        }))
    }

    async fn leave(
        &self,
        request: Request<pb::LeaveRequest>,
    ) -> Result<GrpcResponse<pb::LeaveReply>, Status> {
        if !self.cluster.is_leader() {
            let mut leader = self.cluster.leader_client().map_err(status)?;
            return leader.leave(request.into_inner()).await;
        }
        // A node leaving by itself may come back later; see RemoveNode for evictions.
        self.cluster
            .remove(request.into_inner().node_id, false)
            .await
            .map_err(status)?;
        Ok(GrpcResponse::new(pb::LeaveReply {}))
    }
}
