use serde::{Deserialize, Serialize};
use std::fmt;

/// Kafka's `KafkaPrincipal`: a type and a name, written `User:alice`. A connection
/// that has not authenticated (PLAINTEXT, or TLS without a client certificate) is
/// `User:ANONYMOUS`, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Principal {
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub const USER: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: Self::USER.to_string(),
            name: name.into(),
        }
    }

    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the name may itself hold colons, as a certificate's
    /// distinguished name may not, but a SASL user name may).
    pub fn parse(text: &str) -> Result<Principal, String> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Principal {
                kind: kind.to_string(),
                name: name.to_string(),
            }),
            _ => Err(format!("principal {text:?} is not Type:name")),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints() {
        let p = Principal::user("CN=broker-1,O=Chronik");
        assert_eq!(Principal::parse(&p.to_string()).unwrap(), p);
        assert_eq!(Principal::parse("User:a:b").unwrap().name, "a:b");
        assert!(Principal::parse("alice").is_err());
        assert!(Principal::parse("User:").is_err());
    }
}
