/* wino.c - aert_conv_wino (Winograd F(2x2, 3x3) and F(2x2, 2x2)) against a direct convolution summed in
 * double, for the channel counts the CPU target gives it (whole and half vectors of
 * output channels, input channels of any count: 24 bands, 4, a run's last blocks short),
 * images of several sizes (one block of runs, many runs, rows wider than the output),
 * batches of two, overwriting and adding (acc); and the same bits on 1, 2 and 3 threads.
 * Also the transformed weights of flipped filters carry dy back as the direct kernel does,
 * and the weight gradient (aert_conv_wino_dw) adds what the direct one adds. The same for
 * F(2x2, 2x2) (2x2 windows: the phases of an upsampled conv) and odd output sizes. And the
 * stack entries (aert_conv_wino_stack, aert_conv_wino_dw_stack), which read an unpadded tensor
 * in place, give the bits of the padded copy's run; a stack of two parts takes the copy.
 * And the direct kernel itself (aert_conv_fwd, whose one-vector 3x3 tiles run by window rows
 * on AVX2 builds) against the same double sums, overwriting and adding, on 1-3 threads; and
 * the narrow one (aert_conv_fwd_narrow: one or three output channels, pixels side by side). */
/* the Winograd kernels themselves, whatever this build's vectors (aert_wino_pays) */
#define AERT_WINO_MIN 1
#define AERT_WINO2_MIN 1
#define AERT_WINO_DW_MIN 1
#define AERT_WINO2_DW_MIN 1
#include "aert_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void fill(aert_real *p, long n, int seed, double scale) {
  for (long i = 0; i < n; i++) p[i] = (aert_real)((((i * 7919 + seed * 104729) % 2001) - 1000) / 1000.0 * scale);
}

/* y (+)= the k x k convolution of the padded x (hg x wg x cin per image), in double */
static void reference(const aert_conv_geom *g, const aert_real *x, const aert_real *w, const aert_real *y0, double *y) {
  long xs = (long)g->hg * g->wg * g->cin;
  for (int n = 0; n < g->batch; n++)
    for (int oh = 0; oh < g->ho; oh++)
      for (int ow = 0; ow < g->wo; ow++)
        for (int co = 0; co < g->cout; co++) {
          long at = (((long)n * g->ho + oh) * g->wo + ow) * g->cout + co;
          double s = y0 ? y0[at] : 0;
          for (int kh = 0; kh < g->k; kh++)
            for (int kw = 0; kw < g->k; kw++)
              for (int ci = 0; ci < g->cin; ci++)
                s += (double)x[n * xs + ((long)(oh + kh) * g->wg + ow + kw) * g->cin + ci] *
                     w[((long)(kh * g->k + kw) * g->cin + ci) * g->cout + co];
          y[at] = s;
        }
}

/* The forward (Winograd with u, the narrow kernel with its weight scratch wt, else the direct
 * kernel) against the double sums, overwriting and adding to ya (the narrow one only
 * overwrites): every value written, the same bits on 1-3 threads. */
static void forward_checked(const char *what, const aert_conv_geom *g, const aert_real *x, const aert_real *w,
                            const aert_real *u, aert_real *wt, const aert_real *ya) {
  long yn = (long)g->batch * g->ho * g->wo * g->cout;
  aert_real *y0 = malloc(sizeof(aert_real) * yn), *y1 = malloc(sizeof(aert_real) * yn);
  double *ref = malloc(sizeof(double) * yn);
  for (int acc = 0; acc <= !wt; acc++) {
    reference(g, x, w, acc ? ya : NULL, ref);
    for (int threads = 1; threads <= 3; threads++) {
      omp_set_num_threads(threads);
      aert_real *out = threads == 1 ? y0 : y1;
      if (acc) memcpy(out, ya, sizeof(aert_real) * yn);
      else for (long i = 0; i < yn; i++) out[i] = (aert_real)NAN;   /* every value must be written */
      if (u) aert_conv_wino(g, x, w, u, out, acc);
      else if (wt) aert_conv_fwd_narrow(g, x, w, wt, out);
      else aert_conv_fwd(g, x, w, out, acc);
      if (threads > 1 && memcmp(y0, y1, sizeof(aert_real) * yn) != 0) {
        printf("FAIL %s k%d %dx%dx%d -> %d (batch %d, acc %d): %d threads give other bits than one\n", what, g->k, g->ho, g->wo,
               g->cin, g->cout, g->batch, acc, threads);
        failures++;
      }
    }
    double worst = 0;
    for (long i = 0; i < yn; i++) {
      double err = fabs(y0[i] - ref[i]) / (1 + fabs(ref[i]));
      if (!(err <= worst)) worst = err;
    }
    double tol = sizeof(aert_real) == 4 ? 2e-5 : 1e-12;
    if (!(worst <= tol)) {
      printf("FAIL %s k%d %dx%dx%d -> %d (batch %d, acc %d): relative error %.3g above %.0e\n", what, g->k, g->ho, g->wo, g->cin,
             g->cout, g->batch, acc, worst, tol);
      failures++;
    }
  }
  free(y0), free(y1), free(ref);
}

