/* aec.h - the map of the compiler: every struct and function that crosses a file
 * boundary, in banners named for the file that owns them. The pipeline is
 * lexer.l -> parser.y -> ast.c -> sema.c (+ ops.c) -> summary.c, driven by main.c. */
#ifndef AEC_H
#define AEC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AE_MAX_RANK 3        /* per-example tensors: [n], [h, w] or [h, w, c] */
#define AE_MAX_ERRORS 50     /* a file with more errors stops here */
#define AE_MAX_NESTING 200   /* expressions and block calls nested deeper are refused */
#define AE_MAX_FILE_BYTES (4 << 20)
#define AE_MAX_DIM (1 << 20)

/* ===== arena.c: every compiler allocation lives in one arena per compilation ===== */
typedef struct ae_arena ae_arena;
ae_arena *ae_arena_new(void);
void ae_arena_free(ae_arena *a);
void *ae_alloc(ae_arena *a, size_t size);           /* zeroed; aborts on out of memory */
char *ae_strndup(ae_arena *a, const char *s, size_t n);
char *ae_strdup(ae_arena *a, const char *s);
char *ae_sprintf(ae_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Growable array of pointers, allocated in an arena. */
typedef struct { void **items; int len, cap; } ae_vec;
void ae_vec_push(ae_arena *a, ae_vec *v, void *item);

/* ===== diag.c: one diagnostic format for every stage ===== */
typedef struct {
  char *path;                /* as the user named it */
  char *text;                /* whole file, NUL-terminated (may contain other NULs) */
  size_t len;
} ae_source;

typedef struct {
  const ae_source *src;
  int line, col;             /* 1-based */
  int len;                   /* columns underlined, at least 1 */
} ae_loc;

typedef struct {
  FILE *out;                 /* where diagnostics go (stderr, or a memstream in tests) */
  int errors, warnings;
  bool color;
} ae_diag;

void ae_error(ae_diag *d, ae_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ae_warning(ae_diag *d, ae_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A hint or note printed under the last diagnostic, without a source line. */
void ae_hint(ae_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ae_note_at(ae_diag *d, ae_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ae_error_noloc(ae_diag *d, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool ae_too_many_errors(const ae_diag *d);
ae_loc ae_loc_span(ae_loc from, ae_loc to);     /* from's start to to's end, same line */
/* Reads a whole file into src; reports a missing, unreadable or oversize file. */
bool ae_source_read(ae_arena *a, ae_diag *d, const char *path, ae_source *src, ae_loc *from);
/* Creates the folder dir and the folders above it that are missing (as mkdir -p); false with
 * errno set when one cannot be made. */
bool ae_make_dir(const char *dir);
const char *ae_closest(const char *word, const char *const *cands, int n);  /* did-you-mean */

/* ===== ast.c: the syntax tree built by the parser's actions ===== */
typedef enum {
  EX_NUMBER, EX_STRING, EX_NAME, EX_CALL, EX_LIST, EX_BINARY, EX_NEG, EX_KWARG
} ae_expr_kind;

typedef struct ae_expr ae_expr;
struct ae_expr {
  ae_expr_kind kind;
  ae_loc loc;
  double num;                /* EX_NUMBER */
  bool is_int;               /* EX_NUMBER written without '.' or exponent */
  char *str;                 /* EX_STRING text, EX_NAME / EX_CALL / EX_KWARG name */
  ae_loc name_loc;           /* EX_CALL: the callee's name */
  char op;                   /* EX_BINARY: + - * / */
  ae_expr *lhs, *rhs;        /* EX_BINARY, EX_NEG (lhs), EX_KWARG (lhs = value) */
  ae_vec args;               /* EX_CALL arguments, EX_LIST items (ae_expr*) */
  bool piped;                /* EX_CALL whose first argument came through |> */
};

typedef enum {
  ST_LET, ST_SETTING, ST_INPUT, ST_TARGET, ST_BLOCK, ST_RETURN, ST_DATA
} ae_stmt_kind;

typedef struct {
  int id;                    /* label value in the data */
  char *name;
  ae_loc loc;
} ae_class_decl;

typedef struct {
  char *elem;                /* f32, u8, classes ... */
  ae_loc loc;
  ae_vec dims;               /* ae_expr* */
  bool has_dims;
  ae_vec classes;            /* ae_class_decl* */
  ae_expr *ignore;           /* ignore N, or NULL */
} ae_type;

typedef struct {
  char *name;
  ae_loc loc;
  ae_expr *deflt;            /* default value, or NULL */
} ae_param_decl;

typedef struct ae_stmt ae_stmt;
struct ae_stmt {
  ae_stmt_kind kind;
  ae_loc loc;                /* the whole statement's start */
  char *name;                /* LET/INPUT/TARGET/BLOCK name, SETTING keyword */
  ae_loc name_loc;
  bool latent;               /* LET marked 'latent' */
  ae_expr *value;            /* LET, RETURN */
  ae_vec values;             /* SETTING: comma-separated expressions */
  ae_type *type;             /* INPUT, TARGET */
  ae_vec params;             /* BLOCK: ae_param_decl* */
  ae_vec body;               /* BLOCK, DATA: ae_stmt* */
  ae_loc open_loc;           /* BLOCK, DATA: where '{' opened */
};

typedef struct {
  char *block;               /* the imported block's name */
  char *path;                /* the spec it comes from, relative to the importing file */
  ae_loc loc, path_loc;
  ae_vec opts;               /* ae_stmt* of kind ST_SETTING: weights "ckpt", frozen, trainable */
} ae_import;

typedef struct {
  const ae_source *src;
  ae_vec imports;            /* ae_import* */
  char *name;                /* model name, NULL if the parse failed before it */
  ae_loc name_loc, open_loc;
  ae_vec stmts;              /* ae_stmt* */
  bool has_model;
} ae_file;

ae_expr *ae_expr_new(ae_arena *a, ae_expr_kind kind, ae_loc loc);
ae_expr *ae_call_new(ae_arena *a, ae_loc loc, char *name, ae_vec args);
ae_expr *ae_pipe(ae_arena *a, ae_expr *lhs, ae_expr *rhs, ae_loc loc);
ae_stmt *ae_stmt_new(ae_arena *a, ae_stmt_kind kind, ae_loc loc);

/* ===== parser.y + lexer.l ===== */
/* Parses one source file; reports every syntax error through d. Never NULL. */
ae_file *ae_parse(ae_arena *a, ae_diag *d, const ae_source *src);

/* ===== ops.c: the built-in layers, activations, losses and their rules ===== */
typedef enum {
  OP_INPUT, OP_TARGET,
  OP_DENSE, OP_CONV, OP_CONV_T, OP_MAXPOOL, OP_AVGPOOL, OP_UPSAMPLE,
  OP_FLATTEN, OP_RESHAPE, OP_CONCAT, OP_ADD, OP_DROPOUT, OP_BATCHNORM,
  OP_NOISE, OP_SAMPLE,
  OP_RELU, OP_LEAKY_RELU, OP_ELU, OP_SIGMOID, OP_TANH, OP_SOFTMAX, OP_LINEAR,
  OP__COUNT
} ae_op;

typedef enum {
  LOSS_MSE, LOSS_BCE, LOSS_SOFTMAX_XENT, LOSS_L1, LOSS_KL_SPARSITY, LOSS_KL_NORMAL, LOSS_L2,
  LOSS_DICE, LOSS_JACCARD, LOSS_FOCAL,   /* segmentation losses on logits and a class target */
  LOSS__COUNT
} ae_loss_kind;

typedef struct { int rank; int d[AE_MAX_RANK]; } ae_shape;

long ae_shape_elems(ae_shape s);
/* "28x28x1" into buf (at least 48 bytes). */
const char *ae_shape_str(ae_shape s, char *buf);

typedef struct { ae_loc loc; const char *block; } ae_call_site;   /* a block's expansion */

typedef struct ae_node ae_node;
struct ae_node {
  int id;
  ae_op op;
  ae_loc loc;                /* the call in the spec that made it */
  const ae_call_site *via;   /* the block calls that expanded into it, outermost first */
  int n_via;
  char *name;                /* parameter layers: "e1.1"; others: binding name or NULL */
  ae_vec in;                 /* ae_node* */
  ae_shape shape;            /* per example */
  /* attributes */
  int units;                 /* dense units, conv filters */
  int k, stride;             /* conv, conv_transpose, pools */
  bool pad_same;
  int factor;                /* upsample */
  bool bilinear;             /* upsample mode=bilinear (else nearest) */
  bool no_bias;              /* dense, conv, conv_transpose with bias=false */
  double alpha;              /* leaky_relu, elu */
  double rate;               /* dropout */
  double stddev, lo, hi;     /* gaussian_noise */
  double momentum, eps;      /* batchnorm */
  /* parameters */
  long n_params;
  bool frozen;
  const char *init_from;     /* checkpoint path that initialises this layer */
  const char *init_name;     /* this layer's name in that checkpoint */
  double flops;              /* forward, per example: 2 per multiply-add */
  bool is_latent;
};

typedef struct {
  ae_loss_kind kind;
  ae_loc loc;
  double weight;
  ae_node *a, *b;            /* operands (b NULL for l1, kl_sparsity, l2) */
  bool reduce_sum;           /* sum over elements per example, mean over batch */
  double rho;                /* kl_sparsity */
  double smooth;             /* dice, jaccard */
  double gamma;              /* focal */
  int n_weights;             /* class weights of the class losses (0: none) */
  double *class_weights;
  bool auto_weights;         /* weights=auto */
} ae_loss_term;

typedef enum { TARGET_NONE, TARGET_IMAGE, TARGET_CLASSES } ae_target_kind;

/* ===== settings.c: the named settings, one table each (names and runtime enums) ===== */
typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT__COUNT } ae_opt_kind;
typedef enum { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE, SCHED_EXPONENTIAL, SCHED_PLATEAU, SCHED__COUNT } ae_sched_kind;
typedef enum {
  SOURCE_IDX, SOURCE_GEOTIFF, SOURCE_SYNTHETIC_LANDCOVER, SOURCE_IMAGE_PAIRS, SOURCE_IMAGES, SOURCE__COUNT
} ae_source_kind;
#define AE_MAX_SETTING_NAMES 8
typedef struct {
  const char *what;                                 /* "optimizer": for messages */
  int n;
  const char *names[AE_MAX_SETTING_NAMES];          /* as the spec writes them, in enum order */
  const char *c_enums[AE_MAX_SETTING_NAMES];        /* the runtime's constant for each */
} ae_setting_table;
extern const ae_setting_table ae_optimizers, ae_schedules, ae_sources;
int ae_setting_find(const ae_setting_table *t, const char *word);   /* its enum, or -1 */

typedef struct {
  bool given;                /* the spec names an optimizer (else adam at 1e-3) */
  ae_opt_kind kind;
  double lr, momentum, beta1, beta2, eps, weight_decay;
  ae_sched_kind schedule;
  double gamma, min_lr;
  int every;
  bool nesterov;             /* sgd */
  double factor;             /* plateau */
  int patience;              /* plateau */
  /* the model's steering settings: warmup, clip, accumulate, stop */
  int warmup_steps, warmup_epochs;
  double clip;               /* global gradient norm; 0: no clipping */
  int accumulate;            /* batches per optimizer step, 1 by default */
  int stop_patience;         /* early stopping; 0: off */
  double stop_min_delta;
} ae_optimizer;

typedef struct {
  bool source_given;         /* the data section names a source */
  ae_source_kind source;
  ae_loc source_loc;
  ae_vec source_args;        /* ae_expr* kwargs as written, checked in sema */
  char *dir, *train, *train_labels, *test, *test_labels, *label_layer;
  ae_vec layers;             /* char* */
  int patch, patches_per_tile, tiles, tile_size;
  double validation;
  double scale, offset;
  bool standardize;
  double shift, rotate, zoom;
  bool flip_h, flip_v;
} ae_data;

typedef struct { const char *block, *prefix; } ae_block_instance;

/* The checked model: every value a node with a fixed shape (the graph IR). */
typedef struct {
  char *name;
  const ae_source *src;
  ae_loc loc;
  int batch, epochs;
  ae_node *input, *target;
  char *input_elem;
  ae_target_kind target_kind;
  int n_classes, ignore_label;
  int class_ids[64];
  char *class_names[64];
  ae_vec nodes;              /* ae_node*, topological order */
  ae_vec losses;             /* ae_loss_term* */
  ae_node *output, *latent;
  char *latent_name;         /* the binding marked 'latent' */
  ae_vec instances;          /* ae_block_instance*: where each block was expanded */
  ae_optimizer opt;
  ae_data data;
} ae_model;

/* ===== sema.c: names, blocks, shapes, types ===== */
/* Checks a parsed file (loading its imports); NULL when there were errors. */
ae_model *ae_check(ae_arena *a, ae_diag *d, ae_file *f, int depth);
/* Reads, parses and checks one spec file. */
ae_model *ae_load_spec(ae_arena *a, ae_diag *d, const char *path);

/* ===== ops.c: values that expressions evaluate to, and the built-in layers ===== */
typedef enum { V_NUM, V_STR, V_WORD, V_LIST, V_TENSOR, V_LOSS, V_CALL } ae_value_kind;

typedef struct {
  ae_value_kind kind;
  ae_loc loc;
  double num;                /* V_NUM */
  bool is_int;
  const char *str;           /* V_STR text, V_WORD name (an unbound name such as same) */
  ae_node *node;             /* V_TENSOR */
  ae_vec items;              /* V_LIST: ae_value*; V_LOSS: ae_loss_term* */
  const ae_expr *call;       /* V_CALL: a configuration call such as cosine(min_lr=0) */
} ae_value;

/* What sema hands to ops.c to build one layer node. */
typedef struct {
  ae_arena *arena;
  ae_diag *diag;
  ae_model *model;
  const char *name;          /* parameter layers: the name sema chose */
  bool frozen;
  const char *init_from, *init_name;
} ae_layer_ctx;

/* The kernel an op becomes when it is neither fused into another nor a view. */
typedef enum {
  K_CONV, K_CONV_T, K_DENSE, K_POOL, K_UPSAMPLE, K_CONCAT, K_ADD, K_ACT, K_SOFTMAX,
  K_DROPOUT, K_NOISE, K_SAMPLE, K_BATCHNORM
} ae_kernel_kind;

/* The op registry (ops.c): one row per op, with everything the stages need to know of
 * it, so that no stage switches on the op itself. */
enum {
  AE_OP_ACTIVATION = 1 << 0,   /* elementwise activation (relu ... linear) */
  AE_OP_FUSES_ACT = 1 << 1,    /* an activation after it joins its kernel's epilogue */
  AE_OP_VIEW = 1 << 2,         /* a view of its input's buffer: no code (flatten, reshape, linear) */
  AE_OP_FOLDABLE = 1 << 3,     /* folded into a conv's reads when only convs use it (nearest upsample, concat) */
};
typedef enum { WEIGHTS_NONE, WEIGHTS_DENSE, WEIGHTS_CONV, WEIGHTS_CONV_T, WEIGHTS_BATCHNORM } ae_weights;
/* How its kernel's backward expands into steps (steps.c). */
typedef enum {
  BACKWARD_WHOLE,              /* one step (pooling, upsample, softmax, dropout, ...) */
  BACKWARD_LAYER,              /* the epilogue's derivative, then bias, weight and input gradients */
  BACKWARD_NORM,               /* the epilogue's derivative, then the rest in one step */
} ae_backward;
typedef struct {
  const char *name;            /* as a spec calls it */
  bool callable;               /* false for input and target, which are declared */
  const char *args[6];         /* argument names in positional order */
  int required;                /* how many of them must be given */
  bool variadic;               /* concat, add: any number of tensors */
  unsigned traits;             /* AE_OP_* */
  ae_kernel_kind kernel;
  ae_weights weights;          /* its trainable tensors' layout (ir.c); NONE: no parameters */
  const char *act_enum;        /* an activation: the runtime's AERT_ACT_* as an epilogue */
  const char *graph_op;        /* its op in the inference graph the exporters read (aert_layer) */
  ae_backward backward;        /* its backward steps */
} ae_op_info;
const ae_op_info *ae_op_info_of(ae_op op);

const char *ae_op_name(ae_op op);
const char *ae_op_desc(const ae_node *n, char *buf);   /* "conv 3x3 /2": a layer in a table */
bool ae_op_is_activation(ae_op op);
bool ae_op_has_params(ae_op op);
/* softmax_xent, dice, jaccard, focal: logits against the declared class target. */
bool ae_loss_on_classes(ae_loss_kind k);
bool ae_is_layer_name(const char *name);
int ae_layer_names(const char **out, int cap);   /* every built-in layer's name; the count */
const char *ae_loss_name(ae_loss_kind k);
/* Builds the node for layer `call` with evaluated arguments (positional then keyword:
 * kw[i] names args[i] or is NULL). NULL after reporting an error. */
ae_node *ae_make_layer(ae_layer_ctx *c, const ae_expr *call, ae_value **args, const char **kw, int n);
/* Hints that say which layers made n's spatial size what it is. */
void ae_explain_size(ae_diag *d, const ae_node *n, const char *what);
/* Checks an argument list against names; fills out[] (NULL where absent). */
bool ae_bind_args(ae_diag *d, const ae_expr *call, const char *const *names, int n_names,
                  ae_value **args, const char **kw, int n, ae_value **out);
/* Reads a value as an integer in [lo, hi] / a number; reports an error naming `what`. */
bool ae_value_int(ae_diag *d, const ae_value *v, const char *what, long lo, long hi, int *out);
bool ae_value_num(ae_diag *d, const ae_value *v, const char *what, double *out);
const char *ae_value_desc(const ae_value *v, char *buf, size_t cap);

/* ===== summary.c ===== */
typedef struct {
  long params_trainable, params_frozen;
  double flops_forward;      /* per example */
  double flops_train_step;   /* whole batch, forward + backward */
  double bytes_params, bytes_grads, bytes_optimizer, bytes_activations;
} ae_totals;

ae_totals ae_model_totals(const ae_model *m);
/* Numbers as the summary prints them, into buf (at least 64 bytes): "452.98M", "32.0 MiB",
 * "3,472". */
const char *ae_fmt_si(double x, char *buf);
const char *ae_fmt_bytes(double x, char *buf);
const char *ae_fmt_grouped(long x, char *buf);
void ae_print_summary(FILE *out, const ae_model *m);
void ae_print_summary_json(FILE *out, const ae_model *m);

/* ===== ir.c: the program the back end works on ===== */
typedef enum { INIT_ZEROS, INIT_ONES, INIT_HE_NORMAL, INIT_GLOROT_UNIFORM } ae_init;  /* = aert_init */

typedef struct {
  const char *name;          /* "e1.1.w": the layer's name and the tensor's role */
  const ae_node *node;
  int rank, shape[4];
  long size, offset;         /* floats, in the parameter arena */
  ae_init init;
  int fan_in, fan_out;
  bool frozen;               /* never updated (imported frozen, or a running statistic) */
  bool is_weight;            /* a weight matrix or kernel: what l2 decays */
  const char *init_from, *init_name;
} ae_tensor;

/* How a kernel reads one input: a materialised value, upsampled by factor, placed
 * at channel offset ch_off of the (possibly concatenated) input it sees. */
typedef struct { ae_node *node; int factor, ch_off; } ae_view;

/* Direct convolutions (aert_conv_fwd in runtime/aert_kernels.h) take output channels in
 * whole half vectors (AE_SLIDE_UNIT: 8 floats, a whole vector under AVX2, half of one
 * under AVX-512), or fewer than a vector over whole vectors of input channels (narrow: a
 * multiple of 16 floats serves AVX-512, AVX2 and doubles); their register tiles read up
 * to 24 pixels past the last image. */
#define AE_SLIDE_LANES 16
#define AE_SLIDE_UNIT 8
#define AE_SLIDE_SLACK 24

/* How the CPU target runs a conv (sched_cpu.c), decided once and read by the memory
 * planner, the emitter, dump and the report. */
typedef enum {
  CONV_GEMM_1X1,             /* 1x1, stride 1, one plain source: one GEMM on the input */
  CONV_SLIDE,                /* direct register-tiled kernels on a padded copy (aert_conv_fwd) */
  CONV_IM2COL,               /* im2col + GEMM, chunk images at a time */
  CONV_UP2,                  /* 3x3 over 2x upsampled views: four 2x2 phases of the small image */
} ae_conv_algo;
typedef struct {
  ae_conv_algo algo;
  int chunk;                 /* images per GEMM */
  long col_floats;           /* the im2col buffer for one chunk; 0 for a 1x1 GEMM */
  int pchunk;                /* slide: images per padded copy */
  long pad_floats;           /* slide: the padded input (then, narrow, the gathered weights) */
  long dpad_floats;          /* slide: padded dy, flipped (by phase) weights, [phases,] for views dx of the stack */
  long weights_at;           /* slide, narrow: the gathered weights; up2: the phase weights */
  long flip_at;              /* slide: the flipped weights behind padded dy; up2: behind dy by phase */
  long dstack_at;            /* slide, up2: where dx of the stacked views starts behind them */
  long z_at;                 /* up2, forward: the phases' output behind the phase weights */
  long s_at;                 /* up2, backward: dy by phase behind the padded input */
  long dw2_at;               /* up2, backward: the phases' weight gradient behind their flipped weights */
  long mix_at;               /* up2 beside plain views: where their part starts in both buffers: */
  long xp_at, wp_at;         /* the plain views padded, their weights (the upsampled ones' at mix_at) */
  long dyp_at, wfp_at;       /* backward: dy padded, the plain weights flipped */
  long dwp_at, dsp_at;       /* backward: the plain weights' gradient, dx of the plain stack */
  bool wino, dwino, wdw;     /* slide, 3x3 stride 1, even sizes: forward (dx, dw) as Winograd F(2x2, 3x3) */
  bool store_act;            /* slide, direct in every build: the bias and a ReLU (or none) applied as the tiles store */
  bool in_place;             /* slide, narrow: the input read in place (one plain source at stride 1), no padded copy */
  long wino_at, dwino_at;    /* their transformed weights (16 x cin x cout), forward and backward */
  long wdw_at;               /* backward: the weight gradient's 16 x cin x cout products */
  bool pwino, pwdw;          /* up2: the phases (a 2x2 conv) as Winograd F(2x2, 2x2); their dw too */
  long pwino_at;             /* up2, forward: the phase weights transformed (9 x cin x 4 cout) */
  long pdwino_at, pwdw_at;   /* up2, backward: the flipped phase weights transformed; dw's products */
  long scratch_floats[2];    /* the working buffers forward and backward (0: none) */
} ae_conv_sched;

/* A live range in the arena: offset and size in floats, first and last step used. */
typedef struct { long off, size; int first, last; bool used; } ae_buffer;

typedef struct {
  int id;
  ae_kernel_kind kind;
  ae_node *node;             /* the op */
  ae_node *act;              /* activation fused into its epilogue, or NULL */
  ae_node *out;              /* whose value it writes: act when fused, else node */
  ae_vec src;                /* ae_view*: its inputs as it reads them */
  ae_tensor *w, *b, *rmean, *rvar;
  ae_buffer stats;           /* batch norm: mean and 1/std of the batch */
  ae_conv_sched conv;        /* conv: how the target runs it (sched_cpu.c) */
  ae_buffer scratch[2];      /* conv: its working buffers (padded copy, columns), forward and
                              * backward, each alive only while that kernel runs */
} ae_kernel;

/* The number format of the CUDA target's GEMM operands: fp32, or tensor cores with tf32 or
 * bf16 operands and fp32 sums (aec build --target cuda --precision). */
typedef enum { AE_FP32, AE_TF32, AE_BF16 } ae_precision;
extern const char *const ae_precision_names[3];   /* "fp32", "tf32", "bf16" */
/* Who runs the CUDA target's dense layers' GEMMs: model.cu's own kernels, or cuBLASLt with
 * its epilogues (aec build --target cuda --gemm cublaslt; nvcc builds only). */
typedef enum { AE_GEMM_KERNELS, AE_GEMM_CUBLASLT } ae_gemm_lib;
extern const char *const ae_gemm_names[2];   /* "kernels", "cublaslt" */

typedef struct {
  ae_model *m;
  int batch;                 /* per process */
  int ranks;                 /* data-parallel ranks it is built for (aec build --ranks): the
                              * global batch is batch * ranks; 1 otherwise */
  ae_precision precision;    /* the CUDA target's GEMMs (aec build --precision); AE_FP32 otherwise */
  ae_gemm_lib gemm;          /* who runs the CUDA target's dense GEMMs (aec build --gemm) */
  ae_vec params;             /* ae_tensor* */
  long param_floats;
  ae_vec kernels;            /* ae_kernel*, in forward order */
  int n_nodes;
  int *uses;                 /* per node: consumers, counting losses, output and latent */
  ae_node **root;            /* per node: the node whose buffer holds its value; NULL if fused away */
  ae_kernel **producer;      /* per node: the kernel that writes it */
  bool *needs_grad;          /* per node: the loss gradient flows into its value */
  ae_buffer *val, *grad;     /* per root node */
  ae_buffer rowtmp;
  long arena_floats;
  ae_vec steps;              /* ae_step*: the forward and backward program, in order (steps.c) */
} ae_program;

ae_program *ae_lower(ae_arena *a, ae_model *m, int batch);   /* runs every stage below */
void ae_lower_params(ae_arena *a, ae_program *p);

/* ===== names.c ===== */
const char *ae_c_name(ae_arena *a, const char *name);         /* "e1.1.w" -> "e1_1_w" */
const char *ae_kernel_name(ae_arena *a, const ae_kernel *k);  /* "conv_e1_1" */

/* ===== fuse.c ===== */
void ae_fuse(ae_arena *a, ae_program *p);

/* ===== autodiff.c ===== */
void ae_autodiff(ae_program *p);
/* A value's gradient exists in the plan; a kernel has backward steps (a gradient reaches
 * its output: not the layers of a frozen imported block, nor anything before them). */
bool ae_value_has_grad(const ae_program *p, const ae_node *n);
bool ae_kernel_has_backward(const ae_program *p, const ae_kernel *k);

/* ===== steps.c: the program as the list of steps every target walks ===== */
/* Forward is one step per kernel and the loss. Backward zeroes the parameter gradients,
 * seeds the loss's gradient and runs the kernels in reverse, each expanded as its op's
 * registry row says: a layer with a weight matrix or kernel into its activation's
 * derivative, bias gradient, weight gradient and input gradient, which the step leaves
 * out when the weights are frozen or no gradient flows into its inputs; a batch norm into
 * the derivative and the rest in one; any other kernel into one step. A gradient buffer
 * is zeroed just before the first step that adds (+=) into it. The optimizer updates the
 * parameters last. The memory plan takes every buffer's life from the steps' reads and
 * writes; the emitters write the steps in this order. */
typedef enum {
  STEP_FORWARD,              /* a kernel's forward pass */
  STEP_LOSS,                 /* the loss terms, each logged apart */
  STEP_ZERO_PARAM_GRADS,     /* the whole gradient arena set to 0 */
  STEP_LOSS_GRAD,            /* the loss's gradient added into its operands' */
  STEP_ZERO,                 /* one gradient buffer set to 0 before its first += */
  STEP_ACT_GRAD,             /* dy times the fused activation's derivative, in place */
  STEP_BIAS_GRAD,            /* db += the sums of dy over pixels and images */
  STEP_WEIGHT_GRAD,          /* dW += from the sources and dy */
  STEP_INPUT_GRAD,           /* dx += of every source a gradient flows into */
  STEP_BACKWARD,             /* the whole backward of a kernel (pool, softmax, batch norm...) */
  STEP_OPTIMIZER,            /* the parameter update over the arenas (the runtime's on the CPU) */
} ae_step_kind;

typedef struct {
  ae_step_kind kind;
  int time;                  /* in the memory plan: forward kernel i at i, the loss at K,
                              * backward kernel i at 2K - i, the optimizer at 2K + 1 */
  const ae_kernel *k;        /* its kernel, or NULL */
  ae_buffer *buf;            /* STEP_ZERO: the gradient buffer */
  ae_vec reads, writes;      /* ae_buffer*: the arena buffers it reads and writes */
} ae_step;

void ae_build_steps(ae_arena *a, ae_program *p);
const char *ae_step_kind_name(ae_step_kind kind);   /* "weight_grad" */
/* The step of that kind of kernel k, or NULL when k has none (frozen weights: no
 * weight gradient). */
const ae_step *ae_kernel_step(const ae_program *p, const ae_kernel *k, ae_step_kind kind);

/* ===== sched_cpu.c: the CPU target's choices (conv algorithm, chunks, scratch) ===== */
/* Whether a slide conv's dx runs direct (input channels in whole half vectors; a stride
 * above 1 by phases, each a few taps: aert_conv_dx_phases), and the rows (or columns) of dy
 * padded for the phases: (k - 1) / s zeros before, then as many as the phases read. */
bool ae_slide_dx_direct(int tc, int k, int s);
int ae_dx_phase_span(int k, int s, int pad, int in, int out);
void ae_schedule_cpu(ae_program *p);

/* ===== memplan.c ===== */
void ae_plan_memory(ae_program *p);

/* Every buffer of the plan with a unique, stable name ("conv_e1_1.out", ".dout",
 * ".scratch_fwd", ".scratch_bwd", ".stats", "loss.rows"), a label for people ("e1",
 * "de1") and the C identifier model.c gives it ("e1", "d_e1"), in placement-independent
 * order: per kernel, then the loss's rows. */
typedef enum { BUF_VALUE, BUF_GRAD, BUF_SCRATCH, BUF_STATS } ae_buffer_kind;
typedef struct {
  const char *name, *label;
  const char *ident;         /* its C name in model.c: "e1", "d_e1", "conv_e1_1_scratch", unique */
  ae_buffer_kind kind;
  const ae_buffer *b;
  const ae_kernel *k;
} ae_named_buffer;
const ae_named_buffer *ae_plan_buffers(ae_arena *a, const ae_program *p, int *n);
/* What runs at step t of the plan (0 .. 2K + 1): "forward conv_e1_1", "loss", "backward
 * conv_e1_1", and last the time after the step, when the output and latent are kept. */
const char *ae_step_name(ae_arena *a, const ae_program *p, int t);

/* ===== cost.c: FLOPs and bytes of a kernel, for the generated code and the report ===== */
typedef struct { double flops[2], bytes[2]; } ae_cost;   /* [0] forward, [1] backward; per batch */
ae_cost ae_kernel_cost(const ae_program *p, const ae_kernel *k);

/* ===== json.c: reads the JSON files the report is given (profiles, manifests) ===== */
typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } ae_json_kind;
typedef struct ae_json {
  ae_json_kind kind;
  ae_loc loc;
  bool b;
  double num;
  const char *str;
  ae_vec items;              /* ARR: its values; OBJ: the values, keys[i] naming items[i] */
  ae_vec keys;               /* OBJ: char* */
} ae_json;
/* Parses a whole file; reports the first syntax error at its place and returns NULL. */
ae_json *ae_json_parse(ae_arena *a, ae_diag *d, const ae_source *src);
const ae_json *ae_json_get(const ae_json *obj, const char *key);   /* NULL: absent, or obj no object */
double ae_json_num(const ae_json *obj, const char *key, double deflt);
const char *ae_json_str(const ae_json *obj, const char *key);

/* ===== dump.c: every stage printable ===== */
bool ae_dump(FILE *out, ae_arena *a, const ae_program *p, const char *stage);

/* ===== report.c (+ report_mem.c, report_time.c, report_diff.c): `aec report` ===== */
typedef struct {
  const char *target;        /* "cpu" or "cuda": whose generated code the page shows */
  const char *profile_path;  /* a trainer's or the bench's profile JSON, or NULL */
  const char *diff_path;     /* an earlier build's manifest.json, or NULL */
  const char *out_dir;
} ae_report_opts;
/* Writes out_dir/index.html, one self-contained page; false after reporting why. */
bool ae_report(ae_arena *a, ae_diag *d, const ae_program *p, const char *spec_hash, const ae_report_opts *o);

/* What the parts of the page share. Per kernel arrays have K + 1 entries: the last is
 * the loss, which the generated code and the profile time like a kernel. */
typedef struct {
  ae_arena *a;
  FILE *o;
  const ae_program *p;
  const char *hash;          /* of the spec text */
  bool cuda;                 /* the page shows model.cu (--target cuda), else model.c */
  const char *code_file;     /* "model.c" or "model.cu" */
  int K;
  const char **kname;        /* "conv_e1_1" ... "loss" */
  ae_cost *cost;
  /* report_time.c: the profile */
  bool has_profile;
  const char *profile_path, *profile_warning, *cpu, *profile_source;
  double (*ms)[2];           /* ms per step, forward and backward; negative: not in the profile */
  double step_ms, optim_ms, peak_gflops, bandwidth_gbs;
  int profile_steps, threads;
  /* report_diff.c: the earlier manifest */
  const char *diff_path;
  const ae_json *old;        /* NULL without --diff */
  char *kmark;               /* per kernel: 0 unchanged, 'n' new, 'c' changed */
} ae_report_ctx;

void ae_html(FILE *o, const char *s);                      /* html.c: s with & < > " escaped */
bool ae_report_read_json(ae_arena *a, ae_diag *d, const char *path, const ae_json **out);   /* json.c */
bool ae_report_load_profile(ae_report_ctx *r, ae_diag *d, const char *path);
bool ae_report_load_diff(ae_report_ctx *r, ae_diag *d, const char *path);
void ae_report_memory(ae_report_ctx *r);                   /* section 3 */
void ae_report_time(ae_report_ctx *r);                     /* section 4 */
void ae_report_changes(ae_report_ctx *r);                  /* section 5 */
/* One kernel's measured time and the diff's mark, as rows of its facts table. */
void ae_report_kernel_time(ae_report_ctx *r, int k);
void ae_report_kernel_change(ae_report_ctx *r, int k);
/* The launch of a kernel as its target's manifest records it (grid, block, registers,
 * shared memory: a GPU target's), as rows of its facts table; nothing when absent. */
void ae_report_launch_rows(FILE *o, const ae_json *kernel_record);
/* A buffer against the earlier manifest: 0 unchanged (or no --diff), 'n' new, 'c' resized. */
char ae_report_buffer_mark(ae_report_ctx *r, const char *name, long floats);

/* ===== codegen_c.c ===== */
/* Writes model.c, model.h, manifest.json and model.mk into dir; false on an I/O error. */
bool ae_emit_c(ae_arena *a, const ae_program *p, const char *dir, const char *spec_text_hash);
/* model.c as text; kernel_at (K + 1 entries, or NULL) receives where each kernel's comment
 * starts and, last, where the loss starts. NULL when memory runs out. */
char *ae_emit_model_c_text(ae_arena *a, const ae_program *p, const char *spec_text_hash, long *kernel_at);
char *ae_emit_manifest_text(ae_arena *a, const ae_program *p, const char *spec_text_hash);
uint64_t ae_hash_text(const char *text, size_t len);

/* ===== emit_common.c: what every target writes the same way ===== */
/* The comment above a kernel: its op and name, the spec line through the block calls
 * that expanded into it, its inputs and output shapes, FLOPs and bytes per batch. */
void ae_emit_provenance(FILE *o, ae_arena *a, const ae_program *p, const ae_kernel *k);

/* ===== codegen_cuda.c: the CUDA target ===== */
/* Refuses, with an error at its spec line, every op and loss the CUDA target does not
 * have yet; true when the whole program is supported. */
bool ae_cuda_supported(ae_diag *d, const ae_program *p);
/* Writes model.cu into dir (beside the C target's files, whose descriptor it reuses);
 * false on an I/O error. */
bool ae_emit_cuda(ae_arena *a, const ae_program *p, const char *dir, const char *spec_text_hash);
/* model.cu as text; kernel_at (K + 1 entries, or NULL) gets where each kernel's text starts,
 * the loss's last. NULL when out of memory. */
char *ae_emit_model_cu_text(ae_arena *a, const ae_program *p, const char *spec_text_hash, long *kernel_at);

/* ===== launches.c: the CUDA target's launch table ===== */
/* Adds to dir/manifest.json (replacing an earlier build's) a "cuda" section: each kernel
 * model.cu launches, with its grid, block, static and dynamic shared memory and, from
 * ptxas_log (nvcc -Xptxas -v), its registers; without a log, "registers" says why
 * (unmeasured) and each kernel's is null. False on an I/O error. */
bool ae_cuda_manifest(ae_arena *a, const char *dir, const char *ptxas_log, const char *unmeasured);

#endif
