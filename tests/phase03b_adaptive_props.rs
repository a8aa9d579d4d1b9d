//! Property tests for the adaptive codec: every scheme round-trips inputs
//! built to sit on its edges, the chooser never picks a scheme that cannot
//! hold a block exactly, and no prefix decodes.

use proptest::prelude::*;
use squeeze::codec::adaptive::{self, ValueScheme};
use squeeze::codec::intpack;
use squeeze::format::adaptive as file;
use squeeze::{Dataset, Labels, Series, SeriesKey};

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Decimals with a few digits, some of them nudged one ULP away.
fn decimals() -> impl Strategy<Value = Vec<f64>> {
    (
        0u32..6,
        prop::collection::vec(
            (-10_000_000i64..10_000_000, prop::bool::weighted(0.05)),
            1..300,
        ),
    )
        .prop_map(|(e, ks)| {
            let scale = 10f64.powi(e as i32);
            ks.into_iter()
                .map(|(k, nudge)| {
                    let v = k as f64 / scale;
                    if nudge {
                        f64::from_bits(v.to_bits() + 1)
                    } else {
                        v
                    }
                })
                .collect()
        })
}

/// Integers near and beyond 2^53, counters and steps.
fn integers() -> impl Strategy<Value = Vec<f64>> {
    (
        any::<i64>(),
        prop::collection::vec(0i64..1_000_000, 1..300),
        prop::bool::ANY,
    )
        .prop_map(|(start, steps, big)| {
            let base = if big {
                (start >> 2).abs() as f64
            } else {
                (start % 1_000_000) as f64
            };
            let mut v = base;
            steps
                .into_iter()
                .map(|s| {
                    v += s as f64;
                    v
                })
                .collect()
        })
}

/// NaNs with mixed payloads, signed zeros, infinities, mixed with decimals.
fn awkward() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            (0u64..(1 << 51)).prop_map(|m| f64::from_bits(0x7FF8_0000_0000_0000 | m)),
            (1u64..(1 << 51)).prop_map(|m| f64::from_bits(0xFFF0_0000_0000_0000 | m)),
            Just(-0.0),
            Just(0.0),
            Just(f64::INFINITY),
            (-1000i64..1000).prop_map(|k| k as f64 / 100.0),
            any::<u64>().prop_map(f64::from_bits),
        ],
        1..200,
    )
}

fn round_trip(values: &[f64]) -> Result<ValueScheme, TestCaseError> {
    let mut out = Vec::new();
    let scheme = adaptive::encode(values, &mut out);
    let mut back = Vec::new();
    let decoded = adaptive::decode(&out, values.len(), &mut back)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded, scheme);
    prop_assert_eq!(bits(&back), bits(values));
    for cut in 0..out.len() {
        prop_assert!(
            adaptive::decode(&out[..cut], values.len(), &mut Vec::new()).is_err(),
            "prefix {}",
            cut
        );
    }
    Ok(scheme)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decimals_round_trip(values in decimals()) {
        round_trip(&values)?;
    }

    #[test]
    fn integers_round_trip(values in integers()) {
        round_trip(&values)?;
    }

    #[test]
    fn awkward_values_round_trip_and_never_choose_decimal_wrongly(values in awkward()) {
        let scheme = round_trip(&values)?;
        if values.iter().any(|v| v.is_nan() || v.is_infinite() || v.to_bits() == (-0.0f64).to_bits()) {
            prop_assert_ne!(scheme, ValueScheme::Decimal);
        }
    }

    #[test]
    fn constants_round_trip(v in any::<u64>().prop_map(f64::from_bits), n in 1usize..600) {
        let values = vec![v; n];
        let scheme = round_trip(&values)?;
        prop_assert_ne!(scheme, ValueScheme::Gorilla, "a constant block is never stored as XOR");
    }

    #[test]
    fn packed_integers_round_trip(ks in prop::collection::vec(-intpack::LIMIT..=intpack::LIMIT, 0..300)) {
        let mut out = Vec::new();
        intpack::encode(&ks, &mut out);
        let mut back = Vec::new();
        intpack::decode(&out, ks.len(), |k| back.push(k)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, ks);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), n in 0usize..2000) {
        let _ = adaptive::decode(&bytes, n, &mut Vec::new());
        let _ = intpack::decode(&bytes, n, |_| {});
        let _ = file::decode(&bytes);
    }

    #[test]
    fn adaptive_files_round_trip(cols in prop::collection::vec((0usize..3, decimals()), 1..6)) {
        // Series that share timestamp columns, as scraped series do.
        let columns: Vec<Vec<i64>> = (0..3).map(|c| (0..300).map(|i| 1_700_000_000_000_000_000 + i * 15_000_000_000 + c * 7).collect()).collect();
        let series: Vec<Series> = cols
            .into_iter()
            .enumerate()
            .map(|(i, (c, vs))| {
                let mut s = Series::new(SeriesKey::new(format!("m{i}"), Labels::new()));
                s.timestamps = columns[c][..vs.len()].to_vec();
                s.values = vs;
                s
            })
            .collect();
        let d = Dataset::new("p", series);
        let back = file::decode(&file::encode(&d).0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(d.bit_diff(&back), None);
    }
}
