//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them (KIP-84):
//! the stored credential, the server's two-message exchange, and a client for the
//! broker's own connections and the tests. Pure: nonces and salts come in from the
//! caller, so a run can be replayed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on iterations (ScramMechanism: 4096 minimum, 16384 maximum).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The code of DescribeUserScramCredentials and AlterUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Mechanism> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            // Both accept a key of any length, so these cannot fail.
            Mechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Mechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the broker keeps of a password: never the password, nor the salted password
/// a client could log in with, only the keys that verify a proof (RFC 5802 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From the salted password, as AlterUserScramCredentials carries it (KIP-554).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            iterations,
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// A made-up credential for an unknown user: its salt is derived from the name
    /// and `key` (a secret of the process), so it stays the same across attempts.
    pub fn decoy(mechanism: Mechanism, user: &str, key: &[u8]) -> ScramCredential {
        let mut salt = Mechanism::Sha256.hmac(key, user.as_bytes());
        salt.truncate(16);
        ScramCredential::from_salted_password(mechanism, key, salt, MIN_ITERATIONS)
    }

    /// Checks a plain password (SASL/PLAIN) against this credential, in constant time.
    pub fn verifies_password(&self, password: &str) -> bool {
        let candidate =
            Self::from_password(self.mechanism, password, self.salt.clone(), self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("SCRAM nonce does not continue the server's")]
    NonceMismatch,
    #[error("invalid credentials")]
    InvalidCredentials,
}

/// The server half of an exchange after the client's first message.
#[derive(Debug, Clone)]
pub struct ServerExchange {
    pub user: String,
    credential: ScramCredential,
    /// False when the user is unknown: the exchange goes on with a made-up
    /// credential and fails at the proof, so a client cannot tell which users exist.
    known_user: bool,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerExchange {
    /// Answers `client-first-message`. `decoy` makes the credential used when the
    /// user is unknown; it should give the same salt for the same name every time,
    /// or a changing salt would tell which users do not exist.
    pub fn start(
        client_first: &[u8],
        server_nonce: &str,
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
        decoy: impl FnOnce(&str) -> ScramCredential,
    ) -> Result<(ServerExchange, Vec<u8>), ScramError> {
        let (user, client_nonce, client_first_bare) = parse_client_first(client_first)?;
        let stored = credential(&user);
        let nonce = format!("{client_nonce}{server_nonce}");
        let known_user = stored.is_some();
        let credential = stored.unwrap_or_else(|| decoy(&user));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ServerExchange {
            user,
            credential,
            known_user,
            client_first_bare,
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first.into_bytes()))
    }

    /// Checks `client-final-message`; on success returns `server-final-message`.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .ok_or(ScramError::Malformed("no channel binding"))?;
        if binding != "c=biws" {
            return Err(ScramError::ChannelBinding);
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        // Kafka's ScramSaslServer accepts a final nonce that ends with the server's,
        // and librdkafka up to 2.0 (kcat as Debian ships it) sends its own nonce
        // again in front of it; the proof covers the message as sent either way.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let mechanism = self.credential.mechanism;
        let signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches: bool = mechanism
            .hash(&client_key)
            .ct_eq(&self.credential.stored_key)
            .into();
        if !(matches && self.known_user) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// `n,,n=user,r=nonce` (extensions such as Kafka's `tokenauth` are accepted and
/// ignored, as they carry nothing for password credentials).
fn parse_client_first(message: &[u8]) -> Result<(String, String, String), ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("utf-8"))?;
    let bare = match text.strip_prefix("n,") {
        Some(rest) => rest
            .split_once(',')
            .map(|(_authzid, bare)| bare)
            .ok_or(ScramError::Malformed("no authzid field"))?,
        None if text.starts_with("y,") || text.starts_with("p=") => {
            return Err(ScramError::ChannelBinding)
        }
        None => return Err(ScramError::Malformed("no gs2 header")),
    };
    let mut user = None;
    let mut nonce = None;
    for field in bare.split(',') {
        if let Some(name) = field.strip_prefix("n=") {
            user = Some(unescape_name(name)?);
        } else if let Some(value) = field.strip_prefix("r=") {
            nonce = Some(value.to_string());
        }
    }
    let user = user.ok_or(ScramError::Malformed("no user name"))?;
    let nonce = nonce
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no nonce"))?;
    Ok((user, nonce, bare.to_string()))
}

