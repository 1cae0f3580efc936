/* report_mem.c - section 3 of `aec report`: the memory plan as a picture. The arena is
 * drawn as a timeline (steps across: forward kernels, the loss, backward kernels; offsets
 * down), each buffer a named bar over its life, so reuse and the peak show; under it the
 * live total per step; then the peak's buffers, the other allocations and every buffer. */
#include "aec.h"

#include <stdlib.h>
#include <string.h>

#define OUT(...) fprintf(r->o, __VA_ARGS__)

enum { LEFT = 78, RIGHT = 12, TOP = 8, PLOT_H = 320, LIVE_H = 70, GAP = 34, WIDTH = 1000 };

static const char *const kind_class[] = {"val", "grad", "scr", "sta"};
static const char *const kind_name[] = {"value", "gradient", "scratch", "statistics"};

/* Floats live at step t: every buffer whose life covers it. */
static double live_at(const ae_named_buffer *b, int n, int t) {
  double s = 0;
  for (int i = 0; i < n; i++)
    if (b[i].b->first <= t && t <= b[i].b->last) s += (double)b[i].b->size;
  return s;
}

static void step_axis(ae_report_ctx *r, double x0, double cw, int steps, int y) {
  int K = r->K, every = K > 40 ? 5 : 1;
  for (int t = 0; t < steps; t++) {
    int k = t < K ? t : 2 * K - t;
    if (t != K && t <= 2 * K && k % every) continue;
    OUT("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#57606a\">%s</text>", x0 + (t + 0.5) * cw, y,
        t == K ? "L" : t > 2 * K ? "end" : ae_sprintf(r->a, "%d", k));
  }
  double mid_f = x0 + K * cw / 2, mid_b = x0 + (K + 1 + K / 2.0) * cw;
  OUT("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">forward kernels &#8594;</text>", mid_f, y + 14);
  OUT("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">loss</text>", x0 + (K + 0.5) * cw, y + 14);
  OUT("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">&#8592; backward kernels</text>", mid_b, y + 14);
}

static void buffer_bar(ae_report_ctx *r, const ae_named_buffer *b, double x0, double cw, double scale) {
  double x = x0 + b->b->first * cw, w = (b->b->last - b->b->first + 1) * cw, y = TOP + b->b->off * scale;
  double h = b->b->size * scale < 1 ? 1 : b->b->size * scale;
  char sz[64];
  char mark = ae_report_buffer_mark(r, b->name, b->b->size);
  OUT("<a href=\"#buf-%s\"><rect class=\"%s%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>", b->name,
      kind_class[b->kind], mark ? " mk" : "", x, y, w, h);
  ae_html(r->o, b->label);
  OUT(" (%s): %s, steps %d&#8211;%d</title></rect>", b->name, ae_fmt_bytes(4.0 * b->b->size, sz), b->b->first, b->b->last);
  int fits = (int)(w / 6.2);
  if (h >= 12 && fits >= 3) {
    OUT("<text class=\"lab\" x=\"%.1f\" y=\"%.1f\">", x + 3, y + (h < 24 ? h / 2 + 4 : 14));
    ae_html(r->o, (int)strlen(b->label) <= fits ? b->label : ae_strndup(r->a, b->label, (size_t)fits));
    OUT("</text>");
  }
  OUT("</a>\n");
}

static void timeline(ae_report_ctx *r, const ae_named_buffer *b, int n, int peak_t, double peak) {
  int steps = 2 * r->K + 2;
  double arena = (double)r->p->arena_floats, cw = (double)(WIDTH - LEFT - RIGHT) / steps, scale = PLOT_H / arena;
  int live_y = TOP + PLOT_H + GAP, height = live_y + LIVE_H + 40;
  char a[64], p[64];
  OUT("<figure>\n<svg viewBox=\"0 0 %d %d\" width=\"100%%\" role=\"img\" aria-labelledby=\"mem-t mem-d\">\n<title id=\"mem-t\">"
      "The arena over one training step</title>\n<desc id=\"mem-d\">Each bar is one buffer: its horizontal extent is its life "
      "over the steps of a training step (forward kernels, the loss, backward kernels, then the time after it), its vertical extent its place in the "
      "arena of %s. Bars that share a vertical band at different times reuse memory. The bars below give the memory live at "
      "each step; the peak, %s, is at step %d (%s).</desc>\n", WIDTH, height, ae_fmt_bytes(arena * 4, a),
      ae_fmt_bytes(peak * 4, p), peak_t, ae_step_name(r->a, r->p, peak_t));
  OUT("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"/>\n", LEFT, TOP, WIDTH - LEFT - RIGHT, PLOT_H);
  OUT("<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#eaeef2\"/>\n", LEFT + r->K * cw, TOP, cw, PLOT_H);
  for (int i = 0; i <= 4; i++)
    OUT("<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#57606a\">%s</text>", LEFT - 4, TOP + PLOT_H * i / 4.0 + 4,
        ae_fmt_bytes(arena * 4 * i / 4, a));
  OUT("<text x=\"10\" y=\"%d\" transform=\"rotate(-90 10 %d)\" text-anchor=\"middle\">arena offset</text>\n", TOP + PLOT_H / 2, TOP + PLOT_H / 2);
  for (int i = 0; i < n; i++) buffer_bar(r, &b[i], LEFT, cw, scale);
  double px = LEFT + (peak_t + 0.5) * cw;
  OUT("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>\n", px, px, TOP, live_y + LIVE_H);
  for (int t = 0; t < steps; t++) {
    double l = live_at(b, n, t), h = l / arena * LIVE_H;
    OUT("<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>%s: %s live</title></rect>", t == peak_t ? "peak" : "live",
        LEFT + t * cw + 0.5, live_y + LIVE_H - h, cw - 1 > 0.5 ? cw - 1 : 0.5, h, ae_step_name(r->a, r->p, t), ae_fmt_bytes(l * 4, a));
  }
  OUT("\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#57606a\">live</text>", LEFT - 4, live_y + LIVE_H / 2);
  OUT("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#cf222e\">peak %s</text>\n", px, live_y - 4, ae_fmt_bytes(peak * 4, a));
  step_axis(r, LEFT, cw, steps, live_y + LIVE_H + 14);
  OUT("</svg>\n<figcaption>");
  for (int k = 0; k < 4; k++) OUT("<span class=\"key %s\"></span>%s ", kind_class[k], kind_name[k]);
  OUT("<span class=\"key mk\"></span>changed since the earlier build. Hover a bar for its name and size; a bar links to its row below. "
      "Step numbers are kernel numbers; L is the loss, end the time after the step.</figcaption>\n</figure>\n");
}

static int by_size_desc(const void *x, const void *y) {
  const ae_named_buffer *a = x, *b = y;
  return (a->b->size < b->b->size) - (a->b->size > b->b->size);
}

static int by_offset(const void *x, const void *y) {
  const ae_named_buffer *a = x, *b = y;
  return a->b->off != b->b->off ? (a->b->off > b->b->off) - (a->b->off < b->b->off) : (a->b->first > b->b->first) - (a->b->first < b->b->first);
}

static void buffer_row(ae_report_ctx *r, const ae_named_buffer *b, bool anchor) {
  char s[64], o[64];
  char mark = ae_report_buffer_mark(r, b->name, b->b->size);
  OUT("<tr%s%s%s%s><td><code>", anchor ? " id=\"buf-" : "", anchor ? b->name : "", anchor ? "\"" : "",
      mark == 'n' ? " class=\"added\"" : mark ? " class=\"changed\"" : "");
  ae_html(r->o, b->name);
  OUT("</code></td><td>");
  ae_html(r->o, b->label);
  OUT("</td><td>%s</td><td class=\"num\" data-floats=\"%ld\">%s</td><td class=\"num\">%s</td><td>%d&#8211;%d</td><td>", kind_name[b->kind],
      b->b->size, ae_fmt_bytes(4.0 * b->b->size, s), ae_fmt_bytes(4.0 * b->b->off, o), b->b->first, b->b->last);
  if (b->k) OUT("<a href=\"#k%d\">k%d</a>", b->k->id, b->k->id);
  else OUT("<a href=\"#loss\">loss</a>");
  OUT("</td></tr>\n");
}

static void buffer_table(ae_report_ctx *r, const ae_named_buffer *b, int n, const char *caption, bool anchors) {
  OUT("<table class=\"data\"><caption>%s</caption>\n<thead><tr><th scope=\"col\">buffer</th><th scope=\"col\">what</th>"
      "<th scope=\"col\">kind</th><th scope=\"col\">size</th><th scope=\"col\">offset</th><th scope=\"col\">steps</th>"
      "<th scope=\"col\">kernel</th></tr></thead><tbody>\n", caption);
  for (int i = 0; i < n; i++) buffer_row(r, &b[i], anchors);
  OUT("</tbody></table>\n");
}

/* Parameters, their gradients and the optimizer's state live outside the arena. */
static void other_memory(ae_report_ctx *r) {
  ae_totals t = ae_model_totals(r->p->m);
  double arena = 4.0 * (double)r->p->arena_floats;
  double part[] = {arena, t.bytes_params, t.bytes_grads, t.bytes_optimizer}, total = 0;
  const char *name[] = {"arena", "parameters", "gradients", ae_sprintf(r->a, "%s state", ae_optimizers.names[r->p->m->opt.kind])};
  static const char *const fill[] = {"#4878d0", "#6acc64", "#ee854a", "#956cb4"};
  for (int i = 0; i < 4; i++) total += part[i];
  char a[64];
  OUT("<h3>Beside the arena</h3>\n<figure>\n<svg viewBox=\"0 0 %d 34\" width=\"100%%\" role=\"img\" aria-labelledby=\"alloc-t\">"
      "<title id=\"alloc-t\">What the trainer allocates for the model: arena %s", WIDTH, ae_fmt_bytes(arena, a));
  for (int i = 1; i < 4; i++) OUT(", %s %s", name[i], ae_fmt_bytes(part[i], a));
  OUT("</title>\n");
  double x = 0;
  for (int i = 0; i < 4; i++) {
    double w = part[i] / total * WIDTH;
    OUT("<rect x=\"%.1f\" y=\"2\" width=\"%.1f\" height=\"30\" fill=\"%s\"><title>%s %s</title></rect>", x, w, fill[i], name[i],
        ae_fmt_bytes(part[i], a));
    if (w > 90) OUT("<text class=\"lab\" x=\"%.1f\" y=\"21\">%s %s</text>", x + 4, name[i], ae_fmt_bytes(part[i], a));
    x += w;
  }
  OUT("</svg>\n<figcaption>Together %s, the memory the model itself takes in a trainer (data batches and the runtime come on top).</figcaption>\n</figure>\n",
      ae_fmt_bytes(total, a));
}

void ae_report_memory(ae_report_ctx *r) {
  int n;
  const ae_named_buffer *plan = ae_plan_buffers(r->a, r->p, &n);
  ae_named_buffer *b = ae_alloc(r->a, sizeof *b * (size_t)(n + 1));
  memcpy(b, plan, sizeof *b * (size_t)n);
  int steps = 2 * r->K + 2, peak_t = 0;
  double peak = 0;
  for (int t = 0; t < steps; t++) {
    double l = live_at(b, n, t);
    if (l > peak) { peak = l; peak_t = t; }
  }
  char a[64], p[64];
  OUT("<section id=\"memory\" aria-labelledby=\"h-memory\">\n<h2 id=\"h-memory\">3. Memory</h2>\n"
      "<p>One arena of <span data-total=\"arena_floats\" data-value=\"%ld\">%s</span> holds every activation, gradient and working "
      "buffer of a step at a fixed offset (<code>aec dump --stage mem</code>); buffers whose lives do not overlap share memory. "
      "At most <strong>%s</strong> are live at once, at step %d (%s).</p>\n", r->p->arena_floats, ae_fmt_bytes(4.0 * r->p->arena_floats, a),
      ae_fmt_bytes(4 * peak, p), peak_t, ae_step_name(r->a, r->p, peak_t));
  timeline(r, b, n, peak_t, peak);
  ae_named_buffer *at_peak = ae_alloc(r->a, sizeof *at_peak * (size_t)(n + 1));
  int np = 0;
  for (int i = 0; i < n; i++)
    if (b[i].b->first <= peak_t && peak_t <= b[i].b->last) at_peak[np++] = b[i];
  qsort(at_peak, (size_t)np, sizeof *at_peak, by_size_desc);
  buffer_table(r, at_peak, np, ae_sprintf(r->a, "The %d buffers live at the peak (step %d), largest first", np, peak_t), false);
  other_memory(r);
  qsort(b, (size_t)n, sizeof *b, by_offset);
  OUT("<details id=\"buffers\"><summary>All %d buffers of the plan, by offset</summary>\n", n);
  buffer_table(r, b, n, "Every buffer: name, size, offset and life in steps", true);
  OUT("</details>\n</section>\n");
}
