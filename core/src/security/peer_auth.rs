//! The peer transport's handshake (R-SEC-9): before a node accepts Raft messages or
//! forwarded proposals on a connection, the connecting side proves it holds the
//! cluster's shared secret and names a voter, and the accepting side proves it holds
//! the secret too. Challenge and response with HMAC-SHA256 over fresh nonces from
//! both sides, so a recorded handshake cannot be replayed. Pure: the shell moves the
//! bytes and supplies the nonces.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// The connecting side's answer: its node id, its nonce, its proof.
pub const HELLO_LEN: usize = 8 + NONCE_LEN + MAC_LEN;
pub const PROOF_LEN: usize = MAC_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAuthError {
    #[error("peer handshake message has the wrong length")]
    Malformed,
    #[error("node {0} is not a voter of this cluster")]
    NotAVoter(u64),
    #[error("peer does not hold the cluster secret")]
    BadProof,
}

fn mac(secret: &[u8], role: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return [0; MAC_LEN],
    };
    mac.update(role);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The connecting side: answers the accepting side's challenge.
pub fn hello(secret: &[u8], me: u64, my_nonce: &[u8; NONCE_LEN], challenge: &[u8]) -> Vec<u8> {
    let id = me.to_be_bytes();
    let proof = mac(secret, b"chronik-peer-client", &[challenge, my_nonce, &id]);
    [&id[..], my_nonce, &proof].concat()
}

/// The accepting side: checks a hello against its challenge; on success, the
/// authenticated node id and the proof to send back.
pub fn check_hello(
    secret: &[u8],
    challenge: &[u8; NONCE_LEN],
    hello: &[u8],
    is_voter: impl Fn(u64) -> bool,
) -> Result<(u64, Vec<u8>), PeerAuthError> {
    if hello.len() != HELLO_LEN {
        return Err(PeerAuthError::Malformed);
    }
    let (id, rest) = hello.split_at(8);
    let (their_nonce, proof) = rest.split_at(NONCE_LEN);
    let expected = mac(
        secret,
        b"chronik-peer-client",
        &[challenge, their_nonce, id],
    );
    if !bool::from(expected.ct_eq(proof)) {
        return Err(PeerAuthError::BadProof);
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(id);
    let node = u64::from_be_bytes(id_bytes);
    if !is_voter(node) {
        return Err(PeerAuthError::NotAVoter(node));
    }
    let answer = mac(
        secret,
        b"chronik-peer-server",
        &[their_nonce, challenge, id],
    );
    Ok((node, answer.to_vec()))
}

/// The connecting side: checks the accepting side's proof.
pub fn check_answer(
    secret: &[u8],
    me: u64,
    my_nonce: &[u8; NONCE_LEN],
    challenge: &[u8],
    answer: &[u8],
) -> Result<(), PeerAuthError> {
    let expected = mac(
        secret,
        b"chronik-peer-server",
        &[my_nonce, challenge, &me.to_be_bytes()],
    );
    if bool::from(expected.ct_eq(answer)) {
        Ok(())
    } else {
        Err(PeerAuthError::BadProof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOTERS: [u64; 3] = [1, 2, 3];

    fn voter(id: u64) -> bool {
        VOTERS.contains(&id)
    }

    /// R-SEC-9
    #[test]
    fn both_sides_prove_the_secret_and_only_voters_get_in() {
        let (challenge, nonce) = ([7u8; NONCE_LEN], [9u8; NONCE_LEN]);
        let good = hello(b"secret", 2, &nonce, &challenge);
        let (node, answer) = check_hello(b"secret", &challenge, &good, voter).unwrap();
        assert_eq!(node, 2);
        assert_eq!(
            check_answer(b"secret", 2, &nonce, &challenge, &answer),
            Ok(())
        );
        // An impostor accepting the connection cannot answer.
        let forged = check_hello(
            b"guess",
            &challenge,
            &hello(b"guess", 2, &nonce, &challenge),
            voter,
        )
        .map(|(_, a)| a)
        .unwrap();
        assert!(check_answer(b"secret", 2, &nonce, &challenge, &forged).is_err());
        let refusals = [
            check_hello(
                b"secret",
                &challenge,
                &hello(b"wrong", 2, &nonce, &challenge),
                voter,
            ),
            check_hello(
                b"secret",
                &challenge,
                &hello(b"secret", 9, &nonce, &challenge),
                voter,
            ),
            // A hello recorded against another challenge does not replay.
            check_hello(b"secret", &[8u8; NONCE_LEN], &good, voter),
            check_hello(b"secret", &challenge, &good[1..], voter),
        ];
        assert_eq!(
            refusals.map(|r| r.map(|(n, _)| n)),
            [
                Err(PeerAuthError::BadProof),
                Err(PeerAuthError::NotAVoter(9)),
                Err(PeerAuthError::BadProof),
                Err(PeerAuthError::Malformed),
            ]
        );
    }
}
