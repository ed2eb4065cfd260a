"""A function's bytecode as the running interpreter compiled it, for the lab to show
beside the source: which instructions sit between a read and a write differs between
CPython versions (3.9, 3.11 and 3.13 each compile `counter += 1` their own way)."""

from __future__ import annotations

import dis


def listing(function):
    """[[offset, opname, argrepr, line], ...]; `line` is the source line the instruction
    belongs to (None before the first)."""
    rows, line = [], None
    for ins in dis.get_instructions(function):
        if hasattr(ins, "line_number"):  # 3.13+: starts_line became a bool
            line = ins.line_number if ins.line_number is not None else line
        elif ins.starts_line is not None:
            line = ins.starts_line
        rows.append([ins.offset, ins.opname, ins.argrepr, line])
    return rows
