//! tokio-util framing around the sans-IO COPS frame decoder.

use bytes::BytesMut;
use sae_cops::{Frame, FrameDecoder, FramingError};
use tokio_util::codec::Decoder;

/// Why the stream stopped yielding frames.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes COPS frames with the connection's decoder (limits, integrity).
#[derive(Debug)]
pub struct CopsCodec {
    frames: FrameDecoder,
}

impl CopsCodec {
    pub fn new(frames: FrameDecoder) -> Self {
        CopsCodec { frames }
    }
}

impl Decoder for CopsCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.frames.decode(src)?)
    }
}
