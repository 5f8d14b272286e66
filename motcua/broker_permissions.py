"""Least privilege on the broker (quyền tối thiểu): each service and each agency's worker connects as its
own RabbitMQ user, allowed to configure, write and read only the exchanges and queues its code uses.

The permissions are derived here, in one place, from the code itself: each nameko class's entrypoints
and dependencies say what it does on the broker (`Uses`), and the names come from the functions that
name the queues and exchanges (nameko's `rpc-<service>` and `rpc.reply-<service>-<uuid>` on the
`nameko-rpc` exchange, `<service>.events`, `motcua.bus`'s `inbox.<service>` with its `.parking`
exchange, `.dead` and `.wait.<n>s` queues, `motcua.worker`'s `tasks.<agency>` on `motcua.tasks`).

RabbitMQ's permissions are three regular expressions over resource names (configure: declare and delete;
write: publish, and be the destination of a binding; read: consume, and be the source of a binding).
On the topic exchanges, topic permissions also bound the routing keys: a service may publish requests
only to the services it calls and bind only its own request key and reply keys, so nobody can bind
`#` on `nameko-rpc` and read every call; a worker may bind only its own agency's task key. No user may
write to the default exchange (through it one reaches any queue by name): the bus retries and parks
through each consumer's own exchange.

What remains (docs/least-privilege.md): whoever may declare a shared exchange may also delete it
(nameko and kombu declare `nameko-rpc`, `motcua.tasks` and the event exchanges a service binds to,
each time they start), which stops traffic but reads or forges nothing.

`motcua broker users` prints the `rabbitmqctl` lines or applies them through the management API;
`motcua broker definitions` prints `deploy/rabbitmq/definitions.json` (compose's broker loads it).
"""
from __future__ import annotations

import base64
import hashlib
import inspect
import os
import pkgutil
import re
from dataclasses import dataclass, field

from nameko.events import EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import RPC_QUEUE_TEMPLATE, RPC_REPLY_QUEUE_TEMPLATE, Rpc, RpcProxy, get_rpc_exchange
from nameko.standalone.events import get_event_exchange

from motcua.bus import ReliableEventHandler, dead_letter_queue, delay_queue, inbox_queue_name, parking_exchange
from motcua.config import SERVICES
from motcua.queues import QUORUM, queue_type
from motcua.worker import TASKS_EXCHANGE, TaskHandler, task_queue

RPC_EXCHANGE = get_rpc_exchange({}).name
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # nameko's reply keys (uuid4)
NOTHING = "^$"  # matches no resource name or routing key RabbitMQ checks
# Workflow routes tasks to the agencies' queues (services/workflow/handlers.publish) and declares the
# queues of agencies whose systems take steps (ProcessCatalog.start), so none is lost before its worker runs.
TASK_ROUTERS = frozenset({"workflow"})
# The agencies' workers compose runs (deploy/rabbitmq/definitions.json has their users).
EXAMPLE_WORKERS = ("workers.tax_office:TaxOfficeWorker",)
USER_PREFIX = "motcua-"
# The autoscaler's user (KEDA's rabbitmq trigger, deploy/k8s): it reads queue depths by passive declares,
# which need no permission, so it holds none: it can neither consume, publish, declare nor bind anything.
QUEUE_DEPTH_READER = "keda"
ADMIN_USER = "motcua"  # compose's operator (management UI, `motcua dead-letters`, this module's --apply)


@dataclass(frozen=True)
class Uses:
    """What one nameko class does on the broker, read from its entrypoints and dependencies."""

    name: str
    serves_rpc: bool = False
    calls: frozenset[str] = frozenset()  # services it calls
    subscriptions: frozenset[tuple[str, str]] = frozenset()  # (source, event type) through its inbox
    broadcasts: frozenset[tuple[str, str]] = frozenset()  # (source, event type) through broadcast queues
    broadcast_queues: frozenset[str] = frozenset()  # how those queues' names begin (one each per instance)
    agencies: frozenset[str] = frozenset()  # agencies whose task queue it consumes


def uses_of(cls) -> Uses:
    entrypoints = [entrypoint for _, method in inspect.getmembers(cls, callable)
                   for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ())]
    subscriptions, broadcasts, broadcast_queues = set(), set(), set()
    for entrypoint in entrypoints:
        if isinstance(entrypoint, ReliableEventHandler):
            subscriptions |= entrypoint.subscriptions
        elif isinstance(entrypoint, EventHandler):
            if not hasattr(entrypoint, "queue_prefix"):  # a queue this module knows nothing of: no silent gap
                raise ValueError(f"{cls.__name__}: only motcua.bus's event handlers and the gateway's broadcast "
                                 "handlers have broker permissions here")
            broadcasts |= {(entrypoint.source_service, event_type) for event_type in entrypoint.event_types}
            broadcast_queues.add(entrypoint.queue_prefix(cls.name))
    return Uses(
        name=cls.name,
        serves_rpc=any(isinstance(e, Rpc) for e in entrypoints),
        calls=frozenset(d.target_service for _, d in inspect.getmembers(cls, lambda v: isinstance(v, RpcProxy))),
        subscriptions=frozenset(subscriptions), broadcasts=frozenset(broadcasts),
        broadcast_queues=frozenset(broadcast_queues),
        agencies=frozenset(e.agency_code for e in entrypoints if isinstance(e, TaskHandler)))


