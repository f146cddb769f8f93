"""Fixtures of the alert tests: a fake Slack webhook, an SMTP server, a committed case and
listeners built against the test's own database (``fresh_db_url``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.alerts.fakes import FakeSlack, make_case, set_rules
from workers.alerts.listener import Listener, ListenerConfig
from workers.alerts.models import SinkName
from workers.alerts.retry import RetryPolicy
from workers.alerts.sinks import EmailSink, QueueSink, Sink, SlackSink

SLACK_RULE = {"name": "all_to_slack", "sinks": ["slack"]}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


class RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's own database."""
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def case_id(conn: psycopg.Connection[Any]) -> UUID:
    """A committed tier0 case (case number CV-TEST-1, balance 12,500, stage bank_levy) and
    one rule sending every event to Slack."""
    set_rules(conn, SLACK_RULE)
    return make_case(conn, case_number="CV-TEST-1")


class Listeners:
    """Builds in-process listeners with fast retries; runs ``loop()`` in threads; stops and
    closes everything at teardown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[Listener] = []
        self.threads: list[threading.Thread] = []

    def make(
        self,
        *,
        slack: FakeSlack | None = None,
        email: EmailSink | None = None,
        name: str = "test-listener",
        max_attempts: int = 5,
        url: str | None = None,
        **config: Any,
    ) -> Listener:
        sinks: dict[SinkName, Sink] = {"queue": QueueSink()}
        if slack is not None:
            sinks["slack"] = SlackSink(slack.url, timeout=5)
        if email is not None:
            sinks["email"] = email
        settings = {
            "name": name,
            "retry": RetryPolicy(max_attempts=max_attempts, base_seconds=0.01, max_seconds=0.05),
            "sweep_interval": 0.5,
            "idle_wait": 0.05,
            **config,
        }
        listener = Listener(url or self.url, sinks, ListenerConfig(**settings))
        self.made.append(listener)
        return listener

    def start(self, listener: Listener) -> threading.Thread:
        """Run ``listener.loop()`` in a thread; returns once it is ready."""
        thread = threading.Thread(target=listener.loop, name=listener.config.name, daemon=True)
        thread.start()
        self.threads.append(thread)
        assert listener.ready.wait(30), "listener did not become ready"
        return thread

    def close(self) -> None:
        for listener in self.made:
            listener.stop()
        for thread in self.threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        for listener in self.made:
            listener.close()


@pytest.fixture
def listeners(fresh_db_url: str) -> Iterator[Listeners]:
    helper = Listeners(fresh_db_url)
    yield helper
    helper.close()
