"""A name -> class table whose rarely used entries live in modules imported on first use.

The destination presets of the vendors (``export/vendors.py``, ``export/webhook.py``) are ten
pydantic models: building them costs start-up time that a configuration naming none of them
should not pay. Their kinds are known up front (so a name is recognised without an import); the
module that defines (and registers) them is imported when one of them is looked up or when the
whole table is listed, e.g. to check every ``OR_MIDDLEWARE_<KIND>__*`` variable of a misspelling.
Imports happen on the calling thread, at start-up (settings are read when the middleware is built).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TypeVar

T = TypeVar("T")


class LazyRegistry(MutableMapping[str, T]):
    def __init__(self, loaded: dict[str, T], lazy: dict[str, str]) -> None:
        self._loaded = dict(loaded)
        self._lazy = dict(lazy)  # name -> module that registers it when imported

    def names(self) -> list[str]:
        """Every name, loaded or not, without importing anything."""
        return [*self._loaded, *(name for name in self._lazy if name not in self._loaded)]

    def _load(self, name: str) -> None:
        module = self._lazy.get(name)
        if module is None:
            return
        importlib.import_module(module)  # registers its entries (``__setitem__``)
        self._lazy = {k: m for k, m in self._lazy.items() if m != module}

    def _load_all(self) -> None:
        while self._lazy:
            self._load(next(iter(self._lazy)))

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __getitem__(self, name: str) -> T:
        if name not in self._loaded:
            self._load(name)
        return self._loaded[name]

    def __setitem__(self, name: str, value: T) -> None:
        self._loaded[name] = value

    def __delitem__(self, name: str) -> None:
        self._load(name)
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return iter(list(self._loaded))

    def __len__(self) -> int:
        self._load_all()
        return len(self._loaded)
