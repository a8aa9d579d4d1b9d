//! Table-based asymmetric numeral systems (tANS): an entropy coder that
//! spends about `log2(1 / p)` bits on a symbol of probability `p`.
//!
//! After Jarek Duda, "Asymmetric numeral systems" (arXiv:1311.2540, 2013),
//! as zstd's FSE and pco build it: a table of `L = 2^log` slots holds each
//! symbol `s` as many times as its *weight* `w_s` (the weights sum to `L`,
//! so `w_s / L` is its probability). The coder's state is a number `x` in
//! `L..2L`. To encode `s`, the encoder shifts `x` right until it lies in
//! `w_s..2w_s` (emitting the bits it shifts out), then jumps to the slot
//! holding that occurrence of `s`. A frequent symbol has many slots, so few
//! bits are shifted out; a rare one, many.
//!
//! ```text
//! L = 4 slots, weights a: 3, b: 1, spread: slot 0 a, 1 a, 2 a, 3 b
//!
//! slot | symbol | occurrence j | bits read | next state x = (j << bits) + bits read
//!   0  |   a    |      3       |     1     | 6 or 7
//!   1  |   a    |      4       |     0     | 4
//!   2  |   a    |      5       |     0     | 5
//!   3  |   b    |      1       |     2     | 4, 5, 6 or 7
//! ```
//!
//! (State `x` is slot `x - L`. Occurrence `j` of a symbol of weight `w`
//! runs `w..2w` in slot order; the decoder reads `log - floor(log2 j)`
//! bits.) An `a` costs 0 or 1 bit, on average `log2(4/3) = 0.42`; a `b`
//! costs 2: exactly what their probabilities 3/4 and 1/4 are worth.
//!
//! Encoding runs *backwards* (last symbol first), so that the decoder,
//! which runs forwards, meets each symbol's bits first. [`Encoder`] does
//! that and hands back each symbol's bits in forward order for the caller
//! to write, interleaved with its own fields.
//!
//! Four states take turns (symbol `i` uses state `i % 4`), as in pco: each
//! state's next table look-up depends only on its own previous one, so a
//! CPU overlaps four of them. All four start at `x = L` (slot 0); the
//! decoder reads their final values first and must end with all four back
//! at slot 0, which catches most corruption.
//!
//! Spreading: slot `i` of symbol order is placed at `(i × step) mod L` with
//! `step = (L/2 + L/8 + 3) | 1` (FSE's step made odd, so it visits every
//! slot of any power-of-two table), which scatters each symbol's slots
//! across the table.

use crate::error::{Error, Result};

/// The largest table: `2^MAX_LOG` slots.
pub const MAX_LOG: u32 = 12;
/// Interleaved states.
pub const STATES: usize = 4;

/// The slot order of each symbol: `spread(weights, log)[slot]` is its symbol.
fn spread(weights: &[u32], log: u32) -> Vec<u16> {
    let mut slots = vec![0u16; 1usize << log];
    spread_with(weights, log, |slot, s| slots[slot] = s);
    slots
}

/// Calls `put(slot, symbol)` for each slot of a table of `2^log` whose
/// weights (checked by [`check_weights`]) are `weights`.
#[inline]
pub fn spread_with(weights: &[u32], log: u32, mut put: impl FnMut(usize, u16)) {
    let size = 1usize << log;
    let mask = size - 1;
    let step = ((size >> 1) + (size >> 3) + 3) | 1;
    let mut pos = 0usize;
    for (s, &w) in weights.iter().enumerate() {
        for _ in 0..w {
            put(pos, s as u16);
            pos = (pos + step) & mask;
        }
    }
}

/// Checks that `weights` (each at least 1) sum to `2^log`, `log <= MAX_LOG`.
pub fn check_weights(weights: &[u32], log: u32) -> Result<()> {
    let bad = |reason: String| Error::corrupt("ANS table", 0, reason);
    if log > MAX_LOG {
        return Err(bad(format!("table log {log} exceeds {MAX_LOG}")));
    }
    if weights.is_empty() || weights.len() > 1 << log {
        return Err(bad(format!(
            "{} symbols do not fit a table of {} slots",
            weights.len(),
            1u32 << log
        )));
    }
    if let Some(s) = weights.iter().position(|&w| w == 0) {
        return Err(bad(format!("symbol {s} has weight 0")));
    }
    let sum: u64 = weights.iter().map(|&w| w as u64).sum();
    if sum != 1 << log {
        return Err(bad(format!(
            "weights sum to {sum}, not the table size {}",
            1u32 << log
        )));
    }
    Ok(())
}

