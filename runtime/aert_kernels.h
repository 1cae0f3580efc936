/* aert_kernels.h - the loops that generated kernels call with compile-time constant
 * sizes: direct convolutions, bias + activation epilogues and their derivatives, pooling,
 * upsampling, concat, noise, dropout, sampling, batch norm, softmax and the losses.
 * Everything is static inline so that the C compiler specialises each call site.
 * Gradients are accumulated (+=) into buffers the caller zeroed; reductions run in
 * a fixed order in double, so results do not depend on the thread count. */
#ifndef AERT_KERNELS_H
#define AERT_KERNELS_H

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#include "aert.h"

/* Generated code computes in aert_real: aert_real for training, double when a gradient
 * check compiles the same model.c with -DAERT_DOUBLE. tgmath picks expf or exp. */
#ifdef AERT_DOUBLE
typedef double aert_real;
#define AERT_GEMM cblas_dgemm
#else
typedef float aert_real;
#define AERT_GEMM cblas_sgemm
#endif

/* A kernel the generated code calls with constant arguments that choose among its loops
 * (the activation, the product's shape): inlined at every call, so that the choice folds
 * at compile time and only the loops a model uses are compiled (each loop an OpenMP
 * region, which the compiler outlines before it knows the constant). A small model's
 * model.c compiles in half the time. */
#define AERT_FOLDED static inline __attribute__((always_inline))

/* ---- direct convolutions -------------------------------------------------------------
 * y[n, oh, ow, :] (+)= sum over taps (kh, kw) and ci of x[n, oh*s + kh, ow*s + kw, ci] *
 * w[kh, kw, ci, :], where x is the input already padded. For stride s > 1 the padded
 * input is also split into its s x s phases (rows and columns of one remainder modulo s),
 * each hg x wg pixels, so that every tap reads one phase at stride 1; for s = 1 there is
 * one phase, the padded image. Within a phase, output pixel q = oh * wg + ow reads pixel
 * q + (kh / s) * wg + kw / s: one linear index runs along each image, so a tile of
 * consecutive q shares every address offset, whatever row it crosses. A tile keeps mr
 * pixels x nv vectors of output channels in registers, broadcasts one input value per
 * pixel and loads each weight vector once per tile: no im2col copy and no packing, the
 * weights [k, k, ci, co] are already the panel a GEMM kernel would pack. Tile pixels past a
 * row (ow >= wo) land in padding and are not stored; reads run at most mr - 1 pixels past
 * an image, so x needs that much slack after its last image. Each output is summed by one
 * thread in a fixed order: bitwise reproducible, whatever the thread count.
 * Vectors are GCC vector extensions, as wide as the target's registers (AVX-512, AVX, else
 * 128 bits): the build chooses (-march=native for trainers). */
#if defined(__AVX512F__)
#define AERT_VEC_BYTES 64
#define AERT_TILE_ACC 24   /* accumulators kept in the 32 registers */
#elif defined(__AVX__)
#define AERT_VEC_BYTES 32
#define AERT_TILE_ACC 12   /* of 16 */
#else
#define AERT_VEC_BYTES 16  /* SSE2 or any other target: GCC lowers the vector operations */
#define AERT_TILE_ACC 12
#endif
#define AERT_LANES ((int)(AERT_VEC_BYTES / sizeof(aert_real)))
typedef aert_real aert_vec __attribute__((vector_size(AERT_VEC_BYTES)));

static inline aert_vec aert_vload(const aert_real *p) {
  aert_vec v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* ---- masks, select and exp on whole vectors -------------------------------------------
 * exp(x) = 2^n exp(r), r = x - n ln 2 in [-ln2/2, ln2/2], exp(r) by a degree-6 Taylor
 * polynomial (relative error below 2e-7 in float); inputs clamped to the range where the
 * float result is finite and normal. Double builds (the gradient check) take libm's exp
 * lane by lane. */
#ifdef AERT_DOUBLE
typedef long long aert_vmask __attribute__((vector_size(AERT_VEC_BYTES)));
#else
typedef int aert_vmask __attribute__((vector_size(AERT_VEC_BYTES)));
#endif
/* One lane of a mask, and a mask loaded from memory. */
#ifdef AERT_DOUBLE
typedef long long aert_mask_lane;
#else
typedef int aert_mask_lane;
#endif
static inline aert_vmask aert_vload_mask(const aert_mask_lane *p) {
  aert_vmask m;
  memcpy(&m, p, sizeof m);
  return m;
}

/* m ? a : b lane by lane, m from a vector comparison (all ones or all zeros). */
static inline aert_vec aert_vsel(aert_vmask m, aert_vec a, aert_vec b) {
  aert_vmask ia, ib;
  memcpy(&ia, &a, sizeof a);
  memcpy(&ib, &b, sizeof b);
  ia = (ia & m) | (ib & ~m);
  memcpy(&a, &ia, sizeof a);
  return a;
}

#ifdef AERT_DOUBLE
static inline aert_vec aert_vexp(aert_vec x) {
  aert_vec r = {0};   /* every lane set below; gcc -O1 cannot see it through the inlined tile loop */
  for (int l = 0; l < AERT_LANES; l++) r[l] = exp(x[l]);
  return r;
}
#else
static inline aert_vec aert_vexp(aert_vec x) {
  const aert_vec zero = {0}, hi = zero + 88.0f, lo = zero - 87.0f;
  x = aert_vsel(x > hi, hi, x);
  x = aert_vsel(x < lo, lo, x);
  aert_vec t = x * 1.44269504f + 12582912.0f;   /* round(x / ln 2) in the low mantissa bits */
  aert_vec n = t - 12582912.0f;
  aert_vec r = x - n * 0.693145752f - n * 1.42860677e-6f;   /* ln 2 split in two for accuracy */
  aert_vec p = zero + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  aert_vmask e = (__builtin_convertvector(n, aert_vmask) + 127) << 23;
  aert_vec scale;
  memcpy(&scale, &e, sizeof scale);
  return p * scale;
}
#endif

/* The offset, in values, of what tap (kh, kw) reads from a pixel of the phase grid. */
static inline void aert_conv_taps(long *xoff, int k, int s, int hg, int wg, int cin) {
  for (int kh = 0; kh < k; kh++)
    for (int kw = 0; kw < k; kw++)
      xoff[kh * k + kw] = (((long)((kh % s) * s + kw % s) * hg + kh / s) * wg + kw / s) * cin;
}

/* Output channels that are not whole vectors but whole half vectors (8 floats under
 * AVX-512: the 8-channel layers of a small U-Net) run the same tiles on vectors half as
 * wide: on machines that execute AVX-512 as two 256-bit halves (AMD Zen 4) at the same
 * multiply-add rate. */
#define AERT_HLANES (AERT_LANES / 2)
typedef aert_real aert_hvec __attribute__((vector_size(AERT_VEC_BYTES / 2)));

/* The lanes of the vectors a conv with cout output channels runs on (full or half). */
static inline int aert_conv_lanes(int cout) { return cout % AERT_LANES == 0 ? AERT_LANES : AERT_HLANES; }

/* Vectors of output channels per tile: whole vectors of `lanes`, at most four (AVX-512's
 * 32 registers), or three (16 registers). */
static inline int aert_conv_nv(int cout) {
  int vecs = cout / aert_conv_lanes(cout);
#if defined(__AVX512F__)
  return vecs % 4 == 0 ? 4 : vecs % 3 == 0 ? 3 : vecs % 2 == 0 ? 2 : 1;
#else
  /* 16 registers: 12 accumulators, the tile's weight vectors and a broadcast fit only up to
   * three vectors wide; four spilled (the AVX2 U-Net's 128- and 256-channel layers ran at
   * 60-110 GFLOP/s, two wide at 100-170 on a 2-core AMD EPYC) */
  return vecs % 2 == 0 ? 2 : vecs % 3 == 0 ? 3 : 1;
#endif
}

/* ---- thin products: a 1x1 convolution to or from a few channels --------------------
 * OpenBLAS's kernels are a register wide in each dimension of C and waste most of it
 * when one dimension is a few channels (the 6 classes of a segmentation head). These keep
 * the dimension of whole (half) vectors in registers and broadcast the few: F, C = A B
 * with C's n columns few (each row's n values in one vector, k multiply-adds); W, C = A^T B
 * with A's m columns whole vectors and B's n columns few (the weight gradient: k rows of
 * pixels, summed by blocks of AERT_THIN_ROWS and the blocks added in order); X, C = A B^T
 * with C's n columns whole vectors and k few (the input gradient). Every value is summed
 * in a fixed order: the thread count changes nothing. */
#define AERT_THIN_ROWS 4096
#define AERT_DEFINE_THIN(SUF, VEC, L)                                                                                  \
  AERT_FOLDED void aert_thin_f##SUF(int m, int n, int k, const aert_real *restrict a, int lda,                        \
                                    const aert_real *restrict b, int ldb, aert_real beta, aert_real *restrict c,      \
                                    int ldc) {                                                                         \
    VEC bv[k];                                                                                                         \
    for (int q = 0; q < k; q++)                                                                                        \
      for (int j = 0; j < (L); j++) bv[q][j] = j < n ? b[(long)q * ldb + j] : 0;                                     \
    if (k == 8) {                                                                                                      \
      AERT_THIN_F_ROWS(VEC, 8);                                                                                        \
    } else if (k == 16) {                                                                                              \
      AERT_THIN_F_ROWS(VEC, 16);                                                                                       \
    } else {                                                                                                           \
      AERT_THIN_F_ROWS(VEC, k);                                                                                        \
    }                                                                                                                  \
  }                                                                                                                    \
  static inline void aert_thin_w##SUF(int m, int n, int k, const aert_real *restrict a, int lda,                      \
                                      const aert_real *restrict b, int ldb, aert_real beta, aert_real *restrict c,    \
                                      int ldc) {                                                                       \
    int mv = m / (L);                                                                                                  \
    long blocks = ((long)k + AERT_THIN_ROWS - 1) / AERT_THIN_ROWS;                                                     \
    aert_real *part = (aert_real *)malloc(sizeof(aert_real) * (size_t)(blocks * n * m)), one[8 * 4 * (L)];            \
    aert_real tot[8 * 4 * (L)] = {0};   /* the blocks' sums added in block order */                                   \
    /* without memory for every block's sums, the blocks one after another: the same order */                         \
    _Pragma("omp parallel for schedule(static) if (part)") for (long bl = 0; bl < blocks; bl++) {                     \
      aert_real *mine = part ? part + bl * n * m : one;                                                                \
      VEC acc[8][4] = {{{0}}};                                                                                         \
      for (long p = bl * AERT_THIN_ROWS; p < k && p < (bl + 1) * AERT_THIN_ROWS; p++) {                               \
        VEC av[4];                                                                                                     \
        for (int v = 0; v < mv; v++) memcpy(&av[v], a + p * lda + v * (L), sizeof(VEC));                              \
        for (int j = 0; j < n; j++) {                                                                                  \
          aert_real e = b[p * ldb + j];                                                                                \
          for (int v = 0; v < mv; v++) acc[j][v] += e * av[v];                                                         \
        }                                                                                                              \
      }                                                                                                                \
      for (int j = 0; j < n; j++)                                                                                      \
        for (int v = 0; v < mv; v++) memcpy(mine + j * m + v * (L), &acc[j][v], sizeof(VEC));                          \
      for (int e = 0; !part && e < n * m; e++) tot[e] += mine[e];                                                     \
    }                                                                                                                  \
    for (long bl = 0; part && bl < blocks; bl++)                                                                        \
      for (int e = 0; e < n * m; e++) tot[e] += part[bl * n * m + e];                                                 \
    for (int i = 0; i < m; i++)                                                                                        \
      for (int j = 0; j < n; j++)                                                                                      \
        c[(long)i * ldc + j] = beta != 0 ? c[(long)i * ldc + j] + tot[j * m + i] : tot[j * m + i];                     \
    free(part);                                                                                                        \
  }                                                                                                                    \
  AERT_FOLDED void aert_thin_x##SUF(int m, int n, int k, const aert_real *restrict a, int lda,                        \
                                    const aert_real *restrict b, int ldb, aert_real beta, aert_real *restrict c,      \
                                    int ldc) {                                                                         \
    int nv = n / (L);                                                                                                  \
    VEC bv[8][4];                                                                                                      \
    for (int q = 0; q < k; q++)                                                                                        \
      for (int v = 0; v < nv; v++)                                                                                     \
        for (int l = 0; l < (L); l++) bv[q][v][l] = b[(long)(v * (L) + l) * ldb + q];                                 \
    switch (k) {                                                                                                       \
      case 1: AERT_THIN_X_ROWS(VEC, L, 1); break;                                                                      \
      case 2: AERT_THIN_X_ROWS(VEC, L, 2); break;                                                                      \
      case 3: AERT_THIN_X_ROWS(VEC, L, 3); break;                                                                      \
      case 4: AERT_THIN_X_ROWS(VEC, L, 4); break;                                                                      \
      case 5: AERT_THIN_X_ROWS(VEC, L, 5); break;                                                                      \
      case 6: AERT_THIN_X_ROWS(VEC, L, 6); break;                                                                      \
      case 7: AERT_THIN_X_ROWS(VEC, L, 7); break;                                                                      \
      default: AERT_THIN_X_ROWS(VEC, L, 8); break;                                                                     \
    }                                                                                                                  \
  }
/* F's rows, 4 at a time, for k = K: a constant (8 or 16 input channels) inside the OpenMP
 * region where the caller's test makes it one, as for X below. */