static void check(int k, int batch, int ho, int wo, int extra, int cin, int cout) {
  aert_conv_geom g = {.batch = batch, .s = 1, .hg = ho + k - 1, .wg = wo + k - 1 + extra, .cin = cin, .k = k, .ho = ho,
                      .wo = wo, .cout = cout};
  int taps = k * k, pos = (k + 1) * (k + 1);
  /* the images, then the slack aert_conv_fwd's tiles read into: no more (the Winograd blocks
   * past an odd edge must not read past it) */
  long xn = (long)batch * g.hg * g.wg * cin + AERT_TILE_ACC * (long)cin, yn = (long)batch * ho * wo * cout;
  aert_real *x = malloc(sizeof(aert_real) * xn), *w = malloc(sizeof(aert_real) * taps * cin * cout);
  aert_real *u = malloc(sizeof(aert_real) * pos * cin * cout), *ya = malloc(sizeof(aert_real) * yn);
  fill(x, xn, 1, 1), fill(w, (long)taps * cin * cout, 2, 1 / sqrt(taps * (double)cin)), fill(ya, yn, 3, 1);
  aert_wino_weights(w, u, k, cin, cout);
  forward_checked("wino", &g, x, w, u, NULL, ya);
  /* dx: the flipped filters, transformed, on padded dy give what the direct kernel gives */
  aert_real *wf = malloc(sizeof(aert_real) * taps * cin * cout);
  aert_conv_flip(w, wf, k, cin, cout);
  if (cin % AERT_HLANES == 0) {
    aert_conv_geom d = {.batch = batch, .s = 1, .hg = ho + k - 1, .wg = wo + k - 1 + extra, .cin = cout, .k = k, .ho = ho,
                        .wo = wo, .cout = cin};
    long dn = (long)batch * ho * wo * cin, dpn = (long)batch * d.hg * d.wg * cout + AERT_TILE_ACC * (long)cout;
    aert_real *dx0 = malloc(sizeof(aert_real) * dn), *dx1 = malloc(sizeof(aert_real) * dn);
    aert_real *dyp = malloc(sizeof(aert_real) * dpn);
    fill(dyp, dpn, 4, 1);
    aert_conv_fwd(&d, dyp, wf, dx0, 0);
    aert_wino_weights(wf, u, k, cout, cin);
    aert_conv_wino(&d, dyp, wf, u, dx1, 0);
    double worst = 0;
    for (long i = 0; i < dn; i++) {
      double err = fabs(dx0[i] - dx1[i]) / (1 + fabs(dx0[i]));
      if (!(err <= worst)) worst = err;
    }
    if (!(worst <= (sizeof(aert_real) == 4 ? 2e-5 : 1e-12))) {
      printf("FAIL wino k%d dx %dx%d %d -> %d: relative error %.3g against the direct kernel\n", k, ho, wo, cout, cin, worst);
      failures++;
    }
    free(dx0), free(dx1), free(dyp);
  }
  /* dw: Winograd's weight gradient added to what dw holds, against the direct kernel's, and
   * the same bits on 1-3 threads */
  {
    long wn = (long)taps * cin * cout;
    aert_real *dy = malloc(sizeof(aert_real) * yn), *dw0 = malloc(sizeof(aert_real) * wn), *dw1 = malloc(sizeof(aert_real) * wn);
    aert_real *dw2 = malloc(sizeof(aert_real) * wn), *m = malloc(sizeof(aert_real) * pos * cin * cout);
    fill(dy, yn, 5, 1), fill(dw0, wn, 6, 1);
    memcpy(dw1, dw0, sizeof(aert_real) * wn);
    omp_set_num_threads(2);
    aert_conv_dw(&g, x, dy, dw0);
    for (int threads = 1; threads <= 3; threads++) {
      omp_set_num_threads(threads);
      aert_real *out = threads == 1 ? dw1 : dw2;
      if (threads > 1) fill(out, wn, 6, 1);
      aert_conv_wino_dw(&g, x, dy, m, out);
      if (threads > 1 && memcmp(dw1, dw2, sizeof(aert_real) * wn) != 0) {
        printf("FAIL wino k%d dw %dx%dx%d -> %d (batch %d): %d threads give other bits than one\n", k, ho, wo, cin, cout, batch,
               threads);
        failures++;
      }
    }
    double worst = 0, big = 0;
    for (long i = 0; i < wn; i++) big = fmax(big, fabs(dw0[i]));
    for (long i = 0; i < wn; i++) {
      double err = fabs(dw0[i] - dw1[i]) / (1 + big);
      if (!(err <= worst)) worst = err;
    }
    if (!(worst <= (sizeof(aert_real) == 4 ? 2e-5 : 1e-12))) {
      printf("FAIL wino k%d dw %dx%dx%d -> %d (batch %d): error %.3g of the largest value against the direct kernel\n", k, ho,
             wo, cin, cout, batch, worst);
      failures++;
    }
    free(dy), free(dw0), free(dw1), free(dw2), free(m);
  }
  free(x), free(w), free(wf), free(u), free(ya);
}

