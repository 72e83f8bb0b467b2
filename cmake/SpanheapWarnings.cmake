# The project-wide warning set, applied to every target added after this file is included (the
# C++-only ones to C++ sources only: the malloc shim's tests are C programs).
# -Wconversion is deliberately absent: on allocator arithmetic (size classes, page counts, bit
# indices) it fires on nearly every line and buries the warnings that matter.
add_compile_options(
  -Wall
  -Wextra
  -Wpedantic
  -Wshadow
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>
  $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast>
  -Wcast-align
  $<$<COMPILE_LANGUAGE:CXX>:-Woverloaded-virtual>
  -Wnull-dereference
  -Wimplicit-fallthrough)

# Clang's thread-safety analysis checks the GUARDED_BY / REQUIRES annotations (STYLE.md).
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options(-Wthread-safety)
endif()

# CMake >= 3.24 knows this switch natively: -Werror on every target, and the command line can
# still override it with --compile-no-warning-as-error when investigating.
if(SPANHEAP_WERROR)
  set(CMAKE_COMPILE_WARNING_AS_ERROR ON)
endif()