@dataclass
class Grant:
    """One user's permissions: resource-name patterns per kind of access, routing-key patterns per topic
    exchange (each a set of regular expressions, joined into one anchored alternative)."""

    user: str
    configure: set[str] = field(default_factory=set)
    write: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)
    topics: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # exchange → {"write", "read"}

    def allow(self, configure=(), write=(), read=()) -> None:
        self.configure.update(configure)
        self.write.update(write)
        self.read.update(read)

    def keys(self, exchange: str, write=(), read=()) -> None:
        topic = self.topics.setdefault(exchange, {"write": set(), "read": set()})
        topic["write"].update(write)
        topic["read"].update(read)

    def permissions(self) -> dict[str, str]:
        return {kind: anchored(getattr(self, kind)) for kind in ("configure", "write", "read")}

    def topic_permissions(self) -> list[dict[str, str]]:
        return [{"exchange": exchange, "write": anchored(keys["write"]), "read": anchored(keys["read"])}
                for exchange, keys in sorted(self.topics.items())]


def anchored(patterns: set[str]) -> str:
    return f"^({'|'.join(sorted(patterns))})$" if patterns else NOTHING


def exact(name: str) -> str:
    return re.escape(name)


def _consumer_queue(grant: Grant, queue_name: str) -> None:
    """A queue the user consumes through `motcua.bus`'s parking: the queue, its parking exchange, its
    dead letters and its delay queues (declared with the parking exchange as their dead-letter exchange)."""
    one_second = delay_queue(queue_name, 1).name  # `<queue>.wait.1s`: every delay's name but its figure
    waiting = exact(one_second[: -len("1s")]) + r"[0-9.]+s"
    own = {exact(queue_name), exact(parking_exchange(queue_name).name), exact(dead_letter_queue(queue_name).name),
           waiting}
    grant.allow(configure=own, write=own, read=own)


def _events_consumed(grant: Grant, subscriptions) -> None:
    """Binding to other services' event exchanges (kombu declares an exchange it binds to) by event type."""
    for source, event_type in subscriptions:
        exchange = get_event_exchange(source, {}).name
        grant.allow(configure={exact(exchange)}, read={exact(exchange)})
        grant.keys(exchange, read={exact(event_type)})


def grant_for(uses: Uses, publishers: frozenset[str], prefix: str = USER_PREFIX) -> Grant:
    """The permissions of `uses`'s user; `publishers` are the services whose events somebody consumes."""
    grant = Grant(f"{prefix}{uses.name}")
    rpc = exact(RPC_EXCHANGE)
    quorum = queue_type() == QUORUM
    if uses.serves_rpc:
        queue = exact(RPC_QUEUE_TEMPLATE.format(uses.name))
        grant.allow(configure={rpc, queue}, write={rpc, queue}, read={rpc, queue})
        if quorum:  # its requests past the delivery limit are dead-lettered into its own `.dead`
            _consumer_queue(grant, RPC_QUEUE_TEMPLATE.format(uses.name))
        grant.keys(RPC_EXCHANGE, write={UUID}, read={exact(f"{uses.name}.*")})  # answers; its requests
    if uses.calls:
        reply = exact(RPC_REPLY_QUEUE_TEMPLATE.format(uses.name, "@")).replace("@", UUID)
        grant.allow(configure={rpc, reply}, write={rpc, reply}, read={rpc, reply})
        grant.keys(RPC_EXCHANGE, write={exact(f"{target}.") + "[^.]+" for target in uses.calls}, read={UUID})
    if uses.subscriptions:
        _consumer_queue(grant, inbox_queue_name(uses.name))
        _events_consumed(grant, uses.subscriptions)
    if uses.broadcasts:
        queues = {exact(prefix) + ".+" for prefix in uses.broadcast_queues}
        grant.allow(configure=queues, write=queues, read=queues)
        _events_consumed(grant, uses.broadcasts)
    if uses.name in publishers:
        own = get_event_exchange(uses.name, {}).name
        grant.allow(configure={exact(own)}, write={exact(own)})
        grant.keys(own, write={".+"})  # any of its event types (the gateway also binds its own exchange)
    tasks = exact(TASKS_EXCHANGE.name)
    if uses.name in TASK_ROUTERS:
        queues = exact(task_queue("@").name).replace("@", ".+")
        keys = exact(task_queue("@").routing_key).replace("@", ".+")
        # A quorum task queue names its dead-letter exchange, and RabbitMQ lets only a user who may read
        # the queue (and write to that exchange, `tasks.<agency>.parking`: matched already) declare it so.
        grant.allow(configure={tasks, queues}, write={tasks, queues}, read={tasks} | ({queues} if quorum else set()))
        grant.keys(TASKS_EXCHANGE.name, write={keys}, read={keys})
    for agency in uses.agencies:
        _consumer_queue(grant, task_queue(agency).name)
        grant.allow(configure={tasks}, read={tasks})
        grant.keys(TASKS_EXCHANGE.name, read={exact(task_queue(agency).routing_key)})
    return grant


