// libFuzzer target: graft's Keras config reader on arbitrary JSON text (model_from_json, then
// summary, model_to_json and clone_model on what it built). See tests/fuzz/README.md.
#include "fuzz_harness.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  graft::fuzz::use_fuzzing_limits();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  graft::fuzz::config_json(data, size);
  return 0;
}
