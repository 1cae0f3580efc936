/* report_time.c - section 4 of `aec report`: where the time goes. Reads the JSON that
 * `MODEL train --profile FILE` or the bench writes (ms per kernel, forward and backward,
 * and the machine's probed peak FLOP/s and memory bandwidth), draws every kernel on the
 * machine's roofline and lists them by time with their share of the step. */
#include "aec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OUT(...) fprintf(r->o, __VA_ARGS__)

enum { WIDTH = 1000, HEIGHT = 420, LEFT = 70, RIGHT = 20, TOP = 16, BOTTOM = 46 };

static bool profile_error(ae_diag *d, const ae_json *at, const char *path, const char *msg) {
  if (at) ae_error(d, at->loc, "%s", msg);
  else ae_error_noloc(d, path, "%s", msg);
  return false;
}

static bool read_kernels(ae_report_ctx *r, ae_diag *d, const char *path, const ae_json *list) {
  if (!list || list->kind != JSON_ARR) return profile_error(d, list, path, "\"kernels\" must be a list of per-kernel timings");
  int found = 0;
  for (int i = 0; i < list->items.len; i++) {
    const ae_json *k = list->items.items[i];
    const char *name = ae_json_str(k, "name");
    double f = ae_json_num(k, "forward_ms", -1), b = ae_json_num(k, "backward_ms", -1);
    if (!name || f < 0 || b < 0)
      return profile_error(d, k, path, "each kernel needs \"name\", \"forward_ms\" and \"backward_ms\" (not negative)");
    for (int j = 0; j <= r->K; j++)
      if (!strcmp(name, r->kname[j])) { r->ms[j][0] = f; r->ms[j][1] = b; found++; }
  }
  if (found < r->K + 1)
    r->profile_warning = ae_sprintf(r->a, "%d of the %d kernels are not in the profile: it was measured on another build of the model",
                                    r->K + 1 - found, r->K + 1);
  return true;
}

bool ae_report_load_profile(ae_report_ctx *r, ae_diag *d, const char *path) {
  const ae_json *j;
  if (!ae_report_read_json(r->a, d, path, &j)) return false;
  if (!ae_json_get(j, "aec_profile"))
    return profile_error(d, NULL, path, "not a profile: no \"aec_profile\" key (write one with `MODEL train --profile FILE` or bench/run.sh)");
  const char *model = ae_json_str(j, "model");
  if (!model || strcmp(model, r->p->m->name))
    return profile_error(d, ae_json_get(j, "model"), path, ae_sprintf(r->a, "this profile is of model '%s', not '%s'", model ? model : "?", r->p->m->name));
  int batch = (int)ae_json_num(j, "batch", 0);
  if (batch != r->p->batch)
    return profile_error(d, ae_json_get(j, "batch"), path, ae_sprintf(r->a, "measured at batch %d; the report is for batch %d (give --batch %d)",
                                                                     batch, r->p->batch, batch));
  r->ms = ae_alloc(r->a, sizeof(double[2]) * (size_t)(r->K + 1));
  for (int k = 0; k <= r->K; k++) r->ms[k][0] = r->ms[k][1] = -1;
  if (!read_kernels(r, d, path, ae_json_get(j, "kernels"))) return false;
  const ae_json *machine = ae_json_get(j, "machine");
  r->has_profile = true;
  r->profile_path = path;
  r->step_ms = ae_json_num(j, "step_ms", 0);
  r->optim_ms = ae_json_num(j, "optimizer_ms", 0);
  r->profile_steps = (int)ae_json_num(j, "steps", 0);
  r->threads = (int)ae_json_num(j, "threads", 0);
  r->profile_source = ae_json_str(j, "source") ? ae_json_str(j, "source") : "a trainer";
  r->peak_gflops = ae_json_num(machine, "peak_gflops", 0);
  r->bandwidth_gbs = ae_json_num(machine, "bandwidth_gbs", 0);
  r->cpu = ae_json_str(machine, "cpu") ? ae_json_str(machine, "cpu") : "an unnamed CPU";
  const char *hash = ae_json_str(j, "spec_hash");
  if (hash && strcmp(hash, r->hash) && !r->profile_warning)
    r->profile_warning = ae_sprintf(r->a, "measured on another version of the spec (hash %s, now %s): kernels are matched by name", hash, r->hash);
  if (r->profile_warning) fprintf(stderr, "aec report: %s: %s\n", path, r->profile_warning);
  return true;
}

