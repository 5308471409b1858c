/* pool.c — a fixed pool of threads taking jobs from one queue (for WSGI apps).  Owns the
 * threads (created detached: a thread stuck in the app never blocks its owner) and the queue;
 * jobs never taken go back to the owner at stop; the pool is freed by the last of its owner and
 * threads to let go.  No function here needs the GIL; pool threads call fra_pool_take without
 * holding it, and the owner calls fra_pool_release without it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "fra/core.h"

typedef struct pool_start {
  fra_pool *pool;
  void (*main)(void *);
  void *arg;
} pool_start;

static void *thread_main(void *p) {
  pool_start st = *(pool_start *)p;
  free(p);
  st.main(st.arg);
  return NULL;
}

int fra_pool_start(fra_pool *p, int n, void (*main)(void *), void *arg) {
  memset(p, 0, sizeof *p);
  p->refs = 1; /* the owner */
  int rc;
  if ((rc = uv_mutex_init(&p->mu))) return rc;
  if ((rc = uv_cond_init(&p->cv))) {
    uv_mutex_destroy(&p->mu);
    return rc;
  }
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return UV_ENOMEM;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    pool_start *st = malloc(sizeof *st);
    if (!st) {
      rc = UV_ENOMEM;
      break;
    }
    *st = (pool_start){p, main, arg};
    uv_mutex_lock(&p->mu);
    p->refs++;
    uv_mutex_unlock(&p->mu);
    pthread_t t;
    int err = pthread_create(&t, &attr, thread_main, st);
    if (err) {
      free(st);
      uv_mutex_lock(&p->mu);
      p->refs--;
      uv_mutex_unlock(&p->mu);
      rc = -err;
      break;
    }
    p->nthreads++;
  }
  pthread_attr_destroy(&attr);
  return rc;
}

static void release(fra_pool *p) {
  uv_mutex_lock(&p->mu);
  int last = --p->refs == 0;
  if (!last) uv_cond_broadcast(&p->cv); /* the owner may be waiting for threads to leave */
  uv_mutex_unlock(&p->mu);
  if (!last) return;
  /* nobody else can reach the pool now; its queue was emptied at stop */
  uv_cond_destroy(&p->cv);
  uv_mutex_destroy(&p->mu);
  free(p->jobs);
  free(p);
}

void fra_pool_thread_exit(fra_pool *p) { release(p); }

int fra_pool_push(fra_pool *p, void *job) {
  uv_mutex_lock(&p->mu);
  if (p->stop) {
    uv_mutex_unlock(&p->mu);
    return UV_ECANCELED;
  }
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

void fra_pool_stop(fra_pool *p, void (*drop)(void *job, void *arg), void *arg) {
  if (!p) return;
  uv_mutex_lock(&p->mu);
  p->stop = 1;
  uv_cond_broadcast(&p->cv);
  /* The queue is taken whole: no thread takes a job once stop is set. */
  void **jobs = p->jobs;
  size_t head = p->head, count = p->count, cap = p->cap;
  p->jobs = NULL;
  p->head = p->count = p->cap = 0;
  uv_mutex_unlock(&p->mu);
  /* Each job holds what its owner gave it (a WSGI exchange holds a reference): the owner
   * releases it, here, on its own thread. */
  for (size_t i = 0; i < count; i++)
    if (drop) drop(jobs[(head + i) % cap], arg);
  free(jobs);
}

void fra_pool_release(fra_pool *p, uint64_t wait_ms) {
  if (!p) return;
  uv_mutex_lock(&p->mu);
  p->stop = 1;
  uv_cond_broadcast(&p->cv);
  /* Idle threads leave at once; give them wait_ms to do so (the caller has released the GIL
   * they need on the way out).  A thread still in the app keeps the pool alive instead, and
   * lets go of it when it comes back to fra_pool_take. */
  uint64_t deadline = uv_hrtime() + wait_ms * 1000000;
  while (p->refs > 1) {
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&p->cv, &p->mu, deadline - now) != 0) break;
  }
  uv_mutex_unlock(&p->mu);
  release(p);
}
