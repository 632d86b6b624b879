"""The web UI's start form: every LLM field takes effect, and a refused start says why.

Locust's own ``/swarm`` handler writes each form field into ``parsed_options`` converted to
the type of its current value (``int('')`` for a cleared number field raises inside the
handler) and answers "Swarming started" whatever our options make of it. Here the form is
read first, by the options' own declarations: an empty field is the option's default, every
value is validated with the launch options, and a problem answers ``success: false`` with its
one line, which Locust's form shows in red, before anything starts. Only a valid form changes
``parsed_options``; Locust's handler then sees the form without our fields and starts the
test, whose ``test_start`` reads the new options (workers get them with the spawn message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from locust.env import Environment
from locust.web import WebUI
from werkzeug.datastructures import ImmutableMultiDict

from sagellm_users._errors import ConfigError
from sagellm_users._users.option_spec import declared
from sagellm_users._users.options import LLMOptions

__all__ = ["SWARM_ENDPOINT", "take_start_form"]

log = logging.getLogger("sagellm_users")

SWARM_ENDPOINT = "locust.swarm"
"""Locust's start handler (its blueprint is named ``locust``)."""

_OUR_FIELDS = frozenset(option.dest for option in declared(LLMOptions))


def take_start_form(
    web_ui: WebUI, environment: Environment, check: Callable[[LLMOptions], None]
) -> None:
    """Read and check the LLM fields of every start before Locust's handler sees it.

    ``check`` runs the before-load checks that depend on options (a workload's dataset, a
    shape's options) and raises :class:`ConfigError` to refuse.
    """
    app = web_ui.app
    if app is None:
        return
    original = app.view_functions[SWARM_ENDPOINT]

    def swarm() -> Any:
        ns = environment.parsed_options
        if ns is None:
            return original()
        try:
            options, changes = LLMOptions.from_form(request.form, ns)
            check(options)
        except ConfigError as exc:
            log.warning("sagellm: start refused: %s", exc)
            return jsonify(
                {"success": False, "message": f"Not started: {exc}", "host": environment.host}
            )
        for name, value in changes.items():
            setattr(ns, name, value)
        kept = [(k, v) for k, v in request.form.items(multi=True) if k not in _OUR_FIELDS]
        request.__dict__["form"] = ImmutableMultiDict(kept)  # Locust's handler reads the rest
        return original()

    app.view_functions[SWARM_ENDPOINT] = web_ui.auth_required_if_enabled(swarm)
    # The form lists its custom fields in the order of the options' declarations (most used
    # first, by group), not alphabetically: the page gets them through Jinja's ``tojson``,
    # which sorts keys by default.
    app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}
