// gelu(x + bias) and its gradient, each one pass over memory on CPU.
//
// TensorFlow runs 0.5 h (1 + erf(h / sqrt 2)) as ~5 element-wise ops forward
// and ~10 backward, each a full pass over the (tokens, intermediate) tensor;
// here each direction is one pass, computed in float32 whatever the storage
// type, multi-threaded on TensorFlow's intra-op pool.
//
// Forward: one Eigen expression (vectorised; Eigen's erf is a rational
// polynomial). Backward with AVX-512 (float32 and bfloat16): a loop of
// 16-lane intrinsics that needs one exponential per element: erf(a) for
// a >= 0 is 1 - q(t) exp(-a^2), t = 1 / (1 + p a) (Abramowitz & Stegun
// 7.1.26, absolute error <= 1.5e-7), and with a = |h| / sqrt 2 that
// exp(-h^2 / 2) is also the normal density the gradient needs. Eigen's
// expression, which the backward of other types keeps, computes erf and exp
// separately and took 1.3-1.6x longer on bfloat16 (4096, 1024)
// (docs/performance.md). The forward loop would need the exponential for erf
// alone, so it stays Eigen's. The bias gradient is left to the caller (a
// reduction of dx over rows).
#include <type_traits>

#include "kernel.h"
#include "avx512_math.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace keras_electra {

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

#ifdef KERAS_ELECTRA_AVX512
namespace avx512 {

// Phi(h) (the normal CDF) and h phi(h), 16 lanes.
inline void CdfAndHPdf(__m512 h, __m512* cdf, __m512* h_pdf) {
  const __m512 density = ExpNonPositive(_mm512_mul_ps(_mm512_set1_ps(-0.5f),
                                                      _mm512_mul_ps(h, h)));  // exp(-h^2/2)
  const __m512 a = _mm512_mul_ps(_mm512_abs_ps(h), _mm512_set1_ps(0.707106781f));
  const __m512 d = _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f));
  __m512 t = _mm512_rcp14_ps(d);
  t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));  // Newton step
  __m512 q = _mm512_set1_ps(1.061405429f);
  for (float c : {-1.453152027f, 1.421413741f, -0.284496736f, 0.254829592f})
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(c));
  q = _mm512_mul_ps(_mm512_mul_ps(q, t), _mm512_mul_ps(_mm512_set1_ps(0.5f), density));
  // q = erfc(a) / 2 = Phi(-|h|).
  const __mmask16 positive = _mm512_cmp_ps_mask(h, _mm512_setzero_ps(), _CMP_GE_OQ);
  *cdf = _mm512_mask_sub_ps(q, positive, _mm512_set1_ps(1.0f), q);
  *h_pdf = _mm512_mul_ps(h, _mm512_mul_ps(density, _mm512_set1_ps(0.398942280f)));
}

// Rows [begin, end) of dx = dy gelu'(x + bias).
template <typename T>
inline void GradRows(const T* dy, const T* x, const T* bias, T* dx, int64_t cols, int64_t begin,
              int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t o = row * cols;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = FirstLanes(cols - j);
      const __m512 h = _mm512_add_ps(Load(x + o + j, m), Load(bias + j, m));
      __m512 cdf, h_pdf;
      CdfAndHPdf(h, &cdf, &h_pdf);
      Store(dx + o + j, _mm512_mul_ps(Load(dy + o + j, m), _mm512_add_ps(cdf, h_pdf)), m);
    }
  }
}

}  // namespace avx512
#endif  // KERAS_ELECTRA_AVX512

// dx by the AVX-512 loop for float32 and bfloat16; false: use the Eigen expression.
template <typename T>
bool VectorizedGrad(OpKernelContext* ctx, const T* dy, const T* x, const T* bias, T* dx,
                    int64_t rows, int64_t cols) {
#ifdef KERAS_ELECTRA_AVX512
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, ::tensorflow::bfloat16>) {
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 40 * cols,
                        [&](int64_t begin, int64_t end) {
                          avx512::GradRows(dy, x, bias, dx, cols, begin, end);
                        });
    return true;
  }
#endif
  return false;
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
    if (VectorizedGrad<T>(ctx, dy.flat<T>().data(), x.flat<T>().data(), bias.flat<T>().data(),
                          dx->flat<T>().data(), rows, cols))
      return;
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
