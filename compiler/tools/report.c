/* report.c - `aec report`: one self-contained HTML page for a reviewer. The spec with line
 * numbers, each layer line linked to the kernels it became and each kernel linked back
 * through the block calls; the generated code kernel by kernel with its costs; then the
 * memory plan (report_mem.c), the time (report_time.c) and what changed (report_diff.c). */
#include "aec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUT(...) fprintf(r->o, __VA_ARGS__)

/* ---- where each node went: the kernels that compute it ------------------------------ */

typedef struct {
  ae_report_ctx *r;
  ae_vec *node_kernels;      /* per node: int kernel index + 1 (as pointers) */
  ae_vec sources;            /* const ae_source*: the spec, then the files it imports */
  const ae_json *manifest;   /* the manifest this build writes, read back */
} page;

static void add_node_kernel(page *g, const ae_node *n, int k) {
  ae_vec *v = &g->node_kernels[n->id];
  for (int i = 0; i < v->len; i++)
    if ((intptr_t)v->items[i] == k + 1) return;
  ae_vec_push(g->r->a, v, (void *)(intptr_t)(k + 1));
}

/* An upsample or concat folded into a conv's input copy belongs to that conv. */
static void add_folded(page *g, const ae_node *n, int k) {
  const ae_program *p = g->r->p;
  if (p->root[n->id] || !(ae_op_info_of(n->op)->traits & AE_OP_FOLDABLE)) return;
  add_node_kernel(g, n, k);
  for (int i = 0; i < n->in.len; i++) add_folded(g, n->in.items[i], k);
}

static int source_index(page *g, const ae_source *src) {
  for (int i = 0; i < g->sources.len; i++)
    if (g->sources.items[i] == src) return i;
  ae_vec_push(g->r->a, &g->sources, (void *)src);
  return g->sources.len - 1;
}

static void map_nodes(page *g) {
  const ae_program *p = g->r->p;
  g->node_kernels = ae_alloc(g->r->a, sizeof(ae_vec) * (size_t)p->n_nodes);
  source_index(g, p->m->src);
  for (int i = 0; i < g->r->K; i++) {
    const ae_kernel *k = p->kernels.items[i];
    add_node_kernel(g, k->node, i);
    if (k->act) add_node_kernel(g, k->act, i);
    if (k->kind == K_CONV) add_folded(g, k->node->in.items[0], i);
  }
  for (int i = 0; i < p->n_nodes; i++) {
    const ae_node *n = p->m->nodes.items[i];
    source_index(g, n->loc.src);
    for (int j = 0; j < n->n_via; j++) source_index(g, n->via[j].loc.src);
  }
}

/* "conv 3x3 with its bias and the relu after it, reading a folded upsample and concat". */
static const char *kernel_desc(page *g, int k) {
  ae_report_ctx *r = g->r;
  const ae_kernel *kk = r->p->kernels.items[k];
  char d[64];
  const char *s = ae_sprintf(r->a, "%s", ae_op_desc(kk->node, d));
  if (kk->b && kk->kind != K_BATCHNORM) s = ae_sprintf(r->a, "%s with its bias", s);
  if (kk->act) s = ae_sprintf(r->a, "%s%s the %s after it", s, kk->b ? " and" : " with", ae_op_name(kk->act->op));
  bool up = false, cat = false;
  for (int i = 0; i < r->p->n_nodes; i++) {
    const ae_node *n = r->p->m->nodes.items[i];
    ae_vec *v = &g->node_kernels[i];
    for (int j = 0; j < v->len; j++)
      if ((intptr_t)v->items[j] == k + 1 && n != kk->node && n != kk->act) { up = up || n->op == OP_UPSAMPLE; cat = cat || n->op == OP_CONCAT; }
  }
  if (up || cat) s = ae_sprintf(r->a, "%s, reading %s%s%s folded into its input copy", s, up ? "an upsample" : "", up && cat ? " and " : "", cat ? "a concat" : "");
  return s;
}

static void line_link(page *g, const ae_loc *loc) {
  ae_report_ctx *r = g->r;
  int s = source_index(g, loc->src);
  OUT("<a href=\"#s%d-L%d\">", s, loc->line);
  if (s) { ae_html(r->o, loc->src->path); OUT(":"); }
  OUT("line %d</a>", loc->line);
}

/* ---- 1. the spec ------------------------------------------------------------------- */

static const char *const spec_words[] = {"model", "block", "input", "target", "batch", "epochs", "latent", "loss",
                                         "optimizer", "data", "return", "import", "from", "frozen", "trainable", "ignore",
                                         "warmup", "clip", "accumulate", "stop"};

static bool is_ident(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/* One spec line: comments, strings, numbers and keywords marked. */
static void spec_line_html(ae_report_ctx *r, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    if (s[i] == '#') { OUT("<span class=\"cm\">"); ae_html(r->o, ae_strndup(r->a, s + i, n - i)); OUT("</span>"); return; }
    size_t j = i + 1;
    const char *cls = NULL;
    if (s[i] == '"') { while (j < n && s[j] != '"') j++; j = j < n ? j + 1 : n; cls = "st"; }
    else if (s[i] >= '0' && s[i] <= '9') { while (j < n && (is_ident(s[j]) || s[j] == '.')) j++; cls = "nu"; }
    else if (is_ident(s[i])) {
      while (j < n && is_ident(s[j])) j++;
      for (size_t w = 0; w < sizeof spec_words / sizeof *spec_words; w++)
        if (strlen(spec_words[w]) == j - i && !strncmp(spec_words[w], s + i, j - i)) cls = "kw";
    }
    if (cls) OUT("<span class=\"%s\">", cls);
    ae_html(r->o, ae_strndup(r->a, s + i, j - i));
    if (cls) OUT("</span>");
    i = j;
  }
}

