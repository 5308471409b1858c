/* conn.c — the RedisConnection type: one hiredis async context (redisAsyncContext), its
 * commands in flight and their futures, pub/sub and RESP3 push routing, timeouts, close and
 * loss; the loop -> server registry that picks the adapter (uv.c on our server's libuv loop,
 * aio.c on any other asyncio loop).  Owns the command records (fra_rcmd, fra_rsub) and the
 * futures they hold, the formatting buffer, and the connection's place in its server's list;
 * hiredis owns its context and frees it itself (we learn of it in ac_gone).  Every function
 * here needs the GIL: hiredis calls back into us only from the adapters' callbacks, which run
 * in Python's loop or in uv_run entered from it. */
#include "redis_internal.h"
#include <math.h>
#include <strings.h>

/* ---- small helpers ---- */

/* Resolving a future the awaiter cancelled fails (InvalidStateError): its reply is dropped,
 * which is what a cancelled command asks for. */
static void fut_done(RedisConnObject *rc, PyObject *fut, PyObject *name, PyObject *value) {
  PyObject *args[2] = {fut, value};
  PyObject *r = PyObject_VectorcallMethod(name, args, 2, NULL);
  if (r) {
    Py_DECREF(r);
    return;
  }
  if (PyErr_ExceptionMatches(rc->st->InvalidStateError)) PyErr_Clear();
  else PyErr_WriteUnraisable(fut);
}

static void fut_result(RedisConnObject *rc, PyObject *fut, PyObject *v) {
  fut_done(rc, fut, rc->st->s_set_result, v);
}

/* exc: a new reference, taken; NULL: making it failed, and that exception goes instead. */
static void fut_error(RedisConnObject *rc, PyObject *fut, PyObject *exc) {
  if (!exc && !(exc = fra_err_take())) return;
  fut_done(rc, fut, rc->st->s_set_exception, exc);
  Py_DECREF(exc);
}

/* A new ConnectionError saying why the connection is gone. */
static PyObject *lost_error(RedisConnObject *rc, const redisAsyncContext *ac) {
  const char *why = "connection lost";
  if (rc->user_closed) why = "connection closed";
  else if (rc->server_gone) why = "connection closed: the server's event loop closed";
  else if (ac && ac->c.err && ac->c.errstr[0]) why = ac->c.errstr;
  return PyObject_CallFunction(PyExc_ConnectionError, "s", why);
}

static PyObject *timeout_error(double after) {
  char msg[64];
  snprintf(msg, sizeof msg, "no reply within %g s", after);
  return PyObject_CallFunction(PyExc_TimeoutError, "s", msg);
}

/* A callback from Python code we must not fail through (hiredis is on the stack). */
static void call_hook(PyObject *fn, PyObject *arg) {
  PyObject *r = PyObject_CallOneArg(fn, arg);
  if (!r) PyErr_WriteUnraisable(fn);
  Py_XDECREF(r);
}

/* Watchers started or closed outside a server pass wait for the next one: schedule it. */
static void after_io(RedisConnObject *rc) {
  if (rc->srv && rc->srv->core.loop_touched) fra_srv_after_call(rc->srv);
}

/* ---- the connection's one timer: connect timeout and command deadlines ---- */

