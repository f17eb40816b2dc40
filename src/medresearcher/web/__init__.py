"""The web UI: graph explorer, QA lab, run monitor, and browsers for QA records,
trajectories and evaluation reports.

Safe by default: the server binds 127.0.0.1, every path a request names is resolved inside
the workspace (:mod:`medresearcher.web.paths`), every piece of graph, model or user text is
escaped by the templates, and front-end libraries are served from the package, never a CDN.
"""

from medresearcher.web.app import create_app

__all__ = ["create_app"]