/* images 1 .. batch of an unpadded h x w x cin tensor (batch + 1 images), padded by one on
 * every side: read in place against aert_pad_stack's copy, forward (acc 0 and 1) and the
 * weight gradient, bit for bit; then as two parts of a stack (concat), which must copy. */
static void check_stack(int k, int batch, int h, int w, int cin, int cout) {
  aert_stack_part one[1] = {{.c = cin, .off = 0, .factor = 1}}, two[2] = {{.c = cin / 2, .off = 0, .factor = 1},
                                                                        {.c = cin - cin / 2, .off = cin / 2, .factor = 1}};
  aert_pad_geom p = {.batch = batch, .h = h, .w = w, .c = cin, .pt = 1, .pl = 1, .s = 1, .hp = h + 2, .wp = w + 2,
                     .slack = (long)AERT_TILE_ACC * cin, .parts = 1, .part = one};
  int ho = k == 3 ? h : h + 1, wo = k == 3 ? w : w + 1, taps = k * k, pos = (k + 1) * (k + 1);
  aert_conv_geom g = {.batch = batch, .s = 1, .hg = h + 2, .wg = w + 2, .cin = cin, .k = k, .ho = ho, .wo = wo, .cout = cout};
  long image = (long)h * w * cin, xn = (long)batch * (h + 2) * (w + 2) * cin + p.slack, yn = (long)batch * ho * wo * cout;
  long wn = (long)taps * cin * cout;
  aert_real *x = malloc(sizeof(aert_real) * (batch + 1) * image), *xp = malloc(sizeof(aert_real) * xn);
  aert_real *wt = malloc(sizeof(aert_real) * wn), *u = malloc(sizeof(aert_real) * pos * cin * cout);
  aert_real *ya = malloc(sizeof(aert_real) * yn), *yb = malloc(sizeof(aert_real) * yn), *dy = malloc(sizeof(aert_real) * yn);
  aert_real *dwa = malloc(sizeof(aert_real) * wn), *dwb = malloc(sizeof(aert_real) * wn), *m = malloc(sizeof(aert_real) * pos * cin * cout);
  /* the parts of the two-part stack: the channels of x split in two tensors */
  aert_real *xa = malloc(sizeof(aert_real) * (batch + 1) * h * w * two[0].c), *xb = malloc(sizeof(aert_real) * (batch + 1) * h * w * two[1].c);
  fill(x, (batch + 1) * image, 7, 1), fill(wt, wn, 8, 1 / sqrt(taps * (double)cin)), fill(dy, yn, 9, 1);
  for (long px = 0; px < (long)(batch + 1) * h * w; px++) {
    memcpy(xa + px * two[0].c, x + px * cin, sizeof(aert_real) * two[0].c);
    memcpy(xb + px * two[1].c, x + px * cin + two[0].c, sizeof(aert_real) * two[1].c);
  }
  aert_wino_weights(wt, u, k, cin, cout);
  omp_set_num_threads(2);
  for (int acc = 0; acc <= 1; acc++) {
    fill(ya, yn, 10, 1), fill(yb, yn, 10, 1);
    aert_pad_stack(&p, xp, 1, (const aert_real *const[]){x});
    aert_conv_wino(&g, xp, wt, u, ya, acc);
    for (long i = 0; i < xn; i++) xp[i] = (aert_real)NAN;   /* nothing read from a stale copy */
    aert_conv_wino_stack(&p, xp, 1, (const aert_real *const[]){x}, &g, wt, u, yb, acc);
    if (memcmp(ya, yb, sizeof(aert_real) * yn) != 0) {
      printf("FAIL wino k%d stack %dx%dx%d -> %d (batch %d, acc %d): read in place, other bits than from the padded copy\n", k,
             h, w, cin, cout, batch, acc);
      failures++;
    }
    p.parts = 2, p.part = two, fill(yb, yn, 10, 1);
    aert_conv_wino_stack(&p, xp, 1, (const aert_real *const[]){xa, xb}, &g, wt, u, yb, acc);
    p.parts = 1, p.part = one;
    if (memcmp(ya, yb, sizeof(aert_real) * yn) != 0) {
      printf("FAIL wino k%d stack of two parts %dx%dx%d -> %d (acc %d): other bits than the one tensor's\n", k, h, w, cin, cout,
             acc);
      failures++;
    }
  }
  fill(dwa, wn, 11, 1), fill(dwb, wn, 11, 1);
  aert_pad_stack(&p, xp, 1, (const aert_real *const[]){x});
  aert_conv_wino_dw(&g, xp, dy, m, dwa);
  for (long i = 0; i < xn; i++) xp[i] = (aert_real)NAN;
  aert_conv_wino_dw_stack(&p, xp, 1, (const aert_real *const[]){x}, &g, dy, m, dwb);
  if (memcmp(dwa, dwb, sizeof(aert_real) * wn) != 0) {
    printf("FAIL wino k%d dw stack %dx%dx%d -> %d (batch %d): read in place, other bits than from the padded copy\n", k, h, w,
           cin, cout, batch);
    failures++;
  }
  free(x), free(xp), free(wt), free(u), free(ya), free(yb), free(dy), free(dwa), free(dwb), free(m), free(xa), free(xb);
}

