//! Trace validation against the directories model (spec/recover.md R-RECOVER-8,
//! issue 11): a trace of what a broker showed is accepted when every step is one the
//! model allows, with the hidden durable commit index followed as candidates, and the
//! first step the model does not allow is rejected with what it allows instead.

use chronik_model::dirs::trace::{DirEvent, DirObservation, DirTrace};
use chronik_model::dirs::DCmd;

fn shows(applied: u8, live: Option<u8>, open: Option<u8>, dir: Option<u8>) -> DirObservation {
    DirObservation {
        running: true,
        applied,
        live,
        open,
        dir,
        durable: None,
    }
}

fn crashed(dir: Option<u8>) -> DirObservation {
    DirObservation {
        running: false,
        applied: 0,
        live: None,
        open: None,
        dir,
        durable: None,
    }
}

fn started(
    durable: u8,
    applied: u8,
    live: Option<u8>,
    open: Option<u8>,
    dir: Option<u8>,
) -> DirObservation {
    DirObservation {
        durable: Some(durable),
        ..shows(applied, live, open, dir)
    }
}

/// The broker registers, topic 1 is created and claimed, deleted and created again as
/// topic 2, whose directory replaces topic 1's. It crashes; the commit index it had
/// synced covers only the first creation, so its replay names topic 1 while the
/// directory is stamped with topic 2: the start leaves it alone (its view is not
/// complete before this start's registration), and once the view catches up the
/// directory is topic 2's again.
fn a_start_that_catches_up() -> Vec<(DirEvent, Vec<DCmd>, DirObservation)> {
    use DCmd::*;
    let first = vec![Register(1), Create(1)];
    let again = vec![Register(1), Create(1), Delete(1), Create(2)];
    let all = vec![Register(1), Create(1), Delete(1), Create(2), Register(2)];
    vec![
        (DirEvent::Start, vec![], started(0, 0, None, None, None)),
        (DirEvent::View, first, shows(2, Some(1), Some(1), Some(1))),
        (
            DirEvent::View,
            again.clone(),
            shows(4, Some(2), Some(2), Some(2)),
        ),
        (DirEvent::Crash, again.clone(), crashed(Some(2))),
        (
            DirEvent::Start,
            again,
            started(2, 2, Some(1), None, Some(2)),
        ),
        (DirEvent::View, all, shows(5, Some(2), Some(2), Some(2))),
    ]
}

fn validate(steps: &[(DirEvent, Vec<DCmd>, DirObservation)]) -> Result<(), String> {
    let mut trace = DirTrace::new();
    for (event, committed, observed) in steps {
        trace
            .observe(*event, committed, observed)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn r_recover_8_a_trace_the_model_allows_is_accepted() {
    validate(&a_start_that_catches_up()).unwrap();
}

/// claim-from-stale-view as a real run shows it: the start replaces topic 2's
/// directory with a new one for topic 1, from a view that is not complete yet.
#[test]
fn r_recover_8_a_claim_from_a_stale_view_is_rejected_at_its_step() {
    let mut steps = a_start_that_catches_up();
    steps[4].2 = started(2, 2, Some(1), Some(1), Some(1));
    let rejected = validate(&steps).unwrap_err();
    assert!(rejected.starts_with("step 5 (Start)"), "{rejected}");
    assert!(
        rejected.contains("open: None, dir: Some(2)"),
        "the model defers: {rejected}"
    );
}

/// strays-before-registered: the stray directory of deleted topic 1 removed by the
/// start itself, before its registration is applied.
#[test]
fn r_recover_8_a_stray_removed_before_registration_is_rejected() {
    use DCmd::*;
    let gone = vec![Register(1), Create(1), Delete(1)];
    let steps = vec![
        (DirEvent::Start, vec![], started(0, 0, None, None, None)),
        (
            DirEvent::View,
            gone[..2].to_vec(),
            shows(2, Some(1), Some(1), Some(1)),
        ),
        // It applies the deletion and dies before removing the directory.
        (DirEvent::Crash, gone.clone(), crashed(Some(1))),
        (
            DirEvent::Start,
            gone.clone(),
            started(3, 3, None, None, None),
        ),
    ];
    let rejected = validate(&steps).unwrap_err();
    assert!(rejected.starts_with("step 4 (Start)"), "{rejected}");
    let mut kept = steps;
    kept[3].2 = started(3, 3, None, None, Some(1));
    validate(&kept).unwrap();
}

/// skip-replay: a start that applies less than its durable commit index covers.
#[test]
fn r_recover_2_a_start_that_does_not_replay_is_rejected() {
    let mut steps = a_start_that_catches_up();
    steps[4].2 = started(2, 0, None, None, Some(2));
    let rejected = validate(&steps).unwrap_err();
    assert!(rejected.starts_with("step 5 (Start)"), "{rejected}");
}
