"""The Python API as a user meets it: ``import ddbsearch`` is cheap, the Lambda zip that
ships the same ``__init__.py`` imports nothing new, and README's example runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ddbsearch
from ddbsearch.packaging import build_lambda_zip

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
ROOT = README.parent

NEW_MODULES = (
    "import json, sys; before = set(sys.modules); import {module}; "
    "print(json.dumps(sorted(set(sys.modules) - before)))"
)


def _new_modules(module: str, path: Path, env: dict[str, str] | None = None) -> list[str]:
    code = f"import sys; sys.path.insert(0, {str(path)!r}); " + NEW_MODULES.format(module=module)
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def test_import_ddbsearch_loads_nothing_else() -> None:
    assert _new_modules("ddbsearch", ROOT) == ["ddbsearch"]


def test_the_front_door_lists_the_verbs_and_types() -> None:
    for name in ("deploy", "destroy", "put", "backfill", "search", "status", "redrive"):
        assert callable(getattr(ddbsearch, name)), name
    assert set(ddbsearch.__all__) <= set(dir(ddbsearch))
    assert ddbsearch.Target.__name__ == "Target"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ddbsearch.nope  # noqa: B018


def test_the_handler_in_the_zip_imports_only_the_core(tmp_path: Path) -> None:
    zip_path = build_lambda_zip(tmp_path / "function.zip")
    task = tmp_path / "task"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task)
    env = {
        "OPENSEARCH_ENDPOINT": "http://127.0.0.1:9",
        "INDEX_NAME": "i",
        "OPENSEARCH_AUTH": "none",
    }
    ours = [m for m in _new_modules("handler", task, env) if m.split(".")[0] == "ddbsearch"]
    assert "ddbsearch" in ours
    assert [m for m in ours if m != "ddbsearch" and not m.startswith("ddbsearch.core")] == []


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Use it from Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's 'Use it from Python' has no python block"
    return match.group(1)


def test_readme_python_example_runs() -> None:
    code = _readme_example()
    imports = [ln for ln in code.splitlines() if re.match(r"\s*(import|from)\s", ln)]
    assert imports == ["import ddbsearch"]  # the front door only
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        ddbsearch.destroy(local=True)  # also when the example failed half-way
    assert out.getvalue().splitlines() == ["Dune", "True"]
