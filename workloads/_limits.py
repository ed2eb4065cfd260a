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


# Task limits -----------------------------------------------------------------------------
# RLIMIT_NPROC is per user: the kernel (copy_process) compares it with every thread and
# process whose real UID is ours, not with the machine's total. It lets the fork through
# anyway when the real user is root of the initial user namespace or the caller holds
# CAP_SYS_RESOURCE or CAP_SYS_ADMIN there; for those the limit is no cap at all.
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
LAB_TASKS = 3  # per run, in the lab: asyncio's child watcher thread, one worker of its
# default executor (records are saved from a thread) and the child's cpu-clock reporter
IN_WORKLOAD_PROCESS = False  # set by `python -m workloads`: we are the process that spawns


def _status(path):
    """A /proc/PID/status file as {field: text}; {} if it vanished or cannot be read."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                fields[name] = rest.strip()
    except (OSError, UnicodeDecodeError):
        pass
    return fields


def user_tasks(uid=None, proc="/proc"):
    """Threads and processes whose real UID is `uid` (default: ours), as RLIMIT_NPROC
    counts them; None where /proc cannot be listed. (With hidepid, processes of others
    are hidden, never our own, so the count stays right.)"""
    uid = os.getuid() if uid is None else uid
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    total = 0
    for entry in entries:
        if not entry.isdigit():
            continue
        status = _status(os.path.join(proc, entry, "status"))
        uids, threads = status.get("Uid", "").split(), status.get("Threads", "")
        if uids and uids[0] == str(uid) and threads.isdigit():
            total += int(threads)
    return total


def nproc_exempt(proc="/proc"):
    """Whether the kernel lets our forks past RLIMIT_NPROC (see above)."""
    try:
        with open(os.path.join(proc, "self", "uid_map")) as f:
            initial_namespace = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        initial_namespace = True  # no user namespaces on this kernel
    if not initial_namespace:
        return False  # capabilities inside a user namespace do not count here
    if os.getuid() == 0:
        return True
    try:
        effective = int(_status(os.path.join(proc, "self", "status")).get("CapEff", "0"), 16)
    except ValueError:
        return False
    return bool(effective & (1 << CAP_SYS_RESOURCE | 1 << CAP_SYS_ADMIN))


def nproc_cap():
    """Room for new threads and processes under our RLIMIT_NPROC, or None if it does not
    bind (unlimited, exempt, or /proc unreadable)."""
    soft, _hard = rlimit("NPROC")
    if soft is None or nproc_exempt():
        return None
    used = user_tasks()
    if used is None:
        return None
    return Cap(soft - used, "RLIMIT_NPROC", soft,
               "threads and processes this user already runs: %s" % _num(used))


def task_caps():
    """Every cap on new threads and processes: the user's RLIMIT_NPROC (all of its
    headroom: it is the user's own) and half of what is free in the machine's tables."""
    tasks = tasks_in_use()
    share = "half of what is free; %s tasks already run" % _num(tasks)
    caps = [nproc_cap(),
            _table_cap("kernel.threads-max", _read_int("/proc/sys/kernel/threads-max"),
                       tasks, 1, SHARED_TABLE_SHARE, share),
            _table_cap("kernel.pid_max", _read_int("/proc/sys/kernel/pid_max"), tasks, 1,
                       SHARED_TABLE_SHARE, "every thread takes a pid; " + share)]
    group = cgroup_v2_dir()
    if group:
        caps.append(_table_cap("cgroup pids.max", _read_int(group + "/pids.max"),
                               _read_int(group + "/pids.current"), 1, SHARED_TABLE_SHARE,
                               "this cgroup's task limit"))
    return [c for c in caps if c is not None]


def cpus():
    return os.cpu_count() or 1


def executor_threads():
    """Threads of a ThreadPoolExecutor left at its default size (asyncio's default
    executor: getaddrinfo, to_thread), as Python 3.8+ sizes it."""
    return min(32, cpus() + 4)


def go_tasks():
    """Threads and processes of `go build` and then of a Go program: `go build` of a
    one-file program with an empty cache peaked at 20 tasks on 2 CPUs here; the
    runtime itself runs about GOMAXPROCS + 5 threads. A bound that grows with the CPUs."""
    return 8 * cpus() + 8


def own_tasks():
    """Threads of this process (what a child has already started of its own needs)."""
    threads = _status("/proc/self/status").get("Threads", "")
    return int(threads) if threads.isdigit() else 1


def check_tasks(module, params, name, needed):
    """Refuse, naming parameter `name`, when the `needed` threads and processes of this run
    (the child's peak, its main thread included) do not fit under every task cap.
    `module.tasks_needed(params)` gives the figure for other values (for "at most")."""
    from ._spec import ParamError, cut

    extra = -own_tasks() if IN_WORKLOAD_PROCESS else LAB_TASKS
    caps = task_caps()
    if not caps:
        return
    cap = min(caps, key=lambda c: c.units)
    if needed + extra <= cap.units:
        return
    value = params[name]
    shown = (str(value).lower() if isinstance(value, bool)
             else _num(value) if isinstance(value, int) else cut(value))
    whose = "" if IN_WORKLOAD_PROCESS else " (with %d for the lab's own)" % LAB_TASKS
    why = ("%s with %s=%s would run %s threads and processes at once%s, but only %s fit: %s"
           % (module.NAME, name, shown, _num(needed + max(0, extra)), whose,
              _num(max(0, cap.units - max(0, extra))), cap.describe()))
    most = _largest_fitting(module, params, name, cap.units - extra)
    if most is None:
        raise ParamError(name, "parameter %r cannot be %s here: %s" % (name, shown, why))
    raise ParamError(name, "parameter %r must be at most %s here: %s" % (name, _num(most), why))


def _largest_fitting(module, params, name, room):
    """The largest integer value of `name` whose run fits in `room` tasks, or None."""
    spec = [p for p in module.PARAMS if p.name == name]
    if not spec or spec[0].kind != "int":
        return None
    low, high = spec[0].minimum, params[name]
    fits = lambda v: module.tasks_needed(dict(params, **{name: v}))[1] <= room  # noqa: E731
    if not fits(low):
        return None
    while low < high:  # the need grows with the value: bisect
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


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
        caps.extend(task_caps())
    if kind == "threads":
        caps.append(_table_cap("vm.max_map_count", _read_int("/proc/sys/vm/max_map_count"),
                               maps_in_use(), MAPS_PER_THREAD, OWN_TABLE_SHARE,
                               "each thread stack is a mapping plus a guard page"))
        if _read_int("/proc/sys/vm/overcommit_memory") == 2 and stack_bytes:
            room = info.get("CommitLimit", 0) - info.get("Committed_AS", 0)
            caps.append(Cap(room * SHARED_TABLE_SHARE // stack_bytes, "CommitLimit",
                            info.get("CommitLimit"), "strict overcommit: every stack counts"))
    caps.extend(address_space_caps(kind, stack_bytes))
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


# Address space ---------------------------------------------------------------------------
# RLIMIT_AS caps a process's whole mapped space (VmSize), RLIMIT_DATA its private writable
# part (VmData). A thread maps its full stack (RLIMIT_STACK, 8 MiB by default) in both,
# used or not, and glibc gives each of the first 8 x CPUs threads an arena that reserves
# 64 MiB more (measured here: 14 threads fill `ulimit -v 1000000`). Forked processes each
# get their own space, so only threads and tasks are capped here.
ARENA_BYTES = 64 * MiB
FRESH_CHILD_VM = 64 * MiB  # a fresh `python -m workloads` maps 17-42 MiB (measured)
FRESH_CHILD_DATA = 32 * MiB  # and 8-22 MiB of it private and writable


def _arena_max():
    import platform

    if platform.libc_ver()[0] != "glibc":
        return 0
    configured = os.environ.get("MALLOC_ARENA_MAX", "")
    if configured.isdigit():
        return int(configured)
    return 8 * (os.cpu_count() or 1)


def _own_kib(field):
    text = _status("/proc/self/status").get(field, "").split()
    return int(text[0]) * 1024 if text and text[0].isdigit() else None


def address_space_caps(kind, stack_bytes=None):
    """RLIMIT_AS and RLIMIT_DATA as caps on `kind` units started in one process: the
    workload's own (when we are it) or a fresh one's, estimated."""
    if kind not in ("threads", "tasks"):
        return []
    caps = []
    for limit, field, fresh in (("AS", "VmSize", FRESH_CHILD_VM),
                                ("DATA", "VmData", FRESH_CHILD_DATA)):
        soft, _hard = rlimit(limit)
        if soft is None:
            continue
        used = (_own_kib(field) if IN_WORKLOAD_PROCESS else None) or fresh
        room = soft - used
        if kind == "tasks":
            units, each = room // ESTIMATED_BYTES["tasks"], _bytes(ESTIMATED_BYTES["tasks"])
        else:
            stack = stack_bytes or 8 * MiB
            arenas = _arena_max() if limit == "AS" else 0
            units = _threads_in(room, stack, arenas)
            each = _bytes(stack) + (" of stack, plus a 64 MiB malloc arena for each of the "
                                    "first %d" % arenas if arenas else " of stack")
        caps.append(Cap(units, "RLIMIT_%s" % limit, soft, "%s mapped at the start, %s per %s"
                        % (_bytes(used), each, kind[:-1])))
    return caps


def _threads_in(room, stack, arenas):
    """How many threads fit in `room` bytes when each maps `stack` and the first
    `arenas` also reserve an arena."""
    with_arena = stack + ARENA_BYTES
    if arenas and room < arenas * with_arena:
        return max(0, room // with_arena)
    return max(0, (room - arenas * ARENA_BYTES) // stack)


TASK_LIMITS = ("RLIMIT_NPROC", "kernel.threads-max", "kernel.pid_max", "cgroup pids.max")


def tightest(kind, stack_bytes=None, without=()):
    """The smallest cap for `kind` (leaving out the limits named in `without`), or None
    where nothing could be read."""
    caps = [c for c in caps_for(kind, stack_bytes) if c.limit not in without]
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