/* What the roofline allows at intensity ai, GFLOP/s; 0 without a probed machine. */
static double roof(const ae_report_ctx *r, double ai) {
  if (r->peak_gflops <= 0 || r->bandwidth_gbs <= 0) return 0;
  return fmin(r->peak_gflops, r->bandwidth_gbs * ai);
}

static double gflops(const ae_report_ctx *r, int k, int d) { return r->ms[k][d] > 0 ? r->cost[k].flops[d] / r->ms[k][d] / 1e6 : 0; }
static double intensity(const ae_report_ctx *r, int k, int d) { return r->cost[k].bytes[d] > 0 ? r->cost[k].flops[d] / r->cost[k].bytes[d] : 0; }
static double total_ms(const ae_report_ctx *r, int k) { return fmax(r->ms[k][0], 0) + fmax(r->ms[k][1], 0); }

void ae_report_kernel_time(ae_report_ctx *r, int k) {
  if (!r->has_profile) return;
  OUT("<tr><th scope=\"row\">measured</th><td>");
  if (r->ms[k][0] < 0) { OUT("not in the profile</td></tr>\n"); return; }
  for (int d = 0; d < 2; d++) {
    if (d && r->ms[k][1] <= 0 && r->cost[k].flops[1] <= 0) continue;
    double g = gflops(r, k, d), top = roof(r, intensity(r, k, d));
    OUT("%s %.3f ms", d ? "; backward" : "forward", r->ms[k][d]);
    if (g > 0) OUT(" (%.1f GFLOP/s", g);
    if (g > 0 && top > 0) OUT(", %.0f%% of the roofline", 100 * g / top);
    if (g > 0) OUT(")");
  }
  if (r->step_ms > 0) OUT("; %.1f%% of the step", 100 * total_ms(r, k) / r->step_ms);
  OUT("</td></tr>\n");
}

/* Log-scale axes: value v as a coordinate between lo and hi (powers of ten). */
static double lx(double v, double lo, double hi) { return LEFT + (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) * (WIDTH - LEFT - RIGHT); }
static double ly(double v, double lo, double hi) { return TOP + (1 - (log10(v) - log10(lo)) / (log10(hi) - log10(lo))) * (HEIGHT - TOP - BOTTOM); }

static void axes(ae_report_ctx *r, double x0, double x1, double y0, double y1) {
  for (double v = x0; v <= x1 * 1.001; v *= 10)
    OUT("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#eaeef2\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#57606a\">%g</text>\n",
        lx(v, x0, x1), lx(v, x0, x1), TOP, HEIGHT - BOTTOM, lx(v, x0, x1), HEIGHT - BOTTOM + 14, v);
  for (double v = y0; v <= y1 * 1.001; v *= 10)
    OUT("<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#57606a\">%g</text>\n",
        LEFT, WIDTH - RIGHT, ly(v, y0, y1), ly(v, y0, y1), LEFT - 4, ly(v, y0, y1) + 4, v);
  OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">arithmetic intensity, FLOP per byte moved</text>\n", (LEFT + WIDTH) / 2, HEIGHT - 8);
  OUT("<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">GFLOP/s</text>\n", HEIGHT / 2, HEIGHT / 2);
}

static void roof_lines(ae_report_ctx *r, double x0, double x1, double y0, double y1) {
  if (roof(r, 1) <= 0) return;
  double ridge = r->peak_gflops / r->bandwidth_gbs;
  double a = fmax(x0, y0 / r->bandwidth_gbs);
  OUT("<polyline fill=\"none\" stroke=\"#1b1f24\" stroke-width=\"2\" points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"/>\n", lx(a, x0, x1),
      ly(r->bandwidth_gbs * a, y0, y1), lx(ridge, x0, x1), ly(r->peak_gflops, y0, y1), lx(x1, x0, x1), ly(r->peak_gflops, y0, y1));
  OUT("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">peak %.0f GFLOP/s (FMA probe)</text>\n", lx(x1, x0, x1) - 4, ly(r->peak_gflops, y0, y1) - 6,
      r->peak_gflops);
  OUT("<text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(%.1f %.1f %.1f)\">memory %.1f GB/s (triad probe)</text>\n", lx(a, x0, x1) + 8,
      ly(r->bandwidth_gbs * a, y0, y1) - 6, -atan2(ly(r->bandwidth_gbs, y0, y1) - ly(r->bandwidth_gbs * 10, y0, y1), lx(10, x0, x1) - lx(1, x0, x1)) * 180 / M_PI,
      lx(a, x0, x1) + 8, ly(r->bandwidth_gbs * a, y0, y1) - 6, r->bandwidth_gbs);
}

