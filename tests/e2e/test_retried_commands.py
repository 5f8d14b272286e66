"""Issue 11, problem 3, reproduced for real (services in separate processes, real RabbitMQ and
PostgreSQL): a command whose answer was lost (intake down, the caller got a 503 and gave up; two
identical requests at once; the owning service's RPC called twice at once) is carried out once, and
every repeat under the same Idempotency-Key gets the first result: one dossier, one history line, one
event each, and no 409 for a receive, a completion or a return already done."""
import eventlet
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text

from tests import infra
from tests.documents import form_files, required_documents, required_uploads
from tests.e2e.client import APPLICANT, COMMUNE, LAND_STEPS, Api

RPC_TIMEOUT = 3  # seconds the gateway waits for intake before answering 503


@pytest.fixture
def platform(amqp_uri, pg_urls, tmp_path):
    services = infra.ServiceProcesses(amqp_uri, pg_urls, tmp_path, extra_env={"MOTCUA_RPC_TIMEOUT": str(RPC_TIMEOUT)})
    services.start_all()
    services.amqp_uri, services.db_urls = amqp_uri, pg_urls
    yield services
    services.stop_all()


def scalar(url, sql, **params):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def events(platform, service, event_type, **data):
    """How many `event_type` events `service` recorded in its outbox whose data match `data`."""
    where = "".join(f" AND payload->'data'->>'{name}' = :{name}" for name in data)
    return scalar(platform.db_urls[service], f"SELECT count(*) FROM outbox WHERE event_type = :t{where}",
                  t=event_type, **data)


def dossier_count(platform) -> int:
    return scalar(platform.db_urls["intake"], "SELECT count(*) FROM dossiers")


def submission(procedure="1.012786"):
    return {"procedure_code": procedure, "channel": "online", "applicant": APPLICANT, "form": {},
            "documents": required_uploads(procedure)}


def actions(api, code, action):
    history = api.call("GET", f"/api/v1/dossiers/{code}", user="admin").json()["history"]
    return [entry for entry in history if entry["action"] == action]


def token(username, agency):
    role = username.split("@")[0]
    return infra.gateway_token(username, agency, role, ttl=900)


def test_a_submission_answered_503_then_retried_under_the_key_it_got_makes_one_dossier(platform):
    api = Api(platform.base_url)
    platform.kill("intake")
    lost = api.call("POST", "/api/v1/dossiers", json=submission())  # no key: the gateway gives one
    assert lost.status_code == 503, lost.text
    key = lost.headers["Idempotency-Key"]
    platform.start("intake")  # finds the request still queued, and carries it out
    platform.wait_healthy()
    retried = api.command("POST", "/api/v1/dossiers", key=key, json=submission())
    assert retried.status_code == 201, retried.text
    assert infra.wait_for(lambda: events(platform, "intake", "dossier_submitted") >= 1, timeout=30)
    eventlet.sleep(1)  # the queued request, if it ran after the retry, had its chance to make a second
    assert dossier_count(platform) == 1
    assert events(platform, "intake", "dossier_submitted") == 1
    assert api.command("POST", "/api/v1/dossiers", key=key, json=submission()).json() == retried.json()


def test_repeated_and_concurrent_commands_make_one_effect_and_answer_the_first_result(platform):
    api = Api(platform.base_url)

    # two identical submissions at once, one key: one dossier, the same answer twice
    both = [eventlet.spawn(api.command, "POST", "/api/v1/dossiers", key="both-at-once", json=submission())
            for _ in range(2)]
    first, second = (thread.wait() for thread in both)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    code = first.json()["code"]
    assert dossier_count(platform) == 1

    # the same key for another request: refused, naming the header, and nothing made
    other = api.call("POST", "/api/v1/dossiers", headers={"Idempotency-Key": "both-at-once"},
                     json=submission("1.001193"))
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    assert dossier_count(platform) == 1

    # another applicant's key does not reach this one's result: it is their own command
    stranger = {**submission(), "applicant": {**APPLICANT, "phone": "0911222333"}}
    theirs = api.call("POST", "/api/v1/dossiers", headers={"Idempotency-Key": "both-at-once"}, json=stranger)
    assert theirs.status_code == 201 and theirs.json()["code"] != code
    assert dossier_count(platform) == 2

    # receive: the owning service's RPC called twice at once under one key
    receptionist = token(f"receptionist@{COMMUNE}", COMMUNE)
    with ClusterRpcProxy({"AMQP_URI": platform.amqp_uri}) as cluster:
        calls = [cluster.intake.receive_dossier.call_async(code, caller_token=receptionist,
                                                           idempotency_key="receive-once") for _ in range(2)]
        received = [call.result() for call in calls]
    assert received[0] == received[1] and received[0]["status"] == "received"
    # … and over HTTP again: 200 with the first result, not 409
    again = api.command("POST", f"/api/v1/dossiers/{code}/receive", user=f"receptionist@{COMMUNE}",
                        key="receive-once", json={})
    assert again.status_code == 200 and again.json() == received[0]
    assert len(actions(api, code, "receive")) == 1
    assert events(platform, "intake", "dossier_received", code=code) == 1

    # complete the first step twice over HTTP, the second twice at once by RPC
    agency, role = LAND_STEPS[0]
    task = api.open_task(code, agency, role)
    done = api.complete(task, f"{role}@{agency}", key="complete-1")
    repeat = api.complete(task, f"{role}@{agency}", key="complete-1")
    assert done.status_code == repeat.status_code == 200 and done.json() == repeat.json()
    agency, role = LAND_STEPS[1]
    task = api.open_task(code, agency, role)
    with ClusterRpcProxy({"AMQP_URI": platform.amqp_uri}) as cluster:
        calls = [cluster.workflow.complete_task.call_async(task["id"], "approve", "Đủ điều kiện",
                                                           caller_token=token(f"{role}@{agency}", agency),
                                                           idempotency_key="complete-2") for _ in range(2)]
        completed = [call.result() for call in calls]
    assert completed[0] == completed[1] and completed[0]["status"] == "done"
    assert events(platform, "workflow", "task_completed", dossier_code=code) == 2
    agency, role = LAND_STEPS[2]
    api.complete(api.open_task(code, agency, role), f"{role}@{agency}")
    api.wait_status(code, "result_ready")

    # return the result, the answer lost and the request repeated
    returned = [api.command("POST", f"/api/v1/dossiers/{code}/return", user=f"receptionist@{COMMUNE}",
                            key="return-1", json={"method": "counter"}) for _ in range(2)]
    assert [r.status_code for r in returned] == [200, 200] and returned[0].json() == returned[1].json()
    assert len(actions(api, code, "return")) == 1
    assert events(platform, "intake", "result_returned", code=code) == 1
    assert dossier_count(platform) == 2


def test_a_double_submit_of_the_portal_form_makes_one_dossier(platform):
    form = requests.get(f"{platform.base_url}/thu-tuc/1.012786/nop-ho-so", timeout=30)
    key = form.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    fields = {"idempotency_key": key, **{f"applicant.{name}": value for name, value in APPLICANT.items()}}
    files = form_files(required_documents("1.012786"))
    pages = [requests.post(f"{platform.base_url}/thu-tuc/1.012786/nop-ho-so", data=fields, files=files, timeout=30)
             for _ in range(2)]
    assert [page.status_code for page in pages] == [200, 200]  # each redirected to its receipt
    assert dossier_count(platform) == 1
