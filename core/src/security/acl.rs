//! Kafka's ACL model and its authorizer, as a pure decision (spec/security.md,
//! R-SEC-ACL-*). The codes are Kafka's, since CreateAcls, DescribeAcls and DeleteAcls
//! carry them on the wire; the decision follows Kafka's StandardAuthorizer: super users
//! first, then deny over allow, then the no-ACL default.

use super::Principal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The only name a Cluster resource has (Kafka's `kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name, principal name or host that matches every one.
pub const WILDCARD: &str = "*";
/// The principal of an ACL that applies to every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Kafka's `ResourceType` without UNKNOWN (0) and ANY (1), which only filters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The operations an ACL on this resource type can grant (Kafka's
    /// `AclEntry.supportedOperations`); with no authorizer, KIP-430 answers all of them.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// Kafka's `PatternType` of a stored binding: LITERAL (3) or PREFIXED (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

/// Kafka's `AclOperation` without UNKNOWN (0) and ANY (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    pub const EVERY: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    /// Kafka's codes run from All = 2 to DescribeTokens = 14 in this order.
    pub fn code(self) -> i8 {
        Self::EVERY.iter().position(|o| *o == self).unwrap_or(0) as i8 + 2
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        // Widened first: a decoded i8 of -128 must not overflow.
        usize::try_from(i16::from(code) - 2)
            .ok()
            .and_then(|i| Self::EVERY.get(i).copied())
    }

    /// An ALLOW ACL for `self` grants `wanted` too: All grants everything, Read,
    /// Write, Delete and Alter grant Describe, AlterConfigs grants DescribeConfigs.
    /// DENY ACLs never imply: denying Read does not deny Describe (as Kafka).
    fn allows(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// Kafka's `AclPermissionType`: DENY (2) or ALLOW (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// Which resources a binding applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    /// The pattern covers the resource `name` of its type: a literal by equality or
    /// the wildcard `*`, a prefix by `name` starting with it.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }
}

/// Who may (or may not) do what, from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    /// `Type:name`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP address as the broker sees it, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// One ACL: a resource pattern and an entry (Kafka's `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

impl AclBinding {
    /// What CreateAcls refuses with INVALID_REQUEST, as Kafka's AclApis and
    /// AclControlManager do (the codes were already checked when decoding).
    pub fn validate(&self) -> Result<(), String> {
        if self.pattern.name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.pattern.resource_type == ResourceType::Cluster && self.pattern.name != CLUSTER_NAME
        {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        Principal::parse(&self.entry.principal)
            .map_err(|_| format!("Could not parse principal from `{}`", self.entry.principal))?;
        if self.entry.host.is_empty() {
            return Err("The host of an ACL should not be empty".into());
        }
        Ok(())
    }

    /// This ACL speaks for `principal` connecting from `host`.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.entry.principal == principal || self.entry.principal == WILDCARD_PRINCIPAL)
            && (self.entry.host == host || self.entry.host == WILDCARD)
    }
}

/// The pattern types a filter selects: Kafka's ANY (1), MATCH (2), or one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Every pattern type; with a name, only patterns of exactly that name.
    Any,
    /// Every pattern that covers the named resource (literal, `*`, or prefix).
    Match,
    Exactly(PatternType),
}

impl PatternFilter {
    /// None for UNKNOWN (0) and codes Kafka does not have.
    pub fn from_code(code: i8) -> Option<PatternFilter> {
        match code {
            1 => Some(PatternFilter::Any),
            2 => Some(PatternFilter::Match),
            c => PatternType::from_code(c).map(PatternFilter::Exactly),
        }
    }
}

/// Kafka's `AclBindingFilter`, as DescribeAcls and DeleteAcls send it: a `None`
/// field is ANY (or a null string) and matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern_type: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclBindingFilter {
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, pattern: &ResourcePattern) -> bool {
        if self
            .resource_type
            .is_some_and(|t| t != pattern.resource_type)
        {
            return false;
        }
        if let PatternFilter::Exactly(t) = self.pattern_type {
            if t != pattern.pattern_type {
                return false;
            }
        }
        let Some(name) = &self.name else {
            return true;
        };
        match self.pattern_type {
            PatternFilter::Match => pattern.covers(pattern.resource_type, name),
            PatternFilter::Any | PatternFilter::Exactly(_) => *name == pattern.name,
        }
    }

    fn matches_entry(&self, entry: &AclEntry) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| *p == entry.principal)
            && self.host.as_ref().is_none_or(|h| *h == entry.host)
            && self.operation.is_none_or(|o| o == entry.operation)
            && self.permission.is_none_or(|p| p == entry.permission)
    }
}

