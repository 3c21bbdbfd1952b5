"""The proxy's HTTP/1.1 client towards upstreams: keep-alive connections parsed with httptools.

The proxy forwards every model call, so what its client costs per call is latency every agent
pays. aiohttp's client spent about 0.7 ms of CPU per call more than this one (measured with
``benchmarks/proxy_bench.py``: a forwarding-only proxy used 1.05-1.2 ms per call with aiohttp,
0.37-0.39 ms with a protocol like this), which alone is over the proxy's 1 ms budget. The
client does only what forwarding needs: POST a body, give back status, headers and the body
as it arrives (chunked or not), reuse connections, TLS for ``https`` upstreams, and time out.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["UpstreamBroken", "UpstreamClient", "UpstreamError", "UpstreamResponse", "UpstreamUnreachable"]

_PAUSE_AT = 1 << 20
"""Bytes of body buffered for a slow client before the upstream connection stops being read."""


class UpstreamError(Exception):
    """An upstream exchange failed."""


class UpstreamUnreachable(UpstreamError):
    """No response came: connecting failed, the connection broke or timed out before the headers."""


class UpstreamBroken(UpstreamError):
    """The response started but its body broke off (connection lost, bad framing, read timeout)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.received = False
        self.head: asyncio.Future[None] | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None

    def start(self, request: bytes) -> asyncio.Future[None]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.head = loop.create_future()
        self.received = self.complete = False
        self.error = None
        self.headers = []
        self.chunks.clear()  # what a released response left unread
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self.transport.write(request)
        return self.head

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"the upstream sent a malformed HTTP response: {exc}"))
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head is not None and not self.head.done():
            self._fail(
                UpstreamUnreachable(f"the upstream closed the connection before answering ({exc or 'EOF'})")
            )
        elif not self.complete and self.head is not None:
            if self._until_eof():
                self.complete = True
                self._wake()
            else:
                self._fail(
                    UpstreamBroken(f"the upstream closed the connection mid-response ({exc or 'EOF'})")
                )

    def eof_received(self) -> bool | None:
        return None  # close the transport: an exchange never continues after the upstream's EOF

    # --- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # False once the message is complete
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # --- helpers -------------------------------------------------------------------------------

    def _until_eof(self) -> bool:
        """A body without length or chunking ends with the connection."""
        names = {name for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, error: BaseException) -> None:
        self.error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def take(self) -> bytes | None:
        """Buffered body bytes, or None when there are none yet."""
        if not self.chunks:
            return None
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class UpstreamResponse:
    """Status and headers of an upstream's answer; its body is read with :meth:`read` or
    :meth:`iter_chunks`, then :meth:`release` hands the connection back (or closes it)."""

    def __init__(self, client: UpstreamClient, key: tuple[str, str, int], connection: _Connection) -> None:
        self._client = client
        self._key = key
        self._connection = connection
        self.status: int = connection.parser.get_status_code()
        self.headers: list[tuple[bytes, bytes]] = connection.headers
        """Header names lower-cased, as sent."""
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (de-chunked); raises :class:`UpstreamBroken` if it breaks off."""
        connection = self._connection
        timeout = self._client.read_timeout
        loop = asyncio.get_running_loop()
        while True:
            data = connection.take()
            if data is not None:
                yield data
                continue
            if connection.complete:
                return
            if connection.error is not None:
                raise connection.error
            connection.wakeup = loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await connection.wakeup
            except TimeoutError:
                raise UpstreamBroken(f"the upstream sent nothing for {timeout:g} s mid-response") from None
            finally:
                connection.wakeup = None

    async def read(self) -> bytes:
        """The whole body."""
        connection = self._connection
        if connection.complete:  # usual for a small answer: it came with its headers
            return connection.take() or b""
        parts = [chunk async for chunk in self.iter_chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Reuse the connection when the exchange ended cleanly and it may be kept, else close it."""
        if self._released:
            return
        self._released = True
        connection = self._connection
        if connection.complete and connection.keep_alive and not connection.closed:
            self._client._idle[self._key].append(connection)
        elif connection.transport is not None:
            connection.transport.close()


class UpstreamClient:
    """Keep-alive HTTP/1.1 connections to the upstreams, one exchange per connection at a time."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: collections.defaultdict[tuple[str, str, int], list[_Connection]] = (
            collections.defaultdict(list)
        )
        self._origins: dict[str, tuple[tuple[str, str, int], bytes, bytes]] = {}
        self._ssl: ssl.SSLContext | None = None

    def _origin(self, url: str) -> tuple[tuple[str, str, int], bytes, bytes]:
        """((scheme, host, port), Host header, request target) of ``url``; parsed once per URL."""
        origin = self._origins.get(url)
        if origin is None:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            netloc = parts.netloc.rpartition("@")[2]
            origin = ((scheme, host, port), netloc.encode("idna"), target.encode())
            if len(self._origins) < 1024:
                self._origins[url] = origin
        return origin

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise UpstreamUnreachable(
                f"connecting to {host}:{port} timed out after {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {exc}") from None
        return connection

    async def post(
        self,
        url: str,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        meanwhile: Callable[[], None] | None = None,
    ) -> UpstreamResponse:
        """POST ``body`` and wait for the response's headers; ``meanwhile()`` runs once the request
        is sent, while the upstream works on it. ``headers`` must not hold ``host`` or
        ``content-length`` (the client writes them). Raises :class:`UpstreamUnreachable`."""
        key, host, target = self._origin(url)
        head = b"".join(b"%s: %s\r\n" % header for header in headers)
        request = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (
            target,
            host,
            len(body),
            head,
            body,
        )
        idle = self._idle[key]
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(key, connection, request, meanwhile)
            except UpstreamUnreachable:
                if connection.received or not connection.closed:
                    raise  # an answer began, or none came in time: not a connection closed while idle
                # the upstream had closed this idle connection: try the next one, then a new one
        return await self._exchange(key, await self._connect(key), request, meanwhile)

    async def _exchange(
        self,
        key: tuple[str, str, int],
        connection: _Connection,
        request: bytes,
        meanwhile: Callable[[], None] | None,
    ) -> UpstreamResponse:
        head = connection.start(request)
        try:
            if meanwhile is not None:
                meanwhile()
            async with asyncio.timeout(self.read_timeout):
                await head
        except BaseException as exc:
            if connection.transport is not None:
                connection.transport.close()
            if isinstance(exc, TimeoutError):
                raise UpstreamUnreachable(
                    f"the upstream sent no response for {self.read_timeout:g} s"
                ) from None
            raise
        return UpstreamResponse(self, key, connection)

    def close(self) -> None:
        """Close every idle connection (responses still held close theirs on release)."""
        for connections in self._idle.values():
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.close()
        self._idle.clear()
