"""Request body limit as plain ASGI middleware: a body over the limit gets 413 with a JSON body
that every kind of client can read.

A client that writes the whole body before it reads (Python's urllib, requests) never sees an
answer sent while its body is still unread: closing the connection with bytes unread makes the
kernel reset it, and the client reports "connection reset by peer". So an oversized body is read
and discarded first (up to `drain_bytes` or `drain_s`, whichever ends first), and the 413 comes
after. A client that sent `Expect: 100-continue` (curl) gets the 413 at once and never sends its
body. A chunked body is counted as it streams. A body within the limit is read here and handed
to the application whole, so the application never sees the limit.
"""

from __future__ import annotations

import asyncio
import json
import time

DRAIN_BYTES = 64 * 2**20  # read at most this much of an oversized body before answering
DRAIN_S = 10.0  # ... and for at most this long


class BodyLimit:
    def __init__(self, app, max_bytes: int, drain_bytes: int = DRAIN_BYTES, drain_s: float = DRAIN_S):
        self.app, self.max_bytes = app, max_bytes
        self.drain_bytes, self.drain_s = max(drain_bytes, max_bytes), drain_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await self._answer(send, 400, "Content-Length is not a number", close=True)
        if declared is not None and int(declared) > self.max_bytes:
            if b"100-continue" in headers.get(b"expect", b"").lower() or int(declared) > self.drain_bytes:
                # the client waits for our go-ahead (or the body is too big to drain): answer now
                return await self._answer(send, 413, self._too_large(), close=True)
        body, over, disconnected = await self._read(receive)
        if disconnected:
            return None
        if over:
            return await self._answer(send, 413, self._too_large(), close=over == "partly read")
        return await self.app(scope, self._replay(body, receive), send)

    async def _read(self, receive) -> tuple[bytes, str | None, bool]:
        """(body, None | "drained" | "partly read", disconnected): the body is kept only while
        it fits the limit; past it, the rest is read and discarded up to the drain bounds."""
        chunks, seen, deadline = [], 0, None
        while True:
            if deadline is None and seen > self.max_bytes:
                deadline = time.monotonic() + self.drain_s  # the drain's time starts at the limit
            left = deadline - time.monotonic() if deadline is not None else None
            try:
                msg = await asyncio.wait_for(receive(), left) if left is not None else await receive()
            except TimeoutError:
                return b"", "partly read", False
            if msg["type"] == "http.disconnect":
                return b"", None, True
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen <= self.max_bytes:
                chunks.append(chunk)
            else:
                chunks.clear()
            if not msg.get("more_body", False):
                return b"".join(chunks), ("drained" if seen > self.max_bytes else None), False
            if seen > self.drain_bytes:
                return b"", "partly read", False

    @staticmethod
    def _replay(body: bytes, receive):
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as ASGI apps expect

        return replay

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    @staticmethod
    async def _answer(send, status: int, detail: str, close: bool) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:  # part of the body is unread: the connection cannot carry another request
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
