"""The issue-3 bench endpoints on stock flask-restful (the upstream package), for gunicorn.

Same routes and answers as api_app.py, written the way a stock flask-restful app is: sync
resources only, so the 10 ms wait is a blocking sleep in a worker thread.
"""
import time

from flask import Flask
from flask_restful import Api, Resource, fields, marshal, reqparse

ITEM_FIELDS = {"id": fields.Integer, "name": fields.String, "verbose": fields.Integer}

parser = reqparse.RequestParser()
parser.add_argument("verbose", type=int, location="args", default=0)


class Item(Resource):
    def get(self, item_id):
        args = parser.parse_args()
        item = {"id": item_id, "name": "item", "verbose": args["verbose"], "secret": "not marshalled"}
        return marshal(item, ITEM_FIELDS)


class Io10(Resource):
    def get(self):
        time.sleep(0.010)
        return {"hello": "world"}


app = Flask(__name__)
api = Api(app)
api.add_resource(Item, "/items/<int:item_id>", "/sync/<int:item_id>")
api.add_resource(Io10, "/io10", "/sync-io10")
