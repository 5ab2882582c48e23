//! tokio-util framing around the sans-IO frame decoder.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::CodecError;
use crate::frame::{Frame, FrameDecoder, Limits};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avp::{Avp, Value};
    use crate::message::Message;

    fn encoded() -> Bytes {
        Message::request(280, 0, false)
            .with(Avp::mandatory(
                264,
                &Value::DiameterIdentity("h.example".into()),
            ))
            .encode()
            .unwrap()
    }

    #[test]
    fn decodes_a_frame_once_it_is_whole_and_encodes_bytes_as_they_are() {
        let whole = encoded();
        let mut codec = DiameterCodec::new(Limits::default());
        let mut wire = BytesMut::new();
        codec.encode(whole.clone(), &mut wire).unwrap();
        assert_eq!(wire, whole);
        let mut buf = BytesMut::from(&whole[..10]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&whole[10..]);
        assert!(
            matches!(codec.decode(&mut buf), Ok(Some(Frame::Message(m))) if m.header.command_code == 280)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn an_unframeable_stream_is_a_framing_error() {
        let mut bad = BytesMut::from(&encoded()[..]);
        bad[0] = 2;
        let mut codec = DiameterCodec::new(Limits::default());
        assert!(matches!(
            codec.decode(&mut bad),
            Err(CodecError::Framing(e)) if e.header.is_some()
        ));
    }
}
