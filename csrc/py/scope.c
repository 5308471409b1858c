/* scope.c — builds the ASGI scope and the WSGI environ from a parsed request.  Owns the caches
 * of header-name and method objects (in the module state).  Every function here needs the GIL. */
#include "fra/bridge.h"
#include <ctype.h>

static const char *common_headers[] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "connection",
    "content-type", "content-length", "cookie", "authorization", "cache-control", "origin",
    "referer", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "upgrade",
    "transfer-encoding", "expect", "if-none-match", "if-modified-since", "pragma", "te",
    "sec-fetch-mode", "sec-fetch-site", "sec-fetch-dest", "dnt", "range", "x-real-ip", NULL};

int fra_scope_init(fra_state *st) {
  for (int i = 0; common_headers[i]; i++)
    if (!(st->hdr_names[i] = PyBytes_FromString(common_headers[i]))) return -1;
#define XX(num, name, string) \
  if (num < 64 && !st->methods[num] && !(st->methods[num] = PyUnicode_InternFromString(#string))) return -1;
  HTTP_METHOD_MAP(XX)
#undef XX
  return 0;
}

/* Lower-cased header name bytes; common names come from the cache. */
static PyObject *header_name(fra_state *st, const char *s, size_t n) {
  char low[64];
  if (n < sizeof low) {
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)s[i]);
    for (int i = 0; common_headers[i]; i++)
      if (PyBytes_GET_SIZE(st->hdr_names[i]) == (Py_ssize_t)n && memcmp(PyBytes_AS_STRING(st->hdr_names[i]), low, n) == 0)
        return Py_NewRef(st->hdr_names[i]);
    return PyBytes_FromStringAndSize(low, (Py_ssize_t)n);
  }
  PyObject *b = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
  if (!b) return NULL;
  char *p = PyBytes_AS_STRING(b);
  for (size_t i = 0; i < n; i++) p[i] = (char)tolower((unsigned char)p[i]);
  return b;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Percent-decodes in place into out (out >= n bytes); returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int h, l;
    if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
        (l = hexval((unsigned char)s[i + 2])) >= 0) {
      out[o++] = (char)(h * 16 + l);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  return o;
}

/* Splits the request target into path and query.  Absolute-form targets lose the scheme and
 * authority (RFC 9112 3.2.2). */
static void split_target(fra_req *r, const char **path, size_t *plen, const char **query, size_t *qlen) {
  const char *t = r->buf + r->url_off;
  size_t n = r->url_len;
  if (n && t[0] != '/' && t[0] != '*') {
    const char *sep = memchr(t, ':', n);
    if (sep && (size_t)(sep - t) + 3 <= n && sep[1] == '/' && sep[2] == '/') {
      const char *rest = sep + 3;
      const char *slash = memchr(rest, '/', n - (size_t)(rest - t));
      const char *q = memchr(rest, '?', n - (size_t)(rest - t));
      if (slash && (!q || slash < q)) {
        n -= (size_t)(slash - t);
        t = slash;
      } else {
        *path = "/";
        *plen = 1;
        *query = q ? q + 1 : "";
        *qlen = q ? n - (size_t)(q + 1 - t) : 0;
        return;
      }
    }
  }
  const char *q = memchr(t, '?', n);
  *path = t;
  *plen = q ? (size_t)(q - t) : n;
  *query = q ? q + 1 : "";
  *qlen = q ? n - (size_t)(q + 1 - t) : 0;
}

static PyObject *addr_tuple(char *ip, int port) {
  if (port < 0) return Py_NewRef(Py_None);
  return Py_BuildValue("(si)", ip, port);
}

PyObject *fra_conn_addrs(ExchangeObject *ex) {
  fra_conn *c = ex->conn;
  if (!c) return Py_BuildValue("(OO)", Py_None, Py_None);
  if (c->data) return Py_NewRef((PyObject *)c->data);
  char ip[64];
  int port;
  PyObject *client, *server;
  if (fra_conn_peer(c, ip, sizeof ip, &port) != 0) port = -1;
  client = addr_tuple(ip, port);
  if (!(c->flags & FRA_C_TCP)) {
    server = Py_NewRef(Py_None);
  } else {
    if (fra_conn_local(c, ip, sizeof ip, &port) != 0) port = -1;
    server = addr_tuple(ip, port);
  }
  if (!client || !server) {
    Py_XDECREF(client);
    Py_XDECREF(server);
    return NULL;
  }
  PyObject *t = PyTuple_Pack(2, client, server);
  Py_DECREF(client);
  Py_DECREF(server);
  if (t) c->data = Py_NewRef(t);
  return t;
}

static PyObject *method_str(fra_state *st, fra_req *r) {
  if (r->method < 64 && st->methods[r->method]) return Py_NewRef(st->methods[r->method]);
  return PyUnicode_DecodeLatin1(r->buf + r->method_off, r->method_len, NULL);
}

static PyObject *decoded_path(const char *p, size_t n, const char *errors, int latin1) {
  char stackbuf[512];
  char *buf = n <= sizeof stackbuf ? stackbuf : PyMem_Malloc(n);
  if (!buf) return PyErr_NoMemory();
  size_t dn = memchr(p, '%', n) ? pct_decode(p, n, buf) : (memcpy(buf, p, n), n);
  PyObject *s = latin1 ? PyUnicode_DecodeLatin1(buf, (Py_ssize_t)dn, NULL) : PyUnicode_DecodeUTF8(buf, (Py_ssize_t)dn, errors);
  if (buf != stackbuf) PyMem_Free(buf);
  return s;
}

#define SET(d, k, v)                                   \
  do {                                                 \
    PyObject *_v = (v);                                \
    if (!_v || PyDict_SetItem(d, k, _v) < 0) {         \
      Py_XDECREF(_v);                                  \
      goto fail;                                       \
    }                                                  \
    Py_DECREF(_v);                                     \
  } while (0)

PyObject *fra_scope_path(ExchangeObject *ex) {
  const char *path, *query;
  size_t plen, qlen;
  split_target(ex->req, &path, &plen, &query, &qlen);
  return decoded_path(path, plen, "replace", 0);
}

PyObject *fra_scope_method(ExchangeObject *ex) { return method_str(ex->srv->st, ex->req); }

PyObject *fra_build_scope(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  fra_state *st = so->st;
  fra_req *r = ex->req;
  const char *path, *query;
  size_t plen, qlen;
  split_target(r, &path, &plen, &query, &qlen);
  PyObject *d = _PyDict_NewPresized(16);
  if (!d) return NULL;
  SET(d, st->s_type, Py_NewRef(st->s_http));
  SET(d, st->s_asgi, Py_NewRef(st->asgi_info));
  SET(d, st->s_http_version, Py_NewRef(r->http_minor == 0 && r->http_major == 1 ? st->s_1_0 : st->s_1_1));
  SET(d, st->s_method, method_str(st, r));
  SET(d, st->s_scheme, Py_NewRef(st->s_http));
  SET(d, st->s_path, decoded_path(path, plen, "replace", 0));
  SET(d, st->s_raw_path, PyBytes_FromStringAndSize(path, (Py_ssize_t)plen));
  SET(d, st->s_query_string, PyBytes_FromStringAndSize(query, (Py_ssize_t)qlen));
  SET(d, st->s_root_path, Py_NewRef(so->root_path));
  PyObject *headers = PyList_New(r->nhdrs);
  if (!headers) goto fail;
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    fra_hdr *h = &r->hdrs[i];
    PyObject *n = header_name(st, r->buf + h->name_off, h->name_len);
    PyObject *v = n ? PyBytes_FromStringAndSize(r->buf + h->value_off, h->value_len) : NULL;
    PyObject *t = v ? PyTuple_Pack(2, n, v) : NULL;
    Py_XDECREF(n);
    Py_XDECREF(v);
    if (!t) {
      Py_DECREF(headers);
      goto fail;
    }
    PyList_SET_ITEM(headers, i, t);
  }
  SET(d, st->s_headers, headers);
  PyObject *addrs = fra_conn_addrs(ex);
  if (!addrs) goto fail;
  SET(d, st->s_client, Py_NewRef(PyTuple_GET_ITEM(addrs, 0)));
  SET(d, st->s_server, Py_NewRef(PyTuple_GET_ITEM(addrs, 1)));
  Py_DECREF(addrs);
  if (so->state && so->state != Py_None) SET(d, st->s_state, PyDict_Copy(so->state));
  return d;
fail:
  Py_DECREF(d);
  return NULL;
}

