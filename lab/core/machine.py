"""Facts about the machine that every record carries and every lesson needs."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Machine:
    cpus: int  # logical CPUs in the machine
    affinity: tuple[int, ...]  # the CPUs this process may run on
    hypervisor: bool  # the CPU flags say we run in a virtual machine
    cpu_model: str
    kernel: str
    schedstat: bool  # /proc/PID/task/TID/schedstat exists (nanosecond CPU and run_delay)
    mem_available_bytes: int

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def usable_cpus(self) -> int:
        return len(self.affinity)


def _cpuinfo() -> tuple[bool, str]:
    hypervisor, model = False, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and " hypervisor" in line:
                    hypervisor = True
                elif line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return hypervisor, model


def mem_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@lru_cache(maxsize=1)
def machine() -> Machine:
    hypervisor, model = _cpuinfo()
    try:
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:
        affinity = tuple(range(os.cpu_count() or 1))
    return Machine(
        cpus=os.cpu_count() or 1,
        affinity=affinity,
        hypervisor=hypervisor,
        cpu_model=model,
        kernel=os.uname().release,
        schedstat=os.path.exists("/proc/self/schedstat"),
        mem_available_bytes=mem_available_bytes(),
    )


def tool_available(name: str) -> str | None:
    return shutil.which(name)
