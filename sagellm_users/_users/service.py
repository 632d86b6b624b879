"""The one life cycle every part run beside the users follows (see _users.roles).

Locust announces a test's life through separate events (``test_start``,
``spawning_complete``, ``test_stopping``, ``test_stop``, ``reset_stats``, ``quitting``), each
with its own listener signature. A service answers to the same moments as methods, each a
no-op unless overridden, so a role can list its services and drive them all from one
listener per event, in one order: started in list order, and stopped in list order too
(the recorder, first in every list that has it, must take what finished before anything
reads the results).
"""

from __future__ import annotations

__all__ = ["Service"]


class Service:
    """Something a role runs beside the users: a watch, a probe, the recorder."""

    def begin(self) -> None:
        """The role was installed: the process is up and no test has started yet."""

    def start(self) -> None:
        """A test starts (Locust's ``test_start``)."""

    def all_spawned(self) -> None:
        """Every user of the test is running (``spawning_complete``)."""

    def stopping(self) -> None:
        """The users are about to stop (``test_stopping``)."""

    def stop(self) -> None:
        """The test has stopped: its users are gone (``test_stop``)."""

    def reset(self) -> None:
        """Locust's statistics were reset (the web UI's reset button, a shape's reset)."""

    def quitting(self) -> None:
        """The process is quitting (``quitting``), before the report is built."""
