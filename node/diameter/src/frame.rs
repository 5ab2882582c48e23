//! Frame detection on a byte stream: is a whole message buffered, how many octets are still
//! needed, and what to do with a frame that cannot be a valid message.

use bytes::{Buf, BytesMut};

use crate::error::{DecodeError, Error};
use crate::message::{HEADER_LEN, Header, MAX_LENGTH_FIELD, Message, VERSION};

/// Limits applied to received messages. [`Limits::new`] checks them against the bounds below;
/// the default is 64 KiB and 8 levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in octets. Larger ones are skipped and answered with 5015.
    pub max_message_len: usize,
    /// Deepest nesting of Grouped AVPs accepted (a top-level Grouped AVP is depth 1).
    pub max_grouped_depth: usize,
}

impl Limits {
    /// Smallest `max_message_len`: the header alone.
    pub const MIN_MESSAGE_LEN: usize = HEADER_LEN;
    /// Largest `max_message_len`: what the 24-bit Message Length field can say.
    pub const MAX_MESSAGE_LEN: usize = MAX_LENGTH_FIELD;
    /// Largest `max_grouped_depth`: validation descends one call per level, so the bound keeps
    /// a peer's nesting from reaching the stack's limit.
    pub const MAX_GROUPED_DEPTH: usize = 64;

    /// Limits within `MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN` octets and `1..=MAX_GROUPED_DEPTH`
    /// levels.
    pub fn new(max_message_len: usize, max_grouped_depth: usize) -> Result<Limits, Error> {
        if !(Self::MIN_MESSAGE_LEN..=Self::MAX_MESSAGE_LEN).contains(&max_message_len) {
            return Err(Error::InvalidLimit(format!(
                "max_message_len {max_message_len} is outside {}..={}",
                Self::MIN_MESSAGE_LEN,
                Self::MAX_MESSAGE_LEN
            )));
        }
        if !(1..=Self::MAX_GROUPED_DEPTH).contains(&max_grouped_depth) {
            return Err(Error::InvalidLimit(format!(
                "max_grouped_depth {max_grouped_depth} is outside 1..={}",
                Self::MAX_GROUPED_DEPTH
            )));
        }
        Ok(Limits {
            max_message_len,
            max_grouped_depth,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: 64 * 1024,
            max_grouped_depth: 8,
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

/// Looks at the start of `buf` and says whether a frame is complete. A length field below the
/// header size can never frame a message and is an error.
pub fn frame_status(buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    if buf.len() < 4 {
        return Ok(FrameStatus::Incomplete {
            needed: 4 - buf.len(),
        });
    }
    let length = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
    if length < HEADER_LEN {
        return Err(DecodeError::InvalidMessageLength { length });
    }
    Ok(if buf.len() >= length {
        FrameStatus::Complete(length)
    } else {
        FrameStatus::Incomplete {
            needed: length - buf.len(),
        }
    })
}

/// One frame taken off the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A well-formed message.
    Message(Message),
    /// A frame that was consumed but is not a valid message; its header allows an answer.
    Malformed { header: Header, error: DecodeError },
}

/// The stream cannot be framed any further; the connection has to close. When `header` is
/// known, an answer should be sent first (5011 for a bad version, 5015 for a bad length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecoverable framing error: {error}")]
pub struct FramingError {
    pub header: Option<Header>,
    pub error: DecodeError,
}

/// Incremental frame decoder over a `BytesMut` receive buffer.
#[derive(Debug, Clone, Default)]
pub struct FrameDecoder {
    limits: Limits,
    /// Octets of an oversized message still to discard.
    skipping: usize,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameDecoder {
            limits,
            skipping: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
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
        if buf.len() < HEADER_LEN {
            // Reject an impossible length as early as it is visible.
            return match frame_status(buf) {
                Err(error) => Err(FramingError {
                    header: None,
                    error,
                }),
                Ok(_) => Ok(None),
            };
        }
        let header = Header::parse(buf).expect("20 octets are buffered");
        if buf[0] != VERSION {
            return Err(FramingError {
                header: Some(header),
                error: DecodeError::UnsupportedVersion(buf[0]),
            });
        }
        let length = match frame_status(buf) {
            Err(error) => {
                return Err(FramingError {
                    header: Some(header),
                    error,
                });
            }
            Ok(FrameStatus::Complete(n)) => n,
            Ok(FrameStatus::Incomplete { needed }) => {
                let length = buf.len() + needed;
                if length > self.limits.max_message_len {
                    // Do not buffer it: drop what is here and the rest as it arrives.
                    self.skipping = length - buf.len();
                    buf.clear();
                    return Ok(Some(Frame::Malformed {
                        header,
                        error: DecodeError::MessageTooLarge {
                            length,
                            limit: self.limits.max_message_len,
                        },
                    }));
                }
                buf.reserve(needed);
                return Ok(None);
            }
        };
        let frame = buf.split_to(length).freeze();
        if length > self.limits.max_message_len {
            let limit = self.limits.max_message_len;
            return Ok(Some(Frame::Malformed {
                header,
                error: DecodeError::MessageTooLarge { length, limit },
            }));
        }
        Ok(Some(match Message::decode(frame) {
            Ok(message) => Frame::Message(message),
            Err(error) => Frame::Malformed { header, error },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avp::{Avp, Value};

    fn encoded() -> BytesMut {
        let m = Message::request(280, 0, false).with(Avp::mandatory(
            264,
            &Value::DiameterIdentity("h.example".into()),
        ));
        BytesMut::from(&m.encode().unwrap()[..])
    }

    #[test]
    fn frames_arrive_one_octet_at_a_time() {
        let whole = encoded();
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
        let whole = encoded();
        assert_eq!(
            frame_status(&whole[..2]),
            Ok(FrameStatus::Incomplete { needed: 2 })
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
            max_message_len: 24,
            ..Limits::default()
        });
        let big = encoded();
        let mut buf = BytesMut::from(&big[..30]);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(Frame::Malformed {
                error: DecodeError::MessageTooLarge { .. },
                ..
            }))
        ));
        buf.extend_from_slice(&big[30..]);
        let small = Message::request(280, 0, false).encode().unwrap();
        buf.extend_from_slice(&small);
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn limits_are_checked_by_their_constructor() {
        let d = Limits::default();
        assert_eq!((d.max_message_len, d.max_grouped_depth), (64 * 1024, 8));
        assert_eq!(Limits::new(64 * 1024, 8).unwrap(), d);
        assert_eq!(Limits::new(20, 1).unwrap().max_message_len, 20);
        assert_eq!(Limits::new(0xff_ffff, 64).unwrap().max_grouped_depth, 64);
        for (len, depth, what) in [
            (19, 8, "max_message_len 19"),
            (0x100_0000, 8, "max_message_len 16777216"),
            (1024, 0, "max_grouped_depth 0"),
            (1024, 65, "max_grouped_depth 65"),
        ] {
            let err = Limits::new(len, depth).unwrap_err();
            assert!(matches!(err, Error::InvalidLimit(_)), "{err:?}");
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn length_below_header_is_fatal() {
        let mut buf = BytesMut::from(&[1u8, 0, 0, 8][..]);
        assert!(FrameDecoder::default().decode(&mut buf).is_err());
    }

    #[test]
    fn bad_version_is_fatal_with_header() {
        let mut buf = encoded();
        buf[0] = 2;
        let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
        assert!(err.header.is_some());
        assert_eq!(err.error, DecodeError::UnsupportedVersion(2));
    }
}
