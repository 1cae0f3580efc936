/* images.c - PNG files through libpng: grids of image tiles (h x w x c floats, clipped to
 * [0,1], grey when c < 3, else RGB from the first three channels) scaled up by whole pixels
 * to a readable size with a label before each row; scatter plots of 2-d points with axes,
 * coloured by class when the data has labels; land-cover maps. Drawn with plot.c, which
 * writes the files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define TILE_MIN 84   /* grid tiles are scaled up (nearest neighbour) to at least this many pixels */

static unsigned char to_byte(float v) {
  v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  return (unsigned char)(v * 255.0f + 0.5f);
}

/* One tile at (x0, y0), every source pixel a scale x scale block; a NULL tile is black. */
static void draw_tile(aert_canvas *cv, int x0, int y0, const float *t, int h, int w, int c,
                      int scale) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      unsigned char rgb[3] = {0, 0, 0};
      for (int k = 0; t && k < 3; k++)
        rgb[k] = to_byte(t[(y * w + x) * c + (c >= 3 ? k : 0)]);
      aert_fill_rect(cv, x0 + x * scale, y0 + y * scale, scale, scale, rgb);
    }
}

/* Image size of a per-example shape: HWC, or a square when flat. */
void aert_image_hwc(int rank, const int *shape, long size, int *h, int *w, int *c) {
  if (rank == 3) {
    *h = shape[0], *w = shape[1], *c = shape[2];
    return;
  }
  int side = (int)sqrt((double)size);
  *h = *w = side * side == size ? side : 1;
  *c = side * side == size ? 1 : (int)size;
}

int aert_grid_scale(int h, int w) {
  int side = h > w ? h : w;
  return side >= TILE_MIN ? 1 : (TILE_MIN + side - 1) / side;
}

/* Room around a grid with axes: tick values at the left and below, the axes' names. */
#define AXES_LEFT 60
#define AXES_TOP 24
#define AXES_BOTTOM 40

int aert_png_grid(const char *path, int rows, int cols, const float *const *tiles, int h, int w,
                  int c, const char *const *row_labels, double span) {
  int scale = aert_grid_scale(h, w), gap = scale > 2 ? scale : 2, left = 0, label_scale = 2;
  for (int r = 0; row_labels && r < rows; r++) {
    int tw = aert_text_width(row_labels[r] ? row_labels[r] : "", label_scale);
    left = tw + 16 > left ? tw + 16 : left;
  }
  int th = h * scale, tw = w * scale, top = span > 0 ? AXES_TOP : 0;
  int gw = cols * (tw + gap) - gap, gh = rows * (th + gap) - gap;
  left = span > 0 ? AXES_LEFT : left;
  aert_canvas cv;
  if (aert_canvas_new(&cv, left + gw + (span > 0 ? 20 : 0), top + gh + (span > 0 ? AXES_BOTTOM : 0),
                      path) != 0)
    return -1;
  if (span > 0) {   /* the latent plane: the tiles' centres at their latent values */
    aert_axes ax = {.x = left, .y = top, .w = gw, .h = gh, .lo = {-span, -span}, .hi = {span, span}};
    aert_axes_draw(&cv, &ax, NULL, "z1", 0);
    aert_draw_text(&cv, 8, 8, "z2", 1, aert_black);
  }
  for (int r = 0; r < rows; r++) {
    int y0 = top + r * (th + gap);
    if (row_labels && row_labels[r])
      aert_draw_text(&cv, 8, y0 + (th - 7 * label_scale) / 2, row_labels[r], label_scale,
                     aert_black);
    for (int k = 0; k < cols; k++)
      draw_tile(&cv, left + k * (tw + gap), y0, tiles[r * cols + k], h, w, c, scale);
  }
  return aert_canvas_write(&cv, path);
}

/* ---- scatter plots ------------------------------------------------------------------ */
#define PLOT 600        /* plot area, pixels square */
#define PLOT_LEFT 80    /* room for the y tick values */
#define PLOT_TOP 50     /* the title and the y axis's name */
#define PLOT_BOTTOM 50  /* the x tick values and the x axis's name */
#define LEGEND 90       /* legend column right of the plot, when there are classes */

/* matplotlib's tab10; unknown classes (label < 0 or > 9) are grey. */
static const unsigned char palette[11][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
    {160, 160, 160}};

const unsigned char *aert_series_colour(int i) {
  return palette[i % 10];
}

