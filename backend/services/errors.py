"""What services raise for bad requests; the app maps them to 404 / 409 / 422."""

from __future__ import annotations

from collections.abc import Mapping


class ServiceError(Exception):
    pass


class NotFound(ServiceError):
    """An id that names nothing (404)."""


class Unavailable(ServiceError):
    """A part the request needs cannot serve it now (503): no browser to draw a figure, or it took too long."""


class Conflict(ServiceError):
    """A state change the run's current state forbids (409)."""


class InvalidConfig(ServiceError):
    """A run configuration that cannot be used (422).

    ``errors`` maps dotted config fields to messages. Keys listed in ``overrides`` came from a
    clone's dotted overrides and are reported under that input instead of the config.
    """

    def __init__(self, errors: dict[str, str], *, overrides: frozenset[str] = frozenset()):
        self.errors = errors
        self.overrides = overrides
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


class InvalidStudy(ServiceError):
    """A study request that cannot be used (422); ``errors`` maps request locations to messages,
    e.g. ``("overrides", "model.arch")`` or ``("grid", "switches", "kd")``."""

    def __init__(self, errors: Mapping[tuple[str, ...], str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{'.'.join(loc)}: {message}" for loc, message in self.errors.items()))


class InvalidParameter(ServiceError):
    """A request parameter that the other parameters (or the stored state) rule out (422), e.g. a
    baseline that is not one of the compared runs; ``loc`` names it as a 422 does:
    ``("query", "baseline")``."""

    def __init__(self, loc: tuple[str, ...], message: str):
        self.loc = loc
        self.message = message
        super().__init__(f"{'.'.join(loc)}: {message}")


class InvalidSweep(ServiceError):
    """An LR range test's sweep that cannot be used (422); ``errors`` maps its fields to messages."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"sweep.{field}: {message}" for field, message in errors.items()))


class InvalidSearch(InvalidStudy):
    """A sweep request (an Optuna search) that cannot be used (422); ``errors`` maps request locations to
    messages, e.g. ``("space", "optim.lr")``."""
