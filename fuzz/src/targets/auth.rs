//! `sasl`: what a client may send before it is authenticated: SASL/PLAIN tokens,
//! SCRAM client messages, and the peer transport's hello.

use crate::alloc::{self, assert_within};
use chronik_core::security::peer_auth::{self, NONCE_LEN};
use chronik_core::security::plain;
use chronik_core::security::sasl::{Authentication, CredentialStore, Entropy, SaslMechanism, Step};
use chronik_core::security::scram::{Mechanism, ScramCredential};
use chronik_core::security::Principal;

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";
/// The server's nonce is fixed, so a corpus entry can carry a whole valid exchange.
pub const SERVER_NONCE: &str = "fuzzservernonce";
/// A low count keeps a PLAIN check cheap enough to fuzz; the code path is the same.
pub const ITERATIONS: u32 = 2;
pub const SALT: &[u8] = b"fuzz-salt";
/// Tokens are separated by 0xFE, a byte no UTF-8 text (PLAIN or SCRAM) contains.
const SEPARATOR: u8 = 0xfe;

struct OneUser;

impl CredentialStore for OneUser {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        (user == USER)
            .then(|| ScramCredential::from_password(mechanism, PASSWORD, SALT.to_vec(), ITERATIONS))
    }
}

/// Input: a byte choosing the mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
/// the handshake version, then the client's tokens separated by 0xFE. Checks: no
/// panic; reservations bounded by the input; a PLAIN token that parses names a
/// non-empty user and password that parse back from their canonical form; an
/// exchange ends authenticated only as the one known user, and then only after a
/// PLAIN token with its password or a SCRAM proof; the peer hello parser accepts
/// nothing without the secret.
pub fn sasl(data: &[u8]) {
    let Some((&switches, rest)) = data.split_first() else {
        return;
    };
    let (_, usage) = alloc::measure(|| {
        check_plain_parse(rest);
        exchange(switches, rest);
        check_peer_hello(rest);
    });
    let cap = (1 << 20) + 64 * data.len();
    assert_within("SASL reserved", usage.reserved_peak, cap, data.len());
}

fn check_plain_parse(token: &[u8]) {
    let Ok((user, password)) = plain::parse(token) else {
        return;
    };
    assert!(!user.is_empty() && !password.is_empty());
    let canonical = format!("\0{user}\0{password}");
    assert_eq!(plain::parse(canonical.as_bytes()), Ok((user, password)));
}

fn exchange(switches: u8, rest: &[u8]) {
    let mechanism = SaslMechanism::ALL[usize::from(switches % 3)];
    let version = i16::from(switches >> 7);
    let mut auth =
        Authentication::new(true, SaslMechanism::ALL.to_vec(), Principal::anonymous(), 0);
    if auth.handshake(mechanism.name(), version).is_err() {
        return;
    }
    for (round, token) in rest.split(|b| *b == SEPARATOR).enumerate() {
        let entropy = Entropy {
            nonce: SERVER_NONCE.into(),
            decoy_key: b"decoy".to_vec(),
        };
        match auth.authenticate(token, &OneUser, entropy, 0) {
            Step::Continue(_) => {}
            Step::Done { .. } => {
                assert_eq!(auth.principal(), &Principal::user(USER.to_string()));
                let proved = match mechanism {
                    SaslMechanism::Plain => {
                        plain::parse(token).is_ok_and(|(_, password)| password == PASSWORD)
                    }
                    SaslMechanism::Scram(_) => round == 1,
                };
                assert!(proved, "authenticated without the password");
                return;
            }
            Step::Failed(_) => return,
        }
    }
}

fn check_peer_hello(hello: &[u8]) {
    let challenge = [7u8; NONCE_LEN];
    let checked = peer_auth::check_hello(b"the cluster secret", &challenge, hello, |_| true);
    assert!(checked.is_err(), "a peer hello passed without the secret");
}
