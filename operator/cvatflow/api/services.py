"""What the routes share: settings, the runs Client, the job store, authentication, webhook state, CVAT."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from cvatflow.api.auth import Authenticator
from cvatflow.api.jobs import JobStore
from cvatflow.api.rules import Deliveries, Rules, parse_rules
from cvatflow.config import Settings
from cvatflow.errors import Problem, ProblemsError


@dataclass
class Services:
    settings: Settings
    client: Any  # cvatflow.runs.Client
    jobs: JobStore
    auth: Authenticator
    rules: Rules = field(default_factory=Rules)
    deliveries: Deliveries = field(default_factory=Deliveries)
    cvat_factory: Callable[[], Any] | None = None
    _cvat: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings, client: Any = None, cvat: Callable[[], Any] | None = None,
              auth: Authenticator | None = None) -> Services:
        if client is None:
            from cvatflow.runs import Client

            client = Client(settings=settings)
        workers = settings.api_workers
        # Remember deliveries at least as long as the replay window accepts them, so none inside it repeats.
        window = settings.webhook_replay_window
        return cls(settings=settings, client=client, jobs=JobStore(workers), rules=parse_rules(settings.webhook_rules),
                   auth=auth or Authenticator.from_settings(settings), cvat_factory=cvat,
                   deliveries=Deliveries(ttl=max(7 * 24 * 3600.0, window)))

    def cvat(self):
        """The CVAT client (cvat-sdk underneath), made on first use; a 422 problem when no CVAT is configured."""
        with self._lock:
            if self._cvat is None:
                if self.cvat_factory is not None:
                    self._cvat = self.cvat_factory()
                else:
                    if not self.settings.cvat_url:
                        raise ProblemsError("CVAT", [Problem("cvatTask", "no CVAT server is configured",
                                                             "set CVAT_URL and CVAT_ACCESS_TOKEN for the server")])
                    from cvatflow.cvat import CvatClient

                    self._cvat = CvatClient(self.settings.cvat_url, self.settings.cvat_token or None)
            return self._cvat


def get_services(request: Request) -> Services:
    return request.app.state.services
