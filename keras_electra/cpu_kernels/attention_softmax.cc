// The attention probabilities, dropout(softmax(scores + padding bias)), and
// their gradient, one pass over the (batch, heads, queries, keys) scores each
// way on CPU.
//
// TensorFlow runs the add, the softmax and dropout's multiply as three passes
// forward (plus the factor's own pass) and dropout's multiply and the softmax
// gradient (multiply, sum, subtract, multiply) as five backward. Here each row
// of keys is read once: forward, its sum with the batch's padding bias, max,
// exponentials, normalisation (float32 whatever T is), the probabilities and
// the dropped-out probabilities; backward, g = d_dropped x factor, then
// probs x (g - sum(g x probs)). The dropout factor is the hash of
// dropout_hash.h on the element's flat index, recomputed backward instead of
// stored, so it is the factor ElectraDropoutScale writes for the same seed and
// shape. Rounding follows the TF ops: the probabilities are rounded to T before
// they are multiplied by the factor (itself rounded to T).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernel.h"
#include "avx512_math.h"
#include "dropout_hash.h"

namespace keras_electra {

REGISTER_OP("ElectraAttentionSoftmax")
    .Input("scores: T")
    .Input("bias: T")
    .Input("seed: int32")
    .Output("dropped: T")
    .Output("probs: T")
    .Attr("rate: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(0));
      return absl::OkStatus();
    })
    .Doc("probs = softmax(scores + bias) over the last axis, bias (batch, keys) broadcast "
         "over the middle axes; dropped = probs x dropout factor (rate, seed).");

REGISTER_OP("ElectraAttentionSoftmaxGrad")
    .Input("d_dropped: T")
    .Input("probs: T")
    .Input("seed: int32")
    .Output("d_scores: T")
    .Attr("rate: float")
    .Attr("T: {float, bfloat16, half}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("The gradient of ElectraAttentionSoftmax's dropped output with respect to scores.");

namespace {

// Scalar rows: any T, any size.
template <typename T>
void ForwardRow(const T* scores, const T* bias, const DropoutHash& hash, float scale,
                int64_t first, int64_t cols, float* v, T* probs, T* dropped) {
  float top = -INFINITY;
  for (int64_t j = 0; j < cols; ++j) {
    v[j] = static_cast<float>(scores[j]) + static_cast<float>(bias[j]);
    top = std::max(top, v[j]);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) sum += (v[j] = std::exp(v[j] - top));
  for (int64_t j = 0; j < cols; ++j) {
    const T p(v[j] / sum);
    probs[j] = p;
    dropped[j] = T(hash.Keep(first + j) ? static_cast<float>(p) * scale : 0.0f);
  }
}

template <typename T>
void BackwardRow(const T* d_dropped, const T* probs, const DropoutHash& hash, float scale,
                 int64_t first, int64_t cols, float* g, T* d_scores) {
  float dot = 0.0f;
  for (int64_t j = 0; j < cols; ++j) {
    g[j] = hash.Keep(first + j) ? static_cast<float>(d_dropped[j]) * scale : 0.0f;
    dot += g[j] * static_cast<float>(probs[j]);
  }
  for (int64_t j = 0; j < cols; ++j)
    d_scores[j] = T(static_cast<float>(probs[j]) * (g[j] - dot));
}

#ifdef KERAS_ELECTRA_AVX512
// 16 lanes of DropoutHash::Keep for the elements [first, first + 16) (first + 16 <= 2^32).
__m512 Factor16(const DropoutHash& hash, float scale, uint32_t first) {
  auto low_bias = [](__m512i x) {
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7FEB352D));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(static_cast<int>(0x846CA68Bu)));
    return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
  };
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i i = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first)), lanes);
  __m512i x = low_bias(_mm512_xor_si512(i, _mm512_set1_epi32(static_cast<int>(hash.key0()))));
  x = low_bias(_mm512_add_epi32(x, _mm512_set1_epi32(static_cast<int>(hash.key1()))));
  const __mmask16 keep = _mm512_cmpge_epu32_mask(
      _mm512_srli_epi32(x, 8), _mm512_set1_epi32(static_cast<int>(hash.threshold())));
  return _mm512_maskz_mov_ps(keep, _mm512_set1_ps(scale));
}

