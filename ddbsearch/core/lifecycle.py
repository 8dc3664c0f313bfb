"""Index generations behind aliases: discover, create, mark building, swap, retire, drop.

The index a user names (``orders``) is an alias; the data lives in generations
``orders-000001``, ``orders-000002``, ... Two aliases say what each one is for:

- ``<index>`` (the read alias) points to the **serving** generation: searches,
  counts and checks read through it;
- ``<index>-building`` points to a generation being **built** by a reindex: not
  searched yet, but written by the stream so that it misses no change.

The **live set** is every generation either alias points to; the stream handler
writes every change into each of them (one ``_bulk``, per-action ``_index``),
each with its own configuration (stored in its ``_meta``, see generations.py).
An index made before generations existed, a concrete index named ``<index>``, is
a live "legacy" generation without configuration until a reindex migrates it.

The reindex command composes these functions; each is one or two requests and
safe to repeat. Retiring a generation is two steps on purpose: handlers cache
the live set for :data:`LIVE_SET_TTL_SECONDS` and a batch may take the function's
timeout, so a generation taken out of the aliases must not be deleted before
:data:`RETIRE_GRACE_SECONDS` (a late ``_bulk`` would otherwise re-create it).

Stdlib only: this module ships inside the Lambda zip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ddbsearch.core.defaults import FUNCTION_TIMEOUT_SECONDS
from ddbsearch.core.errors import ConfigurationError, DdbsearchError
from ddbsearch.core.generations import GenerationConfig, index_body
from ddbsearch.core.transport import SearchTransport

BUILDING_SUFFIX = "-building"
GENERATION_DIGITS = 6
# How long a handler trusts the live set it read (refreshed sooner on an
# index-not-found answer).
LIVE_SET_TTL_SECONDS = 30.0
RETIRE_GRACE_SECONDS = LIVE_SET_TTL_SECONDS + FUNCTION_TIMEOUT_SECONDS + 30.0


class GenerationError(DdbsearchError):
    """The domain answered, but not with success, while generations were being changed."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Generation:
    """One concrete index of the stack, with what its aliases say about it."""

    name: str
    config: GenerationConfig | None  # None: legacy (no configuration stored)
    serving: bool  # the read alias points to it (a legacy index is always serving)
    building: bool  # the building alias points to it
    number: int  # 0 for the legacy index named like the alias

    @property
    def live(self) -> bool:
        return self.serving or self.building

    @property
    def legacy(self) -> bool:
        return self.number == 0


def generation_name(index: str, number: int) -> str:
    if not 1 <= number < 10**GENERATION_DIGITS:
        raise ValueError(f"generation number {number} out of range")
    return f"{index}-{number:0{GENERATION_DIGITS}d}"


def building_alias(index: str) -> str:
    return index + BUILDING_SUFFIX


