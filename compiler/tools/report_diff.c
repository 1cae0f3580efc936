/* report_diff.c - section 5 of `aec report --diff OLD_MANIFEST`: what changed since an
 * earlier build. Kernels, buffers and parameters are matched by name against the earlier
 * manifest.json; new and changed ones are marked wherever the page shows them, and the
 * totals (arena, parameters, FLOPs) are set side by side, so a spec change shows its cost. */
#include "aec.h"

#include <math.h>
#include <string.h>

#define OUT(...) fprintf(r->o, __VA_ARGS__)

static const ae_json *find_named(const ae_json *list, const char *name) {
  if (!list || list->kind != JSON_ARR) return NULL;
  for (int i = 0; i < list->items.len; i++) {
    const char *n = ae_json_str(list->items.items[i], "name");
    if (n && !strcmp(n, name)) return list->items.items[i];
  }
  return NULL;
}

/* A pair [forward, backward] of an old kernel, or -1s when the manifest predates it. */
static void old_pair(const ae_json *k, const char *key, double out[2]) {
  const ae_json *v = ae_json_get(k, key);
  out[0] = out[1] = -1;
  if (v && v->kind == JSON_ARR && v->items.len == 2)
    for (int i = 0; i < 2; i++) out[i] = ((const ae_json *)v->items.items[i])->kind == JSON_NUM ? ((const ae_json *)v->items.items[i])->num : -1;
}

static bool differs(double old, double now) { return old >= 0 && fabs(old - now) > 0.5; }

static char kernel_mark(ae_report_ctx *r, int k) {
  const ae_json *old = find_named(ae_json_get(r->old, "kernels"), r->kname[k]);
  if (!old) return 'n';
  const ae_kernel *kk = r->p->kernels.items[k];
  char sh[48];
  const char *out = ae_json_str(old, "out");
  double fl[2], by[2];
  old_pair(old, "flops", fl);
  old_pair(old, "bytes", by);
  bool c = (out && strcmp(out, ae_shape_str(kk->out->shape, sh))) || differs(ae_json_num(old, "flops_per_example", -1), kk->node->flops);
  for (int d = 0; d < 2; d++) c = c || differs(fl[d], r->cost[k].flops[d]) || differs(by[d], r->cost[k].bytes[d]);
  return c ? 'c' : 0;
}

bool ae_report_load_diff(ae_report_ctx *r, ae_diag *d, const char *path) {
  const ae_json *j;
  if (!ae_report_read_json(r->a, d, path, &j)) return false;
  const ae_json *k = ae_json_get(j, "kernels");
  if (!k || k->kind != JSON_ARR || !ae_json_get(j, "arena_floats")) {
    ae_error_noloc(d, path, "not a manifest.json of `aec build`: it needs \"kernels\" and \"arena_floats\"");
    return false;
  }
  for (int i = 0; i < k->items.len; i++)
    if (!ae_json_str(k->items.items[i], "name")) {
      ae_error(d, ((const ae_json *)k->items.items[i])->loc, "a kernel without a \"name\"");
      return false;
    }
  r->old = j;
  r->diff_path = path;
  r->kmark = ae_alloc(r->a, (size_t)r->K + 1);
  for (int i = 0; i < r->K; i++) r->kmark[i] = kernel_mark(r, i);
  return true;
}

char ae_report_buffer_mark(ae_report_ctx *r, const char *name, long floats) {
  const ae_json *list = r->old ? ae_json_get(r->old, "buffers") : NULL;
  if (!list) return 0;
  const ae_json *b = find_named(list, name);
  if (!b) return 'n';
  return differs(ae_json_num(b, "floats", -1), (double)floats) ? 'c' : 0;
}

/* How kernel k differs from its namesake in the earlier manifest: "output 64x64x8 -> 64x64x16,
 * FLOPs 113.25M -> 452.98M, bytes 6.03M -> 12.06M" (forward + backward). */
static void change_text(ae_report_ctx *r, int k, const ae_json *old) {
  const ae_kernel *kk = r->p->kernels.items[k];
  double fl[2], by[2];
  char a[64], b[64], sh[48];
  old_pair(old, "flops", fl);
  old_pair(old, "bytes", by);
  const char *out = ae_json_str(old, "out"), *sep = "";
  if (out && strcmp(out, ae_shape_str(kk->out->shape, sh))) {
    OUT("output ");
    ae_html(r->o, out);
    OUT(" &#8594; %s", sh);
    sep = ", ";
  }
  double f = r->cost[k].flops[0] + r->cost[k].flops[1], bb = r->cost[k].bytes[0] + r->cost[k].bytes[1];
  if (fl[0] >= 0 && differs(fl[0] + fl[1], f)) { OUT("%sFLOPs %s &#8594; %s", sep, ae_fmt_si(fl[0] + fl[1], a), ae_fmt_si(f, b)); sep = ", "; }
  else if (fl[0] < 0 && differs(ae_json_num(old, "flops_per_example", -1), kk->node->flops)) {
    OUT("%sFLOPs per example %s &#8594; %s", sep, ae_fmt_si(ae_json_num(old, "flops_per_example", 0), a), ae_fmt_si(kk->node->flops, b));
    sep = ", ";
  }
  if (by[0] >= 0 && differs(by[0] + by[1], bb)) { OUT("%sbytes %s &#8594; %s", sep, ae_fmt_si(by[0] + by[1], a), ae_fmt_si(bb, b)); sep = ", "; }
  if (!*sep) OUT("its forward and backward split of FLOPs or bytes");
}

