/* reply.c — hiredis' reply objects as Python objects, RESP2 and RESP3 (RESP3 spec, "RESP3
 * types"): bulk/status/verbatim -> bytes (str when the connection decodes), integer -> int,
 * nil -> None, array/set/push -> list, map/attribute -> dict, double -> float, boolean -> bool,
 * big number -> int, an error -> the exception error_factory makes of its text.  Owns nothing.
 * Every function here needs the GIL. */
#include "redis_internal.h"

static PyObject *text(RedisConnObject *rc, const char *s, size_t n) {
  if (!rc->encoding) return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
  if (rc->enc_utf8) return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, rc->errs);
  return PyUnicode_Decode(s, (Py_ssize_t)n, rc->enc, rc->errs);
}

/* Status replies repeat a few words (OK, QUEUED, PONG): one shared object each. */
static PyObject *status(RedisConnObject *rc, const char *s, size_t n) {
  fra_state *st = rc->st;
  int i = -1;
  if (n == 2 && memcmp(s, "OK", 2) == 0) i = 0;
  else if (n == 6 && memcmp(s, "QUEUED", 6) == 0) i = 1;
  else if (n == 4 && memcmp(s, "PONG", 4) == 0) i = 2;
  if (i < 0) return text(rc, s, n);
  PyObject *o = rc->encoding ? (rc->enc_utf8 ? st->redis_status_str[i] : NULL) : st->redis_status_bytes[i];
  if (!o) return text(rc, s, n);
  Py_INCREF(o);
  return o;
}

static PyObject *error_object(RedisConnObject *rc, const redisReply *r) {
  PyObject *msg = PyUnicode_DecodeUTF8(r->str, (Py_ssize_t)r->len, "replace");
  if (!msg) return NULL;
  PyObject *e = PyObject_CallOneArg(rc->error_factory, msg);
  Py_DECREF(msg);
  if (e && !PyExceptionInstance_Check(e)) {
    PyErr_Format(PyExc_TypeError, "error_factory returned %.100s, not an exception", Py_TYPE(e)->tp_name);
    Py_CLEAR(e);
  }
  return e;
}

static PyObject *convert(RedisConnObject *rc, const redisReply *r);

static PyObject *list_of(RedisConnObject *rc, const redisReply *r) {
  PyObject *l = PyList_New((Py_ssize_t)r->elements);
  if (!l) return NULL;
  for (size_t i = 0; i < r->elements; i++) {
    PyObject *o = convert(rc, r->element[i]);
    if (!o) {
      Py_DECREF(l);
      return NULL;
    }
    PyList_SET_ITEM(l, (Py_ssize_t)i, o);
  }
  return l;
}

static PyObject *dict_of(RedisConnObject *rc, const redisReply *r) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    PyObject *k = convert(rc, r->element[i]);
    if (k && PyList_Check(k)) Py_SETREF(k, PyList_AsTuple(k)); /* an aggregate key must hash */
    PyObject *v = k ? convert(rc, r->element[i + 1]) : NULL;
    int bad = !v || PyDict_SetItem(d, k, v) < 0;
    Py_XDECREF(k);
    Py_XDECREF(v);
    if (bad) {
      Py_DECREF(d);
      return NULL;
    }
  }
  return d;
}

static PyObject *convert(RedisConnObject *rc, const redisReply *r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_VERB: /* hiredis drops the "txt:" prefix (vtype) */
      return text(rc, r->str, r->len);
    case REDIS_REPLY_STATUS:
      return status(rc, r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return PyLong_FromLongLong(r->integer);
    case REDIS_REPLY_NIL:
      Py_RETURN_NONE;
    case REDIS_REPLY_DOUBLE:
      return PyFloat_FromDouble(r->dval);
    case REDIS_REPLY_BOOL:
      return PyBool_FromLong(r->integer != 0);
    case REDIS_REPLY_BIGNUM:
      return PyLong_FromString(r->str, NULL, 10);
    case REDIS_REPLY_ERROR:
      return error_object(rc, r);
    case REDIS_REPLY_ARRAY:
    case REDIS_REPLY_SET:
    case REDIS_REPLY_PUSH: {
      if (Py_EnterRecursiveCall(" converting a Redis reply")) return NULL;
      PyObject *o = list_of(rc, r);
      Py_LeaveRecursiveCall();
      return o;
    }
    case REDIS_REPLY_MAP:
    case REDIS_REPLY_ATTR: {
      if (Py_EnterRecursiveCall(" converting a Redis reply")) return NULL;
      PyObject *o = dict_of(rc, r);
      Py_LeaveRecursiveCall();
      return o;
    }
    default:
      PyErr_Format(PyExc_ValueError, "a Redis reply of unknown type %d", r->type);
      return NULL;
  }
}

PyObject *fra__redis_reply(RedisConnObject *rc, const redisReply *r, int *is_error) {
  *is_error = r->type == REDIS_REPLY_ERROR;
  /* the commonest replies first: no switch, no recursion guard */
  if (r->type == REDIS_REPLY_STRING) return text(rc, r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return PyLong_FromLongLong(r->integer);
  return convert(rc, r);
}