/* The narrow kernels (fewer output channels than a vector) reading images 1 .. batch of an
 * unpadded h x w x cin tensor in place, against the same from aert_pad_stack's copy, bit for
 * bit: forward and weight gradient, pt / pl rows and columns of padding before and pb / pr
 * after (a tap on the padding is skipped in place, added as 0 * w from the copy). */
static void check_narrow_stack(int k, int pt, int pl, int pb, int pr, int batch, int h, int w, int cin, int cout) {
  aert_stack_part one[1] = {{.c = cin, .off = 0, .factor = 1}};
  int hp = h + pt + pb, wp = w + pl + pr, ho = hp - k + 1, wo = wp - k + 1, taps = k * k;
  aert_pad_geom p = {.batch = batch, .h = h, .w = w, .c = cin, .pt = pt, .pl = pl, .s = 1, .hp = hp, .wp = wp,
                     .slack = (long)AERT_TILE_ACC * cin, .parts = 1, .part = one};
  aert_conv_geom g = {.batch = batch, .s = 1, .hg = hp, .wg = wp, .cin = cin, .k = k, .ho = ho, .wo = wo, .cout = cout};
  long image = (long)h * w * cin, xn = (long)batch * hp * wp * cin + p.slack, yn = (long)batch * ho * wo * cout;
  long wn = (long)taps * cin * cout;
  aert_real *x = malloc(sizeof(aert_real) * (batch + 1) * image), *xp = malloc(sizeof(aert_real) * xn);
  aert_real *wt = malloc(sizeof(aert_real) * wn), *wg = malloc(sizeof(aert_real) * wn), *dy = malloc(sizeof(aert_real) * yn);
  aert_real *ya = malloc(sizeof(aert_real) * yn), *yb = malloc(sizeof(aert_real) * yn);
  aert_real *dwa = malloc(sizeof(aert_real) * wn), *dwb = malloc(sizeof(aert_real) * wn);
  fill(x, (batch + 1) * image, 7, 1), fill(wt, wn, 8, 1 / sqrt(taps * (double)cin)), fill(dy, yn, 9, 1);
  fill(ya, yn, 10, 1), fill(yb, yn, 10, 1), fill(dwa, wn, 11, 1), fill(dwb, wn, 11, 1);
  for (int threads = 1; threads <= 2; threads++) {
    omp_set_num_threads(threads);
    aert_pad_stack(&p, xp, 1, (const aert_real *const[]){x});
    aert_conv_fwd_narrow(&g, xp, wt, wg, ya);
    aert_conv_dw_narrow(&g, xp, dy, dwa);
    for (long i = 0; i < xn; i++) xp[i] = (aert_real)NAN;   /* nothing read from a stale copy */
    aert_conv_fwd_narrow_stack(&p, xp, 1, (const aert_real *const[]){x}, &g, wt, wg, yb);
    aert_conv_dw_narrow_stack(&p, xp, 1, (const aert_real *const[]){x}, &g, dy, dwb);
    if (memcmp(ya, yb, sizeof(aert_real) * yn) != 0 || memcmp(dwa, dwb, sizeof(aert_real) * wn) != 0) {
      printf("FAIL narrow k%d pad %d %d %d %d, %dx%dx%d -> %d (batch %d, %d threads): read in place, other bits than from the "
             "padded copy (forward %s, dw %s)\n", k, pt, pl, pb, pr, h, w, cin, cout, batch, threads,
             memcmp(ya, yb, sizeof(aert_real) * yn) ? "differs" : "same", memcmp(dwa, dwb, sizeof(aert_real) * wn) ? "differs" : "same");
      failures++;
    }
  }
  free(x), free(xp), free(wt), free(wg), free(dy), free(ya), free(yb), free(dwa), free(dwb);
}

