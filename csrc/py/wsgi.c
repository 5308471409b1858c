/* wsgi.c — one request served the WSGI way (PEP 3333) on a pool thread (threads.c): the
 * environ (request.c), wsgi.input streaming the body, start_response and write(), the
 * response iterable framed into bytes queued for the loop thread, wsgi.file_wrapper (a file
 * with a descriptor goes with sendfile(2) from the loop thread, core/fileout.c), close().
 * Runs with the GIL held; waits for the loop (body bytes, a client behind, a file going out)
 * through threads.c with it released.  Owns the wsgi.input and wsgi.file_wrapper types.
 * Every function here needs the GIL. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "exchange_internal.h"

/* ---- wsgi.input ---- */

typedef struct {
  PyObject_HEAD
  ExchangeObject *ex;
} InputObject;

/* Asks the loop for more body bytes and waits for them; returns 0 if more may come, 1 at the
 * end of the body (or when the client is gone). */
static int wait_body(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!r || ex->gone || (r->complete && r->body_off == r->body_len)) return 1;
  if (r->body_len > r->body_off) return 0;
  if (r->expect_continue && !ex->continue_sent && !ex->head_sent) ex->wflags |= FRA_W_CONTINUE;
  ex->wflags |= FRA_W_READ;
  fra_threads_post(ex);
  fra_threads_wait(ex, FRA_WAIT_BODY);
  r = ex->req;
  return (!r || ex->gone || (r->complete && r->body_off == r->body_len)) ? 1 : 0;
}

static void consumed(ExchangeObject *ex) {
  if (ex->conn && (ex->conn->flags & FRA_C_BODY_FULL)) {
    ex->wflags |= FRA_W_READ;
    fra_threads_post(ex);
  }
}

/* Reads up to size bytes (size < 0: all); stops after a newline when line is set. */
static PyObject *input_read_impl(InputObject *self, Py_ssize_t size, int line) {
  ExchangeObject *ex = self->ex;
  PyObject *acc = PyByteArray_FromStringAndSize(NULL, 0);
  if (!acc) return NULL;
  for (;;) {
    fra_req *r = ex->req;
    if (!r) break;
    Py_ssize_t have = PyByteArray_GET_SIZE(acc);
    if (size >= 0 && have >= size) break;
    size_t avail = r->body_len - r->body_off;
    if (avail) {
      size_t take = avail;
      if (size >= 0 && (Py_ssize_t)take > size - have) take = (size_t)(size - have);
      const char *src = r->body + r->body_off;
      int got_line = 0;
      if (line) {
        const char *nl = memchr(src, '\n', take);
        if (nl) {
          take = (size_t)(nl - src) + 1;
          got_line = 1;
        }
      }
      if (PyByteArray_Resize(acc, have + (Py_ssize_t)take) < 0) {
        Py_DECREF(acc);
        return NULL;
      }
      memcpy(PyByteArray_AS_STRING(acc) + have, src, take);
      r->body_off += take;
      if (r->body_off == r->body_len) r->body_off = r->body_len = 0;
      consumed(ex);
      if (got_line) break;
      continue;
    }
    if (wait_body(ex)) break;
  }
  PyObject *b = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(acc), PyByteArray_GET_SIZE(acc));
  Py_DECREF(acc);
  return b;
}

static Py_ssize_t size_arg(PyObject *const *args, Py_ssize_t n, int *err) {
  *err = 0;
  if (n < 1 || args[0] == Py_None) return -1;
  Py_ssize_t v = PyLong_AsSsize_t(args[0]);
  if (v == -1 && PyErr_Occurred()) *err = 1;
  return v;
}

static PyObject *input_read(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t size = size_arg(args, n, &err);
  return err ? NULL : input_read_impl(self, size, 0);
}

static PyObject *input_readline(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t size = size_arg(args, n, &err);
  return err ? NULL : input_read_impl(self, size, 1);
}

static PyObject *input_readlines(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t hint = size_arg(args, n, &err);
  if (err) return NULL;
  PyObject *list = PyList_New(0);
  Py_ssize_t total = 0;
  while (list) {
    PyObject *l = input_read_impl(self, -1, 1);
    if (!l) {
      Py_CLEAR(list);
      break;
    }
    if (PyBytes_GET_SIZE(l) == 0) {
      Py_DECREF(l);
      break;
    }
    total += PyBytes_GET_SIZE(l);
    int rc = PyList_Append(list, l);
    Py_DECREF(l);
    if (rc < 0) Py_CLEAR(list);
    else if (hint > 0 && total >= hint) break;
  }
  return list;
}

