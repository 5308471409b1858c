/* fra/redis.h — the Redis connection (csrc/redis/): hiredis' async API driven by our server's
 * libuv loop or by any asyncio loop, exposed as _core.RedisConnection (and _core.RedisTLS, the
 * TLS settings shared by connections).  What csrc/py/ calls; csrc/redis/redis_internal.h has
 * the rest.  Every function declared here needs the GIL. */
#ifndef FRA_REDIS_H
#define FRA_REDIS_H

#include "fra/bridge.h"

/** Makes the module's Redis types (RedisConnection, RedisTLS) and the strings and objects
 * they share, and adds the types to module m.  Called once from module_exec.  0, or -1 with
 * an exception set. */
int fra_redis_module_init(PyObject *m, fra_state *st);

/** Server.start(): from now on a RedisConnection made on so's asyncio loop rides so's libuv
 * loop (the "uv" adapter) instead of add_reader/add_writer.  Never fails (a failure to record
 * it only means connections use the asyncio adapter; the error is reported as unraisable). */
void fra_redis_server_started(ServerObject *so);

/** Server close, before the core is destroyed: forgets so's loop, and every connection riding
 * so's libuv loop is dropped (its commands in flight fail with ConnectionError, its on_lost is
 * called) and its libuv handles are closed, so the core's last loop run can finish.  Never
 * fails. */
void fra_redis_server_closing(ServerObject *so);

#endif
