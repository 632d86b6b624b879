"""Refuses a user count this process's open-files limit cannot hold, wherever it is set.

The count is known in different places: ``--users`` on the command line (checked at start,
before anything runs), the web UI's start form, a load shape's next stage, and on a worker
the share the master sends it. All of them end in the runner's ``spawn_users`` with the
runner's target count already set, so the check sits there and looks at the whole target
before the first user of a ramp is spawned: the test is stopped with one clear line
instead of failing a connection per user past the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from locust.runners import WorkerRunner

from sagellm_users._users.open_files import OpenFiles
from sagellm_users._users.refusal import refuse

if TYPE_CHECKING:
    from locust.runners import Runner

    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["guard_spawning", "where"]


def where(runner: Runner | None) -> str:
    """How a refusal names the process whose limit is short."""
    if isinstance(runner, WorkerRunner):
        return f"on worker {getattr(runner, 'worker_index', '?')}"
    return "in this process"


def guard_spawning(runner: Runner, runtime: LLMRuntime, files: OpenFiles) -> None:
    """Wrap ``runner.spawn_users`` so a target beyond ``files`` (the limit and the files
    open before any user) stops the test and spawns nobody."""
    original = runner.spawn_users

    def spawn_users(user_classes_spawn_count: dict[str, int], wait: bool = False) -> Any:
        target = max(runner.target_user_count, runner.user_count)
        refusal = files.refusal(target, where(runner))
        if refusal is None or not any(user_classes_spawn_count.values()):
            return original(user_classes_spawn_count, wait)
        refuse(runtime, runner, refusal)
        return []

    runner.spawn_users = spawn_users  # type: ignore[method-assign]
