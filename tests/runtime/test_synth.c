/* test_synth.c - synthetic land-cover scenes: the same bytes for a seed on any thread, labels
 * in the Chesapeake codes, every class present, plausible class shares, band values ordered
 * by class as real reflectances are, images zero under no data, Landsat smoother than NAIP. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define S 512
#define SEEDS 10
#define NL 9

typedef struct {
  unsigned char *lab, *naip;
  float *ls;
} scene;

static scene draw(uint64_t seed, int size) {
  scene s = {malloc((size_t)size * size), malloc((size_t)size * size * 4),
             malloc(sizeof(float) * size * size * NL)};
  cr_assert(s.lab && s.naip && s.ls);
  aert_synth_scene(seed, size, s.lab, s.naip, s.ls);
  return s;
}

static void drop(scene *s) { free(s->lab), free(s->naip), free(s->ls); }

static int valid_label(int l) {
  return (l >= AERT_LC_WATER && l <= AERT_LC_ROAD) || l == AERT_LC_NODATA;
}

Test(synth, same_seed_same_bytes) {
  scene a = draw(42, 200), b = draw(42, 200), c = draw(43, 200);
  cr_assert(!memcmp(a.lab, b.lab, 200 * 200));
  cr_assert(!memcmp(a.naip, b.naip, 200 * 200 * 4));
  cr_assert(!memcmp(a.ls, b.ls, sizeof(float) * 200 * 200 * NL));
  long diff = 0;
  for (long i = 0; i < 200 * 200; i++)
    diff += a.lab[i] != c.lab[i];
  cr_assert_gt(diff, 200 * 200 / 10, "seeds 42 and 43 differ in only %ld labels", diff);
  drop(&a), drop(&b), drop(&c);
}

Test(synth, same_bytes_on_every_thread) {
  enum { N = 6, Z = 160 };
  static unsigned char lab[N][Z * Z], naip[N][Z * Z * 4];
  static float ls[N][Z * Z * NL];
#pragma omp parallel for schedule(dynamic, 1) num_threads(3)
  for (int k = 0; k < N; k++)
    aert_synth_scene(1000 + k, Z, lab[k], naip[k], ls[k]);
  for (int k = 0; k < N; k++) {
    scene s = draw(1000 + k, Z);
    cr_assert(!memcmp(s.lab, lab[k], Z * Z) && !memcmp(s.naip, naip[k], Z * Z * 4) &&
                  !memcmp(s.ls, ls[k], sizeof(float) * Z * Z * NL),
              "scene %d drawn on a thread differs", k);
    drop(&s);
  }
}

Test(synth, outputs_are_optional_and_any_size_works) {
  static const int sizes[] = {1, 2, 5, 17, 64, 100};
  for (int i = 0; i < 6; i++) {
    int z = sizes[i];
    scene s = draw(7, z);
    unsigned char *lab = malloc((size_t)z * z);
    aert_synth_scene(7, z, lab, NULL, NULL);
    cr_assert(!memcmp(lab, s.lab, (size_t)z * z), "labels alone differ at size %d", z);
    for (long p = 0; p < (long)z * z; p++) {
      cr_assert(valid_label(s.lab[p]), "label %d at size %d", s.lab[p], z);
      for (int c = 0; c < NL; c++)
        cr_assert(s.ls[NL * p + c] >= 0 && s.ls[NL * p + c] <= 1);
    }
    free(lab), drop(&s);
  }
}

/* Pixel counts per label of SEEDS scenes of S x S, and per-class band sums. */
typedef struct {
  long n[SEEDS][16], all[16];
  double naip[16][4], ls[16][NL];
  int nodata_scenes;
} tally;

static tally *count(void) {
  tally *t = calloc(1, sizeof *t);
  for (int k = 0; k < SEEDS; k++) {
    scene s = draw(k + 1, S);
    for (long p = 0; p < (long)S * S; p++) {
      int l = s.lab[p];
      cr_assert(valid_label(l), "seed %d: label %d at pixel %ld", k + 1, l, p);
      t->n[k][l]++, t->all[l]++;
      for (int c = 0; c < 4; c++)
        t->naip[l][c] += s.naip[4 * p + c];
      for (int c = 0; c < NL; c++) {
        float v = s.ls[NL * p + c];
        cr_assert(v >= 0 && v <= 1, "seed %d: Landsat band %d is %g", k + 1, c, v);
        t->ls[l][c] += v;
      }
      if (l == AERT_LC_NODATA) {
        static const unsigned char zero[4];
        cr_assert(!memcmp(s.naip + 4 * p, zero, 4), "seed %d: NAIP not 0 under no data", k + 1);
        for (int c = 0; c < NL; c++)
          cr_assert_eq(s.ls[NL * p + c], 0, "seed %d: Landsat not 0 under no data", k + 1);
      }
    }
    t->nodata_scenes += t->n[k][AERT_LC_NODATA] > 0;
    drop(&s);
  }
  for (int l = 0; l < 16; l++)
    for (int c = 0; c < NL; c++) {
      if (c < 4)
        t->naip[l][c] /= t->all[l] ? t->all[l] : 1;
      t->ls[l][c] /= t->all[l] ? t->all[l] : 1;
    }
  return t;
}

Test(synth, labels_valid_and_every_class_present) {
  tally *t = count();
  int full = 0;
  for (int k = 0; k < SEEDS; k++) {
    int all = 1;
    for (int l = AERT_LC_WATER; l <= AERT_LC_ROAD; l++)
      all &= t->n[k][l] > 0;
    full += all;
  }
  cr_assert_geq(full, 8, "only %d of %d scenes hold all six classes", full, SEEDS);
  cr_assert_geq(t->nodata_scenes, 1, "no scene has a no-data strip");
  cr_assert_leq(t->nodata_scenes, SEEDS - 3, "most scenes have no data");
  free(t);
}

