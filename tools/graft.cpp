// graft — command-line access to Keras .h5 files:
//   graft summary MODEL
//   graft predict MODEL --input IN.h5 --output OUT.h5 [--batch-size N]
//   graft fit MODEL --data DATA.h5 --output OUT.h5 [--epochs N] [--batch-size N] [--no-shuffle] [--seed S] [--verbose]
//             [--keras-version 2|3]
//   graft convert IN OUT [--keras-version 2|3]
//   graft lr-find MODEL --data DATA.h5 [--start-lr F] [--end-lr F] [--steps N] [--csv FILE]
//   graft application NAME OUT [--weights FILE] [--no-top] [--input-shape H,W,C] [--pooling avg|max] ...
//   graft fine-tune MODEL --images DIR --output OUT.h5 [--cut-at LAYER] [--epochs N] [--augment ...] ...
//   graft evaluate MODEL --images DIR
//   graft predict MODEL --images DIR --output OUT.csv
// Exit status 0 on success; on any error one line on stderr and a non-zero status.
#include <graft/applications.hpp>
#include <graft/graft.hpp>

#ifdef GRAFT_WITH_IMAGES
#include "graft_images.hpp"
#endif
#include "graft_mpi.hpp"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include <unistd.h>
#include <vector>

namespace {

const char* kUsage =
    "usage:\n"
    "  graft summary MODEL\n"
    "      layers, output shapes, parameter counts and Keras version of a .h5 model;\n"
    "      for a weights-only file, its layers and weight shapes\n"
    "  graft predict MODEL --input IN.h5 --output OUT.h5 [--batch-size N]\n"
    "      reads x (or x0, x1, ...) from IN.h5, writes y (or y0, y1, ...) as float32\n"
    "  graft fit MODEL --data DATA.h5 --output OUT.h5 [--epochs N] [--batch-size N]\n"
    "            [--no-shuffle] [--seed S] [--verbose] [--keras-version 2|3]\n"
    "            [--validation-split F] [--lr-schedule NAME[:key=value,...]]\n"
    "            [--layer-groups K] [--lr-mult-factor F] [--unfreeze-gradual N]\n"
    "            [--early-stopping PATIENCE] [--reduce-lr-on-plateau PATIENCE]\n"
    "            [--checkpoint FILE] [--csv-log FILE] [--backup-dir DIR] [--no-data-check]\n"
    "      trains with the loss and optimizer stored in MODEL (datasets x_train, y_train\n"
    "      or x_train0.., y_train0..; x_val, y_val for validation), then saves the trained\n"
    "      model to OUT.h5. --lr-schedule: one-cycle (max_lr, div, div_final, pct_start,\n"
    "      moms), cosine-restarts, cyclic, exponential, cosine; --lr-mult-factor: each of the\n"
    "      K layer groups (default 3) below the top trains F times slower; --unfreeze-gradual\n"
    "      N: only the top group trains at first, one more every N epochs; --checkpoint keeps\n"
    "      the best model (val_loss, or loss without validation); --csv-log writes one row\n"
    "      per epoch; --backup-dir: the same command rerun after a crash or kill resumes\n"
    "      where it stopped and ends with the same weights; data holding NaN or inf is refused\n"
    "      (naming the sample) unless --no-data-check, and a NaN loss stops with an error\n"
    "      mpirun -np N graft fit ... (or fine-tune): data-parallel on N processes (needs MPI)\n"
    "  graft lr-find MODEL --data DATA.h5 [--start-lr F] [--end-lr F] [--steps N]\n"
    "            [--batch-size N] [--seed S] [--csv FILE]\n"
    "      the learning-rate range test (fastai lr_find): prints the suggested learning rate;\n"
    "      MODEL is not changed\n"
    "  graft convert IN OUT [--keras-version 2|3]\n"
    "      rewrites any model file graft reads (Keras 1, Keras 2, TF-Keras 2.x or Keras 3 .h5,\n"
    "      .keras) as a file Keras 3 (default) or TF-Keras 2 loads: OUT ending in .keras is a\n"
    "      Keras 3 archive, otherwise a legacy .h5; weights, compile and optimizer state included\n"
    "  graft application NAME OUT [--weights FILE] [--no-top] [--input-shape H,W,C]\n"
    "            [--pooling avg|max] [--classes N] [--classifier-activation A] [--alpha F]\n"
    "            [--depth-multiplier N] [--dropout F] [--minimalistic] [--no-preprocessing]\n"
    "            [--keras-version 2|3]\n"
    "      builds keras.applications.NAME (ResNet50, MobileNetV2, EfficientNetB0, ... — graft\n"
    "      application --list) with Keras' arguments and layer names, loads a Keras weights\n"
    "      file by layer name, and saves the model to OUT (.h5 or .keras)\n"
    "  graft fine-tune MODEL --images DIR --output OUT.h5 [--cut-at LAYER] [--epochs N]\n"
    "            [--batch-size N] [--seed S] [--lr F] [--validation-split F]\n"
    "            [--augment flip=horizontal,rotation=F,zoom=F,translation=F,contrast=F]\n"
    "            [--unfreeze-from-top N] [--fine-tune-epochs N] [--fine-tune-lr F]\n"
    "            [--preprocessing auto|none|tf|torch|caffe|unit] [--on-error error|skip]\n"
    "      transfer learning on a folder of class subfolders of images (PNG, JPEG, BMP, GIF):\n"
    "      cuts MODEL after its last global pooling or Flatten layer (or LAYER), adds\n"
    "      Dense(classes, softmax), trains it with the rest frozen (the frozen part runs once:\n"
    "      feature cache), then optionally unfreezes the top N layers at lr/10; OUT takes raw\n"
    "      images (0..255) at MODEL's input size. Validation: 20% of the images by default\n"
    "  graft evaluate MODEL --images DIR [--batch-size N]\n"
    "      prints accuracy: and loss: over a folder of class subfolders\n"
    "  graft predict MODEL --images DIR --output OUT.csv [--batch-size N]\n"
    "      one CSV row per image file: file, predicted class, probabilities\n"
    "  --keras-version 3 writes what Keras 3 (TensorFlow >= 2.16) loads, 2 what TF-Keras 2\n"
    "  (TensorFlow <= 2.15) loads; without it fit keeps the generation of MODEL\n";

struct Args {
  std::string cmd, model;
  std::map<std::string, std::string> opt;
  std::vector<std::string> flags;
  bool flag(const std::string& f) const {
    for (auto& x : flags)
      if (x == f) return true;
    return false;
  }
  std::string get(const std::string& k, const std::string& d = {}) const {
    auto it = opt.find(k);
    return it == opt.end() ? d : it->second;
  }
  std::string need(const std::string& k) const {
    auto it = opt.find(k);
    if (it == opt.end()) throw graft::value_error("missing " + k + " (see graft --help)");
    return it->second;
  }
  long long num(const std::string& k, long long d) const {
    auto it = opt.find(k);
    if (it == opt.end()) return d;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (!end || *end || it->second.empty()) throw graft::value_error(k + " expects an integer, got '" + it->second + "'");
    return v;
  }
};

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> pos;
  const std::vector<std::string> valued = {"--input", "--output", "--batch-size", "--data", "--epochs", "--seed",
                                           "--keras-version", "--weights", "--input-shape", "--pooling", "--classes",
                                           "--classifier-activation", "--alpha", "--depth-multiplier", "--dropout",
                                           "--validation-split", "--lr-schedule", "--layer-groups", "--lr-mult-factor",
                                           "--unfreeze-gradual", "--early-stopping", "--reduce-lr-on-plateau", "--checkpoint",
                                           "--csv-log", "--backup-dir", "--start-lr", "--end-lr", "--steps", "--csv",
                                           "--images", "--cut-at", "--lr", "--augment", "--unfreeze-from-top",
                                           "--fine-tune-epochs", "--fine-tune-lr", "--preprocessing", "--on-error"};
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      bool v = false;
      for (auto& k : valued) v = v || k == s;
      if (v) {
        if (i + 1 >= argc) throw graft::value_error(s + " needs a value");
        a.opt[s] = argv[++i];
      } else if (s == "--no-shuffle" || s == "--verbose" || s == "--help" || s == "--no-top" || s == "--minimalistic" ||
                 s == "--no-preprocessing" || s == "--list" || s == "--quiet" || s == "--no-data-check") {
        a.flags.push_back(s);
      } else {
        throw graft::value_error("unknown option " + s + " (see graft --help)");
      }
    } else {
      pos.push_back(s);
    }
  }
  if (!pos.empty()) a.cmd = pos[0];
  if (pos.size() > 1) a.model = pos[1];
  const bool two = a.cmd == "convert" || a.cmd == "application";
  if (two && pos.size() > 2) a.opt["OUT"] = pos[2];
  if (pos.size() > (two ? 3u : 2u)) throw graft::value_error("unexpected argument '" + pos.back() + "'");
  return a;
}

