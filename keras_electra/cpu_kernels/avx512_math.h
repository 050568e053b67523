// 16-lane float32 helpers shared by the kernels (AVX-512F/BW/VL builds only):
// loads and stores of float32 or bfloat16 under a mask, and exp(x) for x <= 0.
// Defines KERAS_ELECTRA_AVX512 when the compiler targets those extensions.
#ifndef KERAS_ELECTRA_AVX512_MATH_H_
#define KERAS_ELECTRA_AVX512_MATH_H_

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define KERAS_ELECTRA_AVX512 1
#include <immintrin.h>

#include "tensorflow/core/framework/types.h"

namespace keras_electra {
namespace avx512 {

inline __m512 Load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 Load(const ::tensorflow::bfloat16* p, __mmask16 m) {  // bfloat16 = float's top half
  const __m256i bits = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}
inline void Store(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }
inline void Store(::tensorflow::bfloat16* p, __m512 v, __mmask16 m) {
  // Round to nearest even, as TensorFlow's cast; NaN stays NaN.
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16),
                                 _mm512_set1_epi32(0x40));
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(rounded));
}

// exp(x) for x <= 0: 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (two-part
// ln 2), e^r by its Taylor series to r^6 (|r| <= 0.347: error < 2e-7 relative).
inline __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // below, the result is 0 anyway
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}


// The mask of the first min(16, remaining) lanes.
inline __mmask16 FirstLanes(int64_t remaining) {
  return remaining >= 16 ? 0xffff : (__mmask16)((1u << remaining) - 1);
}

}  // namespace avx512
}  // namespace keras_electra

#endif  // AVX-512F/BW/VL
#endif  // KERAS_ELECTRA_AVX512_MATH_H_
