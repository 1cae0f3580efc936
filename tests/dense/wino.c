/* wino.c - aert_conv_wino (Winograd F(2x2, 3x3)) against a direct convolution summed in
 * double, for the channel counts the CPU target gives it (whole and half vectors of
 * output channels, input channels of any count: 24 bands, 4, a run's last blocks short),
 * images of several sizes (one block of runs, many runs, rows wider than the output),
 * batches of two, overwriting and adding (acc); and the same bits on 1, 2 and 3 threads.
 * Also the transformed weights of flipped filters carry dy back as the direct kernel does,
 * and the weight gradient (aert_conv_wino_dw) adds what the direct one adds. */
/* the Winograd kernels themselves, whatever this build's vectors (aert_wino_pays) */
#define AERT_WINO_MIN 1
#define AERT_WINO_DW_MIN 1
#include "aert_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

static void fill(aert_real *p, long n, int seed, double scale) {
  for (long i = 0; i < n; i++) p[i] = (aert_real)((((i * 7919 + seed * 104729) % 2001) - 1000) / 1000.0 * scale);
}

/* y (+)= the 3x3 convolution of the padded x (hg x wg x cin per image), in double */
static void reference(const aert_conv_geom *g, const aert_real *x, const aert_real *w, const aert_real *y0, double *y) {
  long xs = (long)g->hg * g->wg * g->cin;
  for (int n = 0; n < g->batch; n++)
    for (int oh = 0; oh < g->ho; oh++)
      for (int ow = 0; ow < g->wo; ow++)
        for (int co = 0; co < g->cout; co++) {
          long at = (((long)n * g->ho + oh) * g->wo + ow) * g->cout + co;
          double s = y0 ? y0[at] : 0;
          for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
              for (int ci = 0; ci < g->cin; ci++)
                s += (double)x[n * xs + ((long)(oh + kh) * g->wg + ow + kw) * g->cin + ci] *
                     w[((long)(kh * 3 + kw) * g->cin + ci) * g->cout + co];
          y[at] = s;
        }
}

