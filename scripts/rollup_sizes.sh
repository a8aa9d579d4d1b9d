#!/usr/bin/env bash
# Issue 19's size table: raw .metrics bytes and each rollup file's bytes on
# the generated (default, 30 days, market) and real data (Beringei, PCP).
# Usage: scripts/rollup_sizes.sh OUT_DIR [PCP_CSV BOZO_CSV]
# (the PCP CSVs come from scripts/pcp_to_csv.py; rows for missing ones are skipped).
set -euo pipefail
out=${1:?usage: scripts/rollup_sizes.sh OUT_DIR [PCP_CSV BOZO_CSV]}
pcp=${2:-}
bozo=${3:-}
cargo build --release -q -p squeezed-signals --bin 00_generate --bin 04_custom_binary --bin 05_downsampling
B=${CARGO_TARGET_DIR:-target}/release
here=$(cd "$(dirname "$0")/.." && pwd)
beringei="$here/../shared/data/beringei-5000.csv"
run() {
  local name=$1
  shift
  local d="$out/$name"
  mkdir -p "$d"
  "$B/00_generate" -o "$d" "$@" >/dev/null
  "$B/04_custom_binary" -o "$d" >/dev/null
  "$B/05_downsampling" -o "$d" >"$d/05.txt"
  python3 - "$name" "$d" <<'PY'
import os, sys
name, d = sys.argv[1], sys.argv[2]
raw = os.path.getsize(os.path.join(d, "04_custom.metrics"))
rows = {}
for line in open(os.path.join(d, "05.txt")):
    cells = [c.strip() for c in line.strip().strip("│").split("┆")]
    if len(cells) > 5 and cells[0] in ("1m", "5m", "15m", "1h"):
        rows[cells[0]] = cells
sizes = []
finer_ok = []
for res in ("1m", "5m", "15m", "1h"):
    b = os.path.getsize(os.path.join(d, f"05_rollup_{res}.metrics"))
    sizes.append(b)
    c = rows.get(res, ["?"] * 7)
    print(f"| {name} | {raw:,} | {res} | {c[1]} | {b:,} | {100*b/raw:.2f}% | {c[5]} | {c[6]} |")
    # "of next finer": against what the next finer level holds for the same
    # series (its finer rollups, else its raw samples); "-" when it holds none.
    if c[6] not in ("-", "?"):
        finer_ok.append(float(c[6].rstrip("%")) < 100.0)
finer = ["smaller than raw: " + ("yes" if all(s < raw for s in sizes) else "NO")]
finer += ["each smaller than what the next finer level holds for its series: " + ("yes" if all(finer_ok) else "NO")]
finer += [f"file {r2} < file {r1}: " + ("yes" if s2 < s1 else "no") for (r1, s1), (r2, s2) in zip(zip(("1m","5m","15m"), sizes), zip(("5m","15m","1h"), sizes[1:]))]
print(f"| {name} | | | | | | | {'; '.join(finer)} |")
PY
}
echo "| data | raw .metrics B | resolution | rollup series | rollup B | of raw file | of their raw series | of next finer |"
echo "|---|--:|---|--:|--:|--:|--:|--:|"
run default
run days30 --points 8640000
run market --profile market --series 8 --points 300000 --interval 2s
run beringei --import "$beringei"
[ -n "$pcp" ] && run pcp-20201109 --import "$pcp"
[ -n "$bozo" ] && run pcp-bozo --import "$bozo"
exit 0
