//! Message integrity (RFC 2748 sections 2.2.15, 4.1, 4.2): HMAC-MD5 over the whole message
//! up to and including the Integrity object's Key ID and Sequence Number.
//!
//! One [`Signer`] per sending direction and one [`Verifier`] per receiving direction. The
//! verifier takes the first sequence number it sees as the start unless told otherwise
//! ([`Verifier::expect_sequence`]) and then wants each next message to carry the previous
//! number plus one (wrapping at 2^32).

use std::collections::HashMap;
use std::fmt;

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use md5::Md5;

use crate::error::{AuthFailure, DecodeError, Error};
use crate::message::Message;
use crate::object::{Integrity, OBJECT_HEADER_LEN, pad4};

/// Length of an HMAC-MD5 digest.
pub const HMAC_MD5_LEN: usize = 16;

type HmacMd5 = Hmac<Md5>;

/// Shared keys by Key ID.
#[derive(Clone, Default)]
pub struct KeyTable {
    keys: HashMap<u32, Bytes>,
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyTable").field("key_ids", &ids).finish()
    }
}

impl KeyTable {
    /// An empty table.
    pub fn new() -> Self {
        KeyTable::default()
    }
    /// Adds or replaces a key.
    pub fn insert(&mut self, key_id: u32, key: impl Into<Bytes>) {
        self.keys.insert(key_id, key.into());
    }
    /// With a key (builder style).
    pub fn with(mut self, key_id: u32, key: impl Into<Bytes>) -> Self {
        self.insert(key_id, key);
        self
    }
    /// The key with this id.
    pub fn get(&self, key_id: u32) -> Option<&[u8]> {
        self.keys.get(&key_id).map(|k| &k[..])
    }
}

fn mac(key: &[u8], signed: &[u8]) -> HmacMd5 {
    // HMAC accepts keys of any length.
    let mut m = HmacMd5::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(signed);
    m
}

/// HMAC-MD5 of `signed` under `key`.
pub fn digest(key: &[u8], signed: &[u8]) -> [u8; HMAC_MD5_LEN] {
    mac(key, signed).finalize().into_bytes().into()
}

/// Signs outgoing messages with one key and consecutive sequence numbers.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: KeyTable,
    key_id: u32,
    next_sequence: u32,
}

impl Signer {
    /// A signer using `key_id` from `keys`, starting at `initial_sequence`.
    pub fn new(keys: KeyTable, key_id: u32, initial_sequence: u32) -> Result<Self, Error> {
        if keys.get(key_id).is_none() {
            return Err(Error::UnknownKey(key_id));
        }
        Ok(Signer {
            keys,
            key_id,
            next_sequence: initial_sequence,
        })
    }

    /// The sequence number the next message gets.
    pub fn next_sequence(&self) -> u32 {
        self.next_sequence
    }

    /// Sets the next sequence number (the one the peer asked for).
    pub fn set_next_sequence(&mut self, sequence: u32) {
        self.next_sequence = sequence;
    }

    /// Switches to another key of the table.
    pub fn set_key_id(&mut self, key_id: u32) -> Result<(), Error> {
        if self.keys.get(key_id).is_none() {
            return Err(Error::UnknownKey(key_id));
        }
        self.key_id = key_id;
        Ok(())
    }

    /// Sets `msg.integrity` to a fresh Integrity object and returns the signed encoding.
    pub fn sign(&mut self, msg: &mut Message) -> Result<Bytes, Error> {
        let mut buf = BytesMut::new();
        self.sign_to(msg, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Like [`Signer::sign`], appending to `buf`.
    pub fn sign_to(&mut self, msg: &mut Message, buf: &mut BytesMut) -> Result<(), Error> {
        let key = self
            .keys
            .get(self.key_id)
            .ok_or(Error::UnknownKey(self.key_id))?;
        msg.integrity = Some(Integrity {
            key_id: self.key_id,
            sequence: self.next_sequence,
            digest: Bytes::from_static(&[0; HMAC_MD5_LEN]),
        });
        let start = buf.len();
        msg.encode_to(buf)?;
        let end = buf.len() - HMAC_MD5_LEN;
        let d = digest(key, &buf[start..end]);
        buf[end..].copy_from_slice(&d);
        if let Some(i) = msg.integrity.as_mut() {
            i.digest = Bytes::copy_from_slice(&d);
        }
        self.next_sequence = self.next_sequence.wrapping_add(1);
        Ok(())
    }
}

/// Checks incoming messages.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeyTable,
    required: bool,
    expected: Option<u32>,
}

impl Verifier {
    /// A verifier; with `required`, a message without Integrity is refused (Error 15).
    pub fn new(keys: KeyTable, required: bool) -> Self {
        Verifier {
            keys,
            required,
            expected: None,
        }
    }

    /// The sequence number expected next, once known.
    pub fn expected_sequence(&self) -> Option<u32> {
        self.expected
    }

    /// Sets the sequence number expected next.
    pub fn expect_sequence(&mut self, sequence: u32) {
        self.expected = Some(sequence);
    }

