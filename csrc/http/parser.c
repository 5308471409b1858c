/* parser.c — strict llhttp glue: copies the request line and headers into fra_req, enforces
 * fra_limits, maps parse failures to HTTP statuses.  Owns nothing beyond the fra_req buffers it
 * grows.  No function here needs the GIL. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fra/http.h"

#define PS(p) ((fra_parser *)(p))

enum {
  S_BEFORE, S_BEFORE_LF, S_RLINE, S_RLINE_LF, S_LINE, S_NAME, S_VALUE, S_VALUE_LF, S_END_LF,
  S_BODY_LEN, S_CSIZE0, S_CSIZE, S_CEXT_BWS, S_CEXT_NAME0, S_CEXT_NAME, S_CEXT_AFTER_NAME,
  S_CEXT_VAL0, S_CEXT_TOKEN, S_CEXT_QS, S_CEXT_QP, S_CEXT_AFTER_VAL, S_CSIZE_LF, S_CDATA, S_CDATA_CR, S_CDATA_LF,
  S_TLINE, S_TNAME, S_TFIELD, S_TFIELD_LF, S_TEND_LF, S_DONE
};


/* A callback rejects the request by recording the status and returning HPE_USER; llhttp then
 * stops and fra_parser_execute reports it. */
static int reject(llhttp_t *p, int status, const char *reason) {
  PS(p)->error_status = status;
  PS(p)->error_reason = reason;
  return HPE_USER;
}

/* The capacity to grow a buffer of `cap` to so that it holds `need`: doubled from at least
 * `first`, or 0 when that would not fit in size_t. */
static size_t grown(size_t cap, size_t need, size_t first) {
  if (!cap) cap = first;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) return need;
    cap *= 2;
  }
  return cap;
}

static int buf_append(fra_req *r, const char *at, size_t len) {
  if (len > SIZE_MAX - r->len) return -1;
  if (r->len + len > r->cap) {
    size_t cap = grown(r->cap, r->len + len, 512);
    char *nb = realloc(r->buf, cap);
    if (!nb) return -1;
    r->buf = nb;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, at, len);
  r->len += len;
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  fra_parser *ps = PS(p);
  if (!ps->req) ps->req = ps->new_req(ps->owner);
  if (!ps->req) return reject(p, 503, "out of memory");
  ps->line_bytes = 0;
  return 0;
}

/* The request line is counted whole: method SP target SP "HTTP/x.y" (the last 10 bytes are
 * counted up front, so an over-long target is refused before its end arrives). */
#define LINE_FIXED 10

/* Counts request-line bytes; the counter saturates rather than wrapping. */
static int line_bytes(llhttp_t *p, size_t len) {
  fra_parser *ps = PS(p);
  ps->line_bytes = len > UINT64_MAX - ps->line_bytes ? UINT64_MAX : ps->line_bytes + len;
  uint64_t lim = ps->limits->request_line;
  if (lim && (ps->line_bytes > lim || lim - ps->line_bytes < LINE_FIXED))
    return reject(p, 414, "request line too long");
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  fra_req *r = PS(p)->req;
  int rc = line_bytes(p, len);
  if (rc) return rc;
  if (r->method_len == 0) r->method_off = r->len;
  r->method_len += len;
  return buf_append(r, at, len) ? reject(p, 503, "out of memory") : 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  fra_req *r = PS(p)->req;
  int rc = line_bytes(p, len);
  if (rc) return rc;
  if (r->url_len == 0) r->url_off = r->len;
  r->url_len += len;
  return buf_append(r, at, len) ? reject(p, 503, "out of memory") : 0;
}

static int header_bytes(llhttp_t *p, size_t len) {
  fra_req *r = PS(p)->req;
  r->hdr_bytes = len > UINT64_MAX - r->hdr_bytes ? UINT64_MAX : r->hdr_bytes + len;
  if (PS(p)->limits->header_size && r->hdr_bytes > PS(p)->limits->header_size)
    return reject(p, 431, "request header fields too large");
  return 0;
}