static void check(int batch, int ho, int wo, int extra, int cin, int cout) {
  aert_conv_geom g = {.batch = batch, .s = 1, .hg = ho + 2, .wg = wo + 2 + extra, .cin = cin, .k = 3, .ho = ho, .wo = wo,
                      .cout = cout};
  long xn = (long)batch * g.hg * g.wg * cin + 64L * cin, yn = (long)batch * ho * wo * cout;
  aert_real *x = malloc(sizeof(aert_real) * xn), *w = malloc(sizeof(aert_real) * 9 * cin * cout);
  aert_real *u = malloc(sizeof(aert_real) * 16 * cin * cout), *y0 = malloc(sizeof(aert_real) * yn);
  aert_real *y1 = malloc(sizeof(aert_real) * yn), *ya = malloc(sizeof(aert_real) * yn);
  double *ref = malloc(sizeof(double) * yn);
  fill(x, xn, 1, 1), fill(w, 9L * cin * cout, 2, 1 / sqrt(9.0 * cin)), fill(ya, yn, 3, 1);
  aert_wino_weights(w, u, cin, cout);
  for (int acc = 0; acc <= 1; acc++) {
    reference(&g, x, w, acc ? ya : NULL, ref);
    for (int threads = 1; threads <= 3; threads++) {
      omp_set_num_threads(threads);
      aert_real *out = threads == 1 ? y0 : y1;
      if (acc) memcpy(out, ya, sizeof(aert_real) * yn);
      else for (long i = 0; i < yn; i++) out[i] = (aert_real)NAN;   /* every value must be written */
      aert_conv_wino(&g, x, w, u, out, acc);
      if (threads > 1 && memcmp(y0, y1, sizeof(aert_real) * yn) != 0) {
        printf("FAIL wino %dx%dx%d -> %d (batch %d, acc %d): %d threads give other bits than one\n", ho, wo, cin, cout, batch,
               acc, threads);
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
      printf("FAIL wino %dx%dx%d -> %d (batch %d, acc %d): relative error %.3g above %.0e\n", ho, wo, cin, cout, batch, acc,
             worst, tol);
      failures++;
    }
  }
  /* dx: the flipped filters, transformed, on dy padded by 1 give what the direct kernel gives */
  aert_real *wf = malloc(sizeof(aert_real) * 9 * cin * cout);
  aert_conv_flip(w, wf, 3, cin, cout);
  if (cin % AERT_HLANES == 0) {
    aert_conv_geom d = {.batch = batch, .s = 1, .hg = ho + 2, .wg = wo + 2 + extra, .cin = cout, .k = 3, .ho = ho, .wo = wo,
                        .cout = cin};
    long dn = (long)batch * ho * wo * cin;
    aert_real *dx0 = malloc(sizeof(aert_real) * dn), *dx1 = malloc(sizeof(aert_real) * dn);
    aert_real *dyp = malloc(sizeof(aert_real) * ((long)batch * d.hg * d.wg * cout + 64L * cout));
    fill(dyp, (long)batch * d.hg * d.wg * cout + 64L * cout, 4, 1);
    aert_conv_fwd(&d, dyp, wf, dx0, 0);
    aert_wino_weights(wf, u, cout, cin);
    aert_conv_wino(&d, dyp, wf, u, dx1, 0);
    double worst = 0;
    for (long i = 0; i < dn; i++) {
      double err = fabs(dx0[i] - dx1[i]) / (1 + fabs(dx0[i]));
      if (!(err <= worst)) worst = err;
    }
    if (!(worst <= (sizeof(aert_real) == 4 ? 2e-5 : 1e-12))) {
      printf("FAIL wino dx %dx%d %d -> %d: relative error %.3g against the direct kernel\n", ho, wo, cout, cin, worst);
      failures++;
    }
    free(dx0), free(dx1), free(dyp);
  }
  /* dw: Winograd's weight gradient added to what dw holds, against the direct kernel's, and
   * the same bits on 1-3 threads */
  {
    long wn = 9L * cin * cout;
    aert_real *dy = malloc(sizeof(aert_real) * yn), *dw0 = malloc(sizeof(aert_real) * wn), *dw1 = malloc(sizeof(aert_real) * wn);
    aert_real *dw2 = malloc(sizeof(aert_real) * wn), *m = malloc(sizeof(aert_real) * 16 * cin * cout);
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
        printf("FAIL wino dw %dx%dx%d -> %d (batch %d): %d threads give other bits than one\n", ho, wo, cin, cout, batch, threads);
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
      printf("FAIL wino dw %dx%dx%d -> %d (batch %d): error %.3g of the largest value against the direct kernel\n", ho, wo, cin,
             cout, batch, worst);
      failures++;
    }
    free(dy), free(dw0), free(dw1), free(dw2), free(m);
  }
  free(x), free(w), free(wf), free(u), free(y0), free(y1), free(ya), free(ref);
}

int main(void) {
  check(1, 8, 8, 0, 24, 16);     /* the U-Net's first layer: 24 bands */
  check(2, 6, 10, 3, 4, 8);      /* half vectors out, a few channels in, rows wider than the output */
  check(1, 34, 18, 0, 16, 32);   /* many runs, the last one short */
  check(2, 4, 4, 0, 64, 48);     /* three vectors (AVX-512) or six (AVX2) of output channels */
  check(1, 16, 16, 0, 128, 256); /* a deep layer: runs of a few blocks */
  check(1, 2, 2, 0, 8, 8);       /* one block */
  if (failures) return 1;
  printf("wino: F(2x2, 3x3) matches the direct convolution (forward, dx and dw, acc, batches, half vectors) with the same "
         "bits on 1-3 threads\n");
  return 0;
}
