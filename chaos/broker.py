"""A RabbitMQ node of the chaos suite's own: its own node name, ports, data directory, cookie and
enabled-plugins file, so that restarting it or closing its connections touches nobody else's tests.

Debian's `/usr/sbin/rabbitmq-server` switches to the `rabbitmq` user and reads /etc/rabbitmq (whose
listener is the shared broker's port 5672); the scripts under /usr/lib/rabbitmq/bin run as the caller,
so the node is started from there, with every path and port given to it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import requests

from motcua.backoff import backoff
from tests.infra import free_port

SCRIPTS = Path("/usr/lib/rabbitmq/bin")
AUTH = ("guest", "guest")
JOIN_ATTEMPTS = 4


class Broker:
    """The suite's node: `start()`, `stop()`, `restart_app()`, `close_connections()`, queue depths."""

    def __init__(self, base_dir: Path, name: str = "chaos", home: Path | None = None):
        self.dir = base_dir / ("rabbitmq" if name == "chaos" else f"rabbitmq-{name}")
        self.node = f"{name}-{os.getpid()}@localhost"
        self.home = home or self.dir / "home"  # the Erlang cookie the node and its CLI share (a cluster's nodes too)
        self.port, self.management_port, self.dist_port = free_port(), free_port(), free_port()
        self.vhost = "chaos"
        self.api = f"http://127.0.0.1:{self.management_port}/api"

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{self.vhost}"

    def _env(self) -> dict:
        return {**os.environ, "HOME": str(self.home), "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"), "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.dir / "node.pid"), "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def start(self, timeout: float = 90) -> None:
        self.launch()
        self._await(timeout)
        self.open_vhost()

    def launch(self) -> None:
        """Start the node's Erlang VM (detached), not waiting for it; again after a kill, on its data."""
        if not (SCRIPTS / "rabbitmq-server").exists():
            raise SystemExit(f"the chaos suite runs a RabbitMQ node of its own: {SCRIPTS}/rabbitmq-server is missing")
        for sub in (self.home, self.dir / "mnesia", self.dir / "log"):
            sub.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's (the shared node's name)
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nmanagement.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.management_port}\n"
            # statistics every second: the peak queue depth is sampled from them
            "collect_statistics_interval = 1000\n")
        subprocess.run([str(SCRIPTS / "rabbitmq-server"), "-detached"], env=self._env(), cwd=self.dir, check=True)

    def open_vhost(self) -> None:
        self.call("PUT", f"/vhosts/{self.vhost}")
        self.call("PUT", f"/permissions/{self.vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})

    def _await(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.api}/overview", auth=AUTH, timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the chaos broker {self.node} did not start in {timeout:g} s; see {self.dir}/log")

    def ctl(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([str(SCRIPTS / "rabbitmqctl"), "-q", "-n", self.node, *args], env=self._env(), check=True,
                       timeout=timeout, capture_output=True)

    def join(self, seed: str) -> None:
        """This node joins the cluster of node `seed` (its own data reset: it was just created)."""
        self.ctl("stop_app")
        for attempt in range(1, JOIN_ATTEMPTS + 1):  # on a busy machine the seed may not answer the first time
            try:
                self.ctl("join_cluster", seed)
                break
            except subprocess.CalledProcessError:
                if attempt == JOIN_ATTEMPTS:
                    raise
                time.sleep(backoff(attempt, base=2.0, cap=10.0))
        self.ctl("start_app")
        self.ctl("await_startup")

    def restart_app(self, down_for: float = 0.0) -> None:
        """The broker itself restarted (its Erlang VM stays): every connection drops, durable queues and
        persistent messages survive."""
        self.ctl("stop_app")
        time.sleep(down_for)
        self.ctl("start_app")
        self.ctl("await_startup")
        self._await(60)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("stop", timeout=60)
        # A node its CLI could not stop (it never finished starting, or hangs) is not left running
        # behind the test, holding its ports and the machine's CPU.
        pid = self.pid
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir / "mnesia", ignore_errors=True)

    @property
    def pid(self) -> int | None:
        """The node's Erlang VM, from its pid file (None before it wrote one)."""
        try:
            return int((self.dir / "node.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{self.api}{path}", auth=AUTH, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def close_connections(self) -> int:
        """Every client connection closed by the broker (as a network drop or a broker failover does)."""
        names = [c["name"] for c in self.call("GET", "/connections").json()]
        for name in names:
            with contextlib.suppress(requests.RequestException):
                self.call("DELETE", f"/connections/{quote(name, safe='')}",
                          headers={"X-Reason": "chaos: connection closed"})
        return len(names)

    def queues(self) -> dict[str, int]:
        """Messages (ready + unacked) per queue of the suite's vhost."""
        return {q["name"]: int(q.get("messages", 0) or 0)
                for q in self.call("GET", f"/queues/{self.vhost}?columns=name,messages").json()}

    def publish_raw(self, queue: str, body: str, content_type: str | None, headers: dict | None = None) -> None:
        """A message straight into `queue` (the default exchange), as a buggy or hostile publisher sends it."""
        properties = {"delivery_mode": 2, "headers": headers or {},
                      **({"content_type": content_type} if content_type else {})}
        routed = self.call("POST", f"/exchanges/{self.vhost}/amq.default/publish", json={
            "properties": properties, "routing_key": queue, "payload": body, "payload_encoding": "string"}).json()
        if not routed.get("routed"):
            raise RuntimeError(f"poison for {queue} was not routed (no such queue)")


def _alive(pid: int) -> bool:
    """Whether `pid` still runs. A killed detached node is a zombie until init reaps it, which here takes
    up to 2 s: it has stopped running (its sockets are closed, its peers saw it go) and counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class BrokerCluster:
    """Three RabbitMQ nodes clustered on this machine (each its own name, ports and data directory, one
    Erlang cookie), as the RabbitmqCluster of deploy/k8s runs them: `kill(i)` SIGKILLs node i's Erlang
    VM (a machine lost), `restart(i)` starts it again on its data and it rejoins. Clients are given
    every node's URI (kombu fails over from one to the next), as a Kubernetes Service spreads them."""

    def __init__(self, base_dir: Path, size: int = 3):
        home = base_dir / "rabbitmq-home"
        self.nodes = [Broker(base_dir, f"cluster{i}", home) for i in range(1, size + 1)]
        self.home = home
        self.vhost = self.nodes[0].vhost

    @property
    def amqp_uri(self) -> str:
        return ";".join(node.amqp_uri for node in self.nodes)

    @property
    def node(self) -> str:
        return ", ".join(node.node for node in self.nodes)

    @property
    def port(self) -> str:
        return ", ".join(str(node.port) for node in self.nodes)

    def start(self, timeout: float = 120) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        for node in self.nodes:  # the VMs boot side by side
            node.launch()
        for node in self.nodes:
            node._await(timeout)
        first = self.nodes[0]
        # One after the other: two nodes joining at once left Mnesia "inconsistent_database, bad_decision"
        # between them (seen once in a suite run), and after the first node's loss the two survivors
        # disagreed — the workflow's calls went unanswered for minutes. A cluster's operator joins one
        # node at a time too.
        for node in self.nodes[1:]:
            node.join(first.node)
        first.open_vhost()
        running = first.call("GET", "/nodes").json()
        if sorted(n["name"] for n in running if n.get("running")) != sorted(n.node for n in self.nodes):
            raise RuntimeError(f"the cluster did not form: {[(n['name'], n.get('running')) for n in running]}")
        split = [node.node for node in self.nodes
                 if any("inconsistent_database" in log.read_text(errors="replace")
                        for log in (node.dir / "log").glob("*.log"))]
        if split:  # its nodes disagree from the start: whatever fails later would be this, not the test's fault
            raise RuntimeError(f"the cluster formed with Mnesia inconsistent on {', '.join(split)}")

    def kill(self, index: int) -> None:
        """Node `index` lost at once: its Erlang VM SIGKILLed (no goodbye to its clients or its peers)."""
        pid = self.nodes[index].pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
        raise RuntimeError(f"node {self.nodes[index].node} (pid {pid}) did not die")

    def restart(self, index: int, timeout: float = 120) -> None:
        """Node `index` started again on its own data: it rejoins the cluster, its queue replicas catch up."""
        node = self.nodes[index]
        with contextlib.suppress(FileNotFoundError):
            (node.dir / "node.pid").unlink()
        node.launch()
        node._await(timeout)
        node.ctl("await_startup")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """The management API of the first node that answers."""
        error: Exception | None = None
        for node in self.nodes:
            try:
                return node.call(method, path, **kwargs)
            except requests.ConnectionError as exc:
                error = exc
        raise error

    def queues(self) -> dict[str, int]:
        return {q["name"]: int(q.get("messages", 0) or 0)
                for q in self.call("GET", f"/queues/{self.vhost}?columns=name,messages").json()}

    def leaders(self) -> dict[str, str]:
        """The node each quorum queue's leader is on."""
        return {q["name"]: q["leader"] for q in self.call("GET", f"/queues/{self.vhost}?columns=name,leader").json()
                if q.get("leader")}

    def queue_types(self) -> dict[str, str]:
        return {q["name"]: q["type"] for q in self.call("GET", f"/queues/{self.vhost}?columns=name,type").json()}
