#pragma once
// DeepPrompt: the umbrella header. Includes every host-side part of the library; include the
// individual headers instead to keep compile times short. CUDA parts (backend/cuda/*.cuh) are
// included by CUDA translation units only.

// simd.hpp first: it silences GCC 12's false AVX-512 warnings before <immintrin.h> is seen.
#include "backend/cpu/simd.hpp"

#include "core/blas_types.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "core/init.hpp"
#include "core/rng.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"

#include "backend/cpu/counters.hpp"
#include "backend/cpu/elementwise.hpp"
#include "backend/cpu/gemm.hpp"
#include "backend/cpu/rowwise.hpp"
#include "backend/cpu/threads.hpp"
#include "backend/dispatch.hpp"

#include "autodiff/grad_check.hpp"
#include "autodiff/parameter.hpp"
#include "autodiff/tape.hpp"
#include "autodiff/var.hpp"

#include "ops/activation.hpp"
#include "ops/arithmetic.hpp"
#include "ops/attention.hpp"
#include "ops/concat.hpp"
#include "ops/cross_entropy.hpp"
#include "ops/dropout.hpp"
#include "ops/embedding.hpp"
#include "ops/linear.hpp"
#include "ops/lstm.hpp"
#include "ops/matmul.hpp"
#include "ops/norm.hpp"
#include "ops/reduce.hpp"
#include "ops/shape.hpp"
#include "ops/softmax.hpp"

#include "train/clip_grad.hpp"
#include "train/optimizer.hpp"
#include "train/param_ref.hpp"
#include "train/schedule.hpp"

#include "nn/module.hpp"

#include "io/config.hpp"
#include "io/safetensors.hpp"

#include "nn/layers.hpp"

#include "models/bert.hpp"
#include "models/t5.hpp"
#include "models/t5_generate.hpp"

#include "peft/deep_prompt.hpp"
#include "peft/deep_prompt_bert.hpp"
#include "peft/deep_prompt_t5.hpp"
#include "peft/selective_prompt.hpp"
#include "peft/serving.hpp"
#include "peft/baselines.hpp"
