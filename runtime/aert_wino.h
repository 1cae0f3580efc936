/* aert_wino.h - 3x3 convolutions of stride 1 as Winograd F(2x2, 3x3): each 2x2 block of
 * output pixels from a 4x4 block of input pixels with 16 multiply-adds per input and output
 * channel where the direct convolution spends 36 (2.25x fewer); and 2x2 ones (the phases of
 * a 3x3 convolution over a 2x upsample) as F(2x2, 2x2): 9 where direct spends 16 (1.78x
 * fewer). Included by aert_kernels.h.
 *
 * With d a 4x4 input block and g a 3x3 filter, the 2x2 output block is A^T [(G g G^T) .
 * (B^T d B)] A (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The 16 products of a block, summed over the input channels, are 16 small matrix products
 * (blocks x cin) (cin x cout): the forward register tiles run them as 1x1 convolutions.
 * The blocks of an image are taken a run at a time, so that a run's transformed input and
 * products stay in the cache (AERT_WINO_BYTES, on the stack of the thread that owns the
 * run). Every output value is computed by one thread in a fixed order: the same bits for
 * any thread count. The bits differ from the direct convolution's (another summation).
 * The weight gradient (aert_conv_wino_dw, below) sums the same products over the blocks. */
#ifndef AERT_WINO_H
#define AERT_WINO_H

/* Where it pays, by the vectors the trainer is built for (on a 2-core AMD EPYC, two threads,
 * against the direct kernels with their padded copy, batches of 4 images one at a time):
 * AVX-512 from 16 input and output channels (16 -> 16 1.2x, 32 -> 32 1.7x, 128 -> 128 2.0x;
 * with 8 the transforms cost what the products save), its weight gradient from 64 (64 -> 64
 * 1.3x, 64 -> 128 1.5x, 128 -> 128 1.3x; 32 -> 64 1.1x, 32 -> 32 0.75x); with 16 registers
 * (AVX2 and below) from 32 (16 -> 16 0.85x, 16 -> 32 1.05x, 32 -> 32 1.2x, 64 -> 64 1.4x)
 * and the weight gradient from 64 (64 -> 64 1.1x, 64 -> 128 1.3x, 128 -> 128 1.2x; 32 -> 64
 * 1.0x). Elsewhere aert_conv_wino and aert_conv_wino_dw run the direct kernels: the compiler
 * emits them wherever some machine takes them (16 channels), the build picks. A -D of any
 * minimum overrides it (the gradient check forces the Winograd kernels on any build). */
#ifndef AERT_WINO_MIN
#if defined(__AVX512F__)
#define AERT_WINO_MIN 16
#else
#define AERT_WINO_MIN 32
#endif
#endif
#ifndef AERT_WINO_DW_MIN
#define AERT_WINO_DW_MIN 64
#endif
/* F(2x2, 2x2) (the phases of an upsampled conv, 4 x cout output channels) from 16 with
 * AVX-512 like F(2x2, 3x3) (32 -> 64 1.4x, 128 -> 256 1.4x, 256 -> 512 1.45x), with AVX2 from
 * 32 (32 -> 64 1.2x, 64 -> 128 1.1x, 256 -> 512 1.3x; 32 -> 32 0.8x); its weight gradient from
 * 64 with AVX-512 (64 -> 128 1.2x, 128 -> 256 1.7x; 32 -> 64 0.6x), from 128 with AVX2
 * (64 -> 128 0.8x, 128 -> 256 1.4x, 256 -> 512 1.5x). */
#ifndef AERT_WINO2_MIN
#if defined(__AVX512F__)
#define AERT_WINO2_MIN AERT_WINO_MIN
#else
#define AERT_WINO2_MIN 32
#endif
#endif
#ifndef AERT_WINO2_DW_MIN
#if defined(__AVX512F__)
#define AERT_WINO2_DW_MIN AERT_WINO_DW_MIN
#else
#define AERT_WINO2_DW_MIN 128
#endif
#endif
/* -DAERT_NO_WINOGRAD: the direct kernels everywhere (the CUDA target's tests compare its
 * kernels, which sum as the direct ones do, with a CPU build of this kind: Adam turns the
 * rounding-level differences of Winograd's sums into parameter steps over ten steps). */
#ifdef AERT_NO_WINOGRAD
#define AERT_WINO_ANY 0
#else
#define AERT_WINO_ANY 1
#endif
static inline int aert_wino_pays(int k, int cin, int cout) {
  int min = k == 2 ? AERT_WINO2_MIN : AERT_WINO_MIN;
  return AERT_WINO_ANY && cin >= min && cout >= min;
}
static inline int aert_wino_dw_pays(int k, int cin, int cout) {
  int min = k == 2 ? AERT_WINO2_DW_MIN : AERT_WINO_DW_MIN;
  return AERT_WINO_ANY && cin >= min && cout >= min;
}