/* Each pass a mark linked to its kernel; a number beside it unless another number is
 * already there (the tooltip and the table still name it). */
static void points(ae_report_ctx *r, double x0, double x1, double y0, double y1) {
  double *lab = ae_alloc(r->a, sizeof(double) * 4 * (size_t)(r->K + 1));
  int placed = 0;
  for (int k = 0; k < r->K; k++)
    for (int d = 0; d < 2; d++) {
      double g = gflops(r, k, d), ai = intensity(r, k, d);
      if (g <= 0 || ai <= 0) continue;
      double x = lx(ai, x0, x1), y = ly(g, y0, y1), tx = x + 6, ty = y + (d ? 10 : -3);
      OUT("<a href=\"#k%d\"><title>k%d %s %s: %.1f GFLOP/s at %.2f FLOP/B, %.3f ms</title>", k, k, r->kname[k], d ? "backward" : "forward", g, ai,
          r->ms[k][d]);
      if (d) OUT("<path class=\"bwd\" d=\"M%.1f %.1f l5 8 h-10 z\"/>", x, y - 5);
      else OUT("<circle class=\"fwd\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\"/>", x, y);
      bool clear = true;
      for (int i = 0; i < placed && clear; i++) clear = fabs(lab[2 * i] - tx) > 16 || fabs(lab[2 * i + 1] - ty) > 10;
      if (clear) {
        OUT("<text x=\"%.1f\" y=\"%.1f\" fill=\"#57606a\">%d</text>", tx, ty, k);
        lab[2 * placed] = tx;
        lab[2 * placed++ + 1] = ty;
      }
      OUT("</a>\n");
    }
}

static void roofline(ae_report_ctx *r) {
  double ai_lo = 1e9, ai_hi = 0, g_lo = 1e9, g_hi = fmax(r->peak_gflops, 0);
  for (int k = 0; k < r->K; k++)
    for (int d = 0; d < 2; d++) {
      double g = gflops(r, k, d), ai = intensity(r, k, d);
      if (g <= 0 || ai <= 0) continue;
      ai_lo = fmin(ai_lo, ai); ai_hi = fmax(ai_hi, ai); g_lo = fmin(g_lo, g); g_hi = fmax(g_hi, g);
    }
  if (ai_hi <= 0) { OUT("<p>No kernel with FLOPs was timed: nothing to draw on the roofline.</p>\n"); return; }
  if (roof(r, 1) > 0) { ai_lo = fmin(ai_lo, r->peak_gflops / r->bandwidth_gbs / 10); ai_hi = fmax(ai_hi, r->peak_gflops / r->bandwidth_gbs * 4); }
  double x0 = pow(10, floor(log10(ai_lo))), x1 = pow(10, ceil(log10(ai_hi) + 1e-9));
  double y0 = pow(10, floor(log10(g_lo))), y1 = pow(10, ceil(log10(g_hi * 1.2)));
  OUT("<figure>\n<svg viewBox=\"0 0 %d %d\" width=\"100%%\" role=\"img\" aria-labelledby=\"roof-t roof-d\">\n<title id=\"roof-t\">The kernels on "
      "the roofline of this machine</title>\n<desc id=\"roof-d\">Log-log chart: each kernel's forward pass (circle) and backward "
      "pass (triangle) at its arithmetic intensity and measured GFLOP/s, under the machine's peak of %.0f GFLOP/s and its memory "
      "bandwidth of %.1f GB/s. The table below lists the same numbers.</desc>\n", WIDTH, HEIGHT, r->peak_gflops, r->bandwidth_gbs);
  axes(r, x0, x1, y0, y1);
  roof_lines(r, x0, x1, y0, y1);
  points(r, x0, x1, y0, y1);
  OUT("</svg>\n<figcaption><span class=\"key fwdk\"></span>forward <span class=\"key bwdk\"></span>backward; numbers are kernel "
      "numbers (one where several crowd; hover a mark) and link to the kernel. Kernels without FLOPs (pooling, copies, the loss) are in the table only.</figcaption>\n</figure>\n");
}

