// Dropout's per-element factor, 0 or 1 / (1 - rate), in one pass on CPU.
//
// The keep decision of element i is the hash of dropout_hash.h. It needs no
// state, vectorises, and costs a few integer instructions per element, where
// TensorFlow's Philox draw plus the compare and select were three passes and
// the most expensive element-wise op of the ELECTRA step.
#include <cstring>

#include "kernel.h"
#include "dropout_hash.h"

namespace keras_electra {

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
    const DropoutHash hash(seed(0), seed(1), rate_);
    const T zero_value(0.0f), keep_value(1.0f / (1.0f - rate_));
    Bits zero, keep;
    std::memcpy(&zero, &zero_value, sizeof(Bits));
    std::memcpy(&keep, &keep_value, sizeof(Bits));
    Bits* data = reinterpret_cast<Bits*>(out->flat<T>().data());
    auto fill = [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) data[i] = hash.Keep(i) ? keep : zero;
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