/* Per line of source s: which kernels (k + 1, or K + 1 for the loss) its calls became. */
static ae_vec *kernels_by_line(page *g, int s, int lines) {
  ae_report_ctx *r = g->r;
  ae_vec *by = ae_alloc(r->a, sizeof(ae_vec) * (size_t)(lines + 2));
  const ae_model *m = r->p->m;
  for (int i = 0; i < r->p->n_nodes; i++) {
    const ae_node *n = m->nodes.items[i];
    ae_vec *ks = &g->node_kernels[i];
    for (int j = -1; j < n->n_via; j++) {
      const ae_loc *at = j < 0 ? &n->loc : &n->via[j].loc;
      if (source_index(g, at->src) != s || at->line > lines) continue;
      for (int k = 0; k < ks->len; k++) {
        ae_vec *v = &by[at->line];
        bool seen = false;
        for (int x = 0; x < v->len; x++) seen = seen || v->items[x] == ks->items[k];
        if (!seen) ae_vec_push(r->a, v, ks->items[k]);
      }
    }
  }
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    if (source_index(g, t->loc.src) == s && t->loc.line <= lines && !by[t->loc.line].len)
      ae_vec_push(r->a, &by[t->loc.line], (void *)(intptr_t)(r->K + 1));
  }
  return by;
}

static int by_kernel(const void *a, const void *b) { return (int)(*(intptr_t *)a - *(intptr_t *)b); }

/* What a line whose calls made no kernel is: the input, the target, or a view. */
static const char *line_note(page *g, int s, int line) {
  const ae_model *m = g->r->p->m;
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    if (n->loc.line != line || source_index(g, n->loc.src) != s) continue;
    if (n->op == OP_INPUT) return "the input: read from the batch, not the arena";
    if (n->op == OP_TARGET) return "the target: read from the batch";
    if (ae_op_info_of(n->op)->traits & AE_OP_VIEW) return "a view of its input's buffer: no code";
  }
  return NULL;
}

static void emit_source(page *g, int s) {
  ae_report_ctx *r = g->r;
  const ae_source *src = g->sources.items[s];
  int lines = 1;
  for (size_t i = 0; i < src->len; i++) lines += src->text[i] == '\n';
  ae_vec *by = kernels_by_line(g, s, lines);
  OUT("<h3 id=\"src%d\">", s);
  ae_html(r->o, src->path);
  OUT("%s</h3>\n<table class=\"spec\"><caption class=\"sr\">", s ? " (imported)" : "");
  ae_html(r->o, src->path);
  OUT(" with the kernels of each line</caption>\n<thead><tr><th scope=\"col\">line</th><th scope=\"col\">spec</th>"
      "<th scope=\"col\">kernels (forward and backward)</th></tr></thead><tbody>\n");
  const char *at = src->text, *end = src->text + src->len;
  for (int line = 1; at < end || line == 1; line++) {
    const char *nl = memchr(at, '\n', (size_t)(end - at));
    size_t n = nl ? (size_t)(nl - at) : (size_t)(end - at);
    OUT("<tr id=\"s%d-L%d\"><td class=\"ln\"><a href=\"#s%d-L%d\">%d</a></td><td class=\"sc\"><code>", s, line, s, line, line);
    spec_line_html(r, at, n);
    OUT("</code></td><td class=\"kl\">");
    ae_vec *v = &by[line];
    if (v->len > 1) qsort(v->items, (size_t)v->len, sizeof *v->items, by_kernel);
    for (int i = 0; i < v->len; i++) {
      int k = (int)(intptr_t)v->items[i] - 1;
      if (k == r->K) OUT("<a class=\"kc\" href=\"#loss\">loss</a> ");
      else {
        OUT("<a class=\"kc%s\" href=\"#k%d\" title=\"kernel %d, ", r->kmark && r->kmark[k] ? " changed" : "", k, k);
        ae_html(r->o, r->kname[k]);
        OUT(": ");
        ae_html(r->o, kernel_desc(g, k));
        OUT("\">k%d</a> ", k);
      }
    }
    const char *note = v->len ? NULL : line_note(g, s, line);
    if (note) OUT("<span class=\"note\">%s</span>", note);
    OUT("</td></tr>\n");
    if (!nl) break;
    at = nl + 1;
  }
  OUT("</tbody></table>\n");
}

static void emit_spec(page *g) {
  ae_report_ctx *r = g->r;
  OUT("<section id=\"spec\" aria-labelledby=\"h-spec\">\n<h2 id=\"h-spec\">1. The spec</h2>\n"
      "<p>Each line links to the kernels its calls became after fusion (a block's definition and every call of it "
      "link to the kernels it expanded into); each kernel's forward and backward functions are in its section below.</p>\n");
  for (int s = 0; s < g->sources.len; s++) emit_source(g, s);
  OUT("</section>\n");
}

/* ---- 2. the generated code ----------------------------------------------------------- */

static const char *const c_words[] = {"static", "void", "const", "for", "if", "else", "return", "int", "long", "float", "double",
                                      "do", "while", "continue", "break", "restrict", "sizeof", "struct", "typedef", "unsigned",
                                      "char", "uint64_t", "aert_real", "run", "aert_losses"};

