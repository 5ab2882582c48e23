//! Diameter on the node: framing, the connection driver, and the listener.

pub mod codec;
pub mod connection;
pub mod driver;
pub mod server;

pub use crate::sae::PeerStatus;
pub use server::DiameterServer;
