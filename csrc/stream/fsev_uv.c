/* fsev_uv.c — FileEvents on our server's libuv loop: a uv_fs_event_t on the file's directory
 * (so that a file renamed away, recreated or created for the first time is seen by its name),
 * its events read in the server's own non-blocking pass.  Owns the fra_fsev_uv struct (freed
 * in the handle's close callback).  Called with the GIL held: from Python, or from uv_run,
 * which is entered from Python (run_nowait). */
#include <string.h>
#include "stream_internal.h"

struct fra_fsev_uv {
  uv_fs_event_t h;
  FileEventsObject *fe;        /* borrowed; NULL once closing */
};

static void event_cb(uv_fs_event_t *h, const char *filename, int events, int status) {
  fra_fsev_uv *u = h->data;
  FileEventsObject *fe = u->fe;
  if (!fe || !fe->callback) return;
  /* An error or an event without a name (the directory itself) may concern our file too;
   * any other name is another file of the same directory. */
  if (status == 0 && filename && strcmp(filename, fe->name) != 0) return;
  fra__fsev_schedule(fe);
}

static void close_cb(uv_handle_t *h) { PyMem_RawFree(h->data); }

int fra__fsev_uv_open(FileEventsObject *fe, ServerObject *so) {
  fra_fsev_uv *u = PyMem_RawCalloc(1, sizeof *u);
  if (!u) return UV_ENOMEM;
  int rc = uv_fs_event_init(&so->core.loop, &u->h);
  if (rc) {
    PyMem_RawFree(u);
    return rc;
  }
  u->h.data = u;
  u->fe = fe;
  rc = uv_fs_event_start(&u->h, event_cb, fe->dir, 0);
  if (rc) {
    u->fe = NULL;
    uv_close((uv_handle_t *)&u->h, close_cb);
    fra__loop_touched(&so->core);
    fra_srv_after_call(so);
    return rc;
  }
  fe->uv = u;
  fe->so = so;
  /* libuv registers the inotify fd with epoll only at its next poll: a pass must follow. */
  fra__loop_touched(&so->core);
  fra_srv_after_call(so);
  return 0;
}

void fra__fsev_uv_close(FileEventsObject *fe) {
  fra_fsev_uv *u = fe->uv;
  ServerObject *so = fe->so;
  if (!u) return;
  fe->uv = NULL;
  u->fe = NULL;
  uv_fs_event_stop(&u->h);
  uv_close((uv_handle_t *)&u->h, close_cb);
  if (so) {
    fra__loop_touched(&so->core);
    fra_srv_after_call(so);
  }
}
