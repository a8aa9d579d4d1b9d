#!/usr/bin/env python3
"""Convert a Performance Co-Pilot archive into squeezed-signals' long CSV.

Usage:
    SYSTEMD_OFFLINE=1 apt-get install -y pcp pcp-testsuite
    python3 scripts/pcp_to_csv.py /var/lib/pcp/testsuite/archives/20201109 > /tmp/pcp.csv
    cargo run --release -- --import /tmp/pcp.csv --timestamp-unit ns

It runs `pmdumplog -xxx -Z UTC -a ARCHIVE` and writes one line per numeric
sample: `series,timestamp_ns,value`, where series is
`metric_name{instance="..."}` (dots in PCP metric names become underscores,
so the name is a valid Prometheus-style name). String values are skipped.
The archives are GPL test data: convert them locally, never commit them.
"""
import csv
import re
import subprocess
import sys

STAMP = re.compile(r"^\w{3} +\w{3} +\d+ (\d\d):(\d\d):(\d\d)\.(\d{6}) \d{4} \([0-9.]+\) (\d+) \d+ metrics?$")
METRIC = re.compile(r"^    [0-9.]+ \(([^)]+)\):(?: value (.*))?$")
INST = re.compile(r'^        inst \[\d+ or "(.*)"\] value (.*)$')


def series(name, instance=None):
    name = name.replace(".", "_").replace("-", "_")
    if instance is None:
        return name
    value = instance.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}{{instance="{value}"}}'


def numeric(text):
    text = text.strip()
    if text.startswith('"'):
        return None
    try:
        float(text)
    except ValueError:
        return None
    return text


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    proc = subprocess.Popen(
        ["pmdumplog", "-xxx", "-Z", "UTC", "-a", sys.argv[1]],
        stdout=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["series", "timestamp", "value"])
    ts = None
    metric = None
    for line in proc.stdout:
        line = line.rstrip("\n")
        m = STAMP.match(line)
        if m:
            ts = int(m.group(5)) * 1_000_000_000 + int(m.group(4)) * 1000
            metric = None
            continue
        if ts is None:
            continue
        m = METRIC.match(line)
        if m:
            metric = m.group(1)
            if m.group(2) is not None:
                v = numeric(m.group(2))
                if v is not None:
                    out.writerow([series(metric), ts, v])
            continue
        m = INST.match(line)
        if m and metric is not None:
            v = numeric(m.group(2))
            if v is not None:
                out.writerow([series(metric, m.group(1)), ts, v])
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
