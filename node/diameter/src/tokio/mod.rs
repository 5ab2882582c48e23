//! tokio glue for the sans-IO stack (feature `tokio`, off by default): [`codec`] frames a
//! byte stream for tokio-util, [`connection`] drives one [`Peer`](crate::Peer) over a TCP
//! stream with its timers. The node's driver uses the codec; [`connection::drive`] serves
//! plain tokio users (the router simulator, tests).

pub mod codec;
pub mod connection;

pub use codec::DiameterCodec;
