/* aec_step.c - times training steps of one generated model: forward, backward and the
 * optimizer update on a fixed random batch, as the trainer runs them. Built by
 * bench/run.sh around a spec's generated model.c. Prints one JSON line: median ms per
 * step over the timed steps (kernel timing off), images/s, achieved GFLOP/s and peak RSS;
 * then runs as many steps again with every kernel timed, prints one line per kernel (ms
 * and GFLOP/s forward and backward) and, given PROFILE, writes there the same JSON as
 * `MODEL train --profile` (for `aec report --profile`). */
#include "model.c"
#include "aert_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 20, threads = argc > 2 ? atoi(argv[2]) : 2;
  double flops = argc > 3 ? atof(argv[3]) : 0;   /* training-step FLOPs from `aec summary --json` */
  const char *profile_path = argc > 4 ? argv[4] : NULL;
  if (steps < 1 || threads < 1) { fprintf(stderr, "usage: aec_step STEPS THREADS FLOPS_PER_STEP [PROFILE]\n"); return 2; }
  aert_prefer_passive_threads(argv);   /* the threads' wait policy the trainers choose */
  openblas_set_num_threads(1);
  omp_set_num_threads(threads);
  const aert_model *m = &aec_model;
  /* 64-byte aligned and zeroed, as the trainer's CPU device allocates them (aert_alloc_aligned) */
  size_t f = sizeof(float);
  float *P = aert_alloc_aligned(f * m->param_floats, "parameters"), *G = aert_alloc_aligned(f * m->param_floats, "gradients");
  float *A = aert_alloc_aligned(f * m->arena_floats, "the arena"), *X = aert_alloc_aligned(f * m->batch * m->in_size, "the batch");
  long tsize = m->target_size ? m->target_size : 1;
  float *T = aert_alloc_aligned(f * m->batch * tsize, "the targets");
  aert_optimizer opt;
  if (!P || !G || !A || !X || !T || aert_init_params(m, P, 1) || aert_optim_init(&opt, m)) return 1;
  uint64_t s = 5;
  for (long i = 0; i < m->batch * m->in_size; i++) X[i] = aert_uniform(s, (uint64_t)i);
  for (long i = 0; i < m->batch * tsize; i++)
    T[i] = m->n_classes ? (float)((int)(aert_uniform(s + 1, (uint64_t)i) * m->n_classes)) : aert_uniform(s + 1, (uint64_t)i);
  const float *target = m->target_kind == AERT_TARGET_INPUT ? X : T;
  int warmup = 3;
  double *ms = calloc((size_t)steps, sizeof *ms), *pms = calloc((size_t)steps, sizeof *pms);
  aert_profile prof;
  struct rusage ru;
  if (!ms || !pms) return 1;
  for (int i = 0; i < warmup + 2 * steps; i++) {
    aert_profile *pr = i >= warmup + steps ? &prof : NULL;   /* the second half is timed per kernel */
    /* the peak RSS is the training's: read before the profile's machine probe allocates */
    if (i == warmup + steps && (getrusage(RUSAGE_SELF, &ru) != 0 || aert_profile_begin(&prof, m, profile_path, "bench") != 0)) return 1;
    double t0 = now_ms();
    aert_profile_step_begin(pr);
    m->forward(P, A, X, target, 1, (uint64_t)i, NULL);
    m->backward(P, G, A, X, target, (uint64_t)i);
    aert_profile_optim_begin(pr);
    aert_optim_step(&opt, m, P, G, m->optim.lr);
    aert_profile_step_end(pr);
    if (i >= warmup) (pr ? pms : ms)[(i - warmup) % steps] = now_ms() - t0;
  }
  qsort(ms, (size_t)steps, sizeof *ms, by_value);
  qsort(pms, (size_t)steps, sizeof *pms, by_value);
  double med = ms[steps / 2];
  printf("{\"side\": \"aec\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d, \"median_ms\": %.2f, "
         "\"median_ms_profiled\": %.2f, \"images_per_s\": %.1f, \"gflops\": %.1f, \"peak_rss_mb\": %.1f, "
         "\"spin\": \"%s\"}\n", m->name, m->batch, threads, steps, med, pms[steps / 2], m->batch / med * 1e3, flops / med / 1e6,
         ru.ru_maxrss / 1024.0, getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT") : "passive");
  /* per kernel: mean ms per step and GFLOP/s, forward and backward, over the profiled steps */
  for (int k = 0; k < m->n_timed; k++) {
    double f = m->profile_ms[k][0] / steps, b = m->profile_ms[k][1] / steps;
    printf("{\"side\": \"aec-kernel\", \"model\": \"%s\", \"kernel\": \"%s\", \"forward_ms\": %.3f, \"backward_ms\": %.3f, "
           "\"forward_gflops\": %.1f, \"backward_gflops\": %.1f}\n", m->name, m->timed_names[k], f, b,
           f > 0 ? m->timed_flops[k][0] / f / 1e6 : 0, b > 0 ? m->timed_flops[k][1] / b / 1e6 : 0);
  }
  int rc = profile_path && aert_profile_write(&prof) != 0 ? 1 : 0;
  aert_profile_free(&prof);
  return rc;
}