def all_uses(workers=EXAMPLE_WORKERS) -> list[Uses]:
    """The five services' and the workers' (`module:Class`) uses."""
    from motcua.run import service_class

    return [uses_of(service_class(s)) for s in SERVICES] + [uses_of(pkgutil.resolve_name(w)) for w in workers]


def grants(workers=EXAMPLE_WORKERS, prefix: str = USER_PREFIX) -> list[Grant]:
    """Every service's and every worker's permissions, and the queue-depth reader's (none)."""
    uses = all_uses(workers)
    publishers = frozenset(source for u in uses for source, _ in u.subscriptions | u.broadcasts)
    return [grant_for(u, publishers, prefix) for u in uses] + [Grant(f"{prefix}{QUEUE_DEPTH_READER}")]


def password_variable(user: str) -> str:
    """The environment variable holding `user`'s broker password for `motcua broker users`."""
    return re.sub(r"[^A-Z0-9]", "_", user.upper()) + "_BROKER_PASSWORD"


def rabbitmqctl_lines(all_grants: list[Grant], vhost: str = "/") -> list[str]:
    lines = [f"rabbitmqctl add_vhost {shell(vhost)}"]
    for grant in all_grants:
        lines.append(f'rabbitmqctl add_user {grant.user} "${{{password_variable(grant.user)}:?}}"')
        p = grant.permissions()
        lines.append(f"rabbitmqctl set_permissions -p {shell(vhost)} {grant.user} "
                     f"{shell(p['configure'])} {shell(p['write'])} {shell(p['read'])}")
        for topic in grant.topic_permissions():
            lines.append(f"rabbitmqctl set_topic_permissions -p {shell(vhost)} {grant.user} {topic['exchange']} "
                         f"{shell(topic['write'])} {shell(topic['read'])}")
    return lines


def shell(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def apply(all_grants: list[Grant], management_url: str, auth: tuple[str, str], vhost: str = "/",
          passwords: dict[str, str] | None = None) -> None:
    """Create the vhost, each user (password from `passwords`, else its `password_variable`) and its
    permissions through RabbitMQ's management API; a user's earlier topic permissions are replaced."""
    import requests
    from urllib.parse import quote

    passwords = passwords or {}

    def put(path: str, body: dict | None = None) -> None:
        requests.put(f"{management_url}/{path}", json=body or {}, auth=auth, timeout=10).raise_for_status()

    v = quote(vhost, safe="")
    put(f"vhosts/{v}")
    for grant in all_grants:
        password = passwords.get(grant.user) or os.environ.get(password_variable(grant.user))
        if not password:
            raise SystemExit(f"{password_variable(grant.user)} must hold the broker password of {grant.user}")
        put(f"users/{quote(grant.user, safe='')}", {"password": password, "tags": ""})
        put(f"permissions/{v}/{quote(grant.user, safe='')}", grant.permissions())
        requests.delete(f"{management_url}/topic-permissions/{v}/{quote(grant.user, safe='')}", auth=auth,
                        timeout=10)
        for topic in grant.topic_permissions():
            put(f"topic-permissions/{v}/{quote(grant.user, safe='')}", topic)


def password_hash(user: str, password: str) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256` of `password`, salted from the user's name so the
    generated definitions file is the same on every run."""
    salt = hashlib.sha256(user.encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def demo_password(user: str) -> str:
    """compose's demo password of `user`: published, so for the demo only (a deployment sets its own
    with `motcua broker users --apply`)."""
    return user


def definitions(all_grants: list[Grant], vhost: str = "/") -> dict:
    """RabbitMQ definitions for compose's broker: the vhost, the operator, and every user with its
    permissions (demo passwords)."""
    users = [{"name": ADMIN_USER, "tags": ["administrator"]}] + [{"name": g.user, "tags": []} for g in all_grants]
    return {
        "users": [{**u, "password_hash": password_hash(u["name"], demo_password(u["name"])),
                   "hashing_algorithm": "rabbit_password_hashing_sha256"} for u in users],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": ADMIN_USER, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}] +
                       [{"user": g.user, "vhost": vhost, **g.permissions()} for g in all_grants],
        "topic_permissions": [{"user": g.user, "vhost": vhost, **t} for g in all_grants
                              for t in g.topic_permissions()],
    }
