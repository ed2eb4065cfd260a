"""How many threads, processes and tasks this machine lets us have, read before starting.

Every cap comes from a limit the kernel would enforce anyway (RLIMIT_NPROC, the
kernel's threads-max and pid_max, vm.max_map_count, the cgroup's pids.max) or from free
memory (MemAvailable minus a reserve kept for everything else). Shared tables get only
half of what is still free, so the rest of the machine keeps room to work. Standard
library only; every reading that is missing on this system is simply skipped.
"""

from __future__ import annotations

import os

from ._words import grouped

MiB = 1024 * 1024
SHARED_TABLE_SHARE = 0.5  # of the headroom in a machine-wide table (pids, tasks)
OWN_TABLE_SHARE = 0.9  # of the headroom in a per-process table (memory maps)
MAPS_PER_THREAD = 2  # a thread stack is two mappings: the stack and its guard page

# Conservative memory per unit, used only to refuse before starting; the run itself
# measures the real figures and watches MemAvailable as it goes.
ESTIMATED_BYTES = {"threads": 256 * 1024, "processes": 4 * MiB, "tasks": 16 * 1024}


def meminfo():
    """/proc/meminfo in bytes (empty where there is no /proc)."""
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except (OSError, ValueError):
        pass
    return info


def memory_reserve(info=None):
    """Free memory we never go below: a tenth of RAM (or of our cgroup's limit, if
    smaller), at least 256 MiB."""
    info = info or meminfo()
    total = info.get("MemTotal", 0)
    group = cgroup_memory()
    if group is not None:
        total = min(total, group[0]) if total else group[0]
    return max(256 * MiB, total // 10)


def rlimit(name):
    """(soft, hard) for resource.RLIMIT_<name>, None meaning unlimited or unknown."""
    try:
        import resource

        soft, hard = resource.getrlimit(getattr(resource, "RLIMIT_" + name))
    except (ImportError, AttributeError, ValueError, OSError):
        return None, None
    infinity = resource.RLIM_INFINITY
    return (None if soft == infinity else soft), (None if hard == infinity else hard)


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def tasks_in_use():
    """Threads and processes alive on the whole machine (/proc/loadavg's 4th field)."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None


def maps_in_use():
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def cgroup_v2_dir():
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return "/sys/fs/cgroup" + line.strip()[3:]
    except OSError:
        pass
    return None


def _cgroup_v1_memory_dir():
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and "memory" in parts[1].split(","):
                    for base in ("/sys/fs/cgroup/memory" + parts[2], "/sys/fs/cgroup/memory"):
                        if os.path.exists(base + "/memory.limit_in_bytes"):
                            return base
    except OSError:
        pass
    return None


UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def cgroup_memory():
    """(limit, usage) in bytes of this process's memory cgroup, or None if unlimited."""
    group = cgroup_v2_dir()
    if group and os.path.exists(group + "/memory.max"):
        limit, usage = _read_int(group + "/memory.max"), _read_int(group + "/memory.current")
    else:
        base = _cgroup_v1_memory_dir()
        if base is None:
            return None
        limit = _read_int(base + "/memory.limit_in_bytes")
        usage = _read_int(base + "/memory.usage_in_bytes")
    if limit is None or usage is None or limit >= UNLIMITED:
        return None
    return limit, usage


def available_bytes(info=None):
    """What we may still use: MemAvailable, or less if our cgroup's limit is nearer."""
    info = info or meminfo()
    room = info.get("MemAvailable")
    group = cgroup_memory()
    if group is not None:
        group_room = group[0] - group[1]
        room = group_room if room is None else min(room, group_room)
    return room


class Cap:
    """A largest number of units, and the limit that sets it, in words."""

    def __init__(self, units, limit, value, why):
        self.units = max(0, int(units))
        self.limit = limit
        self.value = value
        self.why = why

    def describe(self):
        return "%s = %s (%s)" % (self.limit, _num(self.value), self.why)

    def to_json(self):
        return {"max": self.units, "limit": self.limit, "value": self.value, "why": self.why}


def _table_cap(limit, value, in_use, per_unit, share, why):
    if value is None or in_use is None:
        return None
    return Cap((value - in_use) * share // per_unit, limit, value, why)


def caps_for(kind, stack_bytes=None):
    """Every cap that applies to `kind` ("threads", "processes", "tasks")."""
    caps = []
    info = meminfo()
    if kind in ("threads", "processes"):
        tasks = tasks_in_use()
        share = "half of what is free; %s tasks already run" % _num(tasks)
        nproc, _hard = rlimit("NPROC")
        caps.append(_table_cap("RLIMIT_NPROC", nproc, tasks, 1, SHARED_TABLE_SHARE, share))
        caps.append(_table_cap("kernel.threads-max", _read_int("/proc/sys/kernel/threads-max"),
                               tasks, 1, SHARED_TABLE_SHARE, share))
        caps.append(_table_cap("kernel.pid_max", _read_int("/proc/sys/kernel/pid_max"), tasks, 1,
                               SHARED_TABLE_SHARE, "every thread takes a pid; " + share))
        group = cgroup_v2_dir()
        if group:
            caps.append(_table_cap("cgroup pids.max", _read_int(group + "/pids.max"),
                                   _read_int(group + "/pids.current"), 1, SHARED_TABLE_SHARE,
                                   "this cgroup's task limit"))
    if kind == "threads":
        caps.append(_table_cap("vm.max_map_count", _read_int("/proc/sys/vm/max_map_count"),
                               maps_in_use(), MAPS_PER_THREAD, OWN_TABLE_SHARE,
                               "each thread stack is a mapping plus a guard page"))
        if _read_int("/proc/sys/vm/overcommit_memory") == 2 and stack_bytes:
            room = info.get("CommitLimit", 0) - info.get("Committed_AS", 0)
            caps.append(Cap(room * SHARED_TABLE_SHARE // stack_bytes, "CommitLimit",
                            info.get("CommitLimit"), "strict overcommit: every stack counts"))
    reserve = memory_reserve(info)
    why = "keeping %s free, at an estimated %s per unit" % (_bytes(reserve),
                                                           _bytes(ESTIMATED_BYTES[kind]))
    if "MemAvailable" in info:
        room = info["MemAvailable"] - reserve
        caps.append(Cap(room // ESTIMATED_BYTES[kind], "MemAvailable", info["MemAvailable"], why))
    group = cgroup_memory()
    if group is not None:
        room = group[0] - group[1] - reserve
        caps.append(Cap(room // ESTIMATED_BYTES[kind], "cgroup memory limit", group[0],
                        "%s in use; %s" % (_bytes(group[1]), why)))
    return [c for c in caps if c is not None]


def tightest(kind, stack_bytes=None):
    """The smallest cap for `kind`, or None where nothing could be read."""
    caps = caps_for(kind, stack_bytes)
    return min(caps, key=lambda c: c.units) if caps else None


def nofile_cap(per_unit=1, share=OWN_TABLE_SHARE):
    """Units that each hold `per_unit` file descriptors, from RLIMIT_NOFILE (soft)."""
    soft, _hard = rlimit("NOFILE")
    if soft is None:
        return None
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 3
    return Cap((soft - used) * share // per_unit, "RLIMIT_NOFILE", soft,
               "%d descriptors already open" % used)


def machine_limits():
    """The raw readings, for the result record."""
    info = meminfo()
    nproc, nproc_hard = rlimit("NPROC")
    nofile, nofile_hard = rlimit("NOFILE")
    stack, _ = rlimit("STACK")
    return {
        "RLIMIT_NPROC": nproc, "RLIMIT_NPROC_hard": nproc_hard,
        "RLIMIT_NOFILE": nofile, "RLIMIT_NOFILE_hard": nofile_hard,
        "RLIMIT_STACK": stack,
        "threads_max": _read_int("/proc/sys/kernel/threads-max"),
        "pid_max": _read_int("/proc/sys/kernel/pid_max"),
        "max_map_count": _read_int("/proc/sys/vm/max_map_count"),
        "overcommit_memory": _read_int("/proc/sys/vm/overcommit_memory"),
        "tasks_in_use": tasks_in_use(),
        "mem_total_bytes": info.get("MemTotal"),
        "mem_available_bytes": info.get("MemAvailable"),
        "swap_total_bytes": info.get("SwapTotal"),
        "memory_reserve_bytes": memory_reserve(info),
        "cgroup_memory": cgroup_memory(),
    }


def _num(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return grouped(value)
    return str(value)


def _bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%.1f %s" % (n / float(size), unit)
    return "%d B" % n