/// The authorizer's settings (Kafka's `super.users` and
/// `allow.everyone.if.no.acl.found`); the ACLs themselves are the metadata's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// Principals as `Type:name`, allowed everything whatever the ACLs say.
    pub super_users: BTreeSet<String>,
    /// The answer for a resource that no ACL covers at all.
    pub allow_everyone_if_no_acl_found: bool,
}

/// One request's question: may `principal`, from `host`, do it.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: &'a str,
}

impl Authorizer {
    /// Kafka's StandardAuthorizer: a super user may; else a matching DENY refuses; else
    /// a matching ALLOW (or one implying the operation) grants; else, if no ACL covers
    /// the resource at all, `allow_everyone_if_no_acl_found` decides; else refused.
    pub fn authorize(
        &self,
        acls: &BTreeSet<AclBinding>,
        who: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let principal = who.principal.to_string();
        if self.super_users.contains(&principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for acl in acls
            .iter()
            .filter(|a| a.pattern.covers(resource_type, name))
        {
            covered = true;
            if !acl.applies_to(&principal, who.host) {
                continue;
            }
            match acl.entry.permission {
                Permission::Deny
                    if acl.entry.operation == Operation::All
                        || acl.entry.operation == operation =>
                {
                    return false;
                }
                Permission::Allow if acl.entry.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!covered && self.allow_everyone_if_no_acl_found)
    }

    /// Kafka's `authorizeByResourceType`: may the principal do `operation` on some
    /// resource of the type (InitProducerId's "Write on any topic"). A super user or a
    /// grant by the hard-coded name Kafka checks first allows; else some ALLOW pattern
    /// must not be shadowed by a DENY of the same literal or of a prefix of it.
    pub fn authorize_any(
        &self,
        acls: &BTreeSet<AclBinding>,
        who: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(acls, who, operation, resource_type, "hardcode") {
            return true;
        }
        let principal = who.principal.to_string();
        let relevant: Vec<&AclBinding> = acls
            .iter()
            .filter(|a| a.pattern.resource_type == resource_type)
            .filter(|a| a.applies_to(&principal, who.host))
            .filter(|a| a.entry.operation == operation || a.entry.operation == Operation::All)
            .collect();
        let denied = |p: PatternType, name: &str| {
            relevant.iter().any(|a| {
                a.entry.permission == Permission::Deny
                    && a.pattern.pattern_type == p
                    && a.pattern.name == name
            })
        };
        if denied(PatternType::Literal, WILDCARD) {
            return false;
        }
        let allows = relevant
            .iter()
            .filter(|a| a.entry.permission == Permission::Allow);
        let mut any = false;
        for a in allows {
            let name = &a.pattern.name;
            if a.pattern.pattern_type == PatternType::Literal && name == WILDCARD {
                return true;
            }
            let literal_denied = a.pattern.pattern_type == PatternType::Literal
                && denied(PatternType::Literal, name);
            let prefix_denied = (1..=name.len())
                .filter(|i| name.is_char_boundary(*i))
                .any(|i| denied(PatternType::Prefixed, &name[..i]));
            any |= !literal_denied && !prefix_denied;
        }
        any
    }

    /// KIP-430: the operations the principal may do on the resource, as a bitfield
    /// with bit `code` set per operation, over those the resource type supports.
    pub fn authorized_operations(
        &self,
        acls: &BTreeSet<AclBinding>,
        who: Requester<'_>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        operations_bitfield(
            resource_type
                .supported_operations()
                .iter()
                .copied()
                .filter(|op| self.authorize(acls, who, *op, resource_type, name)),
        )
    }
}

/// Kafka's `Utils.to32BitField` of operation codes.
pub fn operations_bitfield(operations: impl IntoIterator<Item = Operation>) -> i32 {
    operations
        .into_iter()
        .fold(0i32, |bits, op| bits | (1i32 << op.code()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: rt,
                name: name.into(),
                pattern_type: pt,
            },
            entry: AclEntry {
                principal: principal.into(),
                host: host.into(),
                operation: op,
                permission: perm,
            },
        }
    }

