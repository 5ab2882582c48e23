//! Subscriber sessions, whatever the protocol: the engine (login decision and the operations on
//! subscribers), the actor per session, the registry that finds them, and the link through which
//! a session reaches its router.

pub mod engine;
pub mod link;
pub mod registry;
pub mod session;
