//! One connection's authentication (R-SEC-1 .. R-SEC-5): which requests it may send
//! now, the SASL exchange (KIP-43 handshake, KIP-152 SaslAuthenticate or the v0 raw
//! token framing), and KIP-368 re-authentication. The shell asks `admit` before
//! every request and closes the connection on a refusal; the exchange itself is
//! decided here, with the time, nonces and credentials passed in.

use super::plain;
use super::scram::{Mechanism, ScramCredential, ServerExchange};
use super::Principal;

/// Kafka API keys this module needs (the core does not depend on the codec).
pub const API_VERSIONS: i16 = 18;
pub const SASL_HANDSHAKE: i16 = 17;
pub const SASL_AUTHENTICATE: i16 = 36;

/// A SASL mechanism this broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(Mechanism::Sha256),
        SaslMechanism::Scram(Mechanism::Sha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where the credentials come from: the replicated metadata, read by the shell.
pub trait CredentialStore {
    fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential>;
}

/// What the exchange needs from outside the core: fresh randomness.
pub struct Entropy {
    /// The server's half of the SCRAM nonce (printable, no comma).
    pub nonce: String,
    /// A secret of the process from which unknown users' decoy credentials are
    /// made (the same for every attempt, so the answers do not vary).
    pub decoy_key: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Stage {
    /// Nothing has been said; only ApiVersions and SaslHandshake are served.
    Handshake,
    /// The mechanism is chosen; the next token starts the exchange.
    Token {
        mechanism: SaslMechanism,
    },
    /// SCRAM's second round.
    ScramFinal {
        exchange: Box<ServerExchange>,
    },
    Authenticated,
    /// Authentication failed: nothing more is served (the shell closes).
    Failed,
}

/// Whether a request may be served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Serve,
    /// Refuse and close the connection, with this reason for the log.
    Close(String),
}

/// The outcome of one SaslAuthenticate (or raw token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token back; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated: send this token, with this session lifetime (0: none).
    Done {
        token: Vec<u8>,
        session_lifetime_ms: i64,
    },
    /// SASL_AUTHENTICATION_FAILED with this message; the shell answers after its
    /// failed-authentication delay and closes the connection.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// UNSUPPORTED_SASL_MECHANISM, with the mechanisms on offer.
    Unsupported(Vec<String>),
    /// ILLEGAL_SASL_STATE.
    IllegalState,
}

/// The authentication state of one connection.
#[derive(Debug, Clone)]
pub struct Authentication {
    requires_sasl: bool,
    mechanisms: Vec<SaslMechanism>,
    stage: Stage,
    principal: Principal,
    /// KIP-368's `connections.max.reauth.ms` (0: sessions do not expire).
    max_reauth_ms: u64,
    expires_at_ms: Option<u64>,
    /// Handshake v0: the tokens come as bare size-prefixed frames, not requests.
    raw_tokens: bool,
    /// A later exchange is a re-authentication and must keep the principal.
    authenticated_once: bool,
}

