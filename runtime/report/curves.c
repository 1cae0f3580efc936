/* curves.c - OUT/curves.png, the picture of a run: training and validation loss per epoch,
 * the learning rate, and for class targets the validation accuracy (and the mean IoU of a
 * segmentation). It is redrawn from OUT/train.csv after every epoch, so a resumed run's
 * picture shows the whole run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aert_internal.h"

#define WIDTH 820
#define PANEL_H 250      /* each panel: title, plot, tick values, axis name */
#define LEFT 80
#define RIGHT 20
#define TOP 34
#define BOTTOM 44
#define MAX_SERIES 3

/* The columns of train.csv a panel draws, by header name. */
typedef struct {
  const char *title;
  const char *column[MAX_SERIES], *label[MAX_SERIES];
} panel_t;

static const panel_t panels[] = {
    {"loss", {"train_loss", "val_loss"}, {"train", "validation"}},
    {"learning rate", {"lr"}, {"lr"}},
    {"validation metrics", {"val_accuracy", "val_pixel_accuracy", "val_mean_iou"},
     {"accuracy", "pixel accuracy", "mean iou"}},
};
#define N_PANELS (int)(sizeof panels / sizeof panels[0])

/* train.csv as numbers: rows x cols, the header's names kept. */
typedef struct {
  char *names[64];
  int cols;
  long rows;
  double *v;
} table_t;

static void table_free(table_t *t) {
  for (int c = 0; c < t->cols; c++)
    free(t->names[c]);
  free(t->v);
}

static int column(const table_t *t, const char *name) {
  for (int c = 0; name && c < t->cols; c++)
    if (!strcmp(t->names[c], name))
      return c;
  return -1;
}

/* Reads the CSV the trainer writes: a header, then numbers ("nan" where none). */
static int read_table(const char *path, table_t *t) {
  unsigned char *buf;
  size_t n;
  memset(t, 0, sizeof *t);
  if (aert_read_file(path, &buf, &n) != 0)
    return -1;
  char *text = (char *)buf, *save = NULL, *line = strtok_r(text, "\n", &save);
  for (char *p = line, *end; p && t->cols < 64; p = end ? end + 1 : NULL) {
    end = strchr(p, ',');
    t->names[t->cols++] = strndup(p, end ? (size_t)(end - p) : strlen(p));
  }
  long cap = 0;
  for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (t->rows == cap) {
      cap = 2 * cap + 64;
      double *v = realloc(t->v, sizeof(double) * cap * t->cols);
      if (!v)
        return free(buf), table_free(t), aert_error("out of memory reading '%s'", path), -1;
      t->v = v;
    }
    char *p = line;
    for (int c = 0; c < t->cols; c++) {
      char *end = p;
      double v = p ? strtod(p, &end) : NAN;
      t->v[t->rows * t->cols + c] = p && end != p ? v : NAN;
      p = p ? strchr(p, ',') : NULL;
      p = p ? p + 1 : NULL;
    }
    t->rows++;
  }
  free(buf);
  return 0;
}

/* The y range of a panel's finite values; 0 when it has none. */
static int panel_range(const table_t *t, const int *col, double *lo, double *hi) {
  int any = 0;
  for (int s = 0; s < MAX_SERIES; s++)
    for (long r = 0; col[s] >= 0 && r < t->rows; r++) {
      double v = t->v[r * t->cols + col[s]];
      if (isfinite(v)) {
        *lo = any && *lo < v ? *lo : v, *hi = any && *hi > v ? *hi : v;
        any = 1;
      }
    }
  return any;
}

/* One series: lines between consecutive finite values, a dot on each (so that a single
 * epoch shows). */
static void draw_series(aert_canvas *cv, const aert_axes *ax, const table_t *t, int ecol,
                        int col, int s) {
  const unsigned char *rgb = aert_series_colour(s);
  int px = 0, py = 0, have = 0;
  for (long r = 0; r < t->rows; r++) {
    double e = t->v[r * t->cols + ecol], v = t->v[r * t->cols + col];
    if (!isfinite(e) || !isfinite(v)) {
      have = 0;
      continue;
    }
    int x = aert_axes_x(ax, e), y = aert_axes_y(ax, v);
    if (have)
      aert_draw_line(cv, px, py, x, y, 2, rgb);
    aert_fill_rect(cv, x - 2, y - 2, 5, 5, rgb);
    px = x, py = y, have = 1;
  }
}

static void draw_panel(aert_canvas *cv, int y0, const panel_t *p, const table_t *t,
                       const int *col, int ecol) {
  aert_axes ax = {.x = LEFT, .y = y0 + TOP, .w = WIDTH - LEFT - RIGHT, .h = PANEL_H - TOP - BOTTOM};
  double last = 1;
  for (long r = 0; r < t->rows; r++)
    last = isfinite(t->v[r * t->cols + ecol]) ? fmax(last, t->v[r * t->cols + ecol]) : last;
  ax.lo[0] = 1, ax.hi[0] = last;
  aert_axis_range(&ax.lo[0], &ax.hi[0]);
  panel_range(t, col, &ax.lo[1], &ax.hi[1]);
  aert_axis_range(&ax.lo[1], &ax.hi[1]);
  aert_axes_draw(cv, &ax, p->title, "epoch", 1);
  for (int s = 0; s < MAX_SERIES; s++)
    if (col[s] >= 0)
      draw_series(cv, &ax, t, ecol, col[s], s);
  int x = ax.x + ax.w;   /* the legend, right-aligned above the plot */
  for (int s = MAX_SERIES - 1; s >= 0; s--)
    if (col[s] >= 0) {
      x -= aert_text_width(p->label[s], 1) + 30;
      aert_fill_rect(cv, x, ax.y - 14, 16, 3, aert_series_colour(s));
      aert_draw_text(cv, x + 20, ax.y - 17, p->label[s], 1, aert_black);
    }
}

int aert_curves_write(const char *csv_path, const char *png_path) {
  table_t t;
  if (read_table(csv_path, &t) != 0)
    return -1;
  int ecol = column(&t, "epoch"), col[N_PANELS][MAX_SERIES], shown = 0, rc = 0;
  double lo, hi;
  for (int p = 0; p < N_PANELS; p++) {
    for (int s = 0; s < MAX_SERIES; s++)
      col[p][s] = column(&t, panels[p].column[s]);
    shown += panel_range(&t, col[p], &lo, &hi);
  }
  aert_canvas cv;
  if (ecol < 0)
    rc = (aert_error("'%s' has no epoch column: not a training log", csv_path), -1);
  else if (shown > 0 && aert_canvas_new(&cv, WIDTH, shown * PANEL_H, png_path) != 0)
    rc = -1;
  if (rc == 0 && shown > 0) {
    int y0 = 0;
    for (int p = 0; p < N_PANELS; p++)
      if (panel_range(&t, col[p], &lo, &hi)) {
        draw_panel(&cv, y0, &panels[p], &t, col[p], ecol);
        y0 += PANEL_H;
      }
    rc = aert_canvas_write(&cv, png_path);
  }
  table_free(&t);
  return rc;
}
