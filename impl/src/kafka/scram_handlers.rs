//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM users
//! managed through the Kafka API, stored salted in the replicated metadata (R-SEC-3).
//! The client sends the salted password, never the password itself.

use super::authorize::Caller;
use super::common::{propose, str_bytes};
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::MetadataCommand;
use chronik_core::errors::ErrorCode;
use chronik_core::security::acl::Operation;
use chronik_core::security::scram::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};

/// Needs Describe on the cluster (R-SEC-ACL table); refused whole otherwise.
pub fn describe(
    broker: &Broker,
    caller: &Caller,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !caller.may_cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let view = broker.consensus.view();
    let stored = &view.state.scram_credentials;
    let asked: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.into_iter().map(|u| u.name.to_string()).collect(),
        _ => stored.keys().cloned().collect(),
    };
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<&String> = asked.iter().filter(|u| !seen.insert(*u)).collect();
    let mut answered = BTreeSet::new();
    let results = asked
        .iter()
        .filter(|user| answered.insert(*user))
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            if duplicated.contains(user) {
                return failed_describe(
                    result,
                    errors::DUPLICATE_RESOURCE,
                    "User was named more than once",
                );
            }
            match stored.get(user) {
                None => failed_describe(
                    result,
                    errors::RESOURCE_NOT_FOUND,
                    &format!("Attempt to describe a user credential that does not exist: {user}"),
                ),
                Some(mechanisms) => result.with_credential_infos(
                    mechanisms
                        .values()
                        .map(|c| {
                            CredentialInfo::default()
                                .with_mechanism(c.mechanism.code())
                                .with_iterations(c.iterations as i32)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn failed_describe(
    result: DescribeUserScramCredentialsResult,
    code: ErrorCode,
    message: &str,
) -> DescribeUserScramCredentialsResult {
    result
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}

/// One user's requested changes, checked before anything is proposed.
#[derive(Default)]
struct UserChanges {
    commands: Vec<MetadataCommand>,
    mechanisms: BTreeSet<i8>,
    error: Option<(ErrorCode, String)>,
}

impl UserChanges {
    fn refuse(&mut self, code: ErrorCode, message: String) {
        self.error.get_or_insert((code, message));
    }

    /// Kafka refuses a request naming the same user and mechanism twice.
    fn claim(&mut self, mechanism: i8) -> bool {
        if self.mechanisms.insert(mechanism) {
            return true;
        }
        self.refuse(
            errors::DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request".into(),
        );
        false
    }
}

/// Needs Alter on the cluster; without it every user's result is
/// CLUSTER_AUTHORIZATION_FAILED and nothing changes.
pub async fn alter(
    broker: &Broker,
    caller: &Caller,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let allowed = caller.may_cluster(Operation::Alter);
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        let changes = users.entry(user.clone()).or_default();
        match checked_mechanism(&user, deletion.mechanism) {
            Err((code, message)) => changes.refuse(code, message),
            Ok(mechanism) if changes.claim(deletion.mechanism) => changes
                .commands
                .push(MetadataCommand::DeleteScramCredential { user, mechanism }),
            Ok(_) => {}
        }
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        let changes = users.entry(user.clone()).or_default();
        let checked = checked_mechanism(&user, upsertion.mechanism).and_then(|mechanism| {
            checked_credential(
                mechanism,
                upsertion.iterations,
                &upsertion.salt,
                &upsertion.salted_password,
            )
        });
        match checked {
            Err((code, message)) => changes.refuse(code, message),
            Ok(credential) if changes.claim(upsertion.mechanism) => changes
                .commands
                .push(MetadataCommand::UpsertScramCredential { user, credential }),
            Ok(_) => {}
        }
    }
    let mut results = Vec::with_capacity(users.len());
    for (user, changes) in users {
        let outcome = match changes.error {
            _ if !allowed => Err((
                errors::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.".to_string(),
            )),
            Some(error) => Err(error),
            None => apply_all(broker, changes.commands).await,
        };
        let mut result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
        if let Err((code, message)) = outcome {
            result = result
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message)));
        }
        results.push(result);
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

async fn apply_all(
    broker: &Broker,
    commands: Vec<MetadataCommand>,
) -> Result<(), (ErrorCode, String)> {
    for command in commands {
        propose(broker, command).await?;
    }
    Ok(())
}

fn checked_mechanism(user: &str, code: i8) -> Result<Mechanism, (ErrorCode, String)> {
    if user.is_empty() {
        return Err((
            errors::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty".into(),
        ));
    }
    Mechanism::from_code(code).ok_or_else(|| {
        (
            errors::UNSUPPORTED_SASL_MECHANISM,
            format!("Unknown SCRAM mechanism code {code}"),
        )
    })
}

fn checked_credential(
    mechanism: Mechanism,
    iterations: i32,
    salt: &[u8],
    salted_password: &[u8],
) -> Result<ScramCredential, (ErrorCode, String)> {
    let unacceptable = |message: String| (errors::UNACCEPTABLE_CREDENTIAL, message);
    let iterations = u32::try_from(iterations).unwrap_or(0);
    if iterations < MIN_ITERATIONS {
        return Err(unacceptable(format!(
            "Too few iterations: at least {MIN_ITERATIONS}"
        )));
    }
    if iterations > MAX_ITERATIONS {
        return Err(unacceptable(format!(
            "Too many iterations: at most {MAX_ITERATIONS}"
        )));
    }
    if salt.is_empty() || salted_password.is_empty() {
        return Err(unacceptable(
            "Salt and salted password must not be empty".into(),
        ));
    }
    Ok(ScramCredential::from_salted_password(
        mechanism,
        salted_password,
        salt.to_vec(),
        iterations,
    ))
}
