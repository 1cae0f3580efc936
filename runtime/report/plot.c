/* plot.c - drawing on an RGB canvas for the runtime's pictures: filled rectangles, lines,
 * text in a 5x7 bitmap font, and plot axes with "nice" tick values (1, 2 or 5 times a
 * power of ten) labelled in that font; and writing a picture as a PNG file through libpng,
 * atomically. images.c and curves.c draw with it. */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

const unsigned char aert_black[3] = {0, 0, 0};

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

int aert_png_write(const char *path, const unsigned char *img, int W, int H, int ch) {
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

int aert_canvas_new(aert_canvas *c, int w, int h, const char *what) {
  c->w = w, c->h = h;
  c->px = aert_alloc((size_t)w * h * 3, what);
  if (!c->px)
    return -1;
  memset(c->px, 255, (size_t)w * h * 3);
  return 0;
}

int aert_canvas_write(aert_canvas *c, const char *path) {
  int rc = aert_png_write(path, c->px, c->w, c->h, 3);
  free(c->px);
  c->px = NULL;
  return rc;
}

void aert_fill_rect(aert_canvas *c, int x0, int y0, int w, int h, const unsigned char *rgb) {
  for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < c->h; y++)
    for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < c->w; x++)
      memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

/* A line width pixels thick (Bresenham, a square pen at every step). */
void aert_draw_line(aert_canvas *c, int x0, int y0, int x1, int y1, int width,
                    const unsigned char *rgb) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy, off = (width - 1) / 2;
  for (;;) {
    aert_fill_rect(c, x0 - off, y0 - off, width, width, rgb);
    if (x0 == x1 && y0 == y1)
      return;
    int e2 = 2 * err;
    if (e2 >= dy)
      err += dy, x0 += sx;
    if (e2 <= dx)
      err += dx, y0 += sy;
  }
}

/* The 5x7 font (one row of 5 bits per byte, top row first); letters are drawn as capitals,
 * and a character outside it is a blank. */
static const char font_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-._():%/+=,";
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
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* = */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* , */
};

int aert_text_width(const char *text, int scale) {
  int n = (int)strlen(text);
  return n ? (6 * n - 1) * scale : 0;
}

/* Text with its top left corner at (x0, y0), each dot scale x scale pixels; returns the x
 * after the text. */
int aert_draw_text(aert_canvas *c, int x0, int y0, const char *text, int scale,
                   const unsigned char *rgb) {
  for (const char *p = text; *p; p++, x0 += 6 * scale) {
    char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
    const char *at = ch ? strchr(font_chars, ch) : NULL;
    if (!at)
      continue;
    const unsigned char *g = font[at - font_chars];
    for (int r = 0; r < 7; r++)
      for (int k = 0; k < 5; k++)
        if (g[r] >> (4 - k) & 1)
          aert_fill_rect(c, x0 + k * scale, y0 + r * scale, scale, scale, rgb);
  }
  return x0;
}

/* ---- axes ------------------------------------------------------------------------- */
/* The tick spacing for about `want` ticks over [lo, hi]: 1, 2 or 5 times a power of ten. */
static double tick_step(double lo, double hi, int want) {
  double raw = (hi - lo) / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* A tick value as short text: fixed point with as many decimals as the step needs, or
 * scientific notation with as many digits as the step needs for very large or small values. */
static void tick_label(double v, double step, char *s, size_t n) {
  double big = fmax(fabs(v), step);
  if (fabs(v) < step * 1e-6)
    v = 0;   /* -0 and 1e-17 print as 0 */
  if (big >= 1e5 || big < 1e-4)
    snprintf(s, n, "%.*g", (int)fmax(1, floor(log10(big)) - floor(log10(step)) + 1), v);
  else
    snprintf(s, n, "%.*f", step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9), v);
}

/* Pads a range by 5% of its width on each side; an empty range gets a width. */
void aert_axis_range(double *lo, double *hi) {
  if (!(*hi > *lo)) {
    double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
    *lo -= d, *hi += d;
    return;
  }
  double pad = (*hi - *lo) * 0.05;
  *lo -= pad, *hi += pad;
}

int aert_axes_x(const aert_axes *a, double v) {
  return a->x + (int)lround((v - a->lo[0]) / (a->hi[0] - a->lo[0]) * (a->w - 1));
}

int aert_axes_y(const aert_axes *a, double v) {
  return a->y + a->h - 1 - (int)lround((v - a->lo[1]) / (a->hi[1] - a->lo[1]) * (a->h - 1));
}

static const unsigned char frame_grey[3] = {120, 120, 120}, grid_grey[3] = {232, 232, 232};

/* Ticks, grid lines and tick labels along one axis (0: x below the plot, 1: y to its
 * left); integer_only keeps x ticks on whole numbers (epochs). */
static void draw_ticks(aert_canvas *c, const aert_axes *a, int axis, int integer_only) {
  double step = tick_step(a->lo[axis], a->hi[axis], axis == 0 ? 8 : 5);
  if (integer_only && step < 1)
    step = 1;
  for (double v = ceil(a->lo[axis] / step) * step; v <= a->hi[axis] + step * 1e-9; v += step) {
    char s[32];
    tick_label(v, step, s, sizeof s);
    if (axis == 0) {
      int px = aert_axes_x(a, v);
      aert_fill_rect(c, px, a->y, 1, a->h, grid_grey);
      aert_fill_rect(c, px, a->y + a->h, 1, 4, frame_grey);
      aert_draw_text(c, px - aert_text_width(s, 1) / 2, a->y + a->h + 7, s, 1, aert_black);
    } else {
      int py = aert_axes_y(a, v);
      aert_fill_rect(c, a->x, py, a->w, 1, grid_grey);
      aert_fill_rect(c, a->x - 4, py, 4, 1, frame_grey);
      aert_draw_text(c, a->x - 7 - aert_text_width(s, 1), py - 3, s, 1, aert_black);
    }
  }
}

/* The frame, grid, ticks with their values, the x axis's name centred below and the
 * title above the plot's top left corner. Data drawn afterwards lies over the grid. */
void aert_axes_draw(aert_canvas *c, const aert_axes *a, const char *title, const char *xlabel,
                    int integer_x) {
  draw_ticks(c, a, 0, integer_x);
  draw_ticks(c, a, 1, 0);
  aert_fill_rect(c, a->x - 1, a->y - 1, a->w + 2, 1, frame_grey);
  aert_fill_rect(c, a->x - 1, a->y + a->h, a->w + 2, 1, frame_grey);
  aert_fill_rect(c, a->x - 1, a->y - 1, 1, a->h + 2, frame_grey);
  aert_fill_rect(c, a->x + a->w, a->y - 1, 1, a->h + 2, frame_grey);
  if (xlabel)
    aert_draw_text(c, a->x + (a->w - aert_text_width(xlabel, 1)) / 2, a->y + a->h + 20, xlabel,
                   1, aert_black);
  if (title)
    aert_draw_text(c, a->x, a->y - 18, title, 2, aert_black);
}
