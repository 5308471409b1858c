/* framing.c — a response as bytes: the status line and head (Date and Server unless the app
 * sent its own, Content-Length or chunked, Connection), a WSGI-style status and header list,
 * body bytes framed as the head says, 100 Continue, the canned 500.  The server writes the
 * header names it adds itself in the case RFC 9110 spells them (Content-Length, Connection);
 * the app's names go out as the app wrote them.  Runs on the loop thread (ASGI, native) or on a WSGI pool thread, with the
 * GIL held either way.  Owns the exchange's head buffer.  Every function here needs the GIL. */
#include "exchange_internal.h"

static int head_reserve(ExchangeObject *ex, size_t more) {
  if (ex->head_len + more <= ex->head_cap) return 0;
  size_t cap = ex->head_cap * 2;
  while (cap < ex->head_len + more) cap *= 2;
  char *nb;
  if (ex->head == ex->inline_head) {
    nb = PyMem_Malloc(cap);
    if (nb) memcpy(nb, ex->head, ex->head_len);
  } else {
    nb = PyMem_Realloc(ex->head, cap);
  }
  if (!nb) {
    PyErr_NoMemory();
    return -1;
  }
  ex->head = nb;
  ex->head_cap = cap;
  return 0;
}

static void head_put(ExchangeObject *ex, const char *s, size_t n) {
  memcpy(ex->head + ex->head_len, s, n);
  ex->head_len += n;
}

/* Starts the head: the status line (given, or built from the status), Date and Server go in
 * at the end unless the app sent its own. */
int fra_ex_head_begin(ExchangeObject *ex, int status, const char *line, size_t line_len) {
  ex->head_len = 0;
  ex->has_app_cl = ex->has_date = ex->has_server = ex->close_after = 0;
  ex->status = status;
  ex->no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (head_reserve(ex, line ? line_len + 16 : 64) < 0) return -1;
  if (line) {
    head_put(ex, "HTTP/1.1 ", 9);
    head_put(ex, line, line_len);
    head_put(ex, "\r\n", 2);
  } else {
    ex->head_len += fra_status_line(ex->head + ex->head_len, status);
  }
  return 0;
}

static int name_is(const char *n, size_t nl, const char *lit, size_t ll) {
  return nl == ll && strncasecmp(n, lit, ll) == 0;
}

int fra_ex_head_add(ExchangeObject *ex, const char *name, size_t nlen, const char *value, size_t vlen) {
  if (!fra_valid_header_name(name, nlen)) {
    PyErr_SetString(PyExc_ValueError, "invalid response header name: empty or not a token");
    return -1;
  }
  if (!fra_valid_header_value(value, vlen)) {
    PyErr_SetString(PyExc_ValueError, "invalid response header value: contains CR, LF or NUL");
    return -1;
  }
  switch (nlen) {
  case 4:
    if (name_is(name, nlen, "date", 4)) ex->has_date = 1;
    break;
  case 6:
    if (name_is(name, nlen, "server", 6)) ex->has_server = 1;
    break;
  case 10:
    if (name_is(name, nlen, "connection", 10)) {
      if (vlen == 5 && strncasecmp(value, "close", 5) == 0) ex->close_after = 1;
      return 0; /* the server decides Connection itself */
    }
    break;
  case 14:
    if (name_is(name, nlen, "content-length", 14)) {
      uint64_t v = 0;
      if (vlen == 0 || vlen > 19) goto bad_cl;
      for (size_t i = 0; i < vlen; i++) {
        if (value[i] < '0' || value[i] > '9') goto bad_cl;
        v = v * 10 + (uint64_t)(value[i] - '0');
      }
      if (ex->has_app_cl && v != ex->app_cl) goto bad_cl;
      ex->has_app_cl = 1;
      ex->app_cl = v;
      return 0; /* written by head_end, once */
    }
    break;
  case 17:
    if (name_is(name, nlen, "transfer-encoding", 17)) return 0; /* framing is the server's */
    break;
  }
  if (head_reserve(ex, nlen + vlen + 4) < 0) return -1;
  head_put(ex, name, nlen);
  head_put(ex, ": ", 2);
  head_put(ex, value, vlen);
  head_put(ex, "\r\n", 2);
  return 0;
bad_cl:
  PyErr_SetString(PyExc_ValueError, "invalid Content-Length response header");
  return -1;
}

/* Emits bytes to the client.  On the loop thread (ASGI) they go to the socket; from a WSGI
 * thread they are queued for the loop thread. */
