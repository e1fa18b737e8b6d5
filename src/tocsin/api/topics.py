"""Topics: the publisher's /v1/topics/{topic}… (subscribers, options) and the user's own
/v1/me/topics/{topic} (subscribe, unsubscribe, where the topic allows it).

Removing a subscriber is idempotent: 204 whether or not they were subscribed, so a DELETE
retried after a lost answer succeeds like the first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tocsin.api.deps import PublisherDep, ServicesDep, UserDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.schemas import (
    SubscriberPage,
    SubscribersAdded,
    SubscribersBody,
    TopicBody,
    TopicOut,
)
from tocsin.domain.errors import InvalidInput
from tocsin.domain.identifiers import USER_ID_MAX_LENGTH, USER_ID_PATTERN
from tocsin.domain.topics import TOPIC_MAX_LENGTH, TOPIC_PATTERN

publisher = APIRouter(prefix="/v1/topics/{topic}", tags=["publisher"],
                      responses=errors(*AUTHENTICATED))
me = APIRouter(prefix="/v1/me/topics", tags=["user"], responses=errors(*AUTHENTICATED))

TopicPath = Annotated[str, Path(min_length=1, max_length=TOPIC_MAX_LENGTH,
                                pattern=TOPIC_PATTERN)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=USER_ID_MAX_LENGTH,
                                 pattern=USER_ID_PATTERN)]
#: The longest page of subscribers.
MAX_PAGE = 1000


@publisher.put("", response_model=TopicOut, summary="Create a topic or change its options",
               responses=errors(*WITH_BODY))
async def put_topic(topic: TopicPath, body: TopicBody, svc: ServicesDep,
                    who: PublisherDep) -> TopicOut:
    found = await svc.store.put_topic(topic, body.self_subscribe, svc.clock.now())
    return TopicOut(topic=found.name, self_subscribe=found.self_subscribe)


@publisher.get("", response_model=TopicOut, summary="A topic's options",
               responses=errors(404, 422))
async def get_topic(topic: TopicPath, svc: ServicesDep, who: PublisherDep) -> TopicOut:
    found = await svc.store.get_topic(topic)
    return TopicOut(topic=found.name, self_subscribe=found.self_subscribe)


@publisher.put("/subscribers", response_model=SubscribersAdded,
               summary="Subscribe users (idempotent; creates the topic if it is new)",
               responses=errors(*WITH_BODY))
async def subscribe(topic: TopicPath, body: SubscribersBody, svc: ServicesDep,
                    who: PublisherDep) -> SubscribersAdded:
    most = svc.settings.max_batch_users
    if len(body.user_ids) > most:
        raise InvalidInput(f"at most {most} users per request, got {len(body.user_ids)}",
                           details={"field": "user_ids", "max": most})
    added = await svc.store.subscribe(topic, list(dict.fromkeys(body.user_ids)),
                                      svc.clock.now())
    return SubscribersAdded(topic=topic, added=added)


@publisher.delete("/subscribers/{user_id}", status_code=204, response_class=Response,
                  summary="Unsubscribe a user (idempotent)", responses=errors(422))
async def unsubscribe(topic: TopicPath, user_id: UserIdPath, svc: ServicesDep,
                      who: PublisherDep) -> Response:
    await svc.store.unsubscribe(topic, user_id)
    return Response(status_code=204)


@publisher.get("/subscribers", response_model=SubscriberPage,
               summary="A topic's subscribers, in user-id order", responses=errors(404, 422))
async def subscribers(
    topic: TopicPath, svc: ServicesDep, who: PublisherDep,
    cursor: Annotated[str | None, Query(min_length=1, max_length=USER_ID_MAX_LENGTH,
                                        pattern=USER_ID_PATTERN,
                                        description="`next` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> SubscriberPage:
    # One more than asked: whether another page follows, without a second query.
    found = await svc.store.subscribers(topic, after=cursor, limit=limit + 1)
    page = found[:limit]
    return SubscriberPage(user_ids=page, next=page[-1] if len(found) > limit else None)


@me.post("/{topic}", status_code=204, response_class=Response,
         summary="Subscribe myself to a topic that allows it", responses=errors(403, 404, 422))
async def subscribe_me(topic: TopicPath, svc: ServicesDep, user: UserDep) -> Response:
    await svc.store.subscribe_self(topic, user, svc.clock.now())
    return Response(status_code=204)


@me.delete("/{topic}", status_code=204, response_class=Response,
           summary="Unsubscribe myself from a topic that allows it",
           responses=errors(403, 404, 422))
async def unsubscribe_me(topic: TopicPath, svc: ServicesDep, user: UserDep) -> Response:
    await svc.store.unsubscribe_self(topic, user)
    return Response(status_code=204)
