"""Bearer tokens, the `auth-token` cookie and TokenReview at their edges, on a two-route app: kills cosmic-ray's
mutants of api/auth.py that the whole-API tests let live (`make mutation TARGETS=auth`).

Equivalent mutant, left alive: `_lock` shown in the repr (`repr=False` -> True) shows an unlocked lock object."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from cvatflow.api import auth, errors
from cvatflow.api.auth import Authenticator, require_token, require_token_or_cookie
from cvatflow.config import Settings

TOKEN = "the-right-token"


def app_with(authenticator: Authenticator) -> TestClient:
    app = FastAPI()
    errors.install(app)  # the API's own error answers
    app.state.services = SimpleNamespace(auth=authenticator)

    @app.api_route("/strict", methods=["GET", "POST", "HEAD", "OPTIONS"])
    def strict(who: str = Depends(require_token)):
        return {"who": who}

    @app.post("/fork")
    def fork(who: str = Depends(require_token_or_cookie)):
        return {"who": who}

    return TestClient(app)


@pytest.fixture
def api():
    return app_with(Authenticator(tokens=["another-token", TOKEN]))


def refused(answer, message: str) -> bool:
    return (answer.status_code == 401 and message in answer.json()["message"]
            and answer.headers["www-authenticate"] == "Bearer")


def test_the_right_bearer_token_passes_and_others_are_refused(api):
    assert api.get("/strict", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"who": "token"}
    assert api.get("/strict", headers={"Authorization": "Bearer another-token"}).status_code == 200
    assert refused(api.get("/strict", headers={"Authorization": "Bearer wrong"}), "not accepted")
    assert refused(api.get("/strict", headers={"Authorization": f"Bearer {TOKEN}x"}), "not accepted")
    assert refused(api.get("/strict"), "a bearer token is required")


def test_a_server_without_tokens_refuses_everything_and_says_how_to_configure_it():
    bare = app_with(Authenticator())
    assert refused(bare.get("/strict", headers={"Authorization": f"Bearer {TOKEN}"}), "no API tokens are configured")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_the_cookie_stands_for_the_token_on_reading_methods(api, method):
    api.cookies.set("auth-token", TOKEN)
    assert api.request(method, "/strict").status_code == 200
    api.cookies.set("auth-token", "wrong")
    assert api.request(method, "/strict").status_code == 401


@pytest.mark.parametrize("header", ["X-Requested-With", "X-CSRFToken"])
def test_a_cookie_changes_state_only_with_a_header_a_cross_site_page_cannot_send(api, header):
    api.cookies.set("auth-token", TOKEN)
    assert refused(api.post("/strict"), "a bearer token is required")
    assert refused(api.post("/strict", headers={header: ""}), "a bearer token is required")
    assert api.post("/strict", headers={header: "XMLHttpRequest"}).status_code == 200


def test_an_empty_cookie_is_no_token(api):
    api.cookies.set("auth-token", "")
    assert refused(api.get("/strict"), "a bearer token is required")
    assert refused(api.post("/fork"), "a bearer token is required")


def test_a_bearer_token_wins_over_the_cookie(api):
    api.cookies.set("auth-token", TOKEN)
    assert refused(api.get("/strict", headers={"Authorization": "Bearer wrong"}), "not accepted")
    assert refused(api.post("/fork", headers={"Authorization": "Bearer wrong"}), "not accepted")
    api.cookies.set("auth-token", "wrong")
    assert api.post("/fork", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_fork_s_routes_take_the_cookie_on_any_method(api):
    api.cookies.set("auth-token", TOKEN)
    assert api.post("/fork").status_code == 200
    api.cookies.set("auth-token", "wrong")
    assert refused(api.post("/fork"), "not accepted")


def test_an_empty_token_is_never_accepted():
    review = FakeReview(authenticated=True)
    authenticator = Authenticator(tokens=[TOKEN], token_review=True, api=review)
    assert not authenticator.accepts("")
    assert review.asked == []


@pytest.mark.parametrize("tokens, review, configured", [([TOKEN], False, True), ([], True, True), ([], False, False)])
def test_tokens_or_token_review_each_configure_authentication(tokens, review, configured):
    assert Authenticator(tokens=tokens, token_review=review).configured is configured


@pytest.mark.parametrize("env, extra, review", [("TRUE", {}, True), ("1", {}, True), ("yes", {}, True),
                                                ("", {}, False), ("no", {}, False), ("", {"tokenReview": True}, True),
                                                ("false", {"tokenReview": True}, False)])
def test_token_review_is_enabled_by_the_environment_or_the_config(env, extra, review, tmp_path):
    """CVATFLOW_TOKEN_REVIEW, else the config file's auth.tokenReview: the environment wins over the file, as for
    every setting (README, Settings reference); an empty variable is unset."""
    import yaml

    from cvatflow.config import load_settings

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"auth": {**extra, "audiences": ["cvatflow"]}}))
    settings = load_settings(config, env={"CVATFLOW_HOME": str(tmp_path), "CVATFLOW_TOKEN_REVIEW": env,
                                          "CVATFLOW_API_TOKENS": TOKEN})
    authenticator = Authenticator.from_settings(settings)
    assert authenticator.token_review is review
    assert authenticator.tokens == [TOKEN] and authenticator.audiences == ["cvatflow"]


class FakeReview:
    """Stands for the API server's TokenReview endpoint: records what it was asked, answers `authenticated`."""

    def __init__(self, authenticated=True, fails: BaseException | None = None, status=True):
        self.authenticated, self.fails, self.status, self.asked = authenticated, fails, status, []

    def __call__(self, api):  # kubernetes.client.AuthenticationV1Api(api)
        fake = self

        class Api:
            def create_token_review(self, review):
                fake.asked.append((api, review.spec.token, review.spec.audiences))
                if fake.fails is not None:
                    raise fake.fails
                status = SimpleNamespace(authenticated=fake.authenticated) if fake.status else None
                return SimpleNamespace(status=status)

        return Api()


