# Install rules: `cmake --install <build> --prefix <dir>` puts the public headers, the static and
# shared libspanheap, the testing seam (libspanheap-testing.a + spanheap/testing.hpp), a CMake
# package (find_package(spanheap 0.2 CONFIG) -> spanheap::spanheap) and spanheap.pc under <dir>.
# ci/consumer builds a small project against that tree both ways (docs/ci.md).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_spanheap_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/spanheap)
set(_spanheap_targets spanheap spanheap_testing)
if(TARGET spanheap_shared)
  list(APPEND _spanheap_targets spanheap_shared)
endif()

# What ci/consumer builds before installing: the libraries, not the tests.
add_custom_target(spanheap_install_targets DEPENDS ${_spanheap_targets})

install(TARGETS ${_spanheap_targets}
  EXPORT spanheapTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES
  ${PROJECT_SOURCE_DIR}/lib/include/spanheap/spanheap.hpp
  ${PROJECT_SOURCE_DIR}/lib/include/spanheap/invariants.hpp
  ${PROJECT_SOURCE_DIR}/lib/include/spanheap/testing.hpp
  ${SPANHEAP_VERSION_HEADER}
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/spanheap)

install(EXPORT spanheapTargets NAMESPACE spanheap:: DESTINATION ${_spanheap_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/spanheapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/spanheapConfig.cmake
  INSTALL_DESTINATION ${_spanheap_cmake_dir})
# 0.x: a minor version may break the API, so 0.2 accepts 0.2.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spanheapConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/spanheapConfig.cmake
              ${PROJECT_BINARY_DIR}/spanheapConfigVersion.cmake
        DESTINATION ${_spanheap_cmake_dir})

# spanheap.pc names its prefix relative to its own folder (${pcfiledir}), so the tree works from
# any --prefix given at install time, not only CMAKE_INSTALL_PREFIX.
file(RELATIVE_PATH SPANHEAP_PC_PREFIX_FROM_PCDIR
  /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" SPANHEAP_PC_PREFIX_FROM_PCDIR "${SPANHEAP_PC_PREFIX_FROM_PCDIR}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/spanheap.pc.in ${PROJECT_BINARY_DIR}/spanheap.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/spanheap.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
