"""deploy/k8s (issue 16): each overlay renders (kubectl's kustomize), every object validates against the
Kubernetes schemas (kubernetes-validate, strict: an unknown field fails) or its operator's CRD schema
(deploy/k8s/crds, jsonschema), the generated files are current, and the manifests say what the code
needs: probes, resources, a disruption budget and a scaler per process, each process its own Secret
holding exactly the settings it reads, quorum queues, the queue names the code declares."""
import json
import os
import shutil
import subprocess
import sys
from functools import cache

import jsonschema
import kubernetes_validate
import pytest
import yaml
from nameko.rpc import RPC_QUEUE_TEMPLATE

from motcua import broker_permissions, keys
from motcua.bus import inbox_queue_name
from motcua.config import GATEWAY_METRICS_PORT, ROOT, SERVICES
from motcua.worker import task_queue

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("demo", "production")
KUBERNETES_VERSION = "1.32"  # the oldest release the manifests are written for (PodDisruptionBudget policy/v1 …)
CRD_SCHEMAS = {(schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"]): schema
               for schema in (json.loads(path.read_text()) for path in sorted((K8S / "crds").glob("*.json")))}


def generator():
    sys.path.insert(0, str(K8S))
    try:
        import generate
    finally:
        sys.path.remove(str(K8S))
    return generate


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl") or shutil.which("kustomize")
    if kubectl is None:
        pytest.fail("rendering the overlays needs kubectl (its built-in kustomize) or kustomize on PATH: "
                    "apt-get install kubernetes-client, or the kustomize release binary")
    command = [kubectl, "kustomize" if kubectl.endswith("kubectl") else "build", str(K8S / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_generated_files_are_current():
    check = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_its_schema(overlay):
    objects = rendered(overlay)
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if key in CRD_SCHEMAS:
            errors = [e.message for e in jsonschema.Draft7Validator(CRD_SCHEMAS[key]).iter_errors(obj)]
            assert not errors, (where, errors)
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{where}: no schema for {key}; vendor its CRD's into deploy/k8s/crds")
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{where}: {error.message} at {list(error.path)}")
        assert obj["kind"] == "Namespace" or obj["metadata"].get("namespace") == f"motcua{'-demo' * (overlay == 'demo')}"


def test_the_validation_catches_a_misspelled_field():
    """A strict check is only worth something if it refuses: a typo the API server would silently prune."""
    deployment = dict(of_kind(rendered("production"), "Deployment")["intake"])
    template = {**deployment["spec"]["template"], "spec": {**deployment["spec"]["template"]["spec"]}}
    template["spec"]["containers"] = [{**template["spec"]["containers"][0], "readinesProbe": {}}]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "template": template}},
                                     KUBERNETES_VERSION, strict=True)
    broker = of_kind(rendered("production"), "RabbitmqCluster")["motcua-rabbitmq"]
    schema = CRD_SCHEMAS[("rabbitmq.com/v1beta1", "RabbitmqCluster")]
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(broker))
    assert list(jsonschema.Draft7Validator(schema).iter_errors({**broker, "spec": {**broker["spec"], "replica": 3}}))
    scaled = next(iter(of_kind(rendered("production"), "ScaledObject").values()))
    schema = CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")]
    assert list(jsonschema.Draft7Validator(schema).iter_errors({**scaled, "spec": {**scaled["spec"], "triggers": [{}]}}))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_is_probed_sized_budgeted_and_scaled(overlay):
    objects = rendered(overlay)
    deployments = of_kind(objects, "Deployment")
    budgets, scalers = of_kind(objects, "PodDisruptionBudget"), of_kind(objects, "ScaledObject")
    workers = {f"worker-{generator().agency_slug(w['agency'])}" for w in generator().load_workers()}
    assert set(deployments) == set(SERVICES) | workers
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [main] = pod["containers"]
        assert {"requests", "limits"} <= set(main["resources"]), name
        assert budgets[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert scalers[name]["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in deployment["spec"]  # KEDA's HPA owns the count
        if name in SERVICES:
            path = "/health/self" if name == "gateway" else "/health"
            assert main["readinessProbe"]["httpGet"]["path"] == main["livenessProbe"]["httpGet"]["path"] == path
            [wait] = pod["initContainers"]
            assert wait["command"] == ["python", "-m", "motcua.migrate", "wait", name]
            assert scalers[name]["spec"]["minReplicaCount"] >= 2  # two of each: tests/integration/test_chaos.py
    jobs = of_kind(objects, "Job")
    for service in SERVICES:
        assert jobs[f"migrate-{service}"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
            "python", "-m", "motcua.migrate", "upgrade", service]


def test_the_scalers_watch_the_queues_the_code_declares():
    scalers = of_kind(rendered("production"), "ScaledObject")
    queues = {name: {t["metadata"]["queueName"] for t in s["spec"]["triggers"] if t["type"] == "rabbitmq"}
              for name, s in scalers.items()}
    assert queues["intake"] == {inbox_queue_name("intake"), RPC_QUEUE_TEMPLATE.format("intake")}
    assert queues["notify"] == {inbox_queue_name("notify")}
    assert queues["gateway"] == set() and scalers["gateway"]["spec"]["triggers"][0]["type"] == "cpu"
    system = generator().system_agencies()
    assert system  # the catalogue has agencies with their own systems
    for agency in system:
        assert queues[f"worker-{generator().agency_slug(agency)}"] == {task_queue(agency).name}
    auth = of_kind(rendered("production"), "TriggerAuthentication")["motcua-rabbitmq-depths"]
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "motcua-keda", "key": "host"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_reads_only_its_own_secret(overlay):
    objects = rendered(overlay)
    platform = next(c for name, c in of_kind(objects, "ConfigMap").items() if name.startswith("motcua-platform"))
    assert platform["data"]["MOTCUA_QUEUE_TYPE"] == "quorum"
    assert platform["data"]["MOTCUA_ENV"] == ("demo" if overlay == "demo" else "production")
    for name, deployment in of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert secrets == [f"motcua-{name}"], (name, container["name"])
            assert "env" not in container  # nothing besides the platform's ConfigMap and its own Secret
        assert not any(v for v in pod["volumes"] if "secret" in v)
    for image in {c["image"] for d in of_kind(objects, "Deployment").values()
                  for c in d["spec"]["template"]["spec"]["containers"]}:
        assert image.split("/")[-1].startswith("motcua:")


def test_production_holds_no_secret_value_and_names_every_key_each_service_reads(monkeypatch, tmp_path):
    """The production overlay renders no Secret; secrets.example.yaml lists each service's keys, and a
    service configured for production from exactly those (fresh private values) starts its config."""
    from motcua.config import nameko_config

    assert of_kind(rendered("production"), "Secret") == {}
    example = {s["metadata"]["name"]: s["stringData"]
               for s in yaml.safe_load_all((K8S / "overlays/production/secrets.example.yaml").read_text())}
    private, public = keys.new_token_pair()
    (tmp_path / "signing.pem").write_text(private)
    for service in SERVICES:
        own = example[f"motcua-{service}"]
        assert all(value == "" for value in own.values())
        values = {name: keys.new_key() for name in own}
        values[keys.TOKEN_VERIFY_KEY] = public
        if keys.TOKEN_SIGNING_KEY in own:
            values[keys.TOKEN_SIGNING_KEY] = str(tmp_path / "signing.pem")
        values["AMQP_URI"] = f"amqp://motcua-{service}:{keys.new_key()}@broker:5672/"
        values[f"{service.upper()}_DB_URL"] = f"postgresql+psycopg://motcua_{service}:{keys.new_key()}@db/motcua_{service}"
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith(("MOTCUA_", "AMQP_", *(f"{s.upper()}_" for s in SERVICES)))]:
                patch.delenv(name)
            patch.setenv("MOTCUA_ENV", "production")
            for name, value in values.items():
                patch.setenv(name, value)
            config = nameko_config(services=(service,))  # raises SystemExit for a missing or default secret
        assert set(config["DB_URLS"]) == {service}
        others = {f"{other.upper()}_" for other in SERVICES if other != service}
        assert not [name for name in own if name.startswith(tuple(others))], service
    grants = broker_permissions.grants(tuple(w["worker"] for w in generator().load_workers()))
    assert set(example["motcua-broker-passwords"]) == {broker_permissions.password_variable(g.user) for g in grants}


def test_the_demo_secrets_are_the_published_demo_ones():
    """The demo's broker passwords are compose's (deploy/rabbitmq/definitions.json), its databases' owners
    those the CloudNativePG clusters are bootstrapped with."""
    secrets = of_kind(rendered("demo"), "Secret")
    clusters = of_kind(rendered("demo"), "Cluster")
    for service in SERVICES:
        owner = secrets[f"motcua-{service}-db-owner"]["stringData"]
        initdb = clusters[f"motcua-{service}-db"]["spec"]["bootstrap"]["initdb"]
        assert (initdb["owner"], initdb["secret"]["name"]) == (owner["username"], f"motcua-{service}-db-owner")
        url = secrets[f"motcua-{service}"]["stringData"][f"{service.upper()}_DB_URL"]
        assert f"//{owner['username']}:{owner['password']}@motcua-{service}-db-rw:5432/" in url
        assert owner["password"] == owner["username"]  # compose's convention: published, demo only


def test_every_agency_whose_system_takes_steps_has_a_worker():
    listed = {w["agency"] for w in generator().load_workers()}
    assert generator().system_agencies() <= listed


def test_the_broker_is_a_three_node_cluster_in_production():
    broker = of_kind(rendered("production"), "RabbitmqCluster")["motcua-rabbitmq"]
    assert broker["spec"]["replicas"] == 3
    assert "pause_minority" in broker["spec"]["rabbitmq"]["additionalConfig"]
    assert all(c["spec"]["instances"] == 3 for c in of_kind(rendered("production"), "Cluster").values())



@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_scraped_where_it_serves_its_metrics(overlay):
    """Every process reads the platform ConfigMap: the gateway's /metrics is on GATEWAY_METRICS_PORT (never
    the public port), and its pods' scrape annotation names that port."""
    objects = rendered(overlay)
    [platform] = [o for o in of_kind(objects, "ConfigMap").values() if o["metadata"]["name"].startswith("motcua-platform")]
    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["metadata"]["annotations"]
    assert gateway["prometheus.io/port"] == platform["data"]["GATEWAY_METRICS_PORT"] == str(GATEWAY_METRICS_PORT)


def test_production_keeps_the_documents_in_a_shared_bucket():
    """Several intake pods, each with a disk of its own that goes with it: the documents live in S3."""
    objects = rendered("production")
    [platform] = [o for o in of_kind(objects, "ConfigMap").values() if o["metadata"]["name"].startswith("motcua-platform")]
    assert platform["data"]["INTAKE_BLOB_STORE"] == "s3"
    intake = of_kind(yaml.safe_load_all((K8S / "overlays/production/secrets.example.yaml").read_text()), "Secret")
    assert {"INTAKE_S3_BUCKET", "INTAKE_S3_SECRET_KEY"} <= set(intake["motcua-intake"]["stringData"])