#define AERT_THIN_F_ROWS(VEC, K)                                                                                       \
  _Pragma("omp parallel for schedule(static)") for (long i0 = 0; i0 < m; i0 += 4) {                                   \
    VEC acc[4] = {{0}};                                                                                                \
    int rows = m - i0 < 4 ? (int)(m - i0) : 4;                                                                        \
    _Pragma("GCC unroll 16") for (int q = 0; q < (K); q++)                                                             \
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) acc[r] += a[(i0 + (r < rows ? r : 0)) * lda + q] * bv[q];   \
    for (int r = 0; r < rows; r++)                                                                                     \
      for (int j = 0; j < n; j++) {                                                                                    \
        aert_real *o = c + (i0 + r) * ldc + j;                                                                         \
        *o = beta != 0 ? *o + acc[r][j] : acc[r][j];                                                                   \
      }                                                                                                                \
  }
/* X's rows for k = K (1 to 8), a constant inside the OpenMP region: GCC outlines the region
 * before it folds constants, so with k an argument there the loops over k and the vectors
 * ran as loops, the accumulators in memory (the small U-Net's 6-class head: its dx took
 * 1.5 ms of a 50 ms step on the Zen 1 host). thin_x is folded at each call (AERT_FOLDED),
 * so only the case a model uses is compiled. */
#define AERT_THIN_X_ROWS(VEC, L, K)                                                                                    \
  _Pragma("omp parallel for schedule(static)") for (long i = 0; i < m; i++) {                                          \
    VEC acc[4] = {{0}};                                                                                                \
    _Pragma("GCC unroll 8") for (int q = 0; q < (K); q++) {                                                            \
      aert_real e = a[i * lda + q];                                                                                    \
      _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) acc[v] += e * bv[q][v];                                     \
    }                                                                                                                  \
    _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                                             \
      VEC old = {0};                                                                                                   \
      if (beta != 0) memcpy(&old, c + i * ldc + v * (L), sizeof(VEC));                                                \
      old += acc[v];                                                                                                   \
      memcpy(c + i * ldc + v * (L), &old, sizeof(VEC));                                                               \
    }                                                                                                                  \
  }
AERT_DEFINE_THIN(, aert_vec, AERT_LANES)
AERT_DEFINE_THIN(_h, aert_hvec, AERT_HLANES)

/* Which thin product fits (1 F, 2 W, 3 X, 0 none), on full vectors or (*half) half ones. */
static inline int aert_thin_kind(int ta, int tb, int m, int n, int k, int *half) {
  if (!ta && !tb && n >= 2 && n <= AERT_LANES && k <= 256 && m >= 4 * AERT_LANES) {
    *half = n <= AERT_HLANES;
    return 1;
  }
  int kind = ta && !tb && k >= AERT_THIN_ROWS ? 2 : !ta && tb && m >= 4 * AERT_LANES ? 3 : 0;
  int wide = kind == 2 ? m : n, few = kind == 2 ? n : k;   /* whole vectors, and a few */
  if (!kind || few > 8) return 0;
  if (wide % AERT_LANES == 0 && wide <= 4 * AERT_LANES) *half = 0;
  else if (wide % AERT_HLANES == 0 && wide <= 4 * AERT_HLANES) *half = 1;
  else return 0;
  return kind;
}

/* C = op(A) op(B) + beta C, row-major. OpenBLAS runs single-threaded inside; OpenMP
 * threads take disjoint blocks of C's rows (or columns, when C is wide): bitwise
 * reproducible for a thread count (OpenBLAS rounds the edge of a block differently, so
 * another thread count moves the last bits). */
static inline void aert_gemm_blas(int ta, int tb, int m, int n, int k, const aert_real *a, int lda, const aert_real *b,
                                  int ldb, aert_real beta, aert_real *c, int ldc) {
  enum CBLAS_TRANSPOSE tA = ta ? CblasTrans : CblasNoTrans, tB = tb ? CblasTrans : CblasNoTrans;
  int threads = omp_get_max_threads();
  if (threads == 1 || (double)m * n * k < 2e6) {
    AERT_GEMM(CblasRowMajor, tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  int by_rows = m >= n;
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads(), len = by_rows ? m : n;
    int lo = (int)((long)len * t / nt), hi = (int)((long)len * (t + 1) / nt);
    if (hi > lo && by_rows)
      AERT_GEMM(CblasRowMajor, tA, tB, hi - lo, n, k, 1, ta ? a + lo : a + (long)lo * lda, lda, b, ldb, beta,
                c + (long)lo * ldc, ldc);
    else if (hi > lo)
      AERT_GEMM(CblasRowMajor, tA, tB, m, hi - lo, k, 1, a, lda, tb ? b + (long)lo * ldb : b + lo, ldb, beta, c + lo,
                ldc);
  }
}
/* The thin products where they fit (one of the six, chosen at compile time), else OpenBLAS. */
AERT_FOLDED void aert_gemm(int ta, int tb, int m, int n, int k, const aert_real *a, int lda, const aert_real *b, int ldb,
                           aert_real beta, aert_real *c, int ldc) {
  int half, thin = aert_thin_kind(ta, tb, m, n, k, &half);
  if (!thin) aert_gemm_blas(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
  else if (thin == 1) (half ? aert_thin_f_h : aert_thin_f)(m, n, k, a, lda, b, ldb, beta, c, ldc);
  else if (thin == 2) (half ? aert_thin_w_h : aert_thin_w)(m, n, k, a, lda, b, ldb, beta, c, ldc);
  else (half ? aert_thin_x_h : aert_thin_x)(m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* What a tile's stores do besides storing (its acc argument): add to the output, add the
 * bias, apply a ReLU. */
enum { AERT_ACC = 1, AERT_BIAS = 2, AERT_RELU = 4 };

/* The forward register tile on vectors of type VEC (LANES values): mr pixels from q on,
 * nv vectors of output channels. */
#define AERT_DEFINE_CONV_TILE(NAME, VEC, LANES)                                                                    \
  static inline __attribute__((always_inline)) void NAME(const aert_real *restrict x, const aert_real *restrict w, \
                                                         aert_real *restrict y, const long *restrict xoff, int q, \
                                                         int mr, int nv, int taps, int wg, int cin, int cout,     \
                                                         int ho, int wo, long yrow, int ypix,                     \
                                                         const aert_real *restrict bias, int acc) {               \
    VEC c[AERT_TILE_ACC] = {0};                                                                                    \
    for (int t = 0; t < taps; t++) {                                                                               \
      const aert_real *xt = x + (long)q * cin + xoff[t], *wt = w + (long)t * cin * cout;                           \
      for (int ci = 0; ci < cin; ci++, xt++, wt += cout) {                                                         \
        VEC b[4];                                                                                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) memcpy(&b[v], wt + v * (LANES), sizeof(VEC));         \
        _Pragma("GCC unroll 24") for (int j = 0; j < mr; j++) {                                                    \
          aert_real a = xt[(long)j * cin];                                                                         \
          _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) c[j * nv + v] += a * b[v];                          \
        }                                                                                                          \
      }                                                                                                            \
    }                                                                                                              \
    AERT_CONV_TILE_STORE(VEC, LANES)                                                                               \
  }
/* A tile's stores: its mr x nv accumulators c to the output pixels q .. q + mr - 1 of y,
 * those in the padding columns (ow >= wo) or past the last row left out; acc: AERT_ACC adds
 * to y, AERT_BIAS adds the bias (its channels from bias on), then AERT_RELU clamps below at
 * 0, as aert_bias_act would in a pass of its own (the same bits: y + b, then v > 0 ? v : 0),
 * while the outputs are still in registers. Pixel
 * (oh, ow) is at y + oh * yrow + ow * ypix: rows of wo pixels of cout channels (yrow = wo *
 * cout, ypix = cout), or every s-th pixel of every s-th row of a larger image (a phase of
 * a strided conv's dx, stored in place). */
#define AERT_CONV_TILE_STORE(VEC, LANES)                                                                           \
  _Pragma("GCC unroll 24") for (int j = 0; j < mr; j++) {                                                          \
    int oh = (q + j) / wg, ow = (q + j) - oh * wg;                                                                 \
    if (ow >= wo || oh >= ho) continue;                                                                            \
    aert_real *o = y + (long)oh * yrow + (long)ow * ypix;                                                          \
    _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                                         \
      VEC r = c[j * nv + v], old;                                                                                  \
      if (acc & AERT_ACC) memcpy(&old, o + v * (LANES), sizeof old), r += old;                                     \
      if (acc & AERT_BIAS) memcpy(&old, bias + v * (LANES), sizeof old), r += old;                                 \
      if (acc & AERT_RELU) { /* v > 0 ? v : 0 lane by lane: the bits of r where the compare holds */               \
        VEC z = {0};                                                                                               \
        __typeof__(r > z) m = r > z;                                                                               \
        r = (VEC)((__typeof__(m))r & m);                                                                           \
      }                                                                                                            \
      memcpy(o + v * (LANES), &r, sizeof r);                                                                       \
    }                                                                                                              \
  }
AERT_DEFINE_CONV_TILE(aert_conv_tile, aert_vec, AERT_LANES)
AERT_DEFINE_CONV_TILE(aert_conv_htile, aert_hvec, AERT_HLANES)

/* One function per vector width and count: nv vectors of channels, AERT_TILE_ACC / nv
 * pixels (chosen by aert_conv_tile_for below). */
typedef void aert_conv_tile_fn(const aert_real *restrict x, const aert_real *restrict w, aert_real *restrict y,
                               const long *restrict xoff, int q, int taps, int wg, int cin, int cout, int ho, int wo,
                               long yrow, int ypix, const aert_real *restrict bias, int acc);
#define AERT_CONV_TILE(TILE, NV)                                                                                   \
  static void TILE##_##NV(const aert_real *restrict x, const aert_real *restrict w, aert_real *restrict y,         \
                          const long *restrict xoff, int q, int taps, int wg, int cin, int cout, int ho, int wo,   \
                          long yrow, int ypix, const aert_real *restrict bias, int acc) {                          \
    TILE(x, w, y, xoff, q, AERT_TILE_ACC / NV, NV, taps, wg, cin, cout, ho, wo, yrow, ypix, bias, acc);            \
  }
AERT_CONV_TILE(aert_conv_tile, 1)
AERT_CONV_TILE(aert_conv_tile, 2)
AERT_CONV_TILE(aert_conv_tile, 3)
AERT_CONV_TILE(aert_conv_tile, 4)
AERT_CONV_TILE(aert_conv_htile, 1)
AERT_CONV_TILE(aert_conv_htile, 2)
AERT_CONV_TILE(aert_conv_htile, 3)
AERT_CONV_TILE(aert_conv_htile, 4)

/* The same tiles with the pixel stride cin a constant, for the channel counts of narrow
 * layers: the 24 (12) pixels a one- (two-) vector tile broadcasts from are then immediate
 * offsets from one pointer, where a variable stride needs 24 index registers that GCC
 * spills. Measured on AMD EPYC (AVX-512, one thread): one vector 16 -> 16 channels 78 ->
 * 102 GFLOP/s, half vectors 8 -> 8 55 -> 90, two vectors 32 -> 32 100 -> 109; four
 * vectors (6 pixels) gain nothing. The sums run in the same order: the same bits. */
#define AERT_CONV_TILE_CIN(TILE, NV, CIN)                                                                          \
  static void TILE##_##NV##_cin##CIN(const aert_real *restrict x, const aert_real *restrict w, aert_real *restrict y, \
                                     const long *restrict xoff, int q, int taps, int wg, int cin, int cout, int ho,  \
                                     int wo, long yrow, int ypix, const aert_real *restrict bias, int acc) {       \
    (void)cin;                                                                                                     \
    TILE(x, w, y, xoff, q, AERT_TILE_ACC / NV, NV, taps, wg, CIN, cout, ho, wo, yrow, ypix, bias, acc);            \
  }
AERT_CONV_TILE_CIN(aert_conv_tile, 1, 8)
AERT_CONV_TILE_CIN(aert_conv_tile, 1, 16)
AERT_CONV_TILE_CIN(aert_conv_tile, 1, 24)
AERT_CONV_TILE_CIN(aert_conv_tile, 1, 32)
AERT_CONV_TILE_CIN(aert_conv_tile, 1, 64)
AERT_CONV_TILE_CIN(aert_conv_tile, 2, 16)
AERT_CONV_TILE_CIN(aert_conv_tile, 2, 32)
AERT_CONV_TILE_CIN(aert_conv_htile, 1, 4)
AERT_CONV_TILE_CIN(aert_conv_htile, 1, 8)
AERT_CONV_TILE_CIN(aert_conv_htile, 1, 16)
AERT_CONV_TILE_CIN(aert_conv_htile, 1, 32)

/* The tile for (half) vectors, nv of them, over cin input channels. A switch on values
 * that are constants where model.c calls aert_conv_fwd with its static geometry: the
 * compiler keeps only the tiles a model uses. */
static inline __attribute__((always_inline)) aert_conv_tile_fn *aert_conv_tile_for(int half, int nv, int cin) {
  if (half && nv == 1) {
    if (cin == 4) return aert_conv_htile_1_cin4;
    if (cin == 8) return aert_conv_htile_1_cin8;
    if (cin == 16) return aert_conv_htile_1_cin16;
    if (cin == 32) return aert_conv_htile_1_cin32;
  }
  if (half) return nv == 4 ? aert_conv_htile_4 : nv == 3 ? aert_conv_htile_3 : nv == 2 ? aert_conv_htile_2 : aert_conv_htile_1;
  if (nv == 1) {
    if (cin == 8) return aert_conv_tile_1_cin8;
    if (cin == 16) return aert_conv_tile_1_cin16;
    if (cin == 24) return aert_conv_tile_1_cin24;
    if (cin == 32) return aert_conv_tile_1_cin32;
    if (cin == 64) return aert_conv_tile_1_cin64;
  }
  if (nv == 2) {
    if (cin == 16) return aert_conv_tile_2_cin16;
    if (cin == 32) return aert_conv_tile_2_cin32;
  }
  return nv == 4 ? aert_conv_tile_4 : nv == 3 ? aert_conv_tile_3 : nv == 2 ? aert_conv_tile_2 : aert_conv_tile_1;
}

