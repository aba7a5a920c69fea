//! The storage seam lives in the core (`chronik_core::disk`); the shell adds the
//! real file system behind it.

mod real;

pub use chronik_core::disk::*;
pub use real::RealDisk;
