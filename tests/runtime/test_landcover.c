/* test_landcover.c - the GeoTIFF patch source: band stacking across layer files, label
 * remapping, patch positions inside their tiles (random per epoch for training, a grid for
 * validation and test), image and labels augmented together, the messages for tiles that
 * do not fit, band statistics in checkpoints, and zero loss gradient at no-data pixels. */
#include <criterion/criterion.h>
#include <string.h>
#include "aert_kernels.h"
#include "toy_model.h"

#define P 8            /* patch */
#define TW 20          /* tile width and height: not multiples of the patch */
#define TH 13

/* A model whose input is 8x8x4: bands 1-2 of layer "a" then bands 2-3 of layer "b". */
static aert_model geo_model(void) {
  aert_model m = {.name = "geo", .spec_hash = "0", .batch = 4, .in_rank = 3, .in_shape = {P, P, 4},
                  .in_size = P * P * 4, .target_kind = AERT_TARGET_CLASSES, .target_rank = 2,
                  .target_shape = {P, P}, .target_size = P * P, .n_classes = 6,
                  .class_ids = {1, 2, 3, 4, 5, 6}, .ignore_label = 15};
  m.data = (aert_data){.kind = AERT_DATA_GEOTIFF, .layers = {"a", "b:2-3"}, .n_layers = 2,
                       .label_layer = "lc", .scale = 1, .patch = P, .patches_per_tile = 5,
                       .validation = 0.5f};
  return m;
}

/* Pixel (x, y) of tile k: band values encode where they come from. */
static float value(int k, int band, int x, int y) {
  return (float)(k * 10000 + band * 1000 + y * 32 + x);
}
static int label_at(int x, int y) {
  static const int cycle[8] = {1, 2, 3, 4, 5, 6, 15, 7};   /* 7: not in the spec */
  return cycle[(x + 3 * y) % 8];
}

/* Tiles t0, t1 in dir/split: "a" uint16 chunky strips, "b" float32 planar tiles. */
static void write_tiles(const char *dir, int n) {
  char path[512];
  unsigned short a[TW * TH * 2];
  float b[TW * TH * 3];
  unsigned char lc[TW * TH];
  aert_tiff_layout tiled = {.tile = 16, .planar = 1};
  for (int k = 0; k < n; k++) {
    for (int y = 0; y < TH; y++)
      for (int x = 0; x < TW; x++) {
        int i = y * TW + x;
        for (int c = 0; c < 2; c++) a[i * 2 + c] = (unsigned short)((int)value(k, c, x, y) % 65536);
        for (int c = 0; c < 3; c++) b[i * 3 + c] = value(k, 10 + c, x, y);
        lc[i] = (unsigned char)label_at(x, y);
      }
    snprintf(path, sizeof path, "%s/t%d_a.tif", dir, k);
    cr_assert_eq(aert_tiff_write(path, TW, TH, 2, AERT_PIX_U16, a, NULL, NULL), 0);
    snprintf(path, sizeof path, "%s/t%d_b.tif", dir, k);
    cr_assert_eq(aert_tiff_write(path, TW, TH, 3, AERT_PIX_F32, b, NULL, &tiled), 0);
    snprintf(path, sizeof path, "%s/t%d_lc.tif", dir, k);
    cr_assert_eq(aert_tiff_write(path, TW, TH, 1, AERT_PIX_U8, lc, NULL, NULL), 0);
  }
}

static char *data_with_tiles(int n) {
  char *d = tmp_dir(), *train = path_in(d, "train"), *test = path_in(d, "test");
  cr_assert_eq(aert_mkdir_p(train), 0);
  cr_assert_eq(aert_mkdir_p(test), 0);
  write_tiles(train, n);
  write_tiles(test, 1);
  free(train);
  free(test);
  return d;
}

/* Checks one example against the tile it must come from; returns its corner. */
static void check_example(const float *x, const float *y, int k, int *x0, int *y0) {
  int v = (int)x[0] - k * 10000;
  *x0 = v % 32, *y0 = v / 32;
  cr_assert(*x0 >= 0 && *x0 <= TW - P && *y0 >= 0 && *y0 <= TH - P, "corner %d,%d", *x0, *y0);
  for (int yy = 0; yy < P; yy++)
    for (int xx = 0; xx < P; xx++) {
      const float *px = x + (yy * P + xx) * 4;
      int gx = *x0 + xx, gy = *y0 + yy;
      cr_assert_eq(px[0], value(k, 0, gx, gy));
      cr_assert_eq(px[1], value(k, 1, gx, gy));
      cr_assert_eq(px[2], value(k, 11, gx, gy), "band 2 of b is the third channel");
      cr_assert_eq(px[3], value(k, 12, gx, gy));
      int lab = label_at(gx, gy);
      float want = lab >= 1 && lab <= 6 ? (float)(lab - 1) : -1.0f;
      cr_assert_eq(y[yy * P + xx], want, "label %d at %d,%d", lab, gx, gy);
    }
}

