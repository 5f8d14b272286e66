"""The blob stores: the local directory and the S3-compatible one, the latter against a real S3 HTTP
API served by moto's standalone server in a subprocess (the local stand-in for AWS S3 / MinIO)."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests
from sqlalchemy import text

from motcua.errors import NotFound
from motcua.identity import Caller
from services.intake import dossiers
from services.intake.blobs import LocalBlobStore, S3BlobStore, blob_store
from tests.documents import completed
from tests.infra import free_port
from tests.intake.test_dossiers import APPLICANT, MONDAY_9AM

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
COMMUNE = "000.20.01.H56"
RECEPTIONIST = Caller(f"receptionist@{COMMUNE}", COMMUNE, ("receptionist",))
KEYS = {"access_key": "intake-test", "secret_key": "intake-test-secret", "region": "ap-southeast-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3-compatible HTTP server on a free local port, for this module."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh bucket, and a client of its own to look inside it independently of the store."""
    name = f"intake-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=KEYS["region"],
                          aws_access_key_id=KEYS["access_key"], aws_secret_access_key=KEYS["secret_key"])
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": KEYS["region"]})
    return name, client


@pytest.fixture
def s3_env(monkeypatch, s3_endpoint, bucket):
    monkeypatch.setenv("INTAKE_BLOB_STORE", "s3")
    monkeypatch.setenv("INTAKE_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("INTAKE_S3_BUCKET", bucket[0])
    monkeypatch.setenv("INTAKE_S3_ACCESS_KEY", KEYS["access_key"])
    monkeypatch.setenv("INTAKE_S3_SECRET_KEY", KEYS["secret_key"])
    monkeypatch.setenv("INTAKE_S3_REGION", KEYS["region"])
    return bucket


def test_s3_store_round_trips_bytes_under_their_digest(s3_env):
    name, client = s3_env
    store = blob_store({})
    digest = hashlib.sha256(PDF).hexdigest()
    store.put(digest, PDF)
    store.put(digest, PDF)  # the same content again: still one object
    back = store.get(digest)
    assert back == PDF and hashlib.sha256(back).hexdigest() == digest
    listed = client.list_objects_v2(Bucket=name)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(f"documents/{digest}", len(PDF))]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_digest_the_store_does_not_hold_is_not_found(kind, tmp_path, s3_endpoint, bucket):
    store = (LocalBlobStore(tmp_path) if kind == "local"
             else S3BlobStore(bucket[0], endpoint=s3_endpoint, **KEYS))
    with pytest.raises(NotFound) as raised:
        store.get(hashlib.sha256(b"never stored").hexdigest())
    assert raised.value.field == "sha256"


def test_the_store_is_chosen_from_configuration(monkeypatch, tmp_path):
    monkeypatch.delenv("INTAKE_BLOB_STORE", raising=False)
    local = blob_store({"BLOB_DIR": str(tmp_path)})
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path
    monkeypatch.setenv("INTAKE_BLOB_STORE", "s3")
    monkeypatch.delenv("INTAKE_S3_BUCKET", raising=False)
    with pytest.raises(SystemExit, match="INTAKE_S3_BUCKET"):
        blob_store({})
    monkeypatch.setenv("INTAKE_S3_BUCKET", "documents")
    monkeypatch.setenv("INTAKE_S3_ENDPOINT", "http://127.0.0.1:9")
    s3 = blob_store({})
    assert isinstance(s3, S3BlobStore) and s3.bucket == "documents"
    assert s3.client.meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("INTAKE_BLOB_STORE", "ftp")
    with pytest.raises(SystemExit, match="INTAKE_BLOB_STORE"):
        blob_store({})


def submit_with_document(uow, policy):
    upload = {"key": "don_de_nghi", "filename": "don.pdf", "content_base64": base64.b64encode(PDF).decode()}
    payload = {"procedure_code": "1.012786", "channel": "online", "applicant": APPLICANT, "form": {},
               "documents": completed("1.012786", [upload])}
    dossier = dossiers.submit(uow, policy, payload, None, MONDAY_9AM)
    uow.commit()
    return dossier


def test_documents_submitted_with_the_s3_store_configured_land_in_the_bucket(uow, policy, s3_env):
    name, client = s3_env
    with_s3 = dossiers.Policy(policy.catalog, policy.calendar, policy.tracking_key, policy.search_key,
                              blob_store({}))
    dossier = submit_with_document(uow, with_s3)
    document = dossier.documents[0]  # don_de_nghi, the one under test
    stored = client.get_object(Bucket=name, Key=f"documents/{document.sha256}")["Body"].read()
    assert stored == PDF and document.sha256 == hashlib.sha256(PDF).hexdigest()
    served = dossiers.document_for_staff(uow, with_s3.store, dossier.code, document.id, RECEPTIONIST, policy.tree)
    assert base64.b64decode(served["content_base64"]) == PDF


def test_a_document_stored_on_another_instances_disk_is_not_found_here(uow, policy, tmp_path):
    dossier = submit_with_document(uow, policy)  # the fixture's local directory: "instance A"
    document = dossier.documents[0]  # don_de_nghi, the one under test
    elsewhere = LocalBlobStore(tmp_path / "instance-b")
    with pytest.raises(NotFound):
        dossiers.document_for_staff(uow, elsewhere, dossier.code, document.id, RECEPTIONIST, policy.tree)


def test_documents_stay_off_the_bus_every_event_names_them_by_reference(uow, policy):
    """Issue 12: large documents stay off the bus. Everything intake publishes is an outbox row; after a
    dossier with a document is submitted, received and supplemented with another, no row holds the
    bytes (raw or base64) and every row is small: the bytes are in intake's store by their SHA-256,
    and staff fetch them from intake (a step's documents travel as DocumentRef: key, size, SHA-256)."""
    dossier = submit_with_document(uow, policy)
    dossiers.receive(uow, policy, dossier.code, RECEPTIONIST, MONDAY_9AM)
    dossiers.request_supplement(uow, dossier.code, ["Bản sao giấy tờ đất"], None, RECEPTIONIST, MONDAY_9AM)
    later = PDF[:9] + PDF[:8:-1]  # another PDF
    dossiers.supplement(uow, policy, dossier.code, RECEPTIONIST, None, MONDAY_9AM, uploads=[
        {"key": "don_de_nghi", "filename": "bo-sung.pdf", "content_base64": base64.b64encode(later).decode()}])
    outbox = uow.session.execute(text("SELECT event_type, payload FROM outbox ORDER BY id")).all()
    assert {"dossier_submitted", "dossier_received", "dossier_supplemented"} <= {row.event_type for row in outbox}
    for content in (PDF, later):
        encoded, raw = base64.b64encode(content).decode(), content.decode("latin-1")
        for row in outbox:
            wire = row.payload if isinstance(row.payload, str) else json.dumps(row.payload)
            assert encoded[:64] not in wire and raw[16:80] not in wire, row.event_type
    digests = {hashlib.sha256(content).hexdigest() for content in (PDF, later)}
    assert all(len(json.dumps(json.loads(row.payload) if isinstance(row.payload, str) else row.payload)) < 8192
               for row in outbox)  # an event is small whatever was uploaded
    stored = {d.sha256 for d in dossiers.get_for_staff(uow, dossier.code, RECEPTIONIST, policy.tree).documents}
    assert digests <= stored  # the bytes are in intake's store, by their digest