static void arm(RedisConnObject *rc, uint64_t due) {
  if (!due || (rc->timer_due && rc->timer_due <= due) || rc->state == FRA_RS_DEAD) return;
  uint64_t now = fra__redis_now();
  uint64_t ms = due > now ? due - now : 0;
  rc->timer_due = due;
  if (rc->adapter == FRA_RA_UV && rc->uv) {
    fra__redis_uv_timer(rc->uv, ms);
    fra_srv_after_call(rc->srv); /* the asyncio timer that drives libuv's must move earlier */
  } else if (rc->adapter == FRA_RA_AIO) {
    if (fra__redis_aio_timer(rc, ms) < 0) PyErr_WriteUnraisable((PyObject *)rc);
  }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Commands past their deadline get TimeoutError; their records stay until their replies come
 * and are dropped then, so replies stay matched to commands.  Returns the next deadline. */
static uint64_t expire(RedisConnObject *rc, uint64_t now) {
  uint64_t next = 0;
  if (rc->ac) {
    redisCallbackList *lists[2] = {&rc->ac->replies, &rc->ac->sub.replies};
    for (int l = 0; l < 2; l++)
      for (redisCallback *cb = lists[l]->head; cb; cb = cb->next) {
        if (cb->fn != on_reply) continue;
        fra_rcmd *c = cb->privdata;
        if (!c->fut || !c->due) continue;
        if (c->due <= now) {
          fut_error(rc, c->fut, timeout_error((double)(c->due - c->start) / 1000));
          Py_CLEAR(c->fut);
        } else if (!next || c->due < next) {
          next = c->due;
        }
      }
  }
  for (fra_rsub *s = rc->subs; s; s = s->next) {
    if (!s->fut || !s->due) continue;
    if (s->due <= now) {
      fut_error(rc, s->fut, timeout_error((double)(s->due - s->start) / 1000));
      Py_CLEAR(s->fut);
    } else if (!next || s->due < next) {
      next = s->due;
    }
  }
  return next;
}

void fra__redis_fire(RedisConnObject *rc) {
  Py_INCREF(rc);
  rc->timer_due = 0;
  uint64_t now = fra__redis_now();
  if (rc->state == FRA_RS_CONNECTING && rc->connect_due && now >= rc->connect_due) {
    rc->connect_due = 0;
    if (rc->connect_fut) {
      char msg[64];
      snprintf(msg, sizeof msg, "connect timed out after %g s", rc->connect_timeout);
      fut_error(rc, rc->connect_fut, PyObject_CallFunction(PyExc_TimeoutError, "s", msg));
      Py_CLEAR(rc->connect_fut);
    }
    if (rc->ac) redisAsyncFree(rc->ac);
  } else {
    uint64_t next = expire(rc, now);
    if (rc->state == FRA_RS_CONNECTING && rc->connect_due && (!next || rc->connect_due < next))
      next = rc->connect_due;
    arm(rc, next);
  }
  after_io(rc);
  Py_DECREF(rc);
}

/* ---- hiredis' callbacks ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  RedisConnObject *rc = ac->data;
  fra_rcmd *c = priv;
  rc->pending--;
  int is_error;
  if (!c->results) {
    if (c->fut) {
      if (!reply) {
        fut_error(rc, c->fut, lost_error(rc, ac));
      } else {
        PyObject *o = fra__redis_reply(rc, reply, &is_error);
        if (!o || is_error) { /* a conversion error is the command's exception too */
          fut_error(rc, c->fut, o);
        } else {
          fut_result(rc, c->fut, o);
          Py_DECREF(o);
        }
      }
      Py_DECREF(c->fut);
    }
    PyMem_Free(c);
    return;
  }
  Py_ssize_t i = c->done++;
  if (c->fut) {
    if (!reply) {
      fut_error(rc, c->fut, lost_error(rc, ac));
      Py_CLEAR(c->fut);
    } else {
      /* an error reply, or a reply that failed to convert, is the exception object in place */
      PyObject *o = fra__redis_reply(rc, reply, &is_error);
      if (!o && !(o = fra_err_take())) o = Py_NewRef(Py_None);
      PyList_SET_ITEM(c->results, i, o);
    }
  }
  if (c->done < c->n) return;
  if (c->fut) fut_result(rc, c->fut, c->results);
  Py_XDECREF(c->fut);
  Py_DECREF(c->results);
  PyMem_Free(c);
}

/* A (P)SUBSCRIBE confirmation: the oldest such command still waiting for confirmations is
 * resolved with its first one, and forgotten after its last (one per channel). */
static void confirm(RedisConnObject *rc, int pattern, PyObject *msg) {
  fra_rsub **pp = &rc->subs, *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next) {
    fra_rsub *s = *pp;
    if (s->pattern != pattern) continue;
    if (s->fut) {
      PyObject *copy = PyList_Check(msg) ? PyList_GetSlice(msg, 0, PyList_GET_SIZE(msg)) : Py_NewRef(msg);
      if (copy) fut_result(rc, s->fut, copy);
      else fut_error(rc, s->fut, NULL);
      Py_XDECREF(copy);
      Py_CLEAR(s->fut);
    }
    if (--s->left > 0) return;
    *pp = s->next;
    if (rc->subs_tail == s) rc->subs_tail = prev;
    rc->pending--;
    PyMem_Free(s);
    return;
  }
}

/* Everything hiredis routes to a channel or pattern (messages and (un)subscribe
 * confirmations, RESP2 arrays or RESP3 pushes) goes to on_message. */
static void on_sub(redisAsyncContext *ac, void *reply, void *priv) {
  RedisConnObject *rc = ac->data;
  const redisReply *r = reply;
  if (!r) return; /* the context is being freed: its channels' callbacks are called once more */
  int is_error;
  PyObject *o = fra__redis_reply(rc, r, &is_error);
  if (!o) {
    PyErr_WriteUnraisable(rc->on_message ? rc->on_message : (PyObject *)rc);
    return;
  }
  if ((r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_PUSH) && r->elements > 0 &&
      r->element[0]->type == REDIS_REPLY_STRING) {
    const redisReply *k = r->element[0];
    if (k->len == 9 && strncasecmp(k->str, "subscribe", 9) == 0) confirm(rc, 0, o);
    else if (k->len == 10 && strncasecmp(k->str, "psubscribe", 10) == 0) confirm(rc, 1, o);
  }
  if (rc->on_message) call_hook(rc->on_message, o);
  Py_DECREF(o);
}

/* RESP3 pushes that are not pub/sub (CLIENT TRACKING's invalidate). */
static void on_push(redisAsyncContext *ac, void *reply) {
  RedisConnObject *rc = ac->data;
  if (!rc->on_push || !reply) return;
  int is_error;
  PyObject *o = fra__redis_reply(rc, reply, &is_error);
  if (!o) {
    PyErr_WriteUnraisable(rc->on_push);
    return;
  }
  call_hook(rc->on_push, o);
  Py_DECREF(o);
}

