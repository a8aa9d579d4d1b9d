//! The adaptive value codecs (03b, 03c) against our Gorilla XOR, pco and
//! tsz, on the values of the default data, of Beringei and of the real
//! single series of `scripts/datasets.py` (when `target/datasets/series.csv`
//! exists): one criterion group per operation and dataset, throughput in
//! values per second. Before timing, it checks every round trip and prints
//! bytes per value per series for 03b, 03c and pco (one chunk per column).
//!
//! `python3 scripts/datasets.py && cargo bench --bench adaptive`; with
//! `SSIG_BENCH_PCP=/tmp/pcp.csv:/tmp/bozo.csv` (PCP archives converted by
//! `scripts/pcp_to_csv.py`, separated by `:`) it measures those archives
//! too, and prints their sizes as totals with the series most above pco.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use squeeze::codec::adaptive_entropy::{self, Scratch};
use squeeze::codec::{adaptive, xor};
use squeeze::format::adaptive::{BLOCK, ENTROPY};
use squeeze::Dataset;

#[path = "common.rs"]
mod common;

/// Every block's encoded bytes back to back, with end offsets.
fn adaptive_encode(d: &Dataset) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(d.sample_count() as usize * 2);
    let mut ends = Vec::new();
    for s in &d.series {
        for chunk in s.values.chunks(BLOCK) {
            adaptive::encode(chunk, &mut out);
            ends.push(out.len());
        }
    }
    (out, ends)
}

fn adaptive_decode(d: &Dataset, bytes: &[u8], ends: &[usize], out: &mut Vec<f64>) -> usize {
    let (mut start, mut b, mut n) = (0, 0, 0);
    for s in &d.series {
        out.clear();
        for chunk in s.values.chunks(BLOCK) {
            adaptive::decode(&bytes[start..ends[b]], chunk.len(), out).expect("valid");
            start = ends[b];
            b += 1;
        }
        n += out.len();
    }
    n
}

/// 03c: every block's bytes back to back, with end offsets.
fn entropy_encode(d: &Dataset) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(d.sample_count() as usize);
    let mut ends = Vec::new();
    let mut scratch = Scratch::default();
    for s in &d.series {
        let mut at = 0;
        for len in ENTROPY.block_lengths(s.values.len()) {
            adaptive_entropy::encode_with(&s.values[at..at + len], &mut out, &mut scratch);
            at += len;
            ends.push(out.len());
        }
    }
    (out, ends)
}

fn entropy_decode(d: &Dataset, bytes: &[u8], ends: &[usize], out: &mut Vec<f64>) -> usize {
    let (mut start, mut b, mut n) = (0, 0, 0);
    for s in &d.series {
        out.clear();
        for len in ENTROPY.block_lengths(s.values.len()) {
            adaptive_entropy::decode(&bytes[start..ends[b]], len, out).expect("valid");
            start = ends[b];
            b += 1;
        }
        n += out.len();
    }
    n
}

