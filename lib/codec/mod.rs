//! The codecs: the lesson of phase 03, written here by hand.
//!
//! - [`bits`]: the bit writer and reader every bit-level codec uses.
//! - [`varint`]: LEB128 varints and zigzag, for framing and small integers.
//! - [`rle`]: run-length coding of zero runs.
//! - [`delta`]: timestamps as delta-of-deltas, tick-scaled, in Gorilla buckets
//!   or varints with zero runs.
//! - [`xor`]: Gorilla XOR coding of `f64` values.
//! - [`adaptive`] and [`intpack`]: phase 03b's per-block value codec.
//! - [`ans`], [`entropy`], [`adaptive_entropy`]: phase 03c's entropy coder
//!   (tANS), integers coded in bins, and the value codec built on them.

pub mod adaptive;
pub mod adaptive_entropy;
pub mod ans;
pub mod bits;
pub mod delta;
pub mod entropy;
pub mod intpack;
pub mod rle;
pub mod varint;
pub mod xor;