/* The reply to the PING sent after a TLS connection's TCP connect: any reply (an error too:
 * NOAUTH) means the handshake is done.  No reply (NULL) leaves connect() to ac_gone. */
static void on_tls_ready(redisAsyncContext *ac, void *reply, void *priv) {
  RedisConnObject *rc = ac->data;
  if (!reply || rc->state != FRA_RS_CONNECTING) return;
  PyObject *fut = rc->connect_fut;
  rc->connect_fut = NULL;
  rc->state = FRA_RS_CONNECTED;
  rc->connect_due = 0;
  if (fut) fut_result(rc, fut, Py_None);
  Py_XDECREF(fut);
}

static void on_connect(redisAsyncContext *ac, int status) {
  RedisConnObject *rc = ac->data;
  /* TCP is up, TLS not yet: its handshake runs with the first exchange, so connect()
   * resolves once a PING has come back (a failed handshake fails connect(), not a command) */
  if (status == REDIS_OK && rc->tls && redisAsyncCommand(ac, on_tls_ready, NULL, "PING") == REDIS_OK) return;
  PyObject *fut = rc->connect_fut;
  rc->connect_fut = NULL;
  if (status == REDIS_OK) {
    rc->state = FRA_RS_CONNECTED;
    rc->connect_due = 0;
    if (fut) fut_result(rc, fut, Py_None);
  } else {
    rc->state = FRA_RS_DEAD;
    if (fut) fut_error(rc, fut, PyObject_CallFunction(PyExc_ConnectionError, "s",
                                                      ac->c.errstr[0] ? ac->c.errstr : "connect failed"));
  }
  Py_XDECREF(fut);
}

/* Called by hiredis only for a connection that was up: commands in flight have failed. */
static void on_disconnect(const redisAsyncContext *ac, int status) {
  RedisConnObject *rc = ac->data;
  int was_up = rc->state == FRA_RS_CONNECTED; /* not a TLS connection still in its handshake */
  rc->state = FRA_RS_DEAD;
  if (rc->user_closed || !rc->on_lost || !was_up) return;
  PyObject *exc = lost_error(rc, ac);
  if (exc) {
    call_hook(rc->on_lost, exc);
    Py_DECREF(exc);
  } else {
    PyErr_WriteUnraisable(rc->on_lost);
  }
}

static void unlink_server(RedisConnObject *rc) {
  if (!rc->srv_pprev) return;
  *rc->srv_pprev = rc->srv_next;
  if (rc->srv_next) rc->srv_next->srv_pprev = rc->srv_pprev;
  rc->srv_next = NULL;
  rc->srv_pprev = NULL;
}

/* hiredis is freeing its context (dataCleanup): everything that waited on it fails, the
 * adapter lets go, and the reference that kept an open connection alive is dropped (last:
 * it may free us; whoever called hiredis holds a reference of its own). */
static void ac_gone(void *priv) {
  RedisConnObject *rc = priv;
  redisAsyncContext *ac = rc->ac;
  rc->state = FRA_RS_DEAD;
  if (rc->connect_fut) {
    PyObject *fut = rc->connect_fut;
    rc->connect_fut = NULL;
    if (rc->tls && !rc->user_closed && !rc->server_gone) {
      /* OpenSSL's reason is in its error queue, not always in hiredis' errstr */
      const char *why = ac && ac->c.err && ac->c.errstr[0] && strcmp(ac->c.errstr, "Success") != 0
                            ? ac->c.errstr : "the server closed the connection (a certificate refused?)";
      char msg[300];
      snprintf(msg, sizeof msg, "TLS handshake failed: %s", why);
      fut_error(rc, fut, PyObject_CallFunction(PyExc_ConnectionError, "s", msg));
    } else {
      fut_error(rc, fut, lost_error(rc, ac));
    }
    Py_DECREF(fut);
  }
  while (rc->subs) {
    fra_rsub *s = rc->subs;
    rc->subs = s->next;
    if (s->fut) {
      fut_error(rc, s->fut, lost_error(rc, ac));
      Py_DECREF(s->fut);
    }
    rc->pending--;
    PyMem_Free(s);
  }
  rc->subs_tail = NULL;
  rc->ac = NULL;
  rc->timer_due = rc->connect_due = 0;
  if (rc->uv) {
    fra__redis_uv_close(rc->uv);
    rc->uv = NULL;
  }
  if (rc->adapter == FRA_RA_AIO) fra__redis_aio_detach(rc);
  unlink_server(rc);
  after_io(rc);
  PyObject *self = rc->self_ref;
  rc->self_ref = NULL;
  Py_XDECREF(self);
}

void fra__redis_io(RedisConnObject *rc, int readable, int writable) {
  Py_INCREF(rc);
  if (rc->ac && readable) redisAsyncHandleRead(rc->ac);
  if (rc->ac && writable) {
    if (sdslen(rc->ac->c.obuf) > 0) rc->writes++;
    redisAsyncHandleWrite(rc->ac);
  }
  /* close() inside a callback could only ask hiredis to free later; it is later now */
  if (rc->ac && rc->user_closed) redisAsyncFree(rc->ac);
  after_io(rc);
  Py_DECREF(rc);
}