/// Bytes per value of 03b, 03c and pco for each series (when
/// `per_series`), and in total; asserts the 03c round trip bit for bit.
fn size_table(d: &Dataset, per_series: bool) {
    let (mut t03b, mut t03c, mut tpco, mut n) = (0, 0, 0, 0);
    let mut at_or_below = 0;
    let mut worst = (0.0f64, String::new());
    if per_series {
        eprintln!(
            "series,values,03b_bytes_per_value,03c_bytes_per_value,pco_bytes_per_value,03c_over_pco"
        );
    }
    for s in &d.series {
        let one = Dataset::new("one", vec![s.clone()]);
        let (b, _) = adaptive_encode(&one);
        let (c, ends) = entropy_encode(&one);
        let mut back = Vec::new();
        entropy_decode(&one, &c, &ends, &mut back);
        assert!(back
            .iter()
            .zip(&s.values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(back.len(), s.values.len());
        let p = pco_encode(&one)[0].len();
        let v = s.values.len().max(1) as f64;
        at_or_below += (c.len() <= p) as usize;
        let ratio = c.len() as f64 / p.max(1) as f64;
        if ratio > worst.0 {
            worst = (ratio, s.key.to_string());
        }
        (t03b, t03c, tpco, n) = (t03b + b.len(), t03c + c.len(), tpco + p, n + s.values.len());
        if !per_series {
            continue;
        }
        eprintln!(
            "{},{},{:.3},{:.3},{:.3},{:.3}",
            s.key,
            s.values.len(),
            b.len() as f64 / v,
            c.len() as f64 / v,
            p as f64 / v,
            c.len() as f64 / p as f64
        );
    }
    let v = n.max(1) as f64;
    eprintln!(
        "all,{n},{:.3},{:.3},{:.3},{:.3}  (03c at or below pco on {at_or_below} of {} series; \
         the most above: {:.3}x, {})",
        t03b as f64 / v,
        t03c as f64 / v,
        tpco as f64 / v,
        t03c as f64 / tpco as f64,
        d.series.len(),
        worst.0,
        worst.1
    );
}

fn gorilla_encode(d: &Dataset) -> Vec<Vec<u8>> {
    d.series
        .iter()
        .map(|s| {
            let mut out = Vec::new();
            xor::encode(&s.values, &mut out);
            out
        })
        .collect()
}

fn pco_encode(d: &Dataset) -> Vec<Vec<u8>> {
    d.series
        .iter()
        .map(|s| {
            pco::standalone::simpler_compress(&s.values, pco::DEFAULT_COMPRESSION_LEVEL)
                .expect("pco compresses")
        })
        .collect()
}

fn tsz_encode(d: &Dataset) -> Vec<Box<[u8]>> {
    use tsz::stream::BufferedWriter;
    use tsz::{DataPoint, Encode, StdEncoder};
    d.series
        .iter()
        .map(|s| {
            let mut e = StdEncoder::new(0, BufferedWriter::new());
            for (i, &v) in s.values.iter().enumerate() {
                e.encode(DataPoint::new(i as u64 + 1, v));
            }
            e.close()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut all = common::datasets();
    for (name, d) in &all {
        eprintln!("{name}, {} series:", d.series.len());
        size_table(d, false);
    }
    if let Some(real) = common::real_series() {
        size_table(&real, true);
        all.push(("real-series".to_string(), real));
    }
    for (name, pcp) in common::pcp() {
        eprintln!("{name}, {} series:", pcp.series.len());
        size_table(&pcp, false);
        all.push((name, pcp));
    }
    for (name, d) in all {
        let n = d.sample_count();
        // Round trips, checked once outside the timed loops.
        let (bytes, ends) = adaptive_encode(&d);
        let mut out = Vec::new();
        let mut start = 0;
        let mut b = 0;
        for s in &d.series {
            out.clear();
            for chunk in s.values.chunks(BLOCK) {
                adaptive::decode(&bytes[start..ends[b]], chunk.len(), &mut out).unwrap();
                start = ends[b];
                b += 1;
            }
            assert!(out
                .iter()
                .zip(&s.values)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let (ebytes, eends) = entropy_encode(&d);
        let mut eout = Vec::new();
        let decoded = entropy_decode(&d, &ebytes, &eends, &mut eout);
        assert_eq!(decoded as u64, n);
        let gorilla = gorilla_encode(&d);
        let pco_blobs = pco_encode(&d);
        let tsz_blobs = tsz_encode(&d);
        eprintln!(
            "{name}: values bytes: adaptive {} entropy {} gorilla {} pco {} tsz(+ts) {}",
            bytes.len(),
            ebytes.len(),
            gorilla.iter().map(Vec::len).sum::<usize>(),
            pco_blobs.iter().map(Vec::len).sum::<usize>(),
            tsz_blobs.iter().map(|b| b.len()).sum::<usize>()
        );

        let mut g = c.benchmark_group(format!("values-encode/{name}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function("squeeze adaptive", |b| {
            b.iter(|| adaptive_encode(black_box(&d)))
        });
        g.bench_function("squeeze entropy (03c)", |b| {
            b.iter(|| entropy_encode(black_box(&d)))
        });
        g.bench_function("squeeze gorilla-xor", |b| {
            b.iter(|| gorilla_encode(black_box(&d)))
        });
        g.bench_function("pco", |b| b.iter(|| pco_encode(black_box(&d))));
        g.bench_function("tsz (time+value)", |b| b.iter(|| tsz_encode(black_box(&d))));
        g.finish();

        let mut g = c.benchmark_group(format!("values-decode/{name}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function("squeeze adaptive", |b| {
            b.iter(|| adaptive_decode(&d, &bytes, &ends, &mut out))
        });
        g.bench_function("squeeze entropy (03c)", |b| {
            b.iter(|| entropy_decode(&d, &ebytes, &eends, &mut out))
        });
        g.bench_function("squeeze gorilla-xor", |b| {
            b.iter(|| {
                let mut n = 0;
                for (s, blob) in d.series.iter().zip(&gorilla) {
                    out.clear();
                    xor::decode(blob, s.len(), &mut out).expect("valid");
                    n += out.len();
                }
                n
            })
        });
        g.bench_function("pco", |b| {
            b.iter(|| {
                pco_blobs
                    .iter()
                    .map(|p| {
                        pco::standalone::simple_decompress::<f64>(p)
                            .expect("valid")
                            .len()
                    })
                    .sum::<usize>()
            })
        });
        g.bench_function("tsz (time+value)", |b| {
            b.iter(|| {
                use tsz::stream::BufferedReader;
                use tsz::{Decode, StdDecoder};
                let mut n = 0;
                for blob in &tsz_blobs {
                    let mut dec = StdDecoder::new(BufferedReader::new(blob.clone()));
                    while let Ok(p) = dec.next() {
                        black_box(p);
                        n += 1;
                    }
                }
                n
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    // Short windows: five implementations, two operations, three datasets
    // on a shared 2-core machine.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
