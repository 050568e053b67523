// LayerNorm(a + b) over the last axis (the post-LN residual) and its gradient,
// one pass over memory each way on CPU.
//
// Keras computes LayerNorm as ~8 TensorFlow ops forward (cast, moments, rsqrt,
// scale, shift, cast) and ~15 backward, each a pass over (tokens, hidden).
// Here each row is read once: the sum, its mean and variance (two-pass, in
// float32, as tf.nn.moments) and the normalised output forward; backward, the
// input gradient of the row and its share of the gamma/beta gradients.
// gamma and beta are float32 (Keras keeps LayerNorm variables in float32
// under mixed precision); the statistics are float32 whatever T is. The
// gamma/beta gradients are summed per fixed block of rows and then over the
// blocks in order, so they do not depend on how the rows were split over
// threads.
#include <vector>

#include "kernel.h"

namespace keras_electra {

static absl::Status RowsShape(InferenceContext* c, int input, ShapeHandle* rows) {
  ShapeHandle x = c->input(input);
  if (!c->RankKnown(x)) {
    *rows = c->UnknownShape();
    return absl::OkStatus();
  }
  return c->Subshape(x, 0, -1, rows);
}

REGISTER_OP("ElectraAddLayerNorm")
    .Input("a: T")
    .Input("b: T")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: T")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("epsilon: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rows;
      TF_RETURN_IF_ERROR(RowsShape(c, 0, &rows));
      c->set_output(0, c->input(0));
      c->set_output(1, rows);
      c->set_output(2, rows);
      return absl::OkStatus();
    })
    .Doc("y = LayerNorm(a + b) * gamma + beta over the last axis; mean and 1/std per row.");

REGISTER_OP("ElectraAddLayerNormGrad")
    .Input("dy: T")
    .Input("a: T")
    .Input("b: T")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Output("dx: T")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(3));
      c->set_output(2, c->input(3));
      return absl::OkStatus();
    })
    .Doc("Gradients of ElectraAddLayerNorm: dx (for a and for b), dgamma, dbeta.");

// (rows, cols) of x with cols = gamma's size, or an error naming what does not fit.
static bool RowsCols(OpKernelContext* ctx, const char* op, const Tensor& x, const Tensor& other,
                     const Tensor& gamma, int64_t* rows, int64_t* cols) {
  *cols = gamma.NumElements();
  if (gamma.dims() != 1 || x.dims() < 1 || x.dim_size(x.dims() - 1) != *cols ||
      other.shape() != x.shape()) {
    ctx->CtxFailure(__FILE__, __LINE__, absl::InvalidArgumentError(
        std::string(op) + ": the two inputs must have one shape whose last dimension is " +
        "gamma's size; got " + x.shape().DebugString() + ", " + other.shape().DebugString() +
        " and gamma " + gamma.shape().DebugString()));
    return false;
  }
  *rows = *cols == 0 ? 0 : x.NumElements() / *cols;
  return true;
}

template <typename T>
class AddLayerNormOp : public OpKernel {
 public:
  explicit AddLayerNormOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    const Tensor& gamma = ctx->input(2);
    const Tensor& beta = ctx->input(3);
    int64_t rows, cols;
    if (!RowsCols(ctx, "ElectraAddLayerNorm", a, b, gamma, &rows, &cols)) return;
    OP_REQUIRES(ctx, beta.shape() == gamma.shape(),
                absl::InvalidArgumentError("ElectraAddLayerNorm: beta must have gamma's shape"));
    TensorShape rows_shape = a.shape();
    rows_shape.RemoveLastDims(1);
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, a.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, rows_shape, &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, rows_shape, &rstd));
    if (rows == 0) return;
    const T* pa = a.flat<T>().data();
    const T* pb = b.flat<T>().data();
    const float* g = gamma.flat<float>().data();
    const float* be = beta.flat<float>().data();
    T* py = y->flat<T>().data();
    float* pm = mean->flat<float>().data();
    float* pr = rstd->flat<float>().data();
    const float eps = epsilon_;
    auto work = [=](int64_t begin, int64_t end) {
      std::vector<float> s(cols);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r * cols;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < cols; ++j) {
          s[j] = static_cast<float>(pa[o + j]) + static_cast<float>(pb[o + j]);
          sum += s[j];
        }
        const float mu = sum / cols;
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (int64_t j = 0; j < cols; ++j) sq += (s[j] - mu) * (s[j] - mu);
        const float inv = 1.0f / std::sqrt(sq / cols + eps);
        for (int64_t j = 0; j < cols; ++j) py[o + j] = T((s[j] - mu) * inv * g[j] + be[j]);
        pm[r] = mu;
        pr[r] = inv;
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 8 * cols, work);
  }

 private:
  float epsilon_;
};

