/* module.c — the _core module: multi-phase init, module state (interned strings, asyncio
 * hooks, heap types), error conversion.  Owns the module state.  Every function here needs the
 * GIL. */
#include "fra/bridge.h"
#include "fra/redis.h"
#include "fra/stream.h"

fra_state *fra_state_of_type(PyTypeObject *t) {
  PyObject *m = PyType_GetModuleByDef(t, &fra_module_def);
  return m ? (fra_state *)PyModule_GetState(m) : NULL;
}

/* The one place where libuv error codes become Python exceptions. */
PyObject *fra_raise_uv(int rc, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, uv_strerror(rc));
  PyObject *e = PyObject_CallFunction(PyExc_OSError, "is", -rc, msg);
  if (e) {
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
  }
  return NULL;
}

/* Logs an exception from the app through the server's on_error callback, or prints it. */
void fra_log_error(ServerObject *so, const char *msg, PyObject *exc) {
  PyObject *m = PyUnicode_FromString(msg);
  if (m && so->on_error && so->on_error != Py_None && exc) {
    PyObject *r = PyObject_CallFunctionObjArgs(so->on_error, m, exc, NULL);
    if (!r) PyErr_WriteUnraisable(so->on_error);
    Py_XDECREF(r);
  } else if (exc) {
    PySys_WriteStderr("%s\n", msg);
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Display((PyObject *)Py_TYPE(exc), exc, tb);
    Py_XDECREF(tb);
  }
  Py_XDECREF(m);
}

int fra_join_methods(PyMethodDef *out, size_t cap, PyMethodDef *const parts[]) {
  size_t n = 0;
  for (int i = 0; parts[i]; i++)
    for (PyMethodDef *m = parts[i]; m->ml_name; m++) {
      if (n + 1 >= cap) return -1;
      out[n++] = *m;
    }
  return 0;
}

int fra_join_getset(PyGetSetDef *out, size_t cap, PyGetSetDef *const parts[]) {
  size_t n = 0;
  for (int i = 0; parts[i]; i++)
    for (PyGetSetDef *g = parts[i]; g->name; g++) {
      if (n + 1 >= cap) return -1;
      out[n++] = *g;
    }
  return 0;
}

