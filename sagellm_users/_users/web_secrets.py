"""Keeps secrets given at launch out of Locust's web UI, without losing them.

Locust renders every web-UI option's current value into the start page's source, masked
options included (the mask is only the input's type), so ``--api-key KEY`` on the command
line would be readable by anyone who can open the page. Here the page gets an empty value
instead; the start form (:mod:`sagellm_users._users.start_form`) reads an empty secret
field as "keep the key given at launch" (a new key typed into the form replaces it).
"""

from __future__ import annotations

from typing import Any

from locust.web import WebUI

__all__ = ["SECRET_OPTIONS", "hide_secrets"]

SECRET_OPTIONS = ("api_key",)
"""Options (``parsed_options`` names) whose values never reach a page."""


def hide_secrets(web_ui: WebUI) -> None:
    """Blank every secret option's value in the start page's template arguments."""
    original = web_ui.update_template_args

    def update_template_args() -> None:
        original()
        extra: dict[str, Any] = web_ui.template_args.get("extra_options") or {}
        for name, spec in extra.items():
            if name in SECRET_OPTIONS or (isinstance(spec, dict) and spec.get("is_secret")):
                spec["default_value"] = ""

    web_ui.update_template_args = update_template_args  # type: ignore[method-assign]
