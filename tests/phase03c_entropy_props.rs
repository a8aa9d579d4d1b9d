//! Property tests for phase 03c: the tANS coder on random distributions,
//! single-symbol and largest tables; integers in bins on random and
//! adversarial inputs; the value codec and the 03c file on every kind of
//! `f64`; and arbitrary bytes, which must decode to an error or to
//! values, never to a panic.

use proptest::prelude::*;
use squeeze::codec::bits::{BitReader, BitWriter};
use squeeze::codec::{adaptive_entropy, ans, entropy};
use squeeze::format::adaptive::{decode_as, encode_as, ENTROPY};
use squeeze::{Dataset, Labels, Series, SeriesKey};

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Encodes `v` as one block: decoded bit for bit with the same choice,
/// and every prefix of the block refused.
fn block_round_trip(v: &[f64]) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let choice = adaptive_entropy::encode(v, &mut out);
    let mut back = Vec::new();
    prop_assert_eq!(
        adaptive_entropy::decode(&out, v.len(), &mut back).unwrap(),
        choice
    );
    prop_assert_eq!(bits(&back), bits(v));
    for cut in 0..out.len() {
        prop_assert!(adaptive_entropy::decode(&out[..cut], v.len(), &mut Vec::new()).is_err());
    }
    Ok(())
}

/// Encodes `symbols` with `weights`, decodes them back, returns the bits used.
fn ans_round_trip(weights: &[u32], log: u32, symbols: &[u16]) -> Result<u64, TestCaseError> {
    let enc = ans::Encoder::new(weights, log).unwrap();
    let mut tr = Vec::new();
    let finals = enc.encode(symbols, &mut tr);
    let mut w = BitWriter::new();
    for f in finals {
        prop_assert!(f < 1 << log, "final state {f} outside the table");
        w.write_bits(f as u64, log);
    }
    for &(v, n) in &tr {
        prop_assert!((n as u32) <= log && (v as u64) < 1u64 << n.max(1));
        w.write_bits(v as u64, n as u32);
    }
    let used = w.bit_len();
    let bytes = w.finish();
    let table = ans::decode_table(weights, log).unwrap();
    let mut r = BitReader::new(&bytes);
    let mut x = [0usize; ans::STATES];
    for s in &mut x {
        *s = r.read_bits(log).unwrap() as usize;
    }
    for (i, &want) in symbols.iter().enumerate() {
        let slot = table[x[i % ans::STATES]];
        prop_assert_eq!(slot.symbol, want);
        x[i % ans::STATES] = slot.base as usize + r.read_bits(slot.bits as u32).unwrap() as usize;
        prop_assert!(x[i % ans::STATES] < 1 << log);
    }
    prop_assert_eq!(x, [0; ans::STATES]);
    Ok(used)
}

