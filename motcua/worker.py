"""The agency-worker SDK: an agency plugs its own system into Motcua (liên thông tự động).

An agency's worker is a small nameko service that takes the tasks routed to its agency from a
durable queue and completes them through workflow::

    from motcua.worker import TaskClient, task_handler

    class TaxOfficeWorker:
        name = "tax_office_worker"
        tasks = TaskClient()

        @task_handler("000.00.18.H56")
        def on_task(self, task):                     # a motcua.contracts.Event (task_assigned)
            notice = fee_notice(task.data)
            self.tasks.complete(task.data["task_id"], note=notice)

Run it with `python -m motcua.run --worker module:Class` (AMQP_URI and MOTCUA_WORKER_TOKEN from
the environment; an operator holding the platform's signing key makes the token with
`motcua tokens system <agency code>`: a worker cannot make one); scale it by running more copies: they
share the agency's queue, and a task whose worker dies mid-way is redelivered to another copy
(completing it twice is refused by workflow).
"""
from __future__ import annotations

import os

from kombu import Exchange, Queue
from nameko.messaging import Consumer

from motcua.bus import ParkingConsumer
from motcua.errors import IllegalTransition
from motcua.logs import Tracing
from motcua.queues import consumed_queue_arguments
from motcua.rpc import TimedRpcProxy

TASKS_EXCHANGE = Exchange("motcua.tasks", type="topic", durable=True)


def task_queue(agency_code: str) -> Queue:
    """The durable queue of one agency's tasks (bound by exact routing key: codes contain dots)."""
    name = f"tasks.{agency_code}"
    return Queue(name, exchange=TASKS_EXCHANGE, routing_key=f"task.{agency_code}", durable=True,
                 queue_arguments=consumed_queue_arguments(name))


class TaskHandler(ParkingConsumer, Consumer):
    """Consumes one agency's task queue; the method receives the parsed `task_assigned` event."""

    def __init__(self, agency_code: str, **kwargs):
        self.agency_code = agency_code
        super().__init__(queue=task_queue(agency_code), **kwargs)


task_handler = TaskHandler.decorator


class _Tasks:
    def __init__(self, workflow, token: str):
        self._workflow = workflow
        self._token = token

    def complete(self, task_id: str, outcome: str = "approve", note: str = "", **details) -> dict | None:
        """Complete a task (`details`: what the outcome needs, e.g. `amount_vnd` for require_payment);
        None if it was completed already (a redelivery after a crash)."""
        try:
            return self._workflow.complete_task(task_id, outcome, note, caller_token=self._token,
                                                details=details or None)
        except IllegalTransition:
            return None


class TaskClient(Tracing, TimedRpcProxy):
    """Completes tasks in workflow as the agency's system account (token: WORKER_TOKEN config), each
    call within the RPC deadline (a workflow that is down fails it as transient: the task waits). Every
    worker has one, so it also puts the worker under the trace its task message carries (motcua.logs):
    the agency system's log lines and its calls to workflow go on with the dossier's trace."""

    def __init__(self, **options):
        super().__init__("workflow", **options)

    def get_dependency(self, worker_ctx):
        token = self.container.config.get("WORKER_TOKEN") or os.environ.get("MOTCUA_WORKER_TOKEN")
        if not token:
            raise RuntimeError("an agency worker needs its token: set MOTCUA_WORKER_TOKEN "
                               "(an operator makes it: motcua tokens system <agency code>)")
        return _Tasks(super().get_dependency(worker_ctx), token)
