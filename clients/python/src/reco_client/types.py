"""The shapes reco answers with, for type checkers (plain dicts at run time)."""

from __future__ import annotations

from typing import Any, Dict, List

try:  # Python 3.11+
    from typing import NotRequired, TypedDict
except ImportError:  # pragma: no cover - older Pythons
    from typing_extensions import NotRequired, TypedDict  # type: ignore


class Item(TypedDict):
    id: str
    categories: List[str]
    labels: Dict[str, Any]
    title: str
    description: str
    timestamp: str
    hidden: bool


class User(TypedDict):
    id: str
    labels: Dict[str, Any]
    created_at: str


class Feedback(TypedDict):
    user_id: str
    item_id: str
    type: str
    value: float
    timestamp: str


class Recommended(TypedDict):
    id: str
    score: float
    reason: str
    reason_item: NotRequired[str]
    title: NotRequired[str]
    categories: NotRequired[List[str]]
    labels: NotRequired[Dict[str, Any]]
    timestamp: NotRequired[str]


class Recommendations(TypedDict):
    engine: str
    items: List[Recommended]
    user_id: NotRequired[str]
    route: NotRequired[str]
    variant: NotRequired[str]
    cached: NotRequired[bool]
    fallback: NotRequired[bool]


class Similar(TypedDict):
    item_id: str
    items: List[Recommended]
