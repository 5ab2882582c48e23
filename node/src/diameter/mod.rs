//! Diameter on the node: framing, the connection driver, and the listener.

pub mod codec;
pub mod connection;
pub mod server;

pub use server::{DiameterServer, PeerStatus};