/// Random counts over up to 300 symbols, a table that holds them, and a
/// symbol stream drawn from them.
fn distribution() -> impl Strategy<Value = (Vec<u32>, u32, Vec<u16>)> {
    (
        prop::collection::vec(1u64..10_000, 1..300),
        0u32..=ans::MAX_LOG,
        any::<u64>(),
    )
        .prop_map(|(counts, log, seed)| {
            let need = usize::BITS - (counts.len() - 1).leading_zeros();
            let log = log.max(need).min(ans::MAX_LOG);
            let weights = ans::quantize(&counts, log);
            let total: u64 = counts.iter().sum();
            let mut x = seed | 1;
            let symbols = (0..2000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let mut pick = x % total;
                    counts
                        .iter()
                        .position(|&c| {
                            if pick < c {
                                true
                            } else {
                                pick -= c;
                                false
                            }
                        })
                        .unwrap() as u16
                })
                .collect();
            (weights, log, symbols)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ans_round_trips_random_distributions((weights, log, symbols) in distribution()) {
        ans::check_weights(&weights, log).unwrap();
        let used = ans_round_trip(&weights, log, &symbols)?;
        // Never worse than a fixed log bits a symbol (plus the final states).
        prop_assert!(used <= (symbols.len() + ans::STATES) as u64 * log as u64);
    }

    #[test]
    fn ans_single_symbol_tables_cost_only_the_states(log in 0u32..=ans::MAX_LOG, n in 0usize..500) {
        let used = ans_round_trip(&[1 << log], log, &vec![0; n])?;
        prop_assert_eq!(used, ans::STATES as u64 * log as u64);
    }

    #[test]
    fn ans_largest_table_round_trips(seed in any::<u64>(), ones in 0usize..4096) {
        // 4096 slots: some symbols of weight 1, one taking the rest.
        let mut weights = vec![1u32; ones];
        weights.push((1 << ans::MAX_LOG) - ones as u32);
        let symbols: Vec<u16> = (0..3000u64)
            .map(|i| ((i.wrapping_mul(seed | 1) >> 7) % weights.len() as u64) as u16)
            .collect();
        ans_round_trip(&weights, ans::MAX_LOG, &symbols)?;
    }

    #[test]
    fn entropy_round_trips_any_latents(v in prop::collection::vec(
        prop_oneof![any::<u64>(), 0u64..8, (u64::MAX - 8)..=u64::MAX, Just(1 << 63)], 0..2000)) {
        let mut out = Vec::new();
        entropy::encode(&v, &mut out);
        let mut back = Vec::new();
        entropy::decode(&out, v.len(), |x| back.push(x)).unwrap();
        prop_assert_eq!(back, v);
    }

    /// `encode_distinct` and `encode_thorough` over any latents, and over
    /// a few wide values repeated: the same layout, read back by `decode`.
    #[test]
    fn entropy_distinct_round_trips_any_latents(
        v in prop::collection::vec(
            prop_oneof![any::<u64>(), 0u64..8, (u64::MAX - 8)..=u64::MAX, Just(1 << 63)], 0..2000),
        few in prop::collection::vec(any::<u64>(), 1..300),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..3000),
    ) {
        let repeated: Vec<u64> = picks.iter().map(|i| few[i.index(few.len())]).collect();
        for latents in [v, repeated] {
            let mut out = Vec::new();
            entropy::encode_distinct(&latents, &mut out, &mut entropy::Scratch::default());
            let mut back = Vec::new();
            entropy::decode(&out, latents.len(), |x| back.push(x)).unwrap();
            prop_assert_eq!(&back, &latents);
            out.clear();
            back.clear();
            entropy::encode_thorough(&latents, &mut out, &mut entropy::Scratch::default());
            entropy::decode(&out, latents.len(), |x| back.push(x)).unwrap();
            prop_assert_eq!(back, latents);
        }
    }

    #[test]
    fn entropy_prefixes_and_wrong_counts_are_errors(v in prop::collection::vec(0u64..50, 1..200)) {
        let mut out = Vec::new();
        entropy::encode(&v, &mut out);
        for cut in 0..out.len() {
            prop_assert!(entropy::decode(&out[..cut], v.len(), |_| {}).is_err(), "cut {}", cut);
        }
    }

    #[test]
    fn entropy_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), n in 0usize..300) {
        let mut count = 0;
        let _ = entropy::decode(&bytes, n, |_| count += 1);
        prop_assert!(count <= n);
    }

    #[test]
    fn block_codec_round_trips_every_f64(v in prop::collection::vec(prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-100_000i64..100_000).prop_map(|k| k as f64 / 100.0),
        (-100_000i64..100_000).prop_map(|k| f64::from_bits((k as f64 / 1000.0).to_bits() + 1)),
        Just(-0.0), Just(f64::NAN), Just(f64::INFINITY), Just(f64::MIN_POSITIVE / 4.0),
        (0u64..1 << 52).prop_map(f64::from_bits),
    ], 1..600)) {
        block_round_trip(&v)?;
    }

    /// Single precision widened to double (scheme 7's case), with the odd
    /// ones: NaN payloads, infinities, -0.0, subnormals of both widths,
    /// and now and then a double whose low bits are not 0.
    #[test]
    fn block_codec_round_trips_widened_single_precision(v in prop::collection::vec(prop_oneof![
        8 => any::<u32>().prop_map(|b| f64::from(f32::from_bits(b))),
        4 => (-1000i32..1000).prop_map(|k| f64::from(k as f32 / 7.0)),
        1 => Just(f64::from(f32::MIN_POSITIVE / 8.0)),
        1 => Just(-0.0),
        1 => any::<u64>().prop_map(f64::from_bits),
    ], 1..600)) {
        block_round_trip(&v)?;
    }

    /// Multiples of a step that is no power of ten (`k / s` for any
    /// divisor, as a share or a rate is), with noise of a few ULPs or
    /// none, and the odd value that fits no step: bit for bit whatever
    /// scheme wins, every prefix refused.
    #[test]
    fn multiples_of_any_step_round_trip(
        divisor in 1e-3f64..1e9,
        start in -1_000_000i64..1_000_000,
        steps in prop::collection::vec(-3000i64..3000, 8..300),
        ulps in prop::collection::vec(-3i64..=3, 8..300),
        odd in prop::option::of((0usize..300, any::<u64>())),
    ) {
        let mut k = start;
        let mut v: Vec<f64> = steps.iter().zip(ulps.iter().cycle()).map(|(&d, &u)| {
            k += d;
            f64::from_bits((k as f64 / divisor).to_bits().wrapping_add(u as u64))
        }).collect();
        if let Some((at, bits)) = odd {
            let at = at % v.len();
            v[at] = f64::from_bits(bits);
        }
        block_round_trip(&v)?;
    }

    /// Real-shaped blocks (a random walk of decimals, thousands of values:
    /// tables, batches and the padded tail), then bytes changed: an error
    /// or `n` values, never a read past the bytes (the decoder's unchecked
    /// reads carry a debug assertion, which debug test builds check).
    #[test]
    fn mutated_blocks_are_errors_or_values(
        seed in any::<u64>(),
        n in 1usize..6000,
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 1..6),
        widened in any::<bool>(),
    ) {
        let mut x = seed | 1;
        let mut level = 2000i64;
        // A decimal walk, or (scheme 7) single precision widened over
        // several binades.
        let values: Vec<f64> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                level += (x % 41) as i64 - 20;
                if widened {
                    f64::from(level as f32 / 7.0 * (1u32 << (x >> 61)) as f32)
                } else {
                    level as f64 / 100.0
                }
            })
            .collect();
        let mut block = Vec::new();
        adaptive_entropy::encode(&values, &mut block);
        for &(at, byte) in &edits {
            let at = at as usize % block.len();
            block[at] ^= byte.max(1);
        }
        let mut out = Vec::new();
        if adaptive_entropy::decode(&block, n, &mut out).is_ok() {
            prop_assert_eq!(out.len(), n);
        }
    }

    #[test]
    fn block_codec_arbitrary_bytes_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..80),
        n in 0usize..300,
        tag in prop::option::of(0u8..8),
    ) {
        // Half the time a valid tag first, so every scheme's reader sees
        // garbage after it (a random first byte names a scheme 1 in 32).
        if let (Some(t), Some(first)) = (tag, bytes.first_mut()) {
            *first = t;
        }
        let mut out = Vec::new();
        if adaptive_entropy::decode(&bytes, n, &mut out).is_ok() {
            prop_assert_eq!(out.len(), n);
        }
    }

    #[test]
    fn file_round_trips_and_refuses_prefixes(lens in prop::collection::vec(0usize..9000, 1..4), seed in any::<u64>()) {
        let series: Vec<Series> = lens.iter().enumerate().map(|(j, &n)| {
            let mut s = Series::new(SeriesKey::new(format!("m{j}"), Labels::new()));
            let mut k = seed as i64 % 1000;
            for i in 0..n {
                k += ((i as u64).wrapping_mul(seed | 1) >> 60) as i64 - 7;
                s.push(1_700_000_000_000_000_000 + i as i64 * 60_000_000_000, k as f64 / 10.0);
            }
            s
        }).collect();
        let d = Dataset::new("t", series);
        let (bytes, _) = encode_as(&ENTROPY, &d);
        prop_assert_eq!(d.bit_diff(&decode_as(&ENTROPY, &bytes).unwrap()), None);
        for cut in (0..bytes.len()).step_by(bytes.len() / 50 + 1) {
            prop_assert!(decode_as(&ENTROPY, &bytes[..cut]).is_err());
        }
    }
}

