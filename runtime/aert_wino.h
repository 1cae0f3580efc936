/* aert_wino.h - 3x3 convolutions of stride 1 as Winograd F(2x2, 3x3): each 2x2 block of
 * output pixels from a 4x4 block of input pixels with 16 multiply-adds per input and output
 * channel where the direct convolution spends 36 (2.25x fewer). Included by aert_kernels.h.
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
 * against the direct kernels): AVX-512 from 16 input and output channels (16 -> 16 1.2x,
 * 32 -> 32 1.7x, 128 -> 128 2.1x; with 8 the transforms cost what the products save), its
 * weight gradient from 64 (64 -> 64 1.3x, 128 -> 128 1.7x; 32 -> 64 1.1x); with 16 registers
 * (AVX2 and below) from 32 (16 -> 16 0.8x, 32 -> 32 1.1-1.3x, 64 -> 64 1.4x) and the weight
 * gradient from 128 (64 -> 128 0.9-1.0x, 128 -> 128 1.3x). Elsewhere aert_conv_wino and
 * aert_conv_wino_dw run the direct kernels: the compiler emits them wherever some machine
 * takes them (16 channels), the build picks. A -D of either minimum overrides it (the
 * gradient check forces the Winograd kernels on any build). */
#ifndef AERT_WINO_MIN
#if defined(__AVX512F__)
#define AERT_WINO_MIN 16
#else
#define AERT_WINO_MIN 32
#endif
#endif
#ifndef AERT_WINO_DW_MIN
#if defined(__AVX512F__)
#define AERT_WINO_DW_MIN 64
#else
#define AERT_WINO_DW_MIN 128
#endif
#endif
static inline int aert_wino_pays(int cin, int cout) { return cin >= AERT_WINO_MIN && cout >= AERT_WINO_MIN; }
static inline int aert_wino_dw_pays(int cin, int cout) { return cin >= AERT_WINO_DW_MIN && cout >= AERT_WINO_DW_MIN; }

/* the bytes of one run's transformed input and products (16 x blocks x (cin + cout) values) */
#define AERT_WINO_BYTES (256 * 1024)
/* the weight gradient's runs, shared by the threads (on the stack of the one that calls) */
#define AERT_WINO_DW_BYTES (512 * 1024)

/* The transform G g G^T of the filters at i .. i + n (VEC: n values) of w into u. */
#define AERT_WINO_WEIGHTS(VEC, w, u, plane, i)                                                                        \
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

/* u[xi, ci, co] = (G g G^T)[xi] of the filter g = w[., ., ci, co] (w as kh, kw, ci, co): the
 * 16 x cin x cout transformed weights (nothing where the direct kernel runs instead). */
static inline void aert_wino_weights(const aert_real *restrict w, aert_real *restrict u, int cin, int cout) {
  if (!aert_wino_pays(cin, cout)) return;
  long plane = (long)cin * cout, whole = plane / AERT_LANES * AERT_LANES;
#pragma omp parallel for schedule(static) if (plane >= 4096)
  for (long i = 0; i < whole; i += AERT_LANES) AERT_WINO_WEIGHTS(aert_vec, w, u, plane, i);
  for (long i = whole; i < plane; i++) AERT_WINO_WEIGHTS(aert_real, w, u, plane, i);
}

/* B^T d B of the 4x4 input block at xp (pixels px values apart, rows ws) for n channels
 * (VEC: a vector of n values, or one value) into v, the 16 positions vs values apart. */
