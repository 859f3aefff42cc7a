# Install rules and a CMake package config, so that consumers can write
#   find_package(deepprompt CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE deepprompt::deepprompt)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/deepprompt
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS deepprompt EXPORT deepprompt-targets)
install(EXPORT deepprompt-targets NAMESPACE deepprompt::
        DESTINATION ${CMAKE_INSTALL_DATADIR}/deepprompt/cmake)

configure_package_config_file(
  ${CMAKE_CURRENT_SOURCE_DIR}/cmake/deepprompt-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/deepprompt-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/deepprompt/cmake)
# Header-only: the package fits any architecture.
write_basic_package_version_file(
  ${CMAKE_CURRENT_BINARY_DIR}/deepprompt-config-version.cmake
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/cmake/DeepPromptXsimd.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/deepprompt-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/deepprompt-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/deepprompt/cmake)
