"""Shell completion of field names, from the target index's mapping.

Called by the shell on every TAB, so it must be quick and quiet: the target comes
from the options typed so far (or the last deploy), the mapping from a cache in the
state directory younger than a minute or one request with a 0.3 s timeout
(:func:`ddbsearch.ops.search.cached_fields`); any failure completes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ddbsearch.ops.search import FieldInfo

COMPLETION_TIMEOUT = 0.3


def _fields(ctx: typer.Context) -> dict[str, FieldInfo]:
    try:
        from ddbsearch.ops.search import cached_fields
        from ddbsearch.targets import resolve_target

        params = ctx.params
        target = resolve_target(
            local=bool(params.get("local")),
            name=params.get("name"),
            endpoint=params.get("endpoint"),
            table=params.get("table"),
            index=params.get("index"),
            region=params.get("region"),
        )
        return cached_fields(target, timeout=COMPLETION_TIMEOUT)
    except Exception:  # completion prints nothing rather than an error
        return {}


def _names(ctx: typer.Context, keep: Callable[[FieldInfo], bool]) -> list[str]:
    return sorted(name for name, info in _fields(ctx).items() if keep(info))


def _matching(names: list[str], incomplete: str, suffix: str = "") -> list[str]:
    return [n + suffix for n in names if n.startswith(incomplete)]


def text_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    return _matching(_names(ctx, lambda i: i.type == "text"), incomplete)


def filter_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    if "=" in incomplete:  # a value: not completed (that would need a search per TAB)
        return []
    return _matching(_names(ctx, lambda i: True), incomplete, "=")


def sort_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    name, sep, _ = incomplete.rpartition(":")
    if sep:
        return [o for o in (f"{name}:asc", f"{name}:desc") if o.startswith(incomplete)]
    sortable = _names(ctx, lambda i: i.type != "text" or i.keyword is not None)
    return _matching(sortable, incomplete)


def exact_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    return _matching(_names(ctx, lambda i: i.type != "text" or i.keyword is not None), incomplete)


def number_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    return _matching(_names(ctx, lambda i: i.numeric), incomplete)


def histogram_fields(ctx: typer.Context, incomplete: str) -> list[str]:
    if ":" in incomplete:
        return []
    names = _names(ctx, lambda i: i.numeric or i.type in ("date", "date_nanos"))
    return _matching(names, incomplete, ":")


def field_list(ctx: typer.Context, incomplete: str) -> list[str]:
    """``--fields a,b,c``: complete the last name of the list."""
    done, sep, last = incomplete.rpartition(",")
    prefix = done + sep
    return [prefix + n for n in _names(ctx, lambda i: True) if n.startswith(last)]
