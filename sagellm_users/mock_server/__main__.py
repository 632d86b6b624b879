"""Entry point: ``python -m sagellm_users.mock_server`` and ``sagellm-mock-server``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import parse_config
from .server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until SIGINT/SIGTERM (or stdin EOF), return the exit status."""
    config = parse_config(argv)
    try:
        return serve(config)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 0
    except OSError as exc:  # typically: the address is already in use
        sys.stderr.write(
            f"sagellm-mock-server: cannot serve on {config.host}:{config.port}: {exc}\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
