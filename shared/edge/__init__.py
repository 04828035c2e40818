"""The one HTTP edge every Duban service is built on (see `shared.edge.app`)."""

from shared.edge.app import create_edge_app

__all__ = ["create_edge_app"]
