"""Writes the generated parts of deploy/k8s from one table (run it after changing the services, their
settings, the catalogue's agencies with their own systems, or deploy/k8s/agency-workers.yaml):

    python deploy/k8s/generate.py          (from the repository's root; `--check` only compares)

What it writes (tests/test_k8s.py fails when a file is not what this script makes):
  base/generated/services.yaml        per service: Deployment (probes, resources, an init container that
                                      waits for the release's migration), PodDisruptionBudget, KEDA
                                      ScaledObject on its queues; the gateway's Service
  base/generated/jobs.yaml            per service its migration Job; the broker users' Job
  base/generated/agency-workers.yaml  per agency with its own system: Deployment, PDB, ScaledObject on
                                      `tasks.<agency>`
  components/cloudnative-pg/generated/clusters.yaml   a CloudNativePG Cluster per service
  overlays/demo/generated/secrets.yaml               the demo's Secrets (published demo values)
  overlays/demo/generated/worker-patches.yaml        the demo workers make their token at start
  overlays/production/secrets.example.yaml           each Secret production needs, its keys, no values

Why generated: five services and every agency's worker share one shape; one table here instead of
hand-kept copies that drift. Each service's Secret holds only that service's settings (the same split as
compose.yaml and docs/least-privilege.md), derived from motcua.config.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

warnings.simplefilter("ignore")  # eventlet announces its bug-fix-only mode on import (STACK.md)
from motcua import broker_permissions, keys  # noqa: E402
from motcua.config import DEFAULT_METRICS_PORTS, GATEWAY_METRICS_PORT, METRICS_TOKEN, SERVICE_KEYS, SERVICES  # noqa: E402

K8S = ROOT / "deploy" / "k8s"
IMAGE = "motcua"  # the overlays' `images:` name the registry and tag
PART_OF = {"app.kubernetes.io/name": "motcua"}
PLATFORM_CONFIG = "motcua-platform"  # the base's ConfigMap of settings every process reads
CATALOG = "motcua-catalog"  # deploy/catalog as a ConfigMap (deploy/catalog/kustomization.yaml)
BROKER = "motcua-rabbitmq"  # the RabbitmqCluster (base/rabbitmq.yaml); its Service has the same name
DEPTH_AUTH = "motcua-rabbitmq-depths"  # KEDA's TriggerAuthentication: the queue-depth reader's URI
GATEWAY_PORT = 8000
S3_SETTINGS = ("INTAKE_S3_BUCKET", "INTAKE_S3_ENDPOINT", "INTAKE_S3_REGION", "INTAKE_S3_ACCESS_KEY",
               "INTAKE_S3_SECRET_KEY")
VAR_DIR = "/var/lib/motcua"


@dataclass(frozen=True)
class Sizing:
    """A process's requests and limits, and KEDA's bounds and per-replica thresholds (docs/operations.md)."""

    cpu: str
    memory: str
    memory_limit: str
    min_replicas: int = 2  # two of each at least: one may be moved or restarted while the other serves
    max_replicas: int = 6  # n instances need n times a service's connection budget within max_connections
    inbox_per_replica: int = 200  # events waiting in inbox.<service> per running instance
    rpc_per_replica: int = 20  # calls waiting in rpc-<service> per instance (two rounds of its 10 workers)
    cpu_utilization: int = 0  # the gateway scales on CPU (HTTP): target utilisation, % of requests


SIZING = {
    "gateway": Sizing("500m", "384Mi", "768Mi", max_replicas=8, cpu_utilization=70),
    "intake": Sizing("500m", "384Mi", "768Mi"),
    "workflow": Sizing("500m", "384Mi", "768Mi"),
    "notify": Sizing("200m", "256Mi", "512Mi", max_replicas=4),
    "reporting": Sizing("500m", "384Mi", "1Gi", max_replicas=4, inbox_per_replica=1000),
}
WORKER_SIZING = Sizing("100m", "192Mi", "384Mi", min_replicas=1)
# Which queues each service's load shows in: its inbox (events) and its RPC queue (calls). Notify and
# reporting are called rarely (staff screens); the gateway serves HTTP and scales on CPU.
SCALED_QUEUES = {"gateway": (), "intake": ("inbox", "rpc"), "workflow": ("inbox", "rpc"), "notify": ("inbox",),
                 "reporting": ("inbox", "rpc")}


def labels(component: str) -> dict:
    return {**PART_OF, "app.kubernetes.io/component": component}


def secret_name(principal: str) -> str:
    return f"motcua-{principal}"


def service_secret_keys(service: str) -> list[str]:
    """What `service` alone reads from its Secret: its broker URI and database URL, its keys by purpose,
    its dead-letter key, the token keys (the gateway's pair, every other service's public key), the
    metrics scrape token."""
    names = {"AMQP_URI", f"{service.upper()}_DB_URL", f"{service.upper()}_DEAD_LETTER_KEY",
             keys.TOKEN_VERIFY_KEY, METRICS_TOKEN, *SERVICE_KEYS[service].values()}
    if service == "gateway":
        names.add(keys.TOKEN_SIGNING_KEY)
    if service == "intake":  # the applicants' documents: a bucket every instance shares (INTAKE_BLOB_STORE=s3)
        names.update(S3_SETTINGS)
    return sorted(names)


def worker_secret_keys(worker_name: str) -> list[str]:
    """An agency worker's: its broker URI, its token (`motcua tokens system`) and its dead-letter key."""
    return sorted({"AMQP_URI", "MOTCUA_WORKER_TOKEN", f"{worker_name.upper()}_DEAD_LETTER_KEY"})