Test(landcover, grid_stacks_bands_and_remaps_labels) {
  aert_model m = geo_model();
  char *d = data_with_tiles(2);
  aert_dataset test;
  cr_assert_eq(aert_data_load(&m, d, 0, 0, &test), 0);
  /* ceil(20/8) x ceil(13/8) = 3 x 2 grid patches, the last ones flush with the edge */
  cr_assert_eq(test.n, 6);
  float x[4 * P * P * 4], y[4 * P * P];
  int seen[6][2], k = 0;
  for (long start = 0; start < test.n; start += 4) {
    int real = aert_batch_fill(&m, &test, NULL, start, x, y);
    for (int b = 0; b < real; b++, k++)
      check_example(x + b * P * P * 4, y + b * P * P, 0, &seen[k][0], &seen[k][1]);
  }
  int want[6][2] = {{0, 0}, {8, 0}, {12, 0}, {0, 5}, {8, 5}, {12, 5}};
  for (int i = 0; i < 6; i++)
    cr_assert(seen[i][0] == want[i][0] && seen[i][1] == want[i][1], "patch %d at %d,%d", i,
              seen[i][0], seen[i][1]);
  aert_data_free(&test);
}

Test(landcover, training_patches_random_per_epoch_inside_their_tile) {
  aert_model m = geo_model();
  char *d = data_with_tiles(4);
  aert_dataset all, train, val;
  cr_assert_eq(aert_data_load(&m, d, 1, 0, &all), 0);
  aert_data_split(&all, 0.5, &train, &val);
  cr_assert_eq(train.n, 2 * 5, "two training tiles of 5 patches");
  cr_assert_eq(val.n, 2 * 6, "two validation tiles on the grid");
  float x[4 * P * P * 4], y[4 * P * P], x2[4 * P * P * 4];
  int moved = 0;
  for (long i = 0; i < train.n; i++) {
    long order[4] = {i, i, i, i};
    int x0, y0, x1, y1;
    cr_assert_eq(aert_batch_fill_drawn(&m, &train, order, 0, 11, x, y), 4);
    check_example(x, y, (int)(i / 5), &x0, &y0);
    cr_assert_eq(aert_batch_fill_drawn(&m, &train, order, 0, 11, x2, y), 4);
    cr_assert_eq(memcmp(x, x2, sizeof x), 0, "the same draw gives the same patch");
    cr_assert_eq(aert_batch_fill_drawn(&m, &train, order, 0, 12, x, y), 4);
    check_example(x, y, (int)(i / 5), &x1, &y1);
    moved += x0 != x1 || y0 != y1;
  }
  cr_assert_geq(moved, 5, "another epoch's draw moves most patches (%d of 10 moved)", moved);
  /* validation patches come from the last two tiles only */
  cr_assert_eq(aert_batch_fill(&m, &val, NULL, 0, x, y), 4);
  int x0, y0;
  check_example(x, y, 2, &x0, &y0);
  aert_data_free(&all);
}

Test(landcover, image_and_labels_augmented_together) {
  aert_model m = geo_model();
  m.data.flip_h = m.data.flip_v = 1;   /* exact resampling: every pixel keeps its code */
  char *d = data_with_tiles(2);
  aert_dataset all, train, val;
  cr_assert_eq(aert_data_load(&m, d, 1, 0, &all), 0);
  aert_data_split(&all, 0.5, &train, &val);
  long order[5] = {0, 1, 2, 3, 4};
  aert_loader l, l2;
  float *x, *y, *x2, *y2;
  cr_assert_eq(aert_loader_init(&l, &m, &train), 0);
  cr_assert_eq(aert_loader_init(&l2, &m, &train), 0);
  cr_assert_eq(aert_loader_start(&l, order, 0, 1, 5, 3), 0);
  cr_assert_eq(aert_loader_start(&l2, order, 0, 1, 5, 3), 0);
  cr_assert_eq(aert_loader_take(&l, 0, &x, &y), 0);
  cr_assert_eq(aert_loader_take(&l2, 0, &x2, &y2), 0);
  cr_assert_eq(memcmp(x, x2, sizeof(float) * m.batch * m.in_size), 0, "deterministic for a seed");
  cr_assert_eq(memcmp(y, y2, sizeof(float) * m.batch * m.target_size), 0);
  /* each label still sits on the pixel it came with: the pixel's position code in band 0
   * names the label (away from resampled pixels, where the image is bilinear) */
  int checked = 0;
  for (int b = 0; b < m.batch; b++)
    for (int i = 0; i < P * P; i++) {
      float v = x[(b * P * P + i) * 4];
      int code = (int)v, gx = code % 32, gy = code / 32;
      if ((float)code != v || y[b * P * P + i] < -1 || gx >= TW || gy >= TH || code <= 0)
        continue;
      int lab = label_at(gx, gy);
      float want = lab >= 1 && lab <= 6 ? (float)(lab - 1) : -1.0f;
      if (y[b * P * P + i] == want)
        checked++;
    }
  cr_assert_geq(checked, m.batch * P * P * 9 / 10, "labels follow their pixels (%d agree)", checked);
  aert_loader_free(&l);
  aert_loader_free(&l2);
  aert_data_free(&all);
}