/* the bytes of one run's transformed input and products (16 x blocks x (cin + cout) values) */
#define AERT_WINO_BYTES (256 * 1024)
/* the weight gradient's runs, shared by the threads (on the stack of the one that calls) */
#define AERT_WINO_DW_BYTES (512 * 1024)

/* ---- the transforms, per VEC (a vector of n channels, or one value) --------------------
 * F(2x2, 3x3): 4x4 blocks, 16 positions; F(2x2, 2x2) (a 2x2 window: the phases of a
 * convolution over a 2x upsample): 3x3 blocks, 9 positions, with
 *   B^T = [1 -1 0; 0 1 0; 0 -1 1], G = [1 0; 1 1; 0 1], A^T = [1 1 0; 0 1 1]
 * (m0 = (d0 - d1) g0, m1 = d1 (g0 + g1), m2 = (d2 - d1) g1; y0 = m0 + m1, y1 = m1 + m2).
 * The 2D transforms apply the 1D ones to the rows, then to the columns. */

/* G g G^T of the k x k filters at w + i (taps plane values apart) into u (positions plane apart) */
#define AERT_WINO_WEIGHTS3(VEC, w, u, plane, i)                                                                       \
  do {                                                                                                               \
    VEC g_[9], a_[4][3], h_ = {0};                                                                                   \
    h_ += (aert_real)0.5;                                                                                            \
    for (int t_ = 0; t_ < 9; t_++) memcpy(&g_[t_], (w) + t_ * (plane) + (i), sizeof(VEC));                           \
    for (int c_ = 0; c_ < 3; c_++) {                                                                                 \
      a_[0][c_] = g_[c_];                                                                                            \
      a_[1][c_] = (g_[c_] + g_[3 + c_] + g_[6 + c_]) * h_;                                                           \
      a_[2][c_] = (g_[c_] - g_[3 + c_] + g_[6 + c_]) * h_;                                                           \
      a_[3][c_] = g_[6 + c_];                                                                                        \
    }                                                                                                                \
    for (int r_ = 0; r_ < 4; r_++) {                                                                                 \
      VEC e_[4] = {a_[r_][0], (a_[r_][0] + a_[r_][1] + a_[r_][2]) * h_, (a_[r_][0] - a_[r_][1] + a_[r_][2]) * h_,    \
                   a_[r_][2]};                                                                                       \
      for (int c_ = 0; c_ < 4; c_++) memcpy((u) + (r_ * 4 + c_) * (plane) + (i), &e_[c_], sizeof(VEC));              \
    }                                                                                                                \
  } while (0)
#define AERT_WINO_WEIGHTS2(VEC, w, u, plane, i)                                                                       \
  do {                                                                                                               \
    VEC g_[4], a_[3][2];                                                                                             \
    for (int t_ = 0; t_ < 4; t_++) memcpy(&g_[t_], (w) + t_ * (plane) + (i), sizeof(VEC));                           \
    for (int c_ = 0; c_ < 2; c_++) a_[0][c_] = g_[c_], a_[1][c_] = g_[c_] + g_[2 + c_], a_[2][c_] = g_[2 + c_];      \
    for (int r_ = 0; r_ < 3; r_++) {                                                                                 \
      VEC e_[3] = {a_[r_][0], a_[r_][0] + a_[r_][1], a_[r_][1]};                                                     \
      for (int c_ = 0; c_ < 3; c_++) memcpy((u) + (r_ * 3 + c_) * (plane) + (i), &e_[c_], sizeof(VEC));              \
    }                                                                                                                \
  } while (0)