static PyObject *input_next(InputObject *self) {
  PyObject *l = input_read_impl(self, -1, 1);
  if (l && PyBytes_GET_SIZE(l) == 0) {
    Py_DECREF(l);
    return NULL; /* StopIteration */
  }
  return l;
}

static int input_traverse(InputObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->ex);
  return 0;
}

static int input_clear(InputObject *self) {
  Py_CLEAR(self->ex);
  return 0;
}

static void input_dealloc(InputObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  input_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(tp);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "Read up to size bytes of the body."},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "Read one line."},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL, "Read lines."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_doc, "wsgi.input: the request body, streamed."},
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_traverse, input_traverse},
    {Py_tp_clear, input_clear},
    {Py_tp_methods, input_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_next},
    {0, NULL},
};

PyObject *fra_wsgi_input_new(ExchangeObject *ex) {
  InputObject *in = PyObject_GC_New(InputObject, ex->srv->st->InputType);
  if (!in) return NULL;
  in->ex = (ExchangeObject *)Py_NewRef(ex);
  PyObject_GC_Track(in);
  return (PyObject *)in;
}

PyType_Spec fra_input_spec = {
    .name = "flask_restful_async._core.WSGIInput",
    .basicsize = sizeof(InputObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = input_slots,
};

/* ---- wsgi.file_wrapper ---- */

typedef struct {
  PyObject_HEAD
  PyObject *filelike;
  Py_ssize_t block_size;
} FileWrapperObject;

static PyObject *fw_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"filelike", "block_size", NULL};
  PyObject *filelike;
  Py_ssize_t block_size = 8192;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:wsgi.file_wrapper", kwlist, &filelike, &block_size)) return NULL;
  if (block_size <= 0) {
    PyErr_SetString(PyExc_ValueError, "wsgi.file_wrapper: block_size must be > 0");
    return NULL;
  }
  FileWrapperObject *fw = (FileWrapperObject *)tp->tp_alloc(tp, 0);
  if (!fw) return NULL;
  fw->filelike = Py_NewRef(filelike);
  fw->block_size = block_size;
  return (PyObject *)fw;
}

/* PEP 3333's generic way, for a server that cannot send the file itself (and for middleware
 * that iterates the response): blocks of block_size until read() returns nothing. */
static PyObject *fw_next(FileWrapperObject *fw) {
  PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->block_size);
  if (!data) return NULL;
  if (PyObject_Length(data) <= 0) {
    if (PyErr_Occurred()) {
      Py_DECREF(data);
      return NULL;
    }
    Py_DECREF(data);
    return NULL; /* StopIteration */
  }
  return data;
}

static PyObject *fw_close(FileWrapperObject *fw, PyObject *unused) {
  PyObject *close = PyObject_GetAttrString(fw->filelike, "close");
  if (!close) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  PyObject *r = PyObject_CallNoArgs(close);
  Py_DECREF(close);
  return r;
}

static int fw_traverse(FileWrapperObject *fw, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(fw));
  Py_VISIT(fw->filelike);
  return 0;
}

static int fw_clear(FileWrapperObject *fw) {
  Py_CLEAR(fw->filelike);
  return 0;
}

static void fw_dealloc(FileWrapperObject *fw) {
  PyTypeObject *tp = Py_TYPE(fw);
  PyObject_GC_UnTrack(fw);
  fw_clear(fw);
  tp->tp_free(fw);
  Py_DECREF(tp);
}

