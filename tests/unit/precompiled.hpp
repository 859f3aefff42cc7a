// The headers nearly every test file includes, precompiled once for the test binary
// (tests/CMakeLists.txt: target_precompile_headers). Parsing them took about a third of each
// file's compile time. Only stable, widely used headers belong here: any change to one of them
// rebuilds every test file anyway.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <xsimd/xsimd.hpp>

#include "deepprompt/autodiff/var.hpp"
#include "deepprompt/backend/cpu/gemm.hpp"
#include "deepprompt/backend/cpu/rowwise.hpp"
