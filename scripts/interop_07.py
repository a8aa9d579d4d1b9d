#!/usr/bin/env python3
"""Proves that phase 07's files are readable by the ecosystem.

Builds a small trading-mode store with the 07_gpu_tiered binary (records in
all three tiers, several WAL segments), then checks:
  - sqlite3 (Python's module) opens the catalog; its rows add up;
  - pyarrow reads every Parquet file, with the schema, row counts and sort
    order the catalog claims;
  - DuckDB reads the cold tier as one hive-partitioned dataset;
  - pyarrow's IPC stream reader reads every WAL segment, records that
    carry an idempotency key included;
  - the trade ids in the WAL and in the cold files together are exactly the
    ingested ones, and the WAL holds every record not yet in the cold tier.

pyarrow and duckdb are pip-installed into target/interop-venv on first use.
Usage: scripts/interop_07.py [--bin target/debug/07_gpu_tiered] [--records N]
"""

import argparse
import glob
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pyenv

ROOT = Path(__file__).resolve().parent.parent


pyenv.ensure("interop-venv", ["pyarrow", "duckdb"])
import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "debug" / "07_gpu_tiered"))
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({
            "mode": "trading",
            "storage": {"base_path": str(store)},
            "hot_tier": {"max_records": 20000},
            "wal": {"segment_mb": 0.5},
            "cold_tier": {"row_group_rows": 8192, "page_rows": 1024},
        }))
        run = lambda *a: subprocess.run(  # noqa: E731
            [args.bin, "--config", str(config), *a], check=True, capture_output=True, text=True
        ).stdout
        run("demo", str(args.records), "--batch-size", "5000", "--warm-mb", "1",
            "--no-queries", "--writers", "1")
        # Then 1,000 more with idempotency keys: their WAL records carry a
        # key block, which IPC readers must see as padding.
        extra = 1000
        csv_path = Path(tmp) / "keyed.csv"
        with open(csv_path, "w") as fh:
            fh.write("timestamp,symbol,price,volume,side,exchange,trade_id,flags\n")
            for i in range(extra):
                fh.write(f"{1704153600000000000 + i},KEY/USD,{1.5 + i},1,buy,kraken,"
                         f"{args.records + 1 + i},0\n")
        run("ingest", str(csv_path), "--batch-size", "250", "--idempotency-key", "interop")
        again = run("ingest", str(csv_path), "--batch-size", "250", "--idempotency-key", "interop")
        check("4 batches were already stored" in again,
              "ingest --idempotency-key run again stores nothing twice")
        total = args.records + extra
        stats = json.loads(run("stats", "--json"))
        check(stats["hot_records"] + stats["warm_records"] + stats["cold_records"] == total,
              f"tier counts add up to {total}")
        check(stats["cold_records"] > 0 and stats["warm_records"] > 0 and stats["hot_records"] > 0,
              "records in all three tiers")

        db = sqlite3.connect(store / "catalog.sqlite")
        files = db.execute("SELECT path, rows, min_ts, max_ts, symbols, partition FROM files").fetchall()
        check(sum(f[1] for f in files) == stats["cold_records"],
              f"sqlite3: {len(files)} catalog rows add up to the cold records")
        (wm,) = db.execute("SELECT value FROM meta WHERE key = 'cold_watermark_lsn'").fetchone()
        check(int(wm) == stats["watermark_lsn"], "sqlite3: the watermark matches stats")

        cold_ids = set()
        for path, rows, min_ts, max_ts, symbols, partition in files:
            t = pq.read_table(store / "cold" / path)
            assert t.num_rows == rows, path
            assert str(t.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
            ts = t.column("timestamp").cast(pa.int64()).to_pylist()
            assert min(ts) == min_ts and max(ts) == max_ts, path
            keys = list(zip(t.column("symbol").to_pylist(), ts))
            assert keys == sorted(keys), f"{path} is not sorted by (symbol, timestamp)"
            assert sorted(set(t.column("symbol").to_pylist())) == json.loads(symbols)
            assert path.startswith(partition)
            md = pq.ParquetFile(store / "cold" / path).metadata
            assert md.row_group(0).column(0).statistics.has_min_max
            cold_ids.update(t.column("trade_id").to_pylist())
        check(True, f"pyarrow: {len(files)} Parquet files: rows, schema, sort order, statistics")

        con = duckdb.connect()
        (n,) = con.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
            [str(store / "cold" / "**" / "*.parquet")],
        ).fetchone()
        check(n == stats["cold_records"], f"duckdb: {n} rows in the hive-partitioned cold tier")
        days = con.execute(
            "SELECT count(DISTINCT (year, month, day)) FROM read_parquet(?, hive_partitioning = true)",
            [str(store / "cold" / "**" / "*.parquet")],
        ).fetchone()[0]
        check(days == len({f[5] for f in files}), f"duckdb: {days} day partitions")

        wal_ids = set()
        segments = sorted(glob.glob(str(store / "wal" / "wal-*.arrows")))
        for seg in segments:
            with open(seg, "rb") as fh:
                reader = ipc.open_stream(fh)
                for batch in reader:
                    wal_ids.update(batch.column(6).to_pylist())
        check(len(segments) >= 1, f"pyarrow: {len(segments)} WAL segments read as IPC streams")
        check(len(wal_ids - cold_ids) == stats["hot_records"] + stats["warm_records"],
              "the WAL holds every record not yet in the cold tier")
        check(wal_ids | cold_ids == set(range(1, total + 1)),
              "WAL and cold files together hold exactly the ingested trade ids "
              "(the keyed records read as plain IPC record batches)")


if __name__ == "__main__":
    main()
