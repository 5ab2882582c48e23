//! Building raw messages by hand.

use bytes::{BufMut, Bytes, BytesMut};

/// An object: length, C-Num, C-Type, data, zero padding.
pub fn obj(c_num: u8, c_type: u8, data: &[u8]) -> Vec<u8> {
    let len = 4 + data.len();
    let mut v = vec![(len >> 8) as u8, len as u8, c_num, c_type];
    v.extend_from_slice(data);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// A message: version 1, `flags`, op-code, client type, length, then the objects.
pub fn msg_flags(flags: u8, op: u8, client_type: u16, objects: &[Vec<u8>]) -> Bytes {
    let len = 8 + objects.iter().map(Vec::len).sum::<usize>();
    let mut b = BytesMut::new();
    b.put_u8(0x10 | flags);
    b.put_u8(op);
    b.put_u16(client_type);
    b.put_u32(len as u32);
    for o in objects {
        b.put_slice(o);
    }
    b.freeze()
}

/// An unsolicited message.
pub fn msg(op: u8, client_type: u16, objects: &[Vec<u8>]) -> Bytes {
    msg_flags(0, op, client_type, objects)
}

pub fn handle(h: u32) -> Vec<u8> {
    obj(1, 1, &h.to_be_bytes())
}

pub fn context(r_type: u16, m_type: u16) -> Vec<u8> {
    let mut d = r_type.to_be_bytes().to_vec();
    d.extend_from_slice(&m_type.to_be_bytes());
    obj(2, 1, &d)
}

pub fn decision_flags(command: u16, flags: u16) -> Vec<u8> {
    let mut d = command.to_be_bytes().to_vec();
    d.extend_from_slice(&flags.to_be_bytes());
    obj(6, 1, &d)
}

pub fn pep_id(s: &str) -> Vec<u8> {
    let mut d = s.as_bytes().to_vec();
    d.push(0);
    obj(11, 1, &d)
}

pub fn two_u16(c_num: u8, a: u16, b: u16) -> Vec<u8> {
    let mut d = a.to_be_bytes().to_vec();
    d.extend_from_slice(&b.to_be_bytes());
    obj(c_num, 1, &d)
}
