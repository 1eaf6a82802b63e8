// graft CLI — the commands on image folders:
//   graft fine-tune MODEL --images DIR --output OUT.h5 [--cut-at LAYER] [--epochs N] ...
//   graft evaluate MODEL --images DIR [--batch-size N]        prints "accuracy: ..." and "loss: ..."
//   graft predict MODEL --images DIR --output OUT.csv          file, class, probabilities
// The library does the work (graft/train/fine_tune_images.hpp, graft/data/image_folder.hpp);
// this file reads the options. `A` is graft.cpp's Args.
#pragma once

#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <graft/images.hpp>
#include <graft/train/fine_tune_images.hpp>

namespace graft_cli {

inline double to_double(const std::string& k, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || !end || *end) throw graft::value_error(k + " expects a number, got '" + v + "'");
  return d;
}

/// The model's input size (H, W, C) for reading images, from its input shape.
inline graft::data::ImageFolderOptions image_options_for(const graft::Model<float>& m, const std::string& label_mode) {
  const graft::Shape in = m.input_shapes().at(0);
  if (in.size() != 4) throw graft::value_error("the model's input " + graft::shape_str(in) + " is not an image batch (None, H, W, C)");
  graft::data::ImageFolderOptions o;
  o.image_size = {in[1] > 0 ? static_cast<int>(in[1]) : 224, in[2] > 0 ? static_cast<int>(in[2]) : 224};
  o.color_mode = in[3] == 1 ? "grayscale" : in[3] == 4 ? "rgba" : "rgb";
  o.shuffle = false;  // files in sorted order
  o.label_mode = label_mode;
  return o;
}

template <class A>
int fine_tune(const A& a, std::shared_ptr<graft::Distributed<float>> dist) {
  const std::string images = a.need("--images"), out = a.need("--output");
  graft::ImageFineTuneOptions o;
  o.cut_at = a.get("--cut-at");
  o.epochs = static_cast<int>(a.num("--epochs", 10));
  o.batch_size = a.num("--batch-size", 32);
  o.seed = static_cast<std::uint64_t>(a.num("--seed", 1337));
  o.learning_rate = to_double("--lr", a.get("--lr", "0.001"));
  o.validation_split = to_double("--validation-split", a.get("--validation-split", "0.2"));
  o.augment = a.get("--augment");
  o.unfreeze_from_top = static_cast<int>(a.num("--unfreeze-from-top", 0));
  o.fine_tune_epochs = static_cast<int>(a.num("--fine-tune-epochs", o.unfreeze_from_top > 0 ? 5 : 0));
  o.fine_tune_learning_rate = to_double("--fine-tune-lr", a.get("--fine-tune-lr", "0"));
  o.preprocessing = a.get("--preprocessing", "auto");
  o.on_error = a.get("--on-error", "error");
  o.verbose = a.flag("--quiet") ? 0 : (a.flag("--verbose") ? 1 : 2);
  o.distributed = dist;
  if (o.epochs < 0 || o.batch_size <= 0) throw graft::value_error("--epochs must be >= 0 and --batch-size > 0");
  auto base = graft::load_model<float>(a.model);
  auto r = graft::fine_tune_on_images(*base, images, o);
  graft::SaveOptions so;
  so.keras_version = a.get("--keras-version", "3");
  graft::parse_keras_version(so.keras_version);
  if (!dist || dist->is_chief()) graft::save_model(*r.model, out, so);
  std::cout << "classes: ";
  for (size_t i = 0; i < r.class_names.size(); ++i) std::cout << (i ? "," : "") << r.class_names[i];
  std::cout << "\ncut after: " << r.cut_layer << "\npreprocessing: " << r.preprocessing << "\nsaved: " << out << std::endl;
  return 0;
}

/// The compiled loss decides the label format (categorical: one-hot); a model saved without
/// a training config is evaluated with sparse categorical cross-entropy.
inline std::string label_mode_for(graft::Model<float>& m) {
  if (!m.compiled()) return "int";
  const auto& ls = m.compile_state().losses;
  const std::string n = ls.empty() || !ls[0] ? std::string() : ls[0]->name();
  if (n == "categorical_crossentropy" || n == "CategoricalCrossentropy") return "categorical";
  if (n == "binary_crossentropy" || n == "BinaryCrossentropy") return "binary";
  return "int";
}

template <class A>
int evaluate_images(const A& a) {
  auto m = graft::load_model<float>(a.model);
  const std::string mode = label_mode_for(*m);
  auto io = image_options_for(*m, mode);
  io.verbose = true;
  io.on_error = a.get("--on-error", "error");
  auto folder = graft::data::image_dataset_from_directory<float>(a.need("--images"), io);
  const graft::Index outputs = m->output_shapes().at(0).back();
  if (outputs != static_cast<graft::Index>(folder.class_names().size()) && mode != "binary")
    throw graft::value_error(a.need("--images") + " has " + std::to_string(folder.class_names().size()) + " class folders but model '" +
                             m->name() + "' has " + std::to_string(outputs) + " outputs");
  std::string loss = mode == "categorical" ? "categorical_crossentropy" : mode == "binary" ? "binary_crossentropy" : "sparse_categorical_crossentropy";
  m->compile("adam", loss, {"accuracy"});
  graft::Logs l = m->evaluate(folder, a.num("--batch-size", 32));
  auto acc = l.find("accuracy");
  if (acc == l.end())  // Keras 3 names it after the loss' accuracy on some models
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it->first.find("accuracy") != std::string::npos) acc = it;
  std::cout << "accuracy: " << graft::detail::format_metric(acc == l.end() ? 0.0 : acc->second) << "\n"
            << "loss: " << graft::detail::format_metric(l.at("loss")) << "\n";
  return 0;
}

template <class A>
int predict_images(const A& a) {
  auto m = graft::load_model<float>(a.model);
  const std::string dir = a.need("--images"), out = a.need("--output");
  auto io = image_options_for(*m, "none");
  io.labels = "none";
  io.verbose = false;
  io.on_error = a.get("--on-error", "error");
  auto folder = graft::data::image_dataset_from_directory<float>(dir, io);
  auto y = m->predict(folder, a.num("--batch-size", 32)).at(0);
  // class names: the class subfolders of DIR when it has as many as the model has outputs
  std::vector<std::string> names;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  const graft::Index k = y.inner(1);
  if (static_cast<graft::Index>(names.size()) != k) {
    names.clear();
    for (graft::Index c = 0; c < k; ++c) names.push_back(std::to_string(c));
  }
  graft::detail::atomic_replace(out, [&](const std::string& tmp) {
    std::ofstream f(tmp);
    f << "file,class";
    for (auto& n : names) f << "," << n;
    f << "\n" << std::setprecision(7);
    for (graft::Index i = 0; i < y.dim(0); ++i) {
      const float* p = y.data() + i * k;
      const graft::Index best = std::max_element(p, p + k) - p;
      std::string file = folder.file_paths().at(static_cast<size_t>(i));
      if (file.find_first_of(",\"") != std::string::npos) {  // CSV quoting
        std::string q = "\"";
        for (char c : file) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        file = q + "\"";
      }
      f << file << "," << names[static_cast<size_t>(best)];
      for (graft::Index c = 0; c < k; ++c) f << "," << p[c];
      f << "\n";
    }
    if (!f.flush()) throw graft::io_error("cannot write '" + out + "'");
  });
  std::cout << y.dim(0) << " images -> " << out << std::endl;
  return 0;
}

}  // namespace graft_cli