    fn topic_acl(
        name: &str,
        pt: PatternType,
        who: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        binding(ResourceType::Topic, name, pt, who, "*", op, perm)
    }

    fn may(
        authz: &Authorizer,
        acls: &[AclBinding],
        user: &str,
        op: Operation,
        topic: &str,
    ) -> bool {
        let acls: BTreeSet<AclBinding> = acls.iter().cloned().collect();
        let principal = Principal::user(user);
        let who = Requester {
            principal: &principal,
            host: "10.0.0.1",
        };
        authz.authorize(&acls, who, op, ResourceType::Topic, topic)
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;

    #[test]
    fn r_sec_acl_1_codes_are_kafkas() {
        assert_eq!(All.code(), 2);
        assert_eq!(Read.code(), 3);
        assert_eq!(Describe.code(), 8);
        assert_eq!(DescribeTokens.code(), 14);
        for op in Operation::EVERY {
            assert_eq!(Operation::from_code(op.code()), Some(op));
        }
        assert_eq!(Operation::from_code(1), None);
        assert_eq!(Operation::from_code(0), None);
        assert_eq!(Operation::from_code(15), None);
        assert_eq!(Operation::from_code(-128), None);
        assert_eq!(ResourceType::from_code(2), Some(ResourceType::Topic));
        assert_eq!(ResourceType::from_code(4), Some(ResourceType::Cluster));
        assert_eq!(ResourceType::from_code(1), None);
        assert_eq!(PatternFilter::from_code(2), Some(PatternFilter::Match));
        assert_eq!(PatternType::from_code(4), Some(Prefixed));
        assert_eq!(Permission::from_code(3), Some(Allow));
    }

    #[test]
    fn r_sec_acl_2_no_acl_means_the_configured_default() {
        let strict = Authorizer::default();
        assert!(!may(&strict, &[], "alice", Read, "t"));
        let open = Authorizer {
            allow_everyone_if_no_acl_found: true,
            ..Authorizer::default()
        };
        assert!(may(&open, &[], "alice", Read, "t"));
        // An ACL for someone else on the resource: the default no longer applies.
        let bob = topic_acl("t", Literal, "User:bob", Read, Allow);
        assert!(!may(&open, std::slice::from_ref(&bob), "alice", Read, "t"));
        assert!(may(&open, &[bob], "alice", Read, "other"));
    }

    #[test]
    fn r_sec_acl_3_deny_wins_over_allow() {
        let authz = Authorizer::default();
        let acls = [
            topic_acl("t", Literal, "User:alice", All, Allow),
            topic_acl("t", Prefixed, "User:*", Write, Deny),
        ];
        assert!(may(&authz, &acls, "alice", Read, "t"));
        assert!(!may(&authz, &acls, "alice", Write, "t"));
        // A deny of Read does not deny Describe (deny never implies).
        let acls = [
            topic_acl("t", Literal, "User:alice", Describe, Allow),
            topic_acl("t", Literal, "User:alice", Read, Deny),
        ];
        assert!(may(&authz, &acls, "alice", Describe, "t"));
        let all_denied = [
            topic_acl("t", Literal, "User:alice", Read, Allow),
            topic_acl("*", Literal, "User:alice", All, Deny),
        ];
        assert!(!may(&authz, &all_denied, "alice", Read, "t"));
    }

    #[test]
    fn r_sec_acl_4_implied_operations() {
        let authz = Authorizer::default();
        for op in [Read, Write, Delete, Alter] {
            let acls = [topic_acl("t", Literal, "User:alice", op, Allow)];
            assert!(may(&authz, &acls, "alice", Describe, "t"), "{op:?}");
            assert!(!may(&authz, &acls, "alice", Create, "t"), "{op:?}");
        }
        let acls = [topic_acl("t", Literal, "User:alice", AlterConfigs, Allow)];
        assert!(may(&authz, &acls, "alice", DescribeConfigs, "t"));
        assert!(!may(&authz, &acls, "alice", Describe, "t"));
        let acls = [topic_acl("t", Literal, "User:alice", Create, Allow)];
        assert!(!may(&authz, &acls, "alice", Describe, "t"));
    }

    #[test]
    fn r_sec_acl_5_wildcards_and_prefixes() {
        let authz = Authorizer::default();
        let acls = [
            topic_acl("*", Literal, "User:*", Describe, Allow),
            topic_acl("orders-", Prefixed, "User:alice", Read, Allow),
            topic_acl("orders", Literal, "User:bob", Read, Allow),
        ];
        assert!(may(&authz, &acls, "carol", Describe, "anything"));
        assert!(may(&authz, &acls, "alice", Read, "orders-eu"));
        assert!(!may(&authz, &acls, "alice", Read, "orders"));
        assert!(may(&authz, &acls, "bob", Read, "orders"));
        assert!(!may(&authz, &acls, "bob", Read, "orders-eu"));
        // A literal `*` name is the wildcard, a prefixed `*` is just a prefix.
        let star_prefix = [topic_acl("*", Prefixed, "User:alice", Read, Allow)];
        assert!(!may(&authz, &star_prefix, "alice", Read, "t"));
        // The host must match too.
        let elsewhere = [binding(
            ResourceType::Topic,
            "t",
            Literal,
            "User:alice",
            "10.9.9.9",
            Read,
            Allow,
        )];
        assert!(!may(&authz, &elsewhere, "alice", Read, "t"));
    }

    #[test]
    fn r_sec_acl_6_super_users_may_do_anything() {
        let authz = Authorizer {
            super_users: ["User:admin".to_string()].into(),
            allow_everyone_if_no_acl_found: false,
        };
        let acls = [topic_acl("*", Literal, "User:*", All, Deny)];
        assert!(may(&authz, &acls, "admin", Delete, "t"));
        assert!(!may(&authz, &acls, "alice", Describe, "t"));
    }

    #[test]
    fn r_sec_acl_7_filters_as_kafkas_acl_binding_filter() {
        let literal = topic_acl("orders", Literal, "User:alice", Read, Allow);
        let wildcard = topic_acl("*", Literal, "User:bob", Write, Deny);
        let prefix = topic_acl("ord", Prefixed, "User:alice", Read, Allow);
        let any = AclBindingFilter {
            resource_type: None,
            name: None,
            pattern_type: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        for b in [&literal, &wildcard, &prefix] {
            assert!(any.matches(b));
        }
        let named = |pattern_type| AclBindingFilter {
            name: Some("orders".into()),
            pattern_type,
            ..any.clone()
        };
        assert!(named(PatternFilter::Any).matches(&literal));
        assert!(!named(PatternFilter::Any).matches(&wildcard));
        assert!(!named(PatternFilter::Any).matches(&prefix));
        for b in [&literal, &wildcard, &prefix] {
            assert!(named(PatternFilter::Match).matches(b));
        }
        assert!(!named(PatternFilter::Exactly(Prefixed)).matches(&literal));
        let by_entry = AclBindingFilter {
            principal: Some("User:alice".into()),
            permission: Some(Allow),
            ..any.clone()
        };
        assert!(by_entry.matches(&literal) && !by_entry.matches(&wildcard));
        let groups = AclBindingFilter {
            resource_type: Some(ResourceType::Group),
            ..any
        };
        assert!(!groups.matches(&literal));
    }

    #[test]
    fn r_sec_acl_8_validation_as_create_acls() {
        let ok = topic_acl("t", Literal, "User:alice", Read, Allow);
        assert!(ok.validate().is_ok());
        let mut empty = ok.clone();
        empty.pattern.name.clear();
        assert!(empty.validate().is_err());
        let mut no_type = ok.clone();
        no_type.entry.principal = "alice".into();
        assert!(no_type.validate().is_err());
        let cluster = binding(
            ResourceType::Cluster,
            "other",
            Literal,
            "User:a",
            "*",
            Alter,
            Allow,
        );
        assert!(cluster.validate().is_err());
        let mut named = cluster;
        named.pattern.name = CLUSTER_NAME.into();
        assert!(named.validate().is_ok());
    }

    #[test]
    fn r_sec_acl_9_authorized_operations_bitfield() {
        let authz = Authorizer::default();
        let acls: BTreeSet<AclBinding> =
            [topic_acl("t", Literal, "User:alice", Read, Allow)].into();
        let alice = Principal::user("alice");
        let who = Requester {
            principal: &alice,
            host: "h",
        };
        let bits = authz.authorized_operations(&acls, who, ResourceType::Topic, "t");
        assert_eq!(bits, (1 << 3) | (1 << 8));
        assert_eq!(
            operations_bitfield(ResourceType::Group.supported_operations().iter().copied()),
            (1 << 3) | (1 << 8) | (1 << 6)
        );
    }

    #[test]
    fn r_sec_acl_10_write_on_any_topic() {
        let authz = Authorizer::default();
        let alice = Principal::user("alice");
        let who = Requester {
            principal: &alice,
            host: "h",
        };
        let set = |acls: &[AclBinding]| acls.iter().cloned().collect::<BTreeSet<_>>();
        let any =
            |acls: &[AclBinding]| authz.authorize_any(&set(acls), who, Write, ResourceType::Topic);
        assert!(!any(&[]));
        assert!(any(&[topic_acl("x", Literal, "User:alice", Write, Allow)]));
        assert!(!any(&[
            topic_acl("x", Literal, "User:alice", Write, Allow),
            topic_acl("x", Literal, "User:alice", Write, Deny),
        ]));
        assert!(!any(&[
            topic_acl("xy", Prefixed, "User:alice", Write, Allow),
            topic_acl("x", Prefixed, "User:*", All, Deny),
        ]));
        assert!(any(&[
            topic_acl("xy", Prefixed, "User:alice", Write, Allow),
            topic_acl("xyz", Prefixed, "User:*", All, Deny),
        ]));
        assert!(!any(&[
            topic_acl("*", Literal, "User:alice", Write, Allow),
            topic_acl("*", Literal, "User:alice", Write, Deny),
        ]));
        assert!(!any(&[topic_acl("x", Literal, "User:alice", Read, Allow)]));
    }

    fn arb_op() -> impl Strategy<Value = Operation> {
        prop::sample::select(Operation::EVERY.to_vec())
    }

    fn arb_acl() -> impl Strategy<Value = AclBinding> {
        (
            prop::sample::select(vec!["t", "t-1", "*", "u"]),
            prop::bool::ANY,
            prop::sample::select(vec!["User:alice", "User:*", "User:bob"]),
            prop::sample::select(vec!["*", "10.0.0.1", "10.0.0.2"]),
            arb_op(),
            prop::bool::ANY,
        )
            .prop_map(|(name, prefixed, who, host, op, allow)| {
                let pt = if prefixed { Prefixed } else { Literal };
                let perm = if allow { Allow } else { Deny };
                binding(ResourceType::Topic, name, pt, who, host, op, perm)
            })
    }

    proptest! {
        /// R-SEC-ACL-3: adding a matching DENY for the operation (or All) to any set of
        /// ACLs refuses it, whatever else allows it.
        #[test]
        fn r_sec_acl_3_a_matching_deny_always_wins(
            acls in prop::collection::vec(arb_acl(), 0..12),
            op in arb_op(),
            deny_all in prop::bool::ANY,
            open in prop::bool::ANY,
        ) {
            let authz = Authorizer { allow_everyone_if_no_acl_found: open, ..Authorizer::default() };
            let mut acls = acls;
            let denied = if deny_all { All } else { op };
            acls.push(topic_acl("t", Prefixed, "User:alice", denied, Deny));
            prop_assert!(!may(&authz, &acls, "alice", op, "t-1"));
        }

        /// R-SEC-ACL-6: a super user is allowed whatever the ACLs.
        #[test]
        fn r_sec_acl_6_a_super_user_is_always_allowed(
            acls in prop::collection::vec(arb_acl(), 0..12),
            op in arb_op(),
        ) {
            let authz = Authorizer {
                super_users: ["User:alice".to_string()].into(),
                allow_everyone_if_no_acl_found: false,
            };
            prop_assert!(may(&authz, &acls, "alice", op, "t"));
        }

        /// R-SEC-ACL-4: whatever the ACLs, being allowed Read, Write, Delete or Alter
        /// implies being allowed Describe (deny ACLs for Describe aside).
        #[test]
        fn r_sec_acl_4_describe_follows_from_any_grant_that_implies_it(
            acls in prop::collection::vec(arb_acl(), 0..12),
        ) {
            let authz = Authorizer::default();
            let describe_denied = acls.iter().any(|a| {
                a.entry.permission == Deny
                    && matches!(a.entry.operation, All | Describe)
                    && a.pattern.covers(ResourceType::Topic, "t")
                    && a.applies_to("User:alice", "10.0.0.1")
            });
            let implies = [Read, Write, Delete, Alter].into_iter().any(|op| may(&authz, &acls, "alice", op, "t"));
            if implies && !describe_denied {
                prop_assert!(may(&authz, &acls, "alice", Describe, "t"));
            }
        }
    }
}
