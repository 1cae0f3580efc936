/* aert_dense.h - dense layers without BLAS: y = act(x w + b), dw += x^T dy and dx += dy w^T
 * as register tiles over the weights [in, out] in place (no packing), the bias and the
 * activation applied to the tile before it is stored. Every output is summed by one thread
 * over k in order 0, 1, ..., so the tile shape, the blocking and the thread count never
 * change a bit: the variants differ in speed only, and the autotune (core/tune.c, its
 * wisdom file next to the trainer; AERT_TUNE=1) picks one per layer shape for the machine.
 * Included by aert_kernels.h. */
#ifndef AERT_DENSE_H
#define AERT_DENSE_H

#include <stdio.h>
#include <stdlib.h>

/* ---- the activations on whole vectors (aert_vexp and aert_vsel: aert_kernels.h) ---- */
static inline aert_vec aert_vact(aert_act act, aert_real alpha, aert_vec v) {
  const aert_vec zero = {0}, one = zero + 1;
  switch (act) {
  case AERT_ACT_RELU: return aert_vsel(v > zero, v, zero);
  case AERT_ACT_LEAKY_RELU: return aert_vsel(v > zero, v, alpha * v);
  case AERT_ACT_SIGMOID: return one / (one + aert_vexp(-v));
  default: {   /* ELU and tanh lane by lane, as aert_act_apply computes them */
    for (int l = 0; act != AERT_ACT_LINEAR && l < AERT_LANES; l++) v[l] = aert_act_apply(act, alpha, v[l]);
    return v;
  }
  }
}

/* ---- the broadcast tile: c[i][j] = sum over p of a[i, p] b[p][j] ----------------------
 * a[i, p] sits at a[i * ar + p * ap]: x (ar = in, ap = 1) for the forward, x^T (ar = 1,
 * ap = in) for the weight gradient; b rows ldb apart. MR rows x NV vectors of columns in
 * registers; mode 0 stores act(c + bias), mode 1 adds c to what is there. */
typedef struct {
  const aert_real *a, *b, *bias;
  aert_real *c;
  long ar, ap;
  int k, ldb, ldc, mode;
  aert_act act;
  aert_real alpha;
} aert_dense_job;

static inline __attribute__((always_inline)) void aert_dense_tile(const aert_dense_job *g, int i0, int j0, int MR, int NV) {
  aert_vec acc[32] = {0};
  const aert_real *restrict a = g->a + i0 * g->ar, *restrict b = g->b + j0;
#pragma GCC unroll 4
  for (int p = 0; p < g->k; p++, a += g->ap, b += g->ldb) {
    aert_vec bv[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = aert_vload(b + v * AERT_LANES);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      aert_real x = a[r * g->ar];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r * NV + v] += x * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      aert_real *o = g->c + (long)(i0 + r) * g->ldc + j0 + v * AERT_LANES;
      aert_vec s = acc[r * NV + v];
      if (g->mode) s += aert_vload(o);
      else if (g->bias) s += aert_vload(g->bias + j0 + v * AERT_LANES);
      memcpy(o, &s, sizeof s);
    }
  /* The activation over the stored tile in a loop of its own: one inlined copy of aert_vact
   * a tile, where one a vector made every trainer's compile 2 s longer (dense_ae's model.c
   * 2.3 s). The same values: the sums stored, read back, activated. */
  if (g->mode || g->act == AERT_ACT_LINEAR) return;
#pragma GCC unroll 1
  for (int e = 0; e < MR * NV; e++) {
    aert_real *o = g->c + (long)(i0 + e / NV) * g->ldc + j0 + e % NV * AERT_LANES;
    aert_vec s = aert_vact(g->act, g->alpha, aert_vload(o));
    memcpy(o, &s, sizeof s);
  }
}

/* The columns past the last whole vector, one value at a time in the same order. */
static inline void aert_dense_scalar(const aert_dense_job *g, int i, int j) {
  aert_real s = 0;
  for (int p = 0; p < g->k; p++) s += g->a[i * g->ar + p * g->ap] * g->b[(long)p * g->ldb + j];
  aert_real *o = g->c + (long)i * g->ldc + j;
  *o = g->mode ? *o + s : aert_act_apply(g->act, g->alpha, s + (g->bias ? g->bias[j] : 0));
}