/* ---- the type ---- */

static int usable(RedisConnObject *rc) {
  if (rc->ac && !rc->user_closed && rc->state != FRA_RS_DEAD) return 0;
  PyErr_SetString(PyExc_ConnectionError, rc->state == FRA_RS_NEW ? "not connected: await connect() first"
                                         : rc->user_closed ? "connection closed" : "connection lost");
  return -1;
}

/* timeout: None, or a positive number of seconds.  *due 0 for none. */
static int deadline(PyObject *timeout, uint64_t *start, uint64_t *due) {
  *due = 0;
  if (!timeout || timeout == Py_None) return 0;
  double t = PyFloat_AsDouble(timeout);
  if (t == -1 && PyErr_Occurred()) return -1;
  if (!(t > 0 && t <= FRA_TIMEOUT_MAX_S)) {
    PyErr_Format(PyExc_ValueError, "timeout: expected None or seconds from 0 (exclusive) to %d, got %R",
                 FRA_TIMEOUT_MAX_S, timeout);
    return -1;
  }
  uint64_t ms = (uint64_t)ceil(t * 1000);
  *start = fra__redis_now();
  *due = *start + (ms ? ms : 1);
  return 0;
}

static int parse_call(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *what,
                      PyObject **first, PyObject **timeout) {
  *timeout = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs < 1 || nargs > 2 || nargs + nkw > 2) {
    PyErr_Format(PyExc_TypeError, "%s() takes the command(s) and an optional timeout", what);
    return -1;
  }
  *first = args[0];
  if (nargs == 2) *timeout = args[1];
  for (Py_ssize_t i = 0; i < nkw; i++) {
    if (nargs == 2 || !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, i)) ||
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "timeout") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", what,
                   PyTuple_GET_ITEM(kwnames, i));
      return -1;
    }
    *timeout = args[nargs + i];
  }
  return 0;
}

static PyObject *conn_execute(RedisConnObject *rc, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *cmd, *timeout;
  uint64_t start = 0, due;
  size_t len = 0;
  int kind;
  if (parse_call(args, nargs, kwnames, "execute", &cmd, &timeout) || usable(rc) ||
      deadline(timeout, &start, &due) || fra__redis_format(rc, cmd, &len, &kind))
    return NULL;
  if (kind == FRA_RK_UNSUPPORTED) {
    PyErr_SetString(PyExc_ValueError, "MONITOR, SSUBSCRIBE and SUNSUBSCRIBE are not supported");
    return NULL;
  }
  PyObject *fut = PyObject_CallNoArgs(rc->create_future);
  if (!fut) return NULL;
  int ok;
  if (kind == FRA_RK_PLAIN) {
    fra_rcmd *c = PyMem_Malloc(sizeof *c);
    if (!c) {
      Py_DECREF(fut);
      return PyErr_NoMemory();
    }
    c->fut = Py_NewRef(fut);
    c->results = NULL;
    c->n = c->done = 0;
    c->start = start;
    c->due = due;
    ok = redisAsyncFormattedCommand(rc->ac, on_reply, c, rc->buf, len) == REDIS_OK;
    if (!ok) {
      Py_DECREF(c->fut);
      PyMem_Free(c);
    } else {
      rc->pending++;
    }
  } else if (kind == FRA_RK_UNSUBSCRIBE) {
    /* hiredis routes (un)subscribe confirmations by channel and drops those of channels it
     * does not know: the future resolves at once with None, and what comes goes to
     * on_message.  hiredis refuses an UNSUBSCRIBE on a connection with no subscription;
     * nothing is sent then. */
    ok = redisAsyncFormattedCommand(rc->ac, on_sub, NULL, rc->buf, len) == REDIS_OK || !rc->ac->err;
    if (ok) fut_result(rc, fut, Py_None);
    due = 0;
  } else {
    fra_rsub *s = PyMem_Malloc(sizeof *s);
    if (!s) {
      Py_DECREF(fut);
      return PyErr_NoMemory();
    }
    s->next = NULL;
    s->fut = Py_NewRef(fut);
    s->left = PySequence_Fast_GET_SIZE(cmd) - 1;
    s->start = start;
    s->due = due;
    s->pattern = kind == FRA_RK_PSUBSCRIBE;
    ok = redisAsyncFormattedCommand(rc->ac, on_sub, NULL, rc->buf, len) == REDIS_OK;
    if (!ok) {
      Py_DECREF(s->fut);
      PyMem_Free(s);
    } else {
      if (rc->subs_tail) rc->subs_tail->next = s;
      else rc->subs = s;
      rc->subs_tail = s;
      rc->pending++;
    }
  }
  if (!ok) {
    Py_DECREF(fut);
    PyErr_SetString(PyExc_ConnectionError, rc->ac && rc->ac->err ? rc->ac->errstr : "connection closing");
    return NULL;
  }
  arm(rc, due);
  after_io(rc);
  return fut;
}

