"""POST /api/v1/webhooks/cvat: CVAT's signed deliveries start the trainings the config's rules name, once each."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from cvatflow.api import launch
from cvatflow.api.auth import unauthorized
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.models import ErrorBody, WebhookAnswer
from cvatflow.api.rules import RULE_LABEL, label_value
from cvatflow.api.services import Services, get_services
from cvatflow.errors import CvatflowError, NotFoundError
from cvatflow.jsonlimits import loads

log = logging.getLogger("cvatflow.api")
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
DELIVERY_LABEL = "cvatflow.io/webhook-delivery"
MAX_BODY = 10 * 1024 * 1024  # a task payload is a few kB; anything this big is not CVAT
REPLAY_WINDOW = 24 * 3600.0  # seconds; Deliveries remember keys longer than this, so nothing in it repeats


def signature(body: bytes, secret: str) -> str:
    """What CVAT sends in X-Signature-256: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, given: str | None, secret: str) -> None:
    """Raise 401 unless `given` is the body's signature; compared in constant time."""
    if not secret:
        raise unauthorized("webhooks are not enabled: set CVATFLOW_WEBHOOK_SECRET on the server, and the same "
                           "secret on the CVAT webhook")
    if not given:
        raise unauthorized("the X-Signature-256 header is missing; give the CVAT webhook a secret")
    if not hmac.compare_digest(given.strip().encode(), signature(body, secret).encode()):
        raise unauthorized("the X-Signature-256 signature does not match the body; check the webhook's secret")


def delivery_key(body: bytes, request_id: str | None = None) -> str:
    """The key of a delivery: a digest of its signed body, or of its X-Request-Id when `request_id` is given.

    CVAT's redelivery resends the same payload, and a payload carries the resource's updated_date, so two
    real events never share a body, while retries and proxies may change the request id: the body's digest
    is what marks a duplicate; a request id seen before marks one too.
    """
    source = f"request-id:{request_id}".encode() if request_id else body
    return hashlib.sha256(source).hexdigest()[:40]  # fits in a Kubernetes label value (63)


def delivery_keys(body: bytes, request_id: str | None) -> list[str]:
    """The body's key first (the one runs are labelled with), then the request id's, if any."""
    return [delivery_key(body)] + ([delivery_key(body, request_id)] if request_id else [])


def stale(payload: dict[str, Any], window: float, now: datetime | None = None) -> str | None:
    """Why a delivery is outside the replay window, or None: its newest `updated_date` (CVAT stamps every
    resource it sends) is more than `window` seconds old, or more than an hour ahead of this server's clock."""
    now = now or datetime.now(UTC)
    stamps = []
    for value in payload.values():
        stamp = value.get("updated_date") if isinstance(value, dict) else None
        if isinstance(stamp, str) and len(stamp) <= 64:
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            stamps.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if not stamps:
        return None
    newest = max(stamps)
    if newest < now - timedelta(seconds=window):
        return (f"the delivery is from {newest.isoformat()}, older than the replay window of {window / 3600:g} h; "
                f"nothing started (a replay? trigger the event again in CVAT, or raise webhookReplayWindow)")
    if newest > now + timedelta(hours=1):
        return (f"the delivery is dated {newest.isoformat()}, in the future; check the clocks of CVAT and this "
                f"server")
    return None


@router.post("/cvat", response_model=WebhookAnswer, status_code=202,
             responses={200: {"model": WebhookAnswer, "description": "A ping, an event no rule matches, "
                                                                     "or a duplicate delivery."},
                        400: {"model": ErrorBody, "description": "The body is not a CVAT event."},
                        **ERROR_RESPONSES},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "properties": {"event": {"type": "string"}},
                            "required": ["event"]}}}}})
async def cvat_webhook(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    x_signature_256: Annotated[str | None, Header(alias="X-Signature-256")] = None,
    x_request_id: Annotated[str | None, Header(alias="X-Request-Id")] = None,
) -> Any:
    """Authenticated by the signature, not a bearer token. 202 with the executions started; a delivery seen
    before answers 200 with the same executions and starts nothing."""
    body = await request.body()
    verify(body, x_signature_256, services.settings.webhook_secret)
    # The request limits (api/limits.py) already refused big and deep bodies; this is the second line.
    payload = loads(body, "the webhook body", max_bytes=MAX_BODY,
                    max_depth=services.settings.max_json_depth)
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise CvatflowError("the body has no `event`; is this a CVAT webhook?")
    event = payload["event"]
    rules = services.rules.matching(payload)  # event, project and state; "entered now" is decided below
    if not rules:
        return JSONResponse(WebhookAnswer(event=event).model_dump(), status_code=200)
    keys = delivery_keys(body, x_request_id.strip()[:200] if x_request_id else None)
    answer, status = await asyncio.to_thread(_handle, services, payload, rules, keys)
    return JSONResponse(answer.model_dump(), status_code=status)


def _handle(services: Services, payload: dict[str, Any], rules: list, keys: list[str]) -> tuple[WebhookAnswer, int]:
    event = payload["event"]
    key = keys[0]
    # One lock across check-and-start: CVAT retries and redeliveries can arrive together.
    with services.deliveries.lock:
        seen = next((s for s in map(services.deliveries.get, keys) if s is not None), None)
        if seen is None:
            seen = _started_before(services, key)
        if seen is not None:
            log.info("webhook %s: duplicate delivery %s", event, key[:12])
            for other in keys:
                services.deliveries.add(other, seen)
            return WebhookAnswer(event=event, duplicate=True, executions=seen), 200
        # After the duplicate check: a redelivery of a remembered event still answers what it started.
        too_old = stale(payload, replay_window(services))
        if too_old:
            raise CvatflowError(too_old)
        started = []
        for rule in services.rules.unstarted(rules, payload, lambda labels: bool(_runs(services, labels))):
            task, job = rule.task_and_job(payload)
            run = launch.start(services, launch.Launch(
                template=rule.template, cvat_task=task, cvat_job=job, parameters=dict(rule.parameters),
                labels=dict(rule.labels), trusted_labels={DELIVERY_LABEL: key, "cvatflow.io/trigger": "webhook",
                                                          RULE_LABEL: label_value(rule.name)}))
            services.rules.started(rule, payload)
            started.append(run.execution or run.id)
            log.info("webhook %s: rule %s started %s on task %s", event, rule.name, started[-1], task)
        for other in keys:
            services.deliveries.add(other, started)
    return WebhookAnswer(event=event, executions=started), 202 if started else 200


def replay_window(services: Services) -> float:
    """Seconds a signed delivery stays acceptable: `webhookReplayWindow` in the config, default a day."""
    return services.settings.webhook_replay_window


def _started_before(services: Services, key: str) -> list[str] | None:
    """Runs carry their delivery's key as a label, so a restarted server still knows what it started."""
    return [r.name for r in _runs(services, {DELIVERY_LABEL: key})] or None


def _runs(services: Services, labels: dict[str, str]) -> list:
    try:
        return services.client.runs(labels)
    except NotFoundError:
        return []