/* aert_conv_fwd (direct, stride 1) against the double sums; with narrow, aert_conv_fwd_narrow
 * (fewer output channels than a vector) */
static void check_direct(int k, int batch, int ho, int wo, int extra, int cin, int cout, int narrow) {
  aert_conv_geom g = {.batch = batch, .s = 1, .hg = ho + k - 1, .wg = wo + k - 1 + extra, .cin = cin, .k = k, .ho = ho,
                      .wo = wo, .cout = cout};
  long xn = (long)batch * g.hg * g.wg * cin + AERT_TILE_ACC * (long)cin, yn = (long)batch * ho * wo * cout;
  aert_real *x = malloc(sizeof(aert_real) * xn), *w = malloc(sizeof(aert_real) * k * k * cin * cout);
  aert_real *ya = malloc(sizeof(aert_real) * yn);
  fill(x, xn, 7, 1), fill(w, (long)k * k * cin * cout, 8, 1 / sqrt(k * k * (double)cin)), fill(ya, yn, 9, 1);
  aert_real *wt = narrow ? malloc(sizeof(aert_real) * k * k * cin * cout) : NULL;
  forward_checked(narrow ? "narrow" : "direct", &g, x, w, NULL, wt, ya);
  if (!narrow) {   /* the bias and a ReLU (or none) applied as the tiles store: aert_bias_act's bits */
    aert_real *b = malloc(sizeof(aert_real) * cout), *yb = malloc(sizeof(aert_real) * yn);
    fill(b, cout, 10, 1);
    for (int act = 0; act < 2; act++)
      for (int threads = 1; threads <= 3; threads++) {
        aert_act a = act ? AERT_ACT_RELU : AERT_ACT_LINEAR;
        omp_set_num_threads(threads);
        aert_conv_fwd(&g, x, w, ya, 0);
        aert_bias_act(ya, b, (long)batch * ho * wo, cout, a, 0);
        fill(yb, yn, 11, 1);
        aert_conv_fwd_bias_act(&g, x, w, yb, b, a);
        if (memcmp(ya, yb, sizeof(aert_real) * yn) != 0) {
          printf("FAIL direct k%d %dx%dx%d -> %d, %s on store (%d threads): other bits than aert_bias_act's pass\n", k, ho, wo,
                 cin, cout, act ? "relu" : "bias", threads);
          failures++;
        }
      }
    free(b), free(yb);
  }
  free(x), free(w), free(ya), free(wt);
}

/* A k x k conv at stride s with pt rows and columns of padding before, h x w x cin -> ho x wo
 * x cout, summed in double from its definition: dx += dy w^T (w, dx given) and dw += x^T dy
 * (x, dw given). */
static void strided_sums(int k, int s, int pt, int batch, int h, int w, int cin, int cout, const aert_real *x,
                         const aert_real *dy, const aert_real *wt, double *dx, double *dw) {
  int ho = (h + 2 * pt - k) / s + 1, wo = (w + 2 * pt - k) / s + 1;
  for (int n = 0; n < batch; n++)
    for (int oh = 0; oh < ho; oh++)
      for (int ow = 0; ow < wo; ow++)
        for (int kh = 0; kh < k; kh++)
          for (int kw = 0; kw < k; kw++) {
            int th = oh * s + kh - pt, tw = ow * s + kw - pt;
            if (th < 0 || th >= h || tw < 0 || tw >= w) continue;
            for (int ci = 0; ci < cin; ci++)
              for (int co = 0; co < cout; co++) {
                long xi = (((long)n * h + th) * w + tw) * cin + ci, wi = ((long)(kh * k + kw) * cin + ci) * cout + co;
                double d = dy[(((long)n * ho + oh) * wo + ow) * cout + co];
                if (dx) dx[xi] += d * wt[wi];
                if (dw) dw[wi] += (double)x[xi] * d;
              }
          }
}

