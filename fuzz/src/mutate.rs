//! A seeded mutator for runs without libFuzzer (stable `cargo test`): no coverage
//! feedback, so it finds less per execution; the same seed gives the same inputs.

/// splitmix64: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values that lengths, counts and varints go wrong at.
const INTERESTING: [i64; 12] = [
    0,
    1,
    -1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    -0x8000_0000,
    0x1_0000,
];

/// The longest input a mutation may make.
const MAX_LEN: usize = 64 << 10;

/// Applies one to eight random edits to a copy of `base`, sometimes splicing in
/// part of `other` (another corpus entry).
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        edit(rng, &mut data, other);
    }
    data.truncate(MAX_LEN);
    data
}

fn edit(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let at = rng.below(data.len() + 1);
    match rng.below(9) {
        0 if at < data.len() => data[at] ^= 1 << rng.below(8),
        1 if at < data.len() => data[at] = rng.next_u64() as u8,
        2 => data.insert(at, rng.next_u64() as u8),
        3 if at < data.len() => {
            let end = (at + 1 + rng.below(16)).min(data.len());
            data.drain(at..end);
        }
        4 => overwrite_int(rng, data, at),
        5 if !other.is_empty() => {
            let from = rng.below(other.len());
            let end = (from + 1 + rng.below(64)).min(other.len());
            data.splice(at..at, other[from..end].iter().copied());
        }
        6 if !data.is_empty() => {
            let from = rng.below(data.len());
            let end = (from + 1 + rng.below(32)).min(data.len());
            let chunk = data[from..end].to_vec();
            data.splice(at..at, chunk);
        }
        7 => data.truncate(at),
        _ if at < data.len() => data[at] = data[at].wrapping_add(1 + rng.below(4) as u8),
        _ => data.push(rng.next_u64() as u8),
    }
}

/// Writes an interesting value as a big-endian integer of 1, 2, 4 or 8 bytes.
fn overwrite_int(rng: &mut Rng, data: &mut [u8], at: usize) {
    let value = INTERESTING[rng.below(INTERESTING.len())];
    let width = [1, 2, 4, 8][rng.below(4)];
    let bytes = value.to_be_bytes();
    for (i, b) in bytes[8 - width..].iter().enumerate() {
        if let Some(slot) = data.get_mut(at + i) {
            *slot = *b;
        }
    }
}
