"""Where the Terraform modules are: inside the installed wheel, or in the checkout.

The wheel force-includes ``terraform/`` as ``ddbsearch/_data/terraform`` (see
pyproject.toml) so that a ``pipx install ddbsearch`` can deploy with nothing
else on disk; an editable install reads the repository's ``terraform/``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import ddbsearch
from ddbsearch.errors import DdbsearchError

_PACKAGE_DIR = Path(ddbsearch.__file__).parent


def terraform_dir() -> Path:
    """The root module directory (``main.tf``, ``variables.tf``, ``modules/``...)."""
    for candidate in (_PACKAGE_DIR / "_data" / "terraform", _PACKAGE_DIR.parent / "terraform"):
        if (candidate / "main.tf").is_file():
            return candidate
    raise DdbsearchError(
        "the Terraform modules are missing from this installation",
        hint="reinstall ddbsearch (pip install --force-reinstall ddbsearch)",
    )


@cache
def root_variables() -> frozenset[str]:
    """Names of the root module's input variables (what ``--var KEY=VALUE`` may set)."""
    text = (terraform_dir() / "variables.tf").read_text()
    return frozenset(re.findall(r'^variable\s+"([A-Za-z0-9_]+)"', text, flags=re.MULTILINE))
