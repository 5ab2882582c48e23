//! Subscriber sessions: the actor per session, the registry that finds them, and the Diameter
//! messages of their flows.

pub mod messages;
pub mod registry;
pub mod session;
