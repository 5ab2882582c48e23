//! Frame detection on a byte stream: is a whole message buffered, how many octets are still
//! needed, and what to do with a frame that cannot be a valid message.

use bytes::{Buf, BytesMut};

use crate::error::DecodeError;
use crate::integrity::Verifier;
use crate::message::{HEADER_LEN, Header, Message, peek_handle};
use crate::object::Handle;

/// Limits applied to received messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in octets. Larger ones are skipped and reported.
    pub max_message_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: 64 * 1024,
        }
    }
}

/// What the buffered octets hold so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// A frame of this many octets is complete.
    Complete(usize),
    /// At least this many more octets are needed.
    Incomplete { needed: usize },
}

/// Looks at the start of `buf` and says whether a frame is complete. A header that cannot
/// frame a message (bad version, length below 8 or not a multiple of 4) is an error.
pub fn frame_status(buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    let Ok(header) = Header::parse(buf) else {
        return Ok(FrameStatus::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    };
    check_framing(&header)?;
    let length = header.length as usize;
    Ok(if buf.len() >= length {
        FrameStatus::Complete(length)
    } else {
        FrameStatus::Incomplete {
            needed: length - buf.len(),
        }
    })
}

fn check_framing(header: &Header) -> Result<(), DecodeError> {
    if header.version != crate::message::VERSION {
        return Err(DecodeError::UnsupportedVersion(header.version));
    }
    let length = header.length as usize;
    if length < HEADER_LEN || !length.is_multiple_of(4) {
        return Err(DecodeError::InvalidMessageLength {
            length,
            available: length,
        });
    }
    Ok(())
}

/// One frame taken off the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A well-formed (and, with a verifier, authenticated) message.
    Message(Message),
    /// A frame that was consumed but is not acceptable. `handle` is the Client Handle when the
    /// first object is one, so a bad REQ can be answered with a DEC carrying the Error.
    Malformed {
        header: Header,
        handle: Option<Handle>,
        error: DecodeError,
    },
}

/// The stream cannot be framed any further: send a CC with `error.error_object()` and close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecoverable framing error: {error}")]
pub struct FramingError {
    pub header: Header,
    pub error: DecodeError,
}

/// Incremental frame decoder over a `BytesMut` receive buffer.
#[derive(Debug, Clone, Default)]
pub struct FrameDecoder {
    limits: Limits,
    verifier: Option<Verifier>,
    /// Octets of an oversized message still to discard.
    skipping: usize,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            limits,
            verifier: None,
            skipping: 0,
        }
    }

    /// A decoder that also checks Integrity on every message.
    pub fn with_verifier(limits: Limits, verifier: Verifier) -> Self {
        FrameDecoder {
            verifier: Some(verifier),
            ..FrameDecoder::new(limits)
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The verifier, e.g. to set the expected sequence number after OPN/CAT.
    pub fn verifier_mut(&mut self) -> Option<&mut Verifier> {
        self.verifier.as_mut()
    }

    /// Installs or removes the verifier.
    pub fn set_verifier(&mut self, verifier: Option<Verifier>) {
        self.verifier = verifier;
    }

    /// Takes the next frame off `buf`, if a whole one is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        if self.skipping > 0 {
            let n = self.skipping.min(buf.len());
            buf.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        let Ok(header) = Header::parse(buf) else {
            return Ok(None);
        };
        if let Err(error) = check_framing(&header) {
            return Err(FramingError { header, error });
        }
        let length = header.length as usize;
        if length > self.limits.max_message_len {
            // Do not buffer it: drop what is here and the rest as it arrives.
            let here = length.min(buf.len());
            let handle = peek_handle(&buf.split_to(here).freeze());
            self.skipping = length - here;
            return Ok(Some(Frame::Malformed {
                header,
                handle,
                error: DecodeError::MessageTooLarge {
                    length,
                    limit: self.limits.max_message_len,
                },
            }));
        }
        if buf.len() < length {
            buf.reserve(length - buf.len());
            return Ok(None);
        }
        let frame = buf.split_to(length).freeze();
        let result = match &mut self.verifier {
            Some(v) => v.decode(frame.clone()),
            None => Message::decode(frame.clone()),
        };
        Ok(Some(match result {
            Ok(message) => Frame::Message(message),
            Err(error) => Frame::Malformed {
                header,
                handle: peek_handle(&frame),
                error,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, DeleteRequest};
    use crate::object::{Reason, ReasonCode};

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
    fn frames_arrive_one_octet_at_a_time() {
        let whole = drq();
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = dec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1, "octet {i}");
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn status_says_how_much_is_missing() {
        let whole = drq();
        assert_eq!(
            frame_status(&whole[..2]),
            Ok(FrameStatus::Incomplete { needed: 6 })
        );
        assert_eq!(
            frame_status(&whole[..10]),
            Ok(FrameStatus::Incomplete {
                needed: whole.len() - 10
            })
        );
        assert_eq!(frame_status(&whole), Ok(FrameStatus::Complete(whole.len())));
    }

    #[test]
    fn oversized_message_is_skipped_and_the_next_one_decoded() {
        let mut dec = FrameDecoder::new(Limits {
            max_message_len: 16,
        });
        let big = drq();
        let mut buf = BytesMut::from(&big[..20]);
        match dec.decode(&mut buf) {
            Ok(Some(Frame::Malformed { error, handle, .. })) => {
                assert!(matches!(error, DecodeError::MessageTooLarge { .. }));
                assert_eq!(handle, Some(Handle::from_u32(1)));
            }
            other => panic!("{other:?}"),
        }
        buf.extend_from_slice(&big[20..]);
        buf.extend_from_slice(&Message::keep_alive().encode().unwrap());
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Message(_)))));
        assert!(buf.is_empty());
    }

    #[test]
    fn unframeable_headers_are_fatal() {
        for bad in [
            [0x10, 9, 0, 0, 0, 0, 0, 4],
            [0x10, 9, 0, 0, 0, 0, 0, 10],
            [0x20, 9, 0, 0, 0, 0, 0, 8],
        ] {
            let mut buf = BytesMut::from(&bad[..]);
            assert!(FrameDecoder::default().decode(&mut buf).is_err(), "{bad:?}");
            assert!(frame_status(&bad).is_err());
        }
    }

    #[test]
    fn malformed_frame_keeps_the_stream() {
        let mut buf = BytesMut::from(&[0x10, 9, 0, 0, 0, 0, 0, 12, 0, 4, 99, 1][..]);
        buf.extend_from_slice(&Message::keep_alive().encode().unwrap());
        let mut dec = FrameDecoder::default();
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(Frame::Malformed {
                error: DecodeError::UnknownObject {
                    c_num: 99,
                    c_type: 1
                },
                ..
            }))
        ));
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Message(_)))));
    }
}
