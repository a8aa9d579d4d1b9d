#!/usr/bin/env python3
"""The course's files beside the engines people use, on the same dataset.

Reads the canonical dataset a run wrote (OUTPUT/dataset.ssd), stores it in

  * ClickHouse (in process, `chdb`): a MergeTree table
    (series LowCardinality(String), ts Int64, value Float64) ordered by
    (series, ts), once per codec pair below, merged to one part
    (OPTIMIZE ... FINAL); the size is the table's bytes on disk (every file
    of the part: columns, marks, primary index, checksums);
  * Parquet (`pyarrow`), rows sorted by (series, ts), the series column
    dictionary-encoded, zstd level 9, with and without dictionaries on the
    numeric columns and with BYTE_STREAM_SPLIT / DELTA_BINARY_PACKED;

reads every copy back and checks that the timestamps and the value *bits*
are exactly the input's (a copy that does not verify is shown as failed),
and prints bytes per sample beside the course's files of the same run
(03b_adaptive.ssa, 04_custom.metrics) and its reference rows (pco over the
concatenated columns and per series, zstd -19 of the input text, ...),
when present in OUTPUT/report/.

Usage, after a run of the course on some data (e.g. `cargo run --release --
--import /tmp/pcp.csv --timestamp-unit ns -o /tmp/pcp`):

  python3 scripts/peers.py --output-dir /tmp/pcp [--markdown]

chdb and pyarrow are installed with pip into target/peers-venv on first use.
Not part of CI: it needs PyPI and about 400 MB of wheels.
"""

import argparse
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import pyenv

ROOT = Path(__file__).resolve().parent.parent


pyenv.ensure("peers-venv", ["chdb", "pyarrow"])
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from chdb import session as chs  # noqa: E402


# ------------------------------------------------------------ dataset.ssd

class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def varint(self):
        v, shift = 0, 0
        while True:
            byte = self.b[self.i]
            self.i += 1
            v |= (byte & 0x7F) << shift
            if byte < 0x80:
                return v
            shift += 7

    def string(self):
        n = self.varint()
        s = self.b[self.i:self.i + n].decode("utf-8")
        self.i += n
        return s

    def take(self, n):
        s = self.b[self.i:self.i + n]
        self.i += n
        return s


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def read_dataset(path):
    """(series keys, samples per series, timestamps int64, value bits uint64)."""
    b = path.read_bytes()
    if b[:8] != b"SSIGDSET":
        sys.exit(f"{path}: not a canonical dataset")
    version = struct.unpack_from("<I", b, 8)[0]
    r = Reader(b)
    r.i = 12
    r.string()  # source
    if version == 2:
        for _ in range(r.varint()):
            r.string()
            r.take(1)
            r.string()
            r.string()
    keys, counts, ts, vs = [], [], [], []
    for _ in range(r.varint()):
        metric = r.string()
        labels = [(r.string(), r.string()) for _ in range(r.varint())]
        keys.append(metric + "{" + ",".join(f"{k}={quote(v)}" for k, v in labels) + "}")
        n = r.varint()
        ts.append(np.frombuffer(r.take(8 * n), dtype="<i8"))
        vs.append(np.frombuffer(r.take(8 * n), dtype="<u8"))
        counts.append(n)
    return keys, counts, np.concatenate(ts or [np.zeros(0, "<i8")]), np.concatenate(vs or [np.zeros(0, "<u8")])


def sorted_rows(keys, counts, ts, vs):
    """Rows sorted by (series text, ts), as both peers store them."""
    order = sorted(range(len(keys)), key=lambda i: keys[i].encode())
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in order] or [np.zeros(0, np.int64)])
    series = np.repeat(np.array([keys[i] for i in order], dtype=object), [counts[i] for i in order])
    t, v = ts[idx], vs[idx]
    # Within a series the timestamps are already in order (the course keeps them so).
    return series, t, v


# ------------------------------------------------------------ Parquet

PARQUET_VARIANTS = [
    ("dictionary on every column (pyarrow default)", dict(use_dictionary=True)),
    ("dictionary on series; ts, value plain", dict(use_dictionary=["series"])),
    ("dictionary on series; value BYTE_STREAM_SPLIT", dict(use_dictionary=["series"], column_encoding={"ts": "PLAIN", "value": "BYTE_STREAM_SPLIT"})),
    ("dictionary on series; ts DELTA_BINARY_PACKED, value BYTE_STREAM_SPLIT", dict(use_dictionary=["series"], column_encoding={"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"})),
]


def parquet(tmp, series, t, v):
    table = pa.table({
        "series": pa.array(series, type=pa.string()),
        "ts": pa.array(t, type=pa.int64()),
        "value": pa.array(v.view("<f8"), type=pa.float64()),
    })
    out = []
    for name, opts in PARQUET_VARIANTS:
        path = tmp / "t.parquet"
        try:
            pq.write_table(table, path, compression="zstd", compression_level=9, **opts)
            back = pq.read_table(path)
            ok = (back.num_rows == len(t)
                  and back.column("series").to_pylist() == list(series)
                  and np.array_equal(back.column("ts").to_numpy(), t)
                  and np.array_equal(back.column("value").to_numpy().view("<u8"), v))
            out.append((f"Parquet zstd 9, {name}", path.stat().st_size, ok, None if ok else "values differ"))
        except Exception as e:  # a failed variant is shown as failed, with why
            out.append((f"Parquet zstd 9, {name}", 0, False, str(e).splitlines()[0]))
    return out


