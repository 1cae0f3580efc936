/* test_specs.c - every example spec checks, and its summary is right: parameter counts
 * equal what PyTorch reports for the same model (tests/torch/param_counts.py printed the
 * table below with Debian's python3-torch 1.13), the U-Net's FLOPs are as pinned, and
 * the back end's plan is sound: buffers that live at the same time never share memory. */
#include "aec.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; long trainable, frozen; } torch_counts[] = {
  {"conv_ae", 324545, 0}, {"conv_ae_1x1", 443585, 0}, {"conv_ae_transpose", 278369, 0},
  {"conv_vae", 228193, 0}, {"deep_ae", 1151648, 0}, {"denoising_ae", 28353, 0}, {"denoising_skip", 11575, 0},
  {"dense_ae", 439728, 0}, {"grow_stage1", 402448, 0}, {"grow_stage2", 236704, 200960},
  {"grow_stage3", 219768, 218448}, {"img2img", 117985, 0}, {"latent_classifier", 2762, 165376},
  {"sparse_kl_ae", 468368, 0}, {"sparse_l1_ae", 468368, 0}, {"sparse_none_ae", 468368, 0},
  {"unet_landcover", 1965734, 0}, {"unet_landcover_small", 29878, 0},
  {"vae", 474672, 0}, {"vae2", 1068820, 0},
};
#define N_SPECS ((int)(sizeof torch_counts / sizeof torch_counts[0]))

static ae_model *load(ae_arena *a, const char *name) {
  char path[256];
  snprintf(path, sizeof path, "specs/%s.ae", name);
  ae_diag d = { .out = stderr };
  ae_model *m = ae_load_spec(a, &d, path);
  cr_assert_not_null(m, "%s does not check", path);
  cr_assert_eq(d.errors, 0);
  cr_expect_eq(d.warnings, 0, "%s has %d warnings", path, d.warnings);
  return m;
}

Test(specs, parameter_counts_equal_pytorch) {
  for (int i = 0; i < N_SPECS; i++) {
    ae_arena *a = ae_arena_new();
    ae_model *m = load(a, torch_counts[i].name);
    ae_totals t = ae_model_totals(m);
    cr_expect_eq(t.params_trainable, torch_counts[i].trainable, "%s: %ld trainable, PyTorch %ld", torch_counts[i].name,
                 t.params_trainable, torch_counts[i].trainable);
    cr_expect_eq(t.params_frozen, torch_counts[i].frozen, "%s: %ld frozen, PyTorch %ld", torch_counts[i].name,
                 t.params_frozen, torch_counts[i].frozen);
    ae_arena_free(a);
  }
}

Test(specs, pinned_models_have_their_sizes) {
  ae_arena *a = ae_arena_new();
  ae_model *u = load(a, "unet_landcover");
  ae_totals t = ae_model_totals(u);
  cr_expect(fabs(t.flops_forward / 1e9 - 7.41) < 0.005, "unet_landcover: %.3f GFLOP forward per image", t.flops_forward / 1e9);
  cr_expect_eq(u->batch, 8);
  cr_expect_eq(u->n_classes, 6);
  cr_expect_eq(u->ignore_label, 15);
  cr_expect_eq(load(a, "conv_ae")->batch, 128);
  cr_expect_eq(load(a, "dense_ae")->batch, 256);
  ae_model *v = load(a, "vae");
  cr_expect_eq(v->batch, 256);
  cr_expect_eq(v->losses.len, 2);
  cr_expect(((ae_loss_term *)v->losses.items[0])->reduce_sum, "vae's bce is summed over pixels");
  ae_arena_free(a);
}

Test(specs, summary_json_carries_the_same_facts) {
  ae_arena *a = ae_arena_new();
  ae_model *m = load(a, "conv_ae");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ae_print_summary_json(f, m);
  fclose(f);
  cr_expect(strstr(text, "\"params_trainable\": 324545") != NULL, "%s", text);
  cr_expect(strstr(text, "\"latent\": \"z\"") != NULL);
  free(text);
  ae_arena_free(a);
}

/* Two buffers whose lives overlap must not overlap in the arena. */
static void expect_disjoint(const char *name, const ae_buffer *x, const ae_buffer *y) {
  if (!x->used || !y->used || x == y) return;
  bool same_time = x->first <= y->last && y->first <= x->last;
  bool same_space = x->off < y->off + y->size && y->off < x->off + x->size;
  cr_expect(!(same_time && same_space), "%s: buffers at %ld (+%ld, steps %d-%d) and %ld (+%ld, steps %d-%d) collide",
            name, x->off, x->size, x->first, x->last, y->off, y->size, y->first, y->last);
}