/* aert_conv_dw at stride s (the input split into phases by aert_pad_stack, pt rows and
 * columns of padding before) against the weight gradient summed in double, added to what dw
 * holds; the same bits on 1-3 threads. With AVX2 a strided conv's 32 rows per tap run as
 * tiles of 3 rows of four vectors (aert_conv_dw_nv). */
static void check_dw_strided(int k, int s, int pt, int batch, int h, int w, int cin, int cout) {
  aert_stack_part one[1] = {{.c = cin, .off = 0, .factor = 1}};
  int ho = (h + 2 * pt - k) / s + 1, wo = (w + 2 * pt - k) / s + 1;
  int hg = ((ho - 1) * s + k + s - 1) / s, wg = ((wo - 1) * s + k + s - 1) / s;
  aert_pad_geom p = {.batch = batch, .h = h, .w = w, .c = cin, .pt = pt, .pl = pt, .s = s, .hp = hg, .wp = wg,
                     .slack = (long)AERT_TILE_ACC * cin, .parts = 1, .part = one};
  aert_conv_geom g = {.batch = batch, .s = s, .hg = hg, .wg = wg, .cin = cin, .k = k, .ho = ho, .wo = wo, .cout = cout};
  long xn = (long)batch * h * w * cin, xpn = (long)batch * s * s * hg * wg * cin + p.slack, yn = (long)batch * ho * wo * cout;
  long wn = (long)k * k * cin * cout;
  aert_real *x = malloc(sizeof(aert_real) * xn), *xp = malloc(sizeof(aert_real) * xpn), *dy = malloc(sizeof(aert_real) * yn);
  aert_real *dw0 = malloc(sizeof(aert_real) * wn), *dw1 = malloc(sizeof(aert_real) * wn);
  double *ref = malloc(sizeof(double) * wn);
  fill(x, xn, 21, 1), fill(dy, yn, 22, 1), fill(dw0, wn, 23, 1);
  for (long i = 0; i < wn; i++) ref[i] = dw0[i];
  strided_sums(k, s, pt, batch, h, w, cin, cout, x, dy, NULL, NULL, ref);
  aert_pad_stack(&p, xp, 0, (const aert_real *const[]){x});
  memcpy(dw1, dw0, sizeof(aert_real) * wn);
  omp_set_num_threads(1);
  aert_conv_dw(&g, xp, dy, dw0);
  for (int threads = 2; threads <= 3; threads++) {
    aert_real *out = malloc(sizeof(aert_real) * wn);
    memcpy(out, dw1, sizeof(aert_real) * wn);
    omp_set_num_threads(threads);
    aert_conv_dw(&g, xp, dy, out);
    if (memcmp(out, dw0, sizeof(aert_real) * wn) != 0) {
      printf("FAIL dw k%d s%d %dx%dx%d -> %d: %d threads give other bits than one\n", k, s, h, w, cin, cout, threads);
      failures++;
    }
    free(out);
  }
  double worst = 0;
  for (long i = 0; i < wn; i++) {
    double err = fabs(dw0[i] - ref[i]) / (1 + fabs(ref[i]));
    if (!(err <= worst)) worst = err;
  }
  if (!(worst <= (sizeof(aert_real) == 4 ? 2e-5 : 1e-12))) {
    printf("FAIL dw k%d s%d pad %d %dx%dx%d -> %d (batch %d): relative error %.3g\n", k, s, pt, h, w, cin, cout, batch, worst);
    failures++;
  }
  free(x), free(xp), free(dy), free(dw0), free(dw1), free(ref);
}

/* aert_conv_dx_phases (dx of a k x k conv at stride s, pt rows and pl columns of padding
 * before the image) against dx summed in double from its definition; storing and adding, the
 * same bits on 1-3 threads. */