typedef void (*aert_dense_tile_fn)(const aert_dense_job *, int, int);
#define AERT_DENSE_TILE(MR, NV) \
  static void aert_dense_tile_##MR##x##NV(const aert_dense_job *g, int i0, int j0) { aert_dense_tile(g, i0, j0, MR, NV); }
/* The variants: MR x NV tiles that fit the accumulators in the vector registers, with the
 * narrower tiles each needs for the last rows and vectors. */
AERT_DENSE_TILE(1, 1)
AERT_DENSE_TILE(1, 2)
AERT_DENSE_TILE(1, 3)
AERT_DENSE_TILE(4, 1)
AERT_DENSE_TILE(6, 1)
AERT_DENSE_TILE(4, 3)
AERT_DENSE_TILE(6, 2)
AERT_DENSE_TILE(4, 2)
#if AERT_TILE_ACC >= 24
AERT_DENSE_TILE(1, 4)
AERT_DENSE_TILE(8, 1)
AERT_DENSE_TILE(12, 1)
AERT_DENSE_TILE(4, 4)
AERT_DENSE_TILE(6, 4)
AERT_DENSE_TILE(8, 2)
AERT_DENSE_TILE(8, 3)
AERT_DENSE_TILE(12, 2)
#endif

typedef struct {
  const char *name;
  int mr, nv;
  /* MR x NV; 1 x NV, MR x 1, 1 x 1 and MR x 2 (NULL: none) for the tiles at the edges */
  aert_dense_tile_fn full, last_rows, last_vecs, corner, last_two;
} aert_dense_variant;

#define AERT_DV(MR, NV, TWO)                                                                                      \
  { #MR "x" #NV, MR, NV, aert_dense_tile_##MR##x##NV, aert_dense_tile_1x##NV, aert_dense_tile_##MR##x1, aert_dense_tile_1x1, \
    TWO }
static const aert_dense_variant aert_dense_variants[] = {
#if AERT_TILE_ACC >= 24   /* 32 registers */
    AERT_DV(8, 3, aert_dense_tile_8x2), AERT_DV(6, 4, aert_dense_tile_6x2), AERT_DV(8, 2, NULL),
    AERT_DV(4, 4, aert_dense_tile_4x2), AERT_DV(12, 2, NULL),
#endif
    /* 16 registers: 12 accumulators, the row's vectors, a broadcast */
    AERT_DV(6, 2, NULL), AERT_DV(4, 3, aert_dense_tile_4x2),
};
#undef AERT_DV
#define AERT_DENSE_VARIANTS ((int)(sizeof aert_dense_variants / sizeof aert_dense_variants[0]))

/* A tile cut by the last rows or vectors: narrower tiles, the same sums. */
static inline void aert_dense_edge(const aert_dense_job *g, const aert_dense_variant *t, int i0, int j0, int rows, int nv) {
  for (int jv = 0; jv < nv && rows == t->mr; jv++)
    if (nv - jv >= 2 && t->last_two) t->last_two(g, i0, j0 + jv++ * AERT_LANES);
    else t->last_vecs(g, i0, j0 + jv * AERT_LANES);
  for (int i = i0; i < i0 + rows && rows < t->mr; i++)
    if (nv == t->nv) t->last_rows(g, i, j0);
    else
      for (int jv = 0; jv < nv; jv++) t->corner(g, i, j0 + jv * AERT_LANES);
}

/* c (op)= a b over m rows and n columns with the tiles of variant v, the tiles shared among
 * the threads (each tile whole on one thread). */
static inline void aert_dense_run(const aert_dense_job *g, int m, int n, int v) {
  const aert_dense_variant *t = &aert_dense_variants[v];
  int vecs = n / AERT_LANES, jb = (vecs + t->nv - 1) / t->nv, ib = (m + t->mr - 1) / t->mr;
#pragma omp parallel
  {
#pragma omp for collapse(2) schedule(static) nowait
    for (int bj = 0; bj < jb; bj++)
      for (int bi = 0; bi < ib; bi++) {
        int i0 = bi * t->mr, j0 = bj * t->nv * AERT_LANES, rows = m - i0 < t->mr ? m - i0 : t->mr;
        int nv = vecs - bj * t->nv < t->nv ? vecs - bj * t->nv : t->nv;
        if (rows == t->mr && nv == t->nv) t->full(g, i0, j0);
        else aert_dense_edge(g, t, i0, j0, rows, nv);
      }
#pragma omp for collapse(2) schedule(static)
    for (int i = 0; i < m; i++)
      for (int j = vecs * AERT_LANES; j < n; j++) aert_dense_scalar(g, i, j);
  }
}


