"""reco-client: a small typed client for the reco recommendation server.

    from reco_client import RecoClient, RecoError

    reco = RecoClient("http://127.0.0.1:8080", api_key="...", timeout=2.0)
    reco.feedback("user-1", "item-7", "like")
    for rec in reco.recommend("user-1", n=10, fields=["title"])["items"]:
        print(rec["title"], rec["reason"])
"""

from .client import RecoClient
from .errors import RecoError
from .types import Feedback, Item, Recommendations, Recommended, Similar, User

__all__ = ["RecoClient", "RecoError", "Item", "User", "Feedback", "Recommendations", "Recommended", "Similar"]
__version__ = "0.1.0"
