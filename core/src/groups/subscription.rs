//! The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`,
//! versions 0-3, never flexible): an i16 version, then an i32 count of i16-length
//! topic names. Only the topics are read; the rest is the client's business.

use std::collections::BTreeSet;

/// None if the bytes are not a subscription (the coordinator then treats the group as
/// one whose topics it cannot know).
pub fn topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut rest = metadata;
    let version = take_i16(&mut rest)?;
    if version < 0 {
        return None;
    }
    let count = take_i32(&mut rest)?;
    // Each name takes at least two bytes: a lying count cannot make us allocate.
    if count < 0 || count as usize > rest.len() / 2 {
        return None;
    }
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let len = usize::try_from(take_i16(&mut rest)?).ok()?;
        let (name, tail) = (rest.get(..len)?, rest.get(len..)?);
        topics.insert(String::from_utf8(name.to_vec()).ok()?);
        rest = tail;
    }
    Some(topics)
}

fn take_i16(rest: &mut &[u8]) -> Option<i16> {
    let (head, tail) = (rest.get(..2)?, rest.get(2..)?);
    *rest = tail;
    Some(i16::from_be_bytes([head[0], head[1]]))
}

fn take_i32(rest: &mut &[u8]) -> Option<i32> {
    let (head, tail) = (rest.get(..4)?, rest.get(4..)?);
    *rest = tail;
    Some(i32::from_be_bytes([head[0], head[1], head[2], head[3]]))
}

/// Encodes a version-0 subscription, for tests.
#[cfg(test)]
pub fn encode(topics: &[&str]) -> bytes::Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
    out.into()
}
