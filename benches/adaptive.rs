//! The adaptive value codec against our Gorilla XOR, pco and tsz, on the
//! values of the default data and of Beringei: one criterion group per
//! operation and dataset, throughput in values per second.
//!
//! `cargo bench --bench adaptive`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use squeeze::codec::{adaptive, xor};
use squeeze::format::adaptive::BLOCK;
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
    for (name, d) in common::datasets() {
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
        let gorilla = gorilla_encode(&d);
        let pco_blobs = pco_encode(&d);
        let tsz_blobs = tsz_encode(&d);
        eprintln!(
            "{name}: values bytes: adaptive {} gorilla {} pco {} tsz(+ts) {}",
            bytes.len(),
            gorilla.iter().map(Vec::len).sum::<usize>(),
            pco_blobs.iter().map(Vec::len).sum::<usize>(),
            tsz_blobs.iter().map(|b| b.len()).sum::<usize>()
        );

        let mut g = c.benchmark_group(format!("values-encode/{name}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function("squeeze adaptive", |b| {
            b.iter(|| adaptive_encode(black_box(&d)))
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

criterion_group!(benches, bench);
criterion_main!(benches);
