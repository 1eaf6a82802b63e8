// graft — writing Keras 3 `.keras` archives: config.json (the Keras 3 serializer's archive form),
// metadata.json and model.weights.h5 (layers/<key>/vars/<i>, optimizer/vars/<i>), stored in a zip
// by libzip, as keras.saving.save_model writes them. Atomic, like every graft save.
#pragma once

#include <zip.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/io/atomic_file.hpp"
#include "graft/io/hdf5.hpp"
#include "graft/saving/keras3_serializer.hpp"

namespace graft {
namespace detail {

/// Keras 3 saving_lib's weights layout for `model`'s layers under group `g`: one group per layer,
/// keyed by the snake_case class name (suffixed _1, _2, ... on repeats), with `vars/<i>` for the
/// layer's weights and nested models recursing into their own `layers/`.
template <class T>
void write_keras3_layer_weights(Model<T>& model, h5::Group& g) {
  h5::Group layers = g.create_group("layers");
  std::map<std::string, int> used;
  for (const auto& l : model.layers()) {
    if (l->is_operation()) continue;  // not among a Keras model's layers
    std::string key = to_snake_case(l->class_name());
    int k = used.count(key) ? ++used[key] : (used[key] = 0);
    if (k > 0) key += "_" + std::to_string(k);
    h5::Group lg = layers.create_group(key);
    if (l->is_model()) write_keras3_layer_weights(static_cast<Model<T>&>(*l), lg);
    h5::Group vars = lg.create_group("vars");
    vars.write_string_attr("name", l->name());
    if (l->is_model()) continue;
    auto ws = l->weights();
    for (size_t i = 0; i < ws.size(); ++i) h5::write_dataset(vars, std::to_string(i), ws[i]->value);
  }
}

/// model.weights.h5 of a .keras archive.
template <class T>
void write_keras3_weights_file(Model<T>& model, h5::File& f, const std::vector<OptimizerVariable<T>>& opt_vars) {
  h5::Group root = h5::Group::root(f);
  write_keras3_layer_weights(model, root);
  h5::Group top = root.create_group("vars");
  top.write_string_attr("name", model.name());
  if (opt_vars.empty()) return;
  const auto& opt = *model.compile_state().optimizer;
  h5::Group og = root.create_group("optimizer").create_group("vars");
  og.write_string_attr("name", opt.name());
  for (size_t i = 0; i < opt_vars.size(); ++i) {
    const auto& v = opt_vars[i];
    std::string n = std::to_string(i);
    if (v.kind == OptimizerVariable<T>::iteration) {
      h5::write_scalar_int(og, n, opt.iterations());
    } else if (v.kind == OptimizerVariable<T>::learning_rate) {
      Tensor<float> lr(Shape{}, static_cast<float>(opt.base_learning_rate()));
      h5::write_dataset(og, n, lr);
    } else {
      h5::write_dataset(og, n, *v.value);
    }
  }
}

/// A zip archive being written (libzip), entries stored uncompressed as Keras stores them.
class ZipWriter {
 public:
  explicit ZipWriter(std::string path) : path_(std::move(path)) {
    int err = 0;
    z_ = zip_open(path_.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z_) {
      zip_error_t e;
      zip_error_init_with_code(&e, err);
      std::string m = zip_error_strerror(&e);
      zip_error_fini(&e);
      throw io_error(cat(path_, ": cannot create the archive: ", m));
    }
  }
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;
  ~ZipWriter() {
    if (z_) zip_discard(z_);
  }
  void add_bytes(const std::string& name, std::string bytes) {
    kept_.push_back(std::make_unique<std::string>(std::move(bytes)));
    zip_source_t* s = zip_source_buffer(z_, kept_.back()->data(), kept_.back()->size(), 0);
    add(name, s);
  }
  void add_file(const std::string& name, const std::string& file) { add(name, zip_source_file(z_, file.c_str(), 0, -1)); }
  /// Write the archive (libzip writes everything at close).
  void close() {
    if (zip_close(z_) != 0) {
      std::string m = zip_strerror(z_);
      throw io_error(cat(path_, ": cannot write the archive: ", m));
    }
    z_ = nullptr;
  }

 private:
  void add(const std::string& name, zip_source_t* s) {
    if (!s) throw io_error(cat(path_, ": cannot add ", name, ": ", zip_strerror(z_)));
    zip_int64_t i = zip_file_add(z_, name.c_str(), s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    if (i < 0) {
      zip_source_free(s);
      throw io_error(cat(path_, ": cannot add ", name, ": ", zip_strerror(z_)));
    }
    zip_set_file_compression(z_, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
  }
  std::string path_;
  zip_t* z_ = nullptr;
  std::vector<std::unique_ptr<std::string>> kept_;
};

/// keras.saving.save_model(model, "x.keras") in the Keras 3 format. Serialized in full before
/// anything is written; the archive is built beside `path` and renamed onto it.
template <class T>
void save_keras_archive(Model<T>& model, const std::string& path, bool include_optimizer) {
  check_serializable(model, KerasDialect::keras3);
  json config = keras3::archive_config(model);
  std::vector<OptimizerVariable<T>> opt_vars;
  if (model.compiled() && include_optimizer) {
    const auto& opt = *model.compile_state().optimizer;
    if (opt.iterations() > 0 || !model.compile_state().optimizer->slot_variables().empty()) {
      std::unordered_map<Param<T>*, std::string> paths;
      weight_paths(model, model.name(), paths);
      opt_vars = keras3::optimizer_variables(model, paths);
    }
  }
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d@%H:%M:%S", std::localtime(&now));
  json metadata = {{"keras_version", keras3::kVersion}, {"date_saved", date}, {"graft_version", kGraftVersion}};
  // model.weights.h5 goes to a hidden temporary file beside the target, then into the archive
  const std::string weights_tmp = temp_path_beside(path, ".weights.h5");
  try {
    {
      h5::File f = h5::File::create(weights_tmp);
      write_keras3_weights_file(model, f, opt_vars);
      f.close();
    }
    atomic_replace(path, [&](const std::string& tmp) {
      ZipWriter z(tmp);
      z.add_bytes("metadata.json", metadata.dump());
      z.add_bytes("config.json", config.dump());
      z.add_file("model.weights.h5", weights_tmp);
      z.close();
    });
  } catch (...) {
    std::remove(weights_tmp.c_str());
    throw;
  }
  std::remove(weights_tmp.c_str());
}

}  // namespace detail
}  // namespace graft