/// Scales `counts` (not all zero) to weights of at least 1 that sum to
/// `2^log`; `log` must leave a slot for every symbol.
///
/// Rounding down leaves at most one slot per symbol over (or, after
/// raising zeros to 1, under); each of those slots goes one at a time
/// where it saves the most bits, `c × log2((w + 1) / w)` for a symbol of
/// count `c` and weight `w` (and is taken where it costs the least). The
/// coded size `sum c × (log - log2 w)` is then the smallest any weights
/// give, so a small table, which builds and decodes faster, loses little.
pub fn quantize(counts: &[u64], log: u32) -> Vec<u32> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let size = 1u64 << log;
    let total: u64 = counts.iter().sum::<u64>().max(1);
    let mut w: Vec<u32> = counts
        .iter()
        .map(|&c| ((c as u128 * size as u128 / total as u128) as u64).max(1) as u32)
        .collect();
    let sum: u64 = w.iter().map(|&x| x as u64).sum();
    // Bits saved by one more slot (or lost by one less), scaled to an
    // integer so the heap orders them exactly and ties go to the lowest index.
    let gain = |c: u64, w: u32| ((c as f64 * ((w as f64 + 1.0) / w as f64).log2()) * 1e6) as u64;
    if sum < size {
        let mut heap: BinaryHeap<(u64, Reverse<usize>)> = w
            .iter()
            .enumerate()
            .map(|(i, &x)| (gain(counts[i], x), Reverse(i)))
            .collect();
        for _ in sum..size {
            let (_, Reverse(i)) = heap.pop().expect("a symbol to grow");
            w[i] += 1;
            heap.push((gain(counts[i], w[i]), Reverse(i)));
        }
    } else if sum > size {
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = w
            .iter()
            .enumerate()
            .filter(|&(_, &x)| x > 1)
            .map(|(i, &x)| Reverse((gain(counts[i], x - 1), i)))
            .collect();
        for _ in size..sum {
            let Reverse((_, i)) = heap
                .pop()
                .expect("a symbol with weight above 1 exists while the sum is too large");
            w[i] -= 1;
            if w[i] > 1 {
                heap.push(Reverse((gain(counts[i], w[i] - 1), i)));
            }
        }
    }
    w
}

/// The decoder's view of one slot.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeSlot {
    pub symbol: u16,
    /// Bits to read for the next state.
    pub bits: u8,
    /// Next state before the bits read are added (a slot index).
    pub base: u16,
}

/// Decode table: one [`DecodeSlot`] per state.
pub fn decode_table(weights: &[u32], log: u32) -> Result<Vec<DecodeSlot>> {
    let mut table = Vec::with_capacity(1 << log.min(MAX_LOG));
    for_each_decode_slot(weights, log, |slot| table.push(slot))?;
    Ok(table)
}

/// Calls `f` on the [`DecodeSlot`] of every state in order, after
/// checking the weights as [`check_weights`] does.
#[inline]
pub fn for_each_decode_slot(
    weights: &[u32],
    log: u32,
    mut f: impl FnMut(DecodeSlot),
) -> Result<()> {
    check_weights(weights, log)?;
    let size = 1u32 << log;
    let mut next: Vec<u32> = weights.to_vec();
    for s in spread(weights, log) {
        let j = next[s as usize];
        next[s as usize] += 1;
        let bits = log - (31 - j.leading_zeros());
        f(DecodeSlot {
            symbol: s,
            bits: bits as u8,
            base: ((j << bits) - size) as u16,
        });
    }
    Ok(())
}

/// Encodes symbols into tANS state transitions.
#[derive(Debug, Clone)]
pub struct Encoder {
    log: u32,
    weights: Vec<u32>,
    /// First index of each symbol's run in `next_state`.
    start: Vec<u32>,
    /// `next_state[start[s] + (j - w_s)]`: the state `L + slot` of occurrence `j` of `s`.
    next_state: Vec<u32>,
}

impl Encoder {
    /// An encoder for `weights` (checked as [`check_weights`] does).
    pub fn new(weights: &[u32], log: u32) -> Result<Self> {
        check_weights(weights, log)?;
        let size = 1u32 << log;
        let mut start = Vec::with_capacity(weights.len());
        let mut acc = 0;
        for &w in weights {
            start.push(acc);
            acc += w;
        }
        let mut next_state = vec![0u32; size as usize];
        let mut seen = vec![0u32; weights.len()];
        for (slot, s) in spread(weights, log).into_iter().enumerate() {
            let s = s as usize;
            next_state[(start[s] + seen[s]) as usize] = size + slot as u32;
            seen[s] += 1;
        }
        Ok(Encoder {
            log,
            weights: weights.to_vec(),
            start,
            next_state,
        })
    }

    /// Table log.
    pub fn log(&self) -> u32 {
        self.log
    }

