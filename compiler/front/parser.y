/* parser.y - the spec grammar. A pure parser with locations; the actions only build
 * the AST (ast.c). Syntax errors name what was expected, where an unclosed bracket
 * was opened, and recovery at the end of the line lets one run report them all. */
%code requires {
#include "aec.h"
#define AE_LEX_MAX_OPEN 64
typedef struct ae_lexer {
  ae_arena *arena;
  ae_diag *diag;
  const ae_source *src;
  int line, col;
  int depth;                       /* open '(' and '[' */
  ae_loc open[AE_LEX_MAX_OPEN];    /* where each of them opened */
  char open_char[AE_LEX_MAX_OPEN];
  bool can_end;                    /* the last token may end a statement */
  int braces;                      /* open '{' */
  ae_loc brace[AE_LEX_MAX_OPEN];   /* where each of them opened */
  int brace_indent[AE_LEX_MAX_OPEN];  /* the indentation of the line that opened it */
  int indent;                      /* column of the current line's first token, 0 before it */
  ae_loc misindented;              /* a '{' closed by a '}' indented less than its line: */
  int misindented_by;              /*   likely the unclosed one; line of that '}' (0: none) */
  size_t pos;                      /* byte offset of the next token */
  int bad_string_line;             /* a line with an unclosed string: its syntax errors are not news */
  bool outside_model;              /* statements before 'model' were reported */
} ae_lexer;
typedef void *yyscan_t;
typedef struct { double value; bool is_int; } ae_number;
typedef struct { ae_arena *arena; ae_diag *diag; ae_file *file; ae_lexer *lexer; } ae_parser;
}

%code provides {
void ae_lexer_forget_brackets(ae_lexer *lx);
}

%code {
#include "lexer.h"
#include <string.h>

#define YYLLOC_DEFAULT(cur, rhs, n)                                       \
  do {                                                                    \
    if (n) (cur) = ae_loc_span(YYRHSLOC(rhs, 1), YYRHSLOC(rhs, n));       \
    else { (cur) = YYRHSLOC(rhs, 0); (cur).col += (cur).len; (cur).len = 1; } \
  } while (0)

#define A (pr->arena)
static void yyerror(YYLTYPE *loc, yyscan_t scanner, ae_parser *pr, const char *msg);
static ae_vec vec1(ae_arena *a, void *item) { ae_vec v = {0}; ae_vec_push(a, &v, item); return v; }
static ae_stmt *let_stmt(ae_arena *a, YYLTYPE loc, char *name, YYLTYPE name_loc, ae_expr *value, bool latent);
static ae_stmt *body_stmt(ae_arena *a, ae_stmt_kind kind, YYLTYPE loc, char *name, YYLTYPE name_loc);
}

%define api.pure full
%define api.location.type {ae_loc}
%define parse.error custom
%define parse.lac full
%define parse.trace
%locations
%param {yyscan_t scanner}
%parse-param {ae_parser *pr}
%expect 0

%union {
  char *str;
  ae_number num;
  ae_expr *expr;
  ae_stmt *stmt;
  ae_type *type;
  ae_vec vec;
  ae_import *import;
  ae_param_decl *param;
  ae_class_decl *cls;
}

%token END 0 "end of file"
%token <str> IDENT "name" STRING "string"
%token <num> NUMBER "number"
%token MODEL "model" BLOCK "block" IMPORT "import" FROM "from" INPUT "input"
%token TARGET "target" LATENT "latent" RETURN "return" IGNORE "ignore" DATA "data"
%token PIPE "|>" EOL "end of line" INVALID "invalid character"

%precedence PIPE
%left '+' '-'
%left '*' '/'
%precedence NEG

%type <expr> expr primary arg pipe_rhs ignore_opt
%type <vec> args args_opt list_items stmts body params params_opt dims_opt dims classes_opt class_list import_opts
%type <stmt> stmt setting_opt
%type <type> type
%type <import> import
%type <param> param
%type <cls> class_item

%%

file:
    top_items model top_eols
  | top_items                       { if (!pr->file->has_model && pr->diag->errors == 0)
                                        yyerror(&@$, scanner, pr, "a spec must declare a model: model NAME { ... }"); }
  ;

top_items:
    %empty
  | top_items EOL
  | top_items import EOL            { ae_vec_push(A, &pr->file->imports, $2); }
  | top_items error EOL             { yyerrok; }
  ;

top_eols: %empty | top_eols EOL ;

