//! CreateAcls, DescribeAcls and DeleteAcls: the wire codes to the core's ACL types
//! and back, stored through the metadata group (R-SEC-ACL-11, R-SEC-ACL-12).

use super::authorize::Caller;
use super::common::{propose, str_bytes};
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::MetadataCommand;
use chronik_core::errors::ErrorCode;
use chronik_core::security::acl::{
    AclBinding, AclBindingFilter, AclEntry, Operation, PatternFilter, PatternType, Permission,
    ResourcePattern, ResourceType,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const NO_AUTHORIZER: &str = "No Authorizer is configured.";
/// Kafka's ANY code, shared by resource types, pattern types, operations and
/// permissions: a filter field that matches everything.
const ANY: i8 = 1;

/// The refusal every ACL API gives before looking at its input: CLUSTER_AUTHORIZATION_FAILED
/// without `operation` on the cluster, SECURITY_DISABLED with no authorizer (as Kafka).
fn refusal(caller: &Caller, operation: Operation) -> Option<(ErrorCode, &'static str)> {
    if !caller.may_cluster(operation) {
        Some((
            errors::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.",
        ))
    } else if !caller.authorizer_enabled() {
        Some((errors::SECURITY_DISABLED, NO_AUTHORIZER))
    } else {
        None
    }
}

/// A binding CreateAcls asked for, or why it is INVALID_REQUEST.
fn binding_of(c: &AclCreation) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_code(c.resource_type)
        .ok_or_else(|| format!("Invalid resource type {}", c.resource_type))?;
    let pattern_type = PatternType::from_code(c.resource_pattern_type)
        .ok_or_else(|| format!("Invalid pattern type {}", c.resource_pattern_type))?;
    let operation = Operation::from_code(c.operation)
        .ok_or_else(|| format!("Invalid operation {}", c.operation))?;
    let permission = Permission::from_code(c.permission_type)
        .ok_or_else(|| format!("Invalid permission type {}", c.permission_type))?;
    let binding = AclBinding {
        pattern: ResourcePattern {
            resource_type,
            name: c.resource_name.to_string(),
            pattern_type,
        },
        entry: AclEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation,
            permission,
        },
    };
    binding.validate()?;
    Ok(binding)
}

