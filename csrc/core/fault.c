/* fault.c — fault injection for tests: named points that fail on chosen calls (the plan comes
 * from FRA_FAULTS or fra_fault_set; format in fra/core.h).  Compiled to nothing unless
 * FRA_FAULT_INJECTION is defined.  Owns the plan and the call counts (behind a mutex: pool
 * threads may reach a point too).  No function here needs the GIL. */
#include "fra/core.h"

#ifdef FRA_FAULT_INJECTION
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 16

typedef struct point {
  char name[32];
  uint64_t from, to;    /* calls from..to (1-based) fail */
  uint64_t calls;
} point;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static point plan[MAX_POINTS];
static int npoints, loaded;

static int parse_count(const char **s, uint64_t *out) {
  char *end;
  unsigned long long v = strtoull(*s, &end, 10);
  if (end == *s || v == 0) return -1;
  *out = v;
  *s = end;
  return 0;
}

/* "name:N" or "name:N-M", comma-separated.  Called with mu held. */
static int parse(const char *spec) {
  npoints = 0;
  if (!spec) return 0;
  const char *s = spec;
  while (*s) {
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof plan[0].name || npoints == MAX_POINTS) goto bad;
    point *p = &plan[npoints];
    memcpy(p->name, s, (size_t)(colon - s));
    p->name[colon - s] = 0;
    s = colon + 1;
    if (parse_count(&s, &p->from) < 0) goto bad;
    p->to = p->from;
    if (*s == '-') {
      s++;
      if (parse_count(&s, &p->to) < 0 || p->to < p->from) goto bad;
    }
    p->calls = 0;
    npoints++;
    if (*s == ',') s++;
    else if (*s) goto bad;
  }
  return 0;
bad:
  npoints = 0;
  return -1;
}

int fra_fault_set(const char *spec) {
  pthread_mutex_lock(&mu);
  int rc = parse(spec);
  loaded = 1;
  pthread_mutex_unlock(&mu);
  return rc;
}

int fra_fault(const char *name) {
  int fail = 0;
  pthread_mutex_lock(&mu);
  if (!loaded) {
    parse(getenv("FRA_FAULTS"));
    loaded = 1;
  }
  for (int i = 0; i < npoints; i++) {
    point *p = &plan[i];
    if (strcmp(p->name, name) != 0) continue;
    p->calls++;
    fail = p->calls >= p->from && p->calls <= p->to;
    break;
  }
  pthread_mutex_unlock(&mu);
  return fail;
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int fra__no_fault_injection;
#endif
