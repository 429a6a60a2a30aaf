"""The hub's logic on top of a SQLAlchemy session: routes and the ingest worker stay thin."""