def container(name: str, args: list[str], secret: str, sizing: Sizing, port: int | None, probe_path: str) -> dict:
    spec = {
        "name": name, "image": IMAGE, "args": args,
        "envFrom": [{"configMapRef": {"name": PLATFORM_CONFIG}}, {"secretRef": {"name": secret}}],
        "resources": {"requests": {"cpu": sizing.cpu, "memory": sizing.memory},
                      "limits": {"memory": sizing.memory_limit}},
        "volumeMounts": [{"name": "catalog", "mountPath": "/catalog", "readOnly": True},
                         {"name": "var", "mountPath": VAR_DIR}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if port is not None:
        spec["ports"] = [{"name": "http" if name == "gateway" else "metrics", "containerPort": port}]
        probe = {"httpGet": {"path": probe_path, "port": port}, "timeoutSeconds": 5}
        # Ready: it reaches its database and the broker (a rolling update waits for it). Alive: the same,
        # but only after five minutes of failures, so that a database outage (which the services outlive,
        # retrying) does not restart every pod at once; a hung process is restarted.
        spec["readinessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 3}
        spec["livenessProbe"] = {**probe, "initialDelaySeconds": 30, "periodSeconds": 30, "failureThreshold": 10}
    return spec


def pod_spec(containers: list[dict], init: list[dict] | None = None) -> dict:
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        # MOTCUA_STOP_GRACE_SECONDS (20) of graceful stop, and room for it.
        "terminationGracePeriodSeconds": 30,
        "containers": containers,
        "volumes": [{"name": "catalog", "configMap": {"name": CATALOG}}, {"name": "var", "emptyDir": {}}],
    }
    if init:
        spec["initContainers"] = init
    return spec


def deployment(component: str, pod: dict, annotations: dict | None = None) -> dict:
    template = {"metadata": {"labels": labels(component)}, "spec": pod}
    if annotations:
        template["metadata"]["annotations"] = annotations
    # No `replicas`: KEDA's HPA owns the count (a replicas field would reset it on every apply).
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": component, "labels": labels(component)},
            "spec": {"selector": {"matchLabels": labels(component)}, "revisionHistoryLimit": 5,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": template}}


def disruption_budget(component: str) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": component},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(component)}}}


def queue_trigger(queue: str, per_replica: int) -> dict:
    return {"type": "rabbitmq", "name": queue.replace(".", "-").lower(),
            "metadata": {"protocol": "amqp", "mode": "QueueLength", "value": str(per_replica), "queueName": queue},
            "authenticationRef": {"name": DEPTH_AUTH}}


def scaled_object(component: str, sizing: Sizing, triggers: list[dict]) -> dict:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": component},
            "spec": {"scaleTargetRef": {"name": component}, "minReplicaCount": sizing.min_replicas,
                     "maxReplicaCount": sizing.max_replicas, "pollingInterval": 15, "cooldownPeriod": 300,
                     "triggers": triggers}}


def service_triggers(service: str, sizing: Sizing) -> list[dict]:
    queues = {"inbox": (f"inbox.{service}", sizing.inbox_per_replica),
              "rpc": (f"rpc-{service}", sizing.rpc_per_replica)}
    triggers = [queue_trigger(*queues[kind]) for kind in SCALED_QUEUES[service]]
    if sizing.cpu_utilization:
        triggers.append({"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(sizing.cpu_utilization)}})
    return triggers


def service_objects(service: str) -> list[dict]:
    sizing = SIZING[service]
    port = GATEWAY_PORT if service == "gateway" else DEFAULT_METRICS_PORTS[service]
    # The gateway's /metrics is on a port of its own in production (never the public one).
    metrics_port = GATEWAY_METRICS_PORT if service == "gateway" else port
    wait = container("wait-for-schema", [], secret_name(service), WORKER_SIZING, None, "")
    wait.update({"command": ["python", "-m", "motcua.migrate", "wait", service]})
    del wait["args"]
    main = container(service, [service], secret_name(service), sizing, port,
                     "/health/self" if service == "gateway" else "/health")
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port), "prometheus.io/path": "/metrics"}
    objects = [deployment(service, pod_spec([main], [wait]), scrape), disruption_budget(service),
               scaled_object(service, sizing, service_triggers(service, sizing))]
    if service == "gateway":
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gateway", "labels": labels("gateway")},
                        "spec": {"selector": labels("gateway"),
                                 "ports": [{"name": "http", "port": 80, "targetPort": GATEWAY_PORT}]}})
    return objects


