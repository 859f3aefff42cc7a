# Compile-failure tests of the deep prompts (include/deepprompt/peft/): a prompt attached to a
# model of another depth or width must not compile, and must fail with its static_assert's message;
# the control deep_prompt_ok.cpp (the same code with matching sizes) must compile, so that the
# failures come from the static_asserts and not from include paths or flags.
# Runs at configure time (try_compile, compile only: no link). Include from tests/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/deep_prompt.cmake)
set(_dp_cf_dir ${CMAKE_CURRENT_LIST_DIR})

function(_dp_peft_compile_check name expect_success regex)
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
  unset(_dp_cf_ok CACHE)
  try_compile(_dp_cf_ok ${CMAKE_CURRENT_BINARY_DIR}/compile_fail/${name}
    SOURCES ${_dp_cf_dir}/${name}.cpp
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${PROJECT_SOURCE_DIR}/include"
    LINK_LIBRARIES Eigen3::Eigen xsimd nlohmann_json::nlohmann_json
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    OUTPUT_VARIABLE _dp_cf_out)
  if(expect_success AND NOT _dp_cf_ok)
    message(SEND_ERROR "compile_fail/${name}.cpp must compile (it is the control) but does not:\n${_dp_cf_out}")
  elseif(NOT expect_success AND _dp_cf_ok)
    message(SEND_ERROR "compile_fail/${name}.cpp compiled, but a size mismatch must be a compile error")
  elseif(NOT expect_success AND NOT _dp_cf_out MATCHES "${regex}")
    message(SEND_ERROR "compile_fail/${name}.cpp failed without the expected message /${regex}/:\n${_dp_cf_out}")
  else()
    message(STATUS "compile_fail/${name}.cpp: ${expect_success} as expected")
  endif()
endfunction()

_dp_peft_compile_check(deep_prompt_ok TRUE "")
_dp_peft_compile_check(deep_prompt_layers FALSE "Layers differs from the model's number of layers.*6 == 12")
_dp_peft_compile_check(deep_prompt_hidden FALSE "Hidden differs from the model's hidden size.*1024 == 768")
_dp_peft_compile_check(hidden_prompt_layers FALSE "Layers differs from the model's number of layers.*24 == 12")
_dp_peft_compile_check(t5_deep_prompt_layers FALSE "Layers differs from the model's number of layers.*12 == 6")
