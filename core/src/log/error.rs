use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything that can go wrong in the partition log. Storage failures are typed so
/// the broker can answer KAFKA_STORAGE_ERROR instead of dropping a record (R-LOG-9).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A well-formed batch whose records disagree with its header (R-LOG-14).
    #[error("invalid records: {0}")]
    InvalidRecord(String),
    #[error("record batch of {size} bytes is over the limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("corrupt log data in {path} at byte {position} (near offset {offset}): {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        offset: u64,
        reason: String,
    },
    /// A read touched offsets whose bytes are damaged (R-LOG-13). The rest of the log
    /// is still served; only this range answers an error until it is repaired.
    #[error(
        "damaged log data in {path} at bytes [{position}, {end_position}): offsets \
         [{first_offset}, {end_offset}) cannot be read: {reason}"
    )]
    Damaged {
        path: PathBuf,
        position: u64,
        end_position: u64,
        first_offset: u64,
        end_offset: u64,
        reason: String,
    },
    #[error(
        "corrupt checkpoint {path}: {reason}. It holds the partition's log start offset, \
         high watermark and recovery marks, which are not guessed: restore it from a copy. \
         A single node may instead move it aside, and the log start and high watermark are \
         rebuilt from the log (records below a DeleteRecords point come back); a cluster \
         member should not, since the recovery marks keep a short copy from being counted on"
    )]
    CorruptCheckpoint { path: PathBuf, reason: String },
    #[error("log {dir} is offline after a failed fsync; appends resume once it can be resynced")]
    Offline { dir: PathBuf },
    /// The batch repeats one already appended (a producer retry): this is where it went,
    /// and the log's failure epoch when it was found (a failed fsync that cuts the
    /// original moves it on; R-LOG-9).
    #[error("duplicate of the batch at offset {base_offset}")]
    DuplicateSequence { base_offset: u64, written_in: u64 },
    #[error("producer {producer_id}: sequence {got} where {expected} was expected")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("the group committer has stopped; the log is shutting down")]
    ShuttingDown,
    #[error("invalid log configuration: {0}")]
    Config(String),
}

impl LogError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// True for failures of the disk (not of the request), which Kafka reports as
    /// KAFKA_STORAGE_ERROR.
    pub fn is_storage_error(&self) -> bool {
        matches!(
            self,
            LogError::Io { .. }
                | LogError::Corrupt { .. }
                | LogError::Damaged { .. }
                | LogError::CorruptCheckpoint { .. }
                | LogError::Offline { .. }
        )
    }

    /// True when the disk is full: the append can succeed later, once space returns.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
