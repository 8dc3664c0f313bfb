"""What a generation of the index is built with: its document-model configuration.

An index generation (``<index>-000001``, ...) is self-describing: the
configuration below is stored in its mapping's ``_meta`` (key ``ddbsearch``), so
the stream handler, the backfill and every check build exactly the documents
that generation expects, whichever version of ddbsearch created it. A generation
without it (an index made before generations existed, "legacy") keeps the
original model: ids in key-name order, stream-time versions, TTL deletes applied.

The mapping overlay is validated here, before anything is created: one-line
:class:`~ddbsearch.core.errors.ConfigurationError` messages for an unknown type,
a path that cannot exist, or an override contradicting an invariant (a key
attribute excluded or not indexed).

Stdlib only: this module ships inside the Lambda zip.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ddbsearch.core.errors import ConfigurationError

META_KEY = "ddbsearch"
META_FORMAT = 1

IdScheme = Literal["key-name", "key-schema"]
TtlPolicy = Literal["delete", "keep"]

# Field types an overlay may use (OpenSearch 2.x core types and common plugins).
KNOWN_TYPES = frozenset(
    {
        "text",
        "keyword",
        "match_only_text",
        "wildcard",
        "search_as_you_type",
        "token_count",
        "completion",
        "long",
        "integer",
        "short",
        "byte",
        "double",
        "float",
        "half_float",
        "scaled_float",
        "unsigned_long",
        "boolean",
        "date",
        "date_nanos",
        "binary",
        "ip",
        "object",
        "nested",
        "flat_object",
        "geo_point",
        "geo_shape",
        "xy_point",
        "xy_shape",
        "integer_range",
        "long_range",
        "float_range",
        "double_range",
        "date_range",
        "ip_range",
        "rank_feature",
        "rank_features",
        "knn_vector",
        "alias",
        "version",
    }
)
_CONTAINER_TYPES = frozenset({"object", "nested"})
# Mapping-level keys of the full form that ddbsearch owns and an overlay may not set.
_FULL_FORM_KEYS = frozenset({"properties"})
_RESERVED_TOP = frozenset(
    {"_id", "_index", "_source", "_routing", "_type", "_version", "_seq_no", "_primary_term",
     "_field_names", "_ignored", "_size", "_meta", "_doc_count", "_tier",
     "_data_stream_timestamp", "_nested_path", "_uid", "_parent", "_all"}
)  # fmt: skip


@dataclass(frozen=True)
class GenerationConfig:
    """How one generation turns items into documents, and how it is mapped.

    - ``key_schema``: the table's key attribute names, partition key first
      (empty: unknown, ids fall back to key-name order);
    - ``include`` / ``exclude``: attribute paths (``a.b`` goes into map ``a``;
      through lists of maps too); empty include = everything; keys always kept;
    - ``mapping``: the overlay, as OpenSearch ``properties`` (normalised from the
      short or the full form by :func:`parse_mapping`);
    - ``version_attribute``: use this numeric attribute as the external version
      (None: the stream record's time, see documents.py);
    - ``ttl_deletes``: ``delete`` removes items DynamoDB's TTL deleted, ``keep``
      keeps them (an archive);
    - ``id_scheme``: ``key-schema`` (partition then sort key) or ``key-name``
      (sorted by attribute name: the scheme of every index made before generations).
    """

    key_schema: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mapping: Mapping[str, Any] = field(default_factory=dict)
    version_attribute: str | None = None
    ttl_deletes: TtlPolicy = "delete"
    id_scheme: IdScheme = "key-name"

    @classmethod
    def create(
        cls,
        *,
        key_schema: Sequence[str] = (),
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        mapping: Mapping[str, Any] | None = None,
        version_attribute: str | None = None,
        ttl_deletes: str = "delete",
    ) -> GenerationConfig:
        """A validated configuration; ids follow the key schema when it is given."""
        config = cls(
            key_schema=tuple(key_schema),
            include=tuple(include),
            exclude=tuple(exclude),
            mapping=parse_mapping(mapping or {}),
            version_attribute=version_attribute or None,
            ttl_deletes=ttl_deletes,  # type: ignore[arg-type]  # checked in validate()
            id_scheme="key-schema" if key_schema else "key-name",
        )
        config.validate()
        return config

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        if len(self.key_schema) not in (0, 1, 2) or len(set(self.key_schema)) != len(
            self.key_schema
        ):
            raise ConfigurationError(
                "the key schema names one partition key and at most one sort key"
            )
        if self.id_scheme not in ("key-name", "key-schema"):
            raise ConfigurationError(f"unknown id scheme {self.id_scheme!r}")
        if self.id_scheme == "key-schema" and not self.key_schema:
            raise ConfigurationError("the key-schema id scheme needs the key schema")
        if self.ttl_deletes not in ("delete", "keep"):
            raise ConfigurationError(
                f"TTL policy must be 'delete' or 'keep', not {self.ttl_deletes!r}"
            )
        for path in (*self.include, *self.exclude):
            _check_path(path, "attribute path")
        for key in self.key_schema:
            if _covers(self.exclude, key):
                raise ConfigurationError(
                    f"key attribute {key!r} cannot be excluded (keys are always indexed)"
                )
        if self.version_attribute is not None:
            _check_path(self.version_attribute, "version attribute")
            if "." in self.version_attribute:
                raise ConfigurationError("the version attribute must be a top-level attribute")
        for path, spec in _leaves(self.mapping):
            if _covers(self.exclude, path) or (
                self.include
                and not _covers(self.include, path)
                and not _under(path, self.include)
                and path.split(".")[0] not in self.key_schema
            ):
                raise ConfigurationError(
                    f"mapping path {path!r} cannot exist: the attribute is not indexed "
                    "(see --include/--exclude)"
                )
            root = path.split(".")[0]
            if root in self.key_schema and (
                path != root
                or spec.get("index") is False
                or spec.get("enabled") is False
                or spec.get("type") in _CONTAINER_TYPES
            ):
                raise ConfigurationError(
                    f"mapping for key attribute {root!r} must keep it an indexed plain value"
                )

    # ------------------------------------------------------------------ _meta

    def to_meta(self) -> dict[str, Any]:
        return {
            "format": META_FORMAT,
            "key_schema": list(self.key_schema),
            "include": list(self.include),
            "exclude": list(self.exclude),
            "mapping": copy.deepcopy(dict(self.mapping)),
            "version_attribute": self.version_attribute,
            "ttl_deletes": self.ttl_deletes,
            "id_scheme": self.id_scheme,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> GenerationConfig | None:
        """The configuration stored in a mapping's ``_meta``; None for a legacy index."""
        data = (meta or {}).get(META_KEY)
        if not isinstance(data, Mapping):
            return None
        fmt = data.get("format")
        if fmt != META_FORMAT:
            raise ConfigurationError(
                f"index generation configuration format {fmt!r} is not one this ddbsearch reads",
                hint="upgrade ddbsearch (the Lambda zip too) to the version that made it",
            )
        config = cls(
            key_schema=tuple(data.get("key_schema") or ()),
            include=tuple(data.get("include") or ()),
            exclude=tuple(data.get("exclude") or ()),
            mapping=dict(data.get("mapping") or {}),
            version_attribute=data.get("version_attribute") or None,
            ttl_deletes=data.get("ttl_deletes", "delete"),
            id_scheme=data.get("id_scheme", "key-name"),
        )
        config.validate()
        return config


LEGACY = GenerationConfig()


def meta_of(config: GenerationConfig) -> dict[str, Any]:
    """The mapping's whole ``_meta`` for a generation built with ``config``."""
    return {"managed_by": "ddbsearch", META_KEY: config.to_meta()}


def index_body(config: GenerationConfig, *, aliases: Iterable[str] = ()) -> dict[str, Any]:
    """Settings and mappings of a generation: ddbsearch's template, the overlay over it."""
    from ddbsearch.core.template import index_body as template_body

    body = template_body()
    mappings = body["mappings"]
    if config.mapping:
        mappings["properties"] = copy.deepcopy(dict(config.mapping))
    mappings["_meta"] = meta_of(config)
    names = list(aliases)
    if names:
        body["aliases"] = {name: {} for name in names}
    return body


# --------------------------------------------------------------------------- overlay


def parse_mapping(overlay: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping overlay (short or full form) -> OpenSearch ``properties``, validated.

    Short form: ``{"createdAt": "date", "sku": "keyword", "notes": {"type": "text",
    "analyzer": "english"}, "address.city": "keyword"}``. Full form: an OpenSearch
    mapping, ``{"properties": {...}}`` or ``{"mappings": {"properties": {...}}}``.
    """
    if not isinstance(overlay, Mapping):
        raise ConfigurationError("the mapping must be a JSON object")
    body: Mapping[str, Any] = overlay
    if set(body) == {"mappings"} and isinstance(body["mappings"], Mapping):
        body = body["mappings"]
        if set(body) - _FULL_FORM_KEYS:
            extra = sorted(set(body) - _FULL_FORM_KEYS)[0]
            raise ConfigurationError(
                f"mapping key {extra!r} cannot be overridden: give field types under 'properties'"
            )
    if set(body) == {"properties"} and isinstance(body["properties"], Mapping):
        props = body["properties"]
        out: dict[str, Any] = {}
        for name, spec in props.items():
            _put(out, str(name), _field(spec, str(name)))
        return out
    out = {}
    for path, spec in body.items():
        _put(out, str(path), _field(spec, str(path)))
    return out


def _field(spec: Any, path: str) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"mapping for {path!r} must be a type name or an object")
    out: dict[str, Any] = dict(spec)
    ftype = out.get("type")
    if ftype is None and "properties" not in out:
        raise ConfigurationError(f"mapping for {path!r} has no type")
    if ftype is not None and ftype not in KNOWN_TYPES:
        raise ConfigurationError(f"mapping for {path!r}: unknown field type {ftype!r}")
    if "properties" in out:
        if ftype is not None and ftype not in _CONTAINER_TYPES:
            raise ConfigurationError(
                f"mapping for {path!r}: a {ftype} field cannot have properties"
            )
        if not isinstance(out["properties"], Mapping):
            raise ConfigurationError(f"mapping for {path!r}: properties must be an object")
        children: dict[str, Any] = {}
        for name, child in out["properties"].items():
            _put(children, str(name), _field(child, f"{path}.{name}"), parent=path)
        out["properties"] = children
    for name, sub in (out.get("fields") or {}).items():
        sub_type = sub.get("type") if isinstance(sub, Mapping) else None
        if sub_type not in KNOWN_TYPES:
            raise ConfigurationError(f"mapping for {path}.{name}: unknown field type {sub_type!r}")
    return out


def _put(props: dict[str, Any], path: str, spec: dict[str, Any], parent: str = "") -> None:
    """Place ``spec`` at dotted ``path`` inside ``props`` (creating object parents)."""
    _check_path(path, "mapping path")
    parts = path.split(".")
    if not parent and parts[0] in _RESERVED_TOP:
        raise ConfigurationError(
            f"mapping path {path!r} cannot exist: {parts[0]!r} is an OpenSearch metadata field"
        )
    here = props
    for depth, part in enumerate(parts[:-1]):
        node = here.setdefault(part, {"properties": {}})
        if "properties" not in node:
            where = ".".join([*(parent.split(".") if parent else []), *parts[: depth + 1]])
            raise ConfigurationError(
                f"mapping path {path!r} cannot exist: {where!r} is mapped as {node.get('type')}"
            )
        here = node["properties"]
    last = parts[-1]
    if last in here:
        existing = here[last]
        if (
            "properties" in existing
            and "properties" in spec
            and spec.get("type")
            in (
                None,
                "object",
            )
        ):
            existing["properties"].update(spec["properties"])
            return
        raise ConfigurationError(f"mapping path {path!r} is given twice or conflicts")
    here[last] = spec


def _check_path(path: str, what: str) -> None:
    if not isinstance(path, str) or not path or any(part == "" for part in path.split(".")):
        raise ConfigurationError(f"{what} {path!r} is not a dotted attribute path")


def _leaves(props: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for name, spec in props.items():
        path = f"{prefix}{name}"
        if "properties" in spec and spec.get("type") in (None, "object", "nested"):
            if spec.get("type") is not None:
                yield path, spec
            yield from _leaves(spec["properties"], f"{path}.")
        else:
            yield path, spec


def _covers(paths: Iterable[str], path: str) -> bool:
    """True when ``path`` is one of ``paths`` or inside one of them."""
    return any(path == p or path.startswith(p + ".") for p in paths)


def _under(path: str, paths: Iterable[str]) -> bool:
    """True when one of ``paths`` lies inside ``path`` (so ``path`` exists as a parent)."""
    return any(p.startswith(path + ".") for p in paths)


__all__ = [
    "LEGACY",
    "GenerationConfig",
    "index_body",
    "meta_of",
    "parse_mapping",
]