    /// Encodes `symbols` (each below the number of weights); returns the four
    /// final states (slot indices, `log` bits each) and, per symbol in
    /// forward order, the `(value, bit count)` the decoder reads after it.
    pub fn encode(&self, symbols: &[u16], transitions: &mut Vec<(u32, u8)>) -> [u32; STATES] {
        let size = 1u32 << self.log;
        let mut x = [size; STATES];
        transitions.clear();
        transitions.resize(symbols.len(), (0, 0));
        for (i, &s) in symbols.iter().enumerate().rev() {
            let s = s as usize;
            let w = self.weights[s];
            let state = &mut x[i % STATES];
            let k = self.log - (31 - w.leading_zeros());
            let bits = k - ((*state >> k) < w) as u32;
            transitions[i] = (*state & ((1u32 << bits) - 1), bits as u8);
            *state = self.next_state[(self.start[s] + (*state >> bits) - w) as usize];
        }
        x.map(|s| s - size)
    }
}

/// Cost in bits of coding a symbol of weight `w` in a table of `2^log`, on average.
pub fn cost_bits(w: u32, log: u32) -> f64 {
    log as f64 - (w as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bits::{BitReader, BitWriter};

    fn round_trip(weights: &[u32], log: u32, symbols: &[u16]) -> usize {
        let enc = Encoder::new(weights, log).unwrap();
        let mut tr = Vec::new();
        let finals = enc.encode(symbols, &mut tr);
        let mut w = BitWriter::new();
        for f in finals {
            w.write_bits(f as u64, log);
        }
        for &(v, n) in &tr {
            w.write_bits(v as u64, n as u32);
        }
        let bits = w.bit_len() as usize;
        let bytes = w.finish();
        let table = decode_table(weights, log).unwrap();
        let mut r = BitReader::new(&bytes);
        let mut x = [0usize; STATES];
        for s in &mut x {
            *s = r.read_bits(log).unwrap() as usize;
        }
        for (i, &want) in symbols.iter().enumerate() {
            let slot = table[x[i % STATES]];
            assert_eq!(slot.symbol, want, "symbol {i}");
            x[i % STATES] = slot.base as usize + r.read_bits(slot.bits as u32).unwrap() as usize;
        }
        assert_eq!(x, [0; STATES], "every state ends where the encoder started");
        bits
    }

    #[test]
    fn the_worked_example_of_the_module_doc() {
        // L = 4, a: 3, b: 1 (step 5 = 1 mod 4: slots in order).
        assert_eq!(spread(&[3, 1], 2), vec![0, 0, 0, 1]);
        let t = decode_table(&[3, 1], 2).unwrap();
        let rows: Vec<(u16, u8, u16)> = t.iter().map(|s| (s.symbol, s.bits, s.base)).collect();
        // Bases are slots: x - L. Slot 0: a, j = 3, 1 bit, (3 << 1) - 4 = 2;
        // slot 1: a, j = 4, 0 bits, 0; slot 2: a, j = 5, 0 bits, 1;
        // slot 3: b, j = 1, 2 bits, (1 << 2) - 4 = 0.
        assert_eq!(rows, vec![(0, 1, 2), (0, 0, 0), (0, 0, 1), (1, 2, 0)]);
    }

    #[test]
    fn skewed_symbols_cost_their_entropy() {
        // p(a) = 15/16: entropy 0.337 bits a symbol; fixed width would need 1.
        let symbols: Vec<u16> = (0..16_000).map(|i| (i % 16 == 0) as u16).collect();
        let bits = round_trip(&[15 << 6, 1 << 6], 10, &symbols);
        let per = bits as f64 / symbols.len() as f64;
        assert!(per < 0.36, "{per} bits a symbol");
    }

    #[test]
    fn a_single_symbol_costs_nothing() {
        let bits = round_trip(&[1], 0, &[0; 100]);
        assert_eq!(bits, 0);
        let bits = round_trip(&[16], 4, &[0; 100]);
        assert_eq!(bits, 4 * STATES);
    }

    #[test]
    fn the_largest_table_with_every_slot_a_symbol() {
        let weights = vec![1u32; 1 << MAX_LOG];
        let symbols: Vec<u16> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) % 4096) as u16)
            .collect();
        let bits = round_trip(&weights, MAX_LOG, &symbols);
        assert_eq!(bits, (symbols.len() + STATES) * MAX_LOG as usize);
    }

    #[test]
    fn quantize_keeps_every_symbol_and_sums_to_the_table() {
        for (counts, log) in [
            (vec![1u64, 1_000_000, 3, 7], 4),
            (vec![5, 5, 5], 2),
            (vec![1; 4096], 12),
            (vec![0, 9], 1),
            (vec![1000, 1], 0),
        ] {
            let counts: Vec<u64> = counts.into_iter().filter(|&c| c > 0).collect();
            if counts.len() > 1 << log {
                continue;
            }
            let w = quantize(&counts, log);
            check_weights(&w, log).unwrap();
        }
    }

    #[test]
    fn bad_weights_are_refused() {
        assert!(check_weights(&[], 2).is_err());
        assert!(check_weights(&[2, 1], 2).is_err());
        assert!(check_weights(&[4, 0], 2).is_err());
        assert!(check_weights(&[1; 3], 1).is_err());
        assert!(check_weights(&[1 << 13], 13).is_err());
        assert!(Encoder::new(&[3, 2], 2).is_err());
    }
}
