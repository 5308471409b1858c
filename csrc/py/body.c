/* body.c — the request body on its way to Python, copied once: from the read buffer straight
 * into the bytes objects the app is handed (receive()'s http.request bodies, body(),
 * take_body()).  Owns the exchange's sinks: bytes objects filled as body bytes arrive, the one
 * being filled and those filled and not yet taken, each handed over as it is (the last one
 * shrunk to what it holds: a realloc in place, not a copy).  Every function here needs the
 * GIL. */
#include "exchange_internal.h"

/* A sink's size for receive(): a read's worth.  Bytes keep arriving while a woken handler
 * waits for its turn (libuv reads up to 32 times per pass), so sinks fill one after another;
 * a full one is queued, and each receive() takes the oldest.  At this size a sink comes from
 * the heap (glibc's mmap threshold is 128 KiB), where the memory of the sinks taken before is
 * reused while still in cache.  Tried first: one sink per receive() made for 256 KiB, or
 * grown by realloc as bytes came: each was a fresh mmap (0.7 mmap + munmap + mremap and
 * about 125 page faults per 1 MiB upload), and a grown one was copied again. */
#define SINK_STEP (64 * 1024)

/* Bytes of the body still to come after those received so far (SIZE_MAX: chunked). */
static size_t body_rest(const fra_req *r) {
  if (r->chunked) return SIZE_MAX;
  uint64_t rest = r->content_length > r->body_total ? r->content_length - r->body_total : 0;
  return rest > SIZE_MAX ? SIZE_MAX : (size_t)rest;
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* Makes a sink of cap bytes the one being filled.  0 or -1. */
static int sink_new(ExchangeObject *ex, size_t cap) {
  if (cap > PY_SSIZE_T_MAX) {
    PyErr_NoMemory();
    return -1;
  }
  if (!(ex->sink = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap))) return -1;
  ex->sink_len = 0;
  return 0;
}

/* The sink being filled, shrunk to what it holds, taken (a new reference; NULL: none). */
static PyObject *sink_detach(ExchangeObject *ex) {
  PyObject *b = ex->sink;
  if (!b) return NULL;
  ex->sink = NULL;
  if ((size_t)PyBytes_GET_SIZE(b) != ex->sink_len && _PyBytes_Resize(&b, (Py_ssize_t)ex->sink_len) < 0) {
    ex->sink_len = 0;
    return NULL;
  }
  ex->sink_len = 0;
  return b;
}

static size_t held(ExchangeObject *ex) {
  size_t n = ex->sink_len;
  if (ex->sinks_full) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ex->sinks_full); i++)
      n += (size_t)PyBytes_GET_SIZE(PyList_GET_ITEM(ex->sinks_full, i));
  }
  return n;
}

/* Copies len bytes in: into the sink being filled, a full one queued and a new one made as
 * needed.  body() (gathering) has one sink for the whole body: with Content-Length made for
 * all of it at once; chunked, doubled (realloc) as it comes. */