static void time_table(ae_report_ctx *r) {
  int *order = ae_alloc(r->a, sizeof(int) * (size_t)(r->K + 1));
  for (int k = 0; k <= r->K; k++) {   /* slowest first; kernels are few */
    int j = k;
    for (; j > 0 && total_ms(r, order[j - 1]) < total_ms(r, k); j--) order[j] = order[j - 1];
    order[j] = k;
  }
  OUT("<table class=\"data\"><caption>Kernels by time per step</caption>\n<thead><tr><th scope=\"col\">kernel</th>"
      "<th scope=\"col\">forward ms</th><th scope=\"col\">backward ms</th><th scope=\"col\">share of the step</th>"
      "<th scope=\"col\">GFLOP/s fwd / bwd</th><th scope=\"col\">GB/s fwd / bwd</th><th scope=\"col\">of the roofline</th></tr></thead><tbody>\n");
  double sum = 0;
  for (int i = 0; i <= r->K; i++) {
    int k = order[i];
    if (r->ms[k][0] < 0) continue;
    double t = total_ms(r, k), share = r->step_ms > 0 ? 100 * t / r->step_ms : 0;
    sum += t;
    OUT("<tr><td><a href=\"#%s\"><code>%s</code></a></td><td class=\"num\">%.3f</td><td class=\"num\">%.3f</td>"
        "<td><span class=\"bar\" style=\"width:%.1fpx\"></span> %.1f%%</td><td class=\"num\">%.1f / %.1f</td><td class=\"num\">%.1f / %.1f</td><td class=\"num\">",
        k == r->K ? "loss" : ae_sprintf(r->a, "k%d", k), r->kname[k], r->ms[k][0], r->ms[k][1], share * 1.5, share, gflops(r, k, 0),
        gflops(r, k, 1), r->ms[k][0] > 0 ? r->cost[k].bytes[0] / r->ms[k][0] / 1e6 : 0, r->ms[k][1] > 0 ? r->cost[k].bytes[1] / r->ms[k][1] / 1e6 : 0);
    double top = roof(r, intensity(r, k, 0));
    if (top > 0 && gflops(r, k, 0) > 0) OUT("%.0f%%", 100 * gflops(r, k, 0) / top);
    OUT("</td></tr>\n");
  }
  double other = r->step_ms - sum - r->optim_ms;
  OUT("<tr><td>optimizer update</td><td colspan=\"2\" class=\"num\">%.3f</td><td>%.1f%%</td><td colspan=\"3\"></td></tr>\n", r->optim_ms,
      r->step_ms > 0 ? 100 * r->optim_ms / r->step_ms : 0);
  OUT("<tr><td>other (finiteness checks, between kernels)</td><td colspan=\"2\" class=\"num\">%.3f</td><td>%.1f%%</td><td colspan=\"3\"></td></tr>\n",
      other > 0 ? other : 0, r->step_ms > 0 && other > 0 ? 100 * other / r->step_ms : 0);
  OUT("</tbody></table>\n");
}

void ae_report_time(ae_report_ctx *r) {
  OUT("<section id=\"time\" aria-labelledby=\"h-time\">\n<h2 id=\"h-time\">4. Where the time goes</h2>\n");
  if (!r->has_profile && r->cuda) {
    OUT("<p>The CUDA trainer keeps no per-kernel profile yet: a GPU's times come from <code>tests/gpu/run.sh</code> "
        "(bench/GPU_RESULTS.md, the step against PyTorch on the same GPU). The FLOPs and bytes above are the target's "
        "work either way.</p>\n</section>\n");
    return;
  }
  if (!r->has_profile) {
    OUT("<p>No profile was given. Measure one with <code>bin/%s train --profile profile.json</code> (a few steps are enough: "
        "<code>--epochs 1 --limit N</code>) or <code>make bench</code> (build/bench/&lt;model&gt;/profile.json), then run "
        "<code>aec report --profile profile.json</code>.</p>\n</section>\n", r->p->m->name);
    return;
  }
  OUT("<p>Measured by %s on %s with %d thread%s, the mean of %d step%s after a warm-up step (", r->profile_source, r->cpu, r->threads,
      r->threads == 1 ? "" : "s", r->profile_steps, r->profile_steps == 1 ? "" : "s");
  ae_html(r->o, r->profile_path);
  OUT("): <strong>%.1f ms</strong> per training step", r->step_ms);
  if (r->peak_gflops > 0) OUT("; the machine's probed peak is %.0f GFLOP/s and its memory bandwidth %.1f GB/s", r->peak_gflops, r->bandwidth_gbs);
  OUT(".</p>\n");
  if (r->profile_warning) { OUT("<p class=\"warn\">"); ae_html(r->o, r->profile_warning); OUT(".</p>\n"); }
  roofline(r);
  time_table(r);
  OUT("</section>\n");
}