/// Datasets `prefix` or prefix0, prefix1, ... (n of them) from an HDF5 file.
std::vector<graft::Tensor<float>> read_arrays(const std::string& path, const std::string& prefix, size_t n) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  std::vector<graft::Tensor<float>> r;
  if (n == 1 && root.kind(prefix) == graft::h5::Group::Kind::dataset) {
    r.push_back(graft::h5::read_dataset<float>(root, prefix));
    return r;
  }
  for (size_t i = 0; i < n; ++i) {
    std::string name = prefix + std::to_string(i);
    if (root.kind(name) != graft::h5::Group::Kind::dataset) {
      if (n == 1)
        throw graft::format_error(path + ": no dataset '" + prefix + "' (or '" + prefix + "0')");
      throw graft::format_error(path + ": the model has " + std::to_string(n) + " inputs/outputs but dataset '" + name +
                                "' is missing (expected " + prefix + "0.." + prefix + std::to_string(n - 1) + ")");
    }
    r.push_back(graft::h5::read_dataset<float>(root, name));
  }
  return r;
}

int summary(const Args& a) {
  auto info = graft::inspect_keras_file(a.model);
  std::cout << "File: " << a.model << "\n";
  std::cout << "Keras version: " << (info.keras_version.empty() ? "(not recorded)" : info.keras_version);
  if (!info.backend.empty()) std::cout << ", backend: " << info.backend;
  if (!info.writer.empty()) std::cout << ", written by " << info.writer;
  std::cout << "\n";
  if (info.layout == "legacy_h5" || info.layout == "keras_zip") {
    graft::LoadOptions o;
    o.compile = false;
    auto m = graft::load_model<float>(a.model, o);
    m->summary(std::cout);
    if (info.has_training_config) {
      try {
        graft::LoadOptions oc;
        oc.warn = [](const std::string&) {};
        auto mc = graft::load_model<float>(a.model, oc);
        const auto& cs = mc->compile_state();
        std::cout << "Compiled: optimizer " << cs.optimizer->class_name() << " (learning_rate "
                  << cs.optimizer->learning_rate() << ", iterations " << cs.optimizer->iterations() << "), loss";
        for (auto& l : cs.losses) std::cout << " " << (l ? l->name() : "none");
        std::cout << "\n";
      } catch (const graft::error& e) {
        std::cout << "Compiled, but the training configuration cannot be used: " << e.message() << "\n";
      }
    } else {
      std::cout << "Not compiled (no training_config)\n";
    }
    return 0;
  }
  // weights-only: list what it holds
  auto f = graft::h5::File::open(a.model);
  auto root = graft::h5::Group::root(f);
  long long total = 0;
  std::function<void(graft::h5::Group&, const std::string&)> walk = [&](graft::h5::Group& g, const std::string& indent) {
    for (auto& c : g.children()) {
      auto k = g.kind(c);
      if (k == graft::h5::Group::Kind::dataset) {
        auto s = graft::h5::dataset_shape(g, c);
        long long n = graft::shape_size(s);  // checked: a hostile shape is an error, not an overflow
        if (__builtin_add_overflow(total, n, &total)) throw graft::format_error(a.model + ": implausibly many weights");
        std::cout << indent << c << " " << graft::shape_str(s) << "\n";
      } else if (k == graft::h5::Group::Kind::group) {
        auto sub = g.group(c);
        std::cout << indent << c << "/\n";
        if (indent.size() > 2 * static_cast<size_t>(graft::limits().max_config_depth))
          throw graft::format_error(a.model + ": groups nested deeper than graft::limits().max_config_depth");
        walk(sub, indent + "  ");
      }
    }
  };
  if (info.layout == "legacy_weights") {
    auto g = root.has_strings_attr("layer_names") ? root : root.group("model_weights");
    std::cout << "Weights-only file (legacy save_weights layout)\n";
    for (auto& ln : g.strings_attr("layer_names")) {
      auto lg = g.group(ln);
      auto wn = lg.strings_attr("weight_names");
      std::cout << "  " << ln << (wn.empty() ? "  (no weights)" : "") << "\n";
      for (auto& w : wn) {
        auto s = graft::h5::dataset_shape(lg, w);
        long long n = graft::shape_size(s);
        if (__builtin_add_overflow(total, n, &total)) throw graft::format_error(a.model + ": implausibly many weights");
        std::cout << "    " << w << " " << graft::shape_str(s) << "\n";
      }
    }
  } else {
    std::cout << "Weights-only file (Keras 3 .weights.h5 layout)\n";
    walk(root, "  ");
  }
  std::cout << "Total values: " << total << "\n";
  return 0;
}