static PyObject *version(PyObject *m, PyObject *unused) {
  return PyUnicode_FromFormat("flask-restful-async/0.1.0 libuv/%s llhttp/%d.%d.%d", uv_version_string(),
                              LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
}

static PyObject *sendfile_bytes(PyObject *m, PyObject *unused) {
  return PyLong_FromUnsignedLongLong(fra_sendfile_bytes());
}

static PyMethodDef module_methods[] = {
    {"version", version, METH_NOARGS, "Versions of the server and its libraries."},
    {"sendfile_bytes", sendfile_bytes, METH_NOARGS,
     "Bytes this process has sent with sendfile(2) (file responses), for tests and stats."},
    {NULL, NULL, 0, NULL},
};

#define INTERN(field, text) \
  if (!(st->field = PyUnicode_InternFromString(text))) return -1;

/* Every member of fra_state is an object reference (types included), so the state can be
 * visited and cleared as an array of them: nothing is ever left out. */
#define STATE_REFS(st) ((PyObject **)(st))
#define STATE_NREFS (sizeof(fra_state) / sizeof(PyObject *))
_Static_assert(sizeof(fra_state) % sizeof(PyObject *) == 0, "fra_state holds only object references");

static int module_exec(PyObject *m) {
  fra_state *st = PyModule_GetState(m);
  INTERN(s_type, "type") INTERN(s_http, "http") INTERN(s_asgi, "asgi")
  INTERN(s_http_version, "http_version") INTERN(s_method, "method") INTERN(s_scheme, "scheme")
  INTERN(s_path, "path") INTERN(s_raw_path, "raw_path") INTERN(s_query_string, "query_string")
  INTERN(s_root_path, "root_path") INTERN(s_headers, "headers") INTERN(s_client, "client")
  INTERN(s_server, "server") INTERN(s_state, "state") INTERN(s_status, "status")
  INTERN(s_body, "body") INTERN(s_more_body, "more_body") INTERN(s_http_request, "http.request")
  INTERN(s_http_disconnect, "http.disconnect") INTERN(s_http_response_start, "http.response.start")
  INTERN(s_http_response_body, "http.response.body")
  INTERN(s_asyncio_future_blocking, "_asyncio_future_blocking")
  INTERN(s_add_done_callback, "add_done_callback") INTERN(s_result, "result")
  INTERN(s_cancel, "cancel") INTERN(s_throw, "throw") INTERN(s_close, "close")
  INTERN(s_call_soon, "call_soon") INTERN(s_call_later, "call_later")
  INTERN(s_create_future, "create_future") INTERN(s_set_result, "set_result")
  INTERN(s_set_exception, "set_exception") INTERN(s_done, "done")
  INTERN(s_add_reader, "add_reader") INTERN(s_remove_reader, "remove_reader")
  INTERN(s_add_writer, "add_writer") INTERN(s_remove_writer, "remove_writer")
  INTERN(s_1_1, "1.1") INTERN(s_1_0, "1.0")
  INTERN(str_HTTP_1_1, "HTTP/1.1") INTERN(str_HTTP_1_0, "HTTP/1.0")
  INTERN(s_REQUEST_METHOD, "REQUEST_METHOD") INTERN(s_PATH_INFO, "PATH_INFO")
  INTERN(s_QUERY_STRING, "QUERY_STRING") INTERN(s_RAW_URI, "RAW_URI")
  INTERN(s_SERVER_PROTOCOL, "SERVER_PROTOCOL") INTERN(s_REMOTE_ADDR, "REMOTE_ADDR")
  INTERN(s_REMOTE_PORT, "REMOTE_PORT") INTERN(s_SERVER_NAME, "SERVER_NAME")
  INTERN(s_SERVER_PORT, "SERVER_PORT") INTERN(s_CONTENT_LENGTH, "CONTENT_LENGTH")
  INTERN(s_wsgi_input, "wsgi.input")
  INTERN(s_http_response_zerocopy, "http.response.zerocopy")
  INTERN(s_http_response_pathsend, "http.response.pathsend")
  INTERN(s_file, "file") INTERN(s_offset, "offset") INTERN(s_count, "count")
  INTERN(s_extensions, "extensions") INTERN(s_tell, "tell") INTERN(s_read, "read")
  INTERN(s_fileno, "fileno")

  PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
  if (!tasks) return -1;
  st->enter_task = PyObject_GetAttrString(tasks, "_enter_task");
  st->leave_task = PyObject_GetAttrString(tasks, "_leave_task");
  Py_DECREF(tasks);
  if (!st->enter_task || !st->leave_task) return -1;
  PyObject *exc = PyImport_ImportModule("asyncio.exceptions");
  if (!exc) return -1;
  st->CancelledError = PyObject_GetAttrString(exc, "CancelledError");
  st->InvalidStateError = PyObject_GetAttrString(exc, "InvalidStateError");
  Py_DECREF(exc);
  if (!st->CancelledError || !st->InvalidStateError) return -1;
  PyObject *io = PyImport_ImportModule("io");
  if (!io) return -1;
  st->BytesIO = PyObject_GetAttrString(io, "BytesIO");
  Py_DECREF(io);
  if (!st->BytesIO) return -1;
  /* ASGI spec 2.4: send() on a closed connection raises a server-specific OSError subclass */
  st->ClientDisconnected = PyErr_NewExceptionWithDoc(
      "flask_restful_async._core.ClientDisconnected",
      "The client has gone: what was sent (ASGI send(), Exchange.respond()) goes nowhere.",
      PyExc_OSError, NULL);
  if (!st->ClientDisconnected || PyModule_AddObjectRef(m, "ClientDisconnected", st->ClientDisconnected) < 0)
    return -1;

  if (!(st->asgi_info = Py_BuildValue("{ssss}", "version", "3.0", "spec_version", "2.4"))) return -1;
  /* the ASGI extensions our send() takes (asgi.c): files go with sendfile(2) */
  if (!(st->asgi_extensions = Py_BuildValue("{s{}s{}}", "http.response.pathsend", "http.response.zerocopy")))
    return -1;
  if (!(st->kw_context = Py_BuildValue("(s)", "context"))) return -1;
  if (!(st->empty_bytes = PyBytes_FromStringAndSize("", 0))) return -1;
  if (!(st->empty_tuple = PyTuple_New(0))) return -1;
  if (!(st->wsgi_version = Py_BuildValue("(ii)", 1, 0))) return -1;

  if (fra_exchange_spec_prepare() < 0 || fra_server_spec_prepare() < 0) return -1;
  st->ServerType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_server_spec, NULL);
  st->ExchangeType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_exchange_spec, NULL);
  st->ReadyType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_ready_spec, NULL);
  st->InputType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_input_spec, NULL);
  st->CallType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_call_spec, NULL);
  st->FileWrapperType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_file_wrapper_spec, NULL);
  st->StreamGroupType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra_stream_group_spec, NULL);
  if (!st->ServerType || !st->ExchangeType || !st->ReadyType || !st->InputType || !st->CallType ||
      !st->FileWrapperType || !st->StreamGroupType)
    return -1;
  if (PyModule_AddType(m, st->FileWrapperType) < 0) return -1;
  if (PyModule_AddType(m, st->StreamGroupType) < 0) return -1;
  if (PyModule_AddType(m, st->ServerType) < 0) return -1;
  if (PyModule_AddType(m, st->ExchangeType) < 0) return -1;
  if (fra_server_add_limits(m) < 0) return -1;
  st->none_ready = fra_ready_new(st, Py_None);
  if (!st->none_ready) return -1;
  if (fra_request_init(st) < 0) return -1;
  if (fra_redis_module_init(m, st) < 0) return -1;
  if (fra_stream_module_init(m, st) < 0) return -1;
#ifdef FRA_FAULT_INJECTION
  if (PyModule_AddIntConstant(m, "FAULT_INJECTION", 1) < 0) return -1;
#else
  if (PyModule_AddIntConstant(m, "FAULT_INJECTION", 0) < 0) return -1;
#endif
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  fra_state *st = PyModule_GetState(m);
  if (!st) return 0;
  for (size_t i = 0; i < STATE_NREFS; i++) Py_VISIT(STATE_REFS(st)[i]);
  return 0;
}

static int module_clear(PyObject *m) {
  fra_state *st = PyModule_GetState(m);
  if (!st) return 0;
  for (size_t i = 0; i < STATE_NREFS; i++) Py_CLEAR(STATE_REFS(st)[i]);
  return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyModuleDef fra_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "flask_restful_async._core",
    .m_doc = "The C HTTP/1.1 server (libuv + llhttp) and its Python bridge.",
    .m_size = sizeof(fra_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&fra_module_def); }