/* Trailer fields are not kept, but those RFC 9110 6.5.1 forbids in trailers for framing,
 * routing, request modifiers and authentication reject the request: a proxy before us may have
 * merged them into the header section. */
static int trailer_name(llhttp_t *p, const char *at, size_t len) {
  fra_parser *ps = PS(p);
  if (ps->trailer_in_value) {
    ps->trailer_len = 0;
    ps->trailer_in_value = 0;
  }
  for (size_t i = 0; i < len && ps->trailer_len < sizeof ps->trailer; i++)
    ps->trailer[ps->trailer_len++] = (char)(at[i] | 0x20);
  return 0;
}

static int trailer_forbidden(const fra_parser *ps) {
  static const char *names[] = {"host", "content-length", "transfer-encoding", "trailer", "te",
                                "expect", "max-forwards", "authorization", "proxy-authorization",
                                "cookie", "set-cookie", "range", NULL};
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == ps->trailer_len && memcmp(names[i], ps->trailer, ps->trailer_len) == 0) return 1;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  fra_req *r = PS(p)->req;
  if (r->headers_done) return trailer_name(p, at, len);
  int rc = header_bytes(p, len);
  if (rc) return rc;
  if (r->in_value || r->nhdrs == 0) {
    /* a new field starts */
    if (PS(p)->limits->header_count && r->nhdrs >= PS(p)->limits->header_count)
      return reject(p, 431, "too many header fields");
    if (r->nhdrs == r->hdrcap) {
      size_t cap = grown(r->hdrcap, r->nhdrs + 1, 16);
      if (cap > SIZE_MAX / sizeof(fra_hdr)) return reject(p, 503, "out of memory");
      fra_hdr *nh = realloc(r->hdrs, cap * sizeof(fra_hdr));
      if (!nh) return reject(p, 503, "out of memory");
      r->hdrs = nh;
      r->hdrcap = cap;
    }
    fra_hdr *h = &r->hdrs[r->nhdrs++];
    h->name_off = r->len;
    h->name_len = 0;
    h->value_off = 0;
    h->value_len = 0;
    r->in_value = 0;
  }
  r->hdrs[r->nhdrs - 1].name_len += len;
  return buf_append(r, at, len) ? reject(p, 503, "out of memory") : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  fra_req *r = PS(p)->req;
  if (r->headers_done) return 0;
  int rc = header_bytes(p, len);
  if (rc) return rc;
  fra_hdr *h = &r->hdrs[r->nhdrs - 1];
  if (!r->in_value) {
    r->in_value = 1;
    h->value_off = r->len;
  }
  h->value_len += len;
  return buf_append(r, at, len) ? reject(p, 503, "out of memory") : 0;
}

