//! Prometheus metrics and the health check, served over plain HTTP on
//! `http_listen`: `GET /metrics` and `GET /health`.

use crate::consensus::MetadataView;
use crate::log::{PartitionLog, SyncObserver};
use chronik_core::replication::PartitionEvents;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    fsync_seconds: Histogram,
    log_end_offset: Family<Labels, Gauge>,
    high_watermark: Family<Labels, Gauge>,
    damaged_ranges: Family<Labels, Gauge>,
    raft_term: Gauge,
    raft_commit_index: Gauge,
    connections_open: Gauge,
    connections_refused: Family<Labels, Counter>,
    connections_closed: Family<Labels, Counter>,
    request_memory_bytes: Gauge,
    request_memory_waits: Counter,
    fetch_response_memory_bytes: Gauge,
    fetch_responses_shrunk: Counter,
    housekeeping_failures: Counter,
    housekeeping_failing: Gauge,
    cleaner_bytes_read: Counter,
    cleaner_bytes_written: Counter,
    cleaner_records_removed: Counter,
    cleaner_failures: Counter,
    open_segment_files: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chronik");
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        // 50 µs to ~26 s.
        let fsync_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        let log_end_offset = Family::<Labels, Gauge>::default();
        let high_watermark = Family::<Labels, Gauge>::default();
        let damaged_ranges = Family::<Labels, Gauge>::default();
        let raft_term = Gauge::default();
        let raft_commit_index = Gauge::default();
        let connections_open = Gauge::default();
        let connections_refused = Family::<Labels, Counter>::default();
        let connections_closed = Family::<Labels, Counter>::default();
        let request_memory_bytes = Gauge::default();
        let request_memory_waits = Counter::default();
        let fetch_response_memory_bytes = Gauge::default();
        let fetch_responses_shrunk = Counter::default();
        let housekeeping_failures = Counter::default();
        let housekeeping_failing = Gauge::default();
        let cleaner_bytes_read = Counter::default();
        let cleaner_bytes_written = Counter::default();
        let cleaner_records_removed = Counter::default();
        let cleaner_failures = Counter::default();
        let open_segment_files = Gauge::default();
        registry.register(
            "requests",
            "Kafka requests received, by API",
            requests.clone(),
        );
        registry.register("request_errors", "Requests or partitions answered with an error, and connections closed on bad input, by API", errors.clone());
        registry.register(
            "bytes_in",
            "Bytes of Kafka requests received",
            bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Bytes of Kafka responses sent",
            bytes_out.clone(),
        );
        registry.register(
            "log_fsync_seconds",
            "Duration of partition log fdatasyncs",
            fsync_seconds.clone(),
        );
        registry.register(
            "log_end_offset",
            "Log end offset per partition",
            log_end_offset.clone(),
        );
        registry.register(
            "high_watermark",
            "High watermark per partition",
            high_watermark.clone(),
        );
        registry.register(
            "log_damaged_ranges",
            "Corrupt offset ranges fenced in the partition's log (R-LOG-13); reads inside them answer KAFKA_STORAGE_ERROR",
            damaged_ranges.clone(),
        );
        registry.register(
            "raft_term",
            "Current term of the metadata Raft group",
            raft_term.clone(),
        );
        registry.register(
            "raft_commit_index",
            "Commit index of the metadata Raft group",
            raft_commit_index.clone(),
        );
        registry.register(
            "connections_open",
            "Open Kafka client connections",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Kafka connections accepted and closed at once because a limit was reached (R-WIRE-12), by the limit",
            connections_refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Kafka connections the broker closed for idleness, a request frame that did not arrive in time or responses left unread (R-WIRE-12), by reason",
            connections_closed.clone(),
        );
        registry.register(
            "request_memory_bytes",
            "Bytes of requests being received or handled, across connections (bounded by queued_max_request_bytes, R-WIRE-12)",
            request_memory_bytes.clone(),
        );
        registry.register(
            "request_memory_waits",
            "Request frames whose connection waited, unread, for the request memory budget",
            request_memory_waits.clone(),
        );
        registry.register(
            "fetch_response_memory_bytes",
            "Bytes of consumer Fetch answers being read or waiting to be written (bounded by fetch_response_memory_bytes, R-WIRE-12)",
            fetch_response_memory_bytes.clone(),
        );
        registry.register(
            "fetch_responses_shrunk",
            "Consumer Fetch answers made smaller, or delayed, because the response memory budget was short",
            fetch_responses_shrunk.clone(),
        );
        registry.register(
            "partition_housekeeping_failures",
            "Failed housekeeping passes (checkpoint, interval fsync, retention), summed over partitions",
            housekeeping_failures.clone(),
        );
        registry.register(
            "partitions_failing_housekeeping",
            "Partitions whose last housekeeping pass failed (logged once when each starts failing)",
            housekeeping_failing.clone(),
        );
        registry.register(
            "log_cleaner_bytes_read",
            "Bytes of sealed segments the log cleaner rewrote (R-LOG-18)",
            cleaner_bytes_read.clone(),
        );
        registry.register(
            "log_cleaner_bytes_written",
            "Bytes of cleaned segments the log cleaner wrote in their place",
            cleaner_bytes_written.clone(),
        );
        registry.register(
            "log_cleaner_records_removed",
            "Records the log cleaner removed: superseded by a later record of their key, expired tombstones, keyless",
            cleaner_records_removed.clone(),
        );
        registry.register(
            "log_cleaner_failures",
            "Cleaning passes that failed, summed over partitions",
            cleaner_failures.clone(),
        );
        registry.register(
            "open_segment_files",
            "Sealed segment files open now over every partition (bounded by max_open_segment_files, R-LOG-19)",
            open_segment_files.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            bytes_in,
            bytes_out,
            fsync_seconds,
            log_end_offset,
            high_watermark,
            damaged_ranges,
            raft_term,
            raft_commit_index,
            connections_open,
            connections_refused,
            connections_closed,
            request_memory_bytes,
            request_memory_waits,
            fetch_response_memory_bytes,
            fetch_responses_shrunk,
            housekeeping_failures,
            housekeeping_failing,
            cleaner_bytes_read,
            cleaner_bytes_written,
            cleaner_records_removed,
            cleaner_failures,
            open_segment_files,
        }
    }
}

