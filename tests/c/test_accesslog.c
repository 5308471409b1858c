/* Unit tests for csrc/core/accesslog.c: lines logged on the calling (loop) thread reach a pipe
 * complete and in order; a pipe nobody reads makes lines drop, never blocks the caller, and the
 * count is reported once the pipe is read; at exit an unread pipe is given up after a bounded
 * wait.  Built with ThreadSanitizer too (`make run SANITIZE=thread`) for the loop/writer pair. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "fra/core.h"

/* ---- a pipe read to EOF by a thread, on demand ---- */
typedef struct {
  int rfd, wfd;
  pthread_t tid;
  pthread_mutex_t mu;
  char *buf;
  size_t len, cap;
  int started;
} sink;

static void sink_open(sink *k, int small) {
  memset(k, 0, sizeof *k);
  int fds[2];
  if (pipe(fds) != 0) abort();
  k->rfd = fds[0];
  k->wfd = fds[1];
  if (small) fcntl(k->wfd, F_SETPIPE_SZ, 4096); /* a page: a few lines fill it */
  pthread_mutex_init(&k->mu, NULL);
}

static void *sink_main(void *arg) {
  sink *k = arg;
  char tmp[65536];
  ssize_t n;
  while ((n = read(k->rfd, tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR)) {
    if (n <= 0) continue;
    pthread_mutex_lock(&k->mu);
    if (k->len + (size_t)n > k->cap) {
      k->cap = (k->len + (size_t)n) * 2;
      k->buf = realloc(k->buf, k->cap);
      if (!k->buf) abort();
    }
    memcpy(k->buf + k->len, tmp, (size_t)n);
    k->len += (size_t)n;
    pthread_mutex_unlock(&k->mu);
  }
  return NULL;
}

static void sink_start(sink *k) {
  k->started = 1;
  if (pthread_create(&k->tid, NULL, sink_main, k)) abort();
}

static size_t sink_lines(sink *k) {
  pthread_mutex_lock(&k->mu);
  size_t n = 0;
  for (size_t i = 0; i < k->len; i++) n += k->buf[i] == '\n';
  pthread_mutex_unlock(&k->mu);
  return n;
}

/* Waits until the sink holds at least n lines (the writer runs on its own). */
static int sink_wait_lines(sink *k, size_t n) {
  for (int i = 0; i < 2000; i++) {
    if (sink_lines(k) >= n) return 1;
    usleep(5000);
  }
  return 0;
}

/* Closes the write end (the server only borrowed it) and reads to EOF. */
static void sink_finish(sink *k) {
  close(k->wfd);
  if (!k->started) sink_start(k);
  pthread_join(k->tid, NULL);
  close(k->rfd);
}

/* ---- a fake connection and request, as conn.c hands them to the log ---- */
typedef struct {
  fra_conn c;
  fra_req r;
  char buf[80 * 1024];
} fake;

/* Target "/line/NNNNNN/" padded with 'x' to `len` bytes. */
static void fake_req(fake *f, int i, size_t len) {
  memset(&f->c, 0, sizeof f->c);
  memset(&f->r, 0, sizeof f->r);
  memcpy(f->buf, "GET", 3);
  int n = snprintf(f->buf + 3, sizeof f->buf - 3, "/line/%06d/", i);
  if (len < (size_t)n) len = (size_t)n;
  memset(f->buf + 3 + n, 'x', len - (size_t)n);
  f->r.buf = f->buf;
  f->r.method_off = 0;
  f->r.method_len = 3;
  f->r.url_off = 3;
  f->r.url_len = (uint32_t)len;
  f->r.http_major = 1;
  f->r.http_minor = 1;
  f->c.parser.req = &f->r; /* flags 0: not TCP, so the peer is logged as "-" */
}

/* Logs lines from..to-1 (a target of `len` bytes each) as responses of status 200. */
static void log_lines(fra_server *s, fake *f, int from, int to, size_t len) {
  for (int i = from; i < to; i++) {
    fake_req(f, i, len);
    fra__access_log(s, &f->c, 200, (uint64_t)i * 3);
  }
}

static fra_server *server(int log_fd, int warn_fd) {
  fra_server *s = calloc(1, sizeof *s);
  fra_config cfg;
  fra_hooks hooks;
  memset(&cfg, 0, sizeof cfg);
  memset(&hooks, 0, sizeof hooks);
  cfg.access_log_fd = log_fd;
  cfg.log_fd = warn_fd;
  if (!s || fra_server_init(s, &cfg, &hooks, NULL) != 0) abort();
  return s;
}

/* A server logging to `out` (not read yet: its reader starts when the test says) and warning
 * to `warn` (read from the start). */
static fra_server *logging_server(sink *out, sink *warn) {
  sink_open(out, 1);
  sink_open(warn, 0);
  sink_start(warn);
  return server(out->wfd, warn->wfd);
}

static void destroy(fra_server *s) {
  fra_server_destroy(s);
  free(s);
}

/* Checks each line is "- - - [time] "GET /line/N/xxx HTTP/1.1" 200 N" with a strictly growing
 * N and the target length it was logged with; returns the number of lines. */
static size_t check_lines(sink *k, size_t target_len, const char *what) {
  size_t count = 0;
  long prev = -1;
  char *p = k->buf, *end = k->buf + k->len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    CHECK(nl, "%s: last line incomplete", what);
    if (!nl) break;
    char *q = strstr(p, "\"GET /line/");
    int id = -1, tail = -1;
    CHECK(strncmp(p, "- - - [", 7) == 0 && q && q < nl, "%s: line %zu malformed: %.80s", what, count, p);
    if (q && q < nl) {
      sscanf(q, "\"GET /line/%d/", &id);
      char *sp = memchr(q + 5, ' ', (size_t)(nl - q - 5));
      CHECK(sp && (size_t)(sp - (q + 5)) == target_len, "%s: line %zu target cut", what, count);
      CHECK(sp && sscanf(sp, " HTTP/1.1\" 200 %d", &tail) == 1 && tail == id * 3, "%s: line %zu tail", what, count);
    }
    CHECK(id > prev, "%s: line %zu out of order (%d after %ld)", what, count, id, prev);
    prev = id;
    count++;
    p = nl + 1;
  }
  return count;
}

