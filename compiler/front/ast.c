/* ast.c - constructors for the syntax tree. The pipe `a |> f(b)` is desugared here
 * into the call `f(a, b)`, so later stages see only calls. */
#include "aec.h"

ae_expr *ae_expr_new(ae_arena *a, ae_expr_kind kind, ae_loc loc) {
  ae_expr *e = ae_alloc(a, sizeof *e);
  e->kind = kind;
  e->loc = loc;
  return e;
}

ae_expr *ae_call_new(ae_arena *a, ae_loc loc, char *name, ae_vec args) {
  ae_expr *e = ae_expr_new(a, EX_CALL, loc);
  e->str = name;
  e->name_loc = loc;
  e->name_loc.len = 0;
  for (const char *p = name; *p; p++) e->name_loc.len++;
  e->args = args;
  return e;
}

ae_expr *ae_pipe(ae_arena *a, ae_expr *lhs, ae_expr *call, ae_loc pipe_loc) {
  ae_vec args = {0};
  ae_vec_push(a, &args, lhs);
  for (int i = 0; i < call->args.len; i++) ae_vec_push(a, &args, call->args.items[i]);
  call->args = args;
  call->piped = true;
  return call;
}

ae_stmt *ae_stmt_new(ae_arena *a, ae_stmt_kind kind, ae_loc loc) {
  ae_stmt *s = ae_alloc(a, sizeof *s);
  s->kind = kind;
  s->loc = loc;
  return s;
}