/* Header value complete: note the fields the server itself acts on. */
static int on_header_value_complete(llhttp_t *p) {
  fra_req *r = PS(p)->req;
  if (r->headers_done) {
    PS(p)->trailer_in_value = 1;
    return trailer_forbidden(PS(p)) ? reject(p, 400, "forbidden trailer field") : 0;
  }
  fra_hdr *h = &r->hdrs[r->nhdrs - 1];
  const char *name = r->buf + h->name_off;
  const char *value = r->buf + h->value_off;
  /* RFC 9110 5.5: the field value excludes trailing whitespace (llhttp strips only leading). */
  while (h->value_len && (value[h->value_len - 1] == ' ' || value[h->value_len - 1] == '\t')) h->value_len--;
  if (h->name_len == 4 && strncasecmp(name, "host", 4) == 0) {
    if (r->host_count < 255) r->host_count++;
  } else if (h->name_len == 12 && strncasecmp(name, "content-type", 12) == 0) {
    /* a singleton field (RFC 9110 8.3): two values leave the body's type ambiguous */
    if (++r->ctype_count > 1) return reject(p, 400, "duplicate Content-Type");
  } else if (h->name_len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0 && h->value_len == 0) {
    /* an empty coding list would leave the framing to whichever parser guesses (smuggling) */
    return reject(p, 400, "empty Transfer-Encoding");
  } else if (h->name_len == 6 && strncasecmp(name, "expect", 6) == 0) {
    if (h->value_len == 12 && strncasecmp(value, "100-continue", 12) == 0) r->expect_continue = 1;
  }
  /* a field with an empty value still needs in_value set so the next name starts a field */
  r->in_value = 1;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  fra_parser *ps = PS(p);
  fra_req *r = ps->req;
  r->http_major = p->http_major;
  r->http_minor = p->http_minor;
  r->method = p->method;
  r->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
  r->headers_done = 1;
  /* RFC 9112 3.2: a server MUST respond with 400 to an HTTP/1.1 request that lacks a Host
   * header field or has more than one. */
  /* RFC 9112 2.3: only HTTP/1.x is spoken on this connection. */
  if (r->http_major != 1) return reject(p, 505, "HTTP version not supported");
  if (r->host_count > 1 || (r->host_count == 0 && r->http_minor >= 1))
    return reject(p, 400, "missing or duplicate Host header");
  /* RFC 9112 3.2.4: the asterisk-form is only for OPTIONS. */
  if (r->url_len == 1 && r->buf[r->url_off] == '*' && p->method != HTTP_OPTIONS)
    return reject(p, 400, "asterisk-form target outside OPTIONS");
  /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing. */
  if ((p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) && r->http_minor == 0)
    return reject(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
  if (p->flags & F_CHUNKED) {
    r->has_body = 1;
    r->chunked = 1;
  } else if (p->flags & F_CONTENT_LENGTH) {
    r->content_length = p->content_length;
    r->has_body = p->content_length > 0;
    if (ps->limits->body_size && p->content_length > ps->limits->body_size)
      return reject(p, 413, "request body too large");
  }
  /* No upgrade support yet: treat Upgrade/CONNECT requests as ordinary requests. */
  p->upgrade = 0;
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  fra_parser *ps = PS(p);
  fra_req *r = ps->req;
  r->body_total += len;
  if (ps->limits->body_size && r->body_total > ps->limits->body_size)
    return reject(p, 413, "request body too large");
  if (r->discard) return 0; /* its response is sent: framing is still checked, bytes dropped */
  int rc = ps->body_sink ? ps->body_sink(ps->owner, r, at, len) : fra_req_body_append(r, at, len);
  return rc ? reject(p, 503, "out of memory") : 0;
}

static int on_chunk_header(llhttp_t *p) {
  if (p->content_length == 0) PS(p)->req->last_chunk = 1;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  PS(p)->req->complete = 1;
  /* Pause: pipelined requests wait until this one's response is written (responses in order). */
  return HPE_PAUSED;
}

static llhttp_settings_t settings;
static int settings_ready;

void fra_parser_init(fra_parser *ps, const fra_limits *limits, void *owner) {
  if (!settings_ready) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_method = on_method;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_chunk_header = on_chunk_header;
    settings.on_message_complete = on_message_complete;
    settings_ready = 1;
  }
  llhttp_init(&ps->p, HTTP_REQUEST, &settings);
  ps->req = NULL;
  ps->limits = limits;
  ps->error_status = 0;
  ps->error_reason = NULL;
  ps->line_bytes = 0;
  ps->scan = S_DONE;
  ps->rl_sp = 0;
  ps->scan_left = 0;
  ps->trailer_len = 0;
  ps->trailer_in_value = 0;
  ps->owner = owner;
  ps->new_req = NULL;
  ps->body_sink = NULL;
}

static int status_for(llhttp_errno_t e) {
  switch (e) {
  case HPE_INVALID_VERSION: return 505;
  default: return 400;
  }
}

/* ---- the framing scanner ----
 * llhttp 8 (strict) still accepts a bare LF as a line end, CR followed by another byte in chunk
 * lines, several spaces after the method, tabs and form feeds in the target, spaces inside a
 * field name and an empty field name.  Each is a request-smuggling vector when a proxy in front
 * reads the bytes differently, so every byte llhttp consumed is checked again here against
 * RFC 9112 (2.2 line endings, 3 request line, 5.1 field lines, 7.1 chunked coding). */