// Vector rows for float32 and bfloat16 (flat indices below 2^32).
template <typename T>
void ForwardRow16(const T* scores, const T* bias, const DropoutHash& hash, float scale,
                  int64_t first, int64_t cols, float* v, T* probs, T* dropped) {
  using namespace avx512;
  __m512 top = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = FirstLanes(cols - j);
    const __m512 x = _mm512_add_ps(Load(scores + j, m), Load(bias + j, m));
    _mm512_storeu_ps(v + j, x);
    top = _mm512_mask_max_ps(top, m, top, x);
  }
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = FirstLanes(cols - j);
    const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(v + j), max));
    _mm512_storeu_ps(v + j, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = FirstLanes(cols - j);
    Store(probs + j, _mm512_mul_ps(_mm512_loadu_ps(v + j), inv), m);
    const __m512 p = Load(probs + j, m);  // rounded to T, as the TF ops multiply it
    Store(dropped + j, _mm512_mul_ps(p, Factor16(hash, scale, first + j)), m);
  }
}

template <typename T>
void BackwardRow16(const T* d_dropped, const T* probs, const DropoutHash& hash, float scale,
                   int64_t first, int64_t cols, float* g, T* d_scores) {
  using namespace avx512;
  __m512 dot = _mm512_setzero_ps();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = FirstLanes(cols - j);
    const __m512 x = _mm512_mul_ps(Load(d_dropped + j, m), Factor16(hash, scale, first + j));
    _mm512_storeu_ps(g + j, x);
    dot = _mm512_fmadd_ps(x, Load(probs + j, m), dot);
  }
  const __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(dot));
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = FirstLanes(cols - j);
    Store(d_scores + j,
          _mm512_mul_ps(Load(probs + j, m), _mm512_sub_ps(_mm512_loadu_ps(g + j), total)), m);
  }
}
#endif  // KERAS_ELECTRA_AVX512

// The vector rows when T has them and the flat indices fit 32 bits.
template <typename T>
constexpr bool kVectorRows =
#ifdef KERAS_ELECTRA_AVX512
    std::is_same_v<T, float> || std::is_same_v<T, ::tensorflow::bfloat16>;
#else
    false;
#endif

bool CheckRate(OpKernelConstruction* c, float* rate) {
  if (!c->GetAttr("rate", rate).ok() || !(*rate >= 0.0f && *rate < 1.0f)) {
    c->CtxFailure(__FILE__, __LINE__,
                  absl::InvalidArgumentError("ElectraAttentionSoftmax: rate must be in [0, 1)"));
    return false;
  }
  return true;
}

bool CheckSeed(OpKernelContext* ctx, const Tensor& seed) {
  if (seed.NumElements() == 2) return true;
  ctx->CtxFailure(__FILE__, __LINE__, absl::InvalidArgumentError(
      "ElectraAttentionSoftmax: seed must have 2 elements, got " + seed.shape().DebugString()));
  return false;
}

}  // namespace

