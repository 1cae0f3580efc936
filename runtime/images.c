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

int aert_png_write(const char *path, const unsigned char *img, int w, int h, int ch) {
  return write_atomic(path, img, w, h, ch);
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

/* A 5x7 font (one row of 5 bits per byte, top row first) for legends; letters are drawn
 * as capitals, and a character outside it is a blank. */
static const char font_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-._():%/";
static const unsigned char font[][7] = {
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* a */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* b */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* c */
    {0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e}, /* d */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* e */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* f */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* g */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* h */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* i */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* k */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* l */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* m */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* n */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* o */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* p */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* r */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* s */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* t */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* u */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* v */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* w */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* x */
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04}, /* y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* z */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* 9 */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* . */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* _ */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* : */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
};

static void fill_rect(unsigned char *img, int W, int H, int x0, int y0, int w, int h,
                      const unsigned char *rgb) {
  for (int y = y0; y < y0 + h; y++)
    for (int x = x0; x < x0 + w; x++)
      if (x >= 0 && y >= 0 && x < W && y < H)
        for (int k = 0; k < 3; k++)
          img[((size_t)y * W + x) * 3 + k] = rgb[k];
}

/* Text in the 5x7 font, each dot scale x scale pixels; returns the x after the text. */
static int draw_text(unsigned char *img, int W, int H, int x0, int y0, const char *text, int scale,
                     const unsigned char *rgb) {
  for (const char *p = text; *p; p++, x0 += 6 * scale) {
    char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
    const char *at = ch ? strchr(font_chars, ch) : NULL;
    if (!at)
      continue;
    const unsigned char *g = font[at - font_chars];
    for (int r = 0; r < 7; r++)
      for (int c = 0; c < 5; c++)
        if (g[r] >> (4 - c) & 1)
          fill_rect(img, W, H, x0 + c * scale, y0 + r * scale, scale, scale, rgb);
  }
  return x0;
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
    char digit[2] = {(char)('0' + c), 0};
    static const unsigned char black[3] = {0, 0, 0};
    draw_text(img, W, H, x + 22, y, digit, 2, black);
  }
  int rc = write_atomic(path, img, W, H, 3);
  free(img);
  return rc;
}

/* ---- land-cover maps ----------------------------------------------------------------- */
/* Colours by class index in the Chesapeake order (water, tree canopy, low vegetation,
 * barren, impervious, road), then tab10; no data (-1) is black. */
static const unsigned char lc_colours[6][3] = {
    {0, 90, 200}, {20, 110, 30}, {150, 215, 110}, {175, 135, 90}, {220, 40, 40}, {95, 95, 95}};

const unsigned char *aert_class_colour(int c) {
  static const unsigned char none[3] = {0, 0, 0};
  return c < 0 ? none : c < 6 ? lc_colours[c] : palette[(c - 6) % 10];
}

int aert_png_landcover(const char *path, const unsigned char *rgb, const signed char *truth,
                       const signed char *pred, int w, int h, int n_classes,
                       const char *const *names) {
  static const unsigned char black[3] = {0, 0, 0};
  const char *titles[3] = {"image", "labels", "prediction"};
  int have[3] = {rgb != NULL, truth != NULL, pred != NULL}, panels = have[0] + have[1] + have[2];
  int f = (w > h ? w : h) / 512 + 1, pw = w / f, ph = h / f, gap = 12, top = 24, per_row = 4;
  int W = panels * pw + (panels + 1) * gap, rows = (n_classes + 1 + per_row - 1) / per_row;
  if (W < per_row * 130 + gap) W = per_row * 130 + gap;
  int H = top + ph + gap + rows * 20 + gap;
  unsigned char *img = aert_alloc((size_t)W * H * 3, path);
  if (!img)
    return -1;
  memset(img, 255, (size_t)W * H * 3);
  int x0 = gap;
  for (int p = 0; p < 3; p++) {
    if (!have[p])
      continue;
    draw_text(img, W, H, x0, 8, titles[p], 1, black);
    for (int y = 0; y < ph; y++)
      for (int x = 0; x < pw; x++) {
        long i = (long)y * f * w + (long)x * f;
        unsigned char *o = img + ((size_t)(top + y) * W + x0 + x) * 3;
        if (p == 0)
          memcpy(o, rgb + i * 3, 3);
        else
          memcpy(o, aert_class_colour((p == 1 ? truth : pred)[i]), 3);
      }
    x0 += pw + gap;
  }
  for (int c = -1; c < n_classes; c++) {   /* the legend: no data first */
    int k = c + 1, x = gap + (k % per_row) * 130, y = top + ph + gap + (k / per_row) * 20;
    static const unsigned char frame[3] = {160, 160, 160};
    fill_rect(img, W, H, x, y, 14, 14, frame);
    fill_rect(img, W, H, x + 1, y + 1, 12, 12, aert_class_colour(c));
    draw_text(img, W, H, x + 20, y + 4, c < 0 ? "no data" : names[c] ? names[c] : "?", 1, black);
  }
  int rc = write_atomic(path, img, W, H, 3);
  free(img);
  return rc;
}
