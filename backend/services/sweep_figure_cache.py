"""Optuna's figures of a sweep, kept between the sweep page's polls (every 3 s): drawing them reads every
trial from Optuna's storage and fits PED-ANOVA, while they change only when a trial is told or pruned.

An entry is keyed by the sweep and what its finished trials are in tricklab's rows (how many, and the
last one's end); a poll with nothing new finds it and does no Optuna work. tricklab writes its rows before
it tells Optuna, so the caller stores a drawing only once Optuna holds as many complete trials as the rows
say: one drawn in between is shown, never kept. ``hits`` and ``misses`` count lookups, as
``functools.lru_cache``'s ``cache_info()`` does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Drawn:
    figures: dict[str, dict[str, Any] | None]  # parallel, slice, importance: None where Optuna cannot draw it
    notes: dict[str, str]  # why a figure is missing


class FigureCache:
    """One drawing per sweep, the latest, with the state of its finished trials it was drawn at."""

    def __init__(self, size: int = 64):
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Hashable, Drawn]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sweep: Hashable, state: Hashable) -> Drawn | None:
        with self._lock:
            found = self._entries.get(sweep)
            if found is None or found[0] != state:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(sweep)
            return found[1]

    def put(self, sweep: Hashable, state: Hashable, drawn: Drawn) -> None:
        """Keep ``drawn`` as the sweep's, dropping the least recently read sweep's past ``size``."""
        with self._lock:
            self._entries[sweep] = (state, drawn)
            self._entries.move_to_end(sweep)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


FIGURES = FigureCache()