import:
    IMPORT IDENT FROM STRING import_opts
      { $$ = ae_alloc(A, sizeof *$$); $$->block = $2; $$->loc = @2; $$->path = $4; $$->path_loc = @4; $$->opts = $5; }
  ;

import_opts:
    %empty                          { $$ = (ae_vec){0}; }
  | import_opts setting_opt         { $$ = $1; ae_vec_push(A, &$$, $2); }
  ;

setting_opt:
    IDENT                           { $$ = body_stmt(A, ST_SETTING, @1, $1, @1); }
  | IDENT STRING                    { $$ = body_stmt(A, ST_SETTING, @1, $1, @1);
                                      ae_expr *s = ae_expr_new(A, EX_STRING, @2); s->str = $2;
                                      ae_vec_push(A, &$$->values, s); }
  ;

model:
    MODEL IDENT body                { pr->file->name = $2; pr->file->name_loc = @2; pr->file->stmts = $3; pr->file->has_model = true; }
  ;

body:
    '{' stmts '}'                   { $$ = $2; }
  | '{' stmts stmt '}'              { $$ = $2; ae_vec_push(A, &$$, $3); }
  ;

stmts:
    %empty                          { $$ = (ae_vec){0}; }
  | stmts EOL                       { $$ = $1; }
  | stmts stmt EOL                  { $$ = $1; ae_vec_push(A, &$$, $2); }
  | stmts error EOL                 { $$ = $1; yyerrok; }
  ;

stmt:
    IDENT '=' expr                  { $$ = let_stmt(A, @1, $1, @1, $3, false); }
  | LATENT IDENT '=' expr           { $$ = let_stmt(A, @1, $2, @2, $4, true); }
  | IDENT                           { $$ = body_stmt(A, ST_SETTING, @1, $1, @1); }
  | IDENT args                      { $$ = body_stmt(A, ST_SETTING, @1, $1, @1); $$->values = $2; }
  | INPUT IDENT ':' type            { $$ = body_stmt(A, ST_INPUT, @1, $2, @2); $$->type = $4; }
  | TARGET IDENT ':' type           { $$ = body_stmt(A, ST_TARGET, @1, $2, @2); $$->type = $4; }
  | BLOCK IDENT '(' params_opt ')' '=' expr
      { $$ = body_stmt(A, ST_BLOCK, @1, $2, @2); $$->params = $4;
        ae_stmt *r = body_stmt(A, ST_RETURN, @7, NULL, @7); r->value = $7; $$->body = vec1(A, r); }
  | BLOCK IDENT '(' params_opt ')' body
      { $$ = body_stmt(A, ST_BLOCK, @1, $2, @2); $$->params = $4; $$->body = $6; $$->open_loc = @6; }
  | RETURN expr                     { $$ = body_stmt(A, ST_RETURN, @1, NULL, @1); $$->value = $2; }
  | DATA body                       { $$ = body_stmt(A, ST_DATA, @1, "data", @1); $$->body = $2; $$->open_loc = @2; }
  ;

params_opt: %empty { $$ = (ae_vec){0}; } | params ;
params:
    param                           { $$ = vec1(A, $1); }
  | params ',' param                { $$ = $1; ae_vec_push(A, &$$, $3); }
  ;
param:
    IDENT                           { $$ = ae_alloc(A, sizeof *$$); $$->name = $1; $$->loc = @1; }
  | IDENT '=' expr                  { $$ = ae_alloc(A, sizeof *$$); $$->name = $1; $$->loc = @1; $$->deflt = $3; }
  ;

type:
    IDENT dims_opt classes_opt ignore_opt
      { $$ = ae_alloc(A, sizeof *$$); $$->elem = $1; $$->loc = @1; $$->dims = $2;
        $$->has_dims = @2.len > 1 || $2.len > 0; $$->classes = $3; $$->ignore = $4; }
  ;

dims_opt:
    %empty                          { $$ = (ae_vec){0}; @$.len = 0; }
  | '[' ']'                         { $$ = (ae_vec){0}; }
  | '[' dims ']'                    { $$ = $2; }
  ;
dims:
    expr                            { $$ = vec1(A, $1); }
  | dims ',' expr                   { $$ = $1; ae_vec_push(A, &$$, $3); }
  ;

classes_opt:
    %empty                          { $$ = (ae_vec){0}; }
  | '{' class_list '}'              { $$ = $2; }
  | '{' class_list ',' '}'          { $$ = $2; }
  | '{' class_list EOL '}'          { $$ = $2; }   /* the list may close on its own line */
  ;