/* B^T d B of the block at xp (pixels px values apart, rows ws) into v (positions vs apart) */
#define AERT_WINO_IN3(VEC, xp, px, ws, v, vs)                                                                         \
  do {                                                                                                               \
    VEC d_[4][4], t_[4][4];                                                                                          \
    for (int r_ = 0; r_ < 4; r_++)                                                                                   \
      for (int c_ = 0; c_ < 4; c_++) memcpy(&d_[r_][c_], (xp) + r_ * (ws) + c_ * (px), sizeof(VEC));                \
    for (int c_ = 0; c_ < 4; c_++) {                                                                                 \
      t_[0][c_] = d_[0][c_] - d_[2][c_];                                                                             \
      t_[1][c_] = d_[1][c_] + d_[2][c_];                                                                             \
      t_[2][c_] = d_[2][c_] - d_[1][c_];                                                                             \
      t_[3][c_] = d_[1][c_] - d_[3][c_];                                                                             \
    }                                                                                                                \
    for (int r_ = 0; r_ < 4; r_++) {                                                                                 \
      VEC e_[4] = {t_[r_][0] - t_[r_][2], t_[r_][1] + t_[r_][2], t_[r_][2] - t_[r_][1], t_[r_][1] - t_[r_][3]};      \
      for (int c_ = 0; c_ < 4; c_++) memcpy((v) + (r_ * 4 + c_) * (vs), &e_[c_], sizeof(VEC));                      \
    }                                                                                                                \
  } while (0)
#define AERT_WINO_IN2(VEC, xp, px, ws, v, vs)                                                                         \
  do {                                                                                                               \
    VEC d_[3][3], t_[3][3];                                                                                          \
    for (int r_ = 0; r_ < 3; r_++)                                                                                   \
      for (int c_ = 0; c_ < 3; c_++) memcpy(&d_[r_][c_], (xp) + r_ * (ws) + c_ * (px), sizeof(VEC));                \
    for (int c_ = 0; c_ < 3; c_++)                                                                                   \
      t_[0][c_] = d_[0][c_] - d_[1][c_], t_[1][c_] = d_[1][c_], t_[2][c_] = d_[2][c_] - d_[1][c_];                   \
    for (int r_ = 0; r_ < 3; r_++) {                                                                                 \
      VEC e_[3] = {t_[r_][0] - t_[r_][1], t_[r_][1], t_[r_][2] - t_[r_][1]};                                         \
      for (int c_ = 0; c_ < 3; c_++) memcpy((v) + (r_ * 3 + c_) * (vs), &e_[c_], sizeof(VEC));                      \
    }                                                                                                                \
  } while (0)

/* A^T m A of the products at m (positions ms apart) into the block's first nr x nc output
 * pixels at o (pixels px values apart, rows os), added to what is there when acc */
#define AERT_WINO_STORE(VEC, y, o, px, os, acc, nr, nc)                                                               \
  for (int r_ = 0; r_ < (nr); r_++)                                                                                  \
    for (int c_ = 0; c_ < (nc); c_++) {                                                                              \
      aert_real *p_ = (o) + r_ * (os) + c_ * (px);                                                                   \
      VEC z_ = y[r_][c_];                                                                                            \
      if (acc) {                                                                                                     \
        VEC old_;                                                                                                    \
        memcpy(&old_, p_, sizeof(VEC));                                                                              \
        z_ += old_;                                                                                                  \
      }                                                                                                              \
      memcpy(p_, &z_, sizeof(VEC));                                                                                  \
    }
#define AERT_WINO_OUT3(VEC, m, ms, o, px, os, acc, nr, nc)                                                            \
  do {                                                                                                               \
    VEC m_[16], s_[2][4], y_[2][2];                                                                                  \
    for (int i_ = 0; i_ < 16; i_++) memcpy(&m_[i_], (m) + i_ * (ms), sizeof(VEC));                                   \
    for (int c_ = 0; c_ < 4; c_++) {                                                                                 \
      s_[0][c_] = m_[c_] + m_[4 + c_] + m_[8 + c_];                                                                  \
      s_[1][c_] = m_[4 + c_] - m_[8 + c_] - m_[12 + c_];                                                             \
    }                                                                                                                \
    for (int r_ = 0; r_ < 2; r_++)                                                                                   \
      y_[r_][0] = s_[r_][0] + s_[r_][1] + s_[r_][2], y_[r_][1] = s_[r_][1] - s_[r_][2] - s_[r_][3];                  \
    AERT_WINO_STORE(VEC, y_, o, px, os, acc, nr, nc);                                                                \
  } while (0)
#define AERT_WINO_OUT2(VEC, m, ms, o, px, os, acc, nr, nc)                                                            \
  do {                                                                                                               \
    VEC m_[9], s_[2][3], y_[2][2];                                                                                   \
    for (int i_ = 0; i_ < 9; i_++) memcpy(&m_[i_], (m) + i_ * (ms), sizeof(VEC));                                    \
    for (int c_ = 0; c_ < 3; c_++) s_[0][c_] = m_[c_] + m_[3 + c_], s_[1][c_] = m_[3 + c_] + m_[6 + c_];              \
    for (int r_ = 0; r_ < 2; r_++) y_[r_][0] = s_[r_][0] + s_[r_][1], y_[r_][1] = s_[r_][1] + s_[r_][2];              \
    AERT_WINO_STORE(VEC, y_, o, px, os, acc, nr, nc);                                                                \
  } while (0)

