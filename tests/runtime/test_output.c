/* test_output.c - metrics (MSE, PSNR, accuracy, IoU with the ignore label), PNG grids read
 * back with libpng, and the .npy header. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include "toy_model.h"

Test(metrics, mse_and_psnr) {
  aert_metrics mt;
  aert_metrics_init(&mt, 0);
  float out[4] = {0, 0.5f, 1, 1}, tgt[4] = {0.1f, 0.5f, 0.9f, 1};
  aert_metrics_add_images(&mt, out, tgt, 4);
  cr_assert_float_eq(aert_mse(&mt), 0.005, 1e-8);
  cr_assert_float_eq(aert_psnr(aert_mse(&mt)), 23.0103, 1e-4);
  aert_metrics_free(&mt);
}

Test(metrics, accuracy_confusion_iou_ignore_label) {
  aert_metrics mt;
  aert_metrics_init(&mt, 3);
  /* 5 items of 3 scores; truths 0,1,2,1 and one ignored (-1) */
  float scores[15] = {9, 0, 0, 0, 9, 0, 0, 9, 0, 0, 9, 0, 0, 0, 9};
  float truth[5] = {0, 1, 2, 1, -1};
  aert_metrics_add_classes(&mt, scores, truth, 5);
  cr_assert_eq(mt.counted, 4);
  cr_assert_float_eq(aert_accuracy(&mt), 0.75, 1e-12);
  cr_assert_eq(mt.confusion[2 * 3 + 1], 1, "truth 2 predicted 1");
  cr_assert_float_eq(aert_iou(&mt, 0), 1.0, 1e-12);
  cr_assert_float_eq(aert_iou(&mt, 1), 2.0 / 3.0, 1e-12);
  cr_assert_float_eq(aert_iou(&mt, 2), 0.0, 1e-12);
  cr_assert_float_eq(aert_mean_iou(&mt), (1 + 2.0 / 3.0) / 3, 1e-12);
  aert_metrics_free(&mt);
}

/* Reads a PNG back: width, height, channels, and the value at (x, y, 0). */
static void read_png(const char *path, int *w, int *h, int *ch, int x, int y, int *val) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "open %s", path);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(!setjmp(png_jmpbuf(png)), "libpng read failed");
  png_init_io(png, f);
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  *w = (int)png_get_image_width(png, info);
  *h = (int)png_get_image_height(png, info);
  *ch = png_get_channels(png, info);
  *val = png_get_rows(png, info)[y][x * *ch];
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
}

/* 28 x 28 tiles are scaled up 3 times (nearest neighbour) with a 3-pixel white gap. */
Test(images, grid_dimensions_gap_and_clipping) {
  char *d = tmp_dir(), *p = path_in(d, "g.png");
  float a[28 * 28], b[28 * 28];
  for (int i = 0; i < 28 * 28; i++)
    a[i] = 2.0f, b[i] = -1.0f;
  a[0] = 0.0f;   /* one dark pixel: a 3 x 3 block */
  const float *tiles[6] = {a, b, a, b, a, NULL};
  cr_assert_eq(aert_grid_scale(28, 28), 3);
  cr_assert_eq(aert_png_grid(p, 2, 3, tiles, 28, 28, 1, NULL, 0), 0);
  int w, h, ch, v;
  read_png(p, &w, &h, &ch, 3, 0, &v);
  cr_assert(w == 3 * 87 - 3 && h == 2 * 87 - 3 && ch == 3, "%dx%dx%d", w, h, ch);
  cr_assert_eq(v, 255, "2.0 clipped to 1");
  read_png(p, &w, &h, &ch, 2, 2, &v);
  cr_assert_eq(v, 0, "pixel (0,0) covers 3 x 3");
  read_png(p, &w, &h, &ch, 87, 0, &v);
  cr_assert_eq(v, 0, "-1 clipped to 0");
  read_png(p, &w, &h, &ch, 85, 5, &v);
  cr_assert_eq(v, 255, "white gap");
}