template <typename T>
class AddLayerNormGradOp : public OpKernel {
 public:
  explicit AddLayerNormGradOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& a = ctx->input(1);
    const Tensor& b = ctx->input(2);
    const Tensor& gamma = ctx->input(3);
    const Tensor& mean = ctx->input(4);
    const Tensor& rstd = ctx->input(5);
    int64_t rows, cols;
    if (!RowsCols(ctx, "ElectraAddLayerNormGrad", a, b, gamma, &rows, &cols)) return;
    OP_REQUIRES(ctx, dy.shape() == a.shape() && mean.NumElements() == rows &&
                         rstd.NumElements() == rows,
                absl::InvalidArgumentError(
                    "ElectraAddLayerNormGrad: dy must have the inputs' shape and mean/rstd "
                    "one value per row"));
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, a.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    float* dg = dgamma->flat<float>().data();
    float* db = dbeta->flat<float>().data();
    std::fill(dg, dg + cols, 0.0f);
    std::fill(db, db + cols, 0.0f);
    if (rows == 0) return;
    // Per-block partial sums of the gamma/beta gradients: a fixed split of the rows.
    const int64_t block = 64;
    const int64_t blocks = (rows + block - 1) / block;
    Tensor partial;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_FLOAT,
                                           TensorShape({blocks, 2, cols}), &partial));
    float* pp = partial.flat<float>().data();
    const T* pdy = dy.flat<T>().data();
    const T* pa = a.flat<T>().data();
    const T* pb = b.flat<T>().data();
    const float* g = gamma.flat<float>().data();
    const float* pm = mean.flat<float>().data();
    const float* pr = rstd.flat<float>().data();
    T* pdx = dx->flat<T>().data();
    auto work = [=](int64_t begin, int64_t end) {
      std::vector<float> xhat(cols), gy(cols);
      for (int64_t k = begin; k < end; ++k) {
        float* pg = pp + k * 2 * cols;
        float* pbeta = pg + cols;
        std::fill(pg, pg + 2 * cols, 0.0f);
        for (int64_t r = k * block; r < std::min(rows, (k + 1) * block); ++r) {
          const int64_t o = r * cols;
          const float mu = pm[r], inv = pr[r];
          float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
          for (int64_t j = 0; j < cols; ++j) {
            const float d = static_cast<float>(pdy[o + j]);
            xhat[j] = (static_cast<float>(pa[o + j]) + static_cast<float>(pb[o + j]) - mu) * inv;
            gy[j] = d * g[j];
            sum_g += gy[j];
            sum_gx += gy[j] * xhat[j];
            pg[j] += d * xhat[j];
            pbeta[j] += d;
          }
          const float mg = sum_g / cols, mgx = sum_gx / cols;
          for (int64_t j = 0; j < cols; ++j) pdx[o + j] = T(inv * (gy[j] - mg - xhat[j] * mgx));
        }
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, blocks, 20 * block * cols, work);
    for (int64_t k = 0; k < blocks; ++k) {
      const float* pg = pp + k * 2 * cols;
      for (int64_t j = 0; j < cols; ++j) {
        dg[j] += pg[j];
        db[j] += pg[cols + j];
      }
    }
  }
};

#define KERAS_ELECTRA_REGISTER(T)                                                      \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("ElectraAddLayerNorm").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      AddLayerNormOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(Name("ElectraAddLayerNormGrad")                              \
                              .Device(::tensorflow::DEVICE_CPU)                        \
                              .TypeConstraint<T>("T"),                                 \
                          AddLayerNormGradOp<T>);

KERAS_ELECTRA_REGISTER(float)
KERAS_ELECTRA_REGISTER(::tensorflow::bfloat16)
KERAS_ELECTRA_REGISTER(Eigen::half)

}  // namespace keras_electra
