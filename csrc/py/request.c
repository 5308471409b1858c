/* request.c — the parsed request as Python objects: its method and path, the ASGI scope and the
 * PEP 3333 environ (the one environ builder of this server: WSGI apps, sync views of a Flask
 * app with our Api, and the werkzeug request of its async views all get theirs from here).
 * Owns the caches of header-name, environ-key and method objects (in the module state).  Every
 * function here needs the GIL. */
#include "fra/bridge.h"
#include <ctype.h>

/* Names cached as objects: the scope's lower-case header names, the environ's HTTP_* keys.
 * Index i of st->hdr_names and st->env_keys is common_headers[i]. */
static const char *common_headers[] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "connection",
    "content-type", "content-length", "cookie", "authorization", "cache-control", "origin",
    "referer", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "upgrade",
    "transfer-encoding", "expect", "if-none-match", "if-modified-since", "pragma", "te",
    "sec-fetch-mode", "sec-fetch-site", "sec-fetch-dest", "dnt", "range", "x-real-ip",
    "traceparent", "tracestate", "x-forwarded-host", NULL};
#define N_COMMON ((int)(sizeof common_headers / sizeof common_headers[0]) - 1)
#define HDR_COOKIE 8
#define HDR_CONTENT_TYPE 6
#define HDR_CONTENT_LENGTH 7

/* The environ key of a header name: CONTENT_TYPE, CONTENT_LENGTH, else HTTP_ + upper case with
 * '-' as '_' (PEP 3333, CGI 4.1.18). */
static size_t environ_key(const char *name, size_t n, char *out) {
  if (n == 12 && strncasecmp(name, "content-type", 12) == 0) {
    memcpy(out, "CONTENT_TYPE", 12);
    return 12;
  }
  if (n == 14 && strncasecmp(name, "content-length", 14) == 0) {
    memcpy(out, "CONTENT_LENGTH", 14);
    return 14;
  }
  memcpy(out, "HTTP_", 5);
  for (size_t j = 0; j < n; j++) out[5 + j] = name[j] == '-' ? '_' : (char)toupper((unsigned char)name[j]);
  return 5 + n;
}