# ------------------------------------------------------------ ClickHouse

CH_VARIANTS = [
    ("ts Delta+ZSTD(3), value Delta+ZSTD(3)", "Delta, ZSTD(3)", "Delta, ZSTD(3)"),
    ("ts DoubleDelta+ZSTD, value Gorilla+ZSTD", "DoubleDelta, ZSTD", "Gorilla, ZSTD"),
    ("ts Delta+ZSTD(3), value Gorilla+ZSTD(3)", "Delta, ZSTD(3)", "Gorilla, ZSTD(3)"),
    ("ts DoubleDelta+ZSTD(3), value ZSTD(3)", "DoubleDelta, ZSTD(3)", "ZSTD(3)"),
]


def clickhouse(tmp, series, t, v):
    src = tmp / "rows.arrow"
    import pyarrow.feather as feather
    feather.write_feather(pa.table({
        "series": pa.array(series, type=pa.string()),
        "ts": pa.array(t, type=pa.int64()),
        "value": pa.array(v.view("<f8"), type=pa.float64()),
    }), src, compression="uncompressed")
    sess = chs.Session(str(tmp / "ch"))
    out = []
    for k, (name, tcodec, vcodec) in enumerate(CH_VARIANTS):
        table = f"t{k}"
        try:
            sess.query(f"DROP TABLE IF EXISTS {table}")
            sess.query(
                f"CREATE TABLE {table} (series LowCardinality(String) CODEC(ZSTD(3)), "
                f"ts Int64 CODEC({tcodec}), value Float64 CODEC({vcodec})) "
                f"ENGINE = MergeTree ORDER BY (series, ts)")
            sess.query(f"INSERT INTO {table} SELECT series, ts, value FROM file('{src}', Arrow)")
            sess.query(f"OPTIMIZE TABLE {table} FINAL")
            size = int(str(sess.query(
                f"SELECT sum(bytes_on_disk) FROM system.parts WHERE table = '{table}' AND active",
                "CSV")).strip() or 0)
            back = sess.query(
                f"SELECT series, ts, reinterpretAsUInt64(value) AS bits FROM {table} ORDER BY series, ts",
                "ArrowStream")
            bt = pa.ipc.open_stream(back.bytes()).read_all()
            ok = (bt.num_rows == len(t)
                  and bt.column("series").to_pylist() == list(series)
                  and np.array_equal(bt.column("ts").to_numpy(), t)
                  and np.array_equal(bt.column("bits").to_numpy().astype("<u8"), v))
            cols = int(str(sess.query(
                f"SELECT sum(data_compressed_bytes) FROM system.parts WHERE table = '{table}' AND active",
                "CSV")).strip() or 0)
            out.append((f"ClickHouse {name}", size, ok, None if ok else "rows differ"))
            out.append((f"ClickHouse {name}, column data only", cols, ok, None if ok else "rows differ"))
        except Exception as e:
            out.append((f"ClickHouse {name}", 0, False, str(e).splitlines()[0][:200]))
    return out


# ------------------------------------------------------------ the course's side

def course_rows(out_dir):
    rows = []
    entries = out_dir / "report"
    for phase, label in [("03b", None), ("04", None)]:
        p = entries / f"{phase}.json"
        if p.exists():
            e = json.loads(p.read_text())
            rows.append((f"course {phase}: {e['name']}", e["bytes"], e.get("verified", True), None))
    if entries.exists():
        for p in sorted(entries.glob("ref*.json")):
            e = json.loads(p.read_text())
            rows.append((e["name"], e["bytes"], e.get("verified", False), None))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output-dir", default="output")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    out_dir = Path(args.output_dir)
    keys, counts, ts, vs = read_dataset(out_dir / "dataset.ssd")
    n = len(ts)
    series, t, v = sorted_rows(keys, counts, ts, vs)
    tmp = Path(tempfile.mkdtemp(prefix="peers-", dir=ROOT / "target"))
    try:
        rows = course_rows(out_dir) + clickhouse(tmp, series, t, v) + parquet(tmp, series, t, v)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{out_dir}: {n} samples in {len(keys)} series")
    if args.markdown:
        print("| stored as | bytes | B/sample | verified |")
        print("|---|--:|--:|---|")
    for name, size, ok, why in rows:
        per = f"{size / max(n, 1):.3f}" if ok else "failed"
        shown = str(size) if ok else "failed"
        verdict = "yes" if ok else f"no: {why}" if why else "no"
        if args.markdown:
            print(f"| {name} | {shown} | {per} | {verdict} |")
        else:
            print(f"  {name:70} {shown:>10} {per:>8}  {verdict}")


if __name__ == "__main__":
    main()
