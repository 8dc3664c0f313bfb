"""Benchmark 5: install size and CLI start-up.

Two fresh virtual environments, made the way a user makes them
(``python -m venv``, then ``pip install`` from the package index):

* operator: ``pip install ddbsearch`` (the wheel of this checkout, no extras);
* local: ``pip install 'ddbsearch[local]'`` (plus the local stack's emulators);
* and, as the reference for what the ``local`` extra saves, the same wheel with
  ``moto[server]`` and osmem-server, as the install was before (not in --quick).

For each: distributions in the venv (``pip list``, so pip itself and whatever
``venv`` seeds are counted), distributions pip installed, disk use (as ``du``),
install wall time. The wheel is built once, offline (``pip wheel --no-deps
--no-build-isolation``); pip's cache makes repeated runs faster than a first
install on a new machine.

Start-up, all in one run next to ``python -c pass`` of the same venv: process wall
time of ``ddbsearch --help`` and ``ddbsearch search --help`` (operator venv), and of
``ddbsearch search`` against a running local stack (deployed from the local venv,
searched from both); import time from ``-X importtime`` (self times summed: every
import the process does, including the interpreter's own).

Before/after: ``DDBSEARCH_BENCH_BASELINE=<git ref>`` (e.g. ``main``) also installs the
wheel of that commit into an operator venv of its own and runs its ``ddbsearch search``
against the same stack, interleaved with this checkout's, so the two are compared in
one run (the ratio row).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Section, Target, table

REPO = Path(__file__).resolve().parent.parent
RUNS = 7
QUICK_RUNS = 3
TARGET_INSTALL_MB = 150.0
TARGET_IMPORT_MS = 300.0
QUERY = "mega test"
ITEM = (
    '{"userId": 3, "transactionId": 51, "accountId": 3, "amount": 11, '
    '"shortDescription": "Final mega test 2"}'
)
# Run the console script's entry point under -X importtime, argv as the script gets it.
_MAIN = "import sys; from ddbsearch.cli import main; sys.argv[0] = 'ddbsearch'; sys.exit(main())"


BASELINE = os.environ.get("DDBSEARCH_BENCH_BASELINE")


def _pip_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(out), str(REPO)],
        check=True, env=_pip_env(),
    )  # fmt: skip
    (wheel,) = out.glob("ddbsearch-*.whl")
    return wheel


def _baseline_wheel(ref: str, out: Path) -> Path:
    """The wheel of commit ``ref`` of this repository (its tree, not the working tree)."""
    src = out / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(out / "wheel"), str(src)],
        check=True, env=_pip_env(),
    )  # fmt: skip
    (wheel,) = (out / "wheel").glob("ddbsearch-*.whl")
    return wheel


def _distributions(python: Path) -> set[str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True, text=True, check=True, env=_pip_env(),
    ).stdout  # fmt: skip
    return {d["name"].lower() for d in json.loads(out)}


def disk_mb(path: Path) -> float:
    """Disk use like ``du -s``, in MB (10^6 bytes): allocated blocks, symlinks not
    followed, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    total += os.lstat(path).st_blocks * 512
    return total / 1e6


def _install(base: Path, name: str, requirements: list[str]) -> dict[str, Any]:
    env_dir = base / name
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, env=_pip_env())
    python = env_dir / "bin" / "python"
    seeded = _distributions(python)
    empty_mb = disk_mb(env_dir)
    t0 = time.perf_counter()
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements],
        check=True, env=_pip_env(),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    after = _distributions(python)
    return {
        "dir": env_dir,
        "distributions": len(after),
        "installed": len(after - seeded),
        "mb": disk_mb(env_dir),
        "empty_mb": empty_mb,
        "seconds": seconds,
        "names": after,
    }


