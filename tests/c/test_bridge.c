/* Unit tests for csrc/py driven from C with CPython embedded (the extension compiled into this
 * program): the environ builder (request.c), response framing (framing.c) on an exchange whose
 * bytes go to its output queue, the pool's wake-up rule (threads.c), and an exchange that
 * cannot be allocated (exchange.c, over a socketpair).  Exchanges are made on stand-in
 * connections holding a parsed request; nothing is written to a socket except in the last. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "fra/bridge.h"

PyMODINIT_FUNC PyInit__core(void);

static fra_req *new_req(void *owner) { return calloc(1, sizeof(fra_req)); }

/* A request parsed from raw bytes (whole), as the connection would hand it to the bridge. */
static fra_req *parse(const char *raw) {
  fra_parser ps;
  fra_limits lim = {8190, 32768, 100, 0};
  fra_parser_init(&ps, &lim, NULL);
  ps.new_req = new_req;
  fra_parse_error err;
  long used = fra_parser_execute(&ps, raw, strlen(raw), &err);
  CHECK(used >= 0, "request parses (%s)", used < 0 ? err.reason : "");
  fra_req *r = ps.req;
  CHECK(r && r->headers_done, "headers complete");
  r->dispatched = 1;
  return r;
}

/* A Server object of the module (made through Python, as the worker makes it). */
static ServerObject *make_server(const char *kwargs) {
  char code[512];
  snprintf(code, sizeof code,
           "import asyncio, _core\n"
           "_loop = asyncio.new_event_loop()\n"
           "srv = _core.Server(lambda *a: None, _loop, %s)\n", kwargs);
  PyObject *globals = PyDict_New();
  PyObject *r = PyRun_String(code, Py_file_input, globals, globals);
  if (!r) PyErr_Print();
  CHECK(r != NULL, "Server(%s)", kwargs);
  Py_XDECREF(r);
  PyObject *srv = PyDict_GetItemString(globals, "srv"); /* borrowed */
  Py_XINCREF(srv);
  Py_DECREF(globals);
  return (ServerObject *)srv;
}

typedef struct {
  fra_conn conn;
  ServerObject *so;
  ExchangeObject *ex;
} stand_in;

/* An exchange for `raw` on a stand-in connection (not TCP: no addresses). */
static void exchange_for(stand_in *t, ServerObject *so, const char *raw, int kind) {
  memset(&t->conn, 0, sizeof t->conn);
  t->so = so;
  t->conn.srv = &so->core;
  t->conn.parser.req = parse(raw);
  t->ex = fra_exchange_new(so, &t->conn);
  CHECK(t->ex != NULL, "exchange made");
  t->ex->kind = (uint8_t)kind;
}

static void stand_in_free(stand_in *t) {
  fra_req *r = t->conn.parser.req;
  t->ex->conn = NULL;
  t->ex->req = NULL;
  Py_DECREF(t->ex);
  fra_req_free(r);
}

static const char *env_str(PyObject *env, const char *key) {
  PyObject *v = PyDict_GetItemString(env, key); /* borrowed */
  return v && PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
}

static int env_is(PyObject *env, const char *key, const char *want) {
  const char *got = env_str(env, key);
  if (!want) return got == NULL;
  if (got && strcmp(got, want) == 0) return 1;
  fprintf(stderr, "  %s = %s, expected %s\n", key, got ? got : "(absent)", want);
  return 0;
}

/* ---- request.c: the environ ---- */