static int ex_emit(ExchangeObject *ex, uv_buf_t *bufs, unsigned n) {
  if (ex->kind == FRA_IF_ASGI) {
    if (!ex->conn) return 0;
    fra_conn_write(ex->conn, bufs, n);
    return 0;
  }
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  if (total == 0) return 0;
  PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
  if (!b) return -1;
  char *p = PyBytes_AS_STRING(b);
  for (unsigned i = 0; i < n; i++) {
    memcpy(p, bufs[i].base, bufs[i].len);
    p += bufs[i].len;
  }
  if (!ex->outq && !(ex->outq = PyList_New(0))) {
    Py_DECREF(b);
    return -1;
  }
  int rc = PyList_Append(ex->outq, b);
  Py_DECREF(b);
  ex->out_pending += total;
  return rc;
}

/* Finishes the head: Date, Server, framing, Connection; into ex->head. */
static int head_end(ExchangeObject *ex, int whole, size_t len) {
  fra_server *s = &ex->srv->core;
  if (head_reserve(ex, 256) < 0) return -1;
  if (!ex->has_date) {
    size_t dl;
    const char *d = fra_date_header(&dl);
    head_put(ex, d, dl);
  }
  if (!ex->has_server && s->cfg.server_header_len) head_put(ex, s->cfg.server_header, s->cfg.server_header_len);
  if (ex->no_body) {
    /* no framing */
  } else if (ex->has_app_cl || whole) {
    head_put(ex, "Content-Length: ", 16);
    ex->head_len += fra_decimal(ex->head + ex->head_len, ex->has_app_cl ? ex->app_cl : len);
    head_put(ex, "\r\n", 2);
  } else if (ex->req && ex->req->http_minor >= 1) {
    head_put(ex, "Transfer-Encoding: chunked\r\n", 28);
    ex->chunked = !ex->is_head;
  } else {
    ex->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
  }
  /* The core decides whether the connection outlives this response (not while draining, nor
   * when a body still arriving cannot be dropped after it; RFC 9112 9.6). */
  int keep = ex->keep_alive && !ex->close_after && ex->conn && fra_conn_may_keep_alive(ex->conn, ex->continue_sent);
  if (!keep) {
    ex->keep_alive = 0;
    head_put(ex, "Connection: close\r\n", 19);
  } else if (ex->req && ex->req->http_minor == 0) {
    head_put(ex, "Connection: keep-alive\r\n", 24);
  }
  head_put(ex, "\r\n", 2);
  return 0;
}

/* Sends body bytes; more=0 completes the response.  Returns 0, or -1 with an exception set
 * (the caller treats it as an app error). */
int fra_ex_body(ExchangeObject *ex, const char *data, size_t len, int more) {
  uv_buf_t bufs[4];
  unsigned n = 0;
  char chunk_head[24];
  int drop = ex->is_head || ex->no_body;
  if (ex->has_app_cl && !drop && ex->body_sent + len > ex->app_cl) {
    /* More than the declared Content-Length: the response cannot be framed. */
    ex->keep_alive = 0;
    ex->wflags |= FRA_W_ABORT;
    PyErr_SetString(PyExc_RuntimeError, "response body longer than its Content-Length");
    return -1;
  }
  if (!ex->head_sent) {
    if (head_end(ex, !more, len) < 0) return -1;
    ex->head_sent = 1;
    if (!drop && !ex->chunked && len && len <= 4096 && ex->head_len + len <= ex->head_cap) {
      /* Small body: one buffer, one write. */
      head_put(ex, data, len);
      ex->body_sent += len;
      len = 0;
    }
    bufs[n++] = fra_buf(ex->head, ex->head_len);
  }
  if (len && !drop) {
    if (ex->chunked) {
      bufs[n++] = fra_buf(chunk_head, fra_chunk_head(chunk_head, len));
      bufs[n++] = fra_buf(data, len);
      bufs[n++] = fra_buf("\r\n", 2);
    } else {
      bufs[n++] = fra_buf(data, len);
    }
    ex->body_sent += len;
  }
  if (!more) {
    if (ex->chunked) {
      if (n == 4) { /* no room left: emit what we have first */
        if (ex_emit(ex, bufs, n) < 0) return -1;
        n = 0;
      }
      bufs[n++] = fra_buf("0\r\n\r\n", 5);
    }
    ex->complete = 1;
  }
  if (n && ex_emit(ex, bufs, n) < 0) return -1;
  if (ex->head_sent && ex->head != ex->inline_head) {
    /* A head too long for the inline buffer is not kept for the rest of a long stream:
     * what the socket did not take was copied by the emit. */
    PyMem_Free(ex->head);
    ex->head = ex->inline_head;
    ex->head_cap = sizeof ex->inline_head;
    ex->head_len = 0;
  }
  if (!more && ex->has_app_cl && !drop && ex->body_sent < ex->app_cl) {
    /* Shorter than declared: the client would wait for the rest, so the connection closes. */
    ex->keep_alive = 0;
    ex->wflags |= FRA_W_ABORT;
  }
  return 0;
}

