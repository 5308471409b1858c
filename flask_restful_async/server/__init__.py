"""The command line and process side of the server: settings, app loading, the worker
(one event loop + one C Server per process), the multi-worker supervisor, ASGI lifespan."""
