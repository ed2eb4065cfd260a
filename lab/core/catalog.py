"""The experiment catalogue, read from the workloads' own specs (importing runs nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import workloads
from workloads import Param, ParamError, resolve

__all__ = ["Experiment", "ParamError", "UnknownExperiment", "get", "all_experiments"]


class UnknownExperiment(KeyError):
    def __str__(self) -> str:
        return "unknown experiment %r (known: %s)" % (self.args[0], ", ".join(workloads.experiment_names()))


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    lesson: str
    params: tuple[Param, ...]
    requires: tuple[str, ...]
    timeout_s: float
    module: ModuleType
    cpu_bound: bool = False  # runs in turn with other CPU-bound runs in the TUI

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParamError(name, "unknown parameter %r for %s (known: %s)"
                         % (name, self.name, ", ".join(p.name for p in self.params)))

    def parse_assignments(self, assignments: list[str]) -> dict[str, Any]:
        """`["tasks=4", ...]` as typed by a person, each value parsed and checked."""
        given: dict[str, Any] = {}
        for item in assignments:
            name, sep, text = item.partition("=")
            if not sep:
                raise ParamError(item, "expected NAME=VALUE, got %r" % item)
            given[name.strip()] = self.param(name.strip()).parse(text)
        return given

    def validate(self, given: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Defaults filled in, every value checked, the user's and the machine's caps
        applied (with the run's time limit, the experiment's own if None)."""
        params = resolve(self.params, given)
        workloads.check(self.module, params, timeout_s or self.timeout_s)
        return params

    def requires_for(self, params: dict[str, Any]) -> list[str]:
        """Modules the interpreter needs for these parameter values (e.g. loop=uvloop)."""
        return workloads.required_modules(self.module, params)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "requires": list(self.requires),
                "timeout_s": self.timeout_s, "cpu_bound": self.cpu_bound, "params": [p.to_json() for p in self.params]}


@lru_cache(maxsize=None)
def get(name: str) -> Experiment:
    try:
        module = workloads.load(name)
    except KeyError:
        raise UnknownExperiment(name) from None
    return Experiment(
        name=module.NAME, title=module.TITLE, lesson=getattr(module, "LESSON", ""),
        params=tuple(module.PARAMS), requires=tuple(getattr(module, "REQUIRES", ())),
        timeout_s=float(getattr(module, "TIMEOUT_S", 120)), module=module,
        cpu_bound=bool(getattr(module, "CPU_BOUND", False)),
    )


def all_experiments() -> list[Experiment]:
    return [get(name) for name in workloads.experiment_names()]
