"""Every ```python block of docs/latentequiv/*.md runs, in order, one namespace per page.

Blocks of a page share their names (a page's first block sets up what the others use), and any
``test_*`` function a block defines without required arguments is called, so a documented test is
exercised as well as defined. Signatures and shell commands use other fences (```text, ```bash).
"""

import inspect
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "latentequiv"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in FENCE.finditer(text)]


PAGES = [page for page in sorted(DOCS.glob("*.md")) if python_blocks(page.read_text())]


def test_the_docs_have_python_blocks():
    assert {p.name for p in PAGES} >= {"probes.md", "testing.md", "tau-and-losses.md", "recipe.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_block_runs(page):
    namespace: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    called = []
    for line, code in python_blocks(page.read_text()):
        before = set(namespace)
        exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        for name in sorted(set(namespace) - before):
            fn = namespace[name]
            if name.startswith("test_") and callable(fn) and _no_required_arguments(fn):
                fn()
                called.append(name)
    if page.name == "testing.md":
        assert called == ["test_my_model", "test_energy_is_invariant"]


def _no_required_arguments(fn) -> bool:
    params = inspect.signature(fn).parameters.values()
    return all(p.default is not inspect.Parameter.empty for p in params)
