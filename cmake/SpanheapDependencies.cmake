# Every dependency is a Debian package installed by ci/setup and found here, once, for all
# folders: fmt::fmt, GTest::gtest, GTest::gtest_main, GTest::gmock, rapidcheck, rapidcheck_gtest,
# benchmark::benchmark and Threads::Threads. Nothing is vendored or fetched at configure time.
# With BUILD_TESTING=OFF only fmt and Threads are required (the library and the fuzzers: what
# .clusterfuzzlite/build.sh builds); benchmark is used if present, the test frameworks are not
# looked for.
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
if(NOT BUILD_TESTING)
  find_package(benchmark QUIET)
  return()
endif()
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)

# librapidcheck-dev ships a CMake config with the targets rapidcheck and rapidcheck_gtest (an
# interface target over rapidcheck/gtest.h). Fall back to the bare library should a packaging
# change drop the config.
find_package(rapidcheck CONFIG QUIET)
if(NOT TARGET rapidcheck)
  find_library(SPANHEAP_RAPIDCHECK_LIBRARY rapidcheck REQUIRED)
  find_path(SPANHEAP_RAPIDCHECK_INCLUDE rapidcheck.h REQUIRED)
  add_library(rapidcheck STATIC IMPORTED)
  set_target_properties(rapidcheck PROPERTIES
    IMPORTED_LOCATION ${SPANHEAP_RAPIDCHECK_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${SPANHEAP_RAPIDCHECK_INCLUDE})
endif()
if(NOT TARGET rapidcheck_gtest)
  find_path(SPANHEAP_RAPIDCHECK_GTEST_INCLUDE rapidcheck/gtest.h REQUIRED)
  add_library(rapidcheck_gtest INTERFACE IMPORTED)
  set_target_properties(rapidcheck_gtest PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${SPANHEAP_RAPIDCHECK_GTEST_INCLUDE}
    INTERFACE_LINK_LIBRARIES "rapidcheck;GTest::gtest")
endif()

# Python 3 with PyYAML runs the repository checks in tests/ (workflow <-> script/preset
# consistency). A Python that cannot import yaml is skipped in favour of one that can.
function(spanheap_python_has_yaml result candidate)
  execute_process(COMMAND ${candidate} -c "import yaml" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()
find_program(SPANHEAP_PYTHON NAMES python3 VALIDATOR spanheap_python_has_yaml
             DOC "Python 3 interpreter with PyYAML, for the repository checks in tests/")