/* Sums the N of each "WARNING access log: N lines <what> (" on the warning pipe and counts
 * those lines in *reports; returns -1 when there is none. */
static long warned(sink *w, const char *what, int *reports) {
  static const char tag[] = "WARNING access log: ";
  long sum = -1;
  int count = 0;
  pthread_mutex_lock(&w->mu);
  char *p = w->buf, *end = w->buf + w->len;
  while (p && p < end && (p = memmem(p, (size_t)(end - p), tag, sizeof tag - 1))) {
    p += sizeof tag - 1;
    long v;
    int used = 0;
    if (sscanf(p, "%ld lines %n", &v, &used) == 1 && used && strncmp(p + used, what, strlen(what)) == 0 &&
        p[used + strlen(what)] == ' ') {
      sum = sum < 0 ? v : sum + v;
      count++;
    }
  }
  pthread_mutex_unlock(&w->mu);
  if (reports) *reports = count;
  return sum;
}

/* A pipe read all along: every line arrives, complete and in order. */
static void test_read_normally(void) {
  sink out, warn;
  sink_open(&out, 0);
  sink_open(&warn, 0);
  sink_start(&out);
  sink_start(&warn);
  fra_server *s = server(out.wfd, warn.wfd);
  static fake f;
  int n = 20000;
  for (int i = 0; i < n; i++) {
    /* a reader keeping up: never more than ~1,500 lines (a third of the buffer) behind */
    if (i % 1000 == 0 && i >= 1000) CHECK(sink_wait_lines(&out, (size_t)i - 500), "reader keeps up");
    fake_req(&f, i, 100);
    fra__access_log(s, &f.c, 200, (uint64_t)i * 3);
  }
  destroy(s);
  sink_finish(&out);
  sink_finish(&warn);
  CHECK(check_lines(&out, 100, "read normally") == (size_t)n, "every line written");
  CHECK(warn.len == 0, "no warning: %.*s", (int)warn.len, warn.buf);
  free(out.buf);
  free(warn.buf);
}

/* Nobody reads: the caller is never blocked, lines drop; once the pipe is read the count is
 * reported once, and logged + dropped is every line. */
static void test_stalled_then_read(void) {
  sink out, warn;
  fra_server *s = logging_server(&out, &warn);
  static fake f;
  int stalled = 2000, more = 50; /* 2000 lines of 6 KB: twenty times the buffer */
  log_lines(s, &f, 0, stalled, 6000);
  sink_start(&out);
  long dropped = -1;
  for (int i = 0; i < 2000 && (dropped = warned(&warn, "dropped", NULL)) < 0; i++) usleep(5000);
  CHECK(dropped > 0, "a drop count was reported once the pipe was read");
  CHECK(sink_wait_lines(&out, (size_t)(stalled - dropped)), "the backlog was written");
  log_lines(s, &f, stalled, stalled + more, 6000);
  destroy(s);
  sink_finish(&out);
  sink_finish(&warn);
  size_t got = check_lines(&out, 6000, "stalled then read");
  CHECK(got + (size_t)dropped == (size_t)(stalled + more), "%zu logged + %ld dropped", got, dropped);
  int reports = 0;
  CHECK(warned(&warn, "dropped", &reports) == dropped && reports == 1, "one report: %.*s", (int)warn.len, warn.buf);
  free(out.buf);
  free(warn.buf);
}

