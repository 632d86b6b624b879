"""On a master: a worker that never joined it reports nothing into this run, and is told to quit.

Locust merges every ``stats`` message that reaches the master's port into its own request
table, error report and failure ratio (so the exit code), whoever sent it. A worker left
over from an earlier master on that port keeps its users running until Locust's master
heartbeat timeout (a minute): with ``--processes`` a master killed with -9 leaves its forked
workers behind, and its embedded mock has gone with it, so their users fail at once, thousands
of connection errors a second. Once a new master binds the port, their reports would fill
its tables with another run's failures and fail its exit code.

``WorkerWatch.accepts`` already keeps such a worker out of sagellm's own merge; here its
messages are dropped before Locust sees them, and it is asked to quit (once), as Locust
asks an unknown worker that says it is spawning: it stops hammering a server that is gone
instead of running on for the rest of the timeout.
"""

from __future__ import annotations

from locust.rpc import Message
from locust.runners import MasterRunner

from sagellm_users._users.worker_watch import WorkerWatch

__all__ = ["refuse_strangers"]


def refuse_strangers(runner: MasterRunner, watch: WorkerWatch) -> None:
    """Drop the reports of workers ``watch`` does not accept, and ask each such to quit."""
    handle = runner.handle_message
    asked: set[str] = set()

    def handle_message(client_id: str, msg: Message) -> None:
        node = str(msg.node_id)
        if msg.type == "stats" and not watch.accepts(node):
            if node not in asked:
                asked.add(node)
                runner.server.send_to_client(Message("quit", None, msg.node_id))
            return
        handle(client_id, msg)

    runner.handle_message = handle_message  # type: ignore[method-assign]
