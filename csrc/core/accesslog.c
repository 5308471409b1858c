/* accesslog.c — the access log: one line per response, formatted on the loop thread into
 * fixed-size batches that a writer thread writes to the log's fd, so a log reader that stalls
 * (a full stdout pipe) never blocks serving.  Owns the batches, the writer thread, the flush
 * timer and the count of dropped lines.  No function here needs the GIL; writer_main runs on
 * its own thread and never touches Python. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include "fra/core.h"

/* Memory is bounded: at most ALOG_BATCHES batches of ALOG_BATCH_SIZE bytes (512 KiB) exist,
 * allocated as the log needs them.  A batch goes to the writer once ALOG_HAND_AT bytes are in
 * it (the rest leaves room for the next line) or a second after its first line. */
#define ALOG_BATCH_SIZE (64 * 1024)
#define ALOG_BATCHES 8
#define ALOG_HAND_AT (48 * 1024)
#define ALOG_FLUSH_MS 1000
/* The longest target written in full: a line must fit one batch (the rest of a line is < 256
 * bytes).  Only a --limit-request-line above 60 KiB lets a longer target in. */
#define ALOG_TARGET_MAX (60 * 1024)
/* At exit, how long the writer may take to write what is left before it is given up. */
#define ALOG_EXIT_WAIT_MS 2000
/* A reader that keeps falling behind gets one warning a second, not one per batch. */
#define ALOG_REPORT_EVERY_NS 1000000000ull

typedef struct alog_batch {
  struct alog_batch *next;     /* in the writer's queue or the free list */
  size_t len;
  uint64_t nlines;
  char data[ALOG_BATCH_SIZE];
} alog_batch;

struct fra_access_log {
  int fd, warn_fd;
  /* loop thread only */
  alog_batch *cur;             /* the batch being filled, NULL when none was free */
  alog_batch *all[ALOG_BATCHES]; /* every batch allocated, freed with the log */
  int nalloc;
  /* under mu */
  uv_mutex_t mu;
  uv_cond_t work;              /* the writer waits here for a batch */
  uv_cond_t idle;              /* the owner waits here, at exit, for the writer to finish */
  alog_batch *qhead, *qtail;   /* batches handed to the writer, oldest first */
  alog_batch *free;            /* written batches, ready to fill again */
  alog_batch *writing;         /* the batch inside write(), owned by the writer meanwhile */
  uint64_t dropped;            /* lines dropped and not yet reported */
  int writer_waiting, stop, done, abandoned;
  int refs;                    /* the owner + the writer thread; the last to let go frees */
};

static void report(int fd, const char *what, uint64_t n) {
  if (fd < 0 || n == 0) return;
  /* the server log's format, as flask_restful_async/server/logs.py writes it */
  char msg[160];
  int len = snprintf(msg, sizeof msg, "[%d] WARNING access log: %llu lines %s (stdout was not being read)\n",
                     (int)getpid(), (unsigned long long)n, what);
  if (len <= 0) return;
  ssize_t w;
  do w = write(fd, msg, (size_t)len);
  while (w < 0 && errno == EINTR);
}

static uint64_t count_lines(const char *p, size_t n) {
  uint64_t k = 0;
  const char *end = p + n;
  while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) k++, p++;
  return k;
}

static void log_free(struct fra_access_log *a) {
  for (int i = 0; i < a->nalloc; i++) free(a->all[i]);
  uv_cond_destroy(&a->idle);
  uv_cond_destroy(&a->work);
  uv_mutex_destroy(&a->mu);
  free(a);
}

/* Lets go of the log (mu held on entry, released here); the last of owner and writer frees it. */
static void release_locked(struct fra_access_log *a) {
  int last = --a->refs == 0;
  uv_mutex_unlock(&a->mu);
  if (last) log_free(a);
}

/* Writes one batch with blocking writes; returns the lines that could not be written. */
static uint64_t write_batch(struct fra_access_log *a, const alog_batch *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t w = write(a->fd, b->data + off, b->len - off);
    if (w >= 0) {
      off += (size_t)w;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* someone made the fd non-blocking: wait for room, checking now and then whether the
       * owner has given up on us */
      struct pollfd p = {.fd = a->fd, .events = POLLOUT};
      if (poll(&p, 1, 1000) >= 0 || errno == EINTR) {
        uv_mutex_lock(&a->mu);
        int gone = a->abandoned;
        uv_mutex_unlock(&a->mu);
        if (!gone) continue;
      }
    }
    break; /* a closed pipe, a full disk: the rest of the batch is dropped and counted */
  }
  return count_lines(b->data + off, b->len - off);
}

/* Reports the dropped lines (mu held; released while writing to the server log). */
static void report_dropped(struct fra_access_log *a, uint64_t *last_report) {
  uint64_t n = a->dropped;
  a->dropped = 0;
  uv_mutex_unlock(&a->mu);
  report(a->warn_fd, "dropped", n);
  *last_report = uv_hrtime();
  uv_mutex_lock(&a->mu);
}