int fra_request_init(fra_state *st) {
  _Static_assert(N_COMMON <= (int)(sizeof st->hdr_names / sizeof st->hdr_names[0]), "hdr_names too small");
  char key[64];
  for (int i = 0; common_headers[i]; i++) {
    size_t n = strlen(common_headers[i]);
    if (!(st->hdr_names[i] = PyBytes_FromStringAndSize(common_headers[i], (Py_ssize_t)n))) return -1;
    size_t kl = environ_key(common_headers[i], n, key);
    if (!(st->env_keys[i] = PyUnicode_FromStringAndSize(key, (Py_ssize_t)kl))) return -1;
    PyUnicode_InternInPlace(&st->env_keys[i]);
  }
  /* A scope starts as a copy of this dict: its keys table is cloned whole (no insertion, no
   * resize per key) and the constant values are already there. */
  PyObject *t = st->scope_template = PyDict_New();
  if (!t) return -1;
  PyObject *keys[] = {st->s_type, st->s_asgi, st->s_http_version, st->s_method, st->s_scheme, st->s_path,
                      st->s_raw_path, st->s_query_string, st->s_root_path, st->s_headers, st->s_client,
                      st->s_server, st->s_extensions};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (PyDict_SetItem(t, keys[i], Py_None) < 0) return -1;
  if (PyDict_SetItem(t, st->s_type, st->s_http) < 0 || PyDict_SetItem(t, st->s_asgi, st->asgi_info) < 0 ||
      PyDict_SetItem(t, st->s_scheme, st->s_http) < 0)
    return -1;
#define XX(num, name, string) \
  if (num < 64 && !st->methods[num] && !(st->methods[num] = PyUnicode_InternFromString(#string))) return -1;
  HTTP_METHOD_MAP(XX)
#undef XX
  return 0;
}

/* Index of a header name in common_headers (case-insensitive), or -1. */
static int common_index(const char *s, size_t n) {
  if (n >= 32) return -1;
  for (int i = 0; common_headers[i]; i++)
    if (strlen(common_headers[i]) == n && strncasecmp(common_headers[i], s, n) == 0) return i;
  return -1;
}

/* Lower-cased header name bytes; common names come from the cache. */
static PyObject *header_name(fra_state *st, const char *s, size_t n) {
  int i = common_index(s, n);
  if (i >= 0) return Py_NewRef(st->hdr_names[i]);
  PyObject *b = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
  if (!b) return NULL;
  char *p = PyBytes_AS_STRING(b);
  for (size_t j = 0; j < n; j++) p[j] = (char)tolower((unsigned char)p[j]);
  return b;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into out (out >= n bytes); returns the decoded length. */
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
static void split_target(const fra_req *r, const char **path, size_t *plen, const char **query, size_t *qlen) {
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

static PyObject *addr_tuple(const char *ip, int port) {
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

static PyObject *method_str(fra_state *st, const fra_req *r) {
  if (r->method < 64 && st->methods[r->method]) return Py_NewRef(st->methods[r->method]);
  return PyUnicode_DecodeLatin1(r->buf + r->method_off, (Py_ssize_t)r->method_len, NULL);
}

/* The path percent-decoded, as UTF-8 text (the scope: invalid bytes replaced) or as bytes in a
 * latin-1 str (the environ, PEP 3333 "bytes as latin-1").  `skip`: leading decoded bytes to
 * drop (the root path). */
static PyObject *decoded_path(const char *p, size_t n, int latin1, const char *strip, size_t strip_len) {
  char stackbuf[512];
  char *buf = n <= sizeof stackbuf ? stackbuf : PyMem_Malloc(n ? n : 1);
  if (!buf) return PyErr_NoMemory();
  size_t dn = memchr(p, '%', n) ? pct_decode(p, n, buf) : (memcpy(buf, p, n), n);
  const char *d = buf;
  if (strip_len && dn >= strip_len && memcmp(buf, strip, strip_len) == 0 &&
      (dn == strip_len || buf[strip_len] == '/')) {
    d += strip_len;
    dn -= strip_len;
  }
  PyObject *s = latin1 ? PyUnicode_DecodeLatin1(d, (Py_ssize_t)dn, NULL)
                       : PyUnicode_DecodeUTF8(d, (Py_ssize_t)dn, "replace");
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

PyObject *fra_request_path(ExchangeObject *ex) {
  const char *path, *query;
  size_t plen, qlen;
  split_target(ex->req, &path, &plen, &query, &qlen);
  return decoded_path(path, plen, 0, NULL, 0);
}

PyObject *fra_request_query(ExchangeObject *ex) {
  const char *path, *query;
  size_t plen, qlen;
  split_target(ex->req, &path, &plen, &query, &qlen);
  return PyBytes_FromStringAndSize(query, (Py_ssize_t)qlen);
}

PyObject *fra_request_method(ExchangeObject *ex) { return method_str(ex->srv->st, ex->req); }

PyObject *fra_build_scope(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  fra_state *st = so->st;
  fra_req *r = ex->req;
  const char *path, *query;
  size_t plen, qlen;
  PyObject *addrs = NULL;
  split_target(r, &path, &plen, &query, &qlen);
  PyObject *d = PyDict_Copy(st->scope_template); /* type, asgi and scheme are there */
  if (!d) return NULL;
  SET(d, st->s_http_version, Py_NewRef(r->http_minor == 0 && r->http_major == 1 ? st->s_1_0 : st->s_1_1));
  SET(d, st->s_method, method_str(st, r));
  SET(d, st->s_path, decoded_path(path, plen, 0, NULL, 0));
  SET(d, st->s_raw_path, PyBytes_FromStringAndSize(path, (Py_ssize_t)plen));
  SET(d, st->s_query_string, PyBytes_FromStringAndSize(query, (Py_ssize_t)qlen));
  SET(d, st->s_root_path, Py_NewRef(so->root_path));
  PyObject *headers = PyList_New((Py_ssize_t)r->nhdrs);
  if (!headers) goto fail;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    PyObject *n = header_name(st, r->buf + h->name_off, h->name_len);
    PyObject *v = n ? PyBytes_FromStringAndSize(r->buf + h->value_off, (Py_ssize_t)h->value_len) : NULL;
    PyObject *t = v ? PyTuple_Pack(2, n, v) : NULL;
    Py_XDECREF(n);
    Py_XDECREF(v);
    if (!t) {
      Py_DECREF(headers);
      goto fail;
    }
    PyList_SET_ITEM(headers, (Py_ssize_t)i, t);
  }
  SET(d, st->s_headers, headers);
  addrs = fra_conn_addrs(ex);
  if (!addrs) goto fail;
  SET(d, st->s_client, Py_NewRef(PyTuple_GET_ITEM(addrs, 0)));
  SET(d, st->s_server, Py_NewRef(PyTuple_GET_ITEM(addrs, 1)));
  Py_CLEAR(addrs);
  SET(d, st->s_extensions, PyDict_Copy(st->asgi_extensions));
  if (so->state && so->state != Py_None) SET(d, st->s_state, PyDict_Copy(so->state));
  return d;
fail:
  Py_XDECREF(addrs);
  Py_DECREF(d);
  return NULL;
}

PyObject *fra_environ_base(ServerObject *so, int multiprocess) {
  PyObject *sys_stderr = PySys_GetObject("stderr"); /* borrowed */
  PyObject *root = PyUnicode_AsUTF8String(so->root_path);
  if (!root) return NULL;
  /* PEP 3333: SCRIPT_NAME is bytes as latin-1, like PATH_INFO */
  PyObject *script_name = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(root), PyBytes_GET_SIZE(root), NULL);
  Py_DECREF(root);
  if (!script_name) return NULL;
  PyObject *d = Py_BuildValue("{sOsOsssOsOsOsOsOsNss}", "wsgi.version", so->st->wsgi_version,
                              "wsgi.file_wrapper", (PyObject *)so->st->FileWrapperType,
                              "wsgi.url_scheme", "http", "wsgi.errors", sys_stderr ? sys_stderr : Py_None,
                              "wsgi.multithread", Py_True, "wsgi.multiprocess", multiprocess ? Py_True : Py_False,
                              "wsgi.run_once", Py_False, "wsgi.input_terminated", Py_True, "SCRIPT_NAME",
                              script_name, "SERVER_SOFTWARE", "flask-restful-async/0.1.0");
  return d;
}

/* PEP 3333 environ.  Strings are "bytes as latin-1".  Header names with '_' are dropped: they
 * would be indistinguishable from '-' in HTTP_* keys (a header-smuggling vector).  Repeated
 * fields are joined with "," (RFC 9110 5.3), Cookie fields with "; " (RFC 6265 5.4: the
 * cookie-string's own separator; a comma is not one).  `input` becomes wsgi.input; with
 * body_len >= 0 (the whole body, already read) CONTENT_LENGTH is set when the client sent none
 * (a chunked body). */
PyObject *fra_build_environ(ExchangeObject *ex, PyObject *input, Py_ssize_t body_len) {
  ServerObject *so = ex->srv;
  fra_state *st = so->st;
  fra_req *r = ex->req;
  const char *path, *query;
  size_t plen, qlen;
  PyObject *addrs = NULL;
  split_target(r, &path, &plen, &query, &qlen);
  PyObject *d = PyDict_Copy(so->environ_base);
  if (!d) return NULL;
  SET(d, st->s_REQUEST_METHOD, method_str(st, r));
  Py_ssize_t rl = 0;
  const char *root = PyUnicode_AsUTF8AndSize(so->root_path, &rl);
  if (!root) goto fail;
  SET(d, st->s_PATH_INFO, decoded_path(path, plen, 1, root, (size_t)rl));
  SET(d, st->s_QUERY_STRING, PyUnicode_DecodeLatin1(query, (Py_ssize_t)qlen, NULL));
  SET(d, st->s_RAW_URI, PyUnicode_DecodeLatin1(r->buf + r->url_off, (Py_ssize_t)r->url_len, NULL));
  SET(d, st->s_SERVER_PROTOCOL, Py_NewRef(r->http_minor == 0 ? st->str_HTTP_1_0 : st->str_HTTP_1_1));
  addrs = fra_conn_addrs(ex);
  if (!addrs) goto fail;
  PyObject *client = PyTuple_GET_ITEM(addrs, 0), *server = PyTuple_GET_ITEM(addrs, 1); /* borrowed */
  if (client != Py_None) {
    SET(d, st->s_REMOTE_ADDR, Py_NewRef(PyTuple_GET_ITEM(client, 0)));
    SET(d, st->s_REMOTE_PORT, PyObject_Str(PyTuple_GET_ITEM(client, 1)));
  } else {
    SET(d, st->s_REMOTE_ADDR, PyUnicode_FromString(""));
  }
  if (server != Py_None) {
    SET(d, st->s_SERVER_NAME, Py_NewRef(PyTuple_GET_ITEM(server, 0)));
    SET(d, st->s_SERVER_PORT, PyObject_Str(PyTuple_GET_ITEM(server, 1)));
  } else {
    SET(d, st->s_SERVER_NAME, PyUnicode_FromString("localhost"));
    SET(d, st->s_SERVER_PORT, PyUnicode_FromString("0"));
  }
  Py_CLEAR(addrs);
  char keybuf[300];
  int has_cl = 0;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    const char *n = r->buf + h->name_off;
    if (h->name_len + 6 > sizeof keybuf || memchr(n, '_', h->name_len)) continue;
    int ci = common_index(n, h->name_len);
    PyObject *key;
    if (ci >= 0) {
      key = Py_NewRef(st->env_keys[ci]);
    } else {
      size_t kl = environ_key(n, h->name_len, keybuf);
      key = PyUnicode_FromStringAndSize(keybuf, (Py_ssize_t)kl);
      if (!key) goto fail;
    }
    if (ci == HDR_CONTENT_LENGTH) has_cl = 1;
    PyObject *v = PyUnicode_DecodeLatin1(r->buf + h->value_off, (Py_ssize_t)h->value_len, NULL);
    if (!v) {
      Py_DECREF(key);
      goto fail;
    }
    PyObject *old = PyDict_GetItemWithError(d, key); /* borrowed */
    if (old && ci != HDR_CONTENT_TYPE && ci != HDR_CONTENT_LENGTH) {
      PyObject *joined = PyUnicode_FromFormat(ci == HDR_COOKIE ? "%U; %U" : "%U,%U", old, v);
      Py_DECREF(v);
      v = joined;
    } else if (!old && PyErr_Occurred()) {
      Py_CLEAR(v);
    }
    int rc = v ? PyDict_SetItem(d, key, v) : -1;
    Py_DECREF(key);
    Py_XDECREF(v);
    if (rc < 0) goto fail;
  }
  if (body_len >= 0 && !has_cl && body_len > 0) SET(d, st->s_CONTENT_LENGTH, PyUnicode_FromFormat("%zd", body_len));
  if (PyDict_SetItem(d, st->s_wsgi_input, input) < 0) goto fail;
  return d;
fail:
  Py_XDECREF(addrs);
  Py_DECREF(d);
  return NULL;
}
#undef SET
