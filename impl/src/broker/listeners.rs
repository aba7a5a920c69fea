//! Named Kafka listeners as Kafka configures them: `listeners`,
//! `advertised.listeners` and `listener.security.protocol.map`, each in Kafka's own
//! syntax (`NAME://HOST:PORT,...` and `NAME:PROTOCOL,...`), so an operator's Kafka
//! settings carry over.

use chronik_core::security::SecurityProtocol;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// One listener to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// What clients are told (None: the bound address).
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
}

/// `NAME://HOST:PORT` entries in order. An empty host binds every address, as in
/// Kafka.
fn parse_addresses(text: &str) -> Result<Vec<(String, String, u16)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, address) = entry
                .split_once("://")
                .ok_or_else(|| format!("listener {entry:?} is not NAME://HOST:PORT"))?;
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("listener {entry:?} has no port"))?;
            let port = port
                .parse()
                .map_err(|e| format!("listener {entry:?}: port: {e}"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok((name.to_ascii_uppercase(), host.to_string(), port))
        })
        .collect()
}

/// `NAME:PROTOCOL` entries; a listener named after a protocol needs none.
fn parse_protocol_map(text: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| format!("protocol map entry {entry:?} is not NAME:PROTOCOL"))?;
            let protocol = SecurityProtocol::from_name(protocol)
                .ok_or_else(|| format!("unknown security protocol in {entry:?}"))?;
            Ok((name.to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// The listeners of `listeners`, with protocols and advertised addresses resolved.
pub fn parse(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> Result<Vec<ListenerSpec>, String> {
    let map = parse_protocol_map(protocol_map.unwrap_or(""))?;
    let advertised: BTreeMap<String, (String, u16)> = parse_addresses(advertised.unwrap_or(""))?
        .into_iter()
        .map(|(name, host, port)| (name, (host, port)))
        .collect();
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for (name, host, port) in parse_addresses(listeners)? {
        if specs.iter().any(|s| s.name == name) {
            return Err(format!("listener {name} is named twice"));
        }
        let protocol = map
            .get(&name)
            .copied()
            .or_else(|| SecurityProtocol::from_name(&name))
            .ok_or_else(|| {
                format!("listener {name} has no security protocol: name it after one or map it in listener_security_protocol_map")
            })?;
        let bind_host = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind = (bind_host, port)
            .to_socket_addrs()
            .map_err(|e| format!("listener {name}: {e}"))?
            .next()
            .ok_or_else(|| format!("listener {name}: {host} resolves to nothing"))?;
        let (advertised_host, advertised_port) = match advertised.get(&name) {
            Some((host, port)) => (Some(host.clone()), Some(*port)),
            None => (None, None),
        };
        specs.push(ListenerSpec {
            advertised_host,
            advertised_port,
            name,
            protocol,
            bind,
        });
    }
    if let Some(unknown) = advertised
        .keys()
        .find(|a| !specs.iter().any(|s| &s.name == *a))
    {
        return Err(format!(
            "advertised listener {unknown} is not among the listeners"
        ));
    }
    if specs.is_empty() {
        return Err("listeners names no listener".into());
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_syntax_parses() {
        let specs = parse(
            "PLAINTEXT://127.0.0.1:9092, CLIENT://127.0.0.1:9093,sasl_ssl://:9094",
            Some("CLIENT://kafka.example:443"),
            Some("CLIENT:SASL_SSL"),
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[1].name, "CLIENT");
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[1].advertised_host.as_deref(), Some("kafka.example"));
        assert_eq!(specs[1].advertised_port, Some(443));
        assert_eq!(specs[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[2].bind.port(), 9094);
    }

    #[test]
    fn mistakes_are_named() {
        for (listeners, advertised, map) in [
            ("CLIENT://127.0.0.1:1", None, None),
            ("PLAINTEXT://127.0.0.1", None, None),
            ("127.0.0.1:1", None, None),
            (
                "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2",
                None,
                None,
            ),
            ("PLAINTEXT://127.0.0.1:1", Some("SSL://h:1"), None),
            ("X://127.0.0.1:1", None, Some("X:KERBEROS")),
            ("", None, None),
        ] {
            assert!(parse(listeners, advertised, map).is_err(), "{listeners}");
        }
    }
}
