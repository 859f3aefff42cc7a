#pragma once
// Types shared by every device's GEMM front end.
namespace deepprompt {

/// Whether a GEMM operand is used as stored (No) or transposed (Yes).
enum class Trans : bool { No = false, Yes = true };

}  // namespace deepprompt
