# Finds xsimd. Debian's xsimd 8 package config lists `xtl` among its link libraries although
# xsimd's headers need nothing from it; where no `xtl` target exists (libxtl-dev absent), an
# empty interface target stands in so that linking does not look for a libxtl.
if(NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
find_package(xsimd REQUIRED)
