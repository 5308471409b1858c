/* fra/stream.h — streaming helpers with a C side of their own (csrc/stream/): _core.FileEvents,
 * a file's changes reported to a Python callback, on our server's libuv loop (uv_fs_event) or
 * on any asyncio loop (an inotify fd read through add_reader).  What csrc/py/ calls;
 * csrc/stream/stream_internal.h has the rest.  Every function declared here needs the GIL. */
#ifndef FRA_STREAM_H
#define FRA_STREAM_H

#include "fra/bridge.h"

/** Makes the FileEvents type and adds it to module m.  Called once from module_exec.  0, or -1
 * with an exception set. */
int fra_stream_module_init(PyObject *m, fra_state *st);

/** Server close, before the core is destroyed: every FileEvents riding so's libuv loop stops
 * watching and its handle is closed (so the core's last loop run can finish); the object stays,
 * silent, until it is closed or collected.  Never fails. */
void fra_stream_server_closing(ServerObject *so);

#endif
