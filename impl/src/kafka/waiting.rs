//! Waiting in a request handler for a decision of the core (a produce's
//! acknowledgement, a DeleteRecords' low watermark): re-checked whenever data
//! arrives, a watermark moves or the metadata changes.

use crate::broker::shared::Broker;

/// Waits until `check` decides, re-checking whenever data arrives, a high watermark
/// or a follower's log start moves or the metadata changes; `None` once the
/// deadline passes undecided.
pub async fn wait_until<T>(
    broker: &Broker,
    deadline: tokio::time::Instant,
    check: impl Fn() -> Option<T>,
) -> Option<T> {
    let mut metadata = broker.consensus.subscribe();
    loop {
        let notified = broker.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        metadata.borrow_and_update();
        if let Some(outcome) = check() {
            return Some(outcome);
        }
        let woken = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                _ = &mut notified => {}
                _ = metadata.changed() => {}
            }
        })
        .await;
        if woken.is_err() {
            return check();
        }
    }
}
