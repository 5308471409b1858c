/* fra/http.h — HTTP/1.1 parsing glue (llhttp, strict) with limits, and response encoding.
 * Pure C: nothing here touches Python or libuv handles. */
#ifndef FRA_HTTP_H
#define FRA_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "llhttp.h"

/** Limits applied while parsing; 0 means unlimited where stated. */
typedef struct fra_limits {
  uint32_t request_line;   /* bytes of method + target + version; over: 414 */
  uint32_t header_size;    /* bytes of all header names and values; over: 431 */
  uint32_t header_count;   /* header fields; over: 431 */
  uint64_t body_size;      /* request body bytes, 0 = unlimited; over: 413 */
} fra_limits;

/** One header field: offsets into fra_req.buf. */
typedef struct fra_hdr {
  size_t name_off, name_len, value_off, value_len;
} fra_hdr;

/** One parsed request.  Header bytes are copied into `buf` so they survive the read buffer;
 * the body is queued in `body` until the app consumes it. */
typedef struct fra_req {
  char *buf;                  /* method, target, header names and values */
  size_t len, cap;
  size_t method_off, method_len, url_off, url_len;
  fra_hdr *hdrs;
  size_t nhdrs, hdrcap;
  uint64_t hdr_bytes;         /* counted against limits.header_size */
  uint8_t http_major, http_minor;
  uint8_t method;             /* llhttp_method_t */
  uint8_t keep_alive;         /* llhttp_should_keep_alive at headers complete */
  uint8_t expect_continue;    /* "Expect: 100-continue" seen */
  uint8_t headers_done, complete;  /* headers complete / message complete */
  uint8_t in_value;           /* parser is inside a header value */
  uint8_t host_count;
  uint8_t ctype_count;         /* Content-Type fields seen */
  uint8_t has_body;           /* Content-Length > 0 or chunked */
  uint8_t dispatched;         /* handed to the app */
  uint8_t last_chunk;         /* the zero-size chunk of a chunked body was seen */
  uint8_t chunked;            /* Transfer-Encoding: chunked */
  uint8_t retained;           /* kept by the bridge past the response (it releases it) */
  uint8_t discard;            /* answered early: the rest of the body is parsed and dropped */
  uint64_t content_length;    /* from the header, when has_body and not chunked */
  uint64_t body_total;        /* body bytes received so far */
  char *body;                 /* unconsumed body bytes: body[body_off .. body_len) */
  size_t body_off, body_len, body_cap;
  /* The body bytes of the read that completed the head, left where they are until the request
   * is dispatched (fra_parser.body_sink): the bridge copies them once, into the object handed
   * to Python, or fra_req_pre_flush queues them in `body`.  Valid only inside that read. */
  const char *pre_at;
  size_t pre_len;
  size_t body_held;           /* body bytes the bridge holds and the app has not consumed
                               * (counted by the core for backpressure, set by the bridge) */
  struct fra_req *next_free;  /* server free list */
} fra_req;

/** Why parsing failed: the HTTP status to answer with (400, 413, 414, 431, 505...). */
typedef struct fra_parse_error {
  int status;
  const char *reason;         /* static text, for logs */
} fra_parse_error;

/** Parser state of one connection.  `owner` is passed back to the callbacks. */
typedef struct fra_parser {
  llhttp_t p;
  fra_req *req;               /* the request being parsed, NULL between requests */
  const fra_limits *limits;
  int error_status;           /* set by a callback that rejected the request */
  const char *error_reason;
  uint64_t line_bytes;        /* method + target bytes so far */
  /* The framing scanner (parser.c) re-checks every consumed byte against RFC 9112's grammar
   * where llhttp 8 is looser: line endings, request-line shape, field-name bytes, chunk lines. */
  uint8_t scan;               /* scanner state */
  uint8_t rl_sp;              /* previous request-line byte was SP */
  uint64_t scan_left;         /* body bytes to skip (Content-Length or chunk data) */
  char trailer[24];           /* name of the trailer field being parsed (truncated) */
  uint8_t trailer_len, trailer_in_value;
  void *owner;
  fra_req *(*new_req)(void *owner);   /* supplies a fresh request at message begin */
  /* Takes body bytes instead of fra_req_body_append when set: 0, or -1 (out of memory). */
  int (*body_sink)(void *owner, fra_req *r, const char *at, size_t len);
} fra_parser;

/** Sets up a parser for requests. */
void fra_parser_init(fra_parser *ps, const fra_limits *limits, void *owner);

/** Feeds bytes.  Returns the number of bytes consumed (< len when the parser paused after a
 * complete message), or -1 on a malformed request, with *err filled in. */
long fra_parser_execute(fra_parser *ps, const char *data, size_t len, fra_parse_error *err);

/** Lets the parser continue after the pause at message end. */
void fra_parser_resume(fra_parser *ps);

/** Returns 1 when the parser is between requests (no partial request buffered). */
int fra_parser_idle(const fra_parser *ps);

/** Shrinks a complete request's buffers to what they hold (a request kept for the whole of a
 * long-lived response: a stream); a body buffer with nothing unconsumed is freed.  Never
 * fails: a buffer realloc cannot shrink stays as it was. */
void fra_req_shrink(fra_req *r);

/** Request helpers.  fra_req_reset keeps the buffers for reuse; fra_req_free releases them. */
void fra_req_reset(fra_req *r);
void fra_req_free(fra_req *r);
/** Appends body bytes; returns 0 or -1 (out of memory). */
int fra_req_body_append(fra_req *r, const char *at, size_t len);
/** Queues the body bytes left in the read buffer (pre_at/pre_len) in `body`, copied.  0 or -1. */
int fra_req_pre_flush(fra_req *r);
/** Body bytes received and not yet consumed, wherever they are held. */
static inline size_t fra_req_body_pending(const fra_req *r) {
  return r->body_len - r->body_off + r->pre_len + r->body_held;
}
/** Finds a header (name compared case-insensitively); returns its index or -1. */
int fra_req_find(const fra_req *r, const char *name, size_t name_len);

/* ---- responses ---- */

/** "HTTP/1.1 200 OK\r\n" for a status; writes into out (>= 64 bytes), returns the length. */
size_t fra_status_line(char *out, int status);

/** "Date: <IMF-fixdate>\r\n" for the current second; cached, refreshed when the second changes.
 * Returns a pointer to static storage of *len bytes. */
const char *fra_date_header(size_t *len);

/** The current time as a common-log-format timestamp "[22/Nov/2026:02:03:38 +0000]". */
const char *fra_log_time(size_t *len);

/** Returns 1 if name is a valid field-name token (RFC 9110 5.1), else 0. */
int fra_valid_header_name(const char *s, size_t n);
/** Returns 1 if value holds no CR, LF or NUL (RFC 9110 5.5), else 0. */
int fra_valid_header_value(const char *s, size_t n);

/** Writes v in decimal into out (>= 20 bytes); returns the length. */
size_t fra_decimal(char *out, uint64_t v);

/** Writes a chunk-size line "<hex>\r\n" into out (>= 20 bytes); returns its length. */
size_t fra_chunk_head(char *out, size_t size);

/** A complete short error response with Connection: close; returns its length (out >= 256). */
size_t fra_error_response(char *out, int status);

#endif
