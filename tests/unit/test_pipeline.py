"""The publish pipeline's stages one by one, and the pipeline around them: stages in order,
one commit, announcers only after it (never for a replay), and reads through one place.

The store is a real SQLite file: what the pipeline commits is checked where it lands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.db import row_counts
from tocsin.clock import FrozenClock
from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision, NotificationDraft, PublishOutcome
from tocsin.domain.errors import InvalidInput, NotFound
from tocsin.domain.models import ReadChange
from tocsin.pipeline.announcers import WorkerWake
from tocsin.pipeline.base import Publish, PublishRequest
from tocsin.pipeline.pipeline import PublishPipeline
from tocsin.pipeline.reads import Reads
from tocsin.pipeline.routing import Routing
from tocsin.pipeline.validation import Validation
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def publish_of(request: PublishRequest) -> Publish:
    return Publish(request=request, publisher="p", now=NOW, drafts=[
        NotificationDraft(user_id=user, type=request.type, data=request.data)
        for user in request.user_ids])


def request(**fields: object) -> PublishRequest:
    values: dict[str, object] = {"user_ids": ["ada"], "type": "comment", "data": {}}
    values.update(fields)
    return PublishRequest(**values)  # type: ignore[arg-type]


# -- stages ------------------------------------------------------------------------------------

ROUTING = Routing(outbound={"email"})
VALIDATION = Validation(max_batch_users=3, channels={"web", "email"})


@pytest.mark.parametrize(("fields", "says", "field"), [
    ({"user_ids": []}, "non-empty user_ids", None),
    ({"user_ids": ["a", "b", "c", "d"]}, "at most 3 users", "user_ids"),
    ({"user_ids": ["a", "b", "a"]}, "more than once", "user_ids"),
    ({"channels": ["web", "push"]}, "push not available", "channels"),
    ({"expires_at": NOW}, "in the past", "expires_at"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "in the past", "expires_at"),
])
async def test_validation_refuses_what_the_schema_cannot_see(fields: dict[str, object],
                                                             says: str, field: str | None
                                                             ) -> None:
    with pytest.raises(InvalidInput) as refused:
        await VALIDATION(publish_of(request(**fields)))
    assert says in refused.value.message
    if field is not None:
        assert refused.value.details["field"] == field


async def test_validation_passes_a_good_request_untouched() -> None:
    publish = publish_of(request(user_ids=["a", "b", "c"], channels=["web", "email"],
                                 expires_at=NOW + timedelta(seconds=1)))
    before = [(d.user_id, dict(d.channels), d.status) for d in publish.drafts]
    await VALIDATION(publish)
    assert [(d.user_id, dict(d.channels), d.status) for d in publish.drafts] == before


async def test_routing_gives_every_recipient_the_inbox_and_the_asked_channels() -> None:
    publish = publish_of(request(user_ids=["a", "b"], channels=["email", "web"]))
    await ROUTING(publish)
    for draft in publish.drafts:
        assert draft.channels == {LIVE_CHANNEL: ChannelDecision("delivered"),
                                  "email": ChannelDecision("queued")}
    # Each recipient's decisions are their own: a later stage may change one only.
    publish.drafts[0].channels["email"] = ChannelDecision.dropped("suppressed:preference")
    assert publish.drafts[1].channels["email"].enqueues
    assert publish.drafts[0].receipt_channels() == {"email": "suppressed:preference",
                                                    "web": "delivered"}


async def test_routing_without_outbound_channels_is_the_inbox_alone() -> None:
    publish = publish_of(request())
    await ROUTING(publish)
    assert publish.drafts[0].channels == {LIVE_CHANNEL: ChannelDecision.live()}


def test_what_a_decision_queues() -> None:
    until = NOW + timedelta(hours=8)
    assert ChannelDecision.queued().enqueues and ChannelDecision.queued(until).due_at == until
    held = ChannelDecision.held("quiet_hours", until)
    assert (held.outcome, held.due_at, held.enqueues) == ("held:quiet_hours", until, True)
    for dropped in ("suppressed:preference", "skipped:no_address", "throttled"):
        assert not ChannelDecision.dropped(dropped).enqueues
    assert not ChannelDecision.live().enqueues


# -- the pipeline ------------------------------------------------------------------------------

class Trace:
    """A stage and an announcer at once, recording what it saw and when."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail
        self.outcomes: list[PublishOutcome] = []
        self.changes: list[tuple[str, ReadChange]] = []

    async def __call__(self, publish: Publish) -> None:
        self.log.append(f"{self.name}: {sorted(publish.drafts[0].channels)}")

    async def published(self, outcome: PublishOutcome) -> None:
        self.log.append(f"{self.name} announced {len(outcome.stored)}")
        self.outcomes.append(outcome)
        if self.fail:
            raise RuntimeError("this announcer is broken")

    async def read_changed(self, user_id: str, change: ReadChange) -> None:
        self.changes.append((user_id, change))