/* A dy A^T of the 2x2 dy block at dp (pixels px apart, rows ws) into d (positions ds apart):
 * what a block's dy gives each of its products (the weight gradient) */
#define AERT_WINO_DY3(VEC, dp, px, ws, d, ds)                                                                         \
  do {                                                                                                               \
    VEC e_[2][2], t_[4][2];                                                                                          \
    for (int r_ = 0; r_ < 2; r_++)                                                                                   \
      for (int c_ = 0; c_ < 2; c_++) memcpy(&e_[r_][c_], (dp) + r_ * (ws) + c_ * (px), sizeof(VEC));                \
    for (int c_ = 0; c_ < 2; c_++)                                                                                   \
      t_[0][c_] = e_[0][c_], t_[1][c_] = e_[0][c_] + e_[1][c_], t_[2][c_] = e_[0][c_] - e_[1][c_], t_[3][c_] = -e_[1][c_]; \
    for (int r_ = 0; r_ < 4; r_++) {                                                                                 \
      VEC f_[4] = {t_[r_][0], t_[r_][0] + t_[r_][1], t_[r_][0] - t_[r_][1], -t_[r_][1]};                             \
      for (int c_ = 0; c_ < 4; c_++) memcpy((d) + (r_ * 4 + c_) * (ds), &f_[c_], sizeof(VEC));                      \
    }                                                                                                                \
  } while (0)
#define AERT_WINO_DY2(VEC, dp, px, ws, d, ds)                                                                         \
  do {                                                                                                               \
    VEC e_[2][2], t_[3][2];                                                                                          \
    for (int r_ = 0; r_ < 2; r_++)                                                                                   \
      for (int c_ = 0; c_ < 2; c_++) memcpy(&e_[r_][c_], (dp) + r_ * (ws) + c_ * (px), sizeof(VEC));                \
    for (int c_ = 0; c_ < 2; c_++) t_[0][c_] = e_[0][c_], t_[1][c_] = e_[0][c_] + e_[1][c_], t_[2][c_] = e_[1][c_]; \
    for (int r_ = 0; r_ < 3; r_++) {                                                                                 \
      VEC f_[3] = {t_[r_][0], t_[r_][0] + t_[r_][1], t_[r_][1]};                                                     \
      for (int c_ = 0; c_ < 3; c_++) memcpy((d) + (r_ * 3 + c_) * (ds), &f_[c_], sizeof(VEC));                      \
    }                                                                                                                \
  } while (0)

/* dw (k x k taps plane values apart) += G^T m G of the summed products at m + i */
#define AERT_WINO_ADD(VEC, dw, t, plane, i, val)                                                                      \
  do {                                                                                                               \
    VEC old_;                                                                                                        \
    memcpy(&old_, (dw) + (t) * (plane) + (i), sizeof(VEC));                                                          \
    old_ += (val);                                                                                                   \
    memcpy((dw) + (t) * (plane) + (i), &old_, sizeof(VEC));                                                          \
  } while (0)
#define AERT_WINO_FOLD3(VEC, m, dw, plane, i)                                                                         \
  do {                                                                                                               \
    VEC m_[16], a_[3][4], h_ = {0};                                                                                  \
    h_ += (aert_real)0.5;                                                                                            \
    for (int x_ = 0; x_ < 16; x_++) memcpy(&m_[x_], (m) + x_ * (plane) + (i), sizeof(VEC));                          \
    for (int c_ = 0; c_ < 4; c_++) {                                                                                 \
      a_[0][c_] = m_[c_] + (m_[4 + c_] + m_[8 + c_]) * h_;                                                           \
      a_[1][c_] = (m_[4 + c_] - m_[8 + c_]) * h_;                                                                    \
      a_[2][c_] = (m_[4 + c_] + m_[8 + c_]) * h_ + m_[12 + c_];                                                      \
    }                                                                                                                \
    for (int r_ = 0; r_ < 3; r_++) {                                                                                 \
      AERT_WINO_ADD(VEC, dw, r_ * 3, plane, i, a_[r_][0] + (a_[r_][1] + a_[r_][2]) * h_);                            \
      AERT_WINO_ADD(VEC, dw, r_ * 3 + 1, plane, i, (a_[r_][1] - a_[r_][2]) * h_);                                    \
      AERT_WINO_ADD(VEC, dw, r_ * 3 + 2, plane, i, (a_[r_][1] + a_[r_][2]) * h_ + a_[r_][3]);                        \
    }                                                                                                                \
  } while (0)