fn reason(why: &str) -> Labels {
    vec![("reason".to_string(), why.to_string())]
}

fn api(name: &str) -> Labels {
    vec![("api".to_string(), name.to_string())]
}

impl Metrics {
    pub fn request(&self, api_name: &str, bytes: usize) {
        self.requests.get_or_create(&api(api_name)).inc();
        self.bytes_in.inc_by(bytes as u64 + 4);
    }

    pub fn error(&self, api_name: &str) {
        self.errors.get_or_create(&api(api_name)).inc();
    }

    pub fn response(&self, bytes: usize) {
        self.bytes_out.inc_by(bytes as u64);
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_ended(&self) {
        self.connections_open.dec();
    }

    pub fn connection_refused(&self, limit: &str) {
        self.connections_refused.get_or_create(&reason(limit)).inc();
    }

    pub fn connection_closed(&self, why: &str) {
        self.connections_closed.get_or_create(&reason(why)).inc();
    }

    pub fn request_memory_held(&self, delta: i64) {
        self.request_memory_bytes.inc_by(delta);
    }

    pub fn request_memory_wait(&self) {
        self.request_memory_waits.inc();
    }

    pub fn fetch_response_memory_held(&self, delta: i64) {
        self.fetch_response_memory_bytes.inc_by(delta);
    }

    pub fn cleaned(&self, outcome: &chronik_core::log::CleanOutcome) {
        self.cleaner_bytes_read.inc_by(outcome.bytes_read);
        self.cleaner_bytes_written.inc_by(outcome.bytes_written);
        self.cleaner_records_removed.inc_by(outcome.records_removed);
    }

    pub fn cleaner_failure(&self) {
        self.cleaner_failures.inc();
    }

    pub fn fetch_response_shrunk(&self) {
        self.fetch_responses_shrunk.inc();
    }

    /// The exposition text, with the gauges read fresh from the metadata view and
    /// the partition logs.
    pub fn render(
        &self,
        view: &MetadataView,
        logs: Vec<((String, i32), Arc<PartitionLog>)>,
        open_segment_files: usize,
    ) -> String {
        self.open_segment_files.set(open_segment_files as i64);
        self.raft_term.set(view.term as i64);
        self.raft_commit_index.set(view.commit_index as i64);
        self.log_end_offset.clear();
        self.high_watermark.clear();
        self.damaged_ranges.clear();
        for ((topic, partition), log) in logs {
            let labels = vec![
                ("topic".to_string(), topic),
                ("partition".to_string(), partition.to_string()),
            ];
            self.log_end_offset
                .get_or_create(&labels)
                .set(log.log_end_offset() as i64);
            self.high_watermark
                .get_or_create(&labels)
                .set(log.high_watermark() as i64);
            self.damaged_ranges
                .get_or_create(&labels)
                .set(log.damaged_range_count() as i64);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl PartitionEvents for Metrics {
    fn sync_observer(&self) -> Option<SyncObserver> {
        let fsync_seconds = self.fsync_seconds.clone();
        Some(Arc::new(move |sync| {
            let started = std::time::Instant::now();
            let outcome = sync();
            fsync_seconds.observe(started.elapsed().as_secs_f64());
            outcome
        }))
    }

    fn housekeeping_failure(&self) {
        self.housekeeping_failures.inc();
    }

    fn housekeeping_failing(&self, partitions: usize) {
        self.housekeeping_failing.set(partitions as i64);
    }
}
