"""The Lambda zip: handler at the root, pure Python, small, byte-for-byte reproducible."""

from __future__ import annotations

import zipfile
from pathlib import Path

from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.packaging import MAX_ZIP_BYTES, build_lambda_zip, zip_sha256


def test_zip_layout_and_size(tmp_path: Path) -> None:
    path = build_lambda_zip(tmp_path / "fn.zip")
    names = zipfile.ZipFile(path).namelist()
    assert "handler.py" in names
    assert "ddbsearch/core/stream.py" in names
    assert "ddbsearch/core/documents.py" in names
    # Pure Python: one zip serves arm64 and x86_64.
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib"))]
    # Nothing CLI-only rides along.
    assert not [n for n in names if n.startswith(("ddbsearch/cli", "ddbsearch/local"))]
    assert path.stat().st_size <= MAX_ZIP_BYTES


def test_zip_is_reproducible(tmp_path: Path) -> None:
    a = build_lambda_zip(tmp_path / "a.zip")
    b = build_lambda_zip(tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()
    info = zipfile.ZipFile(a).infolist()
    assert {i.date_time for i in info} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.filename for i in info] == sorted(i.filename for i in info)


def test_package_command_prints_the_path(tmp_path: Path) -> None:
    out = tmp_path / "out" / "indexer.zip"
    result = CliRunner().invoke(app, ["package", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert zip_sha256(out) == zip_sha256(build_lambda_zip(tmp_path / "again.zip"))