/* wt[out, in] = w[in, out]^T by blocks of 8 x 8 read as rows into a local block and
 * written as its columns; the edges value by value. */
static inline void aert_dense_transpose(const aert_real *restrict w, aert_real *restrict wt, int in, int out) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int j0 = 0; j0 < out; j0 += 8)
    for (int i0 = 0; i0 < in; i0 += 8) {
      if (i0 + 8 <= in && j0 + 8 <= out) {
        aert_real b[8][8];
        for (int i = 0; i < 8; i++) memcpy(b[i], w + (long)(i0 + i) * out + j0, sizeof b[i]);
        for (int j = 0; j < 8; j++)
          for (int i = 0; i < 8; i++) wt[(long)(j0 + j) * in + i0 + i] = b[i][j];
      } else
        for (int j = j0; j < j0 + 8 && j < out; j++)
          for (int i = i0; i < i0 + 8 && i < in; i++) wt[(long)j * in + i] = w[(long)i * out + j];
    }
}

/* ---- the layer ------------------------------------------------------------------------ */

/* The variant of each kind of call (0: forward, 1: weight gradient, 2: input gradient) for this shape: the
 * autotune's choice (core/tune.c), the first variant when tuning is off. */
int aert_tune_enabled(const char *build);
int aert_tune_find(const char *build, const char *op, int m, int n, int k, char variant[16]);
void aert_tune_keep(const char *build, const char *op, int m, int n, int k, const char *variant, double ms);

/* The build as the wisdom file names it: the vector ISA the trainer was compiled for and
 * its float width. */
#if defined(__AVX512F__)
#define AERT_BUILD_ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define AERT_BUILD_ISA "avx2"
#elif defined(__AVX__)
#define AERT_BUILD_ISA "avx"
#else
#define AERT_BUILD_ISA "sse2"
#endif
#ifdef AERT_DOUBLE
#define AERT_BUILD AERT_BUILD_ISA " f64"
#else
#define AERT_BUILD AERT_BUILD_ISA " f32"
#endif

static const char *const aert_dense_ops[3] = {"dense_fwd", "dense_dw", "dense_dx"};

/* The job of a call of kind 0 (forward), 1 (dw) or 2 (dx) as aert_dense_run sees it: c is
 * m x n, summed over k; a and b hold what the call reads. */
static inline aert_dense_job aert_dense_shape_job(int kind, int m, int n, int k, const aert_real *a, const aert_real *b,
                                                  aert_real *c) {
  aert_dense_job g = {a, b, NULL, c, k, 1, k, n, n, kind != 0, AERT_ACT_LINEAR, 0};
  if (kind == 1) g.ar = 1, g.ap = m;   /* x^T: x is k rows of m */
  return g;
}

/* Times every variant on a synthetic call of this shape (the best of a few runs each),
 * checks that each computes the bits of the first, and returns the fastest's index. */
static inline int aert_dense_tune(int kind, int m, int n, int k, double *best_ms) {
  long na = (long)m * k, nb = (long)k * n, nc = (long)m * n;
  aert_real *a = malloc(sizeof(aert_real) * na), *b = malloc(sizeof(aert_real) * nb);
  aert_real *c = malloc(sizeof(aert_real) * nc), *ref = malloc(sizeof(aert_real) * nc);
  int best = 0;
  *best_ms = 0;
  if (!a || !b || !c || !ref) goto done;
  for (long i = 0; i < na; i++) a[i] = (aert_real)((i * 7919 % 1000) - 500) / 512;
  for (long i = 0; i < nb; i++) b[i] = (aert_real)((i * 104729 % 1000) - 500) / 512;
  aert_dense_job g = aert_dense_shape_job(kind, m, n, k, a, b, c);
  double runs = 4 + 2e7 / ((double)m * n * k + 1);   /* small shapes: more runs, the same time */
  for (int v = 0; v < AERT_DENSE_VARIANTS; v++) {
    double ms = 1e30;
    for (int r = 0; r < (runs > 50 ? 50 : (int)runs); r++) {
      memset(c, 0, sizeof(aert_real) * nc);
      double t0 = omp_get_wtime();
      aert_dense_run(&g, m, n, v);
      double t = (omp_get_wtime() - t0) * 1e3;
      ms = t < ms ? t : ms;
    }
    if (v == 0) memcpy(ref, c, sizeof(aert_real) * nc);
    else if (memcmp(ref, c, sizeof(aert_real) * nc) != 0) {
      fprintf(stderr, "aec: dense variant %s computes other bits than %s for %s %d x %d x %d; not used\n",
              aert_dense_variants[v].name, aert_dense_variants[0].name, aert_dense_ops[kind], m, n, k);
      continue;
    }
    if (v == 0 || ms < *best_ms) best = v, *best_ms = ms;
  }
done:
  free(a), free(b), free(c), free(ref);
  return best;
}

