"""A Flask (WSGI) app."""
import os

from flask import Flask, jsonify

from _control import wait_released_sync

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(app="flask", pid=os.getpid())


@app.get("/slow")
def slow():
    wait_released_sync()
    return jsonify(app="flask", pid=os.getpid(), path="/slow")


def create_app():
    """Factory, for the MODULE:factory() form."""
    return app