/* The one-vector tile of a 3x3 window at stride 1, by rows of the window (AVX2 builds,
 * AERT_TILE3): a window row's three taps read consecutive pixels, so each input value,
 * broadcast once, serves up to three of the tile's pixels against the row's three weight
 * vectors held in registers: mr + 2 broadcasts for 3 * mr multiply-adds, where the tile
 * above broadcasts once for each. On AMD Zen 1, whose 256-bit loads and broadcasts take a
 * load slot each, at most about one a cycle, the loads bound the tile above, not its
 * multiply-adds (8 -> 8 channels, 64 x 64, 16 images, 2 threads: 45 GFLOP/s, this one 56 of
 * the 80.5 peak). mr is 11: at 12 (12 accumulators, 3 weights and a broadcast) GCC spills;
 * the loop over the mr + 2 broadcasts unrolls whole (up to 32).
 * AVX-512 builds keep the tile above until this one is measured on such a machine. Each
 * output sums its taps in the order (kh, ci, kw): fixed, whatever the thread count. CIN:
 * the pixel stride as a constant (as above), or 0 for cin. */
#if !defined(__AVX512F__)
#define AERT_TILE3 1
#define AERT_TILE3_MR 11
#define AERT_DEFINE_CONV_TILE3(NAME, VEC, LANES, CIN)                                                              \
  static void NAME(const aert_real *restrict x, const aert_real *restrict w, aert_real *restrict y,               \
                   const long *restrict xoff, int q, int taps, int wg, int cin_, int cout, int ho, int wo,          \
                   long yrow, int ypix, const aert_real *restrict bias, int acc) {                                 \
    enum { mr = AERT_TILE3_MR, nv = 1 };                                                                           \
    const int cin = CIN ? CIN : cin_;                                                                              \
    (void)taps;                                                                                                    \
    VEC c[mr] = {0};                                                                                               \
    for (int kh = 0; kh < 3; kh++) {                                                                               \
      const aert_real *xt = x + (long)q * cin + xoff[3 * kh], *wt = w + (long)3 * kh * cin * cout;                 \
      for (int ci = 0; ci < cin; ci++, xt++, wt += cout) {                                                         \
        VEC b[3];                                                                                                  \
        _Pragma("GCC unroll 3") for (int kw = 0; kw < 3; kw++) memcpy(&b[kw], wt + kw * (long)cin * cout, sizeof(VEC)); \
        _Pragma("GCC unroll 32") for (int j = 0; j < mr + 2; j++) {                                             \
          aert_real a = xt[(long)j * cin];                                                                         \
          _Pragma("GCC unroll 3") for (int kw = 0; kw < 3; kw++)                                                   \
            if (j - kw >= 0 && j - kw < mr) c[j - kw] += a * b[kw];                                                \
        }                                                                                                          \
      }                                                                                                            \
    }                                                                                                              \
    AERT_CONV_TILE_STORE(VEC, LANES)                                                                               \
  }
AERT_DEFINE_CONV_TILE3(aert_conv_tile3, aert_vec, AERT_LANES, 0)
AERT_DEFINE_CONV_TILE3(aert_conv_tile3_cin8, aert_vec, AERT_LANES, 8)
AERT_DEFINE_CONV_TILE3(aert_conv_tile3_cin16, aert_vec, AERT_LANES, 16)
AERT_DEFINE_CONV_TILE3(aert_conv_tile3_cin32, aert_vec, AERT_LANES, 32)
AERT_DEFINE_CONV_TILE3(aert_conv_htile3, aert_hvec, AERT_HLANES, 0)
AERT_DEFINE_CONV_TILE3(aert_conv_htile3_cin8, aert_hvec, AERT_HLANES, 8)
#else
#define AERT_TILE3 0
#endif

/* The tile for a k x k window at stride s and the pixels it takes (*mr): by window rows for
 * a 3x3 window at stride 1 on one vector where the build has them, else aert_conv_tile_for. */
static inline __attribute__((always_inline)) aert_conv_tile_fn *aert_conv_tile_ks(int half, int nv, int cin, int k, int s, int *mr) {
#if AERT_TILE3
  if (k == 3 && s == 1 && nv == 1) {
    *mr = AERT_TILE3_MR;
    if (half) return cin == 8 ? aert_conv_htile3_cin8 : aert_conv_htile3;
    return cin == 8 ? aert_conv_tile3_cin8 : cin == 16 ? aert_conv_tile3_cin16 : cin == 32 ? aert_conv_tile3_cin32 : aert_conv_tile3;
  }
#else
  (void)k, (void)s;
#endif
  *mr = AERT_TILE_ACC / nv;
  return aert_conv_tile_for(half, nv, cin);
}

/* The geometry of a direct convolution (one static const struct per conv in the generated
 * code, so that its calls read by name): batch images at a time, stride s, each image's
 * padded input as s * s phases of hg x wg pixels of cin channels, a k x k window, and the
 * output ho x wo pixels of cout channels. */
typedef struct { int batch, s, hg, wg, cin, k, ho, wo, cout; } aert_conv_geom;

/* The input stack of a direct convolution, copied zero-padded into its working buffer: the
 * stack is h x w pixels of c channels per image, made of parts (a folded concat), each a
 * tensor of part.c channels at h / factor x w / factor (a folded nearest upsample) placed
 * at channel part.off. The copy holds batch images, each as s x s phases of hp x wp pixels
 * (phase (a, b): padded rows a, a + s, ... and columns b, b + s, ...; for s = 1 the one
 * padded image), pt rows and pl columns of zeros before the stack, then slack zeroed floats
 * after the last image for the register tiles' reads. One static const struct per conv. */
typedef struct { int c, off, factor; } aert_stack_part;
typedef struct {
  int batch, h, w, c, pt, pl, s, hp, wp;
  long slack;
  int parts;
  const aert_stack_part *part;
} aert_pad_geom;

/* The offset in part p of the stack pixel (th, tw) of image n: the part's own pixel
 * (th / f, tw / f) of its h / f x w / f. */
static inline long aert_stack_at(const aert_pad_geom *g, const aert_stack_part *p, long n, int th, int tw) {
  int f = p->factor;
  return ((n * (g->h / f) + th / f) * (g->w / f) + tw / f) * p->c;
}

/* Copies the stack pixel (th, tw) of image n from the parts src[] into c. */
static inline void aert_stack_pixel(const aert_pad_geom *g, aert_real *restrict c, const aert_real *const *src, long n, int th,
                                    int tw) {
  for (int i = 0; i < g->parts; i++) {
    const aert_stack_part *p = &g->part[i];
    memcpy(c + p->off, src[i] + aert_stack_at(g, p, n, th, tw), sizeof(aert_real) * p->c);
  }
}

/* Writes the padded copy of the stacks of images n0 .. n0 + batch - 1 into xp. */
static inline void aert_pad_stack(const aert_pad_geom *g, aert_real *restrict xp, int n0, const aert_real *const *src) {
  int s = g->s, h = g->h, w = g->w, c = g->c, pt = g->pt, pl = g->pl, hp = g->hp, wp = g->wp, rows = s * s * hp;
  int plain = g->parts == 1 && g->part[0].factor == 1;
  long row = (long)wp * c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < g->batch; n++)
    for (int pr = 0; pr < rows; pr++) {
      int phase = pr / hp, th = pr % hp * s + phase / s - pt;
      aert_real *o = xp + ((long)n * rows + pr) * row;
      if (th < 0 || th >= h) { memset(o, 0, sizeof(aert_real) * row); continue; }
      if (s == 1) {   /* one phase: zero the margins, copy the row */
        memset(o, 0, sizeof(aert_real) * pl * c);
        memset(o + (long)(pl + w) * c, 0, sizeof(aert_real) * (wp - pl - w) * c);
        if (plain) memcpy(o + (long)pl * c, src[0] + ((long)(n0 + n) * h + th) * w * c, sizeof(aert_real) * w * c);
        else
          for (int tw = 0; tw < w; tw++) aert_stack_pixel(g, o + (long)(pl + tw) * c, src, n0 + n, th, tw);
        continue;
      }
      for (int j = 0; j < wp; j++) {
        int tw = j * s + phase % s - pl;
        if (tw < 0 || tw >= w) memset(o + (long)j * c, 0, sizeof(aert_real) * c);
        else aert_stack_pixel(g, o + (long)j * c, src, n0 + n, th, tw);
      }
    }
  memset(xp + (long)g->batch * rows * row, 0, sizeof(aert_real) * g->slack);
}

/* Adds the gradient of the stacks of images n0 .. (dxs: h x w x c per image, unpadded) into
 * the parts' gradients dsrc[] (NULL: the part takes none): an upsampled part receives the
 * sum over its block. One thread per image, so the order of the sums is fixed. */
static inline void aert_unstack(const aert_pad_geom *g, const aert_real *restrict dxs, int n0, aert_real *const *dsrc) {
  int h = g->h, w = g->w, c = g->c;
#pragma omp parallel for schedule(static) if (g->batch > 1)
  for (int n = 0; n < g->batch; n++)
    for (int th = 0; th < h; th++)
      for (int tw = 0; tw < w; tw++) {
        const aert_real *d = dxs + (((long)n * h + th) * w + tw) * c;
        for (int i = 0; i < g->parts; i++) {
          const aert_stack_part *p = &g->part[i];
          if (!dsrc[i]) continue;
          aert_real *t = dsrc[i] + aert_stack_at(g, p, n0 + n, th, tw);
          for (int ch = 0; ch < p->c; ch++) t[ch] += d[p->off + ch];
        }
      }
}

/* x: per image s * s phases of hg x wg pixels (plus slack after the last image); y: ho x wo
 * pixels of cout channels, a multiple of AERT_LANES or AERT_HLANES; acc adds to y instead
 * of overwriting. */
static inline __attribute__((always_inline)) void aert_conv_fwd_epi(const aert_conv_geom *g, const aert_real *restrict x,
                                                                    const aert_real *restrict w, aert_real *restrict y,
                                                                    const aert_real *restrict bias, int acc) {
  int batch = g->batch, s = g->s, hg = g->hg, wg = g->wg, cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr, blocks = cout / lanes / nv;
  aert_conv_tile_fn *tile = aert_conv_tile_ks(lanes != AERT_LANES, nv, cin, k, s, &mr);
  int taps = k * k, span = (ho - 1) * wg + wo, tiles = (span + mr - 1) / mr;
  long xs = (long)s * s * hg * wg * cin, ys = (long)ho * wo * cout, xoff[taps];
  aert_conv_taps(xoff, k, s, hg, wg, cin);
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int t = 0; t < tiles; t++)
      for (int cb = 0; cb < blocks; cb++)
        tile(x + n * xs, w + cb * nv * lanes, y + n * ys + cb * nv * lanes, xoff, t * mr, taps, wg, cin, cout, ho, wo,
             (long)wo * cout, cout, bias ? bias + cb * nv * lanes : NULL, acc);
}
static inline __attribute__((always_inline)) void aert_conv_fwd(const aert_conv_geom *g, const aert_real *restrict x,
                                                                const aert_real *restrict w, aert_real *restrict y, int acc) {
  aert_conv_fwd_epi(g, x, w, y, NULL, acc ? AERT_ACC : 0);
}
/* y = act(conv + b) in the tiles' stores, for the activations they apply (linear, relu): the
 * pass of aert_bias_act over y saved. */
static inline __attribute__((always_inline)) void aert_conv_fwd_bias_act(const aert_conv_geom *g, const aert_real *restrict x,
                                                                         const aert_real *restrict w, aert_real *restrict y,
                                                                         const aert_real *restrict b, aert_act act) {
  aert_conv_fwd_epi(g, x, w, y, b, AERT_BIAS | (act == AERT_ACT_RELU ? AERT_RELU : 0));
}

/* The weight gradient: dw[kh, kw, ci, co] += sum over n, oh, ow of x[n, oh*s + kh, ow*s + kw,
 * ci] * dy[n, oh, ow, co]. The rows of dw fall in groups that read consecutive values of a
 * phase row: for s = 1 the k * cin rows (kw, ci) of one kh, else the cin rows of one tap.
 * A task owns mr consecutive rows of a group and nv vectors of output channels: the
 * forward tiles with pixels and channels exchanged. It sums over the output rows (n, oh)
 * block by block, so that the rows of dy and of x that every task of a thread reads stay
 * in cache (AERT_DW_BLOCK values of the two per block); each task belongs to one thread
 * and adds its blocks in order. Rows of a last block past the group read neighbouring
 * values and are not stored. Fewer than AERT_DW_TASKS tasks also split the output rows
 * into slices summed apart and then added in slice order. The result depends on the
 * shapes only, never on the thread count. */
#define AERT_DW_TASKS 16
#define AERT_DW_BLOCK 16384
/* The weight-gradient tile on vectors of type VEC (LANES values): mr rows of dw from xoff
 * on, nv vectors of output channels, summed over the output rows [a, b). */
#define AERT_DEFINE_CONV_DW_TILE(NAME, VEC, LANES)                                                                   \
  static inline __attribute__((always_inline)) void NAME(const aert_real *restrict x, const aert_real *restrict dy,  \
                                                         aert_real *restrict dw, int ldw, int mr, int nv, long a,   \
                                                         long b, long xs, long xoff, int wg, int cin, int ho,       \
                                                         int wo, int cout, int rows) {                              \
    VEC c[AERT_TILE_ACC] = {0};                                                                                      \
    for (long rr = a; rr < b; rr++) {                                                                                \
      long n = rr / ho;                                                                                              \
      int oh = (int)(rr - n * ho);                                                                                   \
      const aert_real *xr = x + n * xs + xoff + (long)oh * wg * cin;                                                 \
      const aert_real *dr = dy + rr * wo * cout;                                                                     \
      for (int ow = 0; ow < wo; ow++, xr += cin, dr += cout) {                                                       \
        VEC d[4];                                                                                                    \
        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) memcpy(&d[v], dr + v * (LANES), sizeof(VEC));           \
        _Pragma("GCC unroll 24") for (int j = 0; j < mr; j++) {                                                      \
          aert_real e = xr[j];                                                                                       \
          _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) c[j * nv + v] += e * d[v];                            \
        }                                                                                                            \
      }                                                                                                              \
    }                                                                                                                \
    _Pragma("GCC unroll 24") for (int j = 0, je = mr < rows ? mr : rows; j < je; j++)                               \
      _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {                                                         \
        VEC r = c[j * nv + v], old;                                                                                  \
        memcpy(&old, dw + (long)j * ldw + v * (LANES), sizeof old);                                                  \
        r += old;                                                                                                    \
        memcpy(dw + (long)j * ldw + v * (LANES), &r, sizeof r);                                                      \
      }                                                                                                              \
  }
