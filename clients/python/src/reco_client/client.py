"""The reco client: one object per application, safe to share between threads.

Every call is one HTTP request with a timeout. A 503 (reco's answer when its database is busy or
restarting; nothing was written) is retried, waiting what ``Retry-After`` says (capped by
``max_retry_wait``), up to ``retries`` times; then :class:`RecoError` is raised like any other error
answer, with reco's error code and the field it names.

Uses the standard library only (``urllib``), so it adds nothing to a web app's dependencies.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from .errors import RecoError
from .types import Feedback, Item, Recommendations, Similar, User

Json = Any
Params = Mapping[str, Union[str, int, Sequence[str], None]]


def _time(value: Optional[Union[str, datetime]]) -> Optional[str]:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _drop_none(fields: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class RecoClient:
    """A client for one reco server (or the load balancer in front of several).

    :param base_url: ``http://host:port`` of reco.
    :param api_key: sent as ``X-API-Key`` when set (reco's ``http.api_key``).
    :param timeout: seconds for each request (connect and read).
    :param retries: how many times a 503 is retried.
    :param max_retry_wait: the longest wait before a retry, whatever ``Retry-After`` says.
    :param on_retry: called as ``on_retry(attempt, error, wait_seconds)`` before each retry (logging).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: Optional[str] = None,
        timeout: float = 5.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        on_retry: Optional[Callable[[int, RecoError, float], None]] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.on_retry = on_retry

    # ----- items -----

    def upsert_item(
        self,
        id: str,
        *,
        categories: Optional[Sequence[str]] = None,
        labels: Optional[Mapping[str, Any]] = None,
        title: Optional[str] = None,
        description: Optional[str] = None,
        timestamp: Optional[Union[str, datetime]] = None,
        hidden: Optional[bool] = None,
    ) -> Item:
        """Creates or replaces an item; returns it as stored."""
        body = _drop_none(
            dict(
                id=id,
                categories=list(categories) if categories is not None else None,
                labels=labels,
                title=title,
                description=description,
                timestamp=_time(timestamp),
                hidden=hidden,
            )
        )
        return self._request("POST", "/api/items", body=body)

    def upsert_items(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Creates or replaces up to 10,000 items atomically; returns how many."""
        return self._request("POST", "/api/items/batch", body=list(items))["upserted"]

    def get_item(self, id: str) -> Item:
        return self._request("GET", f"/api/items/{_quote(id)}")

    def patch_item(self, id: str, **fields: Any) -> Item:
        """Changes the given fields (``title=``, ``hidden=``, ...); returns the item."""
        if "timestamp" in fields:
            fields["timestamp"] = _time(fields["timestamp"])
        return self._request("PATCH", f"/api/items/{_quote(id)}", body=fields)

    def delete_item(self, id: str) -> None:
        """Deletes an item and its feedback."""
        self._request("DELETE", f"/api/items/{_quote(id)}")

    def items(self, page_size: int = 100) -> Iterator[Item]:
        """Every item, in id order (follows the cursor)."""
        return self._pages("/api/items", page_size)

    # ----- users -----

    def upsert_user(self, id: str, *, labels: Optional[Mapping[str, Any]] = None) -> User:
        return self._request("POST", "/api/users", body=_drop_none(dict(id=id, labels=labels)))

    def upsert_users(self, users: Sequence[Mapping[str, Any]]) -> int:
        return self._request("POST", "/api/users/batch", body=list(users))["upserted"]

    def get_user(self, id: str) -> User:
        return self._request("GET", f"/api/users/{_quote(id)}")

    def patch_user(self, id: str, *, labels: Mapping[str, Any]) -> User:
        return self._request("PATCH", f"/api/users/{_quote(id)}", body={"labels": labels})

    def delete_user(self, id: str) -> None:
        self._request("DELETE", f"/api/users/{_quote(id)}")

    def users(self, page_size: int = 100) -> Iterator[User]:
        return self._pages("/api/users", page_size)

    # ----- feedback -----

    def insert_feedback(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Up to 10,000 events ``{user_id, item_id, type, value?, timestamp?}``, answered after
        they are committed; returns how many."""
        body = [dict(r, timestamp=_time(r["timestamp"])) if "timestamp" in r else dict(r) for r in rows]
        return self._request("POST", "/api/feedback", body=body)["inserted"]

    def feedback(
        self,
        user_id: str,
        item_id: str,
        type: str,
        value: Optional[float] = None,
        timestamp: Optional[Union[str, datetime]] = None,
    ) -> int:
        """One event (a like, a view, a rating ...)."""
        row = _drop_none(
            dict(user_id=user_id, item_id=item_id, type=type, value=value, timestamp=_time(timestamp))
        )
        return self.insert_feedback([row])

    def user_feedback(self, user_id: str, page_size: int = 100) -> Iterator[Feedback]:
        return self._pages(f"/api/users/{_quote(user_id)}/feedback", page_size)

    def item_feedback(self, item_id: str, page_size: int = 100) -> Iterator[Feedback]:
        return self._pages(f"/api/items/{_quote(item_id)}/feedback", page_size)

    def delete_feedback(self, user_id: str, item_id: str, type: Optional[str] = None) -> int:
        """Deletes one type (or every type) of a user's feedback on an item; returns how many."""
        path = f"/api/feedback/{_quote(user_id)}/{_quote(item_id)}"
        return self._request("DELETE", path, params={"type": type})["deleted"]

    # ----- recommendations -----

    def recommend(
        self,
        user_id: str,
        n: Optional[int] = None,
        *,
        engine: Optional[str] = None,
        category: Optional[Sequence[str]] = None,
        exclude: Optional[Sequence[str]] = None,
        fields: Optional[Sequence[str]] = None,
    ) -> Recommendations:
        """Recommendations for a user; ``fields=["title", "categories"]`` adds item fields."""
        params = _list_params(n, category, exclude, fields)
        params["engine"] = engine
        return self._request("GET", f"/api/recommend/{_quote(user_id)}", params=params)

    def session(
        self,
        items: Sequence[str],
        n: Optional[int] = None,
        *,
        engine: Optional[str] = None,
        category: Optional[Sequence[str]] = None,
        exclude: Optional[Sequence[str]] = None,
        fields: Optional[Sequence[str]] = None,
    ) -> Recommendations:
        """Recommendations for an anonymous visitor from the items of their session (oldest first)."""
        body = _drop_none(
            dict(
                items=list(items),
                n=n,
                engine=engine,
                category=list(category) if category else None,
                exclude=list(exclude) if exclude else None,
                fields=list(fields) if fields else None,
            )
        )
        return self._request("POST", "/api/recommend/session", body=body)

    def similar(
        self,
        item_id: str,
        n: Optional[int] = None,
        *,
        category: Optional[Sequence[str]] = None,
        exclude: Optional[Sequence[str]] = None,
        fields: Optional[Sequence[str]] = None,
    ) -> Similar:
        params = _list_params(n, category, exclude, fields)
        return self._request("GET", f"/api/items/{_quote(item_id)}/similar", params=params)

    def popular(self, n: Optional[int] = None, **filters: Any) -> Recommendations:
        return self._request("GET", "/api/popular", params=_list_params(n, **filters))

    def latest(self, n: Optional[int] = None, **filters: Any) -> Recommendations:
        return self._request("GET", "/api/latest", params=_list_params(n, **filters))

    # ----- health -----

    def live(self) -> bool:
        """Whether the process is up."""
        return self._status("/health/live")

    def ready(self) -> bool:
        """Whether reco can serve: database reachable, migrations current."""
        return self._status("/health/ready")

    # ----- plumbing -----

    def _status(self, path: str) -> bool:
        try:
            self._request("GET", path, retry=False)
            return True
        except RecoError:
            return False

    def _pages(self, path: str, page_size: int) -> Iterator[Any]:
        cursor: Optional[str] = None
        while True:
            page = self._request("GET", path, params={"limit": page_size, "cursor": cursor})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Params] = None,
        body: Json = None,
        retry: bool = True,
    ) -> Json:
        url = self.base_url + path
        query = _query(params or {})
        if query:
            url += "?" + query
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = response.read()
                    return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                error = RecoError.from_response(e.code, e.read(), e.headers.get("Retry-After"))
            except (TimeoutError, socket.timeout) as e:
                raise RecoError(None, "timeout", f"no answer within {self.timeout} s: {e}") from e
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    raise RecoError(None, "timeout", f"no answer within {self.timeout} s") from e
                raise RecoError(None, "unreachable", f"{self.base_url}: {e.reason}") from e
            if not (retry and error.status == 503 and attempt < self.retries):
                raise error
            attempt += 1
            wait = min(error.retry_after if error.retry_after is not None else 1.0, self.max_retry_wait)
            if self.on_retry:
                self.on_retry(attempt, error, wait)
            time.sleep(wait)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _list_params(
    n: Optional[int],
    category: Optional[Sequence[str]] = None,
    exclude: Optional[Sequence[str]] = None,
    fields: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    return {
        "n": n,
        "category": list(category) if category else None,
        "exclude": list(exclude) if exclude else None,
        "fields": ",".join(fields) if fields else None,
    }


def _query(params: Params) -> str:
    pairs: List[tuple] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((key, v) for v in value)
        else:
            pairs.append((key, value))
    return urllib.parse.urlencode(pairs)


__all__: Iterable[str] = ["RecoClient"]
