"""flask_restful_async/_core.pyi describes the whole extension: every name the stub declares
exists in the module with the same kind, every name of the module is in the stub, and every
keyword argument the stub gives Server.__init__ is one the server takes."""
import ast
import asyncio
import inspect
from pathlib import Path

import pytest

from flask_restful_async import _core

STUB = Path(_core.__file__).resolve().parent / "_core.pyi"
ALWAYS_THERE = {"__doc__", "__module__", "__new__", "__init__", "__weakref__", "__dict__"}


def stub_tree():
    return ast.parse(STUB.read_text())


def declared(body):
    """{name: "function" | "class" | "value"} for the statements of a module or class body."""
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = "function"
        elif isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = "value"
    return names


def stub_classes():
    return {node.name: node for node in stub_tree().body if isinstance(node, ast.ClassDef)}


def test_module_names_match_the_stub():
    in_stub = {name for name in declared(stub_tree().body) if name != "Buffer"}
    in_module = {name for name in dir(_core) if not name.startswith("__")}
    assert in_stub == in_module


@pytest.mark.parametrize("cls_name", ["Server", "Exchange", "ClientDisconnected", "RedisConnection",
                                      "RedisTLS", "FileEvents"])
def test_class_members_match_the_stub(cls_name):
    node = stub_classes()[cls_name]
    cls = getattr(_core, cls_name)
    in_stub = set(declared(node.body)) - ALWAYS_THERE
    # the class's own members (not object's or OSError's)
    base_names = set()
    for base in cls.__mro__[1:]:
        base_names |= set(vars(base))
    in_module = {name for name in vars(cls) if name not in base_names} - ALWAYS_THERE
    in_module -= {"__weaklistoffset__", "__getattribute__", "__repr__", "__str__"}
    assert in_stub == in_module
    for name, kind in declared(node.body).items():
        if name in ALWAYS_THERE:
            continue
        member = inspect.getattr_static(cls, name)
        if kind == "function":
            assert callable(member), name
        else:
            assert not callable(member) or isinstance(member, property) \
                or type(member).__name__ == "getset_descriptor", name


def test_server_takes_every_keyword_the_stub_gives():
    init = next(n for n in stub_classes()["Server"].body
                if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    kwonly = [a.arg for a in init.args.kwonlyargs]
    defaults = [ast.literal_eval(d) for d in init.args.kw_defaults]
    assert "multiprocess" in kwonly and "timeout_body" in kwonly
    loop = asyncio.new_event_loop()
    try:
        for name, default in zip(kwonly, defaults):
            server = _core.Server(lambda *a: None, loop, **{name: default})
            server.close()
        server = _core.Server(lambda *a: None, loop, **dict(zip(kwonly, defaults)))
        server.close()
        with pytest.raises(TypeError):
            _core.Server(lambda *a: None, loop, no_such_setting=1)
    finally:
        loop.close()


def test_limits_are_the_settings_the_stub_names():
    assert set(_core.LIMITS) == {"threads", "limit_request_line", "limit_header_size",
                                 "limit_header_count", "limit_body_size", "limit_concurrency"}