/* Without tuning: the variant whose whole tiles cover most of the m x n outputs (the edge
 * tiles are narrower and slower), the earlier in the list on a tie. */
static inline int aert_dense_default(int m, int n) {
  int vecs = n / AERT_LANES, best = 0;
  long most = -1;
  for (int v = 0; v < AERT_DENSE_VARIANTS; v++) {
    const aert_dense_variant *t = &aert_dense_variants[v];
    long whole = (long)(m / t->mr * t->mr) * (vecs / t->nv * t->nv);
    if (whole > most) most = whole, best = v;
  }
  return best;
}

/* The variant for this call: remembered per process, else the wisdom file's, else tuned
 * now and written there; without AERT_TUNE=1, aert_dense_default's. */
static inline int aert_dense_choose(int kind, int m, int n, int k) {
  if (!aert_tune_enabled(AERT_BUILD)) return aert_dense_default(m, n);
  char name[16];
  if (aert_tune_find(AERT_BUILD, aert_dense_ops[kind], m, n, k, name))
    for (int v = 0; v < AERT_DENSE_VARIANTS; v++)
      if (strcmp(name, aert_dense_variants[v].name) == 0) return v;
  double ms;
  int v = aert_dense_tune(kind, m, n, k, &ms);
  aert_tune_keep(AERT_BUILD, aert_dense_ops[kind], m, n, k, aert_dense_variants[v].name, ms);
  return v;
}

static inline int aert_dense_pick(int kind, int m, int n, int k) {
  static struct { int kind, m, n, k, v; } seen[64];
  static int nseen;
  for (int i = 0; i < nseen; i++)
    if (seen[i].kind == kind && seen[i].m == m && seen[i].n == n && seen[i].k == k) return seen[i].v;
  int v = aert_dense_choose(kind, m, n, k);
  if (nseen < 64) seen[nseen].kind = kind, seen[nseen].m = m, seen[nseen].n = n, seen[nseen].k = k, seen[nseen++].v = v;
  return v;
}

/* y[rows, out] = act(x[rows, in] w[in, out] + b). */
static inline void aert_dense_forward(const aert_real *x, const aert_real *w, const aert_real *b, aert_real *y, int rows,
                                      int in, int out, aert_act act, aert_real alpha) {
  aert_dense_job g = {x, w, b, y, in, 1, in, out, out, 0, act, alpha};
  aert_dense_run(&g, rows, out, aert_dense_pick(0, rows, out, in));
}

/* dw[in, out] += x[rows, in]^T dy[rows, out]. */
static inline void aert_dense_dw(aert_real *dw, const aert_real *x, const aert_real *dy, int rows, int in, int out) {
  aert_dense_job g = {x, dy, NULL, dw, 1, in, rows, out, out, 1, AERT_ACT_LINEAR, 0};
  aert_dense_run(&g, in, out, aert_dense_pick(1, in, out, rows));
}

/* dx[rows, in] += dy[rows, out] w[in, out]^T, through wt (in * out values of scratch). */
static inline void aert_dense_dx(aert_real *dx, const aert_real *dy, const aert_real *w, aert_real *wt, int rows, int in,
                                 int out) {
  aert_dense_transpose(w, wt, in, out);
  aert_dense_job g = {dy, wt, NULL, dx, out, 1, out, in, in, 1, AERT_ACT_LINEAR, 0};
  aert_dense_run(&g, rows, in, aert_dense_pick(2, rows, in, out));
}

#endif
