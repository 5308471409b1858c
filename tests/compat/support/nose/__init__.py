"""The few names flask-restful 0.3.10's tests import from nose (nose itself does not import on
Python 3.11+).  Used only by the upstream-suite runner, for stock and ours alike."""
from unittest import SkipTest

__all__ = ["SkipTest"]