static const aert_model *load_model;
static const char *load_dir;
static int load(void *ctx) {
  aert_dataset ds;
  int rc = aert_data_load(load_model, load_dir, 1, 0, &ds);
  if (rc == 0)
    aert_data_free(&ds);
  return rc;
}

static char *load_error(const aert_model *m, const char *dir) {
  int rc;
  load_model = m, load_dir = dir;
  char *err = run_capturing_stderr(load, NULL, &rc);
  cr_assert_eq(rc, -1, "the load must fail");
  return err;
}

Test(landcover, tiles_that_do_not_fit_are_named) {
  aert_model m = geo_model();
  char *d = data_with_tiles(2);
  m.in_shape[2] = 5, m.in_size = P * P * 5;
  char *err = load_error(&m, d);
  cr_assert(strstr(err, "the layers a, b give 4 bands per pixel, but model 'geo' takes 5"), "%s", err);
  free(err);
  m = geo_model();
  m.data.layers[1] = "b:3-4";
  err = load_error(&m, d);
  cr_assert(strstr(err, "t0_b.tif' has 3 band(s); the layer 'b:3-4' asks for bands up to 4"), "%s", err);
  free(err);
  m = geo_model();
  m.data.layers[1] = "nir";
  err = load_error(&m, d);
  cr_assert(strstr(err, "t0_nir.tif"), "%s", err);
  free(err);
  m = geo_model();
  err = load_error(&m, "/nonexistent");
  cr_assert(strstr(err, "no folder '/nonexistent/train'"), "%s", err);
  free(err);
}

Test(landcover, skip_leaves_a_bad_tile_out) {
  aert_model m = geo_model();
  char *d = data_with_tiles(3), *bad = path_in(d, "train/t1_b.tif");
  FILE *f = fopen(bad, "w");
  fputs("not a tiff", f);
  fclose(f);
  char *err = load_error(&m, d);
  cr_assert(strstr(err, "t1_b.tif"), "%s", err);
  free(err);
  aert_tiles_configure(2, 1);
  aert_dataset all;
  cr_assert_eq(aert_data_load(&m, d, 1, 0, &all), 0);
  cr_assert_eq(all.tiles ? all.n : 0, 2 * 5, "two good tiles remain");
  aert_data_free(&all);
  aert_tiles_configure(2, 0);
}

Test(landcover, band_statistics_travel_in_the_checkpoint) {
  aert_model m = geo_model();
  m.data.standardize = 1;
  char *d = data_with_tiles(2);
  aert_dataset all;
  cr_assert_eq(aert_data_load(&m, d, 1, 0, &all), 0);
  aert_train_state st = {0};
  aert_tiles_get_norm(all.tiles, &st);
  cr_assert_eq(st.norm_bands, 4);
  cr_assert(st.norm_mean[2] > 10000 && st.norm_std[2] > 1, "mean %g std %g", st.norm_mean[2], st.norm_std[2]);
  float x[4 * P * P * 4], y[4 * P * P];
  cr_assert_eq(aert_batch_fill(&m, &all, NULL, 0, x, y), 4);
  double mean = 0;
  for (int i = 0; i < 4 * P * P; i++)
    mean += x[i * 4 + 2];
  cr_assert(fabs(mean / (4 * P * P)) < 3, "standardized values are centred (%g)", mean / (4 * P * P));
  /* through a checkpoint of the toy model and back */
  char *ck = path_in(d, "x.ckpt");
  float *params = calloc((size_t)toy_model.param_floats, sizeof(float));
  cr_assert_eq(aert_ckpt_save(ck, &toy_model, &st, params, NULL), 0);
  aert_ckpt c;
  cr_assert_eq(aert_ckpt_load(ck, &c), 0);
  cr_assert_eq(c.st.norm_bands, 4);
  cr_assert_eq(memcmp(c.st.norm_mean, st.norm_mean, sizeof(float) * 4), 0);
  cr_assert_eq(memcmp(c.st.norm_std, st.norm_std, sizeof(float) * 4), 0);
  aert_ckpt_free(&c);
  free(params);
  aert_data_free(&all);
}

