/* summary.c - what a checked spec means, before any code exists: per layer its spec
 * line, output shape, parameters, FLOPs and activation memory; then the totals of a
 * training step. The same facts as a table for people and as JSON for tools. */
#include "aec.h"

#include <string.h>

static bool has_trainable(const ae_node *n) { return n->n_params > 0 && !n->frozen; }

/* Whether the gradient reaches this node: some trainable parameter lies upstream. */
static void gradient_reach(const ae_model *m, bool *reach) {
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    reach[i] = has_trainable(n);
    for (int j = 0; j < n->in.len; j++) reach[i] = reach[i] || reach[((ae_node *)n->in.items[j])->id];
  }
}

ae_totals ae_model_totals(const ae_model *m) {
  ae_totals t = {0};
  bool reach[m->nodes.len + 1];
  gradient_reach(m, reach);
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    if (n->frozen) t.params_frozen += n->n_params;
    else t.params_trainable += n->n_params;
    t.flops_forward += n->flops;
    bool input_grad = false;
    for (int j = 0; j < n->in.len; j++) input_grad = input_grad || reach[((ae_node *)n->in.items[j])->id];
    t.flops_train_step += n->flops * (1 + (has_trainable(n) ? 1 : 0) + (input_grad ? 1 : 0));
    if (n->op != OP_TARGET) t.bytes_activations += 4.0 * (double)ae_shape_elems(n->shape) * m->batch;
  }
  t.flops_train_step *= m->batch;
  t.bytes_params = 4.0 * (double)(t.params_trainable + t.params_frozen);
  t.bytes_grads = 4.0 * (double)t.params_trainable;
  int states = m->opt.kind == OPT_SGD ? (m->opt.momentum > 0 ? 1 : 0) : 2;
  t.bytes_optimizer = 4.0 * (double)t.params_trainable * states;
  return t;
}

const char *ae_fmt_si(double x, char *buf) {
  static const char *const unit[] = {"", "K", "M", "G", "T", "P"};
  int u = 0;
  while (x >= 1000 && u < 5) { x /= 1000; u++; }
  sprintf(buf, u ? "%.2f%s" : "%.0f%s", x, unit[u]);
  return buf;
}

const char *ae_fmt_bytes(double x, char *buf) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (x >= 1024 && u < 4) { x /= 1024; u++; }
  sprintf(buf, u ? "%.1f %s" : "%.0f %s", x, unit[u]);
  return buf;
}

const char *ae_fmt_grouped(long x, char *buf) {
  char digits[32];
  int n = sprintf(digits, "%ld", x), k = 0;
  for (int i = 0; i < n; i++) {
    buf[k++] = digits[i];
    if ((n - i - 1) % 3 == 0 && i < n - 1) buf[k++] = ',';
  }
  buf[k] = 0;
  return buf;
}

/* How a loss names its operand: the value's name, else the op that made it. */
static const char *operand_name(const ae_node *n) { return n->name ? n->name : ae_op_name(n->op); }

/* The spec line of a layer, with the file when it comes from an imported spec. */
static const char *line_of(const ae_model *m, const ae_node *n, char *buf) {
  if (n->loc.src == m->src) sprintf(buf, "%d", n->loc.line);
  else {
    const char *base = strrchr(n->loc.src->path, '/');
    snprintf(buf, 64, "%s:%d", base ? base + 1 : n->loc.src->path, n->loc.line);
  }
  return buf;
}

/* The settings that steer a run, one line each, only those the spec gives. */
static void print_steering(FILE *out, const ae_model *m) {
  const ae_optimizer *o = &m->opt;
  if (o->schedule == SCHED_PLATEAU)
    fprintf(out, "plateau           lr x %g after %d epochs without a lower validation loss\n", o->factor, o->patience);
  if (o->warmup_steps || o->warmup_epochs)
    fprintf(out, "warmup            %d steps + %d epochs, the rate rising linearly to lr %g\n", o->warmup_steps, o->warmup_epochs, o->lr);
  if (o->accumulate > 1)
    fprintf(out, "accumulate        %d batches per optimizer step: effective batch %d\n", o->accumulate, m->batch * o->accumulate);
  if (o->clip > 0) fprintf(out, "clip              gradients to a global L2 norm of at most %g\n", o->clip);
  if (o->stop_patience)
    fprintf(out, "stop              after %d epochs without the validation loss falling by more than %g\n", o->stop_patience,
            o->stop_min_delta);
}