static PyMethodDef fw_methods[] = {
    {"close", (PyCFunction)fw_close, METH_NOARGS, "Close the file-like object."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fw_members[] = {
    {"filelike", T_OBJECT, offsetof(FileWrapperObject, filelike), READONLY, "The wrapped file-like object."},
    {"block_size", T_PYSSIZET, offsetof(FileWrapperObject, block_size), READONLY, "Bytes per read when iterated."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot fw_slots[] = {
    {Py_tp_doc, "wsgi.file_wrapper(filelike, block_size=8192): a file as a WSGI response; the server sends "
                "a file with a descriptor from its current position with sendfile(2), up to Content-Length."},
    {Py_tp_new, fw_new},
    {Py_tp_dealloc, fw_dealloc},
    {Py_tp_traverse, fw_traverse},
    {Py_tp_clear, fw_clear},
    {Py_tp_methods, fw_methods},
    {Py_tp_members, fw_members},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, fw_next},
    {0, NULL},
};

PyType_Spec fra_file_wrapper_spec = {
    .name = "flask_restful_async._core.FileWrapper",
    .basicsize = sizeof(FileWrapperObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = fw_slots,
};

/* A file_wrapper returned by the app: its file from its current position, up to the
 * Content-Length the app set (else to its end), sent by the loop thread with sendfile while
 * this thread waits.  Returns 1 when sent (or nothing was due), 0 when the file-like has no
 * usable descriptor (the caller iterates it), -1 with an exception. */
static int send_file_wrapper(ExchangeObject *ex, FileWrapperObject *fw) {
  fra_state *st = ex->srv->st;
  if (!ex->started) return 0; /* iterating raises the usual error */
  int fd = PyObject_AsFileDescriptor(fw->filelike);
  if (fd < 0) {
    PyErr_Clear();
    return 0;
  }
  struct stat sb;
  if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) return 0;
  /* The Python object's position (a buffered file may have read ahead of the descriptor's). */
  int64_t pos = -1;
  PyObject *t = PyObject_CallMethodNoArgs(fw->filelike, st->s_tell);
  if (t) {
    pos = PyLong_AsLongLong(t);
    Py_DECREF(t);
  }
  if (pos < 0) {
    PyErr_Clear();
    pos = (int64_t)lseek(fd, 0, SEEK_CUR);
    if (pos < 0) return 0;
  }
  uint64_t size = (uint64_t)sb.st_size, off = (uint64_t)pos;
  uint64_t count = off < size ? size - off : 0;
  if (ex->has_app_cl && ex->app_cl - ex->body_sent < count) count = ex->app_cl - ex->body_sent;
  if (ex->gone) return 1;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  size_t after_len;
  int rc = fra_ex_file_frame(ex, count, 1, ex->file_after, &after_len);
  if (rc <= 0) {
    close(own);
    if (rc < 0) return -1;
    fra_threads_post(ex); /* the head */
    return 1;
  }
  ex->file_fd = own;
  ex->file_off = off;
  ex->file_count = count;
  ex->file_after_len = (uint8_t)after_len;
  ex->file_status = 0;
  ex->file_busy = 1;
  ex->wflags |= FRA_W_FILE;
  fra_threads_post(ex);
  fra_threads_wait(ex, FRA_WAIT_FILE);
  if (ex->file_status < 0 && !ex->gone) {
    PyErr_Format(PyExc_OSError, "wsgi.file_wrapper: sending the file failed: %s", uv_strerror(ex->file_status));
    return -1;
  }
  return 1;
}

/* ---- start_response and the response ---- */

static int send_chunk(ExchangeObject *ex, PyObject *item, int more);

static PyObject *legacy_write(ExchangeObject *ex, PyObject *data) {
  if (send_chunk(ex, data, 1) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef write_def = {"write", (PyCFunction)legacy_write, METH_O, NULL};

static PyObject *start_response(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n < 2 || n > 3) {
    PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
    return NULL;
  }
  PyObject *status = args[0], *headers = args[1], *exc_info = n == 3 ? args[2] : Py_None;
  if (exc_info != Py_None) {
    if (ex->head_sent) {
      /* PEP 3333: too late to change the response, re-raise the app's error */
      if (PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) == 3) {
        PyObject *v = PyTuple_GET_ITEM(exc_info, 1);
        PyErr_SetObject((PyObject *)Py_TYPE(v), v);
      } else {
        PyErr_SetString(PyExc_RuntimeError, "start_response: response already sent");
      }
      return NULL;
    }
  } else if (ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "start_response called twice without exc_info");
    return NULL;
  }
  if (fra__ex_head_wsgi(ex, status, headers) < 0) return NULL;
  ex->started = 1;
  return PyCFunction_New(&write_def, (PyObject *)ex);
}

static PyMethodDef start_response_def = {"start_response", (PyCFunction)(void (*)(void))start_response, METH_FASTCALL, NULL};

/* Frames one body item and queues it; waits while the client is behind (backpressure). */
static int send_chunk(ExchangeObject *ex, PyObject *item, int more) {
  if (!ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "WSGI app returned a body before calling start_response");
    return -1;
  }
  if (ex->complete) return 0;
  Py_buffer view;
  if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) return -1;
  if (view.len == 0 && more) {
    PyBuffer_Release(&view);
    return 0;
  }
  if (ex->gone) {
    PyBuffer_Release(&view);
    return 0;
  }
  int rc = fra_ex_body(ex, view.buf, (size_t)view.len, more);
  PyBuffer_Release(&view);
  if (rc < 0) return -1;
  fra_threads_post(ex);
  fra_threads_wait(ex, FRA_WAIT_DRAIN);
  return 0;
}