async def test_stages_run_in_order_then_one_commit_then_the_announcers(store: SqlStore) -> None:
    log: list[str] = []
    before, after = Trace("before", log), Trace("after", log)
    first, second = Trace("first", log), Trace("second", log)
    pipeline = PublishPipeline(store, FrozenClock(NOW), stages=[before, ROUTING, after],
                               announcers=[first, second], idempotency_ttl_seconds=60)
    outcome = await pipeline.publish(request(channels=["web"]), publisher="p")
    assert log == ["before: []", "after: ['web']", "first announced 1", "second announced 1"]
    assert [(n.user_id, n.seq, n.created_at) for n in outcome.stored] == [("ada", 1, NOW)]
    assert first.outcomes == [outcome]
    assert outcome.notifications[0]["channels"] == {"web": "delivered"}
    assert (await row_counts(store))["notifications"] == 1


async def test_a_refusing_stage_stores_and_announces_nothing(store: SqlStore) -> None:
    log: list[str] = []
    announcer = Trace("announcer", log)
    pipeline = PublishPipeline(store, FrozenClock(NOW),
                               stages=[VALIDATION, ROUTING, Trace("later", log)],
                               announcers=[announcer], idempotency_ttl_seconds=60)
    before = await row_counts(store)
    with pytest.raises(InvalidInput):
        await pipeline.publish(request(user_ids=["a", "a"]), publisher="p")
    assert log == [] and announcer.outcomes == []
    assert await row_counts(store) == before


async def test_a_replay_is_not_announced_again(store: SqlStore) -> None:
    log: list[str] = []
    announcer = Trace("announcer", log)
    pipeline = PublishPipeline(store, FrozenClock(NOW), stages=[ROUTING],
                               announcers=[announcer], idempotency_ttl_seconds=60)
    first = await pipeline.publish(request(), publisher="p", idempotency_key="k",
                                   payload={"same": "body"})
    again = await pipeline.publish(request(), publisher="p", idempotency_key="k",
                                   payload={"same": "body"})
    assert again.replayed and again.notifications == first.notifications
    assert announcer.outcomes == [first]


async def test_a_failing_announcer_fails_nothing_and_the_rest_still_run(
        store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    broken, healthy = Trace("broken", log, fail=True), Trace("healthy", log)
    pipeline = PublishPipeline(store, FrozenClock(NOW), stages=[ROUTING],
                               announcers=[broken, healthy], idempotency_ttl_seconds=60)
    outcome = await pipeline.publish(request(), publisher="p")
    assert healthy.outcomes == [outcome]
    assert "this announcer is broken" in caplog.text
    assert (await store.unread_count("ada")).count == 1


async def test_the_worker_is_woken_only_when_deliveries_were_queued(store: SqlStore) -> None:
    wakes: list[int] = []
    pipeline = PublishPipeline(store, FrozenClock(NOW), stages=[ROUTING],
                               announcers=[WorkerWake(lambda: wakes.append(1))],
                               idempotency_ttl_seconds=60)
    await pipeline.publish(request(), publisher="p")
    assert wakes == []
    outcome = await pipeline.publish(request(user_ids=["a", "b"], channels=["web", "email"]),
                                     publisher="p")
    assert outcome.queued == 2 and wakes == [1]
    assert [r["channels"] for r in outcome.notifications] == [
        {"email": "queued", "web": "delivered"}] * 2


async def test_reads_change_the_store_then_announce_only_real_changes(store: SqlStore) -> None:
    clock = FrozenClock(NOW)
    pipeline = PublishPipeline(store, clock, stages=[ROUTING], announcers=[],
                               idempotency_ttl_seconds=60)
    outcome = await pipeline.publish(request(user_ids=["ada"]), publisher="p")
    await pipeline.publish(request(user_ids=["ada"]), publisher="p")
    announcer = Trace("announcer", [])
    reads = Reads(store, clock, [announcer])
    first = outcome.stored[0].id
    change = await reads.mark_read("ada", first)
    assert change.ids == [first] and change.unread.count == 1
    assert (await store.get_notification("ada", first)).read_at == NOW
    again = await reads.mark_read("ada", first)  # nothing changes: nothing to announce
    assert again.ids == []
    everything = await reads.mark_all_read("ada")
    assert len(everything.ids) == 1 and everything.up_to == 2 and everything.unread.count == 0
    assert [(user, c.ids) for user, c in announcer.changes] == [
        ("ada", [first]), ("ada", everything.ids)]
    with pytest.raises(NotFound):
        await reads.mark_read("ada", uuid.uuid4())
