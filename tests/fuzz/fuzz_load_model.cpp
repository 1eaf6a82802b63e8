// libFuzzer target: graft's model loader on arbitrary bytes (.h5 and .keras, recognised by
// content): inspect_keras_file, load_model, summary, load_weights. See tests/fuzz/README.md.
#include "fuzz_harness.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  graft::fuzz::use_fuzzing_limits();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  graft::fuzz::load_bytes(data, size);
  return 0;
}