/* The generated per-pixel loss: no gradient at all reaches an ignored pixel's logits. */
Test(landcover, no_gradient_at_no_data_pixels) {
  enum { ROWS = 64, C = 6 };
  float logits[ROWS * C], t[ROWS], dl[ROWS * C], p[C];
  double used = 0;
  uint64_t s = 3;
  for (int i = 0; i < ROWS * C; i++)
    logits[i] = 4 * aert_uniform(s, (uint64_t)i) - 2;
  int labelled = 0;
  for (int r = 0; r < ROWS; r++) {
    t[r] = r % 3 == 0 ? -1.0f : (float)(r % C);
    labelled += t[r] >= 0;
  }
  memset(dl, 0, sizeof dl);
  aert_loss_focal(logits, t, dl, ROWS, C, NULL, 0, 0, 1, 1, p, &used, 0);
  for (int r = 0; r < ROWS; r++) {
    aert_softmax_row(logits + r * C, p, C);
    for (int c = 0; c < C; c++) {
      if (t[r] < 0)
        cr_assert_eq(dl[r * C + c], 0.0f, "pixel %d is no data but has gradient %g", r, dl[r * C + c]);
      else
        cr_assert_float_eq(dl[r * C + c], (p[c] - (c == (int)t[r])) / labelled, 1e-7);
    }
  }
  cr_assert_eq(used, labelled, "the divisor reported is the labelled pixel count, not %g", used);
  /* a data-parallel rank divides by the global normaliser / ranks instead of its own */
  float dl_global[ROWS * C] = {0};
  aert_loss_focal(logits, t, dl_global, ROWS, C, NULL, 0, 0, 1, 1, p, &used, 4.0 * labelled);
  for (int i = 0; i < ROWS * C; i++)
    cr_assert_float_eq(dl_global[i], dl[i] / 4, 1e-8);
  for (int r = 0; r < ROWS; r++)
    t[r] = -1;
  memset(dl, 0, sizeof dl);
  cr_assert_eq(aert_loss_focal(logits, t, NULL, ROWS, C, NULL, 0, 0, 1, 1, p, &used, 0), 0.0f,
               "a batch of no data has loss 0, not NaN");
  aert_loss_focal(logits, t, dl, ROWS, C, NULL, 0, 0, 1, 1, p, &used, 0);
  for (int i = 0; i < ROWS * C; i++)
    cr_assert_eq(dl[i], 0.0f);
}

/* A folder of ready-made patches is a folder of tiles the size of the patch. */
Test(landcover, folder_of_patches) {
  aert_model m = geo_model();
  m.data.layers[0] = "image";
  m.data.n_layers = 1;
  m.data.label_layer = "label";
  char *d = tmp_dir(), *test = path_in(d, "test"), path[512];
  cr_assert_eq(aert_mkdir_p(test), 0);
  float img[P * P * 4];
  unsigned char lab[P * P];
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < P * P * 4; i++)
      img[i] = (float)(k * 1000 + i);
    for (int i = 0; i < P * P; i++)
      lab[i] = (unsigned char)(1 + (i + k) % 6);
    snprintf(path, sizeof path, "%s/p%04d_image.tif", test, k);
    cr_assert_eq(aert_tiff_write(path, P, P, 4, AERT_PIX_F32, img, NULL, NULL), 0);
    snprintf(path, sizeof path, "%s/p%04d_label.tif", test, k);
    cr_assert_eq(aert_tiff_write(path, P, P, 1, AERT_PIX_U8, lab, NULL, NULL), 0);
  }
  aert_dataset ds;
  cr_assert_eq(aert_data_load(&m, d, 0, 0, &ds), 0);
  cr_assert_eq(ds.n, 3, "one patch per file");
  float x[4 * P * P * 4], y[4 * P * P];
  cr_assert_eq(aert_batch_fill(&m, &ds, NULL, 0, x, y), 3);
  for (int k = 0; k < 3; k++) {
    cr_assert_eq(x[k * P * P * 4 + 5], (float)(k * 1000 + 5));
    cr_assert_eq(y[k * P * P + 2], (float)((2 + k) % 6));
  }
  aert_data_free(&ds);
}