static void *writer_main(void *arg) {
  struct fra_access_log *a = arg;
  uint64_t last_report = 0;
  int reported = 0;
  uv_mutex_lock(&a->mu);
  for (;;) {
    if (a->abandoned) break; /* the owner gave up at exit and counted what is left */
    if (!a->qhead) {
      if (a->dropped) {      /* caught up: whatever was dropped is reported now */
        report_dropped(a, &last_report);
        reported = 1;
        continue;
      }
      if (a->stop) break;
      a->writer_waiting = 1;
      uv_cond_wait(&a->work, &a->mu);
      a->writer_waiting = 0;
      continue;
    }
    alog_batch *b = a->qhead;
    if (!(a->qhead = b->next)) a->qtail = NULL;
    a->writing = b;
    uv_mutex_unlock(&a->mu);
    uint64_t lost = write_batch(a, b);
    uv_mutex_lock(&a->mu);
    a->writing = NULL;
    a->dropped += lost;
    b->next = a->free;
    a->free = b;
    /* A batch got through: the log moves again, so drops are reported now, though at most
     * once a second while the reader keeps falling behind, not once per batch. */
    if (a->dropped && !a->abandoned && (!reported || uv_hrtime() - last_report >= ALOG_REPORT_EVERY_NS)) {
      report_dropped(a, &last_report);
      reported = 1;
    }
  }
  a->done = 1;
  uv_cond_signal(&a->idle);
  release_locked(a);
  return NULL;
}

/* The writer runs detached (nothing ever joins it: at exit it may be stuck in write() for
 * good) and with every signal blocked, so signals reach the loop thread, not a blocked write. */
static int start_writer(struct fra_access_log *a) {
  pthread_attr_t attr;
  pthread_t tid;
  sigset_t all, old;
  int rc = pthread_attr_init(&attr);
  if (rc) return -rc;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&tid, &attr, writer_main, a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return -rc;
}

int fra__access_log_init(fra_server *s) {
  int rc = uv_timer_init(&s->loop, &s->log_timer);
  if (rc) return rc;
  s->log_timer.data = s;
  uv_unref((uv_handle_t *)&s->log_timer);
  if (s->cfg.access_log_fd < 0) return 0;
  struct fra_access_log *a = calloc(1, sizeof *a);
  if (!a) return UV_ENOMEM;
  a->fd = s->cfg.access_log_fd;
  a->warn_fd = s->cfg.log_fd;
  if ((rc = uv_mutex_init(&a->mu))) goto fail_mu;
  if ((rc = uv_cond_init(&a->work))) goto fail_work;
  if ((rc = uv_cond_init(&a->idle))) goto fail_idle;
  a->refs = 2;
  if ((rc = start_writer(a))) goto fail_thread;
  s->alog = a;
  return 0;
fail_thread:
  uv_cond_destroy(&a->idle);
fail_idle:
  uv_cond_destroy(&a->work);
fail_work:
  uv_mutex_destroy(&a->mu);
fail_mu:
  free(a);
  return rc;
}

/* Gives the loop thread a batch to fill: a written one, a new one while fewer than
 * ALOG_BATCHES exist, else none (and the line that wanted it is counted as dropped). */
static alog_batch *take_batch(struct fra_access_log *a) {
  uv_mutex_lock(&a->mu);
  alog_batch *b = a->free;
  if (b) a->free = b->next;
  else if (a->nalloc == ALOG_BATCHES) a->dropped++;
  uv_mutex_unlock(&a->mu);
  if (!b && a->nalloc < ALOG_BATCHES) {
    if ((b = malloc(sizeof *b))) {
      a->all[a->nalloc++] = b;
    } else {
      uv_mutex_lock(&a->mu);
      a->dropped++;
      uv_mutex_unlock(&a->mu);
    }
  }
  if (b) {
    b->len = 0;
    b->nlines = 0;
    b->next = NULL;
  }
  return b;
}

/* Queues the current batch for the writer; one lock and at most one wake-up per batch. */
static void hand_off(fra_server *s) {
  struct fra_access_log *a = s->alog;
  alog_batch *b = a->cur;
  if (uv_is_active((uv_handle_t *)&s->log_timer)) uv_timer_stop(&s->log_timer);
  if (!b || !b->len) return;
  a->cur = NULL;
  uv_mutex_lock(&a->mu);
  if (a->qtail) a->qtail->next = b;
  else a->qhead = b;
  a->qtail = b;
  if (a->writer_waiting) uv_cond_signal(&a->work);
  uv_mutex_unlock(&a->mu);
}

static void log_timer_cb(uv_timer_t *t) { hand_off(t->data); }

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  int i = 0;
  do tmp[i++] = (char)('0' + v % 10);
  while ((v /= 10));
  while (i) *p++ = tmp[--i];
  return p;
}

static char *put_int(char *p, int v) {
  if (v < 0) {
    *p++ = '-';
    return put_u64(p, (uint64_t)0 - (uint64_t)(int64_t)v);
  }
  return put_u64(p, (uint64_t)v);
}

