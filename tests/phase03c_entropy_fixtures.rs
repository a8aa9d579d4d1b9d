//! Phase 03c compatibility fixtures: one block per scheme, written once
//! (`UPDATE_FIXTURES=1 cargo test --test phase03c_entropy_fixtures`) and committed
//! under `tests/fixtures/03c/`. Every later version must decode them to
//! the same bits (decoded forever), and today's encoder must still write
//! exactly those bytes (golden bytes: format drift fails loudly).

use squeeze::codec::adaptive_entropy::{decode, encode, Choice};

/// splitmix64's mixer: a reproducible pseudo-random number per index.
fn noise(i: u64) -> u64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Mostly 0, sometimes -3..=3.
fn step(i: u64) -> i64 {
    if noise(i) >> 62 != 0 {
        0
    } else {
        (noise(i) >> 56 & 7) as i64 - 3
    }
}

fn fixtures() -> Vec<(&'static str, Vec<f64>, Choice)> {
    let walk = |scale: f64| -> Vec<f64> {
        (0..300u64)
            .scan(2000i64, |k, i| {
                *k += step(i);
                Some(*k as f64 / scale)
            })
            .collect()
    };
    vec![
        ("constant", vec![f64::NAN; 5], Choice::Constant),
        (
            "gorilla",
            vec![0.3f64.sqrt(), 0.3f64.sqrt(), 1.7f64.ln()],
            Choice::Gorilla,
        ),
        (
            "decimal_packed",
            vec![37.42, 37.5, 37.39],
            Choice::DecimalPacked,
        ),
        (
            "decimal_values",
            (0..300u64).map(|i| (step(i) + 10) as f64 / 10.0).collect(),
            Choice::DecimalEntropy { order: 0 },
        ),
        (
            "decimal_deltas",
            walk(10.0),
            Choice::DecimalEntropy { order: 1 },
        ),
        (
            "decimal_delta_of_deltas",
            (0..300i64)
                .map(|i| (i * i * 3 + step(i as u64)) as f64 / 100.0)
                .collect(),
            Choice::DecimalEntropy { order: 2 },
        ),
        (
            "decimal_gcd",
            (0..300u64)
                .scan(1_000_000i64, |k, i| {
                    *k += 100 * step(i) * 7;
                    Some(*k as f64)
                })
                .collect(),
            Choice::DecimalEntropy { order: 1 },
        ),
        (
            "decimal_corrections",
            walk(1000.0)
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    if i % 7 == 3 {
                        f64::from_bits(v.to_bits() + 1)
                    } else {
                        v
                    }
                })
                .collect(),
            Choice::DecimalEntropy { order: 1 },
        ),
        (
            "dictionary",
            // 240 distinct doubles with nothing in common but repetition.
            (0..1200u64)
                .map(|i| f64::from_bits(noise(1000 + (noise(i) >> 32) % 240) >> 2))
                .collect(),
            Choice::Dictionary,
        ),
        (
            "multiple",
            // A file system's fullness in percent: blocks used times
            // 100 / blocks, a step that is no power of ten, at full
            // precision (no decimal of fewer than 15 digits).
            (0..300u64)
                .scan(8_625_260i64, |used, i| {
                    *used += (noise(i) >> 52) as i64 - 1000;
                    Some(*used as f64 * 100.0 / 12_176_504.0)
                })
                .collect(),
            Choice::Multiple { order: 1 },
        ),
        (
            "binned_bits",
            // Mantissas at random, exponents within 2^-40 ..= 2^40: no
            // decimal, not even near one, fits them all.
            (0..300u64)
                .map(|i| f64::from_bits((983 + (noise(i) >> 57)) << 52 | noise(i + 7) >> 12))
                .collect(),
            Choice::BinnedBits,
        ),
        (
            "shifted_bits",
            // Single precision widened to double: mantissas at random over
            // eight binades, the low 29 bits of every value 0.
            (0..300u64)
                .map(|i| {
                    let exponent = 124 + (noise(i) >> 61) as u32;
                    f64::from(f32::from_bits(exponent << 23 | (noise(i + 5) >> 41) as u32))
                })
                .collect(),
            Choice::ShiftedBits,
        ),
    ]
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_fixture_decodes_to_its_values_and_the_encoder_still_writes_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/03c");
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    for (name, values, want) in fixtures() {
        let mut fresh = Vec::new();
        let choice = encode(&values, &mut fresh);
        assert_eq!(
            choice, want,
            "{name}: the input no longer exercises its scheme"
        );
        let path = dir.join(format!("{name}.bin"));
        if update {
            std::fs::write(&path, &fresh).unwrap();
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
        let mut back = Vec::new();
        assert_eq!(
            decode(&stored, values.len(), &mut back).unwrap(),
            want,
            "{name}"
        );
        assert_eq!(bits(&back), bits(&values), "{name}: decoded bits");
        assert_eq!(
            fresh, stored,
            "{name}: the encoder's bytes drifted from the fixture"
        );
        for cut in 0..stored.len() {
            assert!(
                decode(&stored[..cut], values.len(), &mut Vec::new()).is_err(),
                "{name}: prefix {cut} decoded"
            );
        }
    }
}

/// The bytes the first encoder of phase 03c wrote (before the table log
/// was chosen by size and the delta order estimated), kept as they were:
/// a change of the encoder must not stop the decoder reading them.
#[test]
fn the_first_encoders_fixtures_still_decode_bit_for_bit() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/03c/first");
    let mut checked = 0;
    for (name, values, want) in fixtures() {
        let path = dir.join(format!("{name}.bin"));
        let Ok(stored) = std::fs::read(&path) else {
            continue;
        };
        let mut back = Vec::new();
        assert_eq!(
            decode(&stored, values.len(), &mut back).unwrap(),
            want,
            "{name}"
        );
        assert_eq!(bits(&back), bits(&values), "{name}: decoded bits");
        checked += 1;
    }
    assert_eq!(checked, 10, "fixtures of the first encoder found");
}
