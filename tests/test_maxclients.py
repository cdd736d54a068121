# -*- test-case-name: tests.test_maxclients -*-
"""
MaxClients over real sockets: at most N served at once, the rest wait, none refused; one
address at most its share of them; and connections that send no request line in time
give their slot up.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.servers import RunningServer, fetch, start_server
from twistedspy.http.protocol import ConnectionState, HTTPChannel
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
        # All the clients here come from one address: its share is the whole limit.
        server = start_server(self, max_clients=LIMIT, max_clients_per_address=LIMIT)
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


def one_byte_connections(port: int, sources: list[str]) -> list[socket.socket]:
    """A connection from each source address, each sending one byte of a request."""
    held = []
    for source in sources:
        conn = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        conn.sendall(b"G")
        held.append(conn)
    return held


class SlotHoldersTests(TestCase):
    """The finding: 64 sockets sending a byte each held every slot; a request waited 9.7 s."""

    async def test_one_address_cannot_hold_every_slot(self) -> None:
        # The request line deadline far off, so that only the per-address limit can help.
        server = start_server(self, request_line_timeout=60.0, request_timeout=60.0)
        factory = server.service.factory
        holders = one_byte_connections(server.port, ["127.0.0.1"] * factory.max_clients)
        for conn in holders:
            self.addCleanup(conn.close)
        while len(factory.connections) < len(holders):
            await deferLater(reactor, 0.05, lambda: None)
        # Served at once from another address, while every holder is still connected.
        reply = await deferToThread(fetch, server.port, "GET", "/-/healthy", {}, b"", "127.0.0.2")
        self.assertEqual(reply.status, 200)
        while len(factory.connections) > len(holders):
            await deferLater(reactor, 0.05, lambda: None)
        share = factory.max_clients_per_address
        self.assertEqual(share, factory.max_clients // 4)
        states = [channel.state for channel in factory.connections]
        self.assertEqual(states.count(ConnectionState.READING_HEAD), share)
        self.assertEqual(states.count(ConnectionState.QUEUED), factory.max_clients - share)

    async def test_connections_without_a_request_line_give_their_slots_up(self) -> None:
        # Every slot held, each by a different address: the per-address limit cannot help.
        server = start_server(self, max_clients=4, request_line_timeout=1.0, request_timeout=60.0)
        holders = one_byte_connections(server.port, [f"127.0.0.{n}" for n in range(10, 14)])
        factory = server.service.factory
        while len(factory.connections) < len(holders):
            await deferLater(reactor, 0.05, lambda: None)
        reply = await deferToThread(fetch, server.port, "GET", "/-/healthy", {}, b"", "127.0.0.2")
        self.assertEqual(reply.status, 200)
        answers = await gatherResults([deferToThread(read_all, conn) for conn in holders])
        for answer in answers:
            self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:60])
            self.assertIn(b"request line did not arrive within 1 s", answer)
        self.assertEqual(server.journal_text().count("status=408"), len(holders))
