//! chronik-benches: criterion benches and the load tool
