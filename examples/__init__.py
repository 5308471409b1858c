"""Example apps: `examples.app:app` (Flask, WSGI) and `examples.asgi_app:app` (raw ASGI)."""