int fra_ex_file_frame(ExchangeObject *ex, uint64_t count, int last, char *after, size_t *after_len) {
  uv_buf_t bufs[3];
  unsigned n = 0;
  char chunk_head[24];
  int drop = ex->is_head || ex->no_body;
  *after_len = 0;
  if (ex->has_app_cl && !drop && ex->body_sent + count > ex->app_cl) {
    ex->keep_alive = 0;
    ex->wflags |= FRA_W_ABORT;
    PyErr_SetString(PyExc_RuntimeError, "response body longer than its Content-Length");
    return -1;
  }
  if (!ex->head_sent) {
    if (head_end(ex, last, (size_t)count) < 0) return -1;
    ex->head_sent = 1;
    bufs[n++] = fra_buf(ex->head, ex->head_len);
  }
  int send = count && !drop;
  if (ex->chunked) {
    if (send) {
      bufs[n++] = fra_buf(chunk_head, fra_chunk_head(chunk_head, (size_t)count));
      memcpy(after, "\r\n", 2);
      *after_len = 2;
    }
    if (last) {
      memcpy(after + *after_len, "0\r\n\r\n", 5);
      *after_len += 5;
    }
  }
  if (send) ex->body_sent += count;
  if (last) {
    ex->complete = 1;
    if (ex->has_app_cl && !drop && ex->body_sent < ex->app_cl) {
      /* Shorter than declared: the client would wait for the rest, so the connection closes. */
      ex->keep_alive = 0;
      ex->wflags |= FRA_W_ABORT;
    }
  }
  if (!send && *after_len) {
    bufs[n++] = fra_buf(after, *after_len);
    *after_len = 0;
  }
  if (n && ex_emit(ex, bufs, n) < 0) return -1;
  return send;
}

/* A plain 500 when the app failed before starting its response. */
void fra__ex_respond_500(ExchangeObject *ex) {
  static const char body[] = "Internal Server Error\n";
  if (ex->started && ex->head_sent) return;
  ex->started = 1;
  ex->head_sent = 0;
  ex->chunked = 0;
  if (fra_ex_head_begin(ex, 500, NULL, 0) < 0 ||
      fra_ex_head_add(ex, "Content-Type", 12, "text/plain; charset=utf-8", 25) < 0 ||
      fra_ex_body(ex, body, sizeof body - 1, 0) < 0)
    PyErr_Clear();
}

/* A head from a WSGI status line ("200 OK") and header list [(str, str)] (PEP 3333: both
 * latin-1 text), for start_response and for the native respond_wsgi(). */
int fra__ex_head_wsgi(ExchangeObject *ex, PyObject *status, PyObject *headers) {
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "status must be a str such as '200 OK'");
    return -1;
  }
  Py_ssize_t sl;
  const char *s = PyUnicode_AsUTF8AndSize(status, &sl);
  if (!s) return -1;
  if (sl < 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
      (sl > 3 && s[3] != ' ') || !fra_valid_header_value(s, (size_t)sl)) {
    PyErr_Format(PyExc_ValueError, "invalid status %R", status);
    return -1;
  }
  int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (fra_ex_head_begin(ex, code, s, (size_t)sl) < 0) return -1;
  PyObject *seq = PySequence_Fast(headers, "headers must be a list of (name, value) tuples");
  if (!seq) return -1;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject *pair = PySequence_Fast_GET_ITEM(seq, i); /* borrowed */
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
      PyErr_SetString(PyExc_TypeError, "each header must be a (str, str) tuple");
      Py_DECREF(seq);
      return -1;
    }
    PyObject *nb = PyUnicode_AsLatin1String(PyTuple_GET_ITEM(pair, 0));
    PyObject *vb = nb ? PyUnicode_AsLatin1String(PyTuple_GET_ITEM(pair, 1)) : NULL;
    int rc = vb ? fra_ex_head_add(ex, PyBytes_AS_STRING(nb), (size_t)PyBytes_GET_SIZE(nb), PyBytes_AS_STRING(vb),
                                  (size_t)PyBytes_GET_SIZE(vb))
                : -1;
    Py_XDECREF(nb);
    Py_XDECREF(vb);
    if (rc < 0) {
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  return 0;
}

/* "100 Continue" (RFC 9110 15.2.1) before the first read of a body the client holds back,
 * unless a final response has started (loop thread). */
void fra__ex_continue(ExchangeObject *ex) {
  if (ex->continue_sent || ex->started || !ex->conn || !ex->req || !ex->req->expect_continue) return;
  ex->continue_sent = 1;
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)line, sizeof line - 1);
  fra_conn_write(ex->conn, &b, 1);
}
