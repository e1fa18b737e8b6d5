"""The Throttle stage over the in-memory limiter on a frozen clock: a type's rate limit per
user, counted once per notification, throttling only outbound deliveries, never a critical
type's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tocsin.clock import FrozenClock
from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision, NotificationDraft
from tocsin.domain.rates import Rate
from tocsin.domain.types import NotificationType
from tocsin.limits.base import Verdict
from tocsin.limits.memory import MemoryRateLimiter
from tocsin.pipeline.base import Publish, PublishRequest
from tocsin.pipeline.throttle import Throttle

HOURLY = NotificationType(name="digest", title="Digest", rate_limit=Rate(10, 3600))


def sending(**channels: ChannelDecision) -> dict[str, ChannelDecision]:
    return {LIVE_CHANNEL: ChannelDecision.live(), **channels}


def publish_of(kind: NotificationType | None, clock: FrozenClock,
               channels: dict[str, dict[str, ChannelDecision]]) -> Publish:
    """One notification of `kind` to each user, with the channel decisions Routing and
    QuietHours would have made."""
    return Publish(
        request=PublishRequest(user_ids=list(channels), type=HOURLY.name, data={}),
        publisher="p", now=clock.now(), kind=kind,
        drafts=[NotificationDraft(user_id=user, type=HOURLY.name, data={},
                                  channels=dict(decisions))
                for user, decisions in channels.items()])


async def test_the_eleventh_email_in_the_window_is_throttled_and_the_inbox_still_gets_it(
        ) -> None:
    clock = FrozenClock()
    stage = Throttle(MemoryRateLimiter(clock))
    outcomes = []
    for _ in range(11):
        publish = publish_of(HOURLY, clock, {"ada": sending(email=ChannelDecision.queued())})
        await stage(publish)
        (draft,) = publish.drafts
        assert draft.status == "created" and draft.channels[LIVE_CHANNEL].outcome == "delivered"
        outcomes.append(draft.channels["email"].outcome)
        clock.advance(60)
    assert outcomes == ["queued"] * 10 + ["throttled"]
    # Another user, and another type for the same user, have windows of their own.
    other = publish_of(HOURLY, clock, {"bob": sending(email=ChannelDecision.queued())})
    await stage(other)
    assert other.drafts[0].channels["email"].outcome == "queued"
    weekly = NotificationType(name="weekly", title="W", rate_limit=Rate(1, 3600))
    different = publish_of(weekly, clock, {"ada": sending(email=ChannelDecision.queued())})
    different.drafts[0].type = weekly.name
    await stage(different)
    assert different.drafts[0].channels["email"].outcome == "queued"


async def test_once_the_window_passed_the_user_is_emailed_again() -> None:
    clock = FrozenClock()
    stage = Throttle(MemoryRateLimiter(clock))
    for _ in range(10):
        await stage(publish_of(HOURLY, clock, {"ada": sending(email=ChannelDecision.queued())}))
    clock.advance(3599)
    late = publish_of(HOURLY, clock, {"ada": sending(email=ChannelDecision.queued())})
    await stage(late)
    assert late.drafts[0].channels["email"].outcome == "throttled"
    clock.advance(1)  # the first ten leave the window together
    again = publish_of(HOURLY, clock, {"ada": sending(email=ChannelDecision.queued())})
    await stage(again)
    assert again.drafts[0].channels["email"].outcome == "queued"


async def test_a_critical_type_is_never_throttled() -> None:
    clock = FrozenClock()
    stage = Throttle(MemoryRateLimiter(clock))
    payment = NotificationType(name="payment", title="Paid", critical=True,
                               rate_limit=Rate(1, 3600))
    for _ in range(5):
        publish = publish_of(payment, clock, {"ada": sending(email=ChannelDecision.queued())})
        await stage(publish)
        assert publish.drafts[0].channels["email"].outcome == "queued"


async def test_one_notification_is_one_acquisition_whatever_its_channels() -> None:
    clock = FrozenClock()
    stage = Throttle(MemoryRateLimiter(clock))
    twice = NotificationType(name="digest", title="D", rate_limit=Rate(2, 3600))
    until = datetime(2030, 1, 1, 7, tzinfo=UTC) + timedelta(days=1)
    outcomes = []
    for _ in range(3):
        publish = publish_of(twice, clock, {"ada": sending(
            email=ChannelDecision.queued(), push=ChannelDecision.held("quiet_hours", until))})
        await stage(publish)
        channels = publish.drafts[0].channels
        outcomes.append((channels["email"].outcome, channels["push"].outcome))
    assert outcomes == [("queued", "held:quiet_hours")] * 2 + [("throttled", "throttled")]


async def test_what_sends_nothing_takes_nothing_from_the_limit() -> None:
    clock = FrozenClock()
    limiter = MemoryRateLimiter(clock)
    stage = Throttle(limiter)
    once = NotificationType(name="digest", title="D", rate_limit=Rate(1, 3600))
    quiet = {"ada": sending(email=ChannelDecision.dropped("suppressed:preference"))}
    for _ in range(3):  # the inbox only: nothing to throttle, nothing counted
        publish = publish_of(once, clock, quiet)
        await stage(publish)
        assert publish.drafts[0].channels["email"].outcome == "suppressed:preference"
    unlimited = NotificationType(name="digest", title="D")
    for _ in range(3):
        publish = publish_of(unlimited, clock, {"ada": sending(email=ChannelDecision.queued())})
        await stage(publish)
        assert publish.drafts[0].channels["email"].outcome == "queued"
    first = publish_of(once, clock, {"ada": sending(email=ChannelDecision.queued())})
    await stage(first)
    assert first.drafts[0].channels["email"].outcome == "queued"


class Recording(MemoryRateLimiter):
    """The in-memory limiter, noting how many keys each call asked for."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.calls: list[int] = []

    async def acquire(self, key: str, limit: int, per_seconds: float) -> Verdict:
        self.calls.append(1)
        return await super().acquire(key, limit, per_seconds)

    async def acquire_many(self, keys: Sequence[str], limit: int, per_seconds: float
                           ) -> list[Verdict]:
        self.calls.append(len(keys))
        return await super().acquire_many(keys, limit, per_seconds)


async def test_a_batch_is_acquired_in_one_call_and_each_recipient_counted_apart() -> None:
    clock = FrozenClock()
    limiter = Recording(clock)
    stage = Throttle(limiter)
    once = NotificationType(name="digest", title="D", rate_limit=Rate(1, 3600))
    users = [f"user-{n}" for n in range(1000)]
    await stage(publish_of(once, clock, {users[0]: sending(email=ChannelDecision.queued())}))
    batch = publish_of(once, clock, {
        user: sending(email=ChannelDecision.queued()) if n % 2 == 0 else sending()
        for n, user in enumerate(users)})
    await stage(batch)
    assert limiter.calls == [1, 500]  # only the recipients with an email to send
    outcomes = [draft.channels.get("email") for draft in batch.drafts]
    assert outcomes[0] == ChannelDecision.dropped("throttled")  # emailed once already
    assert all(decision == ChannelDecision.queued() for decision in outcomes[2::2])
    assert all(decision is None for decision in outcomes[1::2])