static PyObject *conn_execute_many(RedisConnObject *rc, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
  PyObject *cmds, *timeout;
  uint64_t start = 0, due;
  if (parse_call(args, nargs, kwnames, "execute_many", &cmds, &timeout) || usable(rc) ||
      deadline(timeout, &start, &due))
    return NULL;
  if (!PyList_Check(cmds) && !PyTuple_Check(cmds)) {
    PyErr_Format(PyExc_TypeError, "execute_many: expected a list of commands, got %.100s",
                 Py_TYPE(cmds)->tp_name);
    return NULL;
  }
  /* the list is copied: formatting calls encoders that could change it */
  PyObject *seq = PySequence_Tuple(cmds);
  if (!seq) return NULL;
  Py_ssize_t n = PyTuple_GET_SIZE(seq);
  PyObject *fut = NULL, *results = NULL;
  size_t *ends = PyMem_Malloc(sizeof(size_t) * (size_t)(n + 1));
  fra_rcmd *c = NULL;
  if (!ends) {
    PyErr_NoMemory();
    goto fail;
  }
  /* every command is formatted before any is sent: a bad one sends nothing */
  size_t len = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    int kind;
    if (fra__redis_format(rc, PyTuple_GET_ITEM(seq, i), &len, &kind)) goto fail;
    if (kind != FRA_RK_PLAIN) {
      PyErr_Format(PyExc_ValueError, "execute_many: command %zd: pub/sub and MONITOR go through execute()", i);
      goto fail;
    }
    ends[i] = len;
  }
  if (!(fut = PyObject_CallNoArgs(rc->create_future)) || !(results = PyList_New(n))) goto fail;
  if (n == 0) {
    fut_result(rc, fut, results);
    goto done;
  }
  if (!(c = PyMem_Malloc(sizeof *c))) {
    PyErr_NoMemory();
    goto fail;
  }
  c->fut = Py_NewRef(fut);
  c->results = results;
  results = NULL;
  c->n = n;
  c->done = 0;
  c->start = start;
  c->due = due;
  /* back to back: nothing else can come between them on this connection (MULTI ... EXEC) */
  for (Py_ssize_t i = 0; i < n; i++) {
    size_t from = i ? ends[i - 1] : 0;
    if (redisAsyncFormattedCommand(rc->ac, on_reply, c, rc->buf + from, ends[i] - from) != REDIS_OK) {
      PyErr_SetString(PyExc_ConnectionError, rc->ac->err ? rc->ac->errstr : "connection closing");
      if (i == 0) {
        Py_DECREF(c->fut);
        Py_DECREF(c->results);
        PyMem_Free(c);
      } else { /* the i sent are dropped as their replies come */
        c->n = i;
        Py_CLEAR(c->fut);
      }
      goto fail;
    }
    rc->pending++;
  }
  arm(rc, due);
done:
  after_io(rc);
  PyMem_Free(ends);
  Py_DECREF(seq);
  Py_XDECREF(results);
  return fut;
fail:
  after_io(rc);
  PyMem_Free(ends);
  Py_DECREF(seq);
  Py_XDECREF(results);
  Py_XDECREF(fut);
  return NULL;
}

static ServerObject *server_for(RedisConnObject *rc) {
  PyObject *v = PyDict_GetItemWithError(rc->st->redis_loops, rc->loop); /* borrowed */
  if (!v) return NULL;
  ServerObject *so = PyLong_AsVoidPtr(v);
  return so && so->core_ready && !so->closed ? so : NULL;
}

