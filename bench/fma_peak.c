/* fma_peak.c - the machine's measured single-precision FMA peak, the ceiling that
 * convolutions are judged against (bench/RESULTS.md: "% of FMA peak"). Each thread runs
 * 12 independent chains of vector FMAs (enough to hide the latency of two FMA ports),
 * in the widest vectors the build targets: 16 floats with AVX-512, 8 with AVX2.
 * Usage: fma_peak THREADS; prints one JSON line. Build with -O2 -march=... -fopenmp. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#define LANES 16
#define ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define LANES 8
#define ISA "avx2"
#else
#define LANES 4
#define ISA "sse"
#endif
#define CHAINS 12

typedef float vec __attribute__((vector_size(4 * LANES)));

/* iters rounds of CHAINS FMAs in registers; returns a sum so that nothing is optimised away */
static float run(long iters, float seed) {
  vec a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
  for (int i = 0; i < LANES; i++) {
    a[i] = 0.999999f, b[i] = seed * 1e-7f;
    c0[i] = seed, c1[i] = seed + 1, c2[i] = seed + 2, c3[i] = seed + 3, c4[i] = seed + 4, c5[i] = seed + 5;
    c6[i] = seed + 6, c7[i] = seed + 7, c8[i] = seed + 8, c9[i] = seed + 9, c10[i] = seed + 10, c11[i] = seed + 11;
  }
  for (long it = 0; it < iters; it++) {
    c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b, c4 = c4 * a + b, c5 = c5 * a + b;
    c6 = c6 * a + b, c7 = c7 * a + b, c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;
  }
  vec t = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
  float s = 0;
  for (int i = 0; i < LANES; i++) s += t[i];
  return s;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1) { fprintf(stderr, "usage: fma_peak THREADS\n"); return 2; }
  omp_set_num_threads(threads);
  long iters = 20000000;
  double best = 0;
  float sink = 0;
  for (int rep = 0; rep < 5; rep++) {   /* the best of five: a shared machine has slow spells */
    double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    sink += run(iters, (float)omp_get_thread_num() + 1.0f);
    double dt = omp_get_wtime() - t0, g = 2.0 * LANES * CHAINS * iters * threads / dt / 1e9;
    if (g > best) best = g;
  }
  printf("{\"side\": \"peak\", \"isa\": \"%s\", \"threads\": %d, \"gflops\": %.1f, \"sink\": %g}\n", ISA, threads, best, sink);
  return 0;
}
