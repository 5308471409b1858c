/* fileout.c — file bytes to a client with sendfile(2), in order with the connection's write
 * queue: a file starts once libuv's queue is empty, goes with non-blocking sendfile() until the
 * socket is full, then waits for writability on a uv_poll_t watching a dup() of the socket (libuv
 * lets one loop watch an fd through one handle only, and the stream handle already holds the
 * socket's own fd).  Bytes written while a file is under way are held and follow it.  Owns the
 * fra_file_out of a connection: the file's fd, the socket's dup, the poll handle, held bytes.
 * Loop thread only; the bridge calls in with the GIL held, and on_file_done is called with it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include "fra/core.h"

/* Most file bytes sent in one go before the loop gets to its other connections: a fast client
 * on a fast link would otherwise keep a multi-gigabyte file in one callback. */
#define FRA_FILE_PASS (4u << 20)

typedef struct held {
  struct held *next;
  size_t len;
  char data[];
} held;

struct fra_file_out {
  uv_poll_t poll;              /* writability of sock (data = the conn) */
  int sock;                    /* dup() of the connection's socket, closed after the poll */
  int fd;                      /* the file being sent, -1 = none */
  uint64_t off, left;
  char after[16];
  uint8_t after_len;
  uint8_t polling;             /* poll started */
  uint8_t shut_after;          /* the write side is to be shut once the file is out */
  uint8_t pumping;             /* inside fra_conn_sendfile: the end is its return value */
  held *held_head, *held_tail;
  size_t held_len;
};

static uint64_t sendfile_total;  /* loop threads only; a test statistic, races are harmless */

uint64_t fra_sendfile_bytes(void) { return sendfile_total; }

int fra__fileout_active(const fra_conn *c) { return c->fout && c->fout->fd >= 0; }

size_t fra__fileout_pending(const fra_conn *c) {
  const fra_file_out *f = c->fout;
  return f ? f->held_len + (f->fd >= 0 ? (size_t)f->left + f->after_len : 0) : 0;
}

int fra__fileout_hold(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs, size_t total) {
  fra_file_out *f = c->fout;
  held *h = malloc(sizeof *h + total);
  if (!h) return UV_ENOMEM;
  size_t off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    memcpy(h->data + off, bufs[i].base, bufs[i].len);
    off += bufs[i].len;
  }
  h->len = total;
  h->next = NULL;
  if (f->held_tail) f->held_tail->next = h;
  else f->held_head = h;
  f->held_tail = h;
  f->held_len += total;
  return 0;
}

void fra__fileout_shut_after(fra_conn *c) { c->fout->shut_after = 1; }

static void poll_stop(fra_conn *c) {
  fra_file_out *f = c->fout;
  if (!f->polling) return;
  f->polling = 0;
  uv_poll_stop(&f->poll);
  fra__loop_touched(c->srv);
}

static void drop_held(fra_file_out *f) {
  while (f->held_head) {
    held *h = f->held_head;
    f->held_head = h->next;
    free(h);
  }
  f->held_tail = NULL;
  f->held_len = 0;
}

/* The file is out (status 0) or failed: its fd closes, the bytes after it and those held go
 * out, a deferred shutdown happens.  on_file_done is called last (unless the end is the return
 * value of fra_conn_sendfile): the bridge may start the next request from it, and with it the
 * next file on this same state. */
static void file_end(fra_conn *c, int status, int notify) {
  fra_file_out *f = c->fout;
  close(f->fd);
  f->fd = -1;
  f->left = 0;
  poll_stop(c);
  if (status == 0) {
    uv_buf_t b = fra_buf(f->after, f->after_len);
    f->after_len = 0;
    if (b.len && fra_conn_write(c, &b, 1) < 0) return; /* closed */
    while (f->held_head && !(c->flags & FRA_C_CLOSING)) {
      held *h = f->held_head;
      f->held_head = h->next;
      if (!f->held_head) f->held_tail = NULL;
      f->held_len -= h->len;
      b = fra_buf(h->data, h->len);
      int rc = fra_conn_write(c, &b, 1);
      free(h);
      if (rc < 0) return;
    }
    if (f->shut_after) {
      f->shut_after = 0;
      fra__conn_shut_write(c);
    }
    if ((c->flags & FRA_C_WANT_DRAIN) && fra_conn_queued(c) <= FRA_WRITE_LOW) {
      c->flags &= ~FRA_C_WANT_DRAIN;
      c->srv->hooks.on_drain(c);
    }
  } else {
    f->after_len = 0;
    drop_held(f);
  }
  if (notify && c->srv->hooks.on_file_done) c->srv->hooks.on_file_done(c, status);
  if (status < 0) fra__conn_close(c);
}

