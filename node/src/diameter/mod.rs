//! Diameter on the node: the connection driver and the listener.

pub mod driver;
pub mod server;

pub use crate::sae::PeerStatus;
pub use server::DiameterServer;