static PyObject *conn_connect(RedisConnObject *rc, PyObject *unused) {
  if (rc->state != FRA_RS_NEW) {
    PyErr_SetString(rc->state == FRA_RS_DEAD ? PyExc_ConnectionError : PyExc_RuntimeError,
                    rc->state == FRA_RS_DEAD ? "connection closed" : "connect() was called already");
    return NULL;
  }
  ServerObject *so = server_for(rc);
  if (!so && PyErr_Occurred()) return NULL;
  redisOptions o;
  memset(&o, 0, sizeof o);
  if (rc->path) {
    REDIS_OPTIONS_SET_UNIX(&o, PyUnicode_AsUTF8(rc->path));
  } else {
    REDIS_OPTIONS_SET_TCP(&o, rc->host ? PyUnicode_AsUTF8(rc->host) : "localhost", rc->port);
  }
  /* "localhost" is 127.0.0.1 first: a Redis listening on IPv4 only is the common case */
  o.options |= REDIS_OPT_PREFER_IPV4 | REDIS_OPT_SET_SOCK_CLOEXEC;
  PyObject *fut = PyObject_CallNoArgs(rc->create_future);
  if (!fut) return NULL;
  redisAsyncContext *ac = redisAsyncConnectWithOptions(&o);
  if (!ac) {
    Py_DECREF(fut);
    return PyErr_NoMemory();
  }
  if (ac->err) { /* refused at once (a missing Unix socket), or the name did not resolve */
    rc->state = FRA_RS_DEAD;
    fut_error(rc, fut, PyObject_CallFunction(PyExc_ConnectionError, "s", ac->errstr));
    redisAsyncFree(ac);
    return fut;
  }
  /* from here on, hiredis' free of the context (ac_gone) undoes everything below */
  ac->data = rc;
  ac->dataCleanup = ac_gone;
  rc->ac = ac;
  rc->self_ref = Py_NewRef((PyObject *)rc);
  rc->state = FRA_RS_CONNECTING;
  rc->connect_fut = Py_NewRef(fut);
  int failed = 0;
  if (so) {
    rc->adapter = FRA_RA_UV;
    rc->srv = (ServerObject *)Py_NewRef((PyObject *)so);
    rc->srv_next = so->redis_conns;
    if (rc->srv_next) rc->srv_next->srv_pprev = &rc->srv_next;
    rc->srv_pprev = (RedisConnObject **)&so->redis_conns;
    so->redis_conns = rc;
    rc->uv = fra__redis_uv_open(&so->core, rc);
    int uvrc = rc->uv ? fra__redis_uv_attach(rc->uv, ac) : UV_ENOMEM;
    if (uvrc) failed = (fra_raise_uv(uvrc, "redis connection"), 1);
  } else {
    rc->adapter = FRA_RA_AIO;
    failed = fra__redis_aio_attach(rc, ac) < 0;
  }
#ifdef FRA_REDIS_TLS
  void *tls = failed ? NULL : fra__redis_tls_context(rc);
  if (tls && redisInitiateSSLWithContext(&ac->c, tls) != REDIS_OK) {
    PyErr_Format(PyExc_ConnectionError, "TLS: %s", ac->c.errstr[0] ? ac->c.errstr : "could not start");
    failed = 1;
  }
#endif
  if (failed) {
    PyObject *exc = fra_err_take();
    Py_CLEAR(rc->connect_fut);
    Py_INCREF(rc);
    redisAsyncFree(ac);
    Py_DECREF(rc);
    fra_err_restore(exc);
    Py_DECREF(fut);
    return NULL;
  }
  redisAsyncSetConnectCallbackNC(ac, on_connect); /* waits for the socket to be writable */
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  redisAsyncSetPushCallback(ac, on_push);
  if (rc->connect_timeout > 0) {
    rc->connect_due = fra__redis_now() + (uint64_t)ceil(rc->connect_timeout * 1000);
    arm(rc, rc->connect_due);
  }
  after_io(rc);
  return fut;
}

static PyObject *conn_close(RedisConnObject *rc, PyObject *unused) {
  rc->user_closed = 1;
  if (rc->state == FRA_RS_NEW) rc->state = FRA_RS_DEAD;
  if (rc->ac) {
    Py_INCREF(rc);
    /* inside one of hiredis' callbacks this only marks the context; fra__redis_io frees it */
    redisAsyncFree(rc->ac);
    after_io(rc);
    Py_DECREF(rc);
  }
  Py_RETURN_NONE;
}

static int is_utf8(const char *e) {
  return strcasecmp(e, "utf-8") == 0 || strcasecmp(e, "utf8") == 0 || strcasecmp(e, "utf_8") == 0;
}

static int opt_callable(PyObject **o, const char *name) {
  if (*o == Py_None) *o = NULL;
  if (*o && !PyCallable_Check(*o)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a callable or None, got %.100s", name, Py_TYPE(*o)->tp_name);
    return -1;
  }
  return 0;
}

static int opt_str(PyObject **o, const char *name) {
  if (*o == Py_None) *o = NULL;
  if (*o && !PyUnicode_Check(*o)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a str or None, got %.100s", name, Py_TYPE(*o)->tp_name);
    return -1;
  }
  return 0;
}

