"""Build the Lambda zip: ``handler.py`` at the root plus the indexing core.

The core imports only the standard library, botocore and urllib3, which the AWS
Lambda Python runtime provides, so the zip carries no third-party code at all:
it is pure Python (one zip serves arm64 and x86_64), a few dozen kilobytes, and
byte-for-byte reproducible (fixed timestamps, modes and order), so Terraform's
``source_code_hash`` changes only when the code does.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import ddbsearch
from ddbsearch.errors import DdbsearchError

_PACKAGE_DIR = Path(ddbsearch.__file__).parent
# The package marker; the handler needs nothing else outside core/, which is taken whole.
_SHARED_MODULES = ("__init__.py",)
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
MAX_ZIP_BYTES = 3 * 1024 * 1024


def handler_source() -> Path:
    """lambda/handler.py: the wheel's packaged copy, else the source checkout's."""
    for candidate in (
        _PACKAGE_DIR / "_data" / "lambda" / "handler.py",
        _PACKAGE_DIR.parent / "lambda" / "handler.py",
    ):
        if candidate.is_file():
            return candidate
    raise DdbsearchError("the Lambda handler source is missing from this installation")


def zip_members() -> list[tuple[str, Path]]:
    members = [("handler.py", handler_source())]
    members += [(f"ddbsearch/{name}", _PACKAGE_DIR / name) for name in _SHARED_MODULES]
    members += [
        (f"ddbsearch/core/{path.name}", path)
        for path in sorted((_PACKAGE_DIR / "core").glob("*.py"))
    ]
    return sorted(members)


def build_lambda_zip(output: Path) -> Path:
    """Write the zip to ``output`` (atomically) and return its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arcname, path in zip_members():
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_DATE)
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the build host
            zf.writestr(info, path.read_bytes())
    size = tmp.stat().st_size
    if size > MAX_ZIP_BYTES:
        tmp.unlink()
        raise DdbsearchError(
            f"the Lambda zip would be {size} bytes, over the {MAX_ZIP_BYTES} limit"
        )
    tmp.replace(output)
    return output


def zip_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
