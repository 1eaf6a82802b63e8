# Sanitizer builds of the suite (CMake option GRAFT_SANITIZE_TESTS; scripts/run-tests turns it on),
# included by tests/CMakeLists.txt:
#  - graft_tests_asan: the test files that read files, write files and train, built with
#    -fsanitize=address,undefined -fno-sanitize-recover=undefined at -O1. They are compiled as ONE
#    translation unit (tests/unity.cmake): graft is header-only, so each test file instantiates
#    the whole library, and one unit does that once instead of once per file. Their test cases run
#    in CTest as "asan:<name>".
#  - graft_tests_tsan: tests/test_concurrent_predict.cpp (one model predicting from several threads)
#    with -fsanitize=thread, without OpenMP (its runtime is not instrumented): "tsan:<name>".
# Any sanitizer report fails the test case that triggered it. Both define GRAFT_TEST_SANITIZED
# (graft_test::kTimeScale in tests/gradcheck.hpp: time limits in tests are 10x longer there).

# tests/<name>.cpp built with ASan/UBSan: reading good and bad files, writing them, training
set(GRAFT_SANITIZED_TESTS
    test_bad_files test_errors test_keras_zip test_data_checks test_hardening test_keras_files)

set(_graft_asan_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
set(_graft_sanitized_files "")
foreach(name ${GRAFT_SANITIZED_TESTS})
  if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp")  # (a file another change has not added yet, or removed)
    list(APPEND _graft_sanitized_files "${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp")
  endif()
endforeach()
include(unity.cmake)
set(_graft_unity "")
graft_unity_sources(_graft_unity graft_tests_asan_unity 100 ${_graft_sanitized_files})

add_executable(graft_tests_asan main.cpp "${_graft_unity}")
target_include_directories(graft_tests_asan PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}")
target_link_libraries(graft_tests_asan PRIVATE graft::graft graft_dev_flags Catch2::Catch2)
if(TARGET graft::images)
  target_link_libraries(graft_tests_asan PRIVATE graft::images)
endif()
target_compile_options(graft_tests_asan PRIVATE ${_graft_asan_flags} -O1 -g1 -Wno-maybe-uninitialized)
target_link_options(graft_tests_asan PRIVATE ${_graft_asan_flags})
target_compile_definitions(graft_tests_asan PRIVATE GRAFT_TEST_SANITIZED=1
  GRAFT_SHARED_DIR="${GRAFT_SHARED_DIR}"
  GRAFT_BINARY_DIR="${PROJECT_BINARY_DIR}"
  GRAFT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
catch_discover_tests(graft_tests_asan TEST_PREFIX "asan:"
  PROPERTIES TIMEOUT 900 LABELS sanitizer
  ENVIRONMENT "OMP_WAIT_POLICY=passive;ASAN_OPTIONS=detect_leaks=1;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/lsan.supp;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

add_executable(graft_tests_tsan main.cpp test_concurrent_predict.cpp)
target_link_libraries(graft_tests_tsan PRIVATE graft::graft Catch2::Catch2)
target_compile_options(graft_tests_tsan PRIVATE -fsanitize=thread -O1 -g1 -Wno-maybe-uninitialized $<$<BOOL:${GRAFT_AVX2}>:-mavx2 -mfma>)
target_link_options(graft_tests_tsan PRIVATE -fsanitize=thread)
target_compile_definitions(graft_tests_tsan PRIVATE GRAFT_TEST_SANITIZED=1
  GRAFT_SHARED_DIR="${GRAFT_SHARED_DIR}"
  GRAFT_BINARY_DIR="${PROJECT_BINARY_DIR}"
  GRAFT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
catch_discover_tests(graft_tests_tsan TEST_PREFIX "tsan:"
  PROPERTIES TIMEOUT 900 LABELS sanitizer ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
