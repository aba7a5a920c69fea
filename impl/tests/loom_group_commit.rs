//! loom: the group-commit hand-off between producers and the flusher (R-LOG-4).
//! Also the per-log coalesced sync that blocking appends use.
//! Run with `cargo test -p chronik --release --features loom --test loom_group_commit`.
//! Checked in every interleaving (bounded by LOOM_MAX_PREEMPTIONS):
//! - no acknowledgement before the fsync that covers the acknowledged write;
//! - no lost wake-up: every producer's wait ends (loom reports a deadlock otherwise);
//! - acknowledgements arrive in enqueue order, and the durable data is the written
//!   data in write order.
#![cfg(feature = "loom")]

use chronik::log::{GroupCommitter, LogError, SyncTarget};
use loom::sync::Mutex;
use std::sync::Arc;

/// A disk behind the trait: writes land in `written`; a sync makes all of them durable.
#[derive(Default)]
struct FakeDisk {
    state: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    written: Vec<usize>,
    durable: usize,
    /// Producer ids in the order their requests were queued.
    enqueued: Vec<usize>,
    /// Producer ids in the order they were acknowledged.
    acked: Vec<usize>,
}

impl SyncTarget for FakeDisk {
    fn sync(&self) -> Result<(), LogError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.durable = st.written.len();
        Ok(())
    }
}

fn run(producers: usize) {
    loom::model(move || {
        let committer = GroupCommitter::start();
        let disk = Arc::new(FakeDisk::default());
        // Write and enqueue under one lock, as a partition log does, so enqueue order
        // is write order.
        let order = Arc::new(Mutex::new(()));
        let handles: Vec<_> = (0..producers)
            .map(|id| {
                let queue = committer.queue();
                let disk = Arc::clone(&disk);
                let order = Arc::clone(&order);
                loom::thread::spawn(move || {
                    let (tx, rx) = std::sync::mpsc::channel();
                    {
                        let _g = order.lock().unwrap_or_else(|p| p.into_inner());
                        {
                            let mut st = disk.state.lock().unwrap_or_else(|p| p.into_inner());
                            st.written.push(id);
                            st.enqueued.push(id);
                        }
                        let for_ack = Arc::clone(&disk);
                        queue.submit(
                            Arc::clone(&disk) as Arc<dyn SyncTarget>,
                            Box::new(move |result| {
                                let mut st =
                                    for_ack.state.lock().unwrap_or_else(|p| p.into_inner());
                                let position = st.written.iter().position(|w| *w == id);
                                // No ack before the fsync that covers this write.
                                assert!(result.is_ok());
                                assert!(
                                    position.is_some_and(|p| p < st.durable),
                                    "acked before durable"
                                );
                                st.acked.push(id);
                                let _ = tx.send(());
                            }),
                        );
                    }
                    // The blocking form must also return once the write is durable.
                    let r = queue.sync(Arc::clone(&disk) as Arc<dyn SyncTarget>);
                    assert!(r.is_ok());
                    let st = disk.state.lock().unwrap_or_else(|p| p.into_inner());
                    assert!(
                        st.durable
                            >= st
                                .written
                                .iter()
                                .position(|w| *w == id)
                                .map_or(0, |p| p + 1)
                    );
                    drop(st);
                    rx
                })
            })
            .collect();
        let receivers: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("producer panicked")))
            .collect();
        drop(committer); // drains the queue and joins the flusher
        for rx in receivers {
            assert!(rx.try_recv().is_ok(), "a request was never acknowledged");
        }
        let st = disk.state.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            st.acked, st.enqueued,
            "acknowledgements out of enqueue order"
        );
        assert_eq!(st.durable, producers);
    });
}

#[test]
fn r_log_4_two_producers_and_the_flusher() {
    run(2);
}

#[test]
fn r_log_4_three_producers_and_the_flusher() {
    run(3);
}

/// A file behind a lock: `written` grows with each write; a sync captures how much
/// was written when it starts and makes that much durable when it ends, so writes
/// landing during a sync are not covered by it.
#[derive(Default)]
struct FakeFile {
    state: Mutex<(usize, usize)>, // (written, durable)
}

fn run_coalescer(producers: usize) {
    loom::model(move || {
        let coalescer = Arc::new(chronik::log::SyncCoalescer::new());
        let file = Arc::new(FakeFile::default());
        let syncs = Arc::new(Mutex::new(0usize));
        let handles: Vec<_> = (0..producers)
            .map(|_| {
                let (coalescer, file, syncs) = (
                    Arc::clone(&coalescer),
                    Arc::clone(&file),
                    Arc::clone(&syncs),
                );
                loom::thread::spawn(move || {
                    let mine = {
                        let mut st = file.state.lock().unwrap_or_else(|p| p.into_inner());
                        st.0 += 1;
                        st.0
                    };
                    let result = coalescer.wait_durable(
                        || Ok(file.state.lock().unwrap_or_else(|p| p.into_inner()).1 >= mine),
                        || {
                            let captured = file.state.lock().unwrap_or_else(|p| p.into_inner()).0;
                            *syncs.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                            let mut st = file.state.lock().unwrap_or_else(|p| p.into_inner());
                            st.1 = st.1.max(captured);
                            Ok(())
                        },
                    );
                    assert!(result.is_ok());
                    // No acknowledgement before the sync that covers this write.
                    assert!(file.state.lock().unwrap_or_else(|p| p.into_inner()).1 >= mine);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap_or_else(|_| panic!("producer panicked"));
        }
        let syncs = *syncs.lock().unwrap_or_else(|p| p.into_inner());
        assert!(
            syncs >= 1 && syncs <= producers,
            "{syncs} syncs for {producers} writes"
        );
    });
}

#[test]
fn r_log_4_coalesced_sync_two_producers() {
    run_coalescer(2);
}

#[test]
fn r_log_4_coalesced_sync_three_producers() {
    run_coalescer(3);
}
