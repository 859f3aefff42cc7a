#pragma once
// Constants of the activation kernels, shared by backend/cpu and backend/cuda.
namespace deepprompt::math {

template <class T>
inline constexpr T inv_sqrt2 = T(0.70710678118654752440084436210484903928L);  // 1 / sqrt(2)
template <class T>
inline constexpr T inv_sqrt_2pi = T(0.39894228040143267793994605993438186848L);  // 1 / sqrt(2 pi)
template <class T>
inline constexpr T sqrt_2_over_pi = T(0.79788456080286535587989211986876373695L);  // sqrt(2 / pi)
template <class T>
inline constexpr T gelu_cubic = T(0.044715);  // the cubic term of GELU's tanh approximation

}  // namespace deepprompt::math