    /// Checks `msg`, decoded from exactly the octets in `frame`. Only a message that passes
    /// moves the expected sequence number on.
    pub fn verify(&mut self, frame: &[u8], msg: &Message) -> Result<(), DecodeError> {
        let Some(i) = &msg.integrity else {
            return if self.required {
                Err(DecodeError::AuthenticationRequired)
            } else {
                Ok(())
            };
        };
        let fail = |f| Err(DecodeError::AuthenticationFailure(f));
        let Some(key) = self.keys.get(i.key_id) else {
            return fail(AuthFailure::UnknownKey(i.key_id));
        };
        let object_len = pad4(OBJECT_HEADER_LEN + 8 + i.digest.len());
        let Some(signed_end) = (frame.len().checked_sub(object_len)).map(|o| o + 12) else {
            return fail(AuthFailure::BadDigest);
        };
        if i.digest.len() != HMAC_MD5_LEN
            || mac(key, &frame[..signed_end])
                .verify_slice(&i.digest)
                .is_err()
        {
            return fail(AuthFailure::BadDigest);
        }
        if let Some(expected) = self.expected
            && expected != i.sequence
        {
            return fail(AuthFailure::BadSequence {
                expected,
                received: i.sequence,
            });
        }
        self.expected = Some(i.sequence.wrapping_add(1));
        Ok(())
    }

    /// Decodes `frame` and verifies it.
    pub fn decode(&mut self, frame: Bytes) -> Result<Message, DecodeError> {
        let msg = Message::decode(frame.clone())?;
        self.verify(&frame, &msg)?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Body;

    fn keys() -> KeyTable {
        KeyTable::new()
            .with(7, &b"secret"[..])
            .with(8, &b"other"[..])
    }

    #[test]
    fn hmac_md5_rfc2202_vector() {
        // RFC 2202 test case 2.
        let d = digest(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            d,
            [
                0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03, 0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d,
                0xb7, 0x38
            ]
        );
    }

    #[test]
    fn sign_then_verify_in_sequence() {
        let mut s = Signer::new(keys(), 7, 100).unwrap();
        let mut v = Verifier::new(keys(), true);
        for seq in 100..103 {
            let mut m = Message::keep_alive();
            let b = s.sign(&mut m).unwrap();
            assert_eq!(m.integrity.as_ref().unwrap().sequence, seq);
            assert_eq!(b.len(), 8 + 28);
            let got = v.decode(b).unwrap();
            assert_eq!(got, m);
        }
        assert_eq!(v.expected_sequence(), Some(103));
    }

    #[test]
    fn digest_covers_key_id_and_sequence() {
        let mut m = Message::keep_alive();
        let b = Signer::new(keys(), 7, 1).unwrap().sign(&mut m).unwrap();
        let expected = digest(b"secret", &b[..b.len() - 16]);
        assert_eq!(&b[b.len() - 16..], &expected);
        assert_eq!(&b[8..20], &[0, 28, 16, 1, 0, 0, 0, 7, 0, 0, 0, 1]);
    }

    #[test]
    fn failures() {
        let mut s = Signer::new(keys(), 7, 5).unwrap();
        let mut m = Message::keep_alive();
        let b = s.sign(&mut m).unwrap();
        // Tampered.
        let mut t = BytesMut::from(&b[..]);
        t[3] ^= 1;
        let mut v = Verifier::new(keys(), true);
        assert_eq!(
            v.decode(t.freeze()),
            Err(DecodeError::AuthenticationFailure(AuthFailure::BadDigest))
        );
        assert_eq!(v.expected_sequence(), None);
        // Unknown key.
        let mut v2 = Verifier::new(KeyTable::new().with(1, &b"x"[..]), true);
        assert_eq!(
            v2.decode(b.clone()),
            Err(DecodeError::AuthenticationFailure(AuthFailure::UnknownKey(
                7
            )))
        );
        // Wrong key under the same id.
        let mut v3 = Verifier::new(KeyTable::new().with(7, &b"wrong"[..]), true);
        assert!(v3.decode(b.clone()).is_err());
        // Replay.
        v.decode(b.clone()).unwrap();
        assert_eq!(
            v.decode(b),
            Err(DecodeError::AuthenticationFailure(
                AuthFailure::BadSequence {
                    expected: 6,
                    received: 5
                }
            ))
        );
        // Missing.
        let plain = Message::keep_alive().encode().unwrap();
        assert_eq!(
            v.decode(plain.clone()),
            Err(DecodeError::AuthenticationRequired)
        );
        assert!(Verifier::new(keys(), false).decode(plain).is_ok());
        assert_eq!(Signer::new(keys(), 9, 0).unwrap_err(), Error::UnknownKey(9));
    }

    #[test]
    fn sequence_wraps_and_can_be_set() {
        let mut s = Signer::new(keys(), 8, u32::MAX).unwrap();
        let mut v = Verifier::new(keys(), true);
        v.expect_sequence(u32::MAX);
        for _ in 0..2 {
            let mut m = Message::new(1, Body::SyncComplete(None));
            v.decode(s.sign(&mut m).unwrap()).unwrap();
        }
        assert_eq!(v.expected_sequence(), Some(1));
        s.set_next_sequence(9);
        let mut m = Message::keep_alive();
        assert!(v.decode(s.sign(&mut m).unwrap()).is_err());
    }
}
