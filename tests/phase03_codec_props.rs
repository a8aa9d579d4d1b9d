//! Property tests: every codec and format round-trips any `(i64, f64)`
//! sequence bit-exactly, and no prefix of a valid stream decodes.

use proptest::prelude::*;
use squeeze::codec::delta::{self, TimestampScheme};
use squeeze::codec::{rle, xor};
use squeeze::format::{dataset, gorilla};
use squeeze::{Dataset, Labels, Series, SeriesKey};

/// Floats with the awkward ones over-represented: NaN payloads, -0.0, ±inf,
/// subnormals, extremes, and runs of repeats.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<u64>().prop_map(f64::from_bits),
        2 => (-1e6f64..1e6).prop_map(|v| (v * 100.0).round() / 100.0),
        1 => Just(-0.0),
        1 => Just(0.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => (0u64..(1 << 52)).prop_map(|m| f64::from_bits(0x7FF0_0000_0000_0001 | m)),
        1 => (0u64..(1 << 52)).prop_map(|m| f64::from_bits(0xFFF8_0000_0000_0000 | m)),
        1 => (1u64..(1 << 52)).prop_map(f64::from_bits),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
    ]
}

/// Timestamps: regular, jittered, equal, decreasing and extreme.
fn any_timestamps() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        prop::collection::vec(any::<i64>(), 0..200),
        (
            any::<i64>(),
            1i64..1_000_000,
            prop::collection::vec(-3i64..=3, 0..300)
        )
            .prop_map(|(start, step, jit)| {
                let mut t = start;
                jit.iter()
                    .map(|j| {
                        t = t.wrapping_add(step).wrapping_add(*j);
                        t
                    })
                    .collect()
            }),
        prop::collection::vec(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64)],
            0..50
        ),
        (any::<i64>(), 0usize..100).prop_map(|(t, n)| vec![t; n]),
    ]
}

fn values_with_repeats() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((any_f64(), 1usize..5), 0..120).prop_map(|runs| {
        runs.into_iter()
            .flat_map(|(v, n)| std::iter::repeat_n(v, n))
            .collect()
    })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn xor_round_trips_every_bit_pattern(values in values_with_repeats()) {
        let mut bytes = Vec::new();
        xor::encode(&values, &mut bytes);
        let mut back = Vec::new();
        xor::decode(&bytes, values.len(), &mut back).unwrap();
        prop_assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn timestamps_round_trip_in_both_schemes(ts in any_timestamps()) {
        for scheme in TimestampScheme::ALL {
            let mut buf = Vec::new();
            delta::encode(&ts, scheme, &mut buf);
            let mut back = Vec::new();
            delta::decode(&buf, ts.len(), &mut back).unwrap();
            prop_assert_eq!(&back, &ts);
        }
    }

    #[test]
    fn zero_runs_round_trip(values in prop::collection::vec(prop_oneof![3 => Just(0i64), 1 => any::<i64>()], 0..300)) {
        let mut buf = Vec::new();
        rle::encode_zero_runs(values.iter().copied(), &mut buf);
        let mut back = Vec::new();
        rle::decode_zero_runs(&mut squeeze::bytes::ByteReader::new(&buf, "t"), values.len(), |v| back.push(v)).unwrap();
        prop_assert_eq!(back, values);
    }

    #[test]
    fn no_prefix_of_a_column_decodes(ts in any_timestamps(), values in values_with_repeats()) {
        let n = ts.len().min(values.len());
        let (ts, values) = (&ts[..n], &values[..n]);
        let mut vbytes = Vec::new();
        xor::encode(values, &mut vbytes);
        for cut in 0..vbytes.len() {
            prop_assert!(xor::decode(&vbytes[..cut], n, &mut Vec::new()).is_err());
        }
        for scheme in TimestampScheme::ALL {
            let mut tbytes = Vec::new();
            delta::encode(ts, scheme, &mut tbytes);
            for cut in 0..tbytes.len() {
                prop_assert!(delta::decode(&tbytes[..cut], n, &mut Vec::new()).is_err());
            }
        }
    }

    #[test]
    fn files_round_trip_arbitrary_datasets(
        cols in prop::collection::vec((any_timestamps(), values_with_repeats()), 0..6),
        label in "[a-z]{0,6}",
    ) {
        let series: Vec<Series> = cols
            .into_iter()
            .enumerate()
            .map(|(i, (ts, vs))| {
                let n = ts.len().min(vs.len());
                let mut s = Series::new(SeriesKey::new(format!("m{i}"), Labels::from([("l".to_string(), label.clone())])));
                s.timestamps = ts[..n].to_vec();
                s.values = vs[..n].to_vec();
                s
            })
            .collect();
        let d = Dataset::new("prop", series);
        let back = gorilla::decode(&gorilla::encode(&d).0).unwrap();
        prop_assert_eq!(d.bit_diff(&back), None);
        let back = dataset::decode(&dataset::encode(&d)).unwrap();
        prop_assert_eq!(d.bit_diff(&back), None);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), n in 0usize..5000) {
        let _ = xor::decode(&bytes, n, &mut Vec::new());
        let _ = delta::decode(&bytes, n, &mut Vec::new());
        let _ = gorilla::decode(&bytes);
        let _ = dataset::decode(&bytes);
    }
}

#[test]
fn empty_and_single_sample_series() {
    for n in [0usize, 1, 2] {
        let ts: Vec<i64> = (0..n as i64).map(|i| i64::MAX - i).collect();
        let vs: Vec<f64> = (0..n)
            .map(|i| f64::from_bits(0x7FF0_0000_0000_0001 + i as u64))
            .collect();
        let mut s = Series::new(SeriesKey::new("m", Labels::new()));
        s.timestamps = ts;
        s.values = vs;
        let d = Dataset::new("t", vec![s]);
        assert_eq!(
            d.bit_diff(&gorilla::decode(&gorilla::encode(&d).0).unwrap()),
            None
        );
    }
}