void ae_print_summary(FILE *out, const ae_model *m) {
  char a[64], b[64], c[64], d[64], e[64];
  fprintf(out, "model %s (%s), batch %d\n\n", m->name, m->src->path, m->batch);
  int width = 5;
  for (int i = 0; i < m->nodes.len; i++) {
    char line[64];
    int w = (int)strlen(line_of(m, m->nodes.items[i], line));
    if (w > width) width = w;
  }
  fprintf(out, "%*s  %-16s %-18s %-12s %11s %10s %11s\n", width, "line", "name", "layer", "output", "params", "FLOPs", "activations");
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    if (n->op == OP_TARGET) continue;
    char name[40];
    snprintf(name, sizeof name, "%s%s", n->name ? n->name : "", n->frozen ? " (frozen)" : "");
    char line[64];
    fprintf(out, "%*s  %-16s %-18s %-12s %11s %10s %11s\n", width, line_of(m, n, line), name, ae_op_desc(n, a),
            ae_shape_str(n->shape, b), n->n_params ? ae_fmt_grouped(n->n_params, c) : "-",
            n->flops > 0 ? ae_fmt_si(n->flops, d) : "-", ae_fmt_bytes(4.0 * (double)ae_shape_elems(n->shape) * m->batch, e));
  }
  ae_totals t = ae_model_totals(m);
  fputc('\n', out);
  fprintf(out, "parameters        %s trainable, %s frozen\n", ae_fmt_grouped(t.params_trainable, a), ae_fmt_grouped(t.params_frozen, b));
  fprintf(out, "forward           %s FLOPs per example (2 per multiply-add of dense and conv layers)\n", ae_fmt_si(t.flops_forward, a));
  fprintf(out, "training step     %s FLOPs at batch %d (forward and backward)\n", ae_fmt_si(t.flops_train_step, a), m->batch);
  fprintf(out, "memory            parameters %s, gradients %s, %s state %s, activations %s\n",
          ae_fmt_bytes(t.bytes_params, a), ae_fmt_bytes(t.bytes_grads, b), ae_optimizers.names[m->opt.kind], ae_fmt_bytes(t.bytes_optimizer, c),
          ae_fmt_bytes(t.bytes_activations, d));
  ae_arena *tmp = ae_arena_new();   /* what the generated trainer really allocates */
  ae_program *p = ae_lower(tmp, (ae_model *)m, m->batch);
  fprintf(out, "arena             %s for activations, their gradients and scratch after fusion and reuse\n",
          ae_fmt_bytes(4.0 * (double)p->arena_floats, a));
  ae_arena_free(tmp);
  fprintf(out, "loss              ");
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *l = m->losses.items[i];
    fprintf(out, "%s%s%g * %s(%s%s%s)%s", i ? " + " : "", "", l->weight, ae_loss_name(l->kind),
            l->a ? operand_name(l->a) : "", l->b ? ", " : "", l->b ? operand_name(l->b) : "",
            l->reduce_sum ? " summed" : "");
  }
  fprintf(out, "\noptimizer         %s lr %g%s, schedule %s, %d epochs\n", ae_optimizers.names[m->opt.kind], m->opt.lr,
          m->opt.nesterov ? " nesterov" : "", ae_schedules.names[m->opt.schedule], m->epochs);
  print_steering(out, m);
  if (m->latent) fprintf(out, "latent            %s %s\n", m->latent_name, ae_shape_str(m->latent->shape, a));
}

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
    else if (ch < 32) fprintf(out, "\\u%04x", ch);
    else fputc(ch, out);
  }
  fputc('"', out);
}

static void json_shape(FILE *out, ae_shape s) {
  fputc('[', out);
  for (int i = 0; i < s.rank; i++) fprintf(out, "%s%d", i ? ", " : "", s.d[i]);
  fputc(']', out);
}

void ae_print_summary_json(FILE *out, const ae_model *m) {
  char a[64];
  fprintf(out, "{\n  \"model\": ");
  json_str(out, m->name);
  fprintf(out, ",\n  \"spec\": ");
  json_str(out, m->src->path);
  fprintf(out, ",\n  \"batch\": %d,\n  \"epochs\": %d,\n  \"layers\": [\n", m->batch, m->epochs);
  bool first = true;
  for (int i = 0; i < m->nodes.len; i++) {
    const ae_node *n = m->nodes.items[i];
    if (n->op == OP_TARGET) continue;
    fprintf(out, "%s    {\"line\": %d, \"name\": ", first ? "" : ",\n", n->loc.line);
    json_str(out, n->name);
    fprintf(out, ", \"op\": \"%s\", \"layer\": ", ae_op_name(n->op));
    json_str(out, ae_op_desc(n, a));
    fprintf(out, ", \"shape\": ");
    json_shape(out, n->shape);
    fprintf(out, ", \"params\": %ld, \"frozen\": %s, \"flops\": %.0f, \"activation_bytes\": %.0f}",
            n->n_params, n->frozen ? "true" : "false", n->flops, 4.0 * (double)ae_shape_elems(n->shape) * m->batch);
    first = false;
  }
  ae_totals t = ae_model_totals(m);
  ae_arena *tmp = ae_arena_new();   /* what the generated trainer really allocates */
  double arena = 4.0 * (double)ae_lower(tmp, (ae_model *)m, m->batch)->arena_floats;
  ae_arena_free(tmp);
  fprintf(out, "\n  ],\n  \"totals\": {\"params_trainable\": %ld, \"params_frozen\": %ld, \"flops_forward_per_example\": %.0f,"
          " \"flops_train_step\": %.0f, \"bytes_params\": %.0f, \"bytes_grads\": %.0f, \"bytes_optimizer\": %.0f,"
          " \"bytes_activations\": %.0f, \"bytes_arena\": %.0f},\n", t.params_trainable, t.params_frozen, t.flops_forward,
          t.flops_train_step, t.bytes_params, t.bytes_grads, t.bytes_optimizer, t.bytes_activations, arena);
  fprintf(out, "  \"losses\": [");
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *l = m->losses.items[i];
    fprintf(out, "%s{\"kind\": \"%s\", \"weight\": %g, \"reduce\": \"%s\"}", i ? ", " : "", ae_loss_name(l->kind),
            l->weight, l->reduce_sum ? "sum" : "mean");
  }
  fprintf(out, "],\n  \"optimizer\": {\"kind\": \"%s\", \"lr\": %g, \"schedule\": \"%s\", \"effective_batch\": %d},\n",
          ae_optimizers.names[m->opt.kind], m->opt.lr, ae_schedules.names[m->opt.schedule], m->batch * m->opt.accumulate);
  fprintf(out, "  \"latent\": ");
  if (m->latent) { json_str(out, m->latent_name); fprintf(out, ", \"latent_shape\": "); json_shape(out, m->latent->shape); }
  else fprintf(out, "null");
  fprintf(out, "\n}\n");
}
