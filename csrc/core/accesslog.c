/* accesslog.c — the access log: one line per response, formatted on the loop thread into a
 * buffer and written in batches (a second after its first line, or when 48 KiB are waiting).
 * Owns the buffer and its flush timer.  No function here needs the GIL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fra/core.h"

#define LOG_FLUSH_AT (48 * 1024)

static void log_timer_cb(uv_timer_t *t) { fra__access_log_flush(t->data); }

int fra__access_log_init(fra_server *s) {
  int rc = uv_timer_init(&s->loop, &s->log_timer);
  if (rc) return rc;
  s->log_timer.data = s;
  uv_unref((uv_handle_t *)&s->log_timer);
  return 0;
}

void fra__access_log_close(fra_server *s) {
  fra__access_log_flush(s);
  if (!uv_is_closing((uv_handle_t *)&s->log_timer)) uv_close((uv_handle_t *)&s->log_timer, NULL);
}

void fra__access_log_free(fra_server *s) {
  free(s->logbuf);
  s->logbuf = NULL;
}

void fra__access_log(fra_server *s, fra_conn *c, int status, uint64_t bytes) {
  if (s->cfg.access_log_fd < 0) return;
  fra_req *r = c->parser.req;
  if (!r) return;
  if (s->logcap - s->loglen < 512 + (size_t)r->url_len) {
    size_t cap = s->logcap ? s->logcap : 64 * 1024;
    while (cap - s->loglen < 512 + (size_t)r->url_len) cap *= 2;
    char *nb = realloc(s->logbuf, cap);
    if (!nb) return;
    s->logbuf = nb;
    s->logcap = cap;
  }
  char ip[64] = "-";
  int port;
  if (fra_conn_peer(c, ip, sizeof ip, &port) != 0 || !ip[0]) strcpy(ip, "-");
  size_t tl;
  const char *t = fra_log_time(&tl);
  int n = snprintf(s->logbuf + s->loglen, s->logcap - s->loglen, "%s - - %.*s \"%.*s %.*s HTTP/%d.%d\" %d %llu\n",
                   ip, (int)tl, t, (int)r->method_len, r->buf + r->method_off, (int)r->url_len,
                   r->buf + r->url_off, r->http_major, r->http_minor, status, (unsigned long long)bytes);
  if (n > 0) s->loglen += (size_t)n;
  if (s->loglen >= LOG_FLUSH_AT) fra__access_log_flush(s);
  else if (!uv_is_active((uv_handle_t *)&s->log_timer)) uv_timer_start(&s->log_timer, log_timer_cb, 1000, 0);
}

void fra__access_log_flush(fra_server *s) {
  size_t off = 0;
  while (off < s->loglen) {
    ssize_t w = write(s->cfg.access_log_fd, s->logbuf + off, s->loglen - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      break; /* a log that cannot be written is dropped, never blocks serving */
    }
    off += (size_t)w;
  }
  s->loglen = 0;
  if (uv_is_active((uv_handle_t *)&s->log_timer)) uv_timer_stop(&s->log_timer);
}
