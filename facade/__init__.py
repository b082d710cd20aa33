"""Central Hub's HTTP facade: a FastAPI app over a pluggable state backend.

The public entry points are :func:`facade.app.create_app` and :class:`HubSettings`.
"""

from facade.app import create_app
from facade.settings import HubSettings

__all__ = ["HubSettings", "create_app"]