static void poll_cb(uv_poll_t *p, int status, int events);

/* Sends what the socket takes now.  Returns 1 when the file is out, 0 when it waits for the
 * socket (the poll is started), a negative UV error when the connection is being closed. */
static int pump(fra_conn *c) {
  fra_file_out *f = c->fout;
  size_t budget = FRA_FILE_PASS;
  while (f->left) {
    size_t n = f->left < budget ? (size_t)f->left : budget;
    off_t off = (off_t)f->off;
#ifdef __linux__
    ssize_t w = sendfile(f->sock, f->fd, &off, n);
#else
    ssize_t w = -1;
    errno = ENOSYS;
#endif
    if (w > 0) {
      f->off += (uint64_t)w;
      f->left -= (uint64_t)w;
      c->sent_direct += (uint64_t)w;
      sendfile_total += (uint64_t)w;
      budget -= (size_t)w;
      if (!budget) break;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN || errno == ETIMEDOUT)) {
      /* The client is gone: the bridge hears it from on_disconnect. */
      file_end(c, UV_ECONNRESET, 0);
      return UV_ECONNRESET;
    }
    /* 0: the file is shorter than announced; else it cannot be read.  The response cannot be
     * completed as framed. */
    int err = w == 0 ? UV_EOF : -errno;
    file_end(c, err, !f->pumping);
    return err;
  }
  if (f->left) {
    if (!f->polling) {
      int rc = uv_poll_start(&f->poll, UV_WRITABLE, poll_cb);
      if (rc < 0) {
        file_end(c, rc, !f->pumping);
        return rc;
      }
      f->polling = 1;
      fra__loop_touched(c->srv);
      fra__conn_output_waits(c);
    }
    return 0;
  }
  file_end(c, 0, !f->pumping);
  return 1;
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  fra_conn *c = p->data;
  (void)events;
  if (c->flags & FRA_C_CLOSING || !fra__fileout_active(c)) return;
  if (status < 0) {
    fra__conn_close(c);
    return;
  }
  pump(c);
}

void fra__fileout_queue_empty(fra_conn *c) {
  if (fra__fileout_active(c) && !c->fout->polling && !(c->flags & FRA_C_CLOSING)) pump(c);
}

static int fileout_make(fra_conn *c) {
  uv_os_fd_t sfd;
  int rc = uv_fileno(&c->h.handle, &sfd);
  if (rc < 0) return rc;
  fra_file_out *f = calloc(1, sizeof *f);
  if (!f) return UV_ENOMEM;
  f->fd = -1;
  f->sock = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
  if (f->sock < 0) {
    rc = -errno;
    free(f);
    return rc;
  }
  rc = uv_poll_init(&c->srv->loop, &f->poll, f->sock);
  if (rc < 0) {
    close(f->sock);
    free(f);
    return rc;
  }
  f->poll.data = c;
  c->fout = f;
  return 0;
}

int fra_conn_sendfile(fra_conn *c, int fd, uint64_t offset, uint64_t count, const char *after, size_t after_len) {
  if (c->flags & FRA_C_CLOSING) {
    close(fd);
    return UV_ECANCELED;
  }
  if (after_len > sizeof c->fout->after || fra__fileout_active(c)) {
    close(fd);
    return UV_EBUSY;
  }
  if (!c->fout) {
    int rc = fileout_make(c);
    if (rc < 0) {
      close(fd);
      fra__conn_close(c);
      return rc;
    }
  }
  fra_file_out *f = c->fout;
  f->fd = fd;
  f->off = offset;
  f->left = count;
  memcpy(f->after, after, after_len);
  f->after_len = (uint8_t)after_len;
  if (c->active) c->flags |= FRA_C_RESPONDING;
  if (c->h.stream.write_queue_size) return 0; /* fra__fileout_queue_empty starts it */
  f->pumping = 1;
  int rc = pump(c);
  if (c->fout) c->fout->pumping = 0;
  return rc;
}

int fra__fileout_close(fra_conn *c, uv_close_cb cb) {
  fra_file_out *f = c->fout;
  if (!f) return 0;
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  drop_held(f);
  uv_close((uv_handle_t *)&f->poll, cb);
  return 1;
}

void fra__fileout_free(fra_conn *c) {
  fra_file_out *f = c->fout;
  if (!f) return;
  close(f->sock);
  free(f);
  c->fout = NULL;
}
