"""The ingest baseline: a bare Flask handler doing one INSERT into the same database.

Served by gunicorn with the same settings as dlcsync's web process
(``gunicorn bench.baseline_app:app``). No signature check, no parsing, no broker.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, jsonify, request

from models.db import make_engine

#: The table (bench.common.BASELINE_TABLE_DDL) is created by the benchmark before start.

app = Flask(__name__)
engine = make_engine(os.environ["DATABASE_URL"])
INSERT = sa.text("INSERT INTO bench_ingest (body) VALUES (:body) RETURNING id")


@app.post("/webhooks/<provider>")
def receive(provider: str):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        row_id = conn.execute(INSERT, {"body": request.get_data()}).scalar_one()
    return jsonify({"status": "accepted", "inbox_id": row_id, "duplicate": False}), 200


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"ok": True})