/* A call of kernel i's forward or backward function links to its section. */
static int kernel_of_call(ae_report_ctx *r, const char *id, size_t n) {
  for (int k = 0; k < r->K; k++) {
    size_t l = strlen(r->kname[k]);
    if (n > l && !strncmp(id, r->kname[k], l) && (!strncmp(id + l, "_forward", n - l) || !strncmp(id + l, "_backward", n - l)) &&
        (n - l == 8 || n - l == 9))
      return k;
  }
  return -1;
}

/* model.c text from line `line` on, highlighted, each line numbered as in the file. */
static void code_html(ae_report_ctx *r, const char *s, size_t n, int line) {
  const char *open = NULL;   /* the class of a comment or string running across lines */
  bool bol = true;
  for (size_t i = 0; i < n;) {
    if (bol) { OUT("<span class=\"cl\" data-n=\"%d\"></span>", line); if (open) OUT("<span class=\"%s\">", open); bol = false; }
    if (s[i] == '\n') { if (open) OUT("</span>"); OUT("\n"); line++; bol = true; i++; continue; }
    if (open) {   /* inside a block comment */
      size_t j = i;
      while (j < n && s[j] != '\n' && !(s[j] == '*' && j + 1 < n && s[j + 1] == '/')) j++;
      if (j < n && s[j] == '*') { j += 2; ae_html(r->o, ae_strndup(r->a, s + i, j - i)); OUT("</span>"); open = NULL; }
      else ae_html(r->o, ae_strndup(r->a, s + i, j - i));
      i = j;
      continue;
    }
    size_t j = i + 1;
    const char *cls = NULL;
    if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') { OUT("<span class=\"cm\">"); open = "cm"; OUT("/*"); i += 2; continue; }
    if (s[i] == '#' ) { while (j < n && s[j] != '\n') j++; cls = "pp"; }
    else if (s[i] == '"') { while (j < n && s[j] != '"' && s[j] != '\n') j += s[j] == '\\' ? 2 : 1; j = j < n ? j + 1 : n; cls = "st"; }
    else if (s[i] >= '0' && s[i] <= '9') { while (j < n && (is_ident(s[j]) || s[j] == '.')) j++; cls = "nu"; }
    else if (is_ident(s[i])) {
      while (j < n && is_ident(s[j])) j++;
      int k = kernel_of_call(r, s + i, j - i);
      if (k >= 0) { OUT("<a href=\"#k%d\">", k); ae_html(r->o, ae_strndup(r->a, s + i, j - i)); OUT("</a>"); i = j; continue; }
      for (size_t w = 0; w < sizeof c_words / sizeof *c_words; w++)
        if (strlen(c_words[w]) == j - i && !strncmp(c_words[w], s + i, j - i)) cls = "kw";
      if (!cls && j < n && s[j] == '(') cls = "fn";
    }
    if (cls) OUT("<span class=\"%s\">", cls);
    ae_html(r->o, ae_strndup(r->a, s + i, j - i));
    if (cls) OUT("</span>");
    i = j;
  }
  if (open) OUT("</span>");
}

static int line_at(const char *text, long off) {
  int line = 1;
  for (long i = 0; i < off; i++) line += text[i] == '\n';
  return line;
}

static void code_block(ae_report_ctx *r, const char *text, long from, long to, const char *what) {
  while (from < to && text[from] == '\n') from++;
  int lines = 0;
  for (long i = from; i < to; i++) lines += text[i] == '\n';
  OUT("<details class=\"code\"><summary>%s: %s lines %d&#8211;%d</summary>\n<pre><code>", what, r->code_file, line_at(text, from),
      line_at(text, from) + lines - 1);
  code_html(r, text + from, (size_t)(to - from), line_at(text, from));
  OUT("</code></pre></details>\n");
}

