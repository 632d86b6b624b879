"""User classes for comparing backends in one test (``locustfiles/compare.py``).

One class per ``BACKEND[:WEIGHT]=URL`` entry, pinned to that backend and host. The class
is named ``BACKEND@HOST`` and its rows are labelled so, which is what Locust's user counts,
the summary, the reports' tables and their legends show: the names people gave, not
generated class names (``#2`` tells two entries of the same backend and host apart).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sagellm_users._backends import BACKENDS
from sagellm_users._errors import ConfigError
from sagellm_users._users.base import LLMUser

__all__ = ["compare_users"]

_API = {"lmdeploy": "generate"}
"""Each backend's most native API; the rest speak OpenAI chat."""


def _entry(text: str) -> tuple[str, int, str]:
    spec, sep, url = text.partition("=")
    backend, _, weight_text = spec.strip().partition(":")
    if not sep or backend not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"SAGELLM_COMPARE entry {text!r}: expected BACKEND[:WEIGHT]=URL with BACKEND one "
            f"of {known}"
        )
    try:
        weight = int(weight_text or 1)
    except ValueError:
        weight = 0
    if weight < 1:
        raise ConfigError(f"SAGELLM_COMPARE entry {text!r}: WEIGHT must be a whole number >= 1")
    return backend, weight, url.strip()


def compare_users(spec: str) -> list[type[LLMUser]]:
    """The user classes ``spec`` (comma-separated entries) asks for."""
    entries = [_entry(part) for part in spec.split(",") if part.strip()]
    if not entries:
        raise ConfigError("SAGELLM_COMPARE names no backend: e.g. 'vllm=http://h:8000'")
    classes: list[type[LLMUser]] = []
    names: set[str] = set()
    for backend, weight, url in entries:
        where = urlsplit(url).netloc if url else "mock"
        name = label = f"{backend}@{where}"
        repeat = 1
        while name in names:
            repeat += 1
            name = f"{label} #{repeat}"
        names.add(name)
        attrs = {
            "backend": backend,
            "api": _API.get(backend, "chat"),
            "weight": weight,
            "host": url or None,
            "label": name,
            "__module__": __name__,
            "__doc__": f"{backend} at {url or 'the --host or embedded mock'}",
        }
        classes.append(type(name, (LLMUser,), attrs))
    return classes