AERT_DEFINE_CONV_DW_TILE(aert_conv_dw_tile, aert_vec, AERT_LANES)
AERT_DEFINE_CONV_DW_TILE(aert_conv_dw_htile, aert_hvec, AERT_HLANES)

typedef void aert_conv_dw_tile_fn(const aert_real *restrict x, const aert_real *restrict dy, aert_real *restrict dw, int ldw,
                                  long a, long b, long xs, long xoff, int wg, int cin, int ho, int wo, int cout, int rows);
#define AERT_CONV_DW_TILE(TILE, NV)                                                                                  \
  static void TILE##_##NV(const aert_real *restrict x, const aert_real *restrict dy, aert_real *restrict dw, int ldw, \
                          long a, long b, long xs, long xoff, int wg, int cin, int ho, int wo, int cout, int rows) {  \
    TILE(x, dy, dw, ldw, AERT_TILE_ACC / NV, NV, a, b, xs, xoff, wg, cin, ho, wo, cout, rows);                         \
  }
AERT_CONV_DW_TILE(aert_conv_dw_tile, 1)
AERT_CONV_DW_TILE(aert_conv_dw_tile, 2)
AERT_CONV_DW_TILE(aert_conv_dw_tile, 3)
AERT_CONV_DW_TILE(aert_conv_dw_tile, 4)
AERT_CONV_DW_TILE(aert_conv_dw_htile, 1)
AERT_CONV_DW_TILE(aert_conv_dw_htile, 2)
AERT_CONV_DW_TILE(aert_conv_dw_htile, 3)
AERT_CONV_DW_TILE(aert_conv_dw_htile, 4)
static inline __attribute__((always_inline)) aert_conv_dw_tile_fn *aert_conv_dw_tile_for(int half, int nv) {
  if (half) return nv == 4 ? aert_conv_dw_htile_4 : nv == 3 ? aert_conv_dw_htile_3 : nv == 2 ? aert_conv_dw_htile_2 : aert_conv_dw_htile_1;
  return nv == 4 ? aert_conv_dw_tile_4 : nv == 3 ? aert_conv_dw_tile_3 : nv == 2 ? aert_conv_dw_tile_2 : aert_conv_dw_tile_1;
}

/* Tiles of fewer rows for groups shorter than a tile: a first layer's few input channels
 * (k * cin rows of dw per kh: 3 for one band, 9 for three, 12 for four) would leave most
 * of a full tile's multiply-adds on rows that are not stored. Each row sums what a full
 * tile's would: the same bits. */
#define AERT_CONV_DW_TILE_MR(TILE, NV, MR)                                                                          \
  static void TILE##_##NV##_mr##MR(const aert_real *restrict x, const aert_real *restrict dy, aert_real *restrict dw,  \
                                   int ldw, long a, long b, long xs, long xoff, int wg, int cin, int ho, int wo,      \
                                   int cout, int rows) {                                                               \
    TILE(x, dy, dw, ldw, MR, NV, a, b, xs, xoff, wg, cin, ho, wo, cout, rows);                                       \
  }
/* the short tiles that fit in 12 accumulators (AVX2's; AVX-512 keeps 24) */
#define AERT_CONV_DW_TILES_MR(TILE)                                                                                  \
  AERT_CONV_DW_TILE_MR(TILE, 1, 3) AERT_CONV_DW_TILE_MR(TILE, 1, 6) AERT_CONV_DW_TILE_MR(TILE, 1, 9)                 \
  AERT_CONV_DW_TILE_MR(TILE, 1, 12) AERT_CONV_DW_TILE_MR(TILE, 2, 3) AERT_CONV_DW_TILE_MR(TILE, 2, 6)                \
  AERT_CONV_DW_TILE_MR(TILE, 3, 3) AERT_CONV_DW_TILE_MR(TILE, 4, 3)