int predict(const Args& a) {
  graft::LoadOptions o;
  o.compile = false;
  auto m = graft::load_model<float>(a.model, o);
  const long long bs = a.num("--batch-size", 32);
  if (bs <= 0) throw graft::value_error("--batch-size must be positive");
  std::string in = a.need("--input"), out = a.need("--output");
  auto x = read_arrays(in, "x", m->num_inputs());
  auto y = m->predict(x, bs);
  graft::detail::atomic_write(out, [&](graft::h5::File& f) {
    auto root = graft::h5::Group::root(f);
    for (size_t j = 0; j < y.size(); ++j)
      graft::h5::write_dataset(root, y.size() == 1 ? "y" : "y" + std::to_string(j), y[j]);
  });
  return 0;
}

double real(const Args& a, const std::string& k, double d);

std::shared_ptr<graft::Model<float>> compiled_model(const std::string& path) {
  auto m = graft::load_model<float>(path);
  if (!m->compiled())
    throw graft::value_error(path + ": the model has no training_config (it was never compiled), so there is no loss or optimizer to train with");
  return m;
}

int positive_int(const Args& a, const std::string& k, long long d) {
  long long v = a.num(k, d);
  if (v < 1 || v > 1000000000) throw graft::value_error(k + " expects a positive integer, got " + std::to_string(v));
  return static_cast<int>(v);
}

