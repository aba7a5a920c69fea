//! Who sent a request and what they may do: the one place the handlers ask
//! (spec/security.md). The decision is the core's (`chronik_core::security::acl`);
//! this binds it to a request's principal and client address, the broker's
//! authorizer settings and the ACLs of the metadata view the request started with.

use super::codec::Request;
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::MetadataState;
use chronik_core::errors::ErrorCode;
use chronik_core::security::acl::{
    operations_bitfield, Authorizer, Operation, Requester, ResourceType, CLUSTER_NAME,
};
use chronik_core::security::Principal;
use std::sync::Arc;

/// One request's caller, for every authorization question its handler asks.
pub struct Caller {
    pub principal: Principal,
    /// The client's IP address, as ACL hosts name it (`acl_host`).
    pub host: String,
    /// The listener the request came in on: answers name brokers by their address
    /// on it (R-SEC-7).
    pub listener: String,
    /// The authorizer and the metadata whose ACLs it reads; None: no authorizer is
    /// configured, everything is allowed (as Kafka), and no view is taken.
    authorizer: Option<(Arc<Authorizer>, Arc<MetadataState>)>,
}

impl Caller {
    pub fn new(broker: &Broker, principal: Principal, peer: String, listener: String) -> Caller {
        Caller {
            principal,
            host: acl_host(&peer),
            listener,
            authorizer: broker
                .authorizer
                .as_ref()
                .map(|a| (Arc::clone(a), broker.consensus.view().state)),
        }
    }

    /// The caller of `request` (for handlers outside this module's dispatch, such as
    /// the SASL credential APIs: `Caller::of(broker, &request).may_cluster(op)`).
    pub fn of(broker: &Broker, request: &Request) -> Caller {
        Caller::new(
            broker,
            request.principal.clone(),
            request.peer.clone(),
            request.listener.clone(),
        )
    }

    /// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED
    /// without one).
    pub fn authorizer_enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: &self.host,
        }
    }

    /// May the caller do `operation` on the resource (R-SEC-ACL-1..6)?
    pub fn may(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        match &self.authorizer {
            None => true,
            Some((a, state)) => a.authorize(
                &state.acls,
                self.requester(),
                operation,
                resource_type,
                name,
            ),
        }
    }

    pub fn may_topic(&self, operation: Operation, topic: &str) -> bool {
        self.may(operation, ResourceType::Topic, topic)
    }

    pub fn may_group(&self, operation: Operation, group: &str) -> bool {
        self.may(operation, ResourceType::Group, group)
    }

    pub fn may_cluster(&self, operation: Operation) -> bool {
        self.may(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Create on the cluster, or on the topic (CreateTopics, auto-creation).
    pub fn may_create_topic(&self, topic: &str) -> bool {
        self.may_cluster(Operation::Create) || self.may_topic(Operation::Create, topic)
    }

    /// May the caller do `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`)?
    pub fn may_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        match &self.authorizer {
            None => true,
            Some((a, state)) => {
                a.authorize_any(&state.acls, self.requester(), operation, resource_type)
            }
        }
    }

    /// KIP-430: the caller's operations on the resource as a bitfield; with no
    /// authorizer, every operation the resource type supports (Kafka's AuthHelper).
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        match &self.authorizer {
            None => operations_bitfield(resource_type.supported_operations().iter().copied()),
            Some((a, state)) => {
                a.authorized_operations(&state.acls, self.requester(), resource_type, name)
            }
        }
    }

    /// `NONE`, or TOPIC_AUTHORIZATION_FAILED if the caller may not do `operation`
    /// on the topic: the per-partition answer of most topic APIs.
    pub fn topic_error(&self, operation: Operation, topic: &str) -> ErrorCode {
        if self.may_topic(operation, topic) {
            errors::NONE
        } else {
            errors::TOPIC_AUTHORIZATION_FAILED
        }
    }
}

/// The client address as Kafka writes it in ACLs (Java's `getHostAddress`): an
/// IPv4-mapped IPv6 address (a dual-stack listener's IPv4 client) as plain IPv4, and
/// IPv6 uncompressed (`0:0:0:0:0:0:0:1`, not `::1`), so an ACL written for a Kafka
/// broker names the same clients here.
pub fn acl_host(peer: &str) -> String {
    match peer.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V6(v6)) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":"),
        Ok(ip) => ip.to_string(),
        Err(_) => peer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::acl_host;

    #[test]
    fn r_sec_acl_5_hosts_are_written_as_kafka_writes_them() {
        assert_eq!(acl_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(acl_host("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(acl_host("::1"), "0:0:0:0:0:0:0:1");
        assert_eq!(acl_host("fe80::a:1"), "fe80:0:0:0:0:0:a:1");
        assert_eq!(acl_host(""), "");
    }
}