AERT_CONV_DW_TILES_MR(aert_conv_dw_tile)
AERT_CONV_DW_TILES_MR(aert_conv_dw_htile)
#define AERT_DW_SHORT(T, nv, rows)                                                                                   \
  ((nv) == 1 ? ((rows) <= 3 ? T##_1_mr3 : (rows) <= 6 ? T##_1_mr6 : (rows) <= 9 ? T##_1_mr9 : T##_1_mr12)           \
   : (nv) == 2 ? ((rows) <= 3 ? T##_2_mr3 : T##_2_mr6) : (nv) == 3 ? T##_3_mr3 : T##_4_mr3)
/* The tile for groups of `rows` rows: the shortest short tile that holds them where it is
 * shorter than the full tile (mr rows); else the full tile. */
static inline __attribute__((always_inline)) aert_conv_dw_tile_fn *aert_conv_dw_tile_rows(int half, int nv, int rows, int mr) {
  int max = nv == 1 ? 12 : nv == 2 ? 6 : 3, fit = rows <= 3 ? 3 : rows <= 6 ? 6 : rows <= 9 ? 9 : 12;
  if (rows > max || fit >= mr) return aert_conv_dw_tile_for(half, nv);
  return half ? AERT_DW_SHORT(aert_conv_dw_htile, nv, rows) : AERT_DW_SHORT(aert_conv_dw_tile, nv, rows);
}

/* The images of a batch, or the output rows of a few tasks, split into `slices` parts:
 * the count depends on the shapes only. */
static inline int aert_conv_slices(int tasks, long rows) {
  int slices = tasks >= AERT_DW_TASKS ? 1 : (AERT_DW_TASKS + tasks - 1) / tasks;
  return slices > rows ? (int)rows : slices;
}

/* The vectors of output channels a weight-gradient task takes for groups of `group` rows:
 * the forward's, but with 16 registers four where that wastes fewer rows (a strided conv's
 * 32 rows per tap: 11 tiles of 3 where 6 of 6 compute 36; the four dy vectors are read from
 * memory by the multiply-adds, measured as fast as two in registers on AMD Zen 1). */
static inline int aert_conv_dw_nv(int cout, int group) {
  int nv = aert_conv_nv(cout);
#if !defined(__AVX512F__)
  int mr = AERT_TILE_ACC / nv;
  if (nv == 2 && cout / aert_conv_lanes(cout) % 4 == 0 && (group + 2) / 3 * 3 < (group + mr - 1) / mr * mr) nv = 4;
#else
  (void)group;
#endif
  return nv;
}

static inline __attribute__((always_inline)) void aert_conv_dw(const aert_conv_geom *g, const aert_real *restrict x, const aert_real *restrict dy,
                                aert_real *restrict dw) {
  int batch = g->batch, s = g->s, hg = g->hg, wg = g->wg, cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int groups = s == 1 ? k : k * k, group = s == 1 ? k * cin : cin;
  int lanes = aert_conv_lanes(cout), nv = aert_conv_dw_nv(cout, group), mr = AERT_TILE_ACC / nv, lw = nv * lanes, blocks = cout / lw;
  int rblocks = (group + mr - 1) / mr;
  aert_conv_dw_tile_fn *tile = aert_conv_dw_tile_rows(lanes != AERT_LANES, nv, group, mr);
  int tasks = groups * rblocks * blocks;
  long rows_all = (long)batch * ho, per = AERT_DW_BLOCK / ((long)wo * (cin + cout)), xs = (long)s * s * hg * wg * cin;
  long xoff[k * k];
  aert_conv_taps(xoff, k, s, hg, wg, cin);
  per = per < 1 ? 1 : per;
  int slices = aert_conv_slices(tasks, rows_all), units = tasks * slices;
  aert_real part[slices > 1 ? units * mr * lw : 1];
  if (slices > 1) memset(part, 0, sizeof part);
#pragma omp parallel
  {
    int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    for (long blk = 0; blk < rows_all; blk += per)
      for (int u = tid; u < units; u += nt) {
        int task = u / slices, sl = u % slices, g = task / (rblocks * blocks), rb = task / blocks % rblocks;
        int ob = task % blocks, r0 = rb * mr, rows = group - r0, ld = cout;
        long a = rows_all * sl / slices, b = rows_all * (sl + 1) / slices, xo = xoff[s == 1 ? g * k : g] + r0;
        a = a > blk ? a : blk;
        b = b < blk + per ? b : blk + per;
        if (a >= b) continue;
        aert_real *d = dw + ((long)g * group + r0) * cout + ob * lw;
        if (slices > 1) d = part + (long)u * mr * lw, ld = lw, rows = mr;
        const aert_real *e = dy + ob * lw;
        tile(x, e, d, ld, a, b, xs, xo, wg, cin, ho, wo, cout, rows);
      }
  }
  if (slices == 1) return;
  for (int task = 0; task < tasks; task++) {
    int g = task / (rblocks * blocks), rb = task / blocks % rblocks, ob = task % blocks, r0 = rb * mr;
    for (int j = 0; j < mr && r0 + j < group; j++)
      for (int sl = 0; sl < slices; sl++) {
        const aert_real *src = part + ((long)(task * slices + sl) * mr + j) * lw;
        aert_real *d = dw + ((long)g * group + r0 + j) * cout + ob * lw;
        for (int c = 0; c < lw; c++) d[c] += src[c];
      }
  }
}

/* Narrow outputs (cout below a vector, cin whole vectors), the last layer that draws an
 * image: each output is a dot product along the input channels, k * k * cin / lanes
 * vector multiply-adds per pixel, summed across lanes in a fixed order. The weights are
 * first gathered to [co, kh, kw, ci] (wt, k * k * cin * cout values). One accumulator per
 * pixel is a chain of dependent multiply-adds (each waits the FMA's latency, 4-5 cycles),
 * so np pixels of a row run side by side and share each weight load; every pixel sums
 * in the same order whatever np is.
 * The input is either the padded copy (aert_pad_stack: s * s phases of hg x wg pixels) or,
 * at stride 1 where the stack is one plain tensor (aert_pad_plain), that tensor read in
 * place: no copy of the whole input (the last conv's is the largest tensor of many
 * autoencoders). Read in place, a tap that falls on the padding is skipped: it would add
 * 0 * w, and an accumulator that starts at +0 is unchanged by adding +-0, so both read the
 * same bits. aert_narrow_src describes the input: where tap t reads for output pixel
 * (oh, ow) of image n (x + n * xs + xoff[t] + (oh * row + ow) * cin) and the output rows
 * [rlo, rhi) and columns [clo, chi) where it reads the image, not its padding. */
typedef struct {
  const aert_real *x;
  long xs, row;
  long *xoff;                  /* k * k each, held by the caller */
  int *rlo, *rhi, *clo, *chi;
} aert_narrow_src;
#define AERT_NARROW_SRC(src, k)                                                 \
  long src##_xoff[(k) * (k)];                                                   \
  int src##_rect[4 * (k) * (k)];                                                \
  aert_narrow_src src = {.xoff = src##_xoff, .rlo = src##_rect, .rhi = src##_rect + (k) * (k), \
                         .clo = src##_rect + 2 * (k) * (k), .chi = src##_rect + 3 * (k) * (k)}

/* The padded copy: every tap inside, everywhere. */
static inline void aert_narrow_padded(aert_narrow_src *src, const aert_conv_geom *g, const aert_real *x) {
  int s = g->s, k = g->k;
  src->x = x, src->xs = (long)s * s * g->hg * g->wg * g->cin, src->row = g->wg;
  aert_conv_taps(src->xoff, k, s, g->hg, g->wg, g->cin);
  for (int t = 0; t < k * k; t++) src->rlo[t] = 0, src->rhi[t] = g->ho, src->clo[t] = 0, src->chi[t] = g->wo;
}

/* Images n0 .. of the plain stack of p, in place (stride 1). */
static inline void aert_narrow_unpadded(aert_narrow_src *src, const aert_conv_geom *g, const aert_pad_geom *p,
                                        const aert_real *const *stack, int n0) {
  int k = g->k, h = p->h, w = p->w, pt = p->pt, pl = p->pl;
  src->xs = (long)h * w * p->c, src->x = stack[0] + n0 * src->xs, src->row = w;
  for (int kh = 0, t = 0; kh < k; kh++)
    for (int kw = 0; kw < k; kw++, t++) {
      src->xoff[t] = ((long)(kh - pt) * w + kw - pl) * g->cin;
      src->rlo[t] = pt - kh > 0 ? pt - kh : 0, src->rhi[t] = h + pt - kh < g->ho ? h + pt - kh : g->ho;
      src->clo[t] = pl - kw > 0 ? pl - kw : 0, src->chi[t] = w + pl - kw < g->wo ? w + pl - kw : g->wo;
    }
}

static inline aert_real aert_vsum(aert_vec v) {
  aert_real s = 0;
  for (int l = 0; l < AERT_LANES; l++) s += v[l];
  return s;
}

/* np pixels from x0 on, the taps tap[0 .. taps) (their input offsets xoff, weights wc + tap * cin) */
static inline __attribute__((always_inline)) void aert_narrow_pixels(const aert_real *restrict x0, const aert_real *restrict wc,
                                                                     const long *xoff, const int *tap, int taps, int cv, int cin,
                                                                     int np, aert_real *restrict o, int cout) {
  aert_vec acc[8] = {{0}};
  for (int i = 0; i < taps; i++)
    for (int v = 0; v < cv; v++) {
      aert_vec wv = aert_vload(wc + (long)tap[i] * cin + v * AERT_LANES);
      _Pragma("GCC unroll 8") for (int p = 0; p < np; p++)
        acc[p] += aert_vload(x0 + (long)p * cin + xoff[tap[i]] + v * AERT_LANES) * wv;
    }
  _Pragma("GCC unroll 8") for (int p = 0; p < np; p++) o[(long)p * cout] = aert_vsum(acc[p]);
}

static inline void aert_narrow_fwd(const aert_conv_geom *g, const aert_narrow_src *src, const aert_real *restrict w,
                                   aert_real *restrict wt, aert_real *restrict y) {
  int batch = g->batch, cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int cv = cin / AERT_LANES, taps = k * k;
  for (int co = 0; co < cout; co++)
    for (long i = 0; i < (long)taps * cin; i++) wt[co * (long)taps * cin + i] = w[i * cout + co];
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int oh = 0; oh < ho; oh++) {
      int row[taps], nrow = 0, lo = 0, hi = wo;   /* the taps inside at row oh; the columns where all are */
      for (int t = 0; t < taps; t++)
        if (oh >= src->rlo[t] && oh < src->rhi[t]) {
          row[nrow++] = t;
          lo = src->clo[t] > lo ? src->clo[t] : lo, hi = src->chi[t] < hi ? src->chi[t] : hi;
        }
      hi = hi < lo ? lo : hi;
      const aert_real *x0 = src->x + n * src->xs + oh * src->row * cin;
      for (int co = 0; co < cout; co++) {
        const aert_real *wc = wt + (long)co * taps * cin;
        aert_real *o = y + ((long)n * ho + oh) * wo * cout + co;
        /* the columns every tap of the row reads inside, eight and four at a time; the rest
         * (the borders, the last few) one at a time, each with its own taps */
        int ow = lo;
        for (; ow + 8 <= hi; ow += 8) aert_narrow_pixels(x0 + (long)ow * cin, wc, src->xoff, row, nrow, cv, cin, 8, o + (long)ow * cout, cout);
        for (; ow + 4 <= hi; ow += 4) aert_narrow_pixels(x0 + (long)ow * cin, wc, src->xoff, row, nrow, cv, cin, 4, o + (long)ow * cout, cout);
        for (int p = 0; p < wo; p++) {
          if (p == lo) p = ow;
          if (p >= wo) break;
          int px[taps], np = 0;
          for (int i = 0; i < nrow; i++)
            if (p >= src->clo[row[i]] && p < src->chi[row[i]]) px[np++] = row[i];
          aert_narrow_pixels(x0 + (long)p * cin, wc, src->xoff, px, np, cv, cin, 1, o + (long)p * cout, cout);
        }
      }
    }
}

/* Its weight gradient: a task owns one tap, one output channel and up to four vectors of
 * input channels, and sums over the output rows of its slice (the pixels where the tap reads
 * inside); slices are added in order afterwards. */
static inline void aert_narrow_dw(const aert_conv_geom *g, const aert_narrow_src *src, const aert_real *restrict dy,
                                  aert_real *restrict dw) {
  int batch = g->batch, cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int cv = cin / AERT_LANES, vb = (cv + 3) / 4, taps = k * k, tasks = taps * cout * vb;
  long rows_all = (long)batch * ho;
  int slices = aert_conv_slices(tasks, rows_all);
  aert_real part[tasks * slices * 4 * AERT_LANES];
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < tasks * slices; i++) {
    int task = i / slices, sl = i % slices, t = task / (cout * vb), co = task / vb % cout, v0 = task % vb * 4;
    int nvec = cv - v0 < 4 ? cv - v0 : 4, clo = src->clo[t], chi = src->chi[t];
    aert_vec acc[4] = {{0}};
    for (long rr = rows_all * sl / slices; rr < rows_all * (sl + 1) / slices; rr++) {
      long n = rr / ho;
      int oh = (int)(rr - n * ho);
      if (oh < src->rlo[t] || oh >= src->rhi[t]) continue;
      const aert_real *xr = src->x + n * src->xs + src->xoff[t] + ((long)oh * src->row + clo) * cin + v0 * AERT_LANES;
      const aert_real *dr = dy + (rr * wo + clo) * cout + co;
      for (int ow = clo; ow < chi; ow++, xr += cin, dr += cout)
        for (int v = 0; v < nvec; v++) acc[v] += dr[0] * aert_vload(xr + v * AERT_LANES);
    }
    memcpy(part + (long)i * 4 * AERT_LANES, acc, sizeof acc);
  }
  for (int i = 0; i < tasks * slices; i++) {
    int task = i / slices, t = task / (cout * vb), co = task / vb % cout, v0 = task % vb * 4;
    for (int v = 0; v < 4 && v0 + v < cv; v++)
      for (int l = 0; l < AERT_LANES; l++)
        dw[((long)t * cin + (v0 + v) * AERT_LANES + l) * cout + co] += part[((long)i * 4 + v) * AERT_LANES + l];
  }
}

/* From the padded copy x (as aert_conv_fwd reads it). */
static inline void aert_conv_fwd_narrow(const aert_conv_geom *g, const aert_real *restrict x, const aert_real *restrict w,
                                        aert_real *restrict wt, aert_real *restrict y) {
  AERT_NARROW_SRC(src, g->k);
  aert_narrow_padded(&src, g, x);
  aert_narrow_fwd(g, &src, w, wt, y);
}
static inline void aert_conv_dw_narrow(const aert_conv_geom *g, const aert_real *restrict x, const aert_real *restrict dy,
                                       aert_real *restrict dw) {
  AERT_NARROW_SRC(src, g->k);
  aert_narrow_padded(&src, g, x);
  aert_narrow_dw(g, &src, dy, dw);
}

/* The stack is one plain tensor as it is (one part, not upsampled, stride 1): the
 * Winograd and narrow convolutions read it without the padded copy. */
static inline int aert_pad_plain(const aert_pad_geom *p) {
  return p->s == 1 && p->parts == 1 && p->part[0].factor == 1 && p->part[0].off == 0 && p->part[0].c == p->c;
}

/* Images n0 .. of the stack of pad geometry p: in place where it is plain, else from its
 * padded copy in xp. */
static inline void aert_conv_fwd_narrow_stack(const aert_pad_geom *p, aert_real *restrict xp, int n0, const aert_real *const *stack,
                                              const aert_conv_geom *g, const aert_real *restrict w, aert_real *restrict wt,
                                              aert_real *restrict y) {
  AERT_NARROW_SRC(src, g->k);
  if (aert_pad_plain(p)) aert_narrow_unpadded(&src, g, p, stack, n0);
  else aert_pad_stack(p, xp, n0, stack), aert_narrow_padded(&src, g, xp);
  aert_narrow_fwd(g, &src, w, wt, y);
}
static inline void aert_conv_dw_narrow_stack(const aert_pad_geom *p, aert_real *restrict xp, int n0, const aert_real *const *stack,
                                             const aert_conv_geom *g, const aert_real *restrict dy, aert_real *restrict dw) {
  AERT_NARROW_SRC(src, g->k);
  if (aert_pad_plain(p)) aert_narrow_unpadded(&src, g, p, stack, n0);
  else aert_pad_stack(p, xp, n0, stack), aert_narrow_padded(&src, g, xp);
  aert_narrow_dw(g, &src, dy, dw);
}

/* The weights of the convolution that carries dy back to dx (stride 1): w[kh, kw, ci, co]
 * becomes wf[k-1-kh, k-1-kw, co, ci]. */
static inline void aert_conv_flip(const aert_real *restrict w, aert_real *restrict wf, int k, int cin, int cout) {
  for (int t = 0; t < k * k; t++)
    for (int ci = 0; ci < cin; ci++)
      for (int co = 0; co < cout; co++)
        wf[((long)(k * k - 1 - t) * cout + co) * cin + ci] = w[((long)t * cin + ci) * cout + co];
}

/* ---- dx of a strided convolution, as phases -----------------------------------------
 * With stride s, input pixel th = s a + qy (padded row r = th + pt) takes dy only through the
 * window rows kh = r (mod s): kh = py + s dh, py = (qy + pt) % s, from output row
 * a + (qy + pt) / s - dh. So each of the s * s phases (qy, qx) of dx is a stride-1
 * convolution of dy with its own few taps (for 3x3 at stride 2: 1, 2, 2 and 4 of the 9),
 * no multiply-add wasted, and runs on the direct kernel's register tiles (their taps are a
 * list of offsets): over dy copied with d = (k - 1) / s rows and columns of zeros before it
 * (aert_pad_stack, hp x wp), each storing into its own pixels of dx. In place of
 * im2col's columns (k * k times dx) and their col2im scatter. Each value sums its taps in
 * the order (dh, dw), then the channels: fixed, whatever the thread count. cin, cout: the
 * dx conv's (the forward's cout, cin); h x w: dx's pixels; ho x wo: dy's. */
typedef struct { int batch, s, k, pt, pl, h, w, ho, wo, hp, wp, cin, cout; } aert_dx_geom;

/* The rows (or columns) of dx in phase q: th = q, q + s, ... below n. */
static inline int aert_dx_rows(int n, int q, int s) { return (n - q + s - 1) / s; }

/* The taps of phase (qy, qx): offsets into padded dy (xoff, in values) and the forward's
 * window positions (tap: kh * k + kw); returns how many. */
static inline int aert_dx_taps(const aert_dx_geom *g, int qy, int qx, long *xoff, int *tap) {
  int s = g->s, k = g->k, d = (k - 1) / s, n = 0;
  int py = (qy + g->pt) % s, by = (qy + g->pt) / s, px = (qx + g->pl) % s, bx = (qx + g->pl) / s;
  for (int kh = py, dh = 0; kh < k; kh += s, dh++)
    for (int kw = px, dw = 0; kw < k; kw += s, dw++, n++) {
      xoff[n] = ((long)(by - dh + d) * g->wp + bx - dw + d) * g->cin;
      tap[n] = kh * k + kw;
    }
  return n;
}

/* The phases' weights, one after another, each tap's as the tiles read them: wph[t, c, i] =
 * w[kh, kw, i, c] for the dy channel c (the forward's output) and the dx channel i. */
static inline void aert_dx_weights(const aert_dx_geom *g, const aert_real *restrict w, aert_real *restrict wph) {
  long xoff[64];
  int tap[64], cin = g->cin, cout = g->cout;
  for (int qy = 0; qy < g->s; qy++)
    for (int qx = 0; qx < g->s; qx++) {
      int n = aert_dx_taps(g, qy, qx, xoff, tap);
      for (int t = 0; t < n; t++, wph += (long)cin * cout)
        for (int c = 0; c < cin; c++)
          for (int i = 0; i < cout; i++) wph[(long)c * cout + i] = w[((long)tap[t] * cout + i) * cin + c];
    }
}

/* dx (+)= the phases of batch images from padded dy (dyp), their weights wph; each phase's
 * tiles store into dx in place (every s-th pixel of every s-th row), so no phase-major copy
 * is written and read back. acc adds to dx instead of storing. */
static inline __attribute__((always_inline)) void aert_conv_dx_phases(const aert_dx_geom *g, const aert_real *restrict dyp,
                                                                      const aert_real *restrict wph, aert_real *restrict dx,
                                                                      int acc) {
  int batch = g->batch, s = g->s, h = g->h, w = g->w, wp = g->wp, cin = g->cin, cout = g->cout;
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr = AERT_TILE_ACC / nv, blocks = cout / lanes / nv;
  aert_conv_tile_fn *tile = aert_conv_tile_for(lanes != AERT_LANES, nv, cin);
  long xs = (long)g->hp * wp * cin, ys = (long)h * w * cout;
  for (int qy = 0; qy < s; qy++)
    for (int qx = 0; qx < s; qx++) {
      long xoff[64];
      int tap[64], taps = aert_dx_taps(g, qy, qx, xoff, tap), ha = aert_dx_rows(h, qy, s), wa = aert_dx_rows(w, qx, s);
      int tiles = ((ha - 1) * wp + wa + mr - 1) / mr;
      aert_real *y = dx + ((long)qy * w + qx) * cout;
#pragma omp parallel for collapse(2) schedule(static)
      for (int n = 0; n < batch; n++)
        for (int t = 0; t < tiles; t++)
          for (int cb = 0; cb < blocks; cb++)
            tile(dyp + n * xs, wph + cb * nv * lanes, y + n * ys + cb * nv * lanes, xoff, t * mr, taps, wp, cin, cout, ha, wa,
                 (long)s * w * cout, s * cout, NULL, acc ? AERT_ACC : 0);
      wph += (long)taps * cin * cout;
    }
}

/* ---- a 3x3 convolution of a 2x nearest-neighbour upsample, as phases ---------------
 * Output pixel (2a + py, 2b + px) of conv3x3(upsample2(x)) ('same' padding, stride 1)
 * reads only the small pixels a - 1 .. a + 1 of x: for each phase p = 2 py + px it is a 2x2
 * convolution of x padded by 1, from padded row a + py and column b + px, whose taps are
 * sums of the 3x3 taps (tap kh falls on phase tap th = (py + kh + 1) / 2 - py). The
 * generated code runs the four phases as one 2x2 convolution with 4 * cout output channels
 * (phase-major) on (h + 1) x (w + 1) positions r = a + py, c = b + px: z, and scatters
 * z back to the large image; its gradient is the same positions read the other way (s).
 * 2.25 times fewer multiply-adds than the 3x3 window over the upsampled image. */
static inline int aert_up2_tap(int phase, int k) { return (phase + k + 1) / 2 - phase; }

/* w2[th, tw, ci, p * cout + co] = the sum of the 3x3 taps w[kh, kw, ci, co] that phase p
 * folds onto (th, tw). */
static inline void aert_up2_weights(const aert_real *restrict w, aert_real *restrict w2, int cin, int cout) {
  long n = (long)cin * cout;
  memset(w2, 0, sizeof(aert_real) * 16 * n);
  for (int p = 0; p < 4; p++)
    for (int kh = 0; kh < 3; kh++)
      for (int kw = 0; kw < 3; kw++) {
        int t = aert_up2_tap(p / 2, kh) * 2 + aert_up2_tap(p % 2, kw);
        for (long i = 0; i < n; i++) w2[((long)t * cin + i / cout) * 4 * cout + p * cout + i % cout] += w[(kh * 3 + kw) * n + i];
      }
}

/* The weight gradient folded back: dw[kh, kw, ci, co] += dw2 of the phase tap it fell on,
 * summed over the phases in order. */
static inline void aert_up2_fold(const aert_real *restrict dw2, aert_real *restrict dw, int cin, int cout) {
  long n = (long)cin * cout;
  for (int kh = 0; kh < 3; kh++)
    for (int kw = 0; kw < 3; kw++)
      for (long i = 0; i < n; i++) {
        aert_real s = 0;
        for (int p = 0; p < 4; p++) {
          int t = aert_up2_tap(p / 2, kh) * 2 + aert_up2_tap(p % 2, kw);
          s += dw2[((long)t * cin + i / cout) * 4 * cout + p * cout + i % cout];
        }
        dw[(kh * 3 + kw) * n + i] += s;
      }
}

/* y[n, 2a + py, 2b + px, co] (+)= z[n, a + py, b + px, p * cout + co] for batch images of
 * h x w small pixels; acc adds (to the plain views' part of a mixed stack). */
static inline void aert_up2_unshuffle(const aert_real *restrict z, aert_real *restrict y, int batch, int h, int w, int cout,
                                      int acc) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int oh = 0; oh < 2 * h; oh++) {
      int a = oh / 2, py = oh % 2;
      for (int ow = 0; ow < 2 * w; ow++) {
        int b = ow / 2, px = ow % 2;
        aert_real *o = y + (((long)n * 2 * h + oh) * 2 * w + ow) * cout;
        const aert_real *i = z + (((long)n * (h + 1) + a + py) * (w + 1) + b + px) * 4 * cout + (py * 2 + px) * cout;
        if (acc)
          for (int c = 0; c < cout; c++) o[c] += i[c];
        else memcpy(o, i, sizeof(aert_real) * cout);
      }
    }
}