static void facts_row(ae_report_ctx *r, const char *th, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void facts_row(ae_report_ctx *r, const char *th, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  OUT("<tr><th scope=\"row\">%s</th><td>", th);
  vfprintf(r->o, fmt, ap);
  OUT("</td></tr>\n");
  va_end(ap);
}

static const char *node_label(const ae_node *n) { return n->name ? n->name : ae_op_name(n->op); }

/* Where one node of a kernel comes from: its call and the block calls around it. */
static void provenance_item(page *g, const ae_node *n, const char *role) {
  ae_report_ctx *r = g->r;
  char desc[64];
  OUT("<li>%s <code>", ae_op_desc(n, desc));
  ae_html(r->o, n->name ? n->name : "");
  OUT("</code> at ");
  line_link(g, &n->loc);
  if (role) OUT(" (%s)", role);
  for (int j = n->n_via - 1; j >= 0; j--) {
    OUT(j == n->n_via - 1 ? ", in <code>%s</code> called at " : ", inside <code>%s</code> called at ", n->via[j].block);
    line_link(g, &n->via[j].loc);
  }
  OUT("</li>\n");
}

static void provenance(page *g, int k) {
  ae_report_ctx *r = g->r;
  const ae_kernel *kk = r->p->kernels.items[k];
  OUT("<ul class=\"prov\">\n");
  for (int i = 0; i < r->p->n_nodes; i++) {
    ae_vec *v = &g->node_kernels[i];
    const ae_node *n = r->p->m->nodes.items[i];
    bool here = false;
    for (int j = 0; j < v->len; j++) here = here || (intptr_t)v->items[j] == k + 1;
    if (!here) continue;
    provenance_item(g, n, n == kk->node ? NULL : n == kk->act ? "its epilogue" : "folded into the input copy");
  }
  OUT("</ul>\n");
}

static void source_row(page *g, const ae_kernel *k) {
  ae_report_ctx *r = g->r;
  char sh[48];
  OUT("<tr><th scope=\"row\">reads</th><td>");
  for (int i = 0; i < k->src.len; i++) {
    const ae_view *v = k->src.items[i];
    const ae_kernel *from = r->p->producer[r->p->root[v->node->id]->id];
    OUT("%s", i ? "; " : "");
    if (from) OUT("<a href=\"#k%d\">", from->id);
    OUT("<code>");
    ae_html(r->o, node_label(v->node));
    OUT("</code>%s %s", from ? "</a>" : "", ae_shape_str(v->node->shape, sh));
    if (v->factor > 1) OUT(" upsampled x%d", v->factor);
    if (k->src.len > 1 && k->kind == K_CONV) OUT(" into channels %d&#8211;%d", v->ch_off, v->ch_off + v->node->shape.d[v->node->shape.rank - 1] - 1);
  }
  OUT("</td></tr>\n");
}

void ae_report_launch_rows(FILE *o, const ae_json *k) {
  static const char *const keys[] = {"grid", "block", "registers", "shared_bytes"};
  static const char *const names[] = {"grid", "block", "registers per thread", "shared memory, bytes"};
  for (int i = 0; i < 4; i++) {
    const ae_json *v = ae_json_get(k, keys[i]);
    if (!v || (v->kind != JSON_NUM && v->kind != JSON_ARR)) continue;
    fprintf(o, "<tr><th scope=\"row\">%s</th><td>", names[i]);
    if (v->kind == JSON_NUM) fprintf(o, "%.0f", v->num);
    for (int j = 0; v->kind == JSON_ARR && j < v->items.len; j++)
      fprintf(o, "%s%.0f", j ? " &#215; " : "", ((const ae_json *)v->items.items[j])->num);
    fprintf(o, "</td></tr>\n");
  }
}

static const char *schedule(ae_report_ctx *r, const ae_kernel *k) {
  if (k->kind == K_CONV && k->conv.algo == CONV_SLIDE)
    return ae_sprintf(r->a, "%s %s %d image%s at a time%s%s%s%s",
                      k->conv.wino ? "Winograd F(2x2, 3x3) (register-tiled products of the transformed blocks)"
                                   : "direct register-tiled convolution",
                      k->conv.in_place ? "reading its input in place," : "on a zero-padded copy of",
                      k->conv.pchunk, k->conv.pchunk == 1 ? "" : "s",
                      k->node->units % AE_SLIDE_UNIT ? " (narrow: dot products along the channels)" : "",
                      k->conv.store_act ? "; the bias and its activation applied as the tiles store" : "",
                      !k->conv.wino ? "" : k->conv.wdw ? (k->conv.dwino ? "; dx and dw too" : "; dw too, dx direct")
                                         : (k->conv.dwino ? "; dx too, dw direct" : "; dx and dw direct"),
                      k->node->stride > 1 && ae_kernel_step(r->p, k, STEP_INPUT_GRAD) &&
                              ae_slide_dx_direct(((const ae_node *)k->node->in.items[0])->shape.d[2], k->node->k, k->node->stride)
                          ? "; dx by phases, each a stride-1 convolution of dy with its own taps"
                          : "");
  if (k->kind == K_CONV && k->conv.algo == CONV_UP2)
    return ae_sprintf(r->a, "the four phases of the 2x upsample as one 2x2 convolution of the small image%s%s, %d image%s at a time",
                      !k->conv.pwino ? "" : k->conv.pwdw ? " (Winograd F(2x2, 2x2), dw too)" : " (Winograd F(2x2, 2x2), dw direct)",
                      k->conv.xp_at == 0 ? ""   /* no plain views: their copy has no place */
                      : k->conv.wdw ? " (plain views beside it as Winograd F(2x2, 3x3), dw too)"
                      : k->conv.wino ? " (plain views beside it as Winograd F(2x2, 3x3), dw direct)" : " (plain views direct beside it)",
                      k->conv.pchunk,
                      k->conv.pchunk == 1 ? "" : "s");
  if ((k->kind == K_CONV || k->kind == K_CONV_T) && k->conv.algo == CONV_GEMM_1X1) return "one GEMM straight on its input (1x1)";
  if (k->kind == K_CONV || k->kind == K_CONV_T)
    return ae_sprintf(r->a, "im2col + GEMM, %d image%s per GEMM", k->conv.chunk, k->conv.chunk == 1 ? "" : "s");
  if (k->kind == K_DENSE) return "one GEMM (OpenBLAS, single-threaded inside OpenMP blocks)";
  return "a loop over the batch split among the OpenMP threads";
}

/* The CUDA target's kernels of fused kernel k, read off model.cu's text: each __global__
 * with the launch its comment gives ("conv_d1_fwd: 98 x 2 blocks of 256 threads"). */
static const char *cuda_launches(ae_report_ctx *r, const char *text, long from, long to) {
  static const char decl[] = "\n__global__ void AECD_BOUNDS ";
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return "";
  int n = 0;
  for (const char *at = strstr(text + from, decl); at && at < text + to; at = strstr(at + 1, decl)) {
    const char *name = at + sizeof decl - 1, *paren = strchr(name, '(');
    const char *line = at;   /* the comment line above the declaration: "NAME: what; launch ..." */
    while (line > text + from && line[-1] != '\n') line--;
    const char *launch = strstr(line, "launch "), *close = launch ? strstr(launch, " */") : NULL;
    fprintf(f, "%s<code>%.*s</code>", n++ ? "; " : "", (int)(paren - name), name);
    if (launch && close && close < at) fprintf(f, " (%.*s)", (int)(close - launch), launch);
  }
  fclose(f);
  char *out = ae_strndup(r->a, buf ? buf : "", len);
  free(buf);
  return n ? out : "none (its work is done by another kernel)";
}

/* How the CUDA target runs a kernel: the shape of its code in model.cu. */
static const char *cuda_schedule(const ae_kernel *k) {
  switch (k->kind) {
  case K_DENSE: return "a tiled shared-memory GEMM, bias and activation in its epilogue; backward: dact, db, dW and dX kernels";
  case K_CONV:
    return k->src.len > 1 || ((ae_view *)k->src.items[0])->factor > 1
               ? "an implicit GEMM reading its folded sources (upsample, concat) in place, no copy; a dX kernel per source, no atomics"
               : "an implicit GEMM over the windows, no im2col buffer; dW as windows^T dy, dX as a gather, no atomics";
  case K_CONV_T: return "an implicit GEMM of the gather form; its dX a plain convolution of dy";
  case K_BATCHNORM: return "a block per channel for the statistics and the backward sums, an elementwise normalisation";
  default: return "a grid-stride elementwise kernel (4 values a thread); backward a gather, one thread per value";
  }
}

/* "7.25 GFLOP": the summary's number with a space before its unit. */
static const char *si_unit(ae_arena *a, double x, const char *unit) {
  char buf[64];
  ae_fmt_si(x, buf);
  size_t n = strlen(buf);
  bool prefix = n && buf[n - 1] >= 'A' && buf[n - 1] <= 'Z';
  return prefix ? ae_sprintf(a, "%.*s %c%s", (int)n - 1, buf, buf[n - 1], unit) : ae_sprintf(a, "%s %s", buf, unit);
}

static void cost_rows(ae_report_ctx *r, const ae_cost *c, bool backward) {
  for (int d = 0; d < 2; d++) {
    if (d && !backward) { facts_row(r, "backward", "none: no trainable parameter lies upstream"); continue; }
    double ai = c->bytes[d] > 0 ? c->flops[d] / c->bytes[d] : 0;
    OUT("<tr><th scope=\"row\">%s</th><td><span data-flops=\"%.0f\">%s</span>, <span data-bytes=\"%.0f\">%s</span> moved, "
        "intensity %.2f FLOP/B</td></tr>\n", d ? "backward" : "forward", c->flops[d], si_unit(r->a, c->flops[d], "FLOP"), c->bytes[d],
        si_unit(r->a, c->bytes[d], "B"), ai);
  }
}

static void kernel_section(page *g, const char *text, const long *at, int k) {
  ae_report_ctx *r = g->r;
  const ae_kernel *kk = r->p->kernels.items[k];
  char sh[48], b[64];
  OUT("<section class=\"kernel%s\" id=\"k%d\" data-kernel=\"%s\" aria-labelledby=\"h-k%d\">\n<h3 id=\"h-k%d\">Kernel %d: <code>%s</code>",
      r->kmark && r->kmark[k] ? " changed" : "", k, r->kname[k], k, k, k, r->kname[k]);
  if (r->kmark && r->kmark[k]) OUT(" <span class=\"badge\">%s</span>", r->kmark[k] == 'n' ? "new" : "changed");
  OUT("</h3>\n<p>");
  ae_html(r->o, kernel_desc(g, k));
  OUT("; %s. From:</p>\n", ae_kernel_has_backward(r->p, kk) ? "forward and backward" : "forward only, as no gradient reaches it");
  provenance(g, k);
  OUT("<table class=\"facts\"><caption class=\"sr\">facts of kernel %d</caption><tbody>\n", k);
  source_row(g, kk);
  facts_row(r, "writes", "<code>%s</code> %s per example, batch %d%s%s", node_label(kk->out), ae_shape_str(kk->out->shape, sh),
            r->p->batch, kk->act ? ", with " : "", kk->act ? ae_op_name(kk->act->op) : "");
  if (kk->w)
    facts_row(r, "parameters", "<code>%s</code> %s%s", kk->w->name, ae_fmt_grouped(kk->w->size + (kk->b ? kk->b->size : 0), b),
              kk->w->frozen ? " (frozen)" : "");
  ae_cost *c = &r->cost[k];
  cost_rows(r, c, ae_kernel_has_backward(r->p, kk));
  if (r->cuda) {
    facts_row(r, "schedule (cuda)", "%s", cuda_schedule(kk));
    facts_row(r, "launches", "%s", cuda_launches(r, text, at[k], at[k + 1]));
  } else
    facts_row(r, "schedule (cpu)", "%s", schedule(r, kk));
  if (!r->cuda && (kk->scratch[0].used || kk->scratch[1].used)) {
    char f[64], w[64];
    facts_row(r, "scratch", "forward %s, backward %s, each alive only while it runs", ae_fmt_bytes(4.0 * kk->scratch[0].size, f),
              ae_fmt_bytes(4.0 * kk->scratch[1].size, w));
  }
  const ae_json *record = NULL, *list = ae_json_get(g->manifest, "kernels");
  for (int i = 0; list && i < list->items.len; i++)
    if (!strcmp(ae_json_str(list->items.items[i], "name") ? ae_json_str(list->items.items[i], "name") : "", r->kname[k])) record = list->items.items[i];
  ae_report_launch_rows(r->o, record);
  ae_report_kernel_time(r, k);
  ae_report_kernel_change(r, k);
  OUT("</tbody></table>\n");
  code_block(r, text, at[k], at[k + 1], ae_kernel_has_backward(r->p, kk) ? "forward and backward" : "forward");
  OUT("</section>\n");
}

static void kernel_index(page *g) {
  ae_report_ctx *r = g->r;
  char sh[48];
  OUT("<table class=\"index\"><caption>The %d kernels in forward order (the backward pass runs them in reverse)</caption>\n"
      "<thead><tr><th scope=\"col\">#</th><th scope=\"col\">kernel</th><th scope=\"col\">spec line &#8592; block calls</th><th scope=\"col\">output</th>"
      "<th scope=\"col\">FLOPs fwd + bwd</th><th scope=\"col\">bytes fwd + bwd</th></tr></thead><tbody>\n", r->K);
  for (int k = 0; k < r->K; k++) {
    const ae_kernel *kk = r->p->kernels.items[k];
    OUT("<tr%s><td>%d</td><td><a href=\"#k%d\"><code>%s</code></a></td><td>", r->kmark && r->kmark[k] ? " class=\"changed\"" : "", k,
        k, r->kname[k]);
    line_link(g, &kk->node->loc);
    for (int j = kk->node->n_via - 1; j >= 0; j--) { OUT(" &#8592; "); line_link(g, &kk->node->via[j].loc); }
    OUT("</td><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td></tr>\n", ae_shape_str(kk->out->shape, sh),
        si_unit(r->a, r->cost[k].flops[0] + r->cost[k].flops[1], "FLOP"), si_unit(r->a, r->cost[k].bytes[0] + r->cost[k].bytes[1], "B"));
  }
  OUT("</tbody></table>\n");
}

static void emit_loss(page *g, const char *text, const long *at) {
  ae_report_ctx *r = g->r;
  const ae_model *m = r->p->m;
  OUT("<section class=\"kernel\" id=\"loss\" data-kernel=\"loss\" aria-labelledby=\"h-loss\">\n<h3 id=\"h-loss\">The loss</h3>\n<ul class=\"prov\">\n");
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    OUT("<li>%g &#215; <code>%s</code> at ", t->weight, ae_loss_name(t->kind));
    line_link(g, &t->loc);
    OUT("</li>\n");
  }
  OUT("</ul>\n<table class=\"facts\"><caption class=\"sr\">facts of the loss</caption><tbody>\n");
  ae_report_kernel_time(r, r->K);
  OUT("</tbody></table>\n");
  const char *drivers = strstr(text + at[r->K], r->cuda ? "\n/* ---- the drivers" : "\n/* Per-kernel timing");
  long end = drivers ? drivers - text : (long)strlen(text);
  code_block(r, text, at[r->K], end, "the loss, forward and backward");
  const char *desc = strstr(text + end, r->cuda ? "\n/* optim_step" : "\n#ifndef AERT_DOUBLE");
  long stop = desc ? desc - text : (long)strlen(text);
  OUT("</section>\n<section class=\"kernel\" id=\"drivers\" aria-labelledby=\"h-drivers\">\n<h3 id=\"h-drivers\">The drivers</h3>\n"
      "<p><code>%s</code> runs the kernels in order, <code>%s</code> in reverse, zeroing each gradient "
      "buffer just before its first use; each call links to its kernel.</p>\n", r->cuda ? "forward_kernels" : "model_forward",
      r->cuda ? "backward_kernels" : "model_backward");
  code_block(r, text, end, stop, r->cuda ? "forward_kernels, backward_kernels" : "model_forward, model_backward");
  if (r->cuda) {
    const char *glue = strstr(text + stop, "\n/* ==== host glue");
    OUT("</section>\n<section class=\"kernel\" id=\"optimizer\" aria-labelledby=\"h-optimizer\">\n<h3 id=\"h-optimizer\">The optimizer "
        "and the host glue</h3>\n<p>One kernel updates the whole parameter arena; the host glue is the device the trainer "
        "runs the model on (allocations, copies, the calls above).</p>\n");
    code_block(r, text, stop, glue ? glue - text : (long)strlen(text), "optimizer, gradient sums and scaling");
    if (glue) code_block(r, text, glue - text, (long)strlen(text), "host glue");
  }
  OUT("</section>\n");
}

