"""HTTP API v1: agencies' task inboxes, owned by workflow."""
from __future__ import annotations

from motcua.contracts.rpc import AssignTaskV1, CompleteTaskBodyV1, TaskQueryV1, TransferTaskV1
from motcua.contracts.views import TaskViewV1
from motcua.errors import load_valid
from services.gateway.api_dossiers import MAX_UPLOAD_BYTES
from services.gateway.dependencies import tasks_key
from services.gateway.http import query, read_json, route

TASK_OUT = TaskViewV1


class TaskApi:
    """Routes mixed into GatewayService, which provides the RPC proxies, config and database."""

    @route("GET", "/api/v1/tasks", query=TaskQueryV1, response=TASK_OUT(many=True), watch=True)
    def list_tasks(self, request):
        """The agency's inbox, overdue first; `role` one role's steps, `assignee` "me", "none" or a username.

        With its ETag: `If-None-Match` and `Prefer: wait=<s>` (at most 30 s) hold the request until a
        task of the caller's agency (or one it oversees) changes, then answer 200 with the new list, or
        304 when the wait ends; `Preference-Applied: wait` says the wait was honoured."""
        caller, token = self.caller_of(request)
        params = load_valid(TaskQueryV1, query(request))
        position = self.changes.feed.position()
        tasks = self.workflow.list_tasks(caller_token=token, **params)
        return self.changes.answer(request, tasks, (tasks_key(caller.agency_code),), position)

    @route("GET", "/api/v1/tasks/<task_id>", response=TASK_OUT())
    def get_task(self, request, task_id):
        """A task with its dossier's hand-overs (the process control sheet's lines)."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "task.read", task_id=task_id):
            return self.workflow.get_task(task_id, caller_token=token)

    @route("POST", "/api/v1/tasks/<task_id>/complete", body=CompleteTaskBodyV1, response=TASK_OUT(),
           command=True)
    def complete_task(self, request, task_id):
        caller, token = self.caller_of(request)
        body = load_valid(CompleteTaskBodyV1, read_json(request, max_bytes=MAX_UPLOAD_BYTES))
        details = {key: body[key] for key in ("items", "amount_vnd", "to_step") if body[key] is not None}
        with self.audited(request, caller, f"task.{body['outcome']}", task_id=task_id):
            if body["documents"]:
                # Stored first, by their digest; the dossier lists them only once workflow accepts the step.
                dossier_code = self.workflow.get_task(task_id, caller_token=token)["dossier_code"]
                details["documents"] = self.intake.store_step_documents(dossier_code, body["documents"],
                                                                        caller_token=token)
            return self.workflow.complete_task(task_id, body["outcome"], body["note"], caller_token=token,
                                               details=details or None, idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/tasks/<task_id>/claim", response=TASK_OUT(), command=True)
    def claim_task(self, request, task_id):
        """Nhận xử lý: the officer takes the task from the agency's pool."""
        caller, token = self.caller_of(request)
        with self.audited(request, caller, "task.claim", task_id=task_id):
            return self.workflow.claim_task(task_id, caller_token=token, idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/tasks/<task_id>/assign", body=AssignTaskV1, response=TASK_OUT(), command=True)
    def assign_task(self, request, task_id):
        """Phân công: a leader assigns the task to an officer (null: back to the pool)."""
        caller, token = self.caller_of(request)
        body = load_valid(AssignTaskV1, read_json(request))
        with self.audited(request, caller, "task.assign", task_id=task_id):
            return self.workflow.assign_task(task_id, body["assignee"], caller_token=token,
                                             idempotency_key=request.idempotency_key)

    @route("POST", "/api/v1/tasks/<task_id>/transfer", body=TransferTaskV1, response=TASK_OUT(), command=True)
    def transfer_task(self, request, task_id):
        """Chuyển xử lý to another agency the step allows."""
        caller, token = self.caller_of(request)
        body = load_valid(TransferTaskV1, read_json(request))
        with self.audited(request, caller, "task.transfer", task_id=task_id):
            return self.workflow.transfer_task(task_id, body["agency_code"], body["note"], caller_token=token,
                                               idempotency_key=request.idempotency_key)
