//! The core and the wire layer stay deterministic because the compiler keeps async
//! runtimes, sockets and thread pools out of their dependencies (ARCHITECTURE.md,
//! issue 10). This reads the workspace's Cargo.lock and fails when any crate that
//! brings them is reachable from `chronik-core` or `chronik-protocol`.
//!
//! Cargo.lock does not say which edges are dev-dependencies, so the walk also follows
//! the core's test-only crates: a forbidden crate reached only that way is reported
//! too, and belongs in the shell's tests instead.

use std::collections::{BTreeMap, BTreeSet};

/// Crates that run tasks, spawn threads, or open sockets.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "smol",
    "async-executor",
    "futures-executor",
    "rayon",
    "rayon-core",
    "threadpool",
    "hyper",
    "reqwest",
];

/// Each package's dependencies by name, merged over the versions the lock holds.
fn lock_graph() -> BTreeMap<String, BTreeSet<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let text = std::fs::read_to_string(path).expect("the workspace's Cargo.lock is readable");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in text.split("[[package]]").skip(1) {
        let Some(name) = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let deps = package
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split(['"', ' ']).next())
            .map(str::to_string);
        graph.entry(name.to_string()).or_default().extend(deps);
    }
    graph
}

/// Every crate reachable from `root`, each with the path that reaches it.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::from([(root.to_string(), root.to_string())]);
    let mut stack = vec![root.to_string()];
    while let Some(name) = stack.pop() {
        let path = found[&name].clone();
        for dep in graph.get(&name).into_iter().flatten() {
            if !found.contains_key(dep) {
                found.insert(dep.clone(), format!("{path} -> {dep}"));
                stack.push(dep.clone());
            }
        }
    }
    found
}

#[test]
fn the_core_and_the_wire_layer_reach_no_runtime_socket_or_thread_pool() {
    let graph = lock_graph();
    for root in ["chronik-core", "chronik-protocol"] {
        assert!(graph.contains_key(root), "{root} is not in Cargo.lock");
        let found = reachable(&graph, root);
        let bad: Vec<&String> = FORBIDDEN.iter().filter_map(|f| found.get(*f)).collect();
        assert!(bad.is_empty(), "{root} reaches {bad:#?}");
    }
}

#[test]
fn the_walk_finds_what_the_shell_depends_on() {
    // The check can fail: the broker itself reaches tokio.
    let found = reachable(&lock_graph(), "chronik");
    assert!(
        found.contains_key("tokio"),
        "the walk missed the shell's tokio"
    );
    assert!(found.contains_key("chronik-protocol"));
}
