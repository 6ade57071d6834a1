"""Scopes granted by a token, and whether they cover the scope a route needs.

A token grants the union of ``scope`` (space-separated string) and ``scp`` (an array,
or a space-separated string).  A granted scope covers a required one when it is:

* ``*`` (everything);
* the same string;
* a wildcard ``<prefix>*`` whose prefix ends at a separator (``.`` or ``:``) and the
  required scope continues past it: ``pb:control.*`` covers ``pb:control.write`` but
  not ``pb:controlX`` (the legacy prefix test let that through) nor ``pb:control``.

Any other ``*`` is literal (``pb:con*`` covers only ``pb:con*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SEPARATORS = (".", ":")
#: Bounds on what a token may grant (a hostile token cannot make matching expensive).
MAX_SCOPES = 256
MAX_SCOPE_LENGTH = 256


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes in ``scope`` and ``scp``; entries that are not strings are ignored."""
    out: set[str] = set()
    for key in ("scope", "scp"):
        value = claims.get(key)
        items: Iterable[Any]
        if isinstance(value, str):
            items = value.split()
        elif isinstance(value, list | tuple):
            items = value
        else:
            continue
        for item in items:
            if isinstance(item, str):
                out.update(item.split())
    return frozenset(sorted(s for s in out if len(s) <= MAX_SCOPE_LENGTH)[:MAX_SCOPES])


def covers(granted: str, required: str) -> bool:
    if granted == "*" or granted == required:
        return True
    if len(granted) >= 3 and granted.endswith("*") and granted[-2] in SEPARATORS:
        prefix = granted[:-1]
        return "*" not in prefix and required.startswith(prefix) and len(required) > len(prefix)
    return False


def has_scope(granted: Iterable[str], required: str) -> bool:
    return any(covers(g, required) for g in granted)