impl Authentication {
    /// A connection on a listener that needs no SASL is authenticated from the
    /// start, as `principal` (ANONYMOUS, or the TLS client certificate's name).
    pub fn new(
        requires_sasl: bool,
        mechanisms: Vec<SaslMechanism>,
        principal: Principal,
        max_reauth_ms: u64,
    ) -> Authentication {
        Authentication {
            requires_sasl,
            mechanisms,
            stage: if requires_sasl {
                Stage::Handshake
            } else {
                Stage::Authenticated
            },
            principal,
            max_reauth_ms,
            expires_at_ms: None,
            raw_tokens: false,
            authenticated_once: false,
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// True once the connection may be served (at once on a listener without SASL);
    /// a re-authentication in progress keeps it so.
    pub fn is_authenticated(&self) -> bool {
        !self.requires_sasl || self.authenticated_once && !matches!(self.stage, Stage::Failed)
    }

    /// True while the next frame is a bare SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        self.raw_tokens && matches!(self.stage, Stage::Token { .. } | Stage::ScramFinal { .. })
    }

    /// R-SEC-1: before authentication only ApiVersions and the SASL requests are
    /// served; R-SEC-4: a session past its lifetime serves nothing but
    /// re-authentication.
    pub fn admit(&self, api_key: i16, now_ms: u64) -> Admission {
        let sasl = api_key == SASL_HANDSHAKE || api_key == SASL_AUTHENTICATE;
        match &self.stage {
            Stage::Failed => Admission::Close("authentication failed".into()),
            _ if !self.requires_sasl => {
                if sasl {
                    Admission::Close("SASL request on a listener without SASL".into())
                } else {
                    Admission::Serve
                }
            }
            Stage::Authenticated => match self.expires_at_ms {
                Some(at) if now_ms >= at && !sasl => {
                    Admission::Close("session expired without re-authentication".into())
                }
                _ => Admission::Serve,
            },
            _ if sasl || api_key == API_VERSIONS => Admission::Serve,
            _ => Admission::Close(format!(
                "request with API key {api_key} before SASL authentication"
            )),
        }
    }

    pub fn handshake(&mut self, mechanism: &str, version: i16) -> Result<(), HandshakeError> {
        let reauthenticating = matches!(self.stage, Stage::Authenticated);
        // A v0 handshake switches to bare tokens, which a re-authentication (KIP-368
        // needs SaslAuthenticate v1) can never use.
        let fresh = matches!(self.stage, Stage::Handshake);
        if !self.requires_sasl || !(fresh || reauthenticating && version >= 1) {
            self.stage = Stage::Failed;
            return Err(HandshakeError::IllegalState);
        }
        let Some(chosen) =
            SaslMechanism::from_name(mechanism).filter(|m| self.mechanisms.contains(m))
        else {
            return Err(HandshakeError::Unsupported(
                self.mechanisms
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect(),
            ));
        };
        self.raw_tokens = version == 0;
        self.stage = Stage::Token { mechanism: chosen };
        Ok(())
    }

    /// One client token: SaslAuthenticate's bytes, or a bare frame after a v0
    /// handshake.
    pub fn authenticate(
        &mut self,
        token: &[u8],
        credentials: &dyn CredentialStore,
        entropy: Entropy,
        now_ms: u64,
    ) -> Step {
        let stage = std::mem::replace(&mut self.stage, Stage::Failed);
        let progress = match stage {
            Stage::Token {
                mechanism: SaslMechanism::Plain,
            } => plain_exchange(token, credentials),
            Stage::Token {
                mechanism: SaslMechanism::Scram(m),
            } => scram_first(token, m, credentials, entropy),
            Stage::ScramFinal { exchange } => scram_final(&exchange, token),
            Stage::Handshake | Stage::Authenticated | Stage::Failed => {
                Err("SaslAuthenticate without a SaslHandshake before it".into())
            }
        };
        match progress.and_then(|p| self.check_principal(p)) {
            Ok(Progress::Continue(exchange, token)) => {
                self.stage = Stage::ScramFinal { exchange };
                Step::Continue(token)
            }
            Ok(Progress::Authenticated(principal, token)) => {
                self.principal = principal;
                self.authenticated_once = true;
                self.stage = Stage::Authenticated;
                self.raw_tokens = false;
                let lifetime = self.max_reauth_ms;
                self.expires_at_ms = (lifetime > 0).then(|| now_ms.saturating_add(lifetime));
                Step::Done {
                    token,
                    session_lifetime_ms: i64::try_from(lifetime).unwrap_or(i64::MAX),
                }
            }
            Err(message) => Step::Failed(message),
        }
    }

    /// R-SEC-4: a re-authentication may not change who the connection is.
    fn check_principal(&self, progress: Progress) -> Result<Progress, String> {
        match &progress {
            Progress::Authenticated(principal, _)
                if self.authenticated_once && *principal != self.principal =>
            {
                Err(format!(
                    "Cannot change principals during re-authentication from {}: {principal}",
                    self.principal
                ))
            }
            _ => Ok(progress),
        }
    }
}

enum Progress {
    Continue(Box<ServerExchange>, Vec<u8>),
    Authenticated(Principal, Vec<u8>),
}

fn plain_exchange(token: &[u8], credentials: &dyn CredentialStore) -> Result<Progress, String> {
    let (user, password) = plain::parse(token).map_err(str::to_string)?;
    // Any stored SCRAM credential checks a plain password: one store, salted only
    // (R-SEC-3). The stronger one first.
    let verified = [Mechanism::Sha512, Mechanism::Sha256]
        .into_iter()
        .find_map(|m| credentials.scram(&user, m))
        .is_some_and(|c| c.verifies_password(&password));
    if !verified {
        return Err("Authentication failed: Invalid username or password".into());
    }
    Ok(Progress::Authenticated(Principal::user(user), Vec::new()))
}

fn scram_first(
    token: &[u8],
    mechanism: Mechanism,
    credentials: &dyn CredentialStore,
    entropy: Entropy,
) -> Result<Progress, String> {
    let decoy = |user: &str| ScramCredential::decoy(mechanism, user, &entropy.decoy_key);
    let stored = |user: &str| credentials.scram(user, mechanism);
    let (exchange, first) = ServerExchange::start(token, &entropy.nonce, stored, decoy)
        .map_err(|e| format!("Authentication failed: {e}"))?;
    Ok(Progress::Continue(Box::new(exchange), first))
}

fn scram_final(exchange: &ServerExchange, token: &[u8]) -> Result<Progress, String> {
    let verdict = exchange.finish(token).map_err(|e| {
        format!("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM: {e}")
    })?;
    Ok(Progress::Authenticated(
        Principal::user(&exchange.user),
        verdict,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ClientExchange;
    use std::collections::BTreeMap;

    const PRODUCE: i16 = 0;

    struct Store(BTreeMap<(String, Mechanism), ScramCredential>);

    impl CredentialStore for Store {
        fn scram(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
            self.0.get(&(user.to_string(), mechanism)).cloned()
        }
    }

    fn store() -> Store {
        let mut users = BTreeMap::new();
        for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
            for m in Mechanism::ALL {
                let c = ScramCredential::from_password(m, password, user.as_bytes().to_vec(), 4096);
                users.insert((user.to_string(), m), c);
            }
        }
        Store(users)
    }

    fn entropy() -> Entropy {
        Entropy {
            nonce: "server-nonce".into(),
            decoy_key: b"decoy".to_vec(),
        }
    }

    fn sasl_session(max_reauth_ms: u64) -> Authentication {
        Authentication::new(
            true,
            SaslMechanism::ALL.to_vec(),
            Principal::anonymous(),
            max_reauth_ms,
        )
    }

    fn plain(auth: &mut Authentication, user: &str, password: &str, now_ms: u64) -> Step {
        auth.handshake("PLAIN", 1).unwrap();
        auth.authenticate(
            format!("\0{user}\0{password}").as_bytes(),
            &store(),
            entropy(),
            now_ms,
        )
    }

    fn scram(auth: &mut Authentication, m: Mechanism, user: &str, password: &str) -> Step {
        auth.handshake(m.name(), 1).unwrap();
        let mut client = ClientExchange::new(m, user, password, "client-nonce");
        let Step::Continue(first) =
            auth.authenticate(&client.client_first(), &store(), entropy(), 0)
        else {
            panic!("SCRAM's first round always continues");
        };
        let last = client.client_final(&first).unwrap();
        let step = auth.authenticate(&last, &store(), entropy(), 0);
        if let Step::Done { token, .. } = &step {
            client.verify_server(token).unwrap();
        }
        step
    }

    /// R-SEC-1
    #[test]
    fn nothing_but_api_versions_and_sasl_is_served_before_authentication() {
        let auth = sasl_session(0);
        assert_eq!(auth.admit(API_VERSIONS, 0), Admission::Serve);
        assert_eq!(auth.admit(SASL_HANDSHAKE, 0), Admission::Serve);
        assert!(matches!(auth.admit(PRODUCE, 0), Admission::Close(_)));
        let mut skipped = sasl_session(0);
        let step = skipped.authenticate(b"\0alice\0alice-pw", &store(), entropy(), 0);
        assert!(
            matches!(step, Step::Failed(_)),
            "a token before the handshake"
        );
        assert!(matches!(skipped.admit(PRODUCE, 0), Admission::Close(_)));
    }

    /// R-SEC-2
    #[test]
    fn right_credentials_authenticate_and_wrong_ones_close_the_connection() {
        let mut ok = sasl_session(0);
        assert!(matches!(
            plain(&mut ok, "alice", "alice-pw", 0),
            Step::Done { .. }
        ));
        assert_eq!(ok.principal(), &Principal::user("alice"));
        assert_eq!(ok.admit(PRODUCE, 0), Admission::Serve);
        for m in Mechanism::ALL {
            let mut ok = sasl_session(0);
            assert!(matches!(
                scram(&mut ok, m, "bob", "bob-pw"),
                Step::Done { .. }
            ));
            assert_eq!(ok.principal(), &Principal::user("bob"));
        }
        let failures = [
            plain(&mut sasl_session(0), "alice", "wrong", 0),
            plain(&mut sasl_session(0), "mallory", "alice-pw", 0),
            scram(&mut sasl_session(0), Mechanism::Sha256, "alice", "wrong"),
            scram(&mut sasl_session(0), Mechanism::Sha512, "mallory", "x"),
        ];
        for step in failures {
            assert!(matches!(step, Step::Failed(_)), "{step:?}");
        }
        let mut garbage = sasl_session(0);
        garbage.handshake("SCRAM-SHA-256", 1).unwrap();
        let step = garbage.authenticate(b"\x00\xff garbage", &store(), entropy(), 0);
        assert!(matches!(step, Step::Failed(_)));
        assert!(matches!(garbage.admit(PRODUCE, 0), Admission::Close(_)));
    }

    #[test]
    fn unknown_mechanisms_are_answered_with_those_on_offer() {
        let mut auth =
            Authentication::new(true, vec![SaslMechanism::Plain], Principal::anonymous(), 0);
        let refused = auth.handshake("SCRAM-SHA-256", 1);
        assert_eq!(
            refused,
            Err(HandshakeError::Unsupported(vec!["PLAIN".into()]))
        );
        assert_eq!(
            auth.handshake("GSSAPI", 1),
            Err(HandshakeError::Unsupported(vec!["PLAIN".into()]))
        );
        assert_eq!(auth.handshake("PLAIN", 1), Ok(()));
    }

    /// R-SEC-4
    #[test]
    fn an_expired_session_serves_only_reauthentication_which_keeps_the_principal() {
        let mut auth = sasl_session(1_000);
        let Step::Done {
            session_lifetime_ms,
            ..
        } = plain(&mut auth, "alice", "alice-pw", 10)
        else {
            panic!("alice authenticates");
        };
        assert_eq!(session_lifetime_ms, 1_000);
        assert_eq!(auth.admit(PRODUCE, 1_009), Admission::Serve);
        assert!(matches!(auth.admit(PRODUCE, 1_010), Admission::Close(_)));
        assert_eq!(auth.admit(SASL_HANDSHAKE, 1_010), Admission::Serve);
        assert!(matches!(
            plain(&mut auth, "alice", "alice-pw", 1_010),
            Step::Done { .. }
        ));
        assert_eq!(auth.admit(PRODUCE, 2_000), Admission::Serve);
        let step = plain(&mut auth, "bob", "bob-pw", 2_000);
        assert!(
            matches!(step, Step::Failed(_)),
            "re-authentication as another user: {step:?}"
        );
        assert!(matches!(auth.admit(PRODUCE, 2_000), Admission::Close(_)));
    }

    #[test]
    fn a_v0_handshake_switches_to_bare_tokens_and_cannot_reauthenticate() {
        let mut auth = sasl_session(0);
        auth.handshake("PLAIN", 0).unwrap();
        assert!(auth.expects_raw_token());
        let step = auth.authenticate(b"\0alice\0alice-pw", &store(), entropy(), 0);
        assert!(matches!(step, Step::Done { .. }));
        assert!(!auth.expects_raw_token());
        assert_eq!(
            auth.handshake("PLAIN", 0),
            Err(HandshakeError::IllegalState)
        );
    }

    #[test]
    fn listeners_without_sasl_serve_at_once_and_refuse_sasl() {
        let auth = Authentication::new(false, vec![], Principal::user("CN=client"), 0);
        assert_eq!(auth.admit(PRODUCE, 0), Admission::Serve);
        assert!(matches!(auth.admit(SASL_HANDSHAKE, 0), Admission::Close(_)));
        assert_eq!(auth.principal(), &Principal::user("CN=client"));
    }
}

#[cfg(test)]
mod decoy_tests {
    use super::*;
    use crate::security::scram::ClientExchange;

    struct Nobody;
    impl CredentialStore for Nobody {
        fn scram(&self, _: &str, _: Mechanism) -> Option<ScramCredential> {
            None
        }
    }

    /// An unknown user gets the same salt every time, so the first answer does not
    /// tell a guesser which users exist.
    #[test]
    fn unknown_users_see_a_stable_salt() {
        let first_answer = |nonce: &str| {
            let mut auth =
                Authentication::new(true, SaslMechanism::ALL.to_vec(), Principal::anonymous(), 0);
            auth.handshake("SCRAM-SHA-256", 1).unwrap();
            let client = ClientExchange::new(Mechanism::Sha256, "ghost", "pw", "c");
            let entropy = Entropy {
                nonce: nonce.into(),
                decoy_key: b"process-secret".to_vec(),
            };
            match auth.authenticate(&client.client_first(), &Nobody, entropy, 0) {
                Step::Continue(reply) => String::from_utf8(reply).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        let salt = |answer: String| answer.split(',').nth(1).unwrap().to_string();
        assert_eq!(salt(first_answer("a")), salt(first_answer("b")));
    }
}
