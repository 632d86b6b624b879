"""``python -m sagellm_users._users.list_options [--markdown]``: every option, grouped.

The same listing as ``locust -f LOCUSTFILE --llm-help``; ``--markdown`` writes the options
reference (docs/options.md), which a test keeps in step with the declarations.
"""

from __future__ import annotations

import sys

from sagellm_users._users.option_spec import help_listing, reference_markdown
from sagellm_users._users.options import LLMOptions

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = reference_markdown(LLMOptions) if "--markdown" in args else help_listing(LLMOptions)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
