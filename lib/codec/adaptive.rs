//! The adaptive value codec: per block, the smallest of a few lossless schemes.
//!
//! Gorilla's XOR coding treats every value as 64 opaque bits. Real metrics
//! are rarely opaque: a CPU percentage is a decimal with two digits, a byte
//! count is an integer, `up` never changes. Each block of values (at most a
//! few hundred) is coded by every scheme that can represent it *exactly*,
//! and the smallest wins; a one-byte tag says which.
//!
//! | tag | scheme | layout after the tag | chosen when |
//! |-----|--------|----------------------|-------------|
//! | 0 | constant | 8 bytes: the value's bits, LE | every value has the same bits and no decimal is smaller |
//! | 1 | Gorilla XOR | the [`crate::codec::xor`] bit stream | nothing else is smaller |
//! | 2 | decimal | exponent `e` (1 byte), then `k` packed by [`crate::codec::intpack`] | every value is `k / 10^e` exactly |
//!
//! **Decimal** (after ALP, Afroozeh et al., SIGMOD 2024): find the smallest
//! `e` in `0..=18` such that for every value `v`, `k = round(v × 10^e)` is
//! within ±2^62 and `k / 10^e` (one correctly rounded division) has exactly
//! the bits of `v`. Then store the integers `k`, bit-packed. `37.42` is
//! `3742 / 10^2`; byte counts are `k / 10^0`. A value with no such form
//! (a NaN, `-0.0`, an infinity, a value one ULP off its decimal) makes the
//! block fall back to another scheme, so the scheme is never lossy: the
//! encoder checks every value's bits before choosing it.
//!
//! Like the other codecs, the count of values is not stored here.

use crate::codec::{intpack, xor};
use crate::error::{Error, Result};

/// Powers of ten that are exact in `f64` (10^0 ..= 10^18).
pub const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// The schemes, by tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueScheme {
    Constant = 0,
    Gorilla = 1,
    Decimal = 2,
}

impl ValueScheme {
    pub const ALL: [ValueScheme; 3] = [Self::Constant, Self::Gorilla, Self::Decimal];

    pub fn name(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Gorilla => "gorilla-xor",
            Self::Decimal => "decimal",
        }
    }
}

/// `x.round()` (halves away from zero, sign kept, ±inf as they are), bit
/// for bit, without a call; a NaN comes back as it is (libm's `round`
/// quiets a signalling NaN; the callers only ask whether it is one).
///
/// Q: Why not `f64::round`?
/// A: The x86-64 baseline has no rounding instruction (SSE4.1's `roundsd`
/// is not in it), so `round` is a call into libm, once per value per
/// exponent tried: a tenth of 03c's encoding time on the generated data.
/// Below 2^52 a truncation to `i64` and the exact fraction `x - trunc(x)`
/// give the same integer; from 2^52 on every double is an integer already.
#[inline(always)]
pub fn round_half_away(x: f64) -> f64 {
    const INTEGRAL: f64 = 4_503_599_627_370_496.0; // 2^52
    if x.abs() < INTEGRAL {
        let t = x as i64;
        let fraction = x - t as f64;
        let r = t + i64::from(fraction >= 0.5) - i64::from(fraction <= -0.5);
        (r as f64).copysign(x)
    } else {
        x
    }
}

/// How far `x = v × s` can be from `k = round(x)` when `v` is exactly
/// `k / s` (the division correctly rounded): `|v - k/s|` is at most half
/// an ULP of `v`, `|v| 2^-53`, so `|v s - k| ≤ |v s| 2^-53`, and the
/// product's rounding adds as much: `|x| 2^-52`; four times that is
/// allowed. Near or below the subnormal range the ULP is not relative:
/// infinite slack (the division decides).
///
/// An exponent whose distance exceeds this is not exact: ruled out by a
/// multiplication, without the division that proves a match.
#[inline(always)]
pub(crate) fn exact_slack(v: f64, x: f64) -> f64 {
    const NORMAL: f64 = 1e-290;
    if v.abs() >= NORMAL {
        x.abs() * (4.0 * f64::EPSILON)
    } else {
        f64::INFINITY
    }
}

