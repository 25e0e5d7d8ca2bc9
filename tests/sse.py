"""A small Server-Sent Events reader for tests and benchmarks: frames as they arrive over requests."""

from __future__ import annotations

import json
import queue
import threading

import requests


class SSEClient:
    """Opens `url` and reads frames in a thread; `next(timeout)` → {"event","id","data"} (data parsed as JSON
    when it is JSON), `comments` counts keep-alives. `status` / `error` are set when the answer is not a stream."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 30.0):
        self.frames: queue.Queue = queue.Queue()
        self.comments = 0
        self.closed = threading.Event()
        self.resp = requests.get(url, headers={"Accept": "text/event-stream", **(headers or {})}, stream=True,
                                 timeout=(5, timeout))
        self.status = self.resp.status_code
        self.headers = self.resp.headers
        self.error = None
        if self.status != 200:
            self.error = self.resp.json()
            self.resp.close()
            self.closed.set()
            return
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = ""
        try:
            for chunk in self.resp.iter_content(chunk_size=None, decode_unicode=True):
                buf += chunk
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    self._frame(block)
        except (requests.RequestException, OSError, AttributeError):
            pass
        finally:
            self.closed.set()

    def _frame(self, block: str) -> None:
        frame = {"event": "message", "id": None, "data": None, "retry": None}
        data, any_field = [], False
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            any_field = True
            if name == "data":
                data.append(value)
            elif name in ("event", "id", "retry"):
                frame[name] = value
        if not any_field or not data:
            return
        text = "\n".join(data)
        try:
            frame["data"] = json.loads(text)
        except ValueError:
            frame["data"] = text
        self.frames.put(frame)

    def next(self, timeout: float = 10.0) -> dict:
        return self.frames.get(timeout=timeout)

    def close(self):
        self.resp.close()