def generation_number(index: str, name: str) -> int | None:
    """1.. for ``<index>-NNNNNN``, 0 for ``<index>`` itself, None for anything else."""
    if name == index:
        return 0
    m = re.fullmatch(re.escape(index) + rf"-([0-9]{{{GENERATION_DIGITS}}})", name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- reading


def _read(transport: SearchTransport, index: str, expression: str) -> list[Generation]:
    resp = transport.request(
        "GET",
        f"/{expression}?ignore_unavailable=true&allow_no_indices=true"
        # The uuid keeps every index in the answer, even one with no alias and no _meta.
        "&filter_path=*.aliases,*.mappings._meta,*.settings.index.uuid",
    )
    if resp.status == 404:
        return []
    if resp.status >= 300:
        raise GenerationError(
            f"could not read the generations of {index!r} ({resp.status})", resp.status
        )
    found = []
    serving_alias, build_alias = index, building_alias(index)
    answer = resp.json()
    for name, info in sorted(answer.items() if isinstance(answer, dict) else ()):
        number = generation_number(index, name)
        if not isinstance(info, dict):
            continue  # not an index description (a stand-in backend)
        aliases = set(info.get("aliases") or {})
        if number is None:
            if serving_alias in aliases or build_alias in aliases:
                raise ConfigurationError(
                    f"alias {index!r} points to index {name!r}, which is not one of its "
                    f"generations ({index}-NNNNNN)",
                    hint="point the alias at a generation, or use another --index",
                )
            continue
        meta = (info.get("mappings") or {}).get("_meta")
        found.append(
            Generation(
                name=name,
                config=GenerationConfig.from_meta(meta),
                serving=number == 0 or serving_alias in aliases,
                building=build_alias in aliases,
                number=number,
            )
        )
    return found


def live_generations(transport: SearchTransport, index: str) -> list[Generation]:
    """The generations the stream must write (serving first); empty for a fresh stack.

    One request: the read alias (or legacy index) and the building alias, with
    aliases and ``_meta`` of each concrete index behind them.
    """
    gens = _read(transport, index, f"{quote(index)},{quote(building_alias(index))}")
    return sorted((g for g in gens if g.live), key=lambda g: (not g.serving, g.number))


def list_generations(transport: SearchTransport, index: str) -> list[Generation]:
    """Every generation of ``index`` (live or not), oldest first."""
    return _read(transport, index, f"{quote(index)},{quote(index)}-*")


# --------------------------------------------------------------------------- changing


def create_generation(
    transport: SearchTransport,
    index: str,
    number: int,
    config: GenerationConfig,
    *,
    serving: bool = False,
    building: bool = False,
) -> Generation:
    """Create ``<index>-NNNNNN`` with the template, the overlay and ``_meta``, and its aliases.

    Creation and aliases are one request, so a generation is never live without
    its configuration. Raises GenerationError when it already exists.
    """
    config.validate()
    name = generation_name(index, number)
    aliases = ([index] if serving else []) + ([building_alias(index)] if building else [])
    resp = transport.json("PUT", f"/{name}", index_body(config, aliases=aliases))
    if resp.status >= 300:
        exists = b"resource_already_exists_exception" in resp.body
        raise GenerationError(
            f"could not create generation {name!r} ("
            + ("it exists already" if exists else str(resp.status))
            + ")",
            resp.status,
        )
    return Generation(name, config, serving, building, number)


def create_first_generation(
    transport: SearchTransport, index: str, config: GenerationConfig | None = None
) -> bool:
    """For a fresh stack: ``<index>-000001`` behind the read alias. False if it lost a race."""
    try:
        create_generation(transport, index, 1, config or GenerationConfig(), serving=True)
    except GenerationError as exc:
        if exc.status == 400 and "exists already" in exc.message:
            return False
        raise
    return True


def create_next_generation(
    transport: SearchTransport, index: str, config: GenerationConfig
) -> Generation:
    """Create the next generation, marked building (the stream starts writing it).

    Refused while another generation is building (finish or abort that reindex).
    """
    gens = list_generations(transport, index)
    building = [g.name for g in gens if g.building]
    if building:
        raise ConfigurationError(
            f"generation {building[0]!r} of {index!r} is already being built",
            hint="finish that reindex, or abort it",
        )
    number = max((g.number for g in gens), default=0) + 1
    return create_generation(transport, index, number, config, building=True)


def _aliases(transport: SearchTransport, actions: Sequence[dict[str, Any]], what: str) -> None:
    resp = transport.json("POST", "/_aliases", {"actions": list(actions)})
    if resp.status >= 300:
        raise GenerationError(f"could not {what} ({resp.status})", resp.status)


def mark_building(transport: SearchTransport, index: str, name: str) -> None:
    """Point the building alias at generation ``name`` (the stream writes it from then on)."""
    _own(index, name)
    _aliases(
        transport,
        [{"add": {"index": name, "alias": building_alias(index)}}],
        f"mark {name!r} as building",
    )


def swap(transport: SearchTransport, index: str, new: str) -> None:
    """Make ``new`` the serving generation, atomically (one ``_aliases`` call).

    The read alias leaves every generation it pointed to and moves to ``new``;
    ``new`` stops being building. A legacy concrete index named ``<index>`` is
    deleted in the same call (the alias needs its name): keep nothing of it.
    Old generations stay as they are, out of the live set: retire/drop them.
    """
    if generation_number(index, new) in (None, 0):
        raise ConfigurationError(f"{new!r} is not a generation of {index!r}")
    actions: list[dict[str, Any]] = []
    for g in list_generations(transport, index):
        if g.legacy:
            actions.append({"remove_index": {"index": g.name}})
        elif g.serving and g.name != new:
            actions.append({"remove": {"index": g.name, "alias": index}})
        if g.building and g.name == new:
            actions.append({"remove": {"index": g.name, "alias": building_alias(index)}})
    actions.append({"add": {"index": new, "alias": index}})
    _aliases(transport, actions, f"swap {index!r} to {new!r}")


def retire(transport: SearchTransport, index: str, name: str) -> None:
    """Take generation ``name`` out of both aliases (drop it after RETIRE_GRACE_SECONDS)."""
    _own(index, name)
    current = {g.name: g for g in list_generations(transport, index)}.get(name)
    if current is None:
        return
    # Only the aliases it has: removing one it lacks is an error.
    actions = [
        {"remove": {"index": name, "alias": alias}}
        for alias, on in ((index, current.serving), (building_alias(index), current.building))
        if on
    ]
    if actions:
        _aliases(transport, actions, f"retire {name!r}")


def drop(transport: SearchTransport, index: str, name: str) -> None:
    """Delete generation ``name``; refused while an alias still points to it."""
    _own(index, name)
    current = {g.name: g for g in list_generations(transport, index)}.get(name)
    if current is None:
        return
    if current.live:
        raise ConfigurationError(
            f"generation {name!r} is still {'serving' if current.serving else 'building'}",
            hint="retire it first and wait for the handlers to stop writing it",
        )
    resp = transport.request("DELETE", f"/{name}")
    if resp.status >= 300 and resp.status != 404:
        raise GenerationError(f"could not delete generation {name!r} ({resp.status})", resp.status)


def _own(index: str, name: str) -> None:
    if generation_number(index, name) in (None, 0):
        raise ConfigurationError(f"{name!r} is not a generation of {index!r}")


def names(gens: Iterable[Generation]) -> list[str]:
    return [g.name for g in gens]


__all__ = [
    "BUILDING_SUFFIX",
    "LIVE_SET_TTL_SECONDS",
    "RETIRE_GRACE_SECONDS",
    "Generation",
    "GenerationError",
    "building_alias",
    "create_first_generation",
    "create_generation",
    "create_next_generation",
    "drop",
    "generation_name",
    "generation_number",
    "list_generations",
    "live_generations",
    "mark_building",
    "retire",
    "swap",
]
