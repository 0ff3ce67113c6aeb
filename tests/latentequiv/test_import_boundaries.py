"""latentequiv is domain-free: it must never import ase or transip."""

import subprocess
import sys


def test_latentequiv_imports_neither_ase_nor_transip():
    code = (
        "import sys, pkgutil, importlib, latentequiv\n"
        "for m in pkgutil.walk_packages(latentequiv.__path__, 'latentequiv.'):\n"
        "    if m.name.endswith('plugin'):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('ase', 'transip'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"latentequiv pulled in: {out.stdout.strip()}"
