"""Configs as JSON: the one way every settings dataclass of musicenv is written and read back.

Worlds, retrieval stages, ground truths and training runs keep their settings as (nested)
dataclasses and save them in JSON manifests. :func:`config_to_dict` writes one, and
:func:`config_from_dict` rebuilds it: nested dataclasses from their dicts, tuples (nested ones too)
from JSON's lists, and a field the class does not have is an error naming it (a file written by
another version is refused, not half-read).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config tree (nested dataclasses become dicts)."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type, payload: dict[str, Any]) -> Any:
    """Rebuild a config tree of class ``cls`` from :func:`config_to_dict`'s output (or its JSON).

    Raises:
        ValueError: the payload names a field ``cls`` does not have (e.g. a file written by
            another version).
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(payload) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs = {}
    for name, value in payload.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = config_from_dict(kind, value)
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = _as_tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _as_tuple(value: Any) -> Any:
    """JSON's lists as tuples, nested ones too (a tuple of tuples comes back as one)."""
    return tuple(_as_tuple(item) for item in value) if isinstance(value, list) else value
