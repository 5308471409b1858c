/* args.c — a command's Python arguments as one RESP array of bulk strings (RESP2 spec,
 * "Sending commands to a Redis server"), written straight into the connection's buffer, encoded
 * as redis-py encodes them: str in the connection's encoding, int in decimal, float as repr().
 * Owns nothing but the buffer's growth.  Every function here needs the GIL. */
#include "redis_internal.h"
#include "fra/http.h"
#include <strings.h>

static int reserve(RedisConnObject *rc, size_t need) {
  if (need <= rc->buf_cap) return 0;
  size_t cap = rc->buf_cap ? rc->buf_cap : 4096;
  while (cap < need) {
    if (cap > PY_SSIZE_T_MAX / 2) {
      PyErr_NoMemory();
      return -1;
    }
    cap *= 2;
  }
  char *b = PyMem_Realloc(rc->buf, cap);
  if (!b) {
    PyErr_NoMemory();
    return -1;
  }
  rc->buf = b;
  rc->buf_cap = cap;
  return 0;
}

/* "<c><n>\r\n" at *len (a header: '*' count or '$' length). */
static int put_header(RedisConnObject *rc, size_t *len, char c, uint64_t n) {
  if (reserve(rc, *len + 24)) return -1;
  char *p = rc->buf + *len;
  *p++ = c;
  p += fra_decimal(p, n);
  *p++ = '\r';
  *p++ = '\n';
  *len = (size_t)(p - rc->buf);
  return 0;
}

static int put_bulk(RedisConnObject *rc, size_t *len, const char *data, size_t n) {
  if (put_header(rc, len, '$', n) || reserve(rc, *len + n + 3)) return -1;
  memcpy(rc->buf + *len, data, n);
  memcpy(rc->buf + *len + n, "\r\n", 2);
  *len += n + 2;
  return 0;
}

/* One argument.  Bytes and str need no copy before the buffer; ints are written in place. */
static int put_arg(RedisConnObject *rc, size_t *len, PyObject *o, Py_ssize_t i) {
  if (PyBytes_Check(o)) return put_bulk(rc, len, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
  if (PyUnicode_Check(o)) {
    if (rc->enc_utf8 && rc->errs_strict) {
      Py_ssize_t n;
      const char *s = PyUnicode_AsUTF8AndSize(o, &n);
      return s ? put_bulk(rc, len, s, (size_t)n) : -1;
    }
    PyObject *b = PyUnicode_AsEncodedString(o, rc->enc, rc->errs);
    if (!b) return -1;
    int r = PyBytes_Check(b) ? put_bulk(rc, len, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b)) : -1;
    if (r && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the encoding did not make bytes");
    Py_DECREF(b);
    return r;
  }
  /* bool is an int, but a flag sent as "True" is a bug redis-py refuses as well */
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!overflow) {
      char num[24], *p = num;
      uint64_t u = (uint64_t)v;
      if (v < 0) {
        *p++ = '-';
        u = 0 - u;
      }
      p += fra_decimal(p, u);
      return put_bulk(rc, len, num, (size_t)(p - num));
    }
    PyObject *s = PyObject_Str(o);
    if (!s) return -1;
    Py_ssize_t n;
    const char *d = PyUnicode_AsUTF8AndSize(s, &n);
    int r = d ? put_bulk(rc, len, d, (size_t)n) : -1;
    Py_DECREF(s);
    return r;
  }
  if (PyFloat_Check(o)) {
    char *d = PyOS_double_to_string(PyFloat_AS_DOUBLE(o), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!d) return -1;
    int r = put_bulk(rc, len, d, strlen(d));
    PyMem_Free(d);
    return r;
  }
  if (PyObject_CheckBuffer(o) && !PyBool_Check(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) return -1;
    int r = put_bulk(rc, len, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return r;
  }
  PyErr_Format(PyExc_TypeError,
               "command argument %zd: expected bytes, str, int or float, got %.100s "
               "(convert it first)", i, Py_TYPE(o)->tp_name);
  return -1;
}

/* The command's name, for the few that hiredis routes by name. */
static int kind_of(const char *name, size_t n, Py_ssize_t nargs) {
  if (n == 9 && strncasecmp(name, "subscribe", 9) == 0)
    return nargs > 1 ? FRA_RK_SUBSCRIBE : FRA_RK_PLAIN;
  if (n == 10 && strncasecmp(name, "psubscribe", 10) == 0)
    return nargs > 1 ? FRA_RK_PSUBSCRIBE : FRA_RK_PLAIN;
  if ((n == 11 && strncasecmp(name, "unsubscribe", 11) == 0) ||
      (n == 12 && strncasecmp(name, "punsubscribe", 12) == 0))
    return FRA_RK_UNSUBSCRIBE;
  if ((n == 7 && strncasecmp(name, "monitor", 7) == 0) ||
      (n == 10 && strncasecmp(name, "ssubscribe", 10) == 0) ||
      (n == 12 && strncasecmp(name, "sunsubscribe", 12) == 0))
    return FRA_RK_UNSUPPORTED;
  return FRA_RK_PLAIN;
}

int fra__redis_format(RedisConnObject *rc, PyObject *args, size_t *len, int *kind) {
  if (!PyTuple_Check(args) && !PyList_Check(args)) {
    PyErr_Format(PyExc_TypeError, "a command: expected a tuple or list of arguments, got %.100s",
                 Py_TYPE(args)->tp_name);
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(args);
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError, "a command: expected at least its name, got no argument");
    return -1;
  }
  size_t start = *len;
  if (put_header(rc, len, '*', (uint64_t)n)) return -1;
  size_t name_at = 0, name_len = 0;
  /* A list may change under us only through our own conversions (str subclasses' encoding);
   * the size is read again on every step. */
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(args) && i < n; i++) {
    PyObject *o = PySequence_Fast_GET_ITEM(args, i);
    Py_INCREF(o);
    size_t before = *len;
    int r = put_arg(rc, len, o, i);
    Py_DECREF(o);
    if (r) {
      *len = start;
      return -1;
    }
    if (i == 0) {
      /* skip "$<n>\r\n" to the name itself */
      const char *p = memchr(rc->buf + before, '\n', *len - before);
      name_at = (size_t)(p + 1 - rc->buf);
      name_len = *len - 2 - name_at;
    }
  }
  if (PySequence_Fast_GET_SIZE(args) != n) {
    *len = start;
    PyErr_SetString(PyExc_RuntimeError, "a command's argument list changed while it was encoded");
    return -1;
  }
  if (reserve(rc, *len + 1)) {
    *len = start;
    return -1;
  }
  rc->buf[*len] = '\0';
  *kind = kind_of(rc->buf + name_at, name_len, n);
  return 0;
}