#define AERT_WINO_FOLD2(VEC, m, dw, plane, i)                                                                         \
  do {                                                                                                               \
    VEC m_[9], a_[2][3];                                                                                             \
    for (int x_ = 0; x_ < 9; x_++) memcpy(&m_[x_], (m) + x_ * (plane) + (i), sizeof(VEC));                           \
    for (int c_ = 0; c_ < 3; c_++) a_[0][c_] = m_[c_] + m_[3 + c_], a_[1][c_] = m_[3 + c_] + m_[6 + c_];              \
    for (int r_ = 0; r_ < 2; r_++) {                                                                                 \
      AERT_WINO_ADD(VEC, dw, r_ * 2, plane, i, a_[r_][0] + a_[r_][1]);                                               \
      AERT_WINO_ADD(VEC, dw, r_ * 2 + 1, plane, i, a_[r_][1] + a_[r_][2]);                                           \
    }                                                                                                                \
  } while (0)

/* Each transform over the n channels of a pixel: whole vectors, half vectors, then single
 * values; k (3 or 2) picks the block size. */
#define AERT_WINO_CHANNELS(n, OP3, OP2, k, p, ...)                                                                    \
  do {                                                                                                               \
    int ch_ = 0;                                                                                                      \
    if ((k) == 3) {                                                                                                  \
      for (; ch_ + AERT_LANES <= (n); ch_ += AERT_LANES) OP3(aert_vec, p, __VA_ARGS__);                                 \
      for (; ch_ + AERT_HLANES <= (n); ch_ += AERT_HLANES) OP3(aert_hvec, p, __VA_ARGS__);                              \
      for (; ch_ < (n); ch_++) OP3(aert_real, p, __VA_ARGS__);                                                         \
    } else {                                                                                                         \
      for (; ch_ + AERT_LANES <= (n); ch_ += AERT_LANES) OP2(aert_vec, p, __VA_ARGS__);                                 \
      for (; ch_ + AERT_HLANES <= (n); ch_ += AERT_HLANES) OP2(aert_hvec, p, __VA_ARGS__);                              \
      for (; ch_ < (n); ch_++) OP2(aert_real, p, __VA_ARGS__);                                                         \
    }                                                                                                                \
  } while (0)

/* u[xi, ci, co] = (G g G^T)[xi] of the k x k filter g = w[., ., ci, co] (w as kh, kw, ci,
 * co): the (k + 1)^2 x cin x cout transformed weights (nothing where the direct kernel runs
 * instead). */
static inline void aert_wino_weights(const aert_real *restrict w, aert_real *restrict u, int k, int cin, int cout) {
  if (!aert_wino_pays(k, cin, cout)) return;
  long plane = (long)cin * cout, whole = plane / AERT_LANES * AERT_LANES;
#pragma omp parallel for schedule(static) if (plane >= 4096)
  for (long i = 0; i < whole; i += AERT_LANES) {
    if (k == 3) AERT_WINO_WEIGHTS3(aert_vec, w, u, plane, i);
    else AERT_WINO_WEIGHTS2(aert_vec, w, u, plane, i);
  }
  for (long i = whole; i < plane; i++) {
    if (k == 3) AERT_WINO_WEIGHTS3(aert_real, w, u, plane, i);
    else AERT_WINO_WEIGHTS2(aert_real, w, u, plane, i);
  }
}

/* Blocks of output pixels a run holds: as many as `bytes` allow for their `pos` transformed
 * input and output (dy) matrices, a multiple of the register tile's mr pixels, at least one tile. */
static inline int aert_wino_run(long bytes, int pos, int cin, int cout, int mr) {
  int per = pos * (cin + cout) * (int)sizeof(aert_real), run = (int)(bytes / per / mr * mr);
  return run < mr ? mr : run;
}

/* Where a Winograd convolution reads its input: images of h x w pixels of cin channels
 * (`image` values apart) in which output block (bi, bj) starts at pixel (2 bi - top,
 * 2 bj - left). Either the zero-padded copy of aert_pad_stack (top = left = 0, h x w = hg x
 * wg), or the tensor itself, unpadded (top and left: the padding), so that no copy is made:
 * what lies outside the h x w pixels reads as zeros, as the copy's margins would. */
typedef struct {
  const aert_real *x;
  long image;
  int h, w, top, left;
} aert_wino_src;