static int is_tchar_byte(unsigned char c) {
  return fra_valid_header_name((const char *)&c, 1);
}

static int hexdigit(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Where the head ends, the body's framing decides the next state. */
static uint8_t after_head(fra_parser *ps) {
  fra_req *r = ps->req;
  if (!r || !r->has_body) return S_DONE;
  if (r->chunked) return S_CSIZE0;
  if (r->content_length == 0) return S_DONE;
  ps->scan_left = r->content_length;
  return S_BODY_LEN;
}

/* Returns 0, or -1 with the reason set. */
static int scan(fra_parser *ps, const unsigned char *b, size_t n, const char **why) {
  uint8_t st = ps->scan;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = b[i];
    switch (st) {
    case S_DONE:
      st = S_BEFORE;
      ps->rl_sp = 0;
      /* fall through */
    case S_BEFORE: /* RFC 9112 2.2: empty lines before the request line are ignored */
      if (c == '\r') st = S_BEFORE_LF;
      else if (c == '\n') goto bare_lf;
      else {
        st = S_RLINE;
        i--;
      }
      break;
    case S_BEFORE_LF:
      if (c != '\n') goto bare_cr;
      st = S_BEFORE;
      break;
    case S_RLINE:
      if (c == '\r') st = S_RLINE_LF;
      else if (c == '\n') goto bare_lf;
      else if (c == ' ') {
        if (ps->rl_sp) { *why = "more than one space in the request line"; return -1; }
        ps->rl_sp = 1;
        continue;
      } else if (c < 0x20 || c == 0x7f) {
        *why = "control character in the request line";
        return -1;
      }
      ps->rl_sp = 0;
      break;
    case S_RLINE_LF:
      if (c != '\n') goto bare_cr;
      st = S_LINE;
      break;
    case S_LINE:
      if (c == '\r') st = S_END_LF;
      else if (c == '\n') goto bare_lf;
      else if (c == ' ' || c == '\t') { *why = "obsolete line folding"; return -1; }
      else if (!is_tchar_byte(c)) { *why = "empty or invalid field name"; return -1; }
      else st = S_NAME;
      break;
    case S_NAME:
      if (c == ':') st = S_VALUE;
      else if (!is_tchar_byte(c)) { *why = "invalid byte in a field name"; return -1; }
      break;
    case S_VALUE:
      if (c == '\r') st = S_VALUE_LF;
      else if (c == '\n') goto bare_lf;
      else if ((c < 0x20 && c != '\t') || c == 0x7f) { *why = "control character in a field value"; return -1; }
      break;
    case S_VALUE_LF:
      if (c != '\n') goto bare_cr;
      st = S_LINE;
      break;
    case S_END_LF:
      if (c != '\n') goto bare_cr;
      st = after_head(ps);
      break;
    case S_BODY_LEN: {
      /* scan_left >= 1 here and n - i >= 1, so take >= 1 */
      size_t take = n - i < ps->scan_left ? n - i : (size_t)ps->scan_left;
      ps->scan_left -= take;
      i += take - 1;
      if (ps->scan_left == 0) st = S_DONE;
      break;
    }
    case S_CSIZE0:
      if (!hexdigit(c)) { *why = "invalid chunk size"; return -1; }
      ps->scan_left = 0;
      st = S_CSIZE;
      /* fall through */
    case S_CSIZE:
      if (hexdigit(c)) {
        if (ps->scan_left >> 60) { *why = "chunk size too large"; return -1; }
        ps->scan_left = ps->scan_left * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      } else if (c == ';') st = S_CEXT_NAME0;
      else if (c == ' ' || c == '\t') st = S_CEXT_BWS;
      else if (c == '\r') st = S_CSIZE_LF;
      else if (c == '\n') goto bare_lf;
      else { *why = "invalid chunk size"; return -1; }
      break;
    /* RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
     * chunk-ext-val = token / quoted-string; whitespace only around ";" and "=". */
    case S_CEXT_BWS:
      if (c == ';') st = S_CEXT_NAME0;
      else if (c != ' ' && c != '\t') goto bad_ext;
      break;
    case S_CEXT_NAME0:
      if (is_tchar_byte(c)) st = S_CEXT_NAME;
      else if (c != ' ' && c != '\t') goto bad_ext;
      break;
    case S_CEXT_NAME:
      if (c == '=') st = S_CEXT_VAL0;
      else if (c == ';') st = S_CEXT_NAME0;
      else if (c == '\r') st = S_CSIZE_LF;
      else if (c == ' ' || c == '\t') st = S_CEXT_AFTER_NAME;
      else if (!is_tchar_byte(c)) goto bad_ext;
      break;
    case S_CEXT_AFTER_NAME:
      if (c == '=') st = S_CEXT_VAL0;
      else if (c == ';') st = S_CEXT_NAME0;
      else if (c != ' ' && c != '\t') goto bad_ext;
      break;
    case S_CEXT_VAL0:
      if (c == '"') st = S_CEXT_QS;
      else if (is_tchar_byte(c)) st = S_CEXT_TOKEN;
      else if (c != ' ' && c != '\t') goto bad_ext;
      break;
    case S_CEXT_TOKEN:
      if (c == ';') st = S_CEXT_NAME0;
      else if (c == '\r') st = S_CSIZE_LF;
      else if (c == ' ' || c == '\t') st = S_CEXT_BWS;
      else if (!is_tchar_byte(c)) goto bad_ext;
      break;
    case S_CEXT_QS: /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
      if (c == '"') st = S_CEXT_AFTER_VAL;
      else if (c == '\\') st = S_CEXT_QP;
      else if (!(c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80)) goto bad_ext;
      break;
    case S_CEXT_QP: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
      if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) goto bad_ext;
      st = S_CEXT_QS;
      break;
    case S_CEXT_AFTER_VAL:
      if (c == ';') st = S_CEXT_NAME0;
      else if (c == '\r') st = S_CSIZE_LF;
      else if (c == ' ' || c == '\t') st = S_CEXT_BWS;
      else goto bad_ext;
      break;
    case S_CSIZE_LF:
      if (c != '\n') goto bare_cr;
      st = ps->scan_left ? S_CDATA : S_TLINE;
      break;
    case S_CDATA: {
      size_t take = n - i < ps->scan_left ? n - i : (size_t)ps->scan_left;
      ps->scan_left -= take;
      i += take - 1;
      if (ps->scan_left == 0) st = S_CDATA_CR;
      break;
    }
    case S_CDATA_CR:
      if (c != '\r') { *why = "chunk data longer than its size"; return -1; }
      st = S_CDATA_LF;
      break;
    case S_CDATA_LF:
      if (c != '\n') goto bare_cr;
      st = S_CSIZE0;
      break;
    case S_TLINE:
      if (c == '\r') st = S_TEND_LF;
      else if (c == '\n') goto bare_lf;
      else if (!is_tchar_byte(c)) { *why = "invalid trailer field"; return -1; }
      else st = S_TNAME;
      break;
    case S_TNAME:
      if (c == ':') st = S_TFIELD;
      else if (!is_tchar_byte(c)) { *why = "invalid byte in a trailer field name"; return -1; }
      break;
    case S_TFIELD:
      if (c == '\r') st = S_TFIELD_LF;
      else if (c == '\n') goto bare_lf;
      else if ((c < 0x20 && c != '\t') || c == 0x7f) { *why = "control character in a trailer field"; return -1; }
      break;
    case S_TFIELD_LF:
      if (c != '\n') goto bare_cr;
      st = S_TLINE;
      break;
    case S_TEND_LF:
      if (c != '\n') goto bare_cr;
      st = S_DONE;
      break;
    }
  }
  ps->scan = st;
  return 0;