class_list:
    class_item                      { $$ = vec1(A, $1); }
  | class_list ',' class_item       { $$ = $1; ae_vec_push(A, &$$, $3); }
  ;
class_item:
    NUMBER IDENT                    { $$ = ae_alloc(A, sizeof *$$); $$->name = $2; $$->loc = @$;
                                      if ($1.is_int && $1.value <= 255) $$->id = (int)$1.value;
                                      else ae_error(pr->diag, @1, "class label must be an integer from 0 to 255"); }
  ;

ignore_opt:
    %empty                          { $$ = NULL; }
  | IGNORE expr                     { $$ = $2; }
  ;

expr:
    primary
  | expr PIPE pipe_rhs              { $$ = ae_pipe(A, $1, $3, @2); }
  | expr '+' expr                   { $$ = ae_expr_new(A, EX_BINARY, @2); $$->op = '+'; $$->lhs = $1; $$->rhs = $3; }
  | expr '-' expr                   { $$ = ae_expr_new(A, EX_BINARY, @2); $$->op = '-'; $$->lhs = $1; $$->rhs = $3; }
  | expr '*' expr                   { $$ = ae_expr_new(A, EX_BINARY, @2); $$->op = '*'; $$->lhs = $1; $$->rhs = $3; }
  | expr '/' expr                   { $$ = ae_expr_new(A, EX_BINARY, @2); $$->op = '/'; $$->lhs = $1; $$->rhs = $3; }
  | '-' expr %prec NEG              { $$ = ae_expr_new(A, EX_NEG, @1); $$->lhs = $2; }
  ;

pipe_rhs:
    IDENT                           { $$ = ae_call_new(A, @1, $1, (ae_vec){0}); }
  | IDENT '(' args_opt ')'          { $$ = ae_call_new(A, @1, $1, $3); $$->loc = @$; }
  ;

primary:
    NUMBER                          { $$ = ae_expr_new(A, EX_NUMBER, @1); $$->num = $1.value; $$->is_int = $1.is_int; }
  | STRING                          { $$ = ae_expr_new(A, EX_STRING, @1); $$->str = $1; }
  | IDENT                           { $$ = ae_expr_new(A, EX_NAME, @1); $$->str = $1; }
  | IDENT '(' args_opt ')'          { $$ = ae_call_new(A, @$, $1, $3); $$->name_loc = @1; }
  | '(' expr ')'                    { $$ = $2; }
  | '[' ']'                         { $$ = ae_expr_new(A, EX_LIST, @$); }
  | '[' list_items ']'              { $$ = ae_expr_new(A, EX_LIST, @$); $$->args = $2; }
  ;

list_items:
    expr                            { $$ = vec1(A, $1); }
  | list_items ',' expr             { $$ = $1; ae_vec_push(A, &$$, $3); }
  ;

args_opt: %empty { $$ = (ae_vec){0}; } | args ;
args:
    arg                             { $$ = vec1(A, $1); }
  | args ',' arg                    { $$ = $1; ae_vec_push(A, &$$, $3); }
  ;
arg:
    expr
  | IDENT '=' expr                  { $$ = ae_expr_new(A, EX_KWARG, @1); $$->str = $1; $$->lhs = $3; }
  ;

%%

static ae_stmt *let_stmt(ae_arena *a, YYLTYPE loc, char *name, YYLTYPE name_loc, ae_expr *value, bool latent) {
  ae_stmt *s = ae_stmt_new(a, ST_LET, loc);
  s->name = name; s->name_loc = name_loc; s->value = value; s->latent = latent;
  return s;
}

static ae_stmt *body_stmt(ae_arena *a, ae_stmt_kind kind, YYLTYPE loc, char *name, YYLTYPE name_loc) {
  ae_stmt *s = ae_stmt_new(a, kind, loc);
  s->name = name; s->name_loc = name_loc;
  return s;
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, ae_parser *pr, const char *msg) {
  if (strcmp(msg, "memory exhausted") == 0)   /* Bison's stack limit: brackets or blocks nested thousands deep */
    ae_error(pr->diag, *loc, "nested too deeply for the parser; the check stops here");
  else ae_error(pr->diag, *loc, "%s", msg);
}