/* Rows [from, from + n) of every tap of a [taps, src_cin, cout] weight tensor copied (add:
 * added) to rows [to, to + n) of a [taps, dst_cin, cout] one: a stack's weights split by
 * the views that read it, and their gradients put back. */
static inline void aert_conv_rows(const aert_real *restrict src, int src_cin, int from, aert_real *restrict dst, int dst_cin,
                                  int to, int n, int taps, int cout, int add) {
  for (int t = 0; t < taps; t++) {
    const aert_real *a = src + ((long)t * src_cin + from) * cout;
    aert_real *b = dst + ((long)t * dst_cin + to) * cout;
    if (add)
      for (long i = 0; i < (long)n * cout; i++) b[i] += a[i];
    else memcpy(b, a, sizeof(aert_real) * n * cout);
  }
}

/* Its transpose for dy: s[n, r, c, p * cout + co] = dy[n, 2(r - py) + py, 2(c - px) + px, co],
 * zero where r - py or c - px falls outside the small image; then slack zeroed values. */
static inline void aert_up2_shuffle(const aert_real *restrict dy, aert_real *restrict s, int batch, int h, int w, int cout,
                                    long slack) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int r = 0; r <= h; r++)
      for (int c = 0; c <= w; c++)
        for (int p = 0; p < 4; p++) {
          int a = r - p / 2, b = c - p % 2;
          aert_real *o = s + (((long)n * (h + 1) + r) * (w + 1) + c) * 4 * cout + p * cout;
          if (a < 0 || a >= h || b < 0 || b >= w) memset(o, 0, sizeof(aert_real) * cout);
          else memcpy(o, dy + (((long)n * 2 * h + 2 * a + p / 2) * 2 * w + 2 * b + p % 2) * cout, sizeof(aert_real) * cout);
        }
  memset(s + (long)batch * (h + 1) * (w + 1) * 4 * cout, 0, sizeof(aert_real) * slack);
}

static inline aert_real aert_act_apply(aert_act act, aert_real alpha, aert_real v) {
  switch (act) {
  case AERT_ACT_RELU: return v > 0 ? v : 0;
  case AERT_ACT_LEAKY_RELU: return v > 0 ? v : alpha * v;
  case AERT_ACT_ELU: return v > 0 ? v : alpha * expm1(v);
  case AERT_ACT_SIGMOID: return 1 / (1 + exp(-v));
  case AERT_ACT_TANH: return tanh(v);
  default: return v;
  }
}

/* The derivative expressed through the activation's output y. */
static inline aert_real aert_act_grad(aert_act act, aert_real alpha, aert_real y) {
  switch (act) {
  case AERT_ACT_RELU: return y > 0 ? 1 : 0;
  case AERT_ACT_LEAKY_RELU: return y > 0 ? 1 : alpha;
  case AERT_ACT_ELU: return y > 0 ? 1 : y + alpha;
  case AERT_ACT_SIGMOID: return y * (1 - y);
  case AERT_ACT_TANH: return 1 - y * y;
  default: return 1;
  }
}

/* Runs LOOP(A) with the activation A a constant, so that aert_act_apply and aert_act_grad
 * fold to one expression and each loop vectorises. */
#define AERT_ACT_DISPATCH(act, LOOP)                          \
  switch (act) {                                              \
  case AERT_ACT_RELU: LOOP(AERT_ACT_RELU); break;             \
  case AERT_ACT_LEAKY_RELU: LOOP(AERT_ACT_LEAKY_RELU); break; \
  case AERT_ACT_ELU: LOOP(AERT_ACT_ELU); break;               \
  case AERT_ACT_SIGMOID: LOOP(AERT_ACT_SIGMOID); break;       \
  case AERT_ACT_TANH: LOOP(AERT_ACT_TANH); break;             \
  default: LOOP(AERT_ACT_LINEAR); break;                      \
  }

/* y[r][c] = act(y[r][c] + b[c]) over rows x cols (b may be NULL). */
AERT_FOLDED void aert_bias_act(aert_real *restrict y, const aert_real *restrict b, long rows, int cols, aert_act act,
                                 aert_real alpha) {
#define AERT_BIAS_ACT(A)                                                                      \
  _Pragma("omp parallel for schedule(static)") for (long r = 0; r < rows; r++)              \
    for (int c = 0; c < cols; c++) y[r * cols + c] = aert_act_apply(A, alpha, y[r * cols + c] + (b ? b[c] : 0));
  AERT_ACT_DISPATCH(act, AERT_BIAS_ACT)
#undef AERT_BIAS_ACT
}

/* d = d * act'(y) in place: the gradient before the activation. */
AERT_FOLDED void aert_act_backward_inplace(aert_real *restrict d, const aert_real *restrict y, long n, aert_act act,
                                             aert_real alpha) {
  if (act == AERT_ACT_LINEAR) return;
#define AERT_ACT_BWD(A) \
  _Pragma("omp parallel for schedule(static)") for (long i = 0; i < n; i++) d[i] *= aert_act_grad(A, alpha, y[i]);
  AERT_ACT_DISPATCH(act, AERT_ACT_BWD)
#undef AERT_ACT_BWD
}

/* A standalone activation: y = act(x); dx += dy * act'(y). */
AERT_FOLDED void aert_act_forward(const aert_real *restrict x, aert_real *restrict y, long n, aert_act act, aert_real alpha) {
#define AERT_ACT_FWD(A) \
  _Pragma("omp parallel for schedule(static)") for (long i = 0; i < n; i++) y[i] = aert_act_apply(A, alpha, x[i]);
  AERT_ACT_DISPATCH(act, AERT_ACT_FWD)
#undef AERT_ACT_FWD
}
AERT_FOLDED void aert_act_backward(aert_real *restrict dx, const aert_real *restrict dy, const aert_real *restrict y, long n,
                                     aert_act act, aert_real alpha) {
#define AERT_ACT_BWD(A)                                                           \
  _Pragma("omp parallel for schedule(static)") for (long i = 0; i < n; i++)     \
    dx[i] += dy[i] * aert_act_grad(A, alpha, y[i]);
  AERT_ACT_DISPATCH(act, AERT_ACT_BWD)
#undef AERT_ACT_BWD
}

/* db[c] += sum over rows of d[r][c], in row order (one pass over d, in blocks of 256
 * columns so that the sums stay in registers and cache). */
static inline void aert_bias_grad(aert_real *restrict db, const aert_real *restrict d, long rows, int cols) {
  for (int c0 = 0; c0 < cols; c0 += 256) {
    int n = cols - c0 < 256 ? cols - c0 : 256;
    double acc[256] = {0};
    for (long r = 0; r < rows; r++) {
      const aert_real *row = d + r * cols + c0;
      for (int c = 0; c < n; c++) acc[c] += row[c];
    }
    for (int c = 0; c < n; c++) db[c0 + c] += (aert_real)acc[c];
  }
}

/* acc[c] += the sum over rows of d[., c] (rows x cols, in double). With 8 or 16 columns (a
 * vector or two) the even and the odd rows apart in registers, then added: two chains of
 * additions at once where one would wait on the other (2x on 8 columns); wider rows already
 * have as many independent columns. */
static inline __attribute__((always_inline)) void aert_col_sums_pair(double *restrict acc, const aert_real *restrict d, long rows,
                                                                     int cols) {
  double a0[cols], a1[cols];
  for (int c = 0; c < cols; c++) a0[c] = a1[c] = 0;
  long r = 0;
  for (; r + 1 < rows; r += 2)
    for (int c = 0; c < cols; c++) a0[c] += d[r * cols + c], a1[c] += d[(r + 1) * cols + c];
  if (r < rows)
    for (int c = 0; c < cols; c++) a0[c] += d[r * cols + c];
  for (int c = 0; c < cols; c++) acc[c] += a0[c] + a1[c];
}
static inline void aert_col_sums(double *restrict acc, const aert_real *restrict d, long rows, int cols) {
  if (cols == 8) aert_col_sums_pair(acc, d, rows, 8);
  else if (cols == 16) aert_col_sums_pair(acc, d, rows, 16);
  else
    for (long r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) acc[c] += d[r * cols + c];
}

/* d = d * act'(y) in place over rows x cols, and db[c] += the sum over the rows of the new
 * d[., c] (the bias gradient), in one pass over d: the rows in slices of AERT_BIAS_ROWS,
 * each slice summed in double by one thread, the slices' sums added in slice order (the
 * same bits for any thread count). Without memory for every slice's sums, the slices one
 * after another: the same sums in the same order. */
#define AERT_BIAS_ROWS 2048
AERT_FOLDED void aert_act_bias_backward(aert_real *restrict d, const aert_real *restrict y, aert_real *restrict db, long rows,
                                          int cols, aert_act act, aert_real alpha) {
  long slices = (rows + AERT_BIAS_ROWS - 1) / AERT_BIAS_ROWS;
  double *part = (double *)malloc(sizeof(double) * (size_t)(slices * cols)), tot[cols];
  memset(tot, 0, sizeof tot);
#define AERT_ACT_BIAS(A)                                                                                  \
  _Pragma("omp parallel for schedule(static) if (part)") for (long sl = 0; sl < slices; sl++) {           \
    double one[part ? 1 : cols], *restrict acc = part ? part + sl * cols : one;                           \
    for (int c = 0; c < cols; c++) acc[c] = 0;                                                            \
    long end = (sl + 1) * AERT_BIAS_ROWS < rows ? (sl + 1) * AERT_BIAS_ROWS : rows;                       \
    /* a few rows (4 KiB) at a time through the activation as one flat loop, then summed by               \
     * column from L1: each loop vectorises whatever the column count */                                  \
    long step = cols < 1024 ? 1024 / cols : 1;                                                            \
    for (long r0 = sl * AERT_BIAS_ROWS; r0 < end; r0 += step) {                                           \
      long nr = end - r0 < step ? end - r0 : step;                                                        \
      aert_real *restrict dr = d + r0 * cols;                                                             \
      const aert_real *restrict yr = y + r0 * cols;                                                       \
      for (long i = 0; i < nr * cols; i++) dr[i] *= aert_act_grad(A, alpha, yr[i]);                       \
      aert_col_sums(acc, dr, nr, cols);                                                                   \
    }                                                                                                     \
    if (!part)                                                                                            \
      for (int c = 0; c < cols; c++) tot[c] += acc[c];                                                    \
  }
  AERT_ACT_DISPATCH(act, AERT_ACT_BIAS)
#undef AERT_ACT_BIAS
  if (part)
    for (long sl = 0; sl < slices; sl++)
      for (int c = 0; c < cols; c++) tot[c] += part[sl * cols + c];
  for (int c = 0; c < cols; c++) db[c] += (aert_real)tot[c];
  free(part);
}

/* ---- pooling, upsampling, concat, add -------------------------------------------- */

/* The forward runs along the channels innermost (contiguous: it vectorises), each
 * window's taps in row order; rows of output pixels in parallel. */
static inline void aert_pool_forward(const aert_real *restrict x, aert_real *restrict y, int n, int hi, int wi, int c,
                                     int k, int s, int ho, int wo, int is_max) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)n * ho; i++) {
    int b = (int)(i / ho), oh = (int)(i % ho);
    for (int ow = 0; ow < wo; ow++) {
      aert_real *restrict o = y + (i * wo + ow) * c;
      int ch = 0;
      for (; is_max && ch + AERT_LANES <= c; ch += AERT_LANES) {   /* whole vectors in registers */
        aert_vec m = (aert_vec){0} - INFINITY;   /* as the scalar loop: a NaN never wins */
        for (int kh = 0; kh < k; kh++)
          for (int kw = 0; kw < k; kw++) {
            aert_vec v = aert_vload(x + (((long)b * hi + oh * s + kh) * wi + ow * s + kw) * c + ch);
            m = aert_vsel(v > m, v, m);
          }
        memcpy(o + ch, &m, sizeof m);
      }
      if (ch == c) continue;
      for (int ch = 0; ch < c; ch++) o[ch] = is_max ? -INFINITY : 0;
      for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
          const aert_real *restrict v = x + (((long)b * hi + oh * s + kh) * wi + ow * s + kw) * c;
          if (is_max)
            for (int ch = 0; ch < c; ch++) o[ch] = v[ch] > o[ch] ? v[ch] : o[ch];
          else
            for (int ch = 0; ch < c; ch++) o[ch] += v[ch];
        }
      if (!is_max)
        for (int ch = 0; ch < c; ch++) o[ch] /= (aert_real)(k * k);
    }
  }
}