Test(specs, memory_plan_never_shares_live_buffers) {
  for (int i = 0; i < N_SPECS; i++) {
    ae_arena *a = ae_arena_new();
    ae_program *p = ae_lower(a, load(a, torch_counts[i].name), 4);
    int n = 0;
    const ae_buffer *all[4096];
    for (int j = 0; j < p->n_nodes; j++) { all[n++] = &p->val[j]; all[n++] = &p->grad[j]; }
    for (int j = 0; j < p->kernels.len; j++) {
      ae_kernel *k = p->kernels.items[j];
      all[n++] = &k->stats; all[n++] = &k->scratch[0]; all[n++] = &k->scratch[1];
    }
    all[n++] = &p->rowtmp;
    for (int x = 0; x < n; x++)
      for (int y = x + 1; y < n; y++) expect_disjoint(torch_counts[i].name, all[x], all[y]);
    for (int x = 0; x < n; x++)
      if (all[x]->used) cr_expect_leq(all[x]->off + all[x]->size, p->arena_floats);
    ae_arena_free(a);
  }
}

static bool step_touches(const ae_step *st, const ae_buffer *b) {
  for (int i = 0; i < st->reads.len; i++) if (st->reads.items[i] == b) return true;
  for (int i = 0; i < st->writes.len; i++) if (st->writes.items[i] == b) return true;
  return false;
}

/* The step list: every buffer a step touches is alive at its time in the plan; every
 * gradient buffer is zeroed once, before any other step touches it; a kernel's backward
 * steps are consecutive; a frozen layer has no weight gradient and a trained one has. */
Test(specs, steps_zero_each_gradient_first_and_skip_frozen_weights) {
  for (int i = 0; i < N_SPECS; i++) {
    const char *name = torch_counts[i].name;
    ae_arena *a = ae_arena_new();
    ae_program *p = ae_lower(a, load(a, name), 4);
    bool ended[256] = {0};
    cr_assert_lt(p->kernels.len, 256);
    for (int s = 0; s < p->steps.len; s++) {
      const ae_step *st = p->steps.items[s];
      for (int j = 0; j < st->reads.len + st->writes.len; j++) {
        const ae_buffer *b = j < st->reads.len ? st->reads.items[j] : st->writes.items[j - st->reads.len];
        cr_expect(b->used && b->first <= st->time && st->time <= b->last, "%s: step %d (%s) uses a buffer dead at %d",
                  name, s, ae_step_kind_name(st->kind), st->time);
      }
      const ae_step *prev = s ? p->steps.items[s - 1] : NULL;
      if (prev && prev->k && prev->kind != STEP_FORWARD && prev->k != st->k) ended[prev->k->id] = true;
      if (st->k && st->kind != STEP_FORWARD)
        cr_expect(!ended[st->k->id], "%s: the backward steps of kernel %d are not together", name, st->k->id);
    }
    for (int n = 0; n < p->n_nodes; n++) {
      const ae_buffer *g = &p->grad[n];
      if (!g->used) continue;
      int zeros = 0, first = -1;
      for (int s = 0; s < p->steps.len; s++) {
        const ae_step *st = p->steps.items[s];
        if (!step_touches(st, g)) continue;
        if (first < 0) first = s;
        if (st->kind == STEP_ZERO) { zeros++; cr_expect_eq(s, first, "%s: a gradient is zeroed after its first use", name); }
      }
      cr_expect_eq(zeros, 1, "%s: a gradient buffer is zeroed %d times", name, zeros);
    }
    long trained = 0;
    for (int k = 0; k < p->kernels.len; k++) {
      const ae_kernel *kk = p->kernels.items[k];
      if (!kk->w || kk->kind == K_BATCHNORM) continue;
      bool dw = ae_kernel_step(p, kk, STEP_WEIGHT_GRAD) != NULL;
      cr_expect_eq(dw, !kk->w->frozen, "%s: %s has%s a weight gradient step", name, kk->w->name, dw ? "" : " no");
      if (dw) trained += kk->w->size;
    }
    cr_expect(trained > 0, "%s: no layer is trained", name);
    ae_arena_free(a);
  }
}

