"""README's "Command reference" and "Exit codes" stay in step with the CLI itself.

Every visible command has a ``### `ddbsearch <command>` `` section that mentions each of
its options (the shared target options may be documented once, under "Target options",
when the section links there); every option a section's table documents exists; every
exit code is in the table with its name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.testing import CliRunner

from ddbsearch.cli import app
from ddbsearch.errors import ExitCode

README = Path(__file__).resolve().parents[1] / "README.md"
TARGET_OPTIONS = {"--local", "--name", "--endpoint", "--table", "--index", "--region", "--profile"}
OPTION = re.compile(r"`(--[a-z][a-z0-9-]*)")


def section(text: str, heading: str, level: str = "##") -> str:
    """The body under ``heading`` up to the next heading of the same or a higher level."""
    pattern = rf"^{level} {re.escape(heading)}\s*$(.*?)(?=^#{{1,{len(level)}}} |\Z)"
    match = re.search(pattern, text, flags=re.M | re.S)
    assert match, f"README has no '{level} {heading}' section"
    return match.group(1)


def reference() -> str:
    return section(README.read_text(), "Command reference")


def command_sections() -> dict[str, str]:
    parts = re.split(r"^### ", reference(), flags=re.M)[1:]
    out: dict[str, str] = {}
    for part in parts:
        title, _, body = part.partition("\n")
        match = re.fullmatch(r"`ddbsearch ([a-z-]+)`\s*", title)
        if match:
            out[match.group(1)] = body
    return out


def group() -> TyperGroup:
    cmd = typer.main.get_command(app)
    assert isinstance(cmd, TyperGroup)
    return cmd


def visible_commands() -> dict[str, Any]:
    return {name: c for name, c in group().commands.items() if not c.hidden}


def long_options(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, TyperOption) and not param.hidden:
            names.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
    names.discard("--help")
    return names


def table_options(body: str) -> set[str]:
    """Options named in the first cell of the section's table rows."""
    found: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            first_cell = line.split(" | ")[0]
            found.update(OPTION.findall(first_cell))
    return found


def test_every_command_has_a_section_and_no_section_is_stale() -> None:
    documented = set(command_sections())
    commands = set(visible_commands())
    assert commands - documented == set(), "commands missing from README's Command reference"
    assert documented - commands == set(), "README documents commands that do not exist"


@pytest.mark.parametrize("name", sorted(visible_commands()))
def test_every_option_of_each_command_is_documented(name: str) -> None:
    command = visible_commands()[name]
    body = command_sections()[name]
    mentioned = set(OPTION.findall(body))
    options = long_options(command)
    if options >= TARGET_OPTIONS and "(#target-options)" in body:
        mentioned |= TARGET_OPTIONS
    assert options - mentioned == set(), f"options of '{name}' missing from its README section"
    for param in command.params:
        if isinstance(param, TyperArgument):
            assert str(param.name).upper() in body, f"argument of '{name}' undocumented"


@pytest.mark.parametrize("name", sorted(visible_commands()))
def test_documented_options_exist_and_help_renders(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    command = visible_commands()[name]
    stale = table_options(command_sections()[name]) - long_options(command)
    assert stale == set(), f"README documents options '{name}' does not have"
    for option in long_options(command):
        assert option in result.stdout  # what --help shows is what the README describes


def test_global_and_target_options_are_documented() -> None:
    ref = reference()
    root = set(OPTION.findall(section(ref, "Global options", "###")))
    assert long_options(group()) <= root
    target = set(OPTION.findall(section(ref, "Target options", "###")))
    assert target >= TARGET_OPTIONS
    # the shared options really are shared: every command that links there has them all
    for name, body in command_sections().items():
        if "(#target-options)" in body:
            assert long_options(visible_commands()[name]) >= TARGET_OPTIONS, name


def test_exit_codes_table_lists_every_code_with_its_name() -> None:
    body = section(README.read_text(), "Exit codes")
    rows = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\| `(\d+)` \| ([A-Z_]+) \|", body, flags=re.M)
    }
    assert rows == {int(code): code.name for code in ExitCode}


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """The newcomer's two commands: CI must run the second one, as written."""
    quick_start = section(README.read_text(), "Quick start (fresh machine, Python 3.10+)")
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert len(commands) == 2, "Quick start shows the demo command and the test command"
    demo, tests = commands
    assert demo.endswith("ddbsearch demo")
    ci = (README.parent / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
