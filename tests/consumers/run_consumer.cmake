# Configure, build and run a consumer project of graft: consumer.cpp and the README's quick start.
#   MODE=find_package: install graft from BINARY_DIR into WORK_DIR/prefix, then find_package(graft).
#   MODE=add_subdirectory: the consumer adds SOURCE_DIR with add_subdirectory.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# The README's quick start, compiled exactly as written.
file(READ "${SOURCE_DIR}/README.md" readme)
string(REGEX MATCH "<!-- quickstart:begin -->[^`]*```cpp\n(.*)```[^`]*<!-- quickstart:end -->" _ "${readme}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "README.md has no quick start between <!-- quickstart:begin --> and <!-- quickstart:end -->")
endif()
file(WRITE "${WORK_DIR}/quickstart.cpp" "${CMAKE_MATCH_1}")

set(args -S "${SOURCE_DIR}/tests/consumers/${MODE}" -B "${WORK_DIR}/build" -DCMAKE_BUILD_TYPE=Release
         "-DQUICKSTART=${WORK_DIR}/quickstart.cpp")
if(MODE STREQUAL "find_package")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
                  RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "installing graft failed (${rc})")
  endif()
  list(APPEND args "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
else()
  list(APPEND args "-DGRAFT_SOURCE_DIR=${SOURCE_DIR}")
endif()
foreach(step "${args}" "--build;${WORK_DIR}/build;-j2")
  execute_process(COMMAND ${CMAKE_COMMAND} ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer ${MODE}: cmake ${step} failed:\n${out}\n${err}")
  endif()
endforeach()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer ${MODE} failed (${rc}):\n${out}\n${err}")
endif()
# graft::mpi (built when MPI is installed), as one process
load_cache("${BINARY_DIR}" READ_WITH_PREFIX _graft_ MPI_CXX_LIB_NAMES)
if(_graft_MPI_CXX_LIB_NAMES AND NOT EXISTS "${WORK_DIR}/build/consumer_mpi")
  message(FATAL_ERROR "consumer ${MODE}: graft was configured with MPI but the consumer got no graft::mpi target")
endif()
if(EXISTS "${WORK_DIR}/build/consumer_mpi")
  execute_process(COMMAND "${WORK_DIR}/build/consumer_mpi" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_mpi ${MODE} failed (${rc}):\n${out}\n${err}")
  endif()
endif()
# the quick start loads my_model_A.h5 from its working directory: give it a Keras-written one
configure_file("${FIXTURE_MODEL_A}" "${WORK_DIR}/my_model_A.h5" COPYONLY)
execute_process(COMMAND "${WORK_DIR}/build/quickstart" WORKING_DIRECTORY "${WORK_DIR}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0 OR NOT EXISTS "${WORK_DIR}/my_model_B_on_A.h5")
  message(FATAL_ERROR "README quick start (${MODE}) failed (${rc}):\n${out}\n${err}")
endif()
