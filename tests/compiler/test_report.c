/* test_report.c - the facts `aec report` is built on: the JSON reader (values, and errors
 * at their place), the block calls a layer came through, the plan's named buffers (each
 * buffer once, names unique), the kernels' FLOPs against the summary's, and model.c as
 * text with each kernel where the file has it. tests/report/run.sh checks the page itself. */
#include "aec.h"

#include <criterion/criterion.h>
#include <glob.h>
#include <string.h>

static ae_program *lower(ae_arena *a, const char *path) {
  ae_diag d = { .out = stderr };
  ae_model *m = ae_load_spec(a, &d, path);
  cr_assert_not_null(m, "%s does not check", path);
  return ae_lower(a, m, m->batch);
}

static const ae_json *parse_text(ae_arena *a, const char *text, char **errors) {
  ae_source *src = ae_alloc(a, sizeof *src);
  src->path = "t.json";
  src->text = ae_strdup(a, text);
  src->len = strlen(text);
  size_t len;
  FILE *f = open_memstream(errors, &len);
  ae_diag d = { .out = f };
  const ae_json *j = ae_json_parse(a, &d, src);
  fclose(f);
  return j;
}

Test(report, json_reads_what_the_profile_and_manifest_hold) {
  ae_arena *a = ae_arena_new();
  char *err = NULL;
  const ae_json *j = parse_text(a, "{\"model\": \"m\\u0041\", \"n\": -1.5e3, \"ok\": true, \"no\": false, \"x\": null,\n"
                                   " \"list\": [1, {\"name\": \"k\"}, []]}", &err);
  cr_assert_not_null(j, "%s", err);
  cr_expect_str_eq(ae_json_str(j, "model"), "mA");
  cr_expect_eq(ae_json_num(j, "n", 0), -1500);
  cr_expect(ae_json_get(j, "ok")->b && !ae_json_get(j, "no")->b);
  cr_expect_eq(ae_json_get(j, "x")->kind, JSON_NULL);
  const ae_json *list = ae_json_get(j, "list");
  cr_assert_eq(list->items.len, 3);
  cr_expect_str_eq(ae_json_str(list->items.items[1], "name"), "k");
  cr_expect_eq(ae_json_num(j, "absent", 7), 7);
  cr_expect_null(ae_json_get(list, "name"), "a list has no keys");
  free(err);
  ae_arena_free(a);
}

Test(report, json_errors_point_at_the_spot) {
  static const struct { const char *text, *want; } bad[] = {
    {"{\"a\": 1,\n \"b\" 2}", "t.json:2:6: error: expected ':' after a key, found '2'"},
    {"[1, 2", "t.json:1:6: error: expected ',' or ']', but the file ends here"},
    {"{\"a\": \"open\n", "t.json:1:12: error: a string is not closed"},
    {"{} x", "t.json:1:4: error: expected the end of the file after the value"},
    {"", "t.json:1:1: error: expected a value, but the file ends here"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ae_arena *a = ae_arena_new();
    char *err = NULL;
    cr_expect_null(parse_text(a, bad[i].text, &err), "%s parsed", bad[i].text);
    cr_expect(strstr(err, bad[i].want) == err, "for %s: got\n%s", bad[i].text, err);
    free(err);
    ae_arena_free(a);
  }
}

Test(report, layers_know_the_block_calls_they_came_through) {
  ae_arena *a = ae_arena_new();
  ae_program *p = lower(a, "specs/unet_landcover.ae");
  const ae_node *d41 = NULL, *e11 = NULL;
  for (int i = 0; i < p->m->nodes.len; i++) {
    const ae_node *n = p->m->nodes.items[i];
    if (n->name && !strcmp(n->name, "d4.1")) d41 = n;
    if (n->name && !strcmp(n->name, "e1.1")) e11 = n;
  }
  cr_assert(d41 && e11);
  cr_expect_eq(e11->loc.line, 8);
  cr_assert_eq(e11->n_via, 1);
  cr_expect_str_eq(e11->via[0].block, "double_conv");
  cr_expect_eq(e11->via[0].loc.line, 11);
  cr_assert_eq(d41->n_via, 2, "d4 = up(...) -> double_conv(...) -> conv");
  cr_expect_str_eq(d41->via[0].block, "up");
  cr_expect_eq(d41->via[0].loc.line, 16);
  cr_expect_str_eq(d41->via[1].block, "double_conv");
  cr_expect_eq(d41->via[1].loc.line, 9);
  ae_arena_free(a);
}

/* Every example spec: the named buffers are the plan's, once each, under unique names; the
 * kernels' FLOPs add up to the summary's training step. */
Test(report, named_buffers_and_kernel_costs_agree_with_the_plan) {
  glob_t g;
  cr_assert_eq(glob("specs/*.ae", 0, NULL, &g), 0);
  for (size_t s = 0; s < g.gl_pathc; s++) {
    ae_arena *a = ae_arena_new();
    ae_program *p = lower(a, g.gl_pathv[s]);
    int n, used = p->rowtmp.used;
    const ae_named_buffer *b = ae_plan_buffers(a, p, &n);
    for (int i = 0; i < p->n_nodes; i++) used += p->val[i].used + p->grad[i].used;
    for (int i = 0; i < p->kernels.len; i++) {
      const ae_kernel *k = p->kernels.items[i];
      used += k->stats.used + k->scratch[0].used + k->scratch[1].used;
    }
    cr_expect_eq(n, used, "%s: %d named buffers, %d in the plan", g.gl_pathv[s], n, used);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < i; j++) {
        cr_expect(b[i].b != b[j].b, "%s: %s named twice", g.gl_pathv[s], b[i].name);
        cr_expect(strcmp(b[i].name, b[j].name), "%s: two buffers named %s", g.gl_pathv[s], b[i].name);
      }
    double flops = 0;
    for (int i = 0; i < p->kernels.len; i++) {
      ae_cost c = ae_kernel_cost(p, p->kernels.items[i]);
      flops += c.flops[0] + c.flops[1];
      cr_expect(c.bytes[0] > 0, "%s: a kernel that moves no bytes", g.gl_pathv[s]);
    }
    double want = ae_model_totals(p->m).flops_train_step;
    cr_expect(flops == want, "%s: kernels %.0f FLOPs, summary %.0f", g.gl_pathv[s], flops, want);
    ae_arena_free(a);
  }
  globfree(&g);
}

