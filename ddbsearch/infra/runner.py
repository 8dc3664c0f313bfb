"""Runs Terraform through python-terraform, keeping the whole conversation in a log file.

python-terraform builds the command lines (``-var-file``, ``-backend-config``,
flags) and parses ``output -json``; its ``cmd`` is replaced here so that
Terraform's output streams line by line into ``terraform.log`` and to a
progress callback while a long ``apply`` runs (an OpenSearch domain takes 15-30
minutes), instead of arriving all at once at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from python_terraform import IsFlagged, Terraform

from ddbsearch.errors import InfraError
from ddbsearch.files import DIR_MODE, FILE_MODE, ensure_dir

ProgressCallback = Callable[[str], None]

# Lines worth showing while Terraform works (the rest goes to the log only).
_PROGRESS_RE = re.compile(
    r"^\S+: (Creating|Still creating|Creation complete|Modifying|Still modifying|"
    r"Modifications complete|Destroying|Still destroying|Destruction complete|Reading|"
    r"Read complete)\b"
)
_BOX_CHARS = "╷│╵ "


def first_error(text: str) -> str | None:
    """The summary of Terraform's first ``Error:`` diagnostic, if any."""
    lines = [line.strip(_BOX_CHARS) for line in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Error: "):
            summary = line[len("Error: ") :].strip()
            # The detail paragraph after the summary is usually what the user needs.
            detail = next(
                (
                    rest
                    for rest in lines[i + 1 : i + 12]
                    if rest
                    and not rest.startswith(("on ", "with ", "Error: "))
                    and not rest.startswith(tuple("0123456789"))
                ),
                None,
            )
            return f"{summary}: {detail}" if detail and len(detail) < 300 else summary
    return None


def tighten(root: Path) -> None:
    """Make everything under ``root`` owner-only (files 0600, keeping the owner's execute
    bit for provider binaries; directories 0700): Terraform writes state, plans and
    tfvars copies, and a umask does not cover files it created before."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode & 0o777
            os.chmod(path, FILE_MODE | (mode & 0o100))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


class _StreamingTerraform(Terraform):  # type: ignore[misc]
    """python-terraform whose ``cmd`` streams stdout to the log and a callback."""

    def __init__(
        self,
        *,
        working_dir: Path,
        binary: str,
        env: Mapping[str, str],
        log: IO[str],
        on_line: Callable[[str], None],
        log_out: bool = True,
    ) -> None:
        super().__init__(working_dir=str(working_dir), terraform_bin_path=binary)
        self._env = dict(env)
        self._log = log
        self._on_line = on_line
        self._log_out = log_out

    def cmd(self, cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
        kwargs.pop("capture_output", None)
        kwargs.pop("raise_on_error", None)
        argv = self.generate_cmd_string(cmd, *args, **kwargs)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._log.write(f"\n=== {stamp} $ {' '.join(argv)}\n")
        self._log.flush()
        err_chunks: list[str] = []
        out_chunks: list[str] = []
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.working_dir,
                env=self._env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",  # Terraform writes UTF-8 (box drawing) whatever the locale
                errors="replace",
                bufsize=1,
                umask=0o077,  # state, plan, lock and provider files: owner-only
            )
        except OSError as exc:
            self.temp_var_files.clean_up()
            raise InfraError(f"could not start terraform: {exc.strerror}") from exc
        if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE always sets them
            raise InfraError("could not read terraform's output")
        stderr = proc.stderr

        def drain_stderr() -> None:
            for line in stderr:
                err_chunks.append(line)

        reader = threading.Thread(target=drain_stderr, daemon=True)
        reader.start()
        try:
            for line in proc.stdout:
                out_chunks.append(line)
                if self._log_out:
                    self._log.write(line)
                    self._on_line(line.rstrip("\n"))
            proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: let terraform stop gracefully on SIGINT
                proc.wait()
            reader.join()
            self.temp_var_files.clean_up()
        if not self._log_out:
            self._log.write(f"(output not logged: {sum(map(len, out_chunks))} characters)\n")
        if err_chunks:
            self._log.write("--- stderr\n" + "".join(err_chunks))
        self._log.write(f"=== exit {proc.returncode}\n")
        self._log.flush()
        return proc.returncode, "".join(out_chunks), "".join(err_chunks)


class TerraformRunner:
    """init / plan / apply / destroy / output in one working directory, logged to one file."""

    def __init__(
        self,
        working_dir: Path,
        *,
        binary: str,
        log_path: Path,
        env: Mapping[str, str | None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        """``env`` adds to the environment; a None value removes the variable."""
        self.working_dir = working_dir
        self.log_path = log_path
        self._binary = binary
        self._on_progress = on_progress or (lambda _msg: None)
        base = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        # Non-interactive, no update checks, machine-friendly messages.
        base.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        self._env = base
        self._phase = ""

    def _tf(self, log: IO[str], *, log_out: bool = True) -> _StreamingTerraform:
        def on_line(line: str) -> None:
            if _PROGRESS_RE.match(line):
                self._on_progress(f"{self._phase}: {line}")

        return _StreamingTerraform(
            working_dir=self.working_dir,
            binary=self._binary,
            env=self._env,
            log=log,
            on_line=on_line,
            log_out=log_out,
        )

    def _run(self, phase: str, cmd: str, *args: str, log_out: bool = True, **options: Any) -> str:
        self._phase = phase
        self._on_progress(phase)
        ensure_dir(self.log_path.parent)
        # The log holds plan output (resource attributes): owner-only, like every stack file.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "a", encoding="utf-8") as log:
            code, out, err = self._tf(log, log_out=log_out).cmd(cmd, *args, **options)
        tighten(self.working_dir)
        if code != 0:
            reason = first_error(err) or first_error(out) or f"exit status {code}"
            raise InfraError(f"{phase} failed: {reason}", hint=f"full log: {self.log_path}")
        return out

    def init(self, backend_config: Mapping[str, str] | None = None) -> None:
        options: dict[str, Any] = {"input": False, "no_color": IsFlagged}
        if backend_config:
            options["backend_config"] = dict(backend_config)
            options["reconfigure"] = IsFlagged
        self._run("terraform init", "init", **options)

    def plan(self, plan_file: str = "tfplan", *, destroy: bool = False) -> str:
        options: dict[str, Any] = {"input": False, "no_color": IsFlagged, "out": plan_file}
        if destroy:
            options["destroy"] = IsFlagged
        return self._run("terraform plan", "plan", **options)

    def apply(self, plan_file: str = "tfplan") -> None:
        # A saved plan carries its variables: no -var/-var-file here (Terraform refuses them).
        self._run(
            "terraform apply",
            "apply",
            plan_file,
            input=False,
            no_color=IsFlagged,
            auto_approve=IsFlagged,
        )

    def destroy(self) -> None:
        # python-terraform's destroy() still passes -force, which Terraform >= 0.15 rejects.
        self._run(
            "terraform destroy", "destroy", input=False, no_color=IsFlagged, auto_approve=IsFlagged
        )

    def show_json(self, plan_file: str = "tfplan") -> dict[str, Any]:
        """``terraform show -json <plan>``: the saved plan as JSON."""
        import json

        # The plan JSON repeats every attribute (the function's environment too): not logged.
        out = self._run(
            "terraform show", "show", plan_file, json=IsFlagged, no_color=IsFlagged, log_out=False
        )
        try:
            shown = json.loads(out or "{}")
        except ValueError as exc:
            raise InfraError(
                "terraform show -json did not return JSON", hint=f"full log: {self.log_path}"
            ) from exc
        return shown if isinstance(shown, dict) else {}

    def state_list(self) -> list[str]:
        out = self._run("terraform state list", "state list")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def outputs(self) -> dict[str, Any]:
        """``terraform output -json`` as {name: value}."""
        import json

        out = self._run("terraform output", "output", json=IsFlagged, no_color=IsFlagged)
        try:
            raw = json.loads(out or "{}")
        except ValueError as exc:
            raise InfraError(
                "terraform output -json did not return JSON", hint=f"full log: {self.log_path}"
            ) from exc
        if not isinstance(raw, dict):
            raise InfraError("terraform output -json did not return an object")
        return {k: v.get("value") if isinstance(v, dict) else v for k, v in raw.items()}
