/* aec_step.c - times training steps of one generated model: forward, backward and the
 * optimizer update on a fixed random batch, as the trainer runs them. Built by
 * bench/run.sh around a spec's generated model.c. Prints one JSON line: median ms per
 * step over the timed steps, images/s, achieved GFLOP/s and peak RSS; built with
 * -DAERT_PROFILE, also one line per kernel: its ms and GFLOP/s forward and backward. */
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
  if (steps < 1 || threads < 1) { fprintf(stderr, "usage: aec_step STEPS THREADS FLOPS_PER_STEP\n"); return 2; }
  openblas_set_num_threads(1);
  omp_set_num_threads(threads);
  const aert_model *m = &aec_model;
  float *P = calloc((size_t)m->param_floats, sizeof *P), *G = calloc((size_t)m->param_floats, sizeof *G);
  float *A = calloc((size_t)m->arena_floats, sizeof *A);
  float *X = calloc((size_t)(m->batch * m->in_size), sizeof *X);
  long tsize = m->target_size ? m->target_size : 1;
  float *T = calloc((size_t)(m->batch * tsize), sizeof *T);
  aert_optimizer opt;
  if (!P || !G || !A || !X || !T || aert_init_params(m, P, 1) || aert_optim_init(&opt, m)) return 1;
  uint64_t s = 5;
  for (long i = 0; i < m->batch * m->in_size; i++) X[i] = aert_uniform(s, (uint64_t)i);
  for (long i = 0; i < m->batch * tsize; i++)
    T[i] = m->n_classes ? (float)((int)(aert_uniform(s + 1, (uint64_t)i) * m->n_classes)) : aert_uniform(s + 1, (uint64_t)i);
  const float *target = m->target_kind == AERT_TARGET_INPUT ? X : T;
  int warmup = 3;
  double *ms = calloc((size_t)steps, sizeof *ms);
  for (int i = 0; i < warmup + steps; i++) {
    double t0 = now_ms();
    m->forward(P, A, X, target, 1, (uint64_t)i, NULL);
    m->backward(P, G, A, X, target, (uint64_t)i);
    aert_optim_step(&opt, m, P, G, m->optim.lr);
    if (i >= warmup) ms[i - warmup] = now_ms() - t0;
#ifdef AERT_PROFILE
    if (i + 1 == warmup) memset(profile_ms, 0, sizeof profile_ms);
#endif
  }
  qsort(ms, (size_t)steps, sizeof *ms, by_value);
  double med = ms[steps / 2];
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"side\": \"aec\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d, \"median_ms\": %.2f, "
         "\"images_per_s\": %.1f, \"gflops\": %.1f, \"peak_rss_mb\": %.1f}\n", m->name, m->batch, threads, steps, med,
         m->batch / med * 1e3, flops / med / 1e6, ru.ru_maxrss / 1024.0);
#ifdef AERT_PROFILE   /* per kernel: mean ms per step and GFLOP/s, forward and backward */
  for (int k = 0; k < (int)(sizeof profile_ms / sizeof profile_ms[0]); k++) {
    double f = profile_ms[k][0] / steps, b = profile_ms[k][1] / steps;
    printf("{\"side\": \"aec-kernel\", \"model\": \"%s\", \"kernel\": \"%s\", \"forward_ms\": %.3f, \"backward_ms\": %.3f, "
           "\"forward_gflops\": %.1f, \"backward_gflops\": %.1f}\n", m->name, profile_names[k], f, b,
           f > 0 ? profile_flops[k][0] / f / 1e6 : 0, b > 0 ? profile_flops[k][1] / b / 1e6 : 0);
  }
#endif
  return 0;
}
