"""The hub's HTTP API (FastAPI). Build it with :func:`cloud.api.app.create_app`."""
