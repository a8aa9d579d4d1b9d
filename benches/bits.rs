//! Our `u64`-accumulator bit writer/reader against `bitvec`, on the field
//! stream Gorilla XOR coding actually produces (control bits plus windows
//! of 1 to 64 bits), taken from the default generated data.
//!
//! `cargo bench --bench bits`

use bitvec::prelude::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use squeeze::codec::bits::{BitReader, BitWriter};

#[path = "common.rs"]
mod common;

/// (value, width) fields as the XOR encoder would write them.
fn fields() -> Vec<(u64, u32)> {
    let d = common::generated();
    let mut out = Vec::new();
    for s in &d.series {
        let mut prev = 0u64;
        for v in &s.values {
            let xor = v.to_bits() ^ prev;
            prev = v.to_bits();
            if xor == 0 {
                out.push((0, 1));
            } else {
                let (l, t) = (xor.leading_zeros().min(31), xor.trailing_zeros());
                out.push((0b11, 2));
                out.push(((l as u64) << 6 | (63 - l - t) as u64, 11));
                out.push((xor >> t, 64 - l - t));
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let fields = fields();
    let total_bits: u64 = fields.iter().map(|&(_, n)| n as u64).sum();

    // The two must agree, bit for bit.
    let mut w = BitWriter::new();
    let mut bv: BitVec<u8, Msb0> = BitVec::new();
    for &(v, n) in &fields {
        w.write_bits(v, n);
        bv.extend_from_bitslice(&v.view_bits::<Msb0>()[64 - n as usize..]);
    }
    let ours = w.finish();
    assert_eq!(ours, bv.as_raw_slice());

    let mut g = c.benchmark_group("bit-io/write");
    g.throughput(Throughput::Elements(fields.len() as u64));
    g.bench_function("squeeze BitWriter", |b| {
        b.iter(|| {
            let mut w = BitWriter::with_capacity(total_bits as usize / 8 + 8);
            for &(v, n) in &fields {
                w.write_bits(v, n);
            }
            w.finish()
        })
    });
    g.bench_function("bitvec", |b| {
        b.iter(|| {
            let mut bv: BitVec<u8, Msb0> = BitVec::with_capacity(total_bits as usize);
            for &(v, n) in &fields {
                bv.extend_from_bitslice(&v.view_bits::<Msb0>()[64 - n as usize..]);
            }
            bv
        })
    });
    g.finish();

    let mut g = c.benchmark_group("bit-io/read");
    g.throughput(Throughput::Elements(fields.len() as u64));
    g.bench_function("squeeze BitReader", |b| {
        b.iter(|| {
            let mut r = BitReader::new(&ours);
            let mut acc = 0u64;
            for &(_, n) in &fields {
                acc ^= r.read_bits(n).expect("in bounds");
            }
            black_box(acc)
        })
    });
    g.bench_function("bitvec", |b| {
        b.iter(|| {
            let mut pos = 0usize;
            let mut acc = 0u64;
            for &(_, n) in &fields {
                let n = n as usize;
                acc ^= bv[pos..pos + n].load_be::<u64>();
                pos += n;
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
