//! tokio-util framing around the sans-IO frame decoder.

use bytes::{Bytes, BytesMut};
use sae_diameter::{Frame, FrameDecoder, FramingError, Limits};
use tokio_util::codec::{Decoder, Encoder};

/// Why the stream stopped yielding frames.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes Diameter frames; encodes already-encoded messages.
#[derive(Debug)]
pub struct DiameterCodec {
    frames: FrameDecoder,
}

impl DiameterCodec {
    /// A codec enforcing `limits` on received messages.
    pub fn new(limits: Limits) -> Self {
        DiameterCodec {
            frames: FrameDecoder::new(limits),
        }
    }
}

impl Decoder for DiameterCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.frames.decode(src)?)
    }
}

impl Encoder<Bytes> for DiameterCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