int fit(const Args& a) {
  auto m = compiled_model(a.model);
  std::string data = a.need("--data"), out = a.need("--output");
  auto x = read_arrays(data, "x_train", m->num_inputs());
  auto y = read_arrays(data, "y_train", m->num_outputs());
  graft::FitOptions<float> o;
  o.epochs = static_cast<int>(a.num("--epochs", 1));
  o.batch_size = a.num("--batch-size", 32);
  o.shuffle = !a.flag("--no-shuffle");
  if (a.opt.count("--seed")) o.seed = static_cast<std::uint64_t>(a.num("--seed", 0));
  o.verbose = a.flag("--verbose") ? 2 : 0;
  o.validation_split = real(a, "--validation-split", 0.0);
  if (!(o.validation_split >= 0 && o.validation_split < 1)) throw graft::value_error("--validation-split expects a fraction in [0, 1)");
  {
    auto f = graft::h5::File::open(data);
    auto root = graft::h5::Group::root(f);
    if (root.kind("x_val") == graft::h5::Group::Kind::dataset || root.kind("x_val0") == graft::h5::Group::Kind::dataset) {
      o.validation_x = read_arrays(data, "x_val", m->num_inputs());
      o.validation_y = read_arrays(data, "y_val", m->num_outputs());
    }
  }
  const bool validation = o.validation_split > 0 || !o.validation_x.empty();
  const std::string monitor = validation ? "val_loss" : "loss";
  const int groups = positive_int(a, "--layer-groups", 3);
  if (a.opt.count("--lr-mult-factor")) graft::set_discriminative_lrs(*m, real(a, "--lr-mult-factor", 1.0), groups);
  if (a.opt.count("--unfreeze-gradual"))
    o.callbacks.push_back(std::make_shared<graft::GradualUnfreezing<float>>(groups, positive_int(a, "--unfreeze-gradual", 1)));
  if (a.opt.count("--lr-schedule"))
    o.callbacks.push_back(graft::make_lr_schedule_callback<float>(a.get("--lr-schedule"), m->optimizer()->learning_rate()));
  if (a.opt.count("--reduce-lr-on-plateau"))
    o.callbacks.push_back(std::make_shared<graft::ReduceLROnPlateau<float>>(monitor, 0.1, positive_int(a, "--reduce-lr-on-plateau", 10)));
  if (a.opt.count("--early-stopping"))
    o.callbacks.push_back(std::make_shared<graft::EarlyStopping<float>>(monitor, positive_int(a, "--early-stopping", 1)));
  if (a.opt.count("--checkpoint"))
    o.callbacks.push_back(std::make_shared<graft::ModelCheckpoint<float>>(a.get("--checkpoint"), monitor, 0, true));
  if (a.opt.count("--csv-log")) o.callbacks.push_back(std::make_shared<graft::CSVLogger<float>>(a.get("--csv-log")));
  std::shared_ptr<graft::BackupAndRestore<float>> backup;
  if (a.opt.count("--backup-dir")) {
    backup = std::make_shared<graft::BackupAndRestore<float>>(a.get("--backup-dir"));
    o.callbacks.push_back(backup);
  }
  graft::SaveOptions so;
  so.keras_version = a.get("--keras-version");
  if (!so.keras_version.empty()) graft::parse_keras_version(so.keras_version);  // refuse before training
  o.check_data = !a.flag("--no-data-check");  // NaN/inf in the data: an error naming the sample, unless asked
  o.callbacks.push_back(std::make_shared<graft::TerminateOnNaN<float>>(true));  // a NaN loss: an error, nothing saved
  graft_cli::use_mpi(o);  // started by mpirun: data-parallel over the processes
  auto h = m->fit(x, y, o);
  if (backup && backup->resumed()) std::cout << "resumed from " << a.get("--backup-dir") << "\n";
  if (graft_cli::writes_files()) graft::save_model(*m, out, so);
  if (!h.epoch.empty())
    std::cout << "trained " << h.epoch.size() << " epoch(s); final " << monitor << ": " << h[monitor].back() << "\n";
  return 0;
}

