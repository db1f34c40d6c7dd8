/* cnn_api.h - the public C API of libcnn, the cnnlua tensor runtime.
 *
 * This file holds no preprocessor directives so that LuaJIT's ffi.cdef accepts it as-is.
 * C programs include "cnn.h", which includes the standard headers this one needs and then this one.
 *
 * A short example (C):
 *
 *   int64_t shape[4] = {1, 1, 3, 3};
 *   float img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
 *   cnn_tensor *x = cnn_from_data(4, shape, img);
 *   int64_t kshape[4] = {1, 1, 2, 2};
 *   float k[4] = {1, 0, 0, -1};
 *   cnn_tensor *w = cnn_from_data(4, kshape, k);
 *   cnn_conv2d_options opt = cnn_conv2d_defaults();
 *   cnn_tensor *y = cnn_conv2d(x, w, NULL, &opt);      // 1x1x2x2, every value -4
 *   if (!y) fprintf(stderr, "%s\n", cnn_last_error());
 *   cnn_release(y); cnn_release(w); cnn_release(x);
 *
 * Conventions
 *   - Every element is float32; images are NCHW.
 *   - Dimensions and indices are 0-based; a negative dimension counts from the end (-1 is the last).
 *   - A function returning cnn_tensor* returns a new reference (release it with cnn_release) or NULL
 *     on error; a function returning cnn_status returns CNN_OK or an error code. In both cases the
 *     error message, naming the operation and the shapes involved, is read with cnn_last_error().
 *     Errors are per thread. The runtime never exits or aborts the process.
 *   - Ops record the autograd graph when grad mode is on and an input requires grad.
 */

typedef struct cnn_tensor cnn_tensor;

typedef enum cnn_status {
    CNN_OK = 0,
    CNN_ERR_ARGUMENT = 1,    /* a bad option value or index */
    CNN_ERR_SHAPE = 2,       /* shapes that do not fit together */
    CNN_ERR_MEMORY = 3,      /* an allocation failed */
    CNN_ERR_IO = 4,          /* a file could not be read or written */
    CNN_ERR_FORMAT = 5,      /* a file's contents are corrupt or of the wrong kind */
    CNN_ERR_STATE = 6,       /* an operation that is not allowed now (e.g. backward twice) */
    CNN_ERR_INTERRUPTED = 7, /* cnn_interrupt() was called while the operation ran */
    CNN_ERR_NUMERIC = 8      /* NaN or infinity where a finite value is needed */
} cnn_status;

enum { CNN_MAX_DIMS = 8 };

/* ---- errors, interruption, threads, memory accounting ---------------------------------------- */
const char *cnn_last_error(void);
cnn_status cnn_last_status(void);
void cnn_clear_error(void);
/* Asks running long operations on any thread to stop with CNN_ERR_INTERRUPTED (signal-safe). */
void cnn_interrupt(void);
void cnn_clear_interrupt(void);
int cnn_interrupt_pending(void);
/* Deferred interruption, for work that must end at a clean point (a training step): while deferral
 * is on, the first cnn_interrupt() is only recorded (operations keep running) and
 * cnn_take_deferred_interrupt() reports and clears it; a second one interrupts at once as usual.
 * cnn_set_interrupt_deferral returns the previous setting. */
int cnn_set_interrupt_deferral(int on);
int cnn_take_deferred_interrupt(void);
void cnn_set_num_threads(int n);
int cnn_get_num_threads(void);
/* Bytes of tensor storage currently allocated by this process (all threads). */
int64_t cnn_memory_in_use(void);
/* Freed blocks are kept for reuse up to a limit, 256 MiB by default; a request may take a cached
 * block up to twice its size, and cnn_memory_in_use counts whole blocks. Without grad mode,
 * convolutions also keep what they derive from their weights (packed or transformed kernels, at most
 * 64 MiB) until a weight changes; cnn_empty_cache returns both to the system. */
int64_t cnn_memory_cached(void);
void cnn_set_cache_limit(int64_t bytes);
void cnn_empty_cache(void);
const char *cnn_version(void);

/* ---- random numbers --------------------------------------------------------------------------- */
/* One generator for the process; the same seed gives the same numbers on every machine. */
void cnn_manual_seed(uint64_t seed);
/* The whole generator state as 4 words, to save in checkpoints and restore exactly. */
void cnn_rng_get_state(uint64_t state[4]);
void cnn_rng_set_state(const uint64_t state[4]);
double cnn_rng_uniform(void);  /* [0, 1) */
double cnn_rng_normal(void);   /* mean 0, std 1 */