/// The smallest exponent that makes every value an exact decimal, with the integers.
///
/// Each exponent is first tried on eight values at a time without a
/// branch per value, so the compiler can pair the multiplications and
/// divisions: `k` rounded to nearest by adding and subtracting
/// `2^52 + 2^51` (exact for `|x| < 2^50`), and `k / 10^e` compared with
/// the value. Where all eight match, each `k` is the one
/// [`round_half_away`] gives (`v = k / 10^e` puts `x` within
/// [`exact_slack`] of `k`, far from a tie). A group that does not match
/// is decided value by value as before.
pub fn find_decimal(values: &[f64], ks: &mut Vec<i64>) -> Option<u8> {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 2^52 + 2^51
    const FAST: f64 = 1_125_899_906_842_624.0; // 2^50
    'exponent: for (e, &scale) in POW10.iter().enumerate() {
        ks.clear();
        // A cheap look at the first value rules out most exponents.
        if let Some(&v) = values.first() {
            let x = v * scale;
            let k = round_half_away(x);
            if !k.is_nan() && k.abs() <= intpack::LIMIT as f64 && (x - k).abs() > exact_slack(v, x)
            {
                continue 'exponent;
            }
        }
        for group in values.chunks(8) {
            let mut found = [0i64; 8];
            let mut all = true;
            for (slot, &v) in found.iter_mut().zip(group) {
                let x = v * scale;
                let shifted = x + MAGIC;
                let k = shifted - MAGIC;
                *slot = (shifted.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
                all &= x.abs() < FAST && (k / scale).to_bits() == v.to_bits();
            }
            if all {
                ks.extend_from_slice(&found[..group.len()]);
                continue;
            }
            for &v in group {
                let x = v * scale;
                let k = round_half_away(x);
                if k.is_nan() || k.abs() > intpack::LIMIT as f64 {
                    continue 'exponent;
                }
                // Finite here: a value this far from its integer is not exact.
                if (x - k).abs() > exact_slack(v, x) {
                    continue 'exponent;
                }
                let k = k as i64;
                if (k as f64 / scale).to_bits() != v.to_bits() {
                    continue 'exponent;
                }
                ks.push(k);
            }
        }
        return Some(e as u8);
    }
    None
}

/// Encodes one block with the smallest exact scheme; returns the scheme.
pub fn encode(values: &[f64], out: &mut Vec<u8>) -> ValueScheme {
    let start = out.len();
    let mut ks = Vec::with_capacity(values.len());
    let decimal = find_decimal(values, &mut ks).map(|e| (e, 2 + intpack::plan(&ks).0));
    if let Some(&first) = values.first() {
        // A constant takes 9 bytes; a constant decimal (0 bits a value) often fewer.
        let constant = values.iter().all(|v| v.to_bits() == first.to_bits());
        if constant && decimal.is_none_or(|(_, size)| size >= 9) {
            out.push(ValueScheme::Constant as u8);
            out.extend_from_slice(&first.to_bits().to_le_bytes());
            return ValueScheme::Constant;
        }
    }
    out.push(ValueScheme::Gorilla as u8);
    xor::encode(values, out);
    match decimal {
        Some((e, size)) if size < out.len() - start => {
            out.truncate(start);
            out.push(ValueScheme::Decimal as u8);
            out.push(e);
            intpack::encode(&ks, out);
            ValueScheme::Decimal
        }
        _ => ValueScheme::Gorilla,
    }
}