int lr_find(const Args& a) {
  auto m = compiled_model(a.model);
  std::string data = a.need("--data");
  auto x = read_arrays(data, "x_train", m->num_inputs());
  auto y = read_arrays(data, "y_train", m->num_outputs());
  graft::LRFindOptions o;
  o.start_lr = real(a, "--start-lr", o.start_lr);
  o.end_lr = real(a, "--end-lr", o.end_lr);
  o.num_it = positive_int(a, "--steps", o.num_it);
  o.batch_size = a.num("--batch-size", 32);
  if (a.opt.count("--seed")) o.seed = static_cast<std::uint64_t>(a.num("--seed", 0));
  auto r = graft::lr_find(*m, x, y, o);
  if (a.opt.count("--csv")) r.write_csv(a.get("--csv"));
  std::cout << "steps run: " << r.lrs.size() << " (learning rate " << r.lrs.front() << " to " << r.lrs.back() << ")\n";
  std::cout << "minimum / 10: " << r.minimum << ", steepest descent: " << r.steep << "\n";
  std::cout << "suggested learning rate: " << r.suggestion() << "\n";
  return 0;
}

int convert(const Args& a) {
  std::string out = a.need("OUT");
  graft::SaveOptions so;
  so.keras_version = a.get("--keras-version", "3");
  graft::parse_keras_version(so.keras_version);
  std::vector<std::string> warnings;
  graft::LoadOptions o;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto m = graft::load_model<float>(a.model, o);
  for (auto& w : warnings) std::cerr << "graft: warning: " << w << "\n";
  graft::save_model(*m, out, so);
  std::cout << a.model << " (Keras " << (m->source_keras_version().empty() ? "?" : m->source_keras_version()) << ") -> " << out
            << " (" << graft::dialect_name(graft::parse_keras_version(so.keras_version)) << ")\n";
  return 0;
}

double real(const Args& a, const std::string& k, double d) {
  auto it = a.opt.find(k);
  if (it == a.opt.end()) return d;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (!end || *end || it->second.empty() || !std::isfinite(v)) throw graft::value_error(k + " expects a number, got '" + it->second + "'");
  return v;
}