/* ---- creation and lifetime -------------------------------------------------------------------- */
cnn_tensor *cnn_empty(int ndim, const int64_t *shape);
cnn_tensor *cnn_zeros(int ndim, const int64_t *shape);
cnn_tensor *cnn_ones(int ndim, const int64_t *shape);
cnn_tensor *cnn_full(int ndim, const int64_t *shape, float value);
cnn_tensor *cnn_from_data(int ndim, const int64_t *shape, const float *data);
cnn_tensor *cnn_scalar(float value); /* a 0-dimensional tensor */
cnn_tensor *cnn_arange(double start, double end, double step); /* end excluded */
cnn_tensor *cnn_rand(int ndim, const int64_t *shape);  /* uniform [0, 1) */
cnn_tensor *cnn_randn(int ndim, const int64_t *shape); /* standard normal */
cnn_tensor *cnn_uniform(int ndim, const int64_t *shape, float low, float high);
void cnn_retain(cnn_tensor *t);
void cnn_release(cnn_tensor *t);

/* ---- metadata and raw access ------------------------------------------------------------------ */
int cnn_ndim(const cnn_tensor *t);
int64_t cnn_size(const cnn_tensor *t, int dim);
int64_t cnn_stride(const cnn_tensor *t, int dim);
int64_t cnn_numel(const cnn_tensor *t);
int cnn_is_contiguous(const cnn_tensor *t);
/* Pointer to the first element; elements are at data + sum(index[d] * stride[d]). Writing through it
 * is allowed: the runtime then treats every tensor as possibly changed (copies it derived from
 * weights are made again). */
float *cnn_data(cnn_tensor *t);
/* The same pointer, for reading only. */
const float *cnn_data_read(const cnn_tensor *t);
/* Copies the elements in row-major order into out (numel floats). */
cnn_status cnn_read(const cnn_tensor *t, float *out);
float cnn_item(const cnn_tensor *t); /* NaN and an error when numel != 1 */
/* "3x3" into buf; returns buf. */
const char *cnn_shape_string(const cnn_tensor *t, char *buf, size_t size);
/* Human-readable values, abbreviated when large, with a footer. Free with cnn_free_string. */
char *cnn_format(const cnn_tensor *t);
void cnn_free_string(char *s);

/* ---- views (share storage; differentiable) ---------------------------------------------------- */
cnn_tensor *cnn_view(cnn_tensor *t, int ndim, const int64_t *shape);    /* one entry may be -1 */
cnn_tensor *cnn_reshape(cnn_tensor *t, int ndim, const int64_t *shape); /* copies when not viewable */
cnn_tensor *cnn_transpose(cnn_tensor *t, int dim0, int dim1);
cnn_tensor *cnn_permute(cnn_tensor *t, int ndim, const int *dims);
cnn_tensor *cnn_narrow(cnn_tensor *t, int dim, int64_t start, int64_t length);
cnn_tensor *cnn_select(cnn_tensor *t, int dim, int64_t index);
cnn_tensor *cnn_expand(cnn_tensor *t, int ndim, const int64_t *shape);  /* -1 keeps a size */
cnn_tensor *cnn_squeeze(cnn_tensor *t, int dim);
cnn_tensor *cnn_unsqueeze(cnn_tensor *t, int dim);
cnn_tensor *cnn_flatten(cnn_tensor *t, int start_dim, int end_dim);
cnn_tensor *cnn_contiguous(cnn_tensor *t); /* t itself (retained) when already contiguous */
cnn_tensor *cnn_clone(cnn_tensor *t);
cnn_tensor *cnn_cat(int n, cnn_tensor *const *ts, int dim);

/* ---- in-place (refused on tensors that require grad while grad mode is on) -------------------- */
cnn_status cnn_fill_(cnn_tensor *t, float value);
cnn_status cnn_copy_(cnn_tensor *dst, const cnn_tensor *src); /* src broadcasts to dst */
/* dst += alpha * src (src broadcasts to dst) */
cnn_status cnn_add_(cnn_tensor *dst, const cnn_tensor *src, float alpha);
cnn_status cnn_mul_scalar_(cnn_tensor *t, float value);