@pytest.fixture
def review(monkeypatch):
    from kubernetes import client

    fake = FakeReview()
    monkeypatch.setattr(client, "AuthenticationV1Api", fake)
    return fake


def test_token_review_asks_the_given_api_with_the_audiences(review):
    api = object()
    authenticator = Authenticator(token_review=True, api=api, audiences=["cvatflow"])
    assert authenticator.accepts("sa-token")
    assert review.asked == [(api, "sa-token", ["cvatflow"])]
    assert Authenticator(token_review=True, api=api).accepts("other")
    assert review.asked[-1] == (api, "other", None)  # no audiences: the API server's default


def test_token_review_makes_its_api_client_from_the_kubeconfig_when_none_is_given(review, monkeypatch):
    from cvatflow import kube

    made = object()
    monkeypatch.setattr(kube, "api_client", lambda kubeconfig=None, url=None: made)
    assert Authenticator(token_review=True).accepts("sa-token")
    assert review.asked[0][0] is made


@pytest.mark.parametrize("authenticated, status", [(False, True), (None, True), (True, False)])
def test_token_review_denies_unless_the_api_server_says_authenticated(review, authenticated, status):
    review.authenticated, review.status = authenticated, status
    assert not Authenticator(token_review=True, api=object()).accepts("sa-token")


def failures():
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import MaxRetryError

    return [ApiException(status=500), MaxRetryError(None, "/apis", "refused"), ConnectionRefusedError(111, "refused")]


@pytest.mark.parametrize("index", range(3))
def test_token_review_that_fails_denies_without_raising(review, index):
    review.fails = failures()[index]
    assert not Authenticator(token_review=True, api=object()).accepts("sa-token")


def test_static_tokens_are_checked_before_asking_the_api_server(review):
    assert Authenticator(tokens=[TOKEN], token_review=True, api=object()).accepts(TOKEN)
    assert review.asked == []


def test_a_verdict_is_reused_for_a_minute_so_a_revoked_token_works_at_most_that_long(review, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    authenticator = Authenticator(token_review=True, api=object())
    assert authenticator.accepts("sa-token")
    review.authenticated = False  # revoked: the cached verdict still holds until the minute ends
    clock[0] += 59.999
    assert authenticator.accepts("sa-token")
    assert len(review.asked) == 1
    clock[0] = 1000.0 + 60  # exactly a minute: expired
    assert not authenticator.accepts("sa-token")
    assert len(review.asked) == 2
    assert not authenticator.accepts("sa-token")  # a denial is cached too
    assert len(review.asked) == 2
    review.authenticated = True
    clock[0] = 1000.0 + 60 + 61  # well after that verdict's minute: asked again
    assert authenticator.accepts("sa-token")
    assert len(review.asked) == 3


def test_verdicts_of_different_tokens_are_cached_side_by_side(review):
    authenticator = Authenticator(token_review=True, api=object())
    for token in ("first", "second", "third", "first", "second", "third"):
        assert authenticator.accepts(token)
    assert [asked[1] for asked in review.asked] == ["first", "second", "third"]


def test_the_verdict_cache_is_bounded(review):
    authenticator = Authenticator(token_review=True, api=object())
    authenticator._cache.update({f"{i:064x}": (float("inf"), True) for i in range(10_000)})
    authenticator.accepts("one-more")
    assert len(authenticator._cache) == 10_001  # up to 10 000 kept, then one more
    authenticator.accepts("and-another")
    assert len(authenticator._cache) == 1  # over the bound: emptied before the new verdict goes in
    assert "one-more" not in str(authenticator._cache)  # digests, never tokens


def test_neither_tokens_nor_their_digests_show_in_the_authenticator_s_repr(review):
    """An Authenticator that ends up in a log line or a traceback must not carry a secret there."""
    authenticator = Authenticator(tokens=[TOKEN], token_review=True, api=object())
    assert authenticator.accepts("sa-token-secret")
    shown = repr(authenticator)
    assert TOKEN not in shown and "sa-token-secret" not in shown
    assert hashlib.sha256(b"sa-token-secret").hexdigest() not in shown
