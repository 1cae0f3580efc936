/* tune.c - the autotune's memory, like FFTW's wisdom: for each kernel call shape, the
 * variant that ran fastest on this machine, kept in a small text file next to the trainer
 * (<trainer>.wisdom, or the file $AERT_WISDOM names). Tuning is asked for with AERT_TUNE=1;
 * without it (and with AERT_WISDOM=off) every kernel takes its default variant: on the host
 * it was measured on, tuning gained nothing over the default choice (bench/history.md). The
 * file's second line names the CPU (its model name, cpuid family and model) and the build
 * (ISA, float width); a file written on another CPU or for another build, or one that
 * cannot be read, is set aside with one message and the shapes are tuned again. The
 * variants compute the same bits, so a choice only ever changes the speed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "aert_internal.h"

#define WISDOM_MAGIC "aec-wisdom 1"

typedef struct {
  char op[16], variant[16];
  int m, n, k;
  double ms;
} wisdom_entry;

static struct {
  int loaded, off, warned;
  char *path, machine[320];
  wisdom_entry *e;
  int n, cap;
} W;
static pthread_mutex_t W_lock = PTHREAD_MUTEX_INITIALIZER;

/* "AMD EPYC | family 25 model 17 | avx512 f32": /proc/cpuinfo's model name, cpuid's
 * family and model (with their extended bits), and the build the caller names. */
static void machine_identity(char *out, size_t size, const char *build) {
  char name[160] = "unknown", line[512];
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
      snprintf(name, sizeof name, "%s", strchr(line, ':') + 2);
      name[strcspn(name, "\n")] = 0;
      break;
    }
  if (f) fclose(f);
  unsigned family = 0, model = 0;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    family = (a >> 8 & 0xf) + (a >> 20 & 0xff);
    model = (a >> 4 & 0xf) | (a >> 12 & 0xf0);
  }
#endif
  snprintf(out, size, "%s | family %u model %u | %s", name, family, model, build);
}

/* The wisdom file's path: $AERT_WISDOM, else the running program's path + ".wisdom". */
static char *wisdom_path(void) {
  const char *env = getenv("AERT_WISDOM");
  if (env && *env) return strdup(env);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
  if (n <= 0) return NULL;
  memcpy(exe + n, ".wisdom", 8);
  return strdup(exe);
}

static int add_entry(const wisdom_entry *x) {
  if (W.n == W.cap) {
    int cap = W.cap ? 2 * W.cap : 32;
    wisdom_entry *e = realloc(W.e, sizeof *e * (size_t)cap);
    if (!e) return -1;
    W.e = e, W.cap = cap;
  }
  W.e[W.n++] = *x;
  return 0;
}

/* Reads the file's entries; returns 0, or -1 with why in reason (then none are kept). */
static int read_wisdom(FILE *f, char *reason, size_t size) {
  char line[512];
  if (!fgets(line, sizeof line, f) || strncmp(line, WISDOM_MAGIC, strlen(WISDOM_MAGIC)) != 0)
    return snprintf(reason, size, "it does not start with '%s'", WISDOM_MAGIC), -1;
  if (!fgets(line, sizeof line, f) || strncmp(line, "machine: ", 9) != 0)
    return snprintf(reason, size, "its second line does not name the machine"), -1;
  line[strcspn(line, "\n")] = 0;
  if (strcmp(line + 9, W.machine) != 0)
    return snprintf(reason, size, "it was written for '%.200s', this is '%.200s'", line + 9, W.machine), -1;
  for (int no = 3; fgets(line, sizeof line, f); no++) {
    wisdom_entry x;
    if (sscanf(line, "%15s %d %d %d %15s %lf", x.op, &x.m, &x.n, &x.k, x.variant, &x.ms) != 6)
      return snprintf(reason, size, "line %d is not 'op m n k variant ms'", no), -1;
    if (add_entry(&x)) return snprintf(reason, size, "out of memory"), -1;
  }
  return 0;
}

static void load_wisdom(const char *build) {
  W.loaded = 1;
  const char *env = getenv("AERT_WISDOM"), *tune = getenv("AERT_TUNE");
  W.off = !tune || strcmp(tune, "1") != 0 || (env && strcmp(env, "off") == 0);
  if (W.off) return;
  machine_identity(W.machine, sizeof W.machine, build);
  W.path = wisdom_path();
  FILE *f = W.path ? fopen(W.path, "r") : NULL;
  if (!f) return;   /* the first run on this machine: nothing to read yet */
  char reason[512];
  if (read_wisdom(f, reason, sizeof reason)) {
    fprintf(stderr, "aec: wisdom file '%s' set aside (%s); tuning again\n", W.path, reason);
    W.n = 0;
  }
  fclose(f);
}

/* Rewrites the file through a temporary of this process's own (ranks of a data-parallel
 * run may tune side by side) renamed over it. A file that cannot be written costs one
 * message, and the later shapes are not written either. */
static void save_wisdom(void) {
  if (W.warned) return;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", W.path ? W.path : "", (long)getpid());
  FILE *f = W.path ? fopen(tmp, "w") : NULL;
  int ok = f != NULL;
  if (f) {
    fprintf(f, "%s\nmachine: %s\n", WISDOM_MAGIC, W.machine);
    for (int i = 0; i < W.n; i++)
      fprintf(f, "%s %d %d %d %s %.4f\n", W.e[i].op, W.e[i].m, W.e[i].n, W.e[i].k, W.e[i].variant, W.e[i].ms);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok && rename(tmp, W.path) == 0;
    if (!ok) remove(tmp);
  }
  if (!ok) {
    fprintf(stderr, "aec: the tuning is not kept: cannot write '%s'; set AERT_WISDOM to a writable path\n",
            W.path ? W.path : "(no path for the wisdom file)");
    W.warned = 1;
  }
}

int aert_tune_enabled(const char *build) {
  pthread_mutex_lock(&W_lock);
  if (!W.loaded) load_wisdom(build);
  int on = !W.off;
  pthread_mutex_unlock(&W_lock);
  return on;
}

int aert_tune_find(const char *build, const char *op, int m, int n, int k, char variant[16]) {
  int found = 0;
  pthread_mutex_lock(&W_lock);
  if (!W.loaded) load_wisdom(build);
  for (int i = 0; i < W.n && !found; i++)
    if (strcmp(W.e[i].op, op) == 0 && W.e[i].m == m && W.e[i].n == n && W.e[i].k == k) {
      memcpy(variant, W.e[i].variant, 16);
      found = 1;
    }
  pthread_mutex_unlock(&W_lock);
  return found;
}

void aert_tune_keep(const char *build, const char *op, int m, int n, int k, const char *variant, double ms) {
  wisdom_entry x = {.m = m, .n = n, .k = k, .ms = ms};
  snprintf(x.op, sizeof x.op, "%s", op);
  snprintf(x.variant, sizeof x.variant, "%s", variant);
  pthread_mutex_lock(&W_lock);
  if (!W.loaded) load_wisdom(build);
  if (!W.off && add_entry(&x) == 0) save_wisdom();
  pthread_mutex_unlock(&W_lock);
}