static int conn_init(RedisConnObject *rc, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"loop", "host", "port", "path", "connect_timeout", "decode", "encoding_errors",
                           "error_factory", "on_message", "on_push", "on_lost", "tls", NULL};
  PyObject *loop, *host = Py_None, *path = Py_None, *ct = Py_None, *decode = Py_None, *errors = NULL,
                  *error_factory = NULL, *on_message = Py_None, *on_push = Py_None, *on_lost = Py_None,
                  *tls = Py_None;
  int port = 6379;
  if (rc->st) {
    PyErr_SetString(PyExc_RuntimeError, "RedisConnection.__init__ called twice");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OiOOOUOOOOO", kwlist, &loop, &host, &port, &path, &ct,
                                   &decode, &errors, &error_factory, &on_message, &on_push, &on_lost, &tls))
    return -1;
  if (!(rc->st = fra_state_of_type(Py_TYPE(rc)))) return -1;
  if (!error_factory || !PyCallable_Check(error_factory)) {
    PyErr_SetString(PyExc_TypeError, "error_factory: expected a callable (an error reply's text -> exception)");
    return -1;
  }
  if (opt_str(&host, "host") || opt_str(&path, "path") || opt_str(&decode, "decode") ||
      opt_callable(&on_message, "on_message") || opt_callable(&on_push, "on_push") ||
      opt_callable(&on_lost, "on_lost"))
    return -1;
  if (port < 1 || port > 65535) {
    PyErr_Format(PyExc_ValueError, "port: expected 1 to 65535, got %d", port);
    return -1;
  }
  if (ct != Py_None) {
    double t = PyFloat_AsDouble(ct);
    if (t == -1 && PyErr_Occurred()) return -1;
    if (!(t > 0 && t <= FRA_TIMEOUT_MAX_S)) {
      PyErr_Format(PyExc_ValueError, "connect_timeout: expected None or seconds from 0 (exclusive) to %d, got %R",
                   FRA_TIMEOUT_MAX_S, ct);
      return -1;
    }
    rc->connect_timeout = t;
  }
  if (tls != Py_None && !PyObject_TypeCheck(tls, rc->st->RedisTLSType)) {
    PyErr_Format(PyExc_TypeError, "tls: expected a RedisTLS or None, got %.100s", Py_TYPE(tls)->tp_name);
    return -1;
  }
  const char *enc = "utf-8";
  if (decode) {
    if (!(enc = PyUnicode_AsUTF8(decode))) return -1;
    if (!PyCodec_KnownEncoding(enc)) {
      PyErr_Format(PyExc_LookupError, "decode: unknown encoding %R", decode);
      return -1;
    }
  }
  if (errors) Py_INCREF(errors);
  else if (!(errors = PyUnicode_FromString("strict"))) return -1;
  rc->errors = errors;
  if (!(rc->errs = PyUnicode_AsUTF8(errors))) return -1;
  rc->enc = enc;
  rc->enc_utf8 = (uint8_t)is_utf8(enc);
  rc->errs_strict = strcmp(rc->errs, "strict") == 0;
  rc->loop = Py_NewRef(loop);
  rc->host = Py_XNewRef(host);
  rc->path = Py_XNewRef(path);
  rc->encoding = Py_XNewRef(decode);
  rc->port = port;
  rc->error_factory = Py_NewRef(error_factory);
  rc->on_message = Py_XNewRef(on_message);
  rc->on_push = Py_XNewRef(on_push);
  rc->on_lost = Py_XNewRef(on_lost);
  rc->tls = tls == Py_None ? NULL : Py_NewRef(tls);
  if (!(rc->create_future = PyObject_GetAttr(loop, rc->st->s_create_future))) return -1;
  return 0;
}

static PyObject *get_connected(RedisConnObject *rc, void *c) {
  return PyBool_FromLong(rc->state == FRA_RS_CONNECTED && rc->ac && !rc->user_closed);
}

static PyObject *get_pending(RedisConnObject *rc, void *c) { return PyLong_FromSsize_t(rc->pending); }

static PyObject *get_writes(RedisConnObject *rc, void *c) { return PyLong_FromUnsignedLongLong(rc->writes); }

static PyObject *get_adapter(RedisConnObject *rc, void *c) {
  int a = rc->adapter;
  if (a == FRA_RA_NONE && rc->st) {
    ServerObject *so = server_for(rc);
    if (!so && PyErr_Occurred()) return NULL;
    a = so ? FRA_RA_UV : FRA_RA_AIO;
  }
  return PyUnicode_FromString(a == FRA_RA_UV ? "uv" : "asyncio");
}

static int conn_traverse(RedisConnObject *rc, visitproc visit, void *arg) {
  /* self_ref is not visited: an open connection is alive whoever else holds it */
  Py_VISIT(Py_TYPE(rc));
  Py_VISIT(rc->loop);
  Py_VISIT(rc->create_future);
  Py_VISIT(rc->error_factory);
  Py_VISIT(rc->on_message);
  Py_VISIT(rc->on_push);
  Py_VISIT(rc->on_lost);
  Py_VISIT(rc->tls);
  Py_VISIT(rc->connect_fut);
  Py_VISIT(rc->srv);
  Py_VISIT(rc->read_cb);
  Py_VISIT(rc->write_cb);
  Py_VISIT(rc->timer_cb);
  Py_VISIT(rc->timer_handle);
  return 0;
}

static int conn_clear(RedisConnObject *rc) {
  Py_CLEAR(rc->error_factory);
  Py_CLEAR(rc->on_message);
  Py_CLEAR(rc->on_push);
  Py_CLEAR(rc->on_lost);
  Py_CLEAR(rc->read_cb);
  Py_CLEAR(rc->write_cb);
  Py_CLEAR(rc->timer_cb);
  Py_CLEAR(rc->timer_handle);
  Py_CLEAR(rc->connect_fut);
  return 0;
}

static void conn_dealloc(RedisConnObject *rc) {
  PyTypeObject *tp = Py_TYPE(rc);
  PyObject_GC_UnTrack(rc);
  PyObject *exc = fra_err_take();
  if (rc->ac) { /* only reachable if hiredis' context outlived its reference to us */
    rc->user_closed = 1;
    rc->ac->dataCleanup = NULL;
    redisAsyncFree(rc->ac);
    rc->ac = NULL;
  }
  if (rc->uv) fra__redis_uv_close(rc->uv);
  if (rc->adapter == FRA_RA_AIO && rc->loop) fra__redis_aio_detach(rc);
  unlink_server(rc);
  fra_err_restore(exc);
  conn_clear(rc);
  Py_CLEAR(rc->loop);
  Py_CLEAR(rc->create_future);
  Py_CLEAR(rc->tls);
  Py_CLEAR(rc->host);
  Py_CLEAR(rc->path);
  Py_CLEAR(rc->encoding);
  Py_CLEAR(rc->errors);
  Py_CLEAR(rc->fd_obj);
  Py_CLEAR(rc->srv);
  PyMem_Free(rc->buf);
  tp->tp_free((PyObject *)rc);
  Py_DECREF(tp);
}

