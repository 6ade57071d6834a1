"""Route handlers by endpoint name; the route table gives each its method and path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]


class Handlers(dict[str, Handler]):
    """``@on("actions.submit")`` records a handler under its endpoint name (once)."""

    def __call__(self, endpoint: str) -> Callable[[Handler], Handler]:
        def add(fn: Handler) -> Handler:
            if endpoint in self:
                raise ValueError(f"two handlers for endpoint {endpoint!r}")
            self[endpoint] = fn
            return fn

        return add
