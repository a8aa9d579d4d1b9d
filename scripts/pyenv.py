"""The scripts' Python packages, installed on first use into a venv under
target/ (nothing outside the project is touched).

`ensure(name, packages)`: if every module of `packages` imports, return.
Otherwise, outside the venv target/NAME, create it (once) and re-run the
calling script with its interpreter; inside it, pip-install what is
missing (so that a venv whose first install failed is completed later).
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure(name, packages):
    """`packages`: pip names, each also the module it provides."""
    missing = []
    for p in packages:
        try:
            importlib.import_module(p)
        except ImportError:
            missing.append(p)
    if not missing:
        return
    venv = ROOT / "target" / name
    py = venv / "bin" / "python3"
    if Path(sys.prefix).resolve() == venv.resolve():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
        importlib.invalidate_caches()
        return
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    os.execv(str(py), [str(py)] + sys.argv)