/* Max pooling routes the gradient to the first maximum of each window. Windows that do not
 * overlap (stride >= size) write disjoint pixels: their rows run in parallel. The channels
 * of a pixel go side by side (done: channels whose maximum was found). */
static inline void aert_pool_backward(aert_real *restrict dx, const aert_real *restrict dy, const aert_real *restrict x,
                                      const aert_real *restrict y, int n, int hi, int wi, int c, int k, int s, int ho,
                                      int wo, int is_max) {
#pragma omp parallel for schedule(static) if (s >= k)
  for (long i = 0; i < (long)n * ho; i++) {
    int b = (int)(i / ho), oh = (int)(i % ho);
    aert_mask_lane done[c];   /* all ones where the channel's maximum was found */
    for (int ow = 0; ow < wo; ow++) {
      const long o = (((long)b * ho + oh) * wo + ow) * c;
      for (int ch = 0; ch < c; ch++) done[ch] = 0;
      for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
          const long at = (((long)b * hi + oh * s + kh) * wi + ow * s + kw) * c;
          if (!is_max) {
            for (int ch = 0; ch < c; ch++) dx[at + ch] += dy[o + ch] / (aert_real)(k * k);
            continue;
          }
          int ch = 0;
          for (; ch + AERT_LANES <= c; ch += AERT_LANES) {   /* whole vectors: masks */
            aert_vec xv = aert_vload(x + at + ch), yv = aert_vload(y + o + ch), d = aert_vload(dx + at + ch);
            aert_vmask hit = (xv == yv) & ~aert_vload_mask(done + ch);
            d = aert_vsel(hit, d + aert_vload(dy + o + ch), d);
            memcpy(dx + at + ch, &d, sizeof d);
            aert_vmask was = aert_vload_mask(done + ch) | hit;
            memcpy(done + ch, &was, sizeof was);
          }
          for (; ch < c; ch++) {
            int hit = !done[ch] & (x[at + ch] == y[o + ch]);
            dx[at + ch] = hit ? dx[at + ch] + dy[o + ch] : dx[at + ch];
            done[ch] |= hit ? -1 : 0;
          }
        }
    }
  }
}

static inline void aert_upsample_forward(const aert_real *restrict x, aert_real *restrict y, int n, int hi, int wi, int c,
                                         int f) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)n * hi * f; i++) {
    int b = (int)(i / (hi * f)), oh = (int)(i % (hi * f));
    for (int ow = 0; ow < wi * f; ow++)
      memcpy(y + (i * wi * f + ow) * c, x + (((long)b * hi + oh / f) * wi + ow / f) * c, sizeof(aert_real) * (size_t)c);
  }
}
static inline void aert_upsample_backward(aert_real *restrict dx, const aert_real *restrict dy, int n, int hi, int wi, int c,
                                          int f) {
  for (long i = 0; i < (long)n * hi * f; i++) {
    int b = (int)(i / (hi * f)), oh = (int)(i % (hi * f));
    for (int ow = 0; ow < wi * f; ow++)
      for (int ch = 0; ch < c; ch++) dx[(((long)b * hi + oh / f) * wi + ow / f) * c + ch] += dy[(i * wi * f + ow) * c + ch];
  }
}

/* Bilinear upsampling by f with PyTorch's align_corners=False: output pixel o reads the
 * source coordinate (o + 0.5) / f - 0.5, clamped at 0, between its two neighbours (the
 * second clamped at the edge). aert_bilinear_tap gives the lower neighbour, whether
 * there is an upper one, and the upper one's weight. */
static inline int aert_bilinear_tap(int o, int f, int in, int *step, aert_real *frac) {
  aert_real src = ((aert_real)o + (aert_real)0.5) / (aert_real)f - (aert_real)0.5;
  if (src < 0) src = 0;
  int i0 = (int)src;
  *step = i0 < in - 1;
  *frac = src - (aert_real)i0;
  return i0;
}
static inline void aert_upsample_bilinear_forward(const aert_real *restrict x, aert_real *restrict y, int n, int hi, int wi,
                                                  int c, int f) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)n * hi * f; i++) {
    int b = (int)(i / (hi * f)), oh = (int)(i % (hi * f)), sh, sw;
    aert_real lh, lw;
    int h0 = aert_bilinear_tap(oh, f, hi, &sh, &lh);
    const aert_real *r0 = x + ((long)b * hi + h0) * wi * c, *r1 = r0 + (long)sh * wi * c;
    for (int ow = 0; ow < wi * f; ow++) {
      int w0 = aert_bilinear_tap(ow, f, wi, &sw, &lw);
      const aert_real *a = r0 + (long)w0 * c, *bb = r1 + (long)w0 * c;
      aert_real *o = y + (i * wi * f + ow) * c;
      for (int ch = 0; ch < c; ch++)
        o[ch] = (1 - lh) * ((1 - lw) * a[ch] + lw * a[sw * c + ch]) + lh * ((1 - lw) * bb[ch] + lw * bb[sw * c + ch]);
    }
  }
}
/* One thread per image: the four taps of neighbouring outputs overlap within an image. */
static inline void aert_upsample_bilinear_backward(aert_real *restrict dx, const aert_real *restrict dy, int n, int hi, int wi,
                                                   int c, int f) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n; b++)
    for (int oh = 0; oh < hi * f; oh++) {
      int sh, sw;
      aert_real lh, lw;
      int h0 = aert_bilinear_tap(oh, f, hi, &sh, &lh);
      aert_real *r0 = dx + ((long)b * hi + h0) * wi * c, *r1 = r0 + (long)sh * wi * c;
      for (int ow = 0; ow < wi * f; ow++) {
        int w0 = aert_bilinear_tap(ow, f, wi, &sw, &lw);
        const aert_real *g = dy + (((long)b * hi * f + oh) * wi * f + ow) * c;
        aert_real *a = r0 + (long)w0 * c, *bb = r1 + (long)w0 * c;
        for (int ch = 0; ch < c; ch++) {
          a[ch] += (1 - lh) * (1 - lw) * g[ch];
          a[sw * c + ch] += (1 - lh) * lw * g[ch];
          bb[ch] += lh * (1 - lw) * g[ch];
          bb[sw * c + ch] += lh * lw * g[ch];
        }
      }
    }
}

/* One input of a concatenation: its channels go to [off, off + c) of y's ctot. */
static inline void aert_concat_forward(const aert_real *restrict x, aert_real *restrict y, long pixels, int c, int off,
                                       int ctot) {
  for (long p = 0; p < pixels; p++) memcpy(y + p * ctot + off, x + p * c, sizeof(aert_real) * (size_t)c);
}
static inline void aert_concat_backward(aert_real *restrict dx, const aert_real *restrict dy, long pixels, int c, int off,
                                        int ctot) {
  for (long p = 0; p < pixels; p++)
    for (int ch = 0; ch < c; ch++) dx[p * c + ch] += dy[p * ctot + off + ch];
}

static inline void aert_accumulate(aert_real *restrict dx, const aert_real *restrict dy, long n) {
  for (long i = 0; i < n; i++) dx[i] += dy[i];
}

/* ---- training-only randomness: noise, dropout, sampling ------------------------- */

/* base: the global index of element 0 (a data-parallel rank's slice of the global batch), so
 * that noise, dropout and samples are drawn by global index, as in one process. */
static inline void aert_noise_forward(const aert_real *restrict x, aert_real *restrict y, long n, aert_real stddev, aert_real lo,
                                      aert_real hi, int training, uint64_t seed, uint64_t base) {
  for (long i = 0; i < n; i++) {
    aert_real v = training ? x[i] + stddev * aert_normal(seed, base + (uint64_t)i) : x[i];
    y[i] = training ? (v < lo ? lo : v > hi ? hi : v) : v;
  }
}
/* The clipped values pass no gradient. */
static inline void aert_noise_backward(aert_real *restrict dx, const aert_real *restrict dy, const aert_real *restrict y, long n,
                                       aert_real lo, aert_real hi) {
  for (long i = 0; i < n; i++) dx[i] += y[i] > lo && y[i] < hi ? dy[i] : 0;
}

static inline void aert_dropout_forward(const aert_real *restrict x, aert_real *restrict y, long n, aert_real rate, int training,
                                        uint64_t seed, uint64_t base) {
  aert_real keep = 1 / (1 - rate);
  for (long i = 0; i < n; i++) y[i] = !training ? x[i] : aert_uniform(seed, base + (uint64_t)i) >= rate ? x[i] * keep : 0;
}
static inline void aert_dropout_backward(aert_real *restrict dx, const aert_real *restrict dy, long n, aert_real rate,
                                         uint64_t seed, uint64_t base) {
  aert_real keep = 1 / (1 - rate);
  for (long i = 0; i < n; i++) dx[i] += aert_uniform(seed, base + (uint64_t)i) >= rate ? dy[i] * keep : 0;
}

/* z = mu + exp(logvar / 2) * eps in training, z = mu otherwise. Each eps is drawn by its
 * index (a counter-based generator), so threads share the values in any split. */
static inline void aert_sample_forward(const aert_real *restrict mu, const aert_real *restrict lv, aert_real *restrict z, long n,
                                       int training, uint64_t seed, uint64_t base) {
#pragma omp parallel for schedule(static) if (n >= 2048)
  for (long i = 0; i < n; i++) z[i] = training ? mu[i] + exp((aert_real)0.5 * lv[i]) * aert_normal(seed, base + (uint64_t)i) : mu[i];
}
static inline void aert_sample_backward(aert_real *restrict dmu, aert_real *restrict dlv, const aert_real *restrict dz,
                                        const aert_real *restrict lv, long n, uint64_t seed, uint64_t base) {
#pragma omp parallel for schedule(static) if (n >= 2048)
  for (long i = 0; i < n; i++) {
    if (dmu) dmu[i] += dz[i];
    if (dlv) dlv[i] += dz[i] * (aert_real)0.5 * exp((aert_real)0.5 * lv[i]) * aert_normal(seed, base + (uint64_t)i);
  }
}

/* ---- batch normalisation over every axis but the last --------------------------- */

/* stats: [mean c | inv_std c]. Frozen or eval: running statistics, not the batch's. */
static inline void aert_batchnorm_forward(const aert_real *restrict x, aert_real *restrict y, const aert_real *restrict gamma,
                                          const aert_real *restrict beta, aert_real *restrict rmean, aert_real *restrict rvar,
                                          aert_real *restrict stats, long rows, int c, aert_real momentum, aert_real eps,
                                          int use_batch) {
  for (int ch = 0; ch < c; ch++) {
    double mean = rmean[ch], var = rvar[ch];
    if (use_batch) {
      double s = 0, ss = 0;
      for (long r = 0; r < rows; r++) s += x[r * c + ch];
      mean = s / (double)rows;
      for (long r = 0; r < rows; r++) { double d = x[r * c + ch] - mean; ss += d * d; }
      var = ss / (double)rows;
      rmean[ch] = (aert_real)((1 - momentum) * rmean[ch] + momentum * mean);
      rvar[ch] = (aert_real)((1 - momentum) * rvar[ch] + momentum * var * (double)rows / (double)(rows > 1 ? rows - 1 : 1));
    }
    stats[ch] = (aert_real)mean;
    stats[c + ch] = (aert_real)(1.0 / sqrt(var + eps));
  }
  for (long r = 0; r < rows; r++)
    for (int ch = 0; ch < c; ch++)
      y[r * c + ch] = gamma[ch] * (x[r * c + ch] - stats[ch]) * stats[c + ch] + beta[ch];
}
static inline void aert_batchnorm_backward(aert_real *restrict dx, aert_real *restrict dgamma, aert_real *restrict dbeta,
                                           const aert_real *restrict dy, const aert_real *restrict x,
                                           const aert_real *restrict gamma, const aert_real *restrict stats, long rows, int c,
                                           int use_batch) {
  for (int ch = 0; ch < c; ch++) {
    double sd = 0, sdx = 0;
    aert_real mean = stats[ch], inv = stats[c + ch];
    for (long r = 0; r < rows; r++) { sd += dy[r * c + ch]; sdx += dy[r * c + ch] * (x[r * c + ch] - mean) * inv; }
    if (dgamma) { dgamma[ch] += (aert_real)sdx; dbeta[ch] += (aert_real)sd; }
    if (!dx) continue;
    for (long r = 0; r < rows; r++) {
      aert_real xhat = (x[r * c + ch] - mean) * inv;
      dx[r * c + ch] += use_batch ? gamma[ch] * inv * (aert_real)(dy[r * c + ch] - sd / (double)rows - xhat * sdx / (double)rows)
                                  : gamma[ch] * inv * dy[r * c + ch];
    }
  }
}

/* ---- softmax over the last axis ------------------------------------------------- */

