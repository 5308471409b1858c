/* stream_internal.h — what the files of csrc/stream/ share: the FileEvents object and its two
 * loop adapters' interface (fsev_uv.c for our server's libuv loop, fsev_aio.c for any asyncio
 * loop).  Functions that need the GIL say so. */
#ifndef FRA_STREAM_INTERNAL_H
#define FRA_STREAM_INTERNAL_H

#include "fra/stream.h"

typedef struct fra_fsev_uv fra_fsev_uv;

typedef struct FileEventsObject {
  PyObject_HEAD
  PyObject *weakreflist;
  fra_state *st;
  PyObject *loop, *callback;   /* callback: NULL once closed */
  PyObject *self_weak;         /* a weak reference to us: what the loop's callbacks hold, so a
                                * watcher nobody closes can still be collected */
  PyObject *fire_cb;           /* C function on self_weak: runs the callback (call_soon) */
  PyObject *handle;            /* the call_soon handle of a callback due (bursts coalesce) */
  char *dir, *name;            /* the file's directory and its name in it (PyMem) */
  /* fsev_uv.c: our server's libuv loop */
  ServerObject *so;            /* borrowed; NULL when not on a server's loop, or once it closed */
  fra_fsev_uv *uv;             /* the libuv handle's struct (freed in its close callback) */
  struct FileEventsObject *srv_next, **srv_pprev; /* in so->file_events */
  /* fsev_aio.c: any asyncio loop */
  int ifd;                     /* the inotify fd, -1 when none */
  PyObject *fd_obj, *read_cb;  /* read_cb: C function on self_weak handed to add_reader */
  uint8_t closed, reading;
} FileEventsObject;

/* fsevents.c */
/** An event about our file (or one that may be: overflow, the directory itself): asks for one
 * callback on the next loop pass unless one is already due.  Needs the GIL; never raises (a
 * failure is reported as unraisable). */
void fra__fsev_schedule(FileEventsObject *fe);
/** The FileEvents a weak reference points to, if alive and open (borrowed), else NULL. */
FileEventsObject *fra__fsev_deref(PyObject *weak);

/* fsev_uv.c (GIL held: called from Python or inside the server's pass, which holds it) */
/** Starts watching fe->dir on so's loop.  0, or a negative UV error. */
int fra__fsev_uv_open(FileEventsObject *fe, ServerObject *so);
/** Stops watching and closes the handle (its struct is freed by libuv's close callback). */
void fra__fsev_uv_close(FileEventsObject *fe);

/* fsev_aio.c (GIL) */
/** Opens an inotify fd on fe->dir and registers it with add_reader.  0, or -1 with an
 * exception set. */
int fra__fsev_aio_open(FileEventsObject *fe);
/** remove_reader and close the fd.  Never raises (reported as unraisable). */
void fra__fsev_aio_close(FileEventsObject *fe);
extern PyMethodDef fra__fsev_aio_read_def;

#endif
