"""Benchmark 4: the Lambda zip's size and the handler module's cold import time.

The zip from ``ddbsearch.packaging.build_lambda_zip`` is extracted, and
``import handler`` runs in a fresh ``python -I -S`` (no site-packages, like
the Lambda runtime) with the extracted zip and a directory linking only what
the Lambda Python runtime ships (boto3, botocore, urllib3, ...) on ``sys.path``.
Environment as deployed: OPENSEARCH_ENDPOINT, INDEX_NAME, AWS_REGION, and
(fake) credentials for the SigV4 signer the handler builds at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Section, Target, num, table
from ddbsearch.core.stream import Settings
from ddbsearch.local.runtime import build_runtime_site, extract_zip
from ddbsearch.packaging import MAX_ZIP_BYTES, build_lambda_zip

RUNS = 5
TARGET_IMPORT_MS = 300.0

_PROBE = (
    "import sys, time; sys.path[:0] = sys.argv[1:3]; t = time.perf_counter(); "
    "import handler; print(time.perf_counter() - t)"
)


def _env(home: str, auth: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,  # no ~/.aws of the developer's
        "LANG": "C.UTF-8",
        **Settings(
            endpoint="https://search-example.us-east-1.es.amazonaws.com",
            index="userstransactions",
            region="us-east-1",
            dlq_url=None,
            sigv4=auth == "sigv4",
        ).to_environment(),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _import_times(task: Path, site: Path, env: dict[str, str], runs: int) -> tuple[float, float]:
    """(min import seconds in the child, min process wall seconds) over ``runs`` fresh runs."""
    inner, outer = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _PROBE, str(task), str(site)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=task,
        )
        outer.append(time.perf_counter() - t0)
        inner.append(float(out.stdout.strip().splitlines()[-1]))
    return min(inner), min(outer)


def _interpreter_wall(runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def _importtime_top(
    task: Path, site: Path, env: dict[str, str], top: int = 8
) -> list[tuple[str, float]]:
    """Packages by the import time of their own modules (``-X importtime`` self times), in ms."""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", _PROBE, str(task), str(site)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=task,
    )
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, _cumulative, name = (p.strip() for p in line[len("import time:") :].split("|"))
        if not own.isdigit():
            continue
        package = name.split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]


def run(quick: bool = False, *, runs: int = RUNS) -> Section:
    started = time.perf_counter()
    section = Section("artifact", "4. Artifact: Lambda zip size and cold import time")
    with tempfile.TemporaryDirectory(prefix="ddbsearch-bench-zip-") as tmp:
        base = Path(tmp)
        zip_path = build_lambda_zip(base / "function.zip")
        size = zip_path.stat().st_size
        task = extract_zip(zip_path, base / "task")
        site = build_runtime_site(base / "runtime-site")
        unpacked = sum(p.stat().st_size for p in task.rglob("*") if p.is_file())
        bare = _interpreter_wall(runs)
        rows = []
        results = {}
        for auth in ("sigv4", "none"):
            inner, outer = _import_times(task, site, _env(tmp, auth), runs)
            results[auth] = inner
            label = "SigV4 (as deployed to AWS)" if auth == "sigv4" else "unsigned (local emulator)"
            rows.append(
                (label, f"{inner * 1000:,.0f}", f"{outer * 1000:,.0f}", f"{bare * 1000:,.0f}")
            )
        top = _importtime_top(task, site, _env(tmp, "sigv4"))
    section.tables.append(
        table(
            ("Zip", "Bytes", "Unpacked bytes", "Limit"),
            [("function.zip", num(size), num(unpacked), num(MAX_ZIP_BYTES))],
        )
    )
    section.tables.append(
        table(
            (
                "`import handler` (OPENSEARCH_AUTH)",
                f"import ms (min of {runs})",
                f"process wall ms (min of {runs})",
                "bare interpreter ms",
            ),
            rows,
        )
    )
    section.tables.append(
        table(
            ("Package (SigV4 run, `-X importtime`, self times summed)", "ms"),
            [(f"`{name}`", f"{ms:,.1f}") for name, ms in top],
        )
    )
    section.notes += [
        "Import ms: `time.perf_counter()` around `import handler` inside the fresh "
        "interpreter (module load includes building the Indexer from the environment). "
        "Process wall: the whole `python -I -S -c ...` including interpreter start-up.",
    ]
    section.metrics = {"zip_bytes": size, "import_ms": results["sigv4"] * 1000}
    section.targets += [
        Target("Lambda zip size", f"{size / 1024:,.1f} KiB", "<= 3 MB", size <= MAX_ZIP_BYTES),
        Target(
            "Cold import of the handler (SigV4, as deployed)",
            f"{results['sigv4'] * 1000:,.0f} ms",
            f"<= {TARGET_IMPORT_MS:,.0f} ms",
            results["sigv4"] * 1000 <= TARGET_IMPORT_MS,
        ),
    ]
    section.seconds = time.perf_counter() - started
    return section