static void check_dx_phases(int k, int s, int pt, int batch, int h, int w, int cin, int cout) {
  int ho = (h + 2 * pt - k) / s + 1, wo = (w + 2 * pt - k) / s + 1, d = (k - 1) / s, hp = ho + d, wp = wo + d;
  for (int q = 0; q < s; q++) {   /* the rows and columns the phases read */
    int ry = aert_dx_rows(h, q, s) + (q + pt) / s + d, rx = aert_dx_rows(w, q, s) + (q + pt) / s + d;
    hp = ry > hp ? ry : hp, wp = rx > wp ? rx : wp;
  }
  aert_dx_geom g = {.batch = batch, .s = s, .k = k, .pt = pt, .pl = pt, .h = h, .w = w, .ho = ho, .wo = wo, .hp = hp, .wp = wp,
                    .cin = cout, .cout = cin};
  long dyn = (long)batch * ho * wo * cout, dxn = (long)batch * h * w * cin, pn = (long)batch * hp * wp * cout + 2L * AERT_TILE_ACC * cout;
  aert_real *dy = malloc(sizeof(aert_real) * dyn), *wt = malloc(sizeof(aert_real) * k * k * cin * cout);
  aert_real *dyp = calloc((size_t)pn, sizeof(aert_real)), *wph = malloc(sizeof(aert_real) * k * k * cin * cout);
  aert_real *dx0 = malloc(sizeof(aert_real) * dxn), *dx1 = malloc(sizeof(aert_real) * dxn);
  aert_real *dxa = malloc(sizeof(aert_real) * dxn);
  double *ref = malloc(sizeof(double) * dxn);
  fill(dy, dyn, 11, 1), fill(wt, (long)k * k * cin * cout, 12, 1 / sqrt(k * k * (double)cout)), fill(dxa, dxn, 13, 1);
  for (int n = 0; n < batch; n++)
    for (int oh = 0; oh < ho; oh++)
      memcpy(dyp + (((long)n * hp + oh + d) * wp + d) * cout, dy + ((long)n * ho + oh) * wo * cout, sizeof(aert_real) * wo * cout);
  aert_dx_weights(&g, wt, wph);
  for (int acc = 0; acc <= 1; acc++) {
    for (long i = 0; i < dxn; i++) ref[i] = acc ? dxa[i] : 0;
    strided_sums(k, s, pt, batch, h, w, cin, cout, NULL, dy, wt, ref, NULL);
    for (int threads = 1; threads <= 3; threads++) {
      omp_set_num_threads(threads);
      aert_real *out = threads == 1 ? dx0 : dx1;
      if (acc) memcpy(out, dxa, sizeof(aert_real) * dxn);
      else for (long i = 0; i < dxn; i++) out[i] = (aert_real)NAN;   /* every value must be written */
      aert_conv_dx_phases(&g, dyp, wph, out, acc);
      if (threads > 1 && memcmp(dx0, dx1, sizeof(aert_real) * dxn) != 0) {
        printf("FAIL dx phases k%d s%d %dx%dx%d <- %d: %d threads give other bits than one\n", k, s, h, w, cin, cout, threads);
        failures++;
      }
    }
    double worst = 0;
    for (long i = 0; i < dxn; i++) {
      double err = fabs(dx0[i] - ref[i]) / (1 + fabs(ref[i]));
      if (!(err <= worst)) worst = err;
    }
    if (!(worst <= (sizeof(aert_real) == 4 ? 2e-5 : 1e-12))) {
      printf("FAIL dx phases k%d s%d pad %d %dx%dx%d <- %d (batch %d, acc %d): relative error %.3g\n", k, s, pt, h, w, cin, cout,
             batch, acc, worst);
      failures++;
    }
  }
  free(dy), free(wt), free(dyp), free(wph), free(dx0), free(dx1), free(dxa), free(ref);
}

