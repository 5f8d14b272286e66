"""The durable queues' type: classic (one broker node; the default) or quorum (a RabbitMQ cluster).

`MOTCUA_QUEUE_TYPE=quorum` makes every durable queue the platform declares a quorum queue (hàng đợi
quorum: replicated on a majority of the cluster's nodes, so one node lost loses no message and stops no
consumer): each service's inbox `inbox.<service>`, its RPC queue `rpc-<service>`, each agency's task
queue `tasks.<agency>`, and the parking queues of each (`<queue>.dead`, the delay queues
`<queue>.wait.<n>s`). Queues of one connection's lifetime (RPC reply queues, the gateway's broadcast
queues: exclusive or auto-delete) stay classic, as a quorum queue cannot be either.

A consumed quorum queue also bounds redeliveries (`x-delivery-limit`, `MOTCUA_QUEUE_DELIVERY_LIMIT`,
20 by default): a message whose consumer dies every time it takes it (a crash, a kill, a lost
connection before the ack) would otherwise come back forever. On its last allowed delivery
(`x-delivery-count` at the limit) the consuming service parks it into `<queue>.dead` itself, before
any handler runs it, with the bus's headers and its personal data sealed like any parked message
(`motcua.bus.Parking.at_the_delivery_limit`; an RPC request sealed whole). Only if the process dies
on that delivery too does the broker dead-letter it past the limit, **at least once**
(`x-dead-letter-strategy: at-least-once`, which needs `x-overflow: reject-publish`), through the
queue's own parking exchange into the same `<queue>.dead`, unsealed: RabbitMQ's `x-death` says why.
The bus's own retries and parking (`motcua.bus.RetryPolicy`) are unchanged and come first: a failing
handler never reaches the limit, a dying consumer does.

Every process that declares a queue must run with the same setting (RabbitMQ refuses a declaration
whose arguments differ from the queue's: PRECONDITION_FAILED), and an existing classic queue is not
converted: a deployment switching type drains and deletes its queues first (docs/operations.md).
"""
from __future__ import annotations

from kombu import Exchange, Queue

from motcua.config import env, number

QUEUE_TYPE = "MOTCUA_QUEUE_TYPE"
DELIVERY_LIMIT = "MOTCUA_QUEUE_DELIVERY_LIMIT"
CLASSIC, QUORUM = "classic", "quorum"
DEFAULT_DELIVERY_LIMIT = 20  # RabbitMQ 4's own default for quorum queues


def queue_type() -> str:
    """The configured type (read when a queue is declared, so every declaration of one process agrees)."""
    value = env(QUEUE_TYPE, CLASSIC)
    if value not in (CLASSIC, QUORUM):
        raise SystemExit(f"{QUEUE_TYPE} must be {CLASSIC} or {QUORUM}, not {value!r}")
    return value


def delivery_limit() -> int:
    limit = number(DELIVERY_LIMIT, str(DEFAULT_DELIVERY_LIMIT), int)
    if limit < 1:
        raise SystemExit(f"{DELIVERY_LIMIT} must be at least 1, not {limit}")
    return limit


def parking_exchange(queue_name: str) -> Exchange:
    """The consumer's own exchange for its delay queues, its dead letters and the way back to its queue."""
    return Exchange(f"{queue_name}.parking", type="direct", durable=True)


def _parked_queue(queue_name: str, name: str, **arguments) -> Queue:
    return Queue(name, exchange=parking_exchange(queue_name), routing_key=name, durable=True,
                 queue_arguments=stored_queue_arguments(**arguments))


def dead_letter_queue(queue_name: str) -> Queue:
    """Where `queue_name`'s messages are parked (by the bus, or by the broker past the delivery limit)."""
    return _parked_queue(queue_name, f"{queue_name}.dead")


def delay_queue(queue_name: str, seconds: float) -> Queue:
    """Where a retry of `queue_name`'s message waits `seconds` before going back to it."""
    return _parked_queue(queue_name, f"{queue_name}.wait.{seconds:g}s", **{
        "x-message-ttl": int(seconds * 1000), **at_least_once_dead_lettering(queue_name, queue_name)})


def consumed_queue_arguments(queue_name: str) -> dict | None:
    """The arguments of a queue a service or worker consumes: none for a classic queue; for a quorum
    queue its type, the delivery limit and at-least-once dead-lettering into `<queue>.dead`."""
    if queue_type() != QUORUM:
        return None
    return {"x-queue-type": QUORUM, "x-delivery-limit": delivery_limit(),
            **at_least_once_dead_lettering(queue_name, dead_letter_queue(queue_name).name)}


def at_least_once_dead_lettering(queue_name: str, routing_key: str) -> dict:
    """Dead-lettering through `queue_name`'s parking exchange with `routing_key`; at least once on a
    quorum queue (the message leaves the source only once its target confirmed it)."""
    arguments = {"x-dead-letter-exchange": parking_exchange(queue_name).name, "x-dead-letter-routing-key": routing_key}
    if queue_type() == QUORUM:
        arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return arguments


def stored_queue_arguments(**arguments) -> dict | None:
    """The arguments of a queue nobody consumes (dead letters, delay queues): `arguments` and, for a
    quorum queue, its type."""
    if queue_type() == QUORUM:
        arguments["x-queue-type"] = QUORUM
    return arguments or None
