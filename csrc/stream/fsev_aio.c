/* fsev_aio.c — FileEvents on any asyncio loop (stdlib or uvloop, outside our server): an
 * inotify fd watching the file's directory, read through loop.add_reader.  Owns the fd, its
 * Python int and the reader callback (a C function on a weak reference to the FileEvents, so a
 * watcher nobody closed can still be collected).  Every function here needs the GIL. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "stream_internal.h"
#ifdef __linux__
#include <sys/inotify.h>
#endif

#ifdef __linux__
#define WATCH_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | \
                    IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

/* The reader: drains the fd and runs the callback once for everything read (a burst of
 * writes is one callback per loop pass). */
static PyObject *on_readable(PyObject *weak, PyObject *unused) {
  FileEventsObject *fe = fra__fsev_deref(weak);
  if (!fe || fe->ifd < 0) Py_RETURN_NONE;
  int hit = 0;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(fe->ifd, buf, sizeof buf);
    if (n <= 0) break; /* EAGAIN: all read */
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      /* Overflow, or the directory itself: may concern our file.  Otherwise only its name. */
      if ((ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
          (ev->len && strcmp(ev->name, fe->name) == 0))
        hit = 1;
      p += sizeof *ev + ev->len;
    }
  }
  if (!hit || !fe->callback) Py_RETURN_NONE;
  PyObject *cb = Py_NewRef(fe->callback);
  PyObject *r = PyObject_CallNoArgs(cb); /* an exception goes to the loop's handler */
  Py_DECREF(cb);
  return r;
}

int fra__fsev_aio_open(FileEventsObject *fe) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  if (inotify_add_watch(fd, fe->dir, WATCH_MASK) < 0) {
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, fe->dir);
    close(fd);
    return -1;
  }
  fe->ifd = fd;
  if (!(fe->fd_obj = PyLong_FromLong(fd))) return -1;
  if (!(fe->read_cb = PyCFunction_New(&fra__fsev_aio_read_def, fe->self_weak))) return -1;
  PyObject *r = PyObject_CallMethodObjArgs(fe->loop, fe->st->s_add_reader, fe->fd_obj, fe->read_cb, NULL);
  if (!r) return -1;
  Py_DECREF(r);
  fe->reading = 1;
  return 0;
}

PyMethodDef fra__fsev_aio_read_def = {"_on_readable", (PyCFunction)on_readable, METH_NOARGS, NULL};
#else
int fra__fsev_aio_open(FileEventsObject *fe) {
  PyErr_SetString(PyExc_NotImplementedError, "FileEvents outside our server's loop needs Linux (inotify)");
  return -1;
}
PyMethodDef fra__fsev_aio_read_def = {"_on_readable", NULL, METH_NOARGS, NULL};
#endif

void fra__fsev_aio_close(FileEventsObject *fe) {
  if (fe->reading) {
    fe->reading = 0;
    /* the loop forgets the fd before it is closed (uvloop refuses an fd closed under a watcher) */
    PyObject *r = PyObject_CallMethodObjArgs(fe->loop, fe->st->s_remove_reader, fe->fd_obj, NULL);
    if (!r) PyErr_WriteUnraisable(fe->loop);
    Py_XDECREF(r);
  }
  if (fe->ifd >= 0) {
    close(fe->ifd);
    fe->ifd = -1;
  }
}
