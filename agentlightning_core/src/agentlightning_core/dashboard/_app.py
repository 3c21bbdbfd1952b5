"""The dashboard as a raw ASGI application: read-only HTML pages over a store.

Mounted by the store server at ``/`` and ``/dashboard/...`` (:meth:`DashboardApp.handles`),
or served alone by ``agl dashboard``. Pages are rendered on the server with Jinja2; the run
page polls a fragment to update its chart live.
"""

from __future__ import annotations

import difflib
import hmac
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from agentlightning_core.dashboard._charts import bar_chart, line_chart
from agentlightning_core.dashboard._index import TERMINAL, RewardIndex, RolloutFilter
from agentlightning_core.errors import AgentLightningError
from agentlightning_core.store.base import LightningStore

__all__ = ["PAGE_SIZE", "PREFIX", "DashboardApp"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/dashboard"
PAGE_SIZE = 50
TOKEN_COOKIE = "agl_token"
_STATUSES = ("queuing", "preparing", "running", "requeuing", *TERMINAL)


class _NoJinja(Exception):
    """Jinja2 is not installed: every page answers 503 with the line that installs it."""

    body = (
        b"<!doctype html><title>Dashboard unavailable</title><p>The dashboard needs Jinja2: "
        b"pip install 'agentlightning-core[jinja]'</p>"
    )


class _PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DashboardApp:
    """ASGI app serving the dashboard pages of ``store``; ``token``: required token (None: open).

    A browser gives the token once as ``?token=...`` (or through the form of the 401 page);
    the dashboard keeps it in an HTTP-only cookie. ``Authorization: Bearer`` works too.
    """

    def __init__(self, store: LightningStore, token: str | None = None) -> None:
        self.store = store
        self.token = token or None
        self.index = RewardIndex(store)
        self._env: Any = None
        self._messages: Any = None  # one TraceToMessages for all pages: it logs a kind of drop once

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is a dashboard page (for an app that mounts this one)."""
        return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        path: str = scope["path"]
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body = await self._answer(method, path, query, headers, extra)
        except _NoJinja:
            status, body = 503, _NoJinja.body
        response_headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[bytes, bytes],
        extra: list[tuple[bytes, bytes]],
    ) -> tuple[int, bytes]:
        """The status and body of a request; response headers it needs go to ``extra``."""
        if method not in ("GET", "HEAD"):
            status, body = (
                405,
                self._error(405, f"{method} is not allowed on {path}: the dashboard is read-only"),
            )
            extra.append((b"allow", b"GET, HEAD"))
        elif self.token is not None and "token" in query:
            status, body = 303, b""
            given = query["token"][0]
            rest = urllib.parse.urlencode({k: v for k, v in query.items() if k != "token"}, doseq=True)
            extra.append((b"location", (path + ("?" + rest if rest else "")).encode()))
            cookie = f"{TOKEN_COOKIE}={urllib.parse.quote(given)}; Path=/; HttpOnly; SameSite=Strict"
            extra.append((b"set-cookie", cookie.encode()))
        elif not self._authorized(headers):
            status, body = (
                401,
                self._render(
                    "login.html",
                    path=path,
                    message="This dashboard needs the server's token (the --token of agl, or $AGL_SERVER_TOKEN).",
                    wrong=TOKEN_COOKIE.encode() in headers.get(b"cookie", b""),
                ),
            )
            extra.append((b"www-authenticate", b"Bearer"))
        else:
            try:
                status, body = 200, await self._page(path, {k: v[-1] for k, v in query.items()})
            except _PageError as exc:
                status, body = exc.status, self._error(exc.status, exc.message)
            except AgentLightningError as exc:  # not found and the like: the store's own words
                status = 404 if isinstance(exc, LookupError) else 500
                body = self._error(status, str(exc))
            except _NoJinja:
                raise
            except Exception as exc:
                logger.exception("Dashboard page %s failed", path)
                status, body = 500, self._error(500, f"{type(exc).__name__}: {exc}")
        return status, body

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        expected = self.token.encode()
        if hmac.compare_digest(headers.get(b"authorization", b""), b"Bearer " + expected):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:
            return False
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel is not None and hmac.compare_digest(
            urllib.parse.unquote(morsel.value).encode(), expected
        )

    # --- rendering -------------------------------------------------------------------

    def _render(self, template: str, **context: Any) -> bytes:
        if self._env is None:
            try:
                import jinja2
            except ImportError:
                raise _NoJinja from None
            self._env = jinja2.Environment(
                loader=jinja2.PackageLoader("agentlightning_core.dashboard", "templates"),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
            )
            self._env.filters["when"] = _when
            self._env.filters["ago"] = _ago
            self._env.filters["num"] = _num
            self._env.filters["pretty"] = _pretty
            self._env.globals["prefix"] = PREFIX
        return str(self._env.get_template(template).render(**context)).encode()

    def _error(self, status: int, message: str) -> bytes:
        return self._render("error.html", status=status, message=message)

    async def _page(self, path: str, query: dict[str, str]) -> bytes:
        if path in ("/", PREFIX, PREFIX + "/", PREFIX + "/run"):
            return self._render("run.html", **await self._run_context())
        rest = path[len(PREFIX) :]
        if rest == "/run/live":
            return self._render("run_live.html", **await self._run_context())
        if rest == "/rollouts":
            return await self._rollouts(query)
        if rest.startswith("/rollouts/"):
            return await self._rollout(urllib.parse.unquote(rest[len("/rollouts/") :]), query)
        if rest == "/resources":
            return await self._resources()
        if rest.startswith("/resources/"):
            return await self._resource(urllib.parse.unquote(rest[len("/resources/") :]), query)
        if rest == "/workers":
            return await self._workers()
        raise _PageError(404, f"No dashboard page {path!r}; start at {PREFIX}/")

    # --- pages -----------------------------------------------------------------------

    async def _run_context(self) -> dict[str, Any]:
        stats = await self.store.statistics()
        by_step = await self.index.reward_by_step()
        latest = await self.store.get_latest_resources()
        return {
            "title": "Run",
            "stats": stats,
            "by_step": by_step,
            "chart": line_chart(by_step),
            "latest": latest,
            "index": self.index,
            "now": time.time(),
        }

    async def _rollouts(self, query: dict[str, str]) -> bytes:
        flt = RolloutFilter(
            status=_choice(query, "status", _STATUSES),
            mode=query.get("mode") or None,
            resources_id=query.get("resources_id") or None,
            step=_number(query, "step", int),
            reward_min=_number(query, "reward_min", float),
            reward_max=_number(query, "reward_max", float),
        )
        page = _number(query, "page", int)
        page = 1 if page is None else page
        if page < 1:
            raise _PageError(400, f"page={page} is not a page number; pages start at 1")
        rows, total = await self.index.rollouts(flt, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        kept = {k: v for k, v in query.items() if k != "page" and v}

        def link(n: int) -> str:
            return f"{PREFIX}/rollouts?" + urllib.parse.urlencode({**kept, "page": n})

        return self._render(
            "rollouts.html",
            title="Rollouts",
            rows=rows,
            total=total,
            page=page,
            pages=pages,
            prev=link(page - 1) if page > 1 else None,
            next=link(page + 1) if page < pages else None,
            query=query,
            statuses=_STATUSES,
            now=time.time(),
        )

    async def _rollout(self, rollout_id: str, query: dict[str, str]) -> bytes:
        from agentlightning_core.adapter.messages import TraceToMessages
        from agentlightning_core.adapter.tree import TraceTree
        from agentlightning_core.emitter import find_final_reward

        rollout = await self.store.get_rollout_by_id(rollout_id)
        attempts = list(await self.store.query_attempts(rollout_id))
        chosen = query.get("attempt") or (attempts[-1].attempt_id if attempts else None)
        if chosen is not None and all(a.attempt_id != chosen for a in attempts):
            raise _PageError(
                404,
                f"Rollout {rollout_id!r} has no attempt {chosen!r}; its attempts: "
                + (", ".join(a.attempt_id for a in attempts) or "none"),
            )
        spans = list(await self.store.query_spans(rollout_id, chosen)) if chosen is not None else []
        tree = TraceTree.from_spans(spans) if spans else None
        if self._messages is None:
            self._messages = TraceToMessages(on_bad_data="drop")
        conversations = self._messages.adapt(spans) if spans else []
        attempt = next((a for a in attempts if a.attempt_id == chosen), None)
        reward = (
            attempt.reward if attempt is not None and attempt.reward is not None else find_final_reward(spans)
        )
        return self._render(
            "rollout.html",
            title=f"Rollout {rollout_id}",
            rollout=rollout,
            attempts=attempts,
            chosen=chosen,
            spans=spans,
            tree=tree,
            waterfall=tree.to_svg(width=1100) if tree is not None else "",
            conversations=conversations,
            reward=reward,
            t0=tree.root.start_time if tree is not None else None,
        )

    async def _resources(self) -> bytes:
        versions = list(await self.store.query_resources(sort_by="create_time", sort_order="desc"))
        rewards = await self.index.reward_by_resources()
        ordered = list(reversed(versions))
        points = [rewards[v.resources_id] for v in ordered if v.resources_id in rewards]
        labels = [v.resources_id for v in ordered if v.resources_id in rewards]
        return self._render(
            "resources.html",
            title="Resources",
            versions=versions,
            rewards=rewards,
            index=self.index,
            chart=bar_chart(points, labels),
        )

    async def _resource(self, resources_id: str, query: dict[str, str]) -> bytes:
        current = await self.store.get_resources_by_id(resources_id)
        versions = list(await self.store.query_resources(sort_by="create_time"))
        other_id = query.get("diff")
        if other_id is None:
            before = [v for v in versions if v.create_time < current.create_time]
            other = before[-1] if before else None
        else:
            other = await self.store.get_resources_by_id(other_id)
        texts = _resource_texts(current.resources)
        diff: list[tuple[str, str]] = []
        if other is not None:
            old = _resource_texts(other.resources)
            for name in sorted(set(texts) | set(old)):
                lines = difflib.unified_diff(
                    old.get(name, "").splitlines(),
                    texts.get(name, "").splitlines(),
                    f"{other.resources_id}/{name}",
                    f"{current.resources_id}/{name}",
                    lineterm="",
                )
                diff += [(_diff_class(line), line) for line in lines]
        rewards = await self.index.reward_by_resources()
        return self._render(
            "resource.html",
            title=f"Resources {resources_id}",
            current=current,
            texts=texts,
            other=other,
            versions=versions,
            diff=diff,
            reward=rewards.get(resources_id),
        )

    async def _workers(self) -> bytes:
        workers = list(await self.store.query_workers(sort_by="worker_id"))
        return self._render("workers.html", title="Workers", workers=workers, now=time.time())


def _resource_texts(resources: Any) -> dict[str, str]:
    """Each named resource as text: a prompt template's text, anything else as JSON (no API keys)."""
    out: dict[str, str] = {}
    for name, resource in resources.items():
        template = getattr(resource, "template", None)
        if isinstance(template, str):
            out[name] = template
            continue
        data = resource.to_dict() if hasattr(resource, "to_dict") else resource
        if isinstance(data, dict) and data.get("api_key"):
            data = {**data, "api_key": "***"}
        out[name] = json.dumps(data, indent=2, sort_keys=True, default=str)
    return out


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


def _choice(query: dict[str, str], key: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(key) or None
    if value is not None and value not in allowed:
        raise _PageError(400, f"{key}={value!r} is not one of: {', '.join(allowed)}")
    return value


def _number(query: dict[str, str], key: str, kind: type[int] | type[float]) -> Any:
    text = query.get(key, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise _PageError(
            400, f"{key}={text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _PageError(400, f"{key}={text!r} is not a finite number")
    return value


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    s = max(0.0, now - ts)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