Test(images, grid_row_labels_before_the_rows) {
  char *d = tmp_dir(), *p = path_in(d, "l.png");
  float a[28 * 28] = {0};
  const float *tiles[2] = {a, a};
  const char *const labels[2] = {"input", "output"};
  cr_assert_eq(aert_png_grid(p, 2, 1, tiles, 28, 28, 1, labels, 0), 0);
  int w, h, ch, v, dark = 0;
  read_png(p, &w, &h, &ch, 0, 0, &v);
  int left = aert_text_width("output", 2) + 16;
  cr_assert(w == left + 84 && h == 2 * 87 - 3, "%dx%d", w, h);
  for (int x = 8; x < left - 8; x++)   /* the label's strokes cross the row's middle third */
    for (int y = 36; y < 48; y++) {
      read_png(p, &w, &h, &ch, x, y, &v);
      dark += v < 128;
    }
  cr_assert(dark > 20, "%d dark label pixels", dark);
}

Test(images, scatter_without_labels_has_no_legend) {
  char *d = tmp_dir(), *p = path_in(d, "s.png");
  float xy[6] = {0, 0, 1, 1, 2, 0.5f};
  int none[3] = {-1, -1, -1}, some[3] = {-1, 3, 3}, w, h, ch, v;
  aert_scatter sc = {.title = "t", .xlabel = "x", .ylabel = "y"};
  cr_assert_eq(aert_png_scatter(p, xy, NULL, 3, &sc), 0);
  read_png(p, &w, &h, &ch, 0, 0, &v);
  cr_assert(w == 700 && h == 700, "no legend column: %dx%d", w, h);
  cr_assert_eq(aert_png_scatter(p, xy, none, 3, &sc), 0);
  read_png(p, &w, &h, &ch, 0, 0, &v);
  cr_assert(w == 700, "labels all -1 are no labels: %d", w);
  cr_assert_eq(aert_png_scatter(p, xy, some, 3, &sc), 0);
  read_png(p, &w, &h, &ch, 0, 0, &v);
  cr_assert(w == 790, "a legend: %d", w);
}

/* The check value of CRC-32C (iSCSI, Castagnoli) for "123456789". */
Test(tfevents, crc32c_check_value) {
  cr_assert_eq(aert_crc32c((const unsigned char *)"123456789", 9), 0xe3069283u);
}

Test(images, rgb_from_first_three_channels) {
  char *d = tmp_dir(), *p = path_in(d, "rgb.png");
  float t[4 * 4 * 5] = {0};
  const float *tiles[1] = {t};
  cr_assert_eq(aert_png_grid(p, 1, 1, tiles, 4, 4, 5, NULL, 0), 0);
  int w, h, ch, v;
  read_png(p, &w, &h, &ch, 0, 0, &v);
  cr_assert(w == 84 && h == 84 && ch == 3, "%dx%dx%d", w, h, ch);
}

Test(npy, header_is_numpy_v1) {
  char *d = tmp_dir(), *p = path_in(d, "a.npy");
  float data[6] = {1, 2, 3, 4, 5, 6};
  cr_assert_eq(aert_npy_write(p, data, 2, 3), 0);
  unsigned char *b;
  size_t n;
  cr_assert_eq(aert_read_file(p, &b, &n), 0);
  cr_assert(!memcmp(b, "\x93NUMPY\x01\x00", 8));
  size_t hl = b[8] | b[9] << 8;
  cr_assert_eq((10 + hl) % 64, 0, "header padded to 64 bytes");
  cr_assert_eq(b[10 + hl - 1], '\n');
  cr_assert(strstr((char *)b + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
  cr_assert_eq(n, 10 + hl + sizeof data);
  cr_assert(!memcmp(b + 10 + hl, data, sizeof data));
  free(b);
}
