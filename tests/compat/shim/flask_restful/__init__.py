"""Makes `import flask_restful` give flask_restful_async (upstream-suite runner only).

The package object itself is aliased, not copied, so `mock.patch('flask_restful.abort')` and
friends patch the attribute our own code looks up.
"""
import sys

import flask_restful_async
import flask_restful_async.fields
import flask_restful_async.inputs
import flask_restful_async.representations
import flask_restful_async.representations.json
import flask_restful_async.reqparse
import flask_restful_async.utils
import flask_restful_async.utils.cors

for _name, _module in list(sys.modules.items()):
    if _name == "flask_restful_async" or _name.startswith("flask_restful_async."):
        sys.modules["flask_restful" + _name[len("flask_restful_async"):]] = _module
