"""Files: a per-user tree in MongoDB and dedup-by-hash block uploads straight to the object store (CONTRACT §3).

Routes in routes.py, the tree service in service.py (also used by mobile_api's ops referee), uploads and
downloads in uploads.py, trash purge / block GC / upload expiry in gc.py run as rq jobs (tasks.py).
"""

from __future__ import annotations

from flask import Flask

from runtime.app import function_app
from runtime.settings import Settings


def openapi_apis() -> list:
    from functions.files import cloud_routes, link_routes, share_routes, storage_routes, version_routes
    from functions.files.routes import api

    return [api, version_routes.api, link_routes.api, storage_routes.api, share_routes.api, cloud_routes.api]


def create_app(settings: Settings | None = None) -> Flask:
    """The unique (owner, live_key) index is what makes sibling names unique, so make sure it exists."""
    from pymongo.errors import PyMongoError

    from functions.files import (
        clouds,
        gc,
        links,
        policy,
        replication,
        sealing,
        shares,
        storage,
        tree,
        uploads,
        versions,
    )

    app = function_app(__name__, settings, name="files")
    for routes in openapi_apis():
        app.register_blueprint(routes.blueprint)
    storage.install(app.extensions["pcloud"])
    try:
        db = app.extensions["pcloud"].db
        for module in (tree, uploads, gc, versions, links, policy, replication, sealing, shares, clouds):
            module.ensure_indexes(db)
    except PyMongoError as exc:  # start anyway: /readyz reports the database, requests get a JSON 503
        import logging

        logging.getLogger(__name__).warning("files: could not ensure indexes at start-up: %s", exc)
    return app