static int sink_put(ExchangeObject *ex, const char *at, size_t len) {
  fra_req *r = ex->req;
  size_t rest = body_rest(r); /* after these len bytes */
  while (len) {
    size_t cap = ex->sink ? (size_t)PyBytes_GET_SIZE(ex->sink) : 0;
    if (ex->gathering) {
      size_t need = add_sat(ex->sink_len, len);
      if (need > cap) {
        size_t want = r->chunked ? (cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2) : add_sat(need, rest);
        if (want < need) want = need;
        if (want < SINK_STEP) want = r->chunked ? SINK_STEP : want;
        if (!ex->sink) {
          if (sink_new(ex, want) < 0) return -1;
        } else if (want > PY_SSIZE_T_MAX || _PyBytes_Resize(&ex->sink, (Py_ssize_t)want) < 0) {
          if (ex->sink) PyErr_NoMemory();
          ex->sink_len = 0; /* (the sink is gone) */
          return -1;
        }
      }
      memcpy(PyBytes_AS_STRING(ex->sink) + ex->sink_len, at, len);
      ex->sink_len += len;
      return 0;
    }
    if (ex->sink && ex->sink_len == cap) { /* full: queued for receive() */
      if (!ex->sinks_full && !(ex->sinks_full = PyList_New(0))) return -1;
      if (PyList_Append(ex->sinks_full, ex->sink) < 0) return -1;
      Py_CLEAR(ex->sink);
      ex->sink_len = 0;
      cap = 0;
    }
    if (!ex->sink) {
      size_t want = add_sat(len, rest); /* (no more than the body still holds) */
      if (sink_new(ex, want < SINK_STEP ? want : SINK_STEP) < 0) return -1;
      cap = (size_t)PyBytes_GET_SIZE(ex->sink);
    }
    size_t n = cap - ex->sink_len < len ? cap - ex->sink_len : len;
    memcpy(PyBytes_AS_STRING(ex->sink) + ex->sink_len, at, n);
    ex->sink_len += n;
    at += n;
    len -= n;
  }
  r->body_held = held(ex);
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

int fra__body_gather(ExchangeObject *ex) {
  if (ex->gathering) return 0;
  if (fra__body_absorb(ex) < 0) return -1;
  ex->gathering = 1;
  if (ex->req) ex->req->body_held = 0; /* gathered whole: reading is never held back for it */
  if (!ex->sinks_full || PyList_GET_SIZE(ex->sinks_full) == 0) return 0;
  /* Sinks filled before body() was called (it usually is at once): joined, a second copy of
   * those bytes only. */
  PyObject *last = sink_detach(ex);
  if (!last && PyErr_Occurred()) return -1;
  if (last && PyList_Append(ex->sinks_full, last) < 0) {
    Py_DECREF(last);
    return -1;
  }
  Py_XDECREF(last);
  size_t have = held(ex);
  size_t rest = body_rest(ex->req);
  if (sink_new(ex, ex->req->chunked ? have : add_sat(have, rest)) < 0) return -1;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ex->sinks_full); i++) {
    PyObject *b = PyList_GET_ITEM(ex->sinks_full, i); // borrowed
    memcpy(PyBytes_AS_STRING(ex->sink) + ex->sink_len, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    ex->sink_len += (size_t)PyBytes_GET_SIZE(b);
  }
  Py_CLEAR(ex->sinks_full);
  return 0;
}

PyObject *fra__body_take(ExchangeObject *ex, int whole) {
  fra_req *r = ex->req;
  if (fra__body_absorb(ex) < 0) return NULL;
  if (whole && fra__body_gather(ex) < 0) return NULL;
  PyObject *body;
  if (ex->sinks_full && PyList_GET_SIZE(ex->sinks_full)) {
    body = PySequence_GetItem(ex->sinks_full, 0);
    if (!body || PySequence_DelItem(ex->sinks_full, 0) < 0) {
      Py_XDECREF(body);
      return NULL;
    }
  } else {
    body = sink_detach(ex);
    if (!body) {
      if (PyErr_Occurred()) return NULL;
      body = Py_NewRef(ex->srv->st->empty_bytes);
    }
  }
  if (r) r->body_held = ex->gathering ? 0 : held(ex);
  if (ex->conn) fra_conn_body_consumed(ex->conn);
  return body;
}

int fra__body_pending(ExchangeObject *ex) {
  return ex->sink_len || (ex->sinks_full && PyList_GET_SIZE(ex->sinks_full)) ||
         (ex->req && (ex->req->body_len > ex->req->body_off || ex->req->pre_len));
}

void fra__body_unsink(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!r) return;
  if (r->pre_len && fra_req_pre_flush(r) < 0) PyErr_NoMemory();
  /* the sinks' bytes came before any the core queued since (none: it offered them to us) */
  if (ex->sinks_full) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ex->sinks_full); i++) {
      PyObject *b = PyList_GET_ITEM(ex->sinks_full, i); // borrowed
      if (fra_req_body_append(r, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b)) < 0) PyErr_NoMemory();
    }
  }
  if (ex->sink_len && fra_req_body_append(r, PyBytes_AS_STRING(ex->sink), ex->sink_len) < 0) PyErr_NoMemory();
  Py_CLEAR(ex->sinks_full);
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
