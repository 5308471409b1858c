/* response.c — response encoding helpers: status lines, the cached Date header, the access-log
 * timestamp, header validation, chunk framing, canned error responses.  Owns only static caches
 * (loop thread only).  No function here needs the GIL. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "fra/http.h"

static const char *reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 207: return "Multi-Status";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 418: return "I'm a teapot";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 451: return "Unavailable For Legal Reasons";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}

/* Status lines are built once per status and cached: most responses reuse a handful. */
static char line_cache[600][48];
static unsigned char line_len[600];

size_t fra_status_line(char *out, int status) {
  if (status >= 100 && status < 600) {
    if (!line_len[status]) {
      int n = snprintf(line_cache[status], sizeof line_cache[status], "HTTP/1.1 %d %s\r\n", status, reason(status));
      line_len[status] = (unsigned char)n;
    }
    memcpy(out, line_cache[status], line_len[status]);
    return line_len[status];
  }
  return (size_t)snprintf(out, 64, "HTTP/1.1 %d \r\n", status);
}

static time_t date_sec = -1, log_sec = -1;
static char date_buf[64], log_buf[40];
static size_t date_len, log_len;

const char *fra_date_header(size_t *len) {
  time_t now = time(NULL);
  if (now != date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    date_len = strftime(date_buf, sizeof date_buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    date_sec = now;
  }
  *len = date_len;
  return date_buf;
}

const char *fra_log_time(size_t *len) {
  time_t now = time(NULL);
  if (now != log_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    log_len = strftime(log_buf, sizeof log_buf, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    log_sec = now;
  }
  *len = log_len;
  return log_buf;
}

/* tchar per RFC 9110 5.6.2, as a table: checked for every response header name. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
};

int fra_valid_header_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!tchar[(unsigned char)s[i]]) return 0;
  return 1;
}

size_t fra_decimal(char *out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

int fra_valid_header_value(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n' || c == '\0') return 0;
  }
  return 1;
}

size_t fra_chunk_head(char *out, size_t size) {
  static const char hex[] = "0123456789abcdef";
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = hex[size & 15];
    size >>= 4;
  } while (size);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\r';
  out[n + 1] = '\n';
  return n + 2;
}

size_t fra_error_response(char *out, int status) {
  size_t dl;
  const char *date = fra_date_header(&dl);
  const char *r = reason(status);
  return (size_t)snprintf(out, 256,
                          "HTTP/1.1 %d %s\r\n%.*sContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                          status, r, (int)dl, date, strlen(r) + 1, r);
}
