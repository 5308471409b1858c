/* pool.c — a fixed pool of threads taking jobs from one queue (for WSGI apps).  Owns the
 * threads and the queue; the pool is freed by the last of its owner and threads to let go.  No function here needs the GIL; pool threads call fra_pool_take
 * without holding it. */
#include <stdlib.h>
#include <string.h>
#include "fra/core.h"

int fra_pool_start(fra_pool *p, int n, void (*main)(void *), void *arg) {
  memset(p, 0, sizeof *p);
  p->refs = 1; /* the owner */
  int rc;
  if ((rc = uv_mutex_init(&p->mu))) return rc;
  if ((rc = uv_cond_init(&p->cv))) return rc;
  p->threads = calloc((size_t)n, sizeof(uv_thread_t));
  if (!p->threads) return UV_ENOMEM;
  for (int i = 0; i < n; i++) {
    uv_mutex_lock(&p->mu);
    p->refs++;
    uv_mutex_unlock(&p->mu);
    if ((rc = uv_thread_create(&p->threads[i], main, arg))) {
      uv_mutex_lock(&p->mu);
      p->refs--;
      uv_mutex_unlock(&p->mu);
      return rc;
    }
    p->nthreads++;
  }
  return 0;
}

static void release(fra_pool *p) {
  uv_mutex_lock(&p->mu);
  int last = --p->refs == 0;
  if (!last) uv_cond_broadcast(&p->cv); /* the owner may be waiting for threads to leave */
  uv_mutex_unlock(&p->mu);
  if (!last) return;
  /* nobody else can reach the pool now: jobs never taken hold nothing we own */
  uv_cond_destroy(&p->cv);
  uv_mutex_destroy(&p->mu);
  free(p->jobs);
  free(p);
}

void fra_pool_thread_exit(fra_pool *p) { release(p); }

int fra_pool_push(fra_pool *p, void *job) {
  uv_mutex_lock(&p->mu);
  if (p->count == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    void **nj = malloc(cap * sizeof(void *));
    if (!nj) { uv_mutex_unlock(&p->mu); return UV_ENOMEM; }
    for (size_t i = 0; i < p->count; i++) nj[i] = p->jobs[(p->head + i) % p->cap];
    free(p->jobs);
    p->jobs = nj;
    p->cap = cap;
    p->head = 0;
  }
  p->jobs[(p->head + p->count) % p->cap] = job;
  p->count++;
  if (p->idle) uv_cond_signal(&p->cv);
  uv_mutex_unlock(&p->mu);
  return 0;
}

void *fra_pool_take(fra_pool *p) {
  void *job = NULL;
  uv_mutex_lock(&p->mu);
  while (!p->count && !p->stop) {
    p->idle++;
    uv_cond_wait(&p->cv, &p->mu);
    p->idle--;
  }
  if (p->count && !p->stop) {
    job = p->jobs[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
  }
  uv_mutex_unlock(&p->mu);
  return job;
}

void fra_pool_stop(fra_pool *p, uint64_t wait_ms) {
  if (!p) return;
  uv_mutex_lock(&p->mu);
  p->stop = 1;
  uv_cond_broadcast(&p->cv);
  /* Idle threads leave at once; give them wait_ms to do so (the caller has released the GIL
   * they need on the way out).  A thread still in the app keeps the pool alive instead. */
  uint64_t deadline = uv_hrtime() + wait_ms * 1000000;
  while (p->refs > 1) {
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&p->cv, &p->mu, deadline - now) != 0) break;
  }
  uv_mutex_unlock(&p->mu);
  /* Threads still inside the app cannot be interrupted: they are detached and let go of the
   * pool when they come back to fra_pool_take. */
  for (int i = 0; i < p->nthreads; i++) pthread_detach(p->threads[i]);
  free(p->threads);
  p->threads = NULL;
  release(p);
}
