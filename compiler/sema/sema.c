/* sema.c - semantic analysis: resolves names, expands blocks (local and imported),
 * evaluates every expression to a node with a fixed shape, checks losses, settings
 * and the data pipeline, and reports every error in the file before failing. */
#include "aec.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AE_MAX_IMPORT_DEPTH 8

typedef struct binding { const char *name; ae_value *v; ae_loc loc; bool used, quiet; struct binding *next; } binding;

typedef struct block_def {
  const char *name;
  ae_stmt *def;
  ae_vec *scope;             /* the block table its body resolves calls in */
  const char *weights;       /* imported: checkpoint that initialises it */
  bool frozen;
  const char *src_prefix;    /* imported: its instance's prefix in the spec it comes from */
  bool active, used;
  bool failed;               /* its expansion reported errors: later calls stay quiet */
  bool broken;               /* an import that failed: calls to it stay quiet */
} block_def;

/* The specs being checked now, innermost first: an import of one of them is a loop. */
typedef struct import_chain { const char *path, *real; const struct import_chain *up; } import_chain;

typedef struct {
  ae_arena *a;
  ae_diag *d;
  ae_model *m;
  ae_file *file;
  int import_depth;
  const import_chain *chain;
  ae_vec blocks;             /* block_def* of this file */
  ae_vec *scope;             /* blocks visible now */
  binding *env;              /* values visible now */
  int depth;                 /* nesting of expressions and block calls */
  /* naming of parameter layers and block instances within one binding */
  const char *base;
  int named_total, named_next;
  /* set while an imported block is expanded */
  const block_def *import;
  const char *import_prefix;
  /* the blocks being expanded, outermost first, to name a loop of calls */
  const block_def *calls[AE_MAX_NESTING + 1];
  ae_call_site sites[AE_MAX_NESTING + 1];   /* where each of them was called */
  int n_calls;
  /* the last sample(mu, logvar) refused for its shapes, so kl_normal does not repeat it */
  const ae_node *bad_mu, *bad_logvar;
  bool too_deep;             /* this statement's nesting was reported */
  ae_stmt *seen_model[8], *seen_data[4];   /* the settings given so far, to refuse repeats */
} sema;

static ae_value *eval(sema *s, const ae_expr *e);
static ae_model *check_model(ae_arena *a, ae_diag *d, ae_file *f, int import_depth, const import_chain *up);

/* The calls of the settings beside optimizers, schedules and sources (settings.c). */
static const char *const augment_calls[] = {"shift", "rotate", "zoom", "flip"};
static const char *const normalize_calls[] = {"scale", "standardize"};
static const ae_setting_table *const setting_tables[] = {&ae_optimizers, &ae_schedules, &ae_sources};
static const char *const loss_calls[] = {
  "mse", "bce", "softmax_xent", "l1", "kl_sparsity", "kl_normal", "l2", "dice", "jaccard", "focal",
};
/* Bare words that are values, not names: padding=same, reduce=sum, flip(both) ... */
static const char *const value_words[] = {
  "same", "valid", "nearest", "bilinear", "true", "false", "mean", "sum", "auto", "none", "horizontal", "vertical", "both",
};
#define COUNT(arr) ((int)(sizeof arr / sizeof arr[0]))

static int find_name(const char *name, const char *const *list, int n) {
  if (!name) return -1;   /* a statement without a name (return) is in no list */
  for (int i = 0; i < n; i++) if (strcmp(list[i], name) == 0) return i;
  return -1;
}

/* An optimizer, schedule, source, augmentation or normalisation: a call that configures. */
static bool is_config_call(const char *name) {
  for (int i = 0; i < COUNT(setting_tables); i++)
    if (ae_setting_find(setting_tables[i], name) >= 0) return true;
  return find_name(name, augment_calls, COUNT(augment_calls)) >= 0 || find_name(name, normalize_calls, COUNT(normalize_calls)) >= 0;
}

static ae_value *value_new(sema *s, ae_value_kind kind, ae_loc loc) {
  ae_value *v = ae_alloc(s->a, sizeof *v);
  v->kind = kind;
  v->loc = loc;
  return v;
}

/* ---- environment ----------------------------------------------------------------- */

