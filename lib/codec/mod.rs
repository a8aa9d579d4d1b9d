//! The codecs: the lesson of phase 03, written here by hand.
//!
//! - [`bits`]: the bit writer and reader every bit-level codec uses.
//! - [`varint`]: LEB128 varints and zigzag, for framing and small integers.
//! - [`rle`]: run-length coding of zero runs.
//! - [`delta`]: timestamps as delta-of-deltas, tick-scaled, in Gorilla buckets
//!   or varints with zero runs.
//! - [`xor`]: Gorilla XOR coding of `f64` values.

pub mod adaptive;
pub mod bits;
pub mod delta;
pub mod intpack;
pub mod rle;
pub mod varint;
pub mod xor;
