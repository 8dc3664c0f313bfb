"""Table keys in a form that survives JSON (``B`` values as base64), for on-disk records."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any


def encode_keys(keys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in keys.items():
        ((tag, inner),) = value.items()
        if tag == "B":
            raw = inner if isinstance(inner, (bytes, bytearray)) else getattr(inner, "value", inner)
            out[name] = {"B64": base64.b64encode(bytes(raw)).decode("ascii")}
        else:
            out[name] = {tag: inner}
    return out


def decode_keys(keys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in keys.items():
        ((tag, inner),) = value.items()
        out[name] = {"B": base64.b64decode(inner)} if tag == "B64" else {tag: inner}
    return out


def keys_from_source(
    source: Mapping[str, Any], key_types: Mapping[str, str]
) -> dict[str, Any] | None:
    """The table key a document names, from its key attributes (None if it lacks one).

    Numbers come back from JSON as int or float; a float may not spell the original
    DynamoDB number, so callers must check that the key maps back to the same id.
    """
    keys: dict[str, Any] = {}
    for name, tag in key_types.items():
        value = source.get(name)
        if value is None or isinstance(value, (dict, list, bool)):
            return None
        if tag == "N":
            if not isinstance(value, (int, float)):
                return None
            keys[name] = {"N": str(value)}
        elif tag == "B":
            if not isinstance(value, str):
                return None
            try:
                keys[name] = {"B": base64.b64decode(value, validate=True)}
            except ValueError:
                return None
        else:
            if not isinstance(value, str):
                return None
            keys[name] = {"S": value}
    return keys