Test(specs, fusion_folds_upsample_and_concat_into_convs) {
  ae_arena *a = ae_arena_new();
  ae_program *p = ae_lower(a, load(a, "unet_landcover"), 8);
  int convs = 0;
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    cr_expect(k->kind != K_UPSAMPLE && k->kind != K_CONCAT && k->kind != K_ACT, "kernel %d is a separate %s", i,
              ae_op_name(k->node->op));
    if (k->kind == K_CONV) convs++;
  }
  cr_expect_eq(convs, 19, "the U-Net has 19 convolutions, each one kernel with its relu");
  /* the first decoder conv reads the upsampled bottleneck and the skip e4 as two sources */
  const ae_kernel *d4 = NULL;
  for (int i = 0; i < p->kernels.len && !d4; i++) {
    const ae_kernel *k = p->kernels.items[i];
    if (k->node->name && !strcmp(k->node->name, "d4.1")) d4 = k;
  }
  cr_assert_not_null(d4);
  cr_assert_eq(d4->src.len, 2);
  cr_expect_eq(((ae_view *)d4->src.items[0])->factor, 2);
  cr_expect_eq(((ae_view *)d4->src.items[1])->ch_off, 256);
  ae_arena_free(a);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = calloc(1, (size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return buf;
}

/* The generated C reads like the design says: provenance per kernel, forward and
 * backward side by side, the folded upsample in the conv's indexing, constant sizes. */
Test(codegen, conv_ae_model_c_has_its_shape) {
  ae_arena *a = ae_arena_new();
  ae_program *p = ae_lower(a, load(a, "conv_ae"), 128);
  char dir[] = "/tmp/aec_codegen_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  cr_assert(ae_emit_c(a, p, dir, "0123456789abcdef"));
  char path[512];
  snprintf(path, sizeof path, "%s/model.c", dir);
  char *c = slurp(path);
  cr_expect(strstr(c, "/* ---- conv d1  (specs/conv_ae.ae:17:") != NULL, "no provenance comment for conv d1");
  cr_expect(strstr(c, " * in: d 7x7x64 upsampled x2\n") != NULL, "conv d1 does not read the folded upsample");
  const char *fwd = strstr(c, "static void conv_d1_forward"), *bwd = strstr(c, "static void conv_d1_backward");
  const char *next = strstr(c, "static const aert_stack_part upad_conv_d2_parts");
  cr_assert(fwd && bwd && next);
  cr_expect(fwd < bwd && bwd < next, "conv_d1's backward does not follow its forward");
  cr_expect(strstr(c, "static const aert_dx_geom xgeo_conv_z_h_2 = {.batch = 32, .s = 2, .k = 3, .pt = 1, .pl = 1, .h = 28, "
                     ".w = 28, .ho = 14, .wo = 14, .hp = 16, .wp = 16, .cin = 32, .cout = 32};") != NULL &&
                strstr(c, "aert_conv_dx_phases(&xgeo_conv_z_h_2,") != NULL && strstr(c, "scatter_conv_z_h_2") == NULL,
            "the strided encoder's dx does not run by phases with a constant geometry");
  cr_expect(strstr(c, "aert_conv_fwd(") != NULL && strstr(c, "aert_pad_stack(&pgeo_conv_z_h_1,") != NULL, "convs do not run direct");
  cr_expect(strstr(c, "aert_conv_fwd_bias_act(&geo_conv_z_h_1,") != NULL && strstr(c, "aert_bias_act(r->z_h_1,") == NULL,
            "the first conv's bias and ReLU are not applied as its tiles store");
  cr_expect(strstr(c, "aert_conv_fwd_narrow_stack(&pgeo_conv_y,") != NULL && strstr(c, "aert_conv_dw_narrow_stack(&pgeo_conv_y,") != NULL,
            "conv_y (one output channel) does not run direct, reading its plain input in place");
  cr_expect(strstr(c, "aert_up2_unshuffle(") != NULL && strstr(c, "aert_up2_fold(") != NULL,
            "the convs of the upsampled decoder do not run as phases of the small image");
  cr_expect(strstr(c, "malloc") == NULL, "generated code allocates");
  cr_expect(strstr(c, "upsample_forward") == NULL, "an upsample was materialised");
  free(c);
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  char *man = slurp(path);
  cr_expect(strstr(man, "\"name\": \"z.h.1.w\", \"shape\": [3, 3, 1, 32]") != NULL, "%s", man);
  free(man);
  const char *files[] = {"model.c", "model.h", "manifest.json", "model.mk"};
  for (int i = 0; i < 4; i++) { snprintf(path, sizeof path, "%s/%s", dir, files[i]); remove(path); }
  rmdir(dir);
  ae_arena_free(a);
}

/* 8-channel layers (half an AVX-512 vector) run direct, dx included, and the last up conv
 * (16 upsampled + 8 skip channels) as phases: nothing but the 1x1 logits goes through a
 * GEMM, and no im2col gather or col2im scatter is written. */
Test(codegen, half_vector_convs_run_direct) {
  ae_arena *a = ae_arena_new();
  ae_program *p = ae_lower(a, load(a, "unet_landcover_small"), 16);
  char dir[] = "/tmp/aec_codegen_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  cr_assert(ae_emit_c(a, p, dir, "0123456789abcdef"));
  char path[512];
  snprintf(path, sizeof path, "%s/model.c", dir);
  char *c = slurp(path);
  const char *gemm = strstr(c, "aert_gemm("), *logits = strstr(c, "static void conv_logits_forward");
  cr_assert_not_null(logits);
  cr_expect(gemm && gemm > logits, "a conv before conv_logits runs as a GEMM");
  cr_expect(strstr(c, "static void gather_") == NULL && strstr(c, "static void scatter_") == NULL, "an im2col pass was written");
  cr_expect(strstr(c, "aert_pad_stack(&upad_conv_d1_1,") != NULL, "conv_d1_1 does not run as phases");
  cr_expect(strstr(c, "aert_conv_fwd(&dgeo_conv_e1_2,") != NULL, "conv_e1_2's dx (8 channels) does not run direct");
  free(c);
  const char *files[] = {"model.c", "model.h", "manifest.json", "model.mk"};
  for (int i = 0; i < 4; i++) { snprintf(path, sizeof path, "%s/%s", dir, files[i]); remove(path); }
  rmdir(dir);
  ae_arena_free(a);
}

static int count_of(const char *text, const char *what) {
  int n = 0;
  for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
  return n;
}

/* bias=false, bilinear upsampling, a concat of vectors and the segmentation losses of the
 * PyTorch cross-check's t_lang: no bias tensors or bias gradients where bias=false, both
 * bilinear upsamplings computed as kernels of their own (never folded into a conv), the
 * vector concat a kernel of [9], and the class losses on their two kernels. */
Test(codegen, language_gaps_lower_as_documented) {
  ae_arena *a = ae_arena_new();
  ae_diag d = { .out = stderr };
  ae_model *m = ae_load_spec(a, &d, "tests/torch/specs/t_lang.ae");
  cr_assert_not_null(m);
  ae_program *p = ae_lower(a, m, 4);
  const char *absent[] = {"e.1.b", "w.b", "a.b"}, *present[] = {"e.1.w", "w.w", "a.w", "u.b", "b.b", "c.b", "logits.b"};
  for (int i = 0; i < p->params.len; i++)
    for (int j = 0; j < 3; j++) cr_expect_neq(strcmp(((ae_tensor *)p->params.items[i])->name, absent[j]), 0, "%s exists", absent[j]);
  for (int j = 0; j < 7; j++) {
    bool found = false;
    for (int i = 0; i < p->params.len; i++) found = found || !strcmp(((ae_tensor *)p->params.items[i])->name, present[j]);
    cr_expect(found, "no %s", present[j]);
  }
  int upsamples = 0, vector_concats = 0;
  for (int i = 0; i < p->kernels.len; i++) {
    const ae_kernel *k = p->kernels.items[i];
    upsamples += k->kind == K_UPSAMPLE && k->node->bilinear;
    vector_concats += k->kind == K_CONCAT && k->out->shape.rank == 1 && k->out->shape.d[0] == 9;
    for (int j = 0; j < k->src.len; j++) cr_expect_eq(((ae_view *)k->src.items[j])->factor, 1, "a bilinear upsample was folded");
  }
  cr_expect_eq(upsamples, 2);
  cr_expect_eq(vector_concats, 1);
  char *c = ae_emit_model_c_text(a, p, "0123456789abcdef", NULL);
  cr_assert_not_null(c);
  cr_expect_eq(count_of(c, "aert_upsample_bilinear_forward("), 2);
  /* a dense layer's bias gradient is its own pass, a conv's rides with its activation's */
  cr_expect_eq(count_of(c, "aert_bias_grad(") + count_of(c, "aert_act_bias_backward("), 4,
               "bias gradients for u, b, c and logits only");
  cr_expect_eq(count_of(c, "aert_loss_focal("), 1);
  cr_expect_eq(count_of(c, "aert_loss_overlap("), 2, "dice and jaccard");
  ae_arena_free(a);
}
