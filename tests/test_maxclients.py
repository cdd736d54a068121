# -*- test-case-name: tests.test_maxclients -*-
"""MaxClients over real sockets: at most N served at once, the rest wait, none refused."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.servers import RunningServer, start_server
from twistedspy.http.protocol import HTTPChannel
from twistedspy.interfaces import IInfoModule, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Page, Report, Table

CLIENTS = 6
LIMIT = 2
#: long enough that all six connections are waiting while the first two are served
SLOW = 0.5


@implementer(IInfoModule, IReactorSafe)
class SlowModule:
    """
    Answers after SLOW seconds, counting how many of its requests overlap; on the
    reactor, as it answers with a Deferred and each request must start its own.
    """

    name = "slow"
    title = "Slow"
    description = "Takes its time."

    def __init__(self) -> None:
        self.running = 0
        self.most_running = 0
        self.answered = 0

    def collect(self, query: Query) -> Deferred[Page]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)

        def done() -> Page:
            self.running -= 1
            self.answered += 1
            return Report(title="Slow", tables=[Table(title="t", columns=["n"], rows=[[1]])])

        return deferLater(reactor, SLOW, done)


def read_all(client: socket.socket) -> bytes:
    """Every byte until the server closes; a reset raises ConnectionResetError."""
    with client:
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


class MaxClientsTests(TestCase):
    def start(self) -> tuple[RunningServer, SlowModule, list[int]]:
        server = start_server(self, max_clients=LIMIT)
        module = SlowModule()
        server.service.modules[module.name] = module
        factory = server.service.factory
        seen: list[int] = []
        opened = factory.connection_opened

        def counting(channel: HTTPChannel) -> None:
            opened(channel)
            seen.append(len(factory.connections))

        self.patch(factory, "connection_opened", counting)
        return server, module, seen

    async def test_burst_served_two_at_a_time(self) -> None:
        server, module, seen = self.start()
        # Connect all six before the reactor runs again: the kernel completes every
        # handshake, so all six wait in the listen backlog for the server's first accept.
        clients = []
        for n in range(CLIENTS):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            # Each its own query, so that no two share one collection.
            request = f"GET /slow?n={n} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            client.sendall(request.encode())
            clients.append(client)
        replies: list[Any] = await gatherResults([deferToThread(read_all, c) for c in clients])
        for reply in replies:
            self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200])
        self.assertEqual(module.answered, CLIENTS)
        self.assertEqual(len(seen), CLIENTS)
        self.assertEqual(max(seen), LIMIT)
        # The dispatcher runs one collection per module at a time, whatever the slots.
        self.assertEqual(module.most_running, 1)

    async def test_keep_alive_clients_wait_their_turn(self) -> None:
        # Persistent connections hold their slot until they close; the third client is
        # served only then, not refused.
        server, module, seen = self.start()
        holders = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(LIMIT)]
        for holder in holders:
            holder.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n")
        for holder in holders:
            self.addCleanup(holder.close)
            first = await deferToThread(holder.recv, 65536)
            self.assertTrue(first.startswith(b"HTTP/1.1 200 OK"), first)
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        waiting.sendall(b"GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reading = deferToThread(read_all, waiting)
        # Give the server every chance to (wrongly) take the third connection in.
        await deferLater(reactor, SLOW, lambda: None)
        self.assertEqual(len(server.service.factory.connections), LIMIT)
        self.assertEqual(module.answered, 0)
        holders[0].close()
        reply = await reading
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200])
        self.assertEqual(max(seen), LIMIT)
