#![no_main]

// The counting allocator serves huge reservations as address space, as the
// broker's GuardedAlloc does, and lets the target bound what it uses.
#[global_allocator]
static ALLOCATOR: chronik_fuzz::alloc::Counting = chronik_fuzz::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| chronik_fuzz::raft_wal(data));