/* ---- elementwise (NumPy broadcasting; differentiable) ----------------------------------------- */
cnn_tensor *cnn_add(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_sub(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_mul(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_div(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_pow(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_maximum(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_minimum(cnn_tensor *a, cnn_tensor *b);
cnn_tensor *cnn_add_scalar(cnn_tensor *a, float s);
cnn_tensor *cnn_mul_scalar(cnn_tensor *a, float s);
cnn_tensor *cnn_pow_scalar(cnn_tensor *a, float exponent);
cnn_tensor *cnn_rsub_scalar(float s, cnn_tensor *a); /* s - a */
cnn_tensor *cnn_rdiv_scalar(float s, cnn_tensor *a); /* s / a */
cnn_tensor *cnn_rpow_scalar(float base, cnn_tensor *a); /* base ^ a */

typedef enum cnn_unary_op {
    CNN_NEG, CNN_EXP, CNN_LOG, CNN_SQRT, CNN_ABS, CNN_RELU, CNN_SIGMOID, CNN_TANH,
    CNN_SIN, CNN_COS, CNN_SQUARE, CNN_RSQRT, CNN_SIGN, CNN_SOFTPLUS, CNN_SILU, CNN_GELU,
    CNN_FLOOR, CNN_CEIL, CNN_ROUND, CNN_RECIPROCAL, CNN_LOG1P, CNN_EXPM1
} cnn_unary_op;
cnn_tensor *cnn_unary(cnn_tensor *a, cnn_unary_op op);
cnn_tensor *cnn_leaky_relu(cnn_tensor *a, float negative_slope);
cnn_tensor *cnn_elu(cnn_tensor *a, float alpha);
cnn_tensor *cnn_clamp(cnn_tensor *a, float low, float high);
/* Elementwise comparisons give 1 or 0 (not differentiable). */
typedef enum cnn_compare_op { CNN_EQ, CNN_NE, CNN_LT, CNN_LE, CNN_GT, CNN_GE } cnn_compare_op;
cnn_tensor *cnn_compare(cnn_tensor *a, cnn_tensor *b, cnn_compare_op op);
/* where(cond != 0, a, b), broadcasting all three; differentiable in a and b. */
cnn_tensor *cnn_where(cnn_tensor *cond, cnn_tensor *a, cnn_tensor *b);

/* ---- reductions (dim = CNN_ALL_DIMS reduces everything to a 0-d tensor) ----------------------- */
enum { CNN_ALL_DIMS = -1000 };
cnn_tensor *cnn_sum(cnn_tensor *t, int dim, int keepdim);
cnn_tensor *cnn_mean(cnn_tensor *t, int dim, int keepdim);
/* Sample standard deviation (divides by n - correction). */
cnn_tensor *cnn_std(cnn_tensor *t, int dim, int keepdim, int correction);
cnn_tensor *cnn_var(cnn_tensor *t, int dim, int keepdim, int correction);
/* max/min along dim; indices (0-based, stored as float) into *indices when not NULL. */
cnn_tensor *cnn_max(cnn_tensor *t, int dim, int keepdim, cnn_tensor **indices);
cnn_tensor *cnn_min(cnn_tensor *t, int dim, int keepdim, cnn_tensor **indices);
cnn_tensor *cnn_argmax(cnn_tensor *t, int dim, int keepdim); /* 0-based indices as float */
cnn_tensor *cnn_argmin(cnn_tensor *t, int dim, int keepdim);
/* Sums t down to the given shape, undoing a broadcast. */
cnn_tensor *cnn_sum_to(cnn_tensor *t, int ndim, const int64_t *shape);

/* ---- linear algebra --------------------------------------------------------------------------- */
/* 1-d and 2-d as in NumPy; more dims: batched with broadcasting of the batch dims. */
cnn_tensor *cnn_matmul(cnn_tensor *a, cnn_tensor *b);
/* y = x W^T + b: x (N, in), weight (out, in), bias (out) or NULL. */
cnn_tensor *cnn_linear(cnn_tensor *x, cnn_tensor *weight, cnn_tensor *bias);

/* ---- convolution and pooling ------------------------------------------------------------------ */
typedef enum cnn_padding_mode { CNN_PAD_EXPLICIT = 0, CNN_PAD_SAME = 1, CNN_PAD_VALID = 2 } cnn_padding_mode;
typedef struct cnn_conv2d_options {
    int32_t stride[2];   /* (h, w) */
    int32_t padding[2];  /* (h, w); used with CNN_PAD_EXPLICIT */
    int32_t dilation[2];
    int32_t groups;
    int32_t padding_mode; /* a cnn_padding_mode */
    int32_t output_padding[2]; /* transposed convolution only */
} cnn_conv2d_options;
cnn_conv2d_options cnn_conv2d_defaults(void);
/* input (N, C, H, W), weight (O, C/groups, kH, kW), bias (O) or NULL -> (N, O, oH, oW) */
cnn_tensor *cnn_conv2d(cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias,
                       const cnn_conv2d_options *options);
/* input (N, C, H, W), weight (C, O/groups, kH, kW), bias (O) or NULL -> (N, O, oH, oW) */
cnn_tensor *cnn_conv_transpose2d(cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias,
                                 const cnn_conv2d_options *options);

typedef struct cnn_pool2d_options {
    int32_t kernel[2];
    int32_t stride[2];   /* 0 means: equal to the kernel */
    int32_t padding[2];
    int32_t dilation[2];
    int32_t ceil_mode;
    int32_t count_include_pad; /* average pooling */
} cnn_pool2d_options;
cnn_pool2d_options cnn_pool2d_defaults(int32_t kernel_h, int32_t kernel_w);
cnn_tensor *cnn_max_pool2d(cnn_tensor *input, const cnn_pool2d_options *options);
cnn_tensor *cnn_avg_pool2d(cnn_tensor *input, const cnn_pool2d_options *options);
cnn_tensor *cnn_adaptive_avg_pool2d(cnn_tensor *input, int64_t out_h, int64_t out_w);

/* ---- autograd --------------------------------------------------------------------------------- */
void cnn_set_grad_enabled(int enabled);
int cnn_is_grad_enabled(void);
/* Marks a leaf tensor as a parameter (or not); refused on non-leaf tensors. */
cnn_status cnn_set_requires_grad(cnn_tensor *t, int requires_grad);
int cnn_requires_grad(const cnn_tensor *t);
int cnn_is_leaf(const cnn_tensor *t);
/* The accumulated gradient (a new reference) or NULL when there is none. */
cnn_tensor *cnn_grad(cnn_tensor *t);
/* Replaces the gradient; grad may be NULL to clear it. */
cnn_status cnn_set_grad(cnn_tensor *t, cnn_tensor *grad);
/* Name of the op that produced t ("add", "conv2d", ...) or NULL for leaves. */
const char *cnn_grad_fn_name(const cnn_tensor *t);
/* A tensor sharing t's storage, cut from the graph. */
cnn_tensor *cnn_detach(cnn_tensor *t);
/* Backpropagates from root. grad may be NULL when root has one element (then d root = 1).
 * The graph's saved tensors are freed afterwards unless retain_graph is set. */
cnn_status cnn_backward(cnn_tensor *root, cnn_tensor *grad, int retain_graph);

/* ---- layers: normalisation, regularisation, resampling (differentiable) ----------------------- */
cnn_tensor *cnn_softmax(cnn_tensor *x, int dim);
cnn_tensor *cnn_log_softmax(cnn_tensor *x, int dim);
/* input (N, C) or (N, C, ...). In training, normalises with the batch statistics and updates
 * running_mean/running_var in place (momentum as in PyTorch, unbiased variance for the running
 * estimate); otherwise uses the running statistics. weight/bias (C) may be NULL. */
cnn_tensor *cnn_batch_norm(cnn_tensor *input, cnn_tensor *running_mean, cnn_tensor *running_var,
                           cnn_tensor *weight, cnn_tensor *bias, int training, float momentum,
                           float eps);
/* Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p); identity when
 * training is 0. channelwise drops whole (N, C) feature maps (Dropout2d). */
cnn_tensor *cnn_dropout(cnn_tensor *input, float p, int training, int channelwise);
typedef enum cnn_pad_mode { CNN_PAD_CONSTANT = 0, CNN_PAD_REFLECT = 1, CNN_PAD_REPLICATE = 2, CNN_PAD_CIRCULAR = 3 } cnn_pad_mode;
/* Pads the last two dims of (N, C, H, W) by (left, right, top, bottom). */
cnn_tensor *cnn_pad2d(cnn_tensor *input, const int32_t pads[4], cnn_pad_mode mode, float value);
typedef enum cnn_upsample_mode { CNN_UPSAMPLE_NEAREST = 0, CNN_UPSAMPLE_BILINEAR = 1 } cnn_upsample_mode;
/* (N, C, H, W) -> (N, C, out_h, out_w); bilinear with align_corners=false as in PyTorch. */
cnn_tensor *cnn_upsample2d(cnn_tensor *input, int64_t out_h, int64_t out_w, cnn_upsample_mode mode);

/* ---- losses (differentiable in the prediction) ------------------------------------------------ */
typedef enum cnn_reduction { CNN_REDUCE_MEAN = 0, CNN_REDUCE_SUM = 1, CNN_REDUCE_NONE = 2 } cnn_reduction;
typedef struct cnn_class_loss_options {
    int32_t reduction;        /* a cnn_reduction */
    int32_t ignore_index;     /* a 0-based class whose targets are skipped; -100 for none */
    float label_smoothing;    /* cross-entropy only */
    cnn_tensor *class_weight; /* (C) or NULL */
} cnn_class_loss_options;
cnn_class_loss_options cnn_class_loss_defaults(void);
/* logits (N, C) or (N, C, H, W...); targets hold 0-based class indices as floats, shape (N) or
 * (N, H, W...). Mean reduction divides by the summed weights of the counted targets, as PyTorch. */
cnn_tensor *cnn_cross_entropy(cnn_tensor *logits, cnn_tensor *targets, const cnn_class_loss_options *o);
cnn_tensor *cnn_nll_loss(cnn_tensor *log_probs, cnn_tensor *targets, const cnn_class_loss_options *o);
cnn_tensor *cnn_mse_loss(cnn_tensor *input, cnn_tensor *target, cnn_reduction reduction);
cnn_tensor *cnn_l1_loss(cnn_tensor *input, cnn_tensor *target, cnn_reduction reduction);
cnn_tensor *cnn_bce_loss(cnn_tensor *probs, cnn_tensor *target, cnn_tensor *weight, cnn_reduction reduction);
cnn_tensor *cnn_bce_with_logits(cnn_tensor *logits, cnn_tensor *target, cnn_tensor *weight,
                                cnn_tensor *pos_weight, cnn_reduction reduction);

/* ---- optimizers: one fused update over a list of parameters ----------------------------------
 * Each step reads params[i]'s gradient (parameters without one are skipped) and updates params[i]
 * and its state tensors in place, following PyTorch's documented update equations. State tensors
 * have the parameter's shape and start as zeros. */
typedef struct cnn_sgd_options {
    float lr, momentum, dampening, weight_decay;
    int32_t nesterov, maximize;
} cnn_sgd_options;
/* momentum_buffers may be NULL when momentum is 0; first_step says the buffers are fresh. */
cnn_status cnn_sgd_step(int n, cnn_tensor *const *params, cnn_tensor *const *momentum_buffers,
                        const cnn_sgd_options *o, int first_step);
typedef struct cnn_adam_options {
    float lr, beta1, beta2, eps, weight_decay;
    int32_t decoupled_weight_decay; /* 1: AdamW */
    int32_t amsgrad, maximize;
} cnn_adam_options;
/* step is the 1-based count of this update, for bias correction; max_exp_avg_sq NULL without amsgrad. */
cnn_status cnn_adam_step(int n, cnn_tensor *const *params, cnn_tensor *const *exp_avg,
                         cnn_tensor *const *exp_avg_sq, cnn_tensor *const *max_exp_avg_sq,
                         int64_t step, const cnn_adam_options *o);
typedef struct cnn_rmsprop_options {
    float lr, alpha, eps, weight_decay, momentum;
    int32_t centered, maximize;
} cnn_rmsprop_options;
/* momentum_buffers NULL when momentum is 0; grad_avg NULL unless centered. */
cnn_status cnn_rmsprop_step(int n, cnn_tensor *const *params, cnn_tensor *const *square_avg,
                            cnn_tensor *const *momentum_buffers, cnn_tensor *const *grad_avg,
                            const cnn_rmsprop_options *o);
/* Scales all gradients so that their joint norm is at most max_norm; returns the norm before
 * clipping (NaN and an error when it is not finite and error_if_nonfinite is set). */
double cnn_clip_grad_norm(int n, cnn_tensor *const *params, double max_norm, double norm_type,
                          int error_if_nonfinite);

/* ---- files ------------------------------------------------------------------------------------ */
/* safetensors: an 8-byte little-endian header length, a JSON header, then the raw data. Saving writes
 * a temporary file, fsyncs it and renames it over path, so a crash never leaves a half-written file.
 * metadata_json is a JSON object of string values or NULL. Tensors are stored as F32. */
cnn_status cnn_safetensors_save(const char *path, int n, const char *const *names,
                                cnn_tensor *const *tensors, const char *metadata_json);
typedef struct cnn_safetensors cnn_safetensors; /* an opened, fully validated file */
cnn_safetensors *cnn_safetensors_open(const char *path);
void cnn_safetensors_close(cnn_safetensors *f);
int cnn_safetensors_count(const cnn_safetensors *f);
const char *cnn_safetensors_name(const cnn_safetensors *f, int i);
/* A new tensor (converted to float32 from F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL), or NULL
 * with an error naming the tensor. */
cnn_tensor *cnn_safetensors_get(const cnn_safetensors *f, const char *name);
/* The "__metadata__" object as JSON text ("{}" when absent); owned by f. */
const char *cnn_safetensors_metadata(const cnn_safetensors *f);

/* IDX files (MNIST format), gzip-compressed or not. Images become (N, 1, H, W) scaled to [0, 1]
 * when scale is set; labels become (N) floats holding the stored 0-based values. */
cnn_tensor *cnn_idx_load(const char *path, int scale);

/* ---- augmentation and images ---- */
/* Augmentation runs a pipeline of stages over a batch (N, C, H, W) or one image (C, H, W) and returns
 * a new tensor (not differentiable). Each image draws its randomness from its own generator, seeded
 * from (seed, index in the batch): the result depends on the seed alone, never on the thread count.
 * A stage added with probability p runs on each image with probability p, independently. Ranges are
 * {low, high} pairs drawn uniformly; low == high makes a stage deterministic.
 *
 *   cnn_aug_pipeline *p = cnn_aug_pipeline_new();
 *   cnn_aug_affine a = cnn_aug_affine_defaults();
 *   a.rotation[0] = -20; a.rotation[1] = 20; a.flip_horizontal = 0.5f;
 *   cnn_aug_add_affine(p, &a, 1.0f);
 *   cnn_tensor *y = cnn_aug_apply(p, x, 42);
 *   cnn_aug_pipeline_free(p);
 *
 * A pipeline is read-only once built, so several threads may apply it at the same time. */
typedef struct cnn_aug_pipeline cnn_aug_pipeline;

/* How a sample that falls outside the image is filled (Keras' fill_mode, scipy.ndimage's modes):
 * nearest aaaa|abcd|dddd, constant kkkk|abcd|kkkk (k = cval), reflect dcba|abcd|dcba,
 * wrap abcd|abcd|abcd. */
typedef enum cnn_fill_mode {
    CNN_FILL_NEAREST = 0, CNN_FILL_CONSTANT = 1, CNN_FILL_REFLECT = 2, CNN_FILL_WRAP = 3
} cnn_fill_mode;
typedef enum cnn_sampling { CNN_SAMPLE_NEAREST = 0, CNN_SAMPLE_BILINEAR = 1 } cnn_sampling;
/* Units of a shift range: a fraction of the width/height, pixels, or whole pixels (integers). */
typedef enum cnn_shift_units { CNN_SHIFT_FRACTION = 0, CNN_SHIFT_PIXELS = 1, CNN_SHIFT_WHOLE_PIXELS = 2 } cnn_shift_units;

/* One affine warp per image, composed as Keras' ImageDataGenerator does (rotation, shift, shear,
 * zoom about the image centre; flips after the warp). */
typedef struct cnn_aug_affine {
    float rotation[2];       /* degrees; positive turns the content counter-clockwise */
    float shift_x[2];        /* positive moves the content right */
    float shift_y[2];        /* positive moves the content down */
    int32_t shift_x_units, shift_y_units; /* cnn_shift_units */
    float zoom_x[2];         /* Keras zoom: the sampling step, > 1 shows more of the image, smaller */
    float zoom_y[2];
    int32_t zoom_same;       /* draw one factor (from zoom_x) for both axes */
    float shear[2];          /* degrees, Keras' shear matrix */
    float flip_horizontal;   /* probabilities */
    float flip_vertical;
    int32_t fill_mode;       /* cnn_fill_mode */
    float cval;              /* the fill value of CNN_FILL_CONSTANT */
    int32_t sampling;        /* cnn_sampling */
} cnn_aug_affine;
cnn_aug_affine cnn_aug_affine_defaults(void); /* the identity, bilinear, fill nearest */

/* A random size[0] x size[1] window of the image padded by (left, right, top, bottom). */
typedef struct cnn_aug_crop {
    int32_t size[2];
    int32_t padding[4];
    int32_t pad_mode;        /* cnn_pad_mode: constant, reflect (dcb|abcd|cba), replicate, circular */
    float pad_value;
    int32_t pad_if_needed;   /* pad images smaller than size (evenly on both sides) instead of failing */
} cnn_aug_crop;

/* torchvision's RandomResizedCrop: a window of scale x the area with aspect ratio (w / h) in ratio
 * (drawn log-uniformly), resized to size. */
typedef struct cnn_aug_resized_crop {
    int32_t size[2];
    float scale[2];
    float ratio[2];
    int32_t sampling;        /* cnn_sampling */
} cnn_aug_resized_crop;

/* torchvision's ColorJitter on images in [0, 1], results clamped to [0, 1]. Factors are drawn from
 * the ranges ({1, 1} and hue {0, 0} leave the image alone) and applied in a random order per image.
 * Saturation and hue need 3 channels (RGB); brightness and contrast work on any channel count. */
typedef struct cnn_aug_color {
    float brightness[2];     /* multiplies */
    float contrast[2];       /* blends with the mean gray level */
    float saturation[2];     /* blends with the grayscale image */
    float hue[2];            /* shift in turns of the colour wheel, within [-0.5, 0.5] */
} cnn_aug_color;

/* torchvision's RandomErasing: a rectangle of scale x the area, aspect ratio (h / w) in ratio, filled
 * with values (one, or one per channel) or with standard normal noise when random_fill is set. */
typedef struct cnn_aug_erasing {
    float scale[2];
    float ratio[2];
    int32_t random_fill;
} cnn_aug_erasing;

cnn_aug_pipeline *cnn_aug_pipeline_new(void);
void cnn_aug_pipeline_free(cnn_aug_pipeline *p);
int cnn_aug_pipeline_length(const cnn_aug_pipeline *p);
/* Stages, in the order they run. prob is the chance that an image goes through the stage. */
cnn_status cnn_aug_add_affine(cnn_aug_pipeline *p, const cnn_aug_affine *o, float prob);
/* Exact flips (no resampling), each with its own probability. */
cnn_status cnn_aug_add_flip(cnn_aug_pipeline *p, float p_horizontal, float p_vertical);
/* Crops change the image size, so they always run. */
cnn_status cnn_aug_add_crop(cnn_aug_pipeline *p, const cnn_aug_crop *o);
cnn_status cnn_aug_add_resized_crop(cnn_aug_pipeline *p, const cnn_aug_resized_crop *o);
cnn_status cnn_aug_add_color(cnn_aug_pipeline *p, const cnn_aug_color *o, float prob);
/* x + mean + std * N(0, 1) per element, clamped to [0, 1] when clip is set. */
cnn_status cnn_aug_add_noise(cnn_aug_pipeline *p, float mean, float std, int clip, float prob);
/* values: n_values numbers (1 or the channel count); ignored with random_fill. */
cnn_status cnn_aug_add_erasing(cnn_aug_pipeline *p, const cnn_aug_erasing *o, const float *values,
                               int n_values, float prob);
/* (x - mean[c]) / std[c]; n is 1 (all channels) or the channel count. */
cnn_status cnn_aug_add_normalize(cnn_aug_pipeline *p, const float *mean, const float *std, int n);
/* Keras' channel_shift_range: one offset from [-range, range] added to every channel, the result
 * clipped to the image's own [min, max]. */
cnn_status cnn_aug_add_channel_shift(cnn_aug_pipeline *p, float range, float prob);
/* Keras' samplewise_center / samplewise_std_normalization: per image, subtract the mean and/or divide
 * by (std + 1e-6). */
cnn_status cnn_aug_add_standardize(cnn_aug_pipeline *p, int center, int scale);
/* With probability prob run the next count stages, otherwise skip all of them (a group probability). */
cnn_status cnn_aug_add_gate(cnn_aug_pipeline *p, float prob, int count);
/* Output size of the pipeline for (C, H, W) images, without running it; CNN_OK or an error naming the
 * stage that does not fit. */
cnn_status cnn_aug_output_shape(const cnn_aug_pipeline *p, const int64_t in_chw[3], int64_t out_chw[3]);
cnn_tensor *cnn_aug_apply(const cnn_aug_pipeline *p, cnn_tensor *x, uint64_t seed);
/* A seed drawn from the process generator, for callers that want cnn_manual_seed to decide. */
uint64_t cnn_aug_random_seed(void);

/* Images: files hold 8 bits per sample; tensors are (C, H, W) in [0, 1]. channels = 0 keeps the file's
 * own layout (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA); 1..4 converts. PNG, JPEG, BMP, TGA, GIF (first
 * frame), PSD, PNM and HDR decode; errors name the file and the decoder's reason. */
cnn_tensor *cnn_image_load(const char *path, int channels);
cnn_tensor *cnn_image_decode(const void *bytes, size_t n, int channels, const char *name);
/* Writes PNG, JPEG (quality 1..100) or BMP, chosen by the extension of path, from (C, H, W) with C in
 * {1, 2, 3, 4} (JPEG and BMP: 1 or 3 or 4) or (H, W), clamped to [0, 1]. Atomic: temp file + rename. */
cnn_status cnn_image_save(const char *path, cnn_tensor *image, int quality);
typedef enum cnn_resize_mode { CNN_RESIZE_NEAREST = 0, CNN_RESIZE_BILINEAR = 1, CNN_RESIZE_AREA = 2 } cnn_resize_mode;
/* Resizes the last two dims of (H, W), (C, H, W) or (N, C, H, W). Nearest and bilinear follow
 * cnn_upsample2d; area averages the input pixels each output pixel covers (with fractional edges). */
cnn_tensor *cnn_image_resize(cnn_tensor *image, int64_t out_h, int64_t out_w, cnn_resize_mode mode);
/* torchvision's make_grid: (N, C, H, W) -> (C, rows * (H + padding) + padding, ...), nrow images per
 * row. normalize maps [low, high] (the batch's min/max, or each image's with scale_each, or range
 * when use_range is set) to [0, 1]. */
typedef struct cnn_grid_options {
    int32_t nrow;
    int32_t padding;
    float pad_value;
    int32_t normalize;
    int32_t scale_each;
    int32_t use_range;
    float range[2];
} cnn_grid_options;
cnn_grid_options cnn_grid_defaults(void);
cnn_tensor *cnn_image_grid(cnn_tensor *batch, const cnn_grid_options *o);

/* CIFAR-10/100 binary batches: records of label_bytes label bytes and 3072 image bytes. Returns the
 * images (N, 3, 32, 32) in [0, 1] and, in *labels, label byte label_index of each record as a 0-based
 * float (N). */
cnn_tensor *cnn_cifar_load(const char *path, int label_bytes, int label_index, cnn_tensor **labels);

/* ---- batch prefetching ---- */
/* Worker threads that gather (and augment) the batches of one epoch ahead of the consumer. The
 * dataset is x (N, ...) with optional labels y (N); order lists the rows of the epoch (0-based, n_rows
 * of them, or NULL for 0..N-1), cut into batches of batch_size (the last one smaller unless drop_last).
 * Batch b goes through pipeline (may be NULL) with seeds[b] (NULL: seed b), so a batch depends on
 * (order, seeds) alone, never on the worker count. With workers = 0 each batch is made on the calling
 * thread by cnn_prefetch_next. Batches are served in order starting at first_batch; at most capacity
 * (>= 1; 0 picks 2 x workers) finished batches wait. x, y and order are copied or retained; the
 * pipeline must stay alive until cnn_prefetch_free. Workers run the pipeline on one thread each. */
typedef struct cnn_prefetch cnn_prefetch;
typedef struct cnn_prefetch_options {
    const int64_t *order;
    int64_t n_rows;
    int64_t batch_size;
    int32_t drop_last;
    int64_t first_batch;
    const cnn_aug_pipeline *pipeline;
    const uint64_t *seeds;   /* one per batch of the epoch (first_batch included), or NULL */
    int32_t workers;
    int32_t capacity;
} cnn_prefetch_options;
cnn_prefetch *cnn_prefetch_new(cnn_tensor *x, cnn_tensor *y, const cnn_prefetch_options *o);
/* Batches of the epoch (before first_batch is applied). */
int64_t cnn_prefetch_batches(const cnn_prefetch *p);
/* The next batch: CNN_OK with new references in *x and *y (*y NULL without labels), or CNN_OK with
 * *x == NULL after the last batch; an error (a worker's, or CNN_ERR_INTERRUPTED) ends the epoch. */
cnn_status cnn_prefetch_next(cnn_prefetch *p, cnn_tensor **x, cnn_tensor **y);
/* Stops the workers (finishing the batch each one is making), joins them and frees everything,
 * including batches nobody took. NULL is allowed. */
void cnn_prefetch_free(cnn_prefetch *p);
/* Worker threads currently running in the process (all prefetchers). */
int cnn_prefetch_live_workers(void);
