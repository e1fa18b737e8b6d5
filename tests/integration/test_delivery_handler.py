"""DeliveryHandler over a real store (SQLite, PostgreSQL) and a real SMTP server: what it loads
for each delivery job, how each way a send can end becomes the job's outcome, and the one
Message-ID of a delivery however often it is attempted."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import pytest

from tests.support.client import new_user
from tests.support.jobs import ids_of, publish_email
from tests.support.smtp import DROP, Command, SmtpServer, smtp_server
from tocsin.channels.base import Channel, Delivery
from tocsin.channels.delivery import DeliveryHandler
from tocsin.channels.email import EmailChannel
from tocsin.domain.models import UserProfile
from tocsin.jobs.base import DELIVERY, Job
from tocsin.jobs.worker import Done, GiveUp, Outcome, Skipped, TryAgain
from tocsin.smtp import SmtpSettings
from tocsin.store.sql import SqlStore

SENDER = "Tocsin <notifications@tocsin.test>"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def email(smtp: SmtpServer) -> EmailChannel:
    return EmailChannel(SmtpSettings(smtp.url, SENDER, timeout=10))


class Reports:
    """The `report` a handler is given: every outcome, in the order reported."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[uuid.UUID, Outcome]] = []

    async def __call__(self, job: Job, outcome: Outcome) -> None:
        self.outcomes.append((job.id, outcome))


async def run(handler: DeliveryHandler, *jobs: Job) -> dict[uuid.UUID, Outcome]:
    """Run one batch; each job's outcome, every job reported exactly once."""
    reports = Reports()
    await handler.run(list(jobs), reports)
    reported = [job_id for job_id, _ in reports.outcomes]
    assert sorted(reported) == sorted(job.id for job in jobs), reports.outcomes
    return dict(reports.outcomes)


def job_for(notification_id: uuid.UUID | None, user_id: str, *, channel: str = "email",
            attempts: int = 1, job_id: uuid.UUID | None = None, owner: str = "worker-a"
            ) -> Job:
    """A delivery job as the worker hands it over once claimed."""
    return Job(id=job_id or uuid.uuid4(), kind=DELIVERY, attempts=attempts, lease_owner=owner,
               due_at=NOW, notification_id=notification_id, user_id=user_id, channel=channel)


async def published(store: SqlStore, user: str, *, email: str | None = None,
                    **fields: Any) -> Job:
    """Publish to `user` (with this address, if any) and return their delivery job."""
    if email is not None:
        await store.put_user(UserProfile(id=user, email=email), NOW)
    [notification_id] = ids_of(await publish_email(store, [user], NOW, **fields))
    return job_for(notification_id, user)