def _env(env_dir: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
        "DDBSEARCH_HOME": str(home / "state"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False
    )


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _walls(
    argv: list[str], env: dict[str, str], cwd: Path, runs: int, ok: int = 0
) -> tuple[list[float], list[float]]:
    """Process wall and CPU (user + system) seconds of ``runs`` runs, after one warm-up run.

    CPU time is what the machine's other load inflates least."""
    walls, cpus = [], []
    for i in range(runs + 1):
        c0, t0 = _child_cpu(), time.perf_counter()
        proc = _run(argv, env, cwd)
        wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
        if proc.returncode != ok:
            raise RuntimeError(f"{argv[-3:]} exited {proc.returncode}: {proc.stderr[-500:]}")
        if i:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def _importtime(
    python: Path, code: str, args: list[str], env: dict[str, str], cwd: Path, runs: int
) -> tuple[list[float], dict[str, float]]:
    """Import ms per run (``-X importtime`` self times summed) and the last run's per package."""
    totals = []
    packages: dict[str, float] = {}
    for _ in range(runs):
        proc = _run([str(python), "-X", "importtime", "-c", code, *args], env, cwd)
        packages = {}
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            own, _cumulative, name = (p.strip() for p in line[len("import time:") :].split("|"))
            if own.isdigit():
                top = name.split(".")[0]
                packages[top] = packages.get(top, 0.0) + int(own) / 1000
        totals.append(sum(packages.values()))
    return totals, packages


def search_label(venv: str) -> str:
    where = f"operator venv of `{BASELINE}`" if venv == "baseline" else f"{venv} venv"
    return f"`ddbsearch search '{QUERY}'` (local stack, {where})"


def _ms(values: list[float], scale: float = 1000.0) -> str:
    return f"{min(values) * scale:,.0f} / {statistics.median(values) * scale:,.0f}"


def run(quick: bool = False, *, runs: int | None = None) -> Section:
    started = time.perf_counter()
    runs = runs or (QUICK_RUNS if quick else RUNS)
    section = Section("install", "5. Install size and CLI start-up")
    with tempfile.TemporaryDirectory(prefix="ddbsearch-bench-install-") as tmp:
        base = Path(tmp)
        wheel = _build_wheel(base / "wheel")
        installs = {
            "operator": _install(base, "operator", [str(wheel)]),
            "local": _install(base, "local", [f"{wheel}[local]"]),
        }
        if BASELINE:
            baseline = _install(base, "baseline", [str(_baseline_wheel(BASELINE, base / "b"))])
        if not quick:
            installs["before"] = _install(
                base, "before", [str(wheel), "moto[server]>=5.0.20", "osmem-server>=0.1.6"]
            )
        labels = {
            "operator": "operator: `pip install ddbsearch`",
            "local": "local: `pip install 'ddbsearch[local]'`",
            "before": "reference: ddbsearch + `moto[server]` + osmem-server (the install before)",
        }
        section.tables.append(
            table(
                (
                    "Install",
                    "Distributions in the venv",
                    "Installed by pip",
                    "Venv MB (du)",
                    "Install s",
                ),
                [
                    (
                        labels[k],
                        v["distributions"],
                        v["installed"],
                        f"{v['mb']:,.0f}",
                        f"{v['seconds']:,.0f}",
                    )
                    for k, v in installs.items()
                ],
            )
        )
        op, loc = installs["operator"], installs["local"]
        local_only = sorted(loc["names"] - op["names"])
        heavy = sorted(op["names"] & {"moto", "flask", "osmem-server", "grpcio", "protobuf"})
        seeded = "pip, setuptools" if "setuptools" in op["names"] else "pip"
        section.notes.append(
            f"An empty venv (`python -m venv`: {seeded}) takes {op['empty_mb']:,.0f} MB of "
            f"these. The local extra adds: {', '.join(local_only)}."
        )
        if heavy:
            section.notes.append(f"**In the operator install, but should not be:** {heavy}.")

        # --- start-up, operator venv ---
        home = base / "home"
        home.mkdir()
        op_env = _env(op["dir"], home)
        op_py = op["dir"] / "bin" / "python"
        cli = str(op["dir"] / "bin" / "ddbsearch")
        walls = {
            "`python -c pass`": _walls([str(op_py), "-c", "pass"], op_env, home, runs),
            "`ddbsearch --help`": _walls([cli, "--help"], op_env, home, runs),
            "`ddbsearch search --help`": _walls([cli, "search", "--help"], op_env, home, runs),
        }
        imports = {
            "`python -c pass`": _importtime(op_py, "pass", [], op_env, home, runs)[0],
            "`ddbsearch --help`": _importtime(op_py, _MAIN, ["--help"], op_env, home, runs)[0],
            "`ddbsearch search --help`": _importtime(
                op_py, _MAIN, ["search", "--help"], op_env, home, runs
            )[0],
        }

        # --- `ddbsearch search` against the local stack ---
        loc_env = _env(loc["dir"], home)
        loc_cli = str(loc["dir"] / "bin" / "ddbsearch")
        search_top: dict[str, float] = {}
        deployed = _run([loc_cli, "deploy", "--local"], loc_env, home)
        if deployed.returncode != 0:
            raise RuntimeError(f"deploy --local failed: {deployed.stderr[-800:]}")
        try:
            put = _run([loc_cli, "put", "--item", ITEM], loc_env, home)
            if put.returncode != 0:
                raise RuntimeError(f"put failed: {put.stderr[-800:]}")
            deadline = time.monotonic() + 60
            while _run([loc_cli, "search", QUERY], loc_env, home).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the item did not become searchable within 60 s")
                time.sleep(0.1)
            venvs = [("operator", op["dir"], op_env), ("local", loc["dir"], loc_env)]
            if BASELINE:
                venvs.insert(0, ("baseline", baseline["dir"], _env(baseline["dir"], home)))
            for key, env_dir, env in venvs:
                label = search_label(key)
                walls[label] = _walls(
                    [str(env_dir / "bin" / "ddbsearch"), "search", QUERY], env, home, runs
                )
                imports[label], top = _importtime(
                    env_dir / "bin" / "python", _MAIN, ["search", QUERY], env, home, runs
                )
                if key == "operator":
                    search_top = top
        finally:
            _run([loc_cli, "destroy", "--local", "--yes"], loc_env, home)

    section.tables.append(
        table(
            (
                "Command",
                f"process wall ms (min / median of {runs})",
                f"process CPU ms (min / median of {runs})",
                f"import ms, `-X importtime` (min / median of {runs})",
            ),
            [
                (label, _ms(walls[label][0]), _ms(walls[label][1]), _ms(imports[label], 1.0))
                for label in walls
            ],
        )
    )
    top = sorted(search_top.items(), key=lambda kv: kv[1], reverse=True)[:10]
    section.tables.append(
        table(
            (
                "Package (`ddbsearch search` against the local stack, operator venv; "
                "`-X importtime` self times summed, last run)",
                "ms",
            ),
            [(f"`{name}`", f"{ms:,.1f}") for name, ms in top],
        )
    )
    section.notes += [
        "Process wall: `subprocess.run` of the command, interpreter start-up included, "
        "one warm-up run first; process CPU: the child's user + system time "
        "(`getrusage(RUSAGE_CHILDREN)`), which the machine's other load inflates least. "
        "Import ms: all imports of the process (the interpreter's "
        "own included, as the `python -c pass` row shows), `-X importtime` self times "
        "summed; `-X importtime` itself adds some overhead.",
        "The `ddbsearch search` rows run against a local stack started by `deploy --local` "
        "from the local venv, holding the reference item; both venvs search the same stack "
        "(the operator install needs no emulator to search one).",
    ]
    search_ms = min(imports[search_label("operator")])
    if BASELINE:
        now, then = search_label("operator"), search_label("baseline")
        section.notes.append(
            f"This checkout against `{BASELINE}`, same run, same stack, operator venvs: "
            f"`ddbsearch search` process wall {min(walls[now][0]) / min(walls[then][0]):.2f}x, "
            f"process CPU {min(walls[now][1]) / min(walls[then][1]):.2f}x, import time "
            f"{min(imports[now]) / min(imports[then]):.2f}x of the baseline's (minimums)."
        )
    section.metrics = {
        "operator_mb": op["mb"],
        "operator_distributions": op["distributions"],
        "local_mb": loc["mb"],
        "search_import_ms": search_ms,
    }
    section.targets += [
        Target(
            "Operator install, venv size",
            f"{op['mb']:,.0f} MB ({op['distributions']} distributions)",
            f"< {TARGET_INSTALL_MB:,.0f} MB",
            op["mb"] < TARGET_INSTALL_MB,
        ),
        Target(
            "`ddbsearch search` start-up, import time (operator venv)",
            f"{search_ms:,.0f} ms",
            f"< {TARGET_IMPORT_MS:,.0f} ms",
            search_ms < TARGET_IMPORT_MS,
        ),
    ]
    section.seconds = time.perf_counter() - started
    return section
