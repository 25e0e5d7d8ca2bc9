"""The tagger's WSGI app: one action (`tag`) and a tiny web page, built only on pcloud_sdk."""

from __future__ import annotations

from flask import Flask, request
from pcloud_sdk import PCloudError
from pcloud_sdk.flask import ActionsBlueprint, Reject

NOTE = "query($id: ID!) { node(id: $id) { id type data } }"
CREATE = "mutation($data: JSON!) { createNode(type: \"tagger.Tag\", data: $data) { id data } }"
TOUCH = "mutation($id: ID!) { updateNode(id: $id, data: {title: \"tagged\"}) { id } }"


def label_for(title: str, prefix: str) -> str:
    words = title.split()
    return f"{prefix}{words[0].lower()}" if words else f"{prefix}untitled"


def create_app(verifier=None) -> Flask:
    app = Flask(__name__)
    actions = ActionsBlueprint("tagger", verifier=verifier)

    @actions.action("tag")
    def tag(invocation):
        found = invocation.pcloud.graphql(NOTE, {"id": invocation.params["node_id"]})["data"]["node"]
        if found is None:
            raise Reject("the note is gone")
        label = label_for(str(found["data"].get("title", "")), invocation.settings.get("prefix", "#"))
        created = invocation.pcloud.graphql(CREATE, {"data": {"label": label, "target": found["id"]}})
        try:  # not granted (read only): PCloud refuses, which is what this example demonstrates
            invocation.pcloud.graphql(TOUCH, {"id": found["id"]})
            refused = None
        except PCloudError as exc:
            refused = exc.code
        return {"tag_id": created["data"]["createNode"]["id"], "label": label, "write_refused": refused}

    app.register_blueprint(actions)

    @app.get("/")
    def home():
        who = "someone" if request.headers.get("Authorization") else "nobody"
        return f"<h1>Tagger</h1><p>Signed in as {who}.</p>"

    return app