def parts(message: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        found[part.get_content_type()] = str(part.get_content())
    return found


async def test_a_delivery_is_sent_with_its_notification_and_the_user_s_profile(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    user = new_user("dh")
    await store.put_user(UserProfile(id=user, email="ada@example.com", name="Ada Lovelace",
                                     locale="en-GB", timezone="Europe/London"), NOW)
    job = await published(store, user, title="Build failed", message="main is red",
                          action_url="https://ci.example.com/7", priority="high")
    assert await run(DeliveryHandler(store, {"email": email}), job) == {job.id: Done()}
    [received] = smtp.messages
    assert received.rcpt_tos == ("ada@example.com",)
    message = received.email
    assert getaddresses([str(message["To"])]) == [("Ada Lovelace", "ada@example.com")]
    assert message["Subject"] == "Build failed"
    assert message["X-Tocsin-Notification"] == str(job.notification_id)
    assert message["Message-ID"] == f"<{job.id}@tocsin>"
    for text in parts(message).values():
        assert "main is red" in text and "https://ci.example.com/7" in text


async def test_what_a_delivery_needs_is_read_whole_with_an_empty_profile_for_a_stranger(
    store: SqlStore
) -> None:
    """The handler's one read: every field of each notification, and its user's profile."""
    known, stranger = new_user("dh"), new_user("dh")
    profile = UserProfile(id=known, email="ada@example.com", name="Ada Lovelace",
                          locale="en-GB", timezone="Europe/London")
    await store.put_user(profile, NOW)
    expires = NOW + timedelta(days=7)
    first = await publish_email(store, [known], NOW, title="Build failed",
                                message="main is red", action_url="https://ci.example.com/7",
                                priority="high", data={"build": 7, "tags": ["ci"]},
                                expires_at=expires)
    second = await publish_email(store, [known, stranger], NOW + timedelta(seconds=1))
    missing = uuid.uuid4()
    wanted = [*ids_of(first), *ids_of(second), missing]

    loaded = await store.notifications_with_profiles(wanted)
    assert set(loaded) == set(wanted) - {missing}
    for stored in [*first.stored, *second.stored]:
        notification, user = loaded[stored.id]
        assert notification == stored  # every field, as the publish committed it
        assert user == (profile if stored.user_id == known else UserProfile(id=stranger))
    notification, _ = loaded[first.stored[0].id]
    assert (notification.seq, notification.priority, notification.data) == \
        (1, "high", {"build": 7, "tags": ["ci"]})
    assert (notification.expires_at, notification.read) == (expires, False)
    assert await store.notifications_with_profiles([]) == {}


async def test_a_user_without_a_profile_is_skipped_and_nothing_is_sent(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    job = await published(store, new_user("dh"))
    assert await run(DeliveryHandler(store, {"email": email}), job) == \
        {job.id: Skipped("the user has no email address")}
    assert smtp.commands == []


@pytest.mark.parametrize(("command", "reply", "expected"), [
    ("RCPT", "450 4.2.0 mailbox busy", TryAgain),
    ("DATA", "421 4.3.0 try later", TryAgain),
    ("RCPT", DROP, TryAgain),
    ("RCPT", "550 5.1.1 no such user", GiveUp),
    ("DATA", "554 5.6.0 message refused", GiveUp),
])
async def test_an_smtp_failure_becomes_try_again_or_give_up(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel, command: Command, reply: str,
    expected: type[TryAgain | GiveUp],
) -> None:
    job = await published(store, new_user("dh"), email="ada@example.com")
    smtp.fail(command, reply)
    outcome = (await run(DeliveryHandler(store, {"email": email}), job))[job.id]
    assert type(outcome) is expected, outcome
    assert isinstance(outcome, TryAgain | GiveUp)
    if reply != DROP:
        assert reply.split()[0] in outcome.error  # the server's reply, for the dead letter
    if isinstance(outcome, TryAgain):
        assert outcome.not_before is None  # the policy decides when
    assert smtp.messages == []


async def test_every_attempt_of_one_delivery_carries_the_same_message_id(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    first = await published(store, new_user("dh"), email="ada@example.com")
    handler = DeliveryHandler(store, {"email": email})
    smtp.fail("DATA", "450 4.2.0 mailbox busy", times=2)
    outcomes = [await run(handler, first)]
    # Later attempts, by another worker: the same job, claimed again.
    for attempts in (2, 3):
        again = job_for(first.notification_id, str(first.user_id), attempts=attempts,
                        job_id=first.id, owner="worker-b")
        outcomes.append(await run(handler, again))
    assert [type(outcome[first.id]) for outcome in outcomes] == [TryAgain, TryAgain, Done]
    attempts_seen = smtp.data_attempts
    assert [reply for reply, _ in attempts_seen] == ["450 4.2.0 mailbox busy"] * 2 + ["250"]
    assert {message.message_id for _, message in attempts_seen} == {f"<{first.id}@tocsin>"}
    assert len(smtp.messages) == 1


class Broken:
    """A channel with a bug: it raises what no channel may (SMTP cannot make EmailChannel do
    this)."""

    name = "email"

    async def send(self, delivery: Delivery) -> None:
        raise RuntimeError(f"bug in the channel, sending {delivery.id}")

    async def close(self) -> None:
        return None


async def test_an_unexpected_exception_of_a_channel_is_tried_again_and_logged(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    job = await published(store, new_user("dh"), email="ada@example.com")
    broken: Channel = Broken()
    with caplog.at_level(logging.ERROR, logger="tocsin.worker"):
        outcomes = await run(DeliveryHandler(store, {"email": broken}), job)
    assert outcomes == {job.id: TryAgain(f"RuntimeError: bug in the channel, sending {job.id}")}
    [record] = [r for r in caplog.records if r.name == "tocsin.worker"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "channel email failed unexpectedly"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_a_channel_this_worker_lacks_gives_up(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    job = await published(store, new_user("dh"), email="ada@example.com")
    assert await run(DeliveryHandler(store, {}), job) == \
        {job.id: GiveUp("channel 'email' is not configured")}
    push = job_for(job.notification_id, str(job.user_id), channel="push")
    assert await run(DeliveryHandler(store, {"email": email}), push) == \
        {push.id: GiveUp("channel 'push' is not configured")}
    assert smtp.commands == []


async def test_a_notification_that_no_longer_exists_is_skipped(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    gone = job_for(uuid.uuid4(), new_user("dh"))
    nameless = job_for(None, new_user("dh"))
    assert await run(DeliveryHandler(store, {"email": email}), gone, nameless) == {
        gone.id: Skipped("the notification no longer exists"),
        nameless.id: Skipped("the notification no longer exists")}
    assert smtp.commands == []


async def test_each_job_of_a_batch_gets_its_own_outcome(
    store: SqlStore, smtp: SmtpServer, email: EmailChannel
) -> None:
    sent = await published(store, new_user("dh"), email="grace@example.com")
    unaddressed = await published(store, new_user("dh"))
    gone = job_for(uuid.uuid4(), new_user("dh"))
    elsewhere = job_for(sent.notification_id, str(sent.user_id), channel="push")
    outcomes = await run(DeliveryHandler(store, {"email": email}),
                         sent, unaddressed, gone, elsewhere)
    assert outcomes == {
        sent.id: Done(),
        unaddressed.id: Skipped("the user has no email address"),
        gone.id: Skipped("the notification no longer exists"),
        elsewhere.id: GiveUp("channel 'push' is not configured"),
    }
    [received] = smtp.messages
    assert received.rcpt_tos == ("grace@example.com",)
    assert received.message_id == f"<{sent.id}@tocsin>"