int application(const Args& a) {
  namespace ga = graft::applications;
  ga::Options o;
  o.include_top = !a.flag("--no-top");
  o.weights = a.get("--weights");
  if (a.opt.count("--input-shape")) {
    std::string s = a.get("--input-shape");
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(',', start);
      std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
      char* e = nullptr;
      long long v = std::strtoll(item.c_str(), &e, 10);
      if (item.empty() || !e || *e || v <= 0 || v > 100000) throw graft::value_error("--input-shape expects H,W,C (positive integers), got '" + s + "'");
      o.input_shape.push_back(static_cast<graft::Index>(v));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  o.pooling = a.get("--pooling");
  const long long classes = a.num("--classes", 1000);
  if (classes <= 0 || classes > (1 << 24)) throw graft::value_error("--classes expects a positive integer");
  o.classes = static_cast<int>(classes);
  o.classifier_activation = a.get("--classifier-activation", "softmax");
  o.alpha = real(a, "--alpha", 1.0);
  const long long dm = a.num("--depth-multiplier", 1);
  if (dm <= 0 || dm > 1024) throw graft::value_error("--depth-multiplier expects a positive integer");
  o.depth_multiplier = static_cast<int>(dm);
  if (a.opt.count("--dropout")) o.dropout = real(a, "--dropout", 0);
  o.minimalistic = a.flag("--minimalistic");
  o.include_preprocessing = !a.flag("--no-preprocessing");
  graft::SaveOptions so;
  so.keras_version = a.get("--keras-version", "3");
  graft::parse_keras_version(so.keras_version);
  const std::string out = a.need("OUT");
  auto m = ga::build<float>(a.model, o);
  graft::save_model(*m, out, so);
  std::cout << a.model << " (" << m->name() << ", " << m->count_params() << " parameters"
            << (o.weights.empty() ? ", random initialization" : ", weights from " + o.weights) << ") -> " << out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<graft_cli::MpiSession> mpi;
  try {
    mpi = std::make_unique<graft_cli::MpiSession>(argc, argv);  // MPI only when started by mpirun
    Args a = parse(argc, argv);
    if (a.flag("--help") || a.cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (a.cmd == "application" && a.flag("--list")) {
      for (const auto& app : graft::applications::all<float>()) std::cout << app.name << "\n";
      return 0;
    }
    if (a.cmd.empty()) {
      std::cerr << kUsage;
      return 2;
    }
    if (a.model.empty()) throw graft::value_error(a.cmd == "application" ? "missing NAME (graft application --list)" : "missing MODEL (see graft --help)");
    if (!mpi->begin(a.cmd)) return 0;  // under mpirun: fit and fine-tune data-parallel, the rest on rank 0
    if (a.cmd == "summary") return summary(a);
#ifdef GRAFT_WITH_IMAGES
    if (a.cmd == "predict") return a.opt.count("--images") ? graft_cli::predict_images(a) : predict(a);
    if (a.cmd == "evaluate") return graft_cli::evaluate_images(a);
    if (a.cmd == "fine-tune") return graft_cli::fine_tune(a, mpi->distributed());
#else
    if (a.cmd == "fine-tune" || a.cmd == "evaluate" || a.opt.count("--images"))
      throw graft::unsupported_error("this graft was built without image support (libpng, libjpeg-turbo, giflib: scripts/install-deps)");
    if (a.cmd == "predict") return predict(a);
#endif
    if (a.cmd == "fit") return fit(a);
    if (a.cmd == "convert") return convert(a);
    if (a.cmd == "application") return application(a);
    if (a.cmd == "lr-find") return lr_find(a);
    throw graft::value_error("unknown command '" + a.cmd + "' (summary, predict, evaluate, fit, fine-tune, convert, application, lr-find)");
  } catch (const std::exception& e) {
    std::string m = e.what();
    for (auto& c : m)
      if (c == '\n') c = ' ';
    // one write: under mpirun the processes share stderr, and pieces of their lines interleaved
    const std::string line = "graft: " + (mpi ? mpi->prefix() : std::string()) + m + "\n";
    std::cerr.flush();
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) std::cerr << line;
    return mpi ? mpi->after_error(1) : 1;
  }
}
