"""A Flask blueprint that turns functions into PCloud actions (`POST <path>` per action)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from flask import Blueprint, jsonify, request

from pcloud_sdk.verify import InvalidInvocation, Verifier


class Retry(Exception):
    """Temporary trouble: PCloud retries this execution with the trigger's backoff (answered 503)."""


class Reject(Exception):
    """This execution can never succeed: it goes dead at once (answered 422)."""


class ActionsBlueprint(Blueprint):
    def __init__(self, app: str, api_url: str | None = None, url_prefix: str = "/actions", remember: int = 1000,
                 verifier: Verifier | None = None):
        super().__init__(f"pcloud_actions_{app.replace('-', '_')}", __name__, url_prefix=url_prefix)
        self.app_name = app
        self._verifier = verifier
        self._api_url = api_url
        self._answers: OrderedDict[str, tuple[int, dict]] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier(self._api_url or os.environ.get("PCLOUD_API_URL", "http://127.0.0.1:8000"),
                                      self.app_name)
        return self._verifier

    def action(self, name: str) -> Callable:
        def register(fn: Callable):
            def view():
                try:
                    invocation = self.verifier.invocation(request.headers, request.get_json(silent=True))
                except InvalidInvocation as exc:
                    return jsonify({"error": {"code": "invalid_invocation", "message": str(exc)}}), 401
                with self._lock:
                    seen = self._answers.get(invocation.execution_id)
                if seen is not None:  # a redelivery of an execution already answered: the same answer
                    return jsonify(seen[1]), seen[0]
                try:
                    status, result = 200, fn(invocation)
                except Reject as exc:
                    status, result = 422, {"error": {"code": "rejected", "message": str(exc)}}
                except Retry as exc:
                    return jsonify({"error": {"code": "retry", "message": str(exc)}}), 503
                with self._lock:
                    self._answers[invocation.execution_id] = (status, result)
                    while len(self._answers) > self._remember:
                        self._answers.popitem(last=False)
                return jsonify(result), status

            view.__name__ = f"action_{name.replace('-', '_')}"
            self.add_url_rule(f"/{name}", view_func=view, methods=["POST"])
            return fn

        return register
