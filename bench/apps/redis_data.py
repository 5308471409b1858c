"""The data the Redis scenarios read: written by the bench before any server starts, read by
the apps (bench/apps/redis_app.py) and by bench/redis_client.py.  Plain values, no imports, so
every process can load it."""

# GET: one key for api-redis-get and the client bench, ten for api-redis-gather10.  Values are
# 64 bytes, the size of a small cached object or a session token with its metadata.
KEYS = [f"bench:key:{i}" for i in range(10)]
VALUES = [(f"value-{i:02d}-" + "x" * 64)[:64] for i in range(10)]

# LRANGE 0 99: a list of 100 short elements (the client bench's parsing test).
LIST_KEY = "bench:list"
ELEMENTS = [f"element-{i:03d}" for i in range(100)]