/* Room a line may need beyond its strings: the fixed text and the numbers at their longest. */
#define LINE_FIXED 64
/* ip (< 64), time (< 40), method (<= 64) and the longest target always fit an empty batch */
_Static_assert(64 + 40 + 64 + ALOG_TARGET_MAX + LINE_FIXED <= ALOG_BATCH_SIZE, "a line must fit a batch");

/* Writes `ip - - [time] "METHOD target HTTP/x.y" status bytes\n` (the common log format, as
 * before) by hand: snprintf cost 4,700 instructions a line, a fifth of a whole hello request. */
static size_t format_line(char *p, const char *ip, size_t il, const char *t, size_t tl, const fra_req *r,
                          size_t ml, size_t ul, int status, uint64_t bytes) {
  char *start = p;
  p = put(p, ip, il);
  p = put(p, " - - ", 5);
  p = put(p, t, tl);
  p = put(p, " \"", 2);
  p = put(p, r->buf + r->method_off, ml);
  *p++ = ' ';
  p = put(p, r->buf + r->url_off, ul);
  p = put(p, " HTTP/", 6);
  p = put_u64(p, r->http_major);
  *p++ = '.';
  p = put_u64(p, r->http_minor);
  p = put(p, "\" ", 2);
  p = put_int(p, status);
  *p++ = ' ';
  p = put_u64(p, bytes);
  *p++ = '\n';
  return (size_t)(p - start);
}

/* The peer's address as text.  An IPv4 address already read is formatted here: libuv's
 * inet_ntop goes through snprintf, 1,800 instructions a line.  The first request of a
 * connection, IPv6 and Unix sockets go through fra_conn_peer. */
static size_t peer_text(fra_conn *c, char *ip, size_t cap) {
  if ((c->flags & FRA_C_TCP) && c->peer && c->peer->ss_family == AF_INET) {
    const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)c->peer)->sin_addr;
    char *p = ip;
    for (int i = 0; i < 4; i++) {
      if (i) *p++ = '.';
      p = put_u64(p, b[i]);
    }
    return (size_t)(p - ip);
  }
  int port;
  if (fra_conn_peer(c, ip, cap, &port) != 0 || !ip[0]) strcpy(ip, "-");
  return strlen(ip);
}

void fra__access_log(fra_server *s, fra_conn *c, int status, uint64_t bytes) {
  struct fra_access_log *a = s->alog;
  if (!a) return;
  fra_req *r = c->parser.req;
  if (!r) return;
  char ip[64];
  size_t il = peer_text(c, ip, sizeof ip), tl;
  const char *t = fra_log_time(&tl);
  size_t ml = r->method_len < 64 ? r->method_len : 64;   /* llhttp knows no longer method */
  size_t ul = r->url_len < ALOG_TARGET_MAX ? r->url_len : ALOG_TARGET_MAX;
  size_t need = il + tl + ml + ul + LINE_FIXED;           /* < ALOG_BATCH_SIZE, always */
  if (a->cur && ALOG_BATCH_SIZE - a->cur->len < need) hand_off(s); /* the line opens the next batch */
  if (!a->cur && !(a->cur = take_batch(a))) return;
  alog_batch *b = a->cur;
  b->len += format_line(b->data + b->len, ip, il, t, tl, r, ml, ul, status, bytes);
  b->nlines++;
  if (b->len >= ALOG_HAND_AT) hand_off(s);
  else if (!uv_is_active((uv_handle_t *)&s->log_timer)) uv_timer_start(&s->log_timer, log_timer_cb, ALOG_FLUSH_MS, 0);
}

void fra__access_log_close(fra_server *s) {
  if (s->alog) hand_off(s);
  if (!uv_is_closing((uv_handle_t *)&s->log_timer)) uv_close((uv_handle_t *)&s->log_timer, NULL);
}

void fra__access_log_free(fra_server *s) {
  struct fra_access_log *a = s->alog;
  if (!a) return;
  s->alog = NULL;
  if (a->cur && a->cur->len) {   /* a line logged after close */
    uv_mutex_lock(&a->mu);
    if (a->qtail) a->qtail->next = a->cur;
    else a->qhead = a->cur;
    a->qtail = a->cur;
    uv_mutex_unlock(&a->mu);
  }
  a->cur = NULL;
  uv_mutex_lock(&a->mu);
  a->stop = 1;
  uv_cond_signal(&a->work);
  /* The writer gets ALOG_EXIT_WAIT_MS to write what is left; a reader that still takes
   * nothing must not keep the process from exiting, so then what is left is dropped. */
  uint64_t deadline = uv_hrtime() + (uint64_t)ALOG_EXIT_WAIT_MS * 1000000;
  while (!a->done) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    uv_cond_timedwait(&a->idle, &a->mu, deadline - now);
  }
  uint64_t lost = 0;
  if (!a->done) {
    a->abandoned = 1;
    lost = a->dropped + (a->writing ? a->writing->nlines : 0);
    for (alog_batch *b = a->qhead; b; b = b->next) lost += b->nlines;
    a->dropped = 0;
  }
  int warn_fd = a->warn_fd;
  release_locked(a);
  report(warn_fd, "not written at exit", lost);
}