static void emit_code(page *g, const char *hash) {
  ae_report_ctx *r = g->r;
  long *at = ae_alloc(r->a, sizeof(long) * (size_t)(r->K + 1));
  const char *text = r->cuda ? ae_emit_model_cu_text(r->a, r->p, hash, at) : ae_emit_model_c_text(r->a, r->p, hash, at);
  OUT("<section id=\"code\" aria-labelledby=\"h-code\">\n<h2 id=\"h-code\">2. The generated code</h2>\n"
      "<p>%s as <code>aec build%s</code> writes it, kernel by kernel. FLOPs count 2 per multiply-add; bytes are the ", r->code_file,
      r->cuda ? " --target cuda" : "");
  OUT("least traffic (every tensor a pass reads or writes, once); intensity is their ratio.</p>\n"
      "<p class=\"noprint\"><button type=\"button\" id=\"expand\">Show all code</button></p>\n");
  kernel_index(g);
  if (!text) { OUT("<p>%s could not be generated in memory.</p>\n</section>\n", r->code_file); return; }
  for (int k = 0; k < r->K; k++) kernel_section(g, text, at, k);
  emit_loss(g, text, at);
  OUT("</section>\n");
}

/* ---- the page ------------------------------------------------------------------------ */

static const char css[] =
  ":root{--fg:#1b1f24;--mut:#57606a;--bg:#fff;--ln:#8c959f;--bd:#d0d7de;--hl:#fff8c5;--val:#4878d0;--grad:#ee854a;--scr:#8c8c8c;--sta:#956cb4}"
  "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1180px;padding:0 1.2em 3em}"
  "h1{font-size:1.6em;margin:.8em 0 .2em}h2{border-bottom:1px solid var(--bd);padding-bottom:.2em;margin-top:1.8em}h3{margin:1.4em 0 .4em}"
  "code,pre{font:13px/1.4 ui-monospace,'DejaVu Sans Mono',Menlo,monospace}a{color:#0a58ca}nav ol{display:flex;flex-wrap:wrap;gap:.3em 1.4em;padding:0;list-style:none}"
  "table{border-collapse:collapse;margin:.4em 0}th,td{text-align:left;padding:.15em .6em;vertical-align:top}caption{text-align:left;font-weight:600;padding:.3em 0}"
  ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}.num{text-align:right;font-variant-numeric:tabular-nums}"
  "table.spec{width:100%}table.spec td{padding:0 .5em}table.spec tr:target,table.spec tr:hover{background:var(--hl)}"
  ".ln{text-align:right;width:3em;user-select:none}.ln a{color:var(--ln);text-decoration:none}.sc code{white-space:pre}"
  ".kl{font-size:12px}.kc{display:inline-block;border:1px solid var(--bd);border-radius:3px;padding:0 .3em;margin:0 .15em .1em 0;text-decoration:none}"
  ".note{color:var(--mut);font-style:italic}.cm{color:#6e7781;font-style:italic}.st{color:#0a3069}.nu{color:#0550ae}.kw{color:#cf222e}.pp{color:#8250df}.fn{color:#6639ba}"
  "table.index td,table.index th,table.facts th,table.facts td,table.data td,table.data th{border-bottom:1px solid #eaeef2}"
  "section.kernel{border-left:3px solid var(--bd);padding:.1em 0 .4em 1em;margin:1.2em 0}section.kernel:target{border-color:#0a58ca;background:#f6f8fa}"
  ".changed{background:#fff1e5}section.kernel.changed{border-color:#ee854a}.badge{font-size:.7em;background:#ee854a;color:#fff;border-radius:3px;padding:.1em .4em;vertical-align:middle}"
  ".added{background:#e6ffec}.removed{background:#ffebe9}ul.prov{margin:.2em 0;padding-left:1.2em}table.facts th{font-weight:600;white-space:nowrap;color:var(--mut)}"
  "details.code summary{cursor:pointer;color:#0a58ca}pre{background:#f6f8fa;border:1px solid var(--bd);padding:.5em .8em;overflow-x:auto;margin:.3em 0}"
  ".cl::before{content:attr(data-n);display:inline-block;width:3.4em;margin-right:1em;text-align:right;color:var(--ln);user-select:none}"
  "figure{margin:.8em 0}figcaption{color:var(--mut);font-size:.9em}svg text{font:11px system-ui,sans-serif}svg .lab{fill:#fff;font-size:10px}"
  ".key{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin:0 .3em 0 .8em}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.4em .8em}"
  "button{font:inherit;padding:.2em .8em}.val,.grad,.scr,.sta{stroke:#fff;stroke-width:.5}svg .val,.key.val{fill:#4878d0;background:#4878d0}"
  "svg .grad,.key.grad{fill:#ee854a;background:#ee854a}svg .scr,.key.scr{fill:#8c8c8c;background:#8c8c8c}svg .sta,.key.sta{fill:#956cb4;background:#956cb4}"
  "svg .mk{stroke:#cf222e;stroke-width:2}.key.mk{border:2px solid #cf222e}svg .live{fill:#8c959f}svg .peak{fill:#cf222e}"
  "svg .fwd,.key.fwdk{fill:#4878d0;background:#4878d0}svg .bwd,.key.bwdk{fill:#ee854a;background:#ee854a}"
  ".bar{display:inline-block;height:.7em;background:#4878d0;vertical-align:middle}"
  "@media print{body{max-width:none;font-size:11px}nav,.noprint{display:none}section.kernel{break-inside:auto}h2,h3{break-after:avoid}"
  "pre{white-space:pre-wrap;border:0;background:none}a{color:inherit;text-decoration:none}.changed,section.kernel:target{background:none}}";

