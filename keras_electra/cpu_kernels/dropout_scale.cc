// Dropout's per-element factor, 0 or 1 / (1 - rate), in one pass on CPU.
//
// The random number of element i is a counter-based hash of (seed, i): the
// "lowbias32" integer hash (Chris Wellons) applied twice, as keras_electra's
// rng.py does for masking and sampling. It needs no state, vectorises, and
// costs a few integer instructions per element, where TensorFlow's Philox
// draw plus the compare and select were three passes and the most expensive
// element-wise op of the ELECTRA step. An element is dropped when the top 24
// bits of its hash fall below round(rate * 2^24).
#define EIGEN_USE_THREADS

#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/work_sharder.h"

namespace keras_electra {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("ElectraDropoutScale")
    .Input("shape: int32")
    .Input("seed: int32")
    .Output("scale: T")
    .Attr("rate: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &out));
      c->set_output(0, out);
      return absl::OkStatus();
    })
    .Doc("0 with probability rate, else 1 / (1 - rate); a pure function of (shape, seed).");

static inline uint32_t LowBias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

template <typename T, typename Bits>
class DropoutScaleOp : public OpKernel {
 public:
  explicit DropoutScaleOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
    OP_REQUIRES(c, rate_ >= 0.0f && rate_ < 1.0f,
                absl::InvalidArgumentError("ElectraDropoutScale: rate must be in [0, 1)"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& shape_t = ctx->input(0);
    const Tensor& seed_t = ctx->input(1);
    OP_REQUIRES(ctx, seed_t.NumElements() == 2,
                absl::InvalidArgumentError("ElectraDropoutScale: seed must have 2 elements, got " +
                                           seed_t.shape().DebugString()));
    OP_REQUIRES(ctx, shape_t.dims() == 1,
                absl::InvalidArgumentError("ElectraDropoutScale: shape must be 1-D, got " +
                                           shape_t.shape().DebugString()));
    TensorShape shape;
    OP_REQUIRES_OK(ctx, ::tensorflow::TensorShapeUtils::MakeShape(
                            shape_t.flat<int32_t>().data(), shape_t.NumElements(), &shape));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    const int64_t n = shape.num_elements();
    if (n == 0) return;
    const auto seed = seed_t.flat<int32_t>();
    const uint32_t key0 = LowBias32(static_cast<uint32_t>(seed(0)) + 0x9E3779B9u);
    const uint32_t key1 = LowBias32(key0 ^ static_cast<uint32_t>(seed(1)));
    const uint32_t threshold = static_cast<uint32_t>(std::lround(rate_ * 16777216.0));
    const T zero_value(0.0f), keep_value(1.0f / (1.0f - rate_));
    Bits zero, keep;
    std::memcpy(&zero, &zero_value, sizeof(Bits));
    std::memcpy(&keep, &keep_value, sizeof(Bits));
    Bits* data = reinterpret_cast<Bits*>(out->flat<T>().data());
    auto fill = [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t high = static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32);
        uint32_t x = LowBias32(static_cast<uint32_t>(i) ^ key0);
        x = LowBias32(x + (key1 ^ high));
        data[i] = (x >> 8) >= threshold ? keep : zero;
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, n, /*cost_per_unit=*/8, fill);
  }

 private:
  float rate_;
};

REGISTER_KERNEL_BUILDER(
    Name("ElectraDropoutScale").Device(::tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
    (DropoutScaleOp<float, uint32_t>));
REGISTER_KERNEL_BUILDER(Name("ElectraDropoutScale")
                            .Device(::tensorflow::DEVICE_CPU)
                            .TypeConstraint<::tensorflow::bfloat16>("T"),
                        (DropoutScaleOp<::tensorflow::bfloat16, uint16_t>));
REGISTER_KERNEL_BUILDER(
    Name("ElectraDropoutScale").Device(::tensorflow::DEVICE_CPU).TypeConstraint<Eigen::half>("T"),
    (DropoutScaleOp<Eigen::half, uint16_t>));

}  // namespace keras_electra