#define AERT_WINO_IN(VEC, xp, px, ws, v, vs)                                                                              \
  do {                                                                                                               \
    VEC d_[4][4], t_[4][4];                                                                                          \
    for (int r_ = 0; r_ < 4; r_++)                                                                                   \
      for (int c_ = 0; c_ < 4; c_++) memcpy(&d_[r_][c_], (xp) + r_ * (ws) + c_ * (px), sizeof(VEC));                 \
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

/* A^T m A of the 16 products at m (ms values apart) for n channels into the 2x2 output
 * block at o (pixels px values apart, rows os), added to what is there when acc. */
#define AERT_WINO_OUT(VEC, m, ms, o, px, os, acc)                                                                              \
  do {                                                                                                               \
    VEC m_[16], s_[2][4];                                                                                            \
    for (int i_ = 0; i_ < 16; i_++) memcpy(&m_[i_], (m) + i_ * (ms), sizeof(VEC));                                   \
    for (int c_ = 0; c_ < 4; c_++) {                                                                                 \
      s_[0][c_] = m_[c_] + m_[4 + c_] + m_[8 + c_];                                                                  \
      s_[1][c_] = m_[4 + c_] - m_[8 + c_] - m_[12 + c_];                                                             \
    }                                                                                                                \
    for (int r_ = 0; r_ < 2; r_++) {                                                                                 \
      VEC y_[2] = {s_[r_][0] + s_[r_][1] + s_[r_][2], s_[r_][1] - s_[r_][2] - s_[r_][3]};                            \
      for (int c_ = 0; c_ < 2; c_++) {                                                                               \
        aert_real *p_ = (o) + r_ * (os) + c_ * (px);                                                                  \
        if (acc) {                                                                                                   \
          VEC old_;                                                                                                  \
          memcpy(&old_, p_, sizeof(VEC));                                                                            \
          y_[c_] += old_;                                                                                            \
        }                                                                                                            \
        memcpy(p_, &y_[c_], sizeof(VEC));                                                                            \
      }                                                                                                              \
    }                                                                                                                \
  } while (0)

/* Blocks of output pixels a run holds: as many as `bytes` allow for their 16 transformed
 * input and output (dy) matrices, a multiple of the register tile's mr pixels, at least one tile. */
static inline int aert_wino_run(long bytes, int cin, int cout, int mr) {
  int per = 16 * (cin + cout) * (int)sizeof(aert_real), run = (int)(bytes / per / mr * mr);
  return run < mr ? mr : run;
}

/* y (ho x wo x cout, ho and wo even) = the 3x3 convolution of stride 1 of x (hg x wg x cin
 * per image, hg >= ho + 2, wg >= wo + 2: the padded input of aert_conv_fwd) with the
 * weights w, transformed in u (aert_wino_weights); acc adds to y. g->batch images. Where
 * Winograd does not pay on this build, aert_conv_fwd with w. */
static inline __attribute__((always_inline)) void aert_conv_wino(const aert_conv_geom *g, const aert_real *restrict x,
                                                                 const aert_real *restrict w, const aert_real *restrict u,
                                                                 aert_real *restrict y, int acc) {
  int batch = g->batch, hg = g->hg, wg = g->wg, cin = g->cin, ho = g->ho, wo = g->wo, cout = g->cout;
  if (!aert_wino_pays(cin, cout)) {
    aert_conv_fwd(g, x, w, y, acc);
    return;
  }
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr = AERT_TILE_ACC / nv, cblocks = cout / lanes / nv;
  int bw = wo / 2, blocks = ho / 2 * bw, run = aert_wino_run(AERT_WINO_BYTES, cin, cout, mr), runs = (blocks + run - 1) / run;
  long xs = (long)hg * wg * cin, ys = (long)ho * wo * cout, plane = (long)cin * cout, zero = 0;
  aert_conv_tile_fn *tile = aert_conv_tile_for(lanes != AERT_LANES, nv, cin);
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; n++)
    for (int r = 0; r < runs; r++) {
      int b0 = r * run, nb = blocks - b0 < run ? blocks - b0 : run;
      aert_real v[16 * run * cin], m[16 * run * cout];
      long vs = (long)run * cin, ms = (long)run * cout;
      for (int b = 0; b < run; b++) {   /* the input blocks, zeros past the last */
        aert_real *vb = v + (long)b * cin;
        if (b >= nb) {
          for (int xi = 0; xi < 16; xi++) memset(vb + xi * vs, 0, sizeof(aert_real) * cin);
          continue;
        }
        int bi = (b0 + b) / bw, bj = (b0 + b) % bw, c = 0;
        const aert_real *xp = x + n * xs + ((long)2 * bi * wg + 2 * bj) * cin;
        for (; c + AERT_LANES <= cin; c += AERT_LANES) AERT_WINO_IN(aert_vec, xp + c, cin, (long)wg * cin, vb + c, vs);
        for (; c + AERT_HLANES <= cin; c += AERT_HLANES) AERT_WINO_IN(aert_hvec, xp + c, cin, (long)wg * cin, vb + c, vs);
        for (; c < cin; c++) AERT_WINO_IN(aert_real, xp + c, cin, (long)wg * cin, vb + c, vs);
      }
      for (int xi = 0; xi < 16; xi++)   /* the 16 products: 1x1 convolutions of the run's blocks */
        for (int t = 0; t < run; t += mr)
          for (int cb = 0; cb < cblocks; cb++)
            tile(v + xi * vs, u + xi * plane + cb * nv * lanes, m + xi * ms + cb * nv * lanes, &zero, t, 1, run, cin,
                 cout, 1, nb, 0);
      for (int b = 0; b < nb; b++) {
        int bi = (b0 + b) / bw, bj = (b0 + b) % bw, c = 0;
        aert_real *o = y + n * ys + ((long)2 * bi * wo + 2 * bj) * cout;
        const aert_real *mb = m + (long)b * cout;
        for (; c + AERT_LANES <= cout; c += AERT_LANES) AERT_WINO_OUT(aert_vec, mb + c, ms, o + c, cout, (long)wo * cout, acc);
        for (; c + AERT_HLANES <= cout; c += AERT_HLANES)
          AERT_WINO_OUT(aert_hvec, mb + c, ms, o + c, cout, (long)wo * cout, acc);
      }
    }
}