/* Serves one request: environ, the app's call, its body iterated and sent (waiting while the
 * client is behind), close(), then the exchange back to the loop thread.  The app is the
 * server's (a WSGI server) or the one given to run_wsgi (a Flask app's sync view on the native
 * path), called in the context run_wsgi copied. */
void fra_wsgi_run(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  PyObject *app = ex->wsgi_app ? ex->wsgi_app : so->app; /* borrowed */
  PyObject *environ = NULL, *sr = NULL, *result = NULL, *it = NULL, *item;
  PyObject *ctx = ex->wsgi_ctx; /* borrowed */
  int entered = 0;
  if (ex->gone || !ex->req) goto finish;
  if (ctx) {
    if (PyContext_Enter(ctx) < 0) goto error;
    entered = 1;
  }
  if (ex->environ) {
    environ = ex->environ;
    ex->environ = NULL;
  } else {
    PyObject *input = fra_wsgi_input_new(ex);
    environ = input ? fra_build_environ(ex, input, -1) : NULL;
    Py_XDECREF(input);
    if (!environ) goto error;
  }
  sr = PyCFunction_New(&start_response_def, (PyObject *)ex);
  if (!sr) goto error;
  result = PyObject_CallFunctionObjArgs(app, environ, sr, NULL);
  if (!result) goto error;
  if (Py_IS_TYPE(result, so->st->FileWrapperType) && !ex->head_sent) {
    int sent = send_file_wrapper(ex, (FileWrapperObject *)result);
    if (sent < 0) goto error;
    if (sent > 0) goto close;
  }
  if ((PyList_CheckExact(result) || PyTuple_CheckExact(result)) && PySequence_Fast_GET_SIZE(result) == 1 && !ex->head_sent) {
    /* The whole body at once: sent with a Content-Length in one write. */
    if (send_chunk(ex, PySequence_Fast_GET_ITEM(result, 0), 0) < 0) goto error;
  } else {
    it = PyObject_GetIter(result);
    if (!it) goto error;
    while ((item = PyIter_Next(it))) {
      int rc2 = send_chunk(ex, item, 1);
      Py_DECREF(item);
      if (rc2 < 0) goto error;
      if (ex->gone) break;
    }
    if (PyErr_Occurred()) goto error;
  }
  if (!ex->complete && !ex->gone) {
    if (!ex->started) {
      PyErr_SetString(PyExc_RuntimeError, "WSGI app returned without calling start_response");
      goto error;
    }
    if (fra_ex_body(ex, "", 0, 0) < 0) goto error;
  }
  goto close;
error: {
  PyObject *exc = fra_err_take();
  fra__ex_log_app_error(ex, exc ? exc : Py_None, "Exception in WSGI application");
  Py_XDECREF(exc);
  if (!ex->head_sent && !ex->gone) fra__ex_respond_500(ex);
  else ex->wflags |= FRA_W_ABORT;
}
close:
  if (result) {
    PyObject *closer = PyObject_GetAttr(result, so->st->s_close);
    if (closer) {
      PyObject *r = PyObject_CallNoArgs(closer);
      Py_DECREF(closer);
      if (!r) {
        PyObject *exc = fra_err_take();
        fra__ex_log_app_error(ex, exc ? exc : Py_None, "Exception in WSGI response close()");
        Py_XDECREF(exc);
      }
      Py_XDECREF(r);
    } else {
      PyErr_Clear();
    }
  }
finish:
  Py_XDECREF(it);
  Py_XDECREF(result);
  Py_XDECREF(sr);
  Py_XDECREF(environ);
  Py_CLEAR(ex->wsgi_app);
  if (entered && PyContext_Exit(ctx) < 0) PyErr_WriteUnraisable((PyObject *)ex);
  Py_CLEAR(ex->wsgi_ctx);
  ex->wflags |= FRA_W_FINISH;
  fra_threads_post(ex);
}
