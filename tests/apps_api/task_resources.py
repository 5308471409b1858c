"""The task cases of tests/apps/task_cases.py as an AsyncResource (/task/CASE?id=ID), for
the flask-restful native app (tests/test_task_api.py)."""
import os
import sys

from flask import request

from flask_restful_async import AsyncResource

# task_cases is shared with the raw ASGI app, which lives in tests/apps/.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "apps"))

from task_cases import run_case  # noqa: E402


def add_task_resources(api, state):
    """Routes /task/<case> on `api`; what happens after a handler ends goes to state[id]."""

    class TaskCase(AsyncResource):
        async def get(self, case):
            return await run_case(case, request.args["id"], state)

    api.add_resource(TaskCase, "/task/<case>")