bare_lf:
  *why = "bare LF as a line end";
  return -1;
bare_cr:
  *why = "CR not followed by LF";
  return -1;
bad_ext:
  *why = "invalid chunk extension";
  return -1;
}

long fra_parser_execute(fra_parser *ps, const char *data, size_t len, fra_parse_error *err) {
  /* Still paused after the previous message (it ended exactly at the end of a read): nothing
   * is consumed.  llhttp would report its stale error position from that earlier buffer. */
  if (llhttp_get_errno(&ps->p) == HPE_PAUSED) return 0;
  llhttp_errno_t e = llhttp_execute(&ps->p, data, len);
  long used;
  if (e == HPE_OK) used = (long)len;
  else if (e == HPE_PAUSED) used = (long)(llhttp_get_error_pos(&ps->p) - data);
  else {
    if (ps->error_status) {
      err->status = ps->error_status;
      err->reason = ps->error_reason;
    } else {
      err->status = status_for(e);
      err->reason = llhttp_get_error_reason(&ps->p);
      if (!err->reason) err->reason = llhttp_errno_name(e);
    }
    return -1;
  }
  const char *why = NULL;
  if (scan(ps, (const unsigned char *)data, (size_t)used, &why) < 0) {
    err->status = 400;
    err->reason = why;
    return -1;
  }
  return used;
}

