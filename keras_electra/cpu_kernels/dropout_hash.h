// Dropout's keep decision for element i of a tensor: a counter-based hash of
// (seed, i), the "lowbias32" integer hash (Chris Wellons) applied twice, as
// keras_electra's rng.py does for masking and sampling. It needs no state and
// costs a few integer instructions per element. An element is dropped when the
// top 24 bits of its hash fall below round(rate * 2^24). Shared by the dropout
// factor (dropout_scale.cc) and the attention softmax (attention_softmax.cc),
// so both draw the same mask for the same (seed, shape).
#ifndef KERAS_ELECTRA_DROPOUT_HASH_H_
#define KERAS_ELECTRA_DROPOUT_HASH_H_

#include <cmath>
#include <cstdint>

namespace keras_electra {

inline uint32_t LowBias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

class DropoutHash {
 public:
  DropoutHash(int32_t seed0, int32_t seed1, float rate)
      : key0_(LowBias32(static_cast<uint32_t>(seed0) + 0x9E3779B9u)),
        key1_(LowBias32(key0_ ^ static_cast<uint32_t>(seed1))),
        threshold_(static_cast<uint32_t>(std::lround(rate * 16777216.0))) {}

  bool Keep(int64_t i) const {
    const uint32_t high = static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32);
    uint32_t x = LowBias32(static_cast<uint32_t>(i) ^ key0_);
    x = LowBias32(x + (key1_ ^ high));
    return (x >> 8) >= threshold_;
  }
  uint32_t key0() const { return key0_; }
  uint32_t key1() const { return key1_; }
  uint32_t threshold() const { return threshold_; }

 private:
  uint32_t key0_, key1_, threshold_;
};

}  // namespace keras_electra

#endif  // KERAS_ELECTRA_DROPOUT_HASH_H_
