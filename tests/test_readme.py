"""Every ```python block of README.md runs as written, each in a fresh working directory and its own Python process
(as a reader would paste it), so the README cannot drift from the code. A block that starts a study starts its own
local Ray cluster in that process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    return [(markdown[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", markdown, re.S | re.M)]


BLOCKS = python_blocks((REPO / "README.md").read_text())


def test_blocks_are_found():
    assert python_blocks("text\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n") == \
        [(2, "x = 1\n"), (8, "y = 2\n")]
    assert BLOCKS, "README.md has no ```python block: nothing below would run"


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_python_block_runs(line, code, tmp_path):
    # the repository's own package first, so that the block runs this checkout's code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"the ```python block at README.md:{line} failed:\n{done.stderr[-4000:]}"
