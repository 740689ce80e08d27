"""CVAT URLs as users write them: a password in the URL never reaches a message or a log; a broken URL is named."""
from __future__ import annotations

import logging

import pytest

from cvatflow.cvat import CvatClient, shown_url
from cvatflow.errors import CvatError
from fake_cvat import FakeCvat, FakeTask


def test_a_password_in_the_cvat_url_is_never_shown(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeCvat(tasks=[FakeTask(id=7, name="t", labels=["a"], images=1)]) as fake:
        url = fake.url.replace("://", "://alice:hunter22pw@")
        with pytest.raises(CvatError) as caught:
            CvatClient(url, "not-the-token").task(7)  # refused: 401
    assert "alice:***@" in str(caught.value)
    assert "hunter22pw" not in str(caught.value) + caplog.text


@pytest.mark.parametrize("url", ["http://[::1", "http://cvat:port", "https://bob:pw@[::1:8080"])
def test_a_url_that_does_not_parse_is_one_clear_error_naming_it(url):
    with pytest.raises(CvatError, match="is not a CVAT URL") as caught:
        CvatClient(url, "a-token")
    assert "pw@" not in str(caught.value)


def test_shown_url_keeps_everything_but_the_password():
    assert shown_url("https://bob:pw@cvat.example:8443/base") == "https://bob:***@cvat.example:8443/base"
    assert shown_url("https://cvat.example") == "https://cvat.example"
    assert shown_url("https://bob@cvat.example") == "https://bob@cvat.example"
