#!/usr/bin/env python3
"""Convert a Performance Co-Pilot archive into squeezed-signals' long CSV.

Usage:
    SYSTEMD_OFFLINE=1 apt-get install -y pcp pcp-testsuite
    python3 scripts/pcp_to_csv.py /var/lib/pcp/testsuite/archives/20201109 > /tmp/pcp.csv
    cargo run --release -- --import /tmp/pcp.csv --timestamp-unit ns

It runs `pmdumplog -xxx -Z UTC -a ARCHIVE` and writes one line per numeric
sample: `series,timestamp_ns,value`. PCP's metric names are kept as they
are (`kernel.percpu.cpu.user`), so series is written as Prometheus 3 writes
a name outside the classic alphabet: `{"kernel.percpu.cpu.user",instance="cpu0"}`
(a bare `disk.all.read` for an instance-less metric). With `--rename`, dots
and dashes become underscores instead (`kernel_percpu_cpu_user{instance="cpu0"}`),
as older tools need. String values are skipped.
The archives are GPL test data: convert them locally, never commit them.
"""
import csv
import re
import subprocess
import sys

STAMP = re.compile(r"^\w{3} +\w{3} +\d+ (\d\d):(\d\d):(\d\d)\.(\d{6}) \d{4} \([0-9.]+\) (\d+) \d+ metrics?$")
METRIC = re.compile(r"^    [0-9.]+ \(([^)]+)\):(?: value (.*))?$")
INST = re.compile(r'^        inst \[\d+ or "(.*)"\] value (.*)$')


LEGACY = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def quoted(text):
    """A Prometheus text-format string: backslash, quote and newline escaped."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def series(name, instance=None, rename=False):
    if rename:
        name = name.replace(".", "_").replace("-", "_")
    if instance is None:
        return name if LEGACY.match(name) or "{" not in name else "{" + quoted(name) + "}"
    if LEGACY.match(name):
        return f"{name}{{instance={quoted(instance)}}}"
    return "{" + quoted(name) + f",instance={quoted(instance)}}}"


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
    args = sys.argv[1:]
    rename = "--rename" in args
    args = [a for a in args if a != "--rename"]
    if len(args) != 1:
        sys.exit(__doc__)
    proc = subprocess.Popen(
        ["pmdumplog", "-xxx", "-Z", "UTC", "-a", args[0]],
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
                    out.writerow([series(metric, rename=rename), ts, v])
            continue
        m = INST.match(line)
        if m and metric is not None:
            v = numeric(m.group(2))
            if v is not None:
                out.writerow([series(metric, m.group(1), rename), ts, v])
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
