/* images.c - PNG grids through libpng: tiles of h x w x c floats, clipped to [0,1], shown
 * grey (c < 3) or RGB from the first three channels, laid out in rows with a 1-pixel
 * white gap; a NULL tile stays black. Scatter plots of 2-d points coloured by class, with
 * a legend of the class numbers. Written atomically. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

static unsigned char to_byte(float v) {
  v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  return (unsigned char)(v * 255.0f + 0.5f);
}

static void draw_tile(unsigned char *img, int stride, int ch, const float *t, int h, int w,
                      int c) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < ch; k++)
        img[y * stride + x * ch + k] = t ? to_byte(t[(y * w + x) * c + (c >= 3 ? k : 0)]) : 0;
}

static int write_png(FILE *f, const char *path, const unsigned char *img, int W, int H, int ch) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : NULL);
    return aert_error("cannot write '%s': libpng failed", path), -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
               ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; y++)
    png_write_row(png, img + (size_t)y * W * ch);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return 0;
}

static int write_atomic(const char *path, const unsigned char *img, int W, int H, int ch) {
  aert_atomic a;
  int rc = aert_atomic_open(&a, path);
  if (rc == 0) {
    rc = write_png(a.f, a.tmp, img, W, H, ch);
    if (rc == 0)
      rc = aert_atomic_commit(&a);
    else
      aert_atomic_abort(&a);
  }
  return rc;
}

int aert_png_grid(const char *path, int rows, int cols, const float *const *tiles, int h, int w,
                  int c) {
  int ch = c >= 3 ? 3 : 1;
  int W = cols * (w + 1) - 1, H = rows * (h + 1) - 1;
  unsigned char *img = aert_alloc((size_t)W * H * ch, path);
  if (!img)
    return -1;
  for (size_t i = 0; i < (size_t)W * H * ch; i++)
    img[i] = 255;
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < cols; k++)
      draw_tile(img + ((size_t)r * (h + 1) * W + (size_t)k * (w + 1)) * ch, W * ch, ch,
                tiles[r * cols + k], h, w, c);
  int rc = write_atomic(path, img, W, H, ch);
  free(img);
  return rc;
}

/* ---- scatter plots ------------------------------------------------------------------ */
#define PLOT 600        /* plot area, pixels square */
#define MARGIN 10
#define LEGEND 70       /* legend column right of the plot */

/* matplotlib's tab10; unknown classes (label < 0 or > 9) are grey. */
static const unsigned char palette[11][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    {160, 160, 160}};

/* 3x5 digits, one row of 3 bits per byte, top row first. */
static const unsigned char digits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};

static void fill_rect(unsigned char *img, int W, int H, int x0, int y0, int w, int h,
                      const unsigned char *rgb) {
  for (int y = y0; y < y0 + h; y++)
    for (int x = x0; x < x0 + w; x++)
      if (x >= 0 && y >= 0 && x < W && y < H)
        for (int k = 0; k < 3; k++)
          img[((size_t)y * W + x) * 3 + k] = rgb[k];
}

static void draw_digit(unsigned char *img, int W, int H, int x0, int y0, int d, int scale) {
  static const unsigned char black[3] = {0, 0, 0};
  for (int r = 0; r < 5; r++)
    for (int c = 0; c < 3; c++)
      if (digits[d][r] >> (2 - c) & 1)
        fill_rect(img, W, H, x0 + c * scale, y0 + r * scale, scale, scale, black);
}

int aert_png_scatter(const char *path, const float *xy, const int *label, long n) {
  int W = PLOT + 2 * MARGIN + LEGEND, H = PLOT + 2 * MARGIN;
  float lo[2] = {0, 0}, hi[2] = {1, 1};
  for (long i = 0; i < n; i++)
    for (int a = 0; a < 2; a++) {
      float v = xy[i * 2 + a];
      if (i == 0 || v < lo[a]) lo[a] = v;
      if (i == 0 || v > hi[a]) hi[a] = v;
    }
  unsigned char *img = aert_alloc((size_t)W * H * 3, path);
  if (!img)
    return -1;
  memset(img, 255, (size_t)W * H * 3);
  static const unsigned char frame[3] = {200, 200, 200};
  fill_rect(img, W, H, MARGIN - 1, MARGIN - 1, PLOT + 2, 1, frame);
  fill_rect(img, W, H, MARGIN - 1, MARGIN + PLOT, PLOT + 2, 1, frame);
  fill_rect(img, W, H, MARGIN - 1, MARGIN - 1, 1, PLOT + 2, frame);
  fill_rect(img, W, H, MARGIN + PLOT, MARGIN - 1, 1, PLOT + 2, frame);
  for (long i = 0; i < n; i++) {
    int c = label && label[i] >= 0 && label[i] < 10 ? label[i] : 10;
    float u = hi[0] > lo[0] ? (xy[i * 2] - lo[0]) / (hi[0] - lo[0]) : 0.5f;
    float v = hi[1] > lo[1] ? (xy[i * 2 + 1] - lo[1]) / (hi[1] - lo[1]) : 0.5f;
    int px = MARGIN + (int)(u * (PLOT - 3)), py = MARGIN + (int)((1 - v) * (PLOT - 3));
    fill_rect(img, W, H, px, py, 3, 3, palette[c]);
  }
  for (int c = 0; c < 10; c++) {
    int y = MARGIN + 10 + c * 24, x = MARGIN + PLOT + 14;
    fill_rect(img, W, H, x, y, 14, 14, palette[c]);
    draw_digit(img, W, H, x + 22, y - 1, c, 3);
  }
  int rc = write_atomic(path, img, W, H, 3);
  free(img);
  return rc;
}