static const char script[] =
  "(function(){var all=document.querySelectorAll('details');"
  "function open(){var t=document.getElementById(decodeURIComponent(location.hash.slice(1)));"
  "for(;t;t=t.parentElement)if(t.tagName==='DETAILS')t.open=true;}"
  "addEventListener('hashchange',open);open();addEventListener('beforeprint',function(){all.forEach(function(d){d.open=true;});});"
  "var b=document.getElementById('expand');if(b)b.onclick=function(){var o=b.textContent.indexOf('Show')===0;"
  "document.querySelectorAll('details.code').forEach(function(d){d.open=o;});b.textContent=o?'Hide all code':'Show all code';};})();";

static void emit_summary(ae_report_ctx *r, double arena_bytes) {
  const ae_model *m = r->p->m;
  ae_totals t = ae_model_totals(m);
  char a[64], b[64];
  OUT("<section id=\"summary\" aria-labelledby=\"h-summary\">\n<h2 id=\"h-summary\">Summary</h2>\n"
      "<table class=\"data\"><caption>The totals of <code>aec summary</code></caption><tbody>\n");
  OUT("<tr><th scope=\"row\">parameters</th><td><span data-total=\"params_trainable\" data-value=\"%ld\">%s</span> trainable, "
      "<span data-total=\"params_frozen\" data-value=\"%ld\">%s</span> frozen</td></tr>\n", t.params_trainable,
      ae_fmt_grouped(t.params_trainable, a), t.params_frozen, ae_fmt_grouped(t.params_frozen, b));
  OUT("<tr><th scope=\"row\">forward</th><td><span data-total=\"flops_forward_per_example\" data-value=\"%.0f\">%s</span> FLOPs per example</td></tr>\n",
      t.flops_forward, ae_fmt_si(t.flops_forward, a));
  OUT("<tr><th scope=\"row\">training step</th><td><span data-total=\"flops_train_step\" data-value=\"%.0f\">%s</span> FLOPs at batch %d "
      "(forward and backward)</td></tr>\n", t.flops_train_step, ae_fmt_si(t.flops_train_step, a), m->batch);
  static const char *const names[] = {"bytes_params", "bytes_grads", "bytes_optimizer", "bytes_activations", "bytes_arena"};
  const char *labels[] = {"memory: parameters", "gradients", ae_sprintf(r->a, "%s state", ae_optimizers.names[m->opt.kind]), "activations, if all were kept",
                          "arena after fusion and reuse"};
  double v[] = {t.bytes_params, t.bytes_grads, t.bytes_optimizer, t.bytes_activations, arena_bytes};
  for (int i = 0; i < 5; i++)
    OUT("<tr><th scope=\"row\">%s</th><td><span data-total=\"%s\" data-value=\"%.0f\">%s</span></td></tr>\n", labels[i], names[i], v[i],
        ae_fmt_bytes(v[i], a));
  OUT("<tr><th scope=\"row\">kernels</th><td><span data-total=\"kernels\" data-value=\"%d\">%d</span> fused kernels and the loss</td></tr>\n",
      r->K, r->K);
  OUT("</tbody></table>\n</section>\n");
}

