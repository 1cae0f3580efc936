/* profile.c - per-kernel timing of training steps (`train --profile FILE`, bench/aec_step):
 * the generated model adds each kernel's milliseconds while its profiling flag is set;
 * this file sets the flag around the steps, counts them, probes the machine's peak FLOP/s
 * and memory bandwidth, and writes the JSON that `aec report --profile` draws on a roofline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aert_internal.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double probe_gflops(void);
static double probe_bandwidth(void);

/* The folder of path must exist and be writable: checked before hours of training. */
static int check_writable(const char *path) {
  char *copy = strdup(path);
  if (!copy) return aert_error("out of memory"), -1;
  char *slash = strrchr(copy, '/');
  const char *dir = slash ? (slash == copy ? "/" : (*slash = 0, copy)) : ".";
  int rc = access(dir, W_OK) == 0 ? 0 : -1;
  if (rc) aert_error("cannot write the profile '%s': folder '%s' is missing or not writable", path, dir);
  free(copy);
  return rc;
}

int aert_profile_begin(aert_profile *p, const aert_model *m, const char *path, const char *source) {
  memset(p, 0, sizeof *p);
  p->m = m;
  p->path = path;
  p->source = source;
  if (m->n_timed <= 0 || !m->profiling || !m->profile_ms)
    return aert_error("model '%s' was generated without kernel timing; rebuild it with this aec (aec build)", m->name), -1;
  if (path && check_writable(path) != 0) return -1;
  p->first = aert_alloc(sizeof(double) * 2 * (size_t)m->n_timed, "the profile");
  if (!p->first) return -1;
  memset(m->profile_ms, 0, sizeof(double) * 2 * (size_t)m->n_timed);
  if (path) {   /* probed before and after the steps: a busy spell of a shared machine rarely covers both */
    p->peak_gflops = probe_gflops();
    p->bandwidth_gbs = probe_bandwidth();
  }
  return 0;
}

void aert_profile_step_begin(aert_profile *p) {
  if (!p) return;
  p->t0 = now_ms();
  *p->m->profiling = 1;
}

void aert_profile_optim_begin(aert_profile *p) {
  if (!p) return;
  *p->m->profiling = 0;
  p->t1 = now_ms();
}

/* The first step pays for page faults and cold caches: it is kept apart, and left out of
 * the means when more steps follow. */
void aert_profile_step_end(aert_profile *p) {
  if (!p) return;
  double t2 = now_ms();
  p->step_ms += t2 - p->t0;
  p->optim_ms += t2 - p->t1;
  if (++p->steps == 1) {
    memcpy(p->first, p->m->profile_ms, sizeof(double) * 2 * (size_t)p->m->n_timed);
    p->first_step_ms = p->step_ms;
    p->first_optim_ms = p->optim_ms;
  }
}

/* Peak FLOP/s: independent FMA chains on vectors, on every thread. The clones let the
 * runtime (built for any x86-64) use the widest vectors the machine has. */
typedef float aert_v16 __attribute__((vector_size(64)));

#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "fma", "default")))
#endif
static float fma_chains(long iters, float seed) {
  aert_v16 acc[12], m = {0}, a = {0};
  for (int l = 0; l < 16; l++) { m[l] = 0.999999f; a[l] = 1e-7f * seed; }
  for (int j = 0; j < 12; j++) acc[j] = m * (float)(j + 1);
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; j++) acc[j] = acc[j] * m + a;
  }
  float s = 0;
  for (int j = 0; j < 12; j++)
    for (int l = 0; l < 16; l++) s += acc[j][l];
  return s;
}

/* The threads OpenMP runs a parallel region with (1 when built without OpenMP, as the
 * fuzzers are): no omp.h, so that such builds link. */
static int team_size(void) {
  int n = 0;
#pragma omp parallel reduction(+ : n)
  n++;
  return n;
}