static PyMethodDef conn_own_methods[] = {
    {"connect", (PyCFunction)conn_connect, METH_NOARGS,
     "connect() -> awaitable: connects; ConnectionError (refused, closed) or TimeoutError."},
    {"execute", (PyCFunction)(void (*)(void))conn_execute, METH_FASTCALL | METH_KEYWORDS,
     "execute(args, timeout=None) -> awaitable of one command's reply."},
    {"execute_many", (PyCFunction)(void (*)(void))conn_execute_many, METH_FASTCALL | METH_KEYWORDS,
     "execute_many(commands, timeout=None) -> awaitable of the replies, errors in place."},
    {"close", (PyCFunction)conn_close, METH_NOARGS, "Disconnects; commands in flight fail. Idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef conn_methods[16];

static PyGetSetDef conn_getset[] = {
    {"connected", (getter)get_connected, NULL, "Connected and not closed.", NULL},
    {"pending", (getter)get_pending, NULL, "Commands whose replies are awaited.", NULL},
    {"adapter", (getter)get_adapter, NULL, "'uv' (our server's libuv loop) or 'asyncio'.", NULL},
    {"writes", (getter)get_writes, NULL, "Writes of hiredis' output buffer so far.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot conn_slots[] = {
    {Py_tp_doc, "One Redis connection on hiredis' async API, on our server's libuv loop or any asyncio loop."},
    {Py_tp_init, conn_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, conn_dealloc},
    {Py_tp_traverse, conn_traverse},
    {Py_tp_clear, conn_clear},
    {Py_tp_methods, conn_methods},
    {Py_tp_getset, conn_getset},
    {0, NULL},
};

static PyType_Spec conn_spec = {
    .name = "flask_restful_async._core.RedisConnection",
    .basicsize = sizeof(RedisConnObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = conn_slots,
};

/* ---- the module's side: types, shared objects, the loop -> server registry ---- */

int fra_redis_module_init(PyObject *m, fra_state *st) {
  static const char *words[3] = {"OK", "QUEUED", "PONG"};
  for (int i = 0; i < 3; i++) {
    if (!(st->redis_status_bytes[i] = PyBytes_FromString(words[i]))) return -1;
    if (!(st->redis_status_str[i] = PyUnicode_InternFromString(words[i]))) return -1;
  }
  if (!(st->redis_loops = PyDict_New())) return -1;
  PyMethodDef *parts[] = {conn_own_methods, fra__redis_aio_methods, NULL};
  if (fra_join_methods(conn_methods, sizeof conn_methods / sizeof conn_methods[0], parts) < 0) {
    PyErr_SetString(PyExc_SystemError, "RedisConnection: method table too small");
    return -1;
  }
  st->RedisConnType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &conn_spec, NULL);
  st->RedisTLSType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fra__redis_tls_spec, NULL);
  if (!st->RedisConnType || !st->RedisTLSType) return -1;
  if (PyModule_AddType(m, st->RedisConnType) < 0 || PyModule_AddType(m, st->RedisTLSType) < 0) return -1;
#ifdef FRA_REDIS_TLS
  if (PyModule_AddObjectRef(m, "REDIS_TLS", Py_True) < 0) return -1;
#else
  if (PyModule_AddObjectRef(m, "REDIS_TLS", Py_False) < 0) return -1;
#endif
  return 0;
}

void fra_redis_server_started(ServerObject *so) {
  PyObject *v = PyLong_FromVoidPtr(so);
  if (!v || PyDict_SetItem(so->st->redis_loops, so->loop, v) < 0) PyErr_WriteUnraisable((PyObject *)so);
  Py_XDECREF(v);
}

void fra_redis_server_closing(ServerObject *so) {
  if (so->st && so->st->redis_loops && so->loop) {
    PyObject *v = PyDict_GetItemWithError(so->st->redis_loops, so->loop);
    if (v && PyLong_AsVoidPtr(v) == (void *)so && PyDict_DelItem(so->st->redis_loops, so->loop) < 0) v = NULL;
    if (!v && PyErr_Occurred()) PyErr_WriteUnraisable((PyObject *)so);
  }
  while (so->redis_conns) {
    RedisConnObject *rc = so->redis_conns;
    Py_INCREF(rc);
    rc->server_gone = 1;
    if (rc->ac) redisAsyncFree(rc->ac); /* ac_gone unlinks it and closes its handles */
    unlink_server(rc);
    if (rc->uv) {
      fra__redis_uv_close(rc->uv);
      rc->uv = NULL;
    }
    Py_DECREF(rc);
  }
}