void ae_report_kernel_change(ae_report_ctx *r, int k) {
  if (!r->old || k >= r->K || !r->kmark[k]) return;
  OUT("<tr class=\"changed\"><th scope=\"row\">since ");
  ae_html(r->o, r->diff_path);
  OUT("</th><td>");
  const ae_json *old = find_named(ae_json_get(r->old, "kernels"), r->kname[k]);
  if (old) change_text(r, k, old);
  else OUT("new kernel");
  OUT(" (forward + backward)</td></tr>\n");
}

static void total_row(ae_report_ctx *r, const char *what, double old, double now, bool bytes) {
  char a[64], b[64], c[64];
  bool changed = old >= 0 && fabs(old - now) > 0.5;
  OUT("<tr%s><th scope=\"row\">%s</th>", changed ? " class=\"changed\"" : "", what);
  if (old < 0) { OUT("<td>not in the earlier manifest</td><td class=\"num\">%s</td><td></td></tr>\n", bytes ? ae_fmt_bytes(now, b) : ae_fmt_si(now, b)); return; }
  OUT("<td class=\"num\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s%s</td></tr>\n", bytes ? ae_fmt_bytes(old, a) : ae_fmt_si(old, a),
      bytes ? ae_fmt_bytes(now, b) : ae_fmt_si(now, b), now >= old ? "+" : "&#8722;", bytes ? ae_fmt_bytes(fabs(now - old), c) : ae_fmt_si(fabs(now - old), c));
}

static void totals(ae_report_ctx *r) {
  const ae_json *o = r->old;
  double fl = 0, old_fl = 0;
  bool old_has = true;
  for (int k = 0; k < r->K; k++) fl += r->cost[k].flops[0] + r->cost[k].flops[1];
  const ae_json *ks = ae_json_get(o, "kernels");
  for (int i = 0; i < ks->items.len; i++) {
    double p[2];
    old_pair(ks->items.items[i], "flops", p);
    old_has = old_has && p[0] >= 0;
    old_fl += p[0] + p[1];
  }
  const ae_json *bufs = ae_json_get(o, "buffers");
  OUT("<table class=\"data\"><caption>Totals: earlier build, this build, difference</caption>\n<thead><tr><th scope=\"col\"></th>"
      "<th scope=\"col\">earlier</th><th scope=\"col\">now</th><th scope=\"col\">change</th></tr></thead><tbody>\n");
  total_row(r, "batch", ae_json_num(o, "batch", -1), r->p->batch, false);
  total_row(r, "arena", 4 * ae_json_num(o, "arena_floats", -1), 4.0 * r->p->arena_floats, true);
  total_row(r, "parameters (floats, aligned)", ae_json_num(o, "param_floats", -1), (double)r->p->param_floats, false);
  total_row(r, "kernels", ks->items.len, r->K, false);
  total_row(r, "training-step FLOPs of the kernels", old_has ? old_fl : -1, fl, false);
  int n;
  ae_plan_buffers(r->a, r->p, &n);
  total_row(r, "buffers", bufs && bufs->kind == JSON_ARR ? bufs->items.len : -1, n, false);
  OUT("</tbody></table>\n");
}

static void kernel_changes(ae_report_ctx *r) {
  const ae_json *ks = ae_json_get(r->old, "kernels");
  OUT("<h3>Kernels</h3>\n<p>FLOPs and bytes per batch, forward and backward together.</p>\n<ul>\n");
  int shown = 0;
  for (int k = 0; k < r->K; k++) {
    if (!r->kmark[k]) continue;
    OUT("<li class=\"%s\"><a href=\"#k%d\"><code>%s</code></a>: ", r->kmark[k] == 'n' ? "added" : "changed", k, r->kname[k]);
    if (r->kmark[k] == 'n') OUT("new");
    else change_text(r, k, find_named(ks, r->kname[k]));
    OUT("</li>\n");
    shown++;
  }
  for (int i = 0; i < ks->items.len; i++) {
    const char *name = ae_json_str(ks->items.items[i], "name");
    bool still = false;
    for (int k = 0; k < r->K; k++) still = still || !strcmp(name, r->kname[k]);
    if (still) continue;
    OUT("<li class=\"removed\"><code>");
    ae_html(r->o, name);
    OUT("</code>: removed</li>\n");
    shown++;
  }
  if (!shown) OUT("<li>none: the same kernels with the same shapes, FLOPs and bytes</li>\n");
  OUT("</ul>\n");
}

