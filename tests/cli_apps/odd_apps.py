"""Objects the loader must refuse or cannot classify."""
not_callable = 42


def variadic(*args):
    """Neither ASGI nor WSGI can be told from this signature."""
    return None
