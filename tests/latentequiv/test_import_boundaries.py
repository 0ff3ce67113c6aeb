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


def test_subpackages_meet_only_through_public_names():
    # a subpackage may import another's public names (``from ..groups import SO3``) or the root's
    # shared private helpers (``from .._precision import ...``), never another subpackage's private
    # module (``from ..procrustes._procrustes import ...``)
    import ast
    from pathlib import Path

    import latentequiv

    root = Path(latentequiv.__file__).parent
    crossings = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
                parts = node.module.split(".")
                if len(parts) > 1 and parts[-1].startswith("_"):
                    crossings.append(f"{path.relative_to(root)}: from {'.' * node.level}{node.module}")
    assert crossings == []
