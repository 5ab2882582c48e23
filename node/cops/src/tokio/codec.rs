//! tokio-util framing around the sans-IO COPS frame decoder.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::error::CodecError;
use crate::frame::{Frame, FrameDecoder};

/// Decodes COPS frames with the connection's decoder (limits, integrity).
#[derive(Debug)]
pub struct CopsCodec {
    frames: FrameDecoder,
}

impl CopsCodec {
    /// A codec taking frames off the stream with `frames`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Limits;
    use crate::message::{Body, DeleteRequest, Message};
    use crate::object::{Handle, Reason, ReasonCode};

    fn drq() -> BytesMut {
        let m = Message::new(
            1,
            Body::DeleteRequest(DeleteRequest {
                handle: Handle::from_u32(1),
                reason: Reason::new(ReasonCode::Tear),
            }),
        );
        BytesMut::from(&m.encode().unwrap()[..])
    }

    #[test]
    fn decodes_a_frame_once_it_is_whole() {
        let whole = drq();
        let mut codec = CopsCodec::new(FrameDecoder::new(Limits::default()));
        let mut buf = BytesMut::from(&whole[..6]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&whole[6..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(Frame::Message(_)))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn an_unframeable_stream_is_a_framing_error() {
        let mut bad = drq();
        bad[0] = 0x20;
        let mut codec = CopsCodec::new(FrameDecoder::default());
        assert!(matches!(
            codec.decode(&mut bad),
            Err(CodecError::Framing(e)) if e.error == crate::DecodeError::UnsupportedVersion(2)
        ));
    }
}
