// The generator's masked-LM loss over the vocabulary, and its gradient, each
// one pass over memory on CPU.
//
// For ELECTRA-Small at batch 32 the generator's logits are a (608, 30522)
// float32 tensor. As TensorFlow ops, the loss, its softmax, the metrics'
// argmax, the sampler's padded block sums and the gradient (softmax minus the
// one-hot label) are ~12 passes over those 74 MB. Here the forward reads each
// row once from memory and works on it in cache: its max and argmax, then
// exp(logit - max) summed per block of `block` entries, then the division by
// the row's total. The block sums (of the probabilities) are what the
// inverse-CDF sampler (`keras_electra.masking.sample_tokens`) needs first.
// The backward writes probs * d_nll, minus d_nll at the label, in one pass.
#include <string>

#include "kernel.h"
#include "Eigen/Core"

namespace keras_electra {

REGISTER_OP("ElectraSoftmaxNll")
    .Input("logits: float")
    .Input("labels: int32")
    .Output("nll: float")
    .Output("probs: float")
    .Output("argmax: int32")
    .Output("block_sums: float")
    .Attr("block: int >= 1 = 256")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rows, sums;
      DimensionHandle vocab, blocks;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &rows));
      TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 0, -1, &rows));
      int64_t block;
      TF_RETURN_IF_ERROR(c->GetAttr("block", &block));
      vocab = c->Dim(c->input(0), -1);
      if (c->ValueKnown(vocab)) {
        blocks = c->MakeDim((c->Value(vocab) + block - 1) / block);
      } else {
        blocks = c->UnknownDim();
      }
      TF_RETURN_IF_ERROR(c->Concatenate(rows, c->Vector(blocks), &sums));
      c->set_output(0, rows);
      c->set_output(1, c->input(0));
      c->set_output(2, rows);
      c->set_output(3, sums);
      return absl::OkStatus();
    })
    .Doc("nll = -log softmax(logits)[labels], probs = softmax(logits), argmax of each row, "
         "and the probabilities summed over consecutive blocks of `block` entries.");

REGISTER_OP("ElectraSoftmaxNllGrad")
    .Input("d_nll: float")
    .Input("probs: float")
    .Input("labels: int32")
    .Output("d_logits: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    })
    .Doc("d_logits = (probs - one_hot(labels)) * d_nll[..., None].");

// (rows, vocab) of `logits`, with every label checked to be a vocabulary id;
// else an error naming what does not fit.
static bool RowsVocab(OpKernelContext* ctx, const char* op, const Tensor& logits,
                      const Tensor& labels, int64_t* rows, int64_t* vocab) {
  TensorShape rows_shape = logits.shape();
  if (logits.dims() >= 1) rows_shape.RemoveLastDims(1);
  if (logits.dims() < 1 || labels.shape() != rows_shape) {
    ctx->CtxFailure(__FILE__, __LINE__, absl::InvalidArgumentError(
        std::string(op) + ": labels must have the shape of the logits without their last " +
        "(vocabulary) axis; got logits " + logits.shape().DebugString() + " and labels " +
        labels.shape().DebugString()));
    return false;
  }
  *vocab = logits.dim_size(logits.dims() - 1);
  *rows = labels.NumElements();
  const int32_t* l = labels.flat<int32_t>().data();
  for (int64_t r = 0; r < *rows; ++r) {
    if (l[r] < 0 || l[r] >= *vocab) {
      ctx->CtxFailure(__FILE__, __LINE__, absl::InvalidArgumentError(
          std::string(op) + ": label " + std::to_string(l[r]) + " at row " + std::to_string(r) +
          " is not in [0, " + std::to_string(*vocab) + ")"));
      return false;
    }
  }
  return true;
}

class SoftmaxNllOp : public OpKernel {
 public:
  explicit SoftmaxNllOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("block", &block_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& logits = ctx->input(0);
    const Tensor& labels = ctx->input(1);
    int64_t rows, vocab;
    if (!RowsVocab(ctx, "ElectraSoftmaxNll", logits, labels, &rows, &vocab)) return;
    OP_REQUIRES(ctx, vocab > 0,
                absl::InvalidArgumentError("ElectraSoftmaxNll: the vocabulary axis is empty"));
    const int64_t blocks = (vocab + block_ - 1) / block_;
    TensorShape rows_shape = labels.shape(), sums_shape = labels.shape();
    sums_shape.AddDim(blocks);
    Tensor *nll, *probs, *argmax, *sums;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, rows_shape, &nll));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, logits.shape(), &probs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, rows_shape, &argmax));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, sums_shape, &sums));
    const float* x = logits.flat<float>().data();
    const int32_t* label = labels.flat<int32_t>().data();
    float* p = probs->flat<float>().data();
    float* out_nll = nll->flat<float>().data();
    int32_t* out_argmax = argmax->flat<int32_t>().data();
    float* out_sums = sums->flat<float>().data();
    const int64_t block = block_;
    auto work = [=](int64_t begin, int64_t end) {
      using Row = Eigen::Map<const Eigen::ArrayXf>;
      using RowOut = Eigen::Map<Eigen::ArrayXf>;
      for (int64_t r = begin; r < end; ++r) {
        const float* xr = x + r * vocab;
        float* pr = p + r * vocab;
        float* sr = out_sums + r * blocks;
        const float max = Row(xr, vocab).maxCoeff();
        int64_t first = 0;  // the first index of the max, as tf.argmax
        while (first < vocab - 1 && !(xr[first] == max)) ++first;
        float total = 0.0f;
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t start = b * block, n = std::min(block, vocab - start);
          RowOut e(pr + start, n);
          e = (Row(xr + start, n) - max).exp();
          sr[b] = e.sum();
          total += sr[b];
        }
        RowOut(pr, vocab) /= total;
        RowOut(sr, blocks) /= total;
        out_nll[r] = std::log(total) - (xr[label[r]] - max);
        out_argmax[r] = static_cast<int32_t>(first);
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 12 * vocab, work);
  }

 private:
  int64_t block_;
};

class SoftmaxNllGradOp : public OpKernel {
 public:
  explicit SoftmaxNllGradOp(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& d_nll = ctx->input(0);
    const Tensor& probs = ctx->input(1);
    const Tensor& labels = ctx->input(2);
    int64_t rows, vocab;
    if (!RowsVocab(ctx, "ElectraSoftmaxNllGrad", probs, labels, &rows, &vocab)) return;
    OP_REQUIRES(ctx, d_nll.shape() == labels.shape(),
                absl::InvalidArgumentError("ElectraSoftmaxNllGrad: d_nll " +
                                           d_nll.shape().DebugString() +
                                           " must have the labels' shape " +
                                           labels.shape().DebugString()));
    Tensor* d_logits = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 0, probs.shape(), &d_logits));
    const float* d = d_nll.flat<float>().data();
    const float* p = probs.flat<float>().data();
    const int32_t* label = labels.flat<int32_t>().data();
    float* out = d_logits->flat<float>().data();
    auto work = [=](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        Eigen::Map<Eigen::ArrayXf>(out + r * vocab, vocab) =
            Eigen::Map<const Eigen::ArrayXf>(p + r * vocab, vocab) * d[r];
        out[r * vocab + label[r]] -= d[r];
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 3 * vocab, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("ElectraSoftmaxNll").Device(::tensorflow::DEVICE_CPU), SoftmaxNllOp);
REGISTER_KERNEL_BUILDER(Name("ElectraSoftmaxNllGrad").Device(::tensorflow::DEVICE_CPU),
                        SoftmaxNllGradOp);

}  // namespace keras_electra
