//! Diameter on the node: the listener, a [`driver::RouterDriver`] actor per router connection,
//! the routers table, the link through which Diameter sessions reach their router, the
//! messages of the subscriber flows, and the login of a new session ([`Diameter`]).

pub mod driver;
pub mod link;
pub mod messages;
pub mod routers;
pub mod server;
pub mod shared;

pub use routers::PeerStatus;
pub use server::DiameterServer;
pub use shared::Diameter;