static void test_environ(void) {
  ServerObject *so = make_server("interface='wsgi', root_path='/app'");
  stand_in t;
  exchange_for(&t, so,
               "GET /app/caf%C3%A9/x?q=1&r=%20 HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\n"
               "Accept: text/html\r\ncookie: b=2\r\nAccept: application/json\r\n"
               "X_Smuggled: no\r\nContent-Type: text/plain\r\nX-Req: 7\r\n\r\n",
               FRA_IF_WSGI);
  PyObject *env = fra_build_environ(t.ex, Py_None, -1);
  CHECK(env != NULL, "environ built");
  /* RFC 6265 5.4: cookie pairs are separated by "; "; other fields join with "," (RFC 9110 5.3) */
  CHECK(env_is(env, "HTTP_COOKIE", "a=1; b=2"), "Cookie fields joined with '; '");
  CHECK(env_is(env, "HTTP_ACCEPT", "text/html,application/json"), "repeated fields joined with ','");
  CHECK(env_is(env, "HTTP_X_SMUGGLED", NULL), "a name with '_' is dropped");
  CHECK(env_is(env, "CONTENT_TYPE", "text/plain") && env_is(env, "HTTP_CONTENT_TYPE", NULL), "CONTENT_TYPE");
  CHECK(env_is(env, "HTTP_X_REQ", "7"), "HTTP_X_REQ");
  /* PEP 3333: bytes as latin-1; the root path goes to SCRIPT_NAME, the rest to PATH_INFO */
  CHECK(env_is(env, "SCRIPT_NAME", "/app"), "SCRIPT_NAME is the root path");
  CHECK(env_is(env, "PATH_INFO", "/caf\xc3\x83\xc2\xa9/x"), "PATH_INFO: decoded bytes as latin-1, root removed");
  CHECK(env_is(env, "QUERY_STRING", "q=1&r=%20"), "QUERY_STRING stays encoded");
  CHECK(env_is(env, "RAW_URI", "/app/caf%C3%A9/x?q=1&r=%20"), "RAW_URI");
  CHECK(env_is(env, "REQUEST_METHOD", "GET") && env_is(env, "SERVER_PROTOCOL", "HTTP/1.1"), "method, protocol");
  CHECK(PyDict_GetItemString(env, "wsgi.multiprocess") == Py_False, "one worker: wsgi.multiprocess is False");
  CHECK(PyDict_GetItemString(env, "wsgi.input") == Py_None, "wsgi.input is what was given");
  Py_DECREF(env);
  stand_in_free(&t);

  /* a path that only starts like the root path keeps it */
  exchange_for(&t, so, "GET /application HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  env = fra_build_environ(t.ex, Py_None, 5);
  CHECK(env_is(env, "PATH_INFO", "/application"), "/application is not under /app");
  CHECK(env_is(env, "CONTENT_LENGTH", "5"), "a whole body's length becomes CONTENT_LENGTH");
  Py_DECREF(env);
  stand_in_free(&t);
  Py_DECREF(so);

  so = make_server("interface='wsgi', multiprocess=True");
  exchange_for(&t, so, "GET / HTTP/1.0\r\n\r\n", FRA_IF_WSGI);
  env = fra_build_environ(t.ex, Py_None, -1);
  CHECK(PyDict_GetItemString(env, "wsgi.multiprocess") == Py_True, "several workers: wsgi.multiprocess is True");
  CHECK(env_is(env, "SERVER_PROTOCOL", "HTTP/1.0") && env_is(env, "SCRIPT_NAME", ""), "HTTP/1.0, no root");
  Py_DECREF(env);
  stand_in_free(&t);
  Py_DECREF(so);
}

/* ---- framing.c ---- */

/* Everything the exchange queued for the client, joined. */
static char *output(ExchangeObject *ex, size_t *len) {
  static char buf[8192];
  size_t n = 0;
  Py_ssize_t parts = ex->outq ? PyList_GET_SIZE(ex->outq) : 0;
  for (Py_ssize_t i = 0; i < parts; i++) {
    PyObject *b = PyList_GET_ITEM(ex->outq, i);
    size_t l = (size_t)PyBytes_GET_SIZE(b);
    if (n + l < sizeof buf) {
      memcpy(buf + n, PyBytes_AS_STRING(b), l);
      n += l;
    }
  }
  buf[n] = 0;
  Py_CLEAR(ex->outq);
  *len = n;
  return buf;
}

static void test_framing(void) {
  ServerObject *so = make_server("interface='wsgi'");
  stand_in t;
  size_t n;

  exchange_for(&t, so, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  CHECK(fra_ex_head_begin(t.ex, 200, NULL, 0) == 0, "head begins");
  CHECK(fra_ex_head_add(t.ex, "content-type", 12, "text/plain", 10) == 0, "app header");
  CHECK(fra_ex_body(t.ex, "hello", 5, 0) == 0, "whole body");
  char *out = output(t.ex, &n);
  static const char start[] = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nDate: ";
  CHECK(strncmp(out, start, sizeof start - 1) == 0,
        "status line, the app's header as the app wrote it, then Date: %.60s", out);
  CHECK(strstr(out, "\r\nServer: flask-restful-async\r\nContent-Length: 5\r\n\r\nhello") != NULL,
        "Server, Content-Length in the server's case, body in the same write: %s", out);
  CHECK(strstr(out, "Connection:") == NULL, "HTTP/1.1 keep-alive needs no Connection field");
  stand_in_free(&t);

  /* a body in pieces: chunked on HTTP/1.1 */
  exchange_for(&t, so, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  fra_ex_head_begin(t.ex, 200, NULL, 0);
  CHECK(fra_ex_body(t.ex, "abc", 3, 1) == 0 && fra_ex_body(t.ex, "", 0, 0) == 0, "streamed body");
  out = output(t.ex, &n);
  CHECK(strstr(out, "Transfer-Encoding: chunked\r\n") && strstr(out, "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "chunked framing: %s", out);
  stand_in_free(&t);

  /* HTTP/1.0 without a length: the close ends the body */
  exchange_for(&t, so, "GET / HTTP/1.0\r\n\r\n", FRA_IF_WSGI);
  fra_ex_head_begin(t.ex, 200, NULL, 0);
  fra_ex_body(t.ex, "abc", 3, 1);
  out = output(t.ex, &n);
  CHECK(strstr(out, "Connection: close\r\n") && !strstr(out, "chunked") && t.ex->keep_alive == 0,
        "HTTP/1.0 stream closes: %s", out);
  stand_in_free(&t);

  /* HEAD: the app's Content-Length is kept, the body is not sent */
  exchange_for(&t, so, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  fra_ex_head_begin(t.ex, 200, NULL, 0);
  fra_ex_head_add(t.ex, "Content-Length", 14, "11", 2);
  CHECK(fra_ex_body(t.ex, "hello world", 11, 0) == 0, "HEAD body accepted");
  out = output(t.ex, &n);
  CHECK(strstr(out, "Content-Length: 11\r\n\r\n") && n == (size_t)(strstr(out, "\r\n\r\n") - out) + 4,
        "HEAD: length kept, no body: %s", out);
  stand_in_free(&t);

  /* 204: no framing at all */
  exchange_for(&t, so, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  fra_ex_head_begin(t.ex, 204, NULL, 0);
  fra_ex_body(t.ex, "", 0, 0);
  out = output(t.ex, &n);
  CHECK(strncmp(out, "HTTP/1.1 204 No Content\r\n", 25) == 0 && !strstr(out, "Content-Length") &&
            !strstr(out, "chunked"),
        "204 has no framing: %s", out);
  stand_in_free(&t);

  /* what cannot be framed is refused */
  exchange_for(&t, so, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", FRA_IF_WSGI);
  fra_ex_head_begin(t.ex, 200, NULL, 0);
  CHECK(fra_ex_head_add(t.ex, "X-Bad", 5, "a\r\nb", 4) < 0 && PyErr_ExceptionMatches(PyExc_ValueError),
        "CR/LF in a value refused");
  PyErr_Clear();
  CHECK(fra_ex_head_add(t.ex, "Bad Name", 8, "v", 1) < 0, "a name that is not a token refused");
  PyErr_Clear();
  fra_ex_head_add(t.ex, "Content-Length", 14, "2", 1);
  CHECK(fra_ex_body(t.ex, "abc", 3, 0) < 0 && (t.ex->wflags & FRA_W_ABORT), "a body longer than its length aborts");
  PyErr_Clear();
  output(t.ex, &n);
  stand_in_free(&t);
  Py_DECREF(so);
}

/* ---- threads.c: a pool thread is woken only when what it waits for happened ---- */

static int sem_value(uv_sem_t *s) {
  int n = 0;
  while (uv_sem_trywait(s) == 0) n++;
  return n;
}

static void test_wake_rule(void) {
  ServerObject *so = make_server("interface='wsgi'");
  stand_in t;
  /* a body announced but not arrived */
  exchange_for(&t, so, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", FRA_IF_WSGI);
  uv_sem_t sem;
  uv_sem_init(&sem, 0);
  t.ex->sem = &sem;
  t.ex->waiting = 1;
  t.ex->conn = &t.conn;
  t.ex->wait_for = FRA_WAIT_BODY;
  t.ex->out_pending = 0; /* output drained: no reason to wake a thread waiting for body bytes */
  fra_threads_notify(t.ex);
  CHECK(sem_value(&sem) == 0 && t.ex->waiting, "no body yet: the waiting thread sleeps on");
  fra_req_body_append(t.conn.parser.req, "abc", 3);
  fra_threads_notify(t.ex);
  CHECK(sem_value(&sem) == 1 && !t.ex->waiting, "body bytes: woken once");
  /* waiting for the client to take output */
  t.ex->waiting = 1;
  t.ex->wait_for = FRA_WAIT_DRAIN;
  t.ex->out_pending = FRA_WRITE_HIGH + 1;
  fra_threads_notify(t.ex);
  CHECK(sem_value(&sem) == 0, "output still above the watermark: sleeps on");
  t.ex->out_pending = FRA_WRITE_LOW;
  fra_threads_notify(t.ex);
  CHECK(sem_value(&sem) == 1, "output drained: woken");
  t.ex->waiting = 1;
  t.ex->wait_for = FRA_WAIT_BODY;
  t.conn.parser.req->body_off = t.conn.parser.req->body_len;
  t.ex->gone = 1;
  fra_threads_notify(t.ex);
  CHECK(sem_value(&sem) == 1, "the client gone: woken whatever it waits for");
  t.ex->sem = NULL;
  uv_sem_destroy(&sem);
  stand_in_free(&t);
  Py_DECREF(so);
}

/* ---- exchange.c: an exchange that cannot be allocated ---- */

static void test_exchange_alloc_failure(void) {
  ServerObject *so = make_server("interface='asgi'");
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  fra_conn *c = fra__conn_open_fd(&so->core, sv[0]);
  CHECK(c != NULL, "connection");
  int free_before = so->core.nfree_reqs;
  CHECK(fra_fault_set("exchange_alloc:1") == 0, "fault plan");
  /* the failure is reported as unraisable: counted here instead of printed */
  PyRun_SimpleString("import sys; unraisable = []; sys.unraisablehook = unraisable.append");
  const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(write(sv[1], req, sizeof req - 1) == (ssize_t)(sizeof req - 1), "request sent");
  for (int i = 0; i < 50 && so->core.nconns; i++) {
    fra_server_run_nowait(&so->core);
    usleep(2000);
  }
  fra_fault_set("");
  CHECK(so->core.nrequests == 1, "the request was dispatched");
  CHECK(so->core.nactive == 0, "no request counted active after the failure (%llu)",
        (unsigned long long)so->core.nactive);
  CHECK(so->core.nfree_reqs == free_before + 1, "the request went back to the free list");
  CHECK(so->core.nconns == 0, "the connection was closed");
  CHECK(PyRun_SimpleString("assert len(unraisable) == 1 and unraisable[0].exc_type is MemoryError") == 0,
        "the failure was reported once");
  char buf[64];
  CHECK(read(sv[1], buf, sizeof buf) == 0, "the client sees the close");
  close(sv[1]);
  PyErr_Clear();
  Py_DECREF(so);
}

/* ---- server.c: a server whose core cannot be set up ---- */

static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) != -1) n++;
  return n;
}

static void test_server_init_failure(void) {
  PyRun_SimpleString("import gc; gc.collect()"); /* earlier tests' loops closed first */
  int before = open_fds();
  CHECK(fra_fault_set("server_init:1") == 0, "fault plan");
  PyObject *globals = PyDict_New();
  PyObject *r = PyRun_String("import asyncio, _core, gc\n"
                             "loop = asyncio.new_event_loop()\n"
                             "try:\n"
                             "    _core.Server(lambda *a: None, loop)\n"
                             "    outcome = 'made'\n"
                             "except OSError as exc:\n"
                             "    outcome = exc.__class__.__name__\n"
                             "loop.close()\n"
                             "del loop\n"
                             "gc.collect()\n",
                             Py_file_input, globals, globals);
  fra_fault_set("");
  if (!r) PyErr_Print();
  CHECK(r != NULL, "making the server raised no unexpected error, nor crashed");
  Py_XDECREF(r);
  PyObject *outcome = PyDict_GetItemString(globals, "outcome"); /* borrowed */
  CHECK(outcome && strcmp(PyUnicode_AsUTF8(outcome), "OSError") == 0, "Server() raised OSError");
  Py_DECREF(globals);
  CHECK(open_fds() == before, "nothing left open (%d fds, %d before)", open_fds(), before);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  PyImport_AppendInittab("_core", PyInit__core);
  Py_Initialize();
  PyObject *m = PyImport_ImportModule("_core");
  if (!m) PyErr_Print();
  CHECK(m != NULL, "import _core");
  test_environ();
  test_framing();
  test_wake_rule();
  test_exchange_alloc_failure();
  test_server_init_failure();
  Py_XDECREF(m);
  if (Py_FinalizeEx() < 0) CHECK(0, "interpreter finalised");
  printf("bridge: %d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