pub async fn create_acls(
    broker: &Broker,
    caller: &Caller,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |code: ErrorCode, message: Option<&str>| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(message.map(str_bytes))
    };
    if let Some((code, message)) = refusal(caller, Operation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| result(code, Some(message)))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<Result<AclBinding, String>> =
        request.creations.iter().map(binding_of).collect();
    let bindings: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let stored = if bindings.is_empty() {
        Ok(())
    } else {
        propose(broker, MetadataCommand::CreateAcls { bindings })
            .await
            .map(|_| ())
    };
    let results = parsed
        .iter()
        .map(|p| match (p, &stored) {
            (Err(message), _) => result(errors::INVALID_REQUEST, Some(message)),
            (Ok(_), Ok(())) => result(errors::NONE, None),
            (Ok(_), Err((code, message))) => result(*code, Some(message)),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// The wire fields of a DescribeAcls or DeleteAcls filter.
struct WireFilter<'a> {
    resource_type: i8,
    name: Option<&'a StrBytes>,
    pattern_type: i8,
    principal: Option<&'a StrBytes>,
    host: Option<&'a StrBytes>,
    operation: i8,
    permission: i8,
}

/// A filter, or why it is INVALID_REQUEST: an UNKNOWN (0) or undefined code
/// anywhere, as Kafka refuses a filter that `isUnknown`.
fn filter_of(w: WireFilter<'_>) -> Result<AclBindingFilter, String> {
    fn any_or<T>(code: i8, parse: fn(i8) -> Option<T>, what: &str) -> Result<Option<T>, String> {
        if code == ANY {
            return Ok(None);
        }
        parse(code)
            .map(Some)
            .ok_or_else(|| format!("Unknown {what} {code} in the filter"))
    }
    Ok(AclBindingFilter {
        resource_type: any_or(w.resource_type, ResourceType::from_code, "resource type")?,
        name: w.name.map(|n| n.to_string()),
        pattern_type: PatternFilter::from_code(w.pattern_type)
            .ok_or_else(|| format!("Unknown pattern type {} in the filter", w.pattern_type))?,
        principal: w.principal.map(|p| p.to_string()),
        host: w.host.map(|h| h.to_string()),
        operation: any_or(w.operation, Operation::from_code, "operation")?,
        permission: any_or(w.permission, Permission::from_code, "permission type")?,
    })
}

pub fn describe_acls(
    broker: &Broker,
    caller: &Caller,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let refused = |code: ErrorCode, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = refusal(caller, Operation::Describe) {
        return refused(code, message);
    }
    let filter = match filter_of(WireFilter {
        resource_type: r.resource_type_filter,
        name: r.resource_name_filter.as_ref(),
        pattern_type: r.pattern_type_filter,
        principal: r.principal_filter.as_ref(),
        host: r.host_filter.as_ref(),
        operation: r.operation,
        permission: r.permission_type,
    }) {
        Ok(f) => f,
        Err(message) => return refused(errors::INVALID_REQUEST, &message),
    };
    let view = broker.consensus.view();
    let mut by_pattern: BTreeMap<&ResourcePattern, Vec<AclDescription>> = BTreeMap::new();
    for b in view.state.acls.iter().filter(|b| filter.matches(b)) {
        by_pattern.entry(&b.pattern).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(&b.entry.principal))
                .with_host(str_bytes(&b.entry.host))
                .with_operation(b.entry.operation.code())
                .with_permission_type(b.entry.permission.code()),
        );
    }
    let resources = by_pattern
        .into_iter()
        .map(|(p, acls)| {
            DescribeAclsResource::default()
                .with_resource_type(p.resource_type.code())
                .with_resource_name(str_bytes(&p.name))
                .with_pattern_type(p.pattern_type.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(str_bytes(&b.pattern.name))
        .with_pattern_type(b.pattern.pattern_type.code())
        .with_principal(str_bytes(&b.entry.principal))
        .with_host(str_bytes(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}

/// Each filter's matches are taken from this broker's view and the exact bindings
/// are removed through the metadata group, so a binding created after the view was
/// read is never removed by a filter that did not see it.
pub async fn delete_acls(
    broker: &Broker,
    caller: &Caller,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: ErrorCode, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some((code, message)) = refusal(caller, Operation::Alter) {
        let results = r.filters.iter().map(|_| failed(code, message)).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let view = broker.consensus.view();
    let matched: Vec<Result<Vec<AclBinding>, String>> = r
        .filters
        .iter()
        .map(|f| {
            let filter = filter_of(WireFilter {
                resource_type: f.resource_type_filter,
                name: f.resource_name_filter.as_ref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref(),
                host: f.host_filter.as_ref(),
                operation: f.operation,
                permission: f.permission_type,
            })?;
            Ok(view
                .state
                .acls
                .iter()
                .filter(|b| filter.matches(b))
                .cloned()
                .collect())
        })
        .collect();
    let mut doomed: Vec<AclBinding> = matched.iter().flatten().flatten().cloned().collect();
    doomed.sort();
    doomed.dedup();
    let removed = if doomed.is_empty() {
        Ok(())
    } else {
        propose(broker, MetadataCommand::DeleteAcls { bindings: doomed })
            .await
            .map(|_| ())
    };
    let results = matched
        .into_iter()
        .map(|m| match (m, &removed) {
            (Err(message), _) => failed(errors::INVALID_REQUEST, &message),
            (Ok(_), Err((code, message))) => failed(*code, message),
            (Ok(bindings), Ok(())) => DeleteAclsFilterResult::default()
                .with_matching_acls(bindings.iter().map(matching_acl).collect()),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