void fra_parser_resume(fra_parser *ps) {
  if (llhttp_get_errno(&ps->p) == HPE_PAUSED) llhttp_resume(&ps->p);
  ps->line_bytes = 0;
}

int fra_parser_idle(const fra_parser *ps) { return ps->req == NULL; }

void fra_req_reset(fra_req *r) {
  char *buf = r->buf, *body = r->body;
  fra_hdr *hdrs = r->hdrs;
  size_t cap = r->cap, hdrcap = r->hdrcap;
  size_t body_cap = r->body_cap;
  memset(r, 0, sizeof(*r));
  r->buf = buf; r->cap = cap;
  r->hdrs = hdrs; r->hdrcap = hdrcap;
  r->body = body; r->body_cap = body_cap;
}

void fra_req_shrink(fra_req *r) {
  if (r->pre_len) return; /* body bytes still point into a read buffer */
  if (r->cap > r->len && r->len) {
    char *nb = realloc(r->buf, r->len);
    if (nb) { r->buf = nb; r->cap = r->len; }
  }
  if (r->hdrcap > r->nhdrs && r->nhdrs) {
    fra_hdr *nh = realloc(r->hdrs, r->nhdrs * sizeof *nh);
    if (nh) { r->hdrs = nh; r->hdrcap = r->nhdrs; }
  }
  if (r->body && r->body_off == r->body_len) {
    free(r->body);
    r->body = NULL;
    r->body_cap = r->body_off = r->body_len = 0;
  }
}

int fra_req_pre_flush(fra_req *r) {
  if (!r->pre_len) return 0;
  const char *at = r->pre_at;
  size_t len = r->pre_len;
  r->pre_at = NULL;
  r->pre_len = 0;
  return fra_req_body_append(r, at, len);
}

void fra_req_free(fra_req *r) {
  free(r->buf);
  free(r->hdrs);
  free(r->body);
  free(r);
}

int fra_req_body_append(fra_req *r, const char *at, size_t len) {
  if (r->body_off == r->body_len) r->body_off = r->body_len = 0;
  if (len > SIZE_MAX - r->body_len) return -1;
  if (r->body_len + len > r->body_cap) {
    if (r->body_off > 0) {  /* reclaim consumed space first */
      memmove(r->body, r->body + r->body_off, r->body_len - r->body_off);
      r->body_len -= r->body_off;
      r->body_off = 0;
    }
    if (r->body_len + len > r->body_cap) {
      size_t cap = grown(r->body_cap, r->body_len + len, 4096);
      char *nb = realloc(r->body, cap);
      if (!nb) return -1;
      r->body = nb;
      r->body_cap = cap;
    }
  }
  memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  return 0;
}

int fra_req_find(const fra_req *r, const char *name, size_t name_len) {
  for (size_t i = 0; i < r->nhdrs; i++)
    if (r->hdrs[i].name_len == name_len && strncasecmp(r->buf + r->hdrs[i].name_off, name, name_len) == 0)
      return (int)i;
  return -1;
}
