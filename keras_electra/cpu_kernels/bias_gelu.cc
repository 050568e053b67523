// gelu(x + bias) and its gradient, each one pass over memory on CPU.
//
// TensorFlow runs 0.5 h (1 + erf(h / sqrt 2)) as ~5 element-wise ops forward
// and ~10 backward, each a full pass over the (tokens, intermediate) tensor;
// here each direction is one Eigen expression (vectorised, multi-threaded on
// TensorFlow's intra-op pool), computed in float32 whatever the storage type.
// The bias gradient is left to the caller (a reduction of dx over rows).
#define EIGEN_USE_THREADS

#include <cmath>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_electra {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::shape_inference::InferenceContext;

REGISTER_OP("ElectraBiasGelu")
    .Input("x: T")
    .Input("bias: T")
    .Output("y: T")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("y = gelu(x + bias), bias broadcast over the last dimension of x.");

REGISTER_OP("ElectraBiasGeluGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("bias: T")
    .Output("dx: T")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    })
    .Doc("dx = dy * gelu'(x + bias).");

// x as (rows, cols) with cols = bias size, or an error naming the input.
static bool CheckShapes(OpKernelContext* ctx, const Tensor& x, const Tensor& bias,
                        int64_t* rows, int64_t* cols) {
  *cols = bias.NumElements();
  if (bias.dims() != 1 || x.dims() < 1 || x.dim_size(x.dims() - 1) != *cols) {
    ctx->CtxFailure(__FILE__, __LINE__, absl::InvalidArgumentError(
        "ElectraBiasGelu: bias must be 1-D with the size of x's last dimension; got x " +
        x.shape().DebugString() + " and bias " + bias.shape().DebugString()));
    return false;
  }
  *rows = *cols == 0 ? 0 : x.NumElements() / *cols;
  return true;
}

template <typename T>
class BiasGeluOp : public OpKernel {
 public:
  explicit BiasGeluOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& bias = ctx->input(1);
    int64_t rows, cols;
    if (!CheckShapes(ctx, x, bias, &rows, &cols)) return;
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &y));
    if (rows == 0) return;
    auto h = x.shaped<T, 2>({rows, cols}).template cast<float>() +
             bias.shaped<T, 2>({1, cols}).template cast<float>().broadcast(
                 Eigen::array<int64_t, 2>{rows, 1});
    y->shaped<T, 2>({rows, cols}).device(ctx->eigen_device<Eigen::ThreadPoolDevice>()) =
        (0.5f * h * (1.0f + (h * static_cast<float>(M_SQRT1_2)).erf())).template cast<T>();
  }
};

template <typename T>
class BiasGeluGradOp : public OpKernel {
 public:
  explicit BiasGeluGradOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    int64_t rows, cols;
    if (!CheckShapes(ctx, x, bias, &rows, &cols)) return;
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                absl::InvalidArgumentError("ElectraBiasGeluGrad: dy " + dy.shape().DebugString() +
                                           " must have x's shape " + x.shape().DebugString()));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &dx));
    if (rows == 0) return;
    auto h = x.shaped<T, 2>({rows, cols}).template cast<float>() +
             bias.shaped<T, 2>({1, cols}).template cast<float>().broadcast(
                 Eigen::array<int64_t, 2>{rows, 1});
    // d/dh [h Phi(h)] = Phi(h) + h phi(h).
    auto cdf = 0.5f * (1.0f + (h * static_cast<float>(M_SQRT1_2)).erf());
    auto pdf = 0.3989422804014327f * (-0.5f * h * h).exp();
    dx->shaped<T, 2>({rows, cols}).device(ctx->eigen_device<Eigen::ThreadPoolDevice>()) =
        (dy.shaped<T, 2>({rows, cols}).template cast<float>() * (cdf + h * pdf))
            .template cast<T>();
  }
};

#define KERAS_ELECTRA_REGISTER(T)                                                     \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("ElectraBiasGelu").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      BiasGeluOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                            \
      Name("ElectraBiasGeluGrad").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      BiasGeluGradOp<T>);

KERAS_ELECTRA_REGISTER(float)
KERAS_ELECTRA_REGISTER(::tensorflow::bfloat16)
KERAS_ELECTRA_REGISTER(Eigen::half)

}  // namespace keras_electra
