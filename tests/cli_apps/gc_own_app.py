"""gc_app, with the app setting the collector's thresholds itself at import."""
import gc

from gc_app import app  # noqa: F401

gc.set_threshold(1234, 5, 6)
