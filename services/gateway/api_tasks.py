"""HTTP API v1: agencies' task inboxes, owned by workflow."""
from __future__ import annotations

from motcua.errors import load_valid
from services.gateway import audit
from services.gateway.http import authenticated, query, read_json, route
from services.gateway.schemas import CompleteTaskSchema, TaskQuerySchema


class TaskApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("GET", "/api/v1/tasks")
    def list_tasks(self, request):
        _caller, token = authenticated(request, self.config["SECRET"])
        status = load_valid(TaskQuerySchema(), query(request))["status"]
        return self.workflow.list_tasks(caller_token=token, status=status)

    @route("POST", "/api/v1/tasks/<task_id>/complete")
    def complete_task(self, request, task_id):
        caller, token = authenticated(request, self.config["SECRET"])
        body = load_valid(CompleteTaskSchema(), read_json(request))
        task = self.workflow.complete_task(task_id, body["outcome"], body["note"], caller_token=token)
        audit.record(self.db, caller, "task.complete", request.remote_addr, task_id=task_id)
        return task
