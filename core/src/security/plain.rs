//! SASL/PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`.

/// The user and password of a PLAIN token. An authorization id other than the user
/// itself is refused, as Kafka's PlainSaslServer does: nobody may act as another.
pub fn parse(token: &[u8]) -> Result<(String, String), &'static str> {
    let text = std::str::from_utf8(token).map_err(|_| "PLAIN token is not UTF-8")?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("PLAIN token is not authzid NUL user NUL password");
    };
    if user.is_empty() {
        return Err("PLAIN token has an empty user name");
    }
    if password.is_empty() {
        return Err("PLAIN token has an empty password");
    }
    if !authzid.is_empty() && authzid != user {
        return Err("PLAIN authorization id differs from the user");
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(parse(b"\0alice\0pw"), Ok(("alice".into(), "pw".into())));
        assert_eq!(
            parse(b"alice\0alice\0pw"),
            Ok(("alice".into(), "pw".into()))
        );
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"bob\0alice\0pw",
            b"\0a\0b\0c",
            b"\0\xff\0pw",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