/// RFC 5802 saslname: `=2C` is a comma and `=3D` an equals sign; any other `=` is an
/// error.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The client half, for the broker's own connections to its peers and for tests.
pub struct ClientExchange {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    pub fn new(mechanism: Mechanism, user: &str, password: &str, client_nonce: &str) -> Self {
        ClientExchange {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={client_nonce}", escape_name(user)),
            client_nonce: client_nonce.to_string(),
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers `server-first-message` with `client-final-message`.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("utf-8"))?;
        let field = |prefix: &str| text.split(',').find_map(|f| f.strip_prefix(prefix));
        let nonce = field("r=").ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let salt = BASE64
            .decode(field("s=").ok_or(ScramError::Malformed("no salt"))?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = field("i=")
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::Malformed("no iteration count"))?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks `server-final-message`: the server, too, knew the credential.
    pub fn verify_server(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("utf-8"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramError::InvalidCredentials)?;
        match &self.server_signature {
            Some(expected) if bool::from(expected.ct_eq(&signature)) => Ok(()),
            _ => Err(ScramError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn rfc_7677_example() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::from_password(Mechanism::Sha256, "pencil", salt, 4096);
        let mut client =
            ClientExchange::new(Mechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let decoy = credential.clone();
        let (server, first) = ServerExchange::start(
            &client.client_first(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            |_| Some(credential),
            |_| decoy,
        )
        .unwrap();
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = client.client_final(&first).unwrap();
        assert_eq!(
            String::from_utf8(last.clone()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let verdict = server.finish(&last).unwrap();
        assert_eq!(verdict, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        client.verify_server(&verdict).unwrap();
    }

    fn exchange(
        mechanism: Mechanism,
        stored: &str,
        tried: &str,
        known: bool,
    ) -> Result<(), ScramError> {
        let credential = ScramCredential::from_password(mechanism, stored, b"salt".to_vec(), 4096);
        let decoy = ScramCredential::from_password(mechanism, tried, b"decoy".to_vec(), 4096);
        let mut client = ClientExchange::new(mechanism, "a,b=c", tried, "cnonce");
        let (server, first) = ServerExchange::start(
            &client.client_first(),
            "snonce",
            |_| known.then_some(credential),
            |_| decoy,
        )?;
        assert_eq!(server.user, "a,b=c");
        let last = client.client_final(&first)?;
        let verdict = server.finish(&last)?;
        client.verify_server(&verdict)
    }

    #[test]
    fn right_password_passes_and_wrong_or_unknown_fails() {
        for m in Mechanism::ALL {
            assert_eq!(exchange(m, "secret", "secret", true), Ok(()));
            assert_eq!(
                exchange(m, "secret", "guess", true),
                Err(ScramError::InvalidCredentials)
            );
            // The decoy is made from the tried password: still refused.
            assert_eq!(
                exchange(m, "secret", "secret", false),
                Err(ScramError::InvalidCredentials)
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        let c = ScramCredential::from_password(Mechanism::Sha256, "p", b"s".to_vec(), 4096);
        for bad in [
            &b""[..],
            b"n,,",
            b"y,,n=u,r=x",
            b"n,,n=u",
            b"n,,r=x",
            b"n,,n=a=zz,r=x",
            b"\xff",
        ] {
            assert!(
                ServerExchange::start(bad, "s", |_| Some(c.clone()), |_| c.clone()).is_err(),
                "{bad:?}"
            );
        }
        let (server, _) =
            ServerExchange::start(b"n,,n=u,r=x", "s", |_| Some(c.clone()), |_| c.clone()).unwrap();
        for bad in [
            &b""[..],
            b"c=biws,r=xs",
            b"c=biws,r=other,p=AAAA",
            b"c=eSws,r=xs,p=AAAA",
            b"c=biws,r=xs,p=!!",
        ] {
            assert!(server.finish(bad).is_err(), "{bad:?}");
        }
    }

    /// librdkafka 2.0.2 repeats its nonce before the server's in its final message;
    /// Kafka accepts that, and so must we (found with Debian's kcat).
    #[test]
    fn a_final_nonce_ending_with_the_servers_is_accepted() {
        let c = ScramCredential::from_password(Mechanism::Sha256, "pw", b"salt".to_vec(), 4096);
        let (server, first) =
            ServerExchange::start(b"n,,n=u,r=cn", "sn", |_| Some(c.clone()), |_| c.clone())
                .unwrap();
        assert_eq!(&first[..7], b"r=cnsn,");
        let doubled = "c=biws,r=cncnsn";
        let auth_message = format!("n=u,r=cn,{},{doubled}", String::from_utf8(first).unwrap());
        let salted = Mechanism::Sha256.salted_password(b"pw", b"salt", 4096);
        let client_key = Mechanism::Sha256.hmac(&salted, b"Client Key");
        let signature = Mechanism::Sha256.hmac(
            &Mechanism::Sha256.hash(&client_key),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let last = format!("{doubled},p={}", BASE64.encode(proof));
        assert!(server.finish(last.as_bytes()).is_ok());
        assert_eq!(
            server.finish(b"c=biws,r=cnsnX,p=AAAA"),
            Err(ScramError::NonceMismatch)
        );
    }

    #[test]
    fn plain_passwords_check_against_the_stored_keys() {
        let c = ScramCredential::from_password(Mechanism::Sha512, "pw", b"salt".to_vec(), 4096);
        assert!(c.verifies_password("pw"));
        assert!(!c.verifies_password("pW"));
    }
}
