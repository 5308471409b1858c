/* tls.c — the RedisTLS type: TLS settings for rediss:// connections, one OpenSSL context
 * (hiredis' redisSSLContext) made once and shared by every connection given it.  Owns that
 * context.  Every function here needs the GIL.  Without OpenSSL's headers at build time the
 * type exists but refuses to be made (_core.REDIS_TLS is False). */
#include "redis_internal.h"

typedef struct {
  PyObject_HEAD
  void *ctx; /* redisSSLContext */
} RedisTLSObject;

static int tls_init(RedisTLSObject *t, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"ca_file", "ca_path", "cert_file", "key_file", "server_name", "verify",
                           "verify_name", NULL};
  const char *ca_file = NULL, *ca_path = NULL, *cert_file = NULL, *key_file = NULL, *server_name = NULL,
             *verify_name = NULL;
  int verify = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|$zzzzzpz", kwlist, &ca_file, &ca_path, &cert_file, &key_file,
                                   &server_name, &verify, &verify_name))
    return -1;
  if (t->ctx) {
    PyErr_SetString(PyExc_RuntimeError, "RedisTLS.__init__ called twice");
    return -1;
  }
#ifdef FRA_REDIS_TLS
  static int openssl_ready;
  if (!openssl_ready) {
    redisInitOpenSSL();
    openssl_ready = 1;
  }
  if (!cert_file != !key_file) {
    PyErr_SetString(PyExc_ValueError, "cert_file and key_file: give both or neither");
    return -1;
  }
  redisSSLOptions o;
  memset(&o, 0, sizeof o);
  o.cacert_filename = ca_file;
  o.capath = ca_path;
  o.cert_filename = cert_file;
  o.private_key_filename = key_file;
  o.server_name = server_name;
  o.verify_name = verify_name;
  o.verify_mode = verify ? REDIS_SSL_VERIFY_PEER : REDIS_SSL_VERIFY_NONE;
  redisSSLContextError err = REDIS_SSL_CTX_NONE;
  redisSSLContext *ctx;
  Py_BEGIN_ALLOW_THREADS /* loading a CA bundle reads files */
  ctx = redisCreateSSLContextWithOptions(&o, &err);
  Py_END_ALLOW_THREADS
  if (!ctx) {
    PyErr_Format(PyExc_ValueError, "TLS settings: %s", redisSSLContextGetError(err));
    return -1;
  }
  t->ctx = ctx;
  return 0;
#else
  PyErr_SetString(PyExc_RuntimeError, "this build has no TLS (OpenSSL's headers were missing when it was built)");
  return -1;
#endif
}

void *fra__redis_tls_context(RedisConnObject *rc) {
  return rc->tls ? ((RedisTLSObject *)rc->tls)->ctx : NULL;
}

static void tls_dealloc(RedisTLSObject *t) {
  PyTypeObject *tp = Py_TYPE(t);
#ifdef FRA_REDIS_TLS
  if (t->ctx) redisFreeSSLContext(t->ctx);
#endif
  tp->tp_free((PyObject *)t);
  Py_DECREF(tp);
}

static PyType_Slot tls_slots[] = {
    {Py_tp_doc, "RedisTLS(*, ca_file=None, ca_path=None, cert_file=None, key_file=None, server_name=None, "
                "verify=True, verify_name=None): TLS settings for Redis connections (rediss://)."},
    {Py_tp_init, tls_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, tls_dealloc},
    {0, NULL},
};

PyType_Spec fra__redis_tls_spec = {
    .name = "flask_restful_async._core.RedisTLS",
    .basicsize = sizeof(RedisTLSObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = tls_slots,
};
