// graft — what the fuzz targets (and their regression tests) do with one input: everything a
// program does with a model file or a config from an untrusted source. Any graft::error is a
// clean refusal; anything else escaping (std::bad_alloc, a JSON or HDF5 exception), a crash, a
// hang or a sanitizer report is a bug.
#pragma once

#include <graft/io/keras_config.hpp>
#include <graft/io/keras_h5.hpp>
#include <graft/layers/builtin.hpp>
#include <graft/model/summary.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace graft {
namespace fuzz {

/// Limits for fuzzing, tighter than graft's defaults (which admit every real model): a model of
/// millions of parameters costs milliseconds to initialize or read, and the fuzzer would spend
/// its time there instead of in the parsers. The checks that enforce the limits are the same code
/// at any value, so they are fuzzed as well. Called from each target's LLVMFuzzerInitialize.
inline void use_fuzzing_limits() {
  limits().max_model_parameters = std::int64_t(1) << 22;
  limits().max_tensor_elements = std::int64_t(1) << 22;
  limits().max_image_pixels = std::int64_t(1) << 22;
}

/// Exercise a built model the way `graft summary` and a caller inspecting it would.
template <class M>
void use_model(M& m) {
  std::ostringstream os;
  m.summary(os);
  (void)m.count_params();
  (void)m.get_config();
}

/// Load `path` as a model file (.h5 or .keras: sniffed by content) and as weights.
inline void load_file(const std::string& path) {
  try {
    (void)inspect_keras_file(path);
  } catch (const error&) {
  }
  try {
    auto m = load_model<float>(path);
    use_model(*m);
    load_weights(*m, path);  // the same file as weights: a second reading of every dataset
  } catch (const error&) {
  }
  try {  // a weights-only file read into a small model: exercises the weights layouts
    auto m = std::make_shared<Sequential<float>>("probe");
    m->add(InputLayer<float>::with_batch_shape({-1, 4}, "probe_input"));
    m->add(make<Dense>(3, "relu"));
    load_weights(*m, path);
  } catch (const error&) {
  }
}

/// The same for bytes: written to a private file first (load_model takes a path).
inline void load_bytes(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return dir + "/graft-fuzz-" + std::to_string(getpid()) + ".bin";
  }();
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  load_file(path);
  std::remove(path.c_str());
}

/// Build a model from a JSON config (model_from_json), then serialize it back.
inline void config_json(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto m = model_from_json<float>(text, "fuzz.json");
    use_model(*m);
    (void)model_to_json(*m, "3");
    (void)clone_model(*m);
  } catch (const error&) {
  }
}

}  // namespace fuzz
}  // namespace graft