static void buffer_changes(ae_report_ctx *r) {
  const ae_json *bufs = ae_json_get(r->old, "buffers");
  OUT("<h3>Buffers</h3>\n");
  if (!bufs || bufs->kind != JSON_ARR) { OUT("<p>The earlier manifest has no buffer list (it predates <code>aec report</code>): buffers are not compared.</p>\n"); return; }
  int n, shown = 0;
  const ae_named_buffer *b = ae_plan_buffers(r->a, r->p, &n);
  char a[64], c[64];
  OUT("<ul>\n");
  for (int i = 0; i < n; i++) {
    char m = ae_report_buffer_mark(r, b[i].name, b[i].b->size);
    if (!m) continue;
    OUT("<li class=\"%s\"><a href=\"#buf-%s\"><code>%s</code></a>: ", m == 'n' ? "added" : "changed", b[i].name, b[i].name);
    if (m == 'n') OUT("new, %s</li>\n", ae_fmt_bytes(4.0 * b[i].b->size, a));
    else OUT("%s, was %s</li>\n", ae_fmt_bytes(4.0 * b[i].b->size, a), ae_fmt_bytes(4 * ae_json_num(find_named(bufs, b[i].name), "floats", 0), c));
    shown++;
  }
  for (int i = 0; i < bufs->items.len; i++) {
    const char *name = ae_json_str(bufs->items.items[i], "name");
    bool still = false;
    for (int j = 0; j < n && name; j++) still = still || !strcmp(name, b[j].name);
    if (still || !name) continue;
    OUT("<li class=\"removed\"><code>");
    ae_html(r->o, name);
    OUT("</code>: removed</li>\n");
    shown++;
  }
  if (!shown) OUT("<li>none: the same buffers with the same sizes</li>\n");
  OUT("</ul>\n");
}

static void param_changes(ae_report_ctx *r) {
  const ae_json *ps = ae_json_get(r->old, "params");
  OUT("<h3>Parameters</h3>\n<ul>\n");
  int shown = 0;
  for (int i = 0; i < r->p->params.len; i++) {
    const ae_tensor *t = r->p->params.items[i];
    const ae_json *old = find_named(ps, t->name);
    const ae_json *shape = old ? ae_json_get(old, "shape") : NULL;
    bool same = shape && shape->kind == JSON_ARR && shape->items.len == t->rank;
    for (int d = 0; same && d < t->rank; d++) same = ((const ae_json *)shape->items.items[d])->num == t->shape[d];
    if (same) continue;
    OUT("<li class=\"%s\"><code>%s</code> [", old ? "changed" : "added", t->name);
    for (int d = 0; d < t->rank; d++) OUT("%s%d", d ? ", " : "", t->shape[d]);
    OUT("]: %s</li>\n", old ? "reshaped" : "new");
    shown++;
  }
  for (int i = 0; ps && ps->kind == JSON_ARR && i < ps->items.len; i++) {
    const char *name = ae_json_str(ps->items.items[i], "name");
    bool still = false;
    for (int j = 0; j < r->p->params.len && name; j++) still = still || !strcmp(name, ((ae_tensor *)r->p->params.items[j])->name);
    if (still || !name) continue;
    OUT("<li class=\"removed\"><code>");
    ae_html(r->o, name);
    OUT("</code>: removed</li>\n");
    shown++;
  }
  if (!shown) OUT("<li>none</li>\n");
  OUT("</ul>\n");
}

void ae_report_changes(ae_report_ctx *r) {
  OUT("<section id=\"changes\" aria-labelledby=\"h-changes\">\n<h2 id=\"h-changes\">5. What changed</h2>\n");
  if (!r->old) {
    OUT("<p>No earlier build was given. <code>aec report --diff OLD/manifest.json</code> compares this build with an earlier "
        "one (for instance <code>git show HEAD~1:generated/%s/manifest.json &gt; old.json</code>) and marks what differs.</p>\n</section>\n",
        r->p->m->name);
    return;
  }
  OUT("<p>Compared with <code>");
  ae_html(r->o, r->diff_path);
  OUT("</code> (model <code>");
  ae_html(r->o, ae_json_str(r->old, "model") ? ae_json_str(r->old, "model") : "?");
  OUT("</code>); new and changed kernels and buffers are also marked in the sections above.</p>\n");
  totals(r);
  kernel_changes(r);
  buffer_changes(r);
  param_changes(r);
  OUT("</section>\n");
}