template <typename T>
class AttentionSoftmaxOp : public OpKernel {
 public:
  explicit AttentionSoftmaxOp(OpKernelConstruction* c) : OpKernel(c) { CheckRate(c, &rate_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& scores = ctx->input(0);
    const Tensor& bias = ctx->input(1);
    const Tensor& seed_t = ctx->input(2);
    if (!CheckSeed(ctx, seed_t)) return;
    OP_REQUIRES(ctx, scores.dims() >= 2 && bias.dims() == 2 &&
                         bias.dim_size(0) == scores.dim_size(0) &&
                         bias.dim_size(1) == scores.dim_size(scores.dims() - 1),
                absl::InvalidArgumentError(
                    "ElectraAttentionSoftmax: bias must be (batch, keys) of scores (batch, ..., "
                    "keys); got scores " + scores.shape().DebugString() + " and bias " +
                    bias.shape().DebugString()));
    Tensor *dropped = nullptr, *probs = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, scores.shape(), &dropped));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, scores.shape(), &probs));
    const int64_t cols = bias.dim_size(1), batch = bias.dim_size(0);
    if (scores.NumElements() == 0) return;
    const int64_t rows = scores.NumElements() / cols, rows_per_batch = rows / batch;
    const T* s = scores.flat<T>().data();
    const T* b = bias.flat<T>().data();
    T* pd = dropped->flat<T>().data();
    T* pp = probs->flat<T>().data();
    const DropoutHash hash(seed_t.flat<int32_t>()(0), seed_t.flat<int32_t>()(1), rate_);
    const float scale = static_cast<float>(T(1.0f / (1.0f - rate_)));
    const bool vector = kVectorRows<T> && scores.NumElements() + 16 <= (int64_t{1} << 32);
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<float> v(cols + 16);
      for (int64_t r = begin; r < end; ++r) {
        const T* row_bias = b + (r / rows_per_batch) * cols;
        const int64_t o = r * cols;
#ifdef KERAS_ELECTRA_AVX512
        if constexpr (kVectorRows<T>) {
          if (vector) {
            ForwardRow16(s + o, row_bias, hash, scale, o, cols, v.data(), pp + o, pd + o);
            continue;
          }
        }
#endif
        ForwardRow(s + o, row_bias, hash, scale, o, cols, v.data(), pp + o, pd + o);
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 30 * cols, work);
  }

 private:
  float rate_;
};

template <typename T>
class AttentionSoftmaxGradOp : public OpKernel {
 public:
  explicit AttentionSoftmaxGradOp(OpKernelConstruction* c) : OpKernel(c) {
    CheckRate(c, &rate_);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& d_dropped = ctx->input(0);
    const Tensor& probs = ctx->input(1);
    const Tensor& seed_t = ctx->input(2);
    if (!CheckSeed(ctx, seed_t)) return;
    OP_REQUIRES(ctx, d_dropped.shape() == probs.shape() && probs.dims() >= 1,
                absl::InvalidArgumentError(
                    "ElectraAttentionSoftmaxGrad: d_dropped " + d_dropped.shape().DebugString() +
                    " must have the shape of probs " + probs.shape().DebugString()));
    Tensor* d_scores = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, probs.shape(), &d_scores));
    if (probs.NumElements() == 0) return;
    const int64_t cols = probs.dim_size(probs.dims() - 1), rows = probs.NumElements() / cols;
    const T* pg = d_dropped.flat<T>().data();
    const T* pp = probs.flat<T>().data();
    T* out = d_scores->flat<T>().data();
    const DropoutHash hash(seed_t.flat<int32_t>()(0), seed_t.flat<int32_t>()(1), rate_);
    const float scale = static_cast<float>(T(1.0f / (1.0f - rate_)));
    const bool vector = kVectorRows<T> && probs.NumElements() + 16 <= (int64_t{1} << 32);
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<float> g(cols + 16);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r * cols;
#ifdef KERAS_ELECTRA_AVX512
        if constexpr (kVectorRows<T>) {
          if (vector) {
            BackwardRow16(pg + o, pp + o, hash, scale, o, cols, g.data(), out + o);
            continue;
          }
        }
#endif
        BackwardRow(pg + o, pp + o, hash, scale, o, cols, g.data(), out + o);
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 12 * cols, work);
  }

 private:
  float rate_;
};

#define KERAS_ELECTRA_REGISTER(T)                                                          \
  REGISTER_KERNEL_BUILDER(                                                                 \
      Name("ElectraAttentionSoftmax").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      AttentionSoftmaxOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(Name("ElectraAttentionSoftmaxGrad")                              \
                              .Device(::tensorflow::DEVICE_CPU)                            \
                              .TypeConstraint<T>("T"),                                     \
                          AttentionSoftmaxGradOp<T>);

KERAS_ELECTRA_REGISTER(float)
KERAS_ELECTRA_REGISTER(::tensorflow::bfloat16)
KERAS_ELECTRA_REGISTER(Eigen::half)

}  // namespace keras_electra
