"""The official Svix Python SDK, unchanged, against Herald."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook
from svix.api import (
    AppPortalAccessIn,
    ApplicationIn,
    EndpointHeadersIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EventTypeIn,
    MessageIn,
    MessageAttemptListByMsgOptions,
    MessageListOptions,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import RecoverIn

from conftest import TOKEN, body_json


def client(url):
    return Svix(TOKEN, SvixOptions(server_url=url))


def eventually(check, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_sdk_end_to_end(herald, receiver):
    svix = client(herald)
    svix.health.get()

    app = svix.application.create(ApplicationIn(name="Acme", uid="acme", metadata={"plan": "gold"}))
    assert app.id.startswith("app_")
    assert svix.application.get("acme").id == app.id
    same = svix.application.get_or_create(ApplicationIn(name="Acme", uid="acme"))
    assert same.id == app.id

    svix.event_type.create(EventTypeIn(name="order.created", description="An order was created",
                                       schemas={"1": {"type": "object"}}))
    assert svix.event_type.get("order.created").schemas == {"1": {"type": "object"}}

    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url + "/sdk", event_types=["order.created"],
                                                 headers={"X-Partner": "p1"}, description="main"))
    assert ep.description == "main"
    assert svix.endpoint.get_headers(app.id, ep.id).headers == {"X-Partner": "p1"}
    secret = svix.endpoint.get_secret(app.id, ep.id).key

    msg = svix.message.create(app.id, MessageIn(event_type="order.created", payload={"id": "o-1", "total": 12.5},
                                                event_id="order-1"))
    assert msg.id.startswith("msg_")
    got = receiver.wait_for("/sdk", 1)[0]
    # Independent verification with the Standard Webhooks library.
    payload = Webhook(secret).verify(got["body"], got["headers"])
    assert payload == {"id": "o-1", "total": 12.5}
    assert got["headers"]["x-partner"] == "p1"
    assert got["headers"]["webhook-id"] == msg.id

    fetched = svix.message.get(app.id, "order-1")
    assert fetched.id == msg.id
    listed = svix.message.list(app.id, MessageListOptions(event_types=["order.created", "x.y"], with_content=True))
    assert [m.id for m in listed.data] == [msg.id]
    assert listed.data[0].payload == {"id": "o-1", "total": 12.5}

    attempts = eventually(lambda: svix.message_attempt.list_by_msg(app.id, msg.id).data)
    assert attempts[0].response_status_code == 200
    assert attempts[0].status == 0
    destinations = svix.message_attempt.list_attempted_destinations(app.id, msg.id)
    assert [d.id for d in destinations.data] == [ep.id]
    attempted = svix.message_attempt.list_attempted_messages(app.id, ep.id)
    assert [m.id for m in attempted.data] == [msg.id]

    # Rotation: the SDK reads the new secret from the answer; both keys verify during grace.
    rotated = svix.endpoint.rotate_secret(app.id, ep.id, EndpointSecretRotateIn())
    assert rotated.key != secret
    assert svix.endpoint.get_secret(app.id, ep.id).key == rotated.key
    svix.message_attempt.resend(app.id, msg.id, ep.id)
    resent = receiver.wait_for("/sdk", 2)[1]
    Webhook(secret).verify(resent["body"], resent["headers"])
    Webhook(rotated.key).verify(resent["body"], resent["headers"])

    svix.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=True))
    assert svix.endpoint.get(app.id, ep.id).disabled is True
    svix.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=False))
    svix.endpoint.set_headers(app.id, ep.id, EndpointHeadersIn(headers={"X-New": "1"}))
    assert svix.endpoint.get_headers(app.id, ep.id).headers == {"X-New": "1"}

    # The resent attempt reached the receiver; its record may still be on its way.
    stats = eventually(lambda: (s := svix.endpoint.get_stats(app.id, ep.id)).success >= 1 and s)
    assert stats.success >= 1

    svix.endpoint.recover(app.id, ep.id, RecoverIn(since=datetime.now(timezone.utc) - timedelta(hours=1)))

    svix.endpoint.delete(app.id, ep.id)
    svix.application.delete(app.id)
    with pytest.raises(HttpError) as err:
        svix.application.get(app.id)
    assert err.value.status_code == 404


def test_sdk_errors(herald):
    svix = client(herald)
    app = svix.application.create(ApplicationIn(name="Acme"))
    with pytest.raises(HTTPValidationError) as err:
        svix.endpoint.create(app.id, EndpointIn(url="not a url"))
    assert err.value.status_code == 422
    assert err.value.detail[0].loc == ["body", "url"]
    with pytest.raises(HttpError) as err:
        Svix("wrong-token", SvixOptions(server_url=herald)).application.list()
    assert err.value.status_code == 401
    svix.message.create(app.id, MessageIn(event_type="a.b", payload={}, event_id="e1"))
    with pytest.raises(HttpError) as err:
        svix.message.create(app.id, MessageIn(event_type="a.b", payload={}, event_id="e1"))
    assert err.value.status_code == 409


def test_sdk_retry_is_recorded(herald, receiver):
    svix = client(herald)
    app = svix.application.create(ApplicationIn(name="Acme"))
    ep = svix.endpoint.create(app.id, EndpointIn(url=receiver.url + "/flaky"))
    receiver.script = [500]
    msg = svix.message.create(app.id, MessageIn(event_type="a.b", payload={"n": 1}))
    receiver.wait_for("/flaky", 2)
    attempts = eventually(
        lambda: (lambda d: d if len(d) == 2 else None)(
            svix.message_attempt.list_by_msg(app.id, msg.id, MessageAttemptListByMsgOptions(endpoint_id=ep.id)).data
        )
    )
    assert sorted(a.response_status_code for a in attempts) == [200, 500]
    assert body_json(receiver.requests[0]) == {"n": 1}


def test_sdk_app_portal_token_is_limited_to_its_application(herald, receiver):
    svix = client(herald)
    mine = svix.application.create(ApplicationIn(name="Mine", uid="mine"))
    svix.application.create(ApplicationIn(name="Theirs", uid="theirs"))
    access = svix.authentication.app_portal_access("mine", AppPortalAccessIn())
    assert access.token.startswith("appsk_")
    tenant = Svix(access.token, SvixOptions(server_url=herald))
    tenant.endpoint.create("mine", EndpointIn(url=receiver.url + "/tenant"))
    assert len(tenant.endpoint.list(mine.id).data) == 1
    with pytest.raises(HttpError) as err:
        tenant.endpoint.list("theirs")
    assert err.value.status_code == 404
    with pytest.raises(HttpError) as err:
        tenant.application.list()
    assert err.value.status_code == 403
    tenant.authentication.logout()
    with pytest.raises(HttpError) as err:
        tenant.endpoint.list("mine")
    assert err.value.status_code == 401