static void emit_page(page *g, const char *hash, const ae_report_opts *o) {
  ae_report_ctx *r = g->r;
  const ae_model *m = r->p->m;
  OUT("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>aec report: %s</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n<h1>Model <code>%s</code>: audit report</h1>\n<p>",
      m->name, css, m->name);
  ae_html(r->o, m->src->path);
  OUT(", batch %d, target %s, spec hash <code>%s</code>; written by aec 0.1. Nothing on this page is fetched from anywhere.</p>\n"
      "<nav aria-label=\"sections\"><ol><li><a href=\"#summary\">Summary</a></li><li><a href=\"#spec\">1. The spec</a></li>"
      "<li><a href=\"#code\">2. The generated code</a></li><li><a href=\"#memory\">3. Memory</a></li><li><a href=\"#time\">4. Time</a></li>"
      "<li><a href=\"#changes\">5. What changed</a></li></ol></nav>\n</header>\n<main>\n", r->p->batch, o->target, hash);
  emit_summary(r, 4.0 * (double)r->p->arena_floats);
  emit_spec(g);
  emit_code(g, hash);
  ae_report_memory(r);
  ae_report_time(r);
  ae_report_changes(r);
  OUT("</main>\n<script>%s</script>\n</body>\n</html>\n", script);
}