static inline aert_wino_src aert_wino_padded(const aert_conv_geom *g, const aert_real *x) {
  return (aert_wino_src){x, (long)g->hg * g->wg * g->cin, g->hg, g->wg, 0, 0};
}

/* The (k + 1) x (k + 1) input block of output block (bi, bj) of image n: in place, or, where
 * the block reaches past the image (the margins of an unpadded input, the last row or column
 * of an odd output size), copied with zeros for what lies outside into tmp. Past an odd
 * size the zeros meet only outputs that are not stored. */
static inline const aert_real *aert_wino_block(const aert_wino_src *s, long n, aert_real *tmp, int bi, int bj, int k, int cin,
                                               long *ws) {
  int a = k + 1, r0 = 2 * bi - s->top, c0 = 2 * bj - s->left;
  const aert_real *img = s->x + n * s->image;
  *ws = (long)s->w * cin;
  if (r0 >= 0 && c0 >= 0 && r0 + a <= s->h && c0 + a <= s->w) return img + ((long)r0 * s->w + c0) * cin;
  for (int r = 0; r < a; r++)
    for (int c = 0; c < a; c++) {
      int rr = r0 + r, cc = c0 + c;
      aert_real *t = tmp + ((long)r * a + c) * cin;
      if (rr >= 0 && rr < s->h && cc >= 0 && cc < s->w) memcpy(t, img + ((long)rr * s->w + cc) * cin, sizeof(aert_real) * cin);
      else memset(t, 0, sizeof(aert_real) * cin);
    }
  *ws = (long)a * cin;
  return tmp;
}

/* Images n0 .. of that tensor, read in place with p's padding. */
static inline aert_wino_src aert_wino_unpadded(const aert_pad_geom *p, const aert_real *const *src, int n0) {
  long image = (long)p->h * p->w * p->c;
  return (aert_wino_src){src[0] + n0 * image, image, p->h, p->w, p->pt, p->pl};
}

/* y (ho x wo x cout) = the k x k convolution (k = 3 or 2) of stride 1 of x (hg x wg x cin per
 * image, hg >= ho + k - 1, wg >= wo + k - 1: the padded input of aert_conv_fwd) with the
 * weights w, transformed in u (aert_wino_weights); acc adds to y. g->batch images. Output
 * blocks of 2x2 pixels; an odd size's last row (column) of blocks stores its first row
 * (column). Where Winograd does not pay on this build, aert_conv_fwd with w. */
static inline __attribute__((always_inline)) void aert_wino_fwd(const aert_conv_geom *g, const aert_wino_src *src,
                                                                const aert_real *restrict u, aert_real *restrict y, int acc) {
  int batch = g->batch, cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr = AERT_TILE_ACC / nv, cblocks = cout / lanes / nv;
  int pos = (k + 1) * (k + 1), bw = (wo + 1) / 2, blocks = (ho + 1) / 2 * bw;
  int run = aert_wino_run(AERT_WINO_BYTES, pos, cin, cout, mr), runs = (blocks + run - 1) / run;
  long ys = (long)ho * wo * cout, plane = (long)cin * cout, zero = 0;
  aert_conv_tile_fn *tile = aert_conv_tile_for(lanes != AERT_LANES, nv, cin);
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int r = 0; r < runs; r++) {
      int b0 = r * run, nb = blocks - b0 < run ? blocks - b0 : run;
      aert_real v[pos * run * cin], m[pos * run * cout], tmp[pos * cin];
      long vs = (long)run * cin, ms = (long)run * cout, ws;
      for (int b = 0; b < run; b++) {   /* the input blocks, zeros past the last */
        aert_real *vb = v + (long)b * cin;
        if (b >= nb) {
          for (int xi = 0; xi < pos; xi++) memset(vb + xi * vs, 0, sizeof(aert_real) * cin);
          continue;
        }
        const aert_real *xp = aert_wino_block(src, n, tmp, (b0 + b) / bw, (b0 + b) % bw, k, cin, &ws);
        AERT_WINO_CHANNELS(cin, AERT_WINO_IN3, AERT_WINO_IN2, k, xp + ch_, cin, ws, vb + ch_, vs);
      }
      for (int xi = 0; xi < pos; xi++)   /* the products: 1x1 convolutions of the run's blocks */
        for (int t = 0; t < run; t += mr)
          for (int cb = 0; cb < cblocks; cb++)
            tile(v + xi * vs, u + xi * plane + cb * nv * lanes, m + xi * ms + cb * nv * lanes, &zero, t, 1, run, cin,
                 cout, 1, nb, ms, cout, NULL, 0);
      for (int b = 0; b < nb; b++) {
        int bi = (b0 + b) / bw, bj = (b0 + b) % bw, nr = ho - 2 * bi < 2 ? 1 : 2, nc = wo - 2 * bj < 2 ? 1 : 2;
        aert_real *o = y + n * ys + ((long)2 * bi * wo + 2 * bj) * cout;
        AERT_WINO_CHANNELS(cout, AERT_WINO_OUT3, AERT_WINO_OUT2, k, m + (long)b * cout + ch_, ms, o + ch_, cout, (long)wo * cout,
                           acc, nr, nc);
      }
    }
}