static binding *lookup(sema *s, const char *name) {
  for (binding *b = s->env; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

static block_def *find_block(ae_vec *scope, const char *name) {
  for (int i = 0; scope && i < scope->len; i++) {
    block_def *b = scope->items[i];
    if (strcmp(b->name, name) == 0) return b;
  }
  return NULL;
}

static void bind(sema *s, const char *name, ae_loc loc, ae_value *v) {
  binding *old = lookup(s, name);
  if (old) {
    ae_error(s->d, loc, "'%s' is already defined", name);
    ae_note_at(s->d, old->loc, "'%s' was defined here", name);
    return;
  }
  binding *b = ae_alloc(s->a, sizeof *b);
  *b = (binding){name, v, loc, false, false, s->env};
  s->env = b;
}

/* Binds name to nothing: a definition that failed and was reported, so that its uses
 * do not report again. */
static void bind_failed(sema *s, const char *name, ae_loc loc) {
  if (lookup(s, name)) return;
  binding *b = ae_alloc(s->a, sizeof *b);
  *b = (binding){name, NULL, loc, true, true, s->env};
  s->env = b;
}

/* Did-you-mean over the names in scope, the layers and the blocks. */
static const char *suggest(sema *s, const char *word) {
  const char *cands[256];
  int n = 0;
  for (binding *b = s->env; b && n < 200; b = b->next) cands[n++] = b->name;
  for (int i = 0; s->scope && i < s->scope->len && n < 240; i++) cands[n++] = ((block_def *)s->scope->items[i])->name;
  const char *near = ae_closest(word, cands, n);
  if (near) return near;
  /* every built-in word, from the tables that define them, so that none is left out */
  n = ae_layer_names(cands, 64);
  for (int i = 0; i < COUNT(loss_calls); i++) cands[n++] = loss_calls[i];
  for (int t = 0; t < COUNT(setting_tables); t++)
    for (int i = 0; i < setting_tables[t]->n; i++) cands[n++] = setting_tables[t]->names[i];
  for (int i = 0; i < COUNT(augment_calls); i++) cands[n++] = augment_calls[i];
  for (int i = 0; i < COUNT(normalize_calls); i++) cands[n++] = normalize_calls[i];
  for (int i = 0; i < COUNT(value_words); i++) cands[n++] = value_words[i];
  return ae_closest(word, cands, n);
}

/* ---- naming: "e1" for a binding's only parameter layer, "e1.2" for its second ---- */

static bool is_named_call(sema *s, const ae_expr *e) {
  if (e->kind != EX_CALL) return false;
  if (find_block(s->scope, e->str)) return true;
  return ae_is_layer_name(e->str) && (strcmp(e->str, "dense") == 0 || strcmp(e->str, "conv") == 0 ||
                                      strcmp(e->str, "conv_transpose") == 0 || strcmp(e->str, "batchnorm") == 0);
}

static int count_named(sema *s, const ae_expr *e, int depth) {
  if (!e || depth > AE_MAX_NESTING) return 0;
  int n = is_named_call(s, e);
  switch (e->kind) {
  case EX_CALL: case EX_LIST:
    for (int i = 0; i < e->args.len; i++) n += count_named(s, e->args.items[i], depth + 1);
    return n;
  case EX_BINARY: return n + count_named(s, e->lhs, depth + 1) + count_named(s, e->rhs, depth + 1);
  case EX_NEG: case EX_KWARG: return n + count_named(s, e->lhs, depth + 1);
  default: return n;
  }
}

static const char *next_name(sema *s) {
  s->named_next++;
  if (s->named_total <= 1) return s->base;
  return ae_sprintf(s->a, "%s.%d", s->base, s->named_next);
}

static void begin_binding(sema *s, const char *prefix, const char *name, const ae_expr *value) {
  s->base = prefix ? ae_sprintf(s->a, "%s.%s", prefix, name) : name;
  s->named_total = count_named(s, value, 0);
  s->named_next = 0;
}

/* ---- calls ------------------------------------------------------------------------- */

static int eval_args(sema *s, const ae_expr *call, ae_value **args, const char **kw, int cap) {
  int n = call->args.len < cap ? call->args.len : cap;
  for (int i = 0; i < n; i++) {
    const ae_expr *arg = call->args.items[i];
    kw[i] = arg->kind == EX_KWARG ? arg->str : NULL;
    args[i] = eval(s, arg->kind == EX_KWARG ? arg->lhs : arg);
    if (!args[i]) return -1;
    if (kw[i]) args[i]->loc = arg->loc, args[i]->loc = ae_loc_span(arg->loc, arg->lhs->loc);
  }
  if (call->args.len > cap) {
    ae_error(s->d, call->loc, "%s has %d arguments; at most %d are allowed", call->str, call->args.len, cap);
    return -1;
  }
  return n;
}

static ae_value *call_layer(sema *s, const ae_expr *call) {
  ae_value *args[64];
  const char *kw[64];
  ae_layer_ctx c = { s->a, s->d, s->m, NULL, false, NULL, NULL };
  int n = eval_args(s, call, args, kw, 64);   /* inputs first: names follow the data flow */
  if (n < 0) return NULL;
  if (is_named_call(s, call)) {
    c.name = next_name(s);
    if (s->import) {
      c.frozen = s->import->frozen;
      c.init_from = s->import->weights;
      if (c.init_from)
        c.init_name = ae_sprintf(s->a, "%s%s", s->import->src_prefix, c.name + strlen(s->import_prefix));
    }
  }
  ae_node *node = ae_make_layer(&c, call, args, kw, n);
  if (node && s->n_calls) {   /* the block calls that expanded into this layer */
    ae_call_site *via = ae_alloc(s->a, sizeof *via * (size_t)s->n_calls);
    memcpy(via, s->sites, sizeof *via * (size_t)s->n_calls);
    node->via = via;
    node->n_via = s->n_calls;
  }
  if (!node && strcmp(call->str, "sample") == 0 && n == 2 && args[0]->kind == V_TENSOR && args[1]->kind == V_TENSOR) {
    s->bad_mu = args[0]->node;
    s->bad_logvar = args[1]->node;
  }
  if (!node) return NULL;
  ae_value *v = value_new(s, V_TENSOR, call->loc);
  v->node = node;
  return v;
}

static ae_value *run_block_body(sema *s, block_def *b, const char *prefix) {
  ae_value *result = NULL;
  int before = s->d->errors;
  const ae_stmt *last_let = NULL;
  for (int i = 0; i < b->def->body.len; i++) {
    ae_stmt *st = b->def->body.items[i];
    if (st->kind == ST_LET) {
      if (st->latent) {
        ae_error(s->d, st->loc, "'latent' marks a value of the model, not of a block");
        ae_hint(s->d, "mark the block's result where it is called: latent z = %s(...)", b->name);
      }
      begin_binding(s, prefix, st->name, st->value);
      ae_value *v = eval(s, st->value);
      if (v) bind(s, st->name, st->name_loc, v);
      else bind_failed(s, st->name, st->name_loc);
      lookup(s, st->name)->quiet = true;
      last_let = st;
    } else if (st->kind == ST_RETURN) {
      if (result) ae_error(s->d, st->loc, "block '%s' returns twice", b->name);
      begin_binding(s, NULL, prefix, st->value);
      result = eval(s, st->value);
    } else {
      ae_error(s->d, st->loc, "only 'name = ...' and 'return ...' may appear inside block '%s'", b->name);
    }
  }
  if (!result && s->d->errors == before) {
    ae_error(s->d, b->def->name_loc, "block '%s' does not return a value", b->name);
    if (last_let) ae_hint(s->d, "end the block with: return %s", last_let->name);
    else ae_hint(s->d, "end the block with: return <expression>");
  }
  return result;
}

/* A block that is being expanded is called again: name the loop of calls. */
static void report_block_loop(sema *s, block_def *b, const ae_expr *call) {
  int from = s->n_calls - 1;
  while (from > 0 && s->calls[from] != b) from--;
  if (from == s->n_calls - 1) ae_error(s->d, call->loc, "block '%s' calls itself", b->name);
  else {
    char chain[256] = "";
    for (int i = from; i < s->n_calls; i++)
      snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%s -> ", s->calls[i]->name);
    ae_error(s->d, call->loc, "blocks call each other in a loop: %s%s", chain, b->name);
  }
  ae_hint(s->d, "blocks are expanded at compile time, so they cannot recurse; write each level out");
}

static ae_value *call_block(sema *s, block_def *b, const ae_expr *call) {
  b->used = true;
  if (b->broken || b->failed) return NULL;
  if (b->active) {
    report_block_loop(s, b, call);
    return NULL;
  }
  if (s->n_calls > AE_MAX_NESTING) {
    ae_error(s->d, call->loc, "blocks nested more than %d deep", AE_MAX_NESTING);
    return NULL;
  }
  const char *names[16];
  int n_names = b->def->params.len < 16 ? b->def->params.len : 16;
  for (int i = 0; i < n_names; i++) names[i] = ((ae_param_decl *)b->def->params.items[i])->name;
  ae_value *args[64], *bound[16];
  const char *kw[64];
  int n = eval_args(s, call, args, kw, 64);
  if (n < 0 || !ae_bind_args(s->d, call, names, n_names, args, kw, n, bound)) return NULL;
  const char *prefix = next_name(s);
  binding *saved_env = s->env;
  ae_vec *saved_scope = s->scope;
  const char *saved_base = s->base;
  int saved_total = s->named_total, saved_next = s->named_next;
  const block_def *saved_import = s->import;
  const char *saved_import_prefix = s->import_prefix;
  s->env = NULL;
  bool ok = true;
  for (int i = 0; i < n_names; i++) {
    ae_param_decl *p = b->def->params.items[i];
    ae_value *v = bound[i];
    if (!v && p->deflt) v = eval(s, p->deflt);
    if (!v) {
      if (!p->deflt) {
        ae_error(s->d, call->loc, "block '%s' needs the argument '%s'", b->name, p->name);
        ae_note_at(s->d, b->def->name_loc, "'%s' is defined here", b->name);
      }
      ok = false;
      continue;
    }
    bind(s, p->name, p->loc, v);
    s->env->quiet = true;
  }
  ae_value *result = NULL;
  if (ok) {
    b->active = true;
    s->scope = b->scope;
    if (b->weights || b->frozen || b->src_prefix) { s->import = b; s->import_prefix = prefix; }
    ae_block_instance *inst = ae_alloc(s->a, sizeof *inst);
    inst->block = b->name;
    inst->prefix = prefix;
    ae_vec_push(s->a, &s->m->instances, inst);
    s->sites[s->n_calls] = (ae_call_site){call->loc, b->name};
    s->calls[s->n_calls++] = b;
    int before = s->d->errors;
    result = run_block_body(s, b, prefix);
    s->n_calls--;
    b->active = false;
    if (s->d->errors != before && !b->failed && s->n_calls == 0)
      ae_note_at(s->d, call->loc, "in block '%s', called here", b->name);
    b->failed = b->failed || s->d->errors != before;
  }
  s->env = saved_env;
  s->scope = saved_scope;
  s->base = saved_base;
  s->named_total = saved_total;
  s->named_next = saved_next;
  s->import = saved_import;
  s->import_prefix = saved_import_prefix;
  return result;
}

/* ---- losses ------------------------------------------------------------------------- */

static bool tensor_arg(sema *s, const ae_expr *call, ae_value *v, const char *what) {
  char desc[96];
  if (v && v->kind == V_TENSOR) return true;
  if (!v) ae_error(s->d, call->loc, "%s needs %s", call->str, what);
  else {
    ae_error(s->d, v->loc, "%s needs %s, not %s", call->str, what, ae_value_desc(v, desc, sizeof desc));
    if (v->kind == V_WORD) {
      const char *near = suggest(s, v->str);
      if (near) ae_hint(s->d, "'%s' is not defined; did you mean '%s'?", v->str, near);
      else ae_hint(s->d, "'%s' is not defined above this line", v->str);
    }
  }
  return false;
}

static bool produced_by(const ae_node *n, ae_op op) { return n->op == op; }

static bool check_same_shape(sema *s, const ae_expr *call, ae_node *a, ae_node *b) {
  char s1[48], s2[48];
  if (a->shape.rank == b->shape.rank && ae_shape_elems(a->shape) == ae_shape_elems(b->shape)) {
    bool eq = true;
    for (int i = 0; i < a->shape.rank; i++) eq = eq && a->shape.d[i] == b->shape.d[i];
    if (eq) return true;
  }
  ae_error(s->d, call->loc, "%s compares %s%s%s%s with %s%s%s%s: the shapes must be equal", call->str,
           a->name ? a->name : "", a->name ? " (" : "", ae_shape_str(a->shape, s1), a->name ? ")" : "",
           b->name ? b->name : "", b->name ? " (" : "", ae_shape_str(b->shape, s2), b->name ? ")" : "");
  ae_explain_size(s->d, a, a->name ? a->name : "the first operand");
  ae_explain_size(s->d, b, b->name ? b->name : "the second operand");
  return false;
}

static bool check_class_weights(sema *s, ae_loss_term *t, ae_value *w) {
  if (!w) return true;
  if (w->kind == V_WORD && strcmp(w->str, "auto") == 0) {
    t->auto_weights = true;   /* the trainer sets them from the training labels' class frequencies */
    return true;
  }
  if (w->kind == V_WORD && strcmp(w->str, "none") == 0) return true;
  if (w->kind != V_LIST || w->items.len != s->m->n_classes) {
    ae_error(s->d, w->loc, "class weights must be auto, none or a list of %d numbers, one per class", s->m->n_classes);
    return false;
  }
  t->n_weights = w->items.len;
  t->class_weights = ae_alloc(s->a, sizeof(double) * (size_t)t->n_weights);
  for (int i = 0; i < t->n_weights; i++) {
    if (!ae_value_num(s->d, w->items.items[i], "a class weight", &t->class_weights[i])) return false;
    if (t->class_weights[i] < 0) { ae_error(s->d, ((ae_value *)w->items.items[i])->loc, "a class weight cannot be negative"); return false; }
  }
  return true;
}

static bool check_xent(sema *s, const ae_expr *call, ae_loss_term *t) {
  char s1[48], s2[48];
  const char *name = ae_loss_name(t->kind);
  if (t->b->op != OP_TARGET || s->m->target_kind != TARGET_CLASSES) {
    ae_error(s->d, call->loc, "%s needs a class target as its second argument", name);
    ae_hint(s->d, "declare one: target t: classes[H, W] { 1 water, 2 tree } ignore 15");
    return false;
  }
  ae_shape ls = t->a->shape, ts = t->b->shape;
  bool ok = ls.rank == ts.rank + 1;
  for (int i = 0; ok && i < ts.rank; i++) ok = ls.d[i] == ts.d[i];
  if (!ok) {
    ae_error(s->d, call->loc, "%s needs logits of %s x classes for the target %s, but they are %s", name,
             ae_shape_str(ts, s1), ae_shape_str(ts, s1), ae_shape_str(ls, s2));
    ae_explain_size(s->d, t->a, "the logits");
    return false;
  }
  if (ls.d[ls.rank - 1] != s->m->n_classes) {
    ae_error(s->d, call->loc, "the logits have %d channels but the target has %d classes",
             ls.d[ls.rank - 1], s->m->n_classes);
    ae_hint(s->d, "end with a layer of %d filters or units", s->m->n_classes);
    return false;
  }
  if (produced_by(t->a, OP_SOFTMAX)) {
    ae_error(s->d, call->loc, "%s applies the softmax itself; pass the logits, not softmax(...)", name);
    ae_hint(s->d, "drop the softmax at line %d", t->a->loc.line);
    return false;
  }
  return true;
}

/* dice and jaccard: smooth from 0 to 1e6 (default 0, as smp); focal: gamma from 0 to 10
 * (default 2, as Lin et al.). */
static bool check_class_loss_args(sema *s, ae_loss_term *t, ae_value *v) {
  bool focal = t->kind == LOSS_FOCAL;
  double *out = focal ? &t->gamma : &t->smooth, hi = focal ? 10 : 1e6;
  *out = focal ? 2 : 0;
  if (!v) return true;
  if (!ae_value_num(s->d, v, focal ? "gamma" : "smooth", out)) return false;
  if (*out < 0 || *out > hi) {
    ae_error(s->d, v->loc, "%s must be from 0 to %g, not %g", focal ? "gamma" : "smooth", hi, *out);
    return false;
  }
  return true;
}

/* bce(y, y), kl_normal(mu, mu): a loss comparing a tensor with itself measures nothing the
 * user meant, yet trains without complaint. */
static void loss_with_itself(sema *s, const ae_expr *call, const ae_loss_term *t) {
  const char *name = t->a->name ? t->a->name : "this value";
  ae_error(s->d, call->loc, "%s compares '%s' with itself", call->str, name);
  if (t->kind == LOSS_KL_NORMAL)
    ae_hint(s->d, "kl_normal takes the encoder's mean and its log-variance, two tensors: kl_normal(mu, logvar)");
  else
    ae_hint(s->d, "the second argument is what '%s' should match: the input or the target", name);
}

static ae_value *call_loss(sema *s, const ae_expr *call) {
  static const char *const names[LOSS__COUNT][5] = {
    {"prediction", "target", "reduce"}, {"prediction", "target", "reduce"},
    {"logits", "target", "weights", "reduce"}, {"x"}, {"x", "rho"}, {"mu", "logvar"}, {NULL},
    {"logits", "target", "weights", "smooth"}, {"logits", "target", "weights", "smooth"},
    {"logits", "target", "weights", "gamma", "reduce"},
  };
  ae_loss_kind kind = (ae_loss_kind)find_name(call->str, loss_calls, COUNT(loss_calls));
  ae_value *args[8], *a[5] = {0};   /* ae_bind_args fills only this loss's slots */
  const char *kw[8];
  int n = eval_args(s, call, args, kw, 8);
  int n_names = 0;
  while (n_names < 5 && names[kind][n_names]) n_names++;
  if (n < 0 || !ae_bind_args(s->d, call, (const char *const *)names[kind], n_names, args, kw, n, a)) return NULL;
  ae_loss_term *t = ae_alloc(s->a, sizeof *t);
  t->kind = kind;
  t->loc = call->loc;
  t->weight = 1;
  bool ok = true;
  if (kind == LOSS_MSE || kind == LOSS_BCE || ae_loss_on_classes(kind) || kind == LOSS_KL_NORMAL) {
    ok = tensor_arg(s, call, a[0], kind == LOSS_KL_NORMAL ? "mu" : "a tensor") &
         tensor_arg(s, call, a[1], kind == LOSS_KL_NORMAL ? "logvar" : "a target tensor");
  } else if (kind != LOSS_L2) {
    ok = tensor_arg(s, call, a[0], "a tensor");
  }
  if (!ok) return NULL;
  t->a = a[0] ? a[0]->node : NULL;
  t->b = a[1] && kind != LOSS_KL_SPARSITY ? a[1]->node : NULL;
  if (t->a && t->a == t->b) return loss_with_itself(s, call, t), NULL;
  int reduce_slot = kind == LOSS_SOFTMAX_XENT ? 3 : kind == LOSS_FOCAL ? 4 : 2;
  if ((kind == LOSS_MSE || kind == LOSS_BCE || kind == LOSS_SOFTMAX_XENT || kind == LOSS_FOCAL) && a[reduce_slot]) {
    ae_value *r = a[reduce_slot];
    if (r->kind != V_WORD || (strcmp(r->str, "mean") && strcmp(r->str, "sum"))) {
      ae_error(s->d, r->loc, "reduce must be mean or sum");
      return NULL;
    }
    t->reduce_sum = strcmp(r->str, "sum") == 0;
  }
  switch (kind) {
  case LOSS_MSE: ok = check_same_shape(s, call, t->a, t->b); break;
  case LOSS_KL_NORMAL:   /* a refused sample(mu, logvar) has said it already */
    ok = (t->a == s->bad_mu && t->b == s->bad_logvar) ? false : check_same_shape(s, call, t->a, t->b);
    break;
  case LOSS_BCE:
    ok = check_same_shape(s, call, t->a, t->b);
    if (ok && !produced_by(t->a, OP_SIGMOID) && !produced_by(t->a, OP_SOFTMAX)) {
      ae_error(s->d, a[0]->loc, "bce needs probabilities, but %s%s%s comes from %s at line %d, not sigmoid",
               t->a->name ? "'" : "", t->a->name ? t->a->name : "this value", t->a->name ? "'" : "",
               ae_op_name(t->a->op), t->a->loc.line);
      ae_hint(s->d, "end the decoder with |> sigmoid, or use mse for outputs that are not in (0, 1)");
      ok = false;
    }
    break;
  case LOSS_SOFTMAX_XENT: ok = check_xent(s, call, t) && check_class_weights(s, t, a[2]); break;
  case LOSS_DICE: case LOSS_JACCARD: case LOSS_FOCAL:
    ok = check_xent(s, call, t) && check_class_weights(s, t, a[2]) && check_class_loss_args(s, t, a[3]);
    break;
  case LOSS_KL_SPARSITY:
    t->rho = 0.05;
    if (a[1] && (!ae_value_num(s->d, a[1], "rho", &t->rho) || t->rho <= 0 || t->rho >= 1)) {
      if (s->d->errors == 0 || a[1]->kind == V_NUM) ae_error(s->d, a[1]->loc, "rho must lie strictly between 0 and 1");
      ok = false;
    }
    if (ok && !produced_by(t->a, OP_SIGMOID)) {
      ae_error(s->d, a[0]->loc, "kl_sparsity needs activations in (0, 1), but this value comes from %s at line %d",
               ae_op_name(t->a->op), t->a->loc.line);
      ae_hint(s->d, "end it with |> sigmoid%s%s", ae_op_is_activation(t->a->op) ? " instead of |> " : "",
              ae_op_is_activation(t->a->op) ? ae_op_name(t->a->op) : "");
      ok = false;
    }
    break;
  default: break;
  }
  if (!ok) return NULL;
  ae_value *v = value_new(s, V_LOSS, call->loc);
  ae_vec_push(s->a, &v->items, t);
  return v;
}

/* ---- expressions -------------------------------------------------------------------- */

static ae_value *eval_call(sema *s, const ae_expr *e) {
  block_def *b = find_block(s->scope, e->str);
  if (b) return call_block(s, b, e);
  if (ae_is_layer_name(e->str)) return call_layer(s, e);
  if (find_name(e->str, loss_calls, COUNT(loss_calls)) >= 0) return call_loss(s, e);
  if (is_config_call(e->str)) {
    ae_value *v = value_new(s, V_CALL, e->loc);
    v->call = e;
    return v;
  }
  ae_error(s->d, e->name_loc, "unknown layer or block '%s'", e->str);
  const char *near = suggest(s, e->str);
  if (near) ae_hint(s->d, "did you mean '%s'?", near);
  return NULL;
}

static ae_value *combine_losses(sema *s, const ae_expr *e, ae_value *l, ae_value *r) {
  ae_value *v = value_new(s, V_LOSS, e->loc);
  if (e->op == '+' || e->op == '-') {
    if (l->kind != V_LOSS || r->kind != V_LOSS) return NULL;
    for (int i = 0; i < l->items.len; i++) ae_vec_push(s->a, &v->items, l->items.items[i]);
    for (int i = 0; i < r->items.len; i++) {
      ae_loss_term *t = r->items.items[i];
      if (e->op == '-') t->weight = -t->weight;
      ae_vec_push(s->a, &v->items, t);
    }
    return v;
  }
  ae_value *loss = l->kind == V_LOSS ? l : r, *num = l->kind == V_LOSS ? r : l;
  if (num->kind != V_NUM || (e->op == '/' && loss != l)) return NULL;
  double f = e->op == '*' ? num->num : 1.0 / num->num;
  for (int i = 0; i < loss->items.len; i++) {
    ae_loss_term *t = loss->items.items[i];
    t->weight *= f;
    ae_vec_push(s->a, &v->items, t);
  }
  return v;
}

static ae_value *eval_binary(sema *s, const ae_expr *e) {
  ae_value *l = eval(s, e->lhs), *r = eval(s, e->rhs);
  if (!l || !r) return NULL;
  if (l->kind == V_NUM && r->kind == V_NUM) {
    ae_value *v = value_new(s, V_NUM, e->loc);
    v->is_int = l->is_int && r->is_int && (e->op != '/' || (r->num != 0 && fmod(l->num, r->num) == 0));
    switch (e->op) {
    case '+': v->num = l->num + r->num; break;
    case '-': v->num = l->num - r->num; break;
    case '*': v->num = l->num * r->num; break;
    default:
      if (r->num == 0) { ae_error(s->d, e->rhs->loc, "division by zero"); return NULL; }
      v->num = l->num / r->num;
    }
    if (!isfinite(v->num)) { ae_error(s->d, e->loc, "number out of range"); return NULL; }
    if (v->is_int && fabs(v->num) > 1e15) v->is_int = false;
    v->loc = ae_loc_span(l->loc, r->loc);
    return v;
  }
  if (l->kind == V_LOSS || r->kind == V_LOSS) {
    ae_value *v = combine_losses(s, e, l, r);
    if (v) return v;
  }
  char d1[96], d2[96];
  ae_error(s->d, e->loc, "cannot apply '%c' to %s and %s", e->op, ae_value_desc(l, d1, sizeof d1), ae_value_desc(r, d2, sizeof d2));
  if (l->kind == V_TENSOR && r->kind == V_TENSOR && e->op == '+') ae_hint(s->d, "to add two tensors write add(a, b)");
  return NULL;
}

static void report_undefined(sema *s, const ae_expr *e) {
  const char *cands[256];
  int n = 0;
  for (binding *b = s->env; b && n < 240; b = b->next) cands[n++] = b->name;
  for (int i = 0; i < COUNT(value_words); i++) cands[n++] = value_words[i];
  ae_error(s->d, e->loc, "'%s' is not defined", e->str);
  const char *near = ae_closest(e->str, cands, n);
  if (ae_is_layer_name(e->str) || find_name(e->str, loss_calls, COUNT(loss_calls)) >= 0)
    ae_hint(s->d, "'%s' is built in: call it, %s(...), or pipe into it, h |> %s", e->str, e->str, e->str);
  else if (near) ae_hint(s->d, "did you mean '%s'?", near);
  else if (s->env) ae_hint(s->d, "names are defined with 'name = ...' above the line that uses them");
}

static ae_value *eval(sema *s, const ae_expr *e) {
  if (++s->depth > AE_MAX_NESTING) {
    if (!s->too_deep && s->n_calls > 1)
      ae_error(s->d, e->loc, "block calls nested %d deep, more than aec expands", s->n_calls);
    else if (!s->too_deep) ae_error(s->d, e->loc, "expression nested more than %d deep", AE_MAX_NESTING);
    s->too_deep = true;   /* once per statement */
    s->depth--;
    return NULL;
  }
  ae_value *v = NULL;
  switch (e->kind) {
  case EX_NUMBER: v = value_new(s, V_NUM, e->loc); v->num = e->num; v->is_int = e->is_int; break;
  case EX_STRING: v = value_new(s, V_STR, e->loc); v->str = e->str; break;
  case EX_NAME: {
    binding *b = lookup(s, e->str);
    if (b && !b->v) break;   /* its definition failed and was reported */
    if (b) { b->used = true; v = ae_alloc(s->a, sizeof *v); *v = *b->v; v->loc = e->loc; break; }
    if (find_name(e->str, value_words, COUNT(value_words)) < 0 && !is_config_call(e->str) &&
        !find_block(s->scope, e->str)) {
      report_undefined(s, e);
      break;
    }
    v = value_new(s, V_WORD, e->loc);
    v->str = e->str;
    break;
  }
  case EX_LIST:
    v = value_new(s, V_LIST, e->loc);
    for (int i = 0; i < e->args.len; i++) {
      ae_value *item = eval(s, e->args.items[i]);
      if (!item) { v = NULL; break; }
      ae_vec_push(s->a, &v->items, item);
    }
    break;
  case EX_CALL: v = eval_call(s, e); break;
  case EX_BINARY: v = eval_binary(s, e); break;
  case EX_NEG:
    v = eval(s, e->lhs);
    if (v && v->kind == V_NUM) { ae_value *neg = value_new(s, V_NUM, e->loc); *neg = *v; neg->num = -v->num; v = neg; }
    else if (v) { ae_error(s->d, e->loc, "only numbers can be negated"); v = NULL; }
    break;
  case EX_KWARG:
    ae_error(s->d, e->loc, "'%s = ...' is a keyword argument and belongs inside a call", e->str);
    break;
  }
  s->depth--;
  return v;
}

/* ---- declarations: input, target -------------------------------------------------- */

static bool eval_dims(sema *s, ae_type *t, ae_shape *shape) {
  if (t->dims.len > AE_MAX_RANK) {
    ae_error(s->d, t->loc, "%d dimensions given; aec handles vectors [n], maps [h, w] and images [h, w, c]", t->dims.len);
    return false;
  }
  shape->rank = t->dims.len;
  for (int i = 0; i < t->dims.len; i++) {
    ae_value *v = eval(s, t->dims.items[i]);
    if (!v || !ae_value_int(s->d, v, "a dimension", 1, AE_MAX_DIM, &shape->d[i])) return false;
  }
  if (ae_shape_elems(*shape) > (1L << 28)) {
    ae_error(s->d, t->loc, "%ld values per example is more than aec allows", ae_shape_elems(*shape));
    return false;
  }
  return true;
}

static ae_node *decl_node(sema *s, ae_op op, ae_stmt *st, ae_shape shape) {
  ae_node *n = ae_alloc(s->a, sizeof *n);
  n->op = op;
  n->loc = st->name_loc;
  n->name = st->name;
  n->shape = shape;
  n->id = s->m->nodes.len;
  ae_vec_push(s->a, &s->m->nodes, n);
  ae_value *v = value_new(s, V_TENSOR, st->name_loc);
  v->node = n;
  bind(s, st->name, st->name_loc, v);
  return n;
}

static void declare_input(sema *s, ae_stmt *st) {
  static const char *const elems[] = {"f32", "u8", "u16", "i16"};
  ae_shape shape;
  if (s->m->input) { ae_error(s->d, st->loc, "a model has one input; '%s' is a second", st->name); return; }
  if (find_name(st->type->elem, elems, COUNT(elems)) < 0) {
    ae_error(s->d, st->type->loc, "unknown element type '%s'", st->type->elem);
    ae_hint(s->d, "an input is f32, u8, u16 or i16, e.g. f32[28, 28, 1]");
    return;
  }
  if (!st->type->has_dims || st->type->dims.len == 0) {
    ae_error(s->d, st->type->loc, "the input needs a shape, e.g. %s[28, 28, 1]", st->type->elem);
    return;
  }
  if (!eval_dims(s, st->type, &shape)) return;
  s->m->input_elem = st->type->elem;
  s->m->input = decl_node(s, OP_INPUT, st, shape);
}

static void declare_classes(sema *s, ae_stmt *st, ae_shape shape) {
  ae_model *m = s->m;
  ae_type *t = st->type;
  if (t->classes.len == 0) {
    ae_error(s->d, t->loc, "a class target lists its classes: classes[...] { 1 water, 2 tree }");
    return;
  }
  if (t->classes.len > 64) { ae_error(s->d, t->loc, "%d classes; aec handles at most 64", t->classes.len); return; }
  m->ignore_label = -1;
  if (t->ignore) {
    ae_value *v = eval(s, t->ignore);
    if (!v || !ae_value_int(s->d, v, "the ignored label", 0, 255, &m->ignore_label)) return;
  }
  for (int i = 0; i < t->classes.len; i++) {
    ae_class_decl *c = t->classes.items[i];
    for (int j = 0; j < i; j++) {
      ae_class_decl *o = t->classes.items[j];
      if (o->id == c->id) ae_error(s->d, c->loc, "label %d is given to both '%s' and '%s'", c->id, o->name, c->name);
      else if (strcmp(o->name, c->name) == 0) ae_error(s->d, c->loc, "class name '%s' is used twice", c->name);
    }
    if (c->id == m->ignore_label) ae_error(s->d, c->loc, "label %d is both class '%s' and the ignored label", c->id, c->name);
    m->class_ids[i] = c->id;
    m->class_names[i] = c->name;
  }
  m->n_classes = t->classes.len;
  m->target_kind = TARGET_CLASSES;
  m->target = decl_node(s, OP_TARGET, st, shape);
}

static void declare_target(sema *s, ae_stmt *st) {
  ae_shape shape = {0};
  if (s->m->target) { ae_error(s->d, st->loc, "a model has one target; '%s' is a second", st->name); return; }
  if (st->type->has_dims && !eval_dims(s, st->type, &shape)) return;
  if (strcmp(st->type->elem, "classes") == 0) {
    if (shape.rank > 2) {
      ae_error(s->d, st->type->loc, "a class map is [height, width]; its classes are listed, not a channel axis");
      return;
    }
    declare_classes(s, st, shape);
    return;
  }
  if (strcmp(st->type->elem, "f32") != 0) {
    ae_error(s->d, st->type->loc, "a target is f32[...] (an image) or classes[...] { ... } (a class map), not '%s'",
             st->type->elem);
    return;
  }
  if (st->type->classes.len || st->type->ignore) {
    ae_error(s->d, st->type->loc, "only a classes target lists classes or an ignored label");
    return;
  }
  if (shape.rank == 0) { ae_error(s->d, st->type->loc, "an image target needs a shape, e.g. f32[28, 28, 1]"); return; }
  s->m->target_kind = TARGET_IMAGE;
  s->m->target = decl_node(s, OP_TARGET, st, shape);
}

/* ---- settings ---------------------------------------------------------------------- */

/* Evaluates a configuration call's arguments against its argument names. */
static bool config_args(sema *s, ae_value *call, const char *const *names, int n_names, ae_value **out) {
  ae_value *args[16];
  const char *kw[16];
  int n = eval_args(s, call->call, args, kw, 16);
  return n >= 0 && ae_bind_args(s->d, call->call, names, n_names, args, kw, n, out);
}

static bool opt_num(sema *s, ae_value *v, const char *what, double lo, double hi, double *out) {
  if (!v) return true;
  if (!ae_value_num(s->d, v, what, out)) return false;
  if (*out < lo || *out > hi) { ae_error(s->d, v->loc, "%s must be from %g to %g, not %g", what, lo, hi, *out); return false; }
  return true;
}

static bool want_call(sema *s, ae_value *v, const char *what, const char *const *choices, int n) {
  char desc[96], list[200] = "";
  if (v->kind == V_WORD && find_name(v->str, choices, n) >= 0) {   /* a bare name is a call without arguments */
    ae_expr *e = ae_call_new(s->a, v->loc, (char *)v->str, (ae_vec){0});
    v->kind = V_CALL;
    v->call = e;
  }
  if (v->kind == V_CALL && find_name(v->call->str, choices, n) >= 0) return true;
  for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", choices[i]);
  ae_error(s->d, v->loc, "%s must be one of %s, not %s", what, list, ae_value_desc(v, desc, sizeof desc));
  return false;
}

/* plateau(factor, patience): PyTorch's ReduceLROnPlateau, whose defaults these are. */
static void set_plateau(sema *s, ae_value *factor, ae_value *patience) {
  ae_optimizer *o = &s->m->opt;
  o->factor = 0.1;
  o->patience = 10;
  if (opt_num(s, factor, "factor", 0, 1, &o->factor) && (o->factor <= 0 || o->factor >= 1))
    ae_error(s->d, factor->loc, "factor must lie strictly between 0 and 1: the learning rate is multiplied by it");
  if (patience) ae_value_int(s->d, patience, "patience (epochs without progress)", 0, 1000000, &o->patience);
}

static void set_schedule(sema *s, ae_value *v) {
  static const char *const names[SCHED__COUNT][2] = {
    [SCHED_STEP] = {"every", "gamma"}, [SCHED_COSINE] = {"min_lr"}, [SCHED_EXPONENTIAL] = {"gamma"},
    [SCHED_PLATEAU] = {"factor", "patience"},
  };
  static const int n_names[SCHED__COUNT] = {[SCHED_STEP] = 2, [SCHED_COSINE] = 1, [SCHED_EXPONENTIAL] = 1, [SCHED_PLATEAU] = 2};
  ae_optimizer *o = &s->m->opt;
  ae_value *a[2] = {0};
  if (!want_call(s, v, "the schedule", ae_schedules.names, ae_schedules.n)) return;
  int k = ae_setting_find(&ae_schedules, v->call->str);
  if (!config_args(s, v, names[k], n_names[k], a)) return;
  o->schedule = (ae_sched_kind)k;
  o->every = 10;
  o->gamma = k == SCHED_STEP ? 0.1 : 0.95;
  if (k == SCHED_STEP && a[0]) ae_value_int(s->d, a[0], "every (epochs between steps)", 1, 1000000, &o->every);
  if (k == SCHED_STEP || k == SCHED_EXPONENTIAL) opt_num(s, a[k == SCHED_STEP ? 1 : 0], "gamma", 0, 1, &o->gamma);
  if (k == SCHED_COSINE) opt_num(s, a[0], "min_lr", 0, 10, &o->min_lr);
  if (k == SCHED_PLATEAU) set_plateau(s, a[0], a[1]);
}

static bool opt_bool(sema *s, ae_value *v, const char *what, bool *out) {
  char desc[96];
  if (v->kind == V_WORD && (!strcmp(v->str, "true") || !strcmp(v->str, "false"))) {
    *out = !strcmp(v->str, "true");
    return true;
  }
  ae_error(s->d, v->loc, "%s is true or false, not %s", what, ae_value_desc(v, desc, sizeof desc));
  return false;
}

/* sgd(nesterov = true): PyTorch's Nesterov form, which needs a momentum to look ahead with. */
static void set_nesterov(sema *s, ae_value *v, bool sgd) {
  ae_optimizer *o = &s->m->opt;
  if (!opt_bool(s, v, "nesterov", &o->nesterov)) return;
  if (!sgd) ae_error(s->d, v->loc, "nesterov is an sgd setting; %s has its own momentum (beta1)", ae_optimizers.names[o->kind]);
  else if (o->nesterov && o->momentum == 0) ae_error(s->d, v->loc, "Nesterov momentum needs a momentum above 0");
}

static void set_optimizer(sema *s, ae_stmt *st, ae_value *v) {
  static const char *const names[] = {"lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "schedule", "nesterov"};
  ae_optimizer *o = &s->m->opt;
  ae_value *a[8];
  if (!want_call(s, v, "optimizer", ae_optimizers.names, ae_optimizers.n) || !config_args(s, v, names, 8, a)) return;
  o->given = true;
  o->kind = (ae_opt_kind)ae_setting_find(&ae_optimizers, v->call->str);
  bool sgd = o->kind == OPT_SGD;
  o->lr = sgd ? 0.01 : 1e-3; o->momentum = sgd ? 0.9 : 0; o->beta1 = 0.9; o->beta2 = 0.999; o->eps = 1e-8;
  o->weight_decay = o->kind == OPT_ADAMW ? 0.01 : 0;
  opt_num(s, a[0], "lr", 1e-12, 10, &o->lr);
  if (a[1] && !sgd) ae_error(s->d, a[1]->loc, "momentum is an sgd setting; %s uses beta1 and beta2", ae_optimizers.names[o->kind]);
  opt_num(s, a[1], "momentum", 0, 0.9999, &o->momentum);
  if ((a[2] || a[3] || a[4]) && sgd) ae_error(s->d, v->loc, "beta1, beta2 and eps are adam settings, not sgd's");
  opt_num(s, a[2], "beta1", 0, 0.9999999, &o->beta1);
  opt_num(s, a[3], "beta2", 0, 0.9999999, &o->beta2);
  opt_num(s, a[4], "eps", 1e-30, 1, &o->eps);
  opt_num(s, a[5], "weight_decay", 0, 10, &o->weight_decay);
  o->schedule = SCHED_CONSTANT;
  if (a[6]) set_schedule(s, a[6]);
  if (a[7]) set_nesterov(s, a[7], sgd);
}

static bool one_value(sema *s, ae_stmt *st) {
  if (st->values.len == 1) return true;
  ae_error(s->d, st->loc, "'%s' takes %s", st->name, st->values.len ? "one value" : "a value");
  return false;
}

static void set_loss(sema *s, ae_stmt *st, ae_value *v) {
  char desc[96];
  if (s->m->losses.len) {
    ae_error(s->d, st->loc, "the loss is given twice; write one sum: loss a + 0.1 * b");
    ae_note_at(s->d, ((ae_loss_term *)s->m->losses.items[0])->loc, "the first loss is here");
    return;
  }
  if (v->kind != V_LOSS) {
    ae_error(s->d, v->loc, "loss needs loss functions such as bce(y, x), not %s", ae_value_desc(v, desc, sizeof desc));
    return;
  }
  s->m->losses = v->items;
}

/* An optimizer, schedule, data source ... that is not one of the choices, reported
 * before the value is evaluated so that the message can name the right choices. */
static bool known_choice(sema *s, const ae_expr *e, const char *what, const char *const *choices, int n) {
  if ((e->kind != EX_CALL && e->kind != EX_NAME) || find_name(e->str, choices, n) >= 0 || lookup(s, e->str)) return true;
  char list[200] = "";
  for (int i = 0; i < n; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", choices[i]);
  ae_error(s->d, e->kind == EX_CALL ? e->name_loc : e->loc, "unknown %s '%s'", what, e->str);
  const char *near = ae_closest(e->str, choices, n);
  if (near) ae_hint(s->d, "did you mean '%s'?", near);
  else ae_hint(s->d, "the %ss are %s", what, list);
  return false;
}

static bool known_optimizer(sema *s, const ae_expr *e) {
  if (!known_choice(s, e, "optimizer", ae_optimizers.names, ae_optimizers.n)) return false;
  for (int i = 0; e->kind == EX_CALL && i < e->args.len; i++) {
    const ae_expr *arg = e->args.items[i];
    if (arg->kind == EX_KWARG && strcmp(arg->str, "schedule") == 0 &&
        !known_choice(s, arg->lhs, "schedule", ae_schedules.names, ae_schedules.n))
      return false;
  }
  return true;
}

/* A setting given twice is an error: the second would silently win. */
static bool first_time(sema *s, ae_stmt *st, ae_stmt **slot) {
  if (!*slot) { *slot = st; return true; }
  ae_error(s->d, st->name_loc, "'%s' is given twice", st->name);
  ae_note_at(s->d, (*slot)->name_loc, "the first '%s' is here", st->name);
  return false;
}

/* warmup, clip, accumulate and stop: settings whose values are arguments as in a call,
 * `stop patience = 5, min_delta = 1e-3`, `warmup epochs = 1`, `clip 1.0`, `accumulate 4`. */
static void steering_setting(sema *s, ae_stmt *st, int which) {
  static const char *const names[4][2] = {{"steps", "epochs"}, {"norm"}, {"batches"}, {"patience", "min_delta"}};
  static const int n_names[4] = {2, 1, 1, 2};
  static const char *const examples[4] = {"warmup 500, or warmup epochs = 1", "clip 1.0", "accumulate 4",
                                          "stop patience = 5"};
  ae_optimizer *o = &s->m->opt;
  ae_expr *call = ae_call_new(s->a, st->loc, st->name, st->values);
  ae_value *args[8], *a[2];
  const char *kw[8];
  int n = eval_args(s, call, args, kw, 8);
  if (n < 0 || !ae_bind_args(s->d, call, names[which], n_names[which], args, kw, n, a)) return;
  if (!a[0] && !a[1]) {
    ae_error(s->d, st->loc, "'%s' needs a value, e.g. %s", st->name, examples[which]);
    return;
  }
  switch (which) {
  case 0:
    if (a[0]) ae_value_int(s->d, a[0], "the warm-up steps", 0, 1000000000, &o->warmup_steps);
    if (a[1]) ae_value_int(s->d, a[1], "the warm-up epochs", 0, 1000000, &o->warmup_epochs);
    break;
  case 1:
    if (a[0] && ae_value_num(s->d, a[0], "the largest gradient norm", &o->clip) && !(o->clip > 0 && o->clip <= 1e30))
      ae_error(s->d, a[0]->loc, "clip takes the largest global gradient norm, a number above 0, not %g", o->clip);
    break;
  case 2: ae_value_int(s->d, a[0], "the batches per optimizer step", 1, 65536, &o->accumulate); break;
  default:
    if (!a[0]) ae_error(s->d, st->loc, "stop needs a patience: stop patience = 5 stops after 5 epochs without progress");
    else ae_value_int(s->d, a[0], "patience (epochs without progress)", 1, 1000000, &o->stop_patience);
    opt_num(s, a[1], "min_delta", 0, 1e30, &o->stop_min_delta);
  }
}

static void model_setting(sema *s, ae_stmt *st) {
  static const char *const known[] = {"batch", "epochs", "loss", "optimizer", "warmup", "clip", "accumulate", "stop"};
  int which = find_name(st->name, known, COUNT(known));
  if (which < 0) {
    ae_error(s->d, st->name_loc, "unknown setting '%s'", st->name);
    const char *near = ae_closest(st->name, known, COUNT(known));
    if (near) ae_hint(s->d, "did you mean '%s'?", near);
    else if (st->values.len == 1 && (((ae_expr *)st->values.items[0])->kind == EX_CALL ||
                                     ((ae_expr *)st->values.items[0])->kind == EX_NAME)) {
      ae_hint(s->d, "is '=' missing? a value is named with '%s = ...'", st->name);
      bind_failed(s, st->name, st->name_loc);
    } else ae_hint(s->d, "a model's settings are batch, epochs, loss, optimizer, warmup, clip, accumulate and stop");
    return;
  }
  if (which != 2 && !first_time(s, st, &s->seen_model[which])) return;
  if (which >= 4) {
    steering_setting(s, st, which - 4);
    return;
  }
  if (!one_value(s, st)) return;
  if (which == 3 && !known_optimizer(s, st->values.items[0])) return;
  ae_value *v = eval(s, st->values.items[0]);
  if (!v) return;
  switch (which) {
  case 0: ae_value_int(s->d, v, "the batch size", 1, 65536, &s->m->batch); break;
  case 1: ae_value_int(s->d, v, "the number of epochs", 1, 1000000, &s->m->epochs); break;
  case 2: set_loss(s, st, v); break;
  default: set_optimizer(s, st, v);
  }
}

/* ---- the data pipeline -------------------------------------------------------------- */

static bool opt_str(sema *s, ae_value *v, const char *what, char **out) {
  char desc[96];
  if (!v) return true;
  if (v->kind != V_STR) { ae_error(s->d, v->loc, "%s must be a string, not %s", what, ae_value_desc(v, desc, sizeof desc)); return false; }
  *out = (char *)v->str;
  return true;
}

static bool opt_int(sema *s, ae_value *v, const char *what, long lo, long hi, int *out) {
  return !v || ae_value_int(s->d, v, what, lo, hi, out);
}

static const char *resolve_path(sema *s, const char *from, const char *path);

/* A path without "." segments and with "dir/.." pairs removed: "specs/../data" is "data". */
static const char *normalize_path(sema *s, const char *path) {
  char *out = ae_strdup(s->a, path), *seg[256];
  int n = 0, absolute = path[0] == '/';
  for (char *save = NULL, *p = strtok_r(out, "/", &save); p && n < 256; p = strtok_r(NULL, "/", &save)) {
    if (!strcmp(p, ".")) continue;
    if (!strcmp(p, "..") && n > 0 && strcmp(seg[n - 1], "..")) n--;
    else if (!(strcmp(p, "..") == 0 && absolute && n == 0)) seg[n++] = p;
  }
  char *r = ae_strdup(s->a, absolute ? "/" : "");
  for (int i = 0; i < n; i++) r = ae_sprintf(s->a, "%s%s%s", r, i ? "/" : "", seg[i]);
  return r[0] ? r : ".";
}

/* A data folder is relative to the spec's folder, like an import; the model keeps it
 * relative to the folder aec ran in, which the trainer finds as the parent of its bin/. */
static const char *data_dir_path(sema *s, const char *dir) {
  return dir[0] == '/' ? dir : normalize_path(s, resolve_path(s, s->file->src->path, dir));
}

static void set_source(sema *s, ae_value *v) {
  static const char *const names[] = {"dir", "train", "train_labels", "test", "test_labels", "layers", "labels",
                                      "patch", "patches_per_tile", "tiles", "tile_size"};
  ae_data *dt = &s->m->data;
  ae_value *a[11];
  if (!want_call(s, v, "the data source", ae_sources.names, ae_sources.n) || !config_args(s, v, names, 11, a)) return;
  dt->source_given = true;
  dt->source = (ae_source_kind)ae_setting_find(&ae_sources, v->call->str);
  dt->source_loc = v->loc;
  if (opt_str(s, a[0], "dir", &dt->dir) && dt->dir) dt->dir = (char *)data_dir_path(s, dt->dir);
  opt_str(s, a[1], "train", &dt->train);
  opt_str(s, a[2], "train_labels", &dt->train_labels);
  opt_str(s, a[3], "test", &dt->test);
  opt_str(s, a[4], "test_labels", &dt->test_labels);
  if (a[5]) {
    if (a[5]->kind != V_LIST || a[5]->items.len == 0) ae_error(s->d, a[5]->loc, "layers must be a list of layer names such as [\"naip-new\", \"landsat-leaf-on\"]");
    else if (a[5]->items.len > 16) ae_error(s->d, a[5]->loc, "%d layers: at most 16 files can be stacked into the input", a[5]->items.len);
    else for (int i = 0; i < a[5]->items.len; i++) {
      char *name = NULL;
      if (opt_str(s, a[5]->items.items[i], "a layer name", &name)) ae_vec_push(s->a, &dt->layers, name);
    }
  }
  opt_str(s, a[6], "labels", &dt->label_layer);
  opt_int(s, a[7], "the patch size", 8, 65536, &dt->patch);
  opt_int(s, a[8], "patches per tile", 1, 1000000, &dt->patches_per_tile);
  opt_int(s, a[9], "the number of tiles", 1, 100000, &dt->tiles);
  opt_int(s, a[10], "the tile size", 16, 65536, &dt->tile_size);
  bool geo = dt->source == SOURCE_GEOTIFF;
  if (geo && !dt->layers.len) ae_error(s->d, v->loc, "geotiff needs layers=[...]: the layers stacked into the input channels");
  if (geo && !dt->label_layer) ae_error(s->d, v->loc, "geotiff needs labels=\"...\": the layer that holds the class labels");
}

static void set_augment(sema *s, ae_value *v) {
  static const char *const kinds[] = {"shift", "rotate", "zoom", "flip"};
  static const char *const names[] = {"amount"};
  ae_data *dt = &s->m->data;
  ae_value *a[1];
  if (!want_call(s, v, "an augmentation", kinds, 4) || !config_args(s, v, names, 1, a)) return;
  const char *k = v->call->str;
  if (strcmp(k, "flip") == 0) {
    const char *dir = a[0] && a[0]->kind == V_WORD ? a[0]->str : a[0] ? "" : "horizontal";
    if (strcmp(dir, "horizontal") == 0) dt->flip_h = true;
    else if (strcmp(dir, "vertical") == 0) dt->flip_v = true;
    else if (strcmp(dir, "both") == 0) dt->flip_h = dt->flip_v = true;
    else ae_error(s->d, a[0]->loc, "flip takes horizontal, vertical or both");
    return;
  }
  if (!a[0]) { ae_error(s->d, v->loc, "%s needs its range, e.g. %s(%s)", k, k, k[0] == 's' ? "2" : k[0] == 'r' ? "10" : "0.1"); return; }
  double hi = k[0] == 's' ? 64 : k[0] == 'r' ? 180 : 0.9;
  opt_num(s, a[0], k, 0, hi, k[0] == 's' ? &dt->shift : k[0] == 'r' ? &dt->rotate : &dt->zoom);
}

static void set_normalize(sema *s, ae_value *v) {
  static const char *const kinds[] = {"scale", "standardize"};
  static const char *const names[] = {"factor", "offset"};
  ae_value *a[2];
  if (!want_call(s, v, "the normalisation", kinds, 2) || !config_args(s, v, names, 2, a)) return;
  s->m->data.standardize = strcmp(v->call->str, "standardize") == 0;
  if (s->m->data.standardize) return;
  if (opt_num(s, a[0], "the scale factor", -1e9, 1e9, &s->m->data.scale) && a[0] && s->m->data.scale == 0)
    ae_error(s->d, a[0]->loc, "a scale factor of 0 would erase the data");
  opt_num(s, a[1], "the offset", -1e9, 1e9, &s->m->data.offset);
}

static void data_setting(sema *s, ae_stmt *st) {
  static const char *const known[] = {"source", "augment", "normalize", "validation"};
  int which = find_name(st->name, known, COUNT(known));
  if (st->kind != ST_SETTING || which < 0) {
    ae_error(s->d, st->kind == ST_SETTING ? st->name_loc : st->loc, "'%s' does not belong in the data section",
             st->kind == ST_RETURN ? "return" : st->name);
    const char *near = st->kind == ST_SETTING ? ae_closest(st->name, known, COUNT(known)) : NULL;
    if (near) ae_hint(s->d, "did you mean '%s'?", near);
    else ae_hint(s->d, "the data section holds source, augment, normalize and validation");
    return;
  }
  if (which != 1 && !first_time(s, st, &s->seen_data[which])) return;
  if (which != 1 && !one_value(s, st)) return;
  for (int i = 0; i < st->values.len; i++) {
    const ae_expr *e = st->values.items[i];
    if ((which == 0 && !known_choice(s, e, "data source", ae_sources.names, ae_sources.n)) ||
        (which == 1 && !known_choice(s, e, "augmentation", augment_calls, COUNT(augment_calls))) ||
        (which == 2 && !known_choice(s, e, "normalisation", normalize_calls, COUNT(normalize_calls))))
      continue;
    ae_value *v = eval(s, e);
    if (!v) continue;
    switch (which) {
    case 0: set_source(s, v); break;
    case 1: set_augment(s, v); break;
    case 2: set_normalize(s, v); break;
    default:
      opt_num(s, v, "the validation fraction", 0, 0.9, &s->m->data.validation);
    }
  }
}

/* ---- imports ------------------------------------------------------------------------ */

static const char *resolve_path(sema *s, const char *from, const char *path) {
  if (path[0] == '/') return path;
  char *dir = ae_strdup(s->a, from);
  return ae_sprintf(s->a, "%s/%s", dirname(dir), path);
}

/* A block whose import failed: calls to it fail quietly, the failure was reported. */
static void declare_broken_import(sema *s, ae_import *im) {
  if (find_block(&s->blocks, im->block)) return;
  block_def *b = ae_alloc(s->a, sizeof *b);
  b->name = im->block;
  b->broken = b->used = true;
  ae_vec_push(s->a, &s->blocks, b);
}

/* The spec that path names, if it is being checked now: an import loop. */
static bool in_import_chain(sema *s, ae_import *im, const char *path) {
  char *real = realpath(path, NULL);
  if (!real) return false;
  const import_chain *hit = NULL;
  for (const import_chain *c = s->chain; c && !hit; c = c->up)
    if (strcmp(c->real, real) == 0) hit = c;
  free(real);
  if (!hit) return false;
  if (hit == s->chain) {
    ae_error(s->d, im->path_loc, "'%s' imports itself", s->file->src->path);
    ae_hint(s->d, "a spec's own blocks need no import: remove this line");
    return true;
  }
  {
    const import_chain *specs[AE_MAX_IMPORT_DEPTH + 1];
    int n = 0;
    for (const import_chain *c = s->chain; c && n <= AE_MAX_IMPORT_DEPTH; c = c->up) {
      specs[n++] = c;
      if (c == hit) break;
    }
    char loop[512] = "";
    while (n-- > 0) snprintf(loop + strlen(loop), sizeof loop - strlen(loop), "%s -> ", specs[n]->path);
    ae_error(s->d, im->path_loc, "imports form a loop: %s%s", loop, hit->path);
  }
  ae_hint(s->d, "move the shared blocks into a spec that imports nothing");
  return true;
}

/* Which import option a misspelt one most likely is. */
static void report_import_option(sema *s, ae_stmt *o) {
  static const char *const opts[] = {"weights", "frozen", "trainable"};
  ae_error(s->d, o->loc, "unknown import option '%s'", o->name);
  const char *near = ae_closest(o->name, opts, COUNT(opts));
  if (near) ae_hint(s->d, "did you mean '%s'?", near);
  else ae_hint(s->d, "an import takes: weights \"file.ckpt\", frozen, trainable");
}

static void report_missing_block(sema *s, ae_import *im, ae_file *f) {
  const char *names[64];
  int n = 0;
  for (int i = 0; i < f->stmts.len && n < 64; i++) {
    ae_stmt *st = f->stmts.items[i];
    if (st->kind == ST_BLOCK) names[n++] = st->name;
  }
  ae_error(s->d, im->loc, "'%s' defines no block '%s'", im->path, im->block);
  const char *near = ae_closest(im->block, names, n);
  char list[200] = "";
  for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
  if (near) ae_hint(s->d, "did you mean '%s'?", near);
  else if (n) ae_hint(s->d, "its blocks are: %s", list);
  else ae_hint(s->d, "it defines no blocks; only blocks can be imported");
}

/* Loads the spec an import names and finds its block; NULL after reporting why not. */
static block_def *import_block_def(sema *s, ae_import *im) {
  if (s->import_depth >= AE_MAX_IMPORT_DEPTH) {
    ae_error(s->d, im->path_loc, "imports nested more than %d deep", AE_MAX_IMPORT_DEPTH);
    return NULL;
  }
  const char *path = resolve_path(s, s->file->src->path, im->path);
  if (in_import_chain(s, im, path)) return NULL;
  ae_source *src = ae_alloc(s->a, sizeof *src);
  if (!ae_source_read(s->a, s->d, path, src, &im->path_loc)) {
    if (im->path[0] != '/') ae_hint(s->d, "an import's path is relative to the folder of the spec that imports");
    return NULL;
  }
  int before = s->d->errors;
  ae_file *f = ae_parse(s->a, s->d, src);
  ae_model *m = s->d->errors == before ? check_model(s->a, s->d, f, s->import_depth + 1, s->chain) : NULL;
  if (!m) { ae_note_at(s->d, im->path_loc, "imported from here"); return NULL; }
  block_def *def = NULL;
  for (int i = 0; i < f->stmts.len; i++) {
    ae_stmt *st = f->stmts.items[i];
    if (st->kind == ST_BLOCK && strcmp(st->name, im->block) == 0) def = ae_alloc(s->a, sizeof *def), def->def = st;
  }
  if (!def) { report_missing_block(s, im, f); return NULL; }
  /* the imported block resolves its own calls among the blocks of its spec */
  ae_vec *scope = ae_alloc(s->a, sizeof *scope);
  for (int i = 0; i < f->stmts.len; i++) {
    ae_stmt *st = f->stmts.items[i];
    if (st->kind != ST_BLOCK) continue;
    block_def *b = st == def->def ? def : ae_alloc(s->a, sizeof *b);
    b->name = st->name; b->def = st; b->scope = scope;
    ae_vec_push(s->a, scope, b);
  }
  for (int i = 0; i < im->opts.len; i++) {
    ae_stmt *o = im->opts.items[i];
    if (strcmp(o->name, "weights") == 0 && o->values.len == 1)
      def->weights = resolve_path(s, s->file->src->path, ((ae_expr *)o->values.items[0])->str);
    else if (strcmp(o->name, "frozen") == 0 && !o->values.len) def->frozen = true;
    else if (strcmp(o->name, "trainable") == 0 && !o->values.len) def->frozen = false;
    else report_import_option(s, o);
  }
  if (def->frozen && !def->weights) {
    ae_error(s->d, im->loc, "a frozen block needs the weights it keeps: add weights \"runs/....ckpt\"");
  }
  int uses = 0;
  for (int i = 0; i < m->instances.len; i++) {
    ae_block_instance *bi = m->instances.items[i];
    if (strcmp(bi->block, im->block) == 0) { uses++; def->src_prefix = bi->prefix; }
  }
  if (def->weights && uses != 1) {
    ae_error(s->d, im->loc, "block '%s' is used %d times in '%s', so its checkpoint has %s",
             im->block, uses, im->path, uses ? "several sets of its weights" : "no weights for it");
    return NULL;
  }
  if (!def->src_prefix) def->src_prefix = im->block;
  return def;
}

static void import_block(sema *s, ae_import *im) {
  block_def *def = import_block_def(s, im);
  if (!def) { declare_broken_import(s, im); return; }
  if (find_block(&s->blocks, im->block)) { ae_error(s->d, im->loc, "block '%s' is imported twice", im->block); return; }
  ae_vec_push(s->a, &s->blocks, def);
}

/* ---- the model --------------------------------------------------------------------- */

static void declare_blocks(sema *s) {
  for (int i = 0; i < s->file->stmts.len; i++) {
    ae_stmt *st = s->file->stmts.items[i];
    if (st->kind != ST_BLOCK) continue;
    block_def *old = find_block(&s->blocks, st->name);
    if (old && old->broken) continue;   /* its failed import was reported */
    if (old) {
      ae_error(s->d, st->name_loc, "block '%s' is already defined", st->name);
      ae_note_at(s->d, old->def->name_loc, "the first '%s' is here", st->name);
      continue;
    }
    if (ae_is_layer_name(st->name) || find_name(st->name, loss_calls, COUNT(loss_calls)) >= 0) {
      ae_error(s->d, st->name_loc, "block '%s' would hide the built-in %s of that name", st->name,
               ae_is_layer_name(st->name) ? "layer" : "loss");
      continue;
    }
    for (int j = 0; j < st->params.len; j++)
      for (int k = 0; k < j; k++)
        if (strcmp(((ae_param_decl *)st->params.items[j])->name, ((ae_param_decl *)st->params.items[k])->name) == 0)
          ae_error(s->d, ((ae_param_decl *)st->params.items[j])->loc, "parameter '%s' is listed twice",
                   ((ae_param_decl *)st->params.items[j])->name);
    block_def *b = ae_alloc(s->a, sizeof *b);
    b->name = st->name; b->def = st; b->scope = &s->blocks;
    ae_vec_push(s->a, &s->blocks, b);
  }
}

static void check_stmt(sema *s, ae_stmt *st) {
  s->too_deep = false;
  switch (st->kind) {
  case ST_INPUT: declare_input(s, st); bind_failed(s, st->name, st->name_loc); break;
  case ST_TARGET: declare_target(s, st); bind_failed(s, st->name, st->name_loc); break;
  case ST_BLOCK: break;
  case ST_RETURN: ae_error(s->d, st->loc, "'return' belongs inside a block"); break;
  case ST_SETTING: model_setting(s, st); break;
  case ST_DATA:
    for (int i = 0; i < st->body.len; i++) data_setting(s, st->body.items[i]);
    break;
  case ST_LET: {
    begin_binding(s, NULL, st->name, st->value);
    ae_value *v = eval(s, st->value);
    if (!v) { bind_failed(s, st->name, st->name_loc); return; }   /* later uses do not cascade */
    if (v->kind != V_TENSOR && v->kind != V_NUM) {
      char desc[96];
      ae_error(s->d, st->value->loc, "'%s' must name a tensor or a number, not %s", st->name, ae_value_desc(v, desc, sizeof desc));
      if (v->kind == V_LOSS) ae_hint(s->d, "losses are written in the model's 'loss' statement");
      return;
    }
    bind(s, st->name, st->name_loc, v);
    if (v->kind == V_TENSOR && v->node->op != OP_INPUT && !v->node->name) v->node->name = st->name;
    if (st->latent) {
      if (v->kind != V_TENSOR) ae_error(s->d, st->name_loc, "a latent must be a tensor");
      else if (s->m->latent) ae_error(s->d, st->loc, "a model has one latent; '%s' is a second", st->name);
      else { s->m->latent = v->node; s->m->latent_name = st->name; v->node->is_latent = true; }
    }
    break;
  }
  }
}

/* GeoTIFF and synthetic land cover give patches of the input's size with a class map. */
static void check_tile_source(sema *s) {
  ae_model *m = s->m;
  ae_data *d = &m->data;
  bool synth = d->source == SOURCE_SYNTHETIC_LANDCOVER;
  if (d->source != SOURCE_GEOTIFF && !synth) return;
  const char *source = ae_sources.names[d->source];
  const ae_shape *in = m->input ? &m->input->shape : NULL;
  if (!in || in->rank != 3 || m->target_kind != TARGET_CLASSES || !m->target || m->target->shape.rank < 2 ||
      m->target->shape.d[0] != in->d[0] || m->target->shape.d[1] != in->d[1]) {
    ae_error(s->d, d->source_loc, "%s gives a class per pixel: the model needs an image input [H, W, bands] and a target classes[H, W] of the same size", source);
    return;
  }
  if (in->d[0] != in->d[1]) ae_error(s->d, d->source_loc, "%s reads square patches, but the input is %dx%d", source, in->d[0], in->d[1]);
  if (d->patch && d->patch != in->d[0]) {
    ae_error(s->d, d->source_loc, "the patch is %d pixels but the input is %dx%d", d->patch, in->d[0], in->d[1]);
    ae_hint(s->d, "patch = %d, or leave it out: it defaults to the input's size", in->d[0]);
  }
  d->patch = in->d[0];
  if (!d->patches_per_tile) d->patches_per_tile = 50;
  if (synth) {
    if (!d->layers.len) ae_vec_push(s->a, &d->layers, "naip-new");
    if (!d->label_layer) d->label_layer = "lc";
    if (!d->tiles) d->tiles = 12;
    if (!d->tile_size) d->tile_size = 512;
    if (d->tile_size < d->patch) ae_error(s->d, d->source_loc, "tiles of %d pixels are smaller than the %d-pixel patch", d->tile_size, d->patch);
    if (!d->dir) d->dir = "data/synthetic";
  }
}

/* images: one folder of PNG images that the model learns to reproduce, so the input is the
 * target and there is no other; the images fill an image input or a flat one of s*s values. */
static void check_images_source(sema *s) {
  ae_model *m = s->m;
  ae_data *d = &m->data;
  if (d->source != SOURCE_IMAGES || !m->input) return;
  if (m->target_kind != TARGET_NONE) {
    ae_error(s->d, d->source_loc, "images reads one folder of images, each its own target, but this model declares the target '%s'",
             m->target && m->target->name ? m->target->name : "?");
    ae_hint(s->d, "compare the output with the input (loss mse(y, x)), or read inputs and targets from two folders: "
                  "source image_pairs(train = \"in\", train_labels = \"out\")");
    return;
  }
  if (d->train_labels || d->test_labels)
    ae_error(s->d, d->source_loc, "images has no target files: the input is the target; drop train_labels and test_labels");
}

/* The input or target that n only renames (linear, flatten and reshape are views), or NULL:
 * such a value has no buffer of its own for the trainer to read back. */
static const ae_node *data_view(const ae_node *n) {
  while (n->op == OP_LINEAR || n->op == OP_FLATTEN || n->op == OP_RESHAPE) n = n->in.items[0];
  return n->op == OP_INPUT || n->op == OP_TARGET ? n : NULL;
}

/* A loss term that no trainable parameter reaches cannot be lowered by training: its
 * gradient is zero everywhere, and the run would silently ignore it. */
static void check_losses_reach_parameters(sema *s) {
  ae_model *m = s->m;
  bool *trains = ae_alloc(s->a, sizeof(bool) * (size_t)(m->nodes.len + 1));
  for (int i = 0; i < m->nodes.len; i++) {   /* nodes are in topological order */
    const ae_node *n = m->nodes.items[i];
    trains[n->id] = n->n_params > 0 && !n->frozen;
    for (int j = 0; j < n->in.len && !trains[n->id]; j++) trains[n->id] = trains[((ae_node *)n->in.items[j])->id];
  }
  for (int i = 0; i < m->losses.len; i++) {
    const ae_loss_term *t = m->losses.items[i];
    if ((!t->a && !t->b) || (t->a && trains[t->a->id]) || (t->b && trains[t->b->id])) continue;
    ae_error(s->d, t->loc, "the loss term %s reaches no trainable parameter: training cannot lower it",
             ae_loss_name(t->kind));
    ae_hint(s->d, "its arguments come only from the input, the target or frozen layers; apply it to a layer that trains, or remove it");
  }
}

/* image_pairs reads an input image and a target image for each example; without an image
 * target the trainer would fail on the first batch. */
static void check_pairs_source(sema *s) {
  ae_model *m = s->m;
  if (m->data.source != SOURCE_IMAGE_PAIRS || m->target_kind == TARGET_IMAGE) return;
  ae_error(s->d, m->data.source_loc, "image_pairs gives each input an image target, but the model declares %s",
           m->target_kind == TARGET_CLASSES ? "a class target" : "no target");
  ae_hint(s->d, "declare one, e.g. target t: f32[28, 28, 1], and compare with it in the loss; an autoencoder of its input reads idx");
}

static void check_complete(sema *s) {
  ae_model *m = s->m;
  int errors = s->d->errors;
  ae_loss_term *first = NULL;
  for (int i = 0; i < m->losses.len && !m->output; i++) {
    ae_loss_term *t = m->losses.items[i];
    if (t->kind == LOSS_MSE || t->kind == LOSS_BCE || ae_loss_on_classes(t->kind)) m->output = t->a, first = t;
  }
  if (m->losses.len && !m->output)
    ae_error(s->d, ((ae_loss_term *)m->losses.items[0])->loc,
             "the loss has no reconstruction or prediction term (mse, bce, softmax_xent, dice, jaccard or focal)");
  const ae_node *view;
  if (m->output && (view = data_view(m->output))) {
    ae_error(s->d, first->loc, "the model's output, the first argument of this %s, is the %s '%s' itself: no layer computes it",
             ae_loss_name(first->kind), view->op == OP_INPUT ? "input" : "target", view->name ? view->name : "x");
    ae_hint(s->d, "the output is the first argument of the first mse, bce or class loss term; put the decoder's result there");
  }
  if (m->latent && (view = data_view(m->latent))) {
    ae_error(s->d, m->latent->loc, "the latent '%s' is the %s itself: no layer computes it", m->latent_name,
             view->op == OP_INPUT ? "input" : "target");
    ae_hint(s->d, "mark the encoder's result as the latent: latent z = dense(...)");
  }
  if (!m->epochs) m->epochs = 10;
  if (!m->opt.given) { m->opt.kind = OPT_ADAM; m->opt.lr = 1e-3; m->opt.beta1 = 0.9; m->opt.beta2 = 0.999;
                       m->opt.eps = 1e-8; m->opt.schedule = SCHED_CONSTANT; }
  if (!m->data.source_given) m->data.source = m->target_kind == TARGET_IMAGE ? SOURCE_IMAGE_PAIRS : SOURCE_IDX;
  if (m->data.scale == 0 && !m->data.standardize) m->data.scale = 1.0 / 255.0;
  if (m->data.validation < 0) m->data.validation = 0.1;   /* not given: hold out 10% of the training set */
  check_tile_source(s);
  check_images_source(s);
  check_pairs_source(s);
  if (s->d->errors == errors) check_losses_reach_parameters(s);   /* an output or latent that is the input says it better */
  if (!m->opt.accumulate) m->opt.accumulate = 1;
  for (binding *b = s->env; b && s->import_depth == 0; b = b->next)
    if (!b->used && !b->quiet && b->v && b->v->kind == V_TENSOR && !b->v->node->is_latent &&
        b->v->node != m->output && b->v->node->op != OP_INPUT)
      ae_warning(s->d, b->loc, "'%s' is never used", b->name);
  for (int i = 0; i < s->blocks.len; i++) {
    block_def *b = s->blocks.items[i];
    if (!b->used && s->import_depth == 0) ae_warning(s->d, b->def->name_loc, "block '%s' is never used", b->name);
  }
}

static bool has_stmt(ae_file *f, ae_stmt_kind kind, const char *name) {
  for (int i = 0; i < f->stmts.len; i++) {
    ae_stmt *st = f->stmts.items[i];
    if (st->kind == kind && (!name || strcmp(st->name, name) == 0)) return true;
  }
  return false;
}

/* What every model needs, reported before the statements: without an input nothing
 * else can be checked. False when there is no input. */
static bool check_required(sema *s) {
  const char *name = s->file->name;
  ae_loc at = s->file->name_loc;
  bool input = has_stmt(s->file, ST_INPUT, NULL);
  if (!input) { ae_error(s->d, at, "model '%s' declares no input", name);
                ae_hint(s->d, "add: input x: f32[28, 28, 1]"); }
  if (!has_stmt(s->file, ST_SETTING, "batch")) { ae_error(s->d, at, "model '%s' gives no batch size", name);
                ae_hint(s->d, "add: batch 128 (the batch is a compile-time constant)"); }
  if (!has_stmt(s->file, ST_SETTING, "loss")) { ae_error(s->d, at, "model '%s' has no loss", name);
                ae_hint(s->d, "add e.g.: loss bce(y, x)"); }
  return input;
}

static ae_model *check_model(ae_arena *a, ae_diag *d, ae_file *f, int import_depth, const import_chain *up) {
  if (!f->has_model) return NULL;
  int before = d->errors;
  char *real = realpath(f->src->path, NULL);
  import_chain here = { f->src->path, real ? ae_strdup(a, real) : f->src->path, up };
  free(real);
  ae_model *m = ae_alloc(a, sizeof *m);
  m->name = f->name;
  m->src = f->src;
  m->loc = f->name_loc;
  m->ignore_label = -1;
  m->data.validation = -1;   /* not given yet */
  sema s = { .a = a, .d = d, .m = m, .file = f, .import_depth = import_depth, .chain = &here };
  s.scope = &s.blocks;
  for (int i = 0; i < f->imports.len; i++) import_block(&s, f->imports.items[i]);
  declare_blocks(&s);
  if (!check_required(&s)) return NULL;
  for (int i = 0; i < f->stmts.len && !ae_too_many_errors(d); i++) check_stmt(&s, f->stmts.items[i]);
  if (d->errors == before) check_complete(&s);
  return d->errors == before ? m : NULL;
}

ae_model *ae_check(ae_arena *a, ae_diag *d, ae_file *f, int import_depth) {
  return check_model(a, d, f, import_depth, NULL);
}

ae_model *ae_load_spec(ae_arena *a, ae_diag *d, const char *path) {
  ae_source *src = ae_alloc(a, sizeof *src);
  if (!ae_source_read(a, d, path, src, NULL)) return NULL;
  int before = d->errors;
  ae_file *f = ae_parse(a, d, src);
  if (d->errors != before) return NULL;
  return ae_check(a, d, f, 0);
}