/* How a token is named in a message: its text where that is clearer than its kind. */
static const char *token_text(ae_parser *pr, yysymbol_kind_t sym, YYLTYPE loc) {
  if (sym == YYSYMBOL_IDENT || sym == YYSYMBOL_NUMBER || sym == YYSYMBOL_INVALID) {
    const char *p = loc.src->text;
    for (int line = 1; line < loc.line; p++) if (*p == '\n') line++;
    p += loc.col - 1;
    int n = loc.len > 30 ? 30 : loc.len;
    if (sym == YYSYMBOL_INVALID) {
      unsigned char c = (unsigned char)*p;
      return c >= 32 && c < 127 ? ae_sprintf(pr->arena, "character '%c'", c)
                                : ae_sprintf(pr->arena, "byte 0x%02x", c);
    }
    return ae_sprintf(pr->arena, "%s '%.*s'", sym == YYSYMBOL_IDENT ? "name" : "number", n, p);
  }
  return yysymbol_name(sym);
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ae_parser *pr) {
  ae_lexer *lx = pr->lexer;
  YYLTYPE loc = *yypcontext_location(ctx);
  yysymbol_kind_t got = yypcontext_token(ctx);
  yysymbol_kind_t expected[6];
  int n = yypcontext_expected_tokens(ctx, expected, 6);
  if (n < 0 || n > 5) n = 0;
  char want[256] = "";
  for (int i = 0; i < n; i++) {
    size_t used = strlen(want);
    snprintf(want + used, sizeof want - used, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
             yysymbol_name(expected[i]));
  }
  if (loc.line == lx->bad_string_line) {   /* the unclosed string was reported */
    ae_lexer_forget_brackets(lx);
    return 0;
  }
  /* An unclosed bracket shows itself on a later line: blame the bracket. */
  if (lx->depth > 0 && lx->depth <= AE_LEX_MAX_OPEN && lx->open[lx->depth - 1].line < loc.line) {
    ae_loc open = lx->open[lx->depth - 1];
    char c = lx->open_char[lx->depth - 1];
    ae_error(pr->diag, open, "'%c' is never closed", c);
    ae_hint(pr->diag, "add '%c' at the end of line %d", c == '(' ? ')' : ']', open.line);
  } else if (got == YYSYMBOL_YYEOF && lx->braces > 0) {
    ae_loc open = lx->brace[(lx->braces <= AE_LEX_MAX_OPEN ? lx->braces : AE_LEX_MAX_OPEN) - 1];
    ae_error(pr->diag, loc, "unexpected end of file: expected '}'");
    if (lx->misindented_by) {
      ae_note_at(pr->diag, lx->misindented, "this '{' is probably the one not closed");
      ae_hint(pr->diag, "the '}' on line %d is indented as if it closed the '{' of line %d",
              lx->misindented_by, open.line);
    } else ae_note_at(pr->diag, open, "to close the '{' opened here");
  } else if (!pr->file->has_model && lx->braces == 0 && n > 0 && strstr(want, "model")) {
    if (!lx->outside_model) {
      ae_error(pr->diag, loc, "%s outside a model", token_text(pr, got, loc));
      ae_hint(pr->diag, "a spec is: imports, then model NAME { ... } holding everything else");
    }
    lx->outside_model = true;
  } else if (got == YYSYMBOL_EOL && n > 0) {
    ae_error(pr->diag, loc, "statement ends too early: expected %s", want);
  } else if (n > 0) {
    ae_error(pr->diag, loc, "unexpected %s, expected %s", token_text(pr, got, loc), want);
  } else {
    ae_error(pr->diag, loc, "unexpected %s", token_text(pr, got, loc));
  }
  if (got == YYSYMBOL_IDENT && n > 0 && strstr(want, "'='") && lx->braces > 0)
    ae_hint(pr->diag, "a value is bound with '=': name = layer(...)");
  if (got == YYSYMBOL_INVALID && loc.src->text[lx->pos - 1] == ';')
    ae_hint(pr->diag, "a statement ends at the end of its line; no ';' is needed");
  ae_lexer_forget_brackets(lx);
  return 0;
}

ae_file *ae_parse(ae_arena *a, ae_diag *d, const ae_source *src) {
  ae_file *file = ae_alloc(a, sizeof *file);
  file->src = src;
  ae_lexer lx = { .arena = a, .diag = d, .src = src, .line = 1, .col = 1 };
  ae_parser pr = { a, d, file, &lx };
  yyscan_t scanner;
  if (yylex_init_extra(&lx, &scanner)) { ae_error_noloc(d, src->path, "cannot start the scanner"); return file; }
  YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
  yydebug = getenv("AEC_PARSE_TRACE") != NULL;
  int before = d->errors;
  int rc = yyparse(scanner, &pr);
  if (rc == 2 && d->errors == before) ae_error_noloc(d, src->path, "nesting too deep for the parser");
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  return file;
}
