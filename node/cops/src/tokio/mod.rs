//! tokio glue for the sans-IO codec (feature `tokio`, off by default): [`codec`] frames a
//! byte stream for tokio-util with a connection's [`FrameDecoder`](crate::FrameDecoder).

pub mod codec;

pub use codec::CopsCodec;
