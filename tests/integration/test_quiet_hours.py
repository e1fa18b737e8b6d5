"""Quiet hours through the API, on a frozen clock: email waits for the window's end and goes
out then, once; the inbox gets the notification at once, marked quiet; critical types are
never held; what was read in the meantime is not emailed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.problems import assert_error
from tests.support.client import Api, new_user, settings_for
from tests.support.jobs import clear_jobs, job_rows
from tests.support.services import fresh_postgres_database
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.app import create_app
from tocsin.channels.delivery import DeliveryHandler
from tocsin.channels.email import EmailChannel
from tocsin.clock import FrozenClock
from tocsin.jobs.sql import SqlJobs
from tocsin.jobs.worker import RetryPolicy, Worker
from tocsin.smtp import SmtpSettings
from tocsin.store.sql import SqlStore

PARIS = ZoneInfo("Europe/Paris")
#: 23:30 in Paris on a Wednesday in winter (UTC+1): inside a 22:00-07:00 window.
LATE = datetime(2026, 1, 14, 23, 30, tzinfo=PARIS).astimezone(UTC)
WINDOW_END = datetime(2026, 1, 15, 7, 0, tzinfo=PARIS).astimezone(UTC)
NIGHT = {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"}


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A worker claims any due delivery in the database: this module has its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(LATE)


@pytest.fixture
async def app(store: SqlStore, smtp: SmtpServer, clock: FrozenClock) -> AsyncIterator[Api]:
    await clear_jobs(store)
    settings = settings_for(store.url, smtp_url=smtp.url, worker_in_process=False)
    asgi = create_app(settings, store=store, clock=clock)
    async with asgi.router.lifespan_context(asgi), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://tocsin.test") as client:
        yield Api(client)


@pytest.fixture
def worker(store: SqlStore, smtp: SmtpServer, clock: FrozenClock) -> Worker:
    channel = EmailChannel(SmtpSettings(smtp.url, "Tocsin <n@localhost>", timeout=10))
    return Worker(SqlJobs(store.db), [DeliveryHandler(store, {"email": channel})], clock,
                  retry=RetryPolicy(max_attempts=3, base_seconds=1.0, cap_seconds=2.0),
                  lease_seconds=30, batch=50)


async def night_owl(api: Api, window: dict[str, object] | None = None) -> str:
    user = new_user("quiet")
    response = await api.client.put(f"/v1/users/{user}", headers=api.publisher,
                                    json={"email": f"{user}@example.com"})
    assert response.status_code == 200, response.text
    await api.me(user, "quiet-hours", method="PUT", json=window or NIGHT)
    return user


async def send(api: Api, user: str, type_: str = "message") -> dict[str, object]:
    receipts = await api.publish(user, type=type_, data={"actor": "Alice"}, title=None)
    receipt: dict[str, object] = receipts["notifications"][0]
    return receipt


async def test_email_waits_for_the_end_of_the_window_and_goes_out_once(
        app: Api, store: SqlStore, worker: Worker, smtp: SmtpServer, clock: FrozenClock
) -> None:
    user = await night_owl(app)
    receipt = await send(app, user)
    assert receipt["channels"] == {"web": "delivered", "email": "held:quiet_hours"}
    # The inbox has it now, marked quiet.
    [item] = (await app.me(user, "notifications"))["notifications"]
    assert item["id"] == receipt["id"] and item["quiet"] is True
    [job] = await job_rows(store, [uuid.UUID(str(receipt["id"]))])
    assert job.available_at == WINDOW_END

    assert await worker.run_once() == 0  # nothing is due during the night
    clock.advance((WINDOW_END - LATE).total_seconds() - 1)
    assert await worker.run_once() == 0
    clock.advance(1)
    assert await worker.run_once() == 1
    assert [m.email["To"] for m in await smtp.until_messages(1)] == [f"{user}@example.com"]
    assert await worker.run_once() == 0
    [job] = await job_rows(store, [uuid.UUID(str(receipt["id"]))])
    assert (job.status, job.attempts) == ("done", 1)


async def test_read_before_the_window_ends_is_not_emailed(
        app: Api, store: SqlStore, worker: Worker, smtp: SmtpServer, clock: FrozenClock
) -> None:
    user = await night_owl(app)
    receipt = await send(app, user)
    await app.me(user, f"notifications/{receipt['id']}/read", method="POST")
    clock.advance((WINDOW_END - LATE).total_seconds())
    assert await worker.run_once() == 1
    [job] = await job_rows(store, [uuid.UUID(str(receipt["id"]))])
    assert (job.status, job.last_error) == ("skipped", "read")
    assert smtp.messages == []


async def test_a_critical_type_is_never_held(app: Api, store: SqlStore, worker: Worker,
                                             smtp: SmtpServer) -> None:
    user = await night_owl(app)
    receipt = await send(app, user, type_="payment")
    assert receipt["channels"] == {"web": "delivered", "email": "queued"}
    [item] = (await app.me(user, "notifications"))["notifications"]
    assert item["quiet"] is False
    assert await worker.run_once() == 1
    assert len(await smtp.until_messages(1)) == 1


async def test_outside_the_window_nothing_is_held(app: Api) -> None:
    user = await night_owl(app, {"start": "09:00", "end": "17:00", "timezone": "Europe/Paris"})
    receipt = await send(app, user)
    assert receipt["channels"] == {"web": "delivered", "email": "queued"}


async def test_days_limit_the_window_to_the_nights_it_starts(app: Api) -> None:
    # LATE is a Wednesday night: a window on weekends only does not hold it.
    weekend = await night_owl(app, {**NIGHT, "days": ["sat", "sun"]})
    assert (await send(app, weekend))["channels"] == {"web": "delivered", "email": "queued"}
    wednesday = await night_owl(app, {**NIGHT, "days": ["wed"]})
    assert (await send(app, wednesday))["channels"] == {
        "web": "delivered", "email": "held:quiet_hours"}


async def test_put_get_delete_and_the_profile_s_zone_by_default(app: Api) -> None:
    user = new_user("quiet")
    await app.client.put(f"/v1/users/{user}", headers=app.publisher,
                         json={"timezone": "America/New_York"})
    window = await app.me(user, "quiet-hours", method="PUT",
                          json={"start": "23:00", "end": "06:30"})
    assert window == {"start": "23:00", "end": "06:30", "timezone": "America/New_York",
                      "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    assert await app.me(user, "quiet-hours") == window
    assert (await app.me(user, "preferences"))["quiet_hours"] == window
    cleared = await app.client.delete("/v1/me/quiet-hours", headers=app.user(user))
    assert cleared.status_code == 204
    assert_error(await app.client.get("/v1/me/quiet-hours", headers=app.user(user)),
                 404, "not_found")
    # The publisher's routes do the same for any user.
    put = await app.client.put(f"/v1/users/{user}/quiet-hours", headers=app.publisher,
                               json=NIGHT)
    assert put.status_code == 200 and put.json()["timezone"] == "Europe/Paris"
    assert (await app.me(user, "quiet-hours"))["start"] == "22:00"


async def test_the_window_end_follows_the_clocks_changing(
        app: Api, store: SqlStore, clock: FrozenClock) -> None:
    # The night Paris goes to summer time (29 March 2026, 02:00 -> 03:00): a 22:00-07:00
    # window lasts eight hours, and ends at 05:00 UTC, not 06:00.
    clock.advance((datetime(2026, 3, 28, 23, 0, tzinfo=PARIS).astimezone(UTC) - LATE)
                  .total_seconds())
    user = await night_owl(app)
    receipt = await send(app, user)
    [job] = await job_rows(store, [uuid.UUID(str(receipt["id"]))])
    assert job.available_at == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert job.available_at - datetime(2026, 3, 28, 21, 0, tzinfo=UTC) == timedelta(hours=8)