def job(name: str, component: str, command: list[str], env_from: list[dict], env: list[dict] | None = None) -> dict:
    main = {"name": name, "image": IMAGE, "command": command, "envFrom": env_from,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    if env:
        main["env"] = env
    pod = {"restartPolicy": "OnFailure", "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
           "containers": [main]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels(component)},
            "spec": {"backoffLimit": 10, "template": {"metadata": {"labels": labels(component)}, "spec": pod}}}


def migration_job(service: str) -> dict:
    """The release's schema change, as the service's own database user (it owns its schema); the new
    pods' init containers wait for it, the old ones keep serving meanwhile."""
    return job(f"migrate-{service}", "migration", ["python", "-m", "motcua.migrate", "upgrade", service],
               [{"configMapRef": {"name": PLATFORM_CONFIG}}, {"secretRef": {"name": secret_name(service)}}])


def broker_users_job(workers: list[dict]) -> dict:
    """Each service's and worker's RabbitMQ user with exactly its permissions (docs/least-privilege.md),
    applied through the management API as the cluster's administrator (the operator's default user)."""
    admin = f"{BROKER}-default-user"
    env = [{"name": "RABBIT_USER", "valueFrom": {"secretKeyRef": {"name": admin, "key": "username"}}},
           {"name": "RABBIT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": admin, "key": "password"}}},
           {"name": "AMQP_URI", "value": f"amqp://$(RABBIT_USER):$(RABBIT_PASSWORD)@{BROKER}:5672/"},
           {"name": "MOTCUA_RABBIT_MANAGEMENT_URL", "value": f"http://{BROKER}:15672/api"}]
    command = ["python", "-m", "motcua.cli", "broker", "users", "--vhost", "/", "--apply"]
    for worker in workers:
        command += ["--worker", worker["worker"]]
    return job("broker-users", "broker-users", command,
               [{"configMapRef": {"name": PLATFORM_CONFIG}}, {"secretRef": {"name": "motcua-broker-passwords"}}], env)


def agency_slug(agency: str) -> str:
    return agency.lower().replace(".", "-")


def worker_name(worker: dict) -> str:
    import pkgutil
    return pkgutil.resolve_name(worker["worker"]).name


def worker_objects(worker: dict) -> list[dict]:
    component = f"worker-{agency_slug(worker['agency'])}"
    sizing = Sizing(WORKER_SIZING.cpu, WORKER_SIZING.memory, WORKER_SIZING.memory_limit, min_replicas=1,
                    max_replicas=int(worker.get("max_replicas", 4)))
    main = container("worker", ["--worker", worker["worker"]], secret_name(component), sizing, None, "")
    if "image" in worker:
        main["image"] = worker["image"]
    return [deployment(component, pod_spec([main])), disruption_budget(component),
            scaled_object(component, sizing, [queue_trigger(f"tasks.{worker['agency']}", int(worker["per_replica"]))])]


def load_workers() -> list[dict]:
    return yaml.safe_load((K8S / "agency-workers.yaml").read_text())["workers"]


def system_agencies() -> set[str]:
    """The catalogue's agencies whose own systems take steps (workflow declares their task queues)."""
    from motcua.config import catalog_dir
    from services.workflow.processes import load_processes

    return load_processes(catalog_dir(), "Asia/Ho_Chi_Minh").system_agencies


def postgres_cluster(service: str) -> dict:
    database = f"motcua_{service}"
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": f"motcua-{service}-db"},
            "spec": {"instances": 3, "primaryUpdateStrategy": "unsupervised", "enableSuperuserAccess": False,
                     "postgresql": {"parameters": {"max_connections": "200"}},
                     "bootstrap": {"initdb": {"database": database, "owner": database,
                                              "secret": {"name": f"motcua-{service}-db-owner"}}},
                     "storage": {"size": "20Gi"},
                     "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname"}}}


def secret(name: str, data: dict[str, str], kind: str = "Opaque") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": kind, "stringData": data}


