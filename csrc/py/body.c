/* body.c — the request body on its way to Python, copied once: from the read buffer straight
 * into the bytes object the app is handed (receive()'s http.request body, body(), take_body()).
 * Owns the exchange's sink: a bytes object filled as body bytes arrive, handed over shrunk to
 * what it holds (a realloc in place, not a copy).  Every function here needs the GIL. */
#include "exchange_internal.h"

/* A sink's first size when the body's rest is larger (or unknown), and the step it doubles
 * from.  Below glibc's mmap threshold (128 KiB): a sink comes from the heap, where the memory
 * of the one handed over before is reused while still in cache; made for 256 KiB at a time,
 * each sink was a fresh mmap, page-faulted in (0.7 mmap + munmap + mremap per 1 MiB upload,
 * about 125 page faults).  A sink holds what one read brings while the app waits for it;
 * it grows (realloc, in place when it can) only while the app falls behind. */
#define SINK_STEP (64 * 1024)

/* The capacity for a sink that must hold `need` bytes (it has `cap`).  body() gathers the
 * whole body: with Content-Length, room for all of it at once, so it never grows. */
static size_t sink_target(ExchangeObject *ex, size_t need, size_t cap) {
  const fra_req *r = ex->req;
  uint64_t rest = r->chunked ? UINT64_MAX : r->content_length > r->body_total ? r->content_length - r->body_total : 0;
  size_t all = rest > SIZE_MAX - need ? SIZE_MAX : need + (size_t)rest; /* the whole body's rest */
  size_t want;
  if (ex->gathering && !r->chunked) {
    want = all;
  } else {
    want = cap ? (cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2) : SINK_STEP;
    if (want > all) want = all;
    if (!ex->gathering && want > FRA_BODY_HIGH) want = FRA_BODY_HIGH;
  }
  return want < need ? need : want;
}

static int sink_put(ExchangeObject *ex, const char *at, size_t len) {
  if (!len) return 0;
  size_t cap = ex->sink ? (size_t)PyBytes_GET_SIZE(ex->sink) : 0;
  size_t need = ex->sink_len + len;
  if (need > cap) {
    size_t want = sink_target(ex, need, cap);
    if (want > PY_SSIZE_T_MAX) {
      PyErr_NoMemory();
      return -1;
    }
    if (!ex->sink) {
      if (!(ex->sink = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want))) return -1;
    } else if (_PyBytes_Resize(&ex->sink, (Py_ssize_t)want) < 0) { /* (the sink is gone) */
      ex->sink_len = 0;
      return -1;
    }
  }
  memcpy(PyBytes_AS_STRING(ex->sink) + ex->sink_len, at, len);
  ex->sink_len = need;
  if (!ex->gathering) ex->req->body_held = ex->sink_len; /* body(): never held back */
  return 0;
}

int fra__body_absorb(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!r) return 0;
  if (r->body_len > r->body_off) {
    /* queued by the core (before the sink took over, or declined): they come first */
    if (sink_put(ex, r->body + r->body_off, r->body_len - r->body_off) < 0) return -1;
    r->body_off = r->body_len = 0;
  }
  if (r->pre_len) {
    const char *at = r->pre_at;
    size_t len = r->pre_len;
    r->pre_at = NULL;
    r->pre_len = 0;
    if (sink_put(ex, at, len) < 0) return -1;
  }
  return 0;
}

PyObject *fra__body_take(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (fra__body_absorb(ex) < 0) return NULL;
  PyObject *body = ex->sink;
  if (!body) return Py_NewRef(ex->srv->st->empty_bytes);
  if ((size_t)PyBytes_GET_SIZE(body) != ex->sink_len && _PyBytes_Resize(&body, (Py_ssize_t)ex->sink_len) < 0) {
    ex->sink = NULL;
    ex->sink_len = 0;
    return NULL;
  }
  ex->sink = NULL; /* ownership moves to the caller */
  ex->sink_len = 0;
  if (r) r->body_held = 0;
  if (ex->conn) fra_conn_body_consumed(ex->conn);
  return body;
}

void fra__body_unsink(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!r) return;
  if (r->pre_len && fra_req_pre_flush(r) < 0) PyErr_NoMemory();
  if (ex->sink_len) {
    /* the sink's bytes go before any the core queued since (none: it offered them to us) */
    if (fra_req_body_append(r, PyBytes_AS_STRING(ex->sink), ex->sink_len) < 0) PyErr_NoMemory();
  }
  Py_CLEAR(ex->sink);
  ex->sink_len = 0;
  r->body_held = 0;
  if (PyErr_Occurred()) PyErr_WriteUnraisable((PyObject *)ex);
}

int fra_hook_body_data(fra_conn *c, const char *at, size_t len) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex || ex->kind != FRA_IF_ASGI || !ex->req || ex->body_delivered) return 0;
  if (fra__body_absorb(ex) < 0 || sink_put(ex, at, len) < 0) {
    PyErr_WriteUnraisable((PyObject *)ex);
    return -1;
  }
  return 1;
}
