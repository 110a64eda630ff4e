"""A real HTTP endpoint for Apprise ``json://`` alerts: a werkzeug server in a thread.

It records every POST (path, JSON body, the status it answered) and answers whatever
``status`` says (200, 500, ...) or hangs for ``hang`` seconds first.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    status: int

    @property
    def doc(self) -> dict[str, Any]:
        """dlcsync's machine-readable document: the Apprise message field, as JSON."""
        return dict(json.loads(self.body["message"]))


@dataclass
class Receiver:
    status: int = 200
    hang: float = 0.0
    posts: list[Post] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if self.hang:
            time.sleep(self.hang)
        status = self.status
        body = request.get_json(silent=True) or {}
        with self._lock:
            self.posts.append(Post(request.path, body, status))
        return Response("ok" if status < 400 else "boom", status=status)(environ, start_response)

    def start(self) -> Receiver:
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_port)

    def url(self, path: str = "alerts") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def accepted(self) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.status < 400]

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()