/* The data range of each axis, padded, unless the caller fixed it. */
static void scatter_range(const aert_scatter *sc, const float *xy, long n, aert_axes *ax) {
  if (sc->fixed) {
    for (int a = 0; a < 2; a++)
      ax->lo[a] = sc->lo[a], ax->hi[a] = sc->hi[a];
    return;
  }
  for (int a = 0; a < 2; a++) {
    ax->lo[a] = n ? xy[a] : 0, ax->hi[a] = n ? xy[a] : 1;
    for (long i = 1; i < n; i++)
      ax->lo[a] = xy[i * 2 + a] < ax->lo[a] ? xy[i * 2 + a] : ax->lo[a],
      ax->hi[a] = xy[i * 2 + a] > ax->hi[a] ? xy[i * 2 + a] : ax->hi[a];
    aert_axis_range(&ax->lo[a], &ax->hi[a]);
  }
}

/* A legend entry for each class 0..9 that occurs; returns how many. */
static int draw_legend(aert_canvas *cv, int x, const int *label, long n) {
  int seen[10] = {0}, shown = 0;
  for (long i = 0; i < n; i++)
    if (label[i] >= 0 && label[i] < 10)
      seen[label[i]] = 1;
  for (int c = 0; c < 10; c++) {
    if (!seen[c])
      continue;
    int y = PLOT_TOP + 10 + shown++ * 24;
    aert_fill_rect(cv, x, y, 14, 14, palette[c]);
    char digit[2] = {(char)('0' + c), 0};
    aert_draw_text(cv, x + 22, y, digit, 2, aert_black);
  }
  return shown;
}

int aert_png_scatter(const char *path, const float *xy, const int *label, long n,
                     const aert_scatter *sc) {
  int labelled = 0;
  for (long i = 0; label && i < n && !labelled; i++)
    labelled = label[i] >= 0;
  aert_canvas cv;
  if (aert_canvas_new(&cv, PLOT_LEFT + PLOT + 20 + (labelled ? LEGEND : 0),
                      PLOT_TOP + PLOT + PLOT_BOTTOM, path) != 0)
    return -1;
  aert_axes ax = {.x = PLOT_LEFT, .y = PLOT_TOP, .w = PLOT, .h = PLOT};
  scatter_range(sc, xy, n, &ax);
  aert_axes_draw(&cv, &ax, NULL, sc->xlabel, 0);
  aert_draw_text(&cv, PLOT_LEFT, 8, sc->title, 2, aert_black);
  aert_draw_text(&cv, 8, PLOT_TOP - 14, sc->ylabel, 1, aert_black);
  for (long i = 0; i < n; i++) {
    float u = xy[i * 2], v = xy[i * 2 + 1];
    if (u < ax.lo[0] || u > ax.hi[0] || v < ax.lo[1] || v > ax.hi[1])
      continue;   /* outside a fixed range */
    int c = labelled && label[i] >= 0 && label[i] < 10 ? label[i] : labelled ? 10 : 0;
    aert_fill_rect(&cv, aert_axes_x(&ax, u) - 1, aert_axes_y(&ax, v) - 1, 3, 3, palette[c]);
  }
  if (labelled)
    draw_legend(&cv, PLOT_LEFT + PLOT + 30, label, n);
  return aert_canvas_write(&cv, path);
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
  const char *titles[3] = {"image", "labels", "prediction"};
  int have[3] = {rgb != NULL, truth != NULL, pred != NULL}, panels = have[0] + have[1] + have[2];
  int f = (w > h ? w : h) / 512 + 1, pw = w / f, ph = h / f, gap = 12, top = 24, per_row = 4;
  int W = panels * pw + (panels + 1) * gap, rows = (n_classes + 1 + per_row - 1) / per_row;
  if (W < per_row * 130 + gap) W = per_row * 130 + gap;
  int H = top + ph + gap + rows * 20 + gap;
  aert_canvas cv;
  if (aert_canvas_new(&cv, W, H, path) != 0)
    return -1;
  int x0 = gap;
  for (int p = 0; p < 3; p++) {
    if (!have[p])
      continue;
    aert_draw_text(&cv, x0, 8, titles[p], 1, aert_black);
    for (int y = 0; y < ph; y++)
      for (int x = 0; x < pw; x++) {
        long i = (long)y * f * w + (long)x * f;
        unsigned char *o = cv.px + ((size_t)(top + y) * W + x0 + x) * 3;
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
    aert_fill_rect(&cv, x, y, 14, 14, frame);
    aert_fill_rect(&cv, x + 1, y + 1, 12, 12, aert_class_colour(c));
    aert_draw_text(&cv, x + 20, y + 4, c < 0 ? "no data" : names[c] ? names[c] : "?", 1, aert_black);
  }
  return aert_canvas_write(&cv, path);
}
