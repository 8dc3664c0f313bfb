"""The operator install (`pip install ddbsearch`, no extras) works on its own.

The wheel goes into a fresh virtual environment that sees nothing of this one;
then `ddbsearch --help` and `ddbsearch search --help` must run, none of the local
stack's packages (moto, osmem-server, flask, ...) may be importable there, and
`ddbsearch demo` / `deploy --local` must say in one line which extra to install.

Two ways to give that environment the operator's dependencies:

* ``linked`` (default; offline, a few seconds): the wheel is installed with
  ``--no-deps`` and the *declared* dependency closure of the wheel's metadata
  (``Requires-Dist`` without extras, followed transitively through the installed
  distributions' metadata) is linked in from this environment, and nothing else.
  A dependency the code imports but the metadata does not declare fails here (as
  ``click`` did: typer 0.29 vendors click and stopped installing it).
* ``index`` (``DDBSEARCH_OPERATOR_INSTALL=index``; needs the package index, ~20 s):
  a plain ``pip install <wheel>``, so pip resolves the dependencies afresh, exactly
  as a user's install does. CI runs this mode once after the suite (.ci/run).
"""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
MODE = os.environ.get("DDBSEARCH_OPERATOR_INSTALL", "linked")
# Import names that only the local stack needs; the operator install must have none.
LOCAL_ONLY = ("moto", "osmem_server", "flask", "flask_cors", "werkzeug")

Run = Callable[..., subprocess.CompletedProcess[str]]


def _wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(zf.read(name).decode())
    return meta.get_all("Requires-Dist") or []


def _wanted(req: Requirement, extras: set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """Installed distributions that ``requirements`` (no extras) pull in, transitively."""
    found: dict[str, metadata.Distribution] = {}
    extras_of: dict[str, set[str]] = {}
    # (requirement, extras its requiring distribution was asked for)
    todo: list[tuple[Requirement, set[str]]] = [(Requirement(r), set()) for r in requirements]
    while todo:
        req, parent_extras = todo.pop()
        if not _wanted(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        if name in found and set(req.extras) <= extras_of[name]:
            continue
        try:
            dist = found.get(name) or metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(
                f"{req.name} (a dependency of the operator install) is not installed here; "
                "reinstall the test environment: pip install -e '.[test]'"
            )
        if not req.specifier.contains(dist.version, prereleases=True):
            pytest.fail(
                f"{dist.metadata['Name']} {dist.version} is installed here, but the operator "
                f"install asks for {req}; reinstall: pip install -e '.[test]'"
            )
        found[name] = dist
        extras = extras_of.setdefault(name, set())
        extras |= set(req.extras)
        todo += [(Requirement(r), set(extras)) for r in dist.requires or ()]
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], into: Path) -> None:
    """Symlink each distribution's top-level modules and its .dist-info into ``into``."""
    into.mkdir()
    for dist in dists.values():
        tops = {
            f.parts[0]
            for f in dist.files or ()
            if f.parts[0] not in ("..", "__pycache__") and not f.parts[0].endswith(".pth")
        }
        assert tops, f"{dist.metadata['Name']} lists no files"
        for top in tops:
            link = into / top
            if not link.exists():  # namespace packages share a top-level directory
                link.symlink_to(Path(str(dist.locate_file(top))))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: hatchling comes from the test extra, no download needed.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (built,) = out.glob("ddbsearch-*.whl")
    return built


@pytest.fixture(scope="module")
def operator_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and the operator's dependencies, nothing else."""
    root = tmp_path_factory.mktemp("operator")
    env_dir = root / "venv"
    python = env_dir / "bin" / "python"
    pip_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if MODE == "index":
        venv.create(env_dir, with_pip=True, clear=True)
        install = [str(python), "-m", "pip", "install", "--quiet", str(wheel)]
    else:
        assert MODE == "linked", f"DDBSEARCH_OPERATOR_INSTALL={MODE}: use 'linked' or 'index'"
        venv.create(env_dir, with_pip=False, clear=True)
        install = [sys.executable, "-m", "pip", "--python", str(python), "install",
                   "--quiet", "--no-deps", "--no-index", str(wheel)]  # fmt: skip
    proc = subprocess.run(install, capture_output=True, text=True, env=pip_env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if MODE == "linked":
        deps = root / "deps"
        _link_distributions(dependency_closure(_wheel_requirements(wheel)), deps)
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
        ).stdout.strip()  # fmt: skip
        (Path(site) / "operator_dependencies.pth").write_text(f"{deps}\n")
    return env_dir


@pytest.fixture
def run(operator_venv: Path, tmp_path: Path) -> Run:
    """Run a command of the operator venv with a clean environment (no PYTHONPATH)."""
    bin_dir = operator_venv / "bin"

    def go(*argv: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "COLUMNS": "120",
            "DDBSEARCH_HOME": str(tmp_path / "state"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        return subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
        )  # fmt: skip

    return go


def test_the_operator_install_declares_no_local_stack_package(wheel: Path) -> None:
    closure = set(dependency_closure(_wheel_requirements(wheel)))
    local = {"moto", "osmem-server", "flask", "flask-cors", "werkzeug", "docker", "cfn-lint"}
    assert closure & local == set()
    # opensearch-py 3.1+ would bring grpcio and protobuf (see the pin in pyproject.toml)
    assert closure & {"grpcio", "protobuf", "opensearch-protobufs"} == set()
    assert {"typer", "rich", "boto3", "opensearch-py", "requests-aws4auth"} <= closure


def test_nothing_local_only_is_importable_or_imported(run: Run, operator_venv: Path) -> None:
    probe = (
        "import importlib.util, json, sys; import ddbsearch.cli, ddbsearch.ops.search; "
        f"local = {LOCAL_ONLY!r}; "
        "print(json.dumps({'file': ddbsearch.__file__, "
        "'importable': [m for m in local if importlib.util.find_spec(m)], "
        "'imported': sorted(m for m in sys.modules if m.split('.')[0] in local)}))"
    )
    proc = run("python", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert Path(found["file"]).is_relative_to(operator_venv)  # the wheel, not this checkout
    assert found["importable"] == []
    assert found["imported"] == []


def test_the_dependencies_are_consistent(operator_venv: Path) -> None:
    """pip's own check over what the venv holds (the linked closure, or what pip resolved)."""
    python = operator_venv / "bin" / "python"
    pip = [str(python), "-m", "pip"] if MODE == "index" else [sys.executable, "-m", "pip",
                                                              "--python", str(python)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*pip, "check"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"]], ids=["root", "search"])
def test_help_runs(run: Run, argv: list[str]) -> None:
    proc = run("ddbsearch", *argv)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


@pytest.mark.parametrize("argv", [["demo"], ["deploy", "--local"]], ids=["demo", "deploy-local"])
def test_the_local_stack_asks_for_the_local_extra_in_one_line(run: Run, argv: list[str]) -> None:
    proc = run("ddbsearch", *argv)
    assert proc.returncode == 8  # ExitCode.PREREQUISITE
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: the local stack needs moto")
    assert lines[0].endswith("(pip install 'ddbsearch[local]')")
