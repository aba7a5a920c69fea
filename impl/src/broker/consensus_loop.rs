//! The consensus loop: a thread that owns the metadata driver
//! (`chronik_core::consensus::Driver`) and feeds it with a real clock, this broker's
//! proposals and the peer transport's messages. Every decision (forwarding, answers,
//! registration, fencing, timers) is the driver's; this file only moves inputs in and
//! effects out. It starts before anything awaits a proposal, and nothing in start-up
//! waits for it to elect a leader (R-START-1, R-START-2).

use super::raft_trace::RaftTrace;
use super::replication_trace::ReplicationTrace;
use crate::cluster::{Inbound, PeerMessage, Transport};
use crate::consensus::{Driver, Effect, Input as DriverInput, NodeError, Registration};
use crate::metadata::{ApplyOutcome, MetadataCommand};
pub use chronik_core::consensus::{MetadataView, ProposalFailure};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

type Reply = oneshot::Sender<Result<ApplyOutcome, ProposalFailure>>;

enum Input {
    Propose {
        command: MetadataCommand,
        reply: Reply,
    },
    Peer {
        from: u64,
        message: PeerMessage,
    },
    Shutdown,
}

/// The loop's input queue, created before the transport (which feeds it) and the
/// loop (which drains it).
pub struct Inputs {
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
}

impl Default for Inputs {
    fn default() -> Self {
        Self::new()
    }
}

impl Inputs {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Inputs { tx, rx }
    }

    /// Where the peer transport delivers what it receives.
    pub fn inbound(&self) -> Inbound {
        let tx = self.tx.clone();
        Arc::new(move |from, message| {
            let _ = tx.send(Input::Peer { from, message });
        })
    }
}

/// A cheap handle to the consensus loop.
#[derive(Clone)]
pub struct ConsensusHandle {
    inputs: mpsc::Sender<Input>,
    view: watch::Receiver<MetadataView>,
}

pub struct ConsensusLoop {
    handle: ConsensusHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The test aids' traces the loop writes (`--raft-trace`, `--replication-trace`).
#[derive(Default)]
pub struct Traces {
    pub raft: Option<RaftTrace>,
    pub replication: Option<Arc<ReplicationTrace>>,
}

impl ConsensusLoop {
    /// Runs `driver` (built on the recovered node, its committed metadata replayed:
    /// local work, so no request ever sees a pre-replay view, R-RECOVER-2): takes its
    /// first step here, proposing `registration` (a one-voter group elects itself and
    /// registers with its own disk only, R-START-4), then starts the loop thread.
    pub fn start(
        driver: Driver,
        registration: Registration,
        inputs: Inputs,
        transport: Option<Transport>,
        traces: Traces,
    ) -> Result<Self, NodeError> {
        let mut shell = Shell {
            driver,
            raft_trace: traces.raft,
            replication_trace: traces.replication,
            clock: Instant::now(),
            transport,
            view: watch::channel(MetadataView::default()).0,
            replies: HashMap::new(),
            next_token: 0,
        };
        let view = shell.view.subscribe();
        shell.view.send_replace(shell.driver.view());
        if !shell.step(DriverInput::Register(registration)) {
            return Err(NodeError::Raft(
                shell.driver.failed().unwrap_or("stopped").to_string(),
            ));
        }
        let Inputs { tx, rx } = inputs;
        let thread = std::thread::Builder::new()
            .name("consensus".into())
            .spawn(move || shell.run(rx))
            .map_err(|e| NodeError::Raft(format!("cannot start the consensus thread: {e}")))?;
        Ok(ConsensusLoop {
            handle: ConsensusHandle { inputs: tx, view },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> ConsensusHandle {
        self.handle.clone()
    }

    pub fn stop(&mut self) {
        let _ = self.handle.inputs.send(Input::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("consensus loop panicked");
            }
        }
    }
}

impl Drop for ConsensusLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ConsensusHandle {
    pub fn view(&self) -> MetadataView {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<MetadataView> {
        self.view.clone()
    }

    /// Proposes a command (forwarded to the leader if this node does not lead) and
    /// waits, at most `timeout`, for its outcome. When this returns `Ok`, this
    /// node's view already shows the change.
    pub async fn propose(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<ApplyOutcome, ProposalFailure> {
        let (reply, outcome) = oneshot::channel();
        self.inputs
            .send(Input::Propose { command, reply })
            .map_err(|_| ProposalFailure::Stopped)?;
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposalFailure::Stopped),
            Err(_) => Err(ProposalFailure::TimedOut),
        }
    }
}

/// The loop thread's state: the driver and what only the shell can hold (the clock,
/// the transport, the view channel and the proposers' reply channels).
struct Shell {
    driver: Driver,
    raft_trace: Option<RaftTrace>,
    replication_trace: Option<Arc<ReplicationTrace>>,
    clock: Instant,
    transport: Option<Transport>,
    view: watch::Sender<MetadataView>,
    replies: HashMap<u64, Reply>,
    next_token: u64,
}

impl Shell {
    /// With the replication trace on, a step that publishes a view publishes it
    /// before any of its messages leave, and the trace shows it: a registration or
    /// an unfencing the step sends was decided on that view, and a peer's answer to
    /// it must come after the line that shows it (C-9).
    fn show_replication(&mut self, effects: &[Effect]) {
        let Some(trace) = &self.replication_trace else {
            return;
        };
        if effects.iter().any(|e| matches!(e, Effect::PublishView)) {
            self.view.send_replace(self.driver.view());
            let view = &self.view;
            trace.show(&|| view.borrow().clone());
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn run(mut self, rx: mpsc::Receiver<Input>) {
        loop {
            let now = self.now_ms();
            let wait = Duration::from_millis(self.driver.next_tick_ms(now).saturating_sub(now));
            let input = match rx.recv_timeout(wait) {
                Ok(Input::Propose { command, reply }) => {
                    self.next_token += 1;
                    self.replies.insert(self.next_token, reply);
                    DriverInput::Propose {
                        token: self.next_token,
                        command,
                    }
                }
                Ok(Input::Peer { from, message }) => DriverInput::Peer { from, message },
                Ok(Input::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Proposers that gave up: their answers have nowhere to go.
                    self.replies.retain(|_, reply| !reply.is_closed());
                    DriverInput::Tick
                }
            };
            if !self.step(input) {
                return;
            }
        }
    }

    /// One driver step and its effects; false once the node has stopped.
    fn step(&mut self, input: DriverInput) -> bool {
        let now = self.now_ms();
        let (effects, running) = match self.driver.step(now, input) {
            Ok(effects) => (effects, true),
            Err(_) => (vec![Effect::PublishView], false),
        };
        if let Some(trace) = &mut self.raft_trace {
            trace.after_step(self.driver.node(), !running);
        }
        self.show_replication(&effects);
        for effect in effects {
            match effect {
                Effect::Send { to, message } => {
                    if let Some(t) = &self.transport {
                        t.send(to, &message);
                    }
                }
                Effect::PublishView => {
                    self.view.send_replace(self.driver.view());
                }
                Effect::Answer { token, result } => {
                    if let Some(reply) = self.replies.remove(&token) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
        running
    }
}