/* The weight gradient. With U = G g G^T and V = B^T d B, the forward's block is
 * A^T (U . V) A, so a block's dy carries back to U as (A dy A^T) . V and to g as
 * G^T [(A dy A^T) . V] G: m[xi] (cin x cout) = sum over every block of V[xi]^T D[xi], with
 * D = A dy A^T, sixteen products whose inner dimension is the blocks; then dw += G^T m G.
 * The blocks of all g->batch images are taken a run at a time: both threads transform the
 * run's input and dy blocks, then share out the products (a task owns mr rows and nv vectors
 * of columns of one m[xi]: the weight-gradient register tiles, the blocks as pixels). Each
 * value of m sums the runs in order, each run's blocks in order: the same bits for any
 * thread count. m: 16 x cin x cout values of scratch. Where it does not pay on this build,
 * aert_conv_dw. */
#define AERT_WINO_DY(VEC, dp, px, ws, dv, ds)                                                                         \
  do {                                                                                                               \
    VEC e_[2][2], t_[4][2];                                                                                          \
    for (int r_ = 0; r_ < 2; r_++)                                                                                   \
      for (int c_ = 0; c_ < 2; c_++) memcpy(&e_[r_][c_], (dp) + r_ * (ws) + c_ * (px), sizeof(VEC));                \
    for (int c_ = 0; c_ < 2; c_++) {                                                                                 \
      t_[0][c_] = e_[0][c_];                                                                                         \
      t_[1][c_] = e_[0][c_] + e_[1][c_];                                                                             \
      t_[2][c_] = e_[0][c_] - e_[1][c_];                                                                             \
      t_[3][c_] = -e_[1][c_];                                                                                        \
    }                                                                                                                \
    for (int r_ = 0; r_ < 4; r_++) {                                                                                 \
      VEC f_[4] = {t_[r_][0], t_[r_][0] + t_[r_][1], t_[r_][0] - t_[r_][1], -t_[r_][1]};                             \
      for (int c_ = 0; c_ < 4; c_++) memcpy((dv) + (r_ * 4 + c_) * (ds), &f_[c_], sizeof(VEC));                     \
    }                                                                                                                \
  } while (0)

/* dw[., ., i .. i + n] += G^T m G (VEC: n values; m and dw as 16 and 9 planes of plane values) */
#define AERT_WINO_FOLD(VEC, m, dw, plane, i)                                                                          \
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
      VEC g_[3] = {a_[r_][0] + (a_[r_][1] + a_[r_][2]) * h_, (a_[r_][1] - a_[r_][2]) * h_,                           \
                   (a_[r_][1] + a_[r_][2]) * h_ + a_[r_][3]};                                                        \
      for (int c_ = 0; c_ < 3; c_++) {                                                                               \
        VEC old_;                                                                                                    \
        memcpy(&old_, (dw) + (r_ * 3 + c_) * (plane) + (i), sizeof(VEC));                                            \
        old_ += g_[c_];                                                                                              \
        memcpy((dw) + (r_ * 3 + c_) * (plane) + (i), &old_, sizeof(VEC));                                            \
      }                                                                                                              \
    }                                                                                                                \
  } while (0)

