//! The first SCRAM user, created before any client can connect (R-SEC-8): `chronik
//! add-scram-user` writes the salted credential to `bootstrap-credentials.json` in
//! the data directory (never the password); the broker proposes each user and
//! mechanism that the metadata lacks, in the background, and renames the file once
//! all are there, so a user deleted later through the Kafka API does not come back at
//! the next start. It creates users only: passwords change through
//! AlterUserScramCredentials.

use super::consensus_loop::ConsensusHandle;
use crate::metadata::MetadataCommand;
use chronik_core::security::scram::{Mechanism, ScramCredential};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FILE: &str = "bootstrap-credentials.json";
const APPLIED: &str = "bootstrap-credentials.applied.json";
const RETRY: Duration = Duration::from_millis(500);
/// Kafka's default for SCRAM credentials made by its tools.
pub const DEFAULT_ITERATIONS: u32 = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Bootstrap {
    user: String,
    credential: ScramCredential,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Adds (or replaces) a user's credential for one mechanism in the bootstrap file.
pub fn add(
    data_dir: &Path,
    user: &str,
    password: &str,
    mechanism: Mechanism,
) -> anyhow::Result<()> {
    anyhow::ensure!(!user.is_empty(), "the user name must not be empty");
    anyhow::ensure!(!password.is_empty(), "the password must not be empty");
    std::fs::create_dir_all(data_dir)?;
    let mut entries = read(data_dir)?;
    let salt: [u8; 32] = rand::thread_rng().gen();
    let credential =
        ScramCredential::from_password(mechanism, password, salt.to_vec(), DEFAULT_ITERATIONS);
    entries.retain(|e| !(e.user == user && e.credential.mechanism == mechanism));
    entries.push(Bootstrap {
        user: user.to_string(),
        credential,
    });
    let file = path(data_dir);
    let temporary = file.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(&entries)?)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, &file)?;
    Ok(())
}

fn read(data_dir: &Path) -> anyhow::Result<Vec<Bootstrap>> {
    match std::fs::read(path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path(data_dir).display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path(data_dir).display())),
    }
}

/// Checked at start-up, so a damaged file stops the broker with its name rather
/// than leave the cluster without its admin user.
pub fn pending(data_dir: &Path) -> anyhow::Result<bool> {
    Ok(!read(data_dir)?.is_empty())
}

/// Proposes the bootstrap credentials the metadata lacks until all are applied,
/// then retires the file. Runs in the background: start-up waits on no consensus.
pub async fn apply(consensus: ConsensusHandle, data_dir: PathBuf, timeout: Duration) {
    let entries = match read(&data_dir) {
        Ok(entries) if !entries.is_empty() => entries,
        Ok(_) => return,
        Err(e) => return tracing::error!(error = %e, "bootstrap credentials unreadable"),
    };
    loop {
        let state = consensus.view().state;
        let missing: Vec<&Bootstrap> = entries
            .iter()
            // Only missing users: with the file on several nodes (each with its own
            // salt) the first one applied wins, where "differs" would make the nodes
            // overwrite each other forever.
            .filter(|e| {
                let stored = state.scram_credentials.get(&e.user);
                stored
                    .and_then(|m| m.get(&e.credential.mechanism))
                    .is_none()
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        for entry in missing {
            let command = MetadataCommand::UpsertScramCredential {
                user: entry.user.clone(),
                credential: entry.credential.clone(),
            };
            if let Err(e) = consensus.propose(command, timeout).await {
                tracing::debug!(user = %entry.user, failure = ?e, "bootstrap credential not applied yet");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    match std::fs::rename(path(&data_dir), data_dir.join(APPLIED)) {
        Ok(()) => tracing::info!(users = entries.len(), "bootstrap SCRAM credentials applied"),
        Err(e) => {
            tracing::error!(error = %e, "bootstrap credentials applied but the file could not be retired")
        }
    }
}
