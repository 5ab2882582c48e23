//! Integration tests of `sae-node`: a node started in-process on port 0 and raw Diameter
//! clients over real TCP.

mod client;
mod cops;
mod diameter;
mod dictionary;
mod grpc;
mod sessions;