static inline __attribute__((always_inline)) void aert_conv_wino_dw(const aert_conv_geom *g, const aert_real *restrict x,
                                                                    const aert_real *restrict dy, aert_real *restrict m,
                                                                    aert_real *restrict dw) {
  int batch = g->batch, hg = g->hg, wg = g->wg, cin = g->cin, ho = g->ho, wo = g->wo, cout = g->cout;
  if (!aert_wino_dw_pays(cin, cout)) {
    aert_conv_dw(g, x, dy, dw);
    return;
  }
  int lanes = aert_conv_lanes(cout), nv = aert_conv_nv(cout), mr = AERT_TILE_ACC / nv, lw = nv * lanes;
  int rblocks = (cin + mr - 1) / mr, oblocks = cout / lw, tasks = 16 * rblocks * oblocks;
  int bw = wo / 2, per_image = ho / 2 * bw, run = aert_wino_run(AERT_WINO_DW_BYTES, cin, cout, 1);
  long blocks = (long)batch * per_image, xs = (long)hg * wg * cin, ys = (long)ho * wo * cout, plane = (long)cin * cout;
  long vs = (long)run * cin, ds = (long)run * cout;
  aert_conv_dw_tile_fn *tile = aert_conv_dw_tile_for(lanes != AERT_LANES, nv);
  /* the run's 16 input matrices, then its 16 dy matrices (the tiles read up to mr values past a
   * matrix: the next one's, or the slack) */
  aert_real buf[16 * (vs + ds) + mr], *v = buf, *d = buf + 16 * vs;
  memset(m, 0, sizeof(aert_real) * 16 * plane);
  memset(buf + 16 * (vs + ds), 0, sizeof(aert_real) * mr);
#pragma omp parallel
  for (long b0 = 0; b0 < blocks; b0 += run) {
    int nb = blocks - b0 < run ? (int)(blocks - b0) : run;
#pragma omp for schedule(static)
    for (int b = 0; b < nb; b++) {
      long n = (b0 + b) / per_image;
      int q = (int)((b0 + b) - n * per_image), bi = q / bw, bj = q % bw, c = 0;
      const aert_real *xp = x + n * xs + ((long)2 * bi * wg + 2 * bj) * cin;
      const aert_real *dp = dy + n * ys + ((long)2 * bi * wo + 2 * bj) * cout;
      aert_real *vb = v + (long)b * cin, *db = d + (long)b * cout;
      for (; c + AERT_LANES <= cin; c += AERT_LANES) AERT_WINO_IN(aert_vec, xp + c, cin, (long)wg * cin, vb + c, vs);
      for (; c + AERT_HLANES <= cin; c += AERT_HLANES) AERT_WINO_IN(aert_hvec, xp + c, cin, (long)wg * cin, vb + c, vs);
      for (; c < cin; c++) AERT_WINO_IN(aert_real, xp + c, cin, (long)wg * cin, vb + c, vs);
      for (c = 0; c + AERT_LANES <= cout; c += AERT_LANES) AERT_WINO_DY(aert_vec, dp + c, cout, (long)wo * cout, db + c, ds);
      for (; c + AERT_HLANES <= cout; c += AERT_HLANES) AERT_WINO_DY(aert_hvec, dp + c, cout, (long)wo * cout, db + c, ds);
    }
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; t++) {
      int xi = t / (rblocks * oblocks), rb = t / oblocks % rblocks, ob = t % oblocks, r0 = rb * mr;
      tile(v + xi * vs, d + xi * ds + ob * lw, m + xi * plane + (long)r0 * cout + ob * lw, cout, 0, 1, 0, r0, 0, cin, 1, nb,
           cout, cin - r0);
    }
  }
  long whole = plane / AERT_LANES * AERT_LANES;
#pragma omp parallel for schedule(static) if (plane >= 4096)
  for (long i = 0; i < whole; i += AERT_LANES) AERT_WINO_FOLD(aert_vec, m, dw, plane, i);
  for (long i = whole; i < plane; i++) AERT_WINO_FOLD(aert_real, m, dw, plane, i);
}

#endif