static inline __attribute__((always_inline)) void aert_conv_wino(const aert_conv_geom *g, const aert_real *restrict x,
                                                                 const aert_real *restrict w, const aert_real *restrict u,
                                                                 aert_real *restrict y, int acc) {
  if (!aert_wino_pays(g->k, g->cin, g->cout)) {
    aert_conv_fwd(g, x, w, y, acc);
    return;
  }
  aert_wino_src s = aert_wino_padded(g, x);
  aert_wino_fwd(g, &s, u, y, acc);
}

/* The same of images n0 .. of the stack of pad geometry p (its tensors src): where Winograd
 * runs and the stack is one plain tensor, read in place (the same bits: the same values,
 * summed alike); else copied padded into xp (aert_pad_stack) and run from there. */
static inline __attribute__((always_inline)) void aert_conv_wino_stack(const aert_pad_geom *p, aert_real *restrict xp, int n0,
                                                                       const aert_real *const *src, const aert_conv_geom *g,
                                                                       const aert_real *restrict w,
                                                                       const aert_real *restrict u, aert_real *restrict y,
                                                                       int acc) {
  if (aert_wino_pays(g->k, g->cin, g->cout) && aert_pad_plain(p)) {
    aert_wino_src s = aert_wino_unpadded(p, src, n0);
    aert_wino_fwd(g, &s, u, y, acc);
    return;
  }
  aert_pad_stack(p, xp, n0, src);
  aert_conv_wino(g, xp, w, u, y, acc);
}

/* The weight gradient. With U = G g G^T and V = B^T d B, the forward's block is
 * A^T (U . V) A, so a block's dy carries back to U as (A dy A^T) . V and to g as
 * G^T [(A dy A^T) . V] G: m[xi] (cin x cout) = sum over every block of V[xi]^T D[xi], with
 * D = A dy A^T, a product per position whose inner dimension is the blocks; then
 * dw += G^T m G. The blocks of all g->batch images are taken a run at a time: both threads
 * transform the run's input and dy blocks, then share out the products (a task owns mr rows
 * and nv vectors of columns of one m[xi]: the weight-gradient register tiles, the blocks as
 * pixels). Each value of m sums the runs in order, each run's blocks in order: the same bits
 * for any thread count. dy past an odd output size counts as zeros, so the blocks there add
 * exactly what the pixels inside add. m: (k + 1)^2 x cin x cout values of scratch. Where it
 * does not pay on this build, aert_conv_dw. */
/* Block b (of all g->batch images) of x and dy, transformed into v and d (positions vs and
 * ds values apart); dy past an odd output size as zeros. */
static inline __attribute__((always_inline)) void aert_wino_dw_block(const aert_conv_geom *g, const aert_wino_src *x,
                                                                     const aert_real *dy, long b, aert_real *v, long vs,
                                                                     aert_real *d, long ds) {
  int cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  int bw = (wo + 1) / 2, per_image = (ho + 1) / 2 * bw, pos = (k + 1) * (k + 1);
  long n = b / per_image, ws, es = (long)wo * cout;
  int q = (int)(b - n * per_image), bi = q / bw, bj = q % bw;
  aert_real tmp[pos * cin], dtmp[4 * cout];
  const aert_real *xp = aert_wino_block(x, n, tmp, bi, bj, k, cin, &ws);
  const aert_real *dp = dy + n * ho * (long)wo * cout + ((long)2 * bi * wo + 2 * bj) * cout;
  if (2 * bi + 2 > ho || 2 * bj + 2 > wo) {   /* past an odd size: zeros */
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 2; c++) {
        aert_real *t = dtmp + (r * 2 + c) * cout;
        if (2 * bi + r < ho && 2 * bj + c < wo) memcpy(t, dp + r * es + (long)c * cout, sizeof(aert_real) * cout);
        else memset(t, 0, sizeof(aert_real) * cout);
      }
    dp = dtmp, es = 2L * cout;
  }
  AERT_WINO_CHANNELS(cin, AERT_WINO_IN3, AERT_WINO_IN2, k, xp + ch_, cin, ws, v + ch_, vs);
  AERT_WINO_CHANNELS(cout, AERT_WINO_DY3, AERT_WINO_DY2, k, dp + ch_, cout, es, d + ch_, ds);
}