int main(void) {
  /* the direct kernel: one vector of output channels (3x3 by window rows where the build has
   * them) over the channel counts with tiles of their own and others, half vectors, a tile
   * that crosses rows and images' ends, rows wider than the output; 5x5 and two vectors */
  check_direct(3, 2, 64, 64, 0, 8, 8, 0);
  check_direct(3, 1, 9, 13, 2, 16, 8, 0);
  check_direct(3, 2, 7, 5, 0, 32, 8, 0);
  check_direct(3, 1, 6, 6, 0, 3, 8, 0);
  check_direct(3, 2, 5, 11, 1, 8, 4, 0);
  check_direct(3, 1, 4, 4, 0, 5, 4, 0);
  check_direct(5, 1, 8, 8, 0, 8, 8, 0);
  check_direct(3, 1, 8, 8, 0, 16, 16, 0);
  check_direct(3, 1, 6, 7, 1, 8, 48, 0);   /* several blocks of output channels (each its own bias) */
  /* the narrow kernel: rows of 8 and 4 pixels side by side and single ones (28 = 8 + 8 + 8
   * + 4, 13 = 8 + 4 + 1, 3), one and three output channels, rows wider than the output */
  check_direct(3, 2, 28, 28, 0, 32, 1, 1);
  check_direct(3, 1, 5, 13, 2, 16, 3, 1);
  check_direct(5, 2, 4, 3, 0, 16, 1, 1);
  /* ... and read in place: conv_ae's last layer ('same'), 'valid' (no padding), 5x5, padding
   * unequal before and after, an image narrower than the window (no column with every tap) */
  check_narrow_stack(3, 1, 1, 1, 1, 2, 28, 28, 32, 1);
  check_narrow_stack(3, 0, 0, 0, 0, 2, 9, 13, 16, 3);
  check_narrow_stack(5, 2, 2, 2, 2, 1, 7, 6, 16, 1);
  check_narrow_stack(4, 1, 2, 2, 1, 2, 5, 11, 32, 2);
  check_narrow_stack(5, 2, 2, 2, 2, 1, 2, 3, 16, 3);
  /* the weight gradient of strided convs: conv_ae's encoder (32 rows per tap), 64 channels,
   * odd sizes, two vectors of output channels, a 5x5 window */
  check_dw_strided(3, 2, 1, 2, 28, 28, 32, 32);
  check_dw_strided(3, 2, 1, 2, 14, 14, 64, 64);
  check_dw_strided(3, 2, 1, 3, 9, 11, 32, 16);
  check_dw_strided(5, 2, 2, 2, 10, 9, 16, 64);
  /* dx of strided convs by phases: conv_ae's encoder (3x3 / 2, 'same'), odd sizes (phases of
   * unequal rows), 5x5 and 4x4 windows, stride 3, a window smaller than the stride (phases
   * without taps), half vectors and one-vector tiles */
  check_dx_phases(3, 2, 1, 2, 28, 28, 32, 32);
  check_dx_phases(3, 2, 1, 3, 14, 14, 64, 64);
  check_dx_phases(3, 2, 1, 1, 7, 9, 16, 8);
  check_dx_phases(5, 2, 2, 2, 9, 10, 8, 16);
  check_dx_phases(4, 2, 1, 1, 8, 8, 16, 24);
  check_dx_phases(3, 3, 0, 2, 9, 11, 8, 8);
  check_dx_phases(1, 2, 0, 2, 8, 7, 16, 16);
  check_dx_phases(3, 2, 1, 2, 6, 6, 24, 3);
  /* F(2x2, 3x3) */
  check(3, 1, 8, 8, 0, 24, 16);     /* the U-Net's first layer: 24 bands */
  check(3, 2, 6, 10, 3, 4, 8);      /* half vectors out, a few channels in, rows wider than the output */
  check(3, 1, 34, 18, 0, 16, 32);   /* many runs, the last one short */
  check(3, 2, 4, 4, 0, 64, 48);     /* three vectors (AVX-512) or six (AVX2) of output channels */
  check(3, 1, 16, 16, 0, 128, 256); /* a deep layer: runs of a few blocks */
  check(3, 1, 2, 2, 0, 8, 8);       /* one block */
  check(3, 2, 5, 7, 0, 16, 16);     /* odd sizes: the last blocks store part of themselves */
  check(3, 2, 6, 6, 0, 1, 32);      /* one band, three bands in: the direct dw's short tiles (3, 9 rows) */
  check(3, 1, 7, 5, 0, 3, 16);
  /* F(2x2, 2x2): the phases of a 3x3 conv over a 2x upsample, (h + 1) x (w + 1) outputs */
  check(2, 2, 9, 9, 0, 16, 64);     /* odd, a batch: the last row of blocks reads no further than the image */
  check(2, 1, 17, 11, 2, 32, 32);   /* odd, rows wider than the output */
  check(2, 1, 33, 33, 0, 16, 16);   /* odd, a row longer than the slack behind the image (under valgrind) */
  check(2, 1, 8, 8, 0, 64, 16);     /* even (the phases' dx) */
  check(2, 3, 3, 3, 0, 128, 256);   /* small images of wide layers */
  /* read in place: same convs (k = 3), phases (k = 2: (h + 1) x (w + 1)), odd sizes, one block */
  check_stack(3, 2, 8, 8, 16, 16);
  check_stack(3, 1, 5, 7, 24, 32);
  check_stack(3, 1, 2, 2, 64, 64);
  check_stack(3, 2, 34, 18, 16, 48);
  check_stack(2, 2, 9, 9, 16, 64);
  check_stack(2, 1, 8, 6, 32, 32);
  check_stack(2, 1, 1, 1, 128, 256);
  if (failures) return 1;
  printf("wino: the direct and narrow kernels, F(2x2, 3x3) and F(2x2, 2x2) match the direct convolution in double (forward, dx and dw, "
         "acc, batches, odd sizes, half vectors) with the same bits on 1-3 threads; read in place as from the padded copy\n");
  return 0;
}