/* PEP 3333 environ.  Strings are "bytes as latin-1".  Header names with '_' are dropped: they
 * would be indistinguishable from '-' in HTTP_* keys (a header-smuggling vector). */
PyObject *fra_build_environ(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  fra_req *r = ex->req;
  const char *path, *query;
  size_t plen, qlen;
  split_target(r, &path, &plen, &query, &qlen);
  PyObject *d = PyDict_Copy(so->environ_base);
  if (!d) return NULL;
#define SETS(k, v)                                          \
  do {                                                      \
    PyObject *_v = (v);                                     \
    if (!_v || PyDict_SetItemString(d, k, _v) < 0) {        \
      Py_XDECREF(_v);                                       \
      goto fail;                                            \
    }                                                       \
    Py_DECREF(_v);                                          \
  } while (0)
  SETS("REQUEST_METHOD", method_str(so->st, r));
  SETS("PATH_INFO", decoded_path(path, plen, NULL, 1));
  SETS("QUERY_STRING", PyUnicode_DecodeLatin1(query, (Py_ssize_t)qlen, NULL));
  SETS("RAW_URI", PyUnicode_DecodeLatin1(r->buf + r->url_off, r->url_len, NULL));
  SETS("SERVER_PROTOCOL", Py_NewRef(r->http_minor == 0 ? so->st->str_HTTP_1_0 : so->st->str_HTTP_1_1));
  PyObject *addrs = fra_conn_addrs(ex);
  if (!addrs) goto fail;
  PyObject *client = PyTuple_GET_ITEM(addrs, 0), *server = PyTuple_GET_ITEM(addrs, 1);
  if (client != Py_None) {
    SETS("REMOTE_ADDR", Py_NewRef(PyTuple_GET_ITEM(client, 0)));
    SETS("REMOTE_PORT", PyObject_Str(PyTuple_GET_ITEM(client, 1)));
  } else {
    SETS("REMOTE_ADDR", PyUnicode_FromString(""));
  }
  if (server != Py_None) {
    SETS("SERVER_NAME", Py_NewRef(PyTuple_GET_ITEM(server, 0)));
    SETS("SERVER_PORT", PyObject_Str(PyTuple_GET_ITEM(server, 1)));
  } else {
    SETS("SERVER_NAME", PyUnicode_FromString("localhost"));
    SETS("SERVER_PORT", PyUnicode_FromString("0"));
  }
  Py_DECREF(addrs);
  char key[300];
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    fra_hdr *h = &r->hdrs[i];
    const char *n = r->buf + h->name_off;
    if (h->name_len + 6 > sizeof key || memchr(n, '_', h->name_len)) continue;
    size_t kl;
    if (h->name_len == 12 && strncasecmp(n, "content-type", 12) == 0) {
      strcpy(key, "CONTENT_TYPE");
      kl = 12;
    } else if (h->name_len == 14 && strncasecmp(n, "content-length", 14) == 0) {
      strcpy(key, "CONTENT_LENGTH");
      kl = 14;
    } else {
      memcpy(key, "HTTP_", 5);
      for (size_t j = 0; j < h->name_len; j++) key[5 + j] = n[j] == '-' ? '_' : (char)toupper((unsigned char)n[j]);
      kl = 5 + h->name_len;
    }
    key[kl] = 0;
    PyObject *v = PyUnicode_DecodeLatin1(r->buf + h->value_off, h->value_len, NULL);
    if (!v) goto fail;
    PyObject *old = PyDict_GetItemString(d, key); /* borrowed */
    if (old && kl > 5 && memcmp(key, "HTTP_", 5) == 0) {
      /* repeated fields are joined (RFC 9110 5.3) */
      PyObject *joined = PyUnicode_FromFormat("%U,%U", old, v);
      Py_DECREF(v);
      if (!joined) goto fail;
      v = joined;
    }
    SETS(key, v);
  }
  return d;
fail:
  Py_DECREF(d);
  return NULL;
#undef SETS
}
