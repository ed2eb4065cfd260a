"""What every command shares: exit codes and the one-line refusal."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def refuse(message: str) -> int:
    """Say what was wrong in one line on stderr; nothing was started."""
    print("conlab: %s" % message, file=sys.stderr)
    return EXIT_REFUSED