static inline void aert_softmax_row(const aert_real *restrict x, aert_real *restrict p, int c) {
  aert_real mx = x[0];
  for (int i = 1; i < c; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0;
  for (int i = 0; i < c; i++) { p[i] = exp(x[i] - mx); s += p[i]; }
  for (int i = 0; i < c; i++) p[i] = (aert_real)(p[i] / s);
}
static inline void aert_softmax_forward(const aert_real *restrict x, aert_real *restrict y, long rows, int c) {
  for (long r = 0; r < rows; r++) aert_softmax_row(x + r * c, y + r * c, c);
}
static inline void aert_softmax_backward(aert_real *restrict dx, const aert_real *restrict dy, const aert_real *restrict y,
                                         long rows, int c) {
  for (long r = 0; r < rows; r++) {
    double dot = 0;
    for (int i = 0; i < c; i++) dot += dy[r * c + i] * y[r * c + i];
    for (int i = 0; i < c; i++) dx[r * c + i] += y[r * c + i] * (aert_real)(dy[r * c + i] - dot);
  }
}

/* ---- losses: each returns its value and, given d, adds weight * dL/da ---------- */
/* denom: the number of values averaged over (mean) or the batch (sum per example). */

static inline aert_real aert_loss_mse(const aert_real *restrict a, const aert_real *restrict b, aert_real *restrict da,
                             aert_real *restrict db, long n, double denom, aert_real weight) {
  double s = 0;
  for (long i = 0; i < n; i++) { double e = (double)a[i] - b[i]; s += e * e; }
  aert_real g = (aert_real)(2.0 * weight / denom);
  for (long i = 0; da && i < n; i++) da[i] += g * (a[i] - b[i]);
  for (long i = 0; db && i < n; i++) db[i] -= g * (a[i] - b[i]);
  return (aert_real)(s / denom);
}

/* Binary cross-entropy of probabilities p against t; logs clamped at -100 as PyTorch does.
 * Forward (dp NULL) returns the value: sums of fixed blocks of 4096 values, computed in
 * parallel and added in block order, so the result does not depend on the thread count.
 * Backward (dp given) only adds the gradient and returns 0. */
static inline aert_real aert_loss_bce(const aert_real *restrict p, const aert_real *restrict t, aert_real *restrict dp,
                                      long n, double denom, aert_real weight) {
  if (dp) {
    aert_real g = (aert_real)(weight / denom);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
      aert_real q = p[i] * (1 - p[i]);
      dp[i] += g * (p[i] - t[i]) / (q > (aert_real)1e-12 ? q : (aert_real)1e-12);
    }
    return 0;
  }
  long blocks = (n + 4095) / 4096;
  double sums[blocks];
#pragma omp parallel for schedule(static)
  for (long b = 0; b < blocks; b++) {
    double s = 0;
    for (long i = b * 4096; i < n && i < (b + 1) * 4096; i++) {
      aert_real lp = p[i] > 0 ? log(p[i]) : -100, lq = p[i] < 1 ? log(1 - p[i]) : -100;
      s -= t[i] * (double)(lp < -100 ? -100 : lp) + (1 - t[i]) * (double)(lq < -100 ? -100 : lq);
    }
    sums[b] = s;
  }
  double s = 0;
  for (long b = 0; b < blocks; b++) s += sums[b];
  return (aert_real)(s / denom);
}

/* Focal loss (Lin et al. 2017) of softmax(logits) per row against class indices t
 * (negative or >= c: skipped), with optional class weights: sum(w_t * -(1 - p_t)^gamma *
 * log p_t) / sum(w_t), or divided by the batch with per_example_sum. gamma = 0 is softmax
 * cross-entropy, PyTorch's weighted mean of cross_entropy(weight, ignore_index); softmax_xent
 * is this loss at gamma 0. Forward (dl NULL) returns the value; backward only adds the
 * gradient and returns 0. *used gets this batch's divisor; global > 0 replaces it in
 * backward (data-parallel ranks divide by the global one / ranks).
 * Rows go AERT_LANES at a time, lane l holding row r0 + l (exp in vectors, aert_vexp), in
 * blocks of AERT_LOSS_ROWS rows side by side; each block's sums in double are added in
 * block order, so the value does not depend on the thread count. */
#define AERT_LOSS_ROWS 4096

/* Rows r0..r0+n-1 (n <= AERT_LANES): forward (dl NULL) adds their -w_t (1 - p_t)^gamma
 * log p_t to *s; backward adds scale * w_t * -f * (p_i - [i = t]) to dl. Returns their
 * weight sum. */
static inline double aert_focal_rows(const aert_real *restrict logits, const aert_real *restrict t,
                                     aert_real *restrict dl, long r0, int n, int c, const aert_real *restrict cw,
                                     double gamma, double scale, double *s) {
  aert_vec v[AERT_MAX_CLASSES], mx, sum = {0};
  for (int i = 0; i < c; i++)
    for (int l = 0; l < AERT_LANES; l++) v[i][l] = l < n ? logits[(r0 + l) * c + i] : 0;
  mx = v[0];
  for (int i = 1; i < c; i++) mx = aert_vsel(v[i] > mx, v[i], mx);
  for (int i = 0; i < c; i++) {
    v[i] = aert_vexp(v[i] - mx);
    sum += v[i];
  }
  double wsum = 0;
  aert_vec g = {0}, inv = 1 / sum;
  int kl[AERT_LANES];
  for (int l = 0; l < n; l++) {
    int k = kl[l] = (int)t[r0 + l];
    if (k < 0 || k >= c) continue;
    double w = cw ? cw[k] : 1.0;
    wsum += w;
    aert_real pk = v[k][l] * inv[l];
    if (!dl) {
      double pt = pk > (aert_real)1e-30 ? pk : (aert_real)1e-30;
      *s -= w * (gamma > 0 ? pow(1 - pt, gamma) : 1.0) * log(pt);
      continue;
    }
    /* dL/dz_i = -f * (p_i - [i = k]) with f = dL/dp_t * p_t = gamma (1-p_t)^(gamma-1) p_t log p_t - (1-p_t)^gamma */
    double f = -1;
    if (gamma > 0) {
      double pt = pk > (aert_real)1e-30 ? pk : (aert_real)1e-30, q = 1 - pt;
      f = q > 0 ? gamma * pow(q, gamma - 1) * pt * log(pt) - pow(q, gamma) : 0;
    }
    g[l] = (aert_real)(w * scale * -f);
  }
  for (int i = 0; dl && i < c; i++) {
    aert_vec hot = {0};
    for (int l = 0; l < n; l++) hot[l] = kl[l] == i;
    aert_vec d = g * (v[i] * inv - hot);
    for (int l = 0; l < n; l++)
      if (kl[l] >= 0 && kl[l] < c) dl[(r0 + l) * c + i] += d[l];
  }
  return wsum;
}

/* Block b's rows: their weight sum (and forward, their loss sum in *s). */
static inline double aert_focal_block(const aert_real *restrict logits, const aert_real *restrict t,
                                      aert_real *restrict dl, long rows, long b, int c, const aert_real *restrict cw,
                                      double gamma, double scale, double *s) {
  double wsum = 0;
  *s = 0;
  for (long r = b * AERT_LOSS_ROWS; r < rows && r < (b + 1) * AERT_LOSS_ROWS; r += AERT_LANES)
    wsum += aert_focal_rows(logits, t, dl, r, rows - r < AERT_LANES ? (int)(rows - r) : AERT_LANES, c, cw, gamma,
                            scale, s);
  return wsum;
}

static inline aert_real aert_loss_focal(const aert_real *restrict logits, const aert_real *restrict t, aert_real *restrict dl,
                                        long rows, int c, const aert_real *restrict cw, double gamma, int per_example_sum,
                                        int batch, aert_real weight, aert_real *restrict p, double *used,
                                        double global) {
  (void)p;
  long blocks = (rows + AERT_LOSS_ROWS - 1) / AERT_LOSS_ROWS;
  double sums[blocks > 0 ? blocks : 1], wsums[blocks > 0 ? blocks : 1], s = 0, wsum = 0;
#pragma omp parallel for schedule(static)
  for (long b = 0; b < blocks; b++) {
    if (!dl) {
      wsums[b] = aert_focal_block(logits, t, NULL, rows, b, c, cw, gamma, 0, &sums[b]);
      continue;
    }
    wsums[b] = 0;   /* the backward pass needs the weight sum first */
    for (long r = b * AERT_LOSS_ROWS; r < rows && r < (b + 1) * AERT_LOSS_ROWS; r++) {
      int k = (int)t[r];
      if (k >= 0 && k < c) wsums[b] += cw ? cw[k] : 1.0;
    }
  }
  for (long b = 0; b < blocks; b++) s += dl ? 0 : sums[b], wsum += wsums[b];
  double denom = per_example_sum ? batch : wsum;
  *used = denom;
  if (global > 0 && dl) denom = global;   /* a rank of a data-parallel run: the global normaliser */
  if (denom <= 0 || !dl) return denom > 0 ? (aert_real)(s / denom) : 0;
#pragma omp parallel for schedule(static)
  for (long b = 0; b < blocks; b++) aert_focal_block(logits, t, dl, rows, b, c, cw, gamma, weight / denom, &sums[b]);
  return 0;
}

/* Dice, or with jaccard the Jaccard (IoU) loss, of softmax(logits) against class indices t,
 * over the whole batch as segmentation_models_pytorch computes them: for each class i, over
 * the rows not skipped, I = sum p_i [t = i] and S = sum p_i + [t = i]; the score is
 * (2I + smooth) / max(S + smooth, 1e-7), or (I + smooth) / max(S - I + smooth, 1e-7); the
 * loss is sum_i w_i present_i (1 - score_i) / sum_i w_i, where present_i says that class i
 * occurs in t (smp zeroes the loss of absent classes). At most 64 classes. */
static inline aert_real aert_loss_overlap(const aert_real *restrict logits, const aert_real *restrict t, aert_real *restrict dl,
                                          long rows, int c, const aert_real *restrict cw, int jaccard, double smooth,
                                          aert_real weight, aert_real *restrict p) {
  double inter[64] = {0}, card[64] = {0}, count[64] = {0}, dnum[64], dden[64], wsum = 0, loss = 0;
  for (long r = 0; r < rows; r++) {
    int k = (int)t[r];
    if (k < 0 || k >= c) continue;
    aert_softmax_row(logits + r * c, p, c);
    for (int i = 0; i < c; i++) card[i] += p[i];
    inter[k] += p[k];
    count[k] += 1;
  }
  for (int i = 0; i < c; i++) wsum += cw ? cw[i] : 1.0;
  if (wsum <= 0) return 0;
  for (int i = 0; i < c; i++) {   /* score = num / den; dnum, dden: dL/dnum and dL/dden */
    double s = card[i] + count[i], num = (jaccard ? 1 : 2) * inter[i] + smooth;
    double den = (jaccard ? s - inter[i] : s) + smooth, d = den > 1e-7 ? den : 1e-7;
    double a = (cw ? cw[i] : 1.0) * (count[i] > 0) / wsum;
    loss += a * (1 - num / d);
    dnum[i] = -a / d;
    dden[i] = den > 1e-7 ? a * num / (d * d) : 0;
  }
  if (!dl) return (aert_real)loss;
  for (long r = 0; r < rows; r++) {
    int k = (int)t[r];
    if (k < 0 || k >= c) continue;
    aert_softmax_row(logits + r * c, p, c);
    double g[64], dot = 0;   /* dL/dp_i of this row, then through the softmax */
    for (int i = 0; i < c; i++) {
      int y = i == k;
      g[i] = dnum[i] * (jaccard ? y : 2 * y) + dden[i] * (jaccard ? 1 - y : 1);
      dot += g[i] * p[i];
    }
    for (int i = 0; i < c; i++) dl[r * c + i] += weight * (aert_real)(p[i] * (g[i] - dot));
  }
  return 0;
}

/* L1 activity: sum |z| per example, averaged over the batch. */
static inline aert_real aert_loss_l1(const aert_real *restrict z, aert_real *restrict dz, long n, int batch, aert_real weight) {
  double s = 0;
  for (long i = 0; i < n; i++) s += fabs(z[i]);
  for (long i = 0; dz && i < n; i++) dz[i] += weight / batch * (aert_real)((z[i] > 0) - (z[i] < 0));
  return (aert_real)(s / batch);
}

/* KL(rho || mean activation of each unit over the batch), summed over units. */
static inline aert_real aert_loss_kl_sparsity(const aert_real *restrict z, aert_real *restrict dz, int batch, int units, aert_real rho,
                                     aert_real weight) {
  double s = 0;
  for (int j = 0; j < units; j++) {
    double m = 0;
    for (int b = 0; b < batch; b++) m += z[(long)b * units + j];
    m /= batch;
    if (m < 1e-7) m = 1e-7;
    if (m > 1 - 1e-7) m = 1 - 1e-7;
    s += rho * log(rho / m) + (1 - rho) * log((1 - rho) / (1 - m));
    aert_real g = (aert_real)(weight * (-rho / m + (1 - rho) / (1 - m)) / batch);
    for (int b = 0; dz && b < batch; b++) dz[(long)b * units + j] += g;
  }
  return (aert_real)s;
}

/* KL(N(mu, exp(logvar)) || N(0, 1)) summed over latent units, averaged over the batch. */
static inline aert_real aert_loss_kl_normal(const aert_real *restrict mu, const aert_real *restrict lv, aert_real *restrict dmu,
                                   aert_real *restrict dlv, long n, int batch, aert_real weight) {
  double s = 0;
  for (long i = 0; i < n; i++) s += -0.5 * (1.0 + lv[i] - (double)mu[i] * mu[i] - exp(lv[i]));
  for (long i = 0; dmu && i < n; i++) dmu[i] += weight * mu[i] / batch;
  for (long i = 0; dlv && i < n; i++) dlv[i] += weight * -(aert_real)0.5 * (1 - exp(lv[i])) / batch;
  return (aert_real)(s / batch);
}

/* L2 weight decay term: sum of squares of a weight tensor. */
static inline aert_real aert_loss_l2(const aert_real *restrict w, aert_real *restrict dw, long n, aert_real weight) {
  double s = 0;
  for (long i = 0; i < n; i++) s += (double)w[i] * w[i];
  for (long i = 0; dw && i < n; i++) dw[i] += 2 * weight * w[i];
  return (aert_real)s;
}

#include "aert_wino.h"
#include "aert_dense.h"

#endif
