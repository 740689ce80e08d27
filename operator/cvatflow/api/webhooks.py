"""POST /api/v1/webhooks/cvat: CVAT's signed deliveries start the trainings the config's rules name, once each."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
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

log = logging.getLogger("cvatflow.api")
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
DELIVERY_LABEL = "cvatflow.io/webhook-delivery"
MAX_BODY = 10 * 1024 * 1024  # a task payload is a few kB; anything this big is not CVAT


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


def delivery_key(body: bytes, request_id: str | None) -> str:
    # CVAT's redelivery resends the same payload, and a payload carries the resource's updated_date, so two
    # real events never share a body; a proxy's X-Request-Id, where there is one, names the delivery too.
    source = f"request-id:{request_id}".encode() if request_id else body
    return hashlib.sha256(source).hexdigest()[:40]  # fits in a Kubernetes label value (63)


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
    if len(body) > MAX_BODY:
        raise CvatflowError("the body is too large for a CVAT event")
    verify(body, x_signature_256, services.settings.webhook_secret)
    try:
        payload = json.loads(body)
    except ValueError:
        raise CvatflowError("the body is not JSON; CVAT sends application/json") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise CvatflowError("the body has no `event`; is this a CVAT webhook?")
    event = payload["event"]
    rules = services.rules.matching(payload)  # event, project and state; "entered now" is decided below
    if not rules:
        return JSONResponse(WebhookAnswer(event=event).model_dump(), status_code=200)
    key = delivery_key(body, x_request_id)
    answer, status = await asyncio.to_thread(_handle, services, payload, rules, key)
    return JSONResponse(answer.model_dump(), status_code=status)


def _handle(services: Services, payload: dict[str, Any], rules: list, key: str) -> tuple[WebhookAnswer, int]:
    event = payload["event"]
    # One lock across check-and-start: CVAT retries and redeliveries can arrive together.
    with services.deliveries.lock:
        seen = services.deliveries.get(key)
        if seen is None:
            seen = _started_before(services, key)
        if seen is not None:
            log.info("webhook %s: duplicate delivery %s", event, key[:12])
            return WebhookAnswer(event=event, duplicate=True, executions=seen), 200
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
        services.deliveries.add(key, started)
    return WebhookAnswer(event=event, executions=started), 202 if started else 200


def _started_before(services: Services, key: str) -> list[str] | None:
    """Runs carry their delivery's key as a label, so a restarted server still knows what it started."""
    return [r.name for r in _runs(services, {DELIVERY_LABEL: key})] or None


def _runs(services: Services, labels: dict[str, str]) -> list:
    try:
        return services.client.runs(labels)
    except NotFoundError:
        return []