#[test]
fn adversarial_streams_are_errors_not_panics() {
    // 2 bins, table log 12, weights that do not sum to the table.
    assert!(entropy::decode(&[1, 12, 0, 0, 0, 1, 0, 0], 4, |_| {}).is_err());
    // Table log above the maximum.
    assert!(entropy::decode(&[1, 13, 0, 0, 0, 1, 0, 0], 4, |_| {}).is_err());
    // A bin that does not start above the previous one.
    assert!(entropy::decode(&[1, 1, 5, 0, 0, 0, 0, 0, 0], 1, |_| {}).is_err());
    // A second lower bound past 2^64.
    let mut b = vec![
        1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0,
    ];
    b.extend([
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0,
    ]);
    assert!(entropy::decode(&b, 1, |_| {}).is_err());
    // Offset width above 64.
    assert!(entropy::decode(&[0, 0, 65, 0], 1, |_| {}).is_err());
    // 64-bit offsets and a lower bound near the top wrap, never panic.
    let mut out = Vec::new();
    entropy::encode(&[u64::MAX, 0], &mut out);
    let mut back = Vec::new();
    entropy::decode(&out, 2, |x| back.push(x)).unwrap();
    assert_eq!(back, [u64::MAX, 0]);
    // Flipped bits never panic, and the end-state check catches some that
    // every other check lets through.
    let v: Vec<u64> = (0..200).map(|i| if i % 10 == 0 { 5 } else { 0 }).collect();
    let mut out = Vec::new();
    entropy::encode(&v, &mut out);
    let mut by_states = 0;
    for bit in 0..out.len() * 8 {
        let mut b = out.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Err(e) = entropy::decode(&b, v.len(), |_| {}) {
            by_states += e.to_string().contains("ANS states") as usize;
        }
    }
    assert!(by_states > 0);
    // A dictionary index past the dictionary.
    let mut block = vec![4u8, 0];
    block.extend(1.5f64.to_bits().to_le_bytes());
    entropy::encode(&[0, 1], &mut block);
    assert!(adaptive_entropy::decode(&block, 2, &mut Vec::new()).is_err());
}