/* Nobody ever reads: destroy still returns (after its bounded wait) and counts what is lost. */
static void test_stalled_at_exit(void) {
  sink out, warn;
  fra_server *s = logging_server(&out, &warn);
  static fake f;
  int n = 40;
  log_lines(s, &f, 0, n, 6000);
  destroy(s); /* the writer is stuck in write(): given up */
  sink_finish(&warn);
  long lost = warned(&warn, "not written", NULL);
  /* What the pipe holds, read here without closing it: the abandoned writer may still be inside
   * write() on that fd, and leaves without touching it again once that returns. */
  fcntl(out.rfd, F_SETFL, O_NONBLOCK);
  char tmp[65536];
  ssize_t r;
  while ((r = read(out.rfd, tmp, sizeof tmp)) > 0) {
    out.buf = realloc(out.buf, out.len + (size_t)r);
    memcpy(out.buf + out.len, tmp, (size_t)r);
    out.len += (size_t)r;
  }
  char *last = out.len ? memrchr(out.buf, '\n', out.len) : NULL;
  out.len = last ? (size_t)(last - out.buf) + 1 : 0; /* a line cut by the give-up is not counted */
  size_t got = check_lines(&out, 6000, "stalled at exit");
  CHECK(lost > 0 && got + (size_t)lost >= (size_t)n, "%zu logged, %ld lost of %d", got, lost, n);
  free(out.buf);
  free(warn.buf);
}

/* A target longer than a batch can hold is cut, the line stays well formed. */
static void test_oversize_target(void) {
  sink out, warn;
  sink_open(&out, 0);
  sink_open(&warn, 0);
  sink_start(&out);
  sink_start(&warn);
  fra_server *s = server(out.wfd, warn.wfd);
  static fake f;
  log_lines(s, &f, 0, 3, 70 * 1024);
  destroy(s);
  sink_finish(&out);
  sink_finish(&warn);
  CHECK(check_lines(&out, 60 * 1024, "oversize") == 3, "three lines, targets cut to 60 KiB");
  free(out.buf);
  free(warn.buf);
}

/* The hand-written line is byte for byte the common log format snprintf wrote before. */
static void test_line_format(void) {
  sink out, warn;
  sink_open(&out, 0);
  sink_open(&warn, 0);
  sink_start(&out);
  sink_start(&warn);
  fra_server *s = server(out.wfd, warn.wfd);
  static fake f;
  struct { int status, major, minor; uint64_t bytes; } cases[] = {
      {200, 1, 1, 0}, {404, 1, 0, 17}, {500, 1, 1, 18446744073709551615ull}, {101, 1, 1, 1234567890},
      {-1, 1, 1, 5}, {2147483647, 2, 0, 10}, {-2147483647 - 1, 0, 9, 100}};
  int n = (int)(sizeof cases / sizeof cases[0]);
  for (int i = 0; i < n; i++) {
    fake_req(&f, i, 20 + (size_t)i);
    f.r.http_major = (uint8_t)cases[i].major;
    f.r.http_minor = (uint8_t)cases[i].minor;
    fra__access_log(s, &f.c, cases[i].status, cases[i].bytes);
  }
  destroy(s);
  sink_finish(&out);
  sink_finish(&warn);
  /* each line against snprintf's, with the time the line itself carries */
  char *p = out.buf, *end = out.buf + out.len;
  for (int i = 0; i < n; i++) {
    char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
    char *t0 = p < end ? memchr(p, '[', (size_t)(end - p)) : NULL, *t1 = t0 ? memchr(t0, ']', (size_t)(end - t0)) : NULL;
    CHECK(nl && t0 && t1 && t1 < nl, "line %d present", i);
    if (!nl || !t0 || !t1 || t1 > nl) break;
    char want[256];
    fake_req(&f, i, 20 + (size_t)i);
    int wl = snprintf(want, sizeof want, "- - - %.*s \"GET %.*s HTTP/%d.%d\" %d %llu\n", (int)(t1 + 1 - t0), t0,
                      (int)f.r.url_len, f.buf + 3, cases[i].major, cases[i].minor, cases[i].status,
                      (unsigned long long)cases[i].bytes);
    CHECK((long)wl == nl + 1 - p && memcmp(p, want, (size_t)wl) == 0, "line %d: %.*s, want %s", i, (int)(nl - p), p, want);
    p = nl + 1;
  }
  CHECK(p == end, "no more lines");
  free(out.buf);
  free(warn.buf);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  alarm(120); /* a log that blocks its caller would hang here: fail instead (SIGALRM kills) */
  test_read_normally();
  test_stalled_then_read();
  test_stalled_at_exit();
  test_oversize_target();
  test_line_format();
  printf("test_accesslog: %d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
