"""Bearer-token authentication: a static token list (CVATFLOW_API_TOKENS) and/or Kubernetes TokenReview."""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cvatflow.api.models import ErrorBody
from cvatflow.config import Settings

log = logging.getLogger("cvatflow.api")
REVIEW_TTL = 60.0  # seconds a TokenReview verdict is reused: the API server is not asked on every request

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="A token from CVATFLOW_API_TOKENS, or a Kubernetes service-account token "
                                "when TokenReview is enabled.")


@dataclass
class Authenticator:
    """Decides whether a bearer token is accepted. Tokens are compared in constant time and never logged."""

    tokens: list[str] = field(default_factory=list, repr=False)  # secrets: never in a log line or traceback
    token_review: bool = False
    audiences: list[str] = field(default_factory=list)
    api: Any = None  # a kubernetes ApiClient for TokenReview; made from kubeconfig/in-cluster when None
    kubeconfig: str = ""
    kube_url: str = ""
    _cache: dict[str, tuple[float, bool]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, api: Any = None) -> Authenticator:
        return cls(tokens=list(settings.api_tokens), token_review=settings.token_review,
                   audiences=list(settings.token_audiences), api=api, kubeconfig=settings.kubeconfig,
                   kube_url=settings.kube_url)

    @property
    def configured(self) -> bool:
        return bool(self.tokens) or self.token_review

    def accepts(self, token: str) -> bool:
        if not token:
            return False
        given = token.encode()
        # Check every static token (no early exit), so timing says nothing about which one nearly matched.
        matched = False
        for known in self.tokens:
            matched |= hmac.compare_digest(given, known.encode())
        if matched:
            return True
        return self.token_review and self._reviewed(token)

    def _reviewed(self, token: str) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()  # the cache holds digests, never tokens
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        verdict = self._review(token)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + REVIEW_TTL, verdict)
        return verdict

    def _review(self, token: str) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if self.api is None:
            from cvatflow.kube import api_client

            self.api = api_client(self.kubeconfig or None, url=self.kube_url or None)
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=self.audiences or None))
        try:
            result = client.AuthenticationV1Api(self.api).create_token_review(review)
        except (ApiException, HTTPError, OSError) as exc:  # the API server is down or refuses us: deny
            log.warning("TokenReview failed (%s); the request is refused", exc.__class__.__name__)
            return False
        return bool(result.status and result.status.authenticated)


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=ErrorBody(message=message), headers={"WWW-Authenticate": "Bearer"})


def _check(request: Request, token: str | None) -> str:
    auth: Authenticator = request.app.state.services.auth
    if not auth.configured:
        raise unauthorized("no API tokens are configured on the server; set CVATFLOW_API_TOKENS "
                           "(or enable TokenReview) and restart it")
    if not token:
        raise unauthorized("a bearer token is required: send `Authorization: Bearer <token>`")
    if not auth.accepts(token):
        raise unauthorized("the bearer token is not accepted")
    return "token"


COOKIE = "auth-token"  # the cookie the Onepanel CVAT fork's UI signs in with (CVAT 1.0's token)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A page on another site can make a browser send our cookie, but not set these headers without a CORS preflight
# that this server never grants: a cookie changes state only when one of them comes along.
SAME_ORIGIN_HEADERS = ("x-requested-with", "x-csrftoken")


def cookie_token(request: Request) -> str | None:
    """The `auth-token` cookie, when it may stand for the bearer token on this request (see SAME_ORIGIN_HEADERS)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    if request.method in SAFE_METHODS or any(request.headers.get(h) for h in SAME_ORIGIN_HEADERS):
        return token
    return None


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """Dependency of every protected route: `Authorization: Bearer <token>`, or the same token in the
    `auth-token` cookie (how the web UI is signed in from the Onepanel CVAT fork's link); the cookie goes
    through the same check, and on POST/PUT/DELETE only with a header a cross-site page cannot send."""
    return _check(request, credentials.credentials if credentials else cookie_token(request))


def require_token_or_cookie(request: Request,
                            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The Onepanel routes take the `auth-token` cookie on every method, as the fork's UI sends it (its
    `execute_workflow` uses fetch without X-CSRFTOKEN; a JSON body still needs a CORS preflight cross-site)."""
    token = credentials.credentials if credentials else request.cookies.get(COOKIE)
    return _check(request, token)