bool ae_report(ae_arena *a, ae_diag *d, const ae_program *p, const char *hash, const ae_report_opts *o) {
  ae_report_ctx rc = {.a = a, .p = p, .hash = hash, .K = p->kernels.len, .cuda = !strcmp(o->target, "cuda")};
  rc.code_file = rc.cuda ? "model.cu" : "model.c";
  ae_report_ctx *r = &rc;
  r->kname = ae_alloc(a, sizeof(char *) * (size_t)(r->K + 1));
  r->cost = ae_alloc(a, sizeof(ae_cost) * (size_t)(r->K + 1));
  for (int k = 0; k < r->K; k++) {
    r->kname[k] = ae_kernel_name(a, p->kernels.items[k]);
    r->cost[k] = ae_kernel_cost(p, p->kernels.items[k]);
  }
  r->kname[r->K] = "loss";
  if (o->profile_path && !ae_report_load_profile(r, d, o->profile_path)) return false;
  if (o->diff_path && !ae_report_load_diff(r, d, o->diff_path)) return false;
  if (!ae_make_dir(o->out_dir)) {
    fprintf(stderr, "aec report: cannot create the folder '%s': %s\n", o->out_dir, strerror(errno));
    return false;
  }
  char *path = ae_sprintf(a, "%s/index.html", o->out_dir), *tmp = ae_sprintf(a, "%s/.index.html.tmp", o->out_dir);
  r->o = fopen(tmp, "w");
  if (!r->o) { fprintf(stderr, "aec report: cannot write '%s': %s\n", path, strerror(errno)); return false; }
  page g = {.r = r};
  const char *manifest = ae_emit_manifest_text(a, p, hash);
  if (manifest) {   /* the facts a target records per kernel (a GPU target's launch) */
    ae_source *src = ae_alloc(a, sizeof *src);
    *src = (ae_source){"manifest.json", (char *)manifest, strlen(manifest)};
    g.manifest = ae_json_parse(a, d, src);
  }
  map_nodes(&g);
  emit_page(&g, hash, o);
  bool ok = !ferror(r->o);
  ok = fclose(r->o) == 0 && ok;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) { fprintf(stderr, "aec report: cannot write '%s': %s\n", path, strerror(errno)); remove(tmp); }
  else printf("wrote %s\n", path);
  return ok;
}