static inline __attribute__((always_inline)) void aert_wino_dw(const aert_conv_geom *g, const aert_wino_src *x,
                                                               const aert_real *restrict dy, aert_real *restrict m,
                                                               aert_real *restrict dw) {
  int cin = g->cin, k = g->k, ho = g->ho, wo = g->wo, cout = g->cout;
  long plane = (long)cin * cout;
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr = AERT_TILE_ACC / nv, lw = nv * lanes;
  int pos = (k + 1) * (k + 1), rblocks = (cin + mr - 1) / mr, oblocks = cout / lw, tasks = pos * rblocks * oblocks;
  int run = aert_wino_run(AERT_WINO_DW_BYTES, pos, cin, cout, 1);
  long blocks = (long)g->batch * ((ho + 1) / 2) * ((wo + 1) / 2), vs = (long)run * cin, ds = (long)run * cout;
  aert_conv_dw_tile_fn *tile = aert_conv_dw_tile_for(lanes != AERT_LANES, nv);
  /* the run's input matrices, then its dy matrices (the tiles read up to mr values past a
   * matrix: the next one's, or the slack) */
  aert_real buf[pos * (vs + ds) + mr], *v = buf, *d = buf + pos * vs;
  memset(m, 0, sizeof(aert_real) * pos * plane);
  memset(buf + pos * (vs + ds), 0, sizeof(aert_real) * mr);
#pragma omp parallel
  for (long b0 = 0; b0 < blocks; b0 += run) {
    int nb = blocks - b0 < run ? (int)(blocks - b0) : run;
#pragma omp for schedule(static)
    for (int b = 0; b < nb; b++) aert_wino_dw_block(g, x, dy, b0 + b, v + (long)b * cin, vs, d + (long)b * cout, ds);
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; t++) {
      int xi = t / (rblocks * oblocks), rb = t / oblocks % rblocks, ob = t % oblocks, r0 = rb * mr;
      tile(v + xi * vs, d + xi * ds + ob * lw, m + xi * plane + (long)r0 * cout + ob * lw, cout, 0, 1, 0, r0, 0, cin, 1, nb,
           cout, cin - r0);
    }
  }
  long whole = plane / AERT_LANES * AERT_LANES;
#pragma omp parallel for schedule(static) if (plane >= 4096)
  for (long i = 0; i < whole; i += AERT_LANES) {
    if (k == 3) AERT_WINO_FOLD3(aert_vec, m, dw, plane, i);
    else AERT_WINO_FOLD2(aert_vec, m, dw, plane, i);
  }
  for (long i = whole; i < plane; i++) {
    if (k == 3) AERT_WINO_FOLD3(aert_real, m, dw, plane, i);
    else AERT_WINO_FOLD2(aert_real, m, dw, plane, i);
  }
}

static inline __attribute__((always_inline)) void aert_conv_wino_dw(const aert_conv_geom *g, const aert_real *restrict x,
                                                                    const aert_real *restrict dy, aert_real *restrict m,
                                                                    aert_real *restrict dw) {
  if (!aert_wino_dw_pays(g->k, g->cin, g->cout)) {
    aert_conv_dw(g, x, dy, dw);
    return;
  }
  aert_wino_src s = aert_wino_padded(g, x);
  aert_wino_dw(g, &s, dy, m, dw);
}

/* The same with x as images n0 .. of the stack of pad geometry p (like aert_conv_wino_stack):
 * read in place where Winograd runs and the stack is one plain tensor, else from its padded
 * copy in xp. */
static inline __attribute__((always_inline)) void aert_conv_wino_dw_stack(const aert_pad_geom *p, aert_real *restrict xp, int n0,
                                                                          const aert_real *const *src,
                                                                          const aert_conv_geom *g, const aert_real *restrict dy,
                                                                          aert_real *restrict m, aert_real *restrict dw) {
  if (aert_wino_dw_pays(g->k, g->cin, g->cout) && aert_pad_plain(p)) {
    aert_wino_src s = aert_wino_unpadded(p, src, n0);
    aert_wino_dw(g, &s, dy, m, dw);
    return;
  }
  aert_pad_stack(p, xp, n0, src);
  aert_conv_wino_dw(g, xp, dy, m, dw);
}

#endif