def demo_secrets(workers: list[dict]) -> list[dict]:
    """The demo's published values: broker and database passwords are the users' names (as compose's),
    every key unset so that MOTCUA_ENV=demo derives its public development value."""
    def amqp(principal: str) -> str:
        user = broker_permissions.USER_PREFIX + principal
        return f"amqp://{user}:{broker_permissions.demo_password(user)}@{BROKER}:5672/"

    out = []
    for service in SERVICES:
        owner = f"motcua_{service}"
        out.append(secret(secret_name(service), {
            "AMQP_URI": amqp(service),
            f"{service.upper()}_DB_URL": f"postgresql+psycopg://{owner}:{owner}@motcua-{service}-db-rw:5432/{owner}"}))
        out.append(secret(f"motcua-{service}-db-owner", {"username": owner, "password": owner},
                          "kubernetes.io/basic-auth"))
    for worker in workers:
        out.append(secret(secret_name(f"worker-{agency_slug(worker['agency'])}"), {"AMQP_URI": amqp(worker_name(worker))}))
    grants = broker_permissions.grants(tuple(w["worker"] for w in workers))
    out.append(secret("motcua-broker-passwords", {broker_permissions.password_variable(g.user):
                                                  broker_permissions.demo_password(g.user) for g in grants}))
    reader = broker_permissions.USER_PREFIX + broker_permissions.QUEUE_DEPTH_READER
    out.append(secret("motcua-keda", {"host": amqp(broker_permissions.QUEUE_DEPTH_READER)}))
    assert broker_permissions.demo_password(reader) == reader
    return out


def demo_worker_patches(workers: list[dict]) -> list[dict]:
    """The demo's workers make their token at start with the development key pair, as compose's do
    (production refuses that pair: its workers read MOTCUA_WORKER_TOKEN from their Secret)."""
    patches = []
    for worker in workers:
        command = (f"MOTCUA_WORKER_TOKEN=$(python -m motcua.cli tokens system {worker['agency']}) "
                   f"exec python -m motcua.run --worker {worker['worker']}")
        patches.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"worker-{agency_slug(worker['agency'])}"},
                        "spec": {"template": {"spec": {"containers": [
                            {"name": "worker", "command": ["sh", "-c", command], "args": []}]}}}})
    return patches


def production_secrets(workers: list[dict]) -> list[dict]:
    """Every Secret the production overlay expects to exist, with its keys and no value."""
    out = [secret(secret_name(service), dict.fromkeys(service_secret_keys(service), "")) for service in SERVICES]
    out += [secret(f"motcua-{service}-db-owner", {"username": f"motcua_{service}", "password": ""},
                   "kubernetes.io/basic-auth") for service in SERVICES]
    out += [secret(secret_name(f"worker-{agency_slug(w['agency'])}"), dict.fromkeys(worker_secret_keys(worker_name(w)), ""))
            for w in workers]
    grants = broker_permissions.grants(tuple(w["worker"] for w in workers))
    out.append(secret("motcua-broker-passwords", {broker_permissions.password_variable(g.user): "" for g in grants}))
    out.append(secret("motcua-keda", {"host": ""}))
    return out


HEADER = "# Generated by deploy/k8s/generate.py: edit the script (or its inputs), not this file.\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # a probe shared by readiness and liveness is written out twice
        return True


def dump(objects: list[dict], note: str = "") -> str:
    return HEADER + note + yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def outputs() -> dict[Path, str]:
    workers = load_workers()
    missing = system_agencies() - {w["agency"] for w in workers}
    if missing:
        raise SystemExit(f"deploy/k8s/agency-workers.yaml lists no worker for {', '.join(sorted(missing))}, "
                         "whose own system takes a step (handled_by: system): its tasks would wait for nobody")
    return {
        K8S / "base/generated/services.yaml": dump([o for s in SERVICES for o in service_objects(s)]),
        K8S / "base/generated/jobs.yaml": dump([migration_job(s) for s in SERVICES] + [broker_users_job(workers)]),
        K8S / "base/generated/agency-workers.yaml": dump([o for w in workers for o in worker_objects(w)]),
        K8S / "components/cloudnative-pg/generated/clusters.yaml": dump([postgres_cluster(s) for s in SERVICES]),
        K8S / "overlays/demo/generated/secrets.yaml": dump(
            demo_secrets(workers), "# The demo's values are published: production refuses every one of them.\n"),
        K8S / "overlays/demo/generated/worker-patches.yaml": dump(demo_worker_patches(workers)),
        K8S / "overlays/production/secrets.example.yaml": dump(
            production_secrets(workers),
            "# What production expects to exist before `kubectl apply -k`: each Secret, its keys, no value.\n"
            "# Not applied by the overlay: fill a copy kept out of git (or create them with kubectl create\n"
            "# secret, an external secret store, sealed secrets). docs/operations.md says what each holds.\n"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 naming stale files")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if not path.exists() or path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("stale (run python deploy/k8s/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