static double probe_gflops(void) {
  double best = 0;
  long iters = 1 << 16;
  for (int round = 0; round < 8; round++) {
    double t0 = now_ms();
    float sink = 0;
    int threads = 0;
#pragma omp parallel reduction(+ : sink, threads)
    {
      sink += fma_chains(iters, 1.0f);
      threads++;
    }
    double ms = now_ms() - t0;
    if (!isfinite(sink)) return 0;
    double g = (double)iters * 12 * 16 * 2 * threads / ms / 1e6;
    if (g > best) best = g;
    if (ms < 40) iters *= 2;
  }
  return best;
}

/* Memory bandwidth: a STREAM triad over arrays far larger than the caches, counting
 * 12 bytes per element as STREAM does; the best of several passes. */
static double probe_bandwidth(void) {
  long n = 8L << 20;
  float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n), *c = malloc(sizeof(float) * (size_t)n);
  double best = 0;
  if (a && b && c) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
    for (int pass = 0; pass < 5; pass++) {
      double t0 = now_ms();
#pragma omp parallel for schedule(static)
      for (long i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
      double gbs = 12.0 * n / (now_ms() - t0) / 1e6;
      if (gbs > best) best = gbs;
    }
  }
  free(a);
  free(b);
  free(c);
  return best;
}

static void cpu_name(char *buf, size_t cap) {
  snprintf(buf, cap, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon) {
      snprintf(buf, cap, "%s", colon + 2);
      buf[strcspn(buf, "\n")] = 0;
      break;
    }
  }
  if (f) fclose(f);
  for (char *c = buf; *c; c++)
    if (*c == '"' || *c == '\\' || (unsigned char)*c < 32) *c = ' ';
}

int aert_profile_write(aert_profile *p) {
  const aert_model *m = p->m;
  if (p->steps == 0) return aert_error("no training step ran: the profile '%s' was not written", p->path), -1;
  int skip = p->steps > 1, n = (int)p->steps - skip;
  double (*ms)[2] = m->profile_ms, (*first)[2] = (double (*)[2])p->first;
  double step = (p->step_ms - (skip ? p->first_step_ms : 0)) / n, optim = (p->optim_ms - (skip ? p->first_optim_ms : 0)) / n;
  char cpu[256];
  cpu_name(cpu, sizeof cpu);
  double peak = fmax(p->peak_gflops, probe_gflops()), bw = fmax(p->bandwidth_gbs, probe_bandwidth());
  aert_atomic a;
  if (aert_atomic_open(&a, p->path) != 0) return -1;
  FILE *f = a.f;
  fprintf(f, "{\n  \"aec_profile\": 1,\n  \"source\": \"%s\",\n  \"model\": \"%s\",\n  \"spec_hash\": \"%s\",\n  \"batch\": %d,\n"
          "  \"threads\": %d,\n  \"steps\": %d,\n  \"warmup_steps\": %d,\n  \"step_ms\": %.4f,\n  \"optimizer_ms\": %.4f,\n",
          p->source, m->name, m->spec_hash ? m->spec_hash : "", m->batch, team_size(), n, skip, step, optim);
  fprintf(f, "  \"machine\": {\"cpu\": \"%s\", \"peak_gflops\": %.2f, \"bandwidth_gbs\": %.2f},\n  \"kernels\": [\n", cpu, peak, bw);
  for (int k = 0; k < m->n_timed; k++) {
    double fms = (ms[k][0] - (skip ? first[k][0] : 0)) / n, bms = (ms[k][1] - (skip ? first[k][1] : 0)) / n;
    const double *fl = m->timed_flops[k];
    fprintf(f, "    {\"name\": \"%s\", \"forward_ms\": %.4f, \"backward_ms\": %.4f, \"forward_flops\": %.0f, \"backward_flops\": %.0f,"
            " \"forward_gflops\": %.2f, \"backward_gflops\": %.2f}%s\n", m->timed_names[k], fms, bms, fl[0], fl[1],
            fms > 0 ? fl[0] / fms / 1e6 : 0, bms > 0 ? fl[1] / bms / 1e6 : 0, k + 1 < m->n_timed ? "," : "");
  }
  fprintf(f, "  ]\n}\n");
  return aert_atomic_commit(&a);
}

void aert_profile_free(aert_profile *p) {
  if (!p) return;
  free(p->first);
  p->first = NULL;
}
