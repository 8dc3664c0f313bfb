"""The wheel carries the Terraform modules and the handler, so `pipx install` can deploy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ddbsearch.infra import resources
from ddbsearch.infra.resources import root_variables, terraform_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: hatchling comes from the test extra, no download needed.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (built,) = out.glob("ddbsearch-*.whl")
    return built


def test_wheel_contains_every_terraform_file_and_the_handler(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {
        f"ddbsearch/_data/terraform/{path.relative_to(REPO / 'terraform').as_posix()}"
        for path in (REPO / "terraform").rglob("*.tf")
    }
    assert expected
    assert expected <= names
    assert "ddbsearch/_data/terraform/modules/indexer/iam.tf" in names
    assert "ddbsearch/_data/lambda/handler.py" in names


def test_packaged_modules_are_preferred_over_the_checkout(
    wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lay the wheel's files out as an installed package would and look them up there.
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    installed = tmp_path / "site" / "ddbsearch"
    monkeypatch.setattr(resources, "_PACKAGE_DIR", installed)
    assert terraform_dir() == installed / "_data" / "terraform"
    assert (terraform_dir() / "modules" / "search" / "main.tf").is_file()


def test_an_editable_install_reads_the_repository() -> None:
    assert terraform_dir() == REPO / "terraform"


def test_root_variables_are_read_from_the_module() -> None:
    names = root_variables()
    assert {"batch_size", "instance_type", "operator_arns", "lambda_zip_path"} <= names
    assert "nonexistent" not in names