Test(report, model_c_text_marks_where_each_kernel_starts) {
  ae_arena *a = ae_arena_new();
  ae_program *p = lower(a, "specs/conv_ae.ae");
  int K = p->kernels.len;
  long at[64];
  const char *text = ae_emit_model_c_text(a, p, "0123456789abcdef", at);
  cr_assert_not_null(text);
  for (int k = 0; k < K; k++) {
    const char *name = ae_kernel_name(a, p->kernels.items[k]);
    cr_expect(at[k] < at[k + 1]);
    cr_expect(strncmp(text + at[k], "\n/* ---- ", 9) == 0, "kernel %d does not start with its comment", k);
    const char *fwd = strstr(text + at[k], ae_sprintf(a, "static void %s_forward(", name));
    cr_expect(fwd && fwd < text + at[k + 1], "%s_forward is not in its kernel's text", name);
  }
  cr_expect(strstr(text + at[K], "compute_loss") != NULL);
  ae_arena_free(a);
}

/* A GPU target's manifest records each kernel's launch; the page shows it as rows. */
Test(report, launch_facts_of_a_manifest_become_rows) {
  ae_arena *a = ae_arena_new();
  char *err = NULL, *html = NULL;
  size_t len;
  const ae_json *k = parse_text(a, "{\"name\": \"conv_e1_1\", \"grid\": [64, 8, 1], \"block\": [256, 1, 1], "
                                   "\"registers\": 40, \"shared_bytes\": 16384}", &err);
  cr_assert_not_null(k, "%s", err);
  FILE *f = open_memstream(&html, &len);
  ae_report_launch_rows(f, k);
  ae_report_launch_rows(f, NULL);
  fclose(f);
  cr_expect(strstr(html, "<th scope=\"row\">grid</th><td>64 &#215; 8 &#215; 1</td>") != NULL, "%s", html);
  cr_expect(strstr(html, "<th scope=\"row\">block</th><td>256 &#215; 1 &#215; 1</td>") != NULL, "%s", html);
  cr_expect(strstr(html, "registers per thread</th><td>40<") != NULL, "%s", html);
  cr_expect(strstr(html, "shared memory, bytes</th><td>16384<") != NULL, "%s", html);
  free(html);
  free(err);
  html = err = NULL;
  ae_program *p = lower(a, "specs/conv_ae.ae");
  const ae_json *m = parse_text(a, ae_emit_manifest_text(a, p, "0123456789abcdef"), &err);
  cr_assert_not_null(m, "the manifest does not parse: %s", err);
  f = open_memstream(&html, &len);
  ae_report_launch_rows(f, ((const ae_json *)ae_json_get(m, "kernels"))->items.items[0]);
  fclose(f);
  cr_expect_eq(len, 0, "the CPU target records no launch, yet: %s", html);
  free(html);
  free(err);
  ae_arena_free(a);
}