Test(synth, class_shares) {
  tally *t = count();
  static const struct { int l; double lo, hi; } want[] = {
      {AERT_LC_WATER, 0.04, 0.20},  {AERT_LC_TREE, 0.20, 0.50},       {AERT_LC_LOWVEG, 0.35, 0.65},
      {AERT_LC_BARREN, 0.01, 0.06}, {AERT_LC_IMPERVIOUS, 0.01, 0.07}, {AERT_LC_ROAD, 0.015, 0.07},
      {AERT_LC_NODATA, 0, 0.12}};
  double total = (double)SEEDS * S * S;
  for (int i = 0; i < 7; i++) {
    double f = t->all[want[i].l] / total;
    cr_assert(f >= want[i].lo && f <= want[i].hi, "class %d: %.3f of the pixels, not in [%g, %g]",
              want[i].l, f, want[i].lo, want[i].hi);
  }
  for (int k = 0; k < SEEDS; k++) {   /* vegetation dominates every scene */
    long valid = (long)S * S - t->n[k][AERT_LC_NODATA];
    cr_assert_gt(t->n[k][AERT_LC_TREE] + t->n[k][AERT_LC_LOWVEG], valid / 2, "seed %d", k + 1);
  }
  free(t);
}

static double vis(const double *v) { return v[0] + v[1] + v[2]; }

Test(synth, band_values_ordered_by_class) {
  tally *t = count();
  enum { W = AERT_LC_WATER, T = AERT_LC_TREE, V = AERT_LC_LOWVEG, B = AERT_LC_BARREN,
         I = AERT_LC_IMPERVIOUS, R = AERT_LC_ROAD };
  const double(*n)[4] = (const double(*)[4])t->naip, (*ls)[NL] = (const double(*)[NL])t->ls;
  /* NAIP: R, G, B, NIR. Vegetation bright in NIR, water, roads and roofs dark. */
  for (int veg = T; veg <= V; veg++)
    for (int o = 0; o < 3; o++) {
      int other = (int[]){W, R, I}[o];
      cr_assert_gt(n[veg][3], n[other][3] + 15, "NAIP NIR of %d (%.0f) vs %d (%.0f)", veg,
                   n[veg][3], other, n[other][3]);
      cr_assert_gt(ls[veg][4], ls[other][4] + 0.03, "Landsat NIR of %d (%.3f) vs %d (%.3f)", veg,
                   ls[veg][4], other, ls[other][4]);
    }
  for (int l = T; l <= R; l++) {   /* water the darkest, and the coolest */
    cr_assert_lt(vis(n[W]), vis(n[l]), "NAIP visible of water vs %d", l);
    cr_assert_lt(n[W][3], n[l][3], "NAIP NIR of water vs %d", l);
    if (l != T)   /* canopy is about as dark as water in visible reflectance */
      cr_assert_lt(ls[W][1] + ls[W][2] + ls[W][3], ls[l][1] + ls[l][2] + ls[l][3],
                   "Landsat visible of water vs %d", l);
    for (int c = 4; c < 7; c++)
      cr_assert_lt(ls[W][c], ls[l][c], "Landsat band %d of water vs %d", c, l);
    cr_assert_lt(ls[W][7], ls[l][7], "water is the coolest");
  }
  /* Vegetation green over red; barren and roofs brighter and redder than canopy; trees
   * darker than fields; bare and paved ground warmer than canopy; water bluish. */
  cr_assert_gt(n[T][1], n[T][0]);
  cr_assert_gt(n[V][1], n[V][0]);
  cr_assert_gt(ls[T][2], ls[T][3]);
  cr_assert_gt(ls[V][2], ls[V][3]);
  cr_assert_gt(n[B][0], n[T][0] + 40);
  cr_assert_gt(n[I][0], n[T][0] + 30);
  cr_assert_gt(ls[B][3], ls[T][3] + 0.02);
  cr_assert_lt(vis(n[T]), vis(n[V]));
  cr_assert_lt(n[T][3], n[V][3]);
  cr_assert_gt(n[W][2], n[W][0]);
  cr_assert_gt(ls[B][5], ls[T][5]);
  cr_assert_gt(ls[R][7], ls[T][7]);
  cr_assert_gt(ls[I][7], ls[T][7]);
  free(t);
}

/* Mean absolute difference of horizontal neighbours over the standard deviation. */
static double roughness(const void *img, int is_float, int channels, int c) {
  double sum = 0, sq = 0, d = 0;
  long n = 0;
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      long p = (long)y * S + x;
      double v = is_float ? ((const float *)img)[channels * p + c]
                          : ((const unsigned char *)img)[channels * p + c];
      double w = x + 1 < S ? (is_float ? ((const float *)img)[channels * (p + 1) + c]
                                       : ((const unsigned char *)img)[channels * (p + 1) + c])
                           : v;
      sum += v, sq += v * v, d += fabs(w - v), n++;
    }
  double var = sq / n - (sum / n) * (sum / n);
  return d / n / sqrt(var > 0 ? var : 1e-12);
}

Test(synth, landsat_is_smoother_than_naip) {
  scene s = draw(3, S);
  double rn = roughness(s.naip, 0, 4, 3), rl = roughness(s.ls, 1, NL, 4);
  cr_assert_lt(rl, rn / 5, "Landsat NIR roughness %.3f vs NAIP's %.3f", rl, rn);
  drop(&s);
}
