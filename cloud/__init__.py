"""The hub: ingest from the broker, storage, the API and (later) planning. Never installed on a Pi."""