/// Decodes exactly `n` values of one block, appending them to `out`.
pub fn decode(payload: &[u8], n: usize, out: &mut Vec<f64>) -> Result<ValueScheme> {
    let corrupt = |reason: String| Error::corrupt("value block", 0, reason);
    let Some((&tag, rest)) = payload.split_first() else {
        return Err(Error::truncated(
            "value block",
            0,
            "empty block: no scheme tag",
        ));
    };
    match tag {
        0 => {
            let bits: [u8; 8] = rest.try_into().map_err(|_| {
                Error::truncated(
                    "value block",
                    1,
                    format!("a constant takes 8 bytes, found {}", rest.len()),
                )
            })?;
            out.extend(std::iter::repeat_n(
                f64::from_bits(u64::from_le_bytes(bits)),
                n,
            ));
            Ok(ValueScheme::Constant)
        }
        1 => {
            xor::decode(rest, n, out).map_err(|e| e.within("value block (gorilla-xor)"))?;
            Ok(ValueScheme::Gorilla)
        }
        2 => {
            let Some((&e, packed)) = rest.split_first() else {
                return Err(Error::truncated(
                    "value block",
                    1,
                    "decimal block without its exponent",
                ));
            };
            let scale = *POW10
                .get(e as usize)
                .ok_or_else(|| corrupt(format!("decimal exponent {e} is above 18")))?;
            out.reserve(n.min(packed.len() * 8 + 1));
            let decoded = if e == 0 {
                // Integers: no division needed.
                intpack::decode(packed, n, |k| out.push(k as f64))
            } else {
                intpack::decode(packed, n, |k| out.push(k as f64 / scale))
            };
            decoded.map_err(|e| e.within("value block (decimal)"))?;
            Ok(ValueScheme::Decimal)
        }
        t => Err(corrupt(format!("unknown value scheme tag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_half_away_is_round_bit_for_bit_at_the_edges() {
        let below_half = 0.5f64.next_down();
        let mut edges = vec![
            0.0,
            0.5,
            below_half,
            0.5f64.next_up(),
            1.5,
            2.5,
            1.0f64.next_down(),
            4_503_599_627_370_495.5, // 2^52 - 0.5
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NAN,
            f64::from_bits(0x7FF8_0000_DEAD_BEEF),
        ];
        edges.extend(edges.clone().into_iter().map(|x| -x));
        for x in edges {
            if x.is_nan() {
                assert_eq!(round_half_away(x).to_bits(), x.to_bits());
                continue;
            }
            assert_eq!(
                round_half_away(x).to_bits(),
                x.round().to_bits(),
                "{x:e} ({:#x})",
                x.to_bits()
            );
        }
    }

    /// [`find_decimal`] before [`exact_slack`]: a division for every value.
    fn find_decimal_by_division(values: &[f64]) -> Option<u8> {
        let exact_at = |v: f64, scale: f64| {
            let k = round_half_away(v * scale);
            !(k.is_nan() || k.abs() > intpack::LIMIT as f64)
                && ((k as i64) as f64 / scale).to_bits() == v.to_bits()
        };
        (0..POW10.len())
            .find(|&e| values.iter().all(|&v| exact_at(v, POW10[e])))
            .map(|e| e as u8)
    }

    fn check_exact_slack(v: f64) {
        let mut ks = Vec::new();
        assert_eq!(
            find_decimal(&[v], &mut ks),
            find_decimal_by_division(&[v]),
            "{v:e}"
        );
    }

    #[test]
    fn the_exact_slack_keeps_every_exact_decimal() {
        for &scale in &POW10 {
            for k in [1i64, 7, 99_999_999, 1 << 52, (1 << 53) + 1, intpack::LIMIT] {
                let v = k as f64 / scale;
                for d in [-2i64, -1, 0, 1, 2] {
                    let w = f64::from_bits(v.to_bits().wrapping_add_signed(d));
                    check_exact_slack(w);
                    check_exact_slack(-w);
                }
            }
        }
        for bits in [0u64, 1, 2, 0x000f_ffff_ffff_ffff, 0x0010_0000_0000_0000] {
            check_exact_slack(f64::from_bits(bits));
        }
        for v in [f64::MAX, f64::MIN_POSITIVE, 1e-290, 1e-291, 0.1 + 0.2] {
            check_exact_slack(v);
        }
    }

    proptest! {
        #[test]
        fn find_decimal_is_the_division_only_search(
            bits in any::<u64>(),
            k in -intpack::LIMIT..intpack::LIMIT,
            e in 0usize..19,
            d in -3i64..3,
        ) {
            check_exact_slack(f64::from_bits(bits));
            let v = k as f64 / POW10[e];
            check_exact_slack(f64::from_bits(v.to_bits().wrapping_add_signed(d)));
        }

        /// Blocks of up to 40 values (five groups of eight and a rest):
        /// decimals at one exponent, some nudged by an ULP, some huge.
        #[test]
        fn find_decimal_of_a_block_is_the_division_only_search(
            ks in proptest::collection::vec(-(1i64 << 53)..(1i64 << 53), 1..40),
            e in 0usize..19,
            odd in proptest::collection::vec((0usize..40, -1i64..=1, any::<bool>()), 0..3),
        ) {
            let mut values: Vec<f64> = ks.iter().map(|&k| k as f64 / POW10[e]).collect();
            for (at, d, huge) in odd {
                if let Some(v) = values.get_mut(at) {
                    *v = if huge { *v * 1e30 } else { f64::from_bits(v.to_bits().wrapping_add_signed(d)) };
                }
            }
            let mut found = Vec::new();
            let got = find_decimal(&values, &mut found);
            prop_assert_eq!(got, find_decimal_by_division(&values));
            if let Some(e) = got {
                let want: Vec<i64> = values
                    .iter()
                    .map(|&v| round_half_away(v * POW10[usize::from(e)]) as i64)
                    .collect();
                prop_assert_eq!(found, want);
            }
        }

        #[test]
        fn round_half_away_is_round_bit_for_bit(bits in any::<u64>(), scaled in -1e6f64..1e6) {
            for x in [f64::from_bits(bits), scaled, scaled.trunc() + 0.5, scaled.trunc() - 0.5] {
                if x.is_nan() {
                    prop_assert!(round_half_away(x).is_nan());
                } else {
                    prop_assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{:e}", x);
                }
            }
        }
    }

    fn round_trip(values: &[f64]) -> (ValueScheme, Vec<u8>) {
        let mut out = Vec::new();
        let scheme = encode(values, &mut out);
        let mut back = Vec::new();
        assert_eq!(decode(&out, values.len(), &mut back).unwrap(), scheme);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(values));
        (scheme, out)
    }

    #[test]
    fn golden_bytes_per_scheme() {
        let (s, b) = round_trip(&[f64::NAN, f64::NAN, f64::NAN]);
        assert_eq!(
            (s, b),
            (ValueScheme::Constant, vec![0, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F])
        );
        // A constant with a short decimal form is cheaper as a 0-bit decimal.
        let (s, b) = round_trip(&[1.0, 1.0, 1.0]);
        assert_eq!((s, b), (ValueScheme::Decimal, vec![2, 0, 0x00, 0x02, 0x00]));
        // 37.42, 37.5, 37.39 = 3742, 3750, 3739 / 10^2, frame of reference.
        let (s, b) = round_trip(&[37.42, 37.5, 37.39]);
        assert_eq!(
            (s, b),
            (
                ValueScheme::Decimal,
                vec![2, 2, 0x00, 0xB6, 0x3A, 0x04, 0x3B, 0x00]
            )
        );
        let (s, b) = round_trip(&[0.1f64.sqrt(), 2.0f64.sqrt()]);
        assert_eq!(s, ValueScheme::Gorilla);
        assert_eq!(b[0], 1);
    }

    #[test]
    fn decimals_are_found_with_the_smallest_exponent() {
        let mut ks = Vec::new();
        assert_eq!(find_decimal(&[37.42, 0.5, 12.0], &mut ks), Some(2));
        assert_eq!(ks, vec![3742, 50, 1200]);
        assert_eq!(find_decimal(&[4096.0, 8192.0], &mut ks), Some(0));
        assert_eq!(find_decimal(&[0.000123], &mut ks), Some(6));
    }

    #[test]
    fn values_without_an_exact_decimal_fall_back() {
        let mut ks = Vec::new();
        // Any double near 1 is an exact 17-digit decimal (e = 16); these need
        // more than 18 decimal digits, so no exponent fits.
        let irrational = [
            2.0f64.sqrt() * 1e-5,
            3.0f64.sqrt() * 1e-7,
            std::f64::consts::PI * 1e-6,
        ];
        assert_eq!(find_decimal(&irrational, &mut ks), None);
        assert_eq!(round_trip(&irrational).0, ValueScheme::Gorilla);
        for bad in [f64::NAN, -0.0, f64::INFINITY, 1e300, f64::from_bits(1)] {
            assert_eq!(find_decimal(&[1.5, bad], &mut ks), None, "{bad:?}");
            assert_ne!(round_trip(&[1.5, bad, 2.25]).0, ValueScheme::Decimal);
        }
    }

    #[test]
    fn one_ulp_off_a_decimal_needs_more_digits_and_stays_exact() {
        let one_ulp_off = f64::from_bits(37.42f64.to_bits() + 1);
        let mut ks = Vec::new();
        let e = find_decimal(&[37.42, one_ulp_off], &mut ks).unwrap();
        assert!(
            e > 2,
            "one ULP off 37.42 is not a two-digit decimal (e = {e})"
        );
        round_trip(&[37.42, one_ulp_off, 37.39]);
    }

    #[test]
    fn integers_beyond_2_pow_53_are_exact_or_refused() {
        let big = [
            (1u64 << 60) as f64,
            ((1u64 << 60) + 256) as f64,
            9.007199254740994e15,
        ];
        let mut ks = Vec::new();
        assert_eq!(find_decimal(&big, &mut ks), Some(0));
        round_trip(&big);
        assert_eq!(find_decimal(&[(1u64 << 63) as f64, 1.0], &mut ks), None);
        round_trip(&[(1u64 << 63) as f64, 1.0]);
    }

    #[test]
    fn every_prefix_is_an_error() {
        for values in [
            vec![37.42, 37.5, 37.39, 40.0],
            vec![1.0, 1.0],
            vec![0.3f64.sqrt(), 1.7f64.ln(), 9.1],
        ] {
            let mut out = Vec::new();
            encode(&values, &mut out);
            for cut in 0..out.len() {
                assert!(
                    decode(&out[..cut], values.len(), &mut Vec::new()).is_err(),
                    "{values:?} cut {cut}"
                );
            }
        }
    }
}
